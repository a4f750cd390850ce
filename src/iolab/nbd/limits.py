"""What a client can make the server hold: the configured limits, the per-connection bounds, and the
server-wide payload budget that requests wait for."""

from __future__ import annotations

import collections
import contextlib
from dataclasses import dataclass
from typing import Protocol

MAX_OPTION_LENGTH = 1 << 16  # no legitimate option is larger (names are at most 4096 bytes)
# Per connection: past these, stop parsing and reading until replies drain, so a client that floods
# requests or never reads its replies holds a bounded amount of server memory.
MAX_INFLIGHT_BYTES = 32 << 20
MAX_INFLIGHT_REQUESTS = 256
# A client in the handshake sends small options; more than this unread stops reading from it.
MAX_HANDSHAKE_BUFFER = MAX_OPTION_LENGTH + 64
HANDOFF_PAYLOAD = 1 << 20  # a write payload this large is passed on in the receive buffer itself
SEND_SLICE = 1 << 20  # large read data is handed to the transport this much at a time


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


class BudgetHolder(Protocol):
    """A connection, as the budget sees it."""

    head_grant: int  # reserved for the request at the head of its buffer
    budget_wait: int  # bytes it queued for; it reads nothing meanwhile

    def _update_reading(self) -> None: ...


class PayloadBudget:
    """Bytes reserved by requests in flight plus replies not yet sent, across all connections, and the
    connections waiting (FIFO) for room. Connections read `buffered` and `waiters` directly on their
    per-request fast path."""

    def __init__(self, max_buffer: int) -> None:
        self.max_buffer = max_buffer
        self.buffered = 0
        self.waiters: collections.deque[BudgetHolder] = collections.deque()

    def reserve(self, conn: BudgetHolder, size: int) -> bool:
        """Reserve `size` bytes for the request at the head of `conn`'s buffer (conn.head_grant), or queue
        `conn` and return False: it stops reading until `_grant` gives it the bytes. A request larger
        than the whole budget still runs, alone."""
        if not self.waiters and (self.buffered == 0 or self.buffered + size <= self.max_buffer):
            self.buffered += size
            conn.head_grant = size
            return True
        conn.budget_wait = size
        self.waiters.append(conn)
        return False

    def release(self, size: int) -> None:
        self.buffered -= size
        if self.waiters:
            self._grant()

    def charge(self, delta: int) -> None:
        """Unsent reply bytes: not refusable (already produced), but they make others wait."""
        if delta > 0:
            self.buffered += delta
        else:
            self.release(-delta)

    def forget(self, conn: BudgetHolder, held: int) -> None:
        """A connection went away: give back the `held` bytes of requests it will never run."""
        if conn.budget_wait:
            conn.budget_wait = 0
            with contextlib.suppress(ValueError):
                self.waiters.remove(conn)
        self.release(held)

    def _grant(self) -> None:
        while self.waiters:
            conn = self.waiters[0]
            size = conn.budget_wait
            if self.buffered and self.buffered + size > self.max_buffer:
                return
            self.waiters.popleft()
            self.buffered += size
            conn.budget_wait = 0
            conn.head_grant = size
            conn._update_reading()  # parses the request it stopped at
