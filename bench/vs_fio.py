#!/usr/bin/env python3
"""iolab versus fio on the same jobs, alternating runs, medians and ratios.

    python bench/vs_fio.py                       # all cases, 5 rounds of 5 s each
    python bench/vs_fio.py --rounds 3 --runtime 3 --case zram-randread-4k-qd32-libaio
    python bench/vs_fio.py --engines libaio,io_uring --depths 32

Both tools get the same fio command line and report fio JSON; the table shows the median IOPS and clat
p50/p99 of each tool and iolab/fio ratios. The zram cases need root: they use a zram device of their own
(hot-added through /sys/class/zram-control, 1 GiB, filled with incompressible data, removed afterwards),
or /dev/zram0 if hot-adding is impossible and zram0 is unused; the file cases use an O_DIRECT file in
--dir (default /var/tmp), laid out by fio once before the first round. The machine is shared and noisy:
each round runs both tools back to back, alternating which goes first, and the table reports medians.
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

from benchlib import job_summary, zram_add, zram_remove


@dataclass(frozen=True)
class Case:
    name: str
    target: str  # "zram" or "file"
    args: tuple[str, ...]
    what: str


def _queue_cases() -> list[Case]:
    out: list[Case] = []
    for target, what in (("zram", "CPU-bound"), ("file", "device-bound")):
        for engine in ("libaio", "io_uring"):
            for depth in (1, 32):
                out.append(
                    Case(
                        f"{target}-randread-4k-qd{depth}-{engine}",
                        target,
                        (
                            "--rw=randread",
                            "--bs=4k",
                            f"--ioengine={engine}",
                            f"--iodepth={depth}",
                            "--direct=1",
                        ),
                        f"{what}: {engine} at queue depth {depth}",
                    )
                )
    return out


CASES = [
    Case(
        "zram-randread-4k-qd1",
        "zram",
        ("--rw=randread", "--bs=4k", "--ioengine=psync", "--iodepth=1", "--direct=1"),
        "CPU-bound: per-I/O overhead of the engine",
    ),
    Case(
        "file-randread-4k-qd1",
        "file",
        ("--rw=randread", "--bs=4k", "--ioengine=psync", "--iodepth=1", "--direct=1"),
        "device-bound: O_DIRECT file on the machine's disk",
    ),
    Case(
        "file-read-64k-qd1",
        "file",
        ("--rw=read", "--bs=64k", "--ioengine=psync", "--iodepth=1", "--direct=1"),
        "device-bound: sequential O_DIRECT reads",
    ),
    *_queue_cases(),
]


def run_tool(cmd: list[str]) -> dict[str, float]:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr}")
    data = json.loads(proc.stdout)
    return job_summary(data)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runtime", type=int, default=5, help="seconds per run (plus 1 s ramp)")
    ap.add_argument("--dir", default="/var/tmp", help="directory for the O_DIRECT test file")
    ap.add_argument("--size", default="1g", help="file target size")
    ap.add_argument("--case", action="append", help="run only these cases")
    ap.add_argument("--engines", help="run only cases of these ioengines (comma separated)")
    ap.add_argument("--depths", help="run only cases at these iodepths (comma separated)")
    ap.add_argument("--iolab", default=shutil.which("iolab") or "iolab")
    ap.add_argument("--json", help="also write all samples to this file")
    opts = ap.parse_args()

    cases = [c for c in CASES if not opts.case or c.name in opts.case]
    if opts.engines:
        cases = [c for c in cases if any(f"--ioengine={e}" in c.args for e in opts.engines.split(","))]
    if opts.depths:
        cases = [c for c in cases if any(f"--iodepth={d}" in c.args for d in opts.depths.split(","))]
    file_target = os.path.join(opts.dir, "iolab-bench.dat")
    zsetup = zram_add("1G") if any(c.target == "zram" for c in cases) else None
    zram = zsetup[0] if zsetup else None
    if any(c.target == "file" for c in cases):
        subprocess.run(
            [
                "fio",
                "--name=layout",
                f"--filename={file_target}",
                f"--size={opts.size}",
                "--rw=write",
                "--bs=1m",
                "--direct=1",
                "--output=/dev/null",
            ],
            check=True,
        )
    samples: dict[str, dict[str, list[dict[str, float]]]] = {}
    try:
        for case in cases:
            target = zram if case.target == "zram" else file_target
            if target is None:
                print(f"skipping {case.name}: needs root and a free /dev/zram0", file=sys.stderr)
                continue
            common = [
                f"--name={case.name}",
                f"--filename={target}",
                *case.args,
                "--time_based",
                f"--runtime={opts.runtime}",
                "--ramp_time=1",
                "--output-format=json",
            ]
            if case.target == "file":
                common.append(f"--size={opts.size}")
            tools = {"fio": ["fio", *common], "iolab": [opts.iolab, "run", *common]}
            per = samples.setdefault(case.name, {"fio": [], "iolab": []})
            for rnd in range(opts.rounds):
                # alternate which tool goes first so drift on a noisy machine hits both alike
                order = ["fio", "iolab"] if rnd % 2 == 0 else ["iolab", "fio"]
                for tool in order:
                    per[tool].append(run_tool(tools[tool]))
                    print(
                        f"{case.name} round {rnd + 1} {tool}: {per[tool][-1]['iops']:.0f} IOPS",
                        file=sys.stderr,
                    )
    finally:
        if zsetup:
            zram_remove(*zsetup)
        if os.path.exists(file_target):
            os.unlink(file_target)

    print(f"{'case':32} {'metric':8} {'fio':>12} {'iolab':>12} {'iolab/fio':>10} {'paired':>8}")
    for name, per in samples.items():
        for metric in ("iops", "p50_us", "p99_us", "cpu"):
            f = statistics.median(s[metric] for s in per["fio"])
            i = statistics.median(s[metric] for s in per["iolab"])
            ratio = i / f if f else float("nan")
            # the same ratio taken within each round (both tools back to back), then the median
            both = zip(per["iolab"], per["fio"], strict=True)
            pairs = [a[metric] / b[metric] for a, b in both if b[metric]]
            paired = statistics.median(pairs) if pairs else float("nan")
            print(f"{name:32} {metric:8} {f:12.1f} {i:12.1f} {ratio:10.3f} {paired:8.3f}")
    print(
        f"(medians of {opts.rounds} alternating rounds, {opts.runtime} s each; cpu = usr+sys %; "
        "paired = median of the per-round iolab/fio ratios)"
    )
    if opts.json:
        Path(opts.json).write_text(json.dumps(samples, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
