"""What the bench scripts share: a zram device of their own for a benchmark.

Imported by sibling scripts (`python bench/X.py` puts this directory on sys.path).
"""

from __future__ import annotations

import errno
import os
import subprocess
import time
from pathlib import Path
from typing import Any

ZRAM_CONTROL = Path("/sys/class/zram-control")


def zram_add(size: str) -> tuple[str, int | None] | None:
    """A zram device `size` big, written once with incompressible data (so reads decompress real pages,
    not empty slots): hot-added, or /dev/zram0 when hot-adding is impossible and zram0 is unused.
    (device, the number to hot-remove or None), or None when there is none (not root, no free zram)."""
    if os.geteuid() != 0:
        return None
    num: int | None = None
    if (ZRAM_CONTROL / "hot_add").exists():
        num = int((ZRAM_CONTROL / "hot_add").read_text())
        sysfs = Path(f"/sys/block/zram{num}")
    else:
        sysfs = Path("/sys/block/zram0")
        if not sysfs.exists() or (sysfs / "disksize").read_text().strip() != "0":
            return None
    (sysfs / "disksize").write_text(size)
    dev = f"/dev/{sysfs.name}"
    fill = ["fio", "--name=fill", f"--filename={dev}", "--rw=write", "--bs=1m", "--direct=1",
            "--refill_buffers=1", "--output=/dev/null"]  # fmt: skip
    subprocess.run(fill, check=True)
    return dev, num


def zram_remove(dev: str, num: int | None) -> None:
    """Undo zram_add: free the memory, and hot-remove the device if it was hot-added."""
    reset = Path("/sys/block") / Path(dev).name / "reset"
    for _ in range(500):  # a device just used can report EBUSY for a moment (seen in CI)
        try:
            reset.write_text("1")
            break
        except OSError as e:
            if e.errno != errno.EBUSY:
                raise
            time.sleep(0.02)
    if num is not None:
        (ZRAM_CONTROL / "hot_remove").write_text(str(num))


def job_summary(report: dict[str, Any]) -> dict[str, float]:
    """IOPS, clat p50/p99 (us) and CPU (%) of the first job of a fio-format JSON report (fio's or
    iolab's): the figures the side-by-side benches compare; the direction is the one that moved bytes."""
    job = report["jobs"][0]
    rd = job["read"] if job["read"]["io_bytes"] else job["write"]
    pct = rd["clat_ns"].get("percentile", {})
    return {
        "iops": float(rd["iops"]),
        "p50_us": float(pct.get("50.000000", 0)) / 1000,
        "p99_us": float(pct.get("99.000000", 0)) / 1000,
        "cpu": float(job["usr_cpu"]) + float(job["sys_cpu"]),
    }
