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

from iolab.analysis.model import merge_jobs
from iolab.cli import RunOptions, execute
from iolab.jobfile import JobDef, JobFileError, parse_files
from iolab.plan import PlanError
from iolab.plan.layout import layout_file

JOBS_DIR = Path(__file__).parent / "jobs"
WORKLOADS = (
    ("parallel-reads", "High-throughput parallel reads"),
    ("latency-reads", "Latency-sensitive random reads"),
    ("mixed", "Mixed workload (70/30)"),
)


def _parse_size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    text = text.strip().lower().rstrip("ib").rstrip("b") if text[-1:].lower() == "b" else text.strip().lower()
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def _prepare_target(path: str, size: int) -> None:
    from iolab.plan import FilePlan, LayoutSpec

    if os.path.exists(path) and stat.S_ISBLK(os.stat(path).st_mode):
        return
    if not os.path.exists(path) or os.path.getsize(path) < size:
        print(
            f"quick: writing {size >> 20} MiB test file {path} (reads must hit real data, not holes)",
            file=sys.stderr,
        )
        layout_file(FilePlan(path, False, size, 0, size, extend=True), LayoutSpec())


def _override(jobs: list[JobDef], runtime_s: float, ramp_s: float) -> None:
    for job in jobs:
        job.values["runtime"] = int(runtime_s * 1e9)
        job.values["ramp_time"] = int(ramp_s * 1e9)
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
    ap.add_argument("--size", default="1g", help="size of the file target to create (default 1g)")
    ap.add_argument("--runtime", type=float, default=10.0, help="measured seconds per workload (default 10)")
    ap.add_argument("--ramp-time", type=float, default=2.0, help="warm-up seconds per workload (default 2)")
    ap.add_argument("--only", choices=[w for w, _ in WORKLOADS], action="append", help="run only these")
    opts = ap.parse_args(list(argv))

    target = os.path.abspath(opts.target)
    is_block = os.path.exists(target) and stat.S_ISBLK(os.stat(target).st_mode)
    if is_block:
        # iolab quick only reads a device except in the mixed workload, which writes: refuse that here
        print(
            f"quick: {target} is a block device; the mixed workload writes to it, so it is skipped",
            file=sys.stderr,
        )
    _prepare_target(target, _parse_size(opts.size))
    env = dict(os.environ, IOLAB_TARGET=target)
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
            print(f"quick: {title}: {opts.ramp_time:g} s ramp + {opts.runtime:g} s ...", file=sys.stderr)
            run, code = execute(jobs, RunOptions(output_format="normal", eta="auto"))
        except (JobFileError, PlanError) as exc:
            print(f"iolab: {exc}", file=sys.stderr)
            return 1
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
        if code == 130:
            break
    print(f"\ntarget: {target}  (direct=1, psync; {opts.ramp_time:g} s ramp, {opts.runtime:g} s measured)")
    print(f"{'workload':34} {'dir':5} {'IOPS':>10} {'bandwidth':>12} {'clat p50':>10} {'clat p99':>10}")
    for title, d, iops, bw, p50, p99 in rows:
        mib = bw / (1 << 20)
        print(f"{title:34} {d:5} {iops:10.0f} {mib:8.1f}MiB/s {_fmt_lat(p50):>10} {_fmt_lat(p99):>10}")
    if notes:
        print("\ndoctor:")
        for note in notes:
            print(f"  {note}")
    return status
