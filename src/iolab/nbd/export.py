"""An export: a layer stack, its advertised flags and block sizes, the checked entry point, statistics."""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import Any

from iolab.nbd.commands import COMMANDS, Command
from iolab.nbd.layers import Layer
from iolab.nbdwire import proto

MAX_PAYLOAD = 1 << 25  # 32 MiB: the size every client may send without being deemed hostile (proto.md)
PREFERRED_BLOCK = 4096


@dataclass
class OpStats:
    ops: int = 0
    bytes: int = 0
    errors: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"ops": self.ops, "bytes": self.bytes, "errors": self.errors}


@dataclass
class ExportStats:
    per_cmd: dict[str, OpStats] = field(
        default_factory=lambda: {n: OpStats() for c, n in proto.CMD_NAMES.items() if c != proto.CMD_DISC}
    )
    rejected: int = 0  # failed the checked entry point, never reached a filter
    connections: int = 0
    connections_total: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "commands": {k: v.as_dict() for k, v in self.per_cmd.items()},
            "rejected": self.rejected,
            "connections": self.connections,
            "connections_total": self.connections_total,
        }


class Export:
    def __init__(
        self,
        name: str,
        top: Layer,
        *,
        description: str = "",
        min_block: int = 1,
        blkdebug: Any = None,
    ) -> None:
        if min_block < 1 or min_block > 65536 or min_block & (min_block - 1):
            raise ValueError("minimum block size must be a power of two between 1 and 65536")
        self.name = name
        self.top = top
        self.description = description
        self.min_block = min_block
        self.preferred_block = max(PREFERRED_BLOCK, min_block)
        self.max_payload = MAX_PAYLOAD
        self.blkdebug = blkdebug  # the blkdebug filter of this stack, if any (for control commands)
        self.stats = ExportStats()
        self.gate_findings: list[Any] = []  # the safety gate's findings on a writable image (info: allowed)
        self.size = top.size()
        self.read_only = not top.can_write()
        self.can_flush = top.can_flush()
        self.can_fua = top.can_fua()
        self.can_trim = top.can_trim() and not self.read_only
        self.can_zero = top.can_zero() and not self.read_only
        self.can_fast_zero = self.can_zero and top.can_fast_zero()
        self.can_cache = top.can_cache()
        self.can_extents = top.can_extents()
        self.can_multi_conn = top.can_multi_conn()
        self.rotational = top.is_rotational()

    def transmission_flags(self, structured: bool) -> int:
        flags = proto.FLAG_HAS_FLAGS
        if self.read_only:
            flags |= proto.FLAG_READ_ONLY
        if self.can_flush:
            flags |= proto.FLAG_SEND_FLUSH
        if self.can_fua:
            flags |= proto.FLAG_SEND_FUA
        if self.rotational:
            flags |= proto.FLAG_ROTATIONAL
        if self.can_trim:
            flags |= proto.FLAG_SEND_TRIM
        if self.can_zero:
            flags |= proto.FLAG_SEND_WRITE_ZEROES
            if self.can_fast_zero:
                flags |= proto.FLAG_SEND_FAST_ZERO
        if structured:
            flags |= proto.FLAG_SEND_DF  # a read is always one content chunk, so DF costs nothing
        if self.can_multi_conn:
            flags |= proto.FLAG_CAN_MULTI_CONN
        if self.can_cache:
            flags |= proto.FLAG_SEND_CACHE
        return flags

    def check(
        self, cmd: int, flags: int, offset: int, length: int, structured: bool, meta: bool
    ) -> tuple[int, str] | None:
        """The one checked entry point: range, alignment and flags, before any filter runs.

        Returns (errno, message) for a request to refuse, None for one the stack may see.
        """
        command = COMMANDS.get(cmd)
        if command is None:
            return errno.EINVAL, f"unknown command {cmd}"
        return self.check_command(command, flags, offset, length, structured, meta)

    def check_command(
        self, command: Command, flags: int, offset: int, length: int, structured: bool, meta: bool
    ) -> tuple[int, str] | None:
        if flags & ~command.flags:
            return errno.EINVAL, f"flags {flags:#x} not valid for {command.name}"
        if flags & proto.CMD_FLAG_DF and not structured:
            return errno.EINVAL, "DF flag without structured replies"
        if flags & proto.CMD_FLAG_FAST_ZERO and not self.can_fast_zero:
            return errno.EINVAL, "FAST_ZERO was not advertised"
        if command.writes and self.read_only:
            return errno.EPERM, "read-only export"
        if command.needs and not getattr(self, command.needs):
            return (
                errno.EPERM if command.read_only_eperm and self.read_only else errno.EINVAL
            ), command.unsupported
        if command.whole_export:
            if offset or length:
                return errno.EINVAL, f"{command.name} offset and length must be zero"
            return None
        if command.needs_meta:
            if not meta:
                return errno.EINVAL, "no metadata context was negotiated"
            if length == 0:
                return errno.EINVAL, "zero-length block status"
        if command.data and length > self.max_payload:
            return errno.EINVAL, f"length {length} over the maximum payload {self.max_payload}"
        if offset > self.size or length > self.size - offset:
            return command.beyond_end, "beyond the end of the export"
        if (offset | length) & (self.min_block - 1):
            return errno.EINVAL, f"not aligned to the minimum block size {self.min_block}"
        return None

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "size": self.size,
            "read_only": self.read_only,
            "min_block": self.min_block,
            "preferred_block": self.preferred_block,
            "max_payload": self.max_payload,
            "multi_conn": self.can_multi_conn,
        }

    def close(self) -> None:
        self.top.close()
