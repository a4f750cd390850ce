"""Run one case through one tool in a fresh directory and record what it did."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .model import Case, Observation

REPO = Path(__file__).resolve().parents[2]
SECTOR = 512
_ZERO = bytes(SECTOR)
# Files larger than this are listed with their size but their blocks are not mapped.
MAP_LIMIT = 64 << 20
# Directories every run starts with, so jobs may name files below them (fio does not create them).
PRECREATED = ("sub",)
# ${VAR} values some fio examples expect from the environment; both tools get the same.
EXAMPLE_ENV = {"FIO_DIR": ".", "FIO_RW": "randrw", "FIO_BS": "4k", "FIO_IODEPTH": "4"}


# No file a case writes may grow beyond this (RLIMIT_FSIZE: writes and truncates past it fail with EFBIG).
FILE_LIMIT = 256 << 20
# A case does not start unless the run directory's file system has this much free space.
MIN_FREE = 4 << 30


class DiskSpaceError(RuntimeError):
    pass


def _limit_child() -> None:
    """In the tool's process: cap file sizes, and let an oversized write fail instead of killing."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def _kill(proc: subprocess.Popen[bytes], rundir: Path) -> None:
    """Stop the tool and everything it started: fio's job processes call setsid(), so the process
    group misses them; they are found by their working directory, the case's own run directory."""
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        proc.kill()
    target = str(rundir.resolve())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd == target or cwd.startswith(target + "/"):
            with contextlib.suppress(OSError):
                os.kill(int(entry.name), signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


def check_free(path: Path) -> None:
    st = os.statvfs(path)
    free = st.f_bavail * st.f_frsize
    if free < MIN_FREE:
        raise DiskSpaceError(f"only {free >> 20} MiB free below {path}; the harness stops")


def default_iolab() -> list[str]:
    exe = REPO / ".venv" / "bin" / "iolab"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "iolab"]


def tool_command(tool: str, iolab: list[str], jobfile: Path) -> list[str]:
    if tool == "fio":
        return ["fio", "--output-format=json", str(jobfile)]
    return [*iolab, "run", "--output-format=json", str(jobfile)]


def sector_map(path: Path) -> str:
    """Non-zero 512-byte sectors of a file as 'a-b,c-d' ranges (inclusive), '' when all zero."""
    ranges: list[tuple[int, int]] = []
    start = -1
    idx = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            for off in range(0, len(chunk), SECTOR):
                nonzero = chunk[off : off + SECTOR].strip(b"\0") != b""
                if nonzero and start < 0:
                    start = idx
                elif not nonzero and start >= 0:
                    ranges.append((start, idx - 1))
                    start = -1
                idx += 1
    if start >= 0:
        ranges.append((start, idx - 1))
    return ",".join(f"{a}-{b}" if a != b else str(a) for a, b in ranges)


def snapshot(root: Path) -> dict[str, tuple[int, str | None]]:
    """Every regular file below ``root``: size and sector map (logs: size only, their content varies)."""
    out: dict[str, tuple[int, str | None]] = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            p = Path(dirpath) / name
            if not p.is_file() or p.is_symlink():
                continue
            rel = str(p.relative_to(root))
            size = p.stat().st_size
            mapped = None if name.endswith(".log") or size > MAP_LIMIT else sector_map(p)
            out[rel] = (size, mapped)
    return out


def parse_json(text: str) -> dict[str, Any] | None:
    """The JSON document in a tool's stdout (fio may print notes before it)."""
    start = text.find("{")
    if start < 0:
        return None
    try:
        doc = json.loads(text[start:])
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def run_tool(tool: str, case: Case, workdir: Path, iolab: list[str], timeout: float) -> Observation:
    """Run ``case`` with ``tool`` ('fio' or 'iolab') in ``workdir/tool`` (created empty)."""
    jobfile = workdir / "job.fio"
    if not jobfile.exists():
        jobfile.write_text(case.text)
    rundir = workdir / tool
    shutil.rmtree(rundir, ignore_errors=True)
    rundir.mkdir(parents=True)
    for d in PRECREATED:
        (rundir / d).mkdir()
    check_free(rundir)
    env = dict(os.environ, **EXAMPLE_ENV)
    env.pop("FIO_OPTS", None)
    out_path, err_path = workdir / f"{tool}.stdout", workdir / f"{tool}.stderr"
    t0 = time.monotonic()
    # Output goes to files, not pipes: a process that outlives a kill can't hold the harness up.
    # A session of its own, so a timeout can stop fio's job processes too.
    with out_path.open("w") as out, err_path.open("w") as err:
        proc = subprocess.Popen(
            tool_command(tool, iolab, jobfile),
            cwd=rundir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            preexec_fn=_limit_child,
        )
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill(proc, rundir)
    seconds = time.monotonic() - t0
    stdout = out_path.read_text(errors="replace")
    stderr = err_path.read_text(errors="replace")
    obs = Observation(tool, proc.returncode, stdout, stderr, seconds, timed_out)
    obs.json = parse_json(stdout) if proc.returncode == 0 else None
    obs.files = snapshot(rundir)
    for d in PRECREATED:
        obs.files.pop(d, None)
    return obs
