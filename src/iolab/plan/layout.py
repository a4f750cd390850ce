"""Lay files out before a job runs, as fio does.

A job that reads needs data to read: its files are written in full beforehand ("Laying out IO file"),
otherwise reads would hit holes that the file system answers without touching the device. A write-only
job only needs the space: it is allocated with fallocate(), like fio's default fallocate=native.
"""

from __future__ import annotations

import os

from iolab.plan import FilePlan

CHUNK = 1 << 20


def _chunk_source(zero: bool) -> bytearray:
    return bytearray(CHUNK) if zero else bytearray(os.urandom(CHUNK))


def layout_file(plan: FilePlan, *, fill: bool, zero: bool = False) -> bool:
    """Make `plan.path` at least `plan.required_size` bytes; return True if anything was done."""
    if plan.is_block:
        return False
    fd = os.open(plan.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        current = os.fstat(fd).st_size
        if current >= plan.required_size:
            return False
        if not fill:
            os.posix_fallocate(fd, current, plan.required_size - current)
            return True
        data = _chunk_source(zero)
        pos = current
        while pos < plan.required_size:
            n = min(CHUNK, plan.required_size - pos)
            if not zero:
                # stamp the position so no two chunks are identical (dedup/compression would see through it)
                data[:8] = pos.to_bytes(8, "little")
            os.pwrite(fd, memoryview(data)[:n], pos)
            pos += n
        os.fsync(fd)
        return True
    finally:
        os.close(fd)
