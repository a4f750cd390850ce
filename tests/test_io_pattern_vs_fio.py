"""Offset patterns side by side with fio 3.33: the same job through fio (its --write_iolog) and through
iolab's C core (its trace hook), in separate directories.

Deterministic patterns (sequential, holes, limits, round robin, strided zones) must match fio I/O for
I/O. Random ones cannot (fio's random streams are not ours), so their shape is compared: coverage,
how concentrated the hits are, where they land, how often the file changes.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest

from iolab import _core
from iolab.engine.config import pack_config
from iolab.engine.runner import _open_flags, prepare_files
from iolab.jobfile import parse_text
from iolab.plan import PlanError, build_plan

pytestmark = pytest.mark.skipif(shutil.which("fio") is None, reason="fio is not installed")

TRACE = struct.Struct("=QIHBxQQ")
KB = 1024

Op = tuple[str, str, int, int]  # direction ('r'/'w'), file, offset, length


@pytest.fixture(autouse=True)
def _cwd(tmp_path: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        yield
    finally:
        os.chdir(old)


def _job(body: str) -> str:
    return "[j]\nioengine=psync\n" + body.replace(";", "\n") + "\n"


def iolab_ops(where: Path, body: str, cap: int = 100_000) -> list[Op]:
    where.mkdir()
    os.chdir(where)
    plan = build_plan(parse_text(_job(body)))
    prepare_files(plan)
    ops: list[Op] = []
    for jp in plan.jobs:
        fds = [os.open(fp.path, _open_flags(jp)) for fp in jp.files]
        try:
            files = [(fd, fp.region_offset, fp.region_size) for fd, fp in zip(fds, jp.files, strict=True)]
            job = _core.Job(pack_config(jp.config), files)
            buf = bytearray(TRACE.size * cap)
            job._set_trace(buf)
            job.run()
            for i in range(job._trace_count()):
                off, ln, fi, ddir, _, _ = TRACE.unpack_from(buf, i * TRACE.size)
                if ddir < 2:
                    ops.append(("rw"[ddir], jp.files[fi].path, off, ln))
        finally:
            for fd in fds:
                os.close(fd)
    return ops


def fio_ops(where: Path, body: str) -> list[Op]:
    where.mkdir()
    (where / "job.fio").write_text(_job(body))
    p = subprocess.run(
        ["fio", "--output-format=json", "--write_iolog=io.log", "job.fio"],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    ops: list[Op] = []
    for line in (where / "io.log").read_text().splitlines():
        parts = line.split()
        if len(parts) == 5 and parts[2] in ("read", "write"):
            ops.append((parts[2][0], parts[1], int(parts[3]), int(parts[4])))
    return ops


def both(tmp_path: Path, body: str) -> tuple[list[Op], list[Op]]:
    return fio_ops(tmp_path / "fio", body), iolab_ops(tmp_path / "iolab", body)


def hits(ops: list[Op], unit: int = 4 * KB) -> Counter[tuple[str, int]]:
    c: Counter[tuple[str, int]] = Counter()
    for _, name, off, ln in ops:
        for u in range(off // unit, (off + ln + unit - 1) // unit):
            c[(name, u)] += 1
    return c


# ---------------------------------------------------------------------------------------------------
# deterministic patterns: the same I/Os as fio, in the same order

SAME_AS_FIO = [
    # io_size / number_ios: fio issues whole blocks until io_size x loops (or number_ios x loops) is
    # reached, carrying on from where it was; past the end of the region it starts over
    "rw=read;bs=4k;size=64k;io_size=10k",
    "rw=read;bs=4k;size=64k;io_size=50%",
    "rw=write;bs=4k;size=64k;io_size=25%;loops=2",
    "rw=read;bs=4k;size=64k;io_size=10k;loops=3",
    "rw=read;bs=4k;size=64k;io_size=100k",
    "rw=read;bs=4k;size=64k;io_size=100k;loops=2",
    "rw=read;bs=4k;size=64k;number_ios=5;loops=2",
    "rw=read;bs=4k;size=64k;number_ios=40",
    "rw=read;bs=4k;size=64k;number_ios=40;io_size=200k",
    # rw holes: positive ones stop at the end of the file, negative ones go backwards and wrap
    "rw=read:8k;bs=4k;size=64k",
    "rw=read:8k;bs=4k;size=64k;loops=2",
    "rw=read:-8k;bs=4k;size=64k",
    "rw=read:-4k;bs=4k;size=64k",
    "rw=read:-8k;bs=4k;size=32k;offset=16k",
    "rw=write:-8k;bs=4k;size=64k;io_size=128k",
    "rw=write:-12k;bs=4k;size=64k;offset=32k",
    # sequential mixed jobs: the directions come from fio's own mix stream, drawn in runs, so which I/O
    # reads and where a holed job runs out (one direction's positions used up) are fio's
    "rw=rw;bs=4k;size=256k",
    "rw=rw:8k;bs=4k;size=100k",
    "rw=rw:4k;bs=4k;size=256k",
    "rw=rw;bs=4k;size=256k;rwmixread=70",
    "rw=rw:4k;bs=4k;size=256k;rwmixwrite=80",
    "rw=rw;bs=4k;size=256k;randseed=1234",
    "rw=rw;bs=4k;size=64k;loops=2",
    "rw=rw;bs=4k;size=256k;randrepeat=0;randseed=5;loops=2",
    # random jobs that fio makes sequential
    "rw=randread:0;bs=4k;size=64k",
    "rw=randread;percentage_random=0;bs=4k;size=64k",
    # file_service_type
    "filename=a:b:c:d;rw=read;bs=4k;size=256k;file_service_type=roundrobin",
    "filename=a:b:c:d;rw=read;bs=4k;size=256k;file_service_type=roundrobin:3",
    "filename=a:b:c:d;rw=read;bs=4k;size=256k;file_service_type=sequential",
    "filename=a:b:c;rw=write:4k;bs=4k;size=192k;file_service_type=sequential:2",
    # strided zones
    "rw=read;bs=4k;size=128k;zonemode=strided;zonesize=8k;zoneskip=8k",
    "rw=read;bs=4k;size=128k;zonemode=strided;zonesize=32k;zonerange=16k;zoneskip=16k",
    "rw=write;bs=4k;size=128k;zonemode=strided;zonesize=12k;zonerange=16k;zoneskip=4k;io_size=192k",
]


@pytest.mark.parametrize("body", SAME_AS_FIO)
def test_same_ios_as_fio(tmp_path: Path, body: str) -> None:
    if "filename=" not in body:
        body = "filename=f.dat;" + body
    fio, ours = both(tmp_path, body)
    assert ours == fio


def test_number_ios_counts_both_directions(tmp_path: Path) -> None:
    fio, ours = both(tmp_path, "filename=f.dat;rw=rw;bs=4k;size=64k;number_ios=6")
    assert len(fio) == len(ours) == 6


# ---------------------------------------------------------------------------------------------------
# bssplit / bsrange with random I/O: blocks shrink to the free gap, so each block is written once


@pytest.mark.parametrize(
    "bs",
    ["bssplit=4k/50:16k/30:64k/20", "bssplit=8k/50:16k/50", "bsrange=4k-32k"],
)
def test_random_blocks_shrink_to_the_gap(tmp_path: Path, bs: str) -> None:
    fio, ours = both(tmp_path, f"filename=f.dat;rw=randwrite;{bs};size=1m")
    for ops in (fio, ours):
        c = hits(ops)
        assert sum(ln for *_, ln in ops) == 1024 * KB
        assert len(c) == 256 and max(c.values()) == 1  # every 4k block of the file exactly once
    assert set(hits(fio)) == set(hits(ours))
    if "bssplit" in bs:
        # shrunk blocks (sizes no bssplit entry has) in both or in neither
        sizes = {int(e.split("/")[0][:-1]) * KB for e in bs.split("=")[1].split(":")}
        assert bool({ln for *_, ln in fio} - sizes) == bool({ln for *_, ln in ours} - sizes)


# ---------------------------------------------------------------------------------------------------
# random_distribution: the shape of the hits over 1024 blocks, 4096 reads


def _shape(ops: list[Op], nblocks: int = 1024) -> dict[str, float]:
    c = hits(ops)
    ranked = sorted(c.values(), reverse=True)
    n = len(ops)
    out = {
        "distinct": len(c) / nblocks,
        "top1": sum(ranked[: nblocks // 100]) / n,
        "top10": sum(ranked[: nblocks // 10]) / n,
        "top50": sum(ranked[: nblocks // 2]) / n,
    }
    for t in range(10):
        out[f"tenth{t}"] = sum(1 for _, _, off, _ in ops if off * 10 // (nblocks * 4 * KB) == t) / n
    return out


DISTRIBUTIONS = [
    # (distribution, compare where the hits land too: only when the position is not random in fio)
    ("zipf:1.2", False),
    ("zipf:0.8", False),
    ("zipf:1.2:0.5", True),
    ("pareto:0.3", False),
    ("pareto:0.1:0.2", True),
    ("normal", True),
    ("normal:10", True),
    ("normal:5:0.25", True),
    ("zoned:60/10:30/20:10/70", True),
    ("zoned_abs:50/1m:50/3m", True),
    ("random", True),
]


@pytest.mark.parametrize(("dist", "positions"), DISTRIBUTIONS)
def test_random_distribution_shape(tmp_path: Path, dist: str, positions: bool) -> None:
    body = f"filename=f.dat;rw=randread;bs=4k;size=4m;io_size=16m;random_distribution={dist}"
    fio, ours = both(tmp_path, body)
    assert len(fio) == len(ours) == 4096
    a, b = _shape(fio), _shape(ours)
    for key in ("distinct", "top1", "top10", "top50"):
        assert abs(a[key] - b[key]) <= 0.04, (key, a, b)
    if positions:
        for t in range(10):
            assert abs(a[f"tenth{t}"] - b[f"tenth{t}"]) <= 0.04, (t, a, b)


def test_zipf_hot_set_repeats_blocks(tmp_path: Path) -> None:
    """fio turns the random map off for a non-uniform distribution: blocks repeat within a pass."""
    fio, ours = both(tmp_path, "filename=f.dat;rw=randwrite;bs=4k;size=1m;random_distribution=zipf:1.1")
    for ops in (fio, ours):
        assert len(ops) == 256
        assert max(hits(ops).values()) > 5


# ---------------------------------------------------------------------------------------------------
# percentage_random: the rest continues sequentially from the previous I/O


def _sequential_share(ops: list[Op]) -> float:
    seq = sum(1 for prev, cur in pairwise(ops) if cur[2] == prev[2] + prev[3])
    return seq / (len(ops) - 1)


@pytest.mark.parametrize("perc", [25, 50, 80])
def test_percentage_random(tmp_path: Path, perc: int) -> None:
    fio, ours = both(tmp_path, f"filename=f.dat;rw=randread;bs=4k;size=4m;percentage_random={perc}")
    assert len(fio) == len(ours) == 1024
    assert abs(_sequential_share(fio) - _sequential_share(ours)) <= 0.06
    assert abs(_sequential_share(ours) - (100 - perc) / 100) <= 0.08


def test_percentage_random_per_direction(tmp_path: Path) -> None:
    body = "filename=f.dat;rw=randrw;bs=4k;size=4m;percentage_random=100,0"
    fio, ours = both(tmp_path, body)
    for ops in (fio, ours):
        writes = [o for o in ops if o[0] == "w"]
        # writes never jump: each one starts where the previous write ended (or wraps to 0)
        follow = sum(1 for p, c in pairwise(writes) if c[2] == p[2] + p[3])
        assert follow >= len(writes) - 3


# ---------------------------------------------------------------------------------------------------
# file_service_type with random choices


def _runs(ops: list[Op]) -> list[int]:
    runs: list[list[object]] = []
    for o in ops:
        if runs and runs[-1][0] == o[1]:
            runs[-1][1] = int(str(runs[-1][1])) + 1
        else:
            runs.append([o[1], 1])
    return [int(str(r[1])) for r in runs]


def test_file_service_random(tmp_path: Path) -> None:
    body = "filename=a:b:c:d:e:f:g:h;rw=randread;bs=4k;size=8m;file_service_type=random"
    fio, ours = both(tmp_path, body)
    for ops in (fio, ours):
        assert Counter(o[1] for o in ops) == {n: 256 for n in "abcdefgh"}
    # the same file twice in a row about 1/8 of the time (more at the end, when files are done)
    share = [sum(1 for r in _runs(ops) if r == 1) / len(_runs(ops)) for ops in (fio, ours)]
    assert abs(share[0] - share[1]) <= 0.06


def test_file_service_random_n(tmp_path: Path) -> None:
    body = "filename=a:b:c:d;rw=read;bs=4k;size=256k;file_service_type=random:4"
    fio, ours = both(tmp_path, body)
    for ops in (fio, ours):
        assert Counter(o[1] for o in ops) == {n: 16 for n in "abcd"}
        assert all(r % 4 == 0 for r in _runs(ops))


@pytest.mark.parametrize(("fst", "middle"), [("zipf:1.2", False), ("pareto:0.2", False), ("normal:20", True)])
def test_file_service_nonuniform(tmp_path: Path, fst: str, middle: bool) -> None:
    body = f"filename=a:b:c:d;rw=read;bs=4k;size=1m;file_service_type={fst}"
    fio, ours = both(tmp_path, body)
    for ops in (fio, ours):
        assert len(ops) == 256
        per = Counter(o[1] for o in ops)
        if middle:
            assert per["b"] + per["c"] >= 0.9 * len(ops)
        else:
            assert max(per.values()) >= 0.5 * len(ops)


# ---------------------------------------------------------------------------------------------------
# strided zones with random offsets: the same zone sequence, offsets inside the zone


def test_strided_random_zones(tmp_path: Path) -> None:
    body = "filename=f.dat;rw=randread;bs=4k;size=128k;zonemode=strided;zonesize=8k;zonerange=16k"
    body += ";zoneskip=16k"
    fio, ours = both(tmp_path, body)
    assert len(fio) == len(ours) == 32
    assert [o[2] // (32 * KB) for o in fio] == [o[2] // (32 * KB) for o in ours]


# ---------------------------------------------------------------------------------------------------
# refused as fio refuses them


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("rw=read;zonesize=4k", "zonemode=none and zonesize"),
        ("rw=randread;random_distribution=zoned:60/10:30/20", "add up to 90"),
        ("rw=randread;random_distribution=zipf:1", "theta"),
        ("rw=randread;random_distribution=pareto:1.5", "pareto"),
        ("rw=randread;random_distribution=normal:0:2", "center"),
        ("rw=randread;random_distribution=zoned_abs:60/16k:40/64k", "exceed"),
        ("rw=read;zonemode=zbd", "zbd"),
    ],
)
def test_refused(body: str, message: str) -> None:
    """fio refuses each of these too (zoned_abs past the end only once the job runs)."""
    with pytest.raises(PlanError, match=message):
        build_plan(parse_text(_job("filename=f.dat;size=64k;" + body)))


# ---------------------------------------------------------------------------------------------------
# randrepeat: fio starts its random streams over for every loop


@pytest.mark.parametrize("repeat", [1, 0])
def test_loops_repeat_random_offsets(tmp_path: Path, repeat: int) -> None:
    fio, ours = both(tmp_path, f"filename=f.dat;rw=randread;bs=4k;size=256k;loops=2;randrepeat={repeat}")
    for ops in (fio, ours):
        assert len(ops) == 128
        assert (ops[:64] == ops[64:]) == bool(repeat)


# ---------------------------------------------------------------------------------------------------
# random map with a different block size per direction: fio indexes the map with each direction's own
# block numbers, so writes never shrink and reads never grow


def test_mixed_block_sizes_random_map(tmp_path: Path) -> None:
    fio, ours = both(tmp_path, "filename=f.dat;rw=randrw;bs=4k,16k;size=1m")
    for ops in (fio, ours):
        assert {ln for d, _, _, ln in ops if d == "r"} == {4 * KB}
        assert {ln for d, _, _, ln in ops if d == "w"} == {16 * KB}
        assert sum(ln for *_, ln in ops) <= 1024 * KB


# ---------------------------------------------------------------------------------------------------
# bsrange: fio draws min + max * u and aligns down to min (capped at max), not a uniform step


@pytest.mark.parametrize("bsrange", ["4k-32k", "8k-20k", "4k-12k"])
def test_bsrange_sizes_as_fio(tmp_path: Path, bsrange: str) -> None:
    fio, ours = both(tmp_path, f"filename=f.dat;rw=randread;norandommap=1;bsrange={bsrange};size=4m")
    share = [Counter(ln for *_, ln in ops) for ops in (fio, ours)]
    assert set(share[0]) == set(share[1])
    for size in share[0]:
        assert abs(share[0][size] / len(fio) - share[1][size] / len(ours)) <= 0.08, (size, share)
    assert abs(len(fio) - len(ours)) <= 0.1 * len(fio)


# ---------------------------------------------------------------------------------------------------
# mixed jobs through the command line: fio seeds each job's mix stream with its thread number, so the
# second job and each clone draw their own directions


MIXED_JOBS = """\
[global]
bs=4k
[j0]
rw=write
size=64k
filename=f1
[j1]
rw=rw:8k
size=100k
filename=sub/f2
numjobs=2
[j2]
rw=rw:4k
size=256k
rwmixread=30
filename=f3
ioengine=libaio
iodepth=4
[j3]
rw=randrw
size=256k
filename=f4
"""


def _directions(tool: str, where: Path) -> list[tuple[str, int, int]]:
    where.mkdir()
    (where / "sub").mkdir()
    (where / "job.fio").write_text(MIXED_JOBS)
    cmd = ["fio"] if tool == "fio" else [sys.executable, "-m", "iolab", "run"]
    p = subprocess.run(
        [*cmd, "--output-format=json", "job.fio"], cwd=where, capture_output=True, text=True, timeout=120
    )
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout[p.stdout.find("{") :])
    return [(j["jobname"], j["read"]["total_ios"], j["write"]["total_ios"]) for j in doc["jobs"]]


def test_mixed_jobs_issue_fios_reads_and_writes(tmp_path: Path) -> None:
    fio = _directions("fio", tmp_path / "fio")
    ours = _directions("iolab", tmp_path / "iolab")
    assert ours == fio
    # the holed jobs ran out early (one direction's positions used up): a count that needs fio's draws
    assert sum(fio[1][1:]) < 25 and sum(fio[2][1:]) < 25
