"""`iolab quick`: the blog's three example workloads against one target, one compact table.

The job files ship in iolab/jobs/ and say `filename=${IOLAB_TARGET}`. By default the target is a 1 GiB
file in the current directory, written in full first so that reads hit real data. Durations are
shortened (2 s ramp + 10 s measured per workload, time based) so a first look takes under a minute;
`--ramp-time 10 --runtime 60` gives the blog's own durations.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from collections.abc import Sequence
from pathlib import Path

from iolab import interrupt
from iolab.analysis.model import merge_jobs
from iolab.jobfile import JobDef, JobFileError, parse_files
from iolab.jobfile.numbers import read_size, read_time
from iolab.plan import PlanError, RunPlan
from iolab.session import RunOptions, RunRefused, execute

JOBS_DIR = Path(__file__).parent / "jobs"
WORKLOADS = (
    ("parallel-reads", "High-throughput parallel reads"),
    ("latency-reads", "Latency-sensitive random reads"),
    ("mixed", "Mixed workload (70/30)"),
)


def _parse_size(text: str) -> int:
    """--size as fio reads size= (kb_base=1024: 1g is 1 GiB, 256m, 64k)."""
    reading = read_size(text, 1024)
    if reading is None or reading.percent or reading.value <= 0:
        raise argparse.ArgumentTypeError(f"--size: '{text}' is not a size (e.g. 1g, 256m)")
    if reading.surprise:
        print(f"iolab: warning: --size {text}: {reading.surprise}", file=sys.stderr)
    return reading.value


def _parse_seconds(flag: str, text: str) -> int:
    """A duration as fio reads runtime=/ramp_time= (a bare number is seconds; 500ms, 1m...), in ns."""
    reading = read_time(text, is_seconds=True)
    if reading is None or reading.value < 0 or (flag == "--runtime" and reading.value == 0):
        raise argparse.ArgumentTypeError(f"{flag}: '{text}' is not a duration (e.g. 10, 1s, 500ms, 1m)")
    if reading.surprise:
        print(f"iolab: warning: {flag} {text}: {reading.surprise}", file=sys.stderr)
    return reading.value * 1000


def _fmt_duration(ns: int) -> str:
    if ns % 1_000_000_000 == 0:
        return f"{ns // 1_000_000_000} s"
    if ns % 1_000_000 == 0:
        return f"{ns // 1_000_000} ms"
    return f"{ns / 1e9:g} s"


def _target_size(path: str) -> int:
    """Bytes of a file or block device (a device's size is where its end is)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


def _fit_clones(jobs: list[JobDef], target_size: int) -> str | None:
    """Shrink the slices of jobs whose clones (size= and offset_increment= per clone) would run past the
    end of a small target: numjobs equal slices of the target instead, aligned to the block size.
    Returns a note for the user, or None when nothing had to change."""
    note = None
    for job in jobs:
        v = job.values
        clones, slice_ = int(v["numjobs"]), int(v["size"] or 0)
        if clones < 2 or not slice_ or int(v["offset_increment"] or 0) != slice_:
            continue
        if clones * slice_ <= target_size:
            continue
        bs = max(int(b) for b in v["bs"])
        fitted = target_size // clones // bs * bs
        if fitted == 0:
            raise PlanError(
                f"the target ({target_size} bytes) is too small for {job.name}: {clones} jobs need at least "
                f"{bs} bytes each"
            )
        v["size"] = v["offset_increment"] = fitted
        each = f"{fitted >> 20} MiB" if fitted % (1 << 20) == 0 else f"{fitted} bytes"
        note = f"{job.name}: the target is smaller than {clones} x {slice_ >> 20} MiB: each job reads {each}"
    return note


def _prepare_target(path: str, size: int) -> int:
    """Lay a file target out to `size` bytes (written in full, so reads hit data), as a create_only job run
    through execute(): the safety gate checks it first, as every write. Returns the exit status."""
    from iolab.jobfile import parse_cli

    if os.path.exists(path) and stat.S_ISBLK(os.stat(path).st_mode):
        return 0

    def announce(plan: RunPlan) -> None:  # once the gate passed, before the layout
        if any(fp.extend for job in plan.jobs for fp in job.files):
            print(
                f"quick: writing {size >> 20} MiB test file {path} (reads must hit real data, not holes)",
                file=sys.stderr,
            )

    name = path.replace(":", "\\:")  # fio's filename= splits on ':'
    jobs = parse_cli(
        ["--name=quick-layout", f"--filename={name}", f"--size={size}", "--rw=read", "--create_only=1"]
    )
    _, code = execute(jobs.jobs, RunOptions(output_format="normal", eta="never"), on_start=announce)
    return code


def _override(jobs: list[JobDef], runtime_ns: int, ramp_ns: int) -> None:
    for job in jobs:
        job.values["runtime"] = runtime_ns
        job.values["ramp_time"] = ramp_ns
        job.values["time_based"] = True


def _fmt_lat(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    return f"{ns / 1e3:.1f} us"


def main(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="iolab quick", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--target",
        default="iolab-quick.dat",
        help="file or block device (default: ./iolab-quick.dat, created)",
    )
    ap.add_argument(
        "--size", type=_parse_size, default=1 << 30, help="size of the file target to create (default 1g)"
    )
    ap.add_argument(
        "--runtime",
        type=lambda t: _parse_seconds("--runtime", t),
        default=10 * 1_000_000_000,
        help="measured time per workload, as fio's runtime= (10, 10s, 500ms, 1m; default 10 s)",
    )
    ap.add_argument(
        "--ramp-time",
        type=lambda t: _parse_seconds("--ramp-time", t),
        default=2 * 1_000_000_000,
        help="warm-up time per workload, as fio's ramp_time= (default 2 s)",
    )
    ap.add_argument("--only", choices=[w for w, _ in WORKLOADS], action="append", help="run only these")
    opts = ap.parse_args(list(argv))
    # SIGINT, SIGTERM and SIGHUP stop the workload that runs; the table shows what ran until then
    with interrupt.handling(), interrupt.forgiving_stderr():
        try:
            return _quick(opts)
        except interrupt.Interrupted as exc:
            print(f"iolab: {exc}", file=sys.stderr)
            return interrupt.exit_status()


def _quick(opts: argparse.Namespace) -> int:
    target = os.path.abspath(opts.target)
    is_block = os.path.exists(target) and stat.S_ISBLK(os.stat(target).st_mode)
    if is_block:
        # iolab quick only reads a device except in the mixed workload, which writes: refuse that here
        print(
            f"quick: {target} is a block device; the mixed workload writes to it, so it is skipped",
            file=sys.stderr,
        )
    try:
        if _prepare_target(target, opts.size):
            print(f"iolab: {target}: could not be laid out", file=sys.stderr)
            return 1
        target_size = _target_size(target)
    except RunRefused as exc:
        print(f"iolab: refusing to run:\n{exc}", file=sys.stderr)
        return 1
    except (OSError, JobFileError, PlanError) as exc:
        if isinstance(exc, OSError):
            print(f"iolab: {exc.filename or target}: {exc.strerror or exc}", file=sys.stderr)
        else:
            print(f"iolab: {exc}", file=sys.stderr)
        return 1
    # the job files say filename=${IOLAB_TARGET}, and fio's filename= splits on ':' unless it is escaped
    env = dict(os.environ, IOLAB_TARGET=target.replace(":", "\\:"))
    ramp, runtime = _fmt_duration(opts.ramp_time), _fmt_duration(opts.runtime)
    rows: list[tuple[str, str, float, float, float, float]] = []
    status = 0
    notes: dict[str, None] = {}  # the doctor's findings, each once, in order
    for key, title in WORKLOADS:
        if opts.only and key not in opts.only:
            continue
        if is_block and key == "mixed":
            continue
        try:
            jobs = parse_files([str(JOBS_DIR / f"{key}.fio")], env)
            _override(jobs, opts.runtime, opts.ramp_time)
            fitted = _fit_clones(jobs, target_size)
            if fitted:
                print(f"quick: {fitted}", file=sys.stderr)
            print(f"quick: {title}: {ramp} ramp + {runtime} ...", file=sys.stderr)
            run, code = execute(jobs, RunOptions(output_format="normal", eta="auto"))
        except (JobFileError, PlanError) as exc:
            print(f"iolab: {exc}", file=sys.stderr)
            return 1
        except RunRefused as exc:
            print(f"iolab: refusing to run:\n{exc}", file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"iolab: {exc.filename or target}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        except interrupt.Interrupted as exc:
            if not rows:
                raise
            print(f"iolab: {exc}", file=sys.stderr)  # the workloads that ran are in the table
            status = status or exc.signum + 128
            break
        status = status or code
        for finding in run.iolab.get("findings", []):
            notes.setdefault(f"{finding['code']}: {finding['message']}", None)
        check = run.iolab.get("device_check", {})
        if check.get("verdict"):  # one phase per workload: its verdict (ramp I/O included)
            notes.setdefault(f"device check ({title}): {check['verdict']}", None)
        for group in run.groups:
            merged = group.merged or merge_jobs(group.jobs)
            for d in ("read", "write"):
                ds = merged.dirs[d]
                if not ds.ios:
                    continue
                pct = ds.clat.percentiles([50.0, 99.0])
                bw = ds.bytes / (ds.runtime_ms / 1000) if ds.runtime_ms else 0.0
                iops = ds.ios / (ds.runtime_ms / 1000) if ds.runtime_ms else 0.0
                rows.append((title, d, iops, bw, float(pct[50.0]), float(pct[99.0])))
        if interrupt.requested() is not None:
            break  # the table shows what ran until the signal
    print(f"\ntarget: {target}  (direct=1, psync; {ramp} ramp, {runtime} measured)")
    print(f"{'workload':34} {'dir':5} {'IOPS':>10} {'bandwidth':>12} {'clat p50':>10} {'clat p99':>10}")
    for title, d, iops, bw, p50, p99 in rows:
        mib = bw / (1 << 20)
        print(f"{title:34} {d:5} {iops:10.0f} {mib:8.1f}MiB/s {_fmt_lat(p50):>10} {_fmt_lat(p99):>10}")
    if notes:
        print("\ndoctor:")
        for note in notes:
            print(f"  {note}")
    return status
