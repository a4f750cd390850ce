"""Turning one ``name=value`` into typed values, the way fio 3.33 reads it.

fio splits most numeric values on ',', then ':', then '-' and feeds every part to the same
reader; which part lands where depends on the option (first part only, last part wins, or one
part per I/O direction).  A value is refused only when every part fails.  This module follows
those rules and reports, as warnings, each place where fio's reading differs from the obvious one.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from iolab.jobfile.numbers import (
    C_SPACE,
    U64,
    Reading,
    c_atoi,
    c_scan_float,
    c_scan_uint,
    c_strtoll,
    read_size,
    read_time,
)
from iolab.options import (
    ENGINES,
    NS_PER_S,
    NS_PER_US,
    SUPPORTED_ENGINES,
    FioType,
    Kind,
    Option,
)

RANDOM_MODES = frozenset({"randread", "randwrite", "randtrim", "randrw", "randtrimwrite"})
RW_CANONICAL = {"readwrite": "rw"}
BSSPLIT_MAX = 64
FIO_TMP_LEN = 127  # fio copies a value into a 128-byte buffer before reading a number


class BadValue(Exception):
    """The value cannot be accepted; the caller adds the location and option name."""

    def __init__(
        self,
        expected: str | None = None,
        *,
        message: str | None = None,
        suggestion: str | None = None,
    ) -> None:
        super().__init__(expected or message or "bad value")
        self.expected = expected
        self.message = message
        self.suggestion = suggestion


@dataclass
class Applied:
    """What one option assignment changes."""

    updates: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def strip_blank_end(s: str) -> str:
    """fio's ``strip_blank_end``: cut at the first ';' and '#', then trailing blanks/controls."""
    for ch in ";#":
        i = s.find(ch)
        if i >= 0:
            s = s[:i]
    end = len(s)
    while end > 0 and (s[end - 1] in C_SPACE or ord(s[end - 1]) < 32 or s[end - 1] == "\x7f"):
        end -= 1
    return s[:end]


def strip_blank_front(s: str) -> str:
    i = 0
    while i < len(s) and s[i] in C_SPACE:
        i += 1
    return s[i:]


def fio_split(value: str, mode: str) -> list[str]:
    """The parts fio's ``handle_option`` hands to the reader, each the remainder of the text.

    mode: 'num' (',' else ':' else '-'), 'comma' (',' only), 'colon' (':' only).
    """
    parts: list[str] = []
    ptr = value
    while True:
        nxt: str | None = None
        if mode in ("num", "comma"):
            i = ptr.find(",")
            if i >= 0:
                nxt = ptr[i + 1 :]
                if nxt == "":
                    ptr = ptr[:i]
            elif mode == "num":
                i = ptr.find(":")
                if i < 0:
                    i = ptr.find("-")
                if i >= 0:
                    nxt = ptr[i + 1 :]
        else:
            i = ptr.find(":")
            if i >= 0:
                nxt = ptr[i + 1 :]
        parts.append(ptr)
        if nxt is None:
            break
        ptr = nxt
    return parts


def _opt_token(value: str) -> str:
    """The text fio compares with the allowed choices: up to the first ',' (else ':')."""
    for sep in ",:":
        i = value.find(sep)
        if i >= 0:
            return value[:i]
    return value


def get_next_str(text: str) -> tuple[str | None, str | None]:
    """fio's file-list splitter: (next name, rest).  '\\:' keeps a colon in the name."""
    if not text:
        return None, None
    start = 0
    s = text
    pos = 0
    while True:
        p = s.find(":", pos)
        if p < 0:
            return s[start:], None
        if p == start:
            start += 1
            pos = start
            continue
        if s[p - 1] != "\\":
            return s[start:p], s[p + 1 :]
        s = s[: p - 1] + s[p:]
        pos = p


def split_names(text: str) -> list[str]:
    names: list[str] = []
    rest: str | None = text
    while rest:
        name, rest = get_next_str(rest)
        if name is None or name == "":
            break
        names.append(name)
    return names


# ---------------------------------------------------------------------------------------------
# numbers


@dataclass
class Part:
    ok: bool
    value: int = 0  # typed: bytes, ns, count, or percentage for percent parts
    percent: bool = False
    error: str | None = None
    surprise: str | None = None


def _expected_for(opt: Option) -> str:
    k = opt.kind
    if k in (Kind.SIZE, Kind.BS_PAIR):
        extra = " or a percentage" if opt.percent_key else ""
        return f"a size such as 4k or 1g{extra}"
    if k is Kind.TIME:
        unit = "seconds" if opt.unit == NS_PER_S else "microseconds"
        return f"a time such as 10, 500ms or 2m (a bare number is {unit})"
    if k is Kind.BOOL:
        return "0 or 1"
    if k is Kind.PERCENT:
        return "a whole number from 0 to 100"
    if opt.minval is not None or opt.maxval is not None:
        lo = "" if opt.minval is None else str(opt.minval)
        hi = "" if opt.maxval is None else str(opt.maxval)
        return f"a whole number in {lo}..{hi}"
    return "a whole number"


def _too_large(opt: Option, ull: int, is_uint: bool) -> bool:
    if not opt.maxval:
        return False
    if is_uint:
        s32 = ull & 0xFFFFFFFF
        s32 = s32 - (1 << 32) if s32 >= (1 << 31) else s32
        if s32 < 0:
            mx = opt.maxval & 0xFFFFFFFF
            mx = mx - (1 << 32) if mx >= (1 << 31) else mx
            return s32 > mx
        return (ull & 0xFFFFFFFF) > opt.maxval
    return ull > opt.maxval


def _too_small(opt: Option, ull: int, is_uint: bool) -> bool:
    if not opt.minval:
        return False
    if is_uint:
        s32 = ull & 0xFFFFFFFF
        s32 = s32 - (1 << 32) if s32 >= (1 << 31) else s32
        return s32 < opt.minval
    return ull < (opt.minval % U64)


def _num_part(opt: Option, ptr: str, kb_base: int) -> Part:
    """One part of a numeric value, read as fio's ``__handle_option`` does."""
    if ptr.endswith("z"):
        if opt.zone_ok:
            return Part(False, error="zone units ('z') are not supported by iolab")
        return Part(False, error="fio does not accept the zone suffix 'z' here")
    tmp = ptr[:FIO_TMP_LEN]
    comma = tmp.find(",")
    if comma >= 0:
        tmp = tmp[:comma]
    is_time = opt.kind is Kind.TIME
    if tmp.startswith("("):
        return Part(False, error="fio 3.33 as packaged here is built without arithmetic expressions")
    reading: Reading | None
    reading = read_time(tmp, opt.unit == NS_PER_S) if is_time else read_size(tmp, kb_base)
    if reading is None:
        return Part(False)
    if reading.percent:
        if not opt.percent_key:
            return Part(False, error="a percentage is not allowed for this option")
        if reading.value > 100 or reading.value < 0:
            return Part(False, error="a percentage above 100% is not valid")
        return Part(True, reading.value, percent=True, surprise=reading.surprise)
    ull = reading.value % U64
    is_uint = opt.fio_type is FioType.INT
    if _too_large(opt, ull, is_uint):
        return Part(False, error=f"the largest value allowed is {opt.maxval}")
    if _too_small(opt, ull, is_uint):
        return Part(False, error=f"the smallest value allowed is {opt.minval}")
    v = reading.value
    negative_ok = opt.minval is not None and opt.minval < 0
    if v < 0 and not negative_ok:
        return Part(False, error="negative values are not valid here")
    if is_uint and v >= (1 << 32):
        return Part(False, error="the value does not fit fio's 32-bit field")
    if is_time:
        v *= NS_PER_US  # fio reads times in microseconds
        if opt.fio_type is FioType.INT and reading.value >= (1 << 32):
            return Part(False, error="the value does not fit fio's 32-bit field")
    return Part(True, v, surprise=reading.surprise)


def _bool_part(opt: Option, ptr: str) -> Part:
    il = c_scan_uint(ptr)
    if il is None:
        return Part(False)
    if opt.fio_type is FioType.BOOL and il > 1:
        return Part(False, error="fio accepts only 0 or 1")
    surprise = None
    if il not in (0, 1):
        surprise = f"fio stores {il}, which counts as on"
    elif ptr.strip(C_SPACE) not in ("0", "1"):
        surprise = f"fio reads only the leading number: {il}"
    return Part(True, il, surprise=surprise)


def _combine_fail(opt: Option, raw: str, parts: list[Part]) -> BadValue:
    errors = [p.error for p in parts if p.error]
    return BadValue(_expected_for(opt), message=errors[0] if errors else None)


def _part_warnings(name: str, raw: str, parts: list[str], results: list[Part], used: set[int]) -> list[str]:
    out: list[str] = []
    for i, r in enumerate(results):
        if r.ok and r.surprise and i in used:
            out.append(f"{name}={raw}: {r.surprise}")
    ignored = [parts[i] for i in range(len(parts)) if i not in used]
    failed = [parts[i] for i, r in enumerate(results) if not r.ok]
    if failed and any(r.ok for r in results):
        out.append(
            f"{name}={raw}: fio silently skips the part(s) it cannot read: "
            + ", ".join(repr(p) for p in failed)
        )
    elif ignored:
        out.append(
            f"{name}={raw}: fio uses only part of this value and ignores "
            + ", ".join(repr(p) for p in ignored)
        )
    return out


# ---------------------------------------------------------------------------------------------
# per kind


def trim_key(name: str) -> str:
    """Where the trim value of a per-direction option ('bs=r,w,t') is kept: NAME_trim."""
    return f"{name}_trim"


def _numeric(opt: Option, raw: str, values: Mapping[str, Any]) -> Applied:
    kb_base = int(values.get("kb_base") or 1024)
    parts = fio_split(raw, "num")
    if opt.kind is Kind.BOOL:
        results = [_bool_part(opt, p) for p in parts]
    else:
        results = [_num_part(opt, p, kb_base) for p in parts]
    if not any(r.ok for r in results):
        raise _combine_fail(opt, raw, results)
    app = Applied()
    name = opt.name
    used: set[int] = set()
    n = len(results)
    if opt.kind in (Kind.BS_PAIR, Kind.INT_PAIR):
        cur = values.get(name)
        slots: list[Any] = list(cur)[:2] if isinstance(cur, tuple) else [None, None]
        # the trims' value (fio's third) is kept apart, under NAME_trim: the pair stays (read, write)
        slots = [*slots, values.get(trim_key(name), slots[1] if isinstance(cur, tuple) else None)]
        for i, r in enumerate(results):
            more = i < n - 1
            if not r.ok:
                continue
            if i == 0:
                slots[0] = r.value
                used.add(i)
            if i == 1:
                slots[1] = r.value
                used.add(i)
            if i == 2:
                slots[2] = r.value
                used.add(i)
            if not more:
                if i < 1:
                    slots[1] = r.value
                if i < 2:
                    slots[2] = r.value
                used.add(i)
        app.updates[name] = (slots[0], slots[1])
        app.updates[trim_key(name)] = slots[2]
        if name == "bs" and n > 1 and any(p.find("-") >= 0 for p in parts[:1]) and "," not in raw:
            app.warnings.append(
                f"{name}={raw}: fio takes this as read={_h(slots[0])},"
                f" write={_h(slots[1])}, not a range (use bsrange for a range)"
            )
    elif opt.range_key:
        # fio: the first part is the low end, the last part (when readable) the high end
        for i, r in enumerate(results):
            if not r.ok:
                continue
            if i == 0:
                app.updates[name] = r.value
                used.add(i)
            if i == n - 1:
                app.updates[opt.range_key] = r.value if n > 1 else None
                used.add(i)
    elif opt.last_part_wins:
        last = [(i, r) for i, r in enumerate(results) if r.ok][-1]
        used.add(last[0])
        _store_scalar(opt, last[1], app)
        if n > 1:
            app.warnings.append(
                f"{name}={raw}: fio applies every ',', ':' or '-' separated part in"
                f" turn, so the last one counts"
            )
    else:
        if results[0].ok:
            used.add(0)
            _store_scalar(opt, results[0], app)
    app.warnings[:0] = _part_warnings(name, raw, parts, results, used)
    return app


def _h(v: Any) -> str:
    return "unset" if v is None else str(v)


def _store_scalar(opt: Option, r: Part, app: Applied) -> None:
    name = opt.name
    if opt.kind is Kind.BOOL:
        v = bool(r.value)
        app.updates[name] = v
        if opt.inverse and opt.inverse_kind == "not":
            app.updates[opt.inverse] = not v
        return
    if r.percent:
        assert opt.percent_key is not None
        app.updates[name] = None
        app.updates[opt.percent_key] = r.value / 100.0
        return
    app.updates[name] = r.value
    if opt.percent_key:
        app.updates[opt.percent_key] = None
    if opt.inverse and opt.inverse_kind == "complement":
        app.updates[opt.inverse] = (100 - r.value) % (1 << 32)


def _choice_error(opt: Option, raw: str, choices: tuple[str, ...]) -> BadValue:
    token = _opt_token(raw)
    hint = difflib.get_close_matches(token.strip(C_SPACE), list(choices), n=1, cutoff=0.5)
    msg = None
    if token.strip(C_SPACE) in choices:
        msg = "fio does not allow spaces around the value"
        hint = []
    return BadValue("one of " + ", ".join(choices), message=msg, suggestion=hint[0] if hint else None)


def _postfix(raw: str) -> str | None:
    """fio's ``get_opt_postfix``: the text after the first ':', blanks stripped."""
    i = raw.find(":")
    if i < 0:
        return None
    return strip_blank_end(strip_blank_front(raw[i + 1 :]))


def _enum(opt: Option, raw: str | None, values: Mapping[str, Any]) -> Applied:
    if raw is None:
        raise BadValue("one of " + ", ".join(opt.choices), message="a value is required")
    token = _opt_token(raw)
    if token not in opt.choices:
        raise _choice_error(opt, raw, opt.choices)
    app = Applied()
    typed: Any = dict(opt.choice_values).get(token, token) if opt.choice_values else token
    if opt.kind is Kind.RW:
        return _rw(opt, raw, token, values)
    app.updates[opt.name] = typed
    post = _postfix(raw)
    rest = raw[len(token) :]
    if opt.suffix_key:
        app.updates[opt.suffix_key] = post
    elif rest:
        app.warnings.append(f"{opt.name}={raw}: fio ignores '{rest}' after '{token}'")
    return app


def _rw(opt: Option, raw: str, token: str, values: Mapping[str, Any]) -> Applied:
    app = Applied()
    mode = RW_CANONICAL.get(token, token)
    app.updates[opt.name] = mode
    post = _postfix(raw)
    modifier: int | None = None
    if post is not None:
        if mode in RANDOM_MODES:
            modifier = c_atoi(post)
            if modifier == 0:
                app.warnings.append(
                    f"{opt.name}={raw}: fio reads '{post}' as 0, which means never jumping to a"
                    " new random offset: the I/O is sequential"
                )
            elif modifier < 0:
                app.warnings.append(
                    f"{opt.name}={raw}: fio stores {modifier} as a huge unsigned count: the I/O is"
                    " effectively sequential"
                )
            elif post.strip(C_SPACE) != str(modifier):
                app.warnings.append(f"{opt.name}={raw}: fio reads only the leading number: {modifier}")
        else:
            kb_base = int(values.get("kb_base") or 1024)
            r = read_size(post, kb_base) if post else None
            if r is None or r.percent:
                raise BadValue(
                    "a byte count after ':' for a sequential pattern (e.g. read:4k)",
                    message=None,
                )
            modifier = r.value
            if r.surprise:
                app.warnings.append(f"{opt.name}={raw}: {r.surprise}")
    app.updates[opt.suffix_key or "rw_modifier"] = modifier
    rest = raw[len(token) :]
    if rest and not rest.startswith(":"):
        app.warnings.append(f"{opt.name}={raw}: fio ignores '{rest}' after '{token}'")
    return app


def _enum_list(opt: Option, raw: str | None) -> Applied:
    if raw is None:
        raise BadValue("one or more of " + ", ".join(opt.choices), message="a value is required")
    parts = fio_split(raw, "comma")
    ok = [_opt_token(p) in opt.choices for p in parts]
    if not any(ok):
        raise _choice_error(opt, raw, opt.choices)
    app = Applied({opt.name: raw})
    if not all(ok):
        app.warnings.append(f"{opt.name}={raw}: fio skips the parts it does not know")
    return app


def _float_list(opt: Option, raw: str | None) -> Applied:
    if raw is None:
        raise BadValue("numbers separated by ':'", message="a value is required")
    parts = fio_split(raw, "colon")
    vals: list[float] = []
    errors: list[str] = []
    first_ok = False
    any_ok = False
    for i, p in enumerate(parts):
        if opt.max_items is not None and i >= opt.max_items:
            errors.append(f"at most {opt.max_items} values")
            continue
        f = c_scan_float(p)
        if f is None:
            errors.append(f"'{p}' is not a number")
            continue
        if (opt.maxfloat is not None and f > opt.maxfloat) or (opt.minfloat is not None and f < opt.minfloat):
            errors.append(f"{f:g} is outside {opt.minfloat:g}..{opt.maxfloat:g}")
            continue
        vals.append(f)
        any_ok = True
        if i == 0:
            first_ok = True
    if not any_ok:
        raise BadValue("numbers separated by ':'", message=errors[0] if errors else None)
    app = Applied({opt.name: tuple(vals)})
    if errors:
        app.warnings.append(f"{opt.name}={raw}: fio skips what it cannot use ({'; '.join(errors)})")
    del first_ok
    return app


def _range(opt: Option, raw: str | None, values: Mapping[str, Any]) -> Applied:
    expected = "size ranges such as 1k-4k, optionally ',' then a range for writes"
    if raw is None:
        raise BadValue(expected, message="a value is required")
    kb_base = int(values.get("kb_base") or 1024)
    parts = fio_split(raw, "comma")
    results: list[tuple[int, int] | None] = []
    surprises: list[str] = []
    for ptr in parts:
        tmp = ptr[:FIO_TMP_LEN]
        c = tmp.find(",")
        if c >= 0:
            tmp = tmp[:c]
        sep = tmp.find("-")
        if sep < 0:
            sep = tmp.find(":")
        if sep < 0:
            results.append(None)
            continue
        lo_r = read_size(tmp[:sep], kb_base)
        hi_r = read_size(tmp[sep + 1 :], kb_base)
        if lo_r is None or hi_r is None or lo_r.percent or hi_r.percent:
            results.append(None)
            continue
        lo, hi = lo_r.value, hi_r.value
        if lo < 0 or hi < 0:
            results.append(None)
            continue
        surprises += [s.surprise for s in (lo_r, hi_r) if s.surprise]
        results.append((min(lo, hi), max(lo, hi)))
    if not any(r is not None for r in results):
        raise BadValue(expected)
    cur = values.get(opt.name)
    slots: list[tuple[int, int] | None] = list(cur) if isinstance(cur, tuple) else [None, None]
    slots = ([*slots, None, None, None])[:3]
    n = len(results)
    for i, r in enumerate(results):
        if r is None:
            continue
        if i < 3:
            slots[i] = r
        if i == n - 1:
            for j in range(i + 1, 3):
                slots[j] = r
    app = Applied({opt.name: (slots[0], slots[1])})
    app.warnings += [f"{opt.name}={raw}: {s}" for s in surprises]
    if any(r is None for r in results):
        app.warnings.append(f"{opt.name}={raw}: fio silently skips the part(s) it cannot read")
    return app


def _bssplit(opt: Option, raw: str | None, values: Mapping[str, Any]) -> Applied:
    expected = "entries like 4k/10:64k/90, optionally ',' then the write mix"
    if raw is None:
        raise BadValue(expected, message="a value is required")
    kb_base = int(values.get("kb_base") or 1024)
    text = strip_blank_end(strip_blank_front(raw))
    app = Applied()
    comma = text.find(",")
    if comma >= 0:
        read_s, rest = text[:comma], text[comma + 1 :]
        comma2 = rest.find(",")
        write_s = rest[:comma2] if comma2 >= 0 else rest
        trim_s = rest[comma2 + 1 :] if comma2 >= 0 else rest
    else:
        read_s = write_s = trim_s = text
    # fio parses trim first, then write, then read; any failure fails the whole option
    out: list[list[tuple[int, int]]] = []
    for label, s in (("trim", trim_s), ("write", write_s), ("read", read_s)):
        out.append(_bssplit_dir(opt.name, raw, label, s, kb_base, app))
    _trim, write_l, read_l = out
    if not read_l and not write_l:
        app.warnings.append(f"{opt.name}={raw}: no block sizes given; fio ignores the option")
        app.updates[opt.name] = values.get(opt.name)
        return app
    app.updates[opt.name] = (read_l, write_l)
    return app


def _bssplit_dir(
    name: str, raw: str, label: str, s: str, kb_base: int, app: Applied
) -> list[tuple[int, int]]:
    entries: list[tuple[int, int | None]] = []
    zero_seen = False
    clipped = False
    for item in s.split(":"):
        if not item:
            break
        slash = item.find("/")
        perc: int | None
        if slash >= 0:
            bs_text, perc_text = item[:slash], item[slash + 1 :]
            p = c_atoi(perc_text)
            if p > 100 or p < 0:  # fio stores atoi() in an unsigned type: negatives are huge
                clipped = True
                p = 100
            if p == 0:
                zero_seen = zero_seen or perc_text.strip(C_SPACE) not in ("",)
                perc = None
            else:
                perc = p
        else:
            bs_text, perc = item, None
        r = read_size(bs_text, kb_base)
        if r is None or r.percent or r.value <= 0:
            raise BadValue(
                "entries like 4k/10:64k/90, optionally ',' then the write mix",
                message=f"cannot read the block size '{bs_text}'",
            )
        if r.surprise:
            app.warnings.append(f"{name}={raw}: {r.surprise}")
        entries.append((r.value, perc))
        if len(entries) == BSSPLIT_MAX:
            app.warnings.append(f"{name}={raw}: fio keeps only the first {BSSPLIT_MAX} entries")
            break
    if not entries:
        return []
    given = sum(p for _, p in entries if p is not None)
    missing = sum(1 for _, p in entries if p is None)
    if given > 100 and missing > 1:
        raise BadValue(
            "percentages that add up to at most 100", message=f"the {label} percentages add up to {given}"
        )
    if zero_seen and label != "trim":
        app.warnings.append(
            f"{name}={raw}: fio treats a '/0' percentage as missing (it gets a share of what is left)"
        )
    if clipped and label != "trim":
        app.warnings.append(f"{name}={raw}: fio cuts percentages above 100 down to 100")
    filled: list[tuple[int, int]] = []
    if missing:
        share = 0 if (missing == 1 and len(entries) == 1) else (100 - given) // missing
        if missing == 1 and len(entries) == 1:
            share = 100
        elif given > 100:
            share = (100 - given) % (1 << 32) // missing
        filled = [(bs, share if p is None else p) for bs, p in entries]
    else:
        filled = [(bs, int(p)) for bs, p in entries if p is not None]
    # fio sorts by percentage (stable), then picks entries by cumulative percentage; whatever
    # is left above the total goes to the last entry.
    filled.sort(key=lambda e: e[1])
    total = 0
    effective: list[tuple[int, int]] = []
    for bs, p in filled:
        eff = max(0, min(p, 100 - total))
        total += eff
        effective.append((bs, eff))
    if total < 100:
        last = max((i for i, (_, p) in enumerate(filled) if p), default=len(effective) - 1)
        bs_last, eff_last = effective[last]
        effective[last] = (bs_last, eff_last + 100 - total)
    if label != "trim" and ((missing == 0 and given != 100) or given > 100):
        app.warnings.append(
            f"{name}={raw}: the {label} percentages add up to {given}, not 100; fio gives any"
            " shortfall to the entry with the largest share and cuts whatever goes past 100"
        )
    return effective


def _filenames(opt: Option, raw: str | None) -> Applied:
    if raw is None or raw == "":
        raise BadValue("one or more names separated by ':'", message="a value is required")
    names = split_names(strip_blank_end(strip_blank_front(raw)))
    app = Applied({opt.name: names})
    if not names:
        app.warnings.append(f"{opt.name}={raw}: no names in the value; fio ignores it")
    return app


def _ioengine(opt: Option, raw: str | None, lenient: bool = False) -> Applied:
    supported = ", ".join(
        f"{e} (runs as {ENGINES[e].runs_as})" if ENGINES[e].runs_as != e else e for e in SUPPORTED_ENGINES
    )
    if raw is None or raw == "":
        raise BadValue("an ioengine name", message="a value is required")
    name = raw
    if lenient and (ENGINES.get(name) is None or ENGINES[name].runs_as is None):
        return Applied({opt.name: name}, [f"ioengine={name}: not supported by iolab"])
    if name.startswith("external") or "/" in name:
        raise BadValue(message=f"external ioengines are not supported; iolab supports {supported}")
    info = ENGINES.get(name)
    if info is None:
        hint = difflib.get_close_matches(name.strip(C_SPACE), list(ENGINES), n=1, cutoff=0.5)
        raise BadValue(f"a known ioengine ({supported})", suggestion=hint[0] if hint else None)
    if info.runs_as is None:
        raise BadValue(message=f"ioengine '{name}' is not supported yet; iolab supports {supported}")
    app = Applied({opt.name: info.runs_as})
    if info.runs_as != name:
        app.warnings.append(f"ioengine={name}: runs as iolab's {info.runs_as} engine ({info.note})")
    return app


def apply_value(
    opt: Option, raw: str | None, values: Mapping[str, Any], *, any_engine: bool = False
) -> Applied:
    """Typed updates for ``opt=raw`` (raw None: written without '=').  Raises BadValue.

    ``any_engine``: accept every ioengine name (for showcmd, which runs nothing).
    """
    ft = opt.fio_type
    if ft is FioType.DEPRECATED:
        raise BadValue(message="fio removed this option and refuses it")
    if ft is FioType.SOFT_DEPRECATED:
        return Applied(warnings=[f"{opt.name}: deprecated in fio, which accepts and ignores it"])
    if raw is None and not opt.bare and opt.kind is not Kind.ENUM and opt.kind is not Kind.RW:
        raise BadValue(
            _expected_for(opt) if opt.kind not in (Kind.STR, Kind.FILENAMES) else "a value",
            message="the option needs a value (name=value)",
        )
    if opt.name == "ioengine":
        return _ioengine(opt, raw, any_engine)
    k = opt.kind
    if k is Kind.FILENAMES:
        return _filenames(opt, raw)
    if k in (Kind.ENUM, Kind.RW):
        return _enum(opt, raw, values)
    if k is Kind.ENUM_LIST:
        return _enum_list(opt, raw)
    if k is Kind.FLOAT_LIST:
        return _float_list(opt, raw)
    if k is Kind.RANGE:
        return _range(opt, raw, values)
    if k is Kind.BSSPLIT:
        return _bssplit(opt, raw, values)
    if k is Kind.STR:
        if raw is None:
            return Applied({opt.name: ""})
        if raw == "":
            raise BadValue("a non-empty value", message=None)
        return Applied({opt.name: raw})
    if raw is None:  # bare flag (fio STR_SET)
        app = Applied()
        _store_scalar(opt, Part(True, 1), app)
        return app
    return _numeric(opt, raw, values)


def check_strtoll_prefix(text: str) -> bool:
    """True when fio's integer reader finds digits at the start of the text."""
    return c_strtoll(text, 10) is not None
