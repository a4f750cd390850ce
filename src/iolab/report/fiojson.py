"""fio-compatible ``json`` and ``json+`` output.

Key names, nesting, order and units are fio 3.33's.  Layout is fio's too (two-space indent,
``"key" : value``; fed fio's own document, :func:`dumps` reproduces fio's text byte for byte).  Every float
is printed with six decimals as fio does (``%f``), non-finite floats as 0.000000 so the document stays valid
JSON.  Strings are JSON-escaped.

Differences from fio, on purpose:

* each job object ends with an ``"iolab"`` block (the only addition; the top level has none): the engine
  (its setup, the depth it reached, io_uring io-wq workers seen), completion polling counters (``poll``:
  waits = hits + misses, time spent polling, final and mean window), the job thread's CPU time (``cpu``, ns),
  rate limiting (``rate``: whether latencies count from the scheduled time), HdrHistogram
  encodings of every non-empty latency histogram per direction (``hdr``), the time series (``samples``:
  ``t_ns`` = end of each interval since the start of the measured phase, and per direction the exact ``ios``
  and ``bytes`` of each interval at the bandwidth interval; when iopsavgtime differs, ``iops`` holds the
  IOPS intervals' ``t_ns`` and ``ios`` the same way; rates are count / interval length), the raw runtime,
  stop/ramp flags, error details, the job's ``warnings`` and the run's ``run_warnings`` (repeated in every
  job).  Warnings never appear outside the JSON document.
* ``"disk_util"`` is always present (an empty list when no disk statistics were gathered; fio omits it).
* json+ ``"bins"`` keys are *our* bucket representative values in ns (bucket midpoints clamped to the observed
  min/max, see :mod:`iolab.analysis.histogram`), not fio's bucket values; the counts are per bucket.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from iolab import __version__
from iolab.analysis.histogram import Histogram
from iolab.analysis.model import ALL_DIRS, RW_DIRS, DirStats, GroupResult, JobResult, RunResult, mixed_dir

INT_MAX = 2147483647  # fio's "eta" once a job is done


# --------------------------------------------------------------------------------------------- writer
def _scalar(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            v = 0.0
        s = f"{v:.6f}"
        return "0.000000" if s == "-0.000000" else s
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    raise TypeError(f"cannot write {type(v).__name__} as JSON")


def _write(v: Any, indent: int, out: list[str]) -> None:
    pad = " " * indent
    if isinstance(v, Mapping):
        if not v:
            out.append("{\n\n" + pad + "}")  # fio's empty object
            return
        out.append("{\n")
        items = list(v.items())
        for i, (k, val) in enumerate(items):
            out.append(f"{pad}  {json.dumps(str(k), ensure_ascii=False)} : ")
            _write(val, indent + 2, out)
            out.append(",\n" if i + 1 < len(items) else "\n")
        out.append(pad + "}")
    elif isinstance(v, list | tuple):
        if not v:
            out.append("[]")
        elif all(not isinstance(x, Mapping | list | tuple) for x in v):
            out.append("[" + ", ".join(_scalar(x) for x in v) + "]")
        else:
            out.append("[\n")
            for i, val in enumerate(v):
                out.append(pad + "  ")
                _write(val, indent + 2, out)
                out.append(",\n" if i + 1 < len(v) else "\n")
            out.append(pad + "]")
    else:
        out.append(_scalar(v))


def dumps(doc: Any) -> str:
    """Serialize in fio's JSON layout (with a trailing newline)."""
    out: list[str] = []
    _write(doc, 0, out)
    out.append("\n")
    return "".join(out)


# --------------------------------------------------------------------------------------------- builder
def _pkey(p: float) -> str:
    return f"{p:.6f}"


def lat_obj(h: Histogram, *, percentiles: bool, plist: tuple[float, ...], plus: bool) -> dict[str, Any]:
    o: dict[str, Any] = {
        "min": h.min,
        "max": h.max,
        "mean": float(h.mean),
        "stddev": float(h.stdev),
        "N": h.count,
    }
    if percentiles and h.count:
        o["percentile"] = {_pkey(p): v for p, v in h.percentiles(plist).items()}
        if plus:
            o["bins"] = {str(k): c for k, c in sorted(h.bins().items())}
    return o


def bw_agg_pct(ds: DirStats, group: GroupResult, d: str, *, terse: bool = False) -> float:
    """Share of the group's aggregate bandwidth (fio's ``bw_agg`` / ``per=``), capped at 100%; 0 without
    bandwidth samples.  As in fio, JSON and normal output divide the integer part of the mean by agg/1024,
    terse output the exact mean by the integer agg // 1024."""
    if ds.bw_stats.samples == 0:
        return 0.0
    agg = group.agg_bw(d)
    mean = ds.bw_stats.mean
    if terse:
        if agg // 1024 == 0:
            return 100.0
        return min(100.0, mean * 100.0 / (agg // 1024))
    if agg <= 1024:
        return 100.0
    return min(100.0, int(mean) * 100.0 / (agg / 1024.0))


def _dir_obj(job: JobResult, group: GroupResult, d: str, plus: bool) -> dict[str, Any]:
    ds = mixed_dir(job) if d == "mixed" else job.dirs[d]
    o = job.opts
    pl = o.percentile_list
    bs, ios = ds.bw_stats, ds.iops_stats
    return {
        "io_bytes": ds.bytes,
        "io_kbytes": ds.kbytes,
        "bw_bytes": ds.bw_bytes,
        "bw": ds.bw,
        "iops": ds.iops,
        "runtime": ds.runtime_ms,
        "total_ios": ds.total_ios,
        "short_ios": ds.short_ios,
        "drop_ios": ds.drop_ios,
        "slat_ns": lat_obj(ds.slat, percentiles=o.slat_percentiles, plist=pl, plus=plus),
        "clat_ns": lat_obj(ds.clat, percentiles=o.clat_percentiles, plist=pl, plus=plus),
        "lat_ns": lat_obj(ds.lat, percentiles=o.lat_percentiles, plist=pl, plus=plus),
        "bw_min": int(bs.min),
        "bw_max": int(bs.max),
        "bw_agg": bw_agg_pct(ds, group, d),
        "bw_mean": float(bs.mean),
        "bw_dev": float(bs.stdev),
        "bw_samples": bs.samples,
        "iops_min": int(ios.min),
        "iops_max": int(ios.max),
        "iops_mean": float(ios.mean),
        "iops_stddev": float(ios.stdev),
        "iops_samples": ios.samples,
    }


def _iolab_job_block(job: JobResult, run_warnings: list[str]) -> dict[str, Any]:
    hdr: dict[str, Any] = {}
    for d in ALL_DIRS:
        ds = job.dirs[d]
        kinds = (("lat", ds.lat),) if d == "sync" else (("slat", ds.slat), ("clat", ds.clat), ("lat", ds.lat))
        enc = {k: h.to_hdr_encoded() for k, h in kinds if h.count}
        if enc:
            hdr[d] = enc
    series: dict[str, Any] = {
        "interval_ms": float(job.sample_interval_ms),
        "t_ns": list(job.sample_times_ns),
    }
    for d in RW_DIRS:
        ds = job.dirs[d]
        if ds.sample_ios:
            series[d] = {"ios": list(ds.sample_ios), "bytes": list(ds.sample_bytes)}
    if job.iops_times_ns != job.sample_times_ns:
        # iopsavgtime differs from bwavgtime: the I/O counts of the IOPS intervals too
        iops: dict[str, Any] = {"interval_ms": float(job.iops_interval_ms), "t_ns": list(job.iops_times_ns)}
        for d in RW_DIRS:
            if job.dirs[d].iops_ios:
                iops[d] = {"ios": list(job.dirs[d].iops_ios)}
        series["iops"] = iops
    eng = job.engine
    poll = eng.poll
    block = {
        "version": __version__,
        "jobs": job.num_jobs,
        "runtime_ns": job.runtime_ns,
        "engine": {
            "name": eng.name,
            "setup": eng.info,
            "iodepth": eng.iodepth,
            "max_inflight": eng.max_inflight,
            "iowq_workers": eng.iowq_workers,
            "cpus": list(eng.cpus),
        },
        "poll": {
            "mode": poll.mode,
            "waits": poll.waits,
            "hits": poll.hits,
            "misses": poll.misses,
            "poll_ns": poll.poll_ns,
            "wait_ns": poll.block_ns,
            "window_final_ns": poll.window_ns,
            "window_mean_ns": float(poll.window_mean_ns),
            "window_max_ns": poll.max_ns,
            "grows": poll.grows,
            "shrinks": poll.shrinks,
            "sleeps": poll.sleeps,
        },
        "cpu": {
            "usr_ns": job.cpu.usr_ns,
            "sys_ns": job.cpu.sys_ns,
            "runtime_ns": job.cpu.runtime_ns,
            "what": "the job thread's rusage over the measured phase",
        },
        "rate": {
            "limited": eng.rated,
            "latency_from": "scheduled issue time" if eng.rated else "issue time",
            "lag_mean_ns": float(eng.lag_mean_ns),
            "lag_max_ns": eng.lag_max_ns,
            "sleeps": eng.sleeps,
            "sleep_ns": eng.sleep_ns,
            "think_pauses": eng.think_pauses,
        },
        "stopped": job.stopped,
        "ramp_done": job.ramp_done,
        "error": {
            "code": job.error.code,
            "msg": job.error.msg,
            "offset": job.error.offset,
            "ddir": job.error.ddir,
        },
        "histogram": {"unit": "ns", "sub_bits": 7, "value": "bucket midpoint clamped to [min, max]"},
        "hdr": hdr,
        "samples": series,
        "warnings": list(job.warnings),
        "run_warnings": list(run_warnings),
    }
    if job.verify is not None:
        block["verify"] = job.verify
    return block


def job_obj(
    job: JobResult, group: GroupResult, plus: bool, run_warnings: list[str] | None = None
) -> dict[str, Any]:
    o = job.opts
    j: dict[str, Any] = {
        "jobname": job.name,
        "groupid": job.groupid,
        "error": job.error.code,
        "eta": INT_MAX,
        "elapsed": job.elapsed_s,
    }
    if job.job_options:  # as fio: present when any option was set, listing those that have a value
        j["job options"] = {k: v for k, v in job.job_options.items() if v is not None}
    if o.unified == "mixed":
        # as fio: one "mixed" object instead of read, write, trim and sync (sync is left out entirely)
        j["mixed"] = _dir_obj(job, group, "mixed", plus)
    else:
        for d in RW_DIRS:
            j[d] = _dir_obj(job, group, d, plus)
        sync = job.dirs["sync"]
        j["sync"] = {
            "total_ios": sync.total_ios,
            "lat_ns": lat_obj(
                sync.lat,
                percentiles=o.clat_percentiles or o.lat_percentiles,
                plist=o.percentile_list,
                plus=plus,
            ),
        }
        if o.unified == "both":
            j["mixed"] = _dir_obj(job, group, "mixed", plus)
    lb = job.latency_buckets()
    j.update(
        {
            "job_runtime": job.job_runtime_ms,
            "usr_cpu": job.cpu.usr_pct,
            "sys_cpu": job.cpu.sys_pct,
            "ctx": job.cpu.ctx,
            "majf": job.cpu.majf,
            "minf": job.cpu.minf,
            "iodepth_level": job.iodepth.level_pct(),
            "iodepth_submit": job.iodepth.submit_pct(),
            "iodepth_complete": job.iodepth.complete_pct(),
            "latency_ns": lb.ns,
            "latency_us": lb.us,
            "latency_ms": lb.ms,
        }
    )
    if job.steadystate is not None:  # fio: after the latency buckets, for a job with ss_dur
        j["steadystate"] = job.steadystate
        if job.steadystate_iolab is not None:
            j["iolab_steadystate"] = job.steadystate_iolab
    if o.continue_on_error:
        j["total_err"] = job.total_err
        j["first_error"] = job.first_error
    if job.latency_depth:  # fio leaves these out for a job that never reached its I/O loop
        j.update(
            {
                "latency_depth": job.latency_depth,
                "latency_target": o.latency_target,
                "latency_percentile": float(o.latency_percentile),
                "latency_window": o.latency_window,
            }
        )
    if o.description:
        j["desc"] = o.description
    j["iolab"] = _iolab_job_block(job, run_warnings or [])
    return j


def build(run: RunResult, *, plus: bool = False) -> dict[str, Any]:
    """The JSON document as ordered Python data (ints stay ints, floats are printed with %f)."""
    doc: dict[str, Any] = {
        "fio version": run.fio_version,
        "timestamp": run.timestamp,
        "timestamp_ms": run.timestamp_ms,
        "time": run.time,
    }
    if run.global_options:
        doc["global options"] = {k: v for k, v in run.global_options.items() if v is not None}
    doc["jobs"] = [job_obj(j, g, plus, run.warnings) for j, g in run.reported()]
    doc["disk_util"] = [
        {
            "name": du.name,
            "read_ios": du.read_ios,
            "write_ios": du.write_ios,
            "read_merges": du.read_merges,
            "write_merges": du.write_merges,
            "read_ticks": du.read_ticks,
            "write_ticks": du.write_ticks,
            "in_queue": du.in_queue,
            "util": float(du.util),
        }
        for du in run.disk_util
    ]
    if run.iolab:
        doc["iolab"] = run.iolab
    return doc


def render_json(run: RunResult, *, plus: bool = False) -> str:
    return dumps(build(run, plus=plus))
