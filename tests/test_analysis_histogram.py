"""iolab.analysis.histogram: mapping (the binding C contract), merge, stats, percentiles, HDR export."""

from __future__ import annotations

import math
import random
import statistics
from array import array

import pytest
from hdrh.histogram import HdrHistogram

from iolab.analysis.histogram import (
    FIO_DEFAULT_PERCENTILES,
    LAST_INDEX,
    NBUCKETS,
    Histogram,
    bucket_bounds,
    bucket_midpoint,
    index_of,
)
from iolab.analysis.synthetic import raw_hist


def design_index(v: int) -> int:
    """The mapping exactly as written in docs/DESIGN.md section 3."""
    s = 7
    if v < 2**s:
        return v
    k: int = min(math.floor(math.log2(v)), 39)
    if v.bit_length() - 1 != k and v < 2**40:  # guard log2 rounding for huge values
        k = v.bit_length() - 1
    idx: int = 2**s + (k - s) * 2**s + ((v >> (k - s)) - 2**s)
    return idx


def nearest_rank(sorted_vals: list[int], p: float) -> int:
    n = len(sorted_vals)
    return sorted_vals[max(1, math.ceil(p / 100.0 * n)) - 1]


# ------------------------------------------------------------------------------------------- mapping
def test_bucket_count_matches_design() -> None:
    assert NBUCKETS == 2**7 + (40 - 7) * 2**7 == 4352
    assert index_of(2**40 - 1) == LAST_INDEX
    assert index_of(2**40) == LAST_INDEX
    assert index_of(2**63) == LAST_INDEX


def test_small_values_exact() -> None:
    for v in range(256):
        assert index_of(v) == v
        assert bucket_bounds(v) == (v, v)
        assert bucket_midpoint(v) == v


@pytest.mark.parametrize("seed", range(5))
def test_index_matches_design_formula(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(5000):
        v = int(2 ** rng.uniform(0, 40))
        assert index_of(v) == design_index(v), v


def test_bounds_are_contiguous_and_tight() -> None:
    prev_high = -1
    for i in range(NBUCKETS):
        lo, hi = bucket_bounds(i)
        assert lo == prev_high + 1
        assert index_of(lo) == i and index_of(hi) == i
        width = hi - lo + 1
        if lo >= 128:
            assert width / lo <= 1 / 128
        prev_high = hi
    assert prev_high == 2**40 - 1
    with pytest.raises(IndexError):
        bucket_bounds(NBUCKETS)


# ------------------------------------------------------------------------------------------- raw / merge
def test_from_raw_bytes_roundtrip() -> None:
    vals = [5, 300, 300, 70_000, 12_345_678]
    raw = raw_hist(vals)
    assert isinstance(raw["buckets"], bytes) and len(raw["buckets"]) == 8 * NBUCKETS
    h = Histogram.from_raw(raw)
    assert h == Histogram.from_values(vals)
    assert (h.count, h.min, h.max, h.sum) == (5, 5, 12_345_678, sum(vals))
    assert h.buckets[index_of(300)] == 2


def test_from_raw_rejects_wrong_layout() -> None:
    raw = raw_hist([1, 2])
    with pytest.raises(ValueError):
        Histogram.from_raw(raw, sub_bits=6)
    bad = dict(raw, buckets=array("Q", [0] * 10).tobytes())
    with pytest.raises(ValueError):
        Histogram.from_raw(bad)


def test_empty_raw_is_empty_histogram() -> None:
    h = Histogram.from_raw({"count": 0, "min": 0, "max": 0, "sum": 0, "sumsq": 0.0, "buckets": b""})
    assert h.count == 0 and h.mean == 0.0 and h.stdev == 0.0
    assert h.percentiles([50.0]) == {50.0: 0}


def test_merge_equals_histogram_of_union() -> None:
    rng = random.Random(7)
    parts = [[rng.randint(0, 10**9) for _ in range(500)] for _ in range(3)]
    hs = [Histogram.from_values(p) for p in parts]
    union = Histogram.from_values([v for p in parts for v in p])
    for merged in (hs[0] + hs[1] + hs[2], sum(hs), Histogram.merged(hs)):
        assert isinstance(merged, Histogram)
        assert merged.buckets == union.buckets
        assert (merged.count, merged.min, merged.max, merged.sum) == (
            union.count,
            union.min,
            union.max,
            union.sum,
        )
        assert merged.sumsq == pytest.approx(union.sumsq, rel=1e-12)
    # merging does not modify the operands
    assert hs[0].count == 500
    # merging with empty keeps extremes
    e = Histogram()
    assert (e + hs[1]).min == hs[1].min and (hs[1] + e).max == hs[1].max


# ------------------------------------------------------------------------------------------- stats
def test_mean_and_stdev_are_exact_sample_stats() -> None:
    rng = random.Random(3)
    vals = [int(rng.lognormvariate(11, 0.8)) for _ in range(3000)]
    h = Histogram.from_values(vals)
    assert h.mean == pytest.approx(statistics.fmean(vals), rel=1e-12)
    # fio reports the sample standard deviation (n - 1)
    assert h.stdev == pytest.approx(statistics.stdev(vals), rel=1e-9)
    assert h.pstdev == pytest.approx(statistics.pstdev(vals), rel=1e-9)
    assert Histogram.from_values([42]).stdev == 0.0


# ------------------------------------------------------------------------------------------- percentiles
@pytest.mark.parametrize(
    "dist",
    ["lognormal", "uniform_wide", "bimodal", "small_exact", "constant"],
)
def test_percentiles_within_one_percent_of_exact(dist: str) -> None:
    rng = random.Random(hash(dist) & 0xFFFF)
    n = 20_000
    if dist == "lognormal":
        vals = [int(rng.lognormvariate(12, 1.2)) for _ in range(n)]
    elif dist == "uniform_wide":
        vals = [rng.randint(1, 10**10) for _ in range(n)]
    elif dist == "bimodal":
        vals = [
            int(rng.gauss(5_000, 300)) if rng.random() < 0.9 else int(rng.gauss(9_000_000, 1e5))
            for _ in range(n)
        ]
    elif dist == "small_exact":
        vals = [rng.randint(0, 255) for _ in range(n)]
    else:
        vals = [123_456] * n
    plist = [*FIO_DEFAULT_PERCENTILES, 0.1, 25.0, 75.0, 100.0]
    h = Histogram.from_values(vals)
    got = h.percentiles(plist)
    s = sorted(vals)
    for p in plist:
        exact = nearest_rank(s, p)
        assert abs(got[p] - exact) <= max(exact, 1) * 0.01, (p, got[p], exact)
        assert h.min <= got[p] <= h.max
        if exact < 256:
            assert got[p] == exact
    assert list(got) == plist  # request order kept


def test_percentiles_monotonic_and_p100_is_max() -> None:
    rng = random.Random(11)
    h = Histogram.from_values(int(rng.expovariate(1e-5)) for _ in range(5000))
    vals = list(h.percentiles([1, 10, 50, 90, 99, 99.9, 100]).values())
    assert vals == sorted(vals)
    assert vals[-1] == h.max


def test_representative_value_is_clamped_midpoint() -> None:
    h = Histogram.from_values([1000, 1001])
    i = index_of(1000)
    lo, hi = bucket_bounds(i)
    assert (lo, hi) == (1000, 1003)
    assert bucket_midpoint(i) == 1002
    assert h.representative(i) == 1001  # clamped to max
    assert h.bins() == {1001: 2}


# ------------------------------------------------------------------------------------------- distribution
def test_latency_buckets_fio_ranges() -> None:
    # key K counts [previous K, K): 1 ns -> "2", 3 ns -> "4", 999 ns -> "1000"; 1 us.. -> us; 2 s -> ">=2000"
    # (values chosen so that their whole histogram bucket lies in one fio range)
    vals = [1, 3, 999, 1_000, 1_999, 2_000, 990_000, 1_000_000, 1_990_000, 2_000_000_000, 5_000_000_000]
    lb = Histogram.from_values(vals).latency_buckets()
    share = 100.0 / len(vals)
    assert lb.ns["2"] == pytest.approx(share)
    assert lb.ns["4"] == pytest.approx(share)
    assert lb.ns["1000"] == pytest.approx(share)
    assert lb.us["2"] == pytest.approx(2 * share)  # 1000 and 1999 ns
    assert lb.us["4"] == pytest.approx(share)  # 2000 ns
    assert lb.us["1000"] == pytest.approx(share)  # 990000 ns
    assert lb.ms["2"] == pytest.approx(2 * share)
    assert lb.ms[">=2000"] == pytest.approx(2 * share)
    total = sum(lb.ns.values()) + sum(lb.us.values()) + sum(lb.ms.values())
    assert total == pytest.approx(100.0)
    assert list(lb.ms) == ["2", "4", "10", "20", "50", "100", "250", "500", "750", "1000", "2000", ">=2000"]


def test_latency_buckets_floor_like_fio() -> None:
    h = Histogram.from_values([50] * 100_000 + [5_000])
    lb = h.latency_buckets()
    assert lb.us["10"] == 0.01  # 0.001% shown as 0.01%, as fio does
    assert lb.ns["100"] == pytest.approx(99.999, abs=1e-3)
    assert lb.us["20"] == 0.0


# ------------------------------------------------------------------------------------------- HdrHistogram
def test_hdr_roundtrip() -> None:
    rng = random.Random(5)
    vals = [int(rng.lognormvariate(10, 1.5)) + 1 for _ in range(10_000)] + [3, 3, 200]
    h = Histogram.from_values(vals)
    enc = h.to_hdr_encoded()
    assert isinstance(enc, str) and enc.isascii()
    dec = HdrHistogram.decode(enc)
    assert dec.get_total_count() == h.count
    # every bucket's representative value came back with the bucket's count
    for value, count in h.bins().items():
        assert dec.get_count_at_value(value) == count
    for p in (1.0, 50.0, 90.0, 99.0, 99.9):
        ours = h.percentile(p)
        theirs = dec.get_value_at_percentile(p)
        assert abs(theirs - ours) <= ours * 0.001 + 1, (p, ours, theirs)
        exact = nearest_rank(sorted(vals), p)
        assert abs(theirs - exact) <= exact * 0.01 + 1
    assert dec.get_min_value() <= h.min * 1.001 + 1
    assert dec.get_max_value() >= h.max * 0.999


def test_hdr_empty_and_huge_values() -> None:
    assert HdrHistogram.decode(Histogram().to_hdr_encoded()).get_total_count() == 0
    h = Histogram.from_values([2**41, 10])
    dec = HdrHistogram.decode(h.to_hdr_encoded())
    assert dec.get_total_count() == 2
