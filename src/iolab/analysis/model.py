"""Analysis results: raw C result dict -> :class:`JobResult`; group merges -> :class:`GroupResult`.

Contract (docs/DESIGN.md section 4): the report package only reads these dataclasses.

Units: latencies in ns (:class:`~iolab.analysis.histogram.Histogram`), runtimes in ms (integers, as fio
reports them), bandwidth samples in KiB/s, IOPS samples in I/Os per second, sizes in bytes.

Semantics chosen to match fio 3.33 (checked against its output):

* per direction: ``bw_bytes = bytes * 1000 // runtime_ms``, ``bw = bw_bytes // 1024`` (KiB/s),
  ``iops = ios * 1000 / runtime_ms``; ``runtime_ms`` is the measured-phase time (0 for unused directions, at
  least 1 for used ones);
* latency ``stdev`` is the sample standard deviation (n - 1), like fio's;
* bw/iops statistics are over per-interval samples; the sample standard deviation (n - 1) is used;
* a group (``Run status group N``) sums bytes, takes ``agg bw = bytes * 1000 // max runtime``, the min/max of
  per-job bandwidths and runtimes of the jobs that did I/O in that direction; as in fio, with group_reporting
  these come from the merged job (so min = max = the group's bandwidth);
* ``group_reporting`` merges a group into one :class:`JobResult`: ios/bytes summed, histograms merged,
  runtime = the longest, CPU percentages = total CPU time / total runtime, counters summed, bw/iops samples
  summed interval by interval across jobs (the aggregate bandwidth of the group), with ``samples`` = the sum
  of the jobs' sample counts (fio's convention).  fio instead adds up the jobs' min, max and mean (and its
  variance terms), which only approximates the aggregate; ours is the aggregate series' own statistics.

Time series: the C core reports ``samples`` as ``(t_ns, read_ios, read_bytes, write_ios, write_bytes)`` per
interval, counts being deltas over the interval.  As in fio, bandwidth samples are taken every
``bwavgtime`` and IOPS samples every ``iopsavgtime``: when the two differ the C core also reports
``iops_samples``, a second series of the same form at the IOPS interval (otherwise one series serves
both).  ``t_ns`` is taken as the interval's *end*, measured from the
start of the measured phase, so an interval lasts from the previous ``t_ns`` (or 0) to this one; if the first
``t_ns`` is 0 the times are taken as interval *starts* instead (the last one then ends at ``runtime_ns``).
Intervals shorter than 90% of the sample interval (a partial tail) are kept in the time series but left out
of min/max/mean/stdev, as fio only takes full intervals (:data:`FULL_INTERVAL`); as in fio, an interval
without I/O in a direction is no sample of it.  If the C core had to widen its interval (it merges pairs of
samples when its buffer fills), the first sample's length is the interval; its ``sample_stats`` (and
``iops_sample_stats``) are kept at the requested interval however long the run, and a job's bw/iops
statistics come from them (group merges sum the series, widened or not).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from iolab import __version__
from iolab.analysis.diskstats import DiskUtil
from iolab.analysis.histogram import FIO_DEFAULT_PERCENTILES, Histogram, LatencyBuckets

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
    def from_raw(cls, raw: Mapping[str, Any] | None) -> PollStats:
        if not raw:
            return cls()
        return cls(
            mode=str(raw.get("mode", "off")),
            **{k: int(raw.get(k, 0)) for k in (
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
    def from_raw(cls, raw: Mapping[str, Any]) -> EngineStats:
        depth = raw.get("depth") or {}
        rate = raw.get("rate") or {}
        return cls(
            name=str(raw.get("engine", "") or ""),
            info=str(raw.get("engine_info", "") or ""),
            iodepth=int(depth.get("iodepth", 1)),
            max_inflight=int(depth.get("max_inflight", 0)),
            poll=PollStats.from_raw(raw.get("poll")),
            rated=bool(rate.get("rated", False)),
            lag_max_ns=int(rate.get("lag_max_ns", 0)),
            lag_sum_ns=int(rate.get("lag_sum_ns", 0)),
            scheduled=int(rate.get("scheduled", 0)),
            sleeps=int(rate.get("sleeps", 0)),
            sleep_ns=int(rate.get("sleep_ns", 0)),
            think_pauses=int(rate.get("think_pauses", 0)),
            iowq_workers=int(raw.get("iowq_workers", 0) or 0),
            cpus=tuple(int(c) for c in raw.get("cpus") or ()),
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


# --------------------------------------------------------------------------------------------- options
def _as_bool(v: Any, default: bool) -> bool:
    if v is None:
        return default
    if isinstance(v, str):
        return v.strip().lower() not in ("0", "false", "no", "off", "")
    return bool(v)


def _as_int(v: Any, default: int) -> int:
    if v is None or isinstance(v, bool):
        return default if v is None else int(v)
    try:
        return int(v)
    except (TypeError, ValueError):
        return default


def _as_float(v: Any, default: float) -> float:
    """A float, or the first of a float list (the option table types float options as float lists)."""
    if isinstance(v, list | tuple):
        v = v[0] if v else None
    if v is None or isinstance(v, bool):
        return default
    try:
        return float(v)
    except (TypeError, ValueError):
        return default


def _percentile_list(v: Any) -> tuple[float, ...]:
    """fio keeps at most 20 entries, stops at a 0 entry and reports them sorted (we also drop duplicates)."""
    if v is None or v == "" or v == [] or v == ():
        return FIO_DEFAULT_PERCENTILES
    if isinstance(v, str):
        vals = [float(p) for p in v.replace(",", ":").split(":") if p.strip()]
    elif isinstance(v, int | float):
        vals = [float(v)]
    else:
        vals = [float(p) for p in v]
    vals = vals[:20]
    if 0.0 in vals:
        vals = vals[: vals.index(0.0)]
    return tuple(sorted(set(vals))) or FIO_DEFAULT_PERCENTILES


def _percentile_precision(v: Any) -> int | None:
    """fio prints percentiles with as many decimals as the longest fraction *typed* in percentile_list; only
    known when the option is given as text."""
    if not isinstance(v, str) or not v.strip():
        return None
    return max((len(p.split(".", 1)[1]) if "." in p else 0) for p in v.replace(",", ":").split(":"))


def _bs_ranges(options: Mapping[str, Any]) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """(min, max) block size for read, write, trim from ``bs`` / ``bsrange`` / ``bssplit``."""

    def pair(v: Any) -> tuple[int, int] | None:
        if v is None:
            return None
        if isinstance(v, int):
            return (v, v)
        if isinstance(v, Sequence) and not isinstance(v, str) and len(v) >= 1:
            return (int(v[0]), int(v[-1]))
        return None

    r: tuple[int, int] = (4096, 4096)
    w: tuple[int, int] = (4096, 4096)
    bs = options.get("bs")
    if isinstance(bs, int):
        r = w = (bs, bs)
    elif isinstance(bs, Sequence) and not isinstance(bs, str) and bs:
        r = (int(bs[0]), int(bs[0]))
        w = (int(bs[-1]), int(bs[-1]))
    br = options.get("bsrange")
    if isinstance(br, Sequence) and not isinstance(br, str) and br:
        pr = pair(br[0])
        pw = pair(br[-1])
        if pr and pr[0] > 0:
            r = pr
        if pw and pw[0] > 0:
            w = pw
    split = options.get("bssplit")
    if isinstance(split, Sequence) and not isinstance(split, str) and len(split) == 2:
        for d, entries in enumerate(split):
            sizes = [int(e[0]) for e in entries] if entries else []
            if sizes:
                if d == 0:
                    r = (min(sizes), max(sizes))
                else:
                    w = (min(sizes), max(sizes))
    return r, w, w


#: unified_rw_reporting values (fio's numeric spellings too) -> iolab's name
UNIFIED_MODES = {"none": "none", "0": "none", "mixed": "mixed", "1": "mixed", "both": "both", "2": "both"}
#: continue_on_error values -> fio's error type bits (1 read, 2 write, 4 verify; "all" is every bit)
ERROR_TYPE_BITS = {"none": 0, "0": 0, "read": 1, "write": 2, "io": 3, "verify": 4, "all": 0xFFFF, "1": 0xFFFF}


def error_types(options: Mapping[str, Any]) -> int:
    """fio's continue_on_error bit mask: the option, plus the bit of every ignore_error list given (as fio
    does, a non-empty ignore_error list turns continue_on_error on for its error type)."""
    bits = ERROR_TYPE_BITS.get(str(options.get("continue_on_error") or "none"), 0)
    for i, part in enumerate(str(options.get("ignore_error") or "").strip().split(",")[:3]):
        if part.split(":")[0]:
            bits |= 1 << i
    return bits


@dataclass(frozen=True)
class ReportOptions:
    """The job options the reports need, typed, with fio's defaults."""

    rw: str = "read"
    bs: tuple[tuple[int, int], tuple[int, int], tuple[int, int]] = ((4096, 4096),) * 3
    ioengine: str = "psync"
    iodepth: int = 1
    percentile_list: tuple[float, ...] = FIO_DEFAULT_PERCENTILES  # sorted, as fio reports them
    percentile_precision: int | None = None  # None: derived from the values
    clat_percentiles: bool = True
    lat_percentiles: bool = False
    slat_percentiles: bool = False
    kb_base: int = 1024
    unit_base: int = 0  # 0 auto (= bytes), 8 bytes, 1 bits
    significant_figures: int = 4
    description: str = ""
    group_reporting: bool = False
    latency_target: int = 0  # us
    latency_window: int = 0  # us
    latency_percentile: float = 100.0
    #: unified_rw_reporting: "none", "mixed" (one "mixed" direction instead of read/write/trim) or "both"
    unified: str = "none"
    #: stats=0: the job runs but is left out of every report (and of its group's run status)
    stats: bool = True
    # disable_lat/disable_clat/disable_slat (gtod_reduce sets all three): those latencies are not kept
    disable_lat: bool = False
    disable_clat: bool = False
    disable_slat: bool = False
    #: continue_on_error is not none (ignore_error also turns it on): reports show the error counts
    continue_on_error: bool = False

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> ReportOptions:
        kb = _as_int(options.get("kb_base"), 1024)
        sig = _as_int(options.get("significant_figures"), 4)
        gtod = _as_bool(options.get("gtod_reduce"), False)
        return cls(
            rw=str(options.get("rw") or "read"),
            bs=_bs_ranges(options),
            ioengine=str(options.get("ioengine") or "psync"),
            iodepth=max(_as_int(options.get("iodepth"), 1), 1),
            percentile_list=_percentile_list(options.get("percentile_list")),
            percentile_precision=_percentile_precision(options.get("percentile_list")),
            clat_percentiles=not gtod and _as_bool(options.get("clat_percentiles"), True),
            lat_percentiles=not gtod and _as_bool(options.get("lat_percentiles"), False),
            slat_percentiles=not gtod and _as_bool(options.get("slat_percentiles"), False),
            kb_base=kb if kb in (1000, 1024) else 1024,
            unit_base=_as_int(options.get("unit_base"), 0),
            significant_figures=min(max(sig, 1), 10),
            description=str(options.get("description") or ""),
            group_reporting=_as_bool(options.get("group_reporting"), False),
            # typed times are ns; fio reports these two in microseconds
            latency_target=_as_int(options.get("latency_target"), 0) // 1000,
            latency_window=_as_int(options.get("latency_window"), 0) // 1000,
            latency_percentile=_as_float(options.get("latency_percentile"), 100.0),
            unified=UNIFIED_MODES.get(str(options.get("unified_rw_reporting") or "none"), "none"),
            stats=_as_bool(options.get("stats"), True),
            disable_lat=gtod or _as_bool(options.get("disable_lat"), False),
            disable_clat=gtod or _as_bool(options.get("disable_clat"), False),
            disable_slat=gtod or _as_bool(options.get("disable_slat"), False),
            continue_on_error=error_types(options) != 0,
        )


class OptionSetting(Protocol):
    """An option as written (``iolab.jobfile.model.RawSetting`` fits)."""

    @property
    def name(self) -> str: ...
    @property
    def value(self) -> str | None: ...
    @property
    def from_global(self) -> bool: ...


def option_texts(settings: Iterable[OptionSetting]) -> tuple[dict[str, str], dict[str, str]]:
    """fio's ``"job options"`` and ``"global options"`` from the settings as written: (job, global).

    Like fio, options written without a value (``--time_based``, ``stonewall``) are left out, and a later
    setting of the same option replaces an earlier one (keeping its first position).
    """
    job: dict[str, str] = {}
    glob: dict[str, str] = {}
    for s in settings:
        if s.value is None:
            continue
        (glob if s.from_global else job)[s.name] = s.value
    return job, glob


# --------------------------------------------------------------------------------------------- job
@dataclass
class JobResult:
    """Results of one job (or, with ``num_jobs > 1``, of a group merged for group_reporting)."""

    name: str
    jobnum: int
    groupid: int
    options: dict[str, Any]  # as given to job_result (typed option values)
    opts: ReportOptions  # the subset the reports use
    # explicitly set options as text, for JSON "job options" (None: written without a value)
    job_options: dict[str, str | None]
    dirs: dict[str, DirStats]  # always "read", "write", "trim", "sync"
    cpu: CpuStats = field(default_factory=CpuStats)
    iodepth: IoDepths = field(default_factory=IoDepths)
    engine: EngineStats = field(default_factory=EngineStats)
    error: ErrorInfo = field(default_factory=ErrorInfo)
    warnings: list[str] = field(default_factory=list)
    runtime_ns: int = 0  # measured phase
    elapsed_s: int = 0  # wall time of the job, seconds (fio "elapsed")
    ramp_done: bool = True
    stopped: bool = False
    sample_interval_ms: float = 500.0  # bandwidth, effective (the C core may have widened the requested one)
    sample_times_ms: list[float] = field(default_factory=list)  # end of each bandwidth sample interval
    sample_times_ns: list[int] = field(default_factory=list)  # the same, exact
    iops_interval_ms: float = 500.0  # IOPS (iopsavgtime), effective
    iops_times_ms: list[float] = field(default_factory=list)  # end of each IOPS sample interval
    iops_times_ns: list[int] = field(default_factory=list)  # the same, exact
    num_jobs: int = 1
    pid: int = 0
    finished_at: float = 0.0  # epoch seconds
    #: continue_on_error: errors counted (the fatal one too) and the first of them (an errno)
    total_err: int = 0
    first_error: int = 0
    #: fio's latency_depth: the queue depth the job ran its I/O loop with; 0 when it never got there
    #: (create_only), and then fio's JSON has no latency_* keys
    latency_depth: int = 1

    @property
    def job_runtime_ms(self) -> int:
        return self.runtime_ns // 1_000_000

    @property
    def rw_ios(self) -> int:
        return sum(self.dirs[d].ios for d in RW_DIRS)

    def clat_all(self) -> Histogram:
        """Completion latencies of read, write and trim together (fio's latency distribution source)."""
        return Histogram.merged(self.dirs[d].clat for d in RW_DIRS)

    def latency_buckets(self) -> LatencyBuckets:
        """fio's ``latency_ns``/``latency_us``/``latency_ms``: completion latency distribution of all I/Os."""
        return self.clat_all().latency_buckets(total=self.rw_ios)


def _hist(raw_dir: Mapping[str, Any], key: str, sub_bits: int, nbuckets: int) -> Histogram:
    h = raw_dir.get(key)
    if not h:
        return Histogram()
    return Histogram.from_raw(h, sub_bits=sub_bits, nbuckets=nbuckets)


def _interval_ends_ns(samples: Sequence[Sequence[int]], runtime_ns: int) -> list[int]:
    times = [int(s[0]) for s in samples]
    if times and times[0] == 0:
        return [*times[1:], max(runtime_ns, times[-1])]
    return times


def _intervals(samples: Sequence[Sequence[int]], runtime_ns: int) -> list[tuple[float, float]]:
    """(end_ms, duration_ms) per sample, see the module docstring for how t_ns is read."""
    out: list[tuple[float, float]] = []
    if not samples:
        return out
    times = [int(s[0]) for s in samples]
    if times[0] == 0:  # interval starts
        for i, t in enumerate(times):
            end = times[i + 1] if i + 1 < len(times) else max(runtime_ns, t)
            out.append((end / 1e6, (end - t) / 1e6))
    else:  # interval ends
        prev = 0
        for t in times:
            out.append((t / 1e6, (t - prev) / 1e6))
            prev = t
    return out


@dataclass(frozen=True)
class _Series:
    """One sample series of the C core, read: where its intervals end, how long they lasted, which count."""

    raw: Sequence[Sequence[int]]
    interval_ms: float  # effective
    times_ms: list[float]
    times_ns: list[int]
    durations_ms: list[float]
    full: list[bool]

    @classmethod
    def read(cls, raw: Sequence[Sequence[int]], runtime_ns: int, interval_ms: float) -> _Series:
        intervals = _intervals(raw, runtime_ns)
        # the C core doubles its interval (merging pairs of samples) when its sample buffer fills up: the
        # effective interval is then the first sample's length
        if len(intervals) >= 2 and intervals[0][1] > interval_ms:
            interval_ms = intervals[0][1]
        return cls(
            raw=raw,
            interval_ms=float(interval_ms),
            times_ms=[end for end, _ in intervals],
            times_ns=_interval_ends_ns(raw, runtime_ns),
            durations_ms=[dur for _, dur in intervals],
            full=[dur >= interval_ms * FULL_INTERVAL and dur > 0 for _, dur in intervals],
        )

    def rates(self, col: int, scale: float) -> list[float]:
        """Column ``col`` of every sample per second of its interval, divided by ``scale``."""
        return [
            int(s[col]) / scale / (dur / 1000.0) if dur > 0 else 0.0
            for s, dur in zip(self.raw, self.durations_ms, strict=True)
        ]

    def stats(self, values: Sequence[float], col: int) -> SampleStats:
        """Statistics of the full intervals; as in fio, one without I/O (column ``col``) is no sample."""
        used = zip(values, self.full, self.raw, strict=True)
        return SampleStats.of([v for v, full, s in used if full and s[col]])


def _core_stats(raw: Any, d: str, which: str) -> SampleStats | None:
    """The C core's statistics of a series, kept at the requested interval for the whole run (its time
    series may have been widened): ``(n, min, max, mean, m2)``; None when the core sent none."""
    if not raw or d not in raw:
        return None
    n, lo, hi, mean, m2 = raw[d][which]
    if not n:
        return SampleStats()
    return SampleStats(float(lo), float(hi), float(mean), math.sqrt(m2 / (n - 1)) if n > 1 else 0.0, int(n))


def _engine_notes(engine: EngineStats, options: Mapping[str, Any]) -> list[str]:
    notes: list[str] = []
    forced = _as_int(options.get("force_async"), 0)
    if engine.iowq_workers and forced:
        every = "every" if forced == 1 else f"every {forced}th"
        notes.append(
            f"force_async={forced}: {every} I/O went straight to io_uring's "
            f"kernel worker threads (io-wq, {engine.iowq_workers} seen): the results include that hand-off"
        )
    elif engine.iowq_workers:
        depth = _as_int(options.get("iodepth"), 1)
        instead = "libaio" if depth > 1 else "psync (or libaio)"
        target = ", ".join(str(f) for f in options.get("filename") or []) or "the target"
        notes.append(
            f"io_uring handed the I/O to {engine.iowq_workers} kernel worker thread(s) (io-wq, iou-wrk-*): "
            f"{target} cannot take non-blocking submissions, so every I/O went through a worker thread and "
            f"these results measure that hand-off, not the device; use ioengine={instead} for this target"
        )
    if engine.rated:
        notes.append(
            "rate limited: lat is measured from each I/O's scheduled time, not from when it was issued "
            "(no coordinated omission), and slat includes the lag behind the schedule: mean "
            f"{engine.lag_mean_ns / 1000:.1f} us, largest {engine.lag_max_ns / 1000:.1f} us (after a sleep "
            "this includes how late the machine wakes the job up)"
        )
    return notes


def job_result(
    raw: Mapping[str, Any],
    *,
    name: str,
    jobnum: int,
    groupid: int,
    options: Mapping[str, Any],
    sample_interval_ms: float,
    iops_interval_ms: float | None = None,
    job_options: Mapping[str, str | None] | None = None,
    warnings: Iterable[str] = (),
    elapsed_s: int | None = None,
    pid: int | None = None,
    finished_at: float | None = None,
) -> JobResult:
    """Turn the C core's raw result dict (docs/DESIGN.md section 3) into a :class:`JobResult`.

    ``sample_interval_ms`` is the bandwidth sample interval (bwavgtime), ``iops_interval_ms`` the IOPS one
    (iopsavgtime; default: the same).  ``options`` are the job's typed option values (JobDef.values);
    ``job_options`` the explicitly set options
    as text for JSON's "job options" (default: none).  ``elapsed_s`` defaults to the measured runtime rounded
    up to whole seconds, ``pid`` to this process, ``finished_at`` to now.
    """
    opts = ReportOptions.from_options(options)
    sub_bits = int(raw.get("hist_sub_bits", 7))
    nbuckets = int(raw.get("hist_buckets", 4352))
    runtime_ns = max(int(raw.get("runtime_ns", 0)), 0)
    runtime_ms = runtime_ns // 1_000_000
    raw_dirs: Mapping[str, Any] = raw.get("ddir", {}) or {}
    notes: list[str] = list(warnings)

    err_code = int(raw.get("error", 0))
    err_ddir = str(raw.get("error_ddir", "") or "")
    dirs: dict[str, DirStats] = {}
    for d in ALL_DIRS:
        rd: Mapping[str, Any] = raw_dirs.get(d, {}) or {}
        ios = int(rd.get("ios", 0))
        # I/Os that failed (the fatal one, and those continue_on_error let pass): fio counts them as issued.
        # Without the C core's count (older raw results), the I/O of the job's error.
        err_ios = rd.get("err_ios")
        if err_ios is None:
            err_ios = 1 if err_code and err_ddir == d else 0
        ds = DirStats(
            ios=ios,
            # fio's sync total_ios counts fsyncs only (fdatasyncs are in its sync latencies)
            total_ios=ios + int(err_ios) - int(rd.get("datasync_ios", 0)),
            bytes=int(rd.get("bytes", 0)),
            short_ios=int(rd.get("short_ios", 0)),
            drop_ios=int(rd.get("dropped", 0)),
            runtime_ms=(max(runtime_ms, 1) if ios else 0) if d != "sync" else 0,
            # disable_clat/lat/slat (or gtod_reduce): fio keeps no such latencies, its report shows zeros
            clat=Histogram() if opts.disable_clat else _hist(rd, "clat", sub_bits, nbuckets),
            lat=Histogram() if opts.disable_lat and d != "sync" else _hist(rd, "lat", sub_bits, nbuckets),
            slat=Histogram() if opts.disable_slat else _hist(rd, "slat", sub_bits, nbuckets),
        )
        if d == "sync" and opts.disable_clat:
            ds.lat = Histogram()  # fio records sync latencies as completion latencies
        dirs[d] = ds
        if ds.short_ios:
            notes.append(f"{ds.short_ios} short {d} I/O(s): fewer bytes transferred than requested")
        overflow = max(ds.clat.overflow_count, ds.lat.overflow_count)
        if overflow and max(ds.clat.max, ds.lat.max) >= (1 << 40):
            notes.append(
                f"{overflow} {d} latencies of 2^40 ns (~18 min) or more share the top histogram bucket"
            )

    # fio sets the depth when the job enters its I/O loop; a job stopped before it (create_only marks the
    # job done during setup, exitall, a setup error) has none
    io_loop = _as_bool(raw.get("io_loop"), True) and not _as_bool(options.get("create_only"), False)

    # ---- time series: bandwidth, and IOPS from their own series when the intervals differ
    bw_series = _Series.read(raw.get("samples", []) or [], runtime_ns, float(sample_interval_ms))
    want_iops = float(sample_interval_ms if iops_interval_ms is None else iops_interval_ms)
    raw_iops = raw.get("iops_samples")
    iops_series = bw_series if raw_iops is None else _Series.read(raw_iops, runtime_ns, want_iops)
    for d, (io_col, byte_col) in (("read", (1, 2)), ("write", (3, 4))):
        ds = dirs[d]
        if ds.ios == 0:
            continue
        ds.bw_samples = bw_series.rates(byte_col, 1024.0)
        ds.iops_samples = iops_series.rates(io_col, 1.0)
        ds.sample_ios = [int(s[io_col]) for s in bw_series.raw]
        ds.sample_bytes = [int(s[byte_col]) for s in bw_series.raw]
        ds.iops_ios = [int(s[io_col]) for s in iops_series.raw]
        core_bw = raw.get("sample_stats")
        core_iops = raw.get("iops_sample_stats") if raw_iops is not None else core_bw
        ds.bw_stats = _core_stats(core_bw, d, "bw") or bw_series.stats(ds.bw_samples, byte_col)
        ds.iops_stats = _core_stats(core_iops, d, "iops") or iops_series.stats(ds.iops_samples, io_col)
    if any(dirs[d].ios for d in RW_DIRS):
        kinds = [("bandwidth", bw_series, float(sample_interval_ms)), ("IOPS", iops_series, want_iops)]
        if iops_series is bw_series:
            kinds = [("bandwidth/IOPS", bw_series, float(sample_interval_ms))]
        for what, series, asked in kinds:
            if not any(series.full):
                which = "" if series is iops_series is bw_series else f" {what}"
                notes.append(
                    f"measured runtime ({runtime_ms} ms) is shorter than the{which} sample interval "
                    f"({asked:g} ms): no {what} samples"
                )

    stopped = bool(raw.get("stopped", False))
    ramp_done = bool(raw.get("ramp_done", True))
    if stopped:
        notes.append("job was stopped before it finished; results cover the time it ran")
    if not ramp_done and _as_int(options.get("ramp_time"), 0) > 0:
        if stopped:
            notes.append("ramp_time did not complete: nothing was measured")
        else:
            notes.append(
                "the job's I/O ended before ramp_time did: all of it is reported, ramp included (as fio does)"
            )

    n_all = sum(dirs[d].ios for d in ALL_DIRS)
    engine = EngineStats.from_raw(raw)
    notes.extend(_engine_notes(engine, options))
    raw_depth = raw.get("depth")
    if raw_depth and "level" in raw_depth:
        depths = IoDepths(
            tuple(int(x) for x in raw_depth["level"]),
            tuple(int(x) for x in raw_depth["submit"]),
            tuple(int(x) for x in raw_depth["complete"]),
        )
    else:
        depths = IoDepths.synchronous(n_all)
    err = ErrorInfo(
        code=err_code,
        msg=str(raw.get("error_msg", "") or ""),
        offset=int(raw.get("error_offset", 0)),
        ddir=err_ddir,
    )
    first_error = int(raw.get("first_error", 0))
    if not err_code and first_error and opts.continue_on_error:
        # as fio: errors continue_on_error let pass still show as the job's error (the exit status stays 0)
        err = ErrorInfo(code=first_error, msg=os.strerror(first_error))
    return JobResult(
        name=name,
        jobnum=jobnum,
        groupid=groupid,
        options=dict(options),
        opts=opts,
        job_options=dict(job_options or {}),
        dirs=dirs,
        cpu=CpuStats(
            usr_ns=int(raw.get("usr_ns", 0)),
            sys_ns=int(raw.get("sys_ns", 0)),
            ctx=int(raw.get("ctx", 0)),
            majf=int(raw.get("majf", 0)),
            minf=int(raw.get("minf", 0)),
            runtime_ns=runtime_ns,
        ),
        iodepth=depths,
        engine=engine,
        error=err,
        warnings=notes,
        runtime_ns=runtime_ns,
        elapsed_s=elapsed_s if elapsed_s is not None else max(1, math.ceil(runtime_ns / 1e9)),
        ramp_done=ramp_done,
        stopped=stopped,
        sample_interval_ms=bw_series.interval_ms,
        sample_times_ms=bw_series.times_ms,
        sample_times_ns=bw_series.times_ns,
        iops_interval_ms=iops_series.interval_ms,
        iops_times_ms=iops_series.times_ms,
        iops_times_ns=iops_series.times_ns,
        pid=pid if pid is not None else os.getpid(),
        finished_at=finished_at if finished_at is not None else time.time(),
        total_err=int(raw.get("total_err", 0)),
        first_error=int(raw.get("first_error", 0)),
        latency_depth=opts.iodepth if io_loop else 0,
    )


# --------------------------------------------------------------------------------------------- groups
@dataclass(frozen=True)
class GroupDirStats:
    """One direction of "Run status group N": bandwidths in bytes/s, runtimes in ms."""

    io_bytes: int = 0
    agg_bw: int = 0  # io_bytes * 1000 // max_run
    min_bw: int = 0
    max_bw: int = 0
    min_run: int = 0
    max_run: int = 0


def _mixed_group(dirs: Mapping[str, GroupDirStats]) -> GroupDirStats:
    """unified_rw_reporting=both: fio's MIXED run status line from the per-direction ones (bytes and
    aggregate bandwidths added, the smallest minimum and the largest maximum)."""
    used = [g for g in dirs.values() if g.max_run]
    if not used:
        return GroupDirStats()
    return GroupDirStats(
        io_bytes=sum(g.io_bytes for g in used),
        agg_bw=sum(g.agg_bw for g in used),
        min_bw=min(g.min_bw for g in used),
        max_bw=max(g.max_bw for g in used),
        min_run=min(g.min_run for g in used),
        max_run=max(g.max_run for g in used),
    )


def _summed_samples(parts: Sequence[SampleStats]) -> SampleStats:
    """fio's sum of bw/iops statistics over directions for unified_rw_reporting: minima, maxima and means
    are added up as if the directions ran side by side; the deviation comes from the pooled squares."""
    used = [p for p in parts if p.samples]
    if not used:
        return SampleStats()
    n = sum(p.samples for p in used)
    sq = math.fsum(p.stdev**2 * (p.samples - 1) for p in used)
    return SampleStats(
        sum(p.min for p in used),
        sum(p.max for p in used),
        math.fsum(p.mean for p in used),
        math.sqrt(sq / (n - 1)) if n > 1 else 0.0,
        n,
    )


def mixed_dir(job: JobResult) -> DirStats:
    """Reads, writes and trims of a job as one direction (fio's unified_rw_reporting "mixed")."""
    parts = [job.dirs[d] for d in RW_DIRS]
    return DirStats(
        ios=sum(p.ios for p in parts),
        total_ios=sum(p.total_ios for p in parts),
        bytes=sum(p.bytes for p in parts),
        short_ios=sum(p.short_ios for p in parts),
        drop_ios=sum(p.drop_ios for p in parts),
        runtime_ms=max(p.runtime_ms for p in parts),
        clat=Histogram.merged(p.clat for p in parts),
        lat=Histogram.merged(p.lat for p in parts),
        slat=Histogram.merged(p.slat for p in parts),
        bw_stats=_summed_samples([p.bw_stats for p in parts]),
        iops_stats=_summed_samples([p.iops_stats for p in parts]),
    )


@dataclass
class GroupResult:
    groupid: int
    jobs: list[JobResult]  # members that report (stats=1), in job order
    dirs: dict[str, GroupDirStats]  # "read", "write", "trim"
    merged: JobResult | None = None  # the group as one job, when group_reporting merged all of it
    #: what the per-job sections show, in order (fio's entries: jobs, or runs of jobs merged by
    #: group_reporting); None: every member
    entries: list[JobResult] | None = None
    kb_base: int = 1024
    unit_base: int = 0
    #: unified_rw_reporting of the group: "none", "mixed" or "both"
    unified: str = "none"
    #: the MIXED run status line (unified_rw_reporting mixed or both)
    mixed: GroupDirStats | None = None

    def agg_bw(self, d: str) -> int:
        """The aggregate bandwidth a direction's share (bw_agg) is taken of.  As in fio, a "mixed" direction
        uses the group's mixed aggregate with unified_rw_reporting=mixed, but the read aggregate with both."""
        if d == "mixed":
            if self.unified == "mixed" and self.mixed is not None:
                return self.mixed.agg_bw
            d = "read"
        return self.dirs[d].agg_bw if d in self.dirs else 0

    @property
    def reported(self) -> list[JobResult]:
        """What the per-job sections show for this group: its entries, the merged job, or every member."""
        if self.entries is not None:
            return list(self.entries)
        return [self.merged] if self.merged is not None else list(self.jobs)


def _group_dir(jobs: Sequence[JobResult], d: str) -> GroupDirStats:
    return _group_of([mixed_dir(j) if d == "mixed" else j.dirs[d] for j in jobs])


def _group_of(parts: Sequence[DirStats]) -> GroupDirStats:
    active = [p for p in parts if p.runtime_ms > 0]
    io_bytes = sum(p.bytes for p in parts)
    if not active:
        return GroupDirStats(io_bytes=io_bytes)
    max_run = max(s.runtime_ms for s in active)
    bws = [s.bw_bytes for s in active]
    return GroupDirStats(
        io_bytes=io_bytes,
        agg_bw=io_bytes * 1000 // max_run if max_run else 0,
        min_bw=min(bws),
        max_bw=max(bws),
        min_run=min(s.runtime_ms for s in active),
        max_run=max_run,
    )


def _sum_series(jobs: Sequence[JobResult], d: str, which: str) -> tuple[list[float], list[bool]]:
    """The jobs' bw_samples or iops_samples summed interval by interval (each at its own interval)."""
    iops = which == "iops_samples"
    n = max((len(j.iops_times_ms if iops else j.sample_times_ms) for j in jobs), default=0)
    vals = [0.0] * n
    full = [False] * n
    for j in jobs:
        series: list[float] = getattr(j.dirs[d], which)
        ends = j.iops_times_ms if iops else j.sample_times_ms
        interval = j.iops_interval_ms if iops else j.sample_interval_ms
        for i, v in enumerate(series):
            dur = ends[i] - (ends[i - 1] if i else 0.0)
            if dur >= interval * FULL_INTERVAL and dur > 0:
                vals[i] += v
                full[i] = True
    return vals, full


def _sum_counts(series: Sequence[Sequence[int]]) -> list[int]:
    out = [0] * max((len(s) for s in series), default=0)
    for s in series:
        for i, v in enumerate(s):
            out[i] += v
    return out


def merge_jobs(jobs: Sequence[JobResult]) -> JobResult:
    """Merge the jobs of one group into a single :class:`JobResult` (fio's group_reporting)."""
    if not jobs:
        raise ValueError("merge_jobs needs at least one job")
    first = jobs[0]
    dirs: dict[str, DirStats] = {}
    longest = max(jobs, key=lambda j: len(j.sample_times_ms))
    longest_iops = max(jobs, key=lambda j: len(j.iops_times_ms))
    for d in ALL_DIRS:
        parts = [j.dirs[d] for j in jobs]
        ds = DirStats(
            ios=sum(p.ios for p in parts),
            total_ios=sum(p.total_ios for p in parts),
            bytes=sum(p.bytes for p in parts),
            short_ios=sum(p.short_ios for p in parts),
            drop_ios=sum(p.drop_ios for p in parts),
            runtime_ms=max((p.runtime_ms for p in parts), default=0),
            clat=Histogram.merged(p.clat for p in parts),
            lat=Histogram.merged(p.lat for p in parts),
            slat=Histogram.merged(p.slat for p in parts),
        )
        if d in ("read", "write") and ds.ios:
            bw, full = _sum_series(jobs, d, "bw_samples")
            iops, ifull = _sum_series(jobs, d, "iops_samples")
            ds.bw_samples, ds.iops_samples = bw, iops
            ds.sample_ios = _sum_counts([p.sample_ios for p in parts])
            ds.sample_bytes = _sum_counts([p.sample_bytes for p in parts])
            ds.iops_ios = _sum_counts([p.iops_ios for p in parts])
            ds.bw_stats = SampleStats.of(
                [v for v, f in zip(bw, full, strict=True) if f],
                samples=sum(p.bw_stats.samples for p in parts),
            )
            ds.iops_stats = SampleStats.of(
                [v for v, f in zip(iops, ifull, strict=True) if f],
                samples=sum(p.iops_stats.samples for p in parts),
            )
            if len(parts) == 1:
                # one job: its own statistics (taken at the requested interval however long it ran)
                ds.bw_stats, ds.iops_stats = parts[0].bw_stats, parts[0].iops_stats
        dirs[d] = ds
    cpu = CpuStats()
    depths = IoDepths()
    engine = jobs[0].engine
    for j in jobs:
        cpu = cpu + j.cpu
        depths = depths + j.iodepth
    for j in jobs[1:]:
        engine = engine + j.engine
    err = next((j.error for j in jobs if j.error.code), ErrorInfo())
    notes: list[str] = []
    for j in jobs:
        notes.extend(f"{j.name}.{j.jobnum}: {w}" if len(jobs) > 1 else w for w in j.warnings)
    last = jobs[-1]
    # as fio: the name, group, units and unified reporting are the first member's; the job options,
    # percentile settings, error policy and latency-target values are those of the last one merged
    opts = replace(
        first.opts,
        percentile_list=last.opts.percentile_list,
        percentile_precision=last.opts.percentile_precision,
        clat_percentiles=last.opts.clat_percentiles,
        lat_percentiles=last.opts.lat_percentiles,
        slat_percentiles=last.opts.slat_percentiles,
        continue_on_error=last.opts.continue_on_error,
        latency_target=last.opts.latency_target,
        latency_window=last.opts.latency_window,
        latency_percentile=last.opts.latency_percentile,
    )
    return replace(
        first,
        opts=opts,
        job_options=dict(last.job_options),
        latency_depth=last.latency_depth,
        dirs=dirs,
        cpu=cpu,
        iodepth=depths,
        engine=engine,
        error=err,
        warnings=notes,
        runtime_ns=max(j.runtime_ns for j in jobs),
        elapsed_s=max(j.elapsed_s for j in jobs),
        ramp_done=all(j.ramp_done for j in jobs),
        stopped=any(j.stopped for j in jobs),
        sample_times_ms=list(longest.sample_times_ms),
        sample_times_ns=list(longest.sample_times_ns),
        iops_times_ms=list(longest_iops.iops_times_ms),
        iops_times_ns=list(longest_iops.iops_times_ns),
        num_jobs=sum(j.num_jobs for j in jobs),
        finished_at=max(j.finished_at for j in jobs),
        total_err=sum(j.total_err for j in jobs),
        first_error=next((j.first_error for j in jobs if j.first_error), 0),
    )


def report_entries(members: Sequence[JobResult], group_reporting: bool = False) -> list[list[JobResult]]:
    """Split a group's reporting members (job order) into fio's report entries.

    fio takes group_reporting per job: a member that sets it joins the entry before it (when that entry is
    of the same group, whether or not the entry's first job sets the option); any other member starts an
    entry of its own.  ``group_reporting`` applies the option to every member.
    """
    entries: list[list[JobResult]] = []
    for j in members:
        if entries and (group_reporting or j.opts.group_reporting):
            entries[-1].append(j)
        else:
            entries.append([j])
    return entries


def group_results(jobs: Sequence[JobResult], group_reporting: bool) -> list[GroupResult]:
    """Groups in groupid order, each with its report entries (see :func:`report_entries`).

    ``group_reporting`` applies the option to every job; otherwise each job's own option decides.
    """
    by_group: dict[int, list[JobResult]] = {}
    for j in jobs:
        by_group.setdefault(j.groupid, []).append(j)
    out: list[GroupResult] = []
    for gid in sorted(by_group):
        everyone = by_group[gid]
        # stats=0: the job ran, but fio leaves it out of the reports and of the run status line
        members = [j for j in everyone if j.opts.stats]
        entries = [
            merge_jobs(e) if len(e) > 1 or group_reporting or e[0].opts.group_reporting else e[0]
            for e in report_entries(members, group_reporting)
        ]
        # the whole group reported as one job
        merged = entries[0] if len(entries) == 1 and entries[0] is not members[0] else None
        # like fio, the run status line is computed from what is reported
        dirs = {d: _group_dir(entries, d) for d in RW_DIRS}
        unified = everyone[0].opts.unified
        mixed = None
        if unified == "mixed":
            mixed = _group_dir(entries, "mixed")
        elif unified == "both":
            mixed = _mixed_group(dirs)
        out.append(
            GroupResult(
                groupid=gid,
                jobs=members,
                dirs=dirs,
                merged=merged,
                entries=entries,
                kb_base=everyone[0].opts.kb_base,
                unit_base=everyone[0].opts.unit_base,
                unified=unified,
                mixed=mixed,
            )
        )
    return out


# --------------------------------------------------------------------------------------------- run
@dataclass
class RunResult:
    jobs: list[JobResult]
    groups: list[GroupResult]
    fio_version: str = FIO_VERSION
    timestamp: int = 0  # epoch seconds
    timestamp_ms: int = 0
    time: str = ""  # like ctime(): "Wed Nov 25 21:54:43 2026"
    global_options: dict[str, str | None] = field(default_factory=dict)
    disk_util: list[DiskUtil] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # run-level (not job) warnings
    #: what iolab adds around fio's report: lines above it and below it in normal output, and the
    #: top-level "iolab" object in JSON (the doctor's findings and device check live there)
    preface: list[str] = field(default_factory=list)
    appendix: list[str] = field(default_factory=list)
    iolab: dict[str, Any] = field(default_factory=dict)

    def reported(self) -> list[tuple[JobResult, GroupResult]]:
        """Per-job sections in output order: (job or merged group, its group)."""
        return [(j, g) for g in self.groups for j in g.reported]

    def all_warnings(self) -> list[str]:
        """Run warnings then every job's, prefixed by the job name (for a terminal or stderr)."""
        out = list(self.warnings)
        for j, _ in self.reported():
            out.extend(f"{j.name}: {w}" for w in j.warnings)
        return out


def run_result(
    jobs: Sequence[JobResult],
    *,
    group_reporting: bool = False,
    global_options: Mapping[str, str | None] | None = None,
    disk_util: Sequence[DiskUtil] = (),
    warnings: Iterable[str] = (),
    timestamp: float | None = None,
) -> RunResult:
    """Assemble a :class:`RunResult` (groups computed here); ``timestamp`` defaults to now."""
    ts = time.time() if timestamp is None else timestamp
    return RunResult(
        jobs=list(jobs),
        groups=group_results(jobs, group_reporting),
        timestamp=int(ts),
        timestamp_ms=int(ts * 1000),
        time=time.asctime(time.localtime(ts)),
        global_options=dict(global_options or {}),
        disk_util=list(disk_util),
        warnings=list(warnings),
    )
