"""The pieces of a job's result: per-direction statistics (:class:`DirStats`, :class:`SampleStats`), CPU use,
I/O depth distributions, completion polling, the engine's own figures and the job's error."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from iolab import __version__
from iolab.analysis.core_result import CoreDepth, CorePoll, CoreRate, CoreResult
from iolab.analysis.histogram import Histogram

RW_DIRS: tuple[str, ...] = ("read", "write", "trim")
ALL_DIRS: tuple[str, ...] = ("read", "write", "trim", "sync")
FIO_VERSION = f"iolab-{__version__}"
#: a sample interval counts in bw/iops statistics if it lasted at least this fraction of the sample interval
FULL_INTERVAL = 0.9

#: fio's IO depth distribution buckets
IODEPTH_LEVEL_KEYS: tuple[str, ...] = ("1", "2", "4", "8", "16", "32", ">=64")
IODEPTH_SUBMIT_KEYS: tuple[str, ...] = ("0", "4", "8", "16", "32", "64", ">=64")


# --------------------------------------------------------------------------------------------- pieces
@dataclass(frozen=True)
class SampleStats:
    """min/max/mean/stdev (sample, n - 1) of bw or IOPS interval samples."""

    min: float = 0.0
    max: float = 0.0
    mean: float = 0.0
    stdev: float = 0.0
    samples: int = 0

    @classmethod
    def of(cls, values: Sequence[float], *, samples: int | None = None) -> SampleStats:
        n = len(values)
        if n == 0:
            return cls(samples=samples or 0)
        mean = math.fsum(values) / n
        var = math.fsum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
        return cls(min(values), max(values), mean, math.sqrt(var), n if samples is None else samples)


@dataclass
class DirStats:
    """One data direction of one job (or of a merged group)."""

    ios: int = 0  # completed I/Os
    total_ios: int = 0  # issued I/Os (fio "total_ios"); equal to ios for synchronous engines
    bytes: int = 0
    short_ios: int = 0
    drop_ios: int = 0
    runtime_ms: int = 0
    clat: Histogram = field(default_factory=Histogram)
    lat: Histogram = field(default_factory=Histogram)
    slat: Histogram = field(default_factory=Histogram)
    bw_samples: list[float] = field(default_factory=list)  # KiB/s per interval (aligned with sample_times_ms)
    iops_samples: list[float] = field(default_factory=list)  # IOPS per interval (aligned with iops_times_ms)
    sample_ios: list[int] = field(default_factory=list)  # exact I/O count per bandwidth interval
    sample_bytes: list[int] = field(default_factory=list)  # exact bytes per bandwidth interval
    iops_ios: list[int] = field(default_factory=list)  # exact I/O count per IOPS interval
    bw_stats: SampleStats = field(default_factory=SampleStats)  # over full intervals
    iops_stats: SampleStats = field(default_factory=SampleStats)

    @property
    def kbytes(self) -> int:
        return self.bytes // 1024

    @property
    def bw_bytes(self) -> int:
        """Average bandwidth in bytes/s over the direction's runtime (integer, like fio)."""
        return self.bytes * 1000 // self.runtime_ms if self.runtime_ms else 0

    @property
    def bw(self) -> int:
        """Average bandwidth in KiB/s (fio's JSON ``bw``)."""
        return self.bw_bytes // 1024

    @property
    def iops(self) -> float:
        return self.ios * 1000.0 / self.runtime_ms if self.runtime_ms else 0.0


@dataclass(frozen=True)
class CpuStats:
    usr_ns: int = 0
    sys_ns: int = 0
    ctx: int = 0
    majf: int = 0
    minf: int = 0
    runtime_ns: int = 0  # the time the percentages are relative to

    @property
    def usr_pct(self) -> float:
        return 100.0 * self.usr_ns / self.runtime_ns if self.runtime_ns else 0.0

    @property
    def sys_pct(self) -> float:
        return 100.0 * self.sys_ns / self.runtime_ns if self.runtime_ns else 0.0

    def __add__(self, other: CpuStats) -> CpuStats:
        return CpuStats(
            self.usr_ns + other.usr_ns,
            self.sys_ns + other.sys_ns,
            self.ctx + other.ctx,
            self.majf + other.majf,
            self.minf + other.minf,
            self.runtime_ns + other.runtime_ns,
        )


def _dist_pct(counts: Sequence[int], floor: float = 0.1) -> list[float]:
    total = sum(counts)
    if total == 0:
        return [0.0] * len(counts)
    return [max(100.0 * c / total, floor) if c else 0.0 for c in counts]


@dataclass(frozen=True)
class IoDepths:
    """fio's IO depth / submit / complete distributions, as counts per bucket (see the *_KEYS constants)."""

    level: tuple[int, ...] = (0,) * 7
    submit: tuple[int, ...] = (0,) * 7
    complete: tuple[int, ...] = (0,) * 7

    @classmethod
    def synchronous(cls, n: int) -> IoDepths:
        """A synchronous engine: every I/O at depth 1, submitted and completed one at a time."""
        return cls((n, 0, 0, 0, 0, 0, 0), (0, n, 0, 0, 0, 0, 0), (0, n, 0, 0, 0, 0, 0))

    def __add__(self, other: IoDepths) -> IoDepths:
        def add(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
            return tuple(x + y for x, y in zip(a, b, strict=True))

        return IoDepths(
            add(self.level, other.level), add(self.submit, other.submit), add(self.complete, other.complete)
        )

    # percentages as fio shows them (any non-zero share is at least 0.1%)
    def level_pct(self) -> dict[str, float]:
        return dict(zip(IODEPTH_LEVEL_KEYS, _dist_pct(self.level), strict=True))

    def submit_pct(self) -> dict[str, float]:
        return dict(zip(IODEPTH_SUBMIT_KEYS, _dist_pct(self.submit), strict=True))

    def complete_pct(self) -> dict[str, float]:
        return dict(zip(IODEPTH_SUBMIT_KEYS, _dist_pct(self.complete), strict=True))


@dataclass(frozen=True)
class PollStats:
    """Completion polling of an asynchronous engine (csrc/pollwin.h): every wait for completions either
    ended while busy-polling (a hit) or blocked in the kernel (a miss), so ``hits + misses == waits``."""

    mode: str = "off"  # off | on | adaptive
    waits: int = 0
    hits: int = 0
    misses: int = 0
    poll_ns: int = 0  # time spent busy-polling
    block_ns: int = 0  # total time of the waits (polling and blocking)
    window_ns: int = 0  # the window at the end
    window_sum_ns: int = 0  # sum of the window at each wait
    max_ns: int = 0
    sleeps: int = 0  # rate/thinktime sleeps that adjusted the window
    grows: int = 0
    shrinks: int = 0

    @property
    def window_mean_ns(self) -> float:
        return self.window_sum_ns / self.waits if self.waits else 0.0

    @property
    def hit_pct(self) -> float:
        return 100.0 * self.hits / self.waits if self.waits else 0.0

    @classmethod
    def from_core(cls, poll: CorePoll | None) -> PollStats:
        if poll is None:
            return cls()
        return cls(
            mode=poll.mode,
            **{k: getattr(poll, k) for k in (
                "waits", "hits", "misses", "poll_ns", "block_ns", "window_ns", "window_sum_ns", "max_ns",
                "sleeps", "grows", "shrinks")},
        )  # fmt: skip

    def __add__(self, other: PollStats) -> PollStats:
        return PollStats(
            mode=self.mode if self.mode == other.mode else "mixed",
            waits=self.waits + other.waits,
            hits=self.hits + other.hits,
            misses=self.misses + other.misses,
            poll_ns=self.poll_ns + other.poll_ns,
            block_ns=self.block_ns + other.block_ns,
            window_ns=max(self.window_ns, other.window_ns),
            window_sum_ns=self.window_sum_ns + other.window_sum_ns,
            max_ns=max(self.max_ns, other.max_ns),
            sleeps=self.sleeps + other.sleeps,
            grows=self.grows + other.grows,
            shrinks=self.shrinks + other.shrinks,
        )


@dataclass(frozen=True)
class EngineStats:
    """What the engine did besides the I/O: setup, depth reached, polling, rate schedule, io-wq."""

    name: str = ""
    info: str = ""  # how the engine was set up (flags the kernel took, fallbacks)
    iodepth: int = 1  # the depth the core ran with
    max_inflight: int = 0  # the most I/Os submitted and not yet reaped
    poll: PollStats = field(default_factory=PollStats)
    rated: bool = False  # rate limited: latencies count from each I/O's scheduled time
    lag_max_ns: int = 0  # rate: the largest delay between an I/O's scheduled time and its submission
    lag_sum_ns: int = 0  # rate: the sum of those delays
    scheduled: int = 0  # rate: I/Os issued on the schedule
    sleeps: int = 0  # rate/thinktime sleeps
    sleep_ns: int = 0
    think_pauses: int = 0
    iowq_workers: int = 0  # io_uring: io-wq worker threads seen for the job (the kernel punted I/O)
    cpus: tuple[int, ...] = ()  # CPUs the job thread could run on

    @property
    def lag_mean_ns(self) -> float:
        return self.lag_sum_ns / self.scheduled if self.scheduled else 0.0

    @classmethod
    def from_core(cls, core: CoreResult) -> EngineStats:
        depth = core.depth or CoreDepth()
        rate = core.rate or CoreRate()
        return cls(
            name=core.engine,
            info=core.engine_info,
            iodepth=depth.iodepth,
            max_inflight=depth.max_inflight,
            poll=PollStats.from_core(core.poll),
            rated=rate.rated,
            lag_max_ns=rate.lag_max_ns,
            lag_sum_ns=rate.lag_sum_ns,
            scheduled=rate.scheduled,
            sleeps=rate.sleeps,
            sleep_ns=rate.sleep_ns,
            think_pauses=rate.think_pauses,
            iowq_workers=core.iowq_workers,
            cpus=core.cpus,
        )

    def __add__(self, other: EngineStats) -> EngineStats:
        return EngineStats(
            name=self.name if self.name == other.name else f"{self.name}+{other.name}",
            info=self.info if self.info == other.info else "",
            iodepth=max(self.iodepth, other.iodepth),
            max_inflight=max(self.max_inflight, other.max_inflight),
            poll=self.poll + other.poll,
            rated=self.rated or other.rated,
            lag_max_ns=max(self.lag_max_ns, other.lag_max_ns),
            lag_sum_ns=self.lag_sum_ns + other.lag_sum_ns,
            scheduled=self.scheduled + other.scheduled,
            sleeps=self.sleeps + other.sleeps,
            sleep_ns=self.sleep_ns + other.sleep_ns,
            think_pauses=self.think_pauses + other.think_pauses,
            iowq_workers=self.iowq_workers + other.iowq_workers,
            cpus=tuple(sorted(set(self.cpus) | set(other.cpus))),
        )


@dataclass(frozen=True)
class ErrorInfo:
    code: int = 0  # errno, 0 = no error
    msg: str = ""
    offset: int = 0
    ddir: str = ""  # "read" | "write" | "sync" | ""
