"""Analysis phase: raw C results -> JobResult, histogram math, group merges, HdrHistogram export.

Modules: ``histogram`` (the C histogram's Python mirror), ``model`` (JobResult & co., ``job_result``,
``group_results``, ``run_result``), ``diskstats`` (fio-like disk utilization), ``synthetic`` (raw results in
the C core's format, for tests).
"""

from iolab.analysis.diskstats import DiskUtil
from iolab.analysis.histogram import (
    FIO_DEFAULT_PERCENTILES,
    NBUCKETS,
    SUB_BITS,
    Histogram,
    LatencyBuckets,
    bucket_bounds,
    index_of,
)
from iolab.analysis.model import (
    ALL_DIRS,
    FIO_VERSION,
    RW_DIRS,
    CpuStats,
    DirStats,
    EngineStats,
    ErrorInfo,
    GroupDirStats,
    GroupResult,
    IoDepths,
    JobResult,
    PollStats,
    ReportOptions,
    RunResult,
    SampleStats,
    group_results,
    job_result,
    merge_jobs,
    option_texts,
    run_result,
)

__all__ = [
    "ALL_DIRS",
    "FIO_DEFAULT_PERCENTILES",
    "FIO_VERSION",
    "NBUCKETS",
    "RW_DIRS",
    "SUB_BITS",
    "CpuStats",
    "DirStats",
    "DiskUtil",
    "EngineStats",
    "ErrorInfo",
    "GroupDirStats",
    "GroupResult",
    "Histogram",
    "IoDepths",
    "JobResult",
    "LatencyBuckets",
    "PollStats",
    "ReportOptions",
    "RunResult",
    "SampleStats",
    "bucket_bounds",
    "group_results",
    "index_of",
    "job_result",
    "merge_jobs",
    "option_texts",
    "run_result",
]
