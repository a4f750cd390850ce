"""Disk utilization like fio's "Disk stats" / ``disk_util`` (Linux only).

Usage (by whoever runs the jobs): ``names = devices_for_paths(paths)``, ``before = snapshot(names)``, run,
``after = snapshot(names)``, ``disk_util(before, after, elapsed_ms)`` -> list of :class:`DiskUtil` for
``RunResult.disk_util``.  Counters come from ``/sys/block/<dev>/stat``; a file on a partition is attributed to
the whole disk, as fio does.  Anything that cannot be read is silently skipped (the list may be empty).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

SYS_BLOCK = "/sys/block"
SYS_DEV_BLOCK = "/sys/dev/block"


@dataclass(frozen=True)
class DiskUtil:
    name: str
    read_ios: int
    write_ios: int
    read_merges: int
    write_merges: int
    read_ticks: int  # ms
    write_ticks: int  # ms
    in_queue: int  # ms
    util: float  # percent of the elapsed time the device was busy


# fields of /sys/block/<dev>/stat we use (0-based): reads, read merges, read ticks, writes, write merges,
# write ticks, io_ticks (busy time), time_in_queue
_STAT_FIELDS = (0, 1, 3, 4, 5, 7, 9, 10)


def device_for_path(path: str) -> str | None:
    """Whole-disk block device name (e.g. ``vda``, ``nvme0n1``) holding ``path``, or None."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    import stat as _stat

    dev = st.st_rdev if _stat.S_ISBLK(st.st_mode) else st.st_dev
    link = os.path.join(SYS_DEV_BLOCK, f"{os.major(dev)}:{os.minor(dev)}")
    try:
        real = os.path.realpath(link)
    except OSError:
        return None
    if not os.path.isdir(real):
        return None
    if os.path.exists(os.path.join(real, "partition")):
        real = os.path.dirname(real)
    name = os.path.basename(real)
    return name if os.path.exists(os.path.join(SYS_BLOCK, name, "stat")) else None


def devices_for_paths(paths: Iterable[str]) -> list[str]:
    """Distinct devices for several paths, in first-seen order."""
    out: list[str] = []
    for p in paths:
        d = device_for_path(p)
        if d is not None and d not in out:
            out.append(d)
    return out


def snapshot(names: Iterable[str]) -> dict[str, tuple[int, ...]]:
    """Current counters per device (devices that cannot be read are left out)."""
    out: dict[str, tuple[int, ...]] = {}
    for name in names:
        try:
            with open(os.path.join(SYS_BLOCK, name, "stat")) as f:
                vals = [int(x) for x in f.read().split()]
        except (OSError, ValueError):
            continue
        if len(vals) < 11:
            continue
        out[name] = tuple(vals[i] for i in _STAT_FIELDS)
    return out


def disk_util(
    before: Mapping[str, tuple[int, ...]], after: Mapping[str, tuple[int, ...]], elapsed_ms: float
) -> list[DiskUtil]:
    """Deltas between two snapshots; ``util`` = busy time / elapsed time (capped at 100%)."""
    out: list[DiskUtil] = []
    for name, a in after.items():
        b = before.get(name)
        if b is None:
            continue
        d = [max(x - y, 0) for x, y in zip(a, b, strict=True)]
        util = min(100.0, 100.0 * d[6] / elapsed_ms) if elapsed_ms > 0 else 0.0
        out.append(DiskUtil(name, d[0], d[3], d[1], d[4], d[2], d[5], d[7], util))
    return out
