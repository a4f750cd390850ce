#!/usr/bin/env python3
"""numjobs as threads or as processes: does running jobs as threads (iolab) cost anything?

    python bench/threads_vs_processes.py            # numjobs 2 and 4, psync and libaio, 5 rounds of 5 s
    python bench/threads_vs_processes.py --rounds 7 --runtime 3 --numjobs 2 --engines libaio

iolab runs every job (numjobs clones and job sections) as a thread of one process; fio forks a process per
job by default and uses threads with --thread. This runs the same job with the three: iolab (threads), fio
(processes) and fio --thread, on a zram device of its own (hot-added, 1 GiB, filled with incompressible
data, removed afterwards; needs root): 4k random reads, numjobs=N, psync (QD1) and libaio (QD --iodepth).
zram is CPU-bound, so any cost of threads (shared mm, lock contention, false sharing) shows up as IOPS.

Reported per case: the median total IOPS over the rounds (sum over the N jobs), the median total CPU (usr+sys
of all jobs, in percent of one CPU), and each variant's IOPS relative to fio's processes, both as the ratio
of the medians and as the median of the per-round ratios. The machine is shared and noisy: each round runs
every variant once, in a rotated order.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from benchlib import zram_add, zram_remove

VARIANTS = ("iolab threads", "fio processes", "fio --thread")


def command(variant: str, dev: str, engine: str, numjobs: int, opts: argparse.Namespace) -> list[str]:
    depth = 1 if engine == "psync" else opts.iodepth
    args = [
        "--name=tvp",
        f"--filename={dev}",
        "--rw=randread",
        "--bs=4k",
        "--direct=1",
        f"--ioengine={engine}",
        f"--iodepth={depth}",
        f"--numjobs={numjobs}",
        "--time_based",
        f"--runtime={opts.runtime}",
        "--ramp_time=1",
        "--output-format=json",
    ]
    if variant == "iolab threads":
        return [opts.iolab, "run", *args]
    if variant == "fio --thread":
        return ["fio", "--thread", *args]
    return ["fio", *args]


def run(cmd: list[str]) -> dict[str, float]:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr}")
    jobs = json.loads(proc.stdout)["jobs"]
    return {
        "iops": sum(float(j["read"]["iops"]) for j in jobs),
        "cpu": sum(float(j["usr_cpu"]) + float(j["sys_cpu"]) for j in jobs),
        "jobs": float(len(jobs)),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runtime", type=int, default=5, help="seconds per run (plus 1 s ramp)")
    ap.add_argument("--numjobs", default="2,4", help="comma separated")
    ap.add_argument("--engines", default="psync,libaio", help="comma separated")
    ap.add_argument("--iodepth", type=int, default=16, help="iodepth of the libaio cases")
    ap.add_argument("--iolab", default=shutil.which("iolab") or "iolab")
    ap.add_argument("--json", help="also write every sample to this file")
    opts = ap.parse_args()

    cases = [(e, int(n)) for e in opts.engines.split(",") for n in opts.numjobs.split(",")]
    samples: dict[str, dict[str, list[dict[str, float]]]] = {}
    zram = zram_add("1G")
    if zram is None:
        raise SystemExit("needs root and a free zram device (modprobe zram)")
    dev = zram[0]
    try:
        for engine, numjobs in cases:
            name = f"{engine} numjobs={numjobs}" + (f" QD{opts.iodepth}" if engine != "psync" else "")
            per = samples.setdefault(name, {v: [] for v in VARIANTS})
            for rnd in range(opts.rounds):
                k = rnd % len(VARIANTS)
                for v in VARIANTS[k:] + VARIANTS[:k]:
                    r = run(command(v, dev, engine, numjobs, opts))
                    if int(r["jobs"]) != numjobs:
                        raise SystemExit(f"{v}: expected {numjobs} jobs in the output, got {int(r['jobs'])}")
                    per[v].append(r)
                    line = f"{name} round {rnd + 1} {v}: {r['iops']:.0f} IOPS, cpu {r['cpu']:.0f}%"
                    print(line, file=sys.stderr)
    finally:
        zram_remove(*zram)

    print(f"{'case':28} {'variant':14} {'IOPS':>10} {'cpu %':>7} {'/fio proc':>10} {'paired':>8}")
    for name, per in samples.items():
        base = per["fio processes"]
        base_iops = statistics.median(s["iops"] for s in base)
        for v in VARIANTS:
            iops = statistics.median(s["iops"] for s in per[v])
            cpu = statistics.median(s["cpu"] for s in per[v])
            pairs = statistics.median(a["iops"] / b["iops"] for a, b in zip(per[v], base, strict=True))
            print(f"{name:28} {v:14} {iops:10.0f} {cpu:7.1f} {iops / base_iops:10.3f} {pairs:8.3f}")
    print(
        f"(medians of {opts.rounds} rotated rounds, {opts.runtime} s each on {dev}; IOPS and cpu summed over "
        "the jobs, cpu in % of one CPU; paired = median of the per-round ratios to fio's processes)"
    )
    if opts.json:
        Path(opts.json).write_text(json.dumps(samples, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
