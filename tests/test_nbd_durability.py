"""Durability and robustness: FUA/flush reach the disk before the reply, crashed clients lose nothing
acknowledged, hostile clients are refused or dropped without hurting others, memory stays bounded."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import struct
import sys
import textwrap
from pathlib import Path
from typing import Any

from iolab.nbd import serve
from nbd_helpers import ctl, libnbd, make_image, need_libnbd, need_tool, proc, qemu_io, serve_cli

MiB = 1 << 20
IHAVEOPT = 0x49484156454F5054
REQ = struct.Struct(">IHHQQI")
REQUEST_MAGIC = 0x25609513


def test_fua_and_flush_sync_before_the_reply(tmp_path: Path) -> None:
    """strace of the server: a FUA write and a flush are each followed by fdatasync on the image before
    their reply goes out; a plain write is not."""
    strace = need_tool("strace", "strace")
    img = make_image(tmp_path / "a.img", 4 * MiB)
    sock = str(tmp_path / "nbd.sock")
    log = tmp_path / "strace.log"
    cmd = [strace, "-f", "-o", str(log), "-e", "trace=openat,pwrite64,pwritev2,fdatasync,sendto"]
    with proc([*cmd, sys.executable, "-m", "iolab", "serve", str(img), "--listen", f"unix:{sock}"]) as p:
        server_pid = json.loads(p.wait_for(r'^\{"ready"'))["pid"]
        out = libnbd(
            """
            import json, sys, nbd
            h = nbd.NBD(); h.set_request_structured_replies(False); h.connect_uri(sys.argv[1])
            h.pwrite(b"a" * 4096, 0)
            h.pwrite(b"b" * 4096, 4096, nbd.CMD_FLAG_FUA)
            h.flush()
            h.shutdown()
            print(json.dumps("done"))
            """,
            f"nbd+unix:///?socket={sock}",
        )
        assert out == "done"
        os.kill(server_pid, signal.SIGTERM)  # a clean stop; strace then exits and its log is complete
        p.p.wait(30)
    text = log.read_text()
    img_fd = re.search(r'openat\(AT_FDCWD, "' + re.escape(str(img)) + r'", [^)]*\) = (\d+)', text)
    assert img_fd, text[:2000]
    fd = img_fd.group(1)
    events = []
    for line in text.splitlines():
        if re.search(rf"(pwrite64|pwritev2)\({fd}, .*= 4096$", line):
            events.append("W")
        elif re.search(rf"fdatasync\({fd}\)\s+= 0$", line) or ("fdatasync resumed" in line and "= 0" in line):
            events.append("S")
        elif re.search(r"sendto\(\d+, .*\) = 16$", line):  # a simple reply (16 bytes)
            events.append("R")
    assert events == ["W", "R", "W", "S", "R", "S", "R"], "\n".join(events)


CRASHER = """
import sys, nbd
h = nbd.NBD(); h.connect_uri(sys.argv[1])
pending = {}
for i in range(400):
    pending[h.aio_pwrite(bytes([i % 251 + 1]) * 4096, i * 4096)] = i
    while len(pending) >= 8:
        h.poll(-1)
        for c, j in list(pending.items()):
            if h.aio_command_completed(c):
                print("acked", j, flush=True)
                del pending[c]
"""


def test_killed_client_loses_nothing_acknowledged(tmp_path: Path) -> None:
    py = need_libnbd()
    img = make_image(tmp_path / "a.img", 4 * MiB)
    with serve(img) as srv:
        with proc([py, "-c", textwrap.dedent(CRASHER), srv.uri]) as c:
            c.wait_for(r"^acked 150$")
            c.kill()  # SIGKILL with writes in flight
            acked = [int(line.split()[1]) for line in c.seen if line.startswith("acked")]
        # the server goes on serving
        assert "wrote 4096/4096" in qemu_io(srv.uri, "write -P 7 3M 4k")
    data = img.read_bytes()
    assert len(acked) >= 150
    for i in acked:
        assert data[i * 4096 : (i + 1) * 4096] == bytes([i % 251 + 1]) * 4096, i


def test_frozen_write_then_client_crash_then_resume(tmp_path: Path, nbd_serve: Any) -> None:
    """The plugin's use case: freeze a write, crash the client, resume, check the image."""
    py = need_libnbd()
    img = make_image(tmp_path / "a.img", 4 * MiB)
    srv = nbd_serve(img)
    script = """
        import sys, nbd
        h = nbd.NBD(); h.connect_uri(sys.argv[1])
        h.pwrite(b"Y" * 4096, 0, nbd.CMD_FLAG_FUA)
        print("Y acked", flush=True)
        sys.stdin.readline()
        h.aio_pwrite(b"X" * 4096, 8192)
        print("X sent", flush=True)
        sys.stdin.readline()
    """
    with proc([py, "-c", textwrap.dedent(script), srv.uri], stdin=True) as c:
        c.wait_for("Y acked")
        srv.break_("write_aio", "crash")
        c.send("")
        c.wait_for("X sent")
        srv.wait_break("crash", timeout=20)
        c.kill()
    assert srv.state()["suspended"] == [{"tag": "crash", "event": "write_aio"}]
    srv.resume("crash")  # the whole request had arrived: it completes, the reply goes nowhere
    assert "read 4096/4096" in qemu_io(srv.uri, "read -P 0x59 0 4k", "read -P 0x58 8k 4k")
    data = img.read_bytes()
    assert data[:4096] == b"Y" * 4096 and data[8192:12288] == b"X" * 4096


def _handshake(s: socket.socket, structured: bool = True) -> None:
    f = s.makefile("rwb")
    assert f.read(18)[:8] == b"NBDMAGIC"
    f.write(struct.pack(">I", 3))
    if structured:
        f.write(struct.pack(">QII", IHAVEOPT, 8, 0))
        f.flush()
        f.read(20)
    f.write(struct.pack(">QII", IHAVEOPT, 7, 6) + struct.pack(">IH", 0, 0))
    f.flush()
    while True:
        _, _, rep, ln = struct.unpack(">QIII", f.read(20))
        f.read(ln)
        if rep == 1:
            return


def test_flood_without_reading_replies_stays_bounded(tmp_path: Path) -> None:
    img = make_image(tmp_path / "a.img", 64 * MiB)
    sock, csock = str(tmp_path / "nbd.sock"), str(tmp_path / "ctl.sock")
    with serve_cli(str(img), "--listen", f"unix:{sock}", "--control", csock) as (_p, ready):
        flood = socket.socket(socket.AF_UNIX)
        flood.settimeout(10)
        flood.connect(sock)
        _handshake(flood)
        # 200 reads of 32 MiB each (6.4 GB of replies) that the client never reads
        flood.sendall(b"".join(REQ.pack(REQUEST_MAGIC, 0, 0, i, 0, 32 * MiB) for i in range(200)))
        # another client is served meanwhile
        assert "read 65536/65536" in qemu_io(ready["uris"][0], "write -P 5 1M 64k", "read -P 5 1M 64k")
        reads = json.loads(ctl(csock, "stats").stdout)["commands"]["read"]["ops"]
        rss_kib = int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{ready['pid']}/status").read_text()).group(1))
        flood.close()
    assert reads <= 4  # the flooding connection stopped after a few replies' worth
    assert rss_kib < 400 * 1024, rss_kib


def test_fuzz_random_and_truncated_requests(tmp_path: Path) -> None:
    """Garbage in the handshake and in transmission, truncated requests, lies about lengths: each client
    gets an error or is dropped, and a well-behaved client is served afterwards."""
    rng = random.Random(1234)
    img = make_image(tmp_path / "a.img", 8 * MiB, pattern=3)
    with serve(img) as srv:
        path = srv.uri.split("socket=")[1]
        for i in range(150):
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(5)
            s.connect(path)
            try:
                kind = i % 5
                if kind == 0:  # garbage instead of the client flags / options
                    s.recv(18)
                    s.sendall(rng.randbytes(rng.randrange(1, 200)))
                elif kind == 1:  # options with random codes and lengths, some truncated
                    s.recv(18)
                    s.sendall(struct.pack(">I", 1))
                    for _ in range(rng.randrange(1, 6)):
                        code, ln = rng.randrange(0, 20), rng.randrange(0, 40)
                        s.sendall(
                            struct.pack(">QII", IHAVEOPT, code, ln) + rng.randbytes(rng.randrange(0, ln + 1))
                        )
                else:  # transmission: random requests, valid magic or not, truncated or lying
                    _handshake(s, structured=bool(kind % 2))
                    for _ in range(rng.randrange(1, 20)):
                        magic = REQUEST_MAGIC if rng.random() < 0.9 else rng.getrandbits(32)
                        cmd = rng.choice([0, 1, 3, 4, 5, 6, 7, rng.randrange(8, 65536)])
                        flags = rng.choice([0, 1, rng.getrandbits(16)])
                        off = rng.choice([0, 4096, 8 * MiB - 512, 8 * MiB, rng.getrandbits(64)])
                        ln = rng.choice([0, 512, 4096, 1 << 26, rng.getrandbits(32)])
                        req = REQ.pack(magic, flags, cmd, rng.getrandbits(64), off, ln)
                        if cmd == 1 and ln <= 65536:
                            req += rng.randbytes(rng.choice([ln, ln // 2]))
                        if rng.random() < 0.2:
                            req = req[: rng.randrange(0, len(req))]
                        s.sendall(req)
                # read whatever comes back until the server hangs up (it sees our EOF)
                s.shutdown(socket.SHUT_WR)
                s.settimeout(2)
                try:
                    while s.recv(65536):
                        pass
                except (TimeoutError, ConnectionError):
                    pass
            except (ConnectionError, BrokenPipeError, TimeoutError):
                pass
            finally:
                s.close()
        out = libnbd(
            """
            import json, sys, nbd
            h = nbd.NBD(); h.connect_uri(sys.argv[1])
            h.pwrite(b"z" * 4096, 4 << 20); h.flush()
            ok = h.pread(4096, 4 << 20) == b"z" * 4096
            h.shutdown()
            print(json.dumps(ok))
            """,
            srv.uri,
        )
        assert out is True
        stats = srv.stats()
        assert stats["rejected"] > 0
        assert stats["connections"] <= 1
