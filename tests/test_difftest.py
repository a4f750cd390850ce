"""fio as the oracle: a bounded differential run (fixed seed) over generated jobs and fio's examples.

The test fails when a case disagrees with fio in a way docs/fio-differences.md does not list, or when
iolab ends in an internal error.  ``make difftest`` runs the long version.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from conftest import need
from difftest import allow, examples, gen, harness
from difftest.compare import classify
from difftest.examples import rewrite
from difftest.jobtext import jobs
from difftest.model import AGREE, DISAGREE, INTERNAL, REFUSED, Case, Finding, Observation, Result
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
        "time_based\nruntime=900\n[a]\nrw=write\ndirectory=/scratch\n[b]\nioengine=sg\n"
    )
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


def _obs(tool: str, rc: int, stderr: str = "", doc: dict[str, Any] | None = None) -> Observation:
    obs = Observation(tool, rc, json.dumps(doc) if doc else "", stderr, 0.1)
    obs.json = doc
    return obs


def test_classify_refusals_internal_errors_and_exit_codes() -> None:
    case = Case("gen-x", "gen", "[j]\nrw=read\nsize=4k\n")
    doc = {"jobs": [{"jobname": "j", "groupid": 0, "read": {"io_bytes": 4096, "total_ios": 1}}]}
    fio = _obs("fio", 0, doc=doc)
    assert classify(case, fio, _obs("iolab", 0, doc=doc)).verdict == AGREE
    r = classify(case, fio, _obs("iolab", 1, "iolab: j.fio:3: option 'verify': not implemented"))
    assert (r.verdict, r.refused_by) == (REFUSED, "verify")
    # a clean error about an option iolab claims to support is a disagreement, not a refusal
    r = classify(case, fio, _obs("iolab", 1, "iolab: j.fio:3: bs=4k: bad value"))
    assert r.verdict == DISAGREE and r.findings[0].field == "exit_code"
    r = classify(case, fio, _obs("iolab", 1, "Traceback (most recent call last):\nKeyError: 'x'"))
    assert r.verdict == INTERNAL and r.unlisted
    assert classify(case, fio, _obs("iolab", -11)).verdict == INTERNAL
    assert classify(case, _obs("fio", 1), _obs("iolab", 1, "iolab: error")).verdict == AGREE
    r = classify(
        case,
        fio,
        _obs("iolab", 0, doc={"jobs": [{**doc["jobs"][0], "read": {"io_bytes": 8192, "total_ios": 2}}]}),
    )
    assert r.verdict == DISAGREE and {f.field for f in r.findings} >= {"io.read.io_bytes", "io.total_ios"}
    skipped = Case("ex-y", "example", "[j]\nioengine=sg\n", skip_fio="ioengine=sg")
    refusal = _obs("iolab", 1, "iolab: ioengine 'sg' is not supported")
    assert classify(skipped, None, refusal).verdict == REFUSED
    assert classify(skipped, None, _obs("iolab", 0, doc=doc)).verdict == DISAGREE


def test_fio_empty_job_entries_are_not_compared() -> None:
    case = Case("gen-x", "gen", "[j]\nrw=read\nsize=4k\n[k]\nrw=read\nsize=4k\nstats=0\n")
    job = {"jobname": "j", "groupid": 0, "read": {"io_bytes": 4096, "total_ios": 1}}
    phantom = {"groupid": 2**32 - 1, "read": {"io_bytes": 0, "total_ios": 0}, "trim": {"io_bytes": 0}}
    r = classify(case, _obs("fio", 0, doc={"jobs": [job, phantom]}), _obs("iolab", 0, doc={"jobs": [job]}))
    assert r.verdict == AGREE and any("4294967295" in s for s in r.skipped_compares)
    # a nameless entry of a real group is still compared
    odd = {**phantom, "groupid": 0}
    r = classify(case, _obs("fio", 0, doc={"jobs": [job, odd]}), _obs("iolab", 0, doc={"jobs": [job]}))
    assert r.verdict == DISAGREE


def test_allow_list_matches_field_option_and_case(tmp_path: Path) -> None:
    doc = tmp_path / "d.md"
    doc.write_text(
        "# x\n```\n### in-a-fence\nmatch: field=nothing\n```\n"
        "### bare-flags\nmatch: field=json_keys.options option=blocksize\nreason: r\n"
    )
    entries = allow.load(doc)
    assert [e.id for e in entries] == ["bare-flags"]
    case = Case("gen-z", "gen", "[j]\nbs=4k\n")
    res = Result(case, DISAGREE, [Finding("json_keys.options", [], ["x"]), Finding("io.total_ios", 1, 2)])
    allow.apply(res, entries)
    assert res.allowed_by == {"json_keys.options": "bare-flags"}
    assert [f.field for f in res.unlisted] == ["io.total_ios"]


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
        lines = [
            f"{r.case.id} {r.verdict}: "
            + "; ".join(f"{f.field} fio={f.fio!r} iolab={f.iolab!r} {f.detail}" for f in r.unlisted)
            for r in bad
        ]
        pytest.fail(
            f"{len(bad)} case(s) disagree with fio beyond docs/fio-differences.md (all results: "
            f"{report}; rerun one: python -m tests.difftest --examples --only ID -v --keep "
            f"--workdir DIR)\n" + text + "\n" + "\n".join(lines[:40]),
            pytrace=False,
        )
