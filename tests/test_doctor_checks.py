"""Pre-run checks: one real setup per check that triggers it, and correct setups that raise nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from iolab.doctor import pre_run
from iolab.doctor.checks import Context
from iolab.plan import build_plan
from test_doctor_support import (
    MiB,
    attached,
    by_code,
    codes,
    evidence,
    good_values,
    jobdef,
    mounted,
    sparse,
    write_random,
)


@pytest.fixture
def data_file(direct_dir: Path) -> Path:
    return write_random(direct_dir / "data.bin", 8 * MiB)


# --------------------------------------------------------------------------------------- correct setups


def test_correct_read_setup_raises_nothing(data_file: Path) -> None:
    assert codes(pre_run([jobdef(**good_values(data_file))])) == []


def test_correct_write_setup_raises_nothing(data_file: Path) -> None:
    values = good_values(data_file, rw="randwrite", refill_buffers=True, end_fsync=True)
    assert codes(pre_run([jobdef(**values)])) == []


def test_correct_parallel_setup_raises_nothing(data_file: Path) -> None:
    values = good_values(data_file, rw="read", numjobs=4, size=2 * MiB, offset_increment=2 * MiB)
    assert codes(pre_run([jobdef(**values)])) == []


def test_correct_setup_on_a_loop_device_with_written_data(direct_dir: Path) -> None:
    backing = write_random(direct_dir / "full.img", 16 * MiB)
    with attached(backing, "--direct-io=on") as dev:
        found = pre_run([jobdef(**good_values(dev))])
        # a loop device is a stacked device (TARGET-002); nothing else may be found
        assert codes(found) == ["IOL-TARGET-002"]


# --------------------------------------------------------------------------------------------- cache


def test_cache_001_buffered_io(data_file: Path) -> None:
    found = pre_run([jobdef(**good_values(data_file, direct=False))])
    assert "IOL-CACHE-001" in codes(found)
    f = by_code(found, "IOL-CACHE-001")[0]
    assert f.severity == "warning" and "direct=1" in f.fix and f.evidence["direct"] == 0
    assert "test.fio" in f.fix  # the job line to change, with where it is


def test_cache_001_buffered_1_means_buffered(data_file: Path) -> None:
    values = good_values(data_file)
    del values["direct"]
    found = pre_run([jobdef(buffered=True, **values)])
    assert "IOL-CACHE-001" in codes(found)


def test_cache_002_working_set_smaller_than_ram(data_file: Path) -> None:
    ev = evidence(pre_run([jobdef(**good_values(data_file, direct=False))]), "IOL-CACHE-002")
    assert ev["working_set_bytes"] == 8 * MiB
    assert ev["mem_total_bytes"] > 8 * MiB


def test_cache_002_not_when_working_set_exceeds_ram(direct_dir: Path) -> None:
    path = sparse(direct_dir / "huge.bin", 1 << 40)  # 1 TiB sparse: larger than any test machine's RAM
    ctx = Context()
    found = pre_run([jobdef(**good_values(path, rw="randwrite", direct=False, end_fsync=True))], context=ctx)
    assert "IOL-CACHE-001" in codes(found)
    assert "IOL-CACHE-002" not in codes(found)


# -------------------------------------------------------------------------------------------- target


def test_target_001_dev_path_that_is_no_device(direct_dir: Path) -> None:
    path = "/dev/iolab-doctor-test-no-such-disk"
    assert not os.path.exists(path)
    found = pre_run([jobdef(**good_values(path, rw="write", size=MiB))])
    f = by_code(found, "IOL-TARGET-001")[0]
    assert f.severity == "error"
    assert f.evidence["kind"] == "missing"
    assert f.evidence["fstype"] == "devtmpfs"


def test_target_001_file_when_raw_device_meant(data_file: Path) -> None:
    found = pre_run([jobdef(**good_values(data_file))], expect_raw=True)
    ev = evidence(found, "IOL-TARGET-001")
    assert ev["kind"] == "file" and ev["device"].startswith("/dev/")
    assert "IOL-TARGET-001" not in codes(pre_run([jobdef(**good_values(data_file))]))


def test_target_002_stacked_device(loop_device: str) -> None:
    with open(loop_device, "r+b") as f:  # our own loop device: fill it so only TARGET-002 remains
        for _ in range(64):
            f.write(os.urandom(MiB))
    found = pre_run([jobdef(**good_values(loop_device))])
    ev = evidence(found, "IOL-TARGET-002")
    assert ev["chain"].startswith(os.path.basename(loop_device) + "(loop)")
    assert ev["lowest_devices"], "the device under the backing file is named"
    # reading: the disk below is suggested as it is; writing: only as a spare disk
    [read_fix] = [f.fix for f in found if f.code == "IOL-TARGET-002"]
    assert read_fix.endswith("to measure the device itself")
    found = pre_run([jobdef(**good_values(loop_device, rw="randwrite"))])
    [write_fix] = [f.fix for f in found if f.code == "IOL-TARGET-002"]
    assert "if it is a spare disk" in write_fix and "destroys" in write_fix


def test_target_003_loop_without_direct_io(direct_dir: Path) -> None:
    backing = write_random(direct_dir / "buffered.img", 16 * MiB)
    with attached(backing, "--direct-io=off") as dev:
        ev = evidence(pre_run([jobdef(**good_values(dev))]), "IOL-TARGET-003")
        assert ev["dio"] == 0 and ev["backing_file"] == str(backing)


def test_target_003_through_a_file_system_on_the_loop_device(direct_dir: Path) -> None:
    backing = sparse(direct_dir / "fs.img", 64 * MiB)
    from test_doctor_support import mkfs_ext4

    mkfs_ext4(backing)
    with attached(backing, "--direct-io=off") as dev, mounted(dev, direct_dir / "mnt") as mnt:
        path = write_random(mnt / "data.bin", 4 * MiB)
        ev = evidence(pre_run([jobdef(**good_values(path))]), "IOL-TARGET-003")
        assert ev["device"] == dev


# -------------------------------------------------------------------------------------------- engine


def test_engine_001_psync_with_iodepth(data_file: Path) -> None:
    ev = evidence(pre_run([jobdef(**good_values(data_file, iodepth=16))]), "IOL-ENGINE-001")
    assert ev == {"ioengine": "psync", "iodepth": 16, "effective_iodepth": 1}


# ---------------------------------------------------------------------------------------------- jobs


def test_jobs_001_clones_reread_the_same_file(data_file: Path) -> None:
    found = pre_run([jobdef(**good_values(data_file, rw="read", numjobs=4))])
    f = by_code(found, "IOL-JOBS-001")[0]
    assert f.evidence["numjobs"] == 4 and f.evidence["files"] == [str(data_file)]
    assert "offset_increment=" in f.fix and f.evidence["per_clone_bytes"] == 2 * MiB


def test_jobs_001_offset_increment_too_small_still_overlaps(data_file: Path) -> None:
    values = good_values(data_file, rw="read", numjobs=2, size=4 * MiB, offset_increment=MiB)
    assert "IOL-JOBS-001" in codes(pre_run([jobdef(**values)]))


def test_jobs_001_not_for_separate_files(direct_dir: Path) -> None:
    values = good_values(direct_dir / "x", rw="randwrite", numjobs=2, size=MiB, end_fsync=True)
    del values["filename"]
    values["directory"] = str(direct_dir)
    assert "IOL-JOBS-001" not in codes(pre_run([jobdef(**values)]))


# ------------------------------------------------------------------------------------------ ramp/time


def test_ramp_001_no_ramp_time(data_file: Path) -> None:
    found = pre_run([jobdef(**good_values(data_file, ramp_time=0))])
    assert codes(found) == ["IOL-RAMP-001"]
    assert "ramp_time=" in found[0].fix


def test_time_001_runtime_too_short(data_file: Path) -> None:
    ev = evidence(pre_run([jobdef(**good_values(data_file, runtime="2s"))]), "IOL-TIME-001")
    assert ev["estimated_seconds"] == 2 and ev["minimum_seconds"] >= 10


def test_time_001_size_bound_job_ends_too_soon(data_file: Path) -> None:
    values = good_values(data_file, rw="read", time_based=False, runtime=0)
    ev = evidence(pre_run([jobdef(**values)]), "IOL-TIME-001")
    assert ev["estimated_seconds"] < 1


def test_time_001_writes_need_longer(data_file: Path) -> None:
    values = good_values(data_file, rw="randwrite", refill_buffers=True, end_fsync=True, runtime="15s")
    assert evidence(pre_run([jobdef(**values)]), "IOL-TIME-001")["minimum_seconds"] == 30


# ---------------------------------------------------------------------------------------------- data


def test_data_001_sparse_file(direct_dir: Path) -> None:
    path = sparse(direct_dir / "holes.bin", 16 * MiB)
    with open(path, "r+b") as f:
        f.seek(4 * MiB)
        f.write(os.urandom(MiB))
    ev = evidence(pre_run([jobdef(**good_values(path))]), "IOL-DATA-001")
    assert ev["hole_bytes"] == 15 * MiB and ev["unwritten_bytes"] == 0
    assert ev["first_never_written_offset"] == 0


def test_data_001_fallocated_unwritten_extents(direct_dir: Path) -> None:
    path = direct_dir / "prealloc.bin"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.posix_fallocate(fd, 0, 16 * MiB)
    finally:
        os.close(fd)
    ev = evidence(pre_run([jobdef(**good_values(path))]), "IOL-DATA-001")
    assert ev["unwritten_bytes"] + ev["hole_bytes"] == 16 * MiB
    assert ev["unwritten_bytes"] > 0, "fallocate leaves unwritten extents on this file system"


def test_data_001_only_the_region_read(direct_dir: Path) -> None:
    path = sparse(direct_dir / "half.bin", 16 * MiB)
    with open(path, "r+b") as f:
        f.write(os.urandom(8 * MiB))
    assert "IOL-DATA-001" not in codes(pre_run([jobdef(**good_values(path, size=8 * MiB))]))
    assert "IOL-DATA-001" in codes(pre_run([jobdef(**good_values(path, size=8 * MiB, offset=4 * MiB))]))


def test_data_001_not_for_write_jobs(direct_dir: Path) -> None:
    path = sparse(direct_dir / "w.bin", 16 * MiB)
    values = good_values(path, rw="randwrite", refill_buffers=True, end_fsync=True)
    assert "IOL-DATA-001" not in codes(pre_run([jobdef(**values)]))


def test_data_001_loop_device_over_a_sparse_file(loop_device: str) -> None:
    ev = evidence(pre_run([jobdef(**good_values(loop_device))]), "IOL-DATA-001")
    assert ev["path"].endswith("loop-backing.img")
    assert ev["hole_bytes"] + ev["unwritten_bytes"] == 64 * MiB


def test_data_001_zram_never_written(zram: str) -> None:
    found = pre_run([jobdef(**good_values(zram))])
    ev = evidence(found, "IOL-DATA-001")
    assert ev["stored_bytes"] == 0 and ev["region_bytes"] == 256 * MiB
    with open(zram, "r+b") as f:
        for _ in range(256):
            f.write(os.urandom(MiB))
    assert "IOL-DATA-001" not in codes(pre_run([jobdef(**good_values(zram))]))


# --------------------------------------------------------------------------------------------- align


def test_align_001_block_size_not_multiple_of_logical_block_size(data_file: Path) -> None:
    found = pre_run([jobdef(**good_values(data_file, bs=(1000, 1000)))])
    f = by_code(found, "IOL-ALIGN-001")[0]
    assert f.severity == "error" and f.evidence["block_sizes"] == [1000]
    lbs = f.evidence["logical_block_size"]
    assert lbs in (512, 1024, 2048, 4096) and f"bs={lbs}" in f.fix


def test_align_001_not_with_buffered_io(data_file: Path) -> None:
    found = pre_run([jobdef(**good_values(data_file, bs=(1000, 1000), direct=False))])
    assert "IOL-ALIGN-001" not in codes(found)


def test_align_001_4k_sector_loop_device(direct_dir: Path) -> None:
    backing = write_random(direct_dir / "4k.img", 16 * MiB)
    with attached(backing, "--direct-io=on", "--sector-size", "4096") as dev:
        found = pre_run([jobdef(**good_values(dev, bs=(512, 512)))])
        ev = evidence(found, "IOL-ALIGN-001")
        assert ev["logical_block_size"] == 4096 and ev["block_sizes"] == [512]
        assert "IOL-ALIGN-001" not in codes(pre_run([jobdef(**good_values(dev, bs=(8192, 8192)))]))
        found = pre_run([jobdef(**good_values(dev, offset=512, size=MiB))])
        assert evidence(found, "IOL-ALIGN-001")["offset"] == 512


# ------------------------------------------------------------------------------------------- buffers


def test_buf_001_zero_buffers_to_zram(zram: str) -> None:
    values = good_values(zram, rw="write", zero_buffers=True)
    ev = evidence(pre_run([jobdef(**values)]), "IOL-BUF-001")
    assert "zram" in ev["reason"]


def test_buf_001_zero_buffers_to_a_loop_device(loop_device: str) -> None:
    values = good_values(loop_device, rw="write", zero_buffers=True)
    assert "IOL-BUF-001" in codes(pre_run([jobdef(**values)]))
    values = good_values(loop_device, rw="write", refill_buffers=True)
    assert "IOL-BUF-001" not in codes(pre_run([jobdef(**values)]))


# ---------------------------------------------------------------------------------------------- sync


def test_sync_001_buffered_writes_without_fsync(data_file: Path) -> None:
    values = good_values(data_file, rw="write", direct=False, refill_buffers=True)
    f = by_code(pre_run([jobdef(**values)]), "IOL-SYNC-001")[0]
    assert "end_fsync=1" in f.fix
    for cure in ({"end_fsync": True}, {"fsync": 32}, {"fdatasync": 1}, {"direct": True}):
        assert "IOL-SYNC-001" not in codes(pre_run([jobdef(**{**values, **cure})]))


# ------------------------------------------------------------------------------------------- plan path


def test_findings_carry_the_job_name_and_severity(data_file: Path) -> None:
    jobs = [
        jobdef("good", 0, **good_values(data_file)),
        jobdef("bad", 1, **good_values(data_file, ramp_time=0)),
    ]
    found = pre_run(jobs)
    assert [(f.code, f.job) for f in found] == [("IOL-RAMP-001", "bad")]
    assert found[0].to_json()["job"] == "bad"


def test_plan_001_when_the_plan_rejects_the_job(direct_dir: Path) -> None:
    values = good_values(direct_dir / "missing.bin", rw="read")  # no size and no file: fio cannot create it
    assert "IOL-PLAN-001" in codes(pre_run([jobdef(**values)]))


def test_plan_001_still_runs_the_checks_that_need_no_regions(direct_dir: Path) -> None:
    values = good_values(direct_dir / "missing.bin", rw="read", iodepth=8, ramp_time=0, time_based=False)
    # no TIME-001: without the plan's regions there is nothing to estimate the duration from
    assert codes(pre_run([jobdef(**values)])) == ["IOL-ENGINE-001", "IOL-PLAN-001", "IOL-RAMP-001"]


def test_pre_run_accepts_a_plan(data_file: Path) -> None:
    """A RunPlan (what `iolab run` passes) gives the same findings as the JobDefs."""
    jd = jobdef(**good_values(data_file, iodepth=4, ramp_time=0, numjobs=2))
    plan = build_plan([jd])
    assert codes(pre_run(plan)) == ["IOL-ENGINE-001", "IOL-JOBS-001", "IOL-RAMP-001"]
    assert codes(pre_run([jd])) == codes(pre_run(plan))
    # with the JobDefs alongside, fixes say where the line is
    found = pre_run(plan, [jd])
    assert all("test.fio" in f.fix for f in found)
