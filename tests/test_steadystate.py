"""Steady state detection (steadystate=/ss=, ss_dur, ss_ramp) through `iolab run`, against fio's own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from iolab.plan.steadystate import SteadyState, parse_limit


def iolab_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "iolab", "run", *args], capture_output=True, text=True, timeout=120
    )


def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.write_bytes(b"\x5a" * (4 << 20))
    return path


def job_args(path: Path, *extra: str) -> list[str]:
    return ["--name=s", f"--filename={path}", "--rw=randread", "--size=4m", "--time_based=1", *extra]


def run_json(*args: str) -> dict[str, Any]:
    r = iolab_run("--output-format=json", *args)
    assert r.returncode == 0, r.stderr
    job: dict[str, Any] = json.loads(r.stdout)["jobs"][0]
    return job


def types_of(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: types_of(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [types_of(v) for v in obj[:1]]
    return type(obj).__name__


def test_a_rate_limited_job_stops_when_it_settled(tmp_path: Path) -> None:
    path = data_file(tmp_path)
    job = run_json(*job_args(path, "--rate_iops=500", "--runtime=30", "--ss=iops:5%", "--ss_dur=3"))
    ss = job["steadystate"]
    assert ss["attained"] == 1 and ss["ss"] == "iops:5.000000%" and ss["duration"] == 3
    assert len(ss["data"]["iops"]) == 3 and all(480 <= v <= 520 for v in ss["data"]["iops"]), ss
    assert ss["data"]["iops_mean"] == sum(ss["data"]["iops"]) // 3
    assert float(ss["criterion"].rstrip("%")) < 5.0
    after = job["iolab_steadystate"]["attained_after_s"]
    assert 2.9 <= after <= 6, after  # three one-second samples, not the 30 s runtime
    assert job["read"]["runtime"] < 7000 and job["error"] == 0


def test_normal_output_says_attained_and_how_long_it_took(tmp_path: Path) -> None:
    path = data_file(tmp_path)
    r = iolab_run(*job_args(path, "--rate_iops=200", "--runtime=20", "--ss=iops:10%", "--ss_dur=2"))
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if x.startswith("  steadystate  : "))
    assert line.startswith("  steadystate  : attained=yes, bw=")
    assert ", iops=" in line and "iops mean dev=" in line
    assert "steady state (iops) attained after" in r.stdout + r.stderr
    assert "job was stopped before it finished" not in r.stdout + r.stderr


def test_a_job_that_never_settles_runs_to_its_runtime(tmp_path: Path) -> None:
    path = data_file(tmp_path)
    # a slope can never be below 0%: the criterion cannot be met
    job = run_json(*job_args(path, "--rate_iops=300", "--runtime=4", "--ss=iops_slope:0%", "--ss_dur=2"))
    ss = job["steadystate"]
    assert ss["attained"] == 0 and ss["ss"] == "iops_slope:0.000000%" and len(ss["data"]["iops"]) == 2
    assert job["iolab_steadystate"] == {"attained": False, "attained_after_s": None}
    assert 3900 <= job["read"]["runtime"] <= 4500


def test_ss_ramp_delays_the_window(tmp_path: Path) -> None:
    path = data_file(tmp_path)
    job = run_json(
        *job_args(path, "--rate_iops=500", "--runtime=30", "--ss=iops:5%", "--ss_dur=2", "--ss_ramp=2")
    )
    # recording starts one second after ss_ramp (fio), then two samples fill the window
    assert job["steadystate"]["attained"] == 1
    assert job["iolab_steadystate"]["attained_after_s"] >= 3.9


def test_no_steadystate_block_without_ss_dur(tmp_path: Path) -> None:
    path = data_file(tmp_path)
    job = run_json(*job_args(path, "--rate_iops=500", "--runtime=1", "--ss=iops:5%"))
    assert "steadystate" not in job and "iolab_steadystate" not in job


def test_json_block_matches_fios_on_the_same_job(fio: str, tmp_path: Path) -> None:
    path = data_file(tmp_path)
    jobfile = tmp_path / "ss.fio"
    jobfile.write_text(
        f"[s]\nfilename={path}\nsize=4m\nrw=randread\nrate_iops=500\ntime_based=1\nruntime=20\n"
        "ss=iops:5%\nss_dur=3\n"
    )
    theirs = subprocess.run([fio, "--output-format=json", str(jobfile)], capture_output=True, text=True)
    assert theirs.returncode == 0, theirs.stderr
    fio_ss = json.loads(theirs.stdout)["jobs"][0]["steadystate"]
    ours = run_json(str(jobfile))["steadystate"]
    assert types_of(ours) == types_of(fio_ss)
    assert list(ours) == list(fio_ss) and list(ours["data"]) == list(fio_ss["data"])
    for key in ("ss", "duration", "attained"):
        assert ours[key] == fio_ss[key], key
    assert len(ours["data"]["iops"]) == len(fio_ss["data"]["iops"]) == 3
    assert abs(ours["data"]["iops_mean"] - fio_ss["data"]["iops_mean"]) <= 10


@pytest.mark.parametrize(
    ("extra", "word"),
    [
        ("--ss=iops", "needs a threshold"),
        ("--ss=iops:abc", "not a number of IOPS"),
        ("--ss=bw:zz", "not a bandwidth"),
        ("--group_reporting=1", "group_reporting"),
    ],
)
def test_bad_steadystate_options_are_refused(tmp_path: Path, extra: str, word: str) -> None:
    path = data_file(tmp_path)
    args = job_args(path, "--runtime=2", "--ss_dur=2", extra)
    if extra == "--group_reporting=1":
        args.append("--ss=iops:5%")
    r = iolab_run(*args)
    assert r.returncode != 0 and word in r.stderr and "Traceback" not in r.stderr, r.stderr


# ------------------------------------------------------------------------------- fio's arithmetic


def feed(ss: SteadyState, values: list[int]) -> bool:
    """Samples of `values` I/Os (4 KiB each) at exact one-second steps."""
    ss.start(100.0)
    total = 0
    met = False
    for i, v in enumerate(values, 1):
        total += v
        met = ss.sample(100.0 + i, total, total * 4096)
    return met


def test_criteria_follow_fios_formulas() -> None:
    dev = SteadyState("iops", 1.0, False, 3, 0.0)
    assert feed(dev, [501, 500, 500]) is True and abs(dev.deviation - 2 / 3) < 1e-9  # fio's example
    pct = SteadyState("iops", 0.1, True, 3, 0.0)
    assert feed(pct, [501, 500, 500]) is False and abs(pct.criterion - 100 * (2 / 3) / (1501 / 3)) < 1e-9
    slope = SteadyState("iops_slope", 5.0, False, 3, 0.0)
    assert feed(slope, [100, 110, 120, 125, 130]) is False  # windows: slopes 10, 7.5, 5 (not below 5)
    assert slope.slope == 5.0 and slope.iops == [120, 125, 130]
    bw = SteadyState("bw_slope", 1.0, True, 2, 0.0)
    assert feed(bw, [100, 100]) is True and bw.slope == 0.0 and bw.bw == [409600, 409600]


def test_thresholds_parse_as_fio_reads_them() -> None:
    assert parse_limit("iops", "5%") == (5.0, True)
    assert parse_limit("iops_slope", "0.1 %") == (0.1, True)
    assert parse_limit("iops", "20") == (20.0, False)
    assert parse_limit("bw", "1m") == (1048576.0, False)
    with pytest.raises(ValueError):
        parse_limit("iops", "x")
