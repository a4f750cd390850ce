"""A connection's state and its output side: replies gathered per loop turn and sent in one write,
large read data handed over a slice at a time, and the flow control that stops reading from a client
that floods requests or does not read its replies."""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from typing import Any, Protocol

from iolab.nbd.export import Export
from iolab.nbd.limits import (
    HANDOFF_PAYLOAD,
    MAX_HANDSHAKE_BUFFER,
    MAX_INFLIGHT_BYTES,
    MAX_INFLIGHT_REQUESTS,
    SEND_SLICE,
    Limits,
    PayloadBudget,
)
from iolab.nbd.tls import TLSConfig

log = logging.getLogger("iolab.nbd")


class Host(Protocol):
    """The server, as its connections see it."""

    loop: asyncio.AbstractEventLoop
    limits: Limits
    budget: PayloadBudget
    tls: TLSConfig | None
    tls_handshake_timeout: float
    shutting_down: bool
    exports: dict[str, Export]
    tasks: set[asyncio.Task[Any]]

    def find_export(self, name: str) -> Export | None: ...


class Abort(Exception):
    """Drop the connection (protocol violation, or the client went away)."""


class ByteQueue:
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
                raise Abort("client closed during the handshake")
            self.waiter = self.loop.create_future()
            await self.waiter
        data = bytes(self.buf[:n])
        del self.buf[:n]
        self.on_drain()
        return data


class ConnectionBase(asyncio.Protocol):
    """What every part of a connection shares: its state, its output, its flow control."""

    def __init__(self, server: Host) -> None:
        self.server = server
        self.loop = server.loop
        self.transport: asyncio.Transport | None = None
        self.queue = ByteQueue(self.loop, self._update_reading)
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
        # the server-wide payload budget (PayloadBudget.reserve): what this connection holds and waits for
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

    def _parse(self) -> None:
        """Parse and start the requests in `buf` (the transmission phase provides it)."""
        raise NotImplementedError

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
            self.server.budget.charge(size - self.unsent)
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
                self.server.budget.release(held)

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
                    self.server.budget.release(release)
                if not self.outq and (self.disconnecting or self.eof):
                    self._maybe_finish()

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
