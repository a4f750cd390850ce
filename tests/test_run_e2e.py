"""`iolab run` end to end, as a user runs it: a subprocess, real files and devices, fio-format output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import need

IOLAB = [sys.executable, "-m", "iolab"]


def iolab(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*IOLAB, *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"iolab {' '.join(args)} exited {proc.returncode}\n{proc.stderr}")
    return proc


def run_json(*args: str) -> dict[str, Any]:
    proc = iolab("run", *args, "--output-format=json")
    return json.loads(proc.stdout)  # stdout must be pure JSON


def test_write_job_puts_every_block_on_disk(direct_dir: Path) -> None:
    target = direct_dir / "w.dat"
    size = 8 << 20
    target.write_bytes(b"\xff" * size)
    out = run_json(
        "--name=w", f"--filename={target}", f"--size={size}", "--rw=write", "--bs=4k", "--direct=1"
    )
    job = out["jobs"][0]
    assert job["write"]["io_bytes"] == size
    assert job["write"]["total_ios"] == size // 4096
    data = target.read_bytes()
    assert len(data) == size
    blank = b"\xff" * 4096
    assert all(data[i : i + 4096] != blank for i in range(0, size, 4096)), "some block was never written"


def test_randread_covers_every_block_once(direct_dir: Path) -> None:
    target = direct_dir / "r.dat"
    out = run_json("--name=r", f"--filename={target}", "--size=4m", "--rw=randread", "--bs=4k", "--direct=1")
    read = out["jobs"][0]["read"]
    # a random map pass issues exactly one I/O per block: 4 MiB / 4 KiB
    assert read["total_ios"] == 1024
    assert read["io_bytes"] == 4 << 20


def test_time_based_runtime_and_ramp_are_honoured(direct_dir: Path) -> None:
    target = direct_dir / "t.dat"
    t0 = time.monotonic()
    out = run_json(
        "--name=t",
        f"--filename={target}",
        "--size=16m",
        "--rw=randread",
        "--bs=4k",
        "--time_based",
        "--runtime=2",
        "--ramp_time=1",
    )
    wall = time.monotonic() - t0
    job = out["jobs"][0]
    assert 1800 <= job["read"]["runtime"] <= 2300, job["read"]["runtime"]
    assert wall >= 3.0, "ramp time must come on top of the runtime, as in fio"
    assert job["read"]["total_ios"] > 0


def test_jobs_run_in_parallel_and_stonewall_serializes(direct_dir: Path) -> None:
    target = direct_dir / "p.dat"
    common = [f"--filename={target}", "--size=8m", "--rw=randread", "--bs=4k", "--time_based", "--runtime=1"]
    t0 = time.monotonic()
    out = run_json("--name=a", *common, "--numjobs=2", "--name=b", *common)
    parallel = time.monotonic() - t0
    assert len(out["jobs"]) == 3
    t0 = time.monotonic()
    out = run_json("--name=a", *common, "--name=b", *common, "--stonewall")
    serial = time.monotonic() - t0
    assert parallel < 1.9, f"three 1 s workers should overlap, took {parallel:.2f}s"
    assert serial >= 2.0, f"stonewall must wait for the first job, took {serial:.2f}s"
    assert [j["groupid"] for j in out["jobs"]] == [0, 1]


def test_json_key_set_matches_real_fio(direct_dir: Path, fio: str) -> None:
    target = direct_dir / "k.dat"
    args = ["--name=k", f"--filename={target}", "--size=4m", "--rw=randrw", "--bs=4k", "--runtime=1"]
    ours = run_json(*args)
    theirs = json.loads(
        subprocess.run(
            [fio, *args, "--output-format=json"], capture_output=True, text=True, check=True
        ).stdout
    )

    def keys(node: Any, prefix: str = "") -> set[str]:
        if not isinstance(node, dict):
            return set()
        out: set[str] = set()
        for key, value in node.items():
            if key in ("iolab", "percentile", "job options", "global options", "disk_util"):
                out.add(prefix + key)
                continue
            out.add(prefix + key)
            if isinstance(value, dict):
                out |= keys(value, f"{prefix}{key}.")
            elif isinstance(value, list) and value and isinstance(value[0], dict):
                out |= keys(value[0], f"{prefix}{key}[].")
        return out

    ours_keys = keys(ours) - {"jobs[].iolab", "iolab"}  # our documented extensions
    assert ours_keys == keys(theirs)


def test_terse_has_fio_field_count(direct_dir: Path, fio: str) -> None:
    target = direct_dir / "terse.dat"
    args = ["--name=x", f"--filename={target}", "--size=2m", "--rw=read", "--bs=4k"]
    ours = iolab("run", *args, "--output-format=terse").stdout.strip().splitlines()[-1].split(";")
    theirs = subprocess.run([fio, *args, "--output-format=terse"], capture_output=True, text=True, check=True)
    fields = theirs.stdout.strip().splitlines()[-1].split(";")
    assert len(ours) == len(fields)
    assert ours[0] == "3" and ours[2] == "x"


def test_ctrl_c_still_prints_valid_results(direct_dir: Path) -> None:
    target = direct_dir / "c.dat"
    proc = subprocess.Popen(
        [
            *IOLAB,
            "run",
            "--name=c",
            f"--filename={target}",
            "--size=16m",
            "--rw=randread",
            "--bs=4k",
            "--time_based",
            "--runtime=60",
            "--output-format=json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not (target.exists() and target.stat().st_size == 16 << 20) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(2)  # some measured I/O after the layout
    proc.send_signal(signal.SIGINT)
    out, _err = proc.communicate(timeout=20)
    data = json.loads(out)
    read = data["jobs"][0]["read"]
    assert read["total_ios"] > 0
    assert read["runtime"] < 10_000


def test_output_file_and_normal_format(direct_dir: Path) -> None:
    target = direct_dir / "o.dat"
    result = direct_dir / "result.txt"
    proc = iolab(
        "run", "--name=o", f"--filename={target}", "--size=2m", "--rw=read", "--bs=4k", f"--output={result}"
    )
    assert proc.stdout == ""
    text = result.read_text()
    assert "o: (groupid=0, jobs=1)" in text
    assert "Run status group 0 (all jobs):" in text
    assert "READ: bw=" in text


def test_bad_job_file_is_a_clear_error(tmp_path: Path) -> None:
    job = tmp_path / "bad.fio"
    job.write_text("[global]\nrw=randread\n[j]\nblocksise=4k\n")
    proc = iolab("run", str(job), check=False)
    assert proc.returncode != 0
    assert f"{job}:4" in proc.stderr
    assert "blocksize" in proc.stderr  # the did-you-mean
    assert "Traceback" not in proc.stderr


def test_unsupported_engine_is_a_clear_error(tmp_path: Path) -> None:
    proc = iolab("run", "--name=x", "--filename=/nonexistent", "--ioengine=pvsync2", check=False)
    assert proc.returncode != 0
    assert "pvsync2" in proc.stderr and "psync" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_zram_randread(zram: str) -> None:
    out = run_json("--name=z", f"--filename={zram}", "--rw=randread", "--bs=4k", "--direct=1", "--size=64m")
    assert out["jobs"][0]["read"]["io_bytes"] == 64 << 20


def test_loop_device_write_then_read_back(loop_device: str) -> None:
    out = run_json(
        "--name=l",
        f"--filename={loop_device}",
        "--rw=write",
        "--bs=64k",
        "--direct=1",
        "--size=4m",
        "--zero_buffers=0",
    )
    assert out["jobs"][0]["write"]["io_bytes"] == 4 << 20
    fd = os.open(loop_device, os.O_RDONLY)
    try:
        data = os.pread(fd, 4 << 20, 0)
    finally:
        os.close(fd)
    assert data.count(0) < len(data) // 2, "the device still reads back as zeros"


@pytest.mark.parametrize("name", ["parallel-reads", "latency-reads", "mixed"])
def test_shipped_jobs_parse(name: str) -> None:
    job = Path(__file__).parent.parent / "jobs" / f"{name}.fio"
    need(job.exists(), f"{job} missing")
    env = dict(os.environ, IOLAB_TARGET="/var/tmp/iolab-parse-only.dat")
    proc = subprocess.run([*IOLAB, "run", "--parse-only", str(job)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr


def test_loops_unlink_and_group_reporting(direct_dir: Path) -> None:
    target = direct_dir / "loops.dat"
    out = run_json(
        "--name=l", f"--filename={target}", "--size=1m", "--rw=read", "--bs=64k", "--loops=3", "--unlink=1"
    )
    assert out["jobs"][0]["read"]["io_bytes"] == 3 << 20
    assert not target.exists(), "unlink=1 must remove the job's file"
    out = run_json(
        "--name=g",
        f"--directory={direct_dir}",
        "--size=1m",
        "--rw=read",
        "--bs=64k",
        "--numjobs=3",
        "--group_reporting",
    )
    assert len(out["jobs"]) == 1, "group_reporting shows the group as one job"
    assert out["jobs"][0]["read"]["io_bytes"] == 3 << 20
    assert sorted(p.name for p in direct_dir.iterdir() if p.name.startswith("g.")) == [
        "g.0.0",
        "g.1.0",
        "g.2.0",
    ]


def test_fsync_every_n_writes_is_reported(direct_dir: Path) -> None:
    target = direct_dir / "sync.dat"
    out = run_json("--name=s", f"--filename={target}", "--size=1m", "--rw=write", "--bs=4k", "--fsync=16")
    job = out["jobs"][0]
    assert job["write"]["total_ios"] == 256
    assert job["sync"]["total_ios"] == 256 // 16 - 1  # fio: no sync after the last write
    assert job["sync"]["lat_ns"]["N"] == 256 // 16 - 1


def test_wait_for_orders_jobs(direct_dir: Path) -> None:
    target = direct_dir / "wf.dat"
    common = [f"--filename={target}", "--size=8m", "--rw=randread", "--bs=4k", "--time_based", "--runtime=1"]
    t0 = time.monotonic()
    out = run_json("--name=first", *common, "--name=second", *common, "--wait_for=first")
    assert time.monotonic() - t0 >= 2.0, "wait_for must hold the second job until the first is done"
    assert [j["jobname"] for j in out["jobs"]] == ["first", "second"]
