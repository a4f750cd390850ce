"""ioengine=libpmem: against fio 3.33's libpmem engine on a tmpfs file (fallback mode), the flush and copy
paths chosen by CPUID, the MAP_SYNC attempt, and the doctor's IOL-PMEM-001.

There is no persistent memory on the test machines: every file here is on tmpfs, where the kernel refuses
MAP_SYNC and the engine runs on the page cache with msync at the sync points. fio's libpmem refuses such a
file unless PMDK is told to pretend (PMEM_IS_PMEM_FORCE=1), which these comparisons set. The DAX path itself
runs only where IOLAB_TEST_DAX_DIR names a directory on a file system mounted with -o dax.
"""

from __future__ import annotations

import collections
import mmap
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import need
from mapped_helpers import IOLAB, counts, iolab_run, setup_line, tmpfs
from test_engine_mmap import assert_same_counts
from test_files_vs_fio import _version_ok, run_both

__all__ = ["tmpfs"]  # the fixture, used by name


def _parse_size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20}
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)


def _cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def _expected_flush(no_clwb: bool = False, no_clflushopt: bool = False) -> str:
    flags = _cpu_flags()
    if "clwb" in flags and not no_clwb:
        return "clwb"
    if "clflushopt" in flags and not no_clflushopt:
        return "clflushopt"
    return "clflush"


@pytest.mark.skipif(not _version_ok(), reason="needs fio 3.33 on PATH (the oracle)")
@pytest.mark.parametrize(
    "opts",
    [
        ["--rw=randread", "--bs=4k", "--size=1m"],
        ["--rw=randwrite", "--bs=4k", "--size=1m"],  # a new file: laid out whole first, as fio
        ["--rw=read", "--bs=128k", "--size=2m"],
        ["--rw=write", "--bs=4k", "--size=256k", "--fsync=8"],
        ["--rw=randwrite", "--bs=4k", "--size=256k", "--sync=1"],
        ["--rw=randwrite", "--bs=4k", "--size=256k", "--direct=1"],
        ["--rw=randwrite", "--bs=3000", "--size=300000", "--direct=1"],  # movnt with partial edge lines
        ["--rw=randrw", "--bs=4k", "--size=512k", "--fdatasync=4"],
        ["--rw=randwrite", "--bs=2k", "--size=256k", "--fsync=4"],  # refused by both: page-size blocks
    ],
    ids=lambda o: " ".join(o),
)
def test_libpmem_counts_and_files_as_fio(
    tmpfs: Path, opts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PMEM_IS_PMEM_FORCE", "1")  # fio's libpmem would refuse a tmpfs file
    # a file of the job's size already there: fio's libpmem works only over what exists (it lays nothing
    # out, and does I/O only up to a smaller file's end) where iolab lays a file out as its mmap engine does
    size = _parse_size(next(o for o in opts if o.startswith("--size=")).split("=", 1)[1])
    fio, iolab = run_both(
        tmpfs, "--name=j", "--ioengine=libpmem", "--filename=f", *opts,
        prep=lambda root: (root / "f").write_bytes(b"\xaa" * size),
    )  # fmt: skip
    assert iolab.rc == fio.rc, f"fio: {fio.stderr}\niolab: {iolab.stderr}"
    # the file's size; not its content: fio's libpmem rewrites the file with data before every job (its
    # prepopulate step, reads included), iolab lays a file out only when it is too small
    # (docs/fio-differences.md)
    assert (iolab.root / "f").stat().st_size == (fio.root / "f").stat().st_size
    if fio.rc == 0:
        assert_same_counts(fio.out, iolab.out, mixed="--rw=randrw" in opts)
        assert "mode=page-cache" in setup_line(iolab.out)


@pytest.mark.parametrize(
    ("env", "opts", "flush", "copy"),
    [
        ({}, [], _expected_flush(), "temporal+flush (direct=0)"),
        ({"IOLAB_PMEM_NO_CLWB": "1"}, [], _expected_flush(no_clwb=True), "temporal+flush (direct=0)"),
        (
            {"IOLAB_PMEM_NO_CLWB": "1", "IOLAB_PMEM_NO_CLFLUSHOPT": "1"},
            ["--sync=1"],
            "clflush",
            "temporal+flush (direct=0)",
        ),
        ({}, ["--direct=1"], _expected_flush(), "movnt"),
        ({"IOLAB_PMEM_NO_MOVNT": "1"}, ["--direct=1"], _expected_flush(), "temporal+flush (movnt disabled)"),
    ],
    ids=["default", "no-clwb", "clflush-sync", "movnt", "no-movnt"],
)
def test_libpmem_every_copy_and_flush_path_writes_what_psync_writes(
    tmpfs: Path, env: dict[str, str], opts: list[str], flush: str, copy: str
) -> None:
    # odd sizes too: copies that start and end inside a cache line, and short ones under the movnt threshold
    job = [
        "--name=j",
        "--rw=randrw",
        "--bssplit=4k/40:64k/20:3000/20:100/10:129k/10",
        "--size=8m",
        "--randseed=11",
    ]
    start = os.urandom(8 << 20)
    outs = {}
    for engine in ("libpmem", "psync"):
        (tmpfs / f"{engine}.dat").write_bytes(start)
        rc, out, err = iolab_run(
            tmpfs, *job, *opts, f"--ioengine={engine}", f"--filename={engine}.dat", env=env
        )
        assert rc == 0, err
        outs[engine] = out
    assert counts(outs["libpmem"]) == counts(outs["psync"])
    written = (tmpfs / "libpmem.dat").read_bytes()
    assert written != start
    assert written == (tmpfs / "psync.dat").read_bytes()
    line = setup_line(outs["libpmem"])
    assert f"flush={flush}+sfence" in line
    assert f"copy={copy}" in line
    assert ("drain=every write (sync=1)" in line) == ("--sync=1" in opts)


def test_libpmem_tries_map_sync_and_falls_back_on_tmpfs(tmpfs: Path) -> None:
    (tmpfs / "f").write_bytes(b"\0" * (1 << 20))
    # the kernel's own answer, asked directly: tmpfs has no DAX
    fd = os.open(tmpfs / "f", os.O_RDWR)
    try:
        with pytest.raises(OSError) as exc:
            mmap.mmap(fd, 4096, flags=0x03 | 0x80000, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        assert exc.value.errno in (95, 22)  # EOPNOTSUPP, EINVAL
        refused = os.strerror(exc.value.errno)
    finally:
        os.close(fd)
    rc, out, err = iolab_run(
        tmpfs, "--name=j", "--ioengine=libpmem", "--rw=randwrite", "--size=1m", "--filename=f"
    )
    assert rc == 0, err
    line = setup_line(out)
    assert line.startswith(f"libpmem: mode=page-cache (MAP_SYNC refused: {refused}; msync at sync points)"), (
        line
    )


MSYNC = re.compile(r"msync\(0x[0-9a-f]+, (\d+), (MS_\w+)")


@pytest.mark.parametrize(
    ("opts", "expected"),
    [
        (["--rw=randwrite", "--sync=1"], collections.Counter({("4096", "MS_SYNC"): 64})),  # per write
        (["--rw=write", "--fsync=16"], collections.Counter({("262144", "MS_SYNC"): 3})),  # per fsync
        (["--rw=randwrite"], collections.Counter()),  # no sync point, no msync
    ],
    ids=lambda o: " ".join(o) if isinstance(o, list) else "",
)
def test_libpmem_fallback_msyncs_at_the_sync_points(
    tmpfs: Path, opts: list[str], expected: collections.Counter[tuple[str, str]]
) -> None:
    need(shutil.which("strace") is not None, "strace is not installed (Debian package strace)")
    (tmpfs / "f").write_bytes(b"\x5a" * (256 << 10))
    log = tmpfs / "trace"
    proc = subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=msync", "-o", str(log), *IOLAB, "run", "--name=j",
         "--ioengine=libpmem", "--filename=f", "--bs=4k", "--size=256k", "--output-format=json", *opts],
        cwd=tmpfs, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert collections.Counter(MSYNC.findall(log.read_text())) == expected


def test_libpmem_doctor_finding_on_tmpfs(tmpfs: Path) -> None:
    # iolab run: the finding is printed (stderr) and kept in the JSON's iolab part
    (tmpfs / "f").write_bytes(b"\0" * (1 << 20))  # there already: probed with MAP_SYNC
    rc, out, err = iolab_run(
        tmpfs, "--name=j", "--ioengine=libpmem", "--rw=randread", "--size=1m", "--filename=f"
    )
    assert rc == 0, err
    assert "IOL-PMEM-001" in err and "page-cache numbers, not pmem" in err
    assert out is not None
    found = [f for f in out["iolab"]["findings"] if f["code"] == "IOL-PMEM-001"]
    assert len(found) == 1 and found[0]["evidence"]["fstype"] == "tmpfs"
    assert found[0]["evidence"]["how"].startswith("MAP_SYNC mapping refused")
    # iolab doctor on a job file, before the file exists: judged by the mount
    (tmpfs / "f").unlink()
    (tmpfs / "p.fio").write_text("[j]\nioengine=libpmem\nrw=randwrite\nsize=1m\nfilename=f\n")
    doc = subprocess.run([*IOLAB, "doctor", "p.fio"], cwd=tmpfs, capture_output=True, text=True, timeout=60)
    assert "IOL-PMEM-001" in doc.stdout + doc.stderr
    assert "tmpfs file system not mounted with dax" in doc.stdout + doc.stderr
    # the mmap engine says nothing of the kind
    rc, out, err = iolab_run(
        tmpfs, "--name=j", "--ioengine=mmap", "--rw=randread", "--size=1m", "--filename=f"
    )
    assert rc == 0 and "IOL-PMEM-001" not in err


def test_libpmem_refuses_what_it_cannot_map(tmpfs: Path) -> None:
    rc, _out, err = iolab_run(
        tmpfs, "--name=j", "--ioengine=libpmem", "--rw=read", "--size=64k", "--filename=/dev/zero"
    )
    assert rc != 0 and "ioengine=libpmem" in err and "not a regular file" in err and "Traceback" not in err
    proc = subprocess.run(
        [*IOLAB, "run", "--name=j", "--ioengine=dev-dax", "--rw=read", "--size=64k",
         "--filename=/dev/dax0.0"],
        cwd=tmpfs, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode != 0 and "dev-dax" in proc.stderr and "not supported" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_libpmem_on_real_dax() -> None:
    """The MAP_SYNC path: needs a file system mounted with -o dax on persistent memory (or an emulated pmem
    device: memmap= on the kernel command line, or an NVDIMM given to a VM)."""
    where = os.environ.get("IOLAB_TEST_DAX_DIR")
    if not where:
        pytest.skip(
            "no DAX file system here (no /dev/pmem*; brd and zram have no DAX): set IOLAB_TEST_DAX_DIR to a "
            "directory on a file system mounted with -o dax to run the MAP_SYNC path"
        )
    path = Path(where) / f"iolab-dax-{os.getpid()}"
    try:
        proc = subprocess.run(
            [*IOLAB, "run", "--name=j", "--ioengine=libpmem", "--rw=randwrite", "--size=4m", "--fsync=8",
             f"--filename={path}", "--output-format=json"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert "IOL-PMEM-001" not in proc.stderr
        import json

        line = json.loads(proc.stdout)["jobs"][0]["iolab"]["engine"]["setup"]
        assert line.startswith("libpmem: mode=dax (MAP_SYNC)"), line
        assert f"flush={_expected_flush()}+sfence" in line
    finally:
        path.unlink(missing_ok=True)


def test_libpmem_setup_line_in_the_normal_output(tmpfs: Path) -> None:
    proc = subprocess.run(
        [*IOLAB, "run", "--name=j", "--ioengine=libpmem", "--rw=randwrite", "--size=256k", "--filename=f"],
        cwd=tmpfs, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("  engine       : ")]
    assert lines == [
        "  engine       : libpmem: mode=page-cache"
        f" (MAP_SYNC refused: {os.strerror(95)}; msync at sync points) on 1 of 1 file(s),"
        f" flush={_expected_flush()}+sfence, copy=temporal+flush (direct=0), drain=at fsync,"
        " 262144 bytes mapped"
    ]
