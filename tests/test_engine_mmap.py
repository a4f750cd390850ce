"""ioengine=mmap side by side with fio 3.33's mmap engine, on files in a tmpfs of our own.

Compared by machine: exit code, the files left behind (size and content class per 4 KiB block: the layout
fio's FIO_NOEXTEND engines need), bytes and I/Os per direction, sync I/Os; and by strace the calls the
engines make on the mapping (madvise by fadvise_hint, msync for fsync/fdatasync and direct=1). Data: what
iolab writes through the mapping is byte for byte what its psync engine writes for the same job.
"""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import need
from mapped_helpers import counts, iolab_run, setup_line, tmpfs
from test_files_vs_fio import FIO, _files, _prefill, _version_ok, assert_same, run_both

__all__ = ["tmpfs"]  # the fixture, used by name

pytestmark = pytest.mark.skipif(not _version_ok(), reason="needs fio 3.33 on PATH (the oracle)")


@pytest.mark.parametrize(
    "opts",
    [
        ["--rw=randread", "--bs=4k", "--size=1m"],
        ["--rw=randwrite", "--bs=4k", "--size=1m"],  # a new file: laid out whole first (FIO_NOEXTEND)
        ["--rw=read", "--bs=128k", "--size=2m"],
        ["--rw=write", "--bs=4k", "--size=256k", "--fsync=8"],
        ["--rw=randwrite", "--bs=4k", "--size=512k", "--fdatasync=4"],
        ["--rw=randrw", "--bs=4k", "--size=512k", "--rwmixread=70"],
        ["--rw=randrw", "--bs=4k", "--size=512k", "--nrfiles=2"],
        ["--rw=randwrite", "--bs=4k", "--size=256k", "--direct=1"],
        ["--rw=write", "--bs=3k", "--size=255k"],  # block size not a page multiple, no sync: allowed
        ["--rw=randwrite", "--bs=2k", "--size=256k", "--direct=1"],  # refused by both: page-size blocks
        ["--rw=randwrite", "--bs=2k", "--size=256k", "--fsync=4"],
        ["--rw=randread", "--bs=4k", "--size=256k", "--fadvise_hint=0", "--loops=2"],
        ["--rw=randwrite", "--bs=4k", "--size=256k", "--thp=1"],  # MAP_PRIVATE: the file keeps its data
    ],
    ids=lambda o: " ".join(o),
)
def test_mmap_counts_and_files_as_fio(tmpfs: Path, opts: list[str]) -> None:
    fio, iolab = run_both(
        tmpfs, "--name=j", "--ioengine=mmap", "--filename=f", *opts, prep=_prefill("f", 64 << 10)
    )
    assert_same(fio, iolab, jobs=False)
    if fio.rc == 0:
        assert_same_counts(fio.out, iolab.out, mixed="--rw=randrw" in opts)


def assert_same_counts(fio: dict[str, Any] | None, iolab: dict[str, Any] | None, *, mixed: bool) -> None:
    """Bytes and I/Os per direction and syncs equal to fio's. A random read/write mix: the totals (iolab's
    choice of direction per I/O differs from fio's with any engine, psync included)."""
    if not mixed:
        assert counts(iolab) == counts(fio)
        return

    def total(c: tuple[int, int, int, int, int, int]) -> tuple[int, int, int, int]:
        return c[0], c[1] + c[3], c[2] + c[4], c[5]

    assert [total(c) for c in counts(iolab)] == [total(c) for c in counts(fio)]
    assert all(c[2] > 0 and c[4] > 0 for c in counts(iolab))


def test_mmap_writes_the_data_psync_writes(tmpfs: Path) -> None:
    job = ["--name=j", "--rw=randrw", "--bs=4k", "--bssplit=4k/50:8k/25:64k/25", "--size=4m", "--randseed=7"]
    outs = {}
    start = bytes(range(256)) * (4 << 12)  # the same content in both files: no layout, only the job's writes
    for engine in ("mmap", "psync"):
        (tmpfs / f"{engine}.dat").write_bytes(start)
        rc, out, err = iolab_run(tmpfs, *job, f"--ioengine={engine}", f"--filename={engine}.dat")
        assert rc == 0, err
        outs[engine] = counts(out)
    assert outs["mmap"] == outs["psync"]
    written = (tmpfs / "mmap.dat").read_bytes()
    assert written == (tmpfs / "psync.dat").read_bytes()
    assert written != start


def test_mmap_reports_its_setup(tmpfs: Path) -> None:
    rc, out, err = iolab_run(
        tmpfs, "--name=j", "--ioengine=mmap", "--rw=randread", "--size=1m", "--filename=f"
    )
    assert rc == 0, err
    assert setup_line(out) == "mmap: 1 file(s) mapped whole (1048576 bytes), MAP_SHARED, madvise random"


def test_mmap_refuses_file_append(tmpfs: Path) -> None:
    rc, out, err = iolab_run(
        tmpfs, "--name=j", "--ioengine=mmap", "--rw=write", "--size=64k", "--filename=f", "--file_append=1"
    )
    assert rc != 0 and out is None
    assert "file_append" in err and "cannot extend" in err and "Traceback" not in err
    assert not (tmpfs / "f").exists()


def test_mmap_io_past_the_end_of_a_device_sized_file_fails_cleanly(tmpfs: Path) -> None:
    # a character device cannot be mapped: a clear error, no crash
    rc, _out, err = iolab_run(
        tmpfs, "--name=j", "--ioengine=mmap", "--rw=read", "--size=64k", "--filename=/dev/zero"
    )
    assert rc != 0
    assert "ioengine=mmap" in err and "Traceback" not in err


# --- the calls on the mapping, by strace ---

MSYNC = re.compile(r"msync\(0x[0-9a-f]+, (\d+), (MS_\w+)")
# the engines' advice (both processes also free memory with MADV_DONTNEED)
MADVISE = re.compile(r"madvise\(0x[0-9a-f]+, (\d+), (MADV_(?:RANDOM|SEQUENTIAL|HUGEPAGE))")


def _traced(tool: str, cwd: Path, args: list[str]) -> str:
    need(shutil.which("strace") is not None, "strace is not installed (Debian package strace)")
    cmd = [FIO or "fio"] if tool == "fio" else [sys.executable, "-m", "iolab", "run"]
    log = cwd / f"{tool}.strace"
    proc = subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=msync,madvise", "-o", str(log), *cmd, "--name=j", "--filename=f",
         "--ioengine=mmap", "--output-format=json", *args],
        cwd=cwd, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return log.read_text()


@pytest.mark.parametrize(
    "args",
    [
        ["--rw=write", "--bs=4k", "--size=256k", "--fsync=16"],  # msync(whole mapping, MS_SYNC) per fsync
        ["--rw=randwrite", "--bs=4k", "--size=256k", "--fdatasync=8"],
        ["--rw=randread", "--bs=8k", "--size=256k", "--direct=1"],  # msync of the I/O's pages per I/O
        ["--rw=read", "--bs=4k", "--size=256k"],  # madvise sequential
        ["--rw=randread", "--bs=4k", "--size=256k", "--fadvise_hint=0"],  # no madvise
    ],
    ids=lambda o: " ".join(o),
)
def test_mmap_syncs_and_advice_as_fio(tmpfs: Path, args: list[str]) -> None:
    traces = {}
    for tool in ("fio", "iolab"):
        d = tmpfs / tool
        d.mkdir()
        (d / "f").write_bytes(b"\x5a" * (256 << 10))
        traces[tool] = _traced(tool, d, args)
    for pattern in (MSYNC, MADVISE):
        want = collections.Counter(pattern.findall(traces["fio"]))
        got = collections.Counter(pattern.findall(traces["iolab"]))
        # iolab's own process maps nothing else with these calls; fio's neither
        assert got == want, pattern.pattern
    assert MSYNC.findall(traces["iolab"]) or "--fsync" not in " ".join(args)


def test_mmap_job_files_unchanged_by_a_read_job(tmpfs: Path) -> None:
    data = bytes(range(256)) * 1024
    (tmpfs / "f").write_bytes(data)
    rc, out, err = iolab_run(
        tmpfs, "--name=j", "--ioengine=mmap", "--rw=randread", "--size=256k", "--filename=f"
    )
    assert rc == 0, err
    assert counts(out) == [(0, 256 << 10, 64, 0, 0, 0)]
    assert (tmpfs / "f").read_bytes() == data
    assert _files(tmpfs)["f"][0] == 256 << 10
