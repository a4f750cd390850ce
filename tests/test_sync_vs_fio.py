"""fsync=N / fdatasync=N / end_fsync, and where a sequential job stops in a file larger than its share,
side by side with fio 3.33 (tiny files; the whole module runs in seconds).

fio decides a sync before the next I/O (so none follows the job's last write, and a loop that ends on one
starts the next with a second one); its sync total_ios counts fsyncs only and leaves end_fsync out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from test_files_vs_fio import _prefill, _version_ok, assert_same, run_both

pytestmark = pytest.mark.skipif(not _version_ok(), reason="needs fio 3.33 on PATH (the oracle)")


def _syncs(out: dict[str, Any] | None) -> list[tuple[str, int, int]]:
    """Per job: name, sync total_ios, sync latencies recorded."""
    assert out is not None
    return [(j["jobname"], j["sync"]["total_ios"], j["sync"]["lat_ns"]["N"]) for j in out["jobs"]]


@pytest.mark.parametrize(
    "opts",
    [
        ["--fsync=1"],  # 16 writes, 15 syncs
        ["--fsync=4"],
        ["--fsync=3"],
        ["--fsync=1", "--loops=2"],  # loop 1 ends with its sync, loop 2 starts with another
        ["--fsync=4", "--loops=3"],
        ["--fsync=3", "--loops=2"],
        ["--fsync=1", "--end_fsync=1"],  # end_fsync: not in the statistics
        ["--end_fsync=1", "--nrfiles=2"],
        ["--fdatasync=2"],  # fdatasyncs: in the latencies, not in total_ios
        ["--fsync=2", "--fdatasync=3"],
        ["--fsync=1", "--nrfiles=2"],
        ["--fsync=1", "--ioengine=libaio"],
        ["--fsync=2", "--ioengine=io_uring"],
    ],
    ids=lambda o: " ".join(o),
)
def test_sync_counts(tmp_path: Path, opts: list[str]) -> None:
    fio, iolab = run_both(tmp_path, "--name=j", "--rw=write", "--size=64k", "--bs=4k", *opts)
    assert iolab.rc == fio.rc == 0, f"fio: {fio.stderr}\niolab: {iolab.stderr}"
    assert iolab.jobs() == fio.jobs()
    assert _syncs(iolab.out) == _syncs(fio.out)


@pytest.mark.parametrize(
    ("files", "opts"),
    [
        ("f0", ["--size=50k"]),  # 12.5 blocks: the 13th starts inside the share and ends in the file
        ("f0", ["--size=50k", "--bs=3k"]),
        ("f0", ["--size=50k", "--loops=2"]),
        ("f0:f1", ["--size=100k"]),  # f0 (100k) gets the 13th block, f1 (laid out at 50k) cannot
        ("f0", ["--size=50k", "--rw=randwrite", "--norandommap"]),
    ],
    ids=lambda x: x if isinstance(x, str) else " ".join(x),
)
def test_sequential_end_in_a_larger_file(tmp_path: Path, files: str, opts: list[str]) -> None:
    fio, iolab = run_both(
        tmp_path, "--name=j", "--rw=write", f"--filename={files}", *opts, prep=_prefill("f0", 100 * 1024)
    )
    if "--rw=randwrite" in opts:
        assert iolab.rc == fio.rc == 0
        assert iolab.jobs() == fio.jobs()  # random offsets are iolab's own: only the counts compare
    else:
        assert_same(fio, iolab)
