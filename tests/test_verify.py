"""verify=: blocks written with fio's header and checksum, read back through the same engine and checked.

Real files (O_DIRECT and buffered), the three engines, corruption injected with dd at a known offset, a
hot-added zram device, and fio 3.33 on the same files: fio checks the blocks iolab wrote and the other
way round, and both read back the same bytes in the same number of reads.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import need
from iolab.plan.verify import VerifyError, parse_verify_pattern
from nbd_helpers import clean_env
from test_safety_corpus import hot_zram

IOLAB = [sys.executable, "-m", "iolab"]
ENGINES = ("psync", "libaio", "io_uring")
SIZE = 1 << 20
BS = 4096


def iolab_run(*args: str, cwd: Path | None = None) -> tuple[int, dict[str, Any] | None, str]:
    proc = subprocess.run(
        [*IOLAB, "run", *args, "--output-format=json"], capture_output=True, text=True, timeout=120, cwd=cwd
    )
    doc = json.loads(proc.stdout) if proc.stdout.strip() else None
    return proc.returncode, doc, proc.stderr


def job_args(target: Path | str, *extra: str, rw: str = "write", size: int = SIZE) -> list[str]:
    return ["--name=v", f"--filename={target}", f"--size={size}", f"--rw={rw}", f"--bs={BS}", *extra]


def verify_of(doc: dict[str, Any] | None) -> dict[str, Any]:
    assert doc is not None
    v: dict[str, Any] = doc["jobs"][0]["iolab"]["verify"]
    return v


def corrupt(target: Path | str, offset: int, data: bytes = b"XXXX") -> None:
    """dd conv=notrunc: a few bytes overwritten in place, as a device would return them."""
    subprocess.run(
        ["dd", f"of={target}", "bs=1", f"seek={offset}", "conv=notrunc,fsync", "status=none"],
        input=data,
        check=True,
        env=clean_env(),  # dd is not iolab: without the sanitizer preload of `make test-sanitize`
    )


def need_fio() -> str:
    fio = shutil.which("fio")
    need(fio is not None, "fio is not installed")
    assert fio is not None
    return fio


# ------------------------------------------------------------------------------------ write, read back
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("direct", ["0", "1"])
@pytest.mark.parametrize("rw", ["write", "randwrite"])
def test_write_then_verify_reads_every_block_back(
    direct_dir: Path, engine: str, direct: str, rw: str
) -> None:
    target = direct_dir / "v.dat"
    rc, doc, err = iolab_run(
        *job_args(
            target, "--verify=crc32c", f"--ioengine={engine}", f"--direct={direct}", "--iodepth=8", rw=rw
        )
    )
    assert rc == 0, err
    assert doc is not None
    job = doc["jobs"][0]
    assert job["error"] == 0
    v = verify_of(doc)
    assert (v["written"], v["reads"], v["bytes"], v["failures"]) == (SIZE // BS, SIZE // BS, SIZE, 0)
    # as fio, the verify reads are the job's reads, and the verify phase is their runtime
    assert (job["read"]["io_bytes"], job["read"]["total_ios"]) == (SIZE, SIZE // BS)
    assert job["read"]["runtime"] >= 1 and job["write"]["runtime"] >= 1
    assert abs(job["read"]["runtime"] + job["write"]["runtime"] - job["job_runtime"]) <= 2
    # fio's header at every block: magic 0xacca, type 5 (crc32c), length, offset
    data = target.read_bytes()
    for off in (0, BS, SIZE - BS):
        assert data[off : off + 2] == b"\xca\xac" and data[off + 2 : off + 4] == b"\x05\x00"
        assert int.from_bytes(data[off + 4 : off + 8], "little") == BS
        assert int.from_bytes(data[off + 16 : off + 24], "little") == off


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("kind", ["crc32c", "md5"])
def test_corruption_is_caught_at_its_offset(direct_dir: Path, engine: str, kind: str) -> None:
    target = direct_dir / "c.dat"
    rc, _, err = iolab_run(*job_args(target, f"--verify={kind}", "--do_verify=0"))
    assert rc == 0, err
    bad = 5 * BS
    corrupt(target, bad + 100)
    rc, doc, err = iolab_run(
        *job_args(target, f"--verify={kind}", "--verify_only", f"--ioengine={engine}", "--direct=1")
    )
    assert rc != 0
    assert doc is not None and doc["jobs"][0]["error"] == 84  # EILSEQ, as fio
    assert f"{kind}: verify failed at file {target} offset {bad}, length {BS}" in err
    assert "Expected CRC: " in err and "Received CRC: " in err and "corrupted" in err
    v = verify_of(doc)
    assert v["failures"] == 1
    f = v["failed"][0]
    assert (f["file"], f["offset"], f["length"], f["kind"], f["verdict"]) == (
        str(target),
        bad,
        BS,
        "checksum mismatch",
        "corrupted",
    )
    assert f["expected_csum"] != f["received_csum"]
    assert v["reads"] == 6  # the job stops at the bad block (no continue_on_error)


def test_region_never_written_is_told_apart(direct_dir: Path) -> None:
    target = direct_dir / "z.dat"
    with open(target, "wb") as fh:
        fh.truncate(SIZE)
    rc, doc, err = iolab_run(*job_args(target, "--verify=crc32c", "--verify_only"), cwd=direct_dir)
    assert rc != 0
    assert "never written?" in err and "corrupted" not in err
    # fio's verify_state_save leaves a state file at the end of a verify job: iolab says it writes none
    assert "fio writes local-v-0-verify.state into the working directory" in err
    assert not list(direct_dir.glob("*verify.state"))
    quiet = iolab_run(*job_args(target, "--verify=crc32c", "--verify_only", "--verify_state_save=0"))[2]
    assert "never written?" in quiet and "verify_state_save" not in quiet
    f = verify_of(doc)["failed"][0]
    assert (f["offset"], f["kind"], f["verdict"]) == (0, "never written?", "never written")


def test_header_of_another_offset_is_a_bad_offset(direct_dir: Path) -> None:
    """A block that landed at the wrong place (misdirected write): fio's "bad header offset"."""
    target = direct_dir / "m.dat"
    assert iolab_run(*job_args(target, "--verify=md5", "--do_verify=0"))[0] == 0
    data = target.read_bytes()
    corrupt(target, 3 * BS, data[0:BS])  # block 0 copied over block 3
    rc, doc, err = iolab_run(*job_args(target, "--verify=md5", "--verify_only"))
    assert rc != 0
    assert f"verify: bad header offset 0, wanted {3 * BS} at file {target} offset {3 * BS}" in err
    f = verify_of(doc)["failed"][0]
    assert (f["kind"], f["expected"], f["received"], f["verdict"]) == (
        "bad header offset",
        3 * BS,
        0,
        "corrupted",
    )


def test_pattern_mismatch_names_the_byte(direct_dir: Path) -> None:
    target = direct_dir / "p.dat"
    args = ("--verify=pattern", "--verify_pattern=0xdeadbeef")
    assert iolab_run(*job_args(target, *args, "--do_verify=0"))[0] == 0
    assert target.read_bytes()[:8] == bytes.fromhex("deadbeefdeadbeef")  # no header with verify=pattern
    corrupt(target, 2 * BS + 10, b"\x00")
    rc, doc, err = iolab_run(*job_args(target, *args, "--verify_only", "--ioengine=io_uring"))
    assert rc != 0
    assert "fio: got pattern '00', wanted 'be'" in err and "fio: bad pattern block offset 10" in err
    f = verify_of(doc)["failed"][0]
    assert (f["offset"], f["kind"], f["bad_byte"], f["expected"], f["received"]) == (
        2 * BS,
        "pattern mismatch",
        10,
        0xBE,
        0,
    )


def test_verify_fatal_stops_at_the_first_bad_chunk(direct_dir: Path) -> None:
    target = direct_dir / "f.dat"
    args = ("--verify=crc32c", "--verify_interval=1024")
    assert iolab_run(*job_args(target, *args, "--do_verify=0"))[0] == 0
    corrupt(target, 1024 + 500)
    corrupt(target, 3072 + 500)
    _, doc, _ = iolab_run(*job_args(target, *args, "--verify_only"))
    assert [f["offset"] for f in verify_of(doc)["failed"]] == [1024, 3072]  # fio checks the whole block
    _, doc, _ = iolab_run(*job_args(target, *args, "--verify_only", "--verify_fatal=1"))
    assert [f["offset"] for f in verify_of(doc)["failed"]] == [1024]


def test_continue_on_error_verify_reports_every_bad_block(direct_dir: Path) -> None:
    target = direct_dir / "e.dat"
    assert iolab_run(*job_args(target, "--verify=crc32c", "--do_verify=0"))[0] == 0
    for block in (2, 7, 9):
        corrupt(target, block * BS + 64)
    rc, doc, _ = iolab_run(
        *job_args(target, "--verify=crc32c", "--verify_only", "--continue_on_error=verify")
    )
    v = verify_of(doc)
    assert [f["offset"] for f in v["failed"]] == [2 * BS, 7 * BS, 9 * BS]
    assert v["reads"] == SIZE // BS and v["failures"] == 3
    # fio's rule: errors continue_on_error lets pass show as the job's error, the exit status stays 0
    assert rc == 0 and doc is not None and doc["jobs"][0]["error"] == 84


def test_verify_backlog_reads_back_while_writing(direct_dir: Path) -> None:
    target = direct_dir / "b.dat"
    rc, doc, err = iolab_run(
        *job_args(
            target, "--verify=crc32c", "--verify_backlog=16", "--ioengine=libaio", "--iodepth=4", "--direct=1"
        )
    )
    assert rc == 0, err
    v = verify_of(doc)
    assert (v["reads"], v["failures"], v["not_read"]) == (SIZE // BS, 0, 0)


def test_read_job_with_verify_checks_every_read(direct_dir: Path) -> None:
    target = direct_dir / "r.dat"
    assert iolab_run(*job_args(target, "--verify=sha1", "--do_verify=0"))[0] == 0
    rc, doc, err = iolab_run(*job_args(target, "--verify=sha1", rw="randread"))
    assert rc == 0, err
    assert verify_of(doc)["reads"] == SIZE // BS
    corrupt(target, 100 * BS + 700)  # in the data, past the header
    rc, doc, err = iolab_run(*job_args(target, "--verify=sha1", rw="read"))
    assert rc != 0 and f"sha1: verify failed at file {target} offset {100 * BS}" in err


@pytest.mark.parametrize(
    "opt, says",
    [
        ("--verify=crc64", "verify=crc64 is not implemented"),
        ("--verify=sha3-256", "verify=sha3-256 is not implemented"),
        ("--verify=null", "verify=null is not implemented"),
        ("--experimental_verify=1", "experimental_verify"),
        ("--verify_async=2", "verify_async"),
        ("--verify_state_load=1", "verify_state_load"),
        ("--verify_pattern='pattern.bin'", "from a file"),
        ("--verify=pattern", "verify=pattern needs verify_pattern"),
    ],
)
def test_what_is_not_implemented_is_refused(tmp_path: Path, opt: str, says: str) -> None:
    target = tmp_path / "n.dat"
    extra = () if opt.startswith("--verify=") else ("--verify=crc32c",)
    rc, doc, err = iolab_run(*job_args(target, *extra, opt))
    assert rc != 0 and doc is None
    assert says in err and "Traceback" not in err
    assert not target.exists()  # refused before anything was written


def test_mixed_and_time_based_writers_are_refused(tmp_path: Path) -> None:
    for extra in (
        ("--rw=randrw",),
        ("--time_based", "--runtime=1"),
        ("--loops=2",),
        ("--io_size=2M",),
        ("--rw=trimwrite",),
    ):
        rc, _, err = iolab_run(*job_args(tmp_path / "t.dat", "--verify=md5"), *extra)
        assert rc != 0 and "verify" in err and "not implemented" in err


@pytest.mark.parametrize(
    "extra, says",
    [
        (("--verify=sha512", "--verify_interval=128"), "the 168-byte header does not fit in 128-byte chunks"),
        (("--verify=crc32c", "--verify_offset=4090"), "verify_offset=4090: the 44-byte header does not fit"),
    ],
)
def test_header_that_cannot_fit_is_refused_before_any_io(
    tmp_path: Path, extra: tuple[str, ...], says: str
) -> None:
    target = tmp_path / "h.dat"
    rc, doc, err = iolab_run(*job_args(target, *extra))
    assert rc != 0 and doc is None and says in err
    assert not target.exists()


def test_pattern_syntax_as_fio() -> None:
    assert parse_verify_pattern("0xff") == (b"\xff", [])
    assert parse_verify_pattern("0xabc") == (b"\x0a\xbc", [])  # an odd digit count: the first alone
    assert parse_verify_pattern("-12") == (b"\xf4\xff\xff\xff", [])
    assert parse_verify_pattern("1234") == (b"\xd2\x04", [])
    assert parse_verify_pattern("0xff0x14") == (b"\xff\x14", [])
    assert parse_verify_pattern('0xff%o"abcd"-12') == (b"\xff" + bytes(8) + b"abcd\xf4\xff\xff\xff", [1])
    for bad in ("", "'file'", "%x", '"open', "0x" + "00" * 513, "4294967296"):
        with pytest.raises(VerifyError):
            parse_verify_pattern(bad)


# ------------------------------------------------------------------------------------------ zram
def test_zram_written_verified_then_corruption_caught() -> None:
    with hot_zram("64M") as dev:
        args = [
            "--name=z",
            f"--filename={dev}",
            "--size=16M",
            "--rw=randwrite",
            "--bs=64k",
            "--direct=1",
            "--ioengine=io_uring",
            "--iodepth=16",
            "--verify=crc32c",
            f"--allow-destroy={dev}",
        ]
        rc, doc, err = iolab_run(*args)
        assert rc == 0, err
        v = verify_of(doc)
        assert (v["reads"], v["failures"]) == (256, 0)
        bad = 77 * 65536
        corrupt(dev, bad + 4000)
        rc, doc, err = iolab_run(*args, "--verify_only")
        assert rc != 0
        assert f"crc32c: verify failed at file {dev} offset {bad}, length 65536" in err
        f = verify_of(doc)["failed"][0]
        assert (f["file"], f["offset"], f["kind"]) == (dev, bad, "checksum mismatch")


# ------------------------------------------------------------------------------------------- vs fio
@pytest.mark.parametrize("kind", ["crc32c", "md5", "sha256", "pattern"])
def test_fio_checks_what_iolab_wrote_and_the_other_way_round(direct_dir: Path, kind: str) -> None:
    fio = need_fio()
    extra = [f"--verify={kind}"] + (["--verify_pattern=0x1f2e%o"] if kind == "pattern" else [])
    ours, theirs = direct_dir / "ours.dat", direct_dir / "theirs.dat"
    assert iolab_run(*job_args(ours, *extra, "--do_verify=0"))[0] == 0
    fio_args = [f"--size={SIZE}", "--rw=write", f"--bs={BS}", *extra, "--output-format=json"]
    r = subprocess.run(
        [fio, "--name=v", f"--filename={ours}", *fio_args, "--verify_only"],
        capture_output=True,
        text=True,
        cwd=direct_dir,  # fio's verify state file lands here when it fails
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["jobs"][0]["read"]["io_bytes"] == SIZE
    subprocess.run(
        [fio, "--name=v", f"--filename={theirs}", *fio_args, "--do_verify=0"],
        check=True,
        capture_output=True,
        cwd=direct_dir,
    )
    rc, doc, err = iolab_run(*job_args(theirs, *extra, "--verify_only"))
    assert rc == 0, err
    assert verify_of(doc)["bytes"] == SIZE
    # and fio sees our corruption where we do
    corrupt(ours, 9 * BS + 300)
    r = subprocess.run(
        [fio, "--name=v", f"--filename={ours}", *fio_args, "--verify_only"],
        capture_output=True,
        text=True,
        cwd=direct_dir,  # fio's verify state file lands here when it fails
    )
    assert r.returncode != 0
    if kind == "pattern":  # fio names the block (its header-less message says "length 0")
        assert "bad pattern block offset 300" in r.stderr and f"requested block: offset={9 * BS}" in r.stderr
    else:
        assert f"offset {9 * BS}, length {BS}" in r.stderr


@pytest.mark.parametrize(
    "extra",
    [
        ("--rw=write",),
        ("--rw=randwrite", "--ioengine=libaio", "--iodepth=8", "--direct=1"),
        ("--rw=write", "--verify_backlog=32"),
        ("--rw=randwrite", "--verify_backlog=10", "--verify_backlog_batch=4"),
        ("--rw=write", "--verify_interval=1k", "--ioengine=io_uring", "--iodepth=16"),
    ],
)
def test_verify_reads_as_fio(direct_dir: Path, extra: tuple[str, ...]) -> None:
    """The same job in both tools: the bytes read back and the number of verify reads agree."""
    fio = need_fio()
    common = ["--name=v", "--size=2M", "--bs=4k", "--verify=crc32c", *extra]
    r = subprocess.run(
        [fio, f"--filename={direct_dir / 'f.dat'}", *common, "--output-format=json"],
        capture_output=True,
        text=True,
        check=True,
        cwd=direct_dir,
    )
    fjob = json.loads(r.stdout)["jobs"][0]
    rc, doc, err = iolab_run(f"--filename={direct_dir / 'i.dat'}", *common)
    assert rc == 0, err
    assert doc is not None
    ijob = doc["jobs"][0]
    assert (ijob["error"], fjob["error"]) == (0, 0)
    for key in ("io_bytes", "total_ios"):
        assert ijob["read"][key] == fjob["read"][key], key
        assert ijob["write"][key] == fjob["write"][key], key
    assert verify_of(doc)["reads"] == fjob["read"]["total_ios"]


def test_readme_documents_verify() -> None:
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "## Verify" in text and "iolab.verify" in text
    diff = (Path(__file__).resolve().parents[1] / "docs" / "fio-differences.md").read_text()
    assert "verify_state_save" in diff


def test_verify_dump_writes_the_bad_chunks_and_never_overwrites(direct_dir: Path, tmp_path: Path) -> None:
    target = direct_dir / "d.dat"
    assert iolab_run(*job_args(target, "--verify=md5", "--do_verify=0"))[0] == 0
    corrupt(target, 4 * BS + 300)
    corrupt(target, 6 * BS + 8)  # in the header
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    precious = workdir / "d.dat.16384.expected"
    precious.symlink_to(tmp_path / "precious")  # a symlink where the dump would go: never followed
    (tmp_path / "precious").write_bytes(b"keep")
    proc = subprocess.run(
        [*IOLAB, "run", *job_args(target, "--verify=md5", "--verify_only", "--verify_dump=1",
                                  "--continue_on_error=verify"), "--output-format=json"],
        capture_output=True, text=True, timeout=120, cwd=workdir,
    )  # fmt: skip
    received = workdir / "d.dat.16384.received"
    assert f"received data dumped as {received}" in proc.stderr
    assert "expected data not dumped" in proc.stderr
    assert (tmp_path / "precious").read_bytes() == b"keep"
    got = received.read_bytes()
    assert len(got) == BS and got[300:304] == b"XXXX"
    assert (workdir / "d.dat.24576.hdr_fail").read_bytes()[8:12] == b"XXXX"
    failed = json.loads(proc.stdout)["jobs"][0]["iolab"]["verify"]["failed"]
    assert failed[0]["dumped"] == [str(received)]
    assert failed[1]["dumped"] == [str(workdir / "d.dat.24576.hdr_fail")]
    precious.unlink()
    proc = subprocess.run(
        [*IOLAB, "run", *job_args(target, "--verify=md5", "--verify_only", "--verify_dump=1"),
         "--output-format=json"], capture_output=True, text=True, timeout=120, cwd=workdir,
    )  # fmt: skip
    # the block as written, regenerated from its header: the same bytes but the four dd wrote
    expected = (workdir / "d.dat.16384.expected").read_bytes()
    assert sum(a != b for a, b in zip(got, expected, strict=True)) == 4
    assert "received data not dumped" in proc.stderr  # the first run's file stays as it was


# ------------------------------------------------------------------------------ the read-back order
@pytest.mark.parametrize("random, norandommap, passes", [(0, 0, 2), (1, 0, 1), (1, 1, 3)])
def test_read_back_order_is_fios_io_piece_log(
    direct_dir: Path, random: int, norandommap: int, passes: int
) -> None:
    """Sequential and norandommap jobs read back by offset, a later write replacing an earlier one at the
    same place; a random job with a random map reads back in write order (fio's list)."""
    from test_core import make_config, run_job

    nblocks = 32
    path = direct_dir / "o.dat"
    path.write_bytes(bytes(nblocks * BS))
    fd = os.open(path, os.O_RDWR)
    try:
        cfg = make_config(
            ddir_mask=2, random=random, norandommap=norandommap, io_size=passes * nblocks * BS,
            io_size_set=int(passes > 1), verify=5, verify_flags=1 | 8, verify_interval=BS,
        )  # fmt: skip
        raw, trace = run_job(cfg, [(fd, 0, nblocks * BS)], trace=4 * passes * nblocks)
    finally:
        os.close(fd)
    assert raw["error"] == 0 and raw["verify"]["failures"] == 0
    writes = [r[0] for r in trace if r[3] == 1]
    reads = [r[0] for r in trace if r[3] == 0]
    assert len(writes) == passes * nblocks
    if random and not norandommap:
        assert reads == writes
    else:
        assert reads == sorted(set(writes))


def test_group_reporting_sums_the_clones(direct_dir: Path) -> None:
    rc, doc, err = iolab_run(
        "--name=g", f"--directory={direct_dir}", "--numjobs=2", "--group_reporting", "--size=256k",
        "--rw=write", f"--bs={BS}", "--verify=crc32c",
    )  # fmt: skip
    assert rc == 0, err
    assert doc is not None and len(doc["jobs"]) == 1
    v = verify_of(doc)
    assert (v["written"], v["reads"], v["bytes"]) == (128, 128, 2 * 256 * 1024)


# ------------------------------------------------------------------------- stale blocks: the seed check
# Job a writes 16 blocks slowly (thinktime) and reads them back; job b, started a second later, writes
# block 0 again with another seed: a valid block, its header of the same offset and write number, as a
# lost write leaves an earlier run's block (of another randseed). Only the header's seed tells them apart.
STALE_JOB = """[global]
filename={target}
bs=4k
verify=crc32c
verify_state_save=0
[a]
rw={rw}
size=64k
thinktime=200ms
[b]
rw={rw}
size=4k
startdelay=1
do_verify=0
randseed=2
"""


def stale_job(tmp_path: Path, rw: str) -> Path:
    job = tmp_path / f"stale-{rw.split()[0].replace('=', '')}.fio"
    job.write_text(STALE_JOB.format(target=tmp_path / "stale.dat", rw=rw))
    return job


def test_valid_block_of_another_seed_is_caught_as_fio_with_its_seed_check(tmp_path: Path) -> None:
    rc, doc, err = iolab_run(str(stale_job(tmp_path, "write")))
    assert doc is not None, err
    a = doc["jobs"][0]
    assert a["error"] == 84 and rc != 0
    (bad,) = a["iolab"]["verify"]["failed"]
    assert (bad["offset"], bad["kind"], bad["verdict"]) == (0, "bad header rand_seed", "corrupted")
    assert bad["expected"] != bad["received"]
    assert f"verify: bad header rand_seed {bad['received']}, wanted {bad['expected']} at file" in err
    # fio makes this check for jobs that read and write (rw=rw; with rwmixwrite=100 it writes as rw=write
    # does): the same block, the same kind of failure
    fio = need_fio()
    (tmp_path / "stale.dat").unlink()
    r = subprocess.run(
        [fio, str(stale_job(tmp_path, "rw\nrwmixwrite=100")), "--output-format=json"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    theirs = [ln for ln in r.stderr.splitlines() if ln.startswith("verify:")]
    assert len(theirs) == 1 and theirs[0].startswith("verify: bad header rand_seed "), r.stderr
    assert "at file " in theirs[0] and "offset 0, length 4096" in theirs[0]
    assert json.loads(r.stdout[r.stdout.index("{") :])["jobs"][0]["error"] == 84  # after fio's "pid=" line
    # with rw=write fio takes the seed from the header and passes the stale block (docs/fio-differences.md)
    (tmp_path / "stale.dat").unlink()
    r = subprocess.run(
        [fio, str(stale_job(tmp_path, "write")), "--output-format=json"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0 and "verify:" not in r.stderr


def test_verify_only_takes_the_seed_from_the_header_as_fio(direct_dir: Path) -> None:
    """verify_only writes nothing, so the blocks may be fio's or another seed's: neither fio nor iolab
    checks the seed there (fio's check needs a job that reads and writes)."""
    target = direct_dir / "s.dat"
    assert iolab_run(*job_args(target, "--verify=crc32c", "--randseed=1"))[0] == 0
    first = target.read_bytes()
    assert iolab_run(*job_args(target, "--verify=crc32c", "--randseed=2", "--do_verify=0"))[0] == 0
    assert target.read_bytes()[5 * BS : 6 * BS] != first[5 * BS : 6 * BS]
    with open(target, "r+b") as fh:  # the write of block 5 was lost: run 1's block is still there
        fh.seek(5 * BS)
        fh.write(first[5 * BS : 6 * BS])
    rc, doc, err = iolab_run(*job_args(target, "--verify=crc32c", "--randseed=2", "--verify_only"))
    assert rc == 0 and verify_of(doc)["failures"] == 0, err
    fio = need_fio()
    r = subprocess.run(
        [fio, "--name=v", f"--filename={target}", f"--size={SIZE}", "--rw=write", f"--bs={BS}",
         "--verify=crc32c", "--randseed=2", "--verify_only", "--verify_state_save=0"],
        capture_output=True, text=True, cwd=direct_dir, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0 and "verify:" not in r.stderr


# ------------------------------------------------------------------------- verify_only only reads
def sha256_of(path: str | Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def test_verify_only_on_a_device_with_a_file_system_needs_no_allow_destroy(direct_dir: Path) -> None:
    """ext4 on a loop device: writing needs --allow-destroy (the gate sees the file system), reading the
    blocks back with verify_only does not, raises no IOL-SAFE finding, and leaves every byte as it was."""
    from test_doctor_support import attached, mkfs_ext4

    image = direct_dir / "ext4.img"
    with open(image, "wb") as fh:
        fh.truncate(64 << 20)
    mkfs_ext4(image)
    with attached(image) as dev:
        # a region clear of the primary superblock, so the device still carries ext4 after the write
        args = ["--name=v", f"--filename={dev}", "--offset=32M", "--size=4M", "--rw=write", "--bs=64k",
                "--direct=1", "--verify=crc32c", "--verify_state_save=0"]  # fmt: skip
        before = sha256_of(dev)
        rc, doc, err = iolab_run(*args)
        assert rc != 0 and "IOL-SAFE-004" in err and "ext4" in err
        assert sha256_of(dev) == before
        rc, doc, err = iolab_run(*args, f"--allow-destroy={dev}")
        assert rc == 0 and verify_of(doc)["bytes"] == 4 << 20, err
        written = sha256_of(dev)
        assert written != before
        probe = ["blkid", "-p", "-o", "value", "-s", "TYPE", dev]
        blkid = subprocess.run(probe, capture_output=True, text=True)
        assert blkid.stdout.strip() == "ext4"  # still there: the gate would stop a writer
        rc, doc, err = iolab_run(*args, "--verify_only")
        assert rc == 0, err
        assert "IOL-SAFE" not in err and "IOL-SAFE" not in json.dumps(doc)
        v = verify_of(doc)
        assert (v["reads"], v["bytes"], v["failures"]) == (64, 4 << 20, 0)
        assert doc is not None and doc["jobs"][0]["write"]["io_bytes"] == 0
        assert sha256_of(dev) == written
        # iolab doctor on the job file: the writer carries IOL-SAFE-004, the verify_only job nothing of it
        for extra, codes in (("", {"IOL-SAFE-004"}), ("verify_only=1\n", set())):
            jobfile = direct_dir / "v.fio"
            jobfile.write_text(
                f"[v]\nfilename={dev}\noffset=32M\nsize=4M\nrw=write\nbs=64k\ndirect=1\nverify=crc32c\n{extra}"
            )
            r = subprocess.run(
                [*IOLAB, "doctor", str(jobfile), "--output-format=json"], capture_output=True, text=True
            )
            assert {c for c in re.findall(r"IOL-SAFE-\d+", r.stdout)} == codes, r.stdout + r.stderr
        assert sha256_of(dev) == written
        # and it reads what is there: a corrupted block is caught, still without writing
        corrupt(dev, (32 << 20) + 5 * 65536 + 100)
        corrupted = sha256_of(dev)
        rc, doc, err = iolab_run(*args, "--verify_only")
        assert rc != 0 and [f["offset"] for f in verify_of(doc)["failed"]] == [(32 << 20) + 5 * 65536]
        assert sha256_of(dev) == corrupted


def test_verify_only_never_creates_or_extends_a_file(direct_dir: Path) -> None:
    """fio lays a missing or short file out under verify_only (and then reads zeros back); iolab refuses,
    leaving the file as it was."""
    missing = direct_dir / "missing.dat"
    rc, doc, err = iolab_run(*job_args(missing, "--verify=crc32c", "--verify_only"))
    assert rc != 0 and doc is None and "Traceback" not in err
    assert f"{missing}, which does not exist; verify_only never creates or extends a file" in err
    assert not missing.exists()
    short = direct_dir / "short.dat"
    short.write_bytes(os.urandom(SIZE // 4))
    before = short.read_bytes()
    rc, doc, err = iolab_run(*job_args(short, "--verify=crc32c", "--verify_only"))
    assert rc != 0 and f"which holds {SIZE // 4} bytes" in err
    assert short.read_bytes() == before
    rc, doc, err = iolab_run(*job_args(short, "--verify_only", size=SIZE // 4))
    assert rc != 0 and "verify_only=1 checks nothing without verify=" in err
    assert short.read_bytes() == before
