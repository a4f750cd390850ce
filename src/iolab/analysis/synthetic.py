"""Synthetic results of the C core (:class:`~iolab.analysis.core_result.CoreResult`), for tests and reports.

``synthetic_result()`` simulates a psync job and builds the typed result; ``synthetic_raw()`` gives its
mapping form (what ``_core.Job.result()`` returns), which tests may edit before analysis reads it. Per
direction the job draws log-normal completion latencies, builds the histogram dicts exactly as the C core
would (``buckets`` as native uint64 bytes), and spreads the I/Os over ``sample_interval_ns`` samples.
Deterministic for a given ``seed``.
"""

from __future__ import annotations

import math
import random
from array import array
from collections.abc import Sequence
from typing import Any

from iolab.analysis.core_result import CoreResult, RawResult
from iolab.analysis.histogram import NBUCKETS, SUB_BITS, index_of


def raw_hist(values: Sequence[int]) -> dict[str, Any]:
    """The C core's histogram dict for these values (ns)."""
    buckets = array("Q", bytes(8 * NBUCKETS))
    s = 0
    sq = 0.0
    for v in values:
        buckets[index_of(v)] += 1
        s += v
        sq += float(v) * float(v)
    return {
        "count": len(values),
        "min": min(values) if values else 0,
        "max": max(values) if values else 0,
        "sum": s,
        "sumsq": sq,
        "buckets": buckets.tobytes(),
    }


def _lognormal_ns(rng: random.Random, n: int, median_ns: float, sigma: float) -> list[int]:
    mu = math.log(median_ns)
    return [max(1, int(rng.lognormvariate(mu, sigma))) for _ in range(n)]


def synthetic_raw(**kw: Any) -> RawResult:
    """The mapping form of :func:`synthetic_result` (the same arguments)."""
    return synthetic_result(**kw).to_core()


def synthetic_result(
    *,
    rw: str = "randread",
    read_ios: int | None = None,
    write_ios: int | None = None,
    bs: int = 4096,
    runtime_ns: int = 2_000_000_000,
    sample_interval_ns: int = 500_000_000,
    read_median_ns: float = 100_000.0,
    write_median_ns: float = 8_000.0,
    sigma: float = 0.5,
    rwmixread: int = 50,
    sync_ios: int = 0,
    seed: int = 1,
    error: int = 0,
    error_msg: str = "",
    stopped: bool = False,
) -> CoreResult:
    """A plausible result of a psync job; ``rw``: read, randread, write, randwrite, rw, randrw."""
    rng = random.Random(seed)
    reads = rw in ("read", "randread", "rw", "readwrite", "randrw")
    writes = rw in ("write", "randwrite", "rw", "readwrite", "randrw")
    mixed = reads and writes
    total_default = 2000
    if read_ios is None:
        read_ios = (total_default * rwmixread // 100 if mixed else total_default) if reads else 0
    if write_ios is None:
        write_ios = (
            (total_default - total_default * rwmixread // 100 if mixed else total_default) if writes else 0
        )

    ddir: dict[str, Any] = {}
    for name, n, median in (("read", read_ios, read_median_ns), ("write", write_ios, write_median_ns)):
        clat = _lognormal_ns(rng, n, median, sigma)
        lat = [c + rng.randint(100, 300) for c in clat]
        ddir[name] = {
            "ios": n,
            "bytes": n * bs,
            "short_ios": 0,
            "dropped": 0,
            "clat": raw_hist(clat),
            "lat": raw_hist(lat),
            "slat": raw_hist([]),
        }
    sync_lat = _lognormal_ns(rng, sync_ios, 300_000.0, sigma)
    ddir["sync"] = {
        "ios": sync_ios,
        "bytes": 0,
        "short_ios": 0,
        "dropped": 0,
        "clat": raw_hist([]),
        "lat": raw_hist(sync_lat),
        "slat": raw_hist([]),
    }

    # spread the I/Os evenly over the sample intervals (the last one may be partial)
    samples: list[tuple[int, int, int, int, int]] = []
    t = 0
    r_left, w_left = read_ios, write_ios
    while t < runtime_ns:
        end = min(t + sample_interval_ns, runtime_ns)
        frac = (end - t) / runtime_ns
        r = min(r_left, round(read_ios * frac)) if end < runtime_ns else r_left
        w = min(w_left, round(write_ios * frac)) if end < runtime_ns else w_left
        r_left -= r
        w_left -= w
        samples.append((end, r, r * bs, w, w * bs))
        t = end

    busy = runtime_ns // 2
    return CoreResult.from_core(
        {
            "runtime_ns": runtime_ns,
            "ramp_done": True,
            "stopped": stopped,
            "error": error,
            "error_msg": error_msg,
            "error_offset": 0,
            "error_ddir": "read" if error and reads else ("write" if error else ""),
            "usr_ns": busy // 10,
            "sys_ns": busy,
            "ctx": read_ios + write_ios + sync_ios,
            "majf": 0,
            "minf": 12,
            "hist_sub_bits": SUB_BITS,
            "hist_buckets": NBUCKETS,
            "ddir": ddir,
            "samples": samples,
        }
    )
