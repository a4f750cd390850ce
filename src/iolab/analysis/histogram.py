"""Latency histogram: the Python mirror of the C core's log-linear histogram.

Mapping (binding, see docs/DESIGN.md section 3), S = 7 sub-bucket bits, values in nanoseconds:

* ``v < 2**S``: index = v (exact buckets of width 1);
* otherwise ``k = floor(log2 v)`` clamped to ``k <= 39`` (values >= 2**40 ns all land in the last bucket),
  index = ``2**S + (k - S) * 2**S + ((v >> (k - S)) - 2**S)``; the bucket is ``2**(k - S)`` wide, so any value
  in it is within 1/128 of the bucket's lower bound.
* ``2**S + (40 - S) * 2**S = 4352`` buckets.

Besides the bucket counts a histogram carries the exact count, min, max, sum and sum of squares (all from the
C core), so mean and standard deviation are exact; only percentiles and distributions use the buckets.

Representative value of a bucket (used for percentiles, json+ ``bins``, the latency distribution maps and the
HdrHistogram export): the bucket midpoint ``low + width // 2`` (for exact buckets: the value itself), clamped
to ``[min, max]`` of the histogram so that no reported percentile is below the observed minimum or above the
observed maximum.  The relative error of a representative value is at most 1/256 (half a bucket).  This is
the same choice fio makes for its own buckets (it reports bucket midpoints), but fio does not clamp.

Percentiles follow fio: for a requested percentile ``p`` the result is the representative value of the first
bucket where the cumulative count reaches ``p / 100 * count``, i.e. the bucket holding the nearest-rank sample
``ceil(p / 100 * count)``.  When that sample is the first or the last one, the exact min or max is reported
instead (fio would report its bucket value).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from iolab.analysis.core_result import CoreHistogram

SUB_BITS = 7
SUB_COUNT = 1 << SUB_BITS  # 128
MAX_EXP = 39  # largest k = floor(log2 v) with its own bucket group
NBUCKETS = SUB_COUNT + (MAX_EXP + 1 - SUB_BITS) * SUB_COUNT  # 4352
LAST_INDEX = NBUCKETS - 1
#: Values at or above this (2**40 ns, about 18 minutes) are all counted in the last bucket.
OVERFLOW_NS = 1 << (MAX_EXP + 1)

#: fio's default ``percentile_list``.
FIO_DEFAULT_PERCENTILES: tuple[float, ...] = (
    1.0,
    5.0,
    10.0,
    20.0,
    30.0,
    40.0,
    50.0,
    60.0,
    70.0,
    80.0,
    90.0,
    95.0,
    99.0,
    99.5,
    99.9,
    99.95,
    99.99,
)

#: fio's latency distribution maps (``latency_ns``/``latency_us``/``latency_ms``): each key K counts values in
#: [previous K, K) of that unit; the last millisecond key ``>=2000`` is open ended.
LAT_NS_KEYS: tuple[str, ...] = ("2", "4", "10", "20", "50", "100", "250", "500", "750", "1000")
LAT_US_KEYS: tuple[str, ...] = LAT_NS_KEYS
LAT_MS_KEYS: tuple[str, ...] = (*LAT_NS_KEYS, "2000", ">=2000")
_LAT_BOUNDS: tuple[int, ...] = (2, 4, 10, 20, 50, 100, 250, 500, 750, 1000)
_LAT_MS_BOUNDS: tuple[int, ...] = (*_LAT_BOUNDS, 2000)


def index_of(value: int) -> int:
    """Bucket index of a value in nanoseconds (negative values are counted as 0)."""
    if value < SUB_COUNT:
        return max(value, 0)
    k = value.bit_length() - 1
    if k > MAX_EXP:
        return LAST_INDEX
    shift = k - SUB_BITS
    return SUB_COUNT + shift * SUB_COUNT + ((value >> shift) - SUB_COUNT)


def bucket_bounds(index: int) -> tuple[int, int]:
    """Inclusive ``(low, high)`` value range of a bucket.

    The last bucket nominally ends at ``2**40 - 1``; values above that are clamped into it by the C core.
    """
    if not 0 <= index < NBUCKETS:
        raise IndexError(f"bucket index {index} out of range 0..{NBUCKETS - 1}")
    if index < SUB_COUNT:
        return index, index
    group, sub = divmod(index - SUB_COUNT, SUB_COUNT)
    low = (SUB_COUNT + sub) << group
    return low, low + (1 << group) - 1


def bucket_midpoint(index: int) -> int:
    """Unclamped representative value of a bucket: ``low + width // 2``."""
    low, high = bucket_bounds(index)
    return low + (high - low + 1) // 2


@dataclass(frozen=True)
class LatencyBuckets:
    """fio's ``latency_ns`` / ``latency_us`` / ``latency_ms`` maps: percent of I/Os per range."""

    ns: dict[str, float]
    us: dict[str, float]
    ms: dict[str, float]
    ns_share: float = 0.0  # percent of I/Os below 1 us, without the 0.01% floor

    @staticmethod
    def empty() -> LatencyBuckets:
        return LatencyBuckets(
            ns=dict.fromkeys(LAT_NS_KEYS, 0.0),
            us=dict.fromkeys(LAT_US_KEYS, 0.0),
            ms=dict.fromkeys(LAT_MS_KEYS, 0.0),
        )


def _lat_slot(bounds: Sequence[int], v: int) -> int:
    for i, b in enumerate(bounds):
        if v < b:
            return i
    return len(bounds)


@dataclass
class Histogram:
    """Bucket counts plus exact count/min/max/sum/sumsq.  Values are nanoseconds.

    ``buckets`` always has :data:`NBUCKETS` entries.
    An empty histogram has ``count == 0`` and ``min == max == 0``.
    """

    buckets: list[int] = field(default_factory=lambda: [0] * NBUCKETS)
    count: int = 0
    min: int = 0
    max: int = 0
    sum: int = 0
    sumsq: float = 0.0

    def __post_init__(self) -> None:
        if len(self.buckets) != NBUCKETS:
            raise ValueError(f"histogram needs {NBUCKETS} buckets, got {len(self.buckets)}")

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_raw(
        cls, raw: Mapping[str, Any], *, sub_bits: int = SUB_BITS, nbuckets: int = NBUCKETS
    ) -> Histogram:
        """Build from the C core's dict ``{"count", "min", "max", "sum", "sumsq", "buckets": bytes}``.

        ``buckets`` is native-endian uint64 (``array('Q')`` bytes); a list of ints is accepted too.
        """
        if sub_bits != SUB_BITS or nbuckets != NBUCKETS:
            raise ValueError(
                f"histogram layout mismatch: C reports sub_bits={sub_bits}, buckets={nbuckets}; "
                f"Python expects {SUB_BITS}, {NBUCKETS}"
            )
        b = raw.get("buckets", b"")
        counts: list[int]
        if isinstance(b, bytes | bytearray | memoryview):
            arr = array("Q")
            arr.frombytes(bytes(b))
            counts = arr.tolist()
        else:
            counts = [int(x) for x in b]
        if not counts:
            counts = [0] * NBUCKETS
        if len(counts) != NBUCKETS:
            raise ValueError(f"histogram buckets: expected {NBUCKETS} counts, got {len(counts)}")
        count = int(raw.get("count", 0))
        if count == 0:
            return cls(counts, 0, 0, 0, 0, 0.0)
        return cls(
            counts,
            count,
            int(raw.get("min", 0)),
            int(raw.get("max", 0)),
            int(raw.get("sum", 0)),
            float(raw.get("sumsq", 0.0)),
        )

    @classmethod
    def from_core(cls, h: CoreHistogram, *, sub_bits: int = SUB_BITS, nbuckets: int = NBUCKETS) -> Histogram:
        """Build from the C core's typed histogram (:class:`~iolab.analysis.core_result.CoreHistogram`)."""
        return cls.from_raw(vars(h), sub_bits=sub_bits, nbuckets=nbuckets)

    @classmethod
    def from_values(cls, values: Iterable[int]) -> Histogram:
        """Histogram of individual values (for tests and tools); mirrors what the C core records."""
        h = cls()
        for v in values:
            h.record(v)
        return h

    def record(self, value: int, n: int = 1) -> None:
        """Record ``n`` occurrences of ``value`` ns."""
        if n <= 0:
            return
        value = max(int(value), 0)
        self.buckets[index_of(value)] += n
        if self.count == 0:
            self.min = self.max = value
        else:
            self.min = min(self.min, value)
            self.max = max(self.max, value)
        self.count += n
        self.sum += value * n
        self.sumsq += float(value) * float(value) * n

    def copy(self) -> Histogram:
        return Histogram(list(self.buckets), self.count, self.min, self.max, self.sum, self.sumsq)

    # ----------------------------------------------------------------- merging
    def __add__(self, other: Histogram) -> Histogram:
        if not isinstance(other, Histogram):
            return NotImplemented
        out = self.copy()
        out.merge(other)
        return out

    def __radd__(self, other: object) -> Histogram:
        # lets sum([...], start=0) work; sum() starts from 0
        if other == 0:
            return self.copy()
        return NotImplemented

    def merge(self, other: Histogram) -> None:
        """Add ``other`` into this histogram in place (exact: counts add, extremes combine)."""
        if other.count == 0:
            return
        if self.count == 0:
            self.min, self.max = other.min, other.max
        else:
            self.min = min(self.min, other.min)
            self.max = max(self.max, other.max)
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]
        self.count += other.count
        self.sum += other.sum
        self.sumsq += other.sumsq

    @classmethod
    def merged(cls, hists: Iterable[Histogram]) -> Histogram:
        """Sum of several histograms (a new object)."""
        out = cls()
        for h in hists:
            out.merge(h)
        return out

    # ----------------------------------------------------------------- statistics
    @property
    def mean(self) -> float:
        return self.sum / self.count if self.count else 0.0

    def variance(self, *, sample: bool = True) -> float:
        """Variance from sum and sum of squares; sample (n - 1) by default, as fio reports it."""
        n = self.count
        if n == 0 or (sample and n < 2):
            return 0.0
        ss = self.sumsq - (float(self.sum) * float(self.sum)) / n
        return max(ss, 0.0) / (n - 1 if sample else n)

    @property
    def stdev(self) -> float:
        """Sample standard deviation (divides by n - 1), as fio prints ``stdev``/``stddev``; 0 if n < 2."""
        return math.sqrt(self.variance(sample=True))

    @property
    def pstdev(self) -> float:
        """Population standard deviation (divides by n)."""
        return math.sqrt(self.variance(sample=False))

    def representative(self, index: int) -> int:
        """Representative value of a bucket: its midpoint clamped to this histogram's [min, max]."""
        v = bucket_midpoint(index)
        if self.count:
            v = min(max(v, self.min), self.max)
        return v

    def nonzero(self) -> Iterator[tuple[int, int]]:
        """``(bucket index, count)`` for every non-empty bucket, ascending."""
        for i, c in enumerate(self.buckets):
            if c:
                yield i, c

    def bins(self) -> dict[int, int]:
        """Representative value -> count for every non-empty bucket (fio's json+ ``bins``)."""
        out: dict[int, int] = {}
        for i, c in self.nonzero():
            v = self.representative(i)
            out[v] = out.get(v, 0) + c
        return out

    def percentiles(self, plist: Sequence[float] = FIO_DEFAULT_PERCENTILES) -> dict[float, int]:
        """fio-style percentiles: ``{p: value_ns}`` for each requested p (0 < p <= 100), in request order.

        An empty histogram yields 0 for every percentile.
        """
        out: dict[float, int] = {}
        if self.count == 0:
            return {float(p): 0 for p in plist}
        order = sorted(range(len(plist)), key=lambda j: plist[j])
        results: dict[int, int] = {}
        cum = 0
        it = self.nonzero()
        idx = -1
        for j in order:
            target = float(plist[j]) / 100.0 * self.count
            if target >= self.count:  # the last sample: the exact maximum is known
                results[j] = self.max
                continue
            if target <= 1.0:  # the first sample: the exact minimum is known
                results[j] = self.min
                continue
            while cum < target or idx < 0:
                try:
                    idx, c = next(it)
                except StopIteration:
                    break
                cum += c
            results[j] = self.representative(idx) if idx >= 0 else self.max
        for j, p in enumerate(plist):
            out[float(p)] = results[j]
        return out

    def percentile(self, p: float) -> int:
        return self.percentiles([p])[float(p)]

    def latency_buckets(self, total: int | None = None) -> LatencyBuckets:
        """fio's latency distribution maps for this histogram.

        Each bucket is attributed wholly to the range holding its representative value.  Percentages are of
        ``total`` (default: this histogram's count); as fio does, any non-zero share below 0.01% is shown as
        0.01%.
        """
        lb = LatencyBuckets.empty()
        denom = self.count if total is None else total
        if denom <= 0 or self.count == 0:
            return lb
        ns = [0] * len(LAT_NS_KEYS)
        us = [0] * len(LAT_US_KEYS)
        ms = [0] * len(LAT_MS_KEYS)
        for i, c in self.nonzero():
            v = self.representative(i)
            if v < 1000:
                ns[_lat_slot(_LAT_BOUNDS, v)] += c
            elif v < 1_000_000:
                us[_lat_slot(_LAT_BOUNDS, v // 1000)] += c
            else:
                ms[_lat_slot(_LAT_MS_BOUNDS, v // 1_000_000)] += c

        def pct(n: int) -> float:
            if n == 0:
                return 0.0
            return max(100.0 * n / denom, 0.01)

        return LatencyBuckets(
            ns={k: pct(n) for k, n in zip(LAT_NS_KEYS, ns, strict=True)},
            us={k: pct(n) for k, n in zip(LAT_US_KEYS, us, strict=True)},
            ms={k: pct(n) for k, n in zip(LAT_MS_KEYS, ms, strict=True)},
            ns_share=100.0 * sum(ns) / denom,
        )

    @property
    def overflow_count(self) -> int:
        """I/Os in the last bucket, which also holds every value >= 2**40 ns."""
        return self.buckets[LAST_INDEX]

    # ----------------------------------------------------------------- export
    def to_hdr(self, *, significant_figures: int = 3, highest_trackable: int | None = None) -> Any:
        """This histogram as an ``hdrh.histogram.HdrHistogram`` (ns units, lowest trackable value 1).

        Each bucket's representative value is recorded with the bucket's count.  With the default 3
        significant figures HdrHistogram is finer than our buckets, so no two of our buckets collapse.
        """
        from hdrh.histogram import HdrHistogram

        high = highest_trackable or max(OVERFLOW_NS, 2 * max(self.max, 1))
        h = HdrHistogram(1, high, significant_figures)
        for i, c in self.nonzero():
            h.record_value(self.representative(i), c)
        return h

    def to_hdr_encoded(self, *, significant_figures: int = 3) -> str:
        """HdrHistogram's standard compressed encoding (V2, zlib, base64) of :meth:`to_hdr`, as ASCII text."""
        enc = self.to_hdr(significant_figures=significant_figures).encode()
        return enc.decode("ascii") if isinstance(enc, bytes | bytearray) else str(enc)
