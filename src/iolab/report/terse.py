"""fio's ``terse`` output (``--minimal``), versions 2 to 5 (``--terse-version``; 3 is the default).

One semicolon-separated line per reported job, as fio 3.33 writes it:

* head: ``2;jobname;groupid;error`` (version 2) or ``V;fio-version;jobname;groupid;error``;
* per direction: io KiB, bw KiB/s, IOPS, runtime ms, slat min/max/mean/stdev (us), clat
  min/max/mean/stdev (us), 20 clat percentile fields ``P%=us`` (unused ones ``0%=0``), lat
  min/max/mean/stdev (us), bw min/max/agg%/mean/stdev (KiB/s); version 5 adds bw samples and iops
  min/max/mean/stdev/samples.  The directions are read and write, plus trim in versions 2, 4 and 5;
  with unified_rw_reporting=mixed only one (mixed) direction, and with =both the mixed direction after
  the others;
* cpu usr%, sys%, ctx, majf, minf; IO depths <=1..>=64 (7); latency us <=2..1000 (10, nanosecond latencies
  counted in the first); latency ms <=2..>=2000 (12);
* versions 3 to 5: per disk: name, read/write ios, read/write merges, read/write ticks, in_queue, util%;
* with continue_on_error: total errors and the first error; then the description if set (version 2 puts
  it on a line of its own).

Latencies are microseconds: integers truncated, means and deviations with six decimals.  Percentile fields
show total latency (lat) percentiles when ``lat_percentiles`` is set, else completion latency percentiles;
all are ``0%=0`` when neither is enabled.  Warnings are never written into terse lines.
"""

from __future__ import annotations

from iolab.analysis.histogram import LAT_MS_KEYS, LAT_US_KEYS, Histogram
from iolab.analysis.model import IODEPTH_LEVEL_KEYS, GroupResult, JobResult, RunResult, mixed_dir
from iolab.report.fiojson import bw_agg_pct

TERSE_VERSION = 3
TERSE_VERSIONS = (2, 3, 4, 5)
NPCT = 20


def _lat_fields(h: Histogram) -> list[str]:
    return [str(h.min // 1000), str(h.max // 1000), f"{h.mean / 1000:f}", f"{h.stdev / 1000:f}"]


def _dir_fields(job: JobResult, group: GroupResult, d: str, version: int) -> list[str]:
    ds = mixed_dir(job) if d == "mixed" else job.dirs[d]
    o = job.opts
    runt = ds.runtime_ms
    f = [str(ds.kbytes), str(ds.bw), str(ds.total_ios * 1000 // runt if runt else 0), str(runt)]
    f += _lat_fields(ds.slat)
    f += _lat_fields(ds.clat)
    pct: list[str] = []
    if o.clat_percentiles or o.lat_percentiles:
        h = ds.lat if o.lat_percentiles else ds.clat
        vals = h.percentiles(o.percentile_list[:NPCT])
        pct = [f"{p:f}%={v // 1000}" for p, v in vals.items()]
    pct += ["0%=0"] * (NPCT - len(pct))
    f += pct
    f += _lat_fields(ds.lat)
    bs = ds.bw_stats
    f += [
        str(int(bs.min)),
        str(int(bs.max)),
        f"{bw_agg_pct(ds, group, d, terse=True):f}%",
        f"{bs.mean:f}",
        f"{bs.stdev:f}",
    ]
    if version == 5:
        st = ds.iops_stats
        f += [str(bs.samples), str(int(st.min)), str(int(st.max)), f"{st.mean:f}", f"{st.stdev:f}"]
        f.append(str(st.samples))
    return f


def terse_fields(
    run: RunResult, job: JobResult, group: GroupResult, version: int = TERSE_VERSION
) -> list[str]:
    if version not in TERSE_VERSIONS:
        raise ValueError(f"terse version {version}: expected one of 2, 3, 4, 5")
    if version == 2:
        f = ["2", job.name, str(job.groupid), str(job.error.code)]
    else:
        f = [str(version), run.fio_version, job.name, str(job.groupid), str(job.error.code)]
    unified = job.opts.unified
    if unified == "mixed":
        f += _dir_fields(job, group, "mixed", version)
    else:
        f += _dir_fields(job, group, "read", version)
        f += _dir_fields(job, group, "write", version)
        if version != 3:
            f += _dir_fields(job, group, "trim", version)
        if unified == "both":
            f += _dir_fields(job, group, "mixed", version)
    c = job.cpu
    f += [f"{c.usr_pct:f}%", f"{c.sys_pct:f}%", str(c.ctx), str(c.majf), str(c.minf)]
    lvl = job.iodepth.level_pct()
    f += [f"{lvl[k]:3.1f}%" for k in IODEPTH_LEVEL_KEYS]
    lb = job.latency_buckets()
    us = dict(lb.us)
    us["2"] = us["2"] + lb.ns_share  # nanosecond latencies count as "<=2us" (unfloored, like fio)
    f += [f"{us[k]:3.2f}%" for k in LAT_US_KEYS]
    f += [f"{lb.ms[k]:3.2f}%" for k in LAT_MS_KEYS]
    for du in run.disk_util if version >= 3 else ():
        f += [
            du.name,
            str(du.read_ios),
            str(du.write_ios),
            str(du.read_merges),
            str(du.write_merges),
            str(du.read_ticks),
            str(du.write_ticks),
            str(du.in_queue),
            f"{du.util:3.2f}%",
        ]
    if job.opts.continue_on_error:
        f += [str(job.total_err), str(job.first_error)]
    if job.opts.description:
        f.append(job.opts.description)
    return f


def render_terse(run: RunResult, version: int = TERSE_VERSION) -> str:
    out = []
    for j, g in run.reported():
        fields = terse_fields(run, j, g, version)
        line = ";".join(fields)
        if version == 2 and j.opts.description:
            line = ";".join(fields[:-1]) + "\n;" + fields[-1]  # fio puts it on a line of its own
        out.append(line + "\n")
    return "".join(out)
