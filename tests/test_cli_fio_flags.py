"""fio's own command-line flags in `iolab run`, warnings on stderr in every format, and fio's job limit.

Real subprocesses and real fio 3.33 side by side where fio's behaviour is the point."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import need
from iolab import __version__
from iolab.doctor.checks import CHECKS, Context, _clone_overlaps, check_data
from iolab.doctor.jobs import FileView, JobView
from iolab.doctor.target import BlockDevice, TargetInfo
from iolab.jobfile import parse_cli
from iolab.options import FIO_FLAGS, format_options_listing
from iolab.plan import MAX_JOBS, PlanError, build_plan, check_job_count

IOLAB = [sys.executable, "-m", "iolab"]
FIO = shutil.which("fio")


def iolab(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*IOLAB, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)


def fio(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    need(FIO is not None, "fio is not installed (Debian package fio)")
    assert FIO is not None
    return subprocess.run([FIO, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)


# ------------------------------------------------------------------------------ help, version, cmdhelp


def test_run_help_prints_usage() -> None:
    proc = iolab("run", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "usage: iolab run" in proc.stdout and "no jobs given" not in proc.stderr
    for name in FIO_FLAGS:
        assert f"--{name}" in proc.stdout, name  # implemented ones explained, the others listed as refused
    refused = proc.stdout.split("refused")[-1]
    assert "--client" in refused and "--output-format" not in refused


def test_help_stops_at_the_flag_like_fio(tmp_path: Path) -> None:
    # fio prints its help and exits without looking at the rest of the line (a job file that is not there)
    proc = iolab("run", "--help", "no-such-job.fio", cwd=tmp_path)
    assert proc.returncode == 0 and "usage: iolab run" in proc.stdout


def test_version_is_one_line_like_fio(tmp_path: Path) -> None:
    ours = iolab("run", "--version")
    assert ours.returncode == 0 and ours.stdout == f"iolab-{__version__}\n"
    assert iolab("--version").stdout == ours.stdout
    theirs = fio("--version", cwd=tmp_path)
    shape = re.compile(r"^[a-z]+-\d+\.\d+(\.\d+)?\n$")
    assert shape.match(theirs.stdout) and shape.match(ours.stdout)


def test_cmdhelp_lists_and_details_options(tmp_path: Path) -> None:
    listing = iolab("run", "--cmdhelp")
    assert listing.returncode == 0 and listing.stdout == format_options_listing()
    assert iolab("run", "--cmdhelp=all").stdout == listing.stdout
    one = iolab("run", "--cmdhelp=bs")
    assert one.returncode == 0 and one.stdout == format_options_listing("bs")
    assert one.stdout.startswith("bs: ") and "aliases:  blocksize" in one.stdout
    # fio knows the same option and its alias
    assert "alias: blocksize" in fio("--cmdhelp=bs", cwd=tmp_path).stdout


def test_cmdhelp_and_options_unknown_name_fail_with_did_you_mean() -> None:
    for argv in (["options", "blocksze"], ["run", "--cmdhelp=blocksze"]):
        proc = iolab(*argv)
        assert proc.returncode == 1, argv
        assert proc.stdout == "" and "did you mean 'blocksize'?" in proc.stderr
    proc = iolab("options", "NOSUCH")
    assert proc.returncode == 1 and "no option matches 'NOSUCH'" in proc.stderr


def test_no_jobs_points_to_help() -> None:
    proc = iolab("run")
    assert proc.returncode == 1 and "--help" in proc.stderr


# ------------------------------------------------------------------------------ flags iolab lacks


def _value_for(name: str) -> list[str]:
    flag = FIO_FLAGS[name]
    if flag.arg == "required":
        return [f"--{name}={flag.choices[0] if flag.choices else '1'}"]
    return [f"--{name}"]


@pytest.mark.parametrize("name", sorted(n for n, f in FIO_FLAGS.items() if not f.supported))
def test_unimplemented_flag_is_refused_and_nothing_runs(name: str, tmp_path: Path) -> None:
    target = tmp_path / "data"
    proc = iolab(
        "run",
        *_value_for(name),
        "--name=x",
        f"--filename={target}",
        "--size=64k",
        "--rw=write",
        cwd=tmp_path,
        timeout=30,
    )
    assert proc.returncode == 1, (name, proc.stdout, proc.stderr)
    assert f"'--{name}'" in proc.stderr and "refused" in proc.stderr
    assert not target.exists(), "the job ran"
    assert proc.stdout == ""


def test_client_server_refused_with_the_reason(tmp_path: Path) -> None:
    for args in (["--client=localhost"], ["--server"], ["--daemonize=pid"], ["--remote-config=x.fio"]):
        proc = iolab("run", *args, "--name=x", f"--filename={tmp_path / 'f'}", "--size=64k", cwd=tmp_path)
        assert proc.returncode == 1 and "client/server" in proc.stderr, args
    assert not (tmp_path / "f").exists()


def test_max_jobs_is_accepted_and_ignored_like_fio(tmp_path: Path) -> None:
    args = ["--max-jobs=1", "--parse-only", "--name=x", "--filename=f", "--size=64k", "--numjobs=4"]
    assert fio(*args, cwd=tmp_path).returncode == 0
    proc = iolab("run", *args, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == ""


# ------------------------------------------------------------------------------ --warnings-fatal


def test_warnings_fatal_makes_parser_warnings_errors(tmp_path: Path) -> None:
    job = ["--name=x", f"--filename={tmp_path / 'f'}", "--size=1.5m", "--rw=read"]
    warned = iolab("run", "--parse-only", *job)
    assert warned.returncode == 0 and "warning: x: <cmdline>:4: size=1.5m" in warned.stderr
    fatal = iolab("run", "--warnings-fatal", *job)
    assert fatal.returncode == 1 and "error: x: <cmdline>:4: size=1.5m" in fatal.stderr
    assert "--warnings-fatal" in fatal.stderr
    assert not (tmp_path / "f").exists(), "nothing may run"


def test_time_based_without_runtime_like_fio(tmp_path: Path) -> None:
    # fio warns and turns time_based off (the job ends with its I/O); with --warnings-fatal it exits 1
    job = ["--name=x", "--filename=f", "--size=256k", "--time_based", "--output-format=json"]
    theirs = fio(*job, cwd=tmp_path)
    assert theirs.returncode == 0 and "time_based" in theirs.stderr
    ours = iolab("run", *job, cwd=tmp_path, timeout=30)
    assert ours.returncode == 0 and "time_based=1 needs a runtime=" in ours.stderr
    mine, fios = json.loads(ours.stdout), json.loads(theirs.stdout)
    assert mine["jobs"][0]["read"]["io_bytes"] == fios["jobs"][0]["read"]["io_bytes"] == 256 * 1024
    assert fio("--warnings-fatal", *job, cwd=tmp_path).returncode == 1
    assert iolab("run", "--warnings-fatal", *job, cwd=tmp_path).returncode == 1


# ------------------------------------------------------------------------------ stderr in every format


@pytest.mark.parametrize("fmt", ["json", "json+", "terse", "json,terse"])
def test_warnings_and_findings_reach_stderr(fmt: str, tmp_path: Path) -> None:
    # runtime=1min (1 us to fio): a parser warning; no ramp_time and buffered I/O: doctor findings
    proc = iolab(
        "run",
        "--name=x",
        f"--filename={tmp_path / 'f'}",
        "--size=64k",
        "--runtime=1min",
        "--rw=read",
        f"--output-format={fmt}",
        "--eta=never",
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "warning: x: <cmdline>:4: runtime=1min" in proc.stderr
    assert "IOL-RAMP-001" in proc.stderr and "IOL-CACHE-001" in proc.stderr
    if fmt in ("json", "json+"):
        doc = json.loads(proc.stdout)  # pure JSON: nothing else on stdout
        assert {f["code"] for f in doc["iolab"]["findings"]} >= {"IOL-RAMP-001", "IOL-CACHE-001"}
    if fmt == "terse":
        assert proc.stdout.count("\n") == 1 and proc.stdout.startswith("3;")
    assert "warning: " not in proc.stdout  # the messages are not mixed into the report


def test_normal_output_keeps_findings_on_stdout_once(tmp_path: Path) -> None:
    proc = iolab("run", "--name=x", f"--filename={tmp_path / 'f'}", "--size=64k", "--rw=read", timeout=60)
    assert proc.returncode == 0
    assert "IOL-RAMP-001" in proc.stdout and "IOL-RAMP-001" not in proc.stderr
    # to a file, the report holds them and stderr says them too
    out = tmp_path / "report.txt"
    proc = iolab(
        "run",
        "--name=x",
        f"--filename={tmp_path / 'f'}",
        "--size=64k",
        "--rw=read",
        f"--output={out}",
        timeout=60,
    )
    assert proc.returncode == 0 and proc.stdout == ""
    assert "IOL-RAMP-001" in out.read_text() and "IOL-RAMP-001" in proc.stderr


# ------------------------------------------------------------------------------ zram as itself


def _device(name: str, driver: str, slaves: tuple[str, ...] = ()) -> BlockDevice:
    return BlockDevice(
        name=name,
        devno=(1, 0),
        is_partition=False,
        parent=None,
        driver=driver,
        size_bytes=256 << 20,
        rotational=False,
        write_cache="write through",
        scheduler=None,
        logical_block_size=4096,
        physical_block_size=4096,
        nr_requests=None,
        max_sectors_kb=None,
        read_only=False,
        holders=(),
        slaves=slaves,
    )


def _view(path: str) -> JobView:
    values = (
        parse_cli(
            [
                "--name=zr",
                f"--filename={path}",
                "--rw=randread",
                "--bs=4k",
                "--direct=1",
                "--ioengine=psync",
                "--ramp_time=2s",
                "--runtime=30s",
                "--time_based",
            ]
        )
        .jobs[0]
        .values
    )
    return JobView(
        name="zr",
        jobnum=0,
        jobdef_index=0,
        values=values,
        files=(FileView(path, 0, 256 << 20),),
        reads=True,
        writes=False,
        random=True,
        direct=True,
    )


def _findings(path: str, target: TargetInfo) -> list[Any]:
    ctx = Context(targets={path: target})
    # check_data reads the live device's page count from sysfs: not part of this function-level test
    return [f for check in CHECKS if check is not check_data for f in check([_view(path)], ctx)]


def test_zram_benchmarked_as_itself_is_info_at_most() -> None:
    dev = _device("zram0", "zram")
    target = TargetInfo("/dev/zram0", "/dev/zram0", "block", 256 << 20, None, dev, (dev,))
    found = _findings("/dev/zram0", target)
    assert [(f.code, f.severity) for f in found] == [("IOL-TARGET-002", "info")]
    assert "its own" in found[0].message


def test_stacked_device_over_a_disk_still_warns() -> None:
    loop, disk = _device("loop0", "loop"), _device("vda", "virtio")
    target = TargetInfo("/dev/loop0", "/dev/loop0", "block", 256 << 20, None, loop, (loop, disk))
    found = _findings("/dev/loop0", target)
    assert [(f.code, f.severity) for f in found] == [("IOL-TARGET-002", "warning")]


# ------------------------------------------------------------------------------ job-count limits


def test_numjobs_over_the_limit_refused_at_once_like_fio(tmp_path: Path) -> None:
    args = ["--name=x", "--filename=f", "--size=4k", "--numjobs=100000"]
    theirs = fio(*args, cwd=tmp_path, timeout=60)
    assert theirs.returncode == 1 and "maximum number of jobs" in theirs.stderr
    started = time.monotonic()
    ours = iolab("run", *args, cwd=tmp_path, timeout=60)
    assert ours.returncode == 1 and f"past {MAX_JOBS}" in ours.stderr and "<cmdline>:4" in ours.stderr
    assert time.monotonic() - started < 20
    assert not (tmp_path / "f").exists() or (tmp_path / "f").stat().st_size == 0


def test_job_sections_over_the_limit_refused(tmp_path: Path) -> None:
    job = tmp_path / "many.fio"
    job.write_text("".join(f"[j{i}]\nfilename=f\nsize=4k\n" for i in range(10_000)))
    theirs = fio(str(job), cwd=tmp_path, timeout=60)
    assert theirs.returncode == 1 and "maximum number of jobs" in theirs.stderr
    ours = iolab("run", str(job), cwd=tmp_path, timeout=60)
    assert ours.returncode == 1 and f"'j{MAX_JOBS}'" in ours.stderr
    # --parse-only does not count jobs, in fio as in iolab
    assert fio("--parse-only", str(job), cwd=tmp_path).returncode == 0
    assert iolab("run", "--parse-only", str(job), cwd=tmp_path).returncode == 0


def test_the_limit_is_fios_4088(tmp_path: Path) -> None:
    # fio 3.33 gives up on the 4089th job: a second section after numjobs=N shows where (its bogus rw=
    # is reported only when the job before it fit)
    for n, full in ((MAX_JOBS - 1, False), (MAX_JOBS, True)):
        text = f"[a]\nfilename=f\nsize=4k\nnumjobs={n}\n[b]\nfilename=f\nrw=bogus\n"
        (tmp_path / "lim.fio").write_text(text)
        proc = fio("lim.fio", cwd=tmp_path, timeout=60)
        assert proc.returncode == 1 and ("maximum number of jobs" in proc.stderr) is full, n
    check_job_count(parse_cli(["--name=x", "--filename=f", f"--numjobs={MAX_JOBS}"]).jobs)
    argv = ["--name=x", "--filename=f", f"--numjobs={MAX_JOBS - 1}", "--name=y", "--filename=f"]
    check_job_count(parse_cli(argv).jobs)
    with pytest.raises(PlanError, match="'z'"):
        check_job_count(parse_cli([*argv, "--name=z", "--filename=f"]).jobs)


def test_many_allowed_clones_are_checked_fast(tmp_path: Path) -> None:
    from iolab import doctor

    target = tmp_path / "f"
    target.write_bytes(b"\0" * (1 << 20))
    jobs = parse_cli(["--name=x", f"--filename={target}", "--size=4k", "--numjobs=3000"]).jobs
    started = time.monotonic()
    plan = build_plan(jobs)
    found = doctor.pre_run(plan, jobs)
    assert time.monotonic() - started < 10  # the pairwise check took over 5 s here
    assert any(f.code == "IOL-JOBS-001" and f.evidence["numjobs"] == 3000 for f in found)


def _pairwise(clones: list[JobView]) -> dict[str, int]:
    out: dict[str, int] = {}
    for i, a in enumerate(clones):
        for b in clones[i + 1 :]:
            for fa in a.files:
                for fb in b.files:
                    if fa.path == fb.path:
                        lo = max(fa.region_offset, fb.region_offset)
                        hi = min(fa.region_offset + fa.region_size, fb.region_offset + fb.region_size)
                        if hi > lo:
                            out[fa.path] = max(out.get(fa.path, 0), hi - lo)
    return out


def test_clone_overlap_sweep_matches_pairwise() -> None:
    rng = random.Random(9)
    base = _view("/x")
    for _ in range(300):
        clones = []
        for n in range(rng.randint(1, 7)):
            files = tuple(
                FileView(rng.choice(["/a", "/b"]), rng.randrange(0, 64), rng.randrange(0, 24))
                for _ in range(rng.randint(1, 3))
            )
            clones.append(JobView(**{**base.__dict__, "jobnum": n, "files": files}))
        assert dict(_clone_overlaps(clones)) == _pairwise(clones)
