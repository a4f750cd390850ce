#!/usr/bin/env python3
"""Completion polling: QD1 latency and CPU time of poll=off/on/adaptive against fio's best engine.

    python bench/polling.py                          # all targets, 5 rounds of 5 s (+1 s ramp) each
    python bench/polling.py --targets loop --rounds 3 --runtime 3
    python bench/polling.py --targets file,loop --max-ns 262144,1048576 --rate 0
    python bench/polling.py --cpus 1                 # pin both tools' jobs to CPU 1 (cpus_allowed)

Two parts, on each target:

1. QD1 4k random reads as fast as possible. fio runs psync, libaio and io_uring (its defaults); its best
   engine is the one with the lowest median p50. iolab runs libaio and io_uring with poll=off, on and
   adaptive, adaptive with the default poll_max_ns (32768, QEMU's iothread default) and with each --max-ns.
   Latency is the total per-I/O latency (fio's lat_ns: submission plus completion), p50 and p99.
2. The same at rate_iops=--rate (1000), where the device is idle most of the time: polling cannot help
   there and must not burn CPU. These runs last --rate-runtime seconds (10 by default: the CPU time is
   small, a longer run measures it better). (iolab measures latency from each I/O's scheduled time there,
   fio from its issue.)

CPU: for iolab the job thread's own CPU time over the measured phase (usr + sys from the job result,
"iolab.cpu"; the kernel keeps it to the nanosecond), in percent of the runtime and in microseconds per I/O;
for fio its job process's usr+sys (fio reports nothing finer). The poll-vs-off CPU ratios are given both
as the ratio of the medians and as the median of the per-round ratios (each round runs every variant once,
back to back, so that ratio cancels most of the drift of a shared machine).

Targets (each is described in the report; loop targets and zram need root; everything created is removed):
  file      an O_DIRECT file in --dir: the machine's disk through the file system
  loop      a loop device with direct I/O (losetup --direct-io=on) over a file in --dir: the same disk,
            completions come from the loop worker thread: the honest "device" target
  loop-ram  a loop device over a file in /dev/shm (tmpfs): a RAM target with an asynchronous completion
            from the loop worker (fast: tens of microseconds)
  zram      a zram device of its own (RAM, compressed): libaio completes inside io_submit, io_uring
            punts to io-wq workers
The machine is shared: each round runs every variant once, in a rotated order, and the tables show medians
over the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchlib import zram_add, zram_remove


@dataclass(frozen=True)
class Variant:
    tool: str  # "fio" | "iolab"
    engine: str
    poll: str = ""  # iolab only
    max_ns: int = 0  # iolab: poll_max_ns (0: the default, 32768 as QEMU's iothread)

    @property
    def label(self) -> str:
        text = f"{self.tool} {self.engine}" + (f" poll={self.poll}" if self.poll else "")
        return text + (f" max={self.max_ns // 1024}k" if self.max_ns else "")

    @property
    def mode(self) -> str:
        """The poll part of the label ("poll=adaptive max=256k")."""
        return self.label.split(" ", 2)[2]


FIO_VARIANTS = [Variant("fio", e) for e in ("psync", "libaio", "io_uring")]


def iolab_variants(max_ns: list[int]) -> list[Variant]:
    modes = [("off", 0), ("on", 0), ("adaptive", 0), *(("adaptive", m) for m in max_ns)]
    return [Variant("iolab", e, p, m) for e in ("libaio", "io_uring") for p, m in modes]


def run(cmd: list[str]) -> dict[str, float]:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr}")
    job = json.loads(proc.stdout)["jobs"][0]
    rd = job["read"]
    pct = rd["lat_ns"].get("percentile", {})
    out = {
        "iops": float(rd["iops"]),
        "p50_us": float(pct.get("50.000000", 0)) / 1000,
        "p99_us": float(pct.get("99.000000", 0)) / 1000,
        "cpu": float(job["usr_cpu"]) + float(job["sys_cpu"]),
    }
    extra: dict[str, Any] = job.get("iolab", {})
    cpu = extra.get("cpu")
    if cpu and cpu.get("runtime_ns"):
        # the job thread's own CPU time (ns), not fio's percentages rounded for display
        out["cpu"] = 100.0 * (int(cpu["usr_ns"]) + int(cpu["sys_ns"])) / int(cpu["runtime_ns"])
    ios = int(rd["total_ios"])
    runtime_s = float(rd["runtime"]) / 1000 if rd.get("runtime") else 0.0
    if ios and runtime_s:
        out["cpu_us_per_io"] = out["cpu"] / 100 * runtime_s * 1e6 / ios
    poll = extra.get("poll")
    if poll:
        waits = max(int(poll["waits"]), 1)
        out["hit_pct"] = 100.0 * int(poll["hits"]) / waits
        out["window_ns"] = float(poll["window_mean_ns"])
    return out


def command(
    v: Variant, target: str, opts: argparse.Namespace, rate: int | None, size: str | None, runtime: int
) -> list[str]:
    args = [
        f"--name=poll-{v.engine}",
        f"--filename={target}",
        "--rw=randread",
        "--bs=4k",
        "--direct=1",
        f"--ioengine={v.engine}",
        "--iodepth=1",
        "--time_based",
        f"--runtime={runtime}",
        "--ramp_time=1",
        "--lat_percentiles=1",
        "--output-format=json",
    ]
    if size:
        args.append(f"--size={size}")
    if rate:
        args.append(f"--rate_iops={rate}")
    if opts.cpus is not None:
        args.append(f"--cpus_allowed={opts.cpus}")
    if v.tool == "fio":
        return ["fio", *args]
    return [
        opts.iolab,
        "run",
        *args,
        f"--poll={v.poll}",
        *([f"--poll_max_ns={v.max_ns}"] if v.max_ns else []),
    ]


# --------------------------------------------------------------------------------------------- targets
Setup = tuple[str, str | None, list[Callable[[], object]], str]  # device or file, size, cleanup, description


def _command(cmd: list[str]) -> Callable[[], object]:
    return lambda: subprocess.run(cmd, check=False)


def _fs_of(path: str) -> str:
    df = ["df", "--output=fstype,source", path]
    out = subprocess.run(df, capture_output=True, text=True).stdout.split()
    return f"{out[-2]} on {out[-1]}" if len(out) >= 4 else "unknown file system"


def setup_file(opts: argparse.Namespace) -> Setup:
    path = os.path.join(opts.dir, "iolab-poll-bench.dat")
    subprocess.run(["fio", "--name=layout", f"--filename={path}", "--size=1g", "--rw=write", "--bs=1m",
                    "--direct=1", "--output=/dev/null"], check=True)  # fmt: skip
    what = f"disk: O_DIRECT file in {opts.dir} ({_fs_of(opts.dir)})"
    return path, "1g", [_command(["rm", "-f", path])], what


def _loop(backing: str, size: str, direct: bool) -> tuple[str, list[Callable[[], object]]]:
    subprocess.run(["truncate", "-s", size, backing], check=True)
    cmd = ["losetup", "--find", "--show", *(["--direct-io=on"] if direct else []), backing]
    dev = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()
    subprocess.run(["fio", "--name=fill", f"--filename={dev}", "--rw=write", "--bs=1m", "--direct=1",
                    "--output=/dev/null"], check=True)  # fmt: skip
    return dev, [_command(["losetup", "-d", dev]), _command(["rm", "-f", backing])]


def _loop_dio(dev: str) -> str:
    try:
        return (Path("/sys/block") / os.path.basename(dev) / "loop" / "dio").read_text().strip()
    except OSError:
        return "?"


def setup_loop(opts: argparse.Namespace) -> Setup:
    dev, cleanup = _loop(os.path.join(opts.dir, "iolab-poll-bench.img"), "1G", direct=True)
    what = f"disk via loop: {dev} over a file in {opts.dir} ({_fs_of(opts.dir)}), loop dio={_loop_dio(dev)}"
    return dev, None, cleanup, what


def setup_loop_ram(opts: argparse.Namespace) -> Setup:
    dev, cleanup = _loop("/dev/shm/iolab-poll-bench.img", "256M", direct=False)
    return dev, None, cleanup, f"RAM via loop: {dev} over a file in /dev/shm ({_fs_of('/dev/shm')})"


def setup_zram(opts: argparse.Namespace) -> Setup:
    zram = zram_add("512M")
    if zram is None:
        raise SystemExit("zram: needs root and a free zram device (modprobe zram)")
    return zram[0], None, [lambda: zram_remove(*zram)], f"RAM, compressed: {zram[0]} (zram)"


SETUPS = {"file": setup_file, "loop": setup_loop, "loop-ram": setup_loop_ram, "zram": setup_zram}


# --------------------------------------------------------------------------------------------- main
def measure(
    variants: list[Variant],
    target: str,
    size: str | None,
    opts: argparse.Namespace,
    rate: int | None,
    runtime: int,
) -> dict[Variant, list[dict[str, float]]]:
    res: dict[Variant, list[dict[str, float]]] = {v: [] for v in variants}
    for rnd in range(opts.rounds):
        k = rnd % len(variants)
        for v in variants[k:] + variants[:k]:  # rotate the order from round to round
            r = run(command(v, target, opts, rate, size, runtime))
            res[v].append(r)
            print(
                f"  round {rnd + 1} {v.label}: p50 {r['p50_us']:.1f} us, cpu {r['cpu']:.1f}%", file=sys.stderr
            )
    return res


def med(samples: list[dict[str, float]], key: str) -> float:
    vals = [s[key] for s in samples if key in s]
    return statistics.median(vals) if vals else float("nan")


def paired(a: list[dict[str, float]], b: list[dict[str, float]], key: str) -> float:
    """Median over the rounds of a[key] / b[key] (both measured in the same round)."""
    ratios = [x[key] / y[key] for x, y in zip(a, b, strict=True) if y.get(key)]
    return statistics.median(ratios) if ratios else float("nan")


def table(title: str, res: dict[Variant, list[dict[str, float]]]) -> list[str]:
    lines = [
        title,
        f"  {'variant':38} {'IOPS':>9} {'p50 us':>8} {'p99 us':>8} {'cpu %':>7} {'us/io':>7} {'hits %':>7}",
    ]
    for v, samples in res.items():
        hits = med(samples, "hit_pct")
        hit_text = "" if hits != hits else f"{hits:7.1f}"  # NaN: fio has no poll counters
        lines.append(
            f"  {v.label:38} {med(samples, 'iops'):9.0f} {med(samples, 'p50_us'):8.1f} "
            f"{med(samples, 'p99_us'):8.1f} {med(samples, 'cpu'):7.2f} {med(samples, 'cpu_us_per_io'):7.2f} "
            f"{hit_text}"
        )
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runtime", type=int, default=5, help="seconds per QD1 run (plus 1 s ramp)")
    ap.add_argument("--rate-runtime", type=int, default=10, help="seconds per rate-limited run (+1 s ramp)")
    ap.add_argument("--dir", default="/var/tmp", help="directory for the O_DIRECT file and loop backing file")
    ap.add_argument("--targets", default="file,loop,loop-ram,zram", help=f"of: {', '.join(SETUPS)}")
    ap.add_argument("--max-ns", default="262144", help="extra poll_max_ns values for poll=adaptive (a,b,...)")
    ap.add_argument("--cpus", help="cpus_allowed for both tools' jobs (e.g. 1)")
    ap.add_argument("--rate", type=int, default=1000, help="IOPS of the rate-limited part (0: skip it)")
    ap.add_argument("--no-fast", action="store_true", help="skip the as-fast-as-possible part")
    ap.add_argument("--iolab", default=shutil.which("iolab") or "iolab")
    ap.add_argument("--json", help="also write every sample to this file")
    opts = ap.parse_args()
    max_ns = [int(x) for x in opts.max_ns.split(",") if x]
    iolab = iolab_variants(max_ns)

    report: list[str] = []
    dump: dict[str, Any] = {}
    for name in opts.targets.split(","):
        if name not in SETUPS:
            raise SystemExit(f"unknown target {name!r} (known: {', '.join(SETUPS)})")
        if name != "file" and os.geteuid() != 0:
            print(f"skipping {name}: needs root", file=sys.stderr)
            continue
        target, size, cleanup, what = SETUPS[name](opts)
        dump[name] = {"target": target, "what": what}
        try:
            print(f"{name}: {target}: {what}", file=sys.stderr)
            report.append(f"== {name}: {what}")
            if not opts.no_fast:
                fast = measure(FIO_VARIANTS + iolab, target, size, opts, None, opts.runtime)
                report += table(f"{name} ({target}): QD1 4k randread, as fast as possible", fast)
                best = min(FIO_VARIANTS, key=lambda v: med(fast[v], "p50_us"))
                fio_p50 = med(fast[best], "p50_us")
                for engine in ("libaio", "io_uring"):
                    mine = [v for v in iolab if v.engine == engine]
                    ratios = [f"{v.mode}: {med(fast[v], 'p50_us') / fio_p50:.3f}" for v in mine]
                    report.append(f"  p50 iolab {engine} / fio's best ({best.engine}): " + ", ".join(ratios))
                dump[name]["fast"] = {v.label: s for v, s in fast.items()}
            if opts.rate:
                slow = measure(FIO_VARIANTS[:1] + iolab, target, size, opts, opts.rate, opts.rate_runtime)
                report += table(f"{name} ({target}): QD1 4k randread at {opts.rate} IOPS", slow)
                for engine in ("libaio", "io_uring"):
                    off = slow[Variant("iolab", engine, "off")]
                    ratios = []
                    for v in iolab:
                        if v.engine == engine and v.poll != "off":
                            ratios.append(
                                f"{v.mode}: {med(slow[v], 'cpu') / med(off, 'cpu'):.3f}"
                                f" (paired {paired(slow[v], off, 'cpu'):.3f})"
                            )
                    report.append(f"  cpu iolab {engine} / poll=off: " + ", ".join(ratios))
                dump[name]["rate"] = {v.label: s for v, s in slow.items()}
            report.append("")
        finally:
            for undo in cleanup:
                undo()
    print("\n".join(report))
    print(
        f"(medians of {opts.rounds} rounds of {opts.runtime} s, rate-limited {opts.rate_runtime} s; "
        "lat = submission + completion; cpu = usr+sys % of the runtime: iolab's job thread, fio's job "
        "process; "
        "us/io = CPU microseconds per I/O; paired = median of the per-round ratios)"
    )
    if opts.json:
        Path(opts.json).write_text(json.dumps(dump, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
