"""Where a job's I/O goes: random distributions (random, zipf, pareto, normal, zoned, zoned_abs), the zone
table, file service and the offset pattern, as the packed fields of the C config (csrc/offsets.h, dist.c)."""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from typing import Any

from iolab.jobfile import JobDef
from iolab.jobfile.numbers import read_size
from iolab.plan.files import FilePlan, PlanError
from iolab.plan.files import where as _where

RAND_DISTS = {"random": 0, "zipf": 1, "pareto": 2, "normal": 3, "zoned": 4, "zoned_abs": 5}
FILE_SERVICE = {
    "roundrobin": 0,
    "sequential": 1,
    "random": 2,
    "zipf": 3,
    "pareto": 4,
    "normal": 5,
    "gauss": 5,
}
#: fio's default zipf theta, pareto power and normal deviation when the option gives none
DIST_DEFAULTS = {"zipf": 1.1, "pareto": 0.2, "normal": 0.0}


def _double_bits(x: float) -> int:
    return int.from_bytes(struct.pack("<d", x), "little")


def _dist_value(jd: JobDef, option: str, kind: str, arg: str | None) -> tuple[float, float]:
    """(parameter, center or -1) of a zipf/pareto/normal distribution, checked as fio checks them."""
    val, center = DIST_DEFAULTS[kind], -1.0
    if arg:
        try:
            nums = [float(p) for p in arg.split(":")]
        except ValueError:
            raise PlanError(
                f"{_where(jd, option)}: {option}: '{arg}' is not a number (or number:center)"
            ) from None
        val = nums[0]
        if len(nums) > 1:
            center = nums[1]
            if not 0.0 <= center <= 1.0:
                raise PlanError(f"{_where(jd, option)}: {option}: center {center} is out of range (0..1)")
    if kind == "zipf" and val == 1.0:
        raise PlanError(f"{_where(jd, option)}: {option}: zipf theta must not be 1.0 (as in fio)")
    if kind == "pareto" and not 0.0 < val < 1.0:
        raise PlanError(
            f"{_where(jd, option)}: {option}: the pareto power must be between 0 and 1 (as in fio)"
        )
    if kind == "normal" and not 0.0 <= val < 100.0:
        raise PlanError(f"{_where(jd, option)}: {option}: the normal deviation must be in 0..100 (percent)")
    return val, center


def _zone_table(jd: JobDef, kind: str, arg: str | None, region: int) -> tuple[list[int], list[int]]:
    """The zone hit by each draw 1..100: (start, end) in percent of the region (zoned) or in bytes
    (zoned_abs); one table serves both directions."""
    opt = "random_distribution"
    if not arg:
        raise PlanError(f"{_where(jd, opt)}: {opt}={kind} needs zones, e.g. {kind}:60/10:40/90")
    if "," in arg:
        raise PlanError(f"{_where(jd, opt)}: {opt}: per-direction zone sets (',') are not supported by iolab")
    kb_base = int(jd.values.get("kb_base") or 1024)
    zones: list[tuple[int, int]] = []
    missing = -1  # fio: a zoned size left out ('20/' or '20') shares what the others leave of 100%
    for part in arg.split(":"):
        if not part:
            break  # fio stops at an empty part
        access, sep, size = part.partition("/")
        try:
            perc = int(access)
        except ValueError:
            raise PlanError(f"{_where(jd, opt)}: {opt}: '{part}' is not access%/size") from None
        if kind == "zoned":
            digits = re.match(r"\d*", size).group(0)  # type: ignore[union-attr]  # fio reads it with atoi
            amount = min(int(digits), 100) if sep and digits else 0
            amount = amount or missing
        elif not sep:
            amount = 0
        else:
            r = read_size(size, kb_base)
            if r is None or r.percent:
                raise PlanError(f"{_where(jd, opt)}: {opt}: '{size}' is not a size")
            amount = int(r.value)
        zones.append((perc, amount))
    if kind == "zoned":
        given = sum(a for _, a in zones if a != missing)
        gaps = sum(1 for _, a in zones if a == missing)
        if given > 100:
            raise PlanError(f"{_where(jd, opt)}: {opt}: the zone sizes add up to {given}%, more than 100%")
        if gaps:
            share = 100 if gaps == 1 and len(zones) == 1 else (100 - given) // gaps
            zones = [(p, share if a == missing else a) for p, a in zones]
    total = sum(p for p, _ in zones)
    if total != 100:
        raise PlanError(
            f"{_where(jd, opt)}: {opt}: access percentages add up to {total}, not 100 (fio refuses this)"
        )
    lo: list[int] = []
    hi: list[int] = []
    start = 0
    for perc, amount in zones:
        lo += [start] * perc
        hi += [start + amount] * perc
        start += amount
    if kind == "zoned" and start > 100:
        raise PlanError(f"{_where(jd, opt)}: {opt}: the zone sizes add up to {start}%, more than 100%")
    if kind == "zoned_abs" and start > region:
        raise PlanError(
            f"{_where(jd, opt)}: {opt}: the zones add up to {start} bytes, more than the {region}-byte "
            "region (fio stops with 'zoned_abs sizes exceed file size')"
        )
    return lo * 2, hi * 2


def pattern_config(jd: JobDef, files: Sequence[FilePlan], random: bool) -> dict[str, Any]:
    """random_distribution, percentage_random, file_service_type and strided zones."""
    v = jd.values
    kind = str(v.get("random_distribution") or "random")
    arg = v.get("random_distribution_arg")
    val, center = 0.0, -1.0
    lo = [0] * 200
    hi = [0] * 200
    if kind in DIST_DEFAULTS:
        val, center = _dist_value(jd, "random_distribution", kind, arg)
    elif kind in ("zoned", "zoned_abs"):
        lo, hi = _zone_table(jd, kind, arg, min(f.region_size for f in files))
    perc = v.get("percentage_random") or (100, 100)
    fst = str(v.get("file_service_type") or "roundrobin")
    fst_arg = v.get("file_service_type_arg")
    fst_nr, fst_val = 1, 0.0
    if fst in ("roundrobin", "sequential", "random"):
        if fst_arg:
            try:
                fst_nr = max(int(fst_arg), 1)
            except ValueError:
                raise PlanError(
                    f"{_where(jd, 'file_service_type')}: file_service_type={fst}:{fst_arg}: "
                    "expected a number of I/Os"
                ) from None
    else:
        fst_val, fst_center = _dist_value(
            jd, "file_service_type", "normal" if fst == "gauss" else fst, fst_arg
        )
        if kind not in DIST_DEFAULTS:
            center = fst_center  # fio keeps one center for both
    mode = str(v.get("zonemode") or "none")
    zone_size = int(v.get("zonesize") or 0)
    zone_range = int(v.get("zonerange") or 0)
    if mode == "zbd":
        raise PlanError(f"{_where(jd, 'zonemode')}: zonemode=zbd is not supported by iolab")
    if mode == "none" and zone_size:
        raise PlanError(
            f"{_where(jd, 'zonesize')}: zonemode=none and zonesize are not compatible (as in fio)"
        )
    if mode == "strided" and not zone_size:
        raise PlanError(f"{_where(jd, 'zonemode')}: zonemode=strided needs zonesize (as in fio)")
    strided = mode == "strided" and len(files) == 1  # fio: strided zones only work with one file
    return {
        "perc_rand": [int(perc[0]), int(perc[1])],
        "rand_dist": RAND_DISTS[kind] if random else 0,
        "rand_dist_val": _double_bits(val),
        "rand_center": _double_bits(center),
        "zone_lo": lo,
        "zone_hi": hi,
        "fst_mode": FILE_SERVICE[fst],
        "fst_nr": fst_nr,
        "fst_val": _double_bits(fst_val),
        "zonemode_strided": int(strided),
        "zone_size": zone_size if strided else 0,
        "zone_range": (zone_range or zone_size) if strided else 0,
        "zone_skip": int(v.get("zoneskip") or 0) if strided else 0,
    }
