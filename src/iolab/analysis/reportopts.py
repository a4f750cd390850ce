"""What the job options change in a report: :class:`ReportOptions` (percentiles, units, unified reporting,
block size ranges) and the option texts fio prints."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from iolab.analysis.histogram import FIO_DEFAULT_PERCENTILES


def as_bool(v: Any, default: bool) -> bool:
    if v is None:
        return default
    if isinstance(v, str):
        return v.strip().lower() not in ("0", "false", "no", "off", "")
    return bool(v)


def as_int(v: Any, default: int) -> int:
    if v is None or isinstance(v, bool):
        return default if v is None else int(v)
    try:
        return int(v)
    except (TypeError, ValueError):
        return default


def as_float(v: Any, default: float) -> float:
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
        kb = as_int(options.get("kb_base"), 1024)
        sig = as_int(options.get("significant_figures"), 4)
        gtod = as_bool(options.get("gtod_reduce"), False)
        return cls(
            rw=str(options.get("rw") or "read"),
            bs=_bs_ranges(options),
            ioengine=str(options.get("ioengine") or "psync"),
            iodepth=max(as_int(options.get("iodepth"), 1), 1),
            percentile_list=_percentile_list(options.get("percentile_list")),
            percentile_precision=_percentile_precision(options.get("percentile_list")),
            clat_percentiles=not gtod and as_bool(options.get("clat_percentiles"), True),
            lat_percentiles=not gtod and as_bool(options.get("lat_percentiles"), False),
            slat_percentiles=not gtod and as_bool(options.get("slat_percentiles"), False),
            kb_base=kb if kb in (1000, 1024) else 1024,
            unit_base=as_int(options.get("unit_base"), 0),
            significant_figures=min(max(sig, 1), 10),
            description=str(options.get("description") or ""),
            group_reporting=as_bool(options.get("group_reporting"), False),
            # typed times are ns; fio reports these two in microseconds
            latency_target=as_int(options.get("latency_target"), 0) // 1000,
            latency_window=as_int(options.get("latency_window"), 0) // 1000,
            latency_percentile=as_float(options.get("latency_percentile"), 100.0),
            unified=UNIFIED_MODES.get(str(options.get("unified_rw_reporting") or "none"), "none"),
            stats=as_bool(options.get("stats"), True),
            disable_lat=gtod or as_bool(options.get("disable_lat"), False),
            disable_clat=gtod or as_bool(options.get("disable_clat"), False),
            disable_slat=gtod or as_bool(options.get("disable_slat"), False),
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
