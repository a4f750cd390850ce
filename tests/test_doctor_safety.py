"""The data safety gate, on loop devices made here (root; skipped with a reason elsewhere, required in CI)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import need
from iolab.doctor import SafetyError, SafetyGate, read_signatures
from iolab.doctor.findings import has_errors
from iolab.doctor.safety import probe_signatures
from test_doctor_support import (
    MiB,
    attached,
    by_code,
    codes,
    jobdef,
    mkfs_ext4,
    mounted,
    need_tool,
    sparse,
    sysname,
    write_mbr,
    write_random,
)


def write_job(dev: str, **extra: object) -> list[object]:
    return [jobdef(filename=dev, rw="randwrite", direct=True, refill_buffers=True, **extra)]


def errors(findings: list) -> list[str]:  # type: ignore[type-arg]
    return sorted(f.code for f in findings if f.severity == "error")


@pytest.fixture
def ext4_image(direct_dir: Path) -> Path:
    image = sparse(direct_dir / "ext4.img", 64 * MiB)
    mkfs_ext4(image)  # the signature is made on the backing file, before the loop device exists
    return image


# ------------------------------------------------------------------------------------------ clean device


def test_clean_device_passes(loop_device: str) -> None:
    assert SafetyGate.check(write_job(loop_device)) == []


def test_read_only_jobs_are_not_gated(ext4_image: Path, direct_dir: Path) -> None:
    with attached(ext4_image) as dev, mounted(dev, direct_dir / "mnt"):
        assert SafetyGate.check([jobdef(filename=dev, rw="randread", direct=True)]) == []


# --------------------------------------------------------------------------------------------- mounted


def test_refuses_mounted_device_by_its_path(ext4_image: Path, direct_dir: Path) -> None:
    with attached(ext4_image) as dev, mounted(dev, direct_dir / "mnt") as mnt:
        found = SafetyGate.check(write_job(dev))
        assert errors(found) == ["IOL-SAFE-001", "IOL-SAFE-004"]
        f = by_code(found, "IOL-SAFE-001")[0]
        assert f.evidence["mountpoint"] == str(mnt) and f.evidence["fstype"] == "ext4"
        assert f"--allow-destroy={dev}" in f.fix or f"--allow-destroy=/dev/{sysname(dev)}" in f.fix


def test_refuses_mounted_device_through_a_symlink(ext4_image: Path, direct_dir: Path) -> None:
    with attached(ext4_image) as dev, mounted(dev, direct_dir / "mnt"):
        link = direct_dir / "innocent-looking-name"
        link.symlink_to(dev)
        found = SafetyGate.check(write_job(str(link)))
        assert "IOL-SAFE-001" in errors(found)
        assert has_errors(found)


def test_allow_destroy_names_the_same_device(ext4_image: Path, direct_dir: Path) -> None:
    with attached(ext4_image) as dev, mounted(dev, direct_dir / "mnt"):
        link = direct_dir / "alias"
        link.symlink_to(dev)
        for target, allow in ((dev, dev), (str(link), dev), (dev, str(link))):
            found = SafetyGate.check(write_job(target), allow_destroy=[allow])
            assert not has_errors(found), (target, allow, found)
            assert {f.code for f in found} == {"IOL-SAFE-001", "IOL-SAFE-004"}
            assert all(f.severity == "info" and "allowed by --allow-destroy" in f.message for f in found)


def test_allow_destroy_for_another_device_does_not_help(ext4_image: Path, direct_dir: Path) -> None:
    other = sparse(direct_dir / "other.img", 16 * MiB)
    with attached(ext4_image) as dev, attached(other) as other_dev, mounted(dev, direct_dir / "mnt"):
        found = SafetyGate.check(write_job(dev), allow_destroy=[other_dev])
        assert errors(found) == ["IOL-SAFE-001", "IOL-SAFE-004"]


def test_allow_mounted_write_does_not_bypass_the_signature(ext4_image: Path, direct_dir: Path) -> None:
    with attached(ext4_image) as dev, mounted(dev, direct_dir / "mnt"):
        found = SafetyGate.check(write_job(dev, allow_mounted_write=True))
        assert errors(found) == ["IOL-SAFE-004"]
        assert by_code(found, "IOL-SAFE-001")[0].severity == "info"
        found = SafetyGate.check(write_job(dev, allow_mounted_write=True), allow_destroy=[dev])
        assert not has_errors(found)


def test_refuses_whole_disk_when_a_partition_is_mounted(direct_dir: Path) -> None:
    image = sparse(direct_dir / "disk.img", 64 * MiB)
    write_mbr(image)
    with attached(image, "--partscan") as dev:
        part = f"{dev}p1"
        for _ in range(50):  # devtmpfs creates the node a moment after the partition scan
            if os.path.exists(part):
                break
            time.sleep(0.02)
        if not os.path.exists(part):
            pytest.skip(
                f"this kernel made no partition from a valid DOS table on {dev} (no partition support)"
            )
        mkfs_ext4(part)
        with mounted(part, direct_dir / "mnt"):
            found = SafetyGate.check(write_job(dev))
            mounted_hits = by_code(found, "IOL-SAFE-001")
            assert mounted_hits and mounted_hits[0].evidence["mounted_device"] == part
            sigs = by_code(found, "IOL-SAFE-004")[0].evidence["signatures"]
            assert any(s.startswith("dos partition table") for s in sigs)


# ------------------------------------------------------------------------------------------ signatures


def test_refuses_ext4_signature_on_the_backing_file(ext4_image: Path) -> None:
    with attached(ext4_image) as dev:
        found = SafetyGate.check(write_job(dev))
        assert errors(found) == ["IOL-SAFE-004"]
        f = found[0]
        assert f.evidence["signatures"] == ["ext4@1080"]
        assert "ext4" in f.message
        assert not has_errors(SafetyGate.check(write_job(dev), allow_destroy=[dev]))


@pytest.mark.parametrize(
    ("prober", "dos"), [("libblkid", "dos partition table"), ("table", "dos partition table (1 entries)")]
)
def test_detects_swap_and_partition_table_signatures(direct_dir: Path, prober: str, dos: str) -> None:
    need_tool("mkswap")
    swap = sparse(direct_dir / "swap.img", 16 * MiB)
    subprocess.run(["mkswap", str(swap)], check=True, capture_output=True)
    mbr = sparse(direct_dir / "mbr.img", 16 * MiB)
    write_mbr(mbr)
    with attached(swap) as swap_dev, attached(mbr) as mbr_dev:
        swap_probe = probe_signatures(swap_dev, prober=prober)
        assert swap_probe.prober.startswith("libblkid 2." if prober == "libblkid" else "iolab table")
        assert [str(s) for s in swap_probe.signatures] == ["swap@4086"]
        assert [s.name for s in probe_signatures(mbr_dev, prober=prober).signatures] == [dos]
        assert errors(SafetyGate.check(write_job(mbr_dev))) == ["IOL-SAFE-004"]


def test_signatures_of_a_blank_device(loop_device: str) -> None:
    assert read_signatures(loop_device) == []


# ----------------------------------------------------------------------------------------------- swap


def test_refuses_active_swap_even_with_allow_destroy(direct_dir: Path) -> None:
    need_tool("swapon")
    image = sparse(direct_dir / "swap.img", 32 * MiB)
    subprocess.run(["mkswap", str(image)], check=True, capture_output=True)
    with attached(image) as dev:
        r = subprocess.run(["swapon", dev], capture_output=True, text=True)
        if r.returncode:
            pytest.skip(f"swapon not possible here: {r.stderr.strip()}")
        try:
            found = SafetyGate.check(write_job(dev), allow_destroy=[dev])
            assert errors(found) == ["IOL-SAFE-003"]
        finally:
            subprocess.run(["swapoff", dev], check=False)


# -------------------------------------------------------------------------------------------- holders


def test_refuses_device_with_holders(loop_device: str) -> None:
    need(os.geteuid() == 0, "needs root to use device-mapper")
    if not os.path.exists("/sys/module/dm_mod"):
        pytest.skip("this kernel has no device-mapper (no /sys/module/dm_mod): no holder can be made here")
    name = f"iolab-doctor-{os.getpid()}"
    sectors = int(Path(f"/sys/class/block/{sysname(loop_device)}/size").read_text())
    r = subprocess.run(
        ["dmsetup", "create", name, "--table", f"0 {sectors} linear {loop_device} 0"],
        capture_output=True,
        text=True,
    )
    if r.returncode:
        pytest.skip(f"dmsetup create failed: {r.stderr.strip()}")
    try:
        found = SafetyGate.check(write_job(loop_device))
        assert "IOL-SAFE-002" in errors(found)
    finally:
        subprocess.run(["dmsetup", "remove", name], check=False)


# ------------------------------------------------------------------------------------------- O_EXCL


def test_exclusive_hold_keeps_others_out(loop_device: str, direct_dir: Path) -> None:
    with SafetyGate.exclusive(write_job(loop_device)) as hold:
        assert list(hold.fds) == [loop_device] and hold.unheld == []
        with pytest.raises(OSError) as exc:
            os.close(os.open(loop_device, os.O_RDONLY | os.O_EXCL))
        assert exc.value.errno == errno.EBUSY
        # the engine's own (non-exclusive) opens still work
        fd = os.open(loop_device, os.O_RDWR | os.O_DIRECT)
        os.close(fd)
    os.close(os.open(loop_device, os.O_RDONLY | os.O_EXCL))  # released


def test_exclusive_refuses_mounted_device(ext4_image: Path, direct_dir: Path) -> None:
    with attached(ext4_image) as dev, mounted(dev, direct_dir / "mnt"):
        with pytest.raises(SafetyError) as exc:
            SafetyGate.exclusive(write_job(dev))
        assert "IOL-SAFE-001" in codes(exc.value.findings)
        with SafetyGate.exclusive(write_job(dev), allow_destroy=[dev]) as hold:
            assert hold.unheld == [dev] and hold.fds == {}


def test_exclusive_refuses_signature(ext4_image: Path) -> None:
    with attached(ext4_image) as dev:
        with pytest.raises(SafetyError) as exc:
            SafetyGate.exclusive(write_job(dev))
        assert codes(exc.value.findings) == ["IOL-SAFE-004"]
        os.close(os.open(dev, os.O_RDONLY | os.O_EXCL))  # released after the refusal


def test_exclusive_busy_device(loop_device: str) -> None:
    holder = os.open(loop_device, os.O_RDONLY | os.O_EXCL)
    try:
        found = SafetyGate.check(write_job(loop_device))
        assert errors(found) == ["IOL-SAFE-005"]
        with pytest.raises(SafetyError):
            SafetyGate.exclusive(write_job(loop_device))
    finally:
        os.close(holder)


def test_written_files_are_not_gated(direct_dir: Path) -> None:
    path = write_random(direct_dir / "plain.bin", MiB)
    assert SafetyGate.check(write_job(str(path))) == []


# --------------------------------------------------------------------- regular files under a block device


def aliases(path: Path) -> list[str]:
    """The file by its own path, a symlink and a hard link (in the same directory, the same file system)."""
    link = path.with_name(path.name + ".symlink")
    link.symlink_to(path)
    hard = path.with_name(path.name + ".hardlink")
    os.link(path, hard)
    return [str(path), str(link), str(hard)]


def test_refuses_writing_the_backing_file_of_a_loop_device(direct_dir: Path) -> None:
    backing = write_random(direct_dir / "backing.img", 4 * MiB)
    other = write_random(direct_dir / "other.img", MiB)
    names = aliases(backing)
    with attached(backing) as dev:
        for name in names:
            found = SafetyGate.check(write_job(name))
            assert errors(found) == ["IOL-SAFE-006"], (name, found)
            f = found[0]
            assert f.evidence["loop_device"] == dev and f.evidence["backing_file"] == str(backing)
            assert f.evidence["realpath"] in (str(backing), str(backing.with_name("backing.img.hardlink")))
            assert dev in f.message and f"--allow-destroy={name}" in f.fix
            # allowed by naming the same file under any of its names, and by nothing else
            for allow in names:
                ok = SafetyGate.check(write_job(name), allow_destroy=[allow])
                assert not has_errors(ok) and [g.code for g in ok] == ["IOL-SAFE-006"], (name, allow)
                assert ok[0].severity == "info" and f"allowed by --allow-destroy={allow}" in ok[0].message
            assert errors(SafetyGate.check(write_job(name), allow_destroy=[str(other), dev])) == [
                "IOL-SAFE-006"
            ]
            # reading it is fine
            assert SafetyGate.check([jobdef(filename=name, rw="randread", direct=True)]) == []
        with pytest.raises(SafetyError) as exc:
            SafetyGate.exclusive(write_job(names[1]))
        assert codes(exc.value.findings) == ["IOL-SAFE-006"]
    # detached: nothing to say any more
    assert SafetyGate.check(write_job(names[0])) == []


def test_backing_file_renamed_or_unlinked_is_still_recognised(direct_dir: Path) -> None:
    """sysfs shows the old name (or "... (deleted)"); the loop driver's device and inode still match."""
    backing = write_random(direct_dir / "moving.img", 4 * MiB)
    with attached(backing) as dev:
        moved = direct_dir / "moved.img"
        os.rename(backing, moved)
        assert errors(SafetyGate.check(write_job(str(moved)))) == ["IOL-SAFE-006"]
        hard = direct_dir / "last-link.img"
        os.link(moved, hard)
        moved.unlink()
        sysfs = Path(f"/sys/block/{sysname(dev)}/loop/backing_file").read_text().strip()
        assert sysfs.endswith("(deleted)")
        found = SafetyGate.check(write_job(str(hard)))
        assert errors(found) == ["IOL-SAFE-006"] and found[0].evidence["backing_file"] == sysfs
        # a new file with the old name is not the backing file
        write_random(backing, MiB)
        assert SafetyGate.check(write_job(str(backing))) == []


@contextmanager
def swap_file(path: Path, size: int = 16 * MiB) -> Iterator[Path]:
    """An active swap file (mkswap + swapon), swapped off afterwards whatever happens."""
    need(os.geteuid() == 0, "needs root to swapon")
    need_tool("mkswap")
    need_tool("swapon")
    with open(path, "wb") as f:  # written, not sparse: swapon refuses files with holes
        f.write(bytes(size))
    path.chmod(0o600)
    subprocess.run(["mkswap", str(path)], check=True, capture_output=True)
    r = subprocess.run(["swapon", str(path)], capture_output=True, text=True)
    need(r.returncode == 0, f"swapon {path} failed: {r.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["swapoff", str(path)], check=False, capture_output=True)


def test_refuses_writing_an_active_swap_file_even_with_allow_destroy(direct_dir: Path) -> None:
    with swap_file(direct_dir / "swapfile") as swap:
        names = aliases(swap)
        for name in names:
            found = SafetyGate.check(write_job(name), allow_destroy=names)
            assert errors(found) == ["IOL-SAFE-007"], (name, found)
            assert found[0].evidence["swap"] == str(swap) and f"swapoff {swap}" in found[0].fix
            assert SafetyGate.check([jobdef(filename=name, rw="read")]) == []
    assert SafetyGate.check(write_job(names[2])) == []  # swapped off


# ------------------------------------------------------------------------- the same through `iolab run`


def iolab_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "iolab", "run", *args], capture_output=True, text=True, timeout=120
    )


def test_iolab_run_refuses_a_loop_backing_file_and_allows_it_by_name(direct_dir: Path) -> None:
    backing = write_random(direct_dir / "backing.img", 4 * MiB)
    path, link, hard = aliases(backing)
    job = ["--name=w", "--rw=write", "--bs=64k", "--size=4m", "--direct=1"]
    with attached(backing) as dev:
        before = backing.read_bytes()
        r = iolab_run(*job, f"--filename={link}")
        assert r.returncode == 1 and r.stdout == ""
        assert "refusing to run" in r.stderr and "IOL-SAFE-006" in r.stderr and dev in r.stderr
        assert f"--allow-destroy={link}" in r.stderr
        assert backing.read_bytes() == before, "nothing was written"
        r = iolab_run(*job, f"--filename={hard}", f"--allow-destroy={path}")
        assert r.returncode == 0, r.stderr
        assert "info: IOL-SAFE-006" in r.stdout and f"allowed by --allow-destroy={path}" in r.stdout
        assert backing.read_bytes() != before
        r = iolab_run("--name=r", "--rw=read", "--bs=64k", "--size=4m", "--direct=1", f"--filename={link}")
        assert r.returncode == 0 and "IOL-SAFE" not in r.stdout + r.stderr


def test_iolab_run_refuses_an_active_swap_file(direct_dir: Path) -> None:
    with swap_file(direct_dir / "swapfile") as swap:
        link = direct_dir / "swap-alias"
        link.symlink_to(swap)
        r = iolab_run("--name=w", "--rw=write", "--bs=64k", "--size=1m", f"--filename={link}",
                      f"--allow-destroy={swap}")  # fmt: skip
        assert r.returncode == 1 and "IOL-SAFE-007" in r.stderr and "active swap file" in r.stderr
        r = iolab_run("--name=r", "--rw=read", "--bs=64k", "--size=1m", f"--filename={link}")
        assert r.returncode == 0, r.stderr
