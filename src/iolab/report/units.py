"""Number formatting shared by the human and terse formats, reproducing fio's output conventions."""

from __future__ import annotations

from collections.abc import Sequence

_PREFIX_2 = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")
_PREFIX_10 = ("", "k", "M", "G", "T", "P", "E")


def num2str(num: int | float, maxlen: int, *, pow2: bool, unit: str = "") -> str:
    """fio-style compact number: divide by 1024/1000 until at most ``maxlen`` integer digits remain, then use
    the room left (``maxlen - digits - 1``) for decimals of the last division's remainder, rounded to nearest.

    Examples (maxlen 4): 27871632 B/s -> ``26.6MiB/s`` (pow2) / ``27.9MB/s``; 8253317 -> ``8060KiB/s``;
    1048576000 -> ``1000MiB/s`` / ``1049MB/s``; maxlen 6: 2004504 -> ``2004.5k``.
    """
    n = max(int(num), 0)
    base = 1024 if pow2 else 1000
    prefixes = _PREFIX_2 if pow2 else _PREFIX_10
    idx = 0
    rem = -1
    while len(str(n)) > maxlen and idx < len(prefixes) - 1:
        rem = n % base
        n //= base
        idx += 1
    if rem < 0:
        return f"{n}{unit}"
    decimals = maxlen - len(str(n)) - 1
    if decimals <= 0:
        if rem >= base // 2:
            n += 1
        return f"{n}{prefixes[idx]}{unit}"
    frac = f"{rem / base:.{decimals}f}"  # C-like rounding of the remainder
    if frac[0] == "1":
        n += 1
    return f"{n}.{frac[2:]}{prefixes[idx]}{unit}"


def lat_unit(mn: int, mx: int, dev: float) -> tuple[str, int]:
    """Unit for a latency stats line, fio's rule: msec if min > 2 ms, max > 99.999999 ms and stdev > 1 ms;
    else usec if min > 2 us, max > 99.999 us and stdev > 1 us; else nsec.  Returns (unit name, divisor)."""
    if mn > 2_000_000 and mx > 99_999_999 and dev > 1_000_000.0:
        return "msec", 1_000_000
    if mn > 2000 and mx > 99_999 and dev > 1000.0:
        return "usec", 1000
    return "nsec", 1


def percentile_unit(values: Sequence[int]) -> tuple[str, int]:
    """Unit for a percentile block, fio's rule on the smallest and largest reported values."""
    if not values:
        return "nsec", 1
    lo, hi = min(values), max(values)
    if lo > 2_000_000 and hi > 99_999_000:
        return "msec", 1_000_000
    if lo > 2000 and hi > 99_999:
        return "usec", 1000
    return "nsec", 1


def percentile_precision(plist: Sequence[float]) -> int:
    """Decimals needed to print every requested percentile exactly (fio prints them all alike)."""
    prec = 0
    for p in plist:
        s = f"{float(p):.10f}".rstrip("0")
        frac = s.split(".", 1)[1] if "." in s else ""
        prec = max(prec, len(frac))
    return prec


def scale_up(value: int, divisor: int) -> int:
    """fio rounds percentile values *up* when it shows them in a coarser unit."""
    while divisor > 1:
        value = (value + 999) // 1000
        divisor //= 1000
    return value


def fmt_percentile_block(items: Sequence[tuple[float, int]], divisor: int, prec: int) -> list[str]:
    """fio's ``     |  1.00th=[   60],  5.00th=[   70], ...`` lines (values rounded up to the unit)."""
    top = max((v for _, v in items), default=0) // divisor
    width = max(5, len(str(top)))
    per_line = max(1, (80 - 7) // (prec + 10 + width))
    entries = [f"{p:{prec + 3}.{prec}f}th=[{scale_up(v, divisor):{width}d}]" for p, v in items]
    lines: list[str] = []
    for i in range(0, len(entries), per_line):
        chunk = entries[i : i + per_line]
        last = i + per_line >= len(entries)
        lines.append("     | " + ", ".join(chunk) + ("" if last else ","))
    return lines
