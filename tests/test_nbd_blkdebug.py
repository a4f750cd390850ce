"""blkdebug over NBD: QEMU's config files give the same results through iolab serve as in QEMU itself,
breakpoints behave as qemu-io's break/wait_break/resume/remove_break, injected read errors keep the
connection."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from iolab.nbd import NBDServerError, blkdebug, serve
from iolab.nbd.layers import NBDError
from nbd_helpers import ctl, libnbd, make_image, need_tool, proc, qemu_io, serve_cli

MiB = 1 << 20

# QEMU's docs/devel/blkdebug.txt example: fail the 2nd write_aio with EIO
FAIL_SECOND_WRITE = """
[set-state]
event = "write_aio"
state = "1"
new_state = "2"

[inject-error]
event = "write_aio"
state = "2"
errno = "5"
"""

CONFIGS = {
    "fail-2nd-write": FAIL_SECOND_WRITE,
    "once": """
[inject-error]
event = "write_aio"
errno = "28"
once = "on"
""",
    "sector-read": """
[inject-error]
event = "read_aio"
sector = "72"
errno = "5"
iotype = "read"
""",
    "earliest-rule-wins": """
[inject-error]
event = "read_aio"
errno = "28"
sector = "8"

[inject-error]
event = "read_aio"
errno = "5"
""",
    "state-from-none-and-flush": """
[set-state]
event = "none"
new_state = "3"

[set-state]
event = "flush_to_disk"
state = "3"
new_state = "4"

[inject-error]
event = "write_aio"
state = "4"
errno = "1"
once = "on"
""",
}

COMMANDS = [
    "write -P 1 0 4k",
    "write -P 2 4k 4k",
    "write -P 3 8k 4k",
    "read -P 1 0 4k",
    "read -P 2 4k 4k",
    "read -P 0 32k 8k",
    "read -P 0 36k 4k",
    "read -P 0 64k 4k",
    "flush",
    "write -P 4 12k 4k",
    "write -P 5 16k 4k",
    "read -P 0 1M 4k",
]


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_same_results_as_qemu_blkdebug(tmp_path: Path, name: str) -> None:
    """qemu-io over NBD against `iolab serve --blkdebug` == qemu-io on QEMU's own blkdebug driver."""
    need_tool("qemu-io", "qemu-utils")
    conf = tmp_path / "blkdebug.conf"
    conf.write_text(CONFIGS[name])
    local = make_image(tmp_path / "local.img", 2 * MiB)
    remote = make_image(tmp_path / "remote.img", 2 * MiB)
    # writeback: flushes only where the commands say so. (qemu-io's default, writethrough, flushes after
    # each write locally, but over NBD it sends FUA writes instead; see test_fua_write_fires_flush_events.)
    expected = qemu_io(f"blkdebug:{conf}:{local}", *COMMANDS, cache="writeback")
    with serve(remote, blkdebug=conf) as srv:
        got = qemu_io(srv.uri, *COMMANDS, cache="writeback")
    assert "failed" in expected  # each config injects something
    assert got == expected
    assert remote.read_bytes() == local.read_bytes()


def test_sector_targeted_read_error_keeps_the_connection(tmp_path: Path) -> None:
    img = make_image(tmp_path / "a.img", 4 * MiB, pattern=7)
    rules = '[inject-error]\nevent = "read_aio"\nsector = "100"\nerrno = "5"\niotype = "read"\n'
    with serve(img, rules=rules) as srv:
        for replies in ("structured", "simple"):
            out = libnbd(
                """
                import json, sys, nbd
                h = nbd.NBD(); h.set_request_structured_replies(sys.argv[2] == "structured")
                h.connect_uri(sys.argv[1])
                res = {}
                for name, (count, off) in {"before": (4096, 0), "covering": (4096, 98 * 512),
                                           "exact": (512, 100 * 512), "after": (4096, 101 * 512)}.items():
                    try:
                        res[name] = h.pread(count, off)[:1].hex()
                    except nbd.Error as e:
                        res[name] = e.errno
                res["again"] = h.pread(512, 0)[:1].hex()  # same connection, still alive
                res["structured"] = h.get_structured_replies_negotiated()
                h.shutdown()
                print(json.dumps(res))
                """,
                srv.uri,
                replies,
            )
            assert out["structured"] is (replies == "structured")
            assert out["before"] == "07" and out["after"] == "07" and out["again"] == "07"
            assert out["covering"] == "EIO" and out["exact"] == "EIO"
        assert srv.stats()["connections_total"] == 2


def test_injected_read_error_is_an_error_offset_chunk(tmp_path: Path) -> None:
    """The wire form: a structured NBD_REPLY_TYPE_ERROR_OFFSET chunk at the sector, no disconnect."""
    import socket
    import struct

    img = make_image(tmp_path / "a.img", 1 * MiB)
    with serve(img, rules='[inject-error]\nevent = "read_aio"\nsector = "9"\n') as srv:
        path = srv.uri.split("socket=")[1]
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(path)
        f = s.makefile("rwb")

        def opt(code: int, data: bytes = b"") -> None:
            f.write(struct.pack(">QII", 0x49484156454F5054, code, len(data)) + data)
            f.flush()

        assert f.read(18)[:8] == b"NBDMAGIC"
        f.write(struct.pack(">I", 3))
        opt(8)  # structured replies
        assert struct.unpack(">QIII", f.read(20))[2] == 1
        opt(7, struct.pack(">I", 0) + struct.pack(">H", 0))  # GO, default export
        while True:
            _, _, rep, ln = struct.unpack(">QIII", f.read(20))
            f.read(ln)
            if rep == 1:
                break
        f.write(struct.pack(">IHHQQI", 0x25609513, 0, 0, 77, 0, 8192))
        f.flush()
        magic, flags, kind, cookie, ln = struct.unpack(">IHHQI", f.read(20))
        body = f.read(ln)
        assert (magic, cookie, kind) == (0x668E33EF, 77, 0x8002)  # ERROR_OFFSET
        err, msglen = struct.unpack(">IH", body[:6])
        assert err == 5 and struct.unpack(">Q", body[6 + msglen :])[0] == 9 * 512
        assert flags & 1  # done
        f.write(struct.pack(">IHHQQI", 0x25609513, 0, 0, 78, 8192, 512))  # the next read still works
        f.flush()
        magic, flags, kind, cookie, ln = struct.unpack(">IHHQI", f.read(20))
        assert (kind, cookie, ln) == (1, 78, 8 + 512)
        f.read(ln)
        f.write(struct.pack(">IHHQQI", 0x25609513, 0, 2, 79, 0, 0))  # DISC
        f.flush()
        s.close()


def test_once_versus_sticky(tmp_path: Path) -> None:
    img = make_image(tmp_path / "a.img", 1 * MiB)
    with serve(img) as srv:
        srv.inject("write_aio", 28, once=True)
        srv.inject("read_aio", 5, iotype="read", sector=0)
        out = qemu_io(
            srv.uri,
            "write -P 1 0 4k",  # write_aio activates the once rule: this write fails, ENOSPC
            "write -P 1 0 4k",  # once: gone
            "read -P 1 0 4k",  # read_aio activates the sticky rule
            "read -P 1 0 4k",  # still failing
            "read -P 0 8k 4k",  # sector 0 only
        )
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert lines == [
        "write failed: No space left on device",
        "wrote 4096/4096 bytes at offset 0",
        "read failed: Input/output error",
        "read failed: Input/output error",
        "read 4096/4096 bytes at offset 8192",
    ]


def test_046_style_break_aio_writes_resume(tmp_path: Path) -> None:
    """qemu-iotests 046's first case, over NBD: the write at 0x18000 is frozen on write_aio, writes on
    both sides of it complete meanwhile, then it is resumed; every pattern ends where it belongs."""
    exe = need_tool("qemu-io", "qemu-utils")
    img = make_image(tmp_path / "a.img", 1 * MiB, pattern=1)
    with serve(img) as srv:
        srv.break_("write_aio", "A")
        # stdbuf: completions are printed as they happen, not when qemu-io exits
        with proc(["stdbuf", "-oL", exe, "-f", "raw", srv.uri], stdin=True) as q:
            q.send("aio_write -P 10 0x18000 0x2000")
            srv.wait_break("A", timeout=20)
            assert srv.state()["suspended"] == [{"tag": "A", "event": "write_aio"}]
            # one command per step: qemu-io reads stdin through stdio and would sit on a second line
            q.send("aio_write -P 11 0x12000 0x2000")
            q.wait_for(r"wrote 8192/8192 bytes at offset 73728")
            q.send("aio_write -P 12 0x1c000 0x2000")
            q.wait_for(r"wrote 8192/8192 bytes at offset 114688")
            assert srv.state()["suspended"]  # A still held while the others completed
            srv.resume("A")
            q.wait_for(r"wrote 8192/8192 bytes at offset 98304")
            for pattern, off, length in [
                (1, 0x10000, 0x2000),
                (11, 0x12000, 0x2000),
                (1, 0x14000, 0x4000),
                (10, 0x18000, 0x2000),
                (1, 0x1A000, 0x2000),
                (12, 0x1C000, 0x2000),
                (1, 0x1E000, 0x2000),
            ]:
                q.send(f"read -P {pattern} {off:#x} {length:#x}")
                line = q.wait_for(r"read \d+/\d+ bytes|Pattern verification failed|failed")
                assert line.split("read ", 1)[1].startswith(f"{length}/{length} bytes at offset {off}"), line
    data = img.read_bytes()
    assert data[0x18000:0x1A000] == bytes([10]) * 0x2000


def test_overlapping_write_order_is_decided_by_the_breakpoint(tmp_path: Path) -> None:
    """A frozen write resumed after an overlapping one lands last: the breakpoint decides the order."""
    img = make_image(tmp_path / "a.img", 1 * MiB)
    with serve(img) as srv:
        srv.break_("write_aio", "A")
        script = """
            import json, sys, nbd
            h = nbd.NBD(); h.connect_uri(sys.argv[1])
            a = h.aio_pwrite(b"A" * 8192, 0)
            print("A sent", flush=True); sys.stdin.readline()
            b = h.aio_pwrite(b"B" * 8192, 4096)
            while not h.aio_command_completed(b): h.poll(-1)
            print("B done", flush=True); sys.stdin.readline()
            while not h.aio_command_completed(a): h.poll(-1)
            print("A done", flush=True)
            h.shutdown()
        """
        import textwrap

        from nbd_helpers import need_libnbd

        with proc([need_libnbd(), "-c", textwrap.dedent(script), srv.uri], stdin=True) as c:
            c.wait_for("A sent")
            srv.wait_break("A", timeout=20)
            c.send("")
            c.wait_for("B done")
            srv.resume("A")
            c.send("")
            c.wait_for("A done")
    data = img.read_bytes()
    assert data[:8192] == b"A" * 8192 and data[8192:12288] == b"B" * 4096


def test_resume_is_lifo_and_remove_break_resumes_all(tmp_path: Path) -> None:
    img = make_image(tmp_path / "a.img", 1 * MiB)
    with serve(img) as srv:
        script = """
            import json, sys, nbd
            h = nbd.NBD(); h.connect_uri(sys.argv[1])
            cookies = {}
            for name in sys.stdin.readline().split():
                off = {"w1": 0, "w2": 4096, "w3": 8192}[name]
                cookies[h.aio_pwrite(name.encode() * 1024, off)] = name
                print("sent", name, flush=True)
                sys.stdin.readline()
            while cookies:
                h.poll(-1)
                for c, name in list(cookies.items()):
                    if h.aio_command_completed(c):
                        print("done", name, flush=True)
                        del cookies[c]
            h.shutdown()
        """
        import textwrap

        from nbd_helpers import need_libnbd

        with proc([need_libnbd(), "-c", textwrap.dedent(script), srv.uri], stdin=True) as c:
            for count, name in enumerate(("w1", "w2", "w3"), 1):
                srv.break_("write_aio", "T")  # one-shot: one breakpoint per request
                c.send("w1 w2 w3" if count == 1 else "")  # let the script send the next write
                c.wait_for(f"sent {name}")
                srv.wait_break("T", timeout=20, count=count)
                assert len(srv.state()["suspended"]) == count
            c.send("")  # the script now waits for completions
            srv.resume("T")  # the most recent one: w3
            assert c.wait_for(r"done w\d").strip() == "done w3"
            srv.break_("write_aio", "T")  # a pending breakpoint, also removed below
            assert srv.remove_break("T") == 2  # w1 and w2 resumed
            done = {c.wait_for(r"done w\d").strip(), c.wait_for(r"done w\d").strip()}
            assert done == {"done w1", "done w2"}
            # QEMU reports ENOENT here after resuming; iolab only when there was nothing at all
            with pytest.raises(NBDServerError) as exc:
                srv.remove_break("T")
            assert exc.value.errno == 2
            with pytest.raises(NBDServerError):
                srv.resume("T")


def test_046_through_cli_and_ctl(tmp_path: Path) -> None:
    """The same freeze/resume driven by `iolab ctl` against an `iolab serve` process."""
    exe = need_tool("qemu-io", "qemu-utils")
    img = make_image(tmp_path / "a.img", 1 * MiB)
    sock, csock = str(tmp_path / "nbd.sock"), str(tmp_path / "ctl.sock")
    with serve_cli(str(img), "--listen", f"unix:{sock}", "--control", csock) as (_srv, ready):
        ctl(csock, "break", "write_aio", "A")
        with proc(["stdbuf", "-oL", exe, "-f", "raw", ready["uris"][0]], stdin=True) as q:
            q.send("aio_write -P 20 0x28000 0x2000")
            ctl(csock, "wait_break", "A", "20")
            q.send("aio_write -P 21 0x2a000 0x10000")
            q.wait_for(r"wrote 65536/65536 bytes at offset 172032")
            state = json.loads(ctl(csock, "state").stdout)
            assert state["suspended"] == [{"tag": "A", "event": "write_aio"}]
            ctl(csock, "resume", "A")
            q.wait_for(r"wrote 8192/8192 bytes at offset 163840")
            q.send("read -P 20 0x28000 0x2000")
            assert "8192/8192" in q.wait_for(r"read \d+/\d+|failed")
        stats = json.loads(ctl(csock, "stats").stdout)
        assert stats["commands"]["write"]["ops"] == 2
    data = img.read_bytes()
    assert data[0x28000:0x2A000] == bytes([20]) * 0x2000 and data[0x2A000:0x3A000] == bytes([21]) * 0x10000


# --- the rule engine itself, without a client ---------------------------------------------------


def test_parse_qemu_config() -> None:
    rules = blkdebug.parse_config(
        FAIL_SECOND_WRITE + '\n# comment\n[inject-error "id"]\nevent = "read_aio"\n'
    )
    assert [(r.action, r.event, r.state) for r in rules] == [
        ("set-state", "write_aio", 1),
        ("inject-error", "write_aio", 2),
        ("inject-error", "read_aio", 0),
    ]
    assert rules[1].errno == 5 and not rules[1].once and rules[1].offset == -1
    with pytest.raises(blkdebug.ConfigError, match="unknown event"):
        blkdebug.parse_config('[inject-error]\nevent = "nope"\n')
    with pytest.raises(blkdebug.ConfigError, match="invalid parameter"):
        blkdebug.parse_config('[inject-error]\nevent = "read_aio"\nbogus = "1"\n')
    with pytest.raises(blkdebug.ConfigError, match="no option group"):
        blkdebug.parse_config('[other]\nevent = "read_aio"\n')


def _fire(dbg: blkdebug.BlkdebugState, event: str) -> None:
    assert dbg.fire(event) is None


def test_state_rules_see_the_state_from_before_the_event() -> None:
    dbg = blkdebug.BlkdebugState()
    for r in blkdebug.parse_config(
        '[set-state]\nevent = "write_aio"\nstate = "1"\nnew_state = "2"\n'
        '[set-state]\nevent = "write_aio"\nstate = "2"\nnew_state = "3"\n'
    ):
        dbg.add(r)
    _fire(dbg, "write_aio")
    assert dbg.state == 2  # not 3: both rules saw state 1
    _fire(dbg, "write_aio")
    assert dbg.state == 3


def test_errors_are_sticky_until_the_next_injecting_event() -> None:
    dbg = blkdebug.BlkdebugState()
    for r in blkdebug.parse_config(
        '[inject-error]\nevent = "read_aio"\nerrno = "5"\n'
        '[inject-error]\nevent = "flush_to_disk"\nerrno = "0"\n'
    ):
        dbg.add(r)
    dbg.check(0, 512, "write")  # nothing active yet
    _fire(dbg, "read_aio")
    for iotype in ("read", "write", "flush", "discard"):
        with pytest.raises(NBDError):
            dbg.check(0, 512, iotype)
    dbg.check(0, 512, "block-status")  # not in QEMU's default iotype mask
    _fire(dbg, "flush_to_disk")  # activates an errno 0 rule: replaces the set, no error any more
    dbg.check(0, 512, "read")


@pytest.mark.parametrize(
    ("offset", "length", "hit"),
    [(0, 4096, False), (4096, 512, True), (4096 - 512, 1024, True), (4608, 512, False), (4096, 0, False)],
)
def test_sector_matching(offset: int, length: int, hit: bool) -> None:
    dbg = blkdebug.BlkdebugState()
    dbg.add(blkdebug.make_rule("inject-error", {"event": "read_aio", "sector": "8"}))
    _fire(dbg, "read_aio")
    if hit:
        with pytest.raises(NBDError) as exc:
            dbg.check(offset, length, "read")
        assert exc.value.offset == 4096
    else:
        dbg.check(offset, length, "read")


def test_inactive_rules_cost_one_lookup() -> None:
    dbg = blkdebug.BlkdebugState()
    for i in range(100):
        dbg.add(blkdebug.make_rule("inject-error", {"event": "read_aio", "state": str(i + 2)}))
    assert dbg.fire("read_aio") is None and not dbg.active
    assert dbg._applicable("read_aio") == []


def test_cli_rejects_bad_config(tmp_path: Path) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text('[inject-error]\nevent = "write_aoi"\n')
    img = make_image(tmp_path / "a.img", 1 * MiB)
    from nbd_helpers import run

    out = run(
        [
            sys.executable,
            "-m",
            "iolab",
            "serve",
            str(img),
            "--listen",
            f"unix:{tmp_path}/s",
            "--blkdebug",
            str(conf),
        ],
        check=False,
    )
    assert out.returncode == 1 and "unknown event 'write_aoi'" in out.stderr


def test_api_inject_and_state(tmp_path: Path, nbd_serve: Any) -> None:
    img = make_image(tmp_path / "a.img", 1 * MiB)
    srv = nbd_serve(img)
    rule = srv.inject("read_aio", 5, sector=3, once=True)
    assert rule["sector"] == 3 and rule["once"] is True
    srv.set_state_rule("write_aio", new_state=7)
    qemu_io(srv.uri, "write -P 1 0 512")
    assert srv.state()["state"] == 7
    with pytest.raises(NBDServerError):
        srv.inject("no_such_event")


def test_fua_write_fires_flush_events(tmp_path: Path) -> None:
    """A FUA write is the write then a flush, as QEMU emulates FUA: flush rules see it."""
    img = make_image(tmp_path / "a.img", 1 * MiB)
    rules = '[set-state]\nevent = "flush_to_disk"\nnew_state = "5"\n'
    script = """
        import json, sys, nbd
        h = nbd.NBD(); h.connect_uri(sys.argv[1])
        out = []
        for data, off, flags in ((b"1", 0, 0), (b"2", 0, nbd.CMD_FLAG_FUA), (b"3", 4096, 0)):
            try:
                h.pwrite(data * 4096, off, flags); out.append("ok")
            except nbd.Error as e:
                out.append(e.errno)
        h.shutdown()
        print(json.dumps(out))
    """
    with serve(img, rules=rules) as srv:
        assert libnbd(script.replace('(b"2", 0, nbd.CMD_FLAG_FUA), ', ""), srv.uri) == ["ok", "ok"]
        assert srv.state()["state"] == 1  # plain writes fire no flush event
        assert libnbd(script, srv.uri) == ["ok", "ok", "ok"]
        assert srv.state()["state"] == 5
        srv.inject("flush_to_disk", 28, iotype="flush")
        assert libnbd(script, srv.uri) == ["ok", "ENOSPC", "ok"]
    assert img.read_bytes()[:4096] == b"2" * 4096  # the data was written before the flush failed
