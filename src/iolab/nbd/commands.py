"""The transmission commands, one row each: the flags a client may set, what the export must support,
which checks apply, and how the request starts on the layer stack. The checked entry point
(Export.check) and the dispatcher both read this table."""

from __future__ import annotations

import errno
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from iolab.nbd.layers import Buffer, Layer
from iolab.nbdwire import proto

# starts a request: (top layer, flags, offset, length, write payload) -> the operation's coroutine
Starter = Callable[[Layer, int, int, int, "Buffer | None"], Coroutine[Any, Any, Any]]


def _read(
    top: Layer, flags: int, offset: int, length: int, payload: Buffer | None
) -> Coroutine[Any, Any, Any]:
    return top.pread(offset, length)


def _write(
    top: Layer, flags: int, offset: int, length: int, payload: Buffer | None
) -> Coroutine[Any, Any, Any]:
    assert payload is not None
    return top.pwrite(offset, payload, bool(flags & proto.CMD_FLAG_FUA))


def _flush(
    top: Layer, flags: int, offset: int, length: int, payload: Buffer | None
) -> Coroutine[Any, Any, Any]:
    return top.flush()


def _trim(
    top: Layer, flags: int, offset: int, length: int, payload: Buffer | None
) -> Coroutine[Any, Any, Any]:
    return top.trim(offset, length, bool(flags & proto.CMD_FLAG_FUA))


def _zero(
    top: Layer, flags: int, offset: int, length: int, payload: Buffer | None
) -> Coroutine[Any, Any, Any]:
    return top.zero(
        offset,
        length,
        not flags & proto.CMD_FLAG_NO_HOLE,
        bool(flags & proto.CMD_FLAG_FAST_ZERO),
        bool(flags & proto.CMD_FLAG_FUA),
    )


def _cache(
    top: Layer, flags: int, offset: int, length: int, payload: Buffer | None
) -> Coroutine[Any, Any, Any]:
    return top.cache(offset, length)


def _extents(
    top: Layer, flags: int, offset: int, length: int, payload: Buffer | None
) -> Coroutine[Any, Any, Any]:
    return top.extents(offset, length, bool(flags & proto.CMD_FLAG_REQ_ONE))


# how a successful request is answered
REPLY_DONE = 0  # a simple reply without data
REPLY_DATA = 1  # the data read
REPLY_EXTENTS = 2  # a block status chunk


@dataclass(frozen=True)
class Command:
    code: int
    flags: int  # the flags a client may set
    start: Starter
    reply: int = REPLY_DONE
    data: bool = False  # READ/WRITE: the length is payload (max payload, bytes in flight)
    writes: bool = False  # refused on a read-only export
    needs: str = ""  # the Export capability it needs ("" for none)
    unsupported: str = ""  # the message when that capability is missing
    read_only_eperm: bool = False  # a missing capability on a read-only export is EPERM, not EINVAL
    whole_export: bool = False  # takes no range: offset and length must be zero
    needs_meta: bool = False  # needs the negotiated base:allocation context and a length
    beyond_end: int = errno.EINVAL  # the errno of a range past the end of the export
    name: str = field(init=False)  # as in the statistics and messages

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", proto.CMD_NAMES[self.code])


_FUA = proto.CMD_FLAG_FUA

COMMANDS: dict[int, Command] = {
    c.code: c
    for c in (
        Command(proto.CMD_READ, _FUA | proto.CMD_FLAG_DF, _read, reply=REPLY_DATA, data=True),
        Command(proto.CMD_WRITE, _FUA, _write, data=True, writes=True, beyond_end=errno.ENOSPC),
        Command(
            proto.CMD_FLUSH,
            _FUA,
            _flush,
            needs="can_flush",
            unsupported="flush not supported",
            read_only_eperm=True,
            whole_export=True,
        ),
        Command(proto.CMD_TRIM, _FUA, _trim, writes=True, needs="can_trim", unsupported="trim not supported"),
        Command(
            proto.CMD_WRITE_ZEROES,
            _FUA | proto.CMD_FLAG_NO_HOLE | proto.CMD_FLAG_FAST_ZERO,
            _zero,
            writes=True,
            needs="can_zero",
            unsupported="write zeroes not supported",
            beyond_end=errno.ENOSPC,
        ),
        Command(proto.CMD_CACHE, _FUA, _cache, needs="can_cache", unsupported="cache not supported"),
        Command(
            proto.CMD_BLOCK_STATUS,
            _FUA | proto.CMD_FLAG_REQ_ONE,
            _extents,
            reply=REPLY_EXTENTS,
            needs_meta=True,
        ),
    )
}
