"""The storage-fault filters (lost-write, torn-write, misdirected-write, bit-rot) with real clients.

Each test writes or reads through the export with qemu-io or nbdcopy, then looks at the data through the
export and in the backing file directly, and holds it against the filter's log of injected faults
(`iolab ctl SOCKET faults`): the log must say exactly what happened to the data, and nothing else may
have happened.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from iolab.nbd import filters
from iolab.nbd.layers import FileBackend
from nbd_helpers import ctl, make_image, need_tool, qemu_io, run, serve_cli

KiB = 1 << 10
MiB = 1 << 20
OLD = 0xAA
NEW = 0x55


def image(tmp_path: Path, size: int = 4 * MiB) -> Path:
    return make_image(tmp_path / "disk.img", size, pattern=OLD)


def faults(csock: str, *args: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(ctl(csock, "faults", *args).stdout)["faults"]
    return found


def served(img: Path, tmp_path: Path, *specs: str, extra: tuple[str, ...] = ()) -> Any:
    args = [str(img), "--listen", f"unix:{tmp_path / 'nbd.sock'}", "--control", str(tmp_path / "ctl.sock")]
    for spec in specs:
        args += ["--filter", spec]
    return serve_cli(*args, *extra)


def region(path: Path, offset: int, length: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


def nbd_read(uri: str, tmp_path: Path, name: str = "copy.img") -> bytes:
    """The whole export as a client reads it (nbdcopy)."""
    exe = need_tool("nbdcopy", "libnbd-bin")
    out = tmp_path / name
    out.unlink(missing_ok=True)
    run([exe, uri, str(out)])
    return out.read_bytes()


def bits_differing(a: bytes, b: bytes) -> list[tuple[int, int]]:
    assert len(a) == len(b)
    diff = []
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if x != y:
            diff += [(i, bit) for bit in range(8) if (x ^ y) >> bit & 1]
    return diff


# --------------------------------------------------------------------------------------------- lost-write


def test_lost_write_acknowledged_never_lands(tmp_path: Path) -> None:
    img = image(tmp_path)
    csock = str(tmp_path / "ctl.sock")
    with served(img, tmp_path, "lost-write:offset=64k,length=4k,once=on") as (_srv, ready):
        uri = ready["uris"][0]
        out = qemu_io(uri, "write -P 0x55 0 4k", "write -P 0x55 64k 8k", "write -P 0x55 128k 4k")
        assert "wrote 8192/8192 bytes at offset 65536" in out  # acknowledged
        assert "failed" not in out.lower()
        # the export and the file agree: old data where the write was lost, new data elsewhere
        for where in (img,):
            assert region(where, 0, 4 * KiB) == bytes([NEW]) * 4 * KiB
            assert region(where, 64 * KiB, 8 * KiB) == bytes([OLD]) * 8 * KiB
            assert region(where, 128 * KiB, 4 * KiB) == bytes([NEW]) * 4 * KiB
        assert "read 8192/8192" in qemu_io(uri, "read -P 0xaa 64k 8k")
        (fault,) = faults(csock)
        assert fault["id"] == "lost-write" and fault["injected"] == 1 and fault["exhausted"]
        assert [(e["fault"], e["op"], e["offset"], e["length"]) for e in fault["log"]] == [
            ("lost-write", "write", 64 * KiB, 8 * KiB)
        ]
        # once: the next write to the range lands
        qemu_io(uri, "write -P 0x55 64k 8k")
        assert region(img, 64 * KiB, 8 * KiB) == bytes([NEW]) * 8 * KiB
        assert faults(csock)[0]["injected"] == 1


def test_lost_write_zero_and_trim_selected_by_ops(tmp_path: Path) -> None:
    img = image(tmp_path)
    with served(img, tmp_path, "lost-write:ops=zero") as (_srv, ready):
        uri = ready["uris"][0]
        qemu_io(uri, "write -z 0 4k", "write -P 0x55 8k 4k")
        assert region(img, 0, 4 * KiB) == bytes([OLD]) * 4 * KiB  # the zeroing was lost
        assert region(img, 8 * KiB, 4 * KiB) == bytes([NEW]) * 4 * KiB  # plain writes pass
        log = faults(str(tmp_path / "ctl.sock"))[0]["log"]
        assert [(e["op"], e["offset"], e["length"]) for e in log] == [("zero", 0, 4 * KiB)]


def test_lost_writes_match_the_log_under_nbdcopy(tmp_path: Path) -> None:
    """nbdcopy writes a random image through a lost-write filter hitting every 3rd request: the result is
    the new image except exactly at the logged ranges, which hold the old data."""
    exe = need_tool("nbdcopy", "libnbd-bin")
    size = 4 * MiB
    img = image(tmp_path, size)
    src = tmp_path / "src.img"
    new = random.Random(3).randbytes(size)
    src.write_bytes(new)
    with served(img, tmp_path, "lost-write:every=3") as (_srv, ready):
        run([exe, "--request-size=65536", str(src), ready["uris"][0]])
        log = faults(str(tmp_path / "ctl.sock"))[0]["log"]
    expect = bytearray(new)
    for e in log:
        assert e["op"] == "write"
        expect[e["offset"] : e["offset"] + e["length"]] = bytes([OLD]) * e["length"]
    assert len(log) >= 10
    assert img.read_bytes() == bytes(expect)


# --------------------------------------------------------------------------------------------- torn-write


def test_torn_write_first_sector_lands(tmp_path: Path) -> None:
    img = image(tmp_path)
    with served(img, tmp_path, "torn-write") as (_srv, ready):
        uri = ready["uris"][0]
        qemu_io(uri, "write -P 0x55 8k 4k", "write -P 0x55 64k 512")
        got = region(img, 8 * KiB, 4 * KiB)
        assert got == bytes([NEW]) * 512 + bytes([OLD]) * (4 * KiB - 512)
        # a write no longer than keep cannot tear: it lands whole and is not counted
        assert region(img, 64 * KiB, 512) == bytes([NEW]) * 512
        assert "read 3584/3584" in qemu_io(uri, "read -P 0xaa 8704 3584")  # the export shows the same
        (fault,) = faults(str(tmp_path / "ctl.sock"))
        assert fault["matched"] == 1 and fault["injected"] == 1
        (e,) = fault["log"]
        assert e["offset"] == 8 * KiB and e["length"] == 4 * KiB
        assert e["landed"] == {"offset": 8 * KiB, "length": 512}
        assert e["lost"] == {"offset": 8 * KiB + 512, "length": 4 * KiB - 512}


def test_torn_write_tail_percentage(tmp_path: Path) -> None:
    img = image(tmp_path)
    with served(img, tmp_path, "torn-write:keep=25%,lands=tail") as (_srv, ready):
        qemu_io(ready["uris"][0], "write -P 0x55 16k 8k")
        assert region(img, 16 * KiB, 8 * KiB) == bytes([OLD]) * 6 * KiB + bytes([NEW]) * 2 * KiB
        (e,) = faults(str(tmp_path / "ctl.sock"))[0]["log"]
        assert e["landed"] == {"offset": 22 * KiB, "length": 2 * KiB}
        assert e["lost"] == {"offset": 16 * KiB, "length": 6 * KiB}


# ----------------------------------------------------------------------------------------- misdirected-write


def test_misdirected_write_lands_shifted(tmp_path: Path) -> None:
    img = image(tmp_path)
    with served(img, tmp_path, "misdirected-write:shift=1M,offset=0,length=64k") as (_srv, ready):
        uri = ready["uris"][0]
        qemu_io(uri, "write -P 0x55 4k 4k", "write -P 0x55 2M 4k")
        assert region(img, 4 * KiB, 4 * KiB) == bytes([OLD]) * 4 * KiB  # intended place untouched
        assert region(img, MiB + 4 * KiB, 4 * KiB) == bytes([NEW]) * 4 * KiB  # the data, shifted
        assert region(img, 2 * MiB, 4 * KiB) == bytes([NEW]) * 4 * KiB  # outside the range: normal
        # the rest of the image is untouched
        data = img.read_bytes()
        assert data.count(bytes([NEW])) == 8 * KiB
        assert "read 4096/4096" in qemu_io(uri, "read -P 0x55 1028k 4k")
        (e,) = faults(str(tmp_path / "ctl.sock"))[0]["log"]
        assert (e["op"], e["offset"], e["length"], e["target"]) == ("write", 4 * KiB, 4 * KiB, MiB + 4 * KiB)


def test_misdirected_write_negative_shift_wraps(tmp_path: Path) -> None:
    size = 4 * MiB
    img = image(tmp_path, size)
    with served(img, tmp_path, "misdirected-write:shift=-8k") as (_srv, ready):
        qemu_io(ready["uris"][0], "write -P 0x55 0 4k", "write -P 0x55 4k 16k")
        assert region(img, size - 8 * KiB, 4 * KiB) == bytes([NEW]) * 4 * KiB
        assert region(img, 0, 4 * KiB) == bytes([OLD]) * 4 * KiB
        # 16k at 4k shifted by -8k would overlap itself: not misdirected, lands where it belongs
        assert region(img, 4 * KiB, 16 * KiB) == bytes([NEW]) * 16 * KiB
        log = faults(str(tmp_path / "ctl.sock"))[0]["log"]
        assert [(e["offset"], e["target"]) for e in log] == [(0, size - 8 * KiB)]


# -------------------------------------------------------------------------------------------------- bit-rot


def test_bit_rot_flips_n_bits_on_read_only(tmp_path: Path) -> None:
    img = make_image(tmp_path / "disk.img", 1 * MiB, pattern=OLD)
    clean = img.read_bytes()
    with served(img, tmp_path, "bit-rot:bits=3,seed=7,once=on,offset=256k,length=64k") as (_srv, ready):
        uri = ready["uris"][0]
        first = nbd_read(uri, tmp_path)
        diff = bits_differing(clean, first)
        assert len(diff) == 3
        assert all(256 * KiB <= off < 320 * KiB for off, _bit in diff)
        (e,) = faults(str(tmp_path / "ctl.sock"))[0]["log"]
        assert [(b["offset"], b["bit"]) for b in e["bits"]] == diff
        assert e["op"] == "read" and e["persisted"] is False
        assert e["offset"] <= diff[0][0] and diff[-1][0] < e["offset"] + e["length"]
        # persist=off: the image holds the clean data, and the next read (once: no more rot) is clean
        assert img.read_bytes() == clean
        assert nbd_read(uri, tmp_path) == clean


def test_bit_rot_persist_writes_the_flips_back(tmp_path: Path) -> None:
    img = make_image(tmp_path / "disk.img", 1 * MiB, pattern=OLD)
    clean = img.read_bytes()
    with served(img, tmp_path, "bit-rot:bits=5,seed=1,once=on,persist=on") as (_srv, ready):
        uri = ready["uris"][0]
        rotten = nbd_read(uri, tmp_path)
        assert len(bits_differing(clean, rotten)) == 5
        assert img.read_bytes() == rotten  # the flips are on the image now
        assert nbd_read(uri, tmp_path) == rotten  # and every later read sees them
        (e,) = faults(str(tmp_path / "ctl.sock"))[0]["log"]
        assert e["persisted"] is True and len(e["bits"]) == 5


def test_bit_rot_is_reproducible_from_its_seed(tmp_path: Path) -> None:
    img = make_image(tmp_path / "disk.img", 256 * KiB, pattern=0)
    runs = []
    for _ in range(2):
        with served(img, tmp_path, "bit-rot:bits=4,seed=99,every=2") as (_srv, ready):
            qemu_io(ready["uris"][0], "read 0 64k", "read 64k 64k", "read 0 64k", "read 64k 64k")
            log = faults(str(tmp_path / "ctl.sock"))[0]["log"]
            runs.append([[(b["offset"], b["bit"]) for b in e["bits"]] for e in log])
    assert len(runs[0]) == 2 and runs[0] == runs[1]


# ------------------------------------------------------------------------------------------ rule selection


def test_every_nth_and_probability_select_like_the_rule_says(tmp_path: Path) -> None:
    img = image(tmp_path)
    cmds = [f"write -P 0x55 {i * 4}k 4k" for i in range(20)]
    with served(img, tmp_path, "lost-write:every=4", "lost-write:id=coin,probability=0.5,seed=5") as (
        _srv,
        ready,
    ):
        qemu_io(ready["uris"][0], *cmds)
        every, coin = faults(str(tmp_path / "ctl.sock"))
    # every=4 is outermost: it drops requests 4, 8, ... (the 4th, 8th ... it sees)
    assert [e["offset"] // (4 * KiB) for e in every["log"]] == [3, 7, 11, 15, 19]
    assert every["matched"] == 20
    # the inner one sees the 15 others; it drops those its seeded coin says
    rng = random.Random(5)
    passed = [i for i in range(20) if (i + 1) % 4]
    expect = [i for i in passed if rng.random() < 0.5]
    assert [e["offset"] // (4 * KiB) for e in coin["log"]] == expect
    assert coin["id"] == "coin" and coin["matched"] == 15
    lost = {e["offset"] // (4 * KiB) for e in every["log"] + coin["log"]}
    for i in range(20):
        assert region(img, i * 4 * KiB, 4 * KiB) == bytes([OLD if i in lost else NEW]) * 4 * KiB


def test_state_ties_the_fault_to_blkdebug(tmp_path: Path) -> None:
    """lost-write:state=2 drops writes only after a blkdebug set-state rule moved the export to state 2."""
    img = image(tmp_path)
    rules = tmp_path / "rules.conf"
    rules.write_text('[set-state]\nevent = "flush_to_disk"\nstate = "1"\nnew_state = "2"\n')
    with served(img, tmp_path, "lost-write:state=2", extra=("--blkdebug", str(rules))) as (_srv, ready):
        uri = ready["uris"][0]
        qemu_io(uri, "write -P 0x55 0 4k", "flush", "write -P 0x55 8k 4k", cache="writeback")
        assert region(img, 0, 4 * KiB) == bytes([NEW]) * 4 * KiB
        assert region(img, 8 * KiB, 4 * KiB) == bytes([OLD]) * 4 * KiB
        log = faults(str(tmp_path / "ctl.sock"))[0]["log"]
        assert [e["offset"] for e in log] == [8 * KiB]


# ---------------------------------------------------------------------------------------- run-time control


def test_ctl_disable_enable_reset_add_remove(tmp_path: Path) -> None:
    img = image(tmp_path)
    csock = str(tmp_path / "ctl.sock")
    with served(img, tmp_path, "lost-write:enabled=off") as (_srv, ready):
        uri = ready["uris"][0]
        qemu_io(uri, "write -P 0x55 0 4k")
        assert region(img, 0, 4 * KiB) == bytes([NEW]) * 4 * KiB  # disabled from the start
        ctl(csock, "fault_enable", "lost-write")
        qemu_io(uri, "write -P 0x55 4k 4k")
        assert region(img, 4 * KiB, 4 * KiB) == bytes([OLD]) * 4 * KiB
        ctl(csock, "fault_disable", "lost-write")
        qemu_io(uri, "write -P 0x55 8k 4k")
        assert region(img, 8 * KiB, 4 * KiB) == bytes([NEW]) * 4 * KiB
        (f,) = faults(csock)
        assert (f["enabled"], f["injected"], [e["offset"] for e in f["log"]]) == (False, 1, [4 * KiB])
        ctl(csock, "fault_reset")
        assert faults(csock)[0]["injected"] == 0 and faults(csock)[0]["log"] == []

        # added at run time, outermost, with its own id; the existing one keeps its id
        added = json.loads(ctl(csock, "fault_add", "misdirected-write:shift=1M,once=on").stdout)
        assert added["fault"]["id"] == "misdirected-write"
        ctl(csock, "fault_add", "lost-write:offset=32k,length=4k")
        assert [f["id"] for f in faults(csock, "--no-log")] == [
            "lost-write#2",
            "misdirected-write",
            "lost-write",
        ]
        qemu_io(uri, "write -P 0x55 16k 4k", "write -P 0x55 32k 4k")
        assert region(img, 16 * KiB, 4 * KiB) == bytes([OLD]) * 4 * KiB
        assert region(img, MiB + 16 * KiB, 4 * KiB) == bytes([NEW]) * 4 * KiB
        assert region(img, 32 * KiB, 4 * KiB) == bytes([OLD]) * 4 * KiB
        assert "log" not in faults(csock, "misdirected-write", "--no-log")[0]
        ctl(csock, "fault_remove", "lost-write#2")
        qemu_io(uri, "write -P 0x55 32k 4k")
        assert region(img, 32 * KiB, 4 * KiB) == bytes([NEW]) * 4 * KiB
        assert [f["id"] for f in faults(csock)] == ["misdirected-write", "lost-write"]

        # errors: one line on stderr, exit 1, the server goes on
        bad = ctl(csock, "fault_enable", "nope", check=False)
        assert bad.returncode == 1
        assert "no fault filter 'nope'" in bad.stderr and "misdirected-write, lost-write" in bad.stderr
        bad = ctl(csock, "fault_add", "lost-write:evry=2", check=False)
        assert bad.returncode == 1 and "did you mean 'every'" in bad.stderr
        bad = ctl(csock, "fault_add", "delay:write=1ms", check=False)
        assert bad.returncode == 1 and "only fault filters" in bad.stderr
        assert "Traceback" not in bad.stderr
        assert "wrote 4096/4096" in qemu_io(uri, "write -P 0x55 48k 4k")


# ----------------------------------------------------------------------------------------- bad settings


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("lost-write:ops=read", "ops: 'read' is not one of write+zero+trim"),
        ("torn-write:lands=middle", "lands: 'middle' is not head or tail"),
        ("torn-write:keep=100%", "under 100%"),
        ("misdirected-write:shift=0", "shift: 0 would write where the data belongs"),
        ("bit-rot:bits=0", "bits: 0 is out of range"),
        ("bit-rot:probability=2", "is not more than 0 and at most 1"),
        ("lost-write:offset=1x", "offset: '1x' is not a size"),
        ("lost-write:once=on,limit=3", "contradict"),
        ("lost-write:state=2", "state=2 needs a blkdebug layer"),
    ],
)
def test_bad_settings_refused_with_one_line(tmp_path: Path, spec: str, message: str) -> None:
    img = image(tmp_path, MiB)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "iolab",
            "serve",
            str(img),
            "--listen",
            f"unix:{tmp_path / 's'}",
            "--filter",
            spec,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_registry_lists_the_fault_filters(tmp_path: Path) -> None:
    for name in ("lost-write", "torn-write", "misdirected-write", "bit-rot"):
        assert name in filters.FILTERS
    backend = FileBackend(str(image(tmp_path, MiB)), read_only=True)
    try:
        with pytest.raises(ValueError, match="persist=on needs a writable export"):
            filters.build_filter("bit-rot:persist=on", backend)
    finally:
        backend.close()


def test_python_api(tmp_path: Path, nbd_serve: Any) -> None:
    img = image(tmp_path, MiB)
    srv = nbd_serve(img, filters=["torn-write:keep=1k,id=torn"])
    qemu_io(srv.uri, "write -P 0x55 0 4k")
    assert [(e["offset"], e["landed"]["length"]) for e in srv.fault_log("torn")] == [(0, 1024)]
    srv.fault_enable("torn", enabled=False)
    qemu_io(srv.uri, "write -P 0x55 8k 4k")
    assert region(img, 8 * KiB, 4 * KiB) == bytes([NEW]) * 4 * KiB
    srv.fault_reset()
    assert srv.faults("torn")[0]["injected"] == 0
    ids = [srv.fault_add(f"lost-write:offset={i}M,length=4k") for i in range(63)]
    assert ids[0] == "lost-write" and ids[1] == "lost-write#2" and len(set(ids)) == 63
    with pytest.raises(Exception, match="64 fault filters already"):
        srv.fault_add("lost-write")
    srv.fault_remove("lost-write#2")
    assert len(srv.faults(log=False)) == 63


def test_torn_and_misdirected_writes_match_the_log_under_nbdcopy(tmp_path: Path) -> None:
    """nbdcopy writes random data into the first half of the export through torn-write (every 2nd request
    keeps its first 1 KiB) and misdirected-write (every 3rd request lands half the export further, and then
    passes torn-write at its new place): the image is exactly what the two logs say."""
    exe = need_tool("nbdcopy", "libnbd-bin")
    size = 8 * MiB
    half = size // 2
    img = image(tmp_path, size)
    src = tmp_path / "src.img"
    new = random.Random(11).randbytes(half)
    src.write_bytes(new)
    specs = (f"misdirected-write:shift={half},every=3", "torn-write:keep=1k,every=2")
    with served(img, tmp_path, *specs) as (_srv, ready):
        run([exe, "--request-size=65536", str(src), ready["uris"][0]])
        mis, torn = faults(str(tmp_path / "ctl.sock"))
    expect = bytearray(new + bytes([OLD]) * half)
    moved = {e["offset"]: e for e in mis["log"]}
    for off, e in moved.items():  # the outer filter: torn-write below sees these at their target
        assert e["target"] == off + half
        expect[e["target"] : e["target"] + e["length"]] = new[off : off + e["length"]]
        expect[off : off + e["length"]] = bytes([OLD]) * e["length"]
    for e in torn["log"]:
        assert e["offset"] not in moved
        lost = e["lost"]
        expect[lost["offset"] : lost["offset"] + lost["length"]] = bytes([OLD]) * lost["length"]
    assert len(moved) >= 5 and len(torn["log"]) >= 5
    assert torn["matched"] == mis["matched"] == half // 65536  # every request passed both
    assert any(e["offset"] >= half for e in torn["log"])  # misdirected data can be torn as well
    assert img.read_bytes() == bytes(expect)
