"""NBD wire constants and message layouts, as named in the protocol document (doc/proto.md)."""

from __future__ import annotations

import errno
import struct
from typing import Final

NBDMAGIC: Final = 0x4E42444D41474943  # "NBDMAGIC"
IHAVEOPT: Final = 0x49484156454F5054  # "IHAVEOPT"
OPT_REPLY_MAGIC: Final = 0x3E889045565A9
REQUEST_MAGIC: Final = 0x25609513
SIMPLE_REPLY_MAGIC: Final = 0x67446698
STRUCTURED_REPLY_MAGIC: Final = 0x668E33EF

# handshake flags (server) and client flags
FLAG_FIXED_NEWSTYLE: Final = 1 << 0
FLAG_NO_ZEROES: Final = 1 << 1
FLAG_C_FIXED_NEWSTYLE: Final = 1 << 0
FLAG_C_NO_ZEROES: Final = 1 << 1

# transmission flags
FLAG_HAS_FLAGS: Final = 1 << 0
FLAG_READ_ONLY: Final = 1 << 1
FLAG_SEND_FLUSH: Final = 1 << 2
FLAG_SEND_FUA: Final = 1 << 3
FLAG_ROTATIONAL: Final = 1 << 4
FLAG_SEND_TRIM: Final = 1 << 5
FLAG_SEND_WRITE_ZEROES: Final = 1 << 6
FLAG_SEND_DF: Final = 1 << 7
FLAG_CAN_MULTI_CONN: Final = 1 << 8
FLAG_SEND_CACHE: Final = 1 << 10
FLAG_SEND_FAST_ZERO: Final = 1 << 11

# options
OPT_EXPORT_NAME: Final = 1
OPT_ABORT: Final = 2
OPT_LIST: Final = 3
OPT_STARTTLS: Final = 5
OPT_INFO: Final = 6
OPT_GO: Final = 7
OPT_STRUCTURED_REPLY: Final = 8
OPT_LIST_META_CONTEXT: Final = 9
OPT_SET_META_CONTEXT: Final = 10

# option replies
REP_ACK: Final = 1
REP_SERVER: Final = 2
REP_INFO: Final = 3
REP_META_CONTEXT: Final = 4
REP_ERR_UNSUP: Final = (1 << 31) + 1
REP_ERR_POLICY: Final = (1 << 31) + 2
REP_ERR_INVALID: Final = (1 << 31) + 3
REP_ERR_PLATFORM: Final = (1 << 31) + 4
REP_ERR_TLS_REQD: Final = (1 << 31) + 5
REP_ERR_UNKNOWN: Final = (1 << 31) + 6
REP_ERR_SHUTDOWN: Final = (1 << 31) + 7
REP_ERR_BLOCK_SIZE_REQD: Final = (1 << 31) + 8
REP_ERR_TOO_BIG: Final = (1 << 31) + 9

# NBD_INFO types
INFO_EXPORT: Final = 0
INFO_NAME: Final = 1
INFO_DESCRIPTION: Final = 2
INFO_BLOCK_SIZE: Final = 3

# commands
CMD_READ: Final = 0
CMD_WRITE: Final = 1
CMD_DISC: Final = 2
CMD_FLUSH: Final = 3
CMD_TRIM: Final = 4
CMD_CACHE: Final = 5
CMD_WRITE_ZEROES: Final = 6
CMD_BLOCK_STATUS: Final = 7

CMD_NAMES: Final = {
    CMD_READ: "read",
    CMD_WRITE: "write",
    CMD_DISC: "disc",
    CMD_FLUSH: "flush",
    CMD_TRIM: "trim",
    CMD_CACHE: "cache",
    CMD_WRITE_ZEROES: "write_zeroes",
    CMD_BLOCK_STATUS: "block_status",
}

# command flags
CMD_FLAG_FUA: Final = 1 << 0
CMD_FLAG_NO_HOLE: Final = 1 << 1
CMD_FLAG_DF: Final = 1 << 2
CMD_FLAG_REQ_ONE: Final = 1 << 3
CMD_FLAG_FAST_ZERO: Final = 1 << 4

# structured reply
REPLY_FLAG_DONE: Final = 1 << 0
REPLY_TYPE_NONE: Final = 0
REPLY_TYPE_OFFSET_DATA: Final = 1
REPLY_TYPE_OFFSET_HOLE: Final = 2
REPLY_TYPE_BLOCK_STATUS: Final = 5
REPLY_TYPE_ERROR: Final = (1 << 15) + 1
REPLY_TYPE_ERROR_OFFSET: Final = (1 << 15) + 2

# base:allocation flags
STATE_HOLE: Final = 1 << 0
STATE_ZERO: Final = 1 << 1

# the only errors the protocol defines; anything else is mapped onto them
EPERM: Final = 1
EIO: Final = 5
ENOMEM: Final = 12
EINVAL: Final = 22
ENOSPC: Final = 28
EOVERFLOW: Final = 75
ENOTSUP: Final = 95
ESHUTDOWN: Final = 108
_WIRE_ERRORS: Final = frozenset({EPERM, EIO, ENOMEM, EINVAL, ENOSPC, EOVERFLOW, ENOTSUP, ESHUTDOWN})


def wire_errno(err: int) -> int:
    """Map a host errno onto the protocol's set (proto.md 'Error values'); unknown ones become EIO."""
    if err in _WIRE_ERRORS:
        return err
    if err in (errno.EDQUOT, errno.EFBIG):
        return ENOSPC
    if err == errno.EROFS or err == errno.EACCES:
        return EPERM
    if err == errno.EOPNOTSUPP:
        return ENOTSUP
    return EIO


# C: magic, flags, type, cookie, offset, length
REQUEST = struct.Struct(">IHHQQI")
SIMPLE_REPLY = struct.Struct(">IIQ")
# S: magic, flags, type, cookie, length
CHUNK = struct.Struct(">IHHQI")
OPT_HEADER = struct.Struct(">QII")
OPT_REPLY = struct.Struct(">QIII")

META_BASE_ALLOCATION: Final = "base:allocation"
