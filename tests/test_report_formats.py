"""iolab.report: formatting rules (checked against values seen in real fio 3.33 output), format plumbing."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest
from hdrh.histogram import HdrHistogram

from iolab.analysis import DiskUtil, JobResult, RunResult, job_result, run_result
from iolab.analysis.synthetic import synthetic_raw
from iolab.report import PreambleJob, parse_formats, render, render_preamble
from iolab.report.fiojson import dumps
from iolab.report.units import (
    fmt_percentile_block,
    lat_unit,
    num2str,
    percentile_precision,
    percentile_unit,
)

OPTS: dict[str, Any] = {"rw": "randrw", "bs": (4096, 4096), "ioengine": "psync", "iodepth": 1}


def job(rw: str = "randrw", name: str = "t", jobnum: int = 0, groupid: int = 0, **kw: Any) -> JobResult:
    raw_kw = {
        k: kw.pop(k) for k in list(kw) if k in ("sync_ios", "error", "error_msg", "stopped", "runtime_ns")
    }
    return job_result(
        synthetic_raw(rw=rw, **raw_kw),
        name=name,
        jobnum=jobnum,
        groupid=groupid,
        options={**OPTS, "rw": rw, **kw},
        sample_interval_ms=500,
        pid=42,
        finished_at=0.0,
        job_options={"rw": rw},
    )


def run(*jobs: JobResult, **kw: Any) -> RunResult:
    return run_result(list(jobs), timestamp=1_700_000_000.0, **kw)


# ------------------------------------------------------------------------------------------- units
@pytest.mark.parametrize(
    ("num", "maxlen", "pow2", "unit", "expected"),
    [
        # all pairs below appear in real fio output
        (27871632, 4, True, "B/s", "26.6MiB/s"),
        (27871632, 4, False, "B/s", "27.9MB/s"),
        (8253317, 4, True, "B/s", "8060KiB/s"),
        (8253317, 4, False, "B/s", "8253kB/s"),
        (1048576000, 4, True, "B/s", "1000MiB/s"),
        (1048576000, 4, False, "B/s", "1049MB/s"),
        (4194304000, 4, False, "B/s", "4194MB/s"),
        (10482265, 4, True, "B/s", "10.00MiB/s"),  # 9.996 rounds up with a carry
        (20964531, 4, True, "B/s", "20.0MiB/s"),
        (55771136, 4, True, "B", "53.2MiB"),
        (1048576, 4, False, "B", "1049kB"),
        (4194304, 4, True, "B", "4096KiB"),
        (4096, 4, True, "B", "4096B"),
        (1024000, 4, False, "", "1024k"),
        (256000, 4, False, "", "256k"),
        (6804, 4, False, "", "6804"),
        (2004504, 6, False, "", "2004.5k"),
        (10347, 6, False, "", "10347"),
        (167599440, 4, True, "bit/s", "160Mibit/s"),
        (0, 4, True, "B/s", "0B/s"),
    ],
)
def test_num2str(num: int, maxlen: int, pow2: bool, unit: str, expected: str) -> None:
    assert num2str(num, maxlen, pow2=pow2, unit=unit) == expected


def test_lat_unit_fio_thresholds() -> None:
    # seen in fio: min=1122ns, max=9984100, stdev=277221 stays nsec (min <= 2000)
    assert lat_unit(1122, 9_984_100, 277_221.5) == ("nsec", 1)
    assert lat_unit(2001, 100_000, 1001.0) == ("usec", 1000)
    assert lat_unit(2001, 99_999, 5000.0) == ("nsec", 1)
    assert lat_unit(2_000_001, 100_000_000, 1_000_001.0) == ("msec", 1_000_000)
    assert lat_unit(2_000_001, 100_000_000, 999_999.0) == ("usec", 1000)


def test_percentile_unit_and_precision() -> None:
    assert percentile_unit([8512, 74240]) == ("nsec", 1)  # min > 2000 but max <= 99999
    assert percentile_unit([4048, 1_680_000]) == ("usec", 1000)
    assert percentile_unit([60, 2_007_040]) == ("nsec", 1)
    assert percentile_unit([3_000_000, 200_000_000]) == ("msec", 1_000_000)
    assert percentile_precision([1, 5, 99.5, 99.95]) == 2
    assert percentile_precision([50, 99]) == 0
    assert percentile_precision([33.333, 66.6666]) == 4
    assert percentile_precision([1.1234567, 50]) == 7


def test_percentile_block_layouts_seen_in_fio() -> None:
    assert fmt_percentile_block([(50.0, 8512), (99.5, 74240)], 1, 1) == [
        "     | 50.0th=[ 8512], 99.5th=[74240]"
    ]
    items = [(float(p), 30) for p in range(1, 6)]
    assert fmt_percentile_block(items, 1, 0) == [
        "     |   1th=[   30],   2th=[   30],   3th=[   30],   4th=[   30],",
        "     |   5th=[   30]",
    ]
    # 7-digit values: 3 per line
    assert fmt_percentile_block([(1.0, 60), (5.0, 131), (10.0, 221), (20.0, 2007040)], 1, 2) == [
        "     |  1.00th=[     60],  5.00th=[    131], 10.00th=[    221],",
        "     | 20.00th=[2007040]",
    ]
    # scaled values are rounded up, as fio does: 71168 ns -> 72 us
    assert fmt_percentile_block([(1.0, 71168), (99.0, 1_003_520)], 1000, 2) == [
        "     |  1.00th=[   72], 99.00th=[ 1004]"
    ]


# ------------------------------------------------------------------------------------------- render
def test_parse_formats() -> None:
    assert parse_formats("json, normal") == ["json", "normal"]
    with pytest.raises(ValueError, match="unknown output format"):
        parse_formats("xml")
    with pytest.raises(ValueError):
        parse_formats(" , ")


def test_combined_formats_in_fio_order() -> None:
    out = render(run(job()), "normal,json,terse")
    assert out.startswith("3;iolab-0.1.0;t;0;0;")
    body = out.split("\n", 1)[1]
    end = body.index("\n}\n") + 3
    json.loads(body[:end])
    assert body[end:].startswith("\nt: (groupid=0, jobs=1): err= 0: pid=42: ")
    both = render(run(job()), "json,json+")
    assert both.count('"fio version"') == 1 and '"bins"' in both


def test_json_values_and_layout() -> None:
    r = run(job(sync_ios=10), global_options={"ioengine": "psync"})
    text = render(r, "json")
    doc = json.loads(text)
    assert list(doc) == [
        "fio version",
        "timestamp",
        "timestamp_ms",
        "time",
        "global options",
        "jobs",
        "disk_util",
    ]
    assert doc["fio version"] == "iolab-0.1.0" and doc["timestamp"] == 1_700_000_000
    assert doc["disk_util"] == []
    j = doc["jobs"][0]
    rd = j["read"]
    assert rd["io_bytes"] == 1000 * 4096 and rd["io_kbytes"] == 4000 and rd["runtime"] == 2000
    assert rd["bw_bytes"] == 1000 * 4096 * 1000 // 2000 and rd["bw"] == rd["bw_bytes"] // 1024
    assert list(rd["clat_ns"]["percentile"])[:3] == ["1.000000", "5.000000", "10.000000"]
    assert "percentile" not in rd["lat_ns"] and "percentile" not in rd["slat_ns"]
    assert j["sync"]["total_ios"] == 10 and "percentile" in j["sync"]["lat_ns"]
    assert j["iodepth_level"]["1"] == 100.0
    # floats always printed with six decimals, like fio's %f
    assert re.search(r'"iops" : \d+\.\d{6},', text)
    assert re.search(r'"mean" : 0\.000000,', text)
    assert '"job options" : {\n        "rw" : "randrw"\n      },' in text


def test_json_is_valid_with_non_finite_numbers() -> None:
    assert dumps({"a": math.nan, "b": math.inf, "c": -0.0, "d": [1.5, "x"], "e": {}}) == (
        '{\n  "a" : 0.000000,\n  "b" : 0.000000,\n  "c" : 0.000000,\n'
        '  "d" : [1.500000, "x"],\n  "e" : {\n\n  }\n}\n'  # an empty object as fio prints one
    )


def test_json_plus_bins_and_percentile_options() -> None:
    j = job(rw="randread", lat_percentiles=True, percentile_list="99.9:50")
    doc = json.loads(render(run(j), "json+"))["jobs"][0]["read"]
    assert list(doc["clat_ns"]["percentile"]) == ["50.000000", "99.900000"]  # sorted, like fio
    assert list(doc["lat_ns"]["percentile"]) == ["50.000000", "99.900000"]
    for key in ("clat_ns", "lat_ns"):
        bins = doc[key]["bins"]
        assert sum(bins.values()) == doc[key]["N"]
        keys = [int(k) for k in bins]
        assert keys == sorted(keys) and keys[0] >= doc[key]["min"] and keys[-1] <= doc[key]["max"]
    assert "bins" not in doc["slat_ns"]


def test_iolab_block() -> None:
    r = run(job(stopped=True), warnings=["run-level warning"])
    text = render(r, "json")
    doc = json.loads(text)
    blk = doc["jobs"][0]["iolab"]
    assert blk["run_warnings"] == ["run-level warning"]
    assert "iolab" not in doc
    assert any("stopped" in w for w in blk["warnings"])
    assert blk["stopped"] is True
    dec = HdrHistogram.decode(blk["hdr"]["read"]["clat"])
    assert dec.get_total_count() == doc["jobs"][0]["read"]["clat_ns"]["N"]
    assert set(blk["hdr"]) == {"read", "write"}
    assert blk["samples"]["t_ns"] == [500_000_000, 1_000_000_000, 1_500_000_000, 2_000_000_000]
    assert sum(blk["samples"]["read"]["ios"]) == 1000
    assert sum(blk["samples"]["read"]["bytes"]) == 1000 * 4096
    # nothing outside the JSON document
    assert text.startswith("{\n") and text.endswith("\n}\n")


def test_terse_field_counts() -> None:
    line = render(run(job()), "terse").rstrip("\n")
    f = line.split(";")
    assert len(f) == 121
    assert f[:5] == ["3", "iolab-0.1.0", "t", "0", "0"]
    assert f[17].endswith("%=" + f[17].split("=")[1]) and f[17].startswith("1.000000%=")
    disks = [DiskUtil("sda", 1, 2, 3, 4, 5, 6, 7, 50.0), DiskUtil("sdb", 1, 2, 3, 4, 5, 6, 7, 25.0)]
    line = render(run(job(description="my job"), disk_util=disks), "terse").rstrip("\n")
    f = line.split(";")
    assert len(f) == 121 + 18 + 1
    assert f[121:130] == ["sda", "1", "2", "3", "4", "5", "6", "7", "50.00%"]
    assert f[-1] == "my job"
    # percentile fields padded to 20 with 0%=0
    f = render(run(job(percentile_list="50:99")), "terse").split(";")
    assert f[17:20] == [f[17], f[18], "0%=0"] and f[17].startswith("50.000000%=")


def test_terse_warnings_never_inside() -> None:
    out = render(run(job(stopped=True), warnings=["careful"]), "terse")
    assert "careful" not in out and "stopped" not in out


def test_normal_warnings_first() -> None:
    out = render(run(job(stopped=True), warnings=["careful"]), "normal")
    lines = out.splitlines()
    assert lines[0] == "warning: careful"
    assert lines[1].startswith("warning: t: job was stopped")
    assert lines[2] == ""
    assert lines[3].startswith("t: (groupid=0, jobs=1): err= 0: pid=42: ")


def test_normal_sections() -> None:
    out = render(run(job(sync_ios=20, description="desc here")), "normal")
    assert "  Description  : [desc here]\n" in out
    assert "  write: IOPS=500, BW=2000KiB/s (2048kB/s)(4000KiB/2000msec); 0 zone resets\n" in out
    assert "  fsync/fdatasync/sync_file_range:\n    sync (usec): min=" in out
    assert "    sync percentiles (usec):\n" in out
    assert "     issued rwts: total=1000,1000,0,20 short=0,0,0,0 dropped=0,0,0,0\n" in out
    assert "     latency   : target=0, window=0, percentile=100.00%, depth=1\n" in out
    assert "  IO depths    : 1=100.0%, 2=0.0%, 4=0.0%, 8=0.0%, 16=0.0%, 32=0.0%, >=64=0.0%\n" in out
    assert "\nRun status group 0 (all jobs):\n   READ: bw=2000KiB/s (2048kB/s), " in out
    assert (
        "  WRITE: bw=2000KiB/s (2048kB/s), 2000KiB/s-2000KiB/s (2048kB/s-2048kB/s), io=4000KiB (4096kB), "
        in out
    )
    assert "Disk stats" not in out
    du = render(run(job(), disk_util=[DiskUtil("vda", 1, 2, 3, 4, 5, 6, 7, 12.5)]), "normal")
    assert du.endswith(
        "\nDisk stats (read/write):\n  vda: ios=1/2, merge=3/4, ticks=5/6, in_queue=7, util=12.50%\n"
    )


def test_normal_units_options() -> None:
    si = render(run(job(rw="randread", kb_base=1000)), "normal")
    assert "  read: IOPS=1000, BW=4096kB/s (4000KiB/s)(8192kB/2000msec)\n" in si
    assert "   bw (   kB/s): min= 4096" in si
    bits = render(run(job(rw="randread", unit_base=1)), "normal")
    assert "BW=31.2Mibit/s (32.8Mbit/s)(8000KiB/2000msec)" in bits


def test_normal_error_and_group_reporting() -> None:
    failing = job(rw="randread", error=5, error_msg="Input/output error")
    out = render(run(failing), "normal")
    assert (
        "t: (groupid=0, jobs=1): err= 5 (func=io_u error, read offset=0, error=Input/output error): pid=42"
        in out
    )
    jobs = [job(rw="randread", jobnum=i) for i in range(3)]
    grouped = render(run_result(jobs, group_reporting=True), "normal")
    assert grouped.count("(groupid=0, jobs=3)") == 1
    assert "  read: IOPS=3000, BW=11.7MiB/s (12.3MB/s)(23.4MiB/2000msec)\n" in grouped
    # like fio, the group line of a merged group shows the merged job's bandwidth as min and max
    assert (
        "   READ: bw=11.7MiB/s (12.3MB/s), 11.7MiB/s-11.7MiB/s (12.3MB/s-12.3MB/s), io=23.4MiB (24.6MB)"
        in grouped
    )
    doc = json.loads(render(run_result(jobs, group_reporting=True), "json"))
    assert len(doc["jobs"]) == 1 and doc["jobs"][0]["read"]["total_ios"] == 6000
    assert doc["jobs"][0]["iolab"]["jobs"] == 3


def test_preamble() -> None:
    opts = {"rw": "randread", "bs": (4096, 4096), "bsrange": ((512, 16384), (4096, 4096))}
    text = render_preamble(
        [
            PreambleJob("a", 0, opts),
            PreambleJob("a", 0, opts, clone=True),
            PreambleJob("a", 0, opts, clone=True),
        ]
    )
    assert text.splitlines() == [
        "a: (g=0): rw=randread, bs=(R) 512B-16.0KiB, (W) 4096B-4096B, (T) 4096B-4096B, "
        "ioengine=psync, iodepth=1",
        "...",
        "iolab-0.1.0",
        "Starting 3 threads",
    ]
