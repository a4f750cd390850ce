"""Groups and the run: per-group sums (:class:`GroupResult`), group_reporting merges (:func:`merge_jobs`),
and the whole run (:class:`RunResult`)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from iolab.analysis.diskstats import DiskUtil
from iolab.analysis.histogram import Histogram
from iolab.analysis.jobresult import JobResult
from iolab.analysis.stats import (
    ALL_DIRS,
    FIO_VERSION,
    FULL_INTERVAL,
    RW_DIRS,
    CpuStats,
    DirStats,
    ErrorInfo,
    IoDepths,
    SampleStats,
)


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


def merge_verify(parts: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The iolab.verify objects of a group's jobs as one: counts summed, failures in job order."""
    if not parts:
        return None
    out = dict(parts[0])
    for key in ("written", "reads", "bytes", "chunks", "failures", "not_read"):
        out[key] = sum(int(p[key]) for p in parts)
    out["failed"] = [f for p in parts for f in p["failed"]]
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
        verify=merge_verify([j.verify for j in jobs if j.verify is not None]),
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
