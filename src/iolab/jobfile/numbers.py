"""fio 3.33's number reading, reproduced rule by rule.

fio reads numbers with C ``strtoll`` and then looks at the letters right after the digits for a
unit.  That gives results people do not expect (``1.5m`` is 1 byte, ``1min`` is 1 microsecond,
``4KiB`` is 4000 bytes with the default kb_base).  iolab keeps fio's results and reports each
surprise through :class:`Reading.surprise`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LLONG_MAX = (1 << 63) - 1
LLONG_MIN = -(1 << 63)
U64 = 1 << 64

C_SPACE = " \t\n\v\f\r"
_DIGITS = "0123456789"
_HEX = "0123456789abcdefABCDEF"
_SEPARATORS = ":-,/"


def c_isdigit(ch: str) -> bool:
    return ch != "" and ch in _DIGITS


def c_isalpha(ch: str) -> bool:
    return len(ch) == 1 and ("a" <= ch <= "z" or "A" <= ch <= "Z")


def to_s64(v: int) -> int:
    v %= U64
    return v - U64 if v > LLONG_MAX else v


@dataclass(frozen=True)
class StrtollResult:
    value: int
    end: int
    overflow: bool


def _scan_integer(s: str, base: int) -> tuple[bool, int, int] | None:
    """The integer C's strto* functions see: (negative, magnitude, end index), None without digits."""
    i, n = 0, len(s)
    while i < n and s[i] in C_SPACE:
        i += 1
    neg = False
    if i < n and s[i] in "+-":
        neg = s[i] == "-"
        i += 1
    if base == 16 and s[i : i + 2] in ("0x", "0X") and i + 2 < n and s[i + 2] in _HEX:
        i += 2
    digits = _HEX if base == 16 else _DIGITS
    start = i
    while i < n and s[i] in digits:
        i += 1
    if i == start:
        return None
    return neg, int(s[start:i], base), i


def c_strtoll(s: str, base: int) -> StrtollResult | None:
    """C ``strtoll``: None when no digits were found."""
    scanned = _scan_integer(s, base)
    if scanned is None:
        return None
    neg, v, i = scanned
    if neg:
        v = -v
    if v > LLONG_MAX:
        return StrtollResult(LLONG_MAX, i, True)
    if v < LLONG_MIN:
        return StrtollResult(LLONG_MIN, i, True)
    return StrtollResult(v, i, False)


def c_atoi(s: str) -> int:
    """C ``atoi`` (no error, 0 when there are no digits), wrapped to 32 bits."""
    r = c_strtoll(s, 10)
    if r is None:
        return 0
    v = r.value % (1 << 32)
    return v - (1 << 32) if v >= (1 << 31) else v


def c_scan_uint(s: str) -> int | None:
    """fio's ``check_int``: ``sscanf("%x")`` if the text contains 0x, else ``sscanf("%u")``.

    Returns the value as a signed 32-bit int (how fio stores it), or None when nothing matched.
    """
    if not s:
        return None
    base = 16 if ("0x" in s or "0X" in s) else 10
    scanned = _scan_integer(s, base)
    if scanned is None:
        return None
    neg, v, _ = scanned
    v = min(v, U64 - 1)  # strtoul saturates
    if neg:
        v = -v
    v %= 1 << 32
    return v - (1 << 32) if v >= (1 << 31) else v


_FLOAT_RE = re.compile(
    r"[ \t\n\v\f\r]*[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan)",
    re.IGNORECASE,
)


def c_scan_float(s: str) -> float | None:
    """``sscanf("%lf")``: the longest float prefix, or None (hex floats are not accepted)."""
    m = _FLOAT_RE.match(s)
    if not m:
        return None
    try:
        return float(m.group(0).strip(C_SPACE))
    except ValueError:  # pragma: no cover - the regex only matches float syntax
        return None


@dataclass(frozen=True)
class Reading:
    """One number as fio reads it."""

    value: int  # signed 64-bit result (bytes, or microseconds for times)
    percent: bool = False  # 'N%': value is the percentage N (fio encodes it as -1 - N)
    surprise: str | None = None  # how fio's reading differs from what the text suggests


# Size units people write, and what they would expect them to mean (kb_base=1024 view: binary).
_PREFIX_POW = {"k": 1, "m": 2, "g": 3, "t": 4, "p": 5}


def _size_mult(suffix: str, kb_base: int) -> tuple[int, bool]:
    """fio's unit table for the letters after the digits: (multiplier, is_percent)."""
    c = suffix.lower()
    for i, ch in enumerate(c):
        if ch in _SEPARATORS:
            c = c[:i]
            break
    for letter, power in (("p", 5), ("t", 4), ("g", 3), ("m", 2), ("k", 1)):
        if c.startswith(letter + "ib"):
            base = 1024 if kb_base == 1000 else 1000 if kb_base == 1024 else kb_base
            return base**power, False
    for letter, power in (("p", 5), ("t", 4), ("g", 3), ("m", 2), ("k", 1)):
        if c.startswith(letter):
            return kb_base**power, False
    if c.startswith("%"):
        return 1, True
    return 1, False


def _size_suffix_start(s: str) -> int | None:
    """Index where fio looks for a size unit, or None if it looks at nothing."""
    if len(s) < 2:
        return 0
    digit_seen = False
    p = 0
    while p < len(s):
        ch = s[p]
        if not c_isdigit(ch) and (ch not in "+-" or digit_seen):
            break
        digit_seen = digit_seen or c_isdigit(ch)
        p += 1
    if p >= len(s):
        return None
    ch = s[p]
    if c_isalpha(ch) or ch == "%":
        return p
    return None


_KNOWN_SIZE_SUFFIX = re.compile(r"^(?:[kmgtp](?:ib?|b)?|b|%)$", re.IGNORECASE)


def read_size(s: str, kb_base: int) -> Reading | None:
    """fio ``str_to_decimal(kilo=1)``: bytes (or a percentage).  None: fio rejects the text."""
    if not s:
        return None
    base = 16 if ("0x" in s or "0X" in s) else 10
    r = c_strtoll(s, base)
    if r is None or (r.overflow and r.value == LLONG_MAX):
        return None
    start = _size_suffix_start(s)
    mult, percent = (1, False) if start is None else _size_mult(s[start:], kb_base)
    if percent:
        return Reading(r.value, percent=True, surprise=_size_surprise(s, r, start, kb_base))
    value = to_s64(r.value * mult)
    return Reading(value, surprise=_size_surprise(s, r, start, kb_base, value))


def _size_surprise(
    s: str, r: StrtollResult, start: int | None, kb_base: int, value: int | None = None
) -> str | None:
    shown = f"{value} bytes" if value is not None else "this"
    if s[0] in C_SPACE:
        return f"it starts with a space, so fio ignores any unit: {shown}"
    if base16(s) and start is not None and s[start] in "xX" and s[r.end :]:
        return f"fio ignores '{s[r.end :]}' after a hex number: {shown}"
    rest = s[r.end :]
    if rest.startswith(".") and len(rest) > 1 and c_isdigit(rest[1]):
        return f"fio drops the fraction and the unit after it: {shown}"
    if start is None:
        if rest and rest[0] in ",:-/":
            return None
        if rest.strip(C_SPACE):
            return f"fio ignores '{rest}' after the number: {shown}"
        return None
    suffix = s[start:]
    cut = suffix
    for i, ch in enumerate(suffix):
        if ch in _SEPARATORS:
            cut = suffix[:i]
            break
    if cut.isdigit():
        # a one-character value: fio looks for a unit at the digit itself, finds none, and uses the number
        return None
    if not _KNOWN_SIZE_SUFFIX.match(cut):
        return f"'{cut}' is not a unit fio knows; it reads the text as {shown}"
    low = cut.lower()
    if low[1:3] == "ib" and kb_base == 1024:
        return f"with kb_base=1024 (fio's default) '{cut}' is a power of 1000, not 1024: {shown}"
    if low[1:] == "i" and kb_base == 1000:
        return f"fio reads '{cut}' like '{cut[0]}' (a power of 1000 with kb_base=1000): {shown}"
    return None


def base16(s: str) -> bool:
    return "0x" in s or "0X" in s


# Time units: multiplier in microseconds, for the exact (lowercased) suffix fio compares.
def _time_mult(suffix: str, is_seconds: bool) -> tuple[int, bool]:
    """(multiplier in us, known) for the text right after the digits."""
    c = suffix.lower()
    if c.startswith("us"):
        return 1, True
    if c.startswith("ms"):
        return 1000, True
    table = {"s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000}
    if c in table:
        return table[c], True
    return 1, False


_KNOWN_TIME_SUFFIX = re.compile(r"^(?:us|usec|ms|msec|s|m|h|d)$", re.IGNORECASE)


def read_time(s: str, is_seconds: bool) -> Reading | None:
    """fio ``str_to_decimal(kilo=0)``: microseconds.  None: fio rejects the text."""
    if not s:
        return None
    base = 16 if base16(s) else 10
    r = c_strtoll(s, base)
    if r is None or (r.overflow and r.value == LLONG_MAX):
        return None
    p = 0
    while p < len(s) and (c_isdigit(s[p]) or s[p] in "+-"):
        p += 1
    ch = s[p] if p < len(s) else ""
    default = 1_000_000 if is_seconds else 1
    if not c_isalpha(ch):
        mult, known = default, True
        suffix = ""
    else:
        suffix = s[p:]
        mult, known = _time_mult(suffix, is_seconds)
    value = to_s64(r.value * mult)
    return Reading(value, surprise=_time_surprise(s, r, suffix, known, default, value))


def _fmt_us(us: int) -> str:
    if us % 1_000_000 == 0:
        return f"{us // 1_000_000} s"
    if us % 1000 == 0:
        return f"{us // 1000} ms"
    return f"{us} us"


def _time_surprise(
    s: str, r: StrtollResult, suffix: str, known: bool, default: int, value: int
) -> str | None:
    shown = _fmt_us(value)
    rest = s[r.end :]
    if not known:
        hint = ""
        low = suffix.lower()
        if low.startswith("min"):
            hint = " (fio's minute unit is 'm')"
        elif low.startswith("sec"):
            hint = " (fio's second unit is 's')"
        return f"'{suffix}' is not a time unit fio knows, so it counts microseconds: {shown}{hint}"
    if rest.startswith(".") and len(rest) > 1 and c_isdigit(rest[1]):
        return f"fio drops the fraction and the unit after it: {shown}"
    if s[0] in C_SPACE:
        stripped = s.strip(C_SPACE)
        if stripped and not stripped.isdigit():
            return f"it starts with a space, so fio ignores the unit: {shown}"
    tail = rest.strip(C_SPACE)
    if not suffix and tail and tail[0] not in ",:-":
        m, ok = _time_mult(tail, default == 1_000_000)
        if not (ok and m == default):
            return f"fio ignores '{rest}' after the number: {shown}"
    return None
