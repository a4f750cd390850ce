#!/usr/bin/env python3
"""iolab's mmap engine versus fio's on the same jobs, on a tmpfs file: alternating rounds, medians, ratios.

    python bench/mmap.py                     # 5 rounds of 5 s each (+1 s ramp) per case
    python bench/mmap.py --rounds 3 --runtime 3 --case randread-4k

Both tools get the same fio command line (ioengine=mmap) and report fio JSON. The file lives on a tmpfs
the bench mounts in a temp dir of its own (root; unmounted afterwards) or in --dir: no device is involved,
so the numbers are the engines' own cost per I/O (mapping, copy, accounting), which is what the goal
(iolab >= 1.0x fio) is about. Each round runs both tools back to back, alternating which goes first; the
table shows the medians, their ratio, and the range (min..max) of the per-round ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Case:
    name: str
    args: tuple[str, ...]


CASES = [
    Case("randread-4k", ("--rw=randread", "--bs=4k")),
    Case("randwrite-4k", ("--rw=randwrite", "--bs=4k")),
    Case("read-128k", ("--rw=read", "--bs=128k")),
]


def run_tool(cmd: list[str]) -> dict[str, float]:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr}")
    job = json.loads(proc.stdout)["jobs"][0]
    d = job["read"] if job["read"]["io_bytes"] else job["write"]
    pct = d["clat_ns"].get("percentile", {})
    return {
        "iops": float(d["iops"]),
        "MiB/s": float(d["bw_bytes"]) / (1 << 20),
        "p50_ns": float(pct.get("50.000000", 0)),
        "p99_ns": float(pct.get("99.000000", 0)),
    }


@contextlib.contextmanager
def bench_dir(given: str | None) -> Iterator[Path]:
    if given:
        yield Path(given)
        return
    if os.geteuid() != 0:
        raise SystemExit("bench/mmap.py mounts a tmpfs of its own: run it as root, or give --dir")
    top = Path(tempfile.mkdtemp(prefix="iolab-bench-mmap-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2g,mode=0700", "tmpfs", str(top)], check=True)
    try:
        yield top
    finally:
        subprocess.run(["umount", str(top)], check=False)
        top.rmdir()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runtime", type=int, default=5, help="seconds per run (plus 1 s ramp)")
    ap.add_argument("--size", default="512m", help="file size")
    ap.add_argument("--dir", help="directory for the file (default: a tmpfs mounted for the bench)")
    ap.add_argument("--case", action="append", help="run only these cases")
    ap.add_argument("--iolab", default=shutil.which("iolab") or "iolab")
    ap.add_argument("--json", help="also write all samples to this file")
    opts = ap.parse_args()
    cases = [c for c in CASES if not opts.case or c.name in opts.case]

    samples: dict[str, dict[str, list[dict[str, float]]]] = {}
    with bench_dir(opts.dir) as where:
        target = where / "iolab-bench-mmap.dat"
        # laid out once, by fio, so neither tool lays anything out in a round
        subprocess.run(
            ["fio", "--name=layout", f"--filename={target}", f"--size={opts.size}", "--rw=write", "--bs=1m",
             "--output=/dev/null"],
            check=True,
        )  # fmt: skip
        try:
            for case in cases:
                common = [
                    f"--name={case.name}",
                    f"--filename={target}",
                    f"--size={opts.size}",
                    "--ioengine=mmap",
                    *case.args,
                    "--time_based",
                    f"--runtime={opts.runtime}",
                    "--ramp_time=1",
                    "--output-format=json",
                ]
                tools = {"fio": ["fio", *common], "iolab": [opts.iolab, "run", *common]}
                per = samples.setdefault(case.name, {"fio": [], "iolab": []})
                for rnd in range(opts.rounds):
                    # alternate which tool goes first so drift on a noisy machine hits both alike
                    for tool in ("fio", "iolab") if rnd % 2 == 0 else ("iolab", "fio"):
                        per[tool].append(run_tool(tools[tool]))
                        print(
                            f"{case.name} round {rnd + 1} {tool}: {per[tool][-1]['iops']:.0f} IOPS",
                            file=sys.stderr,
                        )
        finally:
            target.unlink(missing_ok=True)

    print(f"{'case':14} {'metric':8} {'fio':>12} {'iolab':>12} {'iolab/fio':>10} {'per round':>14}")
    for name, per in samples.items():
        for metric in ("iops", "MiB/s", "p50_ns", "p99_ns"):
            f = statistics.median(s[metric] for s in per["fio"])
            i = statistics.median(s[metric] for s in per["iolab"])
            ratio = i / f if f else float("nan")
            pairs = [
                a[metric] / b[metric] for a, b in zip(per["iolab"], per["fio"], strict=True) if b[metric]
            ]
            span = f"{min(pairs):.3f}..{max(pairs):.3f}" if pairs else "-"
            print(f"{name:14} {metric:8} {f:12.1f} {i:12.1f} {ratio:10.3f} {span:>14}")
    print(
        f"(medians of {opts.rounds} alternating rounds, {opts.runtime} s each; per round = min..max of the "
        "iolab/fio ratios of the rounds; for latencies lower is better)"
    )
    if opts.json:
        Path(opts.json).write_text(json.dumps(samples, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
