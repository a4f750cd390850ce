"""One job's result: the C core's raw result -> :class:`JobResult` (:func:`job_result`)."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from iolab.analysis.core_result import CoreDir, CoreHistogram, CoreRates, CoreResult, DirRates
from iolab.analysis.histogram import Histogram, LatencyBuckets
from iolab.analysis.reportopts import ReportOptions, as_bool, as_int
from iolab.analysis.stats import (
    ALL_DIRS,
    FULL_INTERVAL,
    RW_DIRS,
    CpuStats,
    DirStats,
    EngineStats,
    ErrorInfo,
    IoDepths,
    SampleStats,
)
from iolab.analysis.verify import verify_json


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
    #: verify=: the JSON's iolab.verify object (iolab.analysis.verify.verify_json); None without verify
    verify: dict[str, Any] | None = None
    #: steadystate=: fio's JSON "steadystate" object and iolab's own additions (when it was attained)
    steadystate: dict[str, Any] | None = None
    steadystate_iolab: dict[str, Any] | None = None

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


def _hist(h: CoreHistogram | None, sub_bits: int, nbuckets: int) -> Histogram:
    if h is None:
        return Histogram()
    return Histogram.from_core(h, sub_bits=sub_bits, nbuckets=nbuckets)


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


def _core_stats(rates: CoreRates | None, d: str, which: str) -> SampleStats | None:
    """The C core's statistics of a series, kept at the requested interval for the whole run (its time
    series may have been widened): ``(n, min, max, mean, m2)``; None when the core sent none."""
    dir_rates: DirRates | None = getattr(rates, d) if rates is not None else None
    if dir_rates is None:
        return None
    n, lo, hi, mean, m2 = getattr(dir_rates, which)
    if not n:
        return SampleStats()
    return SampleStats(float(lo), float(hi), float(mean), math.sqrt(m2 / (n - 1)) if n > 1 else 0.0, int(n))


def _engine_notes(engine: EngineStats, options: Mapping[str, Any]) -> list[str]:
    notes: list[str] = []
    forced = as_int(options.get("force_async"), 0)
    if engine.iowq_workers and forced:
        every = "every" if forced == 1 else f"every {forced}th"
        notes.append(
            f"force_async={forced}: {every} I/O went straight to io_uring's "
            f"kernel worker threads (io-wq, {engine.iowq_workers} seen): the results include that hand-off"
        )
    elif engine.iowq_workers:
        depth = as_int(options.get("iodepth"), 1)
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
    raw: CoreResult | Mapping[str, Any],
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
    paths: Sequence[str] = (),
    verify_dumps: Mapping[int, Sequence[tuple[str, str]]] | None = None,
    steadystate: Any = None,
) -> JobResult:
    """Turn the C core's result (docs/DESIGN.md section 3; a raw dict is typed first) into a JobResult.

    ``sample_interval_ms`` is the bandwidth sample interval (bwavgtime), ``iops_interval_ms`` the IOPS one
    (iopsavgtime; default: the same).  ``options`` are the job's typed option values (JobDef.values);
    ``job_options`` the explicitly set options
    as text for JSON's "job options" (default: none).  ``elapsed_s`` defaults to the measured runtime rounded
    up to whole seconds, ``pid`` to this process, ``finished_at`` to now.
    """
    core = raw if isinstance(raw, CoreResult) else CoreResult.from_core(raw)
    opts = ReportOptions.from_options(options)
    sub_bits = core.hist_sub_bits
    nbuckets = core.hist_buckets
    runtime_ns = max(core.runtime_ns, 0)
    runtime_ms = runtime_ns // 1_000_000
    notes: list[str] = list(warnings)

    err_code = core.error
    err_ddir = core.error_ddir
    # as fio, a write job's verify phase is its read runtime, and the writes' runtime ends where it starts
    dir_ms: dict[str, int] = {}
    if core.verify is not None and core.verify.phase_ns:
        phase_ms = core.verify.phase_ns // 1_000_000
        dir_ms = {"read": phase_ms, "write": max(runtime_ns - core.verify.phase_ns, 0) // 1_000_000}
    dirs: dict[str, DirStats] = {}
    for d in ALL_DIRS:
        rd: CoreDir = getattr(core.ddir, d, None) or CoreDir()
        ios = rd.ios
        # I/Os that failed (the fatal one, and those continue_on_error let pass): fio counts them as issued.
        # Without the C core's count (older raw results), the I/O of the job's error.
        err_ios = rd.err_ios
        if err_ios is None:
            err_ios = 1 if err_code and err_ddir == d else 0
        ds = DirStats(
            ios=ios,
            # fio's sync total_ios counts fsyncs only (fdatasyncs are in its sync latencies)
            total_ios=ios + err_ios - rd.datasync_ios,
            bytes=rd.bytes,
            short_ios=rd.short_ios,
            drop_ios=rd.dropped,
            runtime_ms=(max(dir_ms.get(d, runtime_ms), 1) if ios else 0) if d != "sync" else 0,
            # disable_clat/lat/slat (or gtod_reduce): fio keeps no such latencies, its report shows zeros
            clat=Histogram() if opts.disable_clat else _hist(rd.clat, sub_bits, nbuckets),
            lat=Histogram() if opts.disable_lat and d != "sync" else _hist(rd.lat, sub_bits, nbuckets),
            slat=Histogram() if opts.disable_slat else _hist(rd.slat, sub_bits, nbuckets),
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
    io_loop = core.io_loop and not as_bool(options.get("create_only"), False)

    # ---- time series: bandwidth, and IOPS from their own series when the intervals differ
    bw_series = _Series.read(core.samples, runtime_ns, float(sample_interval_ms))
    want_iops = float(sample_interval_ms if iops_interval_ms is None else iops_interval_ms)
    raw_iops = core.iops_samples
    iops_series = bw_series if raw_iops is None else _Series.read(raw_iops, runtime_ns, want_iops)
    for d, (io_col, byte_col) in (("read", (1, 2)), ("write", (3, 4)), ("trim", (5, 6))):
        ds = dirs[d]
        if ds.ios == 0:
            continue
        ds.bw_samples = bw_series.rates(byte_col, 1024.0)
        ds.iops_samples = iops_series.rates(io_col, 1.0)
        ds.sample_ios = [int(s[io_col]) for s in bw_series.raw]
        ds.sample_bytes = [int(s[byte_col]) for s in bw_series.raw]
        ds.iops_ios = [int(s[io_col]) for s in iops_series.raw]
        core_bw = core.sample_stats
        core_iops = core.iops_sample_stats if raw_iops is not None else core_bw
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

    stopped = core.stopped
    ramp_done = core.ramp_done
    if steadystate is not None and steadystate.attained:
        notes.append(
            f"steady state ({steadystate.metric}) attained after {steadystate.attained_after_s:.1f} s:"
            " the job was stopped there"
        )
    elif stopped:
        notes.append("job was stopped before it finished; results cover the time it ran")
    if not ramp_done and as_int(options.get("ramp_time"), 0) > 0:
        if stopped:
            notes.append("ramp_time did not complete: nothing was measured")
        else:
            notes.append(
                "the job's I/O ended before ramp_time did: all of it is reported, ramp included (as fio does)"
            )

    n_all = sum(dirs[d].ios for d in ALL_DIRS)
    engine = EngineStats.from_core(core)
    notes.extend(_engine_notes(engine, options))
    if core.depth is not None:
        depths = IoDepths(core.depth.level, core.depth.submit, core.depth.complete)
    else:
        depths = IoDepths.synchronous(n_all)
    err = ErrorInfo(
        code=err_code,
        msg=core.error_msg,
        offset=core.error_offset,
        ddir=err_ddir,
    )
    first_error = core.first_error
    if not err_code and first_error and opts.continue_on_error:
        # as fio: errors continue_on_error let pass still show as the job's error (the exit status stays 0)
        err = ErrorInfo(code=first_error, msg=os.strerror(first_error))
    return JobResult(
        steadystate=steadystate.fio_json() if steadystate is not None else None,
        steadystate_iolab=steadystate.iolab_json() if steadystate is not None else None,
        name=name,
        jobnum=jobnum,
        groupid=groupid,
        options=dict(options),
        opts=opts,
        job_options=dict(job_options or {}),
        dirs=dirs,
        cpu=CpuStats(
            usr_ns=core.usr_ns,
            sys_ns=core.sys_ns,
            ctx=core.ctx,
            majf=core.majf,
            minf=core.minf,
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
        total_err=core.total_err,
        first_error=core.first_error,
        latency_depth=opts.iodepth if io_loop else 0,
        verify=verify_json(core.verify, paths, verify_dumps) if core.verify is not None else None,
    )
