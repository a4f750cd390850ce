"""The client side of NBD's handshake, for the nbd engine (`ioengine=nbd`, `uri=`).

The engine's I/O runs in C (csrc/engine_nbd.c) on sockets that are already in the transmission phase:
this module parses the URI, connects, does the fixed-newstyle handshake (NBD_OPT_GO, falling back to
NBD_OPT_EXPORT_NAME when the server does not know GO) and hands over the connected socket with what the
server said about the export (size, transmission flags). Structured replies are not negotiated: the
engine reads simple replies only. TLS (nbds://) is refused.

Every failure is an `NbdError` whose message names the URI and says what to do.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import urllib.parse
from dataclasses import dataclass

from iolab.nbdwire import proto

DEFAULT_PORT = 10809
#: oldstyle servers send this instead of IHAVEOPT
_OLDSTYLE_MAGIC = 0x00420281861253
#: a connect or handshake that takes longer than this fails (the transmission phase has no timeout)
CONNECT_TIMEOUT = 10.0
#: the probe reads the export's first and last bytes in pieces of this size (servers take 32 MiB)
_PROBE_CHUNK = 1 << 20


class NbdError(Exception):
    """A bad URI, a server that cannot be reached, or a handshake the server refused."""


@dataclass(frozen=True)
class NbdUri:
    text: str
    kind: str  # "unix" or "tcp"
    export: str
    host: str = ""
    port: int = DEFAULT_PORT
    path: str = ""

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class ExportInfo:
    size: int
    flags: int  # transmission flags (proto.FLAG_*)

    @property
    def read_only(self) -> bool:
        return bool(self.flags & proto.FLAG_READ_ONLY)

    @property
    def can_flush(self) -> bool:
        return bool(self.flags & proto.FLAG_SEND_FLUSH)

    @property
    def can_trim(self) -> bool:
        return bool(self.flags & proto.FLAG_SEND_TRIM)

    @property
    def multi_conn(self) -> bool:
        return bool(self.flags & proto.FLAG_CAN_MULTI_CONN)

    def describe(self) -> str:
        names = [
            ("read-only", self.read_only),
            ("flush", self.can_flush),
            ("trim", self.can_trim),
            ("multi-conn", self.multi_conn),
        ]
        return f"{self.size} bytes" + "".join(f", {n}" for n, on in names if on)


def parse_uri(text: str) -> NbdUri:
    """nbd://HOST[:PORT][/EXPORT] or nbd+unix:///[EXPORT]?socket=PATH (the NBD URI format)."""
    u = urllib.parse.urlsplit(text)
    scheme = u.scheme.lower()
    if scheme in ("nbds", "nbds+unix", "nbds+vsock"):
        raise NbdError(f"uri={text}: TLS (nbds) is not supported by iolab's nbd engine; use an nbd:// URI")
    if scheme == "nbd+vsock":
        raise NbdError(f"uri={text}: nbd+vsock URIs are not supported; use nbd:// or nbd+unix://")
    if scheme not in ("nbd", "nbd+unix"):
        raise NbdError(
            f"uri={text}: not an NBD URI; expected nbd://HOST[:PORT]/EXPORT or nbd+unix:///EXPORT?socket=PATH"
        )
    export = urllib.parse.unquote(u.path[1:] if u.path.startswith("/") else u.path)
    query = urllib.parse.parse_qs(u.query, keep_blank_values=True)
    unknown = sorted(k for k in query if k != "socket" and not k.startswith("tls"))
    if unknown:
        raise NbdError(f"uri={text}: unknown query parameter {unknown[0]!r} (only socket= is supported)")
    if any(k.startswith("tls") for k in query):
        raise NbdError(f"uri={text}: TLS parameters need TLS, which iolab's nbd engine does not support")
    if scheme == "nbd+unix":
        if u.netloc:
            raise NbdError(f"uri={text}: an nbd+unix URI has no host (write nbd+unix:///EXPORT?socket=PATH)")
        paths = query.get("socket", [])
        if len(paths) != 1 or not paths[0]:
            raise NbdError(f"uri={text}: nbd+unix needs one ?socket=PATH")
        return NbdUri(text, "unix", export, path=paths[0])
    if "socket" in query:
        raise NbdError(f"uri={text}: socket= belongs to nbd+unix URIs")
    try:
        port = u.port
    except ValueError:
        raise NbdError(f"uri={text}: bad port") from None
    if not u.hostname:
        raise NbdError(f"uri={text}: no host (write nbd://HOST[:PORT]/EXPORT)")
    return NbdUri(text, "tcp", export, host=u.hostname, port=port or DEFAULT_PORT)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("the server closed the connection during the handshake")
        buf += chunk
    return bytes(buf)


def _connect(uri: NbdUri) -> socket.socket:
    try:
        if uri.kind == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(CONNECT_TIMEOUT)
            try:
                sock.connect(uri.path)
            except BaseException:
                sock.close()
                raise
            return sock
        sock = socket.create_connection((uri.host, uri.port), timeout=CONNECT_TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    except OSError as exc:
        where = uri.path if uri.kind == "unix" else f"{uri.host}:{uri.port}"
        why = exc.strerror or str(exc)
        raise NbdError(
            f"uri={uri}: cannot connect to the NBD server at {where}: {why} (is it running?)"
        ) from None


def _send_option(sock: socket.socket, option: int, data: bytes) -> None:
    sock.sendall(proto.OPT_HEADER.pack(proto.IHAVEOPT, option, len(data)) + data)


def _read_option_reply(sock: socket.socket, option: int) -> tuple[int, bytes]:
    magic, opt, rtype, length = proto.OPT_REPLY.unpack(_recv_exact(sock, proto.OPT_REPLY.size))
    if magic != proto.OPT_REPLY_MAGIC or opt != option:
        raise ConnectionError(f"bad option reply (magic {magic:#x}, option {opt})")
    if length > 1 << 20:
        raise ConnectionError(f"option reply of {length} bytes is too long")
    return rtype, _recv_exact(sock, length)


_REP_ERRORS = {
    proto.REP_ERR_UNSUP: "not supported",
    proto.REP_ERR_POLICY: "refused by the server's policy",
    proto.REP_ERR_INVALID: "invalid",
    proto.REP_ERR_PLATFORM: "not supported on the server's platform",
    proto.REP_ERR_TLS_REQD: "the server requires TLS (iolab's nbd engine does not speak TLS)",
    proto.REP_ERR_UNKNOWN: "no such export",
    proto.REP_ERR_SHUTDOWN: "the server is shutting down",
    proto.REP_ERR_BLOCK_SIZE_REQD: "the server requires block size negotiation",
    proto.REP_ERR_TOO_BIG: "request too big",
}


def _go(sock: socket.socket, uri: NbdUri, no_zeroes: bool) -> ExportInfo:
    name = uri.export.encode()
    _send_option(sock, proto.OPT_GO, struct.pack(">I", len(name)) + name + struct.pack(">H", 0))
    info: ExportInfo | None = None
    while True:
        rtype, data = _read_option_reply(sock, proto.OPT_GO)
        if rtype == proto.REP_INFO:
            if len(data) >= 12 and struct.unpack(">H", data[:2])[0] == proto.INFO_EXPORT:
                size, flags = struct.unpack(">QH", data[2:12])
                info = ExportInfo(size, flags)
            continue
        if rtype == proto.REP_ACK:
            if info is None:
                raise ConnectionError("the server acknowledged NBD_OPT_GO without the export's size")
            return info
        if rtype == proto.REP_ERR_UNSUP:
            # an older server: NBD_OPT_EXPORT_NAME ends the handshake (no error reply possible)
            _send_option(sock, proto.OPT_EXPORT_NAME, name)
            size, flags = struct.unpack(">QH", _recv_exact(sock, 10))
            if not no_zeroes:
                _recv_exact(sock, 124)
            return ExportInfo(size, flags)
        if rtype & (1 << 31):
            why = _REP_ERRORS.get(rtype, f"error {rtype & 0x7FFFFFFF}")
            text = data.decode("utf-8", "replace").strip()
            export = f"export {uri.export!r}" if uri.export else "the default export"
            raise NbdError(f"uri={uri}: the server refused {export}: {why}" + (f" ({text})" if text else ""))
        # unknown reply types must be ignored (proto.md)


def connect(uri: NbdUri) -> tuple[socket.socket, ExportInfo]:
    """A socket in the transmission phase (blocking, no timeout) and the export's size and flags."""
    sock = _connect(uri)
    try:
        magic, second = struct.unpack(">QQ", _recv_exact(sock, 16))
        if magic != proto.NBDMAGIC:
            raise NbdError(f"uri={uri}: not an NBD server (no NBDMAGIC greeting)")
        if second == _OLDSTYLE_MAGIC:
            raise NbdError(
                f"uri={uri}: the server speaks the oldstyle handshake, which iolab does not support"
            )
        if second != proto.IHAVEOPT:
            raise NbdError(f"uri={uri}: not an NBD server (unknown handshake {second:#x})")
        (hflags,) = struct.unpack(">H", _recv_exact(sock, 2))
        if not hflags & proto.FLAG_FIXED_NEWSTYLE:
            raise NbdError(f"uri={uri}: the server does not offer the fixed newstyle handshake")
        no_zeroes = bool(hflags & proto.FLAG_NO_ZEROES)
        cflags = proto.FLAG_C_FIXED_NEWSTYLE | (proto.FLAG_C_NO_ZEROES if no_zeroes else 0)
        sock.sendall(struct.pack(">I", cflags))
        info = _go(sock, uri, no_zeroes)
        sock.settimeout(None)
        return sock, info
    except NbdError:
        sock.close()
        raise
    except (OSError, ConnectionError, struct.error) as exc:
        sock.close()
        why = (exc.strerror if isinstance(exc, OSError) and exc.strerror else None) or str(exc)
        raise NbdError(f"uri={uri}: NBD handshake failed: {why}") from None


def disconnect(sock: socket.socket) -> None:
    """NBD_CMD_DISC (nothing may be in flight), then close."""
    with contextlib.suppress(OSError):
        sock.sendall(proto.REQUEST.pack(proto.REQUEST_MAGIC, 0, proto.CMD_DISC, 0, 0, 0))
    sock.close()


def read_range(sock: socket.socket, offset: int, length: int) -> bytes:
    """Read `length` bytes at `offset` with simple replies (for the safety gate's probe)."""
    out = bytearray()
    while len(out) < length:
        n = min(_PROBE_CHUNK, length - len(out))
        sock.sendall(proto.REQUEST.pack(proto.REQUEST_MAGIC, 0, proto.CMD_READ, 1, offset + len(out), n))
        magic, err, cookie = proto.SIMPLE_REPLY.unpack(_recv_exact(sock, proto.SIMPLE_REPLY.size))
        if magic != proto.SIMPLE_REPLY_MAGIC or cookie != 1:
            raise ConnectionError("bad reply to a read")
        if err:
            raise OSError(err, f"the server failed a read at {offset + len(out)}")
        out += _recv_exact(sock, n)
    return bytes(out)


def probe(text: str) -> tuple[NbdUri, ExportInfo]:
    """Connect, read what the server says about the export, disconnect (fio's nbd setup does the same)."""
    uri = parse_uri(text)
    sock, info = connect(uri)
    disconnect(sock)
    return uri, info
