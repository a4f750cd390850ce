"""The fixed newstyle handshake: option haggling until the client picks an export.

Each NBD_OPT_* has one handler in `OPTIONS`; the rules that apply to every option (shutting down, TLS
required) are checked once, before the table is consulted.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Awaitable, Callable

from iolab.nbd import replies
from iolab.nbd.export import Export
from iolab.nbd.flow import Abort, ConnectionBase
from iolab.nbd.limits import MAX_OPTION_LENGTH
from iolab.nbdwire import proto

log = logging.getLogger("iolab.nbd")

# (connection, option, its data) -> True when transmission starts
OptionHandler = Callable[["Handshake", int, bytes], Awaitable[bool]]


class Handshake(ConnectionBase):
    def _opt_reply(self, opt: int, rep: int, data: bytes = b"") -> None:
        self._write(replies.option(opt, rep, data))

    def _opt_error(self, opt: int, rep: int, message: str) -> None:
        self._write(replies.option_error(opt, rep, message))

    async def _handshake(self) -> None:
        try:
            (client_flags,) = replies.U32.unpack(await self.queue.readexactly(4))
            if client_flags & ~(proto.FLAG_C_FIXED_NEWSTYLE | proto.FLAG_C_NO_ZEROES):
                raise Abort(f"unknown client flags {client_flags:#x}")
            self.no_zeroes = bool(client_flags & proto.FLAG_C_NO_ZEROES)
            while not self.closed:
                magic, opt, length = proto.OPT_HEADER.unpack(await self.queue.readexactly(16))
                if magic != proto.IHAVEOPT:
                    raise Abort("bad option magic")
                if length > MAX_OPTION_LENGTH:
                    raise Abort(f"option of {length} bytes")
                data = await self.queue.readexactly(length)
                if await self._option(opt, data):
                    break
        except Abort as exc:
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
                raise Abort("shutting down")
            self._opt_error(opt, proto.REP_ERR_SHUTDOWN, "server shutting down")
            return False
        if (
            opt != proto.OPT_STARTTLS
            and server.tls is not None
            and server.tls.required
            and not self.tls_active
            and opt != proto.OPT_ABORT
        ):
            if opt == proto.OPT_EXPORT_NAME:
                raise Abort("NBD_OPT_EXPORT_NAME without TLS (the server requires TLS)")
            log.info("client %s: option %d refused, TLS is required", self.peer, opt)
            self._opt_error(opt, proto.REP_ERR_TLS_REQD, "this server requires TLS: send NBD_OPT_STARTTLS")
            return False
        handler = OPTIONS.get(opt)
        if handler is None:
            self._opt_error(opt, proto.REP_ERR_UNSUP, f"option {opt} not supported")
            return False
        return await handler(self, opt, data)

    def _select(self, export: Export) -> None:
        """The client chose `export`: transmission starts with it."""
        self.export = export
        self.meta = self.meta_export is not None and self.server.find_export(self.meta_export) is export

    async def _export_name(self, opt: int, data: bytes) -> bool:
        export = self.server.find_export(data.decode(errors="replace"))
        if export is None:
            raise Abort("unknown export")  # this option cannot fail politely
        self._select(export)
        reply = replies.U64.pack(export.size) + replies.U16.pack(export.transmission_flags(self.structured))
        if not self.no_zeroes:
            reply += bytes(124)
        self._write(reply)
        return True

    async def _abort_option(self, opt: int, data: bytes) -> bool:
        self._opt_reply(opt, proto.REP_ACK)
        self._uncork()  # out before the close below, which drops what is still corked
        if self.transport is not None:
            self.transport.close()
        self.closed = True
        return False

    async def _list(self, opt: int, data: bytes) -> bool:
        if data:
            self._opt_error(opt, proto.REP_ERR_INVALID, "NBD_OPT_LIST takes no data")
            return False
        for export in self.server.exports.values():
            name = export.name.encode()
            self._opt_reply(
                opt, proto.REP_SERVER, replies.U32.pack(len(name)) + name + export.description.encode()
            )
        self._opt_reply(opt, proto.REP_ACK)
        return False

    async def _structured_reply(self, opt: int, data: bytes) -> bool:
        if data:
            self._opt_error(opt, proto.REP_ERR_INVALID, "NBD_OPT_STRUCTURED_REPLY takes no data")
        elif self.structured:
            self._opt_error(opt, proto.REP_ERR_INVALID, "structured replies already negotiated")
        else:
            self.structured = True
            self._opt_reply(opt, proto.REP_ACK)
        return False

    async def _starttls(self, opt: int, data: bytes) -> bool:
        tls = self.server.tls
        if tls is None:
            self._opt_error(opt, proto.REP_ERR_POLICY, "TLS is off on this server (iolab serve --tls=on)")
            return False
        if data:
            self._opt_error(opt, proto.REP_ERR_INVALID, "NBD_OPT_STARTTLS takes no data")
            return False
        if self.tls_active:
            self._opt_error(opt, proto.REP_ERR_INVALID, "TLS is already on")
            return False
        if self.queue.buf:
            # The client may send nothing before our reply: bytes already here came in plaintext and
            # must not be taken as part of the encrypted session (an injection).
            raise Abort("data sent after NBD_OPT_STARTTLS before its reply")
        self._opt_reply(opt, proto.REP_ACK)
        self._uncork()  # the acknowledgement goes out in plaintext, before the transport changes
        plain = self.transport
        if plain is None or self.closed or plain.is_closing():
            raise Abort("connection closed before the TLS handshake")
        # start_tls switches the transport's protocol before it yields, so no byte is read in plaintext
        # from here on; the handshake runs on the loop while this coroutine waits.
        try:
            upgraded = await self.loop.start_tls(
                plain,
                self,
                tls.context,
                server_side=True,
                ssl_handshake_timeout=self.server.tls_handshake_timeout,
            )
        except Exception as exc:  # ssl.SSLError, a reset, the handshake timeout (uvloop: its own types)
            # asyncio does not pass on the loss of a connection whose TLS handshake timed out or was
            # reset, so the connection would stay counted forever: end it here
            self.connection_lost(exc)
            raise Abort(f"TLS handshake failed: {exc}") from None
        if upgraded is None or self.closed:
            raise Abort("connection closed during the TLS handshake")
        self.transport = upgraded
        self.tls_active = True
        # proto.md: no negotiation state from before NBD_OPT_STARTTLS survives it
        self.structured = False
        self.meta_export = None
        session = upgraded.get_extra_info("ssl_object")
        if session is not None:
            log.info("client %s: %s, %s", self.peer, session.version(), session.cipher()[0])
        return False

    async def _info_go(self, opt: int, data: bytes) -> bool:
        if len(data) < 6:
            self._opt_error(opt, proto.REP_ERR_INVALID, "option too short")
            return False
        (namelen,) = replies.U32.unpack_from(data, 0)
        if namelen > len(data) - 6:
            self._opt_error(opt, proto.REP_ERR_INVALID, "name length beyond the option")
            return False
        name = data[4 : 4 + namelen].decode(errors="replace")
        (nreq,) = replies.U16.unpack_from(data, 4 + namelen)
        if 6 + namelen + 2 * nreq != len(data):
            self._opt_error(opt, proto.REP_ERR_INVALID, "information request list does not match length")
            return False
        requests = {replies.U16.unpack_from(data, 6 + namelen + 2 * i)[0] for i in range(nreq)}
        export = self.server.find_export(name)
        if export is None:
            self._opt_error(opt, proto.REP_ERR_UNKNOWN, f"no export named {name!r}")
            return False
        flags = export.transmission_flags(self.structured)
        self._opt_reply(opt, proto.REP_INFO, replies.INFO_EXPORT.pack(proto.INFO_EXPORT, export.size, flags))
        if proto.INFO_NAME in requests:
            self._opt_reply(opt, proto.REP_INFO, replies.U16.pack(proto.INFO_NAME) + export.name.encode())
        if proto.INFO_DESCRIPTION in requests and export.description:
            self._opt_reply(
                opt, proto.REP_INFO, replies.U16.pack(proto.INFO_DESCRIPTION) + export.description.encode()
            )
        # Always sent: it costs nothing and tells every client the limit we enforce.
        self._opt_reply(
            opt,
            proto.REP_INFO,
            replies.INFO_BLOCK_SIZE.pack(
                proto.INFO_BLOCK_SIZE, export.min_block, export.preferred_block, export.max_payload
            ),
        )
        self._opt_reply(opt, proto.REP_ACK)
        if opt == proto.OPT_INFO:
            return False
        self._select(export)
        return True

    async def _meta_context(self, opt: int, data: bytes) -> bool:
        setting = opt == proto.OPT_SET_META_CONTEXT
        if setting:
            self.meta_export = None  # replaced even when this request fails
        if not self.structured:
            self._opt_error(opt, proto.REP_ERR_INVALID, "negotiate structured replies first")
            return False
        try:
            (namelen,) = replies.U32.unpack_from(data, 0)
            pos = 4 + namelen
            if pos + 4 > len(data):
                raise ValueError
            name = data[4:pos].decode(errors="replace")
            (nqueries,) = replies.U32.unpack_from(data, pos)
            pos += 4
            queries = []
            for _ in range(nqueries):
                (qlen,) = replies.U32.unpack_from(data, pos)
                pos += 4
                if pos + qlen > len(data):
                    raise ValueError
                queries.append(data[pos : pos + qlen].decode(errors="replace"))
                pos += qlen
            if pos != len(data):
                raise ValueError
        except (ValueError, struct.error):
            self._opt_error(opt, proto.REP_ERR_INVALID, "malformed metadata context request")
            return False
        if self.server.find_export(name) is None:
            self._opt_error(opt, proto.REP_ERR_UNKNOWN, f"no export named {name!r}")
            return False
        if any(":" not in q for q in queries):
            self._opt_error(opt, proto.REP_ERR_INVALID, "a query lacks the namespace colon")
            return False
        if setting:
            selected = proto.META_BASE_ALLOCATION in queries
        else:
            selected = not queries or any(q in ("base:", proto.META_BASE_ALLOCATION) for q in queries)
        if selected:
            self._opt_reply(
                opt,
                proto.REP_META_CONTEXT,
                replies.U32.pack(replies.META_CONTEXT_ID if setting else 0)
                + proto.META_BASE_ALLOCATION.encode(),
            )
            if setting:
                self.meta_export = name
        self._opt_reply(opt, proto.REP_ACK)
        return False


OPTIONS: dict[int, OptionHandler] = {
    proto.OPT_EXPORT_NAME: Handshake._export_name,
    proto.OPT_ABORT: Handshake._abort_option,
    proto.OPT_LIST: Handshake._list,
    proto.OPT_STARTTLS: Handshake._starttls,
    proto.OPT_INFO: Handshake._info_go,
    proto.OPT_GO: Handshake._info_go,
    proto.OPT_STRUCTURED_REPLY: Handshake._structured_reply,
    proto.OPT_LIST_META_CONTEXT: Handshake._meta_context,
    proto.OPT_SET_META_CONTEXT: Handshake._meta_context,
}
