"""Reporting and failure options side by side with real fio 3.33: the same job, run by fio and by `iolab run`
in separate directories on a real file system (one that takes O_DIRECT), compared on exit status, JSON key
sets, the values that do not depend on timing, and terse field counts.

Covered: unified_rw_reporting (none/mixed/both, 0/1/2), stats=0, gtod_reduce and disable_lat/clat/slat,
--terse-version 2..5 and --minimal, continue_on_error with ignore_error, max_latency, rate_min,
exitall/exit_what and exitall_on_error.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

FIO = shutil.which("fio")
pytestmark = pytest.mark.skipif(FIO is None, reason="fio is not installed")

IOLAB = [sys.executable, "-m", "iolab", "run"]
MIB = 1 << 20


class Pair(NamedTuple):
    fio: subprocess.CompletedProcess[str]
    ours: subprocess.CompletedProcess[str]


@pytest.fixture
def dirs(direct_dir: Path) -> Iterator[tuple[Path, Path]]:
    f, o = direct_dir / "fio", direct_dir / "iolab"
    f.mkdir()
    o.mkdir()
    yield f, o


def run_both(dirs: tuple[Path, Path], *args: str, timeout: float = 60) -> Pair:
    """The same command line through fio and `iolab run`, each in its own directory (relative file names)."""
    fio = subprocess.run([str(FIO), *args], cwd=dirs[0], capture_output=True, text=True, timeout=timeout)
    ours = subprocess.run([*IOLAB, *args], cwd=dirs[1], capture_output=True, text=True, timeout=timeout)
    return Pair(fio, ours)


def doc(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON document on stdout (fio may print notes such as "first direct IO errored" before it)."""
    out = proc.stdout
    start = out.index("{")
    parsed: dict[str, Any] = json.loads(out[start:])
    return parsed


def keyset(v: Any, path: str = "") -> set[str]:
    """Every key path of a document; iolab's documented additions ("iolab", "disk_util") left out."""
    out: set[str] = set()
    if isinstance(v, dict):
        for k, x in v.items():
            if k in ("iolab", "disk_util"):
                continue
            out.add(f"{path}.{k}")
            out |= keyset(x, f"{path}.{k}")
    elif isinstance(v, list):
        for i, x in enumerate(v):
            out |= keyset(x, f"{path}[{i}]")
    return out


def named_jobs(d: dict[str, Any]) -> list[dict[str, Any]]:
    return [j for j in d["jobs"] if j.get("jobname")]


RANDRW = ["--name=t", "--filename=f", "--size=1m", "--bs=4k", "--rw=randrw"]


# ------------------------------------------------------------------------------------ unified_rw_reporting
@pytest.mark.parametrize("mode", ["none", "mixed", "both", "0", "1", "2"])
def test_unified_rw_reporting_json_like_fio(dirs: tuple[Path, Path], mode: str) -> None:
    p = run_both(dirs, *RANDRW, f"--unified_rw_reporting={mode}", "--output-format=json")
    assert p.fio.returncode == p.ours.returncode == 0, p.ours.stderr
    df, do = doc(p.fio), doc(p.ours)
    assert keyset(df) == keyset(do)
    jf, jo = df["jobs"][0], do["jobs"][0]
    if mode in ("mixed", "1"):
        assert "read" not in jf and "sync" not in jf  # fio leaves sync out as well
    for j in (jf, jo):
        if "mixed" in j:
            assert (j["mixed"]["io_bytes"], j["mixed"]["total_ios"]) == (MIB, 256)
            assert j["mixed"]["clat_ns"]["N"] == j["mixed"]["lat_ns"]["N"] == 256
        if "read" in j:
            assert j["read"]["io_bytes"] + j["write"]["io_bytes"] == MIB


@pytest.mark.parametrize("mode", ["mixed", "both"])
def test_unified_rw_reporting_normal_like_fio(dirs: tuple[Path, Path], mode: str) -> None:
    p = run_both(dirs, *RANDRW, f"--unified_rw_reporting={mode}")
    assert p.fio.returncode == p.ours.returncode == 0, p.ours.stderr
    for out in (p.fio.stdout, p.ours.stdout):
        assert "  mixed: IOPS=" in out
        assert "  MIXED: bw=" in out
        assert ("   READ: bw=" in out) == (mode == "both")
        assert ("  read: IOPS=" in out) == (mode == "both")
    # with mixed, fio counts every I/O in the first "issued rwts" slot
    if mode == "mixed":
        for out in (p.fio.stdout, p.ours.stdout):
            assert "issued rwts: total=256,0,0,0" in out


# ------------------------------------------------------------------------------------ terse versions
@pytest.mark.parametrize("version", [2, 3, 4, 5])
@pytest.mark.parametrize("mode", ["none", "mixed", "both"])
def test_terse_versions_like_fio(dirs: tuple[Path, Path], version: int, mode: str) -> None:
    p = run_both(
        dirs,
        *RANDRW,
        f"--unified_rw_reporting={mode}",
        "--description=hello",
        "--minimal",
        f"--terse-version={version}",
    )
    assert p.fio.returncode == p.ours.returncode == 0, p.ours.stderr
    lf, lo = p.fio.stdout.splitlines(), p.ours.stdout.splitlines()
    if version == 2:  # the description goes on a line of its own
        assert len(lf) == len(lo) == 2 and lf[1] == lo[1] == ";hello"
    else:
        assert len(lf) == len(lo) == 1
    ff, fo = lf[0].split(";"), lo[0].split(";")
    assert len(ff) == len(fo)
    head = 4 if version == 2 else 5
    if version == 2:
        assert ff[:head] == fo[:head] == ["2", "t", "0", "0"]
    else:
        assert [ff[0], *ff[2:head]] == [fo[0], *fo[2:head]] == [str(version), "t", "0", "0"]
        assert ff[-1] == fo[-1] == "hello"
    if mode == "mixed":
        assert ff[head] == fo[head] == "1024"  # KiB of the one (mixed) direction


def test_terse_version_alone_keeps_normal_output_and_bad_versions_fail(dirs: tuple[Path, Path]) -> None:
    args = ["--name=t", "--filename=f", "--size=64k"]
    p = run_both(dirs, *args, "--terse-version=4")
    assert p.fio.returncode == p.ours.returncode == 0
    assert "Run status group 0" in p.fio.stdout and "Run status group 0" in p.ours.stdout
    p = run_both(dirs, *args, "--terse-version=6")
    assert p.fio.returncode != 0 and p.ours.returncode != 0


# ------------------------------------------------------------------------------------ stats, latency switches
def test_stats_0_job_runs_but_is_not_reported(dirs: tuple[Path, Path]) -> None:
    args = [
        "--name=a",
        "--filename=fa",
        "--size=256k",
        "--rw=randread",
        "--stats=0",
        "--name=b",
        "--filename=fb",
        "--size=256k",
    ]
    p = run_both(dirs, *args, "--output-format=json")
    assert p.fio.returncode == p.ours.returncode == 0, p.ours.stderr
    # fio 3.33 also appends an empty entry without a jobname for the stats=0 job (a fio bug; iolab does not)
    ours = [j["jobname"] for j in doc(p.ours)["jobs"]]
    assert [j["jobname"] for j in named_jobs(doc(p.fio))] == ours == ["b"]
    assert (dirs[1] / "fa").stat().st_size == 256 << 10  # the job did run
    p = run_both(dirs, "--name=a", "--filename=fa", "--size=256k", "--rw=randread", "--stats=0")
    for out in (p.fio.stdout, p.ours.stdout):
        assert "a: (groupid" not in out
        status = out.split("Run status group 0 (all jobs):\n", 1)[1]
        assert "READ:" not in status.split("Disk stats")[0]


@pytest.mark.parametrize("option", ["gtod_reduce", "disable_lat", "disable_clat", "disable_slat"])
@pytest.mark.parametrize("engine", ["psync", "libaio"])
def test_latency_switches_like_fio(dirs: tuple[Path, Path], option: str, engine: str) -> None:
    depth = ["--iodepth=4"] if engine == "libaio" else []
    p = run_both(
        dirs,
        "--name=t",
        "--filename=f",
        "--size=1m",
        "--bs=4k",
        "--rw=randread",
        f"--ioengine={engine}",
        *depth,
        f"--{option}=1",
        "--output-format=json",
    )
    assert p.fio.returncode == p.ours.returncode == 0, p.ours.stderr
    df, do = doc(p.fio), doc(p.ours)
    assert keyset(df) == keyset(do)
    rf, ro = df["jobs"][0]["read"], do["jobs"][0]["read"]
    assert rf["total_ios"] == ro["total_ios"] == 256  # the same I/O
    for k in ("slat_ns", "clat_ns", "lat_ns"):
        assert rf[k]["N"] == ro[k]["N"], k
        assert ("percentile" in rf[k]) == ("percentile" in ro[k]), k
    # the latency distribution follows clat: all zeros exactly when fio's is
    keys = ("latency_ns", "latency_us", "latency_ms")
    zero = [not any(any(d["jobs"][0][k].values()) for k in keys) for d in (df, do)]
    assert zero[0] == zero[1] == (option in ("gtod_reduce", "disable_clat"))


# ------------------------------------------------------------------------------------ errors
# direct=1 with a 1000-byte hole after each 4k read: every I/O whose offset is not a multiple of 512 fails
# with EINVAL (offset 0 is fine, so this is not fio's "first direct IO errored" case)
HOLEY = ["--name=t", "--filename=f", "--size=1m", "--bs=4k", "--direct=1", "--rw=read:1000"]


@pytest.mark.parametrize("coe", ["none", "read", "write", "io", "all", "0", "1"])
def test_continue_on_error_fatal_einval_like_fio(dirs: tuple[Path, Path], coe: str) -> None:
    p = run_both(dirs, *HOLEY, f"--continue_on_error={coe}", "--output-format=json")
    assert p.fio.returncode == p.ours.returncode == 1
    jf, jo = doc(p.fio)["jobs"][0], doc(p.ours)["jobs"][0]
    assert keyset(jf) == keyset(jo)
    for k in ("error", "total_err", "first_error"):
        assert jf.get(k) == jo.get(k), k
    assert jf["error"] == 22
    for k in ("io_bytes", "total_ios"):
        assert jf["read"][k] == jo["read"][k], k


@pytest.mark.parametrize("ignore", ["EINVAL", "22", "EIO:EINVAL"])
def test_ignore_error_lets_the_job_go_on_like_fio(dirs: tuple[Path, Path], ignore: str) -> None:
    p = run_both(dirs, *HOLEY, f"--ignore_error={ignore}", "--output-format=json")
    assert p.fio.returncode == p.ours.returncode == 0, p.ours.stderr
    jf, jo = doc(p.fio)["jobs"][0], doc(p.ours)["jobs"][0]
    assert keyset(jf) == keyset(jo)
    for j in (jf, jo):
        # the job's error shows the first error; the failed I/Os count as issued, not as done
        assert (j["error"], j["first_error"]) == (22, 22)
        good = j["read"]["lat_ns"]["N"]
        assert j["read"]["io_bytes"] == good * 4096
        assert j["total_err"] == j["read"]["total_ios"] - good > 100
    # (the number of I/Os differs: iolab does not count rw=read:N holes against size as fio does)


def test_ignore_error_in_normal_and_terse_output(dirs: tuple[Path, Path]) -> None:
    p = run_both(dirs, *HOLEY, "--continue_on_error=read", "--ignore_error=EINVAL")
    for out in (p.fio.stdout, p.ours.stdout):
        assert "     errors    : total=" in out and ", first_error=22/<Invalid argument>" in out
    p = run_both(dirs, *HOLEY, "--continue_on_error=read", "--ignore_error=EINVAL", "--minimal")
    ff, fo = p.fio.stdout.strip().splitlines()[-1].split(";"), p.ours.stdout.strip().split(";")
    assert len(ff) == len(fo)
    assert ff[-1] == fo[-1] == "22"


@pytest.mark.parametrize("ignore", ["ETIMEDOUT", "0x16", "EIO,EIO,EIO,EIO"])
def test_ignore_error_values_fio_refuses(dirs: tuple[Path, Path], ignore: str) -> None:
    p = run_both(dirs, "--name=t", "--filename=f", "--size=64k", f"--ignore_error={ignore}")
    assert p.fio.returncode == 1 and p.ours.returncode == 1
    assert "Run status" not in p.ours.stdout


def test_max_latency_fails_the_job_like_fio(dirs: tuple[Path, Path]) -> None:
    args = ["--name=t", "--filename=f", "--size=1m", "--bs=4k", "--rw=read", "--direct=1", "--max_latency=1"]
    p = run_both(dirs, *args, "--output-format=json")
    assert p.fio.returncode == p.ours.returncode == 1
    jf, jo = doc(p.fio)["jobs"][0], doc(p.ours)["jobs"][0]
    for j in (jf, jo):  # the I/O that took too long is counted, then the job ends with ETIMEDOUT
        assert (j["error"], j["read"]["total_ios"], j["read"]["io_bytes"]) == (110, 1, 4096)
    assert "exceeds max_latency" in p.ours.stderr
    # with continue_on_error and ETIMEDOUT (110) ignored, every I/O is done and each one counted as an error
    p = run_both(dirs, *args, "--continue_on_error=read", "--ignore_error=110", "--output-format=json")
    assert p.fio.returncode == p.ours.returncode == 0
    jf, jo = doc(p.fio)["jobs"][0], doc(p.ours)["jobs"][0]
    for j in (jf, jo):
        assert (j["error"], j["first_error"], j["read"]["io_bytes"]) == (110, 110, MIB)
        assert j["total_err"] == 256
    # disable_lat: no total latency, so (as in fio) nothing to check
    p = run_both(dirs, *args, "--disable_lat=1", "--output-format=json")
    assert p.fio.returncode == p.ours.returncode == 0


@pytest.mark.slow
def test_rate_min_fails_a_slow_job_like_fio(dirs: tuple[Path, Path]) -> None:
    # 4 KiB every 100 ms is 40 KiB/s: fio checks after 2 s, then each rate_cycle (1 s), and fails with EIO
    p = run_both(
        dirs,
        "--name=t",
        "--filename=f",
        "--size=1m",
        "--rw=read",
        "--thinktime=100ms",
        "--rate_min=1m",
        "--time_based",
        "--runtime=6s",
        "--output-format=json",
    )
    assert p.fio.returncode == p.ours.returncode == 1
    for j in (doc(p.fio)["jobs"][0], doc(p.ours)["jobs"][0]):
        assert j["error"] == 5
        assert 2500 <= j["read"]["runtime"] <= 4500
    assert "rate_min=1048576B/s not met, got" in p.fio.stderr
    assert "rate_min=1048576B/s not met, got" in p.ours.stderr


@pytest.mark.parametrize("extra", [["--rate_iops_min=10"], ["--rate=100k"]])
def test_rate_min_combinations_fio_refuses(dirs: tuple[Path, Path], extra: list[str]) -> None:
    p = run_both(dirs, "--name=t", "--filename=f", "--size=64k", "--rate_min=1m", *extra)
    assert p.fio.returncode == 1 and p.ours.returncode == 1


# ------------------------------------------------------------------------------------ exitall
EXITALL_JOBS = [
    "--name=a",
    "--filename=fa",
    "--size=256k",
    "--name=b",
    "--filename=fb",
    "--size=1m",
    "--time_based",
    "--runtime=3s",
    "--name=c",
    "--stonewall",
    "--filename=fc",
    "--size=1m",
    "--time_based",
    "--runtime=1s",
]


@pytest.mark.slow
@pytest.mark.parametrize("what", ["group", "stonewall", "all"])
def test_exitall_stops_jobs_like_fio(dirs: tuple[Path, Path], what: str) -> None:
    p = run_both(dirs, "--exitall", f"--exit_what={what}", *EXITALL_JOBS, "--output-format=json")
    assert p.fio.returncode == p.ours.returncode == 0, p.ours.stderr
    for d in (doc(p.fio), doc(p.ours)):
        jobs = {j["jobname"]: j for j in d["jobs"]}
        assert [(j["jobname"], j["groupid"]) for j in d["jobs"]] == [("a", 0), ("b", 0), ("c", 1)]
        assert jobs["a"]["read"]["io_bytes"] == 256 << 10
        assert jobs["b"]["read"]["runtime"] < 1500  # stopped when a finished, long before its 3 s
        if what == "all":  # nothing starts after the first job ended
            assert jobs["c"]["read"]["io_bytes"] == 0
        else:
            assert jobs["c"]["read"]["runtime"] >= 900


@pytest.mark.slow
def test_exitall_on_error_stops_the_group_like_fio(dirs: tuple[Path, Path]) -> None:
    p = run_both(
        dirs,
        "--name=a",
        "--filename=fa",
        "--size=1m",
        "--bs=4k",
        "--direct=1",
        "--rw=read:1000",
        "--exitall_on_error",
        "--name=b",
        "--filename=fb",
        "--size=1m",
        "--time_based",
        "--runtime=3s",
        "--output-format=json",
    )
    assert p.fio.returncode == p.ours.returncode == 1
    for d in (doc(p.fio), doc(p.ours)):
        jobs = {j["jobname"]: j for j in d["jobs"]}
        assert jobs["a"]["error"] == 22 and jobs["b"]["error"] == 0
        assert jobs["b"]["read"]["runtime"] < 1500


# ------------------------------------------------------------------------------------ job options
def test_options_without_value_are_left_out_of_json_like_fio(dirs: tuple[Path, Path]) -> None:
    p = run_both(
        dirs,
        "--time_based",
        "--name=t",
        "--filename=f",
        "--size=64k",
        "--runtime=100ms",
        "--stonewall",
        "--group_reporting",
        "--output-format=json",
    )
    assert p.fio.returncode == p.ours.returncode == 0, p.ours.stderr
    assert keyset(doc(p.fio)) == keyset(doc(p.ours))
    for out in (p.fio.stdout, p.ours.stdout):
        # the object is there (an option was set in [global]) but lists only options with a value
        assert '"global options" : {\n\n  },' in out
    expected = {"name": "t", "filename": "f", "size": "64k", "runtime": "100ms"}
    assert doc(p.fio)["jobs"][0]["job options"] == doc(p.ours)["jobs"][0]["job options"] == expected


# ------------------------------------------------------------------------------------ group_reporting per job
def _job(name: str, size_k: int, *extra: str) -> list[str]:
    return [f"--name={name}", f"--filename=f{name}", f"--size={size_k}k", "--rw=read", *extra]


@pytest.mark.parametrize(
    ("args", "entries"),
    [
        # a job that sets group_reporting joins the entry of the job before it, even one without the option
        (_job("a", 64) + _job("b", 128, "--group_reporting") + _job("c", 192), [("a", 192), ("c", 192)]),
        # a job without the option starts an entry of its own, after one that has it too
        (
            _job("a", 64, "--group_reporting") + _job("b", 128) + _job("c", 192),
            [("a", 64), ("b", 128), ("c", 192)],
        ),
        # clones of a group_reporting job join the entry before them
        (_job("a", 64) + _job("b", 128, "--group_reporting", "--numjobs=2"), [("a", 320)]),
        # a new group starts a new entry
        (
            _job("a", 64, "--group_reporting") + _job("b", 128, "--group_reporting", "--stonewall"),
            [("a", 64), ("b", 128)],
        ),
        # stats=0 members are left out; the group_reporting job after them starts the entry
        (_job("a", 64, "--stats=0") + _job("b", 128, "--group_reporting"), [("b", 128)]),
    ],
)
def test_group_reporting_per_job_entries_like_fio(
    dirs: tuple[Path, Path], args: list[str], entries: list[tuple[str, int]]
) -> None:
    p = run_both(dirs, *args, "--output-format=json")
    assert p.fio.returncode == p.ours.returncode == 0, p.ours.stderr
    fio, ours = named_jobs(doc(p.fio)), doc(p.ours)["jobs"]
    # fio 3.33 also prints unfilled entries (no jobname, groupid 4294967295): a fio bug iolab leaves out
    assert all(j["groupid"] == 2**32 - 1 for j in doc(p.fio)["jobs"] if not j.get("jobname"))
    for d in (fio, ours):
        assert [(j["jobname"], j["read"]["io_bytes"] >> 10) for j in d] == entries
    # a merged entry echoes the options of its last member, as fio does
    assert [j["job options"] for j in fio] == [j["job options"] for j in ours]
    assert [j["groupid"] for j in fio] == [j["groupid"] for j in ours]
    p = run_both(dirs, *args)
    assert p.fio.returncode == p.ours.returncode == 0, p.ours.stderr
    heads = [
        [line.split(":")[0] for line in out.splitlines() if ": (groupid=" in line]
        for out in (p.fio.stdout, p.ours.stdout)
    ]
    assert heads[0] == heads[1] == [name for name, _ in entries]


# ------------------------------------------------------------------------------------ latency_depth
@pytest.mark.parametrize("create_only", ["0", "1"])
def test_latency_keys_only_for_jobs_that_reached_their_io_loop_like_fio(
    dirs: tuple[Path, Path], create_only: str
) -> None:
    args = [f"--create_only={create_only}", "--iodepth=4", "--ioengine=libaio", *_job("a", 64)]
    p = run_both(dirs, *args, "--output-format=json")
    assert p.fio.returncode == p.ours.returncode == 0, p.ours.stderr
    fio, ours = doc(p.fio)["jobs"][0], doc(p.ours)["jobs"][0]
    keys = ("latency_depth", "latency_target", "latency_percentile", "latency_window")
    assert [k in fio for k in keys] == [k in ours for k in keys] == [create_only == "0"] * 4
    assert fio.get("latency_depth") == ours.get("latency_depth")
    p = run_both(dirs, *args)
    assert p.fio.returncode == p.ours.returncode == 0, p.ours.stderr
    for out in p:
        assert ("     latency   : target=0, window=0, percentile=100.00%, depth=4" in out.stdout) == (
            create_only == "0"
        )
