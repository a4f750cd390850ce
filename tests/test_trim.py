"""Trims (rw=trim, randtrim, trimwrite, randtrimwrite) through `iolab run`: punched holes in files, discards
on a hot-added zram device (its memory use drops), fio's counts on the same jobs, and the safety gate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import need
from iolab.ioengines import ENGINE_SPECS, EngineSpec
from test_doctor_support import MiB, attached, mkfs_ext4, sparse, write_random
from test_safety_corpus import hot_zram


def iolab_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "iolab", "run", *args], capture_output=True, text=True, timeout=120
    )


def run_json(*args: str) -> dict[str, Any]:
    r = iolab_run("--output-format=json", *args)
    assert r.returncode == 0, r.stderr
    job: dict[str, Any] = json.loads(r.stdout)["jobs"][0]
    return job


def counts(job: dict[str, Any]) -> dict[str, tuple[int, int]]:
    return {d: (job[d]["total_ios"], job[d]["io_bytes"]) for d in ("read", "write", "trim")}


def allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


# ------------------------------------------------------------------------------------------------ files


@pytest.mark.parametrize("engine", ["psync", "libaio", "io_uring"])
def test_trim_punches_holes_in_a_file(tmp_path: Path, engine: str) -> None:
    path = write_random(tmp_path / "data", 4 * MiB)
    assert allocated(path) >= 4 * MiB
    job = run_json("--name=t", f"--filename={path}", "--rw=trim", "--bs=64k", "--size=4m",
                   f"--ioengine={engine}", "--iodepth=4")  # fmt: skip
    assert counts(job) == {"read": (0, 0), "write": (0, 0), "trim": (64, 4 * MiB)}
    assert job["error"] == 0 and job["trim"]["iops"] > 0 and job["trim"]["bw_bytes"] > 0
    assert job["trim"]["lat_ns"]["N"] == 64
    assert os.path.getsize(path) == 4 * MiB, "KEEP_SIZE: the file keeps its length"
    assert allocated(path) == 0, "every block was punched out"
    assert path.read_bytes() == bytes(4 * MiB), "a punched hole reads back as zeros"


def test_randtrim_covers_each_block_once_and_leaves_the_rest(tmp_path: Path) -> None:
    path = write_random(tmp_path / "data", 4 * MiB)
    before = path.read_bytes()
    job = run_json("--name=t", f"--filename={path}", "--rw=randtrim", "--bs=64k", "--size=2m")
    assert counts(job)["trim"] == (32, 2 * MiB)
    after = path.read_bytes()
    assert after[: 2 * MiB] == bytes(2 * MiB) and after[2 * MiB :] == before[2 * MiB :]
    assert allocated(path) <= 2 * MiB + 64 * 1024


def test_trimwrite_writes_every_trimmed_block(tmp_path: Path) -> None:
    path = write_random(tmp_path / "data", 2 * MiB)
    before = path.read_bytes()
    job = run_json("--name=t", f"--filename={path}", "--rw=trimwrite", "--bs=64k", "--size=2m")
    assert counts(job) == {"read": (0, 0), "write": (32, 2 * MiB), "trim": (32, 2 * MiB)}
    after = path.read_bytes()
    assert after != before and after != bytes(2 * MiB), "written back with the job's buffers"
    assert allocated(path) >= 2 * MiB


def test_normal_output_has_fios_trim_lines(tmp_path: Path) -> None:
    path = write_random(tmp_path / "data", MiB)
    r = iolab_run("--name=t", f"--filename={path}", "--rw=trimwrite", "--bs=64k", "--size=1m")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "rw=trimwrite, bs=(R) 64.0KiB-64.0KiB, (W) 64.0KiB-64.0KiB, (T) 64.0KiB-64.0KiB" in out
    assert "  trim: IOPS=" in out and "  write: IOPS=" in out
    assert "issued rwts: total=0,16,16,0" in out
    assert "   TRIM: bw=" in out and "  WRITE: bw=" in out


def test_trim_block_size_is_bs_third_value(tmp_path: Path) -> None:
    path = write_random(tmp_path / "data", 2 * MiB)
    job = run_json("--name=t", f"--filename={path}", "--rw=trim", "--bs=4k,8k,128k", "--size=2m")
    assert counts(job)["trim"] == (16, 2 * MiB)
    job = run_json("--name=t", f"--filename={path}", "--rw=trim", "--bs=4k,32k", "--size=2m")
    assert counts(job)["trim"] == (64, 2 * MiB), "two values: the write one is the trims' too (fio)"


def test_trim_options_iolab_does_not_apply_are_refused(tmp_path: Path) -> None:
    path = sparse(tmp_path / "data", MiB)
    base = ["--name=t", f"--filename={path}", "--rw=trim", "--size=1m"]
    refused = [("--rate=1m", "rate"), ("--rate_iops=10", "rate_iops"), ("--bsrange=4k-8k", "bsrange"),
               ("--bssplit=4k/50:8k/50", "bssplit"), ("--max_latency=1s", "max_latency")]  # fmt: skip
    for extra, word in refused:
        r = iolab_run(*base, extra)
        assert r.returncode != 0 and word in r.stderr and "Traceback" not in r.stderr, (extra, r.stderr)
    # a rate for reads and writes only leaves trims alone: accepted
    r = iolab_run(*base, "--rate=1m,1m,", "--bs=64k")
    assert r.returncode == 0, r.stderr


def test_an_engine_spec_without_trim_gets_trim_jobs_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from iolab import plan
    from iolab.jobfile import parse_text

    assert EngineSpec("x", 99, "").trim is False, "a new engine does not trim unless it says so"
    assert all(s.trim for s in ENGINE_SPECS if s.name in ("psync", "libaio", "io_uring"))
    spec = plan.SUPPORTED_ENGINES["psync"]
    monkeypatch.setitem(plan.SUPPORTED_ENGINES, "psync", EngineSpec(spec.name, spec.engine_id, spec.note))
    jobs = parse_text("[t]\nfilename=/nonexistent/x\nrw=randtrim\nsize=1m\n")
    with pytest.raises(
        plan.PlanError, match="rw=randtrim needs an engine that trims; ioengine=psync does not"
    ):
        plan.build_plan(jobs)


# ------------------------------------------------------------------------------------- zram, and fio


def mm_stat(dev: str) -> list[int]:
    return [int(x) for x in Path(f"/sys/block/{os.path.basename(dev)}/mm_stat").read_text().split()]


def fill(dev: str, size: int) -> None:
    with open(dev, "r+b", buffering=0) as f:
        left = size
        while left:
            n = min(left, MiB)
            f.write(os.urandom(n))
            left -= n
        os.fsync(f.fileno())


def test_trim_on_zram_frees_its_memory() -> None:
    with hot_zram("64M") as dev:
        fill(dev, 32 * MiB)
        orig, _, used = mm_stat(dev)[:3]
        assert orig >= 32 * MiB and used >= 30 * MiB
        r = iolab_run(
            "--output-format=json", "--name=t", f"--filename={dev}", "--rw=trim", "--bs=1m", "--size=32m",
            "--direct=1",
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert counts(doc["jobs"][0])["trim"] == (32, 32 * MiB)
        orig2, _, used2 = mm_stat(dev)[:3]
        assert orig2 == 0 and used2 < used // 4, (orig, used, orig2, used2)
        # zram frees the blocks but counts no discards in its statistics: a trim of the device itself is
        # not held against them (IOL-LIE-006 is for holes punched in files)
        (phase,) = doc["iolab"]["device_check"]["phases"]
        assert phase["issued"]["trim_bytes"] == 32 * MiB
        assert "IOL-LIE-006" not in {f["code"] for f in phase["findings"]}
        assert phase["verdict"] == "consistent", phase


MODES = ["trim", "randtrim", "trimwrite", "randtrimwrite"]


@pytest.mark.parametrize(
    ("mode", "bs", "extra"),
    [
        *((m, "64k", "") for m in MODES),
        ("trimwrite", "64k,64k,128k", ""),  # fio's pairing rule with unequal sizes: 127 writes, 64 trims
        ("randtrim", "4k", ""),
        ("trim", "8k,8k,16k", ""),
        ("randtrimwrite", "16k", "ioengine=libaio\niodepth=8\nloops=2\n"),
        ("trimwrite", "16k", "ioengine=io_uring\niodepth=8\nnumber_ios=100\n"),
    ],
)
def test_counts_match_fio(fio: str, mode: str, bs: str, extra: str, tmp_path: Path) -> None:
    need(os.geteuid() == 0, "needs root to hot-add a zram device")
    with hot_zram("64M") as dev:
        jobfile = tmp_path / "job.fio"
        jobfile.write_text(f"[t]\nfilename={dev}\nsize=8m\nbs={bs}\nrw={mode}\ndirect=1\n{extra}")
        theirs = subprocess.run([fio, "--output-format=json", str(jobfile)], capture_output=True, text=True)
        assert theirs.returncode == 0, theirs.stderr
        fio_job = json.loads(theirs.stdout)["jobs"][0]
        ours = run_json(str(jobfile))
        assert counts(ours) == counts(fio_job)
        assert counts(ours)["trim"][0] > 0
        # the trim block carries fio's keys, with fio's types
        assert {k: type(v) for k, v in ours["trim"].items()} == {
            k: type(v) for k, v in fio_job["trim"].items()
        }


# -------------------------------------------------------------------------------------------- safety


def test_trim_on_a_loop_device_with_a_file_system_is_refused(tmp_path: Path) -> None:
    image = sparse(tmp_path / "ext4.img", 64 * MiB)
    mkfs_ext4(image)
    with attached(image) as dev:
        before = image.read_bytes()
        job = ["--name=t", f"--filename={dev}", "--rw=trim", "--bs=1m", "--size=8m"]
        r = iolab_run(*job)
        assert r.returncode == 1 and r.stdout == "", r.stderr
        assert "refusing to run" in r.stderr and "IOL-SAFE" in r.stderr and "--allow-destroy=" in r.stderr
        assert image.read_bytes() == before, "nothing was trimmed"
        r = iolab_run(*job, f"--allow-destroy={dev}")
        assert r.returncode == 0, r.stderr
        assert image.read_bytes()[: 8 * MiB] != before[: 8 * MiB], (
            "the trims went through (loop punches holes)"
        )


def test_trim_on_a_loop_devices_backing_file_is_refused(tmp_path: Path) -> None:
    """A punched hole in the backing file destroys the loop device's data: gated like a write."""
    backing = write_random(tmp_path / "backing.img", 4 * MiB)
    with attached(backing) as dev:
        before = backing.read_bytes()
        r = iolab_run("--name=t", f"--filename={backing}", "--rw=trim", "--bs=64k", "--size=4m")
        assert r.returncode == 1 and "IOL-SAFE-006" in r.stderr and dev in r.stderr, r.stderr
        assert backing.read_bytes() == before and allocated(backing) >= 4 * MiB


@pytest.mark.parametrize("how", [["--readonly"], ["--readonly=1"]])
def test_readonly_refuses_trims(tmp_path: Path, how: list[str]) -> None:
    path = write_random(tmp_path / "data", MiB)
    r = iolab_run(*how, "--name=t", f"--filename={path}", "--rw=randtrim", "--size=1m")
    assert r.returncode == 1 and "readonly" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert allocated(path) >= MiB
