"""Signature probing with libblkid (util-linux), through ctypes on libblkid.so.1.

libblkid knows far more on-disk formats than any table of ours (jfs, udf, nilfs2, minix, cramfs, bfs,
zfs_member, ceph_bluestore, ...) and probes the whole device, including signatures near its end. We use the
low-level probe API on a file descriptor the caller owns:

- superblocks with TYPE, USAGE, LABEL, UUID and the magic's offset (BLKID_SUBLKS_MAGIC -> SBMAGIC_OFFSET), and
  BLKID_SUBLKS_BADCSUM so that a superblock with a bad checksum (a damaged file system is still someone's
  data) is reported rather than skipped;
- partition tables (PTTYPE, PTMAGIC_OFFSET);
- blkid_do_probe() in a loop, which returns one result per call until every prober of every chain has run:
  all signatures, not only the first one. blkid_do_safeprobe() is run as well: its "ambivalent" answer (more
  than one file system) is reported, and counts as data.

`probe_fd()` raises BlkidUnavailable when the library cannot be loaded (the caller falls back to its own
table) and BlkidError when libblkid fails to probe.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from functools import cache
from typing import Any

#: blkid.h: superblocks chain flags
_SUBLKS_LABEL = 1 << 1
_SUBLKS_UUID = 1 << 3
_SUBLKS_TYPE = 1 << 5
_SUBLKS_USAGE = 1 << 7
_SUBLKS_VERSION = 1 << 8
_SUBLKS_MAGIC = 1 << 9
_SUBLKS_BADCSUM = 1 << 10
#: blkid.h: partitions chain flags
_PARTS_MAGIC = 1 << 3

#: return codes of blkid_do_probe / blkid_do_safeprobe
_PROBE_OK = 0
_PROBE_NONE = 1
_PROBE_AMBIVALENT = -2

LIBRARY = "libblkid.so.1"


class BlkidUnavailable(Exception):
    """libblkid.so.1 cannot be loaded (or lacks the probe API)."""


class BlkidError(Exception):
    """libblkid could not probe the device (an I/O error while reading it, out of memory ...)."""


@dataclass(frozen=True)
class BlkidSignature:
    """One libblkid result: a superblock (file system, RAID member, crypto, swap ...) or a partition table."""

    kind: str  # "superblock" | "partition table"
    type: str  # TYPE (ext4, crypto_LUKS, zfs_member ...) or PTTYPE (dos, gpt ...)
    offset: int | None  # byte offset of the magic (SBMAGIC_OFFSET / PTMAGIC_OFFSET)
    usage: str | None = None  # filesystem, raid, crypto, other
    label: str | None = None
    uuid: str | None = None
    version: str | None = None
    bad_checksum: bool = False


@dataclass(frozen=True)
class BlkidProbe:
    signatures: tuple[BlkidSignature, ...]
    #: blkid_do_safeprobe() found more than one file system (libblkid would not name a single one)
    ambivalent: bool


class _Lib:
    """The functions we call, with their C signatures."""

    def __init__(self, dll: ctypes.CDLL) -> None:
        vp, ci, i64 = ctypes.c_void_p, ctypes.c_int, ctypes.c_int64
        self.dll = dll

        def fn(name: str, restype: Any, *argtypes: Any) -> Any:
            try:
                f = getattr(dll, name)
            except AttributeError as exc:
                raise BlkidUnavailable(f"{LIBRARY} has no {name}") from exc
            f.restype = restype
            f.argtypes = list(argtypes)
            return f

        cpp = ctypes.POINTER(ctypes.c_char_p)
        self.get_library_version = fn("blkid_get_library_version", ci, cpp, cpp)
        self.new_probe = fn("blkid_new_probe", vp)
        self.free_probe = fn("blkid_free_probe", None, vp)
        self.reset_probe = fn("blkid_reset_probe", None, vp)
        self.set_device = fn("blkid_probe_set_device", ci, vp, ci, i64, i64)
        self.enable_superblocks = fn("blkid_probe_enable_superblocks", ci, vp, ci)
        self.set_superblocks_flags = fn("blkid_probe_set_superblocks_flags", ci, vp, ci)
        self.enable_partitions = fn("blkid_probe_enable_partitions", ci, vp, ci)
        self.set_partitions_flags = fn("blkid_probe_set_partitions_flags", ci, vp, ci)
        self.do_probe = fn("blkid_do_probe", ci, vp)
        self.do_safeprobe = fn("blkid_do_safeprobe", ci, vp)
        self.numof_values = fn("blkid_probe_numof_values", ci, vp)
        self.get_value = fn(
            "blkid_probe_get_value",
            ci,
            vp,
            ci,
            ctypes.POINTER(ctypes.c_char_p),
            ctypes.POINTER(ctypes.c_void_p),
            ctypes.POINTER(ctypes.c_size_t),
        )


@cache
def _load() -> _Lib:
    try:
        return _Lib(ctypes.CDLL(LIBRARY, use_errno=True))
    except OSError as exc:
        raise BlkidUnavailable(f"cannot load {LIBRARY}: {exc}") from exc


@cache
def version() -> str:
    """libblkid's version string, e.g. "2.38.1" (raises BlkidUnavailable)."""
    lib = _load()
    ver = ctypes.c_char_p()
    date = ctypes.c_char_p()
    lib.get_library_version(ctypes.byref(ver), ctypes.byref(date))
    return (ver.value or b"?").decode(errors="replace")


def _values(lib: _Lib, pr: int) -> dict[str, bytes]:
    """The NAME=value results of the last probe (values may be binary: SBMAGIC is the raw magic)."""
    out: dict[str, bytes] = {}
    name = ctypes.c_char_p()
    data = ctypes.c_void_p()
    size = ctypes.c_size_t()
    for i in range(lib.numof_values(pr)):
        if lib.get_value(pr, i, ctypes.byref(name), ctypes.byref(data), ctypes.byref(size)) != 0:
            continue
        if name.value is None or data.value is None:
            continue
        raw = ctypes.string_at(data.value, size.value)
        out[name.value.decode(errors="replace")] = raw
    return out


def _text(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    return raw.rstrip(b"\0").decode(errors="replace")


def _offset(raw: bytes | None) -> int | None:
    text = _text(raw)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _signature(values: dict[str, bytes]) -> BlkidSignature | None:
    if "TYPE" in values:
        return BlkidSignature(
            kind="superblock",
            type=_text(values["TYPE"]) or "?",
            offset=_offset(values.get("SBMAGIC_OFFSET")),
            usage=_text(values.get("USAGE")),
            label=_text(values.get("LABEL")),
            uuid=_text(values.get("UUID")),
            version=_text(values.get("VERSION")),
            bad_checksum=_text(values.get("SBBADCSUM")) == "1",
        )
    if "PTTYPE" in values:
        return BlkidSignature(
            kind="partition table",
            type=_text(values["PTTYPE"]) or "?",
            offset=_offset(values.get("PTMAGIC_OFFSET")),
            uuid=_text(values.get("PTUUID")),
        )
    return None


def _configure(lib: _Lib, pr: int, fd: int) -> None:
    if lib.set_device(pr, fd, 0, 0) != 0:
        err = ctypes.get_errno()
        raise BlkidError(f"blkid_probe_set_device: {os.strerror(err) if err else 'failed'}")
    lib.enable_superblocks(pr, 1)
    lib.set_superblocks_flags(
        pr,
        _SUBLKS_LABEL | _SUBLKS_UUID | _SUBLKS_TYPE | _SUBLKS_USAGE | _SUBLKS_VERSION | _SUBLKS_MAGIC
        | _SUBLKS_BADCSUM,
    )  # fmt: skip
    lib.enable_partitions(pr, 1)
    lib.set_partitions_flags(pr, _PARTS_MAGIC)


def probe_fd(fd: int) -> BlkidProbe:
    """Every signature libblkid finds on the device (or file) open at `fd`, which stays the caller's.

    The fd must not be O_DIRECT (libblkid reads at any offset and length); reopen it without.
    """
    lib = _load()
    pr = lib.new_probe()
    if not pr:
        raise BlkidError("blkid_new_probe failed")
    try:
        _configure(lib, pr, fd)
        found: list[BlkidSignature] = []
        while True:
            rc = lib.do_probe(pr)
            if rc == _PROBE_NONE:
                break
            if rc != _PROBE_OK:
                err = ctypes.get_errno()
                raise BlkidError(f"blkid_do_probe: {os.strerror(err) if err else 'failed'}")
            sig = _signature(_values(lib, pr))
            if sig is not None and sig not in found:
                found.append(sig)
        lib.reset_probe(pr)
        rc = lib.do_safeprobe(pr)
        ambivalent = rc == _PROBE_AMBIVALENT
        if rc == _PROBE_OK:  # the loop above should have seen it; never lose it if not
            sig = _signature(_values(lib, pr))
            key = (sig.kind, sig.type, sig.offset) if sig is not None else None
            if sig is not None and all((s.kind, s.type, s.offset) != key for s in found):
                found.append(sig)
        return BlkidProbe(tuple(found), ambivalent)
    finally:
        lib.free_probe(pr)
