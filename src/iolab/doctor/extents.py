"""Never-written data in a file: sparse holes (SEEK_DATA/SEEK_HOLE) and unwritten extents (FIEMAP).

Both read back as zeros without any device I/O: a read benchmark over them measures memcpy/memset speed.
ext4 and XFS report unwritten (fallocated) extents as holes to SEEK_DATA too, so SEEK_DATA gives the total and
FIEMAP tells the two kinds apart where the file system supports it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from dataclasses import dataclass

FS_IOC_FIEMAP = 0xC020660B
FIEMAP_FLAG_SYNC = 0x1
FIEMAP_EXTENT_LAST = 0x1
FIEMAP_EXTENT_UNWRITTEN = 0x800
_HDR = struct.Struct("=QQIIII")  # fm_start, fm_length, fm_flags, fm_mapped_extents, fm_extent_count, reserved
_EXT = struct.Struct("=QQQQQIIII")  # logical, physical, length, reserved64[2], flags, reserved[3]
_BATCH = 256


@dataclass(frozen=True)
class NeverWritten:
    """Bytes of [offset, offset+length) that hold no written data."""

    offset: int
    length: int  # the part of the region that lies inside the file (beyond EOF is not counted)
    hole_bytes: int  # no extent at all
    unwritten_bytes: int  # allocated but never written (fallocate)
    first_offset: int | None  # first never-written byte, for the evidence

    @property
    def total(self) -> int:
        return self.hole_bytes + self.unwritten_bytes

    @property
    def fraction(self) -> float:
        return self.total / self.length if self.length else 0.0


def _data_ranges(fd: int, start: int, end: int) -> list[tuple[int, int]]:
    """Ranges holding data per SEEK_DATA/SEEK_HOLE (unwritten extents count as holes on ext4/xfs)."""
    ranges: list[tuple[int, int]] = []
    pos = start
    while pos < end:
        try:
            data = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # no data after pos
                break
            raise
        if data >= end:
            break
        hole = os.lseek(fd, data, os.SEEK_HOLE)
        ranges.append((data, min(hole, end)))
        pos = hole
    return ranges


def _unwritten_ranges(fd: int, start: int, end: int) -> list[tuple[int, int]] | None:
    """Extents flagged UNWRITTEN by FIEMAP, or None when the file system has no FIEMAP."""
    out: list[tuple[int, int]] = []
    pos = start
    flags = FIEMAP_FLAG_SYNC  # dirty page-cache data must be on its extents before we look
    while pos < end:
        buf = bytearray(_HDR.size + _EXT.size * _BATCH)
        _HDR.pack_into(buf, 0, pos, end - pos, flags, 0, _BATCH, 0)
        try:
            fcntl.ioctl(fd, FS_IOC_FIEMAP, buf)
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL):
                return None
            raise
        flags = 0
        mapped = _HDR.unpack_from(buf, 0)[3]
        if mapped == 0:
            break
        last_end = pos
        done = False
        for i in range(mapped):
            logical, _phys, length, _r1, _r2, eflags, *_ = _EXT.unpack_from(buf, _HDR.size + i * _EXT.size)
            if eflags & FIEMAP_EXTENT_UNWRITTEN:
                lo, hi = max(logical, start), min(logical + length, end)
                if hi > lo:
                    out.append((lo, hi))
            last_end = logical + length
            done = done or bool(eflags & FIEMAP_EXTENT_LAST)
        if done or last_end <= pos:
            break
        pos = last_end
    return out


def _complement(ranges: list[tuple[int, int]], start: int, end: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    cursor = start
    for lo, hi in sorted(ranges):
        if lo > cursor:
            out.append((cursor, lo))
        cursor = max(cursor, hi)
    if cursor < end:
        out.append((cursor, end))
    return out


def _intersect(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return [(max(x0, y0), min(x1, y1)) for x0, x1 in a for y0, y1 in b if min(x1, y1) > max(x0, y0)]


def _length(ranges: list[tuple[int, int]]) -> int:
    return sum(hi - lo for lo, hi in ranges)


def never_written(path: str, offset: int = 0, length: int | None = None) -> NeverWritten:
    """How much of a region of a regular file was never written (reads of it never reach the device)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        end = size if length is None else min(size, offset + length)
        start = min(offset, end)
        span = end - start
        if span <= 0:
            return NeverWritten(offset, 0, 0, 0, None)
        data = _data_ranges(fd, start, end)
        holes = _complement(data, start, end)
        unwritten = _unwritten_ranges(fd, start, end) or []
        # ext4/xfs call unwritten extents holes for SEEK_DATA, others call them data: take the union
        unwritten_bytes = _length(unwritten)
        hole_only = _length(holes) - _length(_intersect(holes, unwritten))
        never = sorted(holes + unwritten)
        first = never[0][0] if never else None
        return NeverWritten(start, span, hole_only, unwritten_bytes, first)
    finally:
        os.close(fd)
