"""iolab serve against real NBD clients: nbdinfo, nbdcopy, qemu-io, qemu-img and libnbd (Python)."""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from iolab.nbd import ExportConfig, serve
from nbd_helpers import libnbd, make_image, need, need_tool, qemu_io, run, serve_cli

MiB = 1 << 20


def test_nbdinfo_sees_the_export(tmp_path: Path, nbd_serve: Any) -> None:
    nbdinfo = need_tool("nbdinfo", "libnbd-bin")
    img = make_image(tmp_path / "a.img", 8 * MiB)
    srv = nbd_serve(img)
    out = run([nbdinfo, "--json", srv.uri]).stdout
    import json

    info = json.loads(out)
    assert info["protocol"] == "newstyle-fixed"
    export = info["exports"][0]
    assert export["export-size"] == 8 * MiB
    assert "base:allocation" in export["contexts"]
    for cap in (
        "can_flush",
        "can_fua",
        "can_trim",
        "can_zero",
        "can_fast_zero",
        "can_cache",
        "can_multi_conn",
    ):
        assert export[cap] is True, cap
    assert export["is_read_only"] is False
    assert export["block_size_minimum"] == 1
    assert export["block_size_preferred"] == 4096
    assert export["block_size_maximum"] == 32 * MiB


def test_list_and_several_exports_read_only_one(tmp_path: Path, nbd_serve: Any) -> None:
    nbdinfo = need_tool("nbdinfo", "libnbd-bin")
    a = make_image(tmp_path / "a.img", 4 * MiB, pattern=0xAA)
    b = make_image(tmp_path / "b.img", 2 * MiB, pattern=0xBB)
    srv = nbd_serve(
        a, name="disk-a", extra_exports=[ExportConfig(path=str(b), name="disk-b", read_only=True)]
    )
    listing = run([nbdinfo, "--list", srv.uri]).stdout
    assert 'export="disk-a"' in listing and 'export="disk-b"' in listing
    # the default export ("") is the first one
    got = libnbd(
        """
        import json, sys, nbd
        out = {}
        for name, uri in zip(("", "disk-a", "disk-b"), sys.argv[1:]):
            h = nbd.NBD(); h.connect_uri(uri)
            out[name] = [h.get_size(), h.is_read_only(), h.pread(1, 0)[0]]
            if name == "disk-b":
                try:
                    h.pwrite(b"x" * 512, 0); out["write_ro"] = "ok"
                except nbd.Error as e:
                    out["write_ro"] = e.errno
            h.shutdown()
        print(json.dumps(out))
        """,
        srv.uri_for(""),
        srv.uri_for("disk-a"),
        srv.uri_for("disk-b"),
    )
    assert got[""] == [4 * MiB, False, 0xAA]
    assert got["disk-a"] == [4 * MiB, False, 0xAA]
    assert got["disk-b"] == [2 * MiB, True, 0xBB]
    assert got["write_ro"] == "EPERM"
    assert b.read_bytes() == bytes([0xBB]) * (2 * MiB)


def test_qemu_io_patterns_land_in_the_file(tmp_path: Path, nbd_serve: Any) -> None:
    img = make_image(tmp_path / "a.img", 8 * MiB)
    srv = nbd_serve(img)
    out = qemu_io(
        srv.uri,
        "write -P 0x55 4k 8k",
        "write -P 0x66 1M 64k",
        "write -z 2M 1M",
        "write -f -P 0x77 3M 4k",
        "discard 5M 1M",
        "flush",
        "read -P 0x55 4k 8k",
        "read -P 0x66 1M 64k",
        "read -P 0 2M 1M",
        "read -P 0x77 3M 4k",
        check=True,
    )
    assert "fail" not in out.lower() and "mismatch" not in out.lower(), out
    data = img.read_bytes()
    assert data[4096 : 4096 + 8192] == b"\x55" * 8192
    assert data[MiB : MiB + 65536] == b"\x66" * 65536
    assert data[3 * MiB : 3 * MiB + 4096] == b"\x77" * 4096
    assert data[:4096] == bytes(4096)


def test_nbdcopy_round_trip_and_qemu_img_compare(tmp_path: Path, nbd_serve: Any) -> None:
    nbdcopy = need_tool("nbdcopy", "libnbd-bin")
    qemu_img = need_tool("qemu-img", "qemu-utils")
    src = tmp_path / "src.img"
    src.write_bytes(os.urandom(6 * MiB) + bytes(2 * MiB))
    img = make_image(tmp_path / "export.img", 8 * MiB)
    srv = nbd_serve(img)
    run([nbdcopy, str(src), srv.uri])
    back = tmp_path / "back.img"
    run([nbdcopy, srv.uri, str(back)])
    assert back.read_bytes() == src.read_bytes()
    assert img.read_bytes() == src.read_bytes()
    assert run([qemu_img, "compare", "-f", "raw", "-F", "raw", str(src), srv.uri]).returncode == 0


LIBNBD_COMMANDS = """
import errno, json, sys, nbd
h = nbd.NBD()
h.set_request_structured_replies(sys.argv[2] == "structured")
h.add_meta_context("base:allocation")
h.connect_uri(sys.argv[1])
out = {"structured": h.get_structured_replies_negotiated()}
h.pwrite(b"\\x11" * 65536, 0, nbd.CMD_FLAG_FUA)
h.pwrite(b"\\x22" * 4096, 1 << 20)
h.flush()
out["read"] = h.pread(65536, 0) == b"\\x11" * 65536
h.zero(8192, 4096, nbd.CMD_FLAG_NO_HOLE)
out["zero_no_hole"] = h.pread(8192, 4096) == bytes(8192)
h.zero(65536, 4 << 20, nbd.CMD_FLAG_FAST_ZERO)
h.zero(16384, 16384)
out["zero"] = h.pread(16384, 16384) == bytes(16384)
h.trim(1 << 20, 2 << 20)
h.cache(1 << 20, 0)
extents = []
def cb(metacontext, offset, entries, err):
    extents.append((metacontext, offset, list(entries)))
    return 0
if out["structured"]:
    h.block_status(4 << 20, 0, cb)
    h.block_status(4 << 20, 0, cb, nbd.CMD_FLAG_REQ_ONE)
out["extents"] = extents
# a zero-length read and an unaligned odd-sized one
out["odd"] = len(h.pread(3, 5))
h.set_strict_mode(0)  # let bad requests reach the server
errs = {}
for what, fn in [
    ("read_past_end", lambda: h.pread(4096, h.get_size())),
    ("write_past_end", lambda: h.pwrite(b"x" * 4096, h.get_size() - 1)),
    ("trim_past_end", lambda: h.trim(8192, h.get_size())),
    ("bad_flag", lambda: h.pread(512, 0, 1 << 7)),
]:
    try:
        fn(); errs[what] = "ok"
    except nbd.Error as e:
        errs[what] = e.errno
out["errors"] = errs
out["after_errors"] = h.pread(4, 0) == b"\\x11" * 4  # the connection survives refused requests
h.shutdown()
print(json.dumps(out))
"""


@pytest.mark.parametrize("replies", ["structured", "simple"])
def test_libnbd_every_command(tmp_path: Path, nbd_serve: Any, replies: str) -> None:
    img = make_image(tmp_path / "a.img", 16 * MiB)
    srv = nbd_serve(img)
    out = libnbd(LIBNBD_COMMANDS, srv.uri, replies)
    assert out["structured"] is (replies == "structured")
    assert out["read"] and out["zero_no_hole"] and out["zero"], out
    assert out["odd"] == 3
    assert out["errors"] == {
        "read_past_end": "EINVAL",
        "write_past_end": "ENOSPC",
        "trim_past_end": "EINVAL",
        "bad_flag": "EINVAL",
    }
    assert out["after_errors"]
    if replies == "structured":
        (ctx, offset, entries), (_, _, one) = out["extents"]
        assert ctx == "base:allocation" and offset == 0
        # pairs of (length, flags) covering the request; the file has data at 0 and at 1 MiB..+4k
        assert sum(entries[0::2]) >= 4 * MiB
        assert entries[1] == 0  # data at offset 0
        assert len(one) == 2 and one[0] <= 4 * MiB
    data = img.read_bytes()
    # libnbd's zero() takes (count, offset)
    assert data[:4096] == b"\x11" * 4096 and data[4096:12288] == bytes(8192)
    assert data[12288:16384] == b"\x11" * 4096 and data[16384:32768] == bytes(16384)


def test_many_clients_at_once_multi_conn(tmp_path: Path, nbd_serve: Any) -> None:
    img = make_image(tmp_path / "a.img", 16 * MiB)
    srv = nbd_serve(img)
    out = libnbd(
        """
        import json, sys, nbd
        hs = []
        for i in range(8):
            h = nbd.NBD(); h.connect_uri(sys.argv[1]); hs.append(h)
        assert all(h.can_multi_conn() for h in hs)
        cookies = []
        for i, h in enumerate(hs):  # all in flight at once, on 8 connections
            for j in range(16):
                buf = bytes([i * 16 + j]) * 65536
                cookies.append((h, h.aio_pwrite(buf, (i * 16 + j) * 65536)))
        for h, c in cookies:
            while not h.aio_command_completed(c):
                h.poll(-1)
        hs[3].flush()  # multi-conn: one flush covers every connection's completed writes
        ok = all(hs[(k + 1) % 8].pread(65536, k * 65536) == bytes([k]) * 65536 for k in range(128))
        for h in hs:
            h.shutdown()
        print(json.dumps(ok))
        """,
        srv.uri,
    )
    assert out is True
    assert srv.stats()["connections_total"] == 8


def test_tcp_listener_on_loopback(tmp_path: Path) -> None:
    img = make_image(tmp_path / "a.img", 4 * MiB)
    with serve(img, listen="tcp:127.0.0.1:0") as srv:
        assert srv.uri.startswith("nbd://127.0.0.1:")
        out = qemu_io(srv.uri, "write -P 9 0 4k", "read -P 9 0 4k", check=True)
        assert "read 4096/4096 bytes at offset 0" in out


def _local_cid() -> int:
    """This machine's own vsock CID (IOCTL_VM_SOCKETS_GET_LOCAL_CID on /dev/vsock)."""
    with open("/dev/vsock", "rb") as dev:
        return int.from_bytes(fcntl.ioctl(dev, 0x7B9, bytes(4)), sys.byteorder)


def test_vsock_listener(tmp_path: Path) -> None:
    if not hasattr(socket, "AF_VSOCK") or not os.path.exists("/dev/vsock"):
        pytest.skip("no AF_VSOCK in this kernel")
    img = make_image(tmp_path / "a.img", 4 * MiB, pattern=0x5A)
    with serve(img, listen="vsock::0", allow_remote=True) as srv:  # any CID (guests too), a free port
        assert srv.uri.startswith("nbd+vsock://")
        port = int(srv.uri.rsplit(":", 1)[1].split("/")[0])
        cid = _local_cid()
        probe = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        probe.settimeout(5)
        with probe:
            try:
                probe.connect((cid, port))
            except OSError as e:
                # Only "no transport for a local peer" may skip; any other failure is the server's.
                if e.errno != errno.ENODEV:
                    raise
                pytest.skip(
                    f"the server listens on AF_VSOCK port {port}, but this kernel has no vsock loopback "
                    f"transport (connect to the local CID {cid} fails with ENODEV; no vsock_loopback module)"
                )
        out = libnbd(
            """
            import json, sys, nbd
            h = nbd.NBD(); h.connect_uri(sys.argv[1]); d = h.pread(16, 0); h.shutdown()
            print(json.dumps(d.hex()))
            """,
            srv.uri.replace("nbd+vsock://4294967295:", f"nbd+vsock://{cid}:"),
        )
        assert out == "5a" * 16


def test_cli_serve_and_ctl(tmp_path: Path) -> None:
    img = make_image(tmp_path / "a.img", 4 * MiB)
    sock = str(tmp_path / "nbd.sock")
    ctl_sock = str(tmp_path / "ctl.sock")
    with serve_cli(str(img), "--listen", f"unix:{sock}", "--control", ctl_sock) as (_p, ready):
        assert ready["uris"] == [f"nbd+unix:///?socket={sock}"]
        out = qemu_io(ready["uris"][0], "write -P 3 0 64k", check=True)
        assert "wrote 65536/65536" in out
        from nbd_helpers import ctl

        stats = ctl(ctl_sock, "stats").stdout
        import json

        assert json.loads(stats)["commands"]["write"]["ops"] >= 1
        bad = ctl(ctl_sock, "resume", "nope", check=False)
        assert bad.returncode == 1 and "no request suspended" in bad.stderr


def test_read_only_flag_rejects_writes(tmp_path: Path) -> None:
    img = make_image(tmp_path / "a.img", 4 * MiB, pattern=1)
    with serve(img, read_only=True) as srv:
        out = qemu_io(srv.uri, "read -P 1 0 4k", "write -P 2 0 4k", read_only=True)
        assert "read 4096/4096" in out
        assert "write failed" in out or "read-only" in out.lower() or "Operation not permitted" in out
    assert img.read_bytes()[:4096] == b"\x01" * 4096


def test_need_helper_is_strict_in_ci() -> None:
    # the pattern of tests/conftest.py: a missing tool is a failure when CI runs the suite
    need(True, "never")


def test_pytest_plugin_fixtures(nbd_export: Any, nbd_image: Path) -> None:
    """The iolab_nbd pytest plugin: a served sparse image, ready for a client."""
    assert nbd_image.stat().st_size == 64 * MiB
    assert "wrote 4096/4096" in qemu_io(nbd_export.uri, "write -P 0x42 0 4k", check=True)
    assert nbd_image.read_bytes()[:4096] == b"\x42" * 4096
