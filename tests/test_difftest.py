"""fio as the oracle: a bounded differential run (fixed seed) over generated jobs and fio's examples.

The test fails when a case disagrees with fio in a way docs/fio-differences.md does not list, or when
iolab ends in an internal error.  ``make difftest`` runs the long version.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import need
from difftest import allow, examples, gen, harness
from difftest.examples import rewrite
from difftest.jobtext import jobs
from difftest.run import default_iolab, sector_map

SEED = 1
GENERATED = 60


def test_generator_is_repeatable_and_draws_only_supported_options() -> None:
    a = gen.generate(SEED, 8)
    b = gen.generate(SEED, 8)
    assert [c.text for c in a] == [c.text for c in b]
    assert len({c.id for c in a}) == 8
    general, per_engine, _ = gen.drawable()
    from iolab.options import OPTIONS

    for name in general + [n for v in per_engine.values() for n in v]:
        assert OPTIONS[name].supported, name


def test_example_rewrite_keeps_runs_small_and_off_devices() -> None:
    text, notes, skip = rewrite(
        "[global]\nfilename=/dev/nvme0n1\noffset_increment=124g\nio_size=120g\nnumjobs=30\n"
        "time_based\nruntime=900\n[a]\nrw=write\ndirectory=/scratch\n[b]\nioengine=sg\n")
    assert "/dev/" not in text and "/scratch" not in text
    assert "offset_increment=1048576" in text and "numjobs=4" in text and "runtime=200ms" in text
    assert skip and "sg" in skip
    assert notes


def test_sector_map(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(bytes(1024) + b"x" * 512 + bytes(512) + b"y")
    assert sector_map(f) == "2,4"


def test_job_reader_knows_timed_and_mixed_jobs() -> None:
    j = jobs("[global]\ntime_based\n[a]\nrw=randrw\n[b]\ntime_based=0\nrw=write\nname=bee\n")
    assert [x.name for x in j] == ["a", "bee"]
    assert j[0].timed and j[0].mixed and not j[1].timed


def test_known_differences_document_parses() -> None:
    entries = allow.load()
    assert len({e.id for e in entries}) == len(entries), "entry ids must be unique"


@pytest.mark.slow
def test_iolab_agrees_with_fio(tmp_path: Path) -> None:
    need(shutil.which("fio") is not None, "fio is not installed")
    cases = gen.generate(SEED, GENERATED) + examples.example_cases()
    results = harness.run_all(cases, tmp_path, default_iolab(), timeout=30.0)
    summary = harness.summarize(results)
    report = tmp_path / "report.json"
    report.write_text(json.dumps([r.as_dict() for r in results], indent=1))
    bad = [r for r in results if r.unlisted]
    if bad:
        text = harness.format_summary(summary, sum(r.seconds for r in results))
        lines = [f"{r.case.id} {r.verdict}: "
                 + "; ".join(f"{f.field} fio={f.fio!r} iolab={f.iolab!r} {f.detail}" for f in r.unlisted)
                 for r in bad]
        pytest.fail(f"{len(bad)} case(s) disagree with fio beyond docs/fio-differences.md (all results: "
                    f"{report}; rerun one: python -m tests.difftest --examples --only ID -v --keep "
                    f"--workdir DIR)\n" + text + "\n" + "\n".join(lines[:40]), pytrace=False)
