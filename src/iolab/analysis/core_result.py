"""The C core's result, typed: the one declaration of what ``_core.Job.result()`` returns.

The core builds a plain dict (cheap to make in C, easy to test); :meth:`CoreResult.from_core` turns it into
these frozen dataclasses at the boundary (the engine's runner), and analysis reads only them. Every field has
a default, so a job that never ran is ``CoreResult(stopped=True, io_loop=False)``; parts the core always
sends but an empty result lacks are ``None``. docs/DESIGN.md section 3 shows the table :func:`design_table`
renders from this module (``python -m iolab.analysis.core_result`` prints it), and tests check that the
document and a real ``Job.result()`` agree with it, key for key.
"""

from __future__ import annotations

import dataclasses
import sys
import types
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple, TypeVar, Union, get_args, get_origin, get_type_hints

#: what ``_core.Job.result()`` returns: the mapping form of :class:`CoreResult`
RawResult = dict[str, Any]


class Sample(NamedTuple):
    """One interval of a sample series: counts are deltas over the interval."""

    t_ns: int
    read_ios: int
    read_bytes: int
    write_ios: int
    write_bytes: int
    trim_ios: int = 0
    trim_bytes: int = 0


class RateStat(NamedTuple):
    """Running statistics of per-interval rates (Welford): m2 is the sum of squared deviations."""

    n: int
    min: float
    max: float
    mean: float
    m2: float


@dataclass(frozen=True)
class CoreHistogram:
    """A latency histogram (ns); buckets: native uint64 counts, ``hist_buckets`` of them."""

    count: int = field(default=0, metadata={"doc": "values recorded"})
    min: int = field(default=0, metadata={"doc": "smallest value"})
    max: int = field(default=0, metadata={"doc": "largest value"})
    sum: int = field(default=0, metadata={"doc": "sum of the values"})
    sumsq: float = field(default=0.0, metadata={"doc": "sum of their squares"})
    buckets: bytes = field(default=b"", metadata={"doc": "counts per bucket, native uint64"})


@dataclass(frozen=True)
class CoreDir:
    """The statistics of one direction (read, write, sync)."""

    ios: int = field(default=0, metadata={"doc": "I/Os done"})
    bytes: int = field(default=0, metadata={"doc": "bytes done"})
    short_ios: int = field(
        default=0, metadata={"doc": "I/Os that transferred less than asked (continued by the engine)"}
    )
    dropped: int = field(default=0, metadata={"doc": "always 0"})
    err_ios: int | None = field(
        default=None,
        metadata={
            "doc": "failed I/Os (the fatal one, and those continue_on_error let pass): issued, not done"
        },
    )
    datasync_ios: int = field(
        default=0, metadata={"doc": "sync: fdatasyncs among ios (fio's sync total_ios counts fsyncs only)"}
    )
    clat: CoreHistogram | None = field(
        default=None, metadata={"doc": "completion latency (synchronous engine: == lat)"}
    )
    lat: CoreHistogram | None = field(
        default=None, metadata={"doc": "total latency (rate limited: from the scheduled issue time)"}
    )
    slat: CoreHistogram | None = field(
        default=None, metadata={"doc": "submission latency (synchronous engine: empty)"}
    )


@dataclass(frozen=True)
class CoreDirs:
    """Statistics per direction."""

    read: CoreDir | None = field(default=None, metadata={"doc": "reads"})
    write: CoreDir | None = field(default=None, metadata={"doc": "writes"})
    trim: CoreDir | None = field(default=None, metadata={"doc": "trims (discards, punched holes)"})
    sync: CoreDir | None = field(default=None, metadata={"doc": "fsync/fdatasync (only lat is meaningful)"})


@dataclass(frozen=True)
class DirRates:
    """Per-interval rate statistics of one direction."""

    bw: RateStat = field(default=RateStat(0, 0.0, 0.0, 0.0, 0.0), metadata={"doc": "KiB/s"})
    iops: RateStat = field(default=RateStat(0, 0.0, 0.0, 0.0, 0.0), metadata={"doc": "I/Os per second"})


@dataclass(frozen=True)
class CoreRates:
    """Rate statistics at the requested interval, all run long (intervals without I/O left out)."""

    read: DirRates | None = field(default=None, metadata={"doc": "reads"})
    write: DirRates | None = field(default=None, metadata={"doc": "writes"})
    trim: DirRates | None = field(default=None, metadata={"doc": "trims"})


@dataclass(frozen=True)
class CoreDepth:
    """fio's I/O depth distributions and the depths the job ran with."""

    level: tuple[int, ...] = field(
        default=(0,) * 7, metadata={"doc": "I/Os submitted by in-flight depth: 1,2,4,8,16,32,>=64"}
    )
    submit: tuple[int, ...] = field(
        default=(0,) * 7, metadata={"doc": "submit calls by I/Os submitted: 0,1-4,...,33-64,>64"}
    )
    complete: tuple[int, ...] = field(
        default=(0,) * 7, metadata={"doc": "reap calls by completions, same buckets"}
    )
    max_inflight: int = field(default=0, metadata={"doc": "most I/Os in flight at once"})
    iodepth: int = field(default=1, metadata={"doc": "the pool size"})
    batch_submit: int = field(default=1, metadata={"doc": "iodepth_batch_submit as used"})
    batch_complete_min: int = field(default=0, metadata={"doc": "iodepth_batch_complete_min"})
    batch_complete_max: int = field(default=0, metadata={"doc": "iodepth_batch_complete_max as used"})
    iodepth_low: int = field(default=1, metadata={"doc": "iodepth_low as used"})


@dataclass(frozen=True)
class CorePoll:
    """Completion polling counters (hits + misses == waits)."""

    mode: str = field(default="off", metadata={"doc": '"off", "on" or "adaptive"'})
    waits: int = field(default=0, metadata={"doc": "waits for completions"})
    hits: int = field(default=0, metadata={"doc": "waits that ended while polling"})
    misses: int = field(default=0, metadata={"doc": "waits that blocked in the kernel"})
    poll_ns: int = field(default=0, metadata={"doc": "time spent busy-polling"})
    block_ns: int = field(default=0, metadata={"doc": "time of all waits"})
    window_ns: int = field(default=0, metadata={"doc": "the window at the end"})
    window_sum_ns: int = field(default=0, metadata={"doc": "sum of the window at each wait"})
    max_ns: int = field(default=0, metadata={"doc": "largest window"})
    sleeps: int = field(default=0, metadata={"doc": "loop sleeps that adjusted the window"})
    grows: int = field(default=0, metadata={"doc": "window growths"})
    shrinks: int = field(default=0, metadata={"doc": "window shrinks"})
    grow: int = field(default=0, metadata={"doc": "growth factor (0: 2)"})
    shrink: int = field(default=0, metadata={"doc": "shrink divisor (0: back to 0)"})


@dataclass(frozen=True)
class CoreRate:
    """Rate limiting and think time."""

    rated: bool = field(default=False, metadata={"doc": "a direction has a rate"})
    sleeps: int = field(default=0, metadata={"doc": "loop sleeps"})
    sleep_ns: int = field(default=0, metadata={"doc": "time slept"})
    think_pauses: int = field(default=0, metadata={"doc": "thinktime pauses"})
    lag_max_ns: int = field(
        default=0, metadata={"doc": "largest delay of a submission after its scheduled time"}
    )
    lag_sum_ns: int = field(default=0, metadata={"doc": "total of those delays"})
    scheduled: int = field(default=0, metadata={"doc": "I/Os issued on the schedule"})


@dataclass(frozen=True)
class IoCount:
    """I/Os and bytes."""

    ios: int = field(default=0, metadata={"doc": "I/Os"})
    bytes: int = field(default=0, metadata={"doc": "bytes"})


@dataclass(frozen=True)
class Uncounted:
    """I/O the statistics leave out but the device saw (for the post-run device check)."""

    read: IoCount = field(default=IoCount(), metadata={"doc": "reads"})
    write: IoCount = field(default=IoCount(), metadata={"doc": "writes"})
    trim: IoCount = field(default=IoCount(), metadata={"doc": "trims"})
    syncs: int = field(default=0, metadata={"doc": "fsyncs and fdatasyncs"})


@dataclass(frozen=True)
class VerifyFailure:
    """One block that failed verification (csrc/verify.h struct iol_vfail)."""

    kind: str = field(
        default="",
        metadata={
            "doc": "never written?, bad magic header, bad header length/offset/numberio/crc,"
            " checksum mismatch, pattern mismatch, short read, bad header rand_seed"
        },
    )
    file: int = field(default=0, metadata={"doc": "index in the job's file list"})
    offset: int = field(default=0, metadata={"doc": "offset of the failing chunk (verify_interval bytes)"})
    length: int = field(default=0, metadata={"doc": "its length"})
    block_offset: int = field(default=0, metadata={"doc": "offset of the block read"})
    block_length: int = field(default=0, metadata={"doc": "length of the block read"})
    expected: int = field(default=0, metadata={"doc": "header field (or pattern byte) expected"})
    received: int = field(default=0, metadata={"doc": "what was read"})
    bad_byte: int = field(default=0, metadata={"doc": "pattern: offset of the first bad byte in the chunk"})
    media_type: int = field(default=0, metadata={"doc": "fio verify type named by the header read (0: none)"})
    csum_expected: bytes = field(default=b"", metadata={"doc": "checksum in the header"})
    csum_received: bytes = field(default=b"", metadata={"doc": "checksum of the data read"})
    dump_received: bytes = field(default=b"", metadata={"doc": "verify_dump: the chunk as read (first 4)"})
    dump_expected: bytes = field(
        default=b"", metadata={"doc": "verify_dump: the chunk as written, regenerated (data failures)"}
    )


@dataclass(frozen=True)
class CoreVerify:
    """verify=: what was written, read back and checked."""

    type: str = field(default="", metadata={"doc": "verify type (crc32c, md5, pattern, ...)"})
    written: int = field(default=0, metadata={"doc": "writes logged to be read back"})
    reads: int = field(default=0, metadata={"doc": "reads checked"})
    bytes: int = field(default=0, metadata={"doc": "bytes checked"})
    chunks: int = field(default=0, metadata={"doc": "headers (verify_interval chunks) checked"})
    failures: int = field(default=0, metadata={"doc": "chunks that failed"})
    not_read: int = field(default=0, metadata={"doc": "logged writes never read back (the job ended first)"})
    phase_ns: int = field(default=0, metadata={"doc": "wall time of the verify phase (after the writes)"})
    log_full: bool = field(default=False, metadata={"doc": "a write could not be logged (not read back)"})
    failed: tuple[VerifyFailure, ...] = field(default=(), metadata={"doc": "the first 16 failures"})


@dataclass(frozen=True)
class CoreResult:
    """What one job did, as the C core measured it."""

    runtime_ns: int = field(default=0, metadata={"doc": "measured phase wall time (after the ramp)"})
    ramp_done: bool = field(default=True, metadata={"doc": "the ramp ended (or there was none)"})
    stopped: bool = field(default=False, metadata={"doc": "stop() was called"})
    error: int = field(default=0, metadata={"doc": "errno of the error that ended the job (0: none)"})
    error_msg: str = field(default="", metadata={"doc": "what failed, in words"})
    error_offset: int = field(default=0, metadata={"doc": "where the failing transfer started"})
    error_ddir: str = field(default="", metadata={"doc": '"read", "write", "trim", "sync" or ""'})
    total_err: int = field(
        default=0, metadata={"doc": "continue_on_error: errors counted (fio's total_err_count)"}
    )
    first_error: int = field(
        default=0, metadata={"doc": "continue_on_error: the first of them (an error let pass leaves error 0)"}
    )
    usr_ns: int = field(default=0, metadata={"doc": "user CPU time of the job thread (RUSAGE_THREAD)"})
    sys_ns: int = field(default=0, metadata={"doc": "system CPU time"})
    ctx: int = field(default=0, metadata={"doc": "context switches"})
    majf: int = field(default=0, metadata={"doc": "major page faults"})
    minf: int = field(default=0, metadata={"doc": "minor page faults"})
    hist_sub_bits: int = field(default=7, metadata={"doc": "histogram sub-bucket bits"})
    hist_buckets: int = field(default=4352, metadata={"doc": "histogram buckets"})
    ddir: CoreDirs = field(default=CoreDirs(), metadata={"doc": "statistics per direction"})
    samples: tuple[Sample, ...] = field(
        default=(),
        metadata={
            "doc": "per bwavgtime interval (when the buffer fills, pairs merge and the interval doubles)"
        },
    )
    iops_samples: tuple[Sample, ...] | None = field(
        default=None, metadata={"doc": "the same at iopsavgtime, only when it differs"}
    )
    sample_stats: CoreRates | None = field(
        default=None, metadata={"doc": "rates of samples at the requested interval"}
    )
    iops_sample_stats: CoreRates | None = field(default=None, metadata={"doc": "the same for iops_samples"})
    engine: str = field(default="", metadata={"doc": "engine name"})
    engine_info: str = field(
        default="", metadata={"doc": "how the engine was set up (io_uring flags, fallbacks)"}
    )
    tid: int = field(default=0, metadata={"doc": "kernel thread id of the job thread"})
    cpus: tuple[int, ...] = field(default=(), metadata={"doc": "the CPUs the job thread could run on"})
    depth: CoreDepth | None = field(default=None, metadata={"doc": "I/O depths"})
    poll: CorePoll | None = field(default=None, metadata={"doc": "completion polling"})
    rate: CoreRate | None = field(default=None, metadata={"doc": "rate limiting and think time"})
    ramp: Uncounted | None = field(
        default=None,
        metadata={
            "doc": "completed during ramp_time (all of a job stopped in its ramp); zeros without ramp_time"
        },
    )
    drained: Uncounted | None = field(
        default=None, metadata={"doc": "in flight when the job ended on an error: waited for, not counted"}
    )
    end_syncs: int = field(
        default=0,
        metadata={"doc": "end_fsync calls: out of the statistics as in fio; the device check counts them"},
    )
    verify: CoreVerify | None = field(default=None, metadata={"doc": "verify= jobs only"})
    io_loop: bool = field(default=True, metadata={"doc": "runner: the job entered its I/O loop"})
    iowq_workers: int = field(
        default=0, metadata={"doc": "runner: io_uring worker threads seen for the job's thread"}
    )

    @classmethod
    def from_core(cls, raw: Mapping[str, Any]) -> CoreResult:
        """The typed form of a raw result; ValueError for a key the declaration does not know."""
        return _build(cls, raw, "result")

    def to_core(self) -> RawResult:
        """The mapping form (as ``Job.result()`` returns it; parts that are None left out), for readers of
        raw results."""
        out: RawResult = _mapping(self)
        return out

    def __getitem__(self, key: str) -> Any:
        """Read access by key, as on the mapping form (for code written against the raw dict)."""
        if key not in _hints(CoreResult):
            raise KeyError(key)
        return _mapping(getattr(self, key))


def _mapping(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _mapping(v) for f in fields(obj) if (v := getattr(obj, f.name)) is not None}
    return obj


# ------------------------------------------------------------------------------ from the core's dict
T = TypeVar("T")


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        if value is None:
            return None
        (inner,) = [a for a in get_args(tp) if a is not type(None)]
        return _convert(inner, value, where)
    if origin is tuple:
        item = get_args(tp)[0]
        return tuple(_convert(item, v, f"{where}[]") for v in value)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return value if isinstance(value, tp) else _build(tp, value, where)
    if isinstance(tp, type) and issubclass(tp, tuple):  # a NamedTuple
        return tp(*value)
    if tp is bytes:
        return bytes(value)
    return tp(value)


def _build(cls: type[T], raw: Mapping[str, Any], where: str) -> T:
    hints = _hints(cls)
    unknown = set(raw) - hints.keys()
    if unknown:
        raise ValueError(f"{where}: keys {sorted(unknown)} are not declared in iolab.analysis.core_result")
    return cls(**{k: _convert(hints[k], v, f"{where}.{k}") for k, v in raw.items()})


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = get_type_hints(cls)
    return _HINTS[cls]


# ------------------------------------------------------------------------------ the document
def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        inner = [a for a in get_args(tp) if a is not type(None)]
        return f"{_type_name(inner[0])}, optional"
    if origin is tuple:
        return f"[{_type_name(get_args(tp)[0])}, ...]"
    if isinstance(tp, type) and issubclass(tp, tuple) and hasattr(tp, "_fields"):
        return f"{tp.__name__}({', '.join(tp._fields)})"
    return str(tp.__name__)


def _nested(tp: Any) -> list[type]:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType) or origin is tuple:
        return [n for a in get_args(tp) for n in _nested(a)]
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return [tp]
    return []


def design_table() -> str:
    """The raw result's fields, class by class from :class:`CoreResult` down (Markdown)."""
    out: list[str] = []
    seen: list[type] = []
    todo: list[type] = [CoreResult]
    while todo:
        cls = todo.pop(0)
        if cls in seen:
            continue
        seen.append(cls)
        out += [f"`{cls.__name__}`: {cls.__doc__}", "", "| key | type | meaning |", "|---|---|---|"]
        for f in fields(cls):
            tp = _hints(cls)[f.name]
            out.append(f"| `{f.name}` | {_type_name(tp)} | {f.metadata['doc']} |")
            todo += _nested(tp)
        out.append("")
    for nt in (Sample, RateStat):
        out += [f"`{nt.__name__}`: {nt.__doc__} Fields: {', '.join(nt._fields)}.", ""]
    return "\n".join(out).rstrip("\n") + "\n"


if __name__ == "__main__":
    sys.stdout.write(design_table())
