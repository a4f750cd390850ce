"""The bytes of the server's replies: option replies of the handshake, and simple or structured replies
to requests (data, block status, errors)."""

from __future__ import annotations

import struct

from iolab.nbdwire import proto

META_CONTEXT_ID = 1  # the id of base:allocation, the one metadata context we serve

U16 = struct.Struct(">H")
U32 = struct.Struct(">I")
U64 = struct.Struct(">Q")
INFO_EXPORT = struct.Struct(">HQH")
INFO_BLOCK_SIZE = struct.Struct(">HIII")
_ERR_PAYLOAD = struct.Struct(">IH")
_DESCRIPTOR = struct.Struct(">II")
MAX_MESSAGE = 4096  # the longest error message the protocol allows


def option(opt: int, rep: int, data: bytes = b"") -> bytes:
    return proto.OPT_REPLY.pack(proto.OPT_REPLY_MAGIC, opt, rep, len(data)) + data


def option_error(opt: int, rep: int, message: str) -> bytes:
    return option(opt, rep, message.encode()[:MAX_MESSAGE])


def done(cookie: int) -> bytes:
    """A request that succeeded and returns no data (a simple reply, valid in both modes)."""
    return proto.SIMPLE_REPLY.pack(proto.SIMPLE_REPLY_MAGIC, 0, cookie)


def read_header(structured: bool, cookie: int, offset: int, length: int) -> bytes:
    """What goes before a read's data; a structured zero-length read is complete with it."""
    if not structured:
        return proto.SIMPLE_REPLY.pack(proto.SIMPLE_REPLY_MAGIC, 0, cookie)
    if length == 0:
        return proto.CHUNK.pack(
            proto.STRUCTURED_REPLY_MAGIC, proto.REPLY_FLAG_DONE, proto.REPLY_TYPE_NONE, cookie, 0
        )
    return proto.CHUNK.pack(
        proto.STRUCTURED_REPLY_MAGIC, proto.REPLY_FLAG_DONE, proto.REPLY_TYPE_OFFSET_DATA, cookie, 8 + length
    ) + U64.pack(offset)


def block_status(cookie: int, length: int, flags: int, extents: list[tuple[int, int]]) -> bytes:
    descriptors = []
    for ext_len, state in extents:
        if ext_len <= 0:
            continue
        descriptors.append(_DESCRIPTOR.pack(min(ext_len, 0xFFFFFFFF), state))
        if flags & proto.CMD_FLAG_REQ_ONE:
            break
    if not descriptors:
        descriptors.append(_DESCRIPTOR.pack(length, 0))
    if flags & proto.CMD_FLAG_REQ_ONE:
        ext_len, state = _DESCRIPTOR.unpack(descriptors[0])
        descriptors = [_DESCRIPTOR.pack(min(ext_len, length), state)]
    payload = U32.pack(META_CONTEXT_ID) + b"".join(descriptors)
    return (
        proto.CHUNK.pack(
            proto.STRUCTURED_REPLY_MAGIC,
            proto.REPLY_FLAG_DONE,
            proto.REPLY_TYPE_BLOCK_STATUS,
            cookie,
            len(payload),
        )
        + payload
    )


def error(structured: bool, cmd: int, cookie: int, err: int, message: str, offset: int | None) -> bytes:
    code = proto.wire_errno(err)
    if not structured:
        return proto.SIMPLE_REPLY.pack(proto.SIMPLE_REPLY_MAGIC, code, cookie)
    msg = message.encode()[:MAX_MESSAGE]
    if offset is not None and cmd != proto.CMD_FLUSH:
        body = _ERR_PAYLOAD.pack(code, len(msg)) + msg + U64.pack(offset)
        kind = proto.REPLY_TYPE_ERROR_OFFSET
    else:
        body = _ERR_PAYLOAD.pack(code, len(msg)) + msg
        kind = proto.REPLY_TYPE_ERROR
    return (
        proto.CHUNK.pack(proto.STRUCTURED_REPLY_MAGIC, proto.REPLY_FLAG_DONE, kind, cookie, len(body)) + body
    )
