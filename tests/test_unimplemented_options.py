"""The rule of issue 9: an option iolab does not implement is refused when its value would change the I/O
or the numbers, accepted with a warning when it changes neither, and accepted in silence at the value iolab
runs with anyway. Checked for every option of the table, through the parser and through `iolab run`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from iolab.jobfile import JobFileError, parse_text
from iolab.options import OPTIONS, FioType, Kind, Option, format_options_listing, unimplemented

UNIMPLEMENTED = [
    o
    for o in OPTIONS.values()
    if not o.supported
    and not o.engines
    and not o.profile
    and o.fio_type not in (FioType.DEPRECATED, FioType.SOFT_DEPRECATED)
]


def test_every_unimplemented_option_has_a_verdict_for_its_default() -> None:
    from iolab.options import default_values

    defaults = default_values()
    for o in UNIMPLEMENTED:
        # fio's default (or what iolab runs as) is never refused: a job that doesn't name it must run
        assert unimplemented(o, defaults) is None or o.ignorable, o.name


def _other_value(kind: Kind, o: Option) -> str | None:
    """A value fio accepts for the option that differs from its default (None: none to try)."""
    name = o.name
    choices = o.choices
    default = o.default
    if kind is Kind.BOOL:
        return "0" if default else "1"
    if kind is Kind.ENUM and choices:
        runs_as = o.runs_as or (default,)
        others = [c for c in choices if c not in runs_as and c not in ("0", "none")]
        return others[0] if others else None
    if kind in (Kind.INT, Kind.PERCENT):
        lo = o.minval
        v = max(7, lo or 0)
        if v == default:
            v *= 2
        hi = o.maxval
        v = min(v, hi) if hi is not None else v
        return None if v == default else str(v)
    if kind is Kind.BS_PAIR:
        return "1m"
    if kind is Kind.INT_PAIR:
        return "50"
    if kind is Kind.FLOAT_LIST:
        return "0.5"
    if kind is Kind.ENUM_LIST and choices:
        return str(choices[1])
    if kind is Kind.SIZE:
        return "8k"
    if kind is Kind.TIME:
        return "3"
    if kind is Kind.STR:
        return {
            "exec_prerun": "true",
            "exec_postrun": "true",
            "ioscheduler": "none",
            "cgroup": "x",
            "profile": "tiobench",
            "write_iolog": "x.log",
            "read_iolog": "x.log",
            "opendir": "/tmp",
            "numa_cpu_nodes": "0",
            "numa_mem_policy": "local",
            "buffer_pattern": "0xaa",
            "verify_pattern": "0xaa",
            "verify_async_cpus": "0",
            "ignore_error": "EIO",
            "log_compression_cpus": "0",
            "replay_skip": "read",
            "merge_blktrace_file": "x",
        }.get(name, "x")
    return None


@pytest.mark.parametrize("opt", UNIMPLEMENTED, ids=[o.name for o in UNIMPLEMENTED])
def test_a_changed_value_is_refused_or_warned(opt: Option, tmp_path: Path) -> None:
    name = opt.name
    value = _other_value(opt.kind, opt)
    assert value is not None, f"{name}: give _other_value a non-default value for this option's kind"
    text = f"[job]\nsize=64k\n{name}={value}\n"
    try:
        fio_view = parse_text(text, "t.fio", fio_only=True)[0]
    except JobFileError as exc:
        raise AssertionError(f"{name}={value}: pick a value fio takes alone") from exc
    verdict = unimplemented(opt, fio_view.values)
    if verdict is None:
        return  # the value is what iolab does anyway
    if verdict[0] == "error":
        with pytest.raises(JobFileError) as ei:
            parse_text(text, "t.fio")
        msg = str(ei.value)
        assert msg.startswith("t.fio:3: option '" + name + "'"), msg
        assert "not implemented by iolab" in msg
    else:
        job = parse_text(text, "t.fio")[0]
        expected = f"t.fio:3: {name}: not implemented by iolab, and ignored"
        assert any(w.startswith(expected) for w in job.warnings)


def test_global_value_set_back_in_the_job_is_accepted() -> None:
    job = parse_text("[global]\nverify=md5\n[j]\nverify=0\nsize=64k\n")[0]
    assert job.values["verify"] == "0"


def test_planned_options_name_their_issue() -> None:
    with pytest.raises(JobFileError, match="planned in the verify issue"):
        parse_text("[j]\nsize=64k\ntrim_backlog=8\n")
    with pytest.raises(JobFileError, match="planned in the log-files issue"):
        parse_text("[j]\nsize=64k\nwrite_bw_log=x\n")


def test_options_listing_says_what_happens() -> None:
    text = format_options_listing("clocksource")
    assert "ignored with a warning" in text
    assert "refused" in format_options_listing("lockmem")


def run_iolab(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "iolab", "run", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def test_run_refuses_with_file_line_and_exit_1(tmp_path: Path) -> None:
    job = tmp_path / "j.fio"
    job.write_text("[j]\nfilename=f\nsize=64k\nrw=randread\nlockmem=1g\n")
    proc = run_iolab(str(job), cwd=tmp_path)
    assert proc.returncode == 1
    assert f"{job}:5: option 'lockmem'" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "f").exists(), "a refused job must not lay out files"


def test_run_warns_on_stderr_for_an_ignorable_option_in_json_mode(tmp_path: Path) -> None:
    import json

    proc = run_iolab(
        "--name=j", "--filename=f", "--size=64k", "--clocksource=cpu", "--output-format=json", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    json.loads(proc.stdout)
    assert "clocksource: not implemented by iolab, and ignored" in proc.stderr
