"""Helpers for the NBD tests: real clients (qemu-io, qemu-img, nbdinfo, nbdcopy, libnbd's Python binding).

Tools come from Debian packages (qemu-utils, libnbd-bin, python3-libnbd); a missing one skips the test
with the reason on a developer machine and fails it in CI (IOLAB_CI=1), like tests/conftest.py's need().
Every process started here is killed in a finally block.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from conftest import need

DEBIAN_PYTHON = "/usr/bin/python3"  # python3-libnbd imports only in Debian's own interpreter
TIMEOUT = 60


def need_tool(name: str, package: str) -> str:
    path = shutil.which(name)
    need(path is not None, f"{name} is not installed (Debian package {package})")
    assert path is not None
    return path


def clean_env() -> dict[str, str]:
    """The environment for client processes: without the sanitizer preload of `make test-sanitize`."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env.pop("ASAN_OPTIONS", None)
    env.pop("UBSAN_OPTIONS", None)
    return env


_LIBNBD_OK: bool | None = None


def need_libnbd() -> str:
    global _LIBNBD_OK
    if _LIBNBD_OK is None:
        _LIBNBD_OK = os.path.exists(DEBIAN_PYTHON) and (
            subprocess.run(
                [DEBIAN_PYTHON, "-c", "import nbd"], env=clean_env(), capture_output=True, timeout=TIMEOUT
            ).returncode
            == 0
        )
    need(_LIBNBD_OK, "libnbd's Python binding is not installed (Debian package python3-libnbd)")
    return DEBIAN_PYTHON


def libnbd(script: str, *args: str, check: bool = True) -> Any:
    """Run a libnbd script in Debian's python3; it prints one JSON line as its last line of output."""
    py = need_libnbd()
    proc = subprocess.run(
        [py, "-c", textwrap.dedent(script), *args],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"libnbd script failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    return json.loads(lines[-1]) if lines else None


def run(cmd: list[str], check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, env=clean_env(), capture_output=True, text=True, timeout=TIMEOUT, input=input)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def qemu_io(
    target: str,
    *commands: str,
    fmt: str = "raw",
    check: bool = False,
    read_only: bool = False,
    cache: str = "",
) -> str:
    """qemu-io on `target` (an NBD URI or a blkdebug: filename); its output without timing lines."""
    exe = need_tool("qemu-io", "qemu-utils")
    cmd = [exe, "-f", fmt] + (["-r"] if read_only else []) + (["-t", cache] if cache else [])
    for c in commands:
        cmd += ["-c", c]
    proc = run([*cmd, target], check=check)
    return normalize_qemu_io(proc.stdout + proc.stderr)


_TIMING = re.compile(r"^\d+(\.\d+)? [KMGT]?i?B, \d+ ops; .*$")


def normalize_qemu_io(text: str) -> str:
    """Drop the throughput lines (they vary run to run)."""
    return "\n".join(ln for ln in text.splitlines() if not _TIMING.match(ln.strip()))


def make_image(path: Path, size: int = 16 << 20, pattern: int | None = None) -> Path:
    with open(path, "wb") as f:
        if pattern is None:
            f.truncate(size)
        else:
            f.write(bytes([pattern]) * size)
    return path


class Proc:
    """A child process with line-oriented stdout (read by a thread), killed on exit."""

    def __init__(self, cmd: list[str], stdin: bool = False) -> None:
        self.cmd = cmd
        self.p = subprocess.Popen(
            cmd,
            env=clean_env(),
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,  # its own process group: kill() ends its children too
        )
        self.seen: list[str] = []
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def send(self, line: str) -> None:
        assert self.p.stdin is not None
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def wait_for(self, pattern: str, timeout: float = TIMEOUT) -> str:
        """Next output line matching `pattern`; fails if the process ends or `timeout` passes first."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"{self.cmd[0]}: no {pattern!r} within {timeout}s; output:\n" + "\n".join(self.seen)
                ) from None
            if line is None:
                raise AssertionError(
                    f"{self.cmd[0]} ended before {pattern!r}; output:\n" + "\n".join(self.seen)
                )
            self.seen.append(line)
            if rx.search(line):
                return line

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.p.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.p.wait(10)
        if self.p.stdin is not None:
            with contextlib.suppress(Exception):
                self.p.stdin.close()
        self.reader.join(10)  # it ends at EOF; closing stdout under it could deadlock


@contextlib.contextmanager
def proc(cmd: list[str], stdin: bool = False) -> Iterator[Proc]:
    p = Proc(cmd, stdin=stdin)
    try:
        yield p
    finally:
        p.kill()


@contextlib.contextmanager
def serve_cli(*args: str) -> Iterator[tuple[Proc, dict[str, Any]]]:
    """`iolab serve ARGS` as a subprocess; yields it and its ready line (uris, control, pid)."""
    with proc([sys.executable, "-m", "iolab", "serve", *args]) as p:
        line = p.wait_for(r'^\{"ready"')
        yield p, json.loads(line)


def ctl(sock: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "iolab", "ctl", sock, *args], check=check)
