"""What fio does to a job before its I/O starts, side by side: nice, prio/prioclass (seen on the thread or
process that issues the I/O, while it runs) and exec_prerun/exec_postrun (their output files)."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("fio") is None, reason="fio is not installed")

IOPRIO_CLASS_SHIFT = 13


def command(tool: str) -> list[str]:
    return ["fio"] if tool == "fio" else [sys.executable, "-m", "iolab", "run"]


def task_priorities(pid: int) -> set[tuple[int, int]]:
    """(nice, ioprio) of every thread of a process and of its children (fio's job is a child process)."""
    import ctypes
    import os

    libc = ctypes.CDLL(None, use_errno=True)
    seen: set[tuple[int, int]] = set()
    pids = [pid]
    with contextlib.suppress(OSError):
        pids += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for p in pids:
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tids:
            try:
                nice = int(Path(f"/proc/{p}/task/{t}/stat").read_text().rsplit(")", 1)[1].split()[16])
            except (OSError, IndexError, ValueError):
                continue
            ioprio = libc.syscall(252, 1, int(t))  # ioprio_get(IOPRIO_WHO_PROCESS, tid) on x86_64
            seen.add((nice, ioprio))
    return seen


@pytest.mark.parametrize(
    "args",
    [["--nice=5"], ["--prio=3", "--prioclass=2"], ["--prioclass=3"], ["--nice=7", "--prio=6"]],
    ids=" ".join,
)
def test_priorities_of_the_io_thread_like_fio(tmp_path: Path, args: list[str]) -> None:
    import platform

    if platform.machine() != "x86_64":
        pytest.skip("the probe reads ioprio_get by its x86_64 system call number")
    seen: dict[str, set[tuple[int, int]]] = {}
    for tool in ("fio", "iolab"):
        d = tmp_path / tool
        d.mkdir()
        proc = subprocess.Popen(
            [
                *command(tool),
                "--name=j",
                "--filename=f",
                "--size=64k",
                "--time_based",
                "--runtime=1500ms",
                "--output-format=json",
                *args,
            ],
            cwd=d,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 1.2
        found: set[tuple[int, int]] = set()
        while time.monotonic() < deadline:
            found |= task_priorities(proc.pid)
            time.sleep(0.05)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        json.loads(out)
        seen[tool] = {s for s in found if s != (0, 0) and s != (0, 4 << IOPRIO_CLASS_SHIFT)}
    assert seen["fio"], "fio's job showed no priority change"
    assert seen["iolab"] == seen["fio"]


def test_exec_prerun_and_postrun_like_fio(tmp_path: Path) -> None:
    files: dict[str, dict[str, str]] = {}
    for tool in ("fio", "iolab"):
        d = tmp_path / tool
        d.mkdir()
        proc = subprocess.run(
            [
                *command(tool),
                "--name=j",
                "--filename=f",
                "--size=64k",
                "--exec_prerun=echo before; test -e f || echo no-file-yet",
                "--exec_postrun=echo after; ls f",
            ],
            cwd=d,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        files[tool] = {p.name: p.read_text() for p in d.glob("*.txt")}
    assert files["iolab"] == files["fio"]
    # the redirection fio appends binds to the last command of the line only
    assert files["fio"]["j.postrun.txt"] == "f\n"


def test_failing_exec_prerun_fails_the_job(tmp_path: Path) -> None:
    """fio 3.33 skips the job and prints nothing, with exit status 0 (no result at all); iolab reports the
    failed job and exits 1 (docs/fio-differences.md)."""
    proc = subprocess.run(
        [
            *command("iolab"),
            "--name=j",
            "--filename=f",
            "--size=64k",
            "--exec_prerun=exit 3",
            "--output-format=json",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "exec_prerun command exited with status 3" in proc.stderr
    json.loads(proc.stdout)
