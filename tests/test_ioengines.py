"""The engine specs (iolab.ioengines) and what is derived from them: the option table, the plan's config,
the doctor's engine facts, the generated C header and the C registration; and that C checks the depth the
plan decided instead of deciding it again."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from iolab import _core
from iolab.engine import config as cfgmod
from iolab.ioengines import ENGINE_FLAGS, ENGINE_SPECS, SYNC_ENGINES, engine_flag_bit
from iolab.jobfile import parse_text
from iolab.options import ASYNC_ENGINES, ENGINES, OPTIONS, SUPPORTED_ENGINES, Kind
from iolab.plan import ENGINE_OPTION_OWNERS, PLAIN_FIELDS, build_plan

REPO = Path(__file__).resolve().parent.parent
BS = 4096
FIELD_NAMES = {f.name for f in cfgmod.CONFIG_FIELDS}


def _plan(tmp_path: Path, text: str) -> list[Any]:
    jobs = parse_text(f"[global]\nfilename={tmp_path / 't.dat'}\nsize=1m\n{text}")
    return list(build_plan(jobs).jobs)


def test_every_engine_option_is_in_the_option_table_as_its_spec_declares() -> None:
    for spec in ENGINE_SPECS:
        for eo in spec.options:
            o = OPTIONS[eo.name]
            assert o.supported and spec.name in o.engines, eo.name
            assert o.kind == {"flag": Kind.BOOL, "int": Kind.INT, "str": Kind.STR}[eo.kind], eo.name
            assert (o.default, o.help, o.note, o.config_field) == (
                eo.default,
                eo.help,
                eo.note,
                eo.config_field,
            )
            assert ENGINE_OPTION_OWNERS[eo.name] == (spec.name,)
    # and no supported engine option comes from anywhere else
    declared = {eo.name for spec in ENGINE_SPECS for eo in spec.options}
    in_table = {
        o.name for o in OPTIONS.values() if o.supported and set(o.engines) & {s.name for s in ENGINE_SPECS}
    }
    assert in_table == declared


def test_engine_names_come_from_the_specs() -> None:
    assert [e for e in SUPPORTED_ENGINES if ENGINES[e].runs_as == e] == [s.name for s in ENGINE_SPECS]
    for spec in ENGINE_SPECS:
        for alias, _ in spec.runs_as:
            assert ENGINES[alias].runs_as == spec.name
    assert ASYNC_ENGINES == tuple(s.name for s in ENGINE_SPECS if s.is_async) == ("libaio", "io_uring", "nbd")
    assert {"psync", "sync"} <= SYNC_ENGINES and not SYNC_ENGINES & set(ASYNC_ENGINES)


def test_config_fields_named_by_options_exist_and_are_filled_once() -> None:
    named = [o.config_field for o in PLAIN_FIELDS]
    assert named and len(named) == len(set(named))
    assert set(named) <= FIELD_NAMES


def test_plain_fields_reach_the_config(tmp_path: Path) -> None:
    c = _plan(
        tmp_path,
        "[j]\nioengine=io_uring\niodepth=4\nruntime=3\ntime_based\nfsync=5\nforce_async=3\n"
        "sqthread_poll=1\nsqthread_poll_cpu=0\nthinktime=20\nloops=0\nrandrepeat=0\n",
    )[0].config
    assert (c["runtime_ns"], c["time_based"], c["fsync_blocks"], c["force_async"]) == (3 * 10**9, 1, 5, 3)
    assert (c["sqthread_poll_cpu"], c["thinktime_ns"], c["rand_repeat"]) == (0, 20_000, 0)
    assert c["loops"] == 1  # loops=0 runs once (the option's default), as before
    want = (
        engine_flag_bit("SQTHREAD_POLL") | engine_flag_bit("REGISTERFILES") | engine_flag_bit("SQTHREAD_CPU")
    )
    assert (
        c["engine_flags"]
        == want
        == cfgmod.EF_SQTHREAD_POLL | cfgmod.EF_REGISTERFILES | cfgmod.EF_SQTHREAD_CPU
    )


def test_the_plan_decides_the_depth_once(tmp_path: Path) -> None:
    job = _plan(tmp_path, "[j]\nioengine=psync\niodepth=4\n")[0]
    assert job.config["iodepth"] == 1  # the C core runs what it gets
    assert sum("synchronous" in w for w in job.warnings) == 1


def test_generated_header_carries_the_engines() -> None:
    text = (REPO / "csrc" / "config_gen.h").read_text()
    assert text == cfgmod.generate_header(), "run: python -m iolab.engine.config > csrc/config_gen.h"
    for spec in ENGINE_SPECS:
        assert f"IOL_ENGINE_{spec.c_name} = {spec.engine_id}," in text
        assert f"X(IOL_ENGINE_{spec.c_name}, iol_engine_{spec.name}, {spec.max_depth}u)" in text
    for name, _ in ENGINE_FLAGS:
        assert re.search(rf"#define IOL_EF_{name} 0x{engine_flag_bit(name):02X}u ", text)
    # the hand-written C no longer repeats what the header generates
    engine_h = (REPO / "csrc" / "engine.h").read_text()
    assert "IOL_EF_FIXEDBUFS 0x" not in engine_h and "IOL_ENGINE_PSYNC = " not in engine_h


def _direct_file(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.write_bytes(b"\x5a" * (64 * BS))
    return path


def _config(**over: Any) -> bytes:
    values: dict[str, Any] = {
        f.name: 0 if f.count == 1 else [0] * f.count
        for f in cfgmod.CONFIG_FIELDS
        if f.name not in ("magic", "size")
    }
    values.update(
        ddir_mask=1, iodepth=1, io_size=64 * BS, loops=1, sample_interval_ns=500_000_000, bs_min=[BS, BS],
        bs_max=[BS, BS], max_bs=BS, iodepth_batch_submit=1, iodepth_batch_complete_min=1,
        iodepth_batch_complete_max=1, perc_rand=[100, 100], fst_nr=1, thinktime_blocks=1, rw_seq_nr=1,
        rate_cycle_ns=10**9,
    )  # fmt: skip
    values.update(over)
    return cfgmod.pack_config(values)


#: engines whose files are not local files (nbd: a connected socket), run by their own tests
_SOCKET_ENGINES = ("nbd",)  # tests/test_engine_nbd.py
_FILE_ENGINES = [s for s in ENGINE_SPECS if s.name not in _SOCKET_ENGINES]


@pytest.mark.parametrize("spec", _FILE_ENGINES, ids=[s.name for s in _FILE_ENGINES])
def test_each_spec_is_registered_in_c(spec: Any, tmp_path: Path) -> None:
    depth = 4 if spec.is_async else 1
    fd = os.open(_direct_file(tmp_path), os.O_RDONLY)
    try:
        job = _core.Job(_config(engine=spec.engine_id, iodepth=depth), [(fd, 0, 64 * BS)])
        job.run()
        res = job.raw_result()
    finally:
        os.close(fd)
    assert res["error"] == 0, res["error_msg"]
    assert res["engine"] == spec.name and res["ddir"]["read"]["ios"] == 64


@pytest.mark.parametrize(
    ("over", "words"),
    [
        ({"engine": 1, "iodepth": 4, "iodepth_batch_submit": 5}, "more than iodepth"),
        ({"engine": 1, "iodepth": 4, "iodepth_low": 5}, "more than iodepth"),
        (
            {"engine": 1, "iodepth": 4, "iodepth_batch_complete_min": 3, "iodepth_batch_complete_max": 2},
            "below",
        ),
        ({"engine": 2, "iodepth": 65536}, "at most 65535"),
        ({"engine": len(ENGINE_SPECS)}, "unknown engine"),
    ],
)
def test_c_refuses_what_the_plan_would_have_fixed(over: dict[str, Any], words: str, tmp_path: Path) -> None:
    fd = os.open(_direct_file(tmp_path), os.O_RDONLY)
    try:
        with pytest.raises(ValueError, match=words):
            _core.Job(_config(**over), [(fd, 0, 64 * BS)])
    finally:
        os.close(fd)


def test_run_says_the_depth_cap_once(tmp_path: Path) -> None:
    target = tmp_path / "f.dat"
    out = subprocess.run(
        [sys.executable, "-m", "iolab", "run", "--name=t", f"--filename={target}", "--size=256k", "--rw=read",
         "--ioengine=psync", "--iodepth=4", "--output-format=json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("is synchronous: iodepth=4") == 1, out.stderr
    assert "IOL-ENGINE-001" in out.stderr
