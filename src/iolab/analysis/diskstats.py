"""Disk utilization like fio's "Disk stats" / ``disk_util`` (Linux only).

The caller takes the counters (``iolab.doctor.DeviceCounters`` reads ``/sys/block/<dev>/stat`` of every
device under the targets, once before and once after the run) and hands the per-device difference here;
``disk_util`` only turns it into fio's figures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol


class StatCounters(Protocol):
    """A /sys/block/<dev>/stat difference, readable by field name (``read_ios``, ``io_ticks``...)."""

    def __getitem__(self, name: str, /) -> int: ...


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


def disk_util(diff: Mapping[str, StatCounters], elapsed_ms: float) -> list[DiskUtil]:
    """fio's figures per device; ``util`` = busy time / elapsed time (capped at 100%)."""
    out: list[DiskUtil] = []
    for name, d in diff.items():
        util = min(100.0, 100.0 * d["io_ticks"] / elapsed_ms) if elapsed_ms > 0 else 0.0
        out.append(
            DiskUtil(
                name,
                read_ios=d["read_ios"],
                write_ios=d["write_ios"],
                read_merges=d["read_merges"],
                write_merges=d["write_merges"],
                read_ticks=d["read_ticks"],
                write_ticks=d["write_ticks"],
                in_queue=d["time_in_queue"],
                util=util,
            )
        )
    return out
