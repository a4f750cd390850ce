"""iolab.analysis.model: raw C result -> JobResult, groups and group_reporting merges (fio semantics)."""

from __future__ import annotations

import statistics
from typing import Any

import pytest

from iolab.analysis import (
    Histogram,
    JobResult,
    ReportOptions,
    group_results,
    job_result,
    merge_jobs,
    option_texts,
    run_result,
)
from iolab.analysis.diskstats import disk_util
from iolab.analysis.synthetic import raw_hist, synthetic_raw

OPTS: dict[str, Any] = {"rw": "randread", "bs": (4096, 4096), "ioengine": "psync", "iodepth": 1}


def make_job(
    raw: dict[str, Any], name: str = "t", jobnum: int = 0, groupid: int = 0, **opts: Any
) -> JobResult:
    return job_result(
        raw,
        name=name,
        jobnum=jobnum,
        groupid=groupid,
        options={**OPTS, **opts},
        sample_interval_ms=500,
        pid=1234,
        finished_at=0.0,
    )


def test_job_result_basic_fields() -> None:
    raw = synthetic_raw(rw="randread", read_ios=2000, runtime_ns=2_000_400_000)
    j = make_job(raw)
    r = j.dirs["read"]
    assert set(j.dirs) == {"read", "write", "trim", "sync"}
    assert (r.ios, r.total_ios, r.bytes, r.runtime_ms) == (2000, 2000, 2000 * 4096, 2000)
    assert r.bw_bytes == 2000 * 4096 * 1000 // 2000
    assert r.bw == r.bw_bytes // 1024
    assert r.iops == pytest.approx(1000.0)
    assert r.clat == Histogram.from_raw(raw["ddir"]["read"]["clat"])
    w = j.dirs["write"]
    assert (w.ios, w.runtime_ms, w.bw, w.iops) == (0, 0, 0, 0.0)
    assert w.bw_stats.samples == 0
    assert j.job_runtime_ms == 2000
    assert j.elapsed_s == 3  # runtime rounded up
    assert j.iodepth.level_pct()["1"] == 100.0
    assert j.iodepth.submit_pct()["4"] == 100.0
    assert j.cpu.sys_pct == pytest.approx(50.0, rel=1e-3)
    assert j.opts.percentile_list[-1] == 99.99 and j.opts.clat_percentiles and not j.opts.lat_percentiles


def test_samples_partial_tail_kept_in_series_not_in_stats() -> None:
    # 4 full 500 ms intervals + a 0.4 ms tail
    raw = synthetic_raw(rw="randread", read_ios=2000, runtime_ns=2_000_400_000)
    j = make_job(raw)
    r = j.dirs["read"]
    assert len(j.sample_times_ms) == 5 and len(r.bw_samples) == 5
    assert j.sample_times_ms[:2] == [500.0, 1000.0]
    full = r.bw_samples[:4]
    assert r.bw_stats.samples == 4
    assert r.bw_stats.mean == pytest.approx(statistics.fmean(full))
    assert r.bw_stats.stdev == pytest.approx(statistics.stdev(full))
    assert r.bw_stats.min == min(full) and r.bw_stats.max == max(full)
    ios = raw["samples"][0][1]
    assert r.iops_samples[0] == pytest.approx(ios / 0.5)
    assert r.bw_samples[0] == pytest.approx(ios * 4096 / 1024 / 0.5)


def test_samples_given_as_interval_starts() -> None:
    raw = synthetic_raw(rw="randread", read_ios=1000, runtime_ns=1_000_000_000)
    # rewrite as start times: 0, 500ms
    raw["samples"] = [(0, 500, 500 * 4096, 0, 0), (500_000_000, 500, 500 * 4096, 0, 0)]
    j = make_job(raw)
    assert j.sample_times_ms == [500.0, 1000.0]
    assert j.sample_times_ns == [500_000_000, 1_000_000_000]
    assert j.dirs["read"].iops_samples == [1000.0, 1000.0]
    assert j.dirs["read"].sample_ios == [500, 500]


def test_widened_sample_interval() -> None:
    raw = synthetic_raw(
        rw="randread", read_ios=3000, runtime_ns=3_100_000_000, sample_interval_ns=1_000_000_000
    )
    j = make_job(raw)  # asked for 500 ms, the core delivered 1 s samples
    assert j.sample_interval_ms == 1000.0
    assert j.dirs["read"].bw_stats.samples == 3  # the 100 ms tail is left out


def test_warnings() -> None:
    short = make_job(synthetic_raw(rw="randread", runtime_ns=300_000_000))
    assert any("shorter than the sample interval" in w for w in short.warnings)
    assert short.dirs["read"].bw_stats.samples == 0
    stopped = make_job(synthetic_raw(rw="randread", stopped=True))
    assert stopped.stopped and any("stopped" in w for w in stopped.warnings)
    raw = synthetic_raw(rw="randread")
    raw["ddir"]["read"]["short_ios"] = 3
    assert any("3 short read" in w for w in make_job(raw).warnings)
    raw = synthetic_raw(rw="randread")
    raw["ddir"]["read"]["clat"] = raw_hist([10, 2**41])
    assert any("2^40" in w for w in make_job(raw).warnings)
    passed = job_result(
        synthetic_raw(),
        name="x",
        jobnum=0,
        groupid=0,
        options=OPTS,
        sample_interval_ms=500,
        warnings=["from plan"],
    )
    assert passed.warnings[0] == "from plan"


def test_error_info() -> None:
    raw = synthetic_raw(rw="randread", error=5, error_msg="Input/output error")
    j = make_job(raw)
    assert (j.error.code, j.error.msg, j.error.ddir) == (5, "Input/output error", "read")
    assert j.dirs["read"].total_ios == j.dirs["read"].ios + 1  # the failed I/O was issued


def test_report_options_from_the_option_table_defaults() -> None:
    options = pytest.importorskip("iolab.options")
    values = options.default_values()
    o = ReportOptions.from_options(values)
    assert o == ReportOptions()  # the table's defaults are fio's, and so are ours
    raw = synthetic_raw(rw="randread")
    j = job_result(raw, name="t", jobnum=0, groupid=0, options=values, sample_interval_ms=500)
    assert j.dirs["read"].ios == 2000


def test_option_texts_like_fio() -> None:
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class S:
        name: str
        value: str | None
        from_global: bool

    settings = [
        S("ioengine", "psync", True),
        S("rw", "randread", False),
        S("time_based", None, False),
        S("bs", "4k", False),
        S("bs", "8k", False),
    ]
    job, glob = option_texts(settings)
    assert job == {"rw": "randread", "bs": "8k"} and list(job) == ["rw", "bs"]
    assert glob == {"ioengine": "psync"}
    jf = pytest.importorskip("iolab.jobfile")
    (jd,) = jf.parse_cli(["--ioengine=psync", "--name=t", "--rw=randread", "--time_based", "--bs=4k"]).jobs
    job, glob = option_texts(jd.raw)
    assert job.get("rw") == "randread" and "time_based" not in job


def test_report_options_parsing() -> None:
    o = ReportOptions.from_options(
        {
            "percentile_list": "99.5:99.9",
            "bs": (4096, 8192),
            "bsrange": ((512, 4096), (0, 0)),
            "kb_base": 1000,
        }
    )
    assert o.percentile_list == (99.5, 99.9)
    assert o.bs == ((512, 4096), (8192, 8192), (8192, 8192))
    assert o.kb_base == 1000
    assert ReportOptions.from_options({"percentile_list": [50, 99]}).percentile_list == (50.0, 99.0)
    assert ReportOptions.from_options({}).percentile_list[0] == 1.0
    assert ReportOptions.from_options({"lat_percentiles": 1}).lat_percentiles


# ------------------------------------------------------------------------------------------- groups
def two_jobs(groupid: int = 0) -> list[JobResult]:
    a = make_job(
        synthetic_raw(rw="randread", read_ios=1000, runtime_ns=2_000_000_000, seed=1), "a", 0, groupid
    )
    b = make_job(
        synthetic_raw(rw="randread", read_ios=3000, runtime_ns=3_000_000_000, seed=2), "a", 1, groupid
    )
    return [a, b]


def test_group_run_status_semantics() -> None:
    jobs = two_jobs()
    (g,) = group_results(jobs, group_reporting=False)
    assert g.merged is None and g.reported == jobs
    r = g.dirs["read"]
    total = (1000 + 3000) * 4096
    assert r.io_bytes == total
    assert (r.min_run, r.max_run) == (2000, 3000)
    assert r.agg_bw == total * 1000 // 3000  # aggregate over the longest runtime, like fio
    assert r.min_bw == min(j.dirs["read"].bw_bytes for j in jobs)
    assert r.max_bw == max(j.dirs["read"].bw_bytes for j in jobs)
    assert g.dirs["write"].io_bytes == 0 and g.dirs["write"].max_run == 0


def test_group_only_counts_jobs_active_in_direction() -> None:
    rd = make_job(synthetic_raw(rw="randread", runtime_ns=1_000_000_000), "r")
    wr = make_job(synthetic_raw(rw="randwrite", runtime_ns=3_000_000_000), "w", rw="randwrite")
    (g,) = group_results([rd, wr], group_reporting=False)
    assert (g.dirs["read"].min_run, g.dirs["read"].max_run) == (1000, 1000)
    assert (g.dirs["write"].min_run, g.dirs["write"].max_run) == (3000, 3000)


def test_group_reporting_merge() -> None:
    jobs = two_jobs()
    (g,) = group_results(jobs, group_reporting=True)
    m = g.merged
    assert m is not None and g.reported == [m]
    assert m.name == "a" and m.num_jobs == 2
    r = m.dirs["read"]
    assert r.ios == 4000 and r.bytes == 4000 * 4096
    assert r.runtime_ms == 3000
    assert r.clat == jobs[0].dirs["read"].clat + jobs[1].dirs["read"].clat
    assert r.lat.count == 4000
    # bandwidth samples are summed interval by interval: the group's aggregate bandwidth
    a, b = (j.dirs["read"].bw_samples for j in jobs)
    assert r.bw_samples[0] == pytest.approx(a[0] + b[0])
    assert r.bw_samples[5] == pytest.approx(b[5])  # a finished after 4 intervals
    assert r.sample_ios[0] == sum(j.dirs["read"].sample_ios[0] for j in jobs)
    assert sum(r.sample_bytes) == r.bytes
    assert m.sample_times_ns == jobs[1].sample_times_ns
    # samples count is the sum of the jobs' counts (fio's convention)
    assert r.bw_stats.samples == 4 + 6
    assert r.bw_stats.max == pytest.approx(a[0] + b[0])
    # CPU: total time over total runtime; counters summed
    assert m.cpu.ctx == sum(j.cpu.ctx for j in jobs)
    total_sys = sum(j.cpu.sys_ns for j in jobs)
    assert m.cpu.sys_pct == pytest.approx(100 * total_sys / 5e9)
    assert m.iodepth.level[0] == 4000
    # originals untouched
    assert jobs[0].dirs["read"].ios == 1000 and jobs[0].num_jobs == 1


def test_groups_ordered_and_separate() -> None:
    jobs = [*two_jobs(1), make_job(synthetic_raw(), "z", 0, 0)]
    gs = group_results(jobs, group_reporting=False)
    assert [g.groupid for g in gs] == [0, 1]
    assert [j.name for j in gs[0].jobs] == ["z"]
    run = run_result(jobs, group_reporting=False, timestamp=1_700_000_000.5, warnings=["w1"])
    assert [j.name for j, _ in run.reported()] == ["z", "a", "a"]
    assert run.timestamp == 1_700_000_000 and run.timestamp_ms == 1_700_000_000_500
    assert run.fio_version == "iolab-0.1.0"
    assert run.disk_util == []
    assert run.all_warnings()[0] == "w1"


def test_group_reporting_from_job_option() -> None:
    jobs = [make_job(synthetic_raw(), "a", i, 0, group_reporting=True) for i in range(2)]
    (g,) = group_results(jobs, group_reporting=False)
    assert g.merged is not None and g.merged.num_jobs == 2


def test_merge_jobs_warnings_prefixed() -> None:
    jobs = [make_job(synthetic_raw(stopped=True), "a", i) for i in range(2)]
    m = merge_jobs(jobs)
    assert m.stopped
    assert any(w.startswith("a.1: ") for w in m.warnings)


# ------------------------------------------------------------------------------------------- disk stats
def test_disk_util_from_counter_difference() -> None:
    diff = {
        "sda": {
            "read_ios": 100, "read_merges": 2, "read_ticks": 200, "write_ios": 50, "write_merges": 0,
            "write_ticks": 500, "io_ticks": 500, "time_in_queue": 1000,
        }
    }  # fmt: skip
    (du,) = disk_util(diff, elapsed_ms=1000)
    assert (du.name, du.read_ios, du.write_ios, du.read_merges, du.write_merges) == ("sda", 100, 50, 2, 0)
    assert (du.read_ticks, du.write_ticks, du.in_queue) == (200, 500, 1000)
    assert du.util == pytest.approx(50.0)


def _separate_iops(raw: dict[str, Any], step_ns: int) -> dict[str, Any]:
    """raw with its read I/O spread evenly over IOPS intervals of step_ns (the C core's "iops_samples")."""
    runtime = int(raw["runtime_ns"])
    ios, nbytes = raw["ddir"]["read"]["ios"], raw["ddir"]["read"]["bytes"]
    ends = [*range(step_ns, runtime + 1, step_ns)]
    if not ends or ends[-1] < runtime:
        ends.append(runtime)
    per = [ios * (e - s) // runtime for s, e in zip([0, *ends], ends, strict=False)]
    per[-1] += ios - sum(per)
    raw["iops_samples"] = [(e, n, n * nbytes // ios, 0, 0) for e, n in zip(ends, per, strict=True)]
    return raw


def test_iops_series_of_its_own() -> None:
    raw = _separate_iops(synthetic_raw(rw="randread", read_ios=2000, runtime_ns=2_000_000_000), 100_000_000)
    j = job_result(
        raw, name="t", jobnum=0, groupid=0, options=OPTS, sample_interval_ms=500, iops_interval_ms=100
    )
    r = j.dirs["read"]
    assert r.bw_stats.samples == 4 and len(r.bw_samples) == len(j.sample_times_ms) == 4
    assert r.iops_stats.samples == 20 and len(r.iops_samples) == len(j.iops_times_ms) == 20
    assert r.iops_stats.mean == pytest.approx(1000.0)
    assert sum(r.iops_ios) == r.ios and j.iops_interval_ms == 100.0
    # without a series of its own (equal intervals) IOPS come from the bandwidth series
    same = make_job(synthetic_raw(rw="randread", read_ios=2000, runtime_ns=2_000_000_000))
    assert same.iops_times_ms == same.sample_times_ms and same.dirs["read"].iops_stats.samples == 4


def test_merge_sums_each_series_at_its_interval() -> None:
    jobs = [
        job_result(
            _separate_iops(synthetic_raw(rw="randread", read_ios=n, runtime_ns=rt), 100_000_000),
            name="g",
            jobnum=i,
            groupid=0,
            options=OPTS,
            sample_interval_ms=500,
            iops_interval_ms=100,
        )
        for i, (n, rt) in enumerate([(1000, 1_000_000_000), (3000, 3_000_000_000)])
    ]
    m = merge_jobs(jobs)
    r = m.dirs["read"]
    assert len(r.iops_samples) == 30 and len(r.bw_samples) == 6
    assert r.iops_samples[0] == pytest.approx(sum(j.dirs["read"].iops_samples[0] for j in jobs))
    assert r.iops_samples[20] == pytest.approx(jobs[1].dirs["read"].iops_samples[20])
    assert r.iops_stats.samples == 10 + 30 and r.bw_stats.samples == 2 + 6
    assert m.iops_times_ns == jobs[1].iops_times_ns
    single = merge_jobs(jobs[:1]).dirs["read"]
    assert single.iops_stats == jobs[0].dirs["read"].iops_stats


def test_core_statistics_win_over_the_widened_series() -> None:
    raw = synthetic_raw(rw="randread", read_ios=2000, runtime_ns=2_000_000_000)
    none = (0, 0.0, 0.0, 0.0, 0.0)
    read = {"bw": (2000, 1.0, 9.0, 4.0, 2.0 * 1999), "iops": (1999, 1.0, 3.0, 2.0, 0.0)}
    raw["sample_stats"] = {"read": read, "write": {"bw": none, "iops": none}}
    r = make_job(raw).dirs["read"]
    assert (r.bw_stats.samples, r.bw_stats.min, r.bw_stats.max, r.bw_stats.mean) == (2000, 1.0, 9.0, 4.0)
    assert r.bw_stats.stdev == pytest.approx(2.0**0.5)
    assert r.iops_stats.samples == 1999 and r.iops_stats.stdev == 0.0
