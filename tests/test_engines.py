"""libaio and io_uring on real targets: O_DIRECT files, /dev/zram0 and loop devices.

Every data test checks the bytes themselves: the C trace hook records the first and last 8 bytes of each
I/O's buffer, which for writes must be found in the file at the I/O's offset afterwards and for reads must
be what the file holds there (each block of the test file holds its own index).
"""

from __future__ import annotations

import errno
import json
import os
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import attached_loop, need
from iolab import _core
from test_core import BS, MS, S, make_config, make_file, opened, run_job

LIBAIO, IO_URING = 1, 2
ASYNC = pytest.mark.parametrize("engine", [LIBAIO, IO_URING], ids=["libaio", "io_uring"])
IOLAB = [sys.executable, "-m", "iolab"]
Q = struct.Struct("=Q")


def index_of(word: int) -> int:
    return word  # make_file() fills block i with the 8-byte word i


@pytest.fixture
def loop_dev(direct_dir: Path) -> Iterator[str]:
    """A 64 MiB loop device whose backing file holds make_file()'s pattern."""
    with attached_loop(make_file(direct_dir / "loop-backing.img", 64 << 20)) as dev:
        yield dev


def fill_device(dev: str, size: int) -> None:
    """Write block i of the device with the word i (what make_file does for files)."""
    fd = os.open(dev, os.O_WRONLY)
    try:
        chunk = 256
        for first in range(0, size // BS, chunk):
            data = b"".join(Q.pack(i) * (BS // 8) for i in range(first, min(first + chunk, size // BS)))
            os.pwrite(fd, data, first * BS)
        os.fsync(fd)
    finally:
        os.close(fd)


def target_of(kind: str, request: pytest.FixtureRequest, direct_dir: Path, size: int) -> str:
    if kind == "file":
        return str(make_file(direct_dir / "data", size))
    dev = request.getfixturevalue("zram" if kind == "zram" else "loop_dev")
    fill_device(dev, size)
    return str(dev)


def check_reads(recs: list[tuple[int, ...]], base: int = 0) -> None:
    for off, length, _f, ddir, head, tail in recs:
        assert ddir == 0
        assert index_of(head) == (off - base) // BS, f"wrong data read at {off}"
        assert index_of(tail) == (off - base + length - 1) // BS, f"wrong data read at {off}"


def check_writes(recs: list[tuple[int, ...]], path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        for off, length, _f, ddir, head, tail in recs:
            assert ddir == 1
            assert os.pread(fd, 8, off) == Q.pack(head), f"write at {off} did not land"
            assert os.pread(fd, 8, off + length - 8) == Q.pack(tail), f"write at {off} did not land"
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------------
# data


@pytest.mark.root
@ASYNC
@pytest.mark.parametrize("kind", ["file", "zram", "loop"])
@pytest.mark.parametrize("depth", [1, 8, 32])
def test_reads_and_writes_move_the_right_bytes(
    engine: int, kind: str, depth: int, request: pytest.FixtureRequest, direct_dir: Path
) -> None:
    if kind != "file":
        need(os.geteuid() == 0, "needs root for zram and loop devices")
    n = 1024
    size = n * BS
    path = target_of(kind, request, direct_dir, size)
    with opened(Path(path), os.O_RDWR) as fd:
        # random reads, one pass of the random map: every block exactly once, each with its own content
        res, recs = run_job(
            make_config(engine=engine, iodepth=depth, random=1, io_size=size), [(fd, 0, size)], n
        )
        rd = res["ddir"]["read"]
        assert res["error"] == 0, res["error_msg"]
        assert (rd["ios"], rd["bytes"]) == (n, size)
        assert sorted(r[0] // BS for r in recs) == list(range(n))
        check_reads(recs)
        assert res["depth"]["max_inflight"] == depth
        # 8k writes at random offsets (each once), fresh random data in every one
        res, recs = run_job(
            make_config(
                engine=engine, iodepth=depth, ddir_mask=2, random=1, io_size=size, refill_buffers=1,
                bs_min=[BS, 2 * BS], bs_max=[BS, 2 * BS], blockalign=[BS, 2 * BS], max_bs=2 * BS, seed=99,
            ),
            [(fd, 0, size)],
            n,
        )  # fmt: skip
        wr = res["ddir"]["write"]
        assert res["error"] == 0, res["error_msg"]
        assert wr["bytes"] == sum(r[1] for r in recs) == size
    check_writes(recs, path)


_COMMON_OPTIONS = [
    ("plain", {}),
    ("poll-on", {"poll_mode": 1, "poll_max_ns": 200_000}),
    ("poll-adaptive", {"poll_mode": 2}),
    (
        "batches",
        {"iodepth_batch_submit": 8, "iodepth_batch_complete_min": 4, "iodepth_batch_complete_max": 16},
    ),
]
_URING_OPTIONS = [
    ("registerfiles", {"engine_flags": 0x04}),
    ("fixedbufs", {"engine_flags": 0x02}),
    ("fixed-nonvec", {"engine_flags": 0x06 | 0x40}),
    ("vectored", {"engine_flags": 0x80}),
    ("sqpoll", {"engine_flags": 0x0C}),  # sqthread_poll (+ registerfiles, as the plan sets it)
    ("force-async", {"force_async": 2}),
]
_LIBAIO_OPTIONS = [("userspace-reap", {"engine_flags": 0x01})]
_OPTION_CASES = [
    *[pytest.param(LIBAIO, f, id=f"libaio-{n}") for n, f in _COMMON_OPTIONS + _LIBAIO_OPTIONS],
    *[pytest.param(IO_URING, f, id=f"io_uring-{n}") for n, f in _COMMON_OPTIONS + _URING_OPTIONS],
]


@pytest.mark.parametrize(("engine", "flags"), _OPTION_CASES)
def test_engine_options_keep_the_data_right(engine: int, flags: dict[str, int], direct_dir: Path) -> None:
    n = 512
    path = make_file(direct_dir / "d", n * BS)
    with opened(path, os.O_RDWR) as fd:
        res, recs = run_job(
            make_config(engine=engine, iodepth=16, random=1, io_size=n * BS, **flags), [(fd, 0, n * BS)], n
        )
        assert res["error"] == 0, res["error_msg"]
        assert sorted(r[0] // BS for r in recs) == list(range(n))
        check_reads(recs)
        res, recs = run_job(
            make_config(engine=engine, iodepth=16, ddir_mask=2, io_size=n * BS, refill_buffers=1, **flags),
            [(fd, 0, n * BS)],
            n,
        )
        assert res["error"] == 0, res["error_msg"]
        assert res["ddir"]["write"]["bytes"] == n * BS
    check_writes(recs, str(path))
    info = res["engine_info"]
    ef = flags.get("engine_flags", 0)
    if engine == IO_URING:
        assert ("registered files" in info) == bool(ef & 0x04)
        assert ("registered buffers" in info) == bool(ef & 0x02)
        assert ("submission thread" in info) == bool(ef & 0x08)
        if ef & 0x80:
            assert "non-vectored" not in info
        elif ef & 0x40:
            assert "non-vectored" in info
    else:
        # completions in the ring are always taken in user space (io_getevents only to wait), so
        # userspace_reap changes nothing
        assert "read from the ring in user space" in info


@ASYNC
def test_sequential_write_covers_every_block(engine: int, direct_dir: Path) -> None:
    n = 2048
    path = make_file(direct_dir / "w", n * BS, b"\xff")
    with opened(path, os.O_WRONLY) as fd:
        res, _ = run_job(make_config(engine=engine, iodepth=32, ddir_mask=2, io_size=n * BS, zero_buffers=1),
                         [(fd, 0, n * BS)])  # fmt: skip
    assert res["ddir"]["write"]["ios"] == n and res["error"] == 0
    assert path.read_bytes() == bytes(n * BS)


# ---------------------------------------------------------------------------------------------------
# depth


@pytest.mark.root
@ASYNC
def test_iodepth_is_reached_in_the_kernel(engine: int, loop_dev: str) -> None:
    """The loop device's own in-flight counter (sysfs) sees the depth, not only our bookkeeping."""
    fill_device(loop_dev, 64 << 20)
    inflight = Path("/sys/block") / os.path.basename(loop_dev) / "inflight"
    seen: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            seen.append(sum(int(x) for x in inflight.read_text().split()))
            time.sleep(0.0005)

    with opened(Path(loop_dev), os.O_RDONLY) as fd:
        job = _core.Job(
            make_config(engine=engine, iodepth=16, random=1, time_based=1, runtime_ns=S, io_size=64 << 20),
            [(fd, 0, 64 << 20)],
        )
        t = threading.Thread(target=sample)
        t.start()
        try:
            job.run()
        finally:
            done.set()
            t.join()
    res = job.raw_result()
    assert res["error"] == 0, res["error_msg"]
    assert res["depth"]["max_inflight"] == 16
    level = res["depth"]["level"]
    assert level[4] >= 0.9 * sum(level)  # the 16..31 bucket: nearly every submission at full depth
    assert max(seen) >= 12, f"the device never saw more than {max(seen)} requests in flight"


@ASYNC
def test_batches_and_low_watermark(engine: int, direct_dir: Path) -> None:
    path = make_file(direct_dir / "b", 4096 * BS)
    with opened(path, os.O_RDONLY) as fd:
        files = [(fd, 0, 4096 * BS)]
        res, _ = run_job(
            make_config(engine=engine, iodepth=16, random=1, io_size=4096 * BS, iodepth_batch_submit=8,
                        iodepth_batch_complete_min=8, iodepth_batch_complete_max=16), files)  # fmt: skip
        d = res["depth"]
        assert (d["batch_submit"], d["batch_complete_min"], d["batch_complete_max"]) == (8, 8, 16)
        # submit calls of 8 I/Os, except before a wait when fewer are queued (fio commits then too)
        assert d["submit"][2] >= 0.9 * sum(d["submit"])
        assert sum(d["complete"][2:4]) >= 0.9 * sum(d["complete"])  # reaps of 8..16 (the last may be short)
        res, _ = run_job(
            make_config(engine=engine, iodepth=16, random=1, io_size=4096 * BS, iodepth_low=4), files
        )
        level = res["depth"]["level"]
        # refilling from 4: submissions happen at depths 5..16, so the 4-7 and 8-15 buckets fill too
        assert level[2] > 0.1 * sum(level) and level[3] > 0.3 * sum(level)
        res, _ = run_job(make_config(engine=engine, iodepth=16, random=1, io_size=4096 * BS), files)
        assert res["depth"]["level"][4] >= 0.99 * sum(res["depth"]["level"])


# ---------------------------------------------------------------------------------------------------
# polling


@ASYNC
def test_poll_counters_are_consistent(engine: int, direct_dir: Path) -> None:
    path = make_file(direct_dir / "p", 1024 * BS)
    with opened(path, os.O_RDONLY) as fd:
        files = [(fd, 0, 1024 * BS)]
        common: dict[str, Any] = {"engine": engine, "random": 1, "time_based": 1, "runtime_ns": 300 * MS,
                                  "io_size": 1024 * BS}  # fmt: skip
        off, _ = run_job(make_config(**common), files)
        on, _ = run_job(make_config(poll_mode=1, poll_max_ns=20 * MS, **common), files)
        ad, _ = run_job(make_config(poll_mode=2, **common), files)
    for res in (off, on, ad):
        p = res["poll"]
        assert res["error"] == 0
        assert p["waits"] == p["hits"] + p["misses"] > 0
        assert p["block_ns"] >= p["poll_ns"]
    p = off["poll"]
    assert p["mode"] == "off" and p["hits"] == 0 and p["poll_ns"] == 0 and p["window_sum_ns"] == 0
    p = on["poll"]
    # a 20 ms window catches every completion of a disk that answers in well under a millisecond
    assert p["mode"] == "on" and p["hits"] >= 0.95 * p["waits"] and p["poll_ns"] > 0
    assert p["window_ns"] == 20 * MS and p["window_sum_ns"] == p["waits"] * 20 * MS
    p = ad["poll"]
    assert p["mode"] == "adaptive" and 0 <= p["window_ns"] <= 32768
    assert p["window_sum_ns"] <= p["waits"] * 32768


# ---------------------------------------------------------------------------------------------------
# failures and short transfers


@ASYNC
def test_failed_io_is_reported(engine: int, direct_dir: Path) -> None:
    path = make_file(direct_dir / "e", 64 * BS)
    with opened(path, os.O_WRONLY) as fd:
        res, _ = run_job(make_config(engine=engine, iodepth=4, io_size=16 * BS), [(fd, 2 * BS, 16 * BS)])
    assert res["error"] == errno.EBADF and res["error_ddir"] == "read"
    assert res["error_offset"] % BS == 0 and 2 * BS <= res["error_offset"] < 18 * BS
    assert "Bad file descriptor" in res["error_msg"] and res["ddir"]["read"]["ios"] == 0
    with opened(path, os.O_RDONLY) as fd:
        res, _ = run_job(
            make_config(engine=engine, iodepth=4, ddir_mask=2, io_size=16 * BS), [(fd, 0, 16 * BS)]
        )
    assert res["error"] == errno.EBADF and res["error_ddir"] == "write"


@ASYNC
def test_short_read_is_continued_then_end_of_file(engine: int, direct_dir: Path) -> None:
    # 1.5 blocks read as 2 (buffered): the second read is short; its remainder is submitted again at 1.5
    # blocks and finds the end of the file, which completes it with what it got (fio's asynchronous
    # engines: no error; the synchronous one fails it, see test_core)
    path = direct_dir / "short"
    path.write_bytes(b"x" * (BS + BS // 2))
    with opened(path, os.O_RDONLY, direct=False) as fd:
        res, _ = run_job(make_config(engine=engine, iodepth=2, io_size=2 * BS), [(fd, 0, 2 * BS)])
    assert res["error"] == 0
    assert res["ddir"]["read"]["ios"] == 2
    assert res["ddir"]["read"]["bytes"] == BS + BS // 2
    assert res["ddir"]["read"]["short_ios"] == 1


@pytest.mark.root
@ASYNC
def test_end_of_block_device(engine: int, loop_dev: str) -> None:
    size = 64 << 20
    with opened(Path(loop_dev), os.O_RDWR) as fd:
        res, _ = run_job(
            make_config(engine=engine, iodepth=4, io_size=2 * size), [(fd, size - 64 * BS, 2 * size)]
        )
    # reads past the end complete with 0 bytes, no error (fio's asynchronous engines)
    assert res["error"] == 0, res["error_msg"]
    assert res["ddir"]["read"]["bytes"] == 64 * BS
    assert res["ddir"]["read"]["ios"] > 64


@ASYNC
def test_fsync_waits_for_the_writes_before_it(engine: int, direct_dir: Path) -> None:
    path = make_file(direct_dir / "s", 64 * BS)
    with opened(path, os.O_WRONLY, direct=False) as fd:
        res, recs = run_job(
            make_config(engine=engine, iodepth=8, ddir_mask=2, io_size=64 * BS, fsync_blocks=4, end_fsync=1),
            [(fd, 0, 64 * BS)],
            200,
        )
    assert res["error"] == 0, res["error_msg"]
    # fio's rule: a sync is due before the next write once a multiple of 4 writes was issued, none after
    # the last write, and at depth 8 only when a write completed since the last sync (so at most 15); the
    # end_fsync is kept out of the statistics and counted apart
    syncs_counted = res["ddir"]["sync"]["ios"]
    assert 1 <= syncs_counted <= 15
    assert res["end_syncs"] == 1
    writes = 0
    syncs = 0
    for rec in recs:
        if rec[3] == 3:  # sync (after read, write, trim)
            syncs += 1
            assert writes >= 4 * syncs  # every sync comes after the writes it covers
        else:
            writes += 1
    assert writes == 64 and syncs == syncs_counted


# ---------------------------------------------------------------------------------------------------
# rate and think time


@pytest.mark.parametrize("engine", [0, LIBAIO, IO_URING], ids=["psync", "libaio", "io_uring"])
def test_rate_iops_and_latency_from_schedule(engine: int, direct_dir: Path) -> None:
    path = make_file(direct_dir / "r", 1024 * BS)
    with opened(path, os.O_RDONLY) as fd:
        res, _ = run_job(
            make_config(engine=engine, iodepth=4, random=1, time_based=1, runtime_ns=S, io_size=1024 * BS,
                        rate_bps=[400 * BS, 0], sample_interval_ns=250 * MS),
            [(fd, 0, 1024 * BS)],
        )  # fmt: skip
    rd = res["ddir"]["read"]
    assert res["rate"]["rated"] is True
    assert 390 <= rd["ios"] <= 402, rd["ios"]
    assert all(95 <= s[1] <= 105 for s in res["samples"][:4]), res["samples"]
    lat, clat, slat = rd["lat"], rd["clat"], rd["slat"]
    assert lat["count"] == clat["count"] == slat["count"] == rd["ios"]
    # lat counts from the scheduled time: it is the sum of the wait for submission and the completion
    assert abs(lat["sum"] - (clat["sum"] + slat["sum"])) <= rd["ios"] * 2
    assert res["rate"]["sleeps"] > 0


def test_rate_poisson_and_bytes(direct_dir: Path) -> None:
    path = make_file(direct_dir / "r", 1024 * BS)
    with opened(path, os.O_RDONLY) as fd:
        files = [(fd, 0, 1024 * BS)]
        res, _ = run_job(
            make_config(engine=LIBAIO, random=1, time_based=1, runtime_ns=S, io_size=1024 * BS,
                        rate_bps=[300 * BS, 0], rate_process=1), files)  # fmt: skip
        assert 220 <= res["ddir"]["read"]["ios"] <= 380  # a Poisson count with mean 300 (sd 17)
        res, _ = run_job(
            make_config(random=1, time_based=1, runtime_ns=S, io_size=1024 * BS, rate_bps=[200 * 8192, 0],
                        bs_min=[8192, 8192], bs_max=[8192, 8192], max_bs=8192), files)  # fmt: skip
        assert 195 <= res["ddir"]["read"]["ios"] <= 202


@ASYNC
def test_thinktime(engine: int, direct_dir: Path) -> None:
    path = make_file(direct_dir / "t", 1024 * BS)
    with opened(path, os.O_RDONLY) as fd:
        res, _ = run_job(
            make_config(engine=engine, iodepth=1, random=1, time_based=1, runtime_ns=500 * MS,
                        io_size=1024 * BS, thinktime_ns=5 * MS, thinktime_blocks=2, thinktime_blocks_set=1),
            [(fd, 0, 1024 * BS)],
        )  # fmt: skip
    rd = res["ddir"]["read"]
    pauses = res["rate"]["think_pauses"]
    assert 60 <= pauses <= 101 and abs(rd["ios"] - 2 * pauses) <= 2
    assert res["rate"]["rated"] is False


def test_cpu_time_covers_only_the_measured_phase(direct_dir: Path) -> None:
    """A busy ramp and a nearly idle measured phase: the reported CPU time is the idle phase's."""
    path = make_file(direct_dir / "c", 1024 * BS)
    with opened(path, os.O_RDONLY) as fd:
        job = _core.Job(
            make_config(random=1, time_based=1, ramp_ns=S, runtime_ns=S, io_size=1024 * BS, rate_bps=[0, 0]),
            [(fd, 0, 1024 * BS)],
        )
        t0 = time.thread_time_ns()
        job.run()  # busy ramp, busy measurement (to compare)
        busy = job.raw_result()
        cost = time.thread_time_ns() - t0
        # the same busy ramp, then 1 s at 20 IOPS
        job = _core.Job(
            make_config(random=1, time_based=1, ramp_ns=S, runtime_ns=S, io_size=1024 * BS,
                        rate_bps=[20 * BS, 0]), [(fd, 0, 1024 * BS)])  # fmt: skip
        job.run()
        idle = job.raw_result()
    busy_cpu = busy["usr_ns"] + busy["sys_ns"]
    idle_cpu = idle["usr_ns"] + idle["sys_ns"]
    assert busy_cpu <= cost  # a part of the thread's time, not more
    assert idle["ddir"]["read"]["ios"] <= 21
    assert idle_cpu < 0.2 * busy_cpu, (idle_cpu, busy_cpu)


# ---------------------------------------------------------------------------------------------------
# end to end: iolab run


def run_json(*args: str, check: bool = True) -> dict[str, Any]:
    proc = subprocess.run([*IOLAB, "run", *args, "--output-format=json"], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    if check:
        assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout)) if proc.returncode == 0 else {"stderr": proc.stderr}


@pytest.mark.root
def test_iolab_run_libaio_on_loop_write_then_read(loop_dev: str) -> None:
    out = run_json("--name=w", f"--filename={loop_dev}", "--rw=randwrite", "--bs=16k", "--direct=1",
                   "--size=8m", "--ioengine=libaio", "--iodepth=16", "--refill_buffers=1")  # fmt: skip
    job = out["jobs"][0]
    assert job["write"]["io_bytes"] == 8 << 20
    assert job["iodepth_level"]["16"] > 90.0
    assert job["iolab"]["engine"]["max_inflight"] == 16
    fd = os.open(loop_dev, os.O_RDONLY)
    try:
        data = os.pread(fd, 8 << 20, 0)
    finally:
        os.close(fd)
    blocks = [data[i : i + 16384] for i in range(0, len(data), 16384)]
    assert len(set(blocks)) == len(blocks), "some 16k block was not written with its own data"
    out = run_json("--name=r", f"--filename={loop_dev}", "--rw=randread", "--bs=16k", "--direct=1",
                   "--size=8m", "--ioengine=io_uring", "--iodepth=8", "--poll=adaptive")  # fmt: skip
    job = out["jobs"][0]
    assert job["read"]["io_bytes"] == 8 << 20
    poll = job["iolab"]["poll"]
    assert poll["mode"] == "adaptive" and poll["waits"] == poll["hits"] + poll["misses"]


@pytest.mark.root
def test_iowq_punting_is_detected_on_zram(zram: str, direct_dir: Path) -> None:
    out = run_json("--name=z", f"--filename={zram}", "--rw=randread", "--bs=4k", "--direct=1", "--size=64m",
                   "--ioengine=io_uring", "--iodepth=4", "--time_based", "--runtime=1")  # fmt: skip
    job = out["jobs"][0]
    assert job["iolab"]["engine"]["iowq_workers"] > 0
    warning = next(w for w in job["iolab"]["warnings"] if "io-wq" in w)
    assert "ioengine=libaio" in warning and zram in warning
    # a device that takes non-blocking submissions: no worker, no warning
    target = direct_dir / "nowq"
    out = run_json("--name=f", f"--filename={target}", "--rw=randread", "--bs=4k", "--direct=1", "--size=8m",
                   "--ioengine=io_uring", "--iodepth=1", "--time_based", "--runtime=1")  # fmt: skip
    job = out["jobs"][0]
    assert job["iolab"]["engine"]["iowq_workers"] == 0
    assert not any("io-wq" in w for w in job["iolab"]["warnings"])
    # ...unless force_async sends the I/O to the workers anyway (IOSQE_ASYNC), as in fio
    out = run_json("--name=f", f"--filename={target}", "--rw=randread", "--bs=4k", "--direct=1",
                   "--size=8m", "--ioengine=io_uring", "--iodepth=4", "--force_async=1", "--time_based",
                   "--runtime=1")  # fmt: skip
    job = out["jobs"][0]
    assert job["iolab"]["engine"]["iowq_workers"] > 0
    assert any(w.startswith("force_async=1: every I/O went straight") for w in job["iolab"]["warnings"])


def test_hipri_is_refused_without_poll_queues(direct_dir: Path) -> None:
    target = direct_dir / "h"
    out = run_json("--name=h", f"--filename={target}", "--size=1m", "--direct=1", "--ioengine=io_uring",
                   "--hipri", check=False)  # fmt: skip
    assert "poll queues" in out["stderr"] and "io_poll" in out["stderr"]
    assert "Traceback" not in out["stderr"]


def test_poll_needs_an_async_engine(direct_dir: Path) -> None:
    out = run_json("--name=x", f"--filename={direct_dir / 'x'}", "--size=1m", "--poll=on", check=False)
    assert "asynchronous" in out["stderr"] and "psync" in out["stderr"]


def test_rate_limited_output_says_how_latency_is_measured(direct_dir: Path) -> None:
    out = run_json("--name=r", f"--filename={direct_dir / 'r'}", "--size=4m", "--rw=randread", "--direct=1",
                   "--ioengine=libaio", "--rate_iops=200", "--time_based", "--runtime=1")  # fmt: skip
    job = out["jobs"][0]
    assert 190 <= job["read"]["total_ios"] <= 202
    assert job["iolab"]["rate"]["limited"] is True
    assert job["iolab"]["rate"]["latency_from"] == "scheduled issue time"
    assert any("scheduled time" in w for w in job["iolab"]["warnings"])


def test_cpus_allowed(direct_dir: Path) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    need(len(cpus) >= 2, "needs two CPUs")
    target = direct_dir / "c"
    common = [f"--filename={target}", "--size=4m", "--rw=randread", "--direct=1", "--ioengine=libaio",
              "--runtime=1"]  # fmt: skip
    out = run_json("--name=a", *common, f"--cpus_allowed={cpus[1]}")
    assert out["jobs"][0]["iolab"]["engine"]["cpus"] == [cpus[1]]
    out = run_json("--name=b", *common, "--numjobs=2", f"--cpus_allowed={cpus[0]}-{cpus[1]}",
                   "--cpus_allowed_policy=split")  # fmt: skip
    assert [j["iolab"]["engine"]["cpus"] for j in out["jobs"]] == [[cpus[0]], [cpus[1]]]
    out = run_json("--name=c", *common, "--cpus_allowed=4096", check=False)
    assert "not available" in out["stderr"]


def test_stonewall_holds_for_async_engines(direct_dir: Path) -> None:
    target = direct_dir / "sw"
    common = [
        f"--filename={target}",
        "--size=8m",
        "--rw=randread",
        "--direct=1",
        "--time_based",
        "--runtime=1",
    ]
    t0 = time.monotonic()
    out = run_json("--name=a", *common, "--ioengine=libaio", "--iodepth=8", "--name=b", *common,
                   "--ioengine=io_uring", "--iodepth=8", "--stonewall")  # fmt: skip
    serial = time.monotonic() - t0
    assert serial >= 2.0 and [j["groupid"] for j in out["jobs"]] == [0, 1]
    t0 = time.monotonic()
    out = run_json("--name=a", *common, "--ioengine=libaio", "--iodepth=8", "--numjobs=2", "--name=b",
                   *common, "--ioengine=io_uring", "--iodepth=8")  # fmt: skip
    assert time.monotonic() - t0 < 1.9 and len(out["jobs"]) == 3
