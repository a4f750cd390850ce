"""Post-run lie detector: real I/O on loop devices made here, device counters before and after.

The job's side ("issued") is counted by the test itself, as the engine will count it.
"""

from __future__ import annotations

import json
import mmap
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from iolab.doctor import DeviceCounters, DeviceStat, Issued, devices_under, lie_report
from iolab.doctor.counters import STAT_FIELDS
from test_doctor_support import (
    MiB,
    attached,
    by_code,
    codes,
    mkfs_ext4,
    mounted,
    sparse,
    sysfs_set,
    sysname,
    write_random,
)


def observed(dev: str, action: Callable[[], Issued]) -> tuple[Issued, dict[str, DeviceStat]]:
    name = sysname(dev)
    before = DeviceCounters.snapshot([name])
    issued = action()
    return issued, DeviceCounters.diff(before, DeviceCounters.snapshot([name]))


def aligned(size: int) -> mmap.mmap:
    buf = mmap.mmap(-1, size)
    buf.write(os.urandom(size))
    return buf


@pytest.fixture
def ext4_loop(direct_dir: Path):  # type: ignore[no-untyped-def]
    image = sparse(direct_dir / "fs.img", 128 * MiB)
    mkfs_ext4(image)
    with attached(image, "--direct-io=on") as dev, mounted(dev, direct_dir / "mnt") as mnt:
        yield dev, mnt


def test_stat_has_every_field(loop_device: str) -> None:
    snap = DeviceCounters.snapshot([loop_device])
    stat = snap.stats[sysname(loop_device)]
    assert len(stat.values) == len(STAT_FIELDS) == 17
    assert stat["flush_ios"] >= 0 and stat["discard_sectors"] >= 0


def test_devices_under_a_loop_device_reach_the_backing_disk(loop_device: str, direct_dir: Path) -> None:
    names = devices_under([loop_device])
    assert names[0] == sysname(loop_device)
    assert len(names) >= 2, "the device under the backing file's file system is listed too"


def test_lie_001_reads_served_from_page_cache(ext4_loop) -> None:  # type: ignore[no-untyped-def]
    dev, mnt = ext4_loop
    path = write_random(mnt / "cached.bin", 8 * MiB)  # written, fsynced, and still in the page cache

    def read_all() -> Issued:
        n = ios = 0
        with open(path, "rb", buffering=0) as f:
            while chunk := f.read(64 << 10):
                n += len(chunk)
                ios += 1
        return Issued(read_ios=ios, read_bytes=n, direct=False)

    issued, obs = observed(dev, read_all)
    report = lie_report(issued, obs)
    assert "IOL-LIE-001" in codes(report.findings)
    ev = by_code(report.findings, "IOL-LIE-001")[0].evidence
    assert ev["issued_read_bytes"] == 8 * MiB and ev["device_read_bytes"] < 4 * MiB
    assert "served from cache" in report.verdict
    assert report.to_json()["devices"][0]["observed"]["read_bytes"] == ev["device_read_bytes"]
    assert "served from cache" in report.render()


def test_lie_002_writes_absorbed_by_page_cache(ext4_loop) -> None:  # type: ignore[no-untyped-def]
    dev, mnt = ext4_loop

    def write_buffered() -> Issued:
        data = os.urandom(MiB)
        with open(mnt / "dirty.bin", "wb") as f:
            for _ in range(8):
                f.write(data)
        return Issued(write_ios=8, write_bytes=8 * MiB, direct=False)

    issued, obs = observed(dev, write_buffered)
    report = lie_report(issued, obs)
    assert "IOL-LIE-002" in codes(report.findings)
    assert "absorbed by cache" in report.verdict


def test_lie_003_small_synced_writes_amplified_by_the_file_system(ext4_loop) -> None:  # type: ignore[no-untyped-def]
    dev, mnt = ext4_loop

    def small_synced() -> Issued:
        fd = os.open(mnt / "small.bin", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            for i in range(128):
                os.pwrite(fd, b"x" * 512, i * 4096)
                os.fsync(fd)
        finally:
            os.close(fd)
        return Issued(write_ios=128, write_bytes=128 * 512, flushes=128)

    issued, obs = observed(dev, small_synced)
    report = lie_report(issued, obs)
    ev = by_code(report.findings, "IOL-LIE-003")[0].evidence
    assert ev["device_write_bytes"] >= 128 * 4096 > ev["issued_write_bytes"]
    assert "IOL-LIE-005" not in codes(report.findings), "ext4 flushes reach a write-back loop device"


def test_lie_004_buffered_writes_merged(loop_device: str) -> None:
    def small_writes() -> Issued:
        data = os.urandom(4096)
        fd = os.open(loop_device, os.O_WRONLY)
        try:
            for i in range(2048):
                os.pwrite(fd, data, i * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
        return Issued(write_ios=2048, write_bytes=8 * MiB, flushes=1)

    issued, obs = observed(loop_device, small_writes)
    report = lie_report(issued, obs)
    f = by_code(report.findings, "IOL-LIE-004")[0]
    assert f.evidence["direction"] == "write" and "merged" in f.message
    assert f.evidence["device_avg_bytes"] >= 2 * 4096
    assert "IOL-LIE-002" not in codes(report.findings)


def test_lie_004_direct_writes_split_by_max_sectors(loop_device: str) -> None:
    queue = f"/sys/block/{sysname(loop_device)}/queue/max_sectors_kb"
    buf = aligned(MiB)
    with sysfs_set(queue, "64"):

        def big_direct() -> Issued:
            fd = os.open(loop_device, os.O_WRONLY | os.O_DIRECT)
            try:
                for i in range(8):
                    os.pwrite(fd, buf, i * MiB)
            finally:
                os.close(fd)
            return Issued(write_ios=8, write_bytes=8 * MiB, direct=True)

        issued, obs = observed(loop_device, big_direct)
    report = lie_report(issued, obs)
    f = by_code(report.findings, "IOL-LIE-004")[0]
    assert "split" in f.message and f.evidence["device_ios"] >= 8 * 16
    assert f.evidence["device_avg_bytes"] <= 64 << 10


def test_lie_005_flushes_dropped_by_a_write_through_device(loop_device: str) -> None:
    buf = aligned(MiB)
    with sysfs_set(f"/sys/block/{sysname(loop_device)}/queue/write_cache", "write through"):

        def synced() -> Issued:
            fd = os.open(loop_device, os.O_WRONLY | os.O_DIRECT)
            try:
                for i in range(4):
                    os.pwrite(fd, buf, i * MiB)
                    os.fsync(fd)
            finally:
                os.close(fd)
            return Issued(write_ios=4, write_bytes=4 * MiB, flushes=4, direct=True)

        issued, obs = observed(loop_device, synced)
        f = by_code(lie_report(issued, obs).findings, "IOL-LIE-005")[0]
    assert f.severity == "info" and f.evidence["write_cache"] == "write through"
    assert f.evidence["device_flushes"] == 0


def test_lie_005_flushes_dropped_by_nobarrier(direct_dir: Path) -> None:
    image = sparse(direct_dir / "nb.img", 128 * MiB)
    mkfs_ext4(image)
    with attached(image, "--direct-io=on") as dev:
        assert Path(f"/sys/block/{sysname(dev)}/queue/write_cache").read_text().strip() == "write back"
        with mounted(dev, direct_dir / "mnt", "barrier=0") as mnt:

            def synced() -> Issued:
                fd = os.open(mnt / "f.bin", os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    for i in range(16):
                        os.pwrite(fd, os.urandom(65536), i * 65536)
                        os.fdatasync(fd)
                finally:
                    os.close(fd)
                return Issued(write_ios=16, write_bytes=16 * 65536, flushes=16)

            issued, obs = observed(dev, synced)
    f = by_code(lie_report(issued, obs).findings, "IOL-LIE-005")[0]
    assert f.severity == "warning" and f.evidence["write_cache"] == "write back"


def test_consistent_direct_reads_raise_nothing(direct_dir: Path) -> None:
    backing = write_random(direct_dir / "full.img", 32 * MiB)
    bs = 256 << 10  # 1 MiB would be split: max_segments x 4 KiB pages is 512 KiB on a loop device
    buf = aligned(bs)
    with attached(backing, "--direct-io=on") as dev:

        def direct_reads() -> Issued:
            fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
            try:
                for i in range(64):
                    assert os.preadv(fd, [buf], i * bs) == bs
            finally:
                os.close(fd)
            return Issued(read_ios=64, read_bytes=16 * MiB, direct=True)

        issued, obs = observed(dev, direct_reads)
    report = lie_report(issued, obs)
    assert report.findings == []
    assert report.verdict == "consistent"


def test_issued_from_raw_results() -> None:
    raw = {
        "ddir": {"read": {"ios": 3, "bytes": 12288}, "write": {"ios": 2, "bytes": 8192}, "sync": {"ios": 1}}
    }
    assert Issued.from_raw([raw, raw]) == Issued(6, 24576, 4, 16384, 2)


# ------------------------------------------------------------------- iolab run: one verdict per phase


def iolab_run(*args: str) -> tuple[int, str, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "iolab", "run", *args], capture_output=True, text=True, timeout=120
    )
    return proc.returncode, proc.stdout, proc.stderr


def run_check(*args: str) -> dict[str, Any]:
    rc, out, err = iolab_run(*args, "--output-format=json")
    assert rc == 0, err
    return json.loads(out)["iolab"]["device_check"]  # type: ignore[no-any-return]


def measured_only(issued: dict[str, Any]) -> Issued:
    """What the job's own statistics count: the issued totals without the ramp and the drained I/O."""
    left = {k: issued[k] for k in Issued().counts()}
    for part in ("ramp", "drained"):
        for k, v in issued.get(part, {}).items():
            left[k] -= v
    return Issued(**left)


def test_run_with_ramp_time_counts_the_ramp_io(loop_device: str) -> None:
    """randwrite to a loop device made here (nobody else writes to it), 2 s ramp + 1 s measured: with the
    ramp's I/O counted the device saw what was issued; the job's own statistics alone would look amplified."""
    check = run_check(
        "--name=ramped", f"--filename={loop_device}", "--rw=randwrite", "--bs=64k", "--direct=1",
        "--ioengine=libaio", "--iodepth=8", "--refill_buffers=1", "--ramp_time=2", "--runtime=1",
        "--time_based=1", "--size=48m",
    )  # fmt: skip
    assert len(check["phases"]) == 1
    phase = check["phases"][0]
    assert phase["jobs"] == ["ramped"]
    assert phase["verdict"] == "consistent" == check["verdict"], phase
    issued = phase["issued"]
    assert issued["includes_ramp"] is True
    ramp = issued["ramp"]
    assert ramp["write_ios"] > 0 and ramp["write_bytes"] == ramp["write_ios"] * 65536
    assert ramp["read_ios"] == 0
    top = phase["devices"][0]
    assert top["device"] == sysname(loop_device) and top["primary"] is True
    device = top["observed"]
    assert issued["write_bytes"] <= device["write_bytes"] <= issued["write_bytes"] * 1.25 + (256 << 10)
    # the measured phase alone: the device "moved more than was issued"
    without = lie_report(
        measured_only(issued), {top["device"]: DeviceStat(tuple(device[f] for f in STAT_FIELDS))}
    )
    assert "amplified" in without.verdict and "IOL-LIE-003" in codes(without.findings)
    # normal output says the ramp is in
    rc, out, err = iolab_run(
        "--name=ramped", f"--filename={loop_device}", "--rw=randwrite", "--bs=64k", "--direct=1",
        "--ramp_time=1", "--runtime=1", "--time_based=1", "--size=16m",
    )  # fmt: skip
    assert rc == 0, err
    assert "Device check: consistent" in out
    assert "ramp_time I/O included" in out


def test_io_in_flight_at_the_end_is_counted_like_fio(loop_device: str) -> None:
    """libaio QD32 time_based on a loop device made here: the I/Os in flight when the runtime ends are
    counted (bytes, ios, latency), so the job's total equals what the device read, exactly, as with fio
    (fio 3.33 on this machine: total_ios == clat N == device reads)."""
    rc, out, err = iolab_run(
        "--name=q", f"--filename={loop_device}", "--rw=randread", "--bs=4k", "--direct=1",
        "--ioengine=libaio", "--iodepth=32", "--runtime=1", "--time_based=1", "--size=32m",
        "--output-format=json",
    )  # fmt: skip
    assert rc == 0, err
    doc = json.loads(out)
    read = doc["jobs"][0]["read"]
    phase = doc["iolab"]["device_check"]["phases"][0]
    assert "drained" not in phase["issued"]
    assert phase["devices"][0]["observed"]["read_ios"] == read["total_ios"] == read["clat_ns"]["N"]
    assert read["total_ios"] > 32


def test_run_stonewalled_phases_get_one_verdict_each(ext4_loop, direct_dir: Path) -> None:  # type: ignore[no-untyped-def]
    """A buffered write phase, then (stonewall) a buffered read phase of the same file, on an ext4 file
    system of a loop device made here: the read phase is served from the page cache (invalidate=0: by
    default the cache is dropped at open, as fio does), the write phase is not mixed into it, and each
    phase's issued counts are its own jobs'."""
    dev, mnt = ext4_loop
    size = 16 * MiB
    job = direct_dir / "two-phases.fio"
    job.write_text(
        f"[global]\nfilename={mnt / 'data.bin'}\nsize={size}\nbs=64k\nioengine=psync\ndirect=0\n"
        "[w]\nrw=write\nend_fsync=1\n"
        "[r]\nstonewall\nrw=read\ninvalidate=0\n"
    )
    check = run_check(str(job))
    phases = check["phases"]
    assert [p["phase"] for p in phases] == [1, 2]
    assert [p["jobs"] for p in phases] == [["w"], ["r"]]
    w, r = phases[0]["issued"], phases[1]["issued"]
    assert (w["write_bytes"], w["write_ios"], w["read_bytes"], w["flushes"]) == (size, size // 65536, 0, 1)
    assert (r["read_bytes"], r["read_ios"], r["write_bytes"], r["flushes"]) == (size, size // 65536, 0, 0)
    assert w["includes_ramp"] is False and "ramp" not in w
    top_w, top_r = phases[0]["devices"][0], phases[1]["devices"][0]
    assert top_w["device"] == top_r["device"] == sysname(dev)
    # the write phase's data reached the device (end_fsync): nothing absorbed, and its writes stay in it
    assert top_w["observed"]["write_bytes"] >= size
    assert "absorbed by cache" not in phases[0]["verdict"]
    assert "served from cache" in phases[1]["verdict"]
    assert top_r["observed"]["write_bytes"] < size // 2
    assert {f["code"] for f in phases[1]["findings"]} >= {"IOL-LIE-001"}
    assert "IOL-LIE-001" not in {f["code"] for f in phases[0]["findings"]}
    assert (
        check["verdict"].startswith("phase 1 [w]: ") and "phase 2 [r]: served from cache" in check["verdict"]
    )
    # normal output: one block per phase
    rc, out, err = iolab_run(str(job))
    assert rc == 0, err
    assert "Device check, phase 1 of 2 [w]: " in out
    assert "Device check, phase 2 of 2 [r]: served from cache" in out


def test_issued_from_raw_includes_ramp_and_drained_io() -> None:
    raw = {
        "ddir": {"read": {"ios": 3, "bytes": 12288}, "write": {"ios": 2, "bytes": 8192}, "sync": {"ios": 1}},
        "ramp": {"read": {"ios": 5, "bytes": 20480}, "write": {"ios": 0, "bytes": 0}, "syncs": 2},
        "drained": {"read": {"ios": 1, "bytes": 4096}, "write": {"ios": 0, "bytes": 0}, "syncs": 0},
    }
    issued = Issued.from_raw([raw, raw])
    assert issued.counts() == {
        "read_ios": 18, "read_bytes": 73728, "write_ios": 4, "write_bytes": 16384, "flushes": 6,
        "trim_ios": 0, "trim_bytes": 0,
    }  # fmt: skip
    assert issued.ramp == Issued(10, 40960, 0, 0, 4)
    assert issued.drained == Issued(2, 8192, 0, 0, 0)
    assert issued.to_json()["includes_ramp"] is True
    no_ramp = {**raw, "ramp": {"read": {"ios": 0, "bytes": 0}, "write": {"ios": 0, "bytes": 0}, "syncs": 0}}
    assert Issued.from_raw([no_ramp]).ramp is None
    assert Issued.from_raw([no_ramp], ramp_time=True).ramp == Issued()


def test_runner_phases_follow_stonewall_and_wait_for(direct_dir: Path) -> None:
    """Jobs running together are one phase; stonewall and wait_for start a new one once none runs."""
    from iolab.engine.runner import prepare_files, run_plan
    from iolab.jobfile import parse_text
    from iolab.plan import build_plan

    text = (
        f"[global]\nsize=1m\nbs=64k\nrw=read\ndirect=1\n"
        f"[a]\nfilename={direct_dir / 'a'}\n[b]\nfilename={direct_dir / 'b'}\nnumjobs=2\n"
        f"[c]\nstonewall\nfilename={direct_dir / 'c'}\n"
        f"[d]\nwait_for=c\nfilename={direct_dir / 'd'}\n"
    )
    plan = build_plan(parse_text(text, "phases.fio"))
    prepare_files(plan)
    calls: list[int] = []
    outcome = run_plan(plan, phase_snapshot=lambda: calls.append(len(calls)) or len(calls))
    names = [[plan.jobs[i].name for i in p.jobs] for p in outcome.phases]
    assert names == [["a", "b", "b"], ["c"], ["d"]]
    assert [(p.before, p.after) for p in outcome.phases] == [(1, 2), (3, 4), (5, 6)]
    assert all(w.raw is not None and w.raw["ddir"]["read"]["bytes"] == MiB for w in outcome.workers)


def test_trims_that_reach_the_device_as_discards_are_consistent(loop_device: str) -> None:
    """rw=trim on a raw loop device made here (no file system on it: the gate lets it through): every trim
    is a BLKDISCARD the loop device counts, so the check is consistent and counts the trims it issued."""
    size = 8 * MiB
    check = run_check(
        "--name=trim", f"--filename={loop_device}", "--rw=trim", "--bs=1m", f"--size={size}",
    )  # fmt: skip
    phase = check["phases"][0]
    issued = phase["issued"]
    assert (issued["trim_ios"], issued["trim_bytes"]) == (8, size)
    assert (issued["write_bytes"], issued["read_bytes"]) == (0, 0)
    top = phase["devices"][0]
    assert top["device"] == sysname(loop_device)
    assert top["observed"]["discard_bytes"] >= size
    assert "IOL-LIE-006" not in {f["code"] for f in phase["findings"]}
    assert phase["verdict"] == "consistent", phase


def test_lie_006_punched_holes_that_never_reach_the_device(ext4_loop) -> None:  # type: ignore[no-untyped-def]
    """rw=trim on a file of an ext4 mounted without -o discard (made here): the holes are punched in the
    file system, the loop device under it sees no discard, and the check says the trim rate is not the
    device's."""
    dev, mnt = ext4_loop
    path = write_random(mnt / "punched.bin", 8 * MiB)
    check = run_check("--name=punch", f"--filename={path}", "--rw=trim", "--bs=1m", "--size=8m")
    phase = check["phases"][0]
    assert phase["issued"]["trim_bytes"] == 8 * MiB
    top = phase["devices"][0]
    assert top["device"] == sysname(dev)
    assert top["observed"]["discard_bytes"] < 4 * MiB
    found = {f["code"]: f for f in phase["findings"]}
    assert "IOL-LIE-006" in found, phase
    assert found["IOL-LIE-006"]["severity"] == "info"
    assert found["IOL-LIE-006"]["evidence"]["issued_trim_bytes"] == 8 * MiB
    assert "discards dropped" in phase["verdict"]
