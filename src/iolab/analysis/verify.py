"""verify= results in words (fio's messages, on stderr) and in the JSON's ``iolab.verify`` object."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from iolab.analysis.core_result import CoreVerify, VerifyFailure

__all__ = ["verdict", "verify_json", "verify_messages", "write_dumps"]

#: what write_dumps wrote: failure index -> [(what, path or the reason it was not written)]
Dumps = Mapping[int, Sequence[tuple[str, str]]]

_MAGIC = 0xACCA
_HEADER_KINDS = {
    "bad magic header": "magic",
    "bad header length": "length",
    "bad header offset": "offset",
    "bad header numberio": "numberio",
    "bad header crc": "crc",
    "bad header rand_seed": "rand_seed",
}


def verdict(kind: str) -> str:
    """What a failure says about the block: never written, a short read, or corrupted."""
    if kind == "never written?":
        return "never written"
    if kind == "short read":
        return "short read"
    return "corrupted"


def _name(paths: Sequence[str], index: int) -> str:
    return paths[index] if 0 <= index < len(paths) else f"#{index}"


def _where(f: VerifyFailure, paths: Sequence[str]) -> str:
    return (
        f"at file {_name(paths, f.file)} offset {f.offset}, length {f.length}"
        f" (requested block: offset={f.block_offset}, length={f.block_length})"
    )


def write_dumps(cv: CoreVerify, paths: Sequence[str], directory: str) -> dict[int, list[tuple[str, str]]]:
    """verify_dump: the bad chunks the core kept, written as fio names them (NAME.OFFSET.received, .expected,
    .hdr_fail for a bad header) into directory. A file of that name is never overwritten (nor a symlink
    followed): that dump is skipped and said so."""
    out: dict[int, list[tuple[str, str]]] = {}
    for i, f in enumerate(cv.failed):
        if not f.dump_received:
            continue
        base = os.path.basename(_name(paths, f.file))
        header = f.kind in _HEADER_KINDS or (f.kind == "never written?" and not f.dump_expected)
        parts = [("hdr_fail" if header else "received", f.dump_received)]
        if f.dump_expected:
            parts.append(("expected", f.dump_expected))
        done: list[tuple[str, str]] = []
        for what, data in parts:
            path = os.path.join(directory, f"{base}.{f.offset}.{what}")
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                fd = os.open(path, flags, 0o644)
            except OSError as exc:
                done.append((what, f"not dumped: {path}: {exc.strerror}"))
                continue
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            done.append((what, path))
        out[i] = done
    return out


def verify_messages(cv: CoreVerify, paths: Sequence[str], dumps: Dumps | None = None) -> list[str]:
    """fio's report of each failure kept (its wording where fio has one), plus iolab's verdict."""
    lines: list[str] = []
    for i, f in enumerate(cv.failed):
        where = _where(f, paths)
        if f.kind == "never written?":
            if f.expected == _MAGIC:
                lines.append(f"verify: bad magic header {f.received:x}, wanted {f.expected:x} {where}")
            else:  # verify=pattern: no header, the pattern's bytes are missing
                lines.append(f"pattern: verify failed {where}")
            lines.append("       the block reads as zeros: never written?")
        elif f.kind == "short read":
            lines.append(f"verify: short read {where}: {f.received} of {f.expected} bytes")
        elif f.kind == "bad header crc":
            lines.append(f"verify: bad header crc {f.received:x}, calculated {f.expected:x} {where}")
        elif f.kind == "bad magic header":
            lines.append(f"verify: bad magic header {f.received:x}, wanted {f.expected:x} {where}")
        elif f.kind in _HEADER_KINDS:
            lines.append(f"verify: {f.kind} {f.received}, wanted {f.expected} {where}")
        elif f.kind == "pattern mismatch":
            bits = bin(f.expected ^ f.received).count("1")
            lines.append(f"fio: got pattern '{f.received:02x}', wanted '{f.expected:02x}'. Bad bits {bits}")
            lines.append(f"fio: bad pattern block offset {f.bad_byte}")
            lines.append(f"pattern: verify failed {where}")
        else:
            lines.append(f"{cv.type}: verify failed {where}")
            lines.append(f"       Expected CRC: {f.csum_expected.hex()}")
            lines.append(f"       Received CRC: {f.csum_received.hex()}")
        if f.kind not in ("never written?", "short read"):
            lines.append("       the block holds other data than was written: corrupted")
        for what, where_to in (dumps or {}).get(i, ()):
            name = "received" if what == "hdr_fail" else what
            if where_to.startswith("not dumped"):
                lines.append(f"       {name} data {where_to}")
            else:
                lines.append(f"       {name} data dumped as {where_to}")
    if cv.failures > len(cv.failed):
        lines.append(
            f"verify: {cv.failures - len(cv.failed)} more failures (only the first {len(cv.failed)} shown)"
        )
    return lines


def verify_json(cv: CoreVerify, paths: Sequence[str], dumps: Dumps | None = None) -> dict[str, Any]:
    """The ``iolab.verify`` object of a job: counts, and the first failures (file, offset, kind)."""
    failed = []
    for i, f in enumerate(cv.failed):
        item: dict[str, Any] = {
            "file": _name(paths, f.file),
            "offset": f.offset,
            "length": f.length,
            "block_offset": f.block_offset,
            "block_length": f.block_length,
            "kind": f.kind,
            "verdict": verdict(f.kind),
        }
        if f.kind in _HEADER_KINDS or f.kind == "short read":
            item["expected"] = f.expected
            item["received"] = f.received
        elif f.kind == "pattern mismatch":
            item.update(expected=f.expected, received=f.received, bad_byte=f.bad_byte)
        elif f.kind == "checksum mismatch":
            item.update(expected_csum=f.csum_expected.hex(), received_csum=f.csum_received.hex())
        if f.media_type:
            item["media_type"] = f.media_type
        dumped = [p for _, p in (dumps or {}).get(i, ()) if not p.startswith("not dumped")]
        if dumped:
            item["dumped"] = dumped
        failed.append(item)
    return {
        "type": cv.type,
        "written": cv.written,
        "reads": cv.reads,
        "bytes": cv.bytes,
        "chunks": cv.chunks,
        "failures": cv.failures,
        "not_read": cv.not_read,
        "failed": failed,
    }
