"""`iolab doctor` and `iolab explain`: output formats, exit status, job files, commands."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from iolab.doctor import explain, pre_run, translate
from iolab.doctor.cli import doctor_main, explain_main, main
from iolab.doctor.explain import ExplainError, dd_number
from iolab.doctor.fioargs import load_jobfile
from test_doctor_support import MiB, attached, codes, mkfs_ext4, mounted, sparse, write_random


def run_doctor(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    rc = doctor_main(list(argv), out)
    return rc, out.getvalue()


def run_json(*argv: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    rc, text = run_doctor("--output-format=json", *argv)
    return rc, json.loads(text)


GOOD_JOB = """\
[global]
ioengine=psync
direct=1
bs=4k
ramp_time=2s
runtime=30s
time_based=1

[randread]
filename={path}
rw=randread
"""

BAD_JOB = """\
[seqread]
filename={path}
rw=read
bs=4k
iodepth=32
numjobs=2
runtime=3s
time_based=1
"""


# ------------------------------------------------------------------------------------------- targets


def test_clean_file_target_exits_0(direct_dir: Path) -> None:
    path = write_random(direct_dir / "ok.bin", 4 * MiB)
    rc, text = run_doctor(str(path))
    assert rc == 0, text
    assert "no findings" in text and "regular file" in text


def test_sparse_file_target_json(direct_dir: Path) -> None:
    path = sparse(direct_dir / "holes.bin", 4 * MiB)
    rc, doc = run_json(str(path))
    assert rc == 1
    (f,) = doc["findings"]
    assert set(f) >= {"code", "severity", "message", "evidence", "fix"}
    assert f["code"] == "IOL-DATA-001" and f["evidence"]["hole_bytes"] == 4 * MiB
    assert doc["targets"][0]["kind"] == "file"


def test_dev_typo_target(direct_dir: Path) -> None:
    rc, doc = run_json("/dev/iolab-doctor-no-such-disk")
    assert rc == 1 and [f["code"] for f in doc["findings"]] == ["IOL-TARGET-001"]


def test_mounted_device_target_and_allow_destroy(direct_dir: Path) -> None:
    image = sparse(direct_dir / "fs.img", 64 * MiB)
    mkfs_ext4(image)
    with attached(image) as dev, mounted(dev, direct_dir / "mnt"):
        rc, doc = run_json(dev)
        assert rc == 1
        errors = sorted(f["code"] for f in doc["findings"] if f["severity"] == "error")
        assert errors == ["IOL-SAFE-001", "IOL-SAFE-004"]
        rc, doc = run_json(f"--allow-destroy={dev}", dev)
        assert not [f for f in doc["findings"] if f["severity"] == "error"]


# ------------------------------------------------------------------------------------------- job files


def test_good_job_file_exits_0(direct_dir: Path) -> None:
    data = write_random(direct_dir / "data.bin", 8 * MiB)
    job = direct_dir / "good.fio"
    job.write_text(GOOD_JOB.format(path=data))
    rc, text = run_doctor(str(job))
    assert rc == 0, text


def test_bad_job_file(direct_dir: Path) -> None:
    data = write_random(direct_dir / "data.bin", 8 * MiB)
    job = direct_dir / "bad.fio"
    job.write_text(BAD_JOB.format(path=data))
    rc, doc = run_json(str(job))
    assert rc == 1
    found = {f["code"] for f in doc["findings"]}
    assert {"IOL-CACHE-001", "IOL-ENGINE-001", "IOL-JOBS-001", "IOL-RAMP-001", "IOL-TIME-001"} <= found
    engine = next(f for f in doc["findings"] if f["code"] == "IOL-ENGINE-001")
    assert f"{job}:5" in engine["fix"]  # iodepth is on line 5
    rc, text = run_doctor(str(job))
    assert "warning: IOL-ENGINE-001 [seqread]" in text and "evidence: " in text and "fix: " in text


def test_strict_flag_is_accepted(direct_dir: Path) -> None:
    data = write_random(direct_dir / "data.bin", MiB)
    assert run_doctor("--strict", str(data))[0] == 0


# ---------------------------------------------------------------------------------------- usage errors


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--output-format=xml", "/tmp"],
        ["--allow-destroy=/nonexistent/dev", "/tmp"],
        ["--allow-destroy=/tmp", "/tmp"],  # not a block device
        ["/tmp", "--", "dd", "if=/dev/zero", "of=/tmp/x"],
        ["--", "rm", "-rf", "/"],
        ["--", "dd", "if=/dev/zero", "of=/tmp/x", "bs=1Q"],
    ],
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    assert run_doctor(*argv)[0] == 2


def test_module_entry_point_exit_status(direct_dir: Path) -> None:
    path = sparse(direct_dir / "h.bin", MiB)
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    run = [sys.executable, "-m", "iolab.doctor"]
    assert subprocess.run([*run, "doctor", str(path)], env=env, capture_output=True).returncode == 1
    assert subprocess.run([*run, "doctor"], env=env, capture_output=True).returncode == 2
    r = subprocess.run([*run, "explain", "hdparm -t /dev/sda"], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and "[hdparm-read]" in r.stdout


# ------------------------------------------------------------------------------------ doctor -- COMMAND


def test_doctor_command_dd(direct_dir: Path) -> None:
    rc, doc = run_json("--", "dd", "if=/dev/zero", f"of={direct_dir / 'x'}", "bs=1M", "count=100")
    assert rc == 1
    found = {f["code"] for f in doc["findings"]}
    assert {"IOL-CACHE-001", "IOL-SYNC-001", "IOL-RAMP-001", "IOL-TIME-001"} <= found
    rc, doc = run_json(
        "--", "dd", "if=/dev/zero", f"of={direct_dir / 'x'}", "bs=1M", "count=100", "oflag=direct"
    )
    found = {f["code"] for f in doc["findings"]}
    assert "IOL-CACHE-001" not in found and "IOL-SYNC-001" not in found


def test_doctor_command_dd_to_a_mounted_device_is_refused(direct_dir: Path) -> None:
    image = sparse(direct_dir / "fs.img", 64 * MiB)
    mkfs_ext4(image)
    with attached(image) as dev, mounted(dev, direct_dir / "mnt"):
        rc, doc = run_json("--", "dd", "if=/dev/urandom", f"of={dev}", "bs=1M", "count=1")
        assert rc == 1
        assert "IOL-SAFE-001" in {f["code"] for f in doc["findings"] if f["severity"] == "error"}


# ------------------------------------------------------------------------------------------------ explain


def test_dd_numbers() -> None:
    assert dd_number("1M") == 1 << 20
    assert dd_number("1MB") == 10**6
    assert dd_number("2x512") == 1024
    assert dd_number("4k") == 4096
    with pytest.raises(ExplainError):
        dd_number("1Q")


def test_explain_dd_write(direct_dir: Path) -> None:
    target = direct_dir / "x"
    text = explain(f"dd if=/dev/zero of={target} bs=1M count=1000")
    assert "What it measures:" in text and "Why that misleads:" in text
    assert "zeros" in text and "page cache" in text and "one request" in text
    e = translate(f"dd if=/dev/zero of={target} bs=1M count=1000")
    assert e.as_is[0].values["size"] == 1000 * MiB and e.as_is[0].values["zero_buffers"] is True
    job = direct_dir / "dd.fio"
    job.write_text(e.jobfile())
    jobs = load_jobfile(str(job))
    assert len(jobs) == 1
    v = jobs[0].values
    assert v["rw"] == "write" and v["direct"] and v["size"] == 1000 * MiB and v["end_fsync"]
    # the equivalent job is an honest one: the pre-run checks find nothing in it
    assert codes(pre_run(jobs)) == []


def test_translated_command_is_a_parsed_job_with_no_place(direct_dir: Path) -> None:
    target = direct_dir / "a:b"  # fio's ':' separates files: it is escaped for the parser
    e = translate(f"dd if=/dev/zero of={target} bs=4k count=1 oflag=direct")
    v = e.as_is[0].values
    assert v["filename"] == [str(target)] and v["bs"] == (4096, 4096) and v["direct"] and v["size"] == 4096
    found = pre_run(e.as_is)
    assert found and all(f.fix.startswith("[dd-write] ") for f in found)  # written nowhere: no file:line


def test_explain_dd_read_and_sync_flags(direct_dir: Path) -> None:
    src = write_random(direct_dir / "in.bin", MiB)
    e = translate(f"dd if={src} of=/dev/null bs=64k iflag=direct")
    assert [j.name for j in e.as_is] == ["dd-read"] and e.as_is[0].values["direct"] is True
    e = translate(f"dd if=/dev/urandom of={direct_dir / 'o'} bs=4k count=10 oflag=dsync")
    assert any("urandom" in m for m in e.misleading)
    assert any("latency of one synchronous write" in m for m in e.measures)


def test_explain_cp(direct_dir: Path) -> None:
    src = write_random(direct_dir / "src.bin", 2 * MiB)
    e = translate(f"cp {src} {direct_dir / 'dst.bin'}")
    text = e.render()
    assert ("fsync" in text and "reflink" not in text.lower()) or "share extents" in text
    assert "[cp-read]" in text and "[cp-write]" in text and "size=2M" in text


def test_explain_scp(direct_dir: Path) -> None:
    src = write_random(direct_dir / "up.bin", MiB)
    text = explain(["scp", "-P", "2222", str(src), "host:/tmp/"])
    assert "cipher" in text and "network" in text and "[scp-local-read]" in text


def test_explain_hdparm() -> None:
    text = explain("sudo hdparm -tT /dev/sda")
    assert "-T" in text and "memory" in text and "[hdparm-read]" in text and "bs=2M" in text
    with pytest.raises(ExplainError):
        translate("hdparm -I /dev/sda")


def test_explain_fio_command_line(direct_dir: Path) -> None:
    data = write_random(direct_dir / "d.bin", 8 * MiB)
    cmd = (
        f"fio --name=t --filename={data} --rw=randread --bs=4k --iodepth=32 --numjobs=2 --runtime=5 "
        "--time_based"
    )
    e = translate(cmd)
    assert any("IOL-ENGINE-001" in m for m in e.misleading)
    text = e.jobfile()
    assert (
        "iodepth=1" in text and "direct=1" in text and "ramp_time=5s" in text and "offset_increment=" in text
    )
    job = direct_dir / "fixed.fio"
    job.write_text(text)
    assert codes(pre_run(load_jobfile(str(job)))) == []


def test_explain_main_exit_status_and_json() -> None:
    out = io.StringIO()
    assert explain_main(["--output-format=json", "dd if=/dev/zero of=/tmp/x bs=1M count=1"], out) == 0
    doc = json.loads(out.getvalue())
    assert doc["tool"] == "dd" and "[dd-write]" in doc["jobfile"]
    assert explain_main(["ls -l"], io.StringIO()) == 2
    assert explain_main([], io.StringIO()) == 2
    assert main(["explain", "cp", "/etc/hostname", "/tmp/y"]) == 0


# -------------------------------------------------------------------------------------------- --run


def test_run_dd_buffered_is_caught_absorbed_by_cache(direct_dir: Path) -> None:
    image = sparse(direct_dir / "fs.img", 128 * MiB)
    mkfs_ext4(image)
    with attached(image, "--direct-io=on") as dev, mounted(dev, direct_dir / "mnt") as mnt:
        rc, doc = run_json("--run", "--", "dd", "if=/dev/urandom", f"of={mnt / 'x'}", "bs=1M", "count=32")
        assert rc == 1
        check = doc["device_check"]
        assert check["verdict"].startswith("absorbed by cache")
        assert check["devices"][0]["device"] == os.path.basename(dev)
        assert check["issued"]["write_bytes"] == 32 * MiB
        assert "IOL-LIE-002" in {f["code"] for f in doc["findings"]}
        # with the flush inside the command, the device sees the data
        rc, doc = run_json(
            "--run", "--", "dd", "if=/dev/urandom", f"of={mnt / 'y'}", "bs=1M", "count=32", "conv=fdatasync"
        )
        codes_seen = {f["code"] for f in doc["findings"]}
        assert "IOL-LIE-002" not in codes_seen and "IOL-SYNC-001" not in codes_seen
        assert doc["device_check"]["devices"][0]["observed"]["write_bytes"] >= 32 * MiB


def test_run_refused_by_the_safety_gate_does_not_run(direct_dir: Path) -> None:
    image = sparse(direct_dir / "fs.img", 64 * MiB)
    mkfs_ext4(image)
    with attached(image) as dev:
        rc, text = run_doctor("--run", "--", "dd", "if=/dev/zero", f"of={dev}", "bs=1M", "count=1")
        assert rc == 1 and "Not run: the safety gate refused it." in text
        from iolab.doctor import read_signatures

        assert [s.name for s in read_signatures(dev)] == ["ext4"], "the device was not written"


def test_run_needs_a_command() -> None:
    assert run_doctor("--run", "/tmp")[0] == 2


def test_parser_errors_are_usage_errors(direct_dir: Path) -> None:
    assert explain_main(["fio --name=x --rw=bogus"], io.StringIO()) == 2
    job = direct_dir / "broken.fio"
    job.write_text("[j]\nrw=bogus\n")
    assert run_doctor(str(job))[0] == 2
