"""Our reports against real fio 3.x output for similar psync jobs (randread, randrw).

fio runs on a small file in a directory on a real disk (tmp_path, or /var/tmp if tmp_path is on tmpfs).  Our
side renders a synthetic raw result (iolab.analysis.synthetic) for the same kind of job.  Compared:

* JSON / json+: the key sets recursively, with fio's nesting and order; leaf types (int vs float vs str);
  percentile keys (same default percentile_list); "bins" present where fio has them.  Documented extras:
  the "iolab" blocks; "disk_util" (always present in ours).
* our JSON writer reproduces fio's text layout byte for byte when fed fio's own document;
* terse: field count and per-position field kinds; the fixed fields;
* normal: the sequence of line shapes (numbers, units and data-dependent ranges normalized), the preamble.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from iolab.analysis import DiskUtil, Histogram, index_of, job_result, run_result
from iolab.analysis.model import (
    CpuStats,
    DirStats,
    IoDepths,
    JobResult,
    ReportOptions,
    RunResult,
    SampleStats,
)
from iolab.analysis.synthetic import synthetic_raw
from iolab.report import PreambleJob, render, render_preamble
from iolab.report.fiojson import dumps

FIO = shutil.which("fio")
pytestmark = [pytest.mark.skipif(FIO is None, reason="fio is not installed"), pytest.mark.slow]

EXTRA_KEYS = {"iolab"}  # documented additions, at top level and in each job
MODES = ("randread", "randrw")


# ------------------------------------------------------------------------------------------- running fio
def _fstype(path: Path) -> str:
    best, fstype = "", ""
    try:
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                mnt = parts[1]
                if (str(path) == mnt or str(path).startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best):
                    best, fstype = mnt, parts[2]
    except OSError:
        pass
    return fstype


@pytest.fixture(scope="module")
def fio_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    d = tmp_path_factory.mktemp("fio")
    if _fstype(d) == "tmpfs":
        d = Path("/var/tmp") / f"iolab-test-{uuid.uuid4().hex[:8]}"
        d.mkdir()
    (d / "f").write_bytes(os.urandom(4 << 20))  # pre-laid-out: no "Laying out IO file" line
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _fio_args(fio_dir: Path, rw: str, fmt: str, timed: bool) -> list[str]:
    args = [
        "--name=t",
        f"--filename={fio_dir / 'f'}",
        "--size=4m",
        f"--rw={rw}",
        "--bs=4k",
        "--ioengine=psync",
    ]
    if timed:
        args += ["--runtime=1500ms", "--time_based"]
    return [*args, f"--output-format={fmt}"]


def _job_options(args: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for a in args:
        if a.startswith("--output-format"):
            continue
        k, eq, v = a[2:].partition("=")
        if eq:  # fio leaves value-less flags (--time_based) out of "job options"
            out[k] = v
    return out


def _run_fio(args: list[str]) -> str:
    assert FIO is not None
    res = subprocess.run([FIO, *args], capture_output=True, text=True, timeout=120, check=True)
    return res.stdout


class FioOut:
    def __init__(self, text: str, args: list[str]) -> None:
        self.args = args
        lines = text.splitlines(keepends=True)
        self.preamble: list[str] = []
        i = 0
        if any(line.startswith("Starting ") for line in lines):
            while not lines[i].startswith("Starting "):
                self.preamble.append(lines[i].rstrip("\n"))
                i += 1
            self.preamble.append(lines[i].rstrip("\n"))
            i += 1
        self.terse = [line.rstrip("\n") for line in lines[i:] if line.startswith("3;")]
        i += len(self.terse)
        self.json_text = ""
        if i < len(lines) and lines[i] == "{\n":
            j = lines.index("}\n", i)
            self.json_text = "".join(lines[i : j + 1])
            i = j + 1
        self.normal = "".join(lines[i:])
        self.doc: dict[str, Any] = json.loads(self.json_text) if self.json_text else {}


@pytest.fixture(scope="module")
def fio_runs(fio_dir: Path) -> dict[tuple[str, str], FioOut]:
    out: dict[tuple[str, str], FioOut] = {}
    for rw in MODES:
        args = _fio_args(fio_dir, rw, "json", timed=False)
        out[(rw, "json")] = FioOut(_run_fio(args), args)
        args = _fio_args(fio_dir, rw, "terse,json+,normal", timed=True)
        out[(rw, "all")] = FioOut(_run_fio(args), args)
    return out


def our_run(rw: str, fio: FioOut) -> RunResult:
    opts = {"rw": rw, "bs": (4096, 4096), "ioengine": "psync", "iodepth": 1}
    raw = synthetic_raw(rw=rw, runtime_ns=1_500_000_000)
    job = job_result(
        raw,
        name="t",
        jobnum=0,
        groupid=0,
        options=opts,
        sample_interval_ms=500,
        job_options=_job_options(fio.args),
    )
    disks = [DiskUtil(d["name"], 1, 2, 0, 0, 3, 4, 7, 12.5) for d in (fio.doc.get("disk_util") or [])] or [
        DiskUtil("vda", 1, 2, 0, 0, 3, 4, 7, 12.5)
    ] * fio_disk_count(fio)
    return run_result([job], disk_util=disks)


def fio_disk_count(fio: FioOut) -> int:
    if not fio.terse:
        return 0
    return (len(fio.terse[0].split(";")) - 121) // 9


# ------------------------------------------------------------------------------------------- JSON
def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    return type(v).__name__


def compare_json(fio: Any, ours: Any, path: str = "") -> list[str]:
    """Differences in structure between fio's document and ours (empty list = same shape)."""
    diffs: list[str] = []
    if isinstance(fio, dict):
        if not isinstance(ours, dict):
            return [f"{path}: fio has an object, we have {_kind(ours)}"]
        if path.endswith("/bins"):
            good = bool(ours) and all(k.isdigit() and isinstance(v, int) for k, v in ours.items())
            return [] if good else [f"{path}: bins malformed"]
        fk = list(fio)
        ok = [
            k for k in ours if k not in EXTRA_KEYS and not (path == "" and k == "disk_util" and k not in fio)
        ]
        if fk != ok:
            diffs.append(
                f"{path}: keys differ: fio-only {sorted(set(fk) - set(ok))}, "
                f"ours-only {sorted(set(ok) - set(fk))}, order fio {fk} ours {ok}"
            )
        for k in fk:
            if k in ours:
                diffs += compare_json(fio[k], ours[k], f"{path}/{k}")
        return diffs
    if isinstance(fio, list):
        if not isinstance(ours, list):
            return [f"{path}: fio has a list"]
        for i, (a, b) in enumerate(zip(fio, ours, strict=False)):
            diffs += compare_json(a, b, f"{path}[{i}]")
        if path != "/disk_util" and len(fio) != len(ours):
            diffs.append(f"{path}: {len(fio)} entries in fio, {len(ours)} in ours")
        return diffs
    if _kind(fio) != _kind(ours):
        diffs.append(f"{path}: fio {_kind(fio)} {fio!r}, ours {_kind(ours)} {ours!r}")
    return diffs


@pytest.mark.parametrize("rw", MODES)
def test_json_structure_matches_fio(rw: str, fio_runs: dict[tuple[str, str], FioOut]) -> None:
    fio = fio_runs[(rw, "json")]
    ours = json.loads(render(our_run(rw, fio), "json"))
    assert compare_json(fio.doc, ours) == []
    job = ours["jobs"][0]
    assert "bins" not in job["read"]["clat_ns"]
    assert set(job["iolab"]) >= {"hdr", "samples", "warnings"}


@pytest.mark.parametrize("rw", MODES)
def test_json_plus_structure_matches_fio(rw: str, fio_runs: dict[tuple[str, str], FioOut]) -> None:
    fio = fio_runs[(rw, "all")]
    ours = json.loads(render(our_run(rw, fio), "json+"))
    assert compare_json(fio.doc, ours) == []
    for d in ("read", "write") if rw == "randrw" else ("read",):
        assert "bins" in fio.doc["jobs"][0][d]["clat_ns"] and "bins" in ours["jobs"][0][d]["clat_ns"]
        counts = ours["jobs"][0][d]["clat_ns"]["bins"].values()
        assert sum(counts) == ours["jobs"][0][d]["clat_ns"]["N"]


@pytest.mark.parametrize("rw", MODES)
def test_json_writer_reproduces_fio_layout(rw: str, fio_runs: dict[tuple[str, str], FioOut]) -> None:
    for kind in ("json", "all"):
        fio = fio_runs[(rw, kind)]
        assert dumps(json.loads(fio.json_text)) == fio.json_text


# ------------------------------------------------------------------------------------------- terse
def field_kind(f: str) -> str:
    if re.fullmatch(r"\d+(\.\d+)?%=\d+", f):
        return "pct=val"
    if re.fullmatch(r"\d+(\.\d+)?%", f):
        return "percent"
    if re.fullmatch(r"\d+", f):
        return "int"
    if re.fullmatch(r"\d+\.\d{6}", f):
        return "float"
    return "str"


@pytest.mark.parametrize("rw", MODES)
def test_terse_matches_fio(rw: str, fio_runs: dict[tuple[str, str], FioOut]) -> None:
    fio = fio_runs[(rw, "all")]
    (fio_line,) = fio.terse
    (our_line,) = render(our_run(rw, fio), "terse").splitlines()
    ff, of = fio_line.split(";"), our_line.split(";")
    assert len(of) == len(ff) == 121 + 9 * fio_disk_count(fio)
    assert [field_kind(f) for f in of] == [field_kind(f) for f in ff]
    assert of[0] == "3" and of[1] == "iolab-0.1.0" and of[2:5] == ff[2:5] == ["t", "0", "0"]
    # percentile labels at the same positions (read: fields 18-37, write: 59-78, 1-based)
    for lo in (17, 58):
        assert [f.split("=")[0] for f in of[lo : lo + 20]] == [f.split("=")[0] for f in ff[lo : lo + 20]]
    # read io KiB: 2000 I/Os of 4 KiB for randread, half of them for randrw
    assert int(of[5]) == (8000 if rw == "randread" else 4000)


# ------------------------------------------------------------------------------------------- normal
def shape(line: str) -> str:
    s = line.rstrip()
    if s.startswith("     |"):
        return "     |"
    m = re.match(r"^  lat \((nsec|usec|msec)\)   :", s)
    if m:
        return "  lat (T)   :"
    s = re.sub(r"^\S+: \(groupid=", "NAME: (groupid=", s)
    s = re.sub(r"\w{3} \w{3} +\d+ \d+:\d+:\d+ \d+$", "DATE", s)
    s = re.sub(r"\((nsec|usec|msec)\)", "(T)", s)
    s = re.sub(r"bw \( *\w+/s\)", "bw (U)", s)
    s = re.sub(r"\d+(\.\d+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?(bit/s|B/s|B)?", "#", s)
    s = re.sub(r"= +", "=", s)
    s = re.sub(r"\[ +", "[", s)
    s = re.sub(r"^  \w+: ios=", "  DISK: ios=", s)
    return s


def shapes(text: str) -> list[str]:
    out: list[str] = []
    for line in text.splitlines():
        sh = shape(line)
        if not out or out[-1] != sh:
            out.append(sh)
    return out


@pytest.mark.parametrize("rw", MODES)
def test_normal_line_shapes_match_fio(rw: str, fio_runs: dict[tuple[str, str], FioOut]) -> None:
    fio = fio_runs[(rw, "all")]
    ours = render(our_run(rw, fio), "normal")
    assert not ours.startswith("warning")
    assert shapes(ours) == shapes(fio.normal)
    assert "Run status group 0 (all jobs):" in ours
    assert re.search(
        r"^   READ: bw=\S+ \(\S+\), \S+-\S+ \(\S+-\S+\), io=\S+ \(\S+\), run=\d+-\d+msec$", ours, re.M
    )


@pytest.mark.parametrize("rw", MODES)
def test_preamble_matches_fio(rw: str, fio_runs: dict[tuple[str, str], FioOut]) -> None:
    fio = fio_runs[(rw, "all")]
    opts = {"rw": rw, "bs": (4096, 4096), "ioengine": "psync", "iodepth": 1}
    pre = render_preamble([PreambleJob("t", 0, opts)]).splitlines()
    assert pre[0] == fio.preamble[0]
    assert pre[1] == "iolab-0.1.0" and fio.preamble[1].startswith("fio-")
    assert re.fullmatch(r"Starting 1 \w+", pre[2]) and re.fullmatch(r"Starting 1 \w+", fio.preamble[2])


def test_combined_formats_order_like_fio(fio_runs: dict[tuple[str, str], FioOut]) -> None:
    # fio wrote terse, then JSON, then normal for "terse,json+,normal": FioOut parsed it in that order
    fio = fio_runs[("randread", "all")]
    assert fio.terse and fio.json_text and "Run status group" in fio.normal
    out = render(our_run("randread", fio), "normal,json+,terse")
    first, rest = out.split("\n", 1)
    assert first.startswith("3;iolab-0.1.0;t;")
    assert rest.startswith("{\n")
    end = rest.index("\n}\n") + 3
    json.loads(rest[:end])
    assert rest[end:].startswith("\nt: (groupid=0, jobs=1): err= 0: pid=")
    assert fio.normal.startswith("\nt: (groupid=0, jobs=1): err= 0: pid=")


# ------------------------------------------------------------------------------------------- exact numbers
def _hist_from_fio(st: dict[str, Any]) -> Histogram:
    """A histogram with fio's exact count/min/max/mean/stddev (bucket contents irrelevant here)."""
    n = int(st["N"])
    if n == 0:
        return Histogram()
    h = Histogram()
    h.buckets[index_of(int(st["min"]))] = n
    total = round(float(st["mean"]) * n)
    sumsq = float(st["stddev"]) ** 2 * (n - 1) + float(total) ** 2 / n
    return Histogram(h.buckets, n, int(st["min"]), int(st["max"]), total, sumsq)


def job_from_fio(job: dict[str, Any], options: dict[str, Any]) -> JobResult:
    dirs: dict[str, DirStats] = {}
    for d in ("read", "write", "trim"):
        s = job[d]
        dirs[d] = DirStats(
            ios=s["total_ios"],
            total_ios=s["total_ios"],
            bytes=s["io_bytes"],
            short_ios=s["short_ios"],
            drop_ios=s["drop_ios"],
            runtime_ms=s["runtime"],
            clat=_hist_from_fio(s["clat_ns"]),
            lat=_hist_from_fio(s["lat_ns"]),
            slat=_hist_from_fio(s["slat_ns"]),
            bw_stats=SampleStats(s["bw_min"], s["bw_max"], s["bw_mean"], s["bw_dev"], s["bw_samples"]),
            iops_stats=SampleStats(
                s["iops_min"], s["iops_max"], s["iops_mean"], s["iops_stddev"], s["iops_samples"]
            ),
        )
    dirs["sync"] = DirStats(ios=job["sync"]["total_ios"], total_ios=job["sync"]["total_ios"])
    rt = job["job_runtime"] * 1_000_000
    return JobResult(
        name=job["jobname"],
        jobnum=0,
        groupid=job["groupid"],
        options=options,
        opts=ReportOptions.from_options(options),
        job_options={},
        dirs=dirs,
        cpu=CpuStats(
            round(job["usr_cpu"] * rt / 100),
            round(job["sys_cpu"] * rt / 100),
            job["ctx"],
            job["majf"],
            job["minf"],
            rt,
        ),
        iodepth=IoDepths(
            tuple(round(v * 1000) for v in job["iodepth_level"].values()),
            tuple(round(v * 1000) for v in job["iodepth_submit"].values()),
            tuple(round(v * 1000) for v in job["iodepth_complete"].values()),
        ),
        runtime_ns=rt,
        num_jobs=1,
    )


COMPARED = re.compile(
    r"^(  (read|write): IOPS|    (clat|slat) \(| {5}lat \(|   bw \(|   iops |  cpu |  IO depths|     submit|"
    r"     complete|     issued|     latency|   READ:|  WRITE:|.*\(groupid=)"
)


def _compared_lines(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        if COMPARED.match(line):
            out.append(re.sub(r"pid=\d+: .*$", "pid=#: DATE", line))
    return out


NUMERIC_CASES = {
    "psync-randrw": ["--rw=randrw", "--ioengine=psync", "--size=4m", "--runtime=1500ms", "--time_based"],
    "null-fast": ["--rw=randrw", "--ioengine=null", "--size=256m", "--runtime=1500ms", "--time_based"],
    "null-rated-2jobs": [
        "--rw=randread",
        "--ioengine=null",
        "--size=64m",
        "--rate=3m",
        "--numjobs=2",
        "--runtime=1500ms",
        "--time_based",
    ],
    "null-rated-2jobs-grouped": [
        "--rw=randread",
        "--group_reporting",
        "--ioengine=null",
        "--size=64m",
        "--rate=3m",
        "--numjobs=2",
        "--runtime=1500ms",
        "--time_based",
    ],
    "null-1m-bs": [
        "--rw=write",
        "--ioengine=null",
        "--size=1g",
        "--bs=1m",
        "--rate=700m",
        "--runtime=1500ms",
        "--time_based",
    ],
}


def _json_leaves(doc: Any, path: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.update(_json_leaves(v, f"{path}/{k}"))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out.update(_json_leaves(v, f"{path}[{i}]"))
    else:
        out[path] = doc
    return out


# derived from buckets (ours differ from fio's) or from the environment: not comparable
_SKIP_JSON = re.compile(
    r"/(percentile|bins)/|/latency_(ns|us|ms)/|^/(fio version|timestamp|timestamp_ms|time)$"
    r"|/(eta|elapsed)$|^/disk_util|/iolab"
)
# terse fields (0-based) that come from buckets: percentiles and the latency distribution
_SKIP_TERSE = set(range(17, 37)) | set(range(58, 78)) | set(range(99, 121)) | {1}


@pytest.mark.parametrize("case", sorted(NUMERIC_CASES))
def test_numbers_equal_fio_for_fio_stats(case: str, fio_dir: Path) -> None:
    """Feed fio's own statistics (from its JSON) to our formatters: normal lines, terse fields and JSON
    values must equal fio's wherever they do not depend on histogram buckets."""
    args = [
        "--name=t",
        f"--filename={fio_dir / 'f'}",
        "--bs=4k",
        *NUMERIC_CASES[case],
        "--output-format=terse,json,normal",
    ]
    fio = FioOut(_run_fio(args), args)
    rw = next(a.split("=", 1)[1] for a in args if a.startswith("--rw="))
    jobs = [job_from_fio(j, {"rw": rw}) for j in fio.doc["jobs"]]
    members = 2 if "--group_reporting" in args else 1  # fio's JSON does not say how many jobs were merged
    for j in jobs:
        j.pid = 1
        j.num_jobs = members
        j.job_options = fio.doc["jobs"][0].get("job options", {})
    disks = [DiskUtil(**d) for d in fio.doc.get("disk_util", [])]
    run = run_result(jobs, disk_util=disks)
    # normal
    assert _compared_lines(render(run, "normal")) == _compared_lines(fio.normal)
    # terse
    ours_terse = render(run, "terse").splitlines()
    assert len(ours_terse) == len(fio.terse)
    for ol, fl in zip(ours_terse, fio.terse, strict=True):
        of, ff = ol.split(";"), fl.split(";")
        assert len(of) == len(ff)
        for i, (a, b) in enumerate(zip(of, ff, strict=True)):
            if i not in _SKIP_TERSE:
                assert a == b, (i, a, b)
    # json
    ours_doc = _json_leaves(json.loads(render(run, "json")))
    for path, value in _json_leaves(fio.doc).items():
        if _SKIP_JSON.search(path):
            continue
        assert path in ours_doc, path
        if isinstance(value, float):
            assert ours_doc[path] == pytest.approx(value, abs=2e-6), path
        else:
            assert ours_doc[path] == value, path
