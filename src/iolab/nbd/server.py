"""The NBD server: listeners, the fixed newstyle handshake and the transmission phase (asyncio).

One `Connection` per client. The handshake runs as a coroutine over a small byte queue; transmission is
parsed straight from `data_received` and each request is started at once (eagerly, without a Task), so a
request that never waits costs no scheduling; one that waits (thread pool, breakpoint, delay) carries on
in a Task while the connection keeps reading and serving the requests behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import struct
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
META_CONTEXT_ID = 1

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

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.buf = bytearray()
        self.loop = loop
        self.waiter: asyncio.Future[None] | None = None
        self.eof = False

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
        self.queue = _ByteQueue(self.loop)
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

    # --- transport callbacks -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have the same methods
        self.transport = transport  # type: ignore[assignment]
        self.peer = str(transport.get_extra_info("peername") or "unix")
        self.server.connections.add(self)
        self._write(
            _U64.pack(proto.NBDMAGIC)
            + _U64.pack(proto.IHAVEOPT)
            + _U16.pack(proto.FLAG_FIXED_NEWSTYLE | proto.FLAG_NO_ZEROES)
        )
        self.handshake_task = self.loop.create_task(self._handshake())

    def data_received(self, data: bytes) -> None:
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
        self.queue.feed_eof()
        self.server.connections.discard(self)
        if self.export is not None and self.transmitting:
            self.export.stats.connections -= 1
        self.server.connection_closed()

    def pause_writing(self) -> None:
        self.write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._update_reading()

    def _busy(self) -> bool:
        return (
            self.write_paused
            or self.inflight_bytes + self.corked_bytes > MAX_INFLIGHT_BYTES
            or self.inflight >= MAX_INFLIGHT_REQUESTS
        )

    def _update_reading(self) -> None:
        if self.transport is None or self.closed:
            return
        want_pause = self._busy()
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
        self.corked = None
        self.corked_bytes = 0
        if out and not self.closed and self.transport is not None:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))

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
        if pos:
            del buf[:pos]
        self._update_reading()
        if self.eof:
            self._maybe_finish()

    def _parse_batch(self, buf: bytearray, pos: int, end: int, unpack: Callable[..., tuple[int, ...]]) -> int:
        while end - pos >= 28 and not self.closed and not self.disconnecting and not self._busy():
            magic, flags, cmd, cookie, offset, length = unpack(buf, pos)
            if magic != proto.REQUEST_MAGIC:
                self.abort(f"bad request magic {magic:#x}")
                return pos
            if cmd == proto.CMD_WRITE:
                if length > self.export.max_payload:  # type: ignore[union-attr]
                    # the payload cannot be skipped cheaply; proto.md allows a hard disconnect here
                    self.abort(f"write payload of {length} bytes")
                    return pos
                if end - pos < 28 + length:
                    break
                payload: bytes | None = bytes(buf[pos + 28 : pos + 28 + length])
                pos += 28 + length
            else:
                payload = None
                pos += 28
            self._request(cmd, flags, cookie, offset, length, payload)
        self.stalled = not self.disconnecting and end - pos >= 28 and self._busy()
        return pos

    def _request(
        self, cmd: int, flags: int, cookie: int, offset: int, length: int, payload: bytes | None
    ) -> None:
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
        size = length if cmd in (proto.CMD_READ, proto.CMD_WRITE) else 0
        self.inflight_bytes += size

        def finish(result: Any, exc: BaseException | None) -> None:
            self.inflight -= 1
            self.inflight_bytes -= size
            self._complete(cmd, flags, cookie, offset, length, result, exc)
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
                self._write(
                    proto.CHUNK.pack(
                        proto.STRUCTURED_REPLY_MAGIC,
                        proto.REPLY_FLAG_DONE,
                        proto.REPLY_TYPE_OFFSET_DATA,
                        cookie,
                        8 + length,
                    )
                    + _U64.pack(offset)
                    + result
                )
            else:
                self._write(proto.SIMPLE_REPLY.pack(proto.SIMPLE_REPLY_MAGIC, 0, cookie) + result)
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
        if self.inflight == 0 and not self.stalled and self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()


class Server:
    """Exports served on one or more listeners, in one event loop."""

    def __init__(self, exports: list[Export], tls: TLSConfig | None = None) -> None:
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
        self._unix_paths: list[str] = []
        self._idle: asyncio.Event | None = None

    def find_export(self, name: str) -> Export | None:
        if name == "":
            return self.default
        return self.exports.get(name)

    def connection_closed(self) -> None:
        if self._idle is not None and not self.connections:
            self._idle.set()

    async def listen(self, addr: Address) -> Address:
        self.loop = asyncio.get_running_loop()

        def factory() -> Connection:
            return Connection(self)

        if addr.kind == "unix":
            with contextlib.suppress(FileNotFoundError):
                if os.path.exists(addr.path) and _is_socket(addr.path):
                    os.unlink(addr.path)
            srv = await self.loop.create_unix_server(factory, path=addr.path)
            self._unix_paths.append(addr.path)
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
        return bound

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
        for path in self._unix_paths:
            with contextlib.suppress(OSError):
                os.unlink(path)
        for export in self.exports.values():
            export.close()


def _is_socket(path: str) -> bool:
    import stat

    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False
