"""The transmission phase: requests parsed straight from the receive buffer, checked, started on the
layer stack, and answered.

Each request is started at once (eagerly, without a Task), so a request that never waits costs no
scheduling; one that waits (thread pool, breakpoint, delay) carries on in a Task while the connection
keeps reading and serving the requests behind it.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from iolab.nbd import replies
from iolab.nbd.commands import COMMANDS, REPLY_DATA, REPLY_EXTENTS, Command
from iolab.nbd.flow import ConnectionBase
from iolab.nbd.layers import NBDError
from iolab.nbd.limits import HANDOFF_PAYLOAD
from iolab.nbdwire import proto

log = logging.getLogger("iolab.nbd")


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


class Transmission(ConnectionBase):
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
        budget = self.server.budget
        max_buffer = budget.max_buffer
        max_payload = self.export.max_payload  # type: ignore[union-attr]
        waiters = budget.waiters
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
                    if not waiters and budget.buffered + length <= max_buffer:
                        budget.buffered += length  # (PayloadBudget.reserve's fast path, inline: per request)
                        self.head_grant = length
                    elif not budget.reserve(self, length):
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
                    elif not waiters and budget.buffered + length <= max_buffer:
                        budget.buffered += length  # (PayloadBudget.reserve's fast path, inline: per request)
                        charge = length
                    elif budget.reserve(self, length):
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
        command = COMMANDS.get(cmd)
        bad = (
            (errno.EINVAL, f"unknown command {cmd}")
            if command is None
            else export.check_command(command, flags, offset, length, self.structured, self.meta)
        )
        if bad is not None:
            export.stats.rejected += 1
            self._reply_error(cmd, cookie, bad[0], bad[1])
            if charge:
                self.server.budget.release(charge)
            return
        assert command is not None
        coro = command.start(export.top, flags, offset, length, payload)
        self.inflight += 1
        budget = self.server.budget
        size = length if command.data else 0
        self.inflight_bytes += size

        def finish(result: Any, exc: BaseException | None) -> None:
            self.inflight -= 1
            self.inflight_bytes -= size
            self._complete(command, flags, cookie, offset, length, result, exc)
            if charge:
                if self.corked is not None:
                    self.release_after_write += charge  # _uncork runs soon (scheduled, or the batch's)
                else:
                    budget.release(charge)
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
        command: Command,
        flags: int,
        cookie: int,
        offset: int,
        length: int,
        result: Any,
        exc: BaseException | None,
    ) -> None:
        export = self.export
        assert export is not None
        st = export.stats.per_cmd[command.name]
        st.ops += 1
        if exc is not None:
            st.errors += 1
            if isinstance(exc, NBDError):
                self._reply_error(command.code, cookie, exc.errno, exc.message, exc.offset)
            else:
                log.error("request %s failed", command.name, exc_info=exc)
                self._reply_error(command.code, cookie, errno.EIO, f"internal error: {exc}")
            return
        st.bytes += length
        if self.closed:
            return
        if command.reply == REPLY_DATA:
            header = replies.read_header(self.structured, cookie, offset, length)
            if self.structured and length == 0:
                self._write(header)
            elif length >= HANDOFF_PAYLOAD:
                self._write(header)  # the data goes out as it is, not copied behind the header
                self._write(result)
            else:
                self._write(header + result)
        elif command.reply == REPLY_EXTENTS:
            self._write(replies.block_status(cookie, length, flags, result))
        else:
            self._write(replies.done(cookie))

    def _reply_error(self, cmd: int, cookie: int, err: int, message: str, offset: int | None = None) -> None:
        if not self.closed:
            self._write(replies.error(self.structured, cmd, cookie, err, message, offset))
