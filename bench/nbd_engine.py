#!/usr/bin/env python3
"""iolab's nbd engine against fio's (libnbd), on the same nbdkit server, alternating runs, medians, ratios.

    python bench/nbd_engine.py [--rounds 5] [--runtime 5] [--size 256M] [--threads N]

One nbdkit (memory plugin, --threads N, unix socket) serves both clients for the whole benchmark; the
export is written once in full before the first round so reads find data. Workloads: 4k randread and
randwrite at QD1 and QD16. Each round runs both tools back to back on the same job (same fio command line,
fio JSON), alternating which goes first, so drift on a shared machine hits both alike. The table gives the
median IOPS and clat p50/p99 of each, iolab/fio of the medians, and the min..max of the per-round ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from benchlib import job_summary

WORKLOADS = [("randread", 1), ("randread", 16), ("randwrite", 1), ("randwrite", 16)]


@contextlib.contextmanager
def nbdkit(size: str, threads: int) -> Iterator[str]:
    d = Path(tempfile.mkdtemp(prefix="nbdeng-bench-", dir="/tmp"))
    sock = d / "s"
    cmd = ["nbdkit", "-f", "-U", str(sock), "--threads", str(threads), "memory", f"size={size}"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while not sock.exists():
            if p.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("nbdkit did not start")
            time.sleep(0.05)
        yield f"nbd+unix:///?socket={sock}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)
        shutil.rmtree(d, ignore_errors=True)


def run_tool(cmd: list[str]) -> dict[str, float]:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    # fio's nbd engine prints "fio: connected to NBD server" on stdout before the report
    data = json.loads(proc.stdout[proc.stdout.index("{") :])
    if data["jobs"][0]["error"]:
        raise SystemExit(f"job error {data['jobs'][0]['error']}: {' '.join(cmd)}")
    return job_summary(data)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runtime", type=int, default=5, help="seconds per run (plus 1 s ramp)")
    ap.add_argument("--size", default="256M", help="export size")
    ap.add_argument("--threads", type=int, default=16, help="nbdkit worker threads")
    ap.add_argument("--iolab", default=shutil.which("iolab") or "iolab")
    ap.add_argument("--json", help="also write all samples to this file")
    opts = ap.parse_args()

    samples: dict[str, dict[str, list[dict[str, float]]]] = {}
    with nbdkit(opts.size, opts.threads) as uri:
        subprocess.run(
            ["fio", "--name=fill", "--ioengine=nbd", f"--uri={uri}", "--rw=write", "--bs=1m", "--iodepth=4",
             "--output=/dev/null"],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        for rw, depth in WORKLOADS:
            name = f"{rw}-4k-qd{depth}"
            common = [
                f"--name={name}",
                "--ioengine=nbd",
                f"--uri={uri}",
                f"--rw={rw}",
                "--bs=4k",
                f"--iodepth={depth}",
                "--time_based",
                f"--runtime={opts.runtime}",
                "--ramp_time=1",
                "--output-format=json",
            ]
            # writing over a memory export iolab just filled: no data of anyone's (the gate reads it first)
            tools = {"fio": ["fio", *common], "iolab": [opts.iolab, "run", *common, f"--allow-destroy={uri}"]}
            per = samples.setdefault(name, {"fio": [], "iolab": []})
            for rnd in range(opts.rounds):
                order = ["fio", "iolab"] if rnd % 2 == 0 else ["iolab", "fio"]
                for tool in order:
                    per[tool].append(run_tool(tools[tool]))
                    print(f"{name} round {rnd + 1} {tool}: {per[tool][-1]['iops']:.0f} IOPS", file=sys.stderr)

    print(f"{'case':22} {'metric':8} {'fio':>10} {'iolab':>10} {'iolab/fio':>10} {'per round':>14}")
    for name, per in samples.items():
        for metric in ("iops", "p50_us", "p99_us", "cpu"):
            f = statistics.median(s[metric] for s in per["fio"])
            i = statistics.median(s[metric] for s in per["iolab"])
            ratio = i / f if f else float("nan")
            both = zip(per["iolab"], per["fio"], strict=True)
            pairs = [a[metric] / b[metric] for a, b in both if b[metric]]
            spread = f"{min(pairs):.2f}..{max(pairs):.2f}" if pairs else "-"
            print(f"{name:22} {metric:8} {f:10.1f} {i:10.1f} {ratio:10.3f} {spread:>14}")
    print(
        f"(medians of {opts.rounds} alternating rounds, {opts.runtime} s each; cpu = usr+sys %; "
        "per round = min..max of the iolab/fio ratios of the rounds)"
    )
    if opts.json:
        Path(opts.json).write_text(json.dumps(samples, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
