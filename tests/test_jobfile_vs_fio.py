"""Side by side with the real fio 3.33: accept/reject, parsed numbers, and --showcmd output."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from iolab.jobfile import JobFileError, parse_cli, parse_text, showcmd

pytestmark = pytest.mark.skipif(shutil.which("fio") is None, reason="fio is not installed")

EXAMPLES = Path("/usr/share/doc/fio/examples")


def fio_parse(tmp_path: Path, text: str, *args: str) -> subprocess.CompletedProcess[str]:
    job = tmp_path / "job.fio"
    job.write_text(text)
    return subprocess.run(
        ["fio", "--parse-only", "--debug=parse", *args, str(job)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "IOLAB_T": "8k"},
    )


def fio_outs(proc: subprocess.CompletedProcess[str], option: str) -> list[tuple[int, int]]:
    """(ret, out) of every part fio read for ``option``."""
    outs: list[tuple[int, int]] = []
    current = None
    for line in proc.stdout.splitlines():
        m = re.search(r" handle_option=([^,]+), ptr=", line)
        if m and "__handle_option" not in line:
            current = m.group(1)
            continue
        m = re.search(r"ret=(\d+), out=(-?\d+)", line)
        if m and current == option:
            outs.append((int(m.group(1)), int(m.group(2))))
    return outs


def ours_ok(text: str) -> bool:
    try:
        parse_text(text, env={"IOLAB_T": "8k"}, fio_only=True)
    except JobFileError:
        return False
    return True


# Lines whose acceptance must match fio --parse-only exactly.
SAME_VERDICT = [
    "size=4k",
    "size=1.5m",
    "size=4KiB",
    "size= 4k",
    "size=0x10k",
    "size=1e3",
    "size=k",
    "size=-4k",
    "size=50%",
    "size=(1+1)",
    "size=",
    "size",
    "size=4k,8k",
    "size=1k-4k",
    "bs=4k",
    "bs=4k,8k",
    "bs=4k-8k",
    "bs=,8k",
    "bs=8k,",
    "bs=4q",
    "bs=10z",
    "bs=0",
    "bs=k,4k",
    "blocksize=16k",
    "bs=4k:8k:16k",
    "ba=4k",
    "runtime=10",
    "runtime=10m",
    "runtime=10min",
    "runtime=10sec",
    "runtime=1.5s",
    "runtime=0x10",
    "runtime=abc",
    "runtime=",
    "timeout=5",
    "ramp_time=2s",
    "startdelay=1-3",
    "runtime=10 s",
    "direct=1",
    "direct=0",
    "direct=true",
    "direct=yes",
    "direct=2",
    "direct=1abc",
    "direct=-1",
    "direct",
    "buffered=0",
    "time_based",
    "time_based=0",
    "time_based=5",
    "time_based=yes",
    "rw=read",
    "rw=randread:8",
    "rw=read:4k",
    "rw=Read",
    "rw=reads",
    "rw=read,write",
    "rw=randtrimwrite",
    "readwrite=randrw",
    "rw = read",
    "rw",
    "rw=",
    "iodepth=0",
    "iodepth=4k",
    "iodepth=3.7",
    "iodepth=8,16",
    "iodepth=-1",
    "iodepth=,4",
    "rwmixread=130",
    "rwmixread=30",
    "rwmixwrite=20",
    "rwmixread=30-40",
    "percentile_list=99.9:99.99",
    "percentile_list=99:",
    "percentile_list=abc",
    "percentile_list=101",
    "percentile_list=1:2:3:4:5:6:7:8:9:10:11:12:13:14:15:16:17:18:19:20:21",
    "bsrange=4k",
    "bsrange=1k-4k",
    "bsrange=8k-1k,2k:4k",
    "blocksize_range=1k-4k,",
    "bssplit=4k/10:64k/50:32k/40,4k/100",
    "bssplit=4k/50:8k/70:16k",
    "bssplit=4k/60:8k/60:1k:2k",
    "bssplit=4k",
    "bssplit=abc/10",
    "bssplit=",
    "filename=/tmp/a\\:b:/tmp/c",
    "filename=",
    "filename",
    "directory=/tmp",
    "name=x",
    "description=hello world",
    "nrfiles=4",
    "numjobs=2",
    "loops=3",
    "fsync=8",
    "fdatasync=1",
    "kb_base=1000",
    "kb_base=1024",
    "kb_base=1001",
    "unit_base=8",
    "unit_base=2",
    "ioengine=psync",
    "ioengine=sync",
    "group_reporting",
    "stonewall",
    "wait_for_previous",
    "new_group",
    "thread",
    "exitall",
    "randrepeat=0",
    "randseed=1234",
    "norandommap",
    "zero_buffers",
    "refill_buffers",
    "end_fsync=1",
    "create_on_open=1",
    "unlink=1",
    "lat_percentiles=1",
    "clat_percentiles=0",
    "offset=10%",
    "offset=4k",
    "offset_increment=1m",
    "io_size=1g",
    "io_limit=50%",
    "number_ios=100",
    "invalidate=0",
    "iodepth_batch=4",
    "iodepth_batch_complete=2",
    "file_service_type=random:4",
    "file_service_type=bogus",
    "random_distribution=zipf:1.2",
    "write_bw_log=foo",
    "write_bw_log",
    "write_lat_log",
    "exit_what=all",
    "thinktime=10",
    "nice=-5",
    "nice=-21",
    "mem=malloc",
    "verify=crc32c",
    "sync=dsync",
    "fallocate=none",
    "threads=1",
    "rwmixcycle=5",
    "verifysort=1",
    "foo=1",
    "readonly=1",
    "bsz=4k",
    "${IOLAB_T}",
    "bs=${IOLAB_T}",
    "bs=${IOLAB_UNSET}",
    "bs=$IOLAB_T",
    "size=$pagesize",
    "size=2*$pagesize",
    "sync_file_range=wait_before,write:8",
    "sync_file_range=nope",
    "cpus_allowed=0-1",
    "steadystate=iops:5%",
]


@pytest.mark.parametrize("line", SAME_VERDICT)
def test_same_verdict_as_fio(tmp_path: Path, line: str) -> None:
    text = f"[j]\n{line}\n"
    proc = fio_parse(tmp_path, text)
    assert ours_ok(text) == (proc.returncode == 0), proc.stdout[-2000:] + proc.stderr[-2000:]


# Where iolab deliberately refuses what fio 3.33 silently accepts.
DELIBERATE = {
    "size=150%": "fio takes it as 18446744073709551465 bytes",
    "size=10z": "zone units (zonemode) are not supported",
    "ioengine=pvsync2": "iolab runs psync, libaio, io_uring, mmap and libpmem only",
    "ioengine=bogus": "fio fails only when the job starts",
}


@pytest.mark.parametrize("line", sorted(DELIBERATE))
def test_deliberate_differences(tmp_path: Path, line: str) -> None:
    text = f"[j]\n{line}\n"
    assert fio_parse(tmp_path, text).returncode == 0
    assert not ours_ok(text)


NUMBERS = [
    ("size", "4k"),
    ("size", "1.5m"),
    ("size", "4KiB"),
    ("size", " 4k"),
    ("size", "0x10k"),
    ("size", "1e3"),
    ("size", "4Kb"),
    ("size", "1g"),
    ("size", "4ki"),
    ("size", "4mi"),
    ("size", "+4k"),
    ("size", "4k5"),
    ("size", "4 k"),
    ("size", "4B"),
    ("size", "2t"),
    ("runtime", "10"),
    ("runtime", "10m"),
    ("runtime", "10min"),
    ("runtime", "10sec"),
    ("runtime", "10s"),
    ("runtime", "10msec"),
    ("runtime", "1.5s"),
    ("runtime", "10M"),
    ("runtime", "10 s"),
    ("runtime", "0x10"),
    ("runtime", "2h"),
    ("runtime", "1d"),
    ("runtime", "250ms"),
    ("runtime", "100us"),
    ("runtime", "100usec"),
    ("runtime", " 10ms"),
    ("ramp_time", "5"),
    ("thinktime", "10"),
    ("thinktime", "10ms"),
    ("iodepth", "4k"),
    ("iodepth", "3.7"),
    ("nrfiles", "2k"),
]


@pytest.mark.parametrize(("option", "value"), NUMBERS)
def test_numbers_match_fio(tmp_path: Path, option: str, value: str) -> None:
    proc = fio_parse(tmp_path, f"[j]\n{option}={value}\n")
    outs = fio_outs(proc, option)
    assert outs and outs[0][0] == 0
    fio_value = outs[0][1]
    job = parse_text(f"[j]\n{option}={value}\n", fio_only=True)[0]
    ours = job.values[option]
    if option in ("runtime", "ramp_time", "thinktime"):
        assert ours == fio_value * 1000  # fio reads times in microseconds, iolab keeps ns
    else:
        assert ours == fio_value


@pytest.mark.parametrize(
    ("value", "read", "write"),
    [
        ("4k,8k", 4096, 8192),
        ("4k-8k", 4096, 8192),
        ("4k:8k", 4096, 8192),
        (",8k", 4096, 8192),
        ("8k,", 8192, 4096),
        ("16k", 16384, 16384),
        ("4k,garbage", 4096, 4096),
        ("4q", 4, 4),
    ],
)
def test_bs_pairs_match_fio(tmp_path: Path, value: str, read: int, write: int) -> None:
    proc = fio_parse(tmp_path, f"[j]\nbs={value}\n")
    assert proc.returncode == 0
    outs = [o for r, o in fio_outs(proc, "bs") if r == 0]
    assert outs[0] in (read, write)
    assert parse_text(f"[j]\nbs={value}\n", fio_only=True)[0].values["bs"] == (read, write)


def test_kb_base_applies_first_in_section(tmp_path: Path) -> None:
    text = "[j]\nsize=4k\nkb_base=1000\nbs=4KiB\n"
    proc = fio_parse(tmp_path, text)
    assert fio_outs(proc, "size")[0][1] == 4000
    assert fio_outs(proc, "bs")[0][1] == 4096
    v = parse_text(text, fio_only=True)[0].values
    assert v["size"] == 4000 and v["bs"] == (4096, 4096)


def test_global_prefix_sections(tmp_path: Path) -> None:
    text = "[global]\nioengine=null\nsize=64k\n[j1]\n[globalzz]\nbs=8k\n[j2]\n"
    out = subprocess.run(
        ["fio", "--output-format=json", "-"],
        input=text,
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout
    import json

    ios = {j["jobname"]: j["read"]["total_ios"] for j in json.loads(out)["jobs"]}
    assert ios == {"j1": 16, "j2": 8}
    jobs = parse_text(text.replace("ioengine=null\n", ""), fio_only=True)
    assert [j.name for j in jobs] == ["j1", "j2"]
    assert [j.values["bs"][0] for j in jobs] == [4096, 8192]


def _fio_showcmd(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    return subprocess.run(
        ["fio", "--showcmd", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    ).stdout


SHOWCMD_TEXTS = [
    "; c\n[global]\nrw=randread\nsize=128m\ndescription=hello world\ntime_based\nkb_base=1000\n"
    "[job1]\nbs=4k ; inline\nfilename=/tmp/a\\:b:/tmp/c\n[globalx]\niodepth=4\n[job2]\n",
    "[j#x]\nfilename=/tmp/a#b\ndescription=hello ; world\n  bs = 4k  \n\t rw=read\n[ k2 ]\n"
    "[k3] trailing\n[k4\n",
    "[]\nbs=4k\n[a]\nbs=8k\n",
    "[a]\nblocksize=4k\nreadwrite=read\ntimeout=5\nwait_for_previous\nbs=${IOLAB_T}\n",
]


@pytest.mark.parametrize("text", SHOWCMD_TEXTS)
def test_showcmd_matches_fio(tmp_path: Path, text: str) -> None:
    f = tmp_path / "s.fio"
    f.write_text(text)
    env = {"IOLAB_T": "8k"}
    assert showcmd([str(f)], env=env) == _fio_showcmd(str(f), env=env)


def test_showcmd_several_files(tmp_path: Path) -> None:
    a = tmp_path / "a.fio"
    b = tmp_path / "b.fio"
    a.write_text("[a]\nbs=4k\n[b]\nbs=8k\n")
    b.write_text("[global]\nrw=read\n[c]\nbs=8k\n")
    assert showcmd([str(a), str(b)]) == _fio_showcmd(str(a), str(b))


@pytest.mark.skipif(not EXAMPLES.is_dir(), reason="fio-examples (Debian) is not installed")
def test_showcmd_examples_match_fio() -> None:
    env = {"FIO_BS": "4k", "FIO_RW": "read", "FIO_IODEPTH": "1", "FIO_DIR": "/tmp"}
    compared = 0
    for f in sorted(EXAMPLES.glob("*.fio")):
        proc = subprocess.run(
            ["fio", "--showcmd", str(f)],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, **env},
        )
        if proc.returncode != 0:  # engines not built into this fio, or values it refuses
            continue
        assert showcmd([str(f)], env=env) == proc.stdout, f.name
        compared += 1
    assert compared > 50


def test_cli_globals_reach_first_file_only(tmp_path: Path) -> None:
    f1 = tmp_path / "f1.fio"
    f2 = tmp_path / "f2.fio"
    f1.write_text("[global]\nbs=8k\nioengine=null\nsize=64k\n[a]\n")
    f2.write_text("[b]\nioengine=null\nsize=64k\n")
    out = subprocess.run(
        [
            "fio",
            "--output-format=json",
            "--bs=16k",
            "--name=c",
            "--ioengine=null",
            "--size=64k",
            str(f1),
            str(f2),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout
    import json

    jobs = {j["jobname"]: (j["read"]["total_ios"], j["groupid"]) for j in json.loads(out)["jobs"]}
    assert jobs == {"c": (4, 0), "a": (8, 0), "b": (16, 1)}
    for p in (f1, f2):
        p.write_text(p.read_text().replace("ioengine=null\n", ""))
    res = parse_cli(["--bs=16k", "--name=c", "--size=64k", str(f1), str(f2)], env={}, fio_only=True)
    got = {j.name: (j.values["bs"][0], bool(j.values["stonewall"])) for j in res.jobs}
    assert got == {"c": (16384, False), "a": (8192, False), "b": (4096, True)}
    assert [j.index for j in res.jobs] == [0, 1, 2]
