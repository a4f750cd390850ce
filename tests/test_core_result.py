"""iolab.analysis.core_result: the one declaration of the C core's result, checked against the core itself,
against docs/DESIGN.md and against the synthetic results analysis tests use."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

import pytest

from iolab import _core
from iolab.analysis.core_result import CoreDir, CoreResult, Sample, design_table
from iolab.analysis.synthetic import synthetic_raw, synthetic_result
from test_core import BS, ddir, make_config, make_file, opened, run_job

__all__ = ["ddir"]  # the fixture, used by name

DESIGN = Path(__file__).resolve().parent.parent / "docs" / "DESIGN.md"
RUNNER_ONLY = {"io_loop", "iowq_workers"}


def declared_keys(cls: Any, value: Any) -> set[str]:
    """Every dotted key of a raw mapping, following only what the value holds."""
    out: set[str] = set()
    for k, v in value.items():
        out.add(k)
        if isinstance(v, dict):
            out |= {f"{k}.{s}" for s in declared_keys(cls, v)}
    return out


def dataclass_keys(obj: Any, prefix: str = "") -> set[str]:
    out: set[str] = set()
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        out.add(prefix + f.name)
        if dataclasses.is_dataclass(v):
            out |= dataclass_keys(v, f"{prefix}{f.name}.")
    return out


@pytest.mark.parametrize("iops_interval", [0, 50_000_000])
def test_core_sends_exactly_the_declared_keys(ddir: Path, iops_interval: int) -> None:
    path = make_file(ddir / "f", 64 * BS)
    with opened(path, os.O_RDWR) as fd:
        raw, _ = run_job(
            make_config(
                io_size=64 * BS, ddir_mask=3, random=1, fsync_blocks=4, iops_interval_ns=iops_interval
            ),
            [(fd, 0, 64 * BS)],
        )
    typed = CoreResult.from_core(raw)
    # nothing is lost or invented on the way: the typed result's mapping form is the core's dict
    back = typed.to_core()
    assert {k: back[k] for k in raw} == {k: (_plain(v)) for k, v in raw.items()}
    # the core sends every declared key but those the runner adds (and the IOPS series only when asked)
    optional = {"iops_samples", "iops_sample_stats"} if not iops_interval else set()
    optional.add("verify")  # verify= jobs only
    assert set(raw) == {f.name for f in dataclasses.fields(CoreResult)} - RUNNER_ONLY - optional
    assert declared_keys(CoreResult, raw) <= dataclass_keys(typed)
    assert typed.ddir.read is not None and typed.ddir.read.ios + typed.ddir.write.ios == 64  # type: ignore[union-attr]
    assert all(isinstance(s, Sample) for s in typed.samples)


def _plain(v: Any) -> Any:
    """The core's values as asdict() gives them back (lists of tuples stay sequences)."""
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return tuple(_plain(x) for x in v)
    return v


def test_unknown_key_is_refused() -> None:
    with pytest.raises(ValueError, match=r"result\.ddir\.read: keys \['iops'\]"):
        CoreResult.from_core({"ddir": {"read": {"iops": 1}}})


def test_empty_result_defaults() -> None:
    empty = CoreResult(stopped=True, io_loop=False)
    assert empty.ddir.read is None and empty.depth is None and empty.samples == ()
    raw = {"error": 0, "ddir": {}, "runtime_ns": 0, "stopped": True, "io_loop": False}
    assert CoreResult.from_core(raw) == empty


def test_synthetic_builds_the_same_type() -> None:
    typed = synthetic_result(rw="randrw", seed=3)
    assert isinstance(typed, CoreResult) and isinstance(typed.ddir.write, CoreDir)
    assert CoreResult.from_core(synthetic_raw(rw="randrw", seed=3)) == typed


def test_design_md_shows_the_declaration() -> None:
    text = DESIGN.read_text()
    m = re.search(r"<!-- core-result: begin.*?-->\n(.*?)<!-- core-result: end -->", text, re.S)
    assert m, "docs/DESIGN.md lost its core-result markers"
    assert m.group(1) == design_table(), "regenerate: python -m iolab.analysis.core_result"


def test_key_access_reads_the_mapping_form() -> None:
    typed = synthetic_result(rw="randread", read_ios=10)
    assert typed["ddir"]["read"]["ios"] == 10 and typed["runtime_ns"] == typed.runtime_ns
    assert "iops_samples" not in typed.to_core()
    with pytest.raises(KeyError):
        typed["iops"]


def test_job_result_is_the_typed_result(ddir: Path) -> None:
    """`_core.Job.result()` hands back the declared type itself; raw_result() is its mapping form."""
    path = make_file(ddir / "f", 16 * BS)
    with opened(path, os.O_RDONLY) as fd:
        job = _core.Job(make_config(io_size=16 * BS), [(fd, 0, 16 * BS)])
        job.run()
        typed = job.result()
        raw = job.raw_result()
    assert isinstance(typed, CoreResult)
    assert typed == CoreResult.from_core(raw)
    assert typed.ddir.read.ios == 16 and typed.stopped is False
