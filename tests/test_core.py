"""iolab._core: histogram mapping, Job validation, and real jobs on real files (O_DIRECT where possible)."""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import shutil
import struct
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import need
from iolab import _core
from iolab.engine.config import pack_config

REPO = Path(__file__).resolve().parents[1]
BS = 4096
MS = 1_000_000
S = 1_000_000_000
TRACE = struct.Struct("=QIHBxQQ")

DEFAULTS: dict[str, int | list[int]] = {
    "engine": 0,
    "ddir_mask": 1,
    "random": 0,
    "rw_seq_nr": 1,
    "rw_hole": 0,
    "rwmix_read": 50,
    "direct": 1,
    "iodepth": 1,
    "time_based": 0,
    "runtime_ns": 0,
    "ramp_ns": 0,
    "io_size": 0,
    "loops": 1,
    "norandommap": 0,
    "seed": 12345,
    "fsync_blocks": 0,
    "fdatasync_blocks": 0,
    "end_fsync": 0,
    "zero_buffers": 0,
    "refill_buffers": 0,
    "sample_interval_ns": 500 * MS,
    "iops_interval_ns": 0,
    "bs_min": [BS, BS],
    "bs_max": [BS, BS],
    "blockalign": [BS, BS],
    "bssplit_n": [0, 0],
    "bssplit_bs": [],
    "bssplit_perc": [],
    "max_bs": BS,
    "trim_bs": BS,
    "trim_blockalign": 0,
    "trimwrite": 0,
    "iodepth_batch_submit": 1,
    "iodepth_batch_complete_min": 1,
    "iodepth_batch_complete_max": 1,
    "iodepth_low": 0,
    "engine_flags": 0,
    "sqthread_poll_cpu": 0,
    "force_async": 0,
    "poll_mode": 0,
    "poll_grow": 0,
    "poll_shrink": 0,
    "poll_max_ns": 32768,
    "rate_bps": [0, 0],
    "rate_min_bs": [BS, BS],
    "rate_process": 0,
    "thinktime_blocks": 1,
    "thinktime_ns": 0,
    "thinktime_spin_ns": 0,
    "thinktime_iotime_ns": 0,
    "thinktime_blocks_type": 0,
    "thinktime_blocks_set": 0,
    "invalidate": 0,
    "scramble_buffers": 0,
    "coe_mask": 0,
    "ignore_error_n": [0, 0],
    "ignore_error": [],
    "max_latency_ns": [0, 0],
    "rate_min_bps": [0, 0],
    "rate_min_iops": [0, 0],
    "rate_cycle_ns": 1_000_000_000,
    "io_size_set": 0,
    "number_ios": 0,
    "perc_rand": [100, 100],
    "rand_dist": 0,
    "rand_dist_val": 0,
    "rand_center": 0xBFF0000000000000,  # -1.0: no center
    "zone_lo": [],
    "zone_hi": [],
    "fst_mode": 0,
    "fst_nr": 1,
    "fst_val": 0,
    "zonemode_strided": 0,
    "zone_size": 0,
    "zone_range": 0,
    "zone_skip": 0,
    "rand_repeat": 0,
    "verify": 0,
    "verify_flags": 0,
    "verify_interval": 0,
    "verify_offset": 0,
    "verify_backlog": 0,
    "verify_backlog_batch": 0,
    "verify_thread": 1,
    "verify_pattern_len": 0,
    "verify_fmt_n": 0,
    "verify_fmt_off": [],
    "verify_pattern": [],
    "rwmix_seed": 0,
}


def make_config(**over: int | list[int]) -> bytes:
    v = dict(DEFAULTS)
    v.update(over)
    return pack_config(v)


# ---------------------------------------------------------------------------------------------------
# files


def _supports_direct(d: Path) -> bool:
    probe = d / ".iolab-direct-probe"
    try:
        probe.write_bytes(b"\0" * BS)
        fd = os.open(probe, os.O_RDONLY | os.O_DIRECT)
        try:
            import mmap

            buf = mmap.mmap(-1, BS)
            os.preadv(fd, [buf], 0)
        finally:
            os.close(fd)
        return True
    except OSError:
        return False
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


@pytest.fixture
def ddir(tmp_path: Path) -> Iterator[Path]:
    """A directory whose filesystem supports O_DIRECT (tmp_path unless it is e.g. tmpfs)."""
    if _supports_direct(tmp_path):
        yield tmp_path
        return
    for base in (Path("/var/tmp"), REPO):
        if _supports_direct(base):
            d = Path(tempfile.mkdtemp(prefix="iolab-test-", dir=base))
            try:
                yield d
            finally:
                shutil.rmtree(d, ignore_errors=True)
            return
    pytest.skip("no filesystem with O_DIRECT support found")


def make_file(path: Path, size: int, fill: bytes | None = None) -> Path:
    """A file of `size` bytes: `fill` repeated, or each block holding its own index."""
    with open(path, "wb") as f:
        if fill is not None:
            f.write(fill * (size // len(fill)))
        else:
            for i in range(size // BS):
                f.write(struct.pack("=Q", i) * (BS // 8))
        f.flush()
        os.fsync(f.fileno())
    return path


@contextlib.contextmanager
def opened(path: Path, flags: int, direct: bool = True) -> Iterator[int]:
    fd = os.open(path, flags | (os.O_DIRECT if direct else 0))
    try:
        yield fd
    finally:
        os.close(fd)


def run_job(
    config: bytes, files: list[tuple[int, int, int]] | list[tuple[int, int, int, int]], trace: int = 0
) -> tuple[dict[str, Any], list[tuple[int, int, int, int, int, int]]]:
    job = _core.Job(config, files)
    buf = bytearray(TRACE.size * trace)
    if trace:
        job._set_trace(buf)
    job.run()
    res = job.raw_result()
    recs = [TRACE.unpack_from(buf, i * TRACE.size) for i in range(job._trace_count())]
    return res, recs


def blocks(path: Path) -> list[bytes]:
    data = path.read_bytes()
    return [data[i : i + BS] for i in range(0, len(data), BS)]


# ---------------------------------------------------------------------------------------------------
# histogram


def ref_index(v: int) -> int:
    s = 7  # DESIGN.md: index = 2^S + (k - S) * 2^S + ((v >> (k - S)) - 2^S)
    if v < (1 << s):
        return v
    k = v.bit_length() - 1
    if k > 39:
        return (1 << s) + (40 - s) * (1 << s) - 1
    return (1 << s) + (k - s) * (1 << s) + ((v >> (k - s)) - (1 << s))


def ref_low(i: int) -> int:
    if i < 128:
        return i
    g = i // 128 - 1
    return (128 + i % 128) << g


def hist_values() -> list[int]:
    vals = set(range(0, 1100))
    for k in range(64):
        for d in (-2, -1, 0, 1, 2):
            if 0 <= 2**k + d < 2**64:
                vals.add(2**k + d)
    x = 1
    while x < 2**64:  # a geometric walk through everything in between
        vals.add(x)
        x = x * 1009 // 1000 + 1
    vals.add(2**64 - 1)
    return sorted(vals)


def test_hist_index_matches_reference() -> None:
    for v in hist_values():
        assert _core.hist_index(v) == ref_index(v), v


def test_hist_index_edges() -> None:
    assert _core.hist_index(0) == 0
    assert _core.hist_index(127) == 127
    assert _core.hist_index(128) == 128
    assert _core.hist_index(255) == 255
    assert _core.hist_index(256) == 256
    assert _core.hist_index(257) == 256  # bucket width 2 from 256 on
    assert _core.hist_index(2**40 - 1) == _core.HIST_BUCKETS - 1
    assert _core.hist_index(2**40) == _core.HIST_BUCKETS - 1
    assert _core.hist_index(2**64 - 1) == _core.HIST_BUCKETS - 1
    with pytest.raises(OverflowError):
        _core.hist_index(-1)
    with pytest.raises(OverflowError):
        _core.hist_index(2**64)


def test_hist_relative_error_and_monotonic() -> None:
    prev = 0
    for v in hist_values():
        i = _core.hist_index(v)
        assert i >= prev
        prev = i
        if v < 2**40:
            low = ref_low(i)
            assert low <= v
            assert (v - low) / max(v, 1) <= 1 / 128 < 0.01
            if i + 1 < _core.HIST_BUCKETS:
                assert v < ref_low(i + 1)
    assert ref_low(_core.HIST_BUCKETS - 1) + 2**32 == 2**40


# ---------------------------------------------------------------------------------------------------
# Job construction


def test_job_validation(ddir: Path) -> None:
    path = make_file(ddir / "f", 64 * BS)
    good = make_config(io_size=64 * BS)
    with opened(path, os.O_RDONLY) as fd:
        files = [(fd, 0, 64 * BS)]
        _core.Job(good, files)  # fine

        bad_magic = bytearray(good)
        bad_magic[0] ^= 0xFF
        cases: list[tuple[bytes, list[tuple[int, int, int]], str]] = [
            (bytes(bad_magic), files, "magic"),
            (good[:-8], files, "bytes, expected"),
            (make_config(io_size=64 * BS, size=100), files, "size field"),
            (good, [], "must not be empty"),
            (good, [(987654, 0, 64 * BS)], "not an open file descriptor"),
            (good, [(fd, 0, 0)], "region size is 0"),
            (good, [(fd, 2**63 - 10, 64 * BS)], "beyond the largest file offset"),
            (make_config(io_size=64 * BS, engine=7), files, "unknown engine"),
            (make_config(io_size=64 * BS, poll_mode=2), files, "asynchronous engine"),
            (make_config(io_size=64 * BS, engine=1, poll_mode=3), files, "poll_mode"),
            (make_config(io_size=64 * BS, engine=1, poll_mode=1, poll_max_ns=0), files, "poll_max_ns"),
            (make_config(io_size=64 * BS, rate_process=2), files, "rate_process"),
            (make_config(io_size=64 * BS, thinktime_ns=10, thinktime_spin_ns=20), files, "thinktime_spin"),
            (make_config(io_size=64 * BS, engine=1, iodepth=70000), files, "iodepth"),
            (make_config(io_size=64 * BS, ddir_mask=0), files, "ddir_mask"),
            (make_config(io_size=64 * BS, loops=0), files, "loops"),
            (make_config(io_size=0), files, "io_size"),
            (make_config(io_size=64 * BS, rwmix_read=101), files, "rwmix_read"),
            (make_config(io_size=64 * BS, bs_min=[8192, BS]), files, "block size range"),
            (make_config(io_size=64 * BS, max_bs=512), files, "max_bs"),
            (
                make_config(io_size=64 * BS, bssplit_n=[2, 0], bssplit_bs=[BS, 8192], bssplit_perc=[50, 40]),
                files,
                "sum to 90",
            ),
        ]
        for cfg, fl, match in cases:
            with pytest.raises(ValueError, match=match):
                _core.Job(cfg, fl)
        with pytest.raises(ValueError, match="out of range"):
            _core.Job(good, [(fd, -1, 64 * BS)])
        with pytest.raises(TypeError):
            _core.Job(good, [(fd, 0)])  # type: ignore[list-item]
        with pytest.raises(TypeError):
            _core.Job(good, [("x", 0, 1)])  # type: ignore[list-item]


def test_region_smaller_than_a_block(ddir: Path) -> None:
    # fio runs such a region: a block starting in it is issued when it ends inside the file
    path = make_file(ddir / "f", 16 * BS)
    with opened(path, os.O_RDONLY) as fd:
        res, trace = run_job(make_config(io_size=BS), [(fd, 0, 100)], trace=4)
        assert res["error"] == 0 and res["ddir"]["read"]["ios"] == 1
        assert [(t[0], t[1]) for t in trace] == [(0, BS)]
        # the file as the job's setup saw it (fio's real_file_size) was 100 bytes: the block does not fit
        res, _ = run_job(make_config(io_size=BS), [(fd, 0, 100, 100)])
        assert res["error"] == 0 and res["ddir"]["read"]["ios"] == 0


def test_run_once_and_result_order(ddir: Path) -> None:
    path = make_file(ddir / "f", 16 * BS)
    with opened(path, os.O_RDONLY) as fd:
        job = _core.Job(make_config(io_size=16 * BS), [(fd, 0, 16 * BS)])
        assert job.progress() == (0, 0, 0, 0, 0, 0, 0)
        with pytest.raises(RuntimeError, match="not been called"):
            job.raw_result()
        job.run()
        with pytest.raises(RuntimeError, match="once"):
            job.run()
        assert job.progress() == (16, 0, 16 * BS, 0, 3, 0, 0)
        assert job.raw_result()["ddir"]["read"]["ios"] == 16


def check_hist(h: dict[str, Any], count: int) -> None:
    assert set(h) == {"count", "min", "max", "sum", "sumsq", "buckets"}
    assert h["count"] == count
    assert isinstance(h["sumsq"], float)
    assert isinstance(h["buckets"], bytes)
    assert len(h["buckets"]) == 8 * _core.HIST_BUCKETS
    b = struct.unpack(f"={_core.HIST_BUCKETS}Q", h["buckets"])
    assert sum(b) == count
    if count:
        assert 0 < h["min"] <= h["max"]
        assert h["min"] * count <= h["sum"] <= h["max"] * count
        nz = [i for i, c in enumerate(b) if c]
        assert nz[0] == _core.hist_index(h["min"])
        assert nz[-1] == _core.hist_index(h["max"])
        assert h["sumsq"] >= h["sum"] ** 2 / count * (1 - 1e-9)
    else:
        assert (h["min"], h["max"], h["sum"], h["sumsq"]) == (0, 0, 0, 0.0)


def _fio_sync_points(ddirs: list[int], n: int) -> list[int]:
    """Where fio's fsync=n puts its syncs among these reads (0) and writes (1), as trace positions: before
    each I/O but the first, when the writes so far are a non-zero multiple of n and no sync came just before
    (so reads of a mixed job are each followed by one while the count stays a multiple)."""
    out: list[int] = []
    writes = 0
    pos = 0
    for i, d in enumerate(ddirs):
        if i and writes and writes % n == 0 and (not out or out[-1] != pos - 1):
            out.append(pos)
            pos += 1
        writes += d == 1
        pos += 1
    return out


def test_result_shape(ddir: Path) -> None:
    path = make_file(ddir / "f", 32 * BS)
    with opened(path, os.O_RDWR) as fd:
        res, tr = run_job(
            make_config(io_size=32 * BS, ddir_mask=3, random=1, fsync_blocks=4), [(fd, 0, 32 * BS)], 100
        )
    assert set(res) == {
        "runtime_ns", "ramp_done", "stopped", "error", "error_msg", "error_offset", "error_ddir",
        "usr_ns", "sys_ns", "ctx", "majf", "minf", "hist_sub_bits", "hist_buckets", "ddir", "samples",
        "engine", "engine_info", "tid", "depth", "poll", "rate", "cpus", "ramp", "drained", "total_err",
        "first_error", "end_syncs", "sample_stats",
    }  # fmt: skip
    zero = {"ios": 0, "bytes": 0}
    none = {"read": zero, "write": zero, "trim": zero, "syncs": 0}
    assert res["ramp"] == res["drained"] == none  # no ramp; psync has nothing in flight at the end
    assert res["cpus"] == sorted(os.sched_getaffinity(0))[:64]
    assert res["engine"] == "psync" and res["engine_info"] == "" and res["tid"] > 0
    assert res["depth"]["max_inflight"] == 1 and res["depth"]["iodepth"] == 1
    n_all = sum(d["ios"] for d in res["ddir"].values())
    assert res["depth"]["level"] == [n_all, 0, 0, 0, 0, 0, 0]
    assert res["depth"]["submit"] == res["depth"]["complete"] == [0, n_all, 0, 0, 0, 0, 0]
    assert res["poll"]["mode"] == "off" and res["poll"]["waits"] == 0
    assert res["rate"]["rated"] is False
    assert res["hist_sub_bits"] == 7 and res["hist_buckets"] == _core.HIST_BUCKETS
    assert res["ramp_done"] is True and res["stopped"] is False
    assert (res["error"], res["error_msg"], res["error_offset"], res["error_ddir"]) == (0, "", 0, "")
    assert res["runtime_ns"] > 0
    assert set(res["ddir"]) == {"read", "write", "trim", "sync"}
    for name, d in res["ddir"].items():
        keys = {"ios", "bytes", "short_ios", "dropped", "clat", "lat", "slat", "err_ios", "datasync_ios"}
        assert set(d) == keys
        assert d["dropped"] == 0 and d["short_ios"] == 0
        check_hist(d["lat"], d["ios"])
        assert d["clat"] == d["lat"]  # psync: clat is lat
        check_hist(d["slat"], 0)  # psync: no slat
        if name != "sync":
            assert d["bytes"] == d["ios"] * BS
    rd, wr, sy = (res["ddir"][k] for k in ("read", "write", "sync"))
    assert rd["ios"] + wr["ios"] == 32
    assert sy["bytes"] == 0
    points = _fio_sync_points([t[3] for t in tr if t[3] != 3], 4)
    assert sy["ios"] == len(points) and [i for i, t in enumerate(tr) if t[3] == 3] == points
    for key in ("usr_ns", "sys_ns", "ctx", "majf", "minf"):
        assert isinstance(res[key], int) and res[key] >= 0
    last = res["samples"][-1]
    assert last == (res["runtime_ns"], rd["ios"], rd["bytes"], wr["ios"], wr["bytes"], 0, 0)


# ---------------------------------------------------------------------------------------------------
# offsets


def test_sequential_write_covers_every_byte(ddir: Path) -> None:
    n = 256
    path = make_file(ddir / "f", n * BS, b"\xff")
    with opened(path, os.O_WRONLY) as fd:
        res, _ = run_job(make_config(ddir_mask=2, io_size=n * BS, refill_buffers=0), [(fd, 0, n * BS)])
    assert res["error"] == 0
    assert res["ddir"]["write"]["ios"] == n and res["ddir"]["write"]["bytes"] == n * BS
    bl = blocks(path)
    assert len(bl) == n
    assert b"\xff" * BS not in bl
    assert all(b == bl[0] for b in bl)
    assert len(set(bl[0])) > 100  # seeded random data, not a constant pattern


def test_sequential_region_and_wrap(ddir: Path) -> None:
    # region of 8 blocks at offset 4 blocks; 20 I/Os: wraps inside the region
    path = make_file(ddir / "f", 32 * BS)
    with opened(path, os.O_RDONLY) as fd:
        _, tr = run_job(make_config(io_size=20 * BS, io_size_set=1), [(fd, 4 * BS, 8 * BS)], trace=100)
    offs = [r[0] // BS for r in tr]
    assert offs == [4 + i % 8 for i in range(20)]


def test_rw_hole(ddir: Path) -> None:
    path = make_file(ddir / "f", 16 * BS)
    with opened(path, os.O_RDONLY) as fd:
        _, tr = run_job(make_config(io_size=8 * BS, rw_hole=BS), [(fd, 0, 16 * BS)], trace=100)
    assert [r[0] // BS for r in tr] == [0, 2, 4, 6, 8, 10, 12, 14]


def test_round_robin_over_files(ddir: Path) -> None:
    a, b = make_file(ddir / "a", 8 * BS), make_file(ddir / "b", 8 * BS)
    with opened(a, os.O_RDONLY) as fa, opened(b, os.O_RDONLY) as fb:
        res, tr = run_job(make_config(io_size=16 * BS), [(fa, 0, 8 * BS), (fb, 0, 8 * BS)], trace=100)
    assert [r[2] for r in tr] == [0, 1] * 8
    assert [r[0] // BS for r in tr] == [i // 2 for i in range(16)]
    assert res["ddir"]["read"]["ios"] == 16


def test_random_map_each_block_once_per_pass(ddir: Path) -> None:
    n = 1000  # not a multiple of 64: exercises the map's tail
    path = make_file(ddir / "f", n * BS)
    with opened(path, os.O_RDONLY) as fd:
        res, tr = run_job(make_config(random=1, io_size=n * BS, loops=3), [(fd, 0, n * BS)], trace=4 * n)
    assert res["ddir"]["read"]["ios"] == 3 * n
    offs = [r[0] // BS for r in tr]
    assert len(offs) == 3 * n
    for p in range(3):
        assert sorted(offs[p * n : (p + 1) * n]) == list(range(n))
    assert offs[:n] != list(range(n))  # and it is random, not sequential
    assert offs[:n] != offs[n : 2 * n]


def test_random_map_verified_through_the_data(ddir: Path) -> None:
    # independent of the trace hook: one pass of n random writes leaves no block unwritten, so (n writes,
    # n blocks) every block was written exactly once
    n = 512
    path = make_file(ddir / "f", n * BS, b"\xff")
    with opened(path, os.O_WRONLY) as fd:
        res, _ = run_job(make_config(ddir_mask=2, random=1, io_size=n * BS), [(fd, 0, n * BS)])
    assert res["ddir"]["write"]["ios"] == n
    assert b"\xff" * BS not in blocks(path)


def test_norandommap_repeats(ddir: Path) -> None:
    n = 512
    path = make_file(ddir / "f", n * BS, b"\xff")
    with opened(path, os.O_WRONLY) as fd:
        res, tr = run_job(
            make_config(ddir_mask=2, random=1, norandommap=1, io_size=n * BS), [(fd, 0, n * BS)], trace=n
        )
    assert res["ddir"]["write"]["ios"] == n
    offs = [r[0] for r in tr]
    assert len(set(offs)) < n  # P(no repeat in 512 draws of 512) is astronomically small
    assert all(o % BS == 0 and o < n * BS for o in offs)
    assert b"\xff" * BS in blocks(path)  # so some block was never written


def test_random_seed_determinism(ddir: Path) -> None:
    n = 256
    path = make_file(ddir / "f", n * BS)
    with opened(path, os.O_RDONLY) as fd:
        runs = [
            [r[0] for r in run_job(make_config(random=1, io_size=n * BS, seed=s), [(fd, 0, n * BS)], n)[1]]
            for s in (1, 1, 2)
        ]
    assert runs[0] == runs[1] != runs[2]


def test_rw_seq_nr(ddir: Path) -> None:
    n = 512
    path = make_file(ddir / "f", n * BS)
    with opened(path, os.O_RDONLY) as fd:
        _, tr = run_job(make_config(random=1, rw_seq_nr=8, io_size=n * BS), [(fd, 0, n * BS)], trace=n)
    offs = [r[0] // BS for r in tr]
    assert len(offs) == n
    # groups of 8 (fio's ddir_seq_nr): a random start then 7 that continue from the previous I/O; as in
    # fio the sequential ones are not marked in the random map, so blocks may repeat
    seq = sum(1 for i in range(n) if i % 8 and offs[i] == offs[i - 1] + 1)
    assert seq >= 0.95 * (n - n // 8)
    starts = [offs[i] for i in range(0, n, 8)]
    assert len(set(starts)) == len(starts) and starts != sorted(starts)


def test_bsrange_sizes(ddir: Path) -> None:
    n = 256
    path = make_file(ddir / "f", n * BS)
    with opened(path, os.O_RDONLY) as fd:
        res, tr = run_job(
            make_config(
                random=1, io_size=n * BS, bs_min=[BS, BS], bs_max=[4 * BS, BS], max_bs=4 * BS, norandommap=1
            ),
            [(fd, 0, n * BS)],
            trace=n,
        )
    sizes = Counter(r[1] for r in tr)
    assert set(sizes) <= {BS, 2 * BS, 3 * BS, 4 * BS} and len(sizes) == 4
    assert all(r[0] % BS == 0 and r[0] + r[1] <= n * BS for r in tr)
    assert res["ddir"]["read"]["bytes"] == sum(r[1] for r in tr) == n * BS


def test_bssplit_distribution(ddir: Path) -> None:
    size = 4 << 20
    path = make_file(ddir / "f", size, b"\0" * BS)
    split = [(BS, 50), (2 * BS, 30), (4 * BS, 20)]
    cfg = make_config(
        random=1,
        norandommap=1,
        time_based=1,
        runtime_ns=S,
        io_size=size,
        bssplit_n=[3, 0],
        bssplit_bs=[b for b, _ in split],
        bssplit_perc=[p for _, p in split],
        max_bs=4 * BS,
    )
    with opened(path, os.O_RDONLY) as fd:
        res, tr = run_job(cfg, [(fd, 0, size)], trace=200_000)
    n = res["ddir"]["read"]["ios"]
    assert n == len(tr) > 1000
    sizes = Counter(r[1] for r in tr)
    for bs, perc in split:
        assert abs(sizes[bs] / n - perc / 100) < 0.05, (bs, sizes)


def test_rwmix(ddir: Path) -> None:
    n = 2048
    path = make_file(ddir / "f", n * BS)
    with opened(path, os.O_RDWR) as fd:
        res, tr = run_job(
            make_config(ddir_mask=3, random=1, rwmix_read=70, io_size=n * BS), [(fd, 0, n * BS)], n
        )
    r, w = res["ddir"]["read"]["ios"], res["ddir"]["write"]["ios"]
    assert r + w == n
    assert abs(r / n - 0.70) < 0.04
    assert Counter(t[3] for t in tr) == {0: r, 1: w}
    assert sorted(t[0] // BS for t in tr) == list(range(n))  # one map for both directions


# ---------------------------------------------------------------------------------------------------
# buffers and syncs


def test_zero_buffers(ddir: Path) -> None:
    path = make_file(ddir / "f", 16 * BS, b"\xff")
    with opened(path, os.O_WRONLY) as fd:
        run_job(make_config(ddir_mask=2, io_size=16 * BS, zero_buffers=1), [(fd, 0, 16 * BS)])
    assert path.read_bytes() == bytes(16 * BS)


def test_refill_buffers(ddir: Path) -> None:
    path = make_file(ddir / "f", 64 * BS, b"\xff")
    with opened(path, os.O_WRONLY) as fd:
        run_job(make_config(ddir_mask=2, io_size=64 * BS, refill_buffers=1), [(fd, 0, 64 * BS)])
    bl = blocks(path)
    assert len(set(bl)) == 64 and b"\xff" * BS not in bl


def test_fsync_counts(ddir: Path) -> None:
    path = make_file(ddir / "f", 64 * BS)
    with opened(path, os.O_WRONLY, direct=False) as fd:
        res, tr = run_job(make_config(ddir_mask=2, io_size=64 * BS, fsync_blocks=4), [(fd, 0, 64 * BS)], 200)
        assert res["ddir"]["sync"]["ios"] == 15
        # a sync follows every 4th write but the last (fio decides it before the next I/O)
        assert [t[3] for t in tr] == [1, 1, 1, 1, 3] * 15 + [1, 1, 1, 1]  # 3: sync (after read, write, trim)
        # fio: a write count that is a multiple of both issues the fsync only; end_fsync is not counted
        res, _ = run_job(
            make_config(ddir_mask=2, io_size=64 * BS, fsync_blocks=4, fdatasync_blocks=8, end_fsync=1),
            [(fd, 0, 64 * BS)],
        )
        sy = res["ddir"]["sync"]
        assert sy["ios"] == 15 and sy["datasync_ios"] == 0
        check_hist(sy["lat"], 15)
        assert sy["clat"] == sy["lat"]
        res, _ = run_job(make_config(ddir_mask=2, io_size=64 * BS, fdatasync_blocks=8), [(fd, 0, 64 * BS)])
        assert res["ddir"]["sync"]["ios"] == 7 and res["ddir"]["sync"]["datasync_ios"] == 7
        res, _ = run_job(make_config(ddir_mask=2, io_size=64 * BS, end_fsync=1), [(fd, 0, 64 * BS)])
        assert res["ddir"]["sync"]["ios"] == 0
        # reads never sync
        res, _ = run_job(make_config(ddir_mask=1, io_size=64 * BS, fsync_blocks=1), [(fd, 0, 64 * BS)])
        assert res["ddir"]["sync"]["ios"] == 0


# ---------------------------------------------------------------------------------------------------
# time


def test_time_based_runtime(ddir: Path) -> None:
    path = make_file(ddir / "f", 64 * BS)
    with opened(path, os.O_RDONLY) as fd:
        t0 = time.monotonic()
        res, _ = run_job(
            make_config(time_based=1, runtime_ns=S, io_size=64 * BS, sample_interval_ns=100 * MS),
            [(fd, 0, 64 * BS)],
        )
        wall = time.monotonic() - t0
    assert 0.9 * S <= res["runtime_ns"] <= 1.1 * S
    assert 0.9 <= wall <= 1.3
    rd = res["ddir"]["read"]
    assert rd["ios"] > 64  # looped over the file many times
    samples = res["samples"]
    assert 10 <= len(samples) <= 11
    assert [s[0] for s in samples[:10]] == [(i + 1) * 100 * MS for i in range(10)]
    assert sum(s[1] for s in samples) == rd["ios"] and sum(s[2] for s in samples) == rd["bytes"]
    assert samples[-1][0] == res["runtime_ns"]


def test_runtime_caps_size_based_job(ddir: Path) -> None:
    path = make_file(ddir / "f", 64 * BS)
    with opened(path, os.O_RDONLY) as fd:
        res, _ = run_job(make_config(runtime_ns=300 * MS, io_size=64 * BS, loops=10**9), [(fd, 0, 64 * BS)])
    assert 0.27 * S <= res["runtime_ns"] <= 0.4 * S


def test_samples_merge_when_full(ddir: Path) -> None:
    path = make_file(ddir / "f", 64 * BS)
    interval = 100_000  # 100 us: 1 s gives 10000 intervals, more than the preallocated samples
    with opened(path, os.O_RDONLY) as fd:
        res, _ = run_job(
            make_config(time_based=1, runtime_ns=S, io_size=64 * BS, sample_interval_ns=interval),
            [(fd, 0, 64 * BS)],
        )
    samples = res["samples"]
    times = [s[0] for s in samples]
    steps = {b - a for a, b in itertools.pairwise(times[:-1])}
    assert len(steps) == 1
    (step,) = steps
    assert step >= 4 * interval and step % interval == 0 and (step // interval) & (step // interval - 1) == 0
    assert times[0] == step
    assert times[-1] == res["runtime_ns"]
    assert sum(s[1] for s in samples) == res["ddir"]["read"]["ios"]
    assert sum(s[2] for s in samples) == res["ddir"]["read"]["bytes"]
    # the statistics stay at the requested interval all run long (intervals without I/O left out)
    n, lo, hi, mean, _ = res["sample_stats"]["read"]["bw"]
    assert 0.5 * S / interval <= n <= S / interval + 1
    assert 0 < lo <= mean <= hi
    assert res["sample_stats"]["read"]["iops"][0] == n


def test_iops_samples_at_their_own_interval(ddir: Path) -> None:
    path = make_file(ddir / "f", 64 * BS)
    with opened(path, os.O_RDONLY) as fd:
        res, _ = run_job(
            make_config(
                time_based=1,
                runtime_ns=S,
                io_size=64 * BS,
                sample_interval_ns=100 * MS,
                iops_interval_ns=30 * MS,
            ),
            [(fd, 0, 64 * BS)],
        )
    rd = res["ddir"]["read"]
    for key, step in (("samples", 100 * MS), ("iops_samples", 30 * MS)):
        series = res[key]
        full = len(series) - (series[-1][0] % step != 0)
        assert [s[0] for s in series[:full]] == [(i + 1) * step for i in range(full)]
        assert series[-1][0] == res["runtime_ns"]
        assert sum(s[1] for s in series) == rd["ios"] and sum(s[2] for s in series) == rd["bytes"]
    assert 9 <= res["sample_stats"]["read"]["bw"][0] <= 10
    assert 32 <= res["iops_sample_stats"]["read"]["iops"][0] <= 33


def test_ramp_not_counted_time_based(ddir: Path) -> None:
    path = make_file(ddir / "f", 64 * BS)
    with opened(path, os.O_RDONLY) as fd:
        job = _core.Job(
            make_config(time_based=1, runtime_ns=500 * MS, ramp_ns=400 * MS, io_size=64 * BS),
            [(fd, 0, 64 * BS)],
        )
        phases = []
        t = threading.Thread(target=job.run)
        t0 = time.monotonic()
        t.start()
        while t.is_alive():
            phases.append(job.progress()[4])
            time.sleep(0.02)
        t.join()
        wall = time.monotonic() - t0
    res = job.raw_result()
    assert res["ramp_done"] is True
    assert 0.45 * S <= res["runtime_ns"] <= 0.55 * S
    assert 0.85 <= wall <= 1.3
    seen = [p for p in phases if p]  # 0 until the thread enters run()
    assert seen[0] == 1 and 2 in seen and seen.index(2) > seen.index(1)
    rd = res["ddir"]["read"]
    assert rd["lat"]["count"] == rd["ios"] == sum(s[1] for s in res["samples"])
    assert job.progress()[0] == rd["ios"]
    # the ramp's I/O is left out of the statistics but reported apart (the device saw it)
    ramp = res["ramp"]["read"]
    assert ramp["ios"] > 0 and ramp["bytes"] == ramp["ios"] * BS
    assert res["ramp"]["write"] == {"ios": 0, "bytes": 0} and res["ramp"]["syncs"] == 0


def test_a_size_based_job_that_ends_in_its_ramp_is_reported_whole(ddir: Path) -> None:
    """fio 3.33: size=1m ramp_time=1s reports the whole 1 MiB; the statistics are reset only when the ramp
    ends, and this one never did."""
    n = 64
    path = make_file(ddir / "f", n * BS)
    with opened(path, os.O_RDONLY) as fd:
        res, tr = run_job(make_config(ramp_ns=2000 * MS, io_size=n * BS), [(fd, 0, n * BS)], trace=10 * n)
    assert res["ramp_done"] is False and res["stopped"] is False
    assert res["ddir"]["read"]["ios"] == n
    assert [r[0] // BS for r in tr] == list(range(n))
    assert res["ramp"]["read"] == {"ios": 0, "bytes": 0}
    assert 0 < res["runtime_ns"] < 1000 * MS


def test_ramp_passes_count_against_loops(ddir: Path) -> None:
    """fio 3.33: loops=1000 with ramp_time=1s measures only the loops left when the ramp ends; iolab does the
    same, so ramp and measured I/O add up to exactly loops x the file."""
    n = 64
    loops = 20000
    path = make_file(ddir / "f", n * BS)
    with opened(path, os.O_RDONLY) as fd:
        res, _ = run_job(make_config(ramp_ns=100 * MS, io_size=n * BS, loops=loops), [(fd, 0, n * BS)])
    assert res["ramp_done"] is True, "the ramp should end before 20000 passes over 64 blocks"
    ramp_ios, measured = res["ramp"]["read"]["ios"], res["ddir"]["read"]["ios"]
    assert ramp_ios > 0 and measured > 0
    assert ramp_ios + measured == loops * n


def test_ramp_io_and_syncs_are_reported_apart(ddir: Path) -> None:
    n = 64
    path = make_file(ddir / "f", n * BS)
    with opened(path, os.O_RDWR) as fd:
        res, _ = run_job(
            make_config(
                ddir_mask=2,
                time_based=1,
                ramp_ns=150 * MS,
                runtime_ns=150 * MS,
                io_size=n * BS,
                fsync_blocks=8,
            ),
            [(fd, 0, n * BS)],
        )
    ramp = res["ramp"]
    assert ramp["write"]["ios"] > 0 and ramp["read"] == {"ios": 0, "bytes": 0}
    assert ramp["write"]["bytes"] == ramp["write"]["ios"] * BS
    # a fsync after every 8 writes, in the ramp as in the measured phase
    assert ramp["write"]["ios"] // 8 - 1 <= ramp["syncs"] <= ramp["write"]["ios"] // 8 + 1
    assert res["ddir"]["write"]["ios"] > 0 and res["ddir"]["sync"]["ios"] > 0


def test_io_in_flight_at_the_end_is_counted_as_fio_counts_it(ddir: Path) -> None:
    """libaio at depth 16: when the runtime ends, the I/Os still in flight complete and are counted, bytes
    and latency, as fio counts them (its total_ios equals the device's count); nothing is "drained"."""
    n = 256
    path = make_file(ddir / "f", n * BS)
    with opened(path, os.O_RDONLY) as fd:
        res, _ = run_job(
            make_config(engine=1, iodepth=16, random=1, time_based=1, runtime_ns=200 * MS, io_size=n * BS),
            [(fd, 0, n * BS)],
        )
    assert res["error"] == 0, res["error_msg"]
    assert res["drained"]["read"] == {"ios": 0, "bytes": 0}
    assert res["ramp"]["read"]["ios"] == 0
    read = res["ddir"]["read"]
    assert read["ios"] > 16 and read["bytes"] == read["ios"] * BS
    assert read["lat"]["count"] == read["clat"]["count"] == read["ios"]


def test_stop_from_another_thread(ddir: Path) -> None:
    path = make_file(ddir / "f", 64 * BS)
    with opened(path, os.O_RDONLY) as fd:
        job = _core.Job(make_config(time_based=1, runtime_ns=60 * S, io_size=64 * BS), [(fd, 0, 64 * BS)])
        t = threading.Thread(target=job.run)
        t.start()
        time.sleep(0.3)
        p1 = job.progress()
        time.sleep(0.1)
        p2 = job.progress()
        t0 = time.monotonic()
        job.stop()
        t.join(5)
        assert not t.is_alive()
        assert time.monotonic() - t0 < 0.5
    assert p1[4] == p2[4] == 2
    assert 0 < p1[0] < p2[0] and p2[2] == p2[0] * BS
    res = job.raw_result()
    assert res["stopped"] is True and res["error"] == 0
    assert 0.3 * S <= res["runtime_ns"] <= 1.0 * S
    rd = res["ddir"]["read"]
    assert rd["ios"] >= p2[0]
    check_hist(rd["lat"], rd["ios"])


def test_stop_before_run_and_during_ramp(ddir: Path) -> None:
    path = make_file(ddir / "f", 64 * BS)
    with opened(path, os.O_RDONLY) as fd:
        job = _core.Job(make_config(io_size=64 * BS), [(fd, 0, 64 * BS)])
        job.stop()
        job.run()
        res = job.raw_result()
        assert res["stopped"] is True and res["ddir"]["read"]["ios"] == 0

        job = _core.Job(
            make_config(time_based=1, runtime_ns=S, ramp_ns=30 * S, io_size=64 * BS), [(fd, 0, 64 * BS)]
        )
        t = threading.Thread(target=job.run)
        t.start()
        time.sleep(0.2)
        assert job.progress()[4] == 1
        job.stop()
        t.join(5)
        res = job.raw_result()
    assert res["stopped"] is True and res["ramp_done"] is False
    assert res["runtime_ns"] == 0 and res["ddir"]["read"]["ios"] == 0 and res["samples"] == []


# ---------------------------------------------------------------------------------------------------
# errors


def test_error_read_on_write_only_fd(ddir: Path) -> None:
    path = make_file(ddir / "f", 16 * BS)
    with opened(path, os.O_WRONLY) as fd:
        res, _ = run_job(make_config(io_size=16 * BS, rw_hole=0), [(fd, 2 * BS, 8 * BS)])
    assert res["error"] == errno.EBADF
    assert res["error_ddir"] == "read"
    assert res["error_offset"] == 2 * BS
    assert "read of 4096 bytes at offset 8192" in res["error_msg"]
    assert "Bad file descriptor" in res["error_msg"]
    assert res["ddir"]["read"]["ios"] == 0


def test_error_short_read_then_end_of_file(ddir: Path) -> None:
    # a 1.5-block file read as 2 blocks (buffered: O_DIRECT would refuse the odd size): the second read
    # is short, its continuation hits the end of the file
    path = ddir / "f"
    path.write_bytes(b"x" * (BS + BS // 2))
    with opened(path, os.O_RDONLY, direct=False) as fd:
        res, _ = run_job(make_config(io_size=2 * BS), [(fd, 0, 2 * BS)])
    assert res["error"] == errno.EIO
    assert res["error_ddir"] == "read"
    assert res["error_offset"] == BS + BS // 2
    assert "end of file" in res["error_msg"]
    assert res["ddir"]["read"]["ios"] == 1


def test_error_write_fsync_on_read_only_fd(ddir: Path) -> None:
    path = make_file(ddir / "f", 16 * BS)
    with opened(path, os.O_RDONLY) as fd:
        res, _ = run_job(make_config(ddir_mask=2, io_size=16 * BS), [(fd, 0, 16 * BS)])
    assert res["error"] == errno.EBADF and res["error_ddir"] == "write" and res["error_offset"] == 0


@pytest.fixture
def loop_device(ddir: Path) -> Iterator[str]:
    need(os.geteuid() == 0 and shutil.which("losetup") is not None, "needs root and losetup (util-linux)")
    backing = make_file(ddir / "loop-backing", 1 << 20)
    try:
        dev = subprocess.run(
            ["losetup", "--find", "--show", str(backing)], check=True, capture_output=True, text=True
        ).stdout.strip()
    except (subprocess.CalledProcessError, OSError) as e:
        pytest.skip(f"losetup failed: {e}")
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)


@pytest.mark.root
def test_error_region_beyond_block_device(loop_device: str) -> None:
    size = 1 << 20
    with opened(Path(loop_device), os.O_RDWR) as fd:
        assert os.lseek(fd, 0, os.SEEK_END) == size
        res, _ = run_job(make_config(io_size=2 * size), [(fd, 0, 2 * size)])
        assert res["error"] != 0 and res["error_ddir"] == "read"
        assert res["error_offset"] == size
        assert res["ddir"]["read"]["ios"] == size // BS
        res, _ = run_job(make_config(ddir_mask=2, io_size=2 * size), [(fd, 0, 2 * size)])
        assert res["error"] != 0 and res["error_ddir"] == "write"
        assert res["error_offset"] == size
        assert res["ddir"]["write"]["ios"] == size // BS


def test_continue_on_error_counts_errors_and_meets_the_deadline(ddir: Path) -> None:
    # every read fails (EBADF on a write-only fd); continue_on_error=read with EBADF listed lets each pass
    path = make_file(ddir / "f", 16 * BS)
    with opened(path, os.O_WRONLY) as fd:
        cfg = make_config(
            io_size=16 * BS,
            time_based=1,
            runtime_ns=300 * MS,
            coe_mask=1,
            ignore_error_n=[1, 0],
            ignore_error=[errno.EBADF],
        )
        t0 = time.monotonic()
        res, _ = run_job(cfg, [(fd, 0, 16 * BS)])
    assert time.monotonic() - t0 < 2.0  # the deadline ends the job although no I/O succeeds
    assert res["error"] == 0 and res["first_error"] == errno.EBADF
    assert res["ddir"]["read"]["ios"] == 0 and res["ddir"]["read"]["err_ios"] == res["total_err"] > 16


@pytest.mark.parametrize(("mask", "listed", "total"), [(0, [], 0), (1, [], 1), (2, [errno.EBADF], 0)])
def test_errors_continue_on_error_does_not_let_pass_end_the_job(
    ddir: Path, mask: int, listed: list[int], total: int
) -> None:
    # without the error type in continue_on_error, or with an error not in the list (default EIO, EILSEQ)
    path = make_file(ddir / "f", 16 * BS)
    with opened(path, os.O_WRONLY) as fd:
        cfg = make_config(
            io_size=16 * BS,
            coe_mask=mask,
            ignore_error_n=[len(listed), len(listed)],
            ignore_error=[*listed, *([0] * (16 - len(listed))), *listed],
        )
        res, _ = run_job(cfg, [(fd, 0, 16 * BS)])
    assert res["error"] == errno.EBADF and res["ddir"]["read"]["err_ios"] == 1
    assert (res["total_err"], res["first_error"]) == (total, errno.EBADF if total else 0)


def test_max_latency_fails_the_job_with_etimedout(ddir: Path) -> None:
    path = make_file(ddir / "f", 16 * BS)
    with opened(path, os.O_RDONLY) as fd:
        res, _ = run_job(make_config(io_size=16 * BS, max_latency_ns=[1, 1]), [(fd, 0, 16 * BS)])
    assert res["error"] == errno.ETIMEDOUT and "exceeds max_latency (1 ns)" in res["error_msg"]
    assert res["ddir"]["read"]["ios"] == 1 and res["ddir"]["read"]["err_ios"] == 0  # counted as done
