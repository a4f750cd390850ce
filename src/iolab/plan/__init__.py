"""Plan phase: turn parsed JobDefs into concrete, runnable job plans.

A JobDef is what the user wrote; a JobPlan is one worker (one numjobs clone) with its files resolved,
its offsets computed, its reporting group and start dependencies decided and its C config values filled.
Nothing here does I/O except stat() of existing targets; laying files out is `layout.py`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from iolab.jobfile import JobDef

#: fio's default seed when randrepeat=1 and no randseed is given (any constant gives repeatable runs).
DEFAULT_SEED = 0x89
SAMPLE_INTERVAL_NS = 500_000_000
SUPPORTED_ENGINES = {"psync": 0}


class PlanError(Exception):
    """A job that parses but cannot be run as written (bad geometry, missing size, read-only...)."""


@dataclass(frozen=True)
class FilePlan:
    path: str
    is_block: bool
    #: bytes the file must have before the job starts (regular files only; 0 for block devices)
    required_size: int
    region_offset: int
    region_size: int


@dataclass(frozen=True)
class JobPlan:
    name: str
    jobnum: int  # clone number within the JobDef (0..numjobs-1)
    index: int  # global worker index in start order
    groupid: int
    group_reporting: bool
    files: tuple[FilePlan, ...]
    reads: bool
    writes: bool
    direct: bool
    create_on_open: bool
    unlink: bool
    startdelay_ns: int
    #: names of JobDefs (all their clones) that must finish before this worker starts
    wait_for: frozenset[str]
    wait_for_all_previous: bool
    config: Mapping[str, Any]
    options: Mapping[str, Any]
    jobdef_index: int
    warnings: tuple[str, ...] = ()
    #: options the job section itself set, as written (fio's JSON "job options")
    job_options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RunPlan:
    jobs: tuple[JobPlan, ...]
    #: options set in [global] or before the first --name, as written (fio's JSON "global options")
    global_options: Mapping[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = field(default_factory=tuple)


def _target_size(path: str) -> tuple[bool, int | None]:
    """(is_block, current size or None if it does not exist)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False, None
    if stat.S_ISBLK(st.st_mode):
        with open(path, "rb") as dev:
            return True, dev.seek(0, os.SEEK_END)
    if stat.S_ISREG(st.st_mode):
        return False, st.st_size
    raise PlanError(f"{path}: not a regular file or block device")


def _file_names(job: JobDef, jobnum: int) -> list[str]:
    values = job.values
    names: list[str] = list(values.get("filename") or [])
    directory = values.get("directory") or ""
    if not names:
        nrfiles = int(values.get("nrfiles") or 1)
        names = [f"{job.name}.{jobnum}.{i}" for i in range(nrfiles)]
    return [n if os.path.isabs(n) or not directory else os.path.join(directory, n) for n in names]


def _block_sizes(values: Mapping[str, Any], bsrange_set: bool) -> tuple[list[int], list[int], list[int]]:
    """Per direction (read, write): min bs, max bs, alignment."""
    bs = values["bs"]
    bs_min = [int(bs[0]), int(bs[1])]
    bs_max = list(bs_min)
    brange = values.get("bsrange")
    if brange and bsrange_set:
        bs_min = [int(brange[0][0]), int(brange[1][0])]
        bs_max = [int(brange[0][1]), int(brange[1][1])]
    align_opt = values.get("ba")
    align = [int(align_opt[d]) if align_opt and align_opt[d] else bs_min[d] for d in (0, 1)]
    return bs_min, bs_max, align


def _bssplit(values: Mapping[str, Any]) -> tuple[list[int], list[int], list[int]]:
    split = values.get("bssplit")
    counts = [0, 0]
    sizes = [0] * 128
    percs = [0] * 128
    if split:
        for d in (0, 1):
            entries = split[d] if d < len(split) else split[0]
            if len(entries) > 64:
                raise PlanError("bssplit: at most 64 entries per direction")
            counts[d] = len(entries)
            for i, (size, perc) in enumerate(entries):
                sizes[d * 64 + i] = int(size)
                percs[d * 64 + i] = int(perc)
    return counts, sizes, percs


MODES = {
    # mode: (reads, writes, random)
    "read": (True, False, False),
    "write": (False, True, False),
    "randread": (True, False, True),
    "randwrite": (False, True, True),
    "rw": (True, True, False),
    "readwrite": (True, True, False),
    "randrw": (True, True, True),
}


def _where(job: JobDef, option: str) -> str:
    loc = job.set_at.get(option) or job.source
    return f"{loc.file}:{loc.line}"


def build_plan(jobdefs: Sequence[JobDef]) -> RunPlan:
    jobs: list[JobPlan] = []
    groupid = 0
    worker = 0
    for jd in jobdefs:
        v = jd.values
        if jobs and (v.get("stonewall") or v.get("new_group")):
            groupid += 1
        engine = str(v.get("ioengine") or "psync")
        if engine not in SUPPORTED_ENGINES:
            raise PlanError(f"{_where(jd, 'ioengine')}: ioengine={engine} is not supported yet (use psync)")
        mode = str(v["rw"])
        if mode not in MODES:
            raise PlanError(f"{_where(jd, 'rw')}: rw={mode} is not supported yet")
        reads, writes, random = MODES[mode]
        if writes and v.get("readonly"):
            raise PlanError(f"{_where(jd, 'rw')}: rw={mode} writes but readonly=1 is set")
        bs_min, bs_max, align = _block_sizes(v, "bsrange" in jd.set_at)
        split_n, split_bs, split_perc = _bssplit(v)
        max_bs = max([*bs_max, *split_bs])
        numjobs = int(v.get("numjobs") or 1)
        for jobnum in range(numjobs):
            files = _plan_files(jd, jobnum, min(bs_min[d] for d in (0, 1) if (reads, writes)[d]))
            if "randseed" in jd.set_at or v.get("randrepeat", True):
                seed = int(v.get("randseed") or DEFAULT_SEED)
            else:
                seed = int.from_bytes(os.urandom(8), "little")
            modifier = v.get("rw_modifier")
            config: dict[str, Any] = {
                "engine": SUPPORTED_ENGINES[engine],
                "ddir_mask": (1 if reads else 0) | (2 if writes else 0),
                "random": int(random),
                "rw_seq_nr": int(modifier) if (random and modifier) else 1,
                "rw_hole": int(modifier) if (not random and modifier) else 0,
                "rwmix_read": int(v.get("rwmixread", 50)) if (reads and writes) else (100 if reads else 0),
                "direct": int(bool(v.get("direct"))),
                "iodepth": int(v.get("iodepth") or 1),
                "time_based": int(bool(v.get("time_based"))),
                "runtime_ns": int(v.get("runtime") or 0),
                "ramp_ns": int(v.get("ramp_time") or 0),
                "io_size": sum(f.region_size for f in files),
                "loops": int(v.get("loops") or 1),
                "norandommap": int(bool(v.get("norandommap"))),
                # every clone gets its own stream, as fio seeds per thread
                "seed": (seed + jobnum * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF,
                "fsync_blocks": int(v.get("fsync") or 0),
                "fdatasync_blocks": int(v.get("fdatasync") or 0),
                "end_fsync": int(bool(v.get("end_fsync"))),
                "zero_buffers": int(bool(v.get("zero_buffers"))),
                "refill_buffers": int(bool(v.get("refill_buffers"))),
                "sample_interval_ns": SAMPLE_INTERVAL_NS,
                "bs_min": bs_min,
                "bs_max": bs_max,
                "blockalign": align,
                "bssplit_n": split_n,
                "bssplit_bs": split_bs,
                "bssplit_perc": split_perc,
                "max_bs": max_bs,
            }
            wait_for = v.get("wait_for")
            jobs.append(
                JobPlan(
                    name=jd.name,
                    jobnum=jobnum,
                    index=worker,
                    groupid=groupid,
                    group_reporting=bool(v.get("group_reporting")),
                    files=tuple(files),
                    reads=reads,
                    writes=writes,
                    direct=bool(v.get("direct")),
                    create_on_open=bool(v.get("create_on_open")),
                    unlink=bool(v.get("unlink")),
                    startdelay_ns=int(v.get("startdelay") or 0),
                    wait_for=frozenset([str(wait_for)]) if wait_for else frozenset(),
                    wait_for_all_previous=bool(v.get("stonewall")),
                    config=config,
                    options=v,
                    jobdef_index=jd.index,
                    warnings=tuple(jd.warnings),
                    job_options={r.name: r.value or "" for r in jd.raw if not r.from_global},
                )
            )
            worker += 1
    _check_wait_for(jobs)
    global_options = {r.name: r.value or "" for r in jobdefs[0].raw if r.from_global} if jobdefs else {}
    return RunPlan(jobs=tuple(jobs), global_options=global_options)


def _check_wait_for(jobs: Sequence[JobPlan]) -> None:
    seen: set[str] = set()
    for job in jobs:
        for name in job.wait_for:
            if name not in seen:
                raise PlanError(f"job '{job.name}': wait_for={name} names no earlier job")
        seen.add(job.name)


def _percent_of(base: int, fraction: float | None, align: int) -> int:
    """fio's N% forms: a fraction of the file or device size, aligned down to the minimum block size."""
    return int(base * float(fraction)) // align * align if fraction else 0


def _plan_files(jd: JobDef, jobnum: int, min_bs: int) -> list[FilePlan]:
    """Resolve each file's region for clone `jobnum`: fio's size/filesize/offset/offset_increment rules,
    percentages being of the file's (or device's) size, percentage offsets aligned to the minimum bs."""
    v = jd.values
    names = _file_names(jd, jobnum)
    size_opt = int(v.get("size") or 0)
    filesize = int(v.get("filesize") or 0)
    plans: list[FilePlan] = []
    for path in names:
        is_block, current = _target_size(path)
        base = current if current else filesize or size_opt
        if not base and (
            v.get("size_percent") or v.get("offset_percent") or v.get("offset_increment_percent")
        ):
            raise PlanError(f"{_where(jd, 'size')}: job '{jd.name}': percentages need an existing {path}")

        offset = int(v.get("offset") or 0) or _percent_of(base, v.get("offset_percent"), min_bs)
        increment = int(v.get("offset_increment") or 0)
        offset += jobnum * (increment or _percent_of(base, v.get("offset_increment_percent"), min_bs))
        per_file = (size_opt or _percent_of(base, v.get("size_percent"), min_bs)) // len(names)
        if is_block:
            assert current is not None
            region = per_file or (current - offset)
            if offset >= current or offset + region > current:
                raise PlanError(
                    f"{_where(jd, 'offset')}: job '{jd.name}' clone {jobnum}: region "
                    f"[{offset}, {offset + max(region, 0)}) lies outside {path} ({current} bytes)"
                )
            plans.append(FilePlan(path, True, 0, offset, region))
            continue
        if per_file:
            region = per_file
        elif filesize:
            region = filesize - offset
        elif current:
            region = current - offset
        else:
            raise PlanError(
                f"{_where(jd, 'size')}: job '{jd.name}': {path} does not exist and no size= is given "
                "(fio needs a size to create it)"
            )
        if region <= 0:
            raise PlanError(
                f"{_where(jd, 'offset')}: job '{jd.name}' clone {jobnum}: offset {offset} is at or "
                f"beyond the end of {path} ({current} bytes); use a larger size or a smaller "
                "offset/offset_increment"
            )
        if region >= min_bs:
            region -= region % min_bs
        required = max(offset + region, filesize)
        plans.append(FilePlan(path, False, required, offset, region))
    return plans
