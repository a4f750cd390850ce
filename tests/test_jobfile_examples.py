"""Every example job file shipped with fio (Debian's fio-examples): generic ones parse, the
others are refused with a JobFileError that names the ioengine, and nothing else is ever raised."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from iolab.jobfile import JobFileError, parse_files
from iolab.options import ENGINES, SUPPORTED_ENGINES, lookup

EXAMPLES = Path("/usr/share/doc/fio/examples")
ENV = {"FIO_BS": "4k", "FIO_RW": "read", "FIO_IODEPTH": "1", "FIO_DIR": "/tmp"}
NO_EXAMPLES = "fio's example job files (Debian package fio-examples) are not installed"
FILES = sorted(EXAMPLES.glob("*.fio")) if EXAMPLES.is_dir() else []


def engine_specific(text: str) -> set[str]:
    """The ioengines (and engine options' engines) a job file uses, other than iolab's."""
    used: set[str] = set()
    for line in text.splitlines():
        line = re.split("[;#]", line)[0].strip()
        key, _, value = line.partition("=")
        key = key.strip()
        if key == "ioengine" and value.strip() not in SUPPORTED_ENGINES:
            used.add(value.strip())
        opt = lookup(key)
        if opt is not None and opt.engines and not opt.supported:
            used.update(opt.engines)
    return used


@pytest.mark.skipif(not FILES, reason=NO_EXAMPLES)
@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_example(path: Path) -> None:
    engines = engine_specific(path.read_text())
    if not engines:
        jobs = parse_files([str(path)], env=ENV, fio_only=True)
        assert jobs, "no jobs"
        for j in jobs:
            assert j.values["ioengine"] in {ENGINES[e].runs_as for e in SUPPORTED_ENGINES}
        try:  # for a run, iolab either takes the file or names the option it does not implement
            parse_files([str(path)], env=ENV)
        except JobFileError as exc:
            assert str(exc).startswith(str(path) + ":") and "not implemented by iolab" in str(exc), exc
        return
    with pytest.raises(JobFileError) as ei:
        parse_files([str(path)], env=ENV, fio_only=True)
    msg = str(ei.value)
    assert msg.startswith(str(path) + ":")
    assert "not support" in msg
    assert any(e in msg for e in engines), msg


@pytest.mark.skipif(not FILES, reason=NO_EXAMPLES)
def test_some_generic_examples_exist() -> None:
    generic = [p for p in FILES if not engine_specific(p.read_text())]
    assert len(generic) >= 8
