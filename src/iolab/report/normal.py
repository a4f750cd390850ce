"""fio's human-readable ``normal`` output.

Layout follows fio 3.33 line by line (job header, per-direction IOPS/BW line, slat/clat/lat lines with an
automatic unit, percentile blocks, bw/iops sample lines, the latency distribution, sync latencies, cpu
(followed by an iolab "poll" line when completion polling is on),
IO depths, issued counts, then "Run status group N (all jobs):" and "Disk stats").

Differences from fio, on purpose:

* warnings (run and job) are printed first, one ``warning: ...`` line each;
* the error part of a job header reads ``err=NN (func=io_u error, <ddir> offset=N, error=<message>)`` as we
  have no C source location to show;
* with ``kb_base=1000`` the ``bw (kB/s)`` sample line is converted to kB/s (fio prints KiB/s numbers under a
  kB/s label);
* IO depth percentages count fsync/fdatasync too, so they add up to 100%.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from iolab.analysis.histogram import LAT_MS_KEYS, LAT_NS_KEYS, LAT_US_KEYS, Histogram
from iolab.analysis.model import (
    FIO_VERSION,
    IODEPTH_LEVEL_KEYS,
    IODEPTH_SUBMIT_KEYS,
    RW_DIRS,
    DirStats,
    GroupDirStats,
    GroupResult,
    JobResult,
    ReportOptions,
    RunResult,
    mixed_dir,
)
from iolab.ioengines import spec_of
from iolab.report.fiojson import bw_agg_pct
from iolab.report.units import (
    fmt_percentile_block,
    lat_unit,
    num2str,
    percentile_precision,
    percentile_unit,
)


def _bw_str(bytes_per_s: int, opts: ReportOptions, *, alt: bool) -> str:
    pow2 = (opts.kb_base == 1024) != alt
    sig = opts.significant_figures
    if opts.unit_base == 1:
        return num2str(bytes_per_s * 8, sig, pow2=pow2, unit="bit/s")
    return num2str(bytes_per_s, sig, pow2=pow2, unit="B/s")


def _size_str(nbytes: int, opts: ReportOptions, *, alt: bool) -> str:
    pow2 = (opts.kb_base == 1024) != alt
    return num2str(nbytes, opts.significant_figures, pow2=pow2, unit="B")


def _stat_line(label: str, h: Histogram) -> str:
    mean, dev = h.mean, h.stdev
    unit, div = lat_unit(h.min, h.max, dev)
    mn = num2str(h.min // div, 6, pow2=False)
    mx = num2str(h.max // div, 6, pow2=False)
    return f"    {label} ({unit}): min={mn}, max={mx}, avg={mean / div:5.02f}, stdev={dev / div:5.02f}"


def _percentile_lines(
    label: str, h: Histogram, plist: Sequence[float], opts_precision: int | None = None
) -> list[str]:
    pct = h.percentiles(plist)
    items = list(pct.items())
    unit, div = percentile_unit([v for _, v in items])
    prec = opts_precision if opts_precision is not None else percentile_precision([p for p, _ in items])
    return [f"    {label} percentiles ({unit}):", *fmt_percentile_block(items, div, prec)]


def _dir_block(job: JobResult, group: GroupResult, d: str) -> list[str]:
    ds = mixed_dir(job) if d == "mixed" else job.dirs[d]
    o = job.opts
    runt = ds.runtime_ms
    iops = ds.ios * 1000 // runt if runt else 0
    bw = ds.bw_bytes
    head = (
        f"  {d}: IOPS={num2str(iops, o.significant_figures, pow2=False)}, "
        f"BW={_bw_str(bw, o, alt=False)} ({_bw_str(bw, o, alt=True)})"
        f"({_size_str(ds.bytes, o, alt=False)}/{runt}msec)"
    )
    if d == "write":
        head += "; 0 zone resets"
    lines = [head]
    if ds.slat.count:
        lines.append(_stat_line("slat", ds.slat))
    if ds.clat.count:
        lines.append(_stat_line("clat", ds.clat))
    if ds.lat.count:
        lines.append(_stat_line(" lat", ds.lat))
    for label, h, on in (
        ("slat", ds.slat, o.slat_percentiles),
        ("clat", ds.clat, o.clat_percentiles),
        ("lat", ds.lat, o.lat_percentiles),
    ):
        if on and h.count:
            lines.extend(_percentile_lines(label, h, o.percentile_list, o.percentile_precision))
    bs = ds.bw_stats
    if bs.samples:
        mn, mx, mean, dev = bs.min, bs.max, bs.mean, bs.stdev
        if o.kb_base == 1000:
            mn, mx, mean, dev = (x * 1.024 for x in (mn, mx, mean, dev))
            unit, big, div = "kB", "MB", 1000.0
        else:
            unit, big, div = "KiB", "MiB", 1024.0
        if mean > div * div:
            mn, mx, mean, dev = (x / div for x in (mn, mx, mean, dev))
            unit = big
        lines.append(
            f"   bw ({unit:>5}/s): min={int(mn):5d}, max={int(mx):5d}, per={bw_agg_pct(ds, group, d):3.2f}%, "
            f"avg={mean:5.02f}, stdev={dev:5.02f}, samples={bs.samples}"
        )
    st = ds.iops_stats
    if st.samples:
        lines.append(
            f"   iops        : min={int(st.min):5d}, max={int(st.max):5d}, avg={st.mean:5.02f}, "
            f"stdev={st.stdev:5.02f}, samples={st.samples}"
        )
    return lines


def _lat_dist_lines(job: JobResult) -> list[str]:
    lb = job.latency_buckets()
    lines: list[str] = []
    for unit, keys, vals in (
        ("nsec", LAT_NS_KEYS, lb.ns),
        ("usec", LAT_US_KEYS, lb.us),
        ("msec", LAT_MS_KEYS, lb.ms),
    ):
        entries = [f"{k}={vals[k]:3.2f}%" for k in keys if vals[k] > 0]
        for i in range(0, len(entries), 5):
            lines.append(f"  lat ({unit})   : " + ", ".join(entries[i : i + 5]))
    return lines


def _err_part(job: JobResult) -> str:
    e = job.error
    if not e.code:
        return f"err={e.code:2d}"
    where = f", {e.ddir} offset={e.offset}" if e.ddir else ""
    msg = e.msg or "error"
    return f"err={e.code:2d} (func=io_u error{where}, error={msg})"


def job_block(job: JobResult, group: GroupResult) -> list[str]:
    o = job.opts
    stamp = time.asctime(time.localtime(job.finished_at))
    lines = [
        f"{job.name}: (groupid={job.groupid}, jobs={job.num_jobs}): {_err_part(job)}: pid={job.pid}: {stamp}"
    ]
    if o.description:
        lines.append(f"  Description  : [{o.description}]")
    if o.unified != "mixed":
        for d in RW_DIRS:
            ds = job.dirs[d]
            if ds.bytes and ds.runtime_ms:
                lines.extend(_dir_block(job, group, d))
    if o.unified != "none":
        mixed = mixed_dir(job)
        if mixed.runtime_ms and (mixed.bytes or o.unified == "both"):
            lines.extend(_dir_block(job, group, "mixed"))
    lines.extend(_lat_dist_lines(job))
    sync = job.dirs["sync"]
    if sync.lat.count:
        lines.append("  fsync/fdatasync/sync_file_range:")
        lines.append(_stat_line("sync", sync.lat))
        lines.extend(_percentile_lines("sync", sync.lat, o.percentile_list, o.percentile_precision))
    c = job.cpu
    lines.append(
        f"  cpu          : usr={c.usr_pct:3.2f}%, sys={c.sys_pct:3.2f}%, "
        f"ctx={c.ctx}, majf={c.majf}, minf={c.minf}"
    )
    spec = spec_of(job.engine.name)
    if spec is not None and spec.setup_in_text and job.engine.info:
        lines.append(f"  engine       : {job.engine.info}")
    p = job.engine.poll
    if p.mode != "off":
        lines.append(
            f"  poll         : mode={p.mode}, waits={p.waits}, hits={p.hits} ({p.hit_pct:.1f}%), "
            f"misses={p.misses}, polling={p.poll_ns / 1e6:.2f}ms, window final={p.window_ns}ns "
            f"mean={p.window_mean_ns:.0f}ns max={p.max_ns}ns"
        )

    def dist(keys: Sequence[str], vals: Mapping[str, float]) -> str:
        return ", ".join(f"{k}={vals[k]:3.1f}%" for k in keys)

    lines.append(f"  IO depths    : {dist(IODEPTH_LEVEL_KEYS, job.iodepth.level_pct())}")
    lines.append(f"     submit    : {dist(IODEPTH_SUBMIT_KEYS, job.iodepth.submit_pct())}")
    lines.append(f"     complete  : {dist(IODEPTH_SUBMIT_KEYS, job.iodepth.complete_pct())}")
    dd = [job.dirs[d] for d in ("read", "write", "trim", "sync")]
    if o.unified == "mixed":  # fio counts everything in the first slot
        dd = [mixed_dir(job), DirStats(), DirStats(), dd[3]]
    lines.append(
        "     issued rwts: total="
        + ",".join(str(x.total_ios) for x in dd)
        + " short="
        + ",".join(str(x.short_ios) for x in dd)
        + " dropped="
        + ",".join(str(x.drop_ios) for x in dd)
    )
    if o.continue_on_error:
        first = job.first_error
        lines.append(f"     errors    : total={job.total_err}, first_error={first}/<{_strerror(first)}>")
    if job.latency_depth:  # as in JSON: no line for a job that never reached its I/O loop
        lines.append(
            f"     latency   : target={o.latency_target}, window={o.latency_window}, "
            f"percentile={o.latency_percentile:.2f}%, depth={job.latency_depth}"
        )
    if job.steadystate is not None:
        lines.append(_steadystate_line(job.steadystate, o))
    return lines


def _steadystate_line(ss: Mapping[str, Any], o: ReportOptions) -> str:
    """fio's steadystate line: the window's means (bandwidth in whole KiB first, as fio divides) and the
    criterion."""
    data = ss["data"]
    kib = int(data["bw_mean"]) // o.kb_base
    sig = o.significant_figures
    bw = num2str(kib * 1024, sig, pow2=True, unit="B/s")
    bw_alt = num2str(kib * 1000, sig, pow2=False, unit="B/s")
    iops = num2str(int(data["iops_mean"]), sig, pow2=False)
    metric = str(ss["ss"]).split(":", 1)[0]
    what = "iops" if metric.startswith("iops") else "bw"
    what += " slope" if metric.endswith("_slope") else " mean dev"
    crit = str(ss["criterion"])
    pct = "%" if crit.endswith("%") else ""
    return (
        f"  steadystate  : attained={'yes' if ss['attained'] else 'no'}, bw={bw} ({bw_alt}), iops={iops}, "
        f"{what}={float(crit.rstrip('%')):.3f}{pct}"
    )


def group_lines(group: GroupResult) -> list[str]:
    lines = [f"Run status group {group.groupid} (all jobs):"]
    opts = ReportOptions(
        kb_base=group.kb_base,
        unit_base=group.unit_base,
        significant_figures=(group.jobs[0].opts.significant_figures if group.jobs else 4),
    )

    def bw(v: int, alt: bool) -> str:
        return _bw_str(v, opts, alt=alt)

    def line(label: str, g: GroupDirStats) -> str:
        return (
            f"  {label:>5}: bw={bw(g.agg_bw, False)} ({bw(g.agg_bw, True)}), "
            f"{bw(g.min_bw, False)}-{bw(g.max_bw, False)} ({bw(g.min_bw, True)}-{bw(g.max_bw, True)}), "
            f"io={_size_str(g.io_bytes, opts, alt=False)} ({_size_str(g.io_bytes, opts, alt=True)}), "
            f"run={g.min_run}-{g.max_run}msec"
        )

    if group.unified != "mixed":
        lines.extend(line(d.upper(), group.dirs[d]) for d in RW_DIRS if group.dirs[d].io_bytes)
    if group.mixed is not None and group.mixed.max_run:
        lines.append(line("MIXED", group.mixed))
    return lines


def _strerror(code: int) -> str:
    return os.strerror(code) if code else "Success"


def render_normal(run: RunResult) -> str:
    out: list[str] = list(run.preface)
    out.extend(f"warning: {w}" for w in run.all_warnings())
    out.append("")
    for job, group in run.reported():
        # like fio, a job that did no I/O at all is not shown (unless it failed)
        if job.rw_ios or any(job.dirs[d].bytes for d in RW_DIRS) or job.error.code:
            out.extend(job_block(job, group))
    for g in run.groups:
        out.append("")
        out.extend(group_lines(g))
    if run.disk_util:
        out.append("")
        out.append("Disk stats (read/write):")
        for du in run.disk_util:
            out.append(
                f"  {du.name}: ios={du.read_ios}/{du.write_ios}, merge={du.read_merges}/{du.write_merges}, "
                f"ticks={du.read_ticks}/{du.write_ticks}, in_queue={du.in_queue}, util={du.util:3.2f}%"
            )
    if run.appendix:
        out.append("")
        out.extend(run.appendix)
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------- preamble
@dataclass(frozen=True)
class PreambleJob:
    """One job as announced before the run: ``name: (g=N): rw=..., bs=..., ioengine=..., iodepth=N``."""

    name: str
    groupid: int
    options: Mapping[str, Any]
    clone: bool = False  # a numjobs clone of the previous job: shown as "..." once


def render_preamble(jobs: Sequence[PreambleJob], *, version: str = FIO_VERSION) -> str:
    """What fio prints before starting jobs in normal mode (not part of :func:`render`)."""
    lines: list[str] = []
    prev_clone = False
    for j in jobs:
        if j.clone:
            if not prev_clone:
                lines.append("...")
            prev_clone = True
            continue
        prev_clone = False
        o = ReportOptions.from_options(j.options)

        def rng(mm: tuple[int, int]) -> str:
            return f"{num2str(mm[0], 4, pow2=True, unit='B')}-{num2str(mm[1], 4, pow2=True, unit='B')}"

        lines.append(
            f"{j.name}: (g={j.groupid}): rw={o.rw}, bs=(R) {rng(o.bs[0])}, (W) {rng(o.bs[1])}, "
            f"(T) {rng(o.bs[2])}, ioengine={o.ioengine}, iodepth={o.iodepth}"
        )
    n = len(jobs)
    lines.append(version)
    lines.append(f"Starting {n} thread{'s' if n != 1 else ''}")
    return "\n".join(lines) + "\n"
