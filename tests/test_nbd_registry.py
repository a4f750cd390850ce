"""The tables the NBD server is built from: the filter registry (each filter parses its own settings)
and the per-command table the checked entry point and the dispatcher read."""

from __future__ import annotations

from pathlib import Path

import pytest

from iolab.nbd import filters
from iolab.nbd.blkdebug import Blkdebug
from iolab.nbd.commands import COMMANDS
from iolab.nbd.layers import OPS, FileBackend, Filter
from iolab.nbdwire import proto
from nbd_helpers import make_image

MiB = 1 << 20


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "delai:write=5ms",
            "unknown filter 'delai' (bit-rot, blkdebug, delay, error-rate, log, lost-write, "
            "misdirected-write, torn-write); did you mean 'delay'?",
        ),
        (
            "nope",
            "unknown filter 'nope' (bit-rot, blkdebug, delay, error-rate, log, lost-write, "
            "misdirected-write, torn-write)",
        ),
        (
            "delay:wrte=5ms",
            "filter delay: unknown setting 'wrte' (operations: read, write, flush, trim, zero, "
            "cache, extents, all); did you mean 'write'?",
        ),
        (
            "error-rate:sed=1",
            "unknown setting 'sed' (operations: read, write, flush, trim, zero, cache, extents, "
            "all; errno, OP.errno, seed); did you mean 'seed'?",
        ),
        ("log:fil=x", "filter log: unknown setting 'fil' (file); did you mean 'file'?"),
        ("blkdebug:conf=x", "filter blkdebug: unknown setting 'conf' (config); did you mean 'config'?"),
    ],
)
def test_unknown_names_are_refused_with_the_valid_ones(spec: str, message: str) -> None:
    with pytest.raises(filters.FilterSpecError) as err:
        filters.build_filter(spec, None)  # type: ignore[arg-type]
    assert str(err.value).endswith(message)


def test_every_registered_filter_builds_from_its_settings(tmp_path: Path) -> None:
    img = make_image(tmp_path / "a.img", MiB)
    rules = tmp_path / "rules.conf"
    rules.write_text('[inject-error]\nevent = "read_aio"\nerrno = "5"\n')
    valid = {
        "delay": "delay:all=1ms,write=5ms",
        "error-rate": "error-rate:read=1%,read.errno=ENOSPC,seed=3",
        "log": f"log:file={tmp_path / 'log'}",
        "blkdebug": f"blkdebug:config={rules}",
        "lost-write": "lost-write:ops=write+trim,offset=4k,length=8k,every=2,limit=3",
        "torn-write": "torn-write:keep=25%,lands=tail,probability=50%,seed=2",
        "misdirected-write": "misdirected-write:shift=-64k,once=on,id=mis",
        "bit-rot": "bit-rot:bits=3,persist=on,state=2,enabled=off",
    }
    assert set(valid) == set(filters.FILTERS)
    backend = FileBackend(str(img))
    try:
        for name, spec in valid.items():
            built = filters.build_filter(spec, backend)
            assert type(built) is filters.FILTERS[name] and built.next is backend
            assert built.size() == MiB  # what a filter does not implement passes through
        delay = filters.build_filter(valid["delay"], backend)
        assert isinstance(delay, filters.Delay)
        assert delay.delays["write"] == 0.005 and delay.delays["trim"] == 0.001
        rate = filters.build_filter(valid["error-rate"], backend)
        assert isinstance(rate, filters.ErrorRate)
        assert rate.rates["read"] == 0.01 and rate.errnos["read"] == 28 and rate.errnos["write"] == 5
        debug = filters.build_filter(valid["blkdebug"], backend)
        assert isinstance(debug, Blkdebug) and debug.dbg.rules
    finally:
        backend.close()


def test_registered_filters_name_their_settings() -> None:
    for name, cls in filters.FILTERS.items():
        assert issubclass(cls, Filter) and cls.name == name and cls.settings
    assert set(OPS) | {"all"} <= set(filters.ErrorRate.settings)


def test_the_command_table_covers_every_command_but_disconnect() -> None:
    assert set(COMMANDS) == set(proto.CMD_NAMES) - {proto.CMD_DISC}
    for code, command in COMMANDS.items():
        assert command.code == code and command.name == proto.CMD_NAMES[code]
        assert command.flags & proto.CMD_FLAG_FUA  # FUA is valid on every command (proto.md)
    writes = {c.name for c in COMMANDS.values() if c.writes}
    assert writes == {"write", "trim", "write_zeroes"}
