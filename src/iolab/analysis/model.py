"""Analysis results: raw C result dict -> :class:`JobResult`; group merges -> :class:`GroupResult`.

The names live in modules of one job each and are gathered here: ``stats`` (the pieces: per-direction
statistics, CPU, depths, polling, engine, error), ``reportopts`` (what job options change in a report),
``jobresult`` (raw result -> JobResult), ``groups`` (group sums, group_reporting merges, the run).

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

from iolab.analysis.groups import (
    GroupDirStats,
    GroupResult,
    RunResult,
    group_results,
    merge_jobs,
    mixed_dir,
    report_entries,
    run_result,
)
from iolab.analysis.jobresult import JobResult, job_result
from iolab.analysis.reportopts import (
    ERROR_TYPE_BITS,
    UNIFIED_MODES,
    OptionSetting,
    ReportOptions,
    error_types,
    option_texts,
)
from iolab.analysis.stats import (
    ALL_DIRS,
    FIO_VERSION,
    FULL_INTERVAL,
    IODEPTH_LEVEL_KEYS,
    IODEPTH_SUBMIT_KEYS,
    RW_DIRS,
    CpuStats,
    DirStats,
    EngineStats,
    ErrorInfo,
    IoDepths,
    PollStats,
    SampleStats,
)

__all__ = [
    "ALL_DIRS",
    "ERROR_TYPE_BITS",
    "FIO_VERSION",
    "FULL_INTERVAL",
    "IODEPTH_LEVEL_KEYS",
    "IODEPTH_SUBMIT_KEYS",
    "RW_DIRS",
    "UNIFIED_MODES",
    "CpuStats",
    "DirStats",
    "EngineStats",
    "ErrorInfo",
    "GroupDirStats",
    "GroupResult",
    "IoDepths",
    "JobResult",
    "OptionSetting",
    "PollStats",
    "ReportOptions",
    "RunResult",
    "SampleStats",
    "error_types",
    "group_results",
    "job_result",
    "merge_jobs",
    "mixed_dir",
    "option_texts",
    "report_entries",
    "run_result",
]
