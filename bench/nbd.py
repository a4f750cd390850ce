#!/usr/bin/env python3
"""fio's nbd engine against `iolab serve`, qemu-nbd and nbdkit's file plugin, on the same image file.

    python bench/nbd.py [--runtime 5] [--rounds 3] [--size 1G] [--dir /var/tmp] [--uvloop]

Every server serves the same file (page cache warm) on a unix socket. Workloads: 4k randread and
randwrite at QD1 and QD16. Runs alternate between servers round by round, so drift (cache, frequency,
noisy neighbours) hits all of them alike; each figure is the median over rounds. Two more iolab
configurations measure blkdebug: an empty rule set, and 100 inactive rules (rules for read_aio and
write_aio in states that are never reached: they are looked at on every request, and never match).
"""

from __future__ import annotations

import argparse
import asyncio
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

WORKLOADS = [("randread", 1), ("randread", 16), ("randwrite", 1), ("randwrite", 16)]


def parse_size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    t = text.strip().lower().rstrip("b").rstrip("i")
    if t and t[-1] in units:
        return int(float(t[:-1]) * units[t[-1]])
    return int(t)


def inactive_rules(n: int) -> str:
    out = []
    for i in range(n):
        event = "read_aio" if i % 2 == 0 else "write_aio"
        out.append(f'[inject-error]\nevent = "{event}"\nstate = "{i + 2}"\nerrno = "5"\n')
    return "\n".join(out)


@contextlib.contextmanager
def server(cmd: list[str], sock: Path, ready_line: bool) -> Iterator[subprocess.Popen[str]]:
    p = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True
    )
    try:
        if ready_line:
            assert p.stdout is not None
            line = p.stdout.readline()
            if not line.startswith('{"ready"'):
                raise RuntimeError(f"{cmd[0]} did not start: {line!r}")
        else:
            deadline = time.monotonic() + 20
            while not sock.exists():  # qemu-nbd and nbdkit have no ready line on stdout
                if p.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{cmd[0]} did not start")
                time.sleep(0.05)
        yield p
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its threads, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fio_run(fio: str, uri: str, rw: str, qd: int, runtime: float, size: int) -> tuple[float, int]:
    cmd = [
        fio,
        "--name=nbd",
        "--ioengine=nbd",
        f"--uri={uri}",
        f"--rw={rw}",
        "--bs=4k",
        f"--iodepth={qd}",
        f"--size={size}",
        f"--runtime={runtime}",
        "--time_based",
        "--randrepeat=0",
        "--output-format=json",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=runtime + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"fio failed on {uri}: {proc.stderr.strip()[-500:]}")
    text = proc.stdout[proc.stdout.index("{") :]  # fio may print notes before the JSON
    job = json.loads(text)["jobs"][0]
    return float(job["read"]["iops"] + job["write"]["iops"]), int(
        job["read"]["total_ios"] + job["write"]["total_ios"]
    )


def filter_overhead(image: Path, requests: int = 300_000, rounds: int = 15) -> dict[str, float]:
    """Nanoseconds per 4k read through the layer stack alone (no socket, no client): the image backend,
    + an empty blkdebug layer, + 100 inactive rules. CPU-bound, so far less noisy than IOPS."""
    from iolab.nbd.blkdebug import Blkdebug, parse_config
    from iolab.nbd.layers import FileBackend, Layer

    def once(top: Layer, n: int) -> float:
        start = time.perf_counter_ns()
        for i in range(n):
            coro = top.pread((i * 4096 * 7919) % (64 << 20), 4096)
            try:
                coro.send(None)
            except StopIteration:
                pass
            else:  # it would have waited (page not cached): not what is measured here
                coro.close()
        return (time.perf_counter_ns() - start) / n

    with open(image, "rb") as f:  # page cache warm, as in the fio runs
        while f.read(1 << 20) and f.tell() < (64 << 20):
            pass

    async def measure() -> dict[str, float]:  # inside a loop, as the server runs them
        backend = FileBackend(str(image))
        try:
            stacks: dict[str, Layer] = {
                "backend": backend,
                "blkdebug": Blkdebug(backend, []),
                "100rules": Blkdebug(backend, parse_config(inactive_rules(100))),
            }
            best = dict.fromkeys(stacks, float("inf"))
            for _ in range(rounds):  # interleaved, the best of each: other load only ever adds
                for name, top in stacks.items():
                    best[name] = min(best[name], once(top, requests // rounds))
            return best
        finally:
            backend.close()

    return asyncio.run(measure())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runtime", type=float, default=5.0, help="seconds per fio run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--size", default="1G", help="image size")
    ap.add_argument("--dir", default="/var/tmp", help="where the image goes (not tmpfs)")
    ap.add_argument("--uvloop", action="store_true", help="also run iolab serve --uvloop")
    ap.add_argument("--json", metavar="FILE", help="write all samples here")
    args = ap.parse_args(argv)

    tools = {name: shutil.which(name) for name in ("fio", "qemu-nbd", "nbdkit")}
    missing = [n for n, p in tools.items() if p is None]
    if missing:
        print(f"missing: {', '.join(missing)} (Debian packages fio, qemu-utils, nbdkit)", file=sys.stderr)
        return 1
    enghelp = subprocess.run([tools["fio"], "--enghelp"], capture_output=True, text=True).stdout  # type: ignore[list-item]
    if "nbd" not in enghelp.split():
        print("this fio has no nbd engine", file=sys.stderr)
        return 1
    size = parse_size(args.size)
    work = Path(tempfile.mkdtemp(prefix="iolab-nbd-bench-", dir=args.dir))
    try:
        image = work / "bench.img"
        with open(image, "wb") as f:  # real data, so reads are not of holes
            chunk = os.urandom(1 << 20)
            for _ in range(size >> 20):
                f.write(chunk)
        (work / "empty.conf").write_text("")
        (work / "rules100.conf").write_text(inactive_rules(100))
        py = [sys.executable, "-m", "iolab", "serve"]
        configs: dict[str, tuple[list[str], bool]] = {
            "iolab": ([*py, str(image), "--listen", f"unix:{work}/iolab.sock"], True),
            "qemu-nbd": (
                [tools["qemu-nbd"], "-t", "-f", "raw", "-k", f"{work}/qemu-nbd.sock", str(image)],  # type: ignore[list-item]
                False,
            ),
            "nbdkit": (
                [tools["nbdkit"], "-f", "-U", f"{work}/nbdkit.sock", "file", str(image)],  # type: ignore[list-item]
                False,
            ),
            "iolab+blkdebug": (
                [
                    *py,
                    str(image),
                    "--listen",
                    f"unix:{work}/iolab+blkdebug.sock",
                    "--blkdebug",
                    f"{work}/empty.conf",
                ],
                True,
            ),
            "iolab+100rules": (
                [
                    *py,
                    str(image),
                    "--listen",
                    f"unix:{work}/iolab+100rules.sock",
                    "--blkdebug",
                    f"{work}/rules100.conf",
                ],
                True,
            ),
        }
        if args.uvloop:
            configs["iolab-uvloop"] = (
                [*py, str(image), "--listen", f"unix:{work}/iolab-uvloop.sock", "--uvloop"],
                True,
            )
        micro = filter_overhead(image)
        print(
            "layer stack alone, ns per 4k read (best of 15 interleaved runs): "
            + ", ".join(f"{k} {v:.0f}" for k, v in micro.items())
            + f"; 100 inactive rules add {micro['100rules'] - micro['blkdebug']:.0f} ns to an empty blkdebug",
            flush=True,
        )
        samples: dict[str, dict[str, list[float]]] = {n: {} for n in configs}
        cpu_us: dict[str, dict[str, list[float]]] = {n: {} for n in configs}  # server CPU per request
        pids: dict[str, int] = {}
        with contextlib.ExitStack() as stack:
            for name, (cmd, ready) in configs.items():
                pids[name] = stack.enter_context(server(cmd, work / f"{name}.sock", ready)).pid
            for rnd in range(args.rounds):
                for rw, qd in WORKLOADS:
                    key = f"{rw} qd{qd}"
                    order = list(configs)
                    order = order[rnd % len(order) :] + order[: rnd % len(order)]  # rotate who goes first
                    for name in order:
                        uri = f"nbd+unix:///?socket={work}/{name}.sock"
                        cpu0 = cpu_seconds(pids[name])
                        iops, ios = fio_run(tools["fio"], uri, rw, qd, args.runtime, size)  # type: ignore[arg-type]
                        us = (cpu_seconds(pids[name]) - cpu0) / max(ios, 1) * 1e6
                        samples[name].setdefault(key, []).append(iops)
                        cpu_us[name].setdefault(key, []).append(us)
                        print(
                            f"round {rnd + 1} {key:14} {name:16} {iops:10.0f} IOPS {us:6.1f} us CPU/request",
                            file=sys.stderr,
                            flush=True,
                        )
        med = {n: {k: statistics.median(v) for k, v in s.items()} for n, s in samples.items()}
        cpu = {n: {k: statistics.median(v) for k, v in s.items()} for n, s in cpu_us.items()}
        keys = [f"{rw} qd{qd}" for rw, qd in WORKLOADS]
        print(f"\nmedian IOPS, {args.rounds} rounds of {args.runtime:g}s, 4k, image {args.size}, unix socket")
        print(f"{'server':18}" + "".join(f"{k:>16}" for k in keys))
        for name in configs:
            print(f"{name:18}" + "".join(f"{med[name][k]:16.0f}" for k in keys))
        print("\nserver CPU per request, microseconds (median; the noise-proof measure of cost)")
        for name in configs:
            print(f"{name:18}" + "".join(f"{cpu[name][k]:16.1f}" for k in keys))
        print("\nratios")
        for k in keys:
            io = med["iolab"][k]
            print(
                f"{k:14} iolab/qemu-nbd {io / med['qemu-nbd'][k]:5.2f}"
                f"   iolab/nbdkit {io / med['nbdkit'][k]:5.2f}"
                f"   blkdebug(empty) cost {1 - med['iolab+blkdebug'][k] / io:6.1%}"
                f"   100 inactive rules cost {1 - med['iolab+100rules'][k] / io:6.1%}"
                f" (vs empty blkdebug {1 - med['iolab+100rules'][k] / med['iolab+blkdebug'][k]:6.1%})"
                f"   CPU/request: blkdebug +{cpu['iolab+blkdebug'][k] / cpu['iolab'][k] - 1:6.1%}"
                f", 100 rules +{cpu['iolab+100rules'][k] / cpu['iolab'][k] - 1:6.1%}"
            )
        if args.json:
            Path(args.json).write_text(
                json.dumps({"samples": samples, "median": med, "cpu_us": cpu_us}, indent=2)
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
