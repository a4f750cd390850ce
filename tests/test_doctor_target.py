"""Target inspection from sysfs/procfs, on real files and loop devices made here."""

from __future__ import annotations

import os
from pathlib import Path

from iolab.doctor import inspect_target
from iolab.doctor.extents import never_written
from test_doctor_support import MiB, attached, mkfs_ext4, mounted, sparse, sysname, write_random


def test_regular_file(direct_dir: Path) -> None:
    path = write_random(direct_dir / "f.bin", MiB)
    t = inspect_target(str(path))
    assert t.kind == "file" and t.size == MiB
    assert t.mount is not None and t.fstype == t.mount.fstype
    st = os.stat(path)
    if t.device is not None:  # a block-backed file system: the device under it is st_dev's
        assert t.device.devno == (os.major(st.st_dev), os.minor(st.st_dev)) or t.fstype == "btrfs"
        assert t.device.logical_block_size in (512, 1024, 2048, 4096)
        assert t.chain[0] == t.device
    assert str(path) in t.describe()
    assert t.to_json()["kind"] == "file"


def test_missing_file_uses_its_directory(direct_dir: Path) -> None:
    t = inspect_target(str(direct_dir / "not" / "yet"))
    assert t.kind == "missing"
    assert t.mount == inspect_target(str(direct_dir)).mount


def test_loop_device_and_its_backing_file(loop_device: str, direct_dir: Path) -> None:
    t = inspect_target(loop_device)
    dev = t.device
    assert t.kind == "block" and dev is not None
    assert dev.driver == "loop" and dev.stacked and dev.loop_dio is True
    assert dev.loop_backing_file == str(direct_dir / "loop-backing.img")
    assert dev.size_bytes == 64 * MiB == t.size
    assert isinstance(dev.rotational, bool) and dev.logical_block_size == 512  # rotational: from the backing
    assert dev.write_cache in ("write back", "write through")
    assert dev.scheduler is not None and dev.nr_requests is not None
    # below the loop device: the device under the backing file's file system
    backing_fs = inspect_target(str(direct_dir))
    if backing_fs.device is not None:
        assert t.chain[1].name == backing_fs.device.name


def test_symlink_to_a_device(loop_device: str, direct_dir: Path) -> None:
    link = direct_dir / "disk-by-something"
    link.symlink_to(loop_device)
    t = inspect_target(str(link))
    assert t.kind == "block" and t.realpath == loop_device
    assert t.device is not None and t.device.name == sysname(loop_device)


def test_file_on_a_stack_of_ext4_on_loop(direct_dir: Path) -> None:
    image = sparse(direct_dir / "fs.img", 64 * MiB)
    mkfs_ext4(image)
    with attached(image, "--direct-io=off") as dev, mounted(dev, direct_dir / "mnt with space") as mnt:
        path = write_random(mnt / "f.bin", MiB)
        t = inspect_target(str(path))
        assert t.fstype == "ext4"
        assert t.mount is not None and t.mount.mountpoint == str(mnt)  # \040 in mountinfo is decoded
        assert t.device is not None and t.device.name == sysname(dev)
        assert t.device.loop_dio is False
        assert [d.name for d in t.chain][:1] == [sysname(dev)] and len(t.chain) >= 2


def test_zram(zram: str) -> None:
    t = inspect_target(zram)
    assert t.device is not None and t.device.driver == "zram" and t.ram_backed
    assert t.device.logical_block_size == 4096 and t.size == 256 * MiB


def test_tmpfs_has_no_block_device() -> None:
    t = inspect_target("/dev/shm")
    assert t.kind == "directory" and t.device is None and t.fstype == "tmpfs" and t.ram_backed


def test_never_written_holes_and_unwritten(direct_dir: Path) -> None:
    path = direct_dir / "mix.bin"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.posix_fallocate(fd, 0, 4 * MiB)  # unwritten extents
        os.pwrite(fd, os.urandom(MiB), MiB)  # one written MiB in the middle
        os.ftruncate(fd, 8 * MiB)  # and a hole at the end
    finally:
        os.close(fd)
    nw = never_written(str(path))
    assert nw.length == 8 * MiB
    assert nw.hole_bytes == 4 * MiB and nw.unwritten_bytes == 3 * MiB
    assert nw.first_offset == 0
    assert never_written(str(path), MiB, MiB).total == 0
    assert never_written(str(path), 16 * MiB, MiB).length == 0  # beyond EOF: nothing to read
