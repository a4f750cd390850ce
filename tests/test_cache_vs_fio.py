"""The page cache and open flags, side by side with fio 3.33, by the system calls each makes (strace):
invalidate (fio's default: drop the job's region from the cache at open, at every loop, and when a buffered
time_based job starts over), fadvise_hint, and sync=sync/dsync."""

from __future__ import annotations

import collections
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import need

pytestmark = pytest.mark.skipif(shutil.which("fio") is None, reason="fio is not installed")

# no closing parenthesis: with -f, strace splits a call another thread interrupts ("<unfinished ...>")
FADVISE = re.compile(r"fadvise64\(\d+, (\d+), (\d+), (POSIX_FADV_\w+)")
# fio opens "f" by name; iolab's jobs reopen the file the safety gate opened, through /proc/self/fd/N
OPEN_F = re.compile(r'openat\(AT_FDCWD, "(?:f|/proc/self/fd/\d+)", ([A-Z_|]+)')


def traced(tool: str, args: list[str], cwd: Path) -> str:
    """strace of one run (all threads): the open and fadvise calls."""
    need(shutil.which("strace") is not None, "strace is not installed (Debian package strace)")
    cmd = ["fio"] if tool == "fio" else [sys.executable, "-m", "iolab", "run"]
    log = cwd / f"{tool}.strace"
    proc = subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=openat,fadvise64", "-o", str(log), *cmd,
         "--name=j", "--filename=f", "--output-format=json", *args],
        cwd=cwd, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    json.loads(proc.stdout)
    return log.read_text()


def advice(trace: str) -> collections.Counter[tuple[int, int, str]]:
    return collections.Counter((int(o), int(n), a) for o, n, a in FADVISE.findall(trace))


def both(tmp_path: Path, args: list[str], size: int = 1 << 20) -> tuple[str, str]:
    out = []
    for tool in ("fio", "iolab"):
        d = tmp_path / tool
        d.mkdir()
        (d / "f").write_bytes(b"\x5a" * size)
        out.append(traced(tool, args, d))
    return out[0], out[1]


@pytest.mark.parametrize(
    "args",
    [
        ["--rw=randread", "--size=1m", "--loops=3"],
        ["--rw=read", "--size=1m", "--loops=2", "--direct=1"],
        ["--rw=read", "--size=256k", "--offset=512k"],
        ["--rw=randwrite", "--size=1m", "--fadvise_hint=sequential"],
        ["--rw=read", "--size=1m", "--fadvise_hint=random"],
        ["--rw=read", "--size=1m", "--fadvise_hint=0"],
        ["--rw=read", "--size=1m", "--invalidate=0"],
    ],
    ids=lambda a: " ".join(a),
)
def test_invalidate_and_fadvise_like_fio(tmp_path: Path, args: list[str]) -> None:
    fio, ours = both(tmp_path, args)
    fio_adv, our_adv = advice(fio), advice(ours)
    drop = "POSIX_FADV_DONTNEED"
    # the same regions dropped from the cache, as often (once at open, once more per further loop)
    drops = [{k: v for k, v in adv.items() if k[2] == drop} for adv in (fio_adv, our_adv)]
    assert drops[1] == drops[0]
    # the same access hint on the same region (fio gives it again at every reopen; iolab's open file keeps it)
    assert {k for k in our_adv if k[2] != drop} == {k for k in fio_adv if k[2] != drop}


def test_buffered_time_based_wraps_drop_the_cache_each_time(tmp_path: Path) -> None:
    """A 64 KiB file read for half a second wraps round many times; each start-over drops the cache, so the
    reads reach the device again instead of being served from the cache (fio does this; without it a small
    buffered file reports memory speed)."""
    fio, ours = both(tmp_path, ["--rw=read", "--size=64k", "--time_based", "--runtime=500ms"], size=64 << 10)
    fio_drops = advice(fio)[(0, 65536, "POSIX_FADV_DONTNEED")]
    our_drops = advice(ours)[(0, 65536, "POSIX_FADV_DONTNEED")]
    assert fio_drops > 3 and our_drops > 3, (fio_drops, our_drops)


@pytest.mark.parametrize(
    ("value", "flag"),
    [("sync", "O_SYNC"), ("1", "O_SYNC"), ("dsync", "O_DSYNC"), ("0", None), ("none", None)],
)
def test_sync_opens_like_fio(tmp_path: Path, value: str, flag: str | None) -> None:
    fio, ours = both(tmp_path, ["--rw=write", "--size=64k", f"--sync={value}"], size=64 << 10)
    for trace in (fio, ours):
        flags = set(OPEN_F.findall(trace)[-1].split("|"))
        if flag is None:
            assert not flags & {"O_SYNC", "O_DSYNC"}, flags
        else:
            assert flag in flags, flags


@pytest.mark.parametrize("scramble", ["1", "0"])
def test_scramble_buffers_makes_every_written_sector_unique_like_fio(tmp_path: Path, scramble: str) -> None:
    """fio's default scramble_buffers=1 stamps each 512-byte sector of a reused write buffer, so a dedupe
    device can't fold the writes; with 0 the same buffer content is written again and again."""
    for tool in ("fio", "iolab"):
        d = tmp_path / tool
        d.mkdir()
        cmd = ["fio"] if tool == "fio" else [sys.executable, "-m", "iolab", "run"]
        proc = subprocess.run(
            [
                *cmd,
                "--name=j",
                "--filename=f",
                "--rw=write",
                "--bs=4k",
                "--size=256k",
                f"--scramble_buffers={scramble}",
                "--output-format=json",
            ],
            cwd=d,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        data = (d / "f").read_bytes()
        blocks = {data[i : i + 4096] for i in range(0, len(data), 4096)}
        sectors = {data[i : i + 512] for i in range(0, len(data), 512)}
        if scramble == "1":
            assert len(sectors) == len(data) // 512, tool
        else:
            assert len(blocks) < 4, (tool, len(blocks))
