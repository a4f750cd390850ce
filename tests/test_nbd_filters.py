"""The delay, error-rate and log filters, and how filters stack (nbdkit-style)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from iolab.nbd import filters, serve
from iolab.nbd.layers import OPS, NBDError
from nbd_helpers import libnbd, make_image, qemu_io

MiB = 1 << 20

TIMED = """
import json, sys, time, nbd
h = nbd.NBD(); h.connect_uri(sys.argv[1])
t = {}
for name, fn in (("read", lambda: h.pread(4096, 0)), ("write", lambda: h.pwrite(b"w" * 4096, 0)),
                 ("flush", h.flush)):
    start = time.monotonic(); fn(); t[name] = time.monotonic() - start
h.shutdown()
print(json.dumps(t))
"""


def test_delay_per_operation(tmp_path: Path, nbd_serve: Any) -> None:
    img = make_image(tmp_path / "a.img", 1 * MiB)
    srv = nbd_serve(img, filters=["delay:write=150ms,flush=80ms"])
    t = libnbd(TIMED, srv.uri)
    assert t["write"] >= 0.15 and t["flush"] >= 0.08  # lower bounds only: a delay never shortens
    assert t["read"] < 0.08


def test_error_rate_is_seeded_and_per_operation(tmp_path: Path, nbd_serve: Any) -> None:
    img = make_image(tmp_path / "a.img", 1 * MiB)
    srv = nbd_serve(img, filters=["error-rate:read=0.3,write=0,errno=ENOSPC,seed=42"])
    out = libnbd(
        """
        import json, sys, nbd
        h = nbd.NBD(); h.connect_uri(sys.argv[1])
        res = []
        for i in range(50):
            try:
                h.pread(512, 0); res.append(0)
            except nbd.Error as e:
                res.append(e.errno)
        h.pwrite(b"x" * 512, 0)
        h.shutdown()
        print(json.dumps(res))
        """,
        srv.uri,
    )
    rng = random.Random(42)
    expected = ["ENOSPC" if rng.random() < 0.3 else 0 for _ in range(50)]
    assert out == expected
    assert 5 < out.count("ENOSPC") < 30


def test_log_one_line_per_request(tmp_path: Path, nbd_serve: Any) -> None:
    img = make_image(tmp_path / "a.img", 1 * MiB)
    log = tmp_path / "requests.log"
    srv = nbd_serve(img, filters=[f"log:file={log}"])
    qemu_io(srv.uri, "write -P 1 0 4k", "read -P 1 0 4k", "write -z 8k 4k", "flush", cache="writeback")
    srv.inject("read_aio", 5, once=True)
    qemu_io(srv.uri, "read 0 512", cache="writeback")
    srv.close()
    lines = log.read_text().splitlines()
    ops = [ln.split()[2] for ln in lines]
    assert ops[:4] == ["write", "read", "zero", "flush"]
    assert "read" in ops[4:]
    assert any("error errno=5" in ln for ln in lines)
    assert all(ln.endswith("us") for ln in lines)


def test_filter_order_outermost_first(tmp_path: Path, nbd_serve: Any) -> None:
    """log above error-rate sees the injected errors; error-rate above log hides them from it."""
    img = make_image(tmp_path / "a.img", 1 * MiB)
    log1, log2 = tmp_path / "1.log", tmp_path / "2.log"
    script = """
        import json, sys, nbd
        h = nbd.NBD(); h.connect_uri(sys.argv[1])
        try:
            h.pread(512, 0)
        except nbd.Error:
            pass
        h.shutdown(); print(json.dumps(1))
    """
    srv1 = nbd_serve(img, filters=[f"log:file={log1}", "error-rate:read=1"])
    libnbd(script, srv1.uri)
    srv1.close()
    srv2 = nbd_serve(img, filters=["error-rate:read=1", f"log:file={log2}"])
    libnbd(script, srv2.uri)
    srv2.close()
    assert "error errno=5" in log1.read_text()
    assert log2.read_text() == ""


def test_filter_specs_are_checked() -> None:
    with pytest.raises(filters.FilterSpecError, match="unknown filter"):
        filters.parse_spec("nope") and filters.build_filter("nope", None)  # type: ignore[arg-type]
    with pytest.raises(filters.FilterSpecError, match="unknown setting"):
        filters.build_filter("delay:reed=1ms", None)  # type: ignore[arg-type]
    with pytest.raises(filters.FilterSpecError, match="duration"):
        filters.build_filter("delay:read=fast", None)  # type: ignore[arg-type]
    with pytest.raises(filters.FilterSpecError, match="errno"):
        filters.build_filter("error-rate:read=0.1,errno=EWHAT", None)  # type: ignore[arg-type]
    assert filters.parse_duration("250us") == pytest.approx(250e-6)
    assert filters.parse_errno("ENOSPC") == 28
    table = filters._per_op({"all": "1ms", "write": "5ms"}, filters.parse_duration, 0.0)
    assert set(table) == set(OPS) and table["write"] == 0.005 and table["read"] == 0.001


def test_checked_entry_point_runs_before_filters(tmp_path: Path) -> None:
    """An out-of-range request is refused before any filter sees it: error-rate at 100% is not reached."""
    img = make_image(tmp_path / "a.img", 1 * MiB)
    log = tmp_path / "r.log"
    with serve(img, filters=[f"log:file={log}", "error-rate:all=1,errno=ENOSPC"]) as srv:
        out = libnbd(
            """
            import json, sys, nbd
            h = nbd.NBD(); h.connect_uri(sys.argv[1]); h.set_strict_mode(0)
            res = []
            for off in (1 << 20, 0):
                try:
                    h.pread(4096, off); res.append("ok")
                except nbd.Error as e:
                    res.append(e.errno)
            h.shutdown(); print(json.dumps(res))
            """,
            srv.uri,
        )
        assert out == ["EINVAL", "ENOSPC"]
        assert srv.stats()["rejected"] == 1
    assert len(log.read_text().splitlines()) == 1


def test_nbderror_maps_to_wire_errno() -> None:
    from iolab.nbdwire import proto

    assert proto.wire_errno(NBDError(122).errno) == proto.ENOSPC  # EDQUOT
    assert proto.wire_errno(2) == proto.EIO
    assert proto.wire_errno(30) == proto.EPERM  # EROFS
