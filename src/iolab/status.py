"""The live status line on a terminal: IOPS, bandwidth and ETA, rewritten in place on stderr.

Nothing is printed when stderr is not a TTY (pipes and CI logs stay clean), or with --eta=never.
"""

from __future__ import annotations

import sys
from types import TracebackType

from rich.console import Console
from rich.live import Live
from rich.text import Text

from iolab.engine.runner import Progress


def _rate(n: float) -> str:
    for unit, div in (("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.1f}{unit}"
    return f"{n:.0f}"


def _bw(bytes_per_s: float) -> str:
    for unit, div in (("GiB/s", 1 << 30), ("MiB/s", 1 << 20), ("KiB/s", 1 << 10)):
        if bytes_per_s >= div:
            return f"{bytes_per_s / div:.1f}{unit}"
    return f"{bytes_per_s:.0f}B/s"


def _clock(seconds: float) -> str:
    s = int(seconds + 0.5)
    return (
        f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"
    )


class StatusLine:
    def __init__(self, mode: str = "auto") -> None:
        self.enabled = mode == "always" or (mode == "auto" and sys.stderr.isatty())
        self._live: Live | None = None
        self._last: Progress | None = None

    def __enter__(self) -> StatusLine:
        if self.enabled:
            self._live = Live(Text(""), console=Console(stderr=True), transient=True, refresh_per_second=4)
            self._live.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.__exit__(exc_type, exc, tb)
            self._live = None

    def update(self, p: Progress) -> None:
        if self._live is None:
            return
        last, self._last = self._last, p
        parts = [f"Jobs: {p.running} running, {p.done}/{p.total} done"]
        if last is not None and p.elapsed_s > last.elapsed_s:
            dt = p.elapsed_s - last.elapsed_s
            # counters restart when a worker ends or a ramp finishes: show nothing rather than a negative rate
            dr = max(0, p.read_ios - last.read_ios) / dt
            dw = max(0, p.write_ios - last.write_ios) / dt
            br = max(0, p.read_bytes - last.read_bytes) / dt
            bw = max(0, p.write_bytes - last.write_bytes) / dt
            if p.trim_ios or last.trim_ios:  # fio adds the trim rate only for jobs that trim
                dt_ = max(0, p.trim_ios - last.trim_ios) / dt
                bt = max(0, p.trim_bytes - last.trim_bytes) / dt
                parts.append(f"r={_bw(br)},w={_bw(bw)},t={_bw(bt)}")
                parts.append(f"r={_rate(dr)},w={_rate(dw)},t={_rate(dt_)} IOPS")
            else:
                parts.append(f"r={_bw(br)},w={_bw(bw)}")
                parts.append(f"r={_rate(dr)},w={_rate(dw)} IOPS")
        parts.append("measuring" if p.measuring else "ramp/setup")
        if p.eta_s is not None:
            parts.append(f"ETA {_clock(p.eta_s)}")
        self._live.update(Text(" | ".join(parts)))
