"""verify= and its options, as fio 3.33 reads them, turned into the C core's verify config fields.

What iolab implements is checked here, with a clear error for the rest (never accepted and ignored):
the checksums csrc/checksum.h has (crc32c, crc32c-intel, md5, sha1, sha256, sha512, xxhash), meta and
pattern; do_verify, verify_only, verify_fatal, verify_interval, verify_offset, verify_pattern (fio's
syntax: 0x hex, decimal numbers, "strings", %o) and verify_backlog(_batch).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "VERIFY_TYPES",
    "VerifyError",
    "parse_verify_pattern",
    "verify_config",
    "verify_notes",
]

#: fio's verify type numbers (enum in fio's verify.h) of the verify= values iolab implements
VERIFY_TYPES: dict[str, int] = {
    "meta": 1,
    "md5": 2,
    "crc32c": 5,
    "crc32c-intel": 6,
    "sha256": 9,
    "sha512": 10,
    "xxhash": 15,
    "sha1": 16,
    "pattern": 18,  # fio's VERIFY_PATTERN_NO_HDR: verify=pattern writes no header
}
#: verify_pattern without verify=: fio's VERIFY_PATTERN (a header, then the pattern)
PATTERN_WITH_HEADER = 17
#: bytes of fio's struct vhdr_<type> after the 40-byte header
_VHDR_LEN = {"md5": 16, "crc32c": 4, "crc32c-intel": 4, "xxhash": 4, "sha1": 20, "sha256": 64, "sha512": 128}
PATTERN_MAX = 512  # fio's MAX_PATTERN_SIZE
FMT_MAX = 4

# C's IOL_VF_* bits (csrc/verify.h)
VF_DO_VERIFY = 1
VF_ONLY = 2
VF_FATAL = 4
VF_CHECK_NUMBERIO = 8
VF_DUMP = 16

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


class VerifyError(ValueError):
    """An option value iolab refuses; the message names the option."""


def _hex_token(text: str, i: int) -> tuple[bytes, int]:
    m = re.match(r"0[xX]([0-9a-fA-F]+)", text[i:])
    if not m:
        raise VerifyError(f"'{text[i:]}' is not a number")
    digits = m.group(1)
    end = i + m.end()
    # fio's look-back: in '0xff0x14' the 0 before the second x starts the next number
    if end < len(text) and text[end] in "xX" and digits.endswith("0") and len(digits) > 1:
        digits = digits[:-1]
        end -= 1
    if len(digits) % 2:
        digits = "0" + digits  # an odd count: the first digit is a byte of its own
    return bytes.fromhex(digits), end


def _decimal_token(text: str, i: int) -> tuple[bytes, int]:
    rest = text[i:]
    stop = rest.lower().find("0x")
    scan = rest[:stop] if stop > 0 else rest
    m = re.match(r"\s*[+-]?\d+", scan)
    if not m:
        raise VerifyError(f"'{rest}' is not a number, a \"string\" or %o")
    value = int(m.group(0))
    if not _INT_MIN <= value <= _INT_MAX:
        raise VerifyError(f"{value} does not fit in 32 bits (write a longer pattern as 0x hex)")
    if value == 0:
        return b"\0", i + m.end()
    v = value & 0xFFFFFFFF
    out = bytearray()
    while v:
        out.append(v & 0xFF)
        v >>= 8
    return bytes(out), i + m.end()


def parse_verify_pattern(text: str) -> tuple[bytes, list[int]]:
    """fio's pattern syntax: 0x hex (bytes in the order written), decimal numbers (their little-endian
    bytes, 1 to 4), "strings" and %o (the block's offset, 8 bytes), in any sequence. Returns the pattern
    bytes (%o as zeros) and where each %o goes. 'file' (a file's contents) is refused."""
    out = bytearray()
    fmts: list[int] = []
    i = 0
    if not text:
        raise VerifyError("the pattern is empty")
    while i < len(text):
        ch = text[i]
        if ch == '"':
            end = text.find('"', i + 1)
            if end < 0:
                raise VerifyError('a "string" is not closed')
            if end == i + 1:
                raise VerifyError('an empty "" string')
            out += text[i + 1 : end].encode()
            i = end + 1
        elif ch == "'":
            raise VerifyError("a pattern read from a file ('name') is not implemented by iolab")
        elif ch == "%":
            if text[i : i + 2] != "%o":
                raise VerifyError(f"unknown format '{text[i : i + 2]}' (fio knows %o, the block offset)")
            if len(fmts) >= FMT_MAX:
                raise VerifyError(f"at most {FMT_MAX} %o formats")
            fmts.append(len(out))
            out += bytes(8)
            i += 2
        elif text[i : i + 2].lower() == "0x":
            chunk, i = _hex_token(text, i)
            out += chunk
        else:
            chunk, i = _decimal_token(text, i)
            out += chunk
        if len(out) > PATTERN_MAX:
            raise VerifyError(f"the pattern is longer than {PATTERN_MAX} bytes (fio's limit)")
    return bytes(out), fmts


def verify_notes(values: Mapping[str, Any], name: str, thread_number: int) -> list[str]:
    """What iolab does differently, said for the job: fio writes its verify state file at the end of every
    verify job (verify_state_save=1, the default); iolab writes none."""
    if not values.get("verify_state_save", True):
        return []
    if str(values.get("verify") or "0") == "0" and not values.get("verify_pattern"):
        return []
    state = f"local-{name}-{thread_number - 1}-verify.state"
    return [
        f"verify_state_save: fio writes {state} into the working directory at the end; iolab writes no"
        " verify state file (verify_state_load is not implemented); verify_state_save=0 silences this"
    ]


def _sizes(
    values: Mapping[str, Any],
    d: int,
    bs_min: Sequence[int],
    bs_max: Sequence[int],
    split_n: Sequence[int],
    split_bs: Sequence[int],
) -> tuple[int, int]:
    sizes = [split_bs[d * 64 + i] for i in range(split_n[d])]
    if sizes:
        return min(sizes), max(sizes)
    return int(bs_min[d]), int(bs_max[d])


def verify_config(
    values: Mapping[str, Any],
    *,
    reads: bool,
    writes: bool,
    trims: bool = False,
    bs_min: Sequence[int],
    bs_max: Sequence[int],
    split_n: Sequence[int],
    split_bs: Sequence[int],
    thread_number: int,
) -> dict[str, Any]:
    """The C config's verify fields for one job; VerifyError (naming the option) for what iolab refuses."""
    v = values
    kind = str(v.get("verify") or "0")
    pattern_text = v.get("verify_pattern")
    cfg: dict[str, Any] = {
        "verify": 0,
        "verify_flags": 0,
        "verify_interval": 0,
        "verify_offset": 0,
        "verify_backlog": 0,
        "verify_backlog_batch": 0,
        "verify_thread": thread_number & 0xFFFF,
        "verify_pattern_len": 0,
        "verify_fmt_n": 0,
        "verify_fmt_off": [],
        "verify_pattern": [],
    }
    pattern = b""
    fmts: list[int] = []
    if pattern_text:
        try:
            pattern, fmts = parse_verify_pattern(str(pattern_text))
        except VerifyError as exc:
            raise VerifyError(f"verify_pattern={pattern_text}: {exc}") from None
    if kind == "0":
        if not pattern:
            if v.get("verify_only"):  # fio reads nothing back then, and writes nothing either
                raise VerifyError("verify_only=1 checks nothing without verify=: give the type written with")
            return cfg
        vtype = PATTERN_WITH_HEADER  # fio: verify_pattern alone turns verification on, with a header
    elif kind in VERIFY_TYPES:
        vtype = VERIFY_TYPES[kind]
    else:
        known = ", ".join(VERIFY_TYPES)
        raise VerifyError(f"verify={kind} is not implemented by iolab (implemented: {known})")
    if kind == "pattern" and not pattern:
        raise VerifyError("verify=pattern needs verify_pattern (the bytes to write and check)")
    if trims:
        raise VerifyError(
            "verify with a trim mode (rw=trim, randtrim, trimwrite) is not implemented by iolab"
            " (fio also checks that trimmed blocks read back as zeros)"
        )
    if reads and writes:
        raise VerifyError(
            "verify: a job that both reads and writes (rw=rw, randrw) is not implemented by iolab; "
            "write with verify, then read back with verify in a second job or with verify_only"
        )
    if writes and v.get("time_based"):
        raise VerifyError(
            "verify: a writing time_based job is not implemented by iolab (fio loops write+verify)"
        )
    if writes and int(v.get("loops") or 1) > 1:
        raise VerifyError("verify: loops > 1 is not implemented by iolab for a writing job")
    if int(v.get("ramp_time") or 0):
        raise VerifyError("verify: ramp_time with verify is not implemented by iolab")
    wmin, wmax = _sizes(v, 1, bs_min, bs_max, split_n, split_bs)
    rmin, _ = _sizes(v, 0, bs_min, bs_max, split_n, split_bs)
    # fio's fixups of verify_interval (init.c): at most the smallest write, a divisor of every write size
    interval = int(v.get("verify_interval") or 0)
    if wmax != wmin and not interval:
        interval = wmin
    if interval > wmin:
        interval = wmin
    elif reads and interval > rmin:
        interval = rmin
    if not interval or wmin % interval or wmax % interval:
        interval = math.gcd(wmin, wmax)
    header = 0 if vtype == VERIFY_TYPES["pattern"] else 40 + _VHDR_LEN.get(kind, 0)
    if interval <= header:
        raise VerifyError(
            f"verify={kind}: the {header}-byte header does not fit in {interval}-byte chunks"
            " (raise bs or verify_interval)"
        )
    voffset = int(v.get("verify_offset") or 0)
    if voffset and voffset + header > interval:
        raise VerifyError(
            f"verify_offset={voffset}: the {header}-byte header does not fit in the {interval}-byte chunk"
        )
    flags = 0
    if v.get("do_verify", True):
        flags |= VF_DO_VERIFY
    if v.get("verify_only"):
        flags |= VF_ONLY
    if v.get("verify_fatal"):
        flags |= VF_FATAL
    if v.get("verify_dump"):
        flags |= VF_DUMP
    fixed = wmin == wmax and not split_n[1]
    if writes and fixed and not v.get("time_based") and not v.get("verify_only"):
        flags |= VF_CHECK_NUMBERIO
    padded = pattern + bytes(-len(pattern) % 8)
    cfg.update(
        {
            "verify": vtype,
            "verify_flags": flags,
            "verify_interval": interval,
            "verify_offset": voffset,
            "verify_backlog": int(v.get("verify_backlog") or 0),
            "verify_backlog_batch": int(v.get("verify_backlog_batch") or 0),
            "verify_pattern_len": len(pattern),
            "verify_fmt_n": len(fmts),
            "verify_fmt_off": fmts,
            "verify_pattern": [int.from_bytes(padded[i : i + 8], "little") for i in range(0, len(padded), 8)],
        }
    )
    return cfg
