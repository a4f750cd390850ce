"""Shared fixtures: real targets only (files with O_DIRECT, zram0, loop devices we create).

Tests that need root or a device skip with a reason on a developer machine, and fail in CI (IOLAB_CI=1),
where they must run.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

IN_CI = bool(os.environ.get("IOLAB_CI") or os.environ.get("CI"))


def need(condition: bool, reason: str) -> None:
    """Skip outside CI, fail inside CI: what CI must run may not silently vanish."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI must run this test but: {reason}")
    pytest.skip(reason)


def _supports_direct(directory: str) -> bool:
    probe = os.path.join(directory, ".iolab-odirect-probe")
    try:
        fd = os.open(probe, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o600)
    except OSError:
        return False
    os.close(fd)
    os.unlink(probe)
    return True


@pytest.fixture
def direct_dir() -> Iterator[Path]:
    """A temp directory on a file system that accepts O_DIRECT (tmpfs does not)."""
    for base in (tempfile.gettempdir(), "/var/tmp", os.getcwd()):
        if os.path.isdir(base) and _supports_direct(base):
            path = Path(tempfile.mkdtemp(prefix="iolab-test-", dir=base))
            try:
                yield path
            finally:
                shutil.rmtree(path, ignore_errors=True)
            return
    need(False, "no temp directory supports O_DIRECT")


@pytest.fixture
def zram() -> Iterator[str]:
    """/dev/zram0 sized 256 MiB for the test and reset afterwards (root only)."""
    need(os.geteuid() == 0, "needs root to set up /dev/zram0")
    sysfs = Path("/sys/block/zram0")
    if not sysfs.exists() and shutil.which("modprobe"):
        subprocess.run(["modprobe", "zram", "num_devices=1"], check=False)
    need(sysfs.exists(), "no /dev/zram0 (zram module not available)")
    need((sysfs / "disksize").read_text().strip() == "0", "/dev/zram0 is in use by someone else")
    (sysfs / "disksize").write_text("256M")
    try:
        yield "/dev/zram0"
    finally:
        _reset_zram(sysfs)


def _reset_zram(sysfs: Path) -> None:
    """Reset, retrying while the kernel says the device is busy: seen once in a CI run, at the teardown of an
    io_uring test (likely the ring's asynchronous teardown still holding the file); one EBUSY there used to
    leave zram0 sized and fail every later zram test."""
    deadline = time.monotonic() + 10
    while True:
        try:
            (sysfs / "reset").write_text("1")
            return
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@contextlib.contextmanager
def attached_loop(backing: Path) -> Iterator[str]:
    """A loop device over `backing` (direct I/O to it when the kernel allows), detached afterwards even when
    the test fails."""
    need(os.geteuid() == 0, "needs root to create loop devices")
    need(shutil.which("losetup") is not None, "losetup (util-linux) is not installed")
    dev = subprocess.run(
        ["losetup", "--find", "--show", "--direct-io=on", str(backing)], capture_output=True, text=True
    )
    if dev.returncode != 0:
        dev = subprocess.run(["losetup", "--find", "--show", str(backing)], capture_output=True, text=True)
    need(dev.returncode == 0, f"losetup failed: {dev.stderr.strip()}")
    path = dev.stdout.strip()
    try:
        yield path
    finally:
        subprocess.run(["losetup", "-d", path], check=False)


@pytest.fixture
def loop_device(direct_dir: Path) -> Iterator[str]:
    """A 64 MiB loop device over a sparse temp file."""
    backing = direct_dir / "loop-backing.img"
    with open(backing, "wb") as f:
        f.truncate(64 << 20)
    with attached_loop(backing) as dev:
        yield dev


@pytest.fixture
def fio() -> str:
    path = shutil.which("fio")
    need(path is not None, "fio is not installed (Debian package fio; `make test` installs it as root)")
    assert path is not None
    return path
