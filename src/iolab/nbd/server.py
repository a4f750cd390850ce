"""The NBD server: exports served on listeners, one `Connection` per client (asyncio).

A connection is assembled from its parts: the handshake (handshake.py), the transmission phase
(transmission.py), its output and flow control (flow.py). This module keeps the transport callbacks
that drive them, and the `Server` that owns the listeners, the exports and the payload budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import socket
import time
from typing import Any

from iolab.nbd import replies
from iolab.nbd.addresses import (
    DEFAULT_SOCKET_MODE,
    Address,
    UnixSocketPath,
    bind_unix,
    check_remote,
    is_local,
)
from iolab.nbd.export import Export
from iolab.nbd.handshake import Handshake
from iolab.nbd.limits import MAX_HANDSHAKE_BUFFER, Limits, PayloadBudget
from iolab.nbd.tls import HANDSHAKE_TIMEOUT, TLSConfig
from iolab.nbd.transmission import Transmission
from iolab.nbdwire import proto

__all__ = ["HANDSHAKE_TIMEOUT", "Connection", "Limits", "Server"]

log = logging.getLogger("iolab.nbd")


class Connection(Handshake, Transmission):
    """The asyncio protocol of one client: transport events, handed to the phase the client is in."""

    server: Server

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
            replies.U64.pack(proto.NBDMAGIC)
            + replies.U64.pack(proto.IHAVEOPT)
            + replies.U16.pack(proto.FLAG_FIXED_NEWSTYLE | proto.FLAG_NO_ZEROES)
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
        self._give_back_budget()
        if self not in self.server.connections:
            return  # refused at accept
        self.server.connections.discard(self)
        if self.export is not None and self.transmitting:
            self.export.stats.connections -= 1
        self.server.connection_closed()

    def _give_back_budget(self) -> None:
        """Gone: release what was held for requests that will never run and replies never sent."""
        held = self.head_grant + self.unsent + sum(release for _, release in self.outq)
        self.head_grant = self.unsent = self.outq_bytes = 0
        self.outq.clear()
        self.server.budget.forget(self, held)

    def pause_writing(self) -> None:
        self.write_paused = True
        self._charge_unsent()
        self._update_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._charge_unsent()
        self._send_queued()
        self._update_reading()


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
        self.budget = PayloadBudget(self.limits.max_buffer)
        # read when the server starts, so a test can shorten it
        self.tls_handshake_timeout = HANDSHAKE_TIMEOUT
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
