"""Shared by the mmap and libpmem engine tests: a tmpfs of our own, and iolab run in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import need

IOLAB = [sys.executable, "-m", "iolab"]


@pytest.fixture
def tmpfs() -> Iterator[Path]:
    """A tmpfs mounted for the test in a temp dir of our own (unmounted afterwards): a file system with
    no DAX and no block device, where mapped I/O runs at memory speed."""
    need(os.geteuid() == 0, "needs root to mount a tmpfs")
    top = Path(tempfile.mkdtemp(prefix="iolab-mapped-"))
    mnt = top / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m,mode=0700", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
        mnt.rmdir()
        top.rmdir()


def iolab_run(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[int, dict[str, Any] | None, str]:
    """`iolab run ARGS --output-format=json` in cwd: exit code, the JSON (None if none), stderr."""
    proc = subprocess.run(
        [*IOLAB, "run", *args, "--output-format=json"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    out = json.loads(proc.stdout) if proc.stdout.startswith("{") else None
    return proc.returncode, out, proc.stderr


def counts(out: dict[str, Any] | None) -> list[tuple[int, int, int, int, int, int]]:
    """Per job: error, read bytes and ios, write bytes and ios, sync ios."""
    assert out is not None
    return [
        (
            j["error"],
            j["read"]["io_bytes"],
            j["read"]["total_ios"],
            j["write"]["io_bytes"],
            j["write"]["total_ios"],
            j["sync"]["total_ios"],
        )
        for j in out["jobs"]
    ]


def setup_line(out: dict[str, Any] | None) -> str:
    """The engine's own line on how it was set up (JSON: jobs[].iolab.engine.setup)."""
    assert out is not None
    line: str = out["jobs"][0]["iolab"]["engine"]["setup"]
    return line
