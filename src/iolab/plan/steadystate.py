"""fio's steady state detection (steadystate=/ss=, ss_dur, ss_ramp), checked from the runner's thread.

Once a second the runner reads a job's live counters (``Job.progress()``: no cost in the job's hot loop),
turns the change into an IOPS and a bandwidth value as fio does (integer per-second rates over the elapsed
milliseconds), keeps the last ``ss_dur`` of them, and tests fio's criterion: for ``iops``/``bw`` the largest
distance of a value from the window's mean, for ``iops_slope``/``bw_slope`` the least-squares slope of the
window (x = 0, 1, ...), either absolute or as a percentage of the mean. Below the limit: the job is stopped
and the steady state is "attained". Recording starts one second after ``ss_ramp`` has passed, as in fio.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from iolab.jobfile.numbers import read_size


def parse_limit(metric: str, arg: str, kb_base: int = 1024) -> tuple[float, bool]:
    """fio's threshold after 'criterion:': (limit, is a percentage of the mean). A percentage or an IOPS
    value is a float; a bandwidth value a size in bytes per second (suffixes allowed). ValueError if fio
    refuses it."""
    text = arg.strip()
    if "%" in text:
        number = text[: text.index("%")].strip()
        try:
            return float(number), True
        except ValueError:
            raise ValueError(f"steadystate={metric}:{arg}: {number!r} is not a percentage") from None
    if metric.startswith("iops"):
        try:
            return float(text), False
        except ValueError:
            raise ValueError(f"steadystate={metric}:{arg}: {text!r} is not a number of IOPS") from None
    size = read_size(text, kb_base)
    if size is None or size.percent:
        raise ValueError(f"steadystate={metric}:{arg}: {text!r} is not a bandwidth in bytes/s (e.g. 10m)")
    return float(size.value), False


@dataclass
class SteadyState:
    metric: str  # "iops", "iops_slope", "bw", "bw_slope"
    limit: float
    percent: bool
    dur: int  # seconds in the window
    ramp_s: float
    started: float = 0.0  # monotonic time the job started
    iops: list[int] = field(default_factory=list)
    bw: list[int] = field(default_factory=list)
    attained: bool = False
    attained_after_s: float | None = None
    criterion: float = 0.0
    deviation: float = 0.0
    slope: float = 0.0
    _next: float = 0.0
    _prev_t: float = 0.0
    _prev_ios: int = 0
    _prev_bytes: int = 0
    _ramp_over: bool = False

    @classmethod
    def from_options(cls, values: Mapping[str, Any]) -> SteadyState | None:
        """The detector for a job's typed option values; None when ss_dur is under a second (fio keeps whole
        seconds of it: 0 turns detection off). ValueError for a threshold fio refuses."""
        dur = int(values.get("steadystate_duration") or 0) // 1_000_000_000
        if dur <= 0:
            return None
        metric = str(values.get("steadystate") or "iops_slope")
        arg = values.get("steadystate_arg")
        if arg is None:
            # fio's default is the whole text "iops_slope:0.01%" (the plan refuses a lone criterion)
            arg = "0.01%"
        limit, percent = parse_limit(metric, str(arg), int(values.get("kb_base") or 1024))
        return cls(
            metric=metric,
            limit=limit,
            percent=percent,
            dur=dur,
            ramp_s=int(values.get("steadystate_ramp_time") or 0) / 1e9,
        )

    def start(self, now: float, ios: int = 0, nbytes: int = 0) -> None:
        """The job began its I/O at about ``now`` with these totals (the first interval counts from them)."""
        self._prev_ios, self._prev_bytes = ios, nbytes
        self.started = self._prev_t = now
        self._next = now + 1.0
        self._ramp_over = self.ramp_s == 0

    def due(self, now: float) -> bool:
        return not self.attained and self.started > 0 and now >= self._next

    def sample(self, now: float, ios: int, nbytes: int) -> bool:
        """One per-second check with the job's totals; True when the steady state was just attained."""
        self._next += 1.0
        if not self._ramp_over and now - self.started >= self.ramp_s + 1.0:
            self._ramp_over = True
        ms = max(1, int((now - self._prev_t) * 1000))
        # the counters start again at 0 when the job's ramp_time ends: then all of them are new
        d_ios = ios - self._prev_ios if ios >= self._prev_ios else ios
        d_bytes = nbytes - self._prev_bytes if nbytes >= self._prev_bytes else nbytes
        self._prev_t, self._prev_ios, self._prev_bytes = now, ios, nbytes
        if not self._ramp_over:
            return False
        self.iops = [*self.iops, 1000 * d_ios // ms][-self.dur :]
        self.bw = [*self.bw, 1000 * d_bytes // ms][-self.dur :]
        if len(self.iops) < self.dur:
            return False
        ys = self.iops if self.metric.startswith("iops") else self.bw
        mean = sum(ys) / self.dur
        if self.metric.endswith("_slope"):
            n = self.dur
            sum_x = n * (n - 1) // 2
            sum_x_sq = (n - 1) * n * (2 * n - 1) // 6
            sum_xy = sum(i * y for i, y in enumerate(ys))
            denom = sum_x_sq - sum_x * sum_x / n
            self.slope = (sum_xy - sum_x * sum(ys) / n) / denom if denom else 0.0
            self.criterion = 100.0 * self.slope / mean if self.percent and mean else self.slope
            met = abs(self.criterion) < self.limit
        else:
            self.deviation = max(abs(y - mean) for y in ys)
            self.criterion = 100.0 * self.deviation / mean if self.percent and mean else self.deviation
            met = self.criterion < self.limit
        if met:
            self.attained = True
            self.attained_after_s = now - self.started
        return met

    # ------------------------------------------------------------------------------------- reports
    def _window(self) -> tuple[list[int], list[int]]:
        pad = [0] * (self.dur - len(self.iops))
        return self.iops + pad, self.bw + pad

    def fio_json(self) -> dict[str, Any]:
        """fio's per-job "steadystate" object (keys and types as fio 3.33 writes them)."""
        iops, bw = self._window()
        pct = "%" if self.percent else ""
        return {
            "ss": f"{self.metric}:{self.limit:f}{pct}",
            "duration": self.dur,
            "attained": int(self.attained),
            "criterion": f"{self.criterion:f}{pct}",
            "max_deviation": self.deviation,
            "slope": self.slope,
            "data": {
                "bw_mean": sum(bw) // self.dur,
                "iops_mean": sum(iops) // self.dur,
                "iops": iops,
                "bw": bw,
            },
        }

    def iolab_json(self) -> dict[str, Any]:
        """What fio does not report: when the steady state was reached."""
        return {"attained": self.attained, "attained_after_s": self.attained_after_s}
