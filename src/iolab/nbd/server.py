"""The NBD server: listeners, the fixed newstyle handshake and the transmission phase (asyncio).

One `Connection` per client. The handshake runs as a coroutine over a small byte queue; transmission is
parsed straight from `data_received` and each request is started at once (eagerly, without a Task), so a
request that never waits costs no scheduling; one that waits (thread pool, breakpoint, delay) carries on
in a Task while the connection keeps reading and serving the requests behind it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import ctypes.util
import errno
import ipaddress
import logging
import os
import socket
import stat
import struct
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from iolab.nbd import proto
from iolab.nbd.export import Export
from iolab.nbd.layers import NBDError
from iolab.nbd.tls import HANDSHAKE_TIMEOUT, TLSConfig

log = logging.getLogger("iolab.nbd")

MAX_OPTION_LENGTH = 1 << 16  # no legitimate option is larger (names are at most 4096 bytes)
# Per connection: past these, stop parsing and reading until replies drain, so a client that floods
# requests or never reads its replies holds a bounded amount of server memory.
MAX_INFLIGHT_BYTES = 32 << 20
MAX_INFLIGHT_REQUESTS = 256
# A client in the handshake sends small options; more than this unread stops reading from it.
MAX_HANDSHAKE_BUFFER = MAX_OPTION_LENGTH + 64
HANDOFF_PAYLOAD = 1 << 20  # a write payload this large is passed on in the receive buffer itself
SEND_SLICE = 1 << 20  # large read data is handed to the transport this much at a time
META_CONTEXT_ID = 1
DEFAULT_SOCKET_MODE = 0o600
VMADDR_CID_LOCAL = 1  # vsock's loopback CID (linux/vm_sockets.h)


@dataclass(frozen=True)
class Limits:
    """Bounds on what clients can make the server hold."""

    max_connections: int = 64
    #: payload bytes of reads and writes in flight, across all connections (plus replies not yet sent)
    max_buffer: int = 64 << 20
    handshake_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.max_connections < 1:
            raise ValueError("the connection limit must be at least 1")
        if self.max_buffer < 1:
            raise ValueError("the buffer bound must be at least 1 byte")
        if not 0 < self.handshake_timeout < 1e9:
            raise ValueError("the handshake timeout must be a positive number of seconds")


_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_INFO_EXPORT = struct.Struct(">HQH")
_INFO_BLOCK_SIZE = struct.Struct(">HIII")
_ERR_PAYLOAD = struct.Struct(">IH")
_DESCRIPTOR = struct.Struct(">II")
_PAYLOAD_ERRORS = (proto.CMD_READ,)


class _Abort(Exception):
    """Drop the connection (protocol violation, or the client went away)."""


@dataclass
class Address:
    kind: str  # "unix" | "tcp" | "vsock"
    host: str = ""
    port: int = 0
    path: str = ""
    cid: int = 0

    def uri(self, export: str = "", tls: bool = False) -> str:
        scheme = "nbds" if tls else "nbd"  # nbds: the client must use TLS
        if self.kind == "unix":
            return f"{scheme}+unix:///{export}?socket={self.path}"
        if self.kind == "vsock":
            return f"{scheme}+vsock://{self.cid}:{self.port}/{export}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}/{export}"

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.path}"
        if self.kind == "vsock":
            return f"vsock:{self.cid}:{self.port}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp:{host}:{self.port}"


def parse_address(text: str) -> Address:
    """`unix:PATH`, `tcp:[HOST:]PORT` (loopback when HOST is empty) or `vsock:[CID:]PORT`."""
    kind, sep, rest = text.partition(":")
    if not sep:
        raise ValueError(f"address {text!r}: expected unix:PATH, tcp:HOST:PORT or vsock:CID:PORT")
    if kind == "unix":
        if not rest:
            raise ValueError("unix: needs a socket path")
        return Address("unix", path=rest)
    if kind == "tcp":
        if rest.startswith("["):
            host, _, port = rest[1:].partition("]:")
        else:
            host, _, port = rest.rpartition(":")
        try:
            return Address("tcp", host=host or "127.0.0.1", port=int(port))
        except ValueError:
            raise ValueError(f"address {text!r}: bad TCP port") from None
    if kind == "vsock":
        cid, _, port = rest.rpartition(":")
        try:
            return Address(
                "vsock",
                cid=int(cid) if cid else socket.VMADDR_CID_ANY,
                port=int(port) or socket.VMADDR_PORT_ANY,  # 0: any free port, as with TCP
            )
        except ValueError:
            raise ValueError(f"address {text!r}: bad vsock CID or port") from None
    raise ValueError(f"address {text!r}: unknown kind {kind!r} (unix, tcp or vsock)")


class _ByteQueue:
    """Bytes from data_received, read by the handshake coroutine with readexactly()."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_drain: Callable[[], None]) -> None:
        self.buf = bytearray()
        self.loop = loop
        self.waiter: asyncio.Future[None] | None = None
        self.eof = False
        self.on_drain = on_drain  # called after bytes were taken out (reading may resume)

    def feed(self, data: bytes) -> None:
        self.buf += data
        self._wake()

    def feed_eof(self) -> None:
        self.eof = True
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def readexactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            if self.eof:
                raise _Abort("client closed during the handshake")
            self.waiter = self.loop.create_future()
            await self.waiter
        data = bytes(self.buf[:n])
        del self.buf[:n]
        self.on_drain()
        return data


async def _carry_on(coro: Coroutine[Any, Any, Any], yielded: Any) -> Any:
    """Drive a coroutine that `_start` began and that is now waiting on `yielded`."""
    while True:
        try:
            if yielded is None:
                await asyncio.sleep(0)
            else:
                # what a Task does with a yielded future before waiting on it
                yielded._asyncio_future_blocking = False
                await yielded
        except asyncio.CancelledError:
            coro.close()
            raise
        except BaseException:
            pass  # the coroutine sees the same outcome when it resumes and calls result()
        try:
            yielded = coro.send(None)
        except StopIteration as stop:
            return stop.value


class Connection(asyncio.Protocol):
    def __init__(self, server: Server) -> None:
        self.server = server
        self.loop = server.loop
        self.transport: asyncio.Transport | None = None
        self.queue = _ByteQueue(self.loop, self._update_reading)
        self.handshake_task: asyncio.Task[None] | None = None
        self.transmitting = False
        self.closed = False
        self.disconnecting = False
        self.eof = False
        self.structured = False
        self.no_zeroes = False
        self.meta_export: str | None = None  # export the selected base:allocation context refers to
        self.export: Export | None = None
        self.meta = False
        self.buf = bytearray()
        self.inflight = 0
        self.inflight_bytes = 0
        self.read_paused = False
        self.write_paused = False
        self.peer = ""
        self.tls_active = False  # NBD_OPT_STARTTLS acknowledged and the TLS handshake done
        self.lost = False  # connection_lost ran (it can be called twice when a TLS handshake fails)
        # replies produced while one batch of requests is parsed go out in one send
        self.corked: list[bytes | bytearray] | None = None
        self.corked_bytes = 0
        self.parse_scheduled = False
        self.stalled = False  # parsing stopped with requests left in buf because we were busy
        # the server-wide payload budget (Server.reserve): what this connection holds and waits for
        self.head_grant = 0  # reserved for the request at the head of buf (a write's payload, a read)
        self.budget_wait = 0  # bytes queued for; reading and parsing stop meanwhile
        self.unsent = 0  # reply bytes still in the transport's buffer, charged to the budget
        self.discard = 0  # payload bytes of an oversized write still to drop
        self.discard_cookie = 0
        self.release_after_write = 0  # budget of requests whose replies wait in `corked`
        # large reply data not yet handed to the transport, and the budget to release after each
        self.outq: collections.deque[tuple[memoryview, int]] = collections.deque()
        self.outq_bytes = 0
        self.handshake_timer: asyncio.TimerHandle | None = None

    # --- transport callbacks -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have the same methods
        self.transport = transport  # type: ignore[assignment]
        self.peer = str(transport.get_extra_info("peername") or "unix")
        if len(self.server.connections) >= self.server.limits.max_connections:
            # refused at accept: nothing was read, nothing is held
            self.closed = True
            self.server.refuse_connection(self.peer)
            transport.abort()  # type: ignore[attr-defined]
            return
        self.server.connections.add(self)
        self.handshake_timer = self.loop.call_later(
            self.server.limits.handshake_timeout, self._handshake_expired
        )
        self._write(
            _U64.pack(proto.NBDMAGIC)
            + _U64.pack(proto.IHAVEOPT)
            + _U16.pack(proto.FLAG_FIXED_NEWSTYLE | proto.FLAG_NO_ZEROES)
        )
        self.handshake_task = self.loop.create_task(self._handshake())

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        if self.transmitting:
            if self.disconnecting:
                return  # nothing may follow NBD_CMD_DISC
            if self.buf:
                self.buf += data
            else:
                self.buf = bytearray(data)
            self._parse()
        else:
            self.queue.feed(data)
            if len(self.queue.buf) > MAX_HANDSHAKE_BUFFER:
                self._update_reading()

    def _handshake_expired(self) -> None:
        self.handshake_timer = None
        if not self.transmitting and not self.closed:
            log.warning(
                "dropping client %s: no complete handshake within %gs",
                self.peer,
                self.server.limits.handshake_timeout,
            )
            self.abort("handshake timeout")

    def eof_received(self) -> bool | None:
        if self.transmitting:
            # the client shut down its side: answer what it sent, then close
            self.eof = True
            self._maybe_finish()
            # Over TLS the session ends with the client's close_notify and asyncio's TLS layer closes
            # the connection itself (it cannot stay half-open), so only plain sockets are kept open.
            return None if self.tls_active else True
        self.queue.feed_eof()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.lost:
            return
        self.lost = True
        self.closed = True
        if self.handshake_timer is not None:
            self.handshake_timer.cancel()
            self.handshake_timer = None
        self.queue.feed_eof()
        # drop what the client sent but we never used; requests still running release their own share
        self.buf = bytearray()
        self.queue.buf = bytearray()
        self.server.forget(self)
        if self not in self.server.connections:
            return  # refused at accept
        self.server.connections.discard(self)
        if self.export is not None and self.transmitting:
            self.export.stats.connections -= 1
        self.server.connection_closed()

    def pause_writing(self) -> None:
        self.write_paused = True
        self._charge_unsent()
        self._update_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._charge_unsent()
        self._send_queued()
        self._update_reading()

    def _busy(self) -> bool:
        """Stop parsing (checked before every request: kept to a few attribute loads)."""
        return (
            self.write_paused
            or self.budget_wait > 0
            or self.inflight_bytes + self.corked_bytes + self.outq_bytes > MAX_INFLIGHT_BYTES
            or self.inflight >= MAX_INFLIGHT_REQUESTS
        )

    def _charge_unsent(self) -> None:
        """Replies the client is not reading count against the server-wide budget: from the moment the
        transport's buffer passes its high-water mark (pause_writing) until it drains (resume_writing,
        which is sure to come, unlike a notice for a buffer that empties below the mark)."""
        size = 0
        if self.write_paused and self.transport is not None and not self.closed:
            size = self.transport.get_write_buffer_size()
        if size != self.unsent:
            self.server.charge(self, size - self.unsent)
            self.unsent = size

    def _update_reading(self) -> None:
        if self.transport is None or self.closed:
            return
        want_pause = self._busy() or (not self.transmitting and len(self.queue.buf) > MAX_HANDSHAKE_BUFFER)
        if not want_pause and self.stalled and not self.parse_scheduled:
            # requests left unparsed while we were busy
            self.parse_scheduled = True
            self.loop.call_soon(self._parse)
        if want_pause and not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()
        elif not want_pause and self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()

    def abort(self, why: str) -> None:
        log.info("dropping client %s: %s", self.peer, why)
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def _write(self, data: bytes | bytearray) -> None:
        if self.corked is None:
            # a completion outside a parsed batch: gather whatever else completes in this loop turn
            self.corked = [data]
            self.loop.call_soon(self._uncork)
        else:
            self.corked.append(data)
        self.corked_bytes += len(data)

    def _uncork(self) -> None:
        out = self.corked
        total = self.corked_bytes
        self.corked = None
        self.corked_bytes = 0
        if not out or self.closed or self.transport is None:
            pass
        elif total < HANDOFF_PAYLOAD and not self.outq:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))
            if self.write_paused or self.unsent:
                self._charge_unsent()
        else:
            # small replies go out joined, in one send; a large read's data on its own (never copied
            # into a joined buffer), fed to the transport a slice at a time as the client reads
            small: list[bytes | bytearray] = []
            for piece in out:
                if len(piece) < HANDOFF_PAYLOAD:
                    small.append(piece)
                    continue
                if small:
                    self._send(small[0] if len(small) == 1 else b"".join(small))
                    small = []
                self._send(piece)
            if small:
                self._send(small[0] if len(small) == 1 else b"".join(small))
            self._charge_unsent()
        held = self.release_after_write
        if held:
            # the budget of completed reads, kept until their data has gone to the transport (which
            # holds what the client has not read yet as `unsent`)
            self.release_after_write = 0
            if self.outq and not self.closed:
                self.outq.append((memoryview(b""), held))  # released once what is queued before it went
                self._send_queued()
            else:
                server = self.server
                server.buffered -= held
                if server.budget_waiters:
                    server._grant()

    def _send(self, data: bytes | bytearray) -> None:
        if not self.outq and len(data) < HANDOFF_PAYLOAD:
            assert self.transport is not None
            self.transport.write(data)
            return
        self.outq.append((memoryview(data), 0))
        self.outq_bytes += len(data)
        self._send_queued()

    def _send_queued(self) -> None:
        """Hand queued reply data to the transport a slice at a time, while it is not full: the
        transport copies what it cannot send at once, so at most a slice is ever held twice."""
        while self.outq and not self.write_paused and not self.closed and self.transport is not None:
            view, release = self.outq[0]
            chunk = view[:SEND_SLICE]
            if chunk:
                self.transport.write(chunk)  # may call pause_writing() before it returns
            self.outq_bytes -= len(chunk)
            if len(view) > SEND_SLICE:
                self.outq[0] = (view[SEND_SLICE:], release)
            else:
                self.outq.popleft()
                if release:
                    self.server.release(release)
                if not self.outq and (self.disconnecting or self.eof):
                    self._maybe_finish()

    # --- handshake ---------------------------------------------------------------------------
    def _opt_reply(self, opt: int, rep: int, data: bytes = b"") -> None:
        self._write(proto.OPT_REPLY.pack(proto.OPT_REPLY_MAGIC, opt, rep, len(data)) + data)

    def _opt_error(self, opt: int, rep: int, message: str) -> None:
        self._opt_reply(opt, rep, message.encode()[:4096])

    async def _handshake(self) -> None:
        try:
            (client_flags,) = _U32.unpack(await self.queue.readexactly(4))
            if client_flags & ~(proto.FLAG_C_FIXED_NEWSTYLE | proto.FLAG_C_NO_ZEROES):
                raise _Abort(f"unknown client flags {client_flags:#x}")
            self.no_zeroes = bool(client_flags & proto.FLAG_C_NO_ZEROES)
            while not self.closed:
                magic, opt, length = proto.OPT_HEADER.unpack(await self.queue.readexactly(16))
                if magic != proto.IHAVEOPT:
                    raise _Abort("bad option magic")
                if length > MAX_OPTION_LENGTH:
                    raise _Abort(f"option of {length} bytes")
                data = await self.queue.readexactly(length)
                if await self._option(opt, data):
                    break
        except _Abort as exc:
            self.abort(str(exc))
            return
        except Exception:  # a bug must not take the server down with it
            log.exception("handshake failed")
            self.abort("internal error")
            return
        if self.closed:
            return
        self.transmitting = True
        if self.handshake_timer is not None:
            self.handshake_timer.cancel()
            self.handshake_timer = None
        assert self.export is not None
        self.export.stats.connections += 1
        self.export.stats.connections_total += 1
        if self.queue.buf:  # requests that arrived with the final option
            self.buf = self.queue.buf
            self.queue.buf = bytearray()
            self._parse()
        if self.queue.eof and not self.closed:
            self.transport.close() if self.transport else None

    async def _option(self, opt: int, data: bytes) -> bool:
        """Handle one option; True when transmission starts."""
        server = self.server
        if server.shutting_down and opt != proto.OPT_ABORT:
            if opt == proto.OPT_EXPORT_NAME:
                raise _Abort("shutting down")
            self._opt_error(opt, proto.REP_ERR_SHUTDOWN, "server shutting down")
            return False
        if opt == proto.OPT_STARTTLS:
            await self._starttls(data)
            return False
        if server.tls is not None and server.tls.required and not self.tls_active and opt != proto.OPT_ABORT:
            if opt == proto.OPT_EXPORT_NAME:
                raise _Abort("NBD_OPT_EXPORT_NAME without TLS (the server requires TLS)")
            log.info("client %s: option %d refused, TLS is required", self.peer, opt)
            self._opt_error(opt, proto.REP_ERR_TLS_REQD, "this server requires TLS: send NBD_OPT_STARTTLS")
            return False
        if opt == proto.OPT_EXPORT_NAME:
            export = server.find_export(data.decode(errors="replace"))
            if export is None:
                raise _Abort("unknown export")  # this option cannot fail politely
            self.export = export
            self.meta = self.meta_export is not None and server.find_export(self.meta_export) is export
            reply = _U64.pack(export.size) + _U16.pack(export.transmission_flags(self.structured))
            if not self.no_zeroes:
                reply += bytes(124)
            self._write(reply)
            return True
        if opt == proto.OPT_ABORT:
            self._opt_reply(opt, proto.REP_ACK)
            self._uncork()  # out before the close below, which drops what is still corked
            if self.transport is not None:
                self.transport.close()
            self.closed = True
            return False
        if opt == proto.OPT_LIST:
            if data:
                self._opt_error(opt, proto.REP_ERR_INVALID, "NBD_OPT_LIST takes no data")
                return False
            for export in server.exports.values():
                name = export.name.encode()
                self._opt_reply(
                    opt, proto.REP_SERVER, _U32.pack(len(name)) + name + export.description.encode()
                )
            self._opt_reply(opt, proto.REP_ACK)
            return False
        if opt in (proto.OPT_INFO, proto.OPT_GO):
            return self._info_go(opt, data)
        if opt == proto.OPT_STRUCTURED_REPLY:
            if data:
                self._opt_error(opt, proto.REP_ERR_INVALID, "NBD_OPT_STRUCTURED_REPLY takes no data")
            elif self.structured:
                self._opt_error(opt, proto.REP_ERR_INVALID, "structured replies already negotiated")
            else:
                self.structured = True
                self._opt_reply(opt, proto.REP_ACK)
            return False
        if opt in (proto.OPT_LIST_META_CONTEXT, proto.OPT_SET_META_CONTEXT):
            self._meta_context(opt, data)
            return False
        self._opt_error(opt, proto.REP_ERR_UNSUP, f"option {opt} not supported")
        return False

    async def _starttls(self, data: bytes) -> None:
        opt = proto.OPT_STARTTLS
        tls = self.server.tls
        if tls is None:
            self._opt_error(opt, proto.REP_ERR_POLICY, "TLS is off on this server (iolab serve --tls=on)")
            return
        if data:
            self._opt_error(opt, proto.REP_ERR_INVALID, "NBD_OPT_STARTTLS takes no data")
            return
        if self.tls_active:
            self._opt_error(opt, proto.REP_ERR_INVALID, "TLS is already on")
            return
        if self.queue.buf:
            # The client may send nothing before our reply: bytes already here came in plaintext and
            # must not be taken as part of the encrypted session (an injection).
            raise _Abort("data sent after NBD_OPT_STARTTLS before its reply")
        self._opt_reply(opt, proto.REP_ACK)
        self._uncork()  # the acknowledgement goes out in plaintext, before the transport changes
        plain = self.transport
        if plain is None or self.closed or plain.is_closing():
            raise _Abort("connection closed before the TLS handshake")
        # start_tls switches the transport's protocol before it yields, so no byte is read in plaintext
        # from here on; the handshake runs on the loop while this coroutine waits.
        try:
            upgraded = await self.loop.start_tls(
                plain, self, tls.context, server_side=True, ssl_handshake_timeout=HANDSHAKE_TIMEOUT
            )
        except Exception as exc:  # ssl.SSLError, a reset, the handshake timeout (uvloop: its own types)
            # asyncio does not pass on the loss of a connection whose TLS handshake timed out or was
            # reset, so the connection would stay counted forever: end it here
            self.connection_lost(exc)
            raise _Abort(f"TLS handshake failed: {exc}") from None
        if upgraded is None or self.closed:
            raise _Abort("connection closed during the TLS handshake")
        self.transport = upgraded
        self.tls_active = True
        # proto.md: no negotiation state from before NBD_OPT_STARTTLS survives it
        self.structured = False
        self.meta_export = None
        session = upgraded.get_extra_info("ssl_object")
        if session is not None:
            log.info("client %s: %s, %s", self.peer, session.version(), session.cipher()[0])

    def _info_go(self, opt: int, data: bytes) -> bool:
        if len(data) < 6:
            self._opt_error(opt, proto.REP_ERR_INVALID, "option too short")
            return False
        (namelen,) = _U32.unpack_from(data, 0)
        if namelen > len(data) - 6:
            self._opt_error(opt, proto.REP_ERR_INVALID, "name length beyond the option")
            return False
        name = data[4 : 4 + namelen].decode(errors="replace")
        (nreq,) = _U16.unpack_from(data, 4 + namelen)
        if 6 + namelen + 2 * nreq != len(data):
            self._opt_error(opt, proto.REP_ERR_INVALID, "information request list does not match length")
            return False
        requests = {_U16.unpack_from(data, 6 + namelen + 2 * i)[0] for i in range(nreq)}
        export = self.server.find_export(name)
        if export is None:
            self._opt_error(opt, proto.REP_ERR_UNKNOWN, f"no export named {name!r}")
            return False
        flags = export.transmission_flags(self.structured)
        self._opt_reply(opt, proto.REP_INFO, _INFO_EXPORT.pack(proto.INFO_EXPORT, export.size, flags))
        if proto.INFO_NAME in requests:
            self._opt_reply(opt, proto.REP_INFO, _U16.pack(proto.INFO_NAME) + export.name.encode())
        if proto.INFO_DESCRIPTION in requests and export.description:
            self._opt_reply(
                opt, proto.REP_INFO, _U16.pack(proto.INFO_DESCRIPTION) + export.description.encode()
            )
        # Always sent: it costs nothing and tells every client the limit we enforce.
        self._opt_reply(
            opt,
            proto.REP_INFO,
            _INFO_BLOCK_SIZE.pack(
                proto.INFO_BLOCK_SIZE, export.min_block, export.preferred_block, export.max_payload
            ),
        )
        self._opt_reply(opt, proto.REP_ACK)
        if opt == proto.OPT_INFO:
            return False
        self.export = export
        self.meta = self.meta_export is not None and self.server.find_export(self.meta_export) is export
        return True

    def _meta_context(self, opt: int, data: bytes) -> None:
        setting = opt == proto.OPT_SET_META_CONTEXT
        if setting:
            self.meta_export = None  # replaced even when this request fails
        if not self.structured:
            self._opt_error(opt, proto.REP_ERR_INVALID, "negotiate structured replies first")
            return
        try:
            (namelen,) = _U32.unpack_from(data, 0)
            pos = 4 + namelen
            if pos + 4 > len(data):
                raise ValueError
            name = data[4:pos].decode(errors="replace")
            (nqueries,) = _U32.unpack_from(data, pos)
            pos += 4
            queries = []
            for _ in range(nqueries):
                (qlen,) = _U32.unpack_from(data, pos)
                pos += 4
                if pos + qlen > len(data):
                    raise ValueError
                queries.append(data[pos : pos + qlen].decode(errors="replace"))
                pos += qlen
            if pos != len(data):
                raise ValueError
        except (ValueError, struct.error):
            self._opt_error(opt, proto.REP_ERR_INVALID, "malformed metadata context request")
            return
        if self.server.find_export(name) is None:
            self._opt_error(opt, proto.REP_ERR_UNKNOWN, f"no export named {name!r}")
            return
        if any(":" not in q for q in queries):
            self._opt_error(opt, proto.REP_ERR_INVALID, "a query lacks the namespace colon")
            return
        if setting:
            selected = proto.META_BASE_ALLOCATION in queries
        else:
            selected = not queries or any(q in ("base:", proto.META_BASE_ALLOCATION) for q in queries)
        if selected:
            self._opt_reply(
                opt,
                proto.REP_META_CONTEXT,
                _U32.pack(META_CONTEXT_ID if setting else 0) + proto.META_BASE_ALLOCATION.encode(),
            )
            if setting:
                self.meta_export = name
        self._opt_reply(opt, proto.REP_ACK)

    # --- transmission ------------------------------------------------------------------------
    def _parse(self) -> None:
        self.parse_scheduled = False
        if self.closed:
            return
        buf = self.buf
        pos = 0
        end = len(buf)
        unpack = proto.REQUEST.unpack_from
        if self.corked is None:
            self.corked = []
        try:
            pos = self._parse_batch(buf, pos, end, unpack)
        finally:
            self._uncork()
        if pos and self.buf is buf:  # (not when buf was handed over as a payload, or dropped at DISC)
            del buf[:pos]
        self._update_reading()
        if self.eof or self.disconnecting:  # (a DISC parsed while `stalled` was still set could not)
            self._maybe_finish()

    def _parse_batch(self, buf: bytearray, pos: int, end: int, unpack: Callable[..., tuple[int, ...]]) -> int:
        server = self.server
        max_buffer = server.limits.max_buffer
        max_payload = self.export.max_payload  # type: ignore[union-attr]
        waiters = server.budget_waiters
        cmd_read = proto.CMD_READ
        while not self.closed and not self.disconnecting and not self._busy():
            if self.discard:
                # the payload of a write we refused for its size: dropped as it arrives, never kept
                skip = min(self.discard, end - pos)
                pos += skip
                self.discard -= skip
                if self.discard:
                    break
                self._reply_error(
                    proto.CMD_WRITE,
                    self.discard_cookie,
                    errno.EINVAL,
                    f"write payload over the maximum of {self.export.max_payload} bytes",  # type: ignore[union-attr]
                )
                continue
            if end - pos < 28:
                break
            magic, flags, cmd, cookie, offset, length = unpack(buf, pos)
            if magic != proto.REQUEST_MAGIC:
                self.abort(f"bad request magic {magic:#x}")
                return pos
            charge = 0
            if cmd == proto.CMD_WRITE:
                if length > self.export.max_payload:  # type: ignore[union-attr]
                    self.export.stats.rejected += 1  # type: ignore[union-attr]
                    log.info("client %s: write payload of %d bytes refused (EINVAL)", self.peer, length)
                    self.discard = length
                    self.discard_cookie = cookie
                    pos += 28
                    continue
                if length and not self.head_grant:
                    if not waiters and server.buffered + length <= max_buffer:
                        server.buffered += length  # (Server.reserve's fast path, inline: per request)
                        self.head_grant = length
                    elif not server.reserve(self, length):
                        break  # waits for the budget; reading stops meanwhile
                if end - pos < 28 + length:
                    break
                charge, self.head_grant = self.head_grant, 0
                payload: bytes | bytearray | None
                if pos == 0 and end == 28 + length and length >= HANDOFF_PAYLOAD:
                    # the buffer holds just this request: it becomes the payload, without a copy
                    # (a copy would briefly hold the payload twice)
                    del buf[:28]
                    self.buf = bytearray()
                    self._request(cmd, flags, cookie, offset, length, buf, charge)
                    self.stalled = False
                    return end
                # one copy (a bytearray slice would be a second); buf drops these bytes right after
                payload = bytes(memoryview(buf)[pos + 28 : pos + 28 + length])
                pos += 28 + length
            else:
                if cmd == cmd_read and 0 < length <= max_payload:
                    if self.head_grant:  # granted while it waited
                        charge, self.head_grant = self.head_grant, 0
                    elif not waiters and server.buffered + length <= max_buffer:
                        server.buffered += length  # (Server.reserve's fast path, inline: per request)
                        charge = length
                    elif server.reserve(self, length):
                        charge, self.head_grant = self.head_grant, 0
                    else:
                        break
                payload = None
                pos += 28
            self._request(cmd, flags, cookie, offset, length, payload, charge)
        self.stalled = not self.disconnecting and end - pos >= 28 and self._busy()
        return pos

    def _request(
        self,
        cmd: int,
        flags: int,
        cookie: int,
        offset: int,
        length: int,
        payload: bytes | bytearray | None,
        charge: int = 0,
    ) -> None:
        """Start one request; `charge` is its share of the server-wide budget, released when it ends."""
        export = self.export
        assert export is not None
        if cmd == proto.CMD_DISC:
            self.disconnecting = True
            self.buf = bytearray()
            self._maybe_finish()
            return
        bad = export.check(cmd, flags, offset, length, self.structured, self.meta)
        if bad is not None:
            export.stats.rejected += 1
            self._reply_error(cmd, cookie, bad[0], bad[1])
            if charge:
                self.server.release(charge)
            return
        top = export.top
        fua = bool(flags & proto.CMD_FLAG_FUA)
        coro: Coroutine[Any, Any, Any]
        if cmd == proto.CMD_READ:
            coro = top.pread(offset, length)
        elif cmd == proto.CMD_WRITE:
            assert payload is not None
            coro = top.pwrite(offset, payload, fua)
        elif cmd == proto.CMD_FLUSH:
            coro = top.flush()
        elif cmd == proto.CMD_TRIM:
            coro = top.trim(offset, length, fua)
        elif cmd == proto.CMD_WRITE_ZEROES:
            coro = top.zero(
                offset,
                length,
                not flags & proto.CMD_FLAG_NO_HOLE,
                bool(flags & proto.CMD_FLAG_FAST_ZERO),
                fua,
            )
        elif cmd == proto.CMD_CACHE:
            coro = top.cache(offset, length)
        else:
            coro = top.extents(offset, length, bool(flags & proto.CMD_FLAG_REQ_ONE))
        self.inflight += 1
        server = self.server
        size = length if cmd in (proto.CMD_READ, proto.CMD_WRITE) else 0
        self.inflight_bytes += size

        def finish(result: Any, exc: BaseException | None) -> None:
            self.inflight -= 1
            self.inflight_bytes -= size
            self._complete(cmd, flags, cookie, offset, length, result, exc)
            if charge:
                if self.corked is not None:
                    self.release_after_write += charge  # _uncork runs soon (scheduled, or the batch's)
                else:
                    server.release(charge)
            if self.read_paused or self.stalled:
                self._update_reading()
            if self.disconnecting or self.eof:
                self._maybe_finish()

        self._start(coro, finish)

    def _start(
        self, coro: Coroutine[Any, Any, Any], finish: Callable[[Any, BaseException | None], None]
    ) -> None:
        try:
            yielded = coro.send(None)
        except StopIteration as stop:
            finish(stop.value, None)
            return
        except Exception as exc:
            finish(None, exc)
            return
        task = self.loop.create_task(_carry_on(coro, yielded))
        self.server.tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self.server.tasks.discard(t)
            if t.cancelled():
                finish(None, NBDError(errno.ESHUTDOWN, "server shutting down"))
            else:
                exc = t.exception()
                finish(None if exc else t.result(), exc)

        task.add_done_callback(done)

    def _complete(
        self,
        cmd: int,
        flags: int,
        cookie: int,
        offset: int,
        length: int,
        result: Any,
        exc: BaseException | None,
    ) -> None:
        export = self.export
        assert export is not None
        st = export.stats.per_cmd[proto.CMD_NAMES[cmd]]
        st.ops += 1
        if exc is not None:
            st.errors += 1
            if isinstance(exc, NBDError):
                self._reply_error(cmd, cookie, exc.errno, exc.message, exc.offset)
            else:
                log.error("request %s failed", proto.CMD_NAMES[cmd], exc_info=exc)
                self._reply_error(cmd, cookie, errno.EIO, f"internal error: {exc}")
            return
        st.bytes += length
        if self.closed:
            return
        if cmd == proto.CMD_READ:
            if self.structured:
                if length == 0:
                    self._write(
                        proto.CHUNK.pack(
                            proto.STRUCTURED_REPLY_MAGIC,
                            proto.REPLY_FLAG_DONE,
                            proto.REPLY_TYPE_NONE,
                            cookie,
                            0,
                        )
                    )
                    return
                header = proto.CHUNK.pack(
                    proto.STRUCTURED_REPLY_MAGIC,
                    proto.REPLY_FLAG_DONE,
                    proto.REPLY_TYPE_OFFSET_DATA,
                    cookie,
                    8 + length,
                ) + _U64.pack(offset)
            else:
                header = proto.SIMPLE_REPLY.pack(proto.SIMPLE_REPLY_MAGIC, 0, cookie)
            if length >= HANDOFF_PAYLOAD:
                self._write(header)  # the data goes out as it is, not copied behind the header
                self._write(result)
            else:
                self._write(header + result)
        elif cmd == proto.CMD_BLOCK_STATUS:
            self._write(self._block_status_reply(cookie, length, flags, result))
        else:
            self._write(proto.SIMPLE_REPLY.pack(proto.SIMPLE_REPLY_MAGIC, 0, cookie))

    def _block_status_reply(
        self, cookie: int, length: int, flags: int, extents: list[tuple[int, int]]
    ) -> bytes:
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
        payload = _U32.pack(META_CONTEXT_ID) + b"".join(descriptors)
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

    def _reply_error(self, cmd: int, cookie: int, err: int, message: str, offset: int | None = None) -> None:
        if self.closed:
            return
        code = proto.wire_errno(err)
        if self.structured:
            msg = message.encode()[:4096]
            if offset is not None and cmd != proto.CMD_FLUSH:
                body = _ERR_PAYLOAD.pack(code, len(msg)) + msg + _U64.pack(offset)
                kind = proto.REPLY_TYPE_ERROR_OFFSET
            else:
                body = _ERR_PAYLOAD.pack(code, len(msg)) + msg
                kind = proto.REPLY_TYPE_ERROR
            self._write(
                proto.CHUNK.pack(proto.STRUCTURED_REPLY_MAGIC, proto.REPLY_FLAG_DONE, kind, cookie, len(body))
                + body
            )
        else:
            self._write(proto.SIMPLE_REPLY.pack(proto.SIMPLE_REPLY_MAGIC, code, cookie))

    def _maybe_finish(self) -> None:
        if (
            self.inflight == 0
            and not self.stalled
            and not self.outq  # (transport.close() sends what the transport holds, not this)
            and self.transport is not None
            and not self.closed
        ):
            self.closed = True
            self.transport.close()


class Server:
    """Exports served on one or more listeners, in one event loop."""

    def __init__(
        self, exports: list[Export], limits: Limits | None = None, tls: TLSConfig | None = None
    ) -> None:
        if not exports:
            raise ValueError("no export")
        self.exports: dict[str, Export] = {}
        for e in exports:
            if e.name in self.exports:
                raise ValueError(f"two exports named {e.name!r}")
            self.exports[e.name] = e
        self.default = exports[0]
        self.tls = tls  # None: TLS off
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self.listeners: list[asyncio.AbstractServer] = []
        self.addresses: list[Address] = []
        self.connections: set[Connection] = set()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.shutting_down = False
        self._unix_paths: list[UnixSocketPath] = []
        self._idle: asyncio.Event | None = None
        self.limits = limits or Limits()
        # the payload budget: bytes reserved by requests in flight plus unsent replies, and who waits
        self.buffered = 0
        self.budget_waiters: collections.deque[Connection] = collections.deque()
        self.refused = 0
        self._refused_logged = 0
        self._refused_log_time = 0.0

    def find_export(self, name: str) -> Export | None:
        if name == "":
            return self.default
        return self.exports.get(name)

    def connection_closed(self) -> None:
        if not self.connections:
            _trim_heap()  # hand the big buffers of the clients that left back to the system
            if self._idle is not None:
                self._idle.set()

    def refuse_connection(self, peer: str) -> None:
        self.refused += 1
        now = time.monotonic()
        if now - self._refused_log_time >= 1:  # at most a line a second under a flood
            log.warning(
                "refused %d connection(s) (last from %s): already %d, the limit (--max-connections)",
                self.refused - self._refused_logged,
                peer,
                len(self.connections),
            )
            self._refused_logged = self.refused
            self._refused_log_time = now

    # --- the payload budget ------------------------------------------------------------------
    def reserve(self, conn: Connection, size: int) -> bool:
        """Reserve `size` bytes for the request at the head of `conn`'s buffer (conn.head_grant), or queue
        `conn` (FIFO) and return False: it stops reading until `_grant` gives it the bytes. A request
        larger than the whole budget still runs, alone."""
        if not self.budget_waiters and (self.buffered == 0 or self.buffered + size <= self.limits.max_buffer):
            self._add(size)
            conn.head_grant = size
            return True
        conn.budget_wait = size
        self.budget_waiters.append(conn)
        return False

    def release(self, size: int) -> None:
        self.buffered -= size
        if self.budget_waiters:
            self._grant()

    def charge(self, conn: Connection, delta: int) -> None:
        """Unsent reply bytes: not refusable (already produced), but they make others wait."""
        if delta > 0:
            self._add(delta)
        else:
            self.release(-delta)

    def forget(self, conn: Connection) -> None:
        """A connection went away: give back what it held for requests it will never run."""
        held = conn.head_grant + conn.unsent + sum(release for _, release in conn.outq)
        conn.head_grant = conn.unsent = conn.outq_bytes = 0
        conn.outq.clear()
        if conn.budget_wait:
            conn.budget_wait = 0
            with contextlib.suppress(ValueError):
                self.budget_waiters.remove(conn)
        self.release(held)

    def _add(self, size: int) -> None:
        self.buffered += size

    def _grant(self) -> None:
        while self.budget_waiters:
            conn = self.budget_waiters[0]
            size = conn.budget_wait
            if self.buffered and self.buffered + size > self.limits.max_buffer:
                return
            self.budget_waiters.popleft()
            self._add(size)
            conn.budget_wait = 0
            conn.head_grant = size
            conn._update_reading()  # parses the request it stopped at

    async def listen(
        self,
        addr: Address,
        *,
        allow_remote: bool = False,
        socket_mode: int = DEFAULT_SOCKET_MODE,
    ) -> Address:
        """Listen on `addr`. A unix socket replaces only a stale socket at its path and is created with
        `socket_mode`; a listener other machines (or VM guests) can reach needs `allow_remote`."""
        self.loop = asyncio.get_running_loop()

        def factory() -> Connection:
            return Connection(self)

        if addr.kind != "unix":
            check_remote(addr, allow_remote, "--listen")
        if addr.kind == "unix":
            unix = bind_unix(addr.path, socket_mode, "--listen")
            try:
                srv = await self.loop.create_unix_server(factory, sock=unix.sock)
            except BaseException:
                unix.remove()
                raise
            self._unix_paths.append(unix)
            bound = addr
        elif addr.kind == "tcp":
            srv = await self.loop.create_server(factory, addr.host, addr.port, reuse_address=True)
            port = srv.sockets[0].getsockname()[1]
            bound = Address("tcp", host=addr.host, port=port)
        else:
            sock = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
            try:
                sock.bind((addr.cid, addr.port))
                sock.listen(64)
                sock.setblocking(False)
            except OSError:
                sock.close()
                raise
            srv = await self.loop.create_server(factory, sock=sock)
            cid, port = sock.getsockname()
            bound = Address("vsock", cid=addr.cid if addr.cid != socket.VMADDR_CID_ANY else cid, port=port)
        self.listeners.append(srv)
        self.addresses.append(bound)
        if addr.kind != "unix" and not is_local(addr):
            self._warn_remote(bound)
        return bound

    def _warn_remote(self, bound: Address) -> None:
        tls = self.tls
        if tls is not None and tls.required and tls.ca is not None:
            return  # only clients with a certificate from the CA get in
        writable = [e.name or "(default)" for e in self.exports.values() if not e.read_only]
        log.warning(
            "%s is reachable from other machines%s, with no authentication%s%s",
            bound,
            " and VM guests" if bound.kind == "vsock" else "",
            " (TLS encrypts, but any client may connect)" if tls is not None and tls.required else "",
            f": anyone can write the export(s) {', '.join(writable)}" if writable else " (read-only)",
        )

    def uris(self, export: str = "") -> list[str]:
        return [a.uri(export, tls=self.tls is not None and self.tls.required) for a in self.addresses]

    async def stop(self, resume_breakpoints: bool = True) -> None:
        """Stop listening, let in-flight requests finish, close every connection."""
        self.shutting_down = True
        for srv in self.listeners:
            srv.close()
        if resume_breakpoints:
            for export in self.exports.values():
                if export.blkdebug is not None:
                    export.blkdebug.dbg.release_all()
        if self.tasks:
            _done, pending = await asyncio.wait(list(self.tasks), timeout=10)
            for t in pending:
                t.cancel()
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.close()
        if self.connections:
            self._idle = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), 5)
        for srv in self.listeners:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(srv.wait_closed(), 5)
        for unix in self._unix_paths:
            unix.remove()
        for export in self.exports.values():
            export.close()


# --------------------------------------------------------------------------------- socket policy


def is_local(addr: Address) -> bool:
    """Only this machine can connect: a unix socket, a loopback TCP address, vsock's local CID."""
    if addr.kind == "unix":
        return True
    if addr.kind == "vsock":
        return addr.cid == VMADDR_CID_LOCAL
    try:
        return ipaddress.ip_address(addr.host.partition("%")[0]).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(addr.host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    hosts = [str(info[4][0]).partition("%")[0] for info in infos]
    return bool(hosts) and all(ipaddress.ip_address(h).is_loopback for h in hosts)


def check_remote(addr: Address, allow_remote: bool, option: str) -> None:
    if not allow_remote and not is_local(addr):
        where = "VM guests and other machines" if addr.kind == "vsock" else "other machines"
        raise ValueError(
            f"{option} {addr}: {where} could connect, and NBD has no authentication; listen on "
            "unix:PATH or a loopback address (tcp:127.0.0.1:PORT), or pass --allow-remote"
        )


def _kind_of(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    return "not a socket"


@dataclass
class UnixSocketPath:
    """A unix socket we created; removed at the end only if the path still is that socket."""

    path: str
    sock: socket.socket
    ident: tuple[int, int]

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            st = os.lstat(self.path)
            if stat.S_ISSOCK(st.st_mode) and (st.st_dev, st.st_ino) == self.ident:
                os.unlink(self.path)


def clear_stale_socket(path: str, option: str) -> None:
    """Make room for a socket at `path`: only a socket nobody listens on is removed; anything else
    there (a file, a device, a directory, a symlink) is an error and stays untouched."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ValueError(f"{option} {path}: {exc.strerror}") from None
    if not stat.S_ISSOCK(st.st_mode):
        raise ValueError(
            f"{option} {path}: {_kind_of(st.st_mode)} is there; only a stale socket is replaced, so choose "
            "another path (nothing was removed)"
        )
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        pass  # stale: left by a server that is gone
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ValueError(
            f"{option} {path}: cannot tell whether the socket is in use: {exc.strerror}"
        ) from None
    else:
        raise ValueError(
            f"{option} {path}: a server is listening on this socket; stop it or choose another path"
        )
    finally:
        probe.close()
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ValueError(f"{option} {path}: cannot remove the stale socket: {exc.strerror}") from None


def bind_unix(path: str, mode: int, option: str, backlog: int = 128) -> UnixSocketPath:
    """A listening unix socket at `path`, born with `mode` (the umask is narrowed around bind(), so it
    is never reachable more widely than `mode`, not even for an instant)."""
    if not 0 <= mode <= 0o777:
        raise ValueError(f"socket mode {mode:o}: permission bits only (0 to 777)")
    clear_stale_socket(path, option)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o777 & ~mode)
    try:
        sock.bind(path)
    except OSError as exc:
        sock.close()
        raise ValueError(f"{option} {path}: {exc.strerror}") from None
    finally:
        os.umask(old)
    try:
        st = os.lstat(path)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return UnixSocketPath(path, sock, (st.st_dev, st.st_ino))


_libc: ctypes.CDLL | None = None


def _trim_heap() -> None:
    """glibc keeps freed heap memory for reuse; give it back once no client is connected."""
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc
