#!/usr/bin/env python3
"""Completion polling: QD1 latency and CPU time of poll=off/on/adaptive against fio's best engine.

    python bench/polling.py                          # all targets, 5 rounds of 5 s (+1 s ramp) each
    python bench/polling.py --targets loop --rounds 3 --runtime 3
    python bench/polling.py --cpus 1                 # pin both tools' jobs to CPU 1 (cpus_allowed)

Two parts, on each target:

1. QD1 4k random reads as fast as possible. fio runs psync, libaio and io_uring (its defaults); its best
   engine is the one with the lowest median p50. iolab runs libaio and io_uring with poll=off, on and
   adaptive. Latency is the total per-I/O latency (fio's lat_ns: submission plus completion), p50 and p99;
   CPU is the job's usr+sys time over the measured phase, in percent of the runtime.
2. The same at rate_iops=1000, where the device is idle most of the time: polling cannot help there and
   must not burn CPU. (iolab measures latency from each I/O's scheduled time there, fio from its issue.)

Targets: ``file`` (an O_DIRECT file in --dir), ``loop`` (a loop device over a file in /dev/shm: completions
come from the loop worker thread, a fast device with a real asynchronous completion), ``zram`` (a zram
device of its own: libaio completes inside io_submit, io_uring punts to io-wq workers). loop and zram need
root; everything created is removed afterwards. The machine is shared: each round runs every variant once,
in a rotated order, and the tables show medians over the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ZRAM_CONTROL = Path("/sys/class/zram-control")


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


FIO_VARIANTS = [Variant("fio", e) for e in ("psync", "libaio", "io_uring")]
IOLAB_VARIANTS = [
    Variant("iolab", e, p, m)
    for e in ("libaio", "io_uring")
    for p, m in (("off", 0), ("on", 0), ("adaptive", 0), ("adaptive", 262144))
]


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
    poll = extra.get("poll")
    if poll:
        waits = max(int(poll["waits"]), 1)
        out["hit_pct"] = 100.0 * int(poll["hits"]) / waits
        out["window_ns"] = float(poll["window_mean_ns"])
    return out


def command(
    v: Variant, target: str, opts: argparse.Namespace, rate: int | None, size: str | None
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
        f"--runtime={opts.runtime}",
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
def setup_file(opts: argparse.Namespace) -> tuple[str, str | None, list[list[str]]]:
    path = os.path.join(opts.dir, "iolab-poll-bench.dat")
    subprocess.run(["fio", "--name=layout", f"--filename={path}", "--size=1g", "--rw=write", "--bs=1m",
                    "--direct=1", "--output=/dev/null"], check=True)  # fmt: skip
    return path, "1g", [["rm", "-f", path]]


def setup_loop(opts: argparse.Namespace) -> tuple[str, str | None, list[list[str]]]:
    backing = "/dev/shm/iolab-poll-bench.img"
    subprocess.run(["truncate", "-s", "256M", backing], check=True)
    dev = subprocess.run(["losetup", "--find", "--show", backing], check=True, capture_output=True,
                         text=True).stdout.strip()  # fmt: skip
    subprocess.run(["fio", "--name=fill", f"--filename={dev}", "--rw=write", "--bs=1m", "--direct=1",
                    "--output=/dev/null"], check=True)  # fmt: skip
    return dev, None, [["losetup", "-d", dev], ["rm", "-f", backing]]


def setup_zram(opts: argparse.Namespace) -> tuple[str, str | None, list[list[str]]]:
    num = int((ZRAM_CONTROL / "hot_add").read_text())
    sysfs = Path(f"/sys/block/zram{num}")
    (sysfs / "disksize").write_text("512M")
    dev = f"/dev/zram{num}"
    subprocess.run(["fio", "--name=fill", f"--filename={dev}", "--rw=write", "--bs=1m", "--direct=1",
                    "--output=/dev/null"], check=True)  # fmt: skip
    return dev, None, [["sh", "-c", f"echo 1 > {sysfs}/reset && echo {num} > {ZRAM_CONTROL}/hot_remove"]]


SETUPS = {"file": setup_file, "loop": setup_loop, "zram": setup_zram}


# --------------------------------------------------------------------------------------------- main
def measure(
    variants: list[Variant], target: str, size: str | None, opts: argparse.Namespace, rate: int | None
) -> dict[Variant, list[dict[str, float]]]:
    res: dict[Variant, list[dict[str, float]]] = {v: [] for v in variants}
    for rnd in range(opts.rounds):
        k = rnd % len(variants)
        for v in variants[k:] + variants[:k]:  # rotate the order from round to round
            r = run(command(v, target, opts, rate, size))
            res[v].append(r)
            print(
                f"  round {rnd + 1} {v.label}: p50 {r['p50_us']:.1f} us, cpu {r['cpu']:.1f}%", file=sys.stderr
            )
    return res


def med(samples: list[dict[str, float]], key: str) -> float:
    vals = [s[key] for s in samples if key in s]
    return statistics.median(vals) if vals else float("nan")


def table(title: str, res: dict[Variant, list[dict[str, float]]]) -> list[str]:
    lines = [title, f"  {'variant':38} {'IOPS':>9} {'p50 us':>8} {'p99 us':>8} {'cpu %':>7} {'hits %':>7}"]
    for v, samples in res.items():
        hits = med(samples, "hit_pct")
        hit_text = "" if hits != hits else f"{hits:7.1f}"  # NaN: fio has no poll counters
        lines.append(
            f"  {v.label:38} {med(samples, 'iops'):9.0f} {med(samples, 'p50_us'):8.1f} "
            f"{med(samples, 'p99_us'):8.1f} {med(samples, 'cpu'):7.2f} {hit_text}"
        )
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runtime", type=int, default=5, help="seconds per run (plus 1 s ramp)")
    ap.add_argument("--dir", default="/var/tmp", help="directory for the O_DIRECT file")
    ap.add_argument("--targets", default="file,loop,zram")
    ap.add_argument("--cpus", help="cpus_allowed for both tools' jobs (e.g. 1)")
    ap.add_argument("--rate", type=int, default=1000, help="IOPS of the rate-limited part (0: skip it)")
    ap.add_argument("--iolab", default=shutil.which("iolab") or "iolab")
    ap.add_argument("--json", help="also write every sample to this file")
    opts = ap.parse_args()

    report: list[str] = []
    dump: dict[str, Any] = {}
    for name in opts.targets.split(","):
        if name != "file" and os.geteuid() != 0:
            print(f"skipping {name}: needs root", file=sys.stderr)
            continue
        target, size, cleanup = SETUPS[name](opts)
        try:
            print(f"{name}: {target}", file=sys.stderr)
            fast = measure(FIO_VARIANTS + IOLAB_VARIANTS, target, size, opts, None)
            report += table(f"{name} ({target}): QD1 4k randread, as fast as possible", fast)
            best = min(FIO_VARIANTS, key=lambda v: med(fast[v], "p50_us"))
            fio_p50 = med(fast[best], "p50_us")
            for engine in ("libaio", "io_uring"):
                ratios = []
                for p, m in (("off", 0), ("on", 0), ("adaptive", 0), ("adaptive", 262144)):
                    v = Variant("iolab", engine, p, m)
                    ratios.append(f"{v.label.split(' ', 2)[2]}: {med(fast[v], 'p50_us') / fio_p50:.3f}")
                report.append(f"  p50 iolab {engine} / fio's best ({best.engine}): " + ", ".join(ratios))
            dump[name] = {"fast": {v.label: s for v, s in fast.items()}}
            if opts.rate:
                slow = measure(FIO_VARIANTS[:1] + IOLAB_VARIANTS, target, size, opts, opts.rate)
                report += table(f"{name} ({target}): QD1 4k randread at {opts.rate} IOPS", slow)
                for engine in ("libaio", "io_uring"):
                    off = med(slow[Variant("iolab", engine, "off")], "cpu")
                    ratios = []
                    for p, m in (("on", 0), ("adaptive", 0), ("adaptive", 262144)):
                        v = Variant("iolab", engine, p, m)
                        ratios.append(f"{v.label.split(' ', 2)[2]}: {med(slow[v], 'cpu') / off:.3f}")
                    report.append(f"  cpu iolab {engine} / poll=off: " + ", ".join(ratios))
                dump[name]["rate"] = {v.label: s for v, s in slow.items()}
            report.append("")
        finally:
            for cmd in cleanup:
                subprocess.run(cmd, check=False)
    print("\n".join(report))
    print(
        f"(medians of {opts.rounds} rounds of {opts.runtime} s; "
        "lat = submission + completion; cpu = usr+sys %)"
    )
    if opts.json:
        Path(opts.json).write_text(json.dumps(dump, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
