"""Helpers for the doctor tests: loop devices and mounts that are always undone, images with signatures.

Only devices created here are ever opened for writing. Everything is torn down in `finally`, also on failure.
(No tests in this module; it is named test_* so that it is owned with the doctor tests.)
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from conftest import need
from iolab.jobfile import JobDef, parse_text

MiB = 1 << 20


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    return str(value)


def jobdef(name: str = "job", index: int = 0, **values: Any) -> JobDef:
    """The JobDef the parser makes of a job file test.fio: the section header at line 1, then one line per
    option as written (True/False as 1/0, a tuple per direction: bs=(4096, 8192) is bs=4096,8192)."""
    text = "".join(f"{k}={_text(v)}\n" for k, v in values.items())
    return replace(parse_text(f"[{name}]\n{text}", "test.fio")[0], index=index)


def good_values(path: str | Path, **over: Any) -> dict[str, Any]:
    """A job that measures the device honestly."""
    v: dict[str, Any] = {
        "filename": path,
        "rw": "randread",
        "bs": 4096,
        "direct": True,
        "ioengine": "psync",
        "iodepth": 1,
        "ramp_time": "2s",
        "runtime": "30s",
        "time_based": True,
    }
    v.update(over)
    return v


def codes(findings: Any) -> list[str]:
    return sorted(f.code for f in findings)


def write_random(path: Path, size: int) -> Path:
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, MiB)
            f.write(os.urandom(n))
            left -= n
        f.flush()
        os.fsync(f.fileno())
    return path


def sparse(path: Path, size: int) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def need_root(what: str) -> None:
    need(os.geteuid() == 0, f"needs root to {what}")


def need_tool(tool: str) -> None:
    need(shutil.which(tool) is not None, f"{tool} is not installed")


@contextmanager
def attached(backing: Path, *args: str) -> Iterator[str]:
    """`losetup --find --show ARGS BACKING`, detached afterwards whatever happens."""
    need_root("create loop devices")
    need_tool("losetup")
    r = subprocess.run(["losetup", "--find", "--show", *args, str(backing)], capture_output=True, text=True)
    need(r.returncode == 0, f"losetup failed: {r.stderr.strip()}")
    dev = r.stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], check=False, capture_output=True)


@contextmanager
def mounted(dev: str, where: Path, options: str = "") -> Iterator[Path]:
    need_root("mount")
    where.mkdir(parents=True, exist_ok=True)
    opts = ["-o", options] if options else []
    r = subprocess.run(["mount", *opts, dev, str(where)], capture_output=True, text=True)
    need(r.returncode == 0, f"mount {dev} failed: {r.stderr.strip()}")
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], check=False, capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(where)], check=False, capture_output=True)


@contextmanager
def sysfs_set(path: str, value: str) -> Iterator[None]:
    """Write a sysfs attribute for the duration, then restore it."""
    p = Path(path)
    old = p.read_text().strip()
    p.write_text(value)
    try:
        yield
    finally:
        p.write_text(old)


def mkfs_ext4(target: Path | str) -> None:
    need_tool("mkfs.ext4")
    subprocess.run(["mkfs.ext4", "-q", "-F", str(target)], check=True, capture_output=True)


def write_mbr(image: Path, start_lba: int = 2048, sectors: int | None = None) -> None:
    """A DOS partition table with one Linux partition (type 0x83), written by hand."""
    size = image.stat().st_size
    sectors = sectors or size // 512 - start_lba
    entry = struct.pack("<B3sB3sII", 0x00, b"\x00\x02\x00", 0x83, b"\xff\xff\xff", start_lba, sectors)
    with open(image, "r+b") as f:
        f.seek(446)
        f.write(entry + bytes(16 * 3) + b"\x55\xaa")


def sysname(dev: str) -> str:
    return os.path.basename(os.path.realpath(dev))


def by_code(findings: Any, code: str) -> list[Any]:
    return [f for f in findings if f.code == code]


def evidence(findings: Any, code: str) -> Mapping[str, Any]:
    hits = by_code(findings, code)
    assert hits, f"no {code} in {codes(findings)}"
    return hits[0].evidence  # type: ignore[no-any-return]
