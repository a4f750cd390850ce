"""NBD TLS in `iolab serve` (NBD_OPT_STARTTLS, x509): real TLS clients (libnbd's nbdinfo and nbdcopy,
qemu-img, qemu-io), plaintext clients refused under --tls=require, a raw Python client for the protocol's
corner cases, and a TCP relay that records the bytes on the wire to show the data is not in clear text.

The certificates are made with openssl in a temporary directory (EC keys: fast), in the x509 directory
layout that QEMU and libnbd read: ca-cert.pem, server-cert.pem, server-key.pem, client-cert.pem, ...
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from iolab.nbd import serve
from iolab.nbd import server as server_module
from iolab.nbd.tls import make_config
from iolab.nbdwire import proto
from nbd_helpers import DEBIAN_PYTHON, TIMEOUT, clean_env, ctl, make_image, need, need_tool, run, serve_cli

MiB = 1 << 20
SERVER_EXT = (
    "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n"
)
CLIENT_EXT = "extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature\n"


@dataclass
class PKI:
    ca_cert: Path
    server: Path  # ca-cert.pem, server-cert.pem, server-key.pem
    client: Path  # ca-cert.pem only: verifies the server, presents no certificate
    client_cert: Path  # ca-cert.pem, client-cert.pem, client-key.pem
    wrong: Path  # ca-cert.pem of another CA
    root: Path


def _openssl(*args: str) -> None:
    run([need_tool("openssl", "openssl"), *args])


def _ec_key_and_request(key: Path, out: Path, subject: str, self_signed: bool) -> None:
    args = ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    args += ["-keyout", str(key), "-out", str(out), "-subj", subject]
    if self_signed:
        args += ["-x509", "-days", "2"]
    _openssl(*args)


def _signed(root: Path, name: str, subject: str, ext: str, ca: Path, ca_key: Path, serial: int) -> None:
    _ec_key_and_request(root / f"{name}-key.pem", root / f"{name}.csr", subject, self_signed=False)
    (root / f"{name}.ext").write_text(ext)
    _openssl(
        "x509", "-req", "-in", str(root / f"{name}.csr"), "-CA", str(ca), "-CAkey", str(ca_key),
        "-set_serial", str(serial), "-days", "2", "-out", str(root / f"{name}-cert.pem"),
        "-extfile", str(root / f"{name}.ext"),
    )  # fmt: skip


def _layout(root: Path, name: str, files: dict[str, Path]) -> Path:
    d = root / name
    d.mkdir()
    for target, source in files.items():
        shutil.copy(source, d / target)
    return d


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    root = tmp_path_factory.mktemp("pki")
    _ec_key_and_request(root / "ca-key.pem", root / "ca-cert.pem", "/CN=iolab test CA", self_signed=True)
    _ec_key_and_request(root / "wrong-key.pem", root / "wrong-cert.pem", "/CN=another CA", self_signed=True)
    ca, ca_key = root / "ca-cert.pem", root / "ca-key.pem"
    _signed(root, "server", "/CN=localhost", SERVER_EXT, ca, ca_key, 1)
    _signed(root, "client", "/CN=iolab test client", CLIENT_EXT, ca, ca_key, 2)
    return PKI(
        ca_cert=ca,
        server=_layout(
            root,
            "server",
            {
                "ca-cert.pem": ca,
                "server-cert.pem": root / "server-cert.pem",
                "server-key.pem": root / "server-key.pem",
            },
        ),
        client=_layout(root, "client", {"ca-cert.pem": ca}),
        client_cert=_layout(
            root,
            "client-cert",
            {
                "ca-cert.pem": ca,
                "client-cert.pem": root / "client-cert.pem",
                "client-key.pem": root / "client-key.pem",
            },
        ),
        wrong=_layout(root, "wrong", {"ca-cert.pem": root / "wrong-cert.pem"}),
        root=root,
    )


@pytest.fixture
def sockdir() -> Iterator[Path]:
    # short: a unix socket path must fit in 108 bytes, which pytest's tmp_path may not
    d = tempfile.mkdtemp(prefix="iolab-tls-")
    try:
        yield Path(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def libnbd_uri(uri: str, certs: Path) -> str:
    """An nbds URI (as the server prints it) with libnbd's certificate directory added."""
    return f"{uri}{'&' if '?' in uri else '?'}tls-certificates={certs}"


def qemu_tls(certs: Path) -> list[str]:
    return ["--object", f"tls-creds-x509,id=tls0,dir={certs},endpoint=client"]


def qemu_nbd_opts(sock: Path, tls: bool = True) -> str:
    # over a unix socket QEMU has no host name to check the certificate against: give it one
    opts = f"driver=nbd,server.type=unix,server.path={sock}"
    return opts + (",tls-creds=tls0,tls-hostname=localhost" if tls else "")


def connections_left(srv: Any) -> int:
    """Connections the server still holds, once they have had a moment to close."""
    deadline = time.monotonic() + 5
    while srv._service.server.connections and time.monotonic() < deadline:
        time.sleep(0.02)
    return len(srv._service.server.connections)


def reads(srv: Any) -> int:
    ops: int = srv.stats()["commands"]["read"]["ops"]
    return ops


# --- real clients ----------------------------------------------------------------------------------


def test_require_libnbd_writes_and_reads_through_tls(tmp_path: Path, sockdir: Path, pki: PKI) -> None:
    nbdcopy = need_tool("nbdcopy", "libnbd-bin")
    nbdinfo = need_tool("nbdinfo", "libnbd-bin")
    src = tmp_path / "src.img"
    src.write_bytes(os.urandom(6 * MiB) + bytes(2 * MiB))
    img = make_image(tmp_path / "export.img", 8 * MiB)
    tls = make_config("require", certs_dir=str(pki.server))
    with serve(img, listen=f"unix:{sockdir / 's'}", tls=tls) as srv:
        assert srv.uri == f"nbds+unix:///?socket={sockdir / 's'}"
        uri = libnbd_uri(srv.uri, pki.client)
        info = json.loads(run([nbdinfo, "--json", uri]).stdout)
        assert info["TLS"] is True and info["exports"][0]["export-size"] == 8 * MiB
        run([nbdcopy, str(src), uri])
        back = tmp_path / "back.img"
        run([nbdcopy, uri, str(back)])
        assert reads(srv) > 0
    assert sha256(img) == sha256(src)
    assert sha256(back) == sha256(src)


def test_require_qemu_img_and_qemu_io_through_tls(tmp_path: Path, sockdir: Path, pki: PKI) -> None:
    qemu_img = need_tool("qemu-img", "qemu-utils")
    qemu_io = need_tool("qemu-io", "qemu-utils")
    src = tmp_path / "src.img"
    src.write_bytes(os.urandom(4 * MiB))
    img = make_image(tmp_path / "export.img", 4 * MiB)
    sock = sockdir / "s"
    with serve(img, listen=f"unix:{sock}", tls=make_config("require", certs_dir=str(pki.server))):
        info = run([qemu_img, "info", *qemu_tls(pki.client), "--image-opts", qemu_nbd_opts(sock)]).stdout
        assert "virtual size: 4 MiB" in info
        run([qemu_img, "convert", "-n", "-f", "raw", str(src), *qemu_tls(pki.client),
             "--target-image-opts", qemu_nbd_opts(sock)])  # fmt: skip
        assert sha256(img) == sha256(src)
        out = run([qemu_io, *qemu_tls(pki.client), "--image-opts", qemu_nbd_opts(sock),
                   "-c", "write -P 0xa5 1M 64k", "-c", "read -P 0xa5 1M 64k"]).stdout  # fmt: skip
        assert "read 65536/65536 bytes at offset 1048576" in out and "Pattern verification failed" not in out
        expected = bytearray(src.read_bytes())
        expected[MiB : MiB + 65536] = b"\xa5" * 65536
        # what qemu-img reads back through TLS is what is in the file
        run([qemu_img, "compare", *qemu_tls(pki.client), "--image-opts", f"driver=file,filename={img}",
             qemu_nbd_opts(sock)])  # fmt: skip
    assert img.read_bytes() == bytes(expected)


def test_require_refuses_plaintext_clients(tmp_path: Path, sockdir: Path, pki: PKI) -> None:
    nbdinfo = need_tool("nbdinfo", "libnbd-bin")
    nbdcopy = need_tool("nbdcopy", "libnbd-bin")
    qemu_img = need_tool("qemu-img", "qemu-utils")
    img = make_image(tmp_path / "export.img", 4 * MiB, pattern=0x42)
    before = sha256(img)
    sock = sockdir / "s"
    with serve(img, listen=f"unix:{sock}", tls=make_config("require", certs_dir=str(pki.server))) as srv:
        plain = f"nbd+unix:///?socket={sock}"
        got = run([nbdinfo, plain], check=False)
        assert got.returncode != 0 and "opt_go" in got.stderr, got.stderr
        got = run([nbdinfo, "--list", plain], check=False)
        assert got.returncode != 0 and "list" in got.stderr, got.stderr
        out = tmp_path / "copy.img"
        got = run([nbdcopy, plain, str(out)], check=False)
        assert got.returncode != 0
        assert not out.exists() or out.read_bytes().count(0x42) == 0
        got = run([qemu_img, "info", "--image-opts", qemu_nbd_opts(sock, tls=False)], check=False)
        assert got.returncode != 0
        # qemu-img shows the server's message
        assert "TLS negotiation required" in got.stderr and "requires TLS" in got.stderr, got.stderr
        got = run([qemu_img, "convert", "-n", "-f", "raw", str(tmp_path / "export.img"),
                   "--target-image-opts", qemu_nbd_opts(sock, tls=False)], check=False)  # fmt: skip
        assert got.returncode != 0
        stats = srv.stats()
        assert stats["connections_total"] == 0  # no client reached transmission
        assert all(c["ops"] == 0 for c in stats["commands"].values())
    assert sha256(img) == before


def test_on_serves_plaintext_and_tls_clients(tmp_path: Path, sockdir: Path, pki: PKI) -> None:
    nbdinfo = need_tool("nbdinfo", "libnbd-bin")
    qemu_img = need_tool("qemu-img", "qemu-utils")
    qemu_io = need_tool("qemu-io", "qemu-utils")
    img = make_image(tmp_path / "export.img", 4 * MiB)
    sock = sockdir / "s"
    with serve(img, listen=f"unix:{sock}", tls=make_config("on", certs_dir=str(pki.server))) as srv:
        assert srv.uri == f"nbd+unix:///?socket={sock}"  # TLS offered, not required
        plain = json.loads(run([nbdinfo, "--json", srv.uri]).stdout)
        assert plain["TLS"] is False
        secure = json.loads(
            run([nbdinfo, "--json", libnbd_uri(f"nbds+unix:///?socket={sock}", pki.client)]).stdout
        )
        assert secure["TLS"] is True
        run([qemu_io, "-f", "raw", "-c", "write -P 0x11 0 64k", srv.uri])
        run(
            [
                qemu_io,
                *qemu_tls(pki.client),
                "--image-opts",
                qemu_nbd_opts(sock),
                "-c",
                "write -P 0x22 64k 64k",
            ]
        )
        run([qemu_img, "info", *qemu_tls(pki.client), "--image-opts", qemu_nbd_opts(sock)])
        assert srv.stats()["connections_total"] == 5
    data = img.read_bytes()
    assert data[:65536] == b"\x11" * 65536 and data[65536:131072] == b"\x22" * 65536


def test_off_refuses_starttls(tmp_path: Path, sockdir: Path) -> None:
    nbdinfo = need_tool("nbdinfo", "libnbd-bin")
    img = make_image(tmp_path / "export.img", MiB)
    with serve(img, listen=f"unix:{sockdir / 's'}") as srv:
        got = run([nbdinfo, f"nbds+unix:///?socket={sockdir / 's'}"], check=False)
        assert got.returncode != 0, got.stderr  # libnbd gives up (it reports "connection is closed")
        with _raw(sockdir / "s") as s:
            assert _option(s, proto.OPT_STARTTLS) == [
                (proto.REP_ERR_POLICY, b"TLS is off on this server (iolab serve --tls=on)")
            ]
            assert _option(s, proto.OPT_LIST)[-1][0] == proto.REP_ACK  # the session goes on in plaintext
        assert srv.stats()["connections_total"] == 0


def test_a_client_trusting_another_ca_fails_the_handshake(tmp_path: Path, sockdir: Path, pki: PKI) -> None:
    nbdinfo = need_tool("nbdinfo", "libnbd-bin")
    qemu_img = need_tool("qemu-img", "qemu-utils")
    img = make_image(tmp_path / "export.img", MiB)
    sock = sockdir / "s"
    tls = make_config("require", certs_dir=str(pki.server))
    with serve(img, listen=[f"unix:{sock}", "tcp:127.0.0.1:0"], tls=tls) as srv:
        tcp = srv.uris[1]
        assert tcp.startswith("nbds://127.0.0.1:")
        # the right CA works over TCP, where libnbd checks the certificate and the host name
        assert run([nbdinfo, "--size", libnbd_uri(tcp, pki.client)]).stdout.strip() == str(MiB)
        got = run([nbdinfo, "--size", libnbd_uri(tcp, pki.wrong)], check=False)
        assert got.returncode != 0 and "certificate verification" in got.stderr, got.stderr
        got = run([qemu_img, "info", *qemu_tls(pki.wrong), "--image-opts", qemu_nbd_opts(sock)], check=False)
        assert got.returncode != 0 and "issuer" in got.stderr, got.stderr
        assert reads(srv) == 0 and srv.stats()["connections_total"] == 1
        assert connections_left(srv) == 0  # failed handshakes leave nothing behind


def test_verify_peer_wants_a_client_certificate(tmp_path: Path, sockdir: Path, pki: PKI) -> None:
    nbdinfo = need_tool("nbdinfo", "libnbd-bin")
    qemu_io = need_tool("qemu-io", "qemu-utils")
    img = make_image(tmp_path / "export.img", MiB, pattern=7)
    sock = sockdir / "s"
    tls = make_config("require", certs_dir=str(pki.server), verify_peer=True)
    with serve(img, listen=f"unix:{sock}", tls=tls) as srv:
        assert run([nbdinfo, "--size", libnbd_uri(srv.uri, pki.client_cert)]).stdout.strip() == str(MiB)
        out = run([qemu_io, *qemu_tls(pki.client_cert), "--image-opts", qemu_nbd_opts(sock), "-r",
                   "-c", "read -P 7 0 4k"]).stdout  # fmt: skip
        assert "read 4096/4096" in out
        got = run([nbdinfo, "--size", libnbd_uri(srv.uri, pki.client)], check=False)
        assert got.returncode != 0
        with _raw(sock) as s:  # a certificate from another CA
            assert _option(s, proto.OPT_STARTTLS) == [(proto.REP_ACK, b"")]
            ctx = _client_context(pki)
            ctx.load_cert_chain(pki.root / "wrong-cert.pem", pki.root / "wrong-key.pem")
            with pytest.raises((ssl.SSLError, ConnectionError, EOFError)):
                _talk_tls(ctx, s)
        assert srv.stats()["connections_total"] == 2


# --- the protocol, with a raw client -----------------------------------------------------------------


# wrap_socket detaches the plain socket, so closing that no longer ends the connection: _raw closes these
_tls_sockets: list[ssl.SSLSocket] = []


@contextlib.contextmanager
def _raw(path: Path) -> Iterator[socket.socket]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    try:
        s.connect(str(path))
        magic, ihaveopt, _flags = struct.unpack(">QQH", _recv(s, 18))
        assert (magic, ihaveopt) == (proto.NBDMAGIC, proto.IHAVEOPT)
        s.sendall(struct.pack(">I", proto.FLAG_C_FIXED_NEWSTYLE | proto.FLAG_C_NO_ZEROES))
        yield s
    finally:
        s.close()
        while _tls_sockets:
            _tls_sockets.pop().close()


def _recv(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise EOFError(f"closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def _closed(s: socket.socket) -> bool:
    try:
        return s.recv(1) == b""
    except ConnectionError:
        return True


def _option(s: socket.socket, opt: int, data: bytes = b"") -> list[tuple[int, bytes]]:
    """Send an option; its replies (type, data) up to the final one (ACK or an error)."""
    s.sendall(proto.OPT_HEADER.pack(proto.IHAVEOPT, opt, len(data)) + data)
    replies = []
    while True:
        magic, ropt, rtype, length = proto.OPT_REPLY.unpack(_recv(s, 20))
        assert magic == proto.OPT_REPLY_MAGIC and ropt == opt
        replies.append((rtype, _recv(s, length)))
        if rtype == proto.REP_ACK or rtype & (1 << 31):
            return replies


def _client_context(pki: PKI) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=pki.ca_cert)
    return ctx


def _talk_tls(ctx: ssl.SSLContext, s: socket.socket) -> ssl.SSLSocket:
    """Upgrade after the STARTTLS acknowledgement; one option round trip proves the session works."""
    t = ctx.wrap_socket(s, server_hostname="localhost")
    _tls_sockets.append(t)
    assert _option(t, proto.OPT_LIST)[-1][0] == proto.REP_ACK
    return t


def _go(s: socket.socket, name: str = "") -> list[tuple[int, bytes]]:
    raw = name.encode()
    return _option(s, proto.OPT_GO, struct.pack(">I", len(raw)) + raw + struct.pack(">H", 0))


def _meta(s: socket.socket, opt: int) -> list[tuple[int, bytes]]:
    query = proto.META_BASE_ALLOCATION.encode()
    return _option(
        s, opt, struct.pack(">I", 0) + struct.pack(">I", 1) + struct.pack(">I", len(query)) + query
    )


def test_require_option_rules(tmp_path: Path, sockdir: Path, pki: PKI) -> None:
    img = make_image(tmp_path / "export.img", MiB, pattern=0x3C)
    sock = sockdir / "s"
    with serve(img, listen=f"unix:{sock}", tls=make_config("require", certs_dir=str(pki.server))) as srv:
        with _raw(sock) as s:
            for opt, data in (
                (proto.OPT_LIST, b""),
                (proto.OPT_GO, struct.pack(">IH", 0, 0)),
                (proto.OPT_INFO, struct.pack(">IH", 0, 0)),
                (proto.OPT_STRUCTURED_REPLY, b""),
                (proto.OPT_LIST_META_CONTEXT, b""),
                (99, b"x"),
            ):
                (reply,) = _option(s, opt, data)
                assert reply[0] == proto.REP_ERR_TLS_REQD, (opt, reply)
            assert b"requires TLS" in reply[1]
            assert _option(s, proto.OPT_STARTTLS, b"x")[0][0] == proto.REP_ERR_INVALID
            assert _option(s, proto.OPT_STARTTLS) == [(proto.REP_ACK, b"")]
            t = _talk_tls(_client_context(pki), s)
            assert t.version() in ("TLSv1.2", "TLSv1.3")
            assert _option(t, proto.OPT_STARTTLS)[0][0] == proto.REP_ERR_INVALID  # TLS already on
            listing = _option(t, proto.OPT_LIST)
            assert [r[0] for r in listing] == [proto.REP_SERVER, proto.REP_ACK]
            assert _go(t)[-1][0] == proto.REP_ACK
            t.sendall(proto.REQUEST.pack(proto.REQUEST_MAGIC, 0, proto.CMD_READ, 7, 0, 4096))
            magic, err, cookie = proto.SIMPLE_REPLY.unpack(_recv(t, 16))
            assert (magic, err, cookie) == (proto.SIMPLE_REPLY_MAGIC, 0, 7)
            assert _recv(t, 4096) == b"\x3c" * 4096
            t.sendall(proto.REQUEST.pack(proto.REQUEST_MAGIC, 0, proto.CMD_DISC, 8, 0, 0))
        # NBD_OPT_EXPORT_NAME cannot be answered with an error: the server hangs up
        with _raw(sock) as s:
            s.sendall(proto.OPT_HEADER.pack(proto.IHAVEOPT, proto.OPT_EXPORT_NAME, 0))
            assert _closed(s)
        # ... and is fine once TLS is on
        with _raw(sock) as s:
            assert _option(s, proto.OPT_STARTTLS) == [(proto.REP_ACK, b"")]
            t = _talk_tls(_client_context(pki), s)
            t.sendall(proto.OPT_HEADER.pack(proto.IHAVEOPT, proto.OPT_EXPORT_NAME, 0))
            size, _flags = struct.unpack(">QH", _recv(t, 10))  # no 124 zero bytes: NO_ZEROES was set
            assert size == MiB
            t.sendall(proto.REQUEST.pack(proto.REQUEST_MAGIC, 0, proto.CMD_DISC, 9, 0, 0))
        # NBD_OPT_ABORT is allowed without TLS
        with _raw(sock) as s:
            assert _option(s, proto.OPT_ABORT) == [(proto.REP_ACK, b"")]
            assert _closed(s)
        assert srv.stats()["connections_total"] == 2 and reads(srv) == 1


def test_starttls_forgets_earlier_negotiation(tmp_path: Path, sockdir: Path, pki: PKI) -> None:
    img = make_image(tmp_path / "export.img", MiB)
    sock = sockdir / "s"
    tls = make_config("on", certs_dir=str(pki.server))
    with serve(img, listen=f"unix:{sock}", tls=tls), _raw(sock) as s:
        assert _option(s, proto.OPT_STRUCTURED_REPLY) == [(proto.REP_ACK, b"")]
        assert [r[0] for r in _meta(s, proto.OPT_SET_META_CONTEXT)] == [
            proto.REP_META_CONTEXT,
            proto.REP_ACK,
        ]
        assert _option(s, proto.OPT_STARTTLS) == [(proto.REP_ACK, b"")]
        t = _talk_tls(_client_context(pki), s)
        # proto.md: nothing negotiated before STARTTLS survives it
        assert _meta(t, proto.OPT_SET_META_CONTEXT)[0][0] == proto.REP_ERR_INVALID
        assert _option(t, proto.OPT_STRUCTURED_REPLY) == [(proto.REP_ACK, b"")]
        assert [r[0] for r in _meta(t, proto.OPT_SET_META_CONTEXT)] == [
            proto.REP_META_CONTEXT,
            proto.REP_ACK,
        ]


def test_plaintext_after_starttls_is_not_taken_into_the_session(
    tmp_path: Path, sockdir: Path, pki: PKI
) -> None:
    img = make_image(tmp_path / "export.img", MiB)
    sock = sockdir / "s"
    with serve(img, listen=f"unix:{sock}", tls=make_config("require", certs_dir=str(pki.server))) as srv:
        with _raw(sock) as s:
            # an option smuggled in right behind STARTTLS (a man in the middle's injection): the server
            # must not acknowledge and later run it as if it had come through TLS
            starttls = proto.OPT_HEADER.pack(proto.IHAVEOPT, proto.OPT_STARTTLS, 0)
            go = proto.OPT_HEADER.pack(proto.IHAVEOPT, proto.OPT_GO, 6) + struct.pack(">IH", 0, 0)
            s.sendall(starttls + go)
            assert _closed(s)
        assert srv.stats()["connections_total"] == 0


def test_a_stalled_or_garbled_tls_handshake_is_dropped(
    tmp_path: Path, sockdir: Path, pki: PKI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_module, "HANDSHAKE_TIMEOUT", 1.0)
    img = make_image(tmp_path / "export.img", MiB)
    sock = sockdir / "s"
    with serve(img, listen=f"unix:{sock}", tls=make_config("require", certs_dir=str(pki.server))) as srv:
        with _raw(sock) as s:  # acknowledged, then silence: dropped after the handshake timeout
            assert _option(s, proto.OPT_STARTTLS) == [(proto.REP_ACK, b"")]
            start = time.monotonic()
            assert _closed(s)
            assert 0.5 < time.monotonic() - start < 8
        assert connections_left(srv) == 0
        with _raw(sock) as s:  # not a TLS record
            assert _option(s, proto.OPT_STARTTLS) == [(proto.REP_ACK, b"")]
            s.sendall(proto.OPT_HEADER.pack(proto.IHAVEOPT, proto.OPT_LIST, 0))
            assert _closed(s)
        # the server is still there for a proper client
        with _raw(sock) as s:
            assert _option(s, proto.OPT_STARTTLS) == [(proto.REP_ACK, b"")]
            _talk_tls(_client_context(pki), s)
        assert srv.stats()["connections_total"] == 0


def test_tls_1_2_is_the_minimum(
    tmp_path: Path, sockdir: Path, pki: PKI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="iolab.nbd")
    img = make_image(tmp_path / "export.img", MiB)
    sock = sockdir / "s"
    with serve(img, listen=f"unix:{sock}", tls=make_config("require", certs_dir=str(pki.server))):
        for version, works in (("TLSv1_2", True), ("TLSv1_1", False)):
            ctx = _client_context(pki)
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer old versions
            with warnings.catch_warnings():  # Python deprecates the old versions; offering them is the test
                warnings.simplefilter("ignore", DeprecationWarning)
                ctx.minimum_version = ssl.TLSVersion.TLSv1
                ctx.maximum_version = getattr(ssl.TLSVersion, version)
            with _raw(sock) as s:
                assert _option(s, proto.OPT_STARTTLS) == [(proto.REP_ACK, b"")]
                if works:
                    assert _talk_tls(ctx, s).version() == "TLSv1.2"
                    continue
                with pytest.raises((ssl.SSLError, ConnectionError, EOFError)):
                    _talk_tls(ctx, s)
        # refused by the server for the version, not by this client's own settings
        deadline = time.monotonic() + 10
        while "UNSUPPORTED_PROTOCOL" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "TLS handshake failed" in caplog.text and "UNSUPPORTED_PROTOCOL" in caplog.text, caplog.text


# --- on the wire ------------------------------------------------------------------------------------


class Relay:
    """A TCP relay on loopback that keeps every byte passing in each direction."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.up = bytearray()  # client -> server
        self.down = bytearray()  # server -> client
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.threads: list[threading.Thread] = []
        self.socks: list[socket.socket] = []
        self.lock = threading.Lock()
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            self.socks += [client, server]
            for a, b, buf in ((client, server, self.up), (server, client, self.down)):
                t = threading.Thread(target=self._pump, args=(a, b, buf), daemon=True)
                t.start()
                self.threads.append(t)

    def _pump(self, src: socket.socket, dst: socket.socket, buf: bytearray) -> None:
        try:
            while data := src.recv(65536):
                with self.lock:
                    buf += data
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self.listener.close()
        for s in self.socks:
            with contextlib.suppress(OSError):
                s.close()
        for t in self.threads:
            t.join(5)


def test_data_on_the_wire_is_encrypted(tmp_path: Path, pki: PKI) -> None:
    nbdcopy = need_tool("nbdcopy", "libnbd-bin")
    marker = b"IOLAB-PLAINTEXT-MARKER-" + os.urandom(8).hex().encode()
    img = tmp_path / "export.img"
    img.write_bytes((marker * (MiB // len(marker) + 1))[:MiB])
    tls = make_config("on", certs_dir=str(pki.server))
    with serve(img, listen="tcp:127.0.0.1:0", tls=tls) as srv:
        port = int(srv.uri.rsplit(":", 1)[1].strip("/"))
        for secure in (False, True):
            relay = Relay(port)
            try:
                out = tmp_path / f"copy-{secure}.img"
                scheme = "nbds" if secure else "nbd"
                uri = f"{scheme}://127.0.0.1:{relay.port}/"
                run([nbdcopy, libnbd_uri(uri, pki.client) if secure else uri, str(out)])
                assert out.read_bytes() == img.read_bytes()  # the data went through the relay
            finally:
                relay.close()
            assert len(relay.down) > MiB
            if secure:
                assert marker not in relay.down and marker[:16] not in relay.down
                # after the plaintext STARTTLS acknowledgement come TLS records (handshake: 0x16 0x03)
                ack = proto.OPT_REPLY.pack(proto.OPT_REPLY_MAGIC, proto.OPT_STARTTLS, proto.REP_ACK, 0)
                at = bytes(relay.down).index(ack) + len(ack)
                assert relay.down[at : at + 2] == b"\x16\x03"
            else:  # the control: without TLS the marker is there to be seen
                assert marker in relay.down


# --- command line ------------------------------------------------------------------------------------


def test_cli_ready_line_and_ctl_show_tls(tmp_path: Path, sockdir: Path, pki: PKI) -> None:
    img = make_image(tmp_path / "a.img", MiB)
    sock, ctl_sock = sockdir / "s", str(sockdir / "c")
    for args, mode, scheme in (
        (["--tls=require", "--tls-certs", str(pki.server)], "require", "nbds+unix"),
        (["--tls-certs", str(pki.server)], "require", "nbds+unix"),  # certificates given: required
        (
            [
                "--tls=on",
                "--tls-cert",
                str(pki.root / "server-cert.pem"),
                "--tls-key",
                str(pki.root / "server-key.pem"),
            ],
            "on",
            "nbd+unix",
        ),
        ([], "off", "nbd+unix"),
    ):
        with serve_cli(str(img), "--listen", f"unix:{sock}", "--control", ctl_sock, *args) as (_p, ready):
            assert ready["tls"] == mode and ready["uris"] == [f"{scheme}:///?socket={sock}"]
            exports = json.loads(ctl(ctl_sock, "exports").stdout)
            assert exports["tls"] == mode and exports["uris"] == ready["uris"]


def _bad_files(pki: PKI, root: Path) -> dict[str, Path]:
    garbage = root / "garbage.pem"
    garbage.write_text("not a certificate\n")
    encrypted = root / "encrypted-key.pem"
    _openssl(
        "pkey",
        "-in",
        str(pki.root / "server-key.pem"),
        "-aes256",
        "-passout",
        "pass:secret",
        "-out",
        str(encrypted),
    )
    no_key = root / "no-key"
    no_key.mkdir()
    shutil.copy(pki.server / "server-cert.pem", no_key)
    no_ca = root / "no-ca"
    no_ca.mkdir()
    shutil.copy(pki.server / "server-cert.pem", no_ca)
    shutil.copy(pki.server / "server-key.pem", no_ca)
    return {"garbage": garbage, "encrypted": encrypted, "no_key": no_key, "no_ca": no_ca}


def test_cli_certificate_errors_are_one_clear_line(tmp_path: Path, sockdir: Path, pki: PKI) -> None:
    img = make_image(tmp_path / "a.img", MiB)
    bad = _bad_files(pki, tmp_path)
    cert, key = str(pki.root / "server-cert.pem"), str(pki.root / "server-key.pem")
    other_key = str(pki.root / "client-key.pem")
    missing = str(tmp_path / "nope")
    cases: list[tuple[list[str], list[str]]] = [
        (["--tls=require"], ["needs certificates", "--tls-certs DIR"]),
        (["--tls=on", "--tls-certs", missing], [missing, "no such directory"]),
        (["--tls-certs", str(img)], [str(img), "not a directory"]),
        (["--tls-certs", str(bad["no_key"])], [str(bad["no_key"] / "server-key.pem"), "No such file"]),
        (
            ["--tls-certs", str(bad["no_ca"]), "--tls-verify-peer"],
            [str(bad["no_ca"] / "ca-cert.pem"), "No such file"],
        ),
        (["--tls-cert", str(bad["garbage"]), "--tls-key", key], [str(bad["garbage"]), "no PEM certificate"]),
        (["--tls-cert", cert, "--tls-key", str(tmp_path)], [str(tmp_path), "is a directory"]),
        (["--tls-cert", cert, "--tls-key", other_key], [cert, other_key, "does not belong"]),
        (["--tls-cert", cert, "--tls-key", str(bad["encrypted"])], [str(bad["encrypted"]), "encrypted"]),
        (
            ["--tls-cert", cert, "--tls-key", key, "--tls-ca", str(pki.ca_cert)],
            ["--tls-ca", "--tls-verify-peer"],
        ),
        (["--tls-cert", cert, "--tls-key", key, "--tls-verify-peer"], ["--tls-ca FILE"]),
        (["--tls=off", "--tls-certs", str(pki.server)], ["--tls=off"]),
        (["--tls-certs", str(pki.server), "--tls-cert", cert], ["one or the other"]),
        (["--tls-cert", cert], ["--tls-key"]),
        (["--tls-verify-peer"], ["needs certificates"]),
    ]
    sock = sockdir / "s"
    for args, words in cases:
        proc = subprocess.run(
            [sys.executable, "-m", "iolab", "serve", str(img), "--listen", f"unix:{sock}", *args],
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            stdin=subprocess.DEVNULL,  # an encrypted key must not make it prompt for a password
        )
        lines = proc.stderr.splitlines()
        assert proc.returncode == 1 and proc.stdout == "", (args, proc.stdout, proc.stderr)
        assert len(lines) == 1, (args, proc.stderr)
        assert lines[0].startswith(("iolab serve: TLS ", "iolab serve: --")), (args, proc.stderr)
        for w in words:
            assert w in lines[0], (args, w, lines[0])
        assert not sock.exists()  # refused before listening


def test_an_unreadable_key_is_named(pki: PKI) -> None:
    """As a user who may not read the key (root reads anything: the check runs as nobody then)."""
    d = Path(tempfile.mkdtemp(prefix="iolab-tls-perm-"))
    try:
        d.chmod(0o755)
        for name in ("server-cert.pem", "server-key.pem"):
            shutil.copy(pki.server / name, d / name)
        (d / "server-cert.pem").chmod(0o644)
        # the module alone, so the check needs no access to the source tree (it may sit under /root)
        shutil.copy(Path(make_config.__code__.co_filename), d / "tlscheck.py")
        (d / "tlscheck.py").chmod(0o644)
        script = (
            f"import sys; sys.path.insert(0, {str(d)!r}); from tlscheck import make_config\n"
            f"try: make_config('require', certs_dir={str(d)!r})\n"
            "except ValueError as e: print(e)\n"
        )
        if os.geteuid() == 0:
            (d / "server-key.pem").chmod(0o600)  # root's: nobody may not read it
            need(os.path.exists(DEBIAN_PYTHON), f"{DEBIAN_PYTHON} is missing (Debian package python3)")
            setpriv = need_tool("setpriv", "util-linux")
            cmd = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", DEBIAN_PYTHON, "-c", script]
        else:
            (d / "server-key.pem").chmod(0)
            cmd = [sys.executable, "-c", script]
        out = run(cmd).stdout.strip()
        assert out == f"TLS key {d / 'server-key.pem'}: Permission denied"
    finally:
        shutil.rmtree(d, ignore_errors=True)
