"""The plan side of the queue-depth engines: fio's fixups, engine options, polling, rate, CPU sets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from iolab.engine.config import (
    EF_FIXEDBUFS,
    EF_NONVECTORED,
    EF_REGISTERFILES,
    EF_SQTHREAD_CPU,
    EF_SQTHREAD_POLL,
    EF_USERSPACE_REAP,
    EF_VECTORED,
    pack_config,
)
from iolab.jobfile import JobFileError, parse_text
from iolab.plan import PlanError, build_plan, parse_cpu_list


def plan(tmp_path: Path, text: str) -> list[Any]:
    target = tmp_path / "t.dat"
    jobs = parse_text(f"[global]\nfilename={target}\nsize=1m\n{text}")
    return list(build_plan(jobs).jobs)


def config(tmp_path: Path, text: str) -> dict[str, Any]:
    job = plan(tmp_path, text)[0]
    pack_config(job.config)  # every field present and in range
    return dict(job.config)


def test_fio_depth_fixups(tmp_path: Path) -> None:
    c = config(tmp_path, "[j]\nioengine=libaio\niodepth=16\n")
    assert (c["engine"], c["iodepth"], c["iodepth_batch_submit"]) == (1, 16, 1)
    assert (c["iodepth_batch_complete_min"], c["iodepth_batch_complete_max"], c["iodepth_low"]) == (1, 1, 16)
    c = config(tmp_path, "[j]\nioengine=io_uring\niodepth=16\niodepth_batch=0\niodepth_low=64\n")
    assert c["engine"] == 2 and c["iodepth_batch_submit"] == 16 and c["iodepth_low"] == 16  # 0/too big: depth
    c = config(tmp_path, "[j]\nioengine=io_uring\niodepth=16\niodepth_batch_submit=64\n")
    assert c["iodepth_batch_submit"] == 16
    c = config(tmp_path, "[j]\nioengine=libaio\niodepth=32\niodepth_batch_complete_min=8\n")
    assert (c["iodepth_batch_complete_min"], c["iodepth_batch_complete_max"]) == (8, 8)  # max follows min
    c = config(tmp_path, "[j]\nioengine=libaio\niodepth=32\niodepth_batch_complete=4\n"
                         "iodepth_batch_complete_max=2\niodepth_low=8\n")  # fmt: skip
    assert (c["iodepth_batch_complete_min"], c["iodepth_batch_complete_max"], c["iodepth_low"]) == (4, 4, 8)
    c = config(tmp_path, "[j]\nioengine=libaio\niodepth=8\niodepth_batch_complete_min=0\n")
    assert (c["iodepth_batch_complete_min"], c["iodepth_batch_complete_max"]) == (0, 0)  # fio's polling mode


def test_psync_keeps_depth_one_and_says_so(tmp_path: Path) -> None:
    job = plan(tmp_path, "[j]\niodepth=8\n")[0]
    assert job.config["engine"] == 0 and job.config["iodepth_batch_submit"] == 1  # the core runs depth 1
    assert any("synchronous" in w for w in job.warnings)


def test_engine_options(tmp_path: Path) -> None:
    c = config(tmp_path, "[j]\nioengine=libaio\nuserspace_reap\n")
    assert c["engine_flags"] == EF_USERSPACE_REAP
    c = config(tmp_path, "[j]\nioengine=io_uring\nfixedbufs\nregisterfiles\nnonvectored=1\n")
    assert c["engine_flags"] == EF_FIXEDBUFS | EF_REGISTERFILES | EF_NONVECTORED
    c = config(tmp_path, "[j]\nioengine=io_uring\nnonvectored=0\n")
    assert c["engine_flags"] == EF_VECTORED
    c = config(tmp_path, "[j]\nioengine=io_uring\nsqthread_poll\nsqthread_poll_cpu=1\n")
    assert (
        c["engine_flags"] == EF_SQTHREAD_POLL | EF_REGISTERFILES | EF_SQTHREAD_CPU
    )  # as fio: files registered
    assert c["sqthread_poll_cpu"] == 1
    with pytest.raises(PlanError, match="belongs to ioengine=io_uring"):
        plan(tmp_path, "ioengine=io_uring\nfixedbufs\n[j]\nioengine=psync\n")
    with pytest.raises(JobFileError, match="libaio"):
        plan(tmp_path, "[j]\nuserspace_reap\n")
    assert config(tmp_path, "[j]\nioengine=io_uring\nforce_async=4\n")["force_async"] == 4
    with pytest.raises(PlanError, match="force_async belongs to ioengine=io_uring"):
        plan(tmp_path, "ioengine=io_uring\nforce_async=1\n[j]\nioengine=libaio\n")


def test_libaio_buffered_warning(tmp_path: Path) -> None:
    job = plan(tmp_path, "[j]\nioengine=libaio\niodepth=8\n")[0]
    assert any("direct=1" in w for w in job.warnings)
    job = plan(tmp_path, "[j]\nioengine=libaio\niodepth=8\ndirect=1\n")[0]
    assert not any("direct=1" in w for w in job.warnings)


def test_poll_options(tmp_path: Path) -> None:
    c = config(tmp_path, "[j]\nioengine=io_uring\n")
    assert (c["poll_mode"], c["poll_max_ns"], c["poll_grow"], c["poll_shrink"]) == (0, 32768, 0, 0)
    c = config(
        tmp_path, "[j]\nioengine=libaio\npoll=adaptive\npoll_max_ns=65536\npoll_grow=4\npoll_shrink=2\n"
    )
    assert (c["poll_mode"], c["poll_max_ns"], c["poll_grow"], c["poll_shrink"]) == (2, 65536, 4, 2)
    assert config(tmp_path, "[j]\nioengine=libaio\npoll=on\n")["poll_mode"] == 1
    with pytest.raises(PlanError, match="asynchronous ioengine"):
        plan(tmp_path, "[j]\npoll=on\n")
    with pytest.raises(JobFileError):
        plan(tmp_path, "[j]\nioengine=libaio\npoll=sometimes\n")


def test_hipri_needs_direct_and_a_polled_device(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="direct=1"):
        plan(tmp_path, "[j]\nioengine=io_uring\nhipri\n")
    with pytest.raises(PlanError, match="poll queues"):
        plan(tmp_path, "[j]\nioengine=io_uring\nhipri\ndirect=1\n")
    with pytest.raises(PlanError, match="cannot fsync"):
        plan(tmp_path, "[j]\nioengine=io_uring\nhipri\ndirect=1\nrw=write\nend_fsync=1\n")


def test_rate_and_thinktime(tmp_path: Path) -> None:
    c = config(tmp_path, "[j]\nrate_iops=500\n")  # one value: every direction, as fio's bs
    assert c["rate_bps"] == [500 * 4096, 500 * 4096] and c["rate_process"] == 0
    assert config(tmp_path, "[j]\nrate_iops=,500\n")["rate_bps"] == [0, 500 * 4096]
    c = config(tmp_path, "[j]\nrw=randrw\nrate=1m,2m\nrate_process=poisson\n")
    assert c["rate_bps"] == [1 << 20, 2 << 20] and c["rate_process"] == 1 and c["rate_min_bs"] == [4096, 4096]
    # an IOPS cap counts in bytes of the smallest block (fio)
    c = config(tmp_path, "[j]\nbssplit=4k/50:64k/50\nrate_iops=100\n")
    assert c["rate_bps"][0] == 100 * 4096 and c["rate_min_bs"][0] == 4096
    c = config(
        tmp_path, "[j]\nthinktime=2ms\nthinktime_spin=500\nthinktime_blocks=4\nthinktime_blocks_type=issue\n"
    )
    assert (c["thinktime_ns"], c["thinktime_spin_ns"], c["thinktime_blocks"]) == (2_000_000, 500_000, 4)
    assert c["thinktime_blocks_type"] == 1 and c["thinktime_blocks_set"] == 1
    c = config(tmp_path, "[j]\nthinktime=10\nthinktime_iotime=1\n")
    assert (c["thinktime_ns"], c["thinktime_iotime_ns"], c["thinktime_blocks_set"]) == (10_000, 10**9, 0)


def test_cpu_sets(tmp_path: Path) -> None:
    assert parse_cpu_list("0,5,8-10") == [0, 5, 8, 9, 10]
    assert parse_cpu_list(" 3 , 1-2 ,") == [1, 2, 3]
    for bad in ("", "a", "3-1", "-1"):
        with pytest.raises(ValueError):
            parse_cpu_list(bad)
    cpus = sorted(os.sched_getaffinity(0))
    jobs = plan(tmp_path, f"[j]\nnumjobs=3\ncpus_allowed={cpus[0]}\n")
    assert [j.cpus for j in jobs] == [frozenset([cpus[0]])] * 3
    if len(cpus) >= 2:
        jobs = plan(
            tmp_path, f"[j]\nnumjobs=3\ncpus_allowed={cpus[0]},{cpus[1]}\ncpus_allowed_policy=split\n"
        )
        assert [j.cpus for j in jobs] == [frozenset([cpus[0]]), frozenset([cpus[1]]), frozenset([cpus[0]])]
    jobs = plan(tmp_path, f"[j]\ncpumask={1 << cpus[0]}\n")
    assert jobs[0].cpus == frozenset([cpus[0]])
    assert plan(tmp_path, "[j]\n")[0].cpus is None
    with pytest.raises(PlanError, match="not available"):
        plan(tmp_path, "[j]\ncpus_allowed=4095\n")


# ---------------------------------------------------------------------------------------------------
# analysis and report of the new result fields


def _raw(**extra: Any) -> dict[str, Any]:
    from iolab.analysis.synthetic import synthetic_raw

    raw = synthetic_raw(rw="randread", read_ios=1000)
    raw.update(extra)
    return raw


def test_depths_poll_and_warnings_reach_the_report() -> None:
    from iolab.analysis import job_result, merge_jobs, run_result
    from iolab.report import render

    raw = _raw(
        engine="io_uring",
        engine_info="io_uring: 32 entries",
        depth={"level": [0, 0, 0, 0, 0, 1000, 0], "submit": [0, 1000, 0, 0, 0, 0, 0],
               "complete": [0, 990, 2, 0, 0, 0, 0], "max_inflight": 32, "iodepth": 32},
        poll={"mode": "adaptive", "waits": 100, "hits": 60, "misses": 40, "poll_ns": 123_000,
              "block_ns": 900_000, "window_ns": 8000, "window_sum_ns": 400_000, "max_ns": 32768},
        rate={"rated": True, "lag_max_ns": 12_000, "sleeps": 5},
        iowq_workers=3,
        cpus=[1],
    )  # fmt: skip
    options = {"iodepth": 32, "ioengine": "io_uring", "filename": ["/dev/zram9"]}
    job = job_result(raw, name="j", jobnum=0, groupid=0, options=options, sample_interval_ms=500)
    assert job.iodepth.level_pct()["32"] == 100.0
    assert job.engine.max_inflight == 32 and job.engine.cpus == (1,)
    assert job.engine.poll.hits + job.engine.poll.misses == job.engine.poll.waits
    assert job.engine.poll.window_mean_ns == 4000.0
    assert any("io-wq" in w and "ioengine=libaio" in w and "/dev/zram9" in w for w in job.warnings)
    assert any("scheduled time" in w for w in job.warnings)
    run = run_result([job])
    doc = render(run, "json")
    assert '"hits" : 60' in doc and '"latency_from" : "scheduled issue time"' in doc
    assert '"iowq_workers" : 3' in doc and '"32" : 100.000000' in doc
    normal = render(run, "normal")
    assert "poll         : mode=adaptive, waits=100, hits=60 (60.0%)" in normal
    both = merge_jobs([job, job])
    assert both.engine.poll.waits == 200 and both.engine.iowq_workers == 6
    # a psync result without the new keys still reads as depth 1
    plain = job_result(_raw(), name="p", jobnum=0, groupid=0, options={}, sample_interval_ms=500)
    assert plain.iodepth.level_pct()["1"] == 100.0 and plain.engine.poll.mode == "off"
    assert "poll         :" not in render(run_result([plain]), "normal")
