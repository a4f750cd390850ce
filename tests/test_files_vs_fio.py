"""Files and layout side by side with fio 3.33: the same job run by fio and by iolab, each in its own
empty directory, must leave the same files (names, sizes, allocated blocks, which blocks hold data) and
report the same per-job I/O and exit status.

Small files (a few hundred KiB at most), so the whole module runs in seconds.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import need

FIO = shutil.which("fio")
PATTERN = b"\xaa" * 4096


def _version_ok() -> bool:
    if FIO is None:
        return False
    out = subprocess.run([FIO, "--version"], capture_output=True, text=True).stdout.strip()
    return out == "fio-3.33"


pytestmark = pytest.mark.skipif(not _version_ok(), reason="needs fio 3.33 on PATH (the oracle)")


def _json(stdout: str) -> dict[str, Any] | None:
    # fio prints some errors to stdout before the JSON
    start = stdout.find("{\n")
    if start < 0:
        return None
    try:
        parsed: dict[str, Any] = json.loads(stdout[start:])
    except json.JSONDecodeError:
        return None
    return parsed


def _files(root: Path) -> dict[str, tuple[int, int, str]]:
    """relative path -> (size, allocated 512-byte blocks, one letter per 4 KiB block: A pattern, Z zeros,
    D other data)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            continue
        st = p.stat()
        data = p.read_bytes()
        blocks = "".join(
            "A"
            if data[i : i + 4096] == PATTERN[: len(data[i : i + 4096])]
            else "Z"
            if not any(data[i : i + 4096])
            else "D"
            for i in range(0, len(data), 4096)
        )
        out[str(p.relative_to(root))] = (st.st_size, st.st_blocks, blocks)
    return out


def _dirs(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mode & 0o777 for p in sorted(root.rglob("*")) if p.is_dir()}


class Side:
    def __init__(self, rc: int, out: dict[str, Any] | None, root: Path, stderr: str) -> None:
        self.rc = rc
        self.out = out
        self.root = root
        self.stderr = stderr

    def jobs(self) -> list[tuple[str, int, int, int, int, int]]:
        """Per job: name, error, read bytes, read ios, write bytes, write ios."""
        assert self.out is not None, f"no JSON:\n{self.stderr}"
        return [
            (
                j["jobname"],
                j["error"],
                j["read"]["io_bytes"],
                j["read"]["total_ios"],
                j["write"]["io_bytes"],
                j["write"]["total_ios"],
            )
            for j in self.out["jobs"]
        ]


def run_both(tmp_path: Path, *args: str, prep: Callable[[Path], None] | None = None) -> tuple[Side, Side]:
    sides = []
    for tool in ("fio", "iolab"):
        root = tmp_path / tool
        root.mkdir()
        if prep is not None:
            prep(root)
        cmd = [FIO or "fio"] if tool == "fio" else [sys.executable, "-m", "iolab", "run"]
        proc = subprocess.run(
            [*cmd, *args, "--output-format=json"], cwd=root, capture_output=True, text=True, timeout=120
        )
        sides.append(Side(proc.returncode, _json(proc.stdout), root, proc.stderr))
    return sides[0], sides[1]


def assert_same(fio: Side, iolab: Side, *, jobs: bool = True) -> None:
    assert iolab.rc == fio.rc, f"exit {iolab.rc} != fio's {fio.rc}\nfio: {fio.stderr}\niolab: {iolab.stderr}"
    assert _files(iolab.root) == _files(fio.root)
    if jobs:
        assert iolab.jobs() == fio.jobs()


def _prefill(name: str, size: int) -> Callable[[Path], None]:
    def prep(root: Path) -> None:
        (root / name).write_bytes(PATTERN * (size // 4096))

    return prep


# --- offsets and sizes ---


def test_offset_increment_past_the_end_extends_the_file_as_fio(tmp_path: Path) -> None:
    # fio sets clones up as 0, 3, 2, 1: the file grows to 1 MiB, 1.75 MiB, then 1.875 MiB
    fio, iolab = run_both(
        tmp_path,
        "--name=j",
        "--filename=f",
        "--size=256k",
        "--numjobs=4",
        "--offset_increment=25%",
        "--rw=write",
        "--bs=4k",
    )
    assert_same(fio, iolab)
    assert (iolab.root / "f").stat().st_size == 480 << 10


def test_offset_increment_past_the_end_of_an_existing_file_for_reads(tmp_path: Path) -> None:
    fio, iolab = run_both(
        tmp_path,
        "--name=j",
        "--filename=f",
        "--size=64k",
        "--numjobs=3",
        "--offset_increment=128k",
        "--rw=read",
        "--bs=4k",
        prep=_prefill("f", 64 << 10),
    )
    assert_same(fio, iolab)
    assert (iolab.root / "f").stat().st_size == 320 << 10


def test_parallel_reads_clones_past_a_small_file(tmp_path: Path) -> None:
    # jobs/parallel-reads.fio in small: 8 clones of 256 KiB slices over a 512 KiB file; the last clone
    # (set up second) extends the file to 2 MiB and fio writes it all again (iolab quick --size 256m)
    fio, iolab = run_both(
        tmp_path,
        "--name=p",
        "--filename=f",
        "--rw=read",
        "--bs=64k",
        "--numjobs=8",
        "--offset_increment=256k",
        "--size=256k",
        "--direct=1",
        prep=_prefill("f", 512 << 10),
    )
    assert_same(fio, iolab)
    assert _files(iolab.root)["f"][:2] == (2 << 20, 4096)


def test_percentage_size_and_offset_of_an_existing_file(tmp_path: Path) -> None:
    fio, iolab = run_both(
        tmp_path,
        "--name=j",
        "--filename=f",
        "--size=50%",
        "--offset=25%",
        "--rw=read",
        "--bs=4k",
        prep=_prefill("f", 64 << 10),
    )
    assert_same(fio, iolab)


def test_size_not_a_multiple_of_the_block_size(tmp_path: Path) -> None:
    fio, iolab = run_both(tmp_path, "--name=j", "--filename=f", "--size=10000", "--rw=write", "--bs=4k")
    assert_same(fio, iolab)
    assert (iolab.root / "f").stat().st_size == 10000


def test_size_is_divided_over_nrfiles(tmp_path: Path) -> None:
    fio, iolab = run_both(tmp_path, "--name=j", "--size=1m", "--nrfiles=3", "--rw=read", "--bs=4k")
    assert_same(fio, iolab)
    assert {p.stat().st_size for p in iolab.root.glob("j.0.*")} == {349525}


def test_nrfiles_with_a_filesize_range_picks_fio_s_sizes(tmp_path: Path) -> None:
    fio, iolab = run_both(
        tmp_path,
        "--name=a",
        "--nrfiles=4",
        "--filesize=64k-256k",
        "--rw=write",
        "--bs=4k",
        "--name=b",
        "--nrfiles=2",
        "--filesize=16k-128k",
        "--rw=write",
        "--bs=4k",
        "--numjobs=2",
    )
    assert_same(fio, iolab)
    assert len({p.stat().st_size for p in iolab.root.glob("a.0.*")}) > 1, "every file got the same size"


def test_clones_are_reported_in_fio_s_thread_order(tmp_path: Path) -> None:
    # each clone gets its own file size; fio lists clone 0, then 3, 2, 1
    fio, iolab = run_both(tmp_path, "--name=b", "--filesize=16k-128k", "--rw=write", "--bs=4k", "--numjobs=4")
    assert_same(fio, iolab)
    assert len({j[4] for j in iolab.jobs()}) == 4


def test_filesize_with_a_smaller_size_limits_the_job_not_the_files(tmp_path: Path) -> None:
    fio, iolab = run_both(
        tmp_path, "--name=j", "--nrfiles=4", "--filesize=64k", "--size=128k", "--rw=write", "--bs=4k"
    )
    assert_same(fio, iolab)
    assert _files(iolab.root)["j.0.0"][2] == "D" * 8 + "Z" * 8


def test_percentage_offsets_round_up_to_the_block_size(tmp_path: Path) -> None:
    # 10% of 1 MiB is 104857: fio starts at 106496 (rounded up), writing 10% (102400 bytes)
    fio, iolab = run_both(
        tmp_path,
        "--name=j",
        "--filename=f",
        "--offset=10%",
        "--size=10%",
        "--rw=write",
        "--bs=4k",
        prep=_prefill("f", 1 << 20),
    )
    assert_same(fio, iolab)


# --- layout ---


def test_write_job_that_must_grow_a_file_recreates_it(tmp_path: Path) -> None:
    # fio removes the old file and preallocates a new one: the old data is gone
    fio, iolab = run_both(
        tmp_path,
        "--name=j",
        "--filename=f",
        "--offset=64k",
        "--size=64k",
        "--rw=write",
        "--bs=4k",
        prep=_prefill("f", 64 << 10),
    )
    assert_same(fio, iolab)
    assert _files(iolab.root)["f"][2] == "Z" * 16 + "D" * 16


def test_file_append_writes_after_the_end(tmp_path: Path) -> None:
    fio, iolab = run_both(
        tmp_path,
        "--name=j",
        "--filename=f",
        "--size=32k",
        "--file_append=1",
        "--rw=write",
        "--bs=4k",
        prep=_prefill("f", 64 << 10),
    )
    assert_same(fio, iolab)
    assert _files(iolab.root)["f"][2] == "A" * 16 + "D" * 8


def test_file_append_for_reads_lays_the_whole_file_out_again(tmp_path: Path) -> None:
    fio, iolab = run_both(
        tmp_path,
        "--name=j",
        "--filename=f",
        "--size=32k",
        "--file_append=1",
        "--rw=read",
        "--bs=4k",
        prep=_prefill("f", 64 << 10),
    )
    assert_same(fio, iolab)


@pytest.mark.parametrize("rw", ["read", "write"])
def test_create_only_lays_out_and_does_no_io(tmp_path: Path, rw: str) -> None:
    fio, iolab = run_both(
        tmp_path, "--name=j", "--filename=f", "--size=64k", "--create_only=1", f"--rw={rw}", "--bs=4k"
    )
    assert_same(fio, iolab)


@pytest.mark.parametrize("mode", ["none", "native", "posix", "keep", "truncate", "0", "1"])
@pytest.mark.parametrize("rw", ["write", "read"])
def test_fallocate_modes(tmp_path: Path, mode: str, rw: str) -> None:
    fio, iolab = run_both(
        tmp_path,
        "--name=j",
        "--filename=f",
        "--size=256k",
        "--create_only=1",
        f"--fallocate={mode}",
        f"--rw={rw}",
        "--bs=4k",
    )
    assert_same(fio, iolab)


def test_fallocate_none_write_job_grows_the_file_by_writing(tmp_path: Path) -> None:
    fio, iolab = run_both(
        tmp_path, "--name=j", "--filename=f", "--size=256k", "--fallocate=none", "--rw=write", "--bs=4k"
    )
    assert_same(fio, iolab)


def test_overwrite_writes_the_file_before_a_write_job(tmp_path: Path) -> None:
    fio, iolab = run_both(
        tmp_path,
        "--name=j",
        "--filename=f",
        "--size=64k",
        "--create_only=1",
        "--overwrite=1",
        "--rw=write",
        "--bs=4k",
    )
    assert_same(fio, iolab)
    assert "Z" not in _files(iolab.root)["f"][2]


@pytest.mark.parametrize("rw", ["read", "write"])
def test_allow_file_create_0_fails_on_a_missing_file(tmp_path: Path, rw: str) -> None:
    fio, iolab = run_both(
        tmp_path, "--name=j", "--filename=f", "--size=64k", "--allow_file_create=0", f"--rw={rw}", "--bs=4k"
    )
    assert_same(fio, iolab)
    assert iolab.rc == 1
    assert "allow_file_create=0" in iolab.stderr


def test_allow_file_create_0_uses_an_existing_file(tmp_path: Path) -> None:
    fio, iolab = run_both(
        tmp_path,
        "--name=j",
        "--filename=f",
        "--size=64k",
        "--allow_file_create=0",
        "--rw=write",
        "--bs=4k",
        prep=_prefill("f", 64 << 10),
    )
    assert_same(fio, iolab)


def test_create_on_open_reads_an_empty_file(tmp_path: Path) -> None:
    # fio does not lay the file out: open() creates it empty and the first read fails (EIO)
    fio, iolab = run_both(
        tmp_path, "--name=j", "--filename=f", "--size=64k", "--create_on_open=1", "--rw=read", "--bs=4k"
    )
    assert iolab.rc == fio.rc == 1
    assert _files(iolab.root) == _files(fio.root)
    assert iolab.jobs()[0][1] == 5


def test_create_serialize_0_and_create_fsync_0_and_pre_read(tmp_path: Path) -> None:
    fio, iolab = run_both(
        tmp_path,
        "--name=a",
        "--filename=f",
        "--size=64k",
        "--create_serialize=0",
        "--numjobs=2",
        "--offset_increment=64k",
        "--rw=write",
        "--bs=4k",
        "--name=b",
        "--filename=g",
        "--size=64k",
        "--create_fsync=0",
        "--pre_read=1",
        "--rw=read",
        "--bs=4k",
        "--stonewall",
    )
    assert iolab.rc == fio.rc == 0
    # sizes only: with create_serialize=0 fio's clone 1 may remove the file clone 0 already opened (a
    # race in fio; its clone 0 then writes to the removed file), so the contents vary from run to run
    assert {k: v[:2] for k, v in _files(iolab.root).items()} == {
        k: v[:2] for k, v in _files(fio.root).items()
    }
    assert iolab.jobs() == fio.jobs()


# --- names and directories ---


def test_filename_format_and_nested_directories(tmp_path: Path) -> None:
    fio, iolab = run_both(
        tmp_path,
        "--name=j",
        "--filename_format=a/b/$jobname-$JOBNUM-$filenum.x",
        "--nrfiles=2",
        "--numjobs=2",
        "--size=8k",
        "--rw=write",
        "--bs=4k",
    )
    assert_same(fio, iolab)
    assert _dirs(iolab.root) == _dirs(fio.root) == {"a": 0o700, "a/b": 0o700}


def test_filename_format_shared_by_clones_leaves_them_without_files(tmp_path: Path) -> None:
    fio, iolab = run_both(
        tmp_path,
        "--name=j",
        "--filename_format=shared.$filenum",
        "--nrfiles=2",
        "--numjobs=3",
        "--size=8k",
        "--rw=write",
        "--bs=4k",
    )
    assert_same(fio, iolab)
    assert [j[4] for j in iolab.jobs()] == [8192, 0, 0]


def test_only_the_first_nested_filename_gets_its_directories(tmp_path: Path) -> None:
    fio, iolab = run_both(tmp_path, "--name=j", "--filename=x/a:y/b", "--size=8k", "--rw=write", "--bs=4k")
    assert_same(fio, iolab)
    assert iolab.rc == 1


def test_several_directories_go_round_robin_over_clones(tmp_path: Path) -> None:
    def prep(root: Path) -> None:
        (root / "d1").mkdir()
        (root / "d2").mkdir()

    fio, iolab = run_both(
        tmp_path, "--name=k", "--directory=d1:d2", "--numjobs=3", "--size=8k", "--rw=write", prep=prep
    )
    assert_same(fio, iolab)
    assert (iolab.root / "d2" / "k.1.0").exists()


def test_dev_null(tmp_path: Path) -> None:
    fio, iolab = run_both(tmp_path, "--name=j", "--filename=/dev/null", "--size=64k", "--rw=write", "--bs=4k")
    assert_same(fio, iolab)
    (tmp_path / "r").mkdir()
    fio, iolab = run_both(tmp_path / "r", "--name=j", "--filename=/dev/null", "--size=64k", "--rw=read")
    assert iolab.rc == fio.rc == 1  # reading /dev/null ends at once: EIO, as fio
    need(iolab.out is not None, "no JSON from iolab")
    assert iolab.jobs()[0][1] == 5


def test_a_job_named_after_a_device_uses_it(tmp_path: Path) -> None:
    fio, iolab = run_both(tmp_path, "--name=/dev/null", "--size=64k", "--rw=write")
    assert_same(fio, iolab)


def test_dev_zero_reads(tmp_path: Path) -> None:
    fio, iolab = run_both(tmp_path, "--name=j", "--filename=/dev/zero", "--size=64k", "--rw=read")
    assert_same(fio, iolab)


def test_a_missing_directory_is_refused(tmp_path: Path) -> None:
    fio, iolab = run_both(tmp_path, "--name=j", "--directory=nodir", "--size=64k", "--rw=write")
    assert iolab.rc == fio.rc == 1
    assert "nodir is not a directory" in iolab.stderr


def test_dev_null_needs_a_size(tmp_path: Path) -> None:
    fio, iolab = run_both(tmp_path, "--name=j", "--filename=/dev/null", "--rw=write")
    assert iolab.rc == fio.rc == 1
    assert "size=" in iolab.stderr


# --- regions smaller than a block, files other jobs grow, reads past the end ---


def test_region_smaller_than_the_block_is_run_not_refused(tmp_path: Path) -> None:
    # size=4k over two files: 2 KiB regions for 4 KiB blocks. fio issues no read (a block does not fit
    # the 2 KiB files) even though the next job grows f0 later: a job keeps the file size its setup saw
    fio, iolab = run_both(
        tmp_path,
        "--name=j0",
        "--rw=read",
        "--size=4k",
        "--filename=f0:f1",
        "--name=j1",
        "--rw=randwrite",
        "--size=8k",
        "--filename=f0",
        "--bs=4k",
    )
    assert_same(fio, iolab)
    assert [j[3] for j in iolab.jobs()] == [0, 0]
    assert iolab.jobs()[1][5] == 2


def test_region_smaller_than_the_largest_block_of_a_range(tmp_path: Path) -> None:
    # a 12 KiB file for blocks of 16 KiB..32 KiB and 4 KiB (bssplit): only the blocks that fit are issued
    fio, iolab = run_both(
        tmp_path,
        "--name=j",
        "--rw=read",
        "--size=12k",
        "--filename=f",
        "--bssplit=4k/50:32k/50",
    )
    assert_same(fio, iolab)
    assert iolab.jobs()[0][2] == 12 << 10


def test_sequential_blocks_run_to_the_end_of_an_uneven_region(tmp_path: Path) -> None:
    # 6 KiB regions of 4 KiB blocks: fio reads a second block at 4 KiB where the file (f0, grown to 12 KiB
    # by the first job) has room for it, not where it has not (f1: 6 KiB)
    fio, iolab = run_both(
        tmp_path,
        "--name=j0",
        "--rw=read",
        "--size=12k",
        "--filename=f0",
        "--name=j1",
        "--rw=read",
        "--size=12k",
        "--filename=f0:f1",
    )
    assert_same(fio, iolab)
    assert iolab.jobs()[1][3] == 3


def test_bssplit_smaller_than_bs_sets_the_job_s_block_unit(tmp_path: Path) -> None:
    # bssplit=512/100 with the default bs=4k: the regions are cut to 512-byte blocks, not 4 KiB ones, so
    # the sequential job with 8000-byte holes reaches 8512 in a 12000-byte file
    fio, iolab = run_both(
        tmp_path,
        "--name=j",
        "--rw=read:8k",
        "--size=12k",
        "--kb_base=1000",
        "--filename=f",
        "--ba=512",
        "--bssplit=512/100",
    )
    assert_same(fio, iolab)
    assert iolab.jobs()[0][3] == 24


@pytest.mark.parametrize("engine", ["libaio", "io_uring", "psync"])
def test_reads_of_an_empty_create_on_open_file(tmp_path: Path, engine: str) -> None:
    # create_on_open leaves the file empty: fio's asynchronous engines count each read that finds the end
    # of the file (0 bytes) and go on; psync fails the job with EIO at the first one
    fio, iolab = run_both(
        tmp_path,
        "--name=j",
        "--rw=randread",
        "--size=64k",
        "--filename=f",
        "--create_on_open=1",
        f"--ioengine={engine}",
    )
    assert_same(fio, iolab, jobs=False)
    assert iolab.jobs() == fio.jobs()


@pytest.mark.parametrize("rw", ["read", "write"])
def test_create_only_with_create_on_open_creates_nothing(tmp_path: Path, rw: str) -> None:
    # create_only does no I/O, so fio never opens the files, and those left to the open never appear
    args = ("--create_only=1", f"--rw={rw}", "--size=8k")
    fio, iolab = run_both(
        tmp_path, "--name=a", "--filename=f", "--create_on_open=1", *args, "--name=b", "--filename=g", *args
    )
    assert_same(fio, iolab)
    assert sorted(_files(iolab.root)) == ["g"]
