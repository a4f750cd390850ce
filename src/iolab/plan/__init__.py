"""Plan phase: turn parsed JobDefs into concrete, runnable job plans.

A JobDef is what the user wrote; a JobPlan is one worker (one numjobs clone) with its files resolved,
its offsets computed, its reporting group and start dependencies decided and its C config values filled.
Nothing here does I/O except stat() of existing targets; laying files out is `layout.py`.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from iolab.abi import IGNORE_ERROR_MAX, POLL_MODES
from iolab.analysis.model import error_types
from iolab.ioengines import ENGINE_SPECS, EngineSpec, depth_cap_message, engine_flags
from iolab.jobfile import JobDef
from iolab.options import OPTIONS, Kind, Option
from iolab.plan.files import (
    FilePlan,
    FileSetup,
    LayoutSpec,
    PlanError,
    clone_file_names,
    layout_spec,
    rwmix_seed,
)
from iolab.plan.files import where as _where
from iolab.plan.nbd import NBD_MAX_REQUEST, NbdTarget, nbd_targets
from iolab.plan.pattern import pattern_config
from iolab.plan.steadystate import SteadyState, parse_limit
from iolab.plan.verify import VerifyError, verify_config, verify_notes

__all__ = ["FilePlan", "JobPlan", "LayoutSpec", "NbdTarget", "PlanError", "RunPlan", "build_plan"]

#: fio's default seed when randrepeat=1 and no randseed is given (any constant gives repeatable runs).
DEFAULT_SEED = 0x89
SUPPORTED_ENGINES: dict[str, EngineSpec] = {spec.name: spec for spec in ENGINE_SPECS}
ASYNC_ENGINES = tuple(spec.name for spec in ENGINE_SPECS if spec.is_async)
#: engine options iolab implements -> the engines (of iolab's) they belong to, from the engines' specs
ENGINE_OPTION_OWNERS = {
    opt.name: tuple(spec.name for spec in ENGINE_SPECS if opt in spec.options)
    for spec in ENGINE_SPECS
    for opt in spec.options
}
#: options copied as they are into the C config field they name (Option.config_field)
PLAIN_FIELDS: tuple[Option, ...] = tuple(o for o in OPTIONS.values() if o.config_field)


def plain_fields(values: Mapping[str, Any]) -> dict[str, int]:
    """The config fields filled straight from one option each: booleans as 0/1, numbers as they are, an
    unset or zero value as the option's default (loops=0 runs once, as fio)."""
    out: dict[str, int] = {}
    for o in PLAIN_FIELDS:
        assert o.config_field is not None
        value = values.get(o.name)
        if o.kind == Kind.BOOL:
            out[o.config_field] = int(bool(value))
        else:
            out[o.config_field] = int(value or o.default or 0)
    return out


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
    job_options: Mapping[str, str | None] = field(default_factory=dict)
    #: CPUs the worker may run on (cpus_allowed / cpumask); None: no restriction
    cpus: frozenset[int] | None = None
    ioengine: str = "psync"
    #: fio's thread number (1-based): clone 0 of each job, then its clones numjobs-1 down to 1
    thread_number: int = 0
    #: files are set up before any job starts (fio's create_serialize), else when the job starts
    create_serialize: bool = True
    layout: LayoutSpec = field(default_factory=LayoutSpec)
    #: lay the files out and do no I/O
    create_only: bool = False
    #: read the job's regions once before it starts (fio's pre_read; it turns invalidate off)
    pre_read: bool = False
    #: ioengine=nbd: the export the job runs on (its `files` are then empty: nothing local is opened)
    nbd: NbdTarget | None = None


@dataclass(frozen=True)
class RunPlan:
    jobs: tuple[JobPlan, ...]
    #: options set in [global] or before the first --name, as written (fio's JSON "global options")
    global_options: Mapping[str, str | None] = field(default_factory=dict)
    warnings: tuple[str, ...] = field(default_factory=tuple)


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
    # 0: the C core aligns to the smallest block size of the direction (bssplit included), as fio
    align = [int(align_opt[d]) if align_opt and align_opt[d] else 0 for d in (0, 1)]
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


#: fio's trim modes: (random, writes each trimmed block after the trim). A trim destroys data as a write
#: does, so a job of these modes counts as writing everywhere (the safety gate, opening files for writing).
TRIM_MODES = {
    "trim": (False, False),
    "randtrim": (True, False),
    "trimwrite": (False, True),
    "randtrimwrite": (True, True),
}


def mode_flags(mode: str) -> tuple[bool, bool, bool] | None:
    """(reads, writes, random) of an rw mode, trims counted as writes; None for a mode the plan lacks."""
    if mode in MODES:
        return MODES[mode]
    if mode in TRIM_MODES:
        random, _ = TRIM_MODES[mode]
        return False, True, random
    return None


def storage_flags(values: Mapping[str, Any]) -> tuple[bool, bool, bool] | None:
    """(reads, writes, random) of a job as its storage sees them: mode_flags, except that a verify_only job
    only reads (it reads back what its writes would have written, and issues none). What opens files for
    writing, lays them out and passes the safety gate follows these; the C config keeps the mode's."""
    flags = mode_flags(str(values["rw"]))
    if flags is None or not values.get("verify_only"):
        return flags
    return True, False, flags[2]


def _trim_bs(values: Mapping[str, Any]) -> int:
    """The trims' block size: bs's third value (fio: a single bs sets all three)."""
    bs = values.get("bs_trim")
    return int(bs) if bs else int(values["bs"][1])


#: fio 3.33 keeps its jobs in 511 shared-memory segments of 8 (fio.h REAL_MAX_JOBS/JOBS_PER_SEG, and the
#: last segment is never used): the 4089th job, numjobs clones included, makes it give up before running
#: anything.  Its --max-jobs flag no longer changes that limit.
MAX_JOBS = 4088


def check_job_count(jobdefs: Sequence[JobDef]) -> None:
    """Refuse more jobs than fio runs, before anything expands the clones."""
    total = 0
    for jd in jobdefs:
        total += max(1, int(jd.values.get("numjobs") or 1))
        if total > MAX_JOBS:
            raise PlanError(
                f"{_where(jd, 'numjobs')}: job '{jd.name}' brings the number of jobs (numjobs clones "
                f"included) past {MAX_JOBS}, the most fio 3.33 runs; it refuses such a run, so iolab does too"
            )


def _io_min_bs(jd: JobDef) -> tuple[int, int]:
    """(fio's smallest block over all directions, the smallest block the job issues)."""
    bs_min, _, _ = _block_sizes(jd.values, "bsrange" in jd.set_at)
    split = jd.values.get("bssplit")
    if split:
        # bssplit sets a direction's block sizes (fio's min_bs is the smallest entry)
        bs_min = [min(int(size) for size, _ in (split[d] if d < len(split) else split[0])) for d in (0, 1)]
    mode = str(jd.values["rw"])
    trim_bs = _trim_bs(jd.values)
    if mode in TRIM_MODES:
        issued = [trim_bs] + ([bs_min[1]] if TRIM_MODES[mode][1] else [])
        return min(*bs_min, trim_bs), min(issued)
    reads, writes, _ = MODES.get(mode, (True, True, False))
    return min(*bs_min, trim_bs), min(bs_min[d] for d in (0, 1) if (reads, writes)[d])


def _setup_files(
    jobdefs: Sequence[JobDef], exports: Mapping[int, NbdTarget]
) -> dict[tuple[int, int], tuple[list[FilePlan], int, int]]:
    """Every clone's files and bytes per loop, (jobdef index, clone) -> (files, bytes, fio thread number).

    fio names all jobs' files first, then sets the files up job after job in its thread order, the
    create_serialize=0 jobs last (they do it when they start), each seeing the sizes left before it."""
    order: list[tuple[int, int, int]] = []  # (position in jobdefs, clone, thread number)
    thread = 1
    for pos, jd in enumerate(jobdefs):
        numjobs = int(jd.values.get("numjobs") or 1)
        # fio adds clone 0, then clones numjobs-1 .. 1
        for n, clone in enumerate([0, *range(numjobs - 1, 0, -1)]):
            order.append((pos, clone, thread + n))
        thread += numjobs
    setup = FileSetup(exports={t.uri: t.info.size for t in exports.values()})
    names: dict[tuple[int, int], tuple[list[str], int]] = {}
    for pos, clone, _ in order:
        jd = jobdefs[pos]
        if pos in exports:
            names[(pos, clone)] = ([exports[pos].uri], 1)  # the export is the job's one file
            continue
        try:
            names[(pos, clone)] = clone_file_names(jd.name, jd.values, clone, setup.allocated)
        except PlanError as exc:
            raise PlanError(f"{_where(jd, 'directory')}: {exc}") from None
    serial = [o for o in order if jobdefs[o[0]].values.get("create_serialize", True)]
    later = [o for o in order if not jobdefs[o[0]].values.get("create_serialize", True)]
    out: dict[tuple[int, int], tuple[list[FilePlan], int, int]] = {}
    for pos, clone, tn in serial + later:
        jd = jobdefs[pos]
        v = jd.values
        flags = storage_flags(v)
        if flags is None:
            continue  # refused by build_plan
        reads, writes, _ = _layout_dirs(str(v["rw"]), flags)
        fio_min, io_min = _io_min_bs(jd)
        files, nr = names[(pos, clone)]
        if not files:
            out[(pos, clone)] = ([], 0, tn)
            continue
        try:
            plans, todo = setup.setup(
                job=jd.name,
                values=v,
                names=files,
                nr_files=nr,
                subjob=clone,
                thread_number=tn,
                set_at=jd.set_at,
                min_bs=fio_min,
                io_min_bs=io_min,
                layout=layout_spec(v, reads, writes),
            )
        except PlanError as exc:
            raise PlanError(f"{_where(jd, 'size')}: {exc}") from None
        out[(pos, clone)] = (plans, todo, tn)
    return out


def _layout_dirs(mode: str, flags: tuple[bool, bool, bool]) -> tuple[bool, bool, bool]:
    """(reads, writes, random) as the file setup sees the job: fio lays a file out for a pure trim job as it
    does for a reading one (the job does not write)."""
    if mode in TRIM_MODES and not TRIM_MODES[mode][1]:
        return True, False, flags[2]
    return flags


def _ddir_mask(mode: str, reads: bool, writes: bool) -> int:
    """The C config's directions: bit 0 reads, bit 1 writes, bit 2 trims."""
    if mode in TRIM_MODES:
        return 4 | (2 if TRIM_MODES[mode][1] else 0)
    return (1 if reads else 0) | (2 if writes else 0)


#: per-direction options whose trim value (their third) iolab does not apply yet, with fio's default for it
_TRIM_UNSUPPORTED = ("rate", "rate_min", "rate_iops", "rate_iops_min")


def _check_trim_job(jd: JobDef) -> None:
    """Refuse what a trim job would do differently from fio here (never accept and ignore)."""
    v = jd.values
    mode = str(v["rw"])
    engine = str(v.get("ioengine") or "psync")
    spec = SUPPORTED_ENGINES.get(engine)
    if spec is not None and not spec.trim:
        raise PlanError(
            f"{_where(jd, 'ioengine')}: rw={mode} needs an engine that trims; ioengine={engine} does not "
            f"(use {', '.join(s.name for s in ENGINE_SPECS if s.trim)})"
        )
    for key in ("bsrange", "bssplit"):
        if key in jd.set_at:
            raise PlanError(
                f"{_where(jd, key)}: {key} with rw={mode} is not supported yet (use bs=READ,WRITE,TRIM)"
            )
    for key in _TRIM_UNSUPPORTED:
        if v.get(f"{key}_trim"):
            raise PlanError(
                f"{_where(jd, key)}: {key} sets a limit for trims (its third value, or one value for all "
                f"directions), which iolab does not apply yet; give it for reads and writes only ({key}=R,W,)"
            )
    if v.get("max_latency"):
        raise PlanError(f"{_where(jd, 'max_latency')}: max_latency with rw={mode} is not supported yet")
    perc = v.get("percentage_random_trim")
    if perc is not None and int(perc) != 100:
        raise PlanError(f"{_where(jd, 'percentage_random')}: percentage_random for trims is not supported")


def _check_steadystate(jd: JobDef) -> None:
    """steadystate=/ss_dur: a threshold fio takes, and no group-wide detection (not implemented)."""
    v = jd.values
    if "steadystate" in jd.set_at and v.get("steadystate_arg") is None:
        raise PlanError(
            f"{_where(jd, 'steadystate')}: steadystate={v['steadystate']} needs a threshold after the"
            f" criterion (e.g. {v['steadystate']}:1% or {v['steadystate']}:10), as fio requires"
        )
    try:
        ss = SteadyState.from_options(v)
    except ValueError as exc:
        raise PlanError(f"{_where(jd, 'steadystate')}: {exc}") from None
    if ss is not None and v.get("group_reporting"):
        raise PlanError(
            f"{_where(jd, 'group_reporting')}: steadystate with group_reporting (fio judges the group's"
            " summed IOPS or bandwidth) is not supported yet; without group_reporting each job is judged"
            " on its own"
        )


def _steadystate_key(v: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """What fio compares between the jobs of a reporting group (steadystate.c): None without a duration.
    fio keeps whole seconds of the duration but turns the settings on for any non-zero one."""
    raw = int(v.get("steadystate_duration") or 0)
    if raw == 0:
        return None
    metric = str(v.get("steadystate") or "iops_slope")
    arg = v.get("steadystate_arg")
    text = "0.01%" if arg is None else str(arg)
    try:
        limit: tuple[Any, ...] = parse_limit(metric, text, int(v.get("kb_base") or 1024))
    except ValueError:  # _check_steadystate refused it already
        limit = (text,)
    return (raw // 1_000_000_000, metric, limit, int(v.get("steadystate_ramp_time") or 0) // 1000)


def build_plan(jobdefs: Sequence[JobDef]) -> RunPlan:
    check_job_count(jobdefs)
    jobs: list[JobPlan] = []
    groupid = 0
    ss_in_group: dict[int, tuple[tuple[Any, ...] | None, str]] = {}
    worker = 0
    for jd in jobdefs:
        mode = str(jd.values["rw"])
        if mode_flags(mode) is None:
            raise PlanError(f"{_where(jd, 'rw')}: rw={mode} is not supported yet")
        if mode in TRIM_MODES:
            _check_trim_job(jd)
        _check_steadystate(jd)
    exports = nbd_targets(jobdefs, mode_flags)
    clone_files = _setup_files(jobdefs, exports)
    for pos, jd in enumerate(jobdefs):
        v = jd.values
        if jobs and (v.get("stonewall") or v.get("new_group")):
            groupid += 1
        # fio rejects a job whose steady state settings differ from an earlier job's in its reporting group
        ss_key = _steadystate_key(v)
        first_key, first_name = ss_in_group.setdefault(groupid, (ss_key, jd.name))
        if ss_key != first_key:
            raise PlanError(
                f"{_where(jd, 'steadystate_duration')}: job {jd.name}: its steady state settings differ from"
                f" job {first_name}'s in the same reporting group, which fio rejects; give both the same"
                " steadystate, steadystate_duration and steadystate_ramp_time, or start a new group"
                " (stonewall or new_group)"
            )
        engine = str(v.get("ioengine") or "psync")
        if engine not in SUPPORTED_ENGINES:
            raise PlanError(
                f"{_where(jd, 'ioengine')}: ioengine={engine} is not supported yet "
                f"(use {', '.join(SUPPORTED_ENGINES)})"
            )
        mode = str(v["rw"])
        flags = mode_flags(mode)
        if flags is None:
            raise PlanError(f"{_where(jd, 'rw')}: rw={mode} is not supported yet")
        if v.get("file_append") and not SUPPORTED_ENGINES[engine].extends_files:
            raise PlanError(
                f"{_where(jd, 'file_append')}: ioengine={engine} cannot extend a file (it writes through a "
                "mapping of the file's current size), so file_append cannot work, as in fio; drop file_append"
            )
        reads, writes, random = flags
        trims = mode in TRIM_MODES
        if writes and v.get("readonly"):
            raise PlanError(f"{_where(jd, 'rw')}: rw={mode} writes but readonly=1 is set")
        bs_min, bs_max, align = _block_sizes(v, "bsrange" in jd.set_at)
        split_n, split_bs, split_perc = _bssplit(v)
        max_bs = max([*bs_max, *split_bs, _trim_bs(v) if trims else 0])
        if engine == "nbd" and max_bs > NBD_MAX_REQUEST:
            raise PlanError(
                f"{_where(jd, 'bs')}: ioengine=nbd: block size {max_bs} is over 32 MiB, the largest request "
                "an NBD server must accept; use bs=32m or less"
            )
        numjobs = int(v.get("numjobs") or 1)
        engine_cfg, engine_notes = _engine_config(jd, engine, reads, writes)
        rate_cfg = _rate_config(jd, bs_min, split_n, split_bs)
        failure_cfg = _failure_config(jd)
        cpu_set = _cpu_set(jd)
        stored = storage_flags(v) or flags
        layout = layout_spec(v, *_layout_dirs(mode, stored)[:2])
        cpu_policy = str(v.get("cpus_allowed_policy") or "shared")
        bw_ns, iops_ns = _sample_intervals(jd)
        # fio's thread order, which its reports follow: clone 0, then numjobs-1 down to 1
        for jobnum in [0, *range(numjobs - 1, 0, -1)]:
            files, todo, thread_number = clone_files[(pos, jobnum)]
            if "randseed" in jd.set_at or v.get("randrepeat", True):
                seed = int(v.get("randseed") or DEFAULT_SEED)
            else:
                seed = int.from_bytes(os.urandom(8), "little")
            modifier = v.get("rw_modifier")
            pattern_cfg = pattern_config(jd, files, random)
            try:
                verify_cfg = verify_config(
                    v,
                    reads=reads,
                    writes=writes,
                    trims=trims,
                    bs_min=bs_min,
                    bs_max=bs_max,
                    split_n=split_n,
                    split_bs=split_bs,
                    thread_number=thread_number,
                )
            except VerifyError as exc:
                raise PlanError(f"{_where(jd, 'verify')}: {exc}") from None
            config: dict[str, Any] = {
                **plain_fields(v),
                "engine": SUPPORTED_ENGINES[engine].engine_id,
                "ddir_mask": _ddir_mask(mode, reads, writes),
                "trim_bs": _trim_bs(v) if trims else 0,
                "trim_blockalign": int(v.get("ba_trim") or 0) if trims else 0,
                "trimwrite": int(trims and TRIM_MODES[mode][1]),
                "random": int(random),
                # fio keeps the count as an unsigned int: 0 (and a negative one) never jumps again
                "rw_seq_nr": (int(modifier) & 0xFFFFFFFF) if (random and modifier is not None) else 1,
                "rw_hole": (int(modifier) & _U64) if (not random and modifier) else 0,
                "rwmix_read": int(v.get("rwmixread", 50)) if (reads and writes) else (100 if reads else 0),
                "io_size": _io_size(v, files, todo),
                "io_size_set": int(bool(v.get("io_size"))),
                # fio turns the random map off for every distribution but the uniform one
                "norandommap": int(bool(v.get("norandommap")) or pattern_cfg["rand_dist"] != 0),
                # every clone gets its own stream, as fio seeds per thread
                "seed": (seed + jobnum * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF,
                # fio's own stream for the read/write mix: the same directions as fio, in the same order
                "rwmix_seed": rwmix_seed(v, thread_number, jd.set_at),
                "sample_interval_ns": bw_ns,
                "iops_interval_ns": iops_ns if iops_ns != bw_ns else 0,
                "invalidate": int(bool(v.get("invalidate", True)) and not v.get("pre_read")),
                "bs_min": bs_min,
                "bs_max": bs_max,
                "blockalign": align,
                "bssplit_n": split_n,
                "bssplit_bs": split_bs,
                "bssplit_perc": split_perc,
                "max_bs": max_bs,
                **engine_cfg,
                **rate_cfg,
                **failure_cfg,
                **pattern_cfg,
                **verify_cfg,
            }
            overwrites = random and v.get("norandommap")
            if config["verify"] and writes and config["io_size"] > todo and not overwrites:
                # fio writes size bytes, verifies them, and counts the reads against io_size: its loop
                # of write+verify passes is not implemented
                raise PlanError(
                    f"{_where(jd, 'io_size')}: verify with io_size larger than size is not implemented"
                    " by iolab (fio writes and verifies size bytes per pass)"
                )
            if engine == "io_uring" and v.get("hipri"):
                _check_hipri(jd, files)
            wait_for = v.get("wait_for")
            target = exports.get(pos)
            if target is not None:
                # the export: sized and cut like a block device, but nothing local is opened or gated
                target = replace(target, file=files[0])
                files = []
            jobs.append(
                JobPlan(
                    name=jd.name,
                    jobnum=jobnum,
                    index=worker,
                    groupid=groupid,
                    group_reporting=bool(v.get("group_reporting")),
                    files=tuple(files),
                    reads=stored[0],
                    writes=stored[1],
                    direct=bool(v.get("direct")),
                    create_on_open=bool(v.get("create_on_open")),
                    unlink=bool(v.get("unlink")),
                    startdelay_ns=int(v.get("startdelay") or 0),
                    wait_for=frozenset([str(wait_for)]) if wait_for else frozenset(),
                    wait_for_all_previous=bool(v.get("stonewall")),
                    config=config,
                    options=v,
                    jobdef_index=jd.index,
                    warnings=(*jd.warnings, *engine_notes, *verify_notes(v, jd.name, thread_number)),
                    # None: written without a value (time_based); fio's JSON leaves those entries out
                    job_options={r.name: r.value for r in jd.raw if not r.from_global},
                    cpus=_clone_cpus(cpu_set, thread_number - 1, cpu_policy),
                    ioengine=engine,
                    thread_number=thread_number,
                    create_serialize=bool(v.get("create_serialize", True)),
                    layout=layout,
                    create_only=bool(v.get("create_only")),
                    pre_read=bool(v.get("pre_read")),
                    nbd=target,
                )
            )
            worker += 1
    _check_wait_for(jobs)
    global_options = {r.name: r.value for r in jobdefs[0].raw if r.from_global} if jobdefs else {}
    return RunPlan(jobs=tuple(jobs), global_options=global_options)


_U64 = (1 << 64) - 1


def _io_size(v: Mapping[str, Any], files: Sequence[FilePlan], todo: int) -> int:
    """Bytes per loop: io_size, io_size=N% of each region (as fio sums it), else the regions' sizes up to
    what fio's setup left as the job's size (`todo`: size= when smaller than the files)."""
    if v.get("io_size"):
        return int(v["io_size"])
    frac = v.get("io_size_percent")
    if frac:
        return max(sum(int(f.region_size * float(frac)) for f in files), 1)
    # fio's byte budget is the size before regions are cut to whole blocks: a random job without a random
    # map issues until it is reached (a last block past it included); sequential and mapped jobs run out of
    # blocks first
    return todo


def _sample_intervals(jd: JobDef) -> tuple[int, int]:
    """bwavgtime and iopsavgtime (ms) as ns: fio averages bandwidth and IOPS samples over each its own."""
    v = jd.values
    out: list[int] = []
    for name in ("bwavgtime", "iopsavgtime"):
        ms = int(v.get(name) or 500)
        if ms <= 0:
            raise PlanError(f"{_where(jd, name)}: {name} must be at least 1 ms")
        out.append(ms * 1_000_000)
    return out[0], out[1]


def _int_or(value: Any, default: int) -> int:
    return default if value is None else int(value)


def _engine_config(jd: JobDef, engine: str, reads: bool, writes: bool) -> tuple[dict[str, Any], list[str]]:
    """The queue-depth, engine-option and polling fields of the C config (fio's fixups applied)."""
    v = jd.values
    notes: list[str] = []
    for name, owners in ENGINE_OPTION_OWNERS.items():
        if name in jd.set_at and engine not in owners:
            raise PlanError(
                f"{_where(jd, name)}: {name} belongs to ioengine={'/'.join(owners)}, "
                f"but the job uses ioengine={engine}"
            )
    spec = SUPPORTED_ENGINES[engine]
    # the one place the effective depth is decided (a synchronous engine has one I/O in flight): the C
    # core runs the depth it is given, and refuses one above the spec's max_depth
    depth = int(v.get("iodepth") or 1) if spec.is_async else 1
    batch = _int_or(v.get("iodepth_batch"), 1)
    if batch <= 0 or batch > depth:
        batch = depth
    cmin = _int_or(v.get("iodepth_batch_complete_min"), 1)
    cmax_opt = v.get("iodepth_batch_complete_max")
    cmax = int(cmax_opt) if cmax_opt is not None else cmin
    if cmax < cmin:
        cmax = cmin
    low_opt = v.get("iodepth_low")
    low = int(low_opt) if low_opt else depth
    if low > depth:
        low = depth
    mode = str(v.get("poll") or "off")
    if mode not in POLL_MODES:
        raise PlanError(f"{_where(jd, 'poll')}: poll={mode}: expected off, on or adaptive")
    if mode != "off" and not spec.polling:
        raise PlanError(
            f"{_where(jd, 'poll')}: poll={mode} needs an asynchronous ioengine "
            f"({' or '.join(ASYNC_ENGINES)}); {engine} has no completions to poll for"
        )
    if v.get("hipri"):
        if not v.get("direct"):
            raise PlanError(f"{_where(jd, 'hipri')}: hipri (polled completions) needs direct=1")
        if v.get("fsync") or v.get("fdatasync") or v.get("end_fsync"):
            raise PlanError(
                f"{_where(jd, 'hipri')}: a polled io_uring (hipri) cannot fsync; "
                "drop fsync/fdatasync/end_fsync or hipri"
            )
    if spec.buffered_depth_note and not v.get("direct") and depth > 1:
        notes.append(spec.buffered_depth_note)
    capped = depth_cap_message(engine, int(v.get("iodepth") or 1))
    if capped:
        notes.append(capped)
    cfg = {
        "iodepth": depth,
        "iodepth_batch_submit": batch,
        "iodepth_batch_complete_min": cmin,
        "iodepth_batch_complete_max": cmax,
        "iodepth_low": low,
        "engine_flags": engine_flags(spec, v),
        "poll_mode": POLL_MODES[mode],
    }
    return cfg, notes


def _rate_config(
    jd: JobDef, bs_min: Sequence[int], split_n: Sequence[int], split_bs: Sequence[int]
) -> dict[str, Any]:
    """rate / rate_iops / rate_process and thinktime (an IOPS cap counts bytes of the smallest block)."""
    v = jd.values
    smallest = []
    for d in (0, 1):
        sizes = [split_bs[d * 64 + i] for i in range(split_n[d])]
        smallest.append(min(sizes) if sizes else int(bs_min[d]))
    rate = v.get("rate") or (None, None)
    iops = v.get("rate_iops") or (None, None)
    bps = [0, 0]
    for d in (0, 1):
        if iops[d]:
            bps[d] = _int_or(iops[d], 0) * smallest[d]
        elif rate[d]:
            bps[d] = _int_or(rate[d], 0)
    process = str(v.get("rate_process") or "linear")
    blocks_set = "thinktime_blocks" in jd.set_at
    return {
        "rate_bps": bps,
        "rate_min_bs": smallest,
        "rate_process": 1 if process == "poisson" else 0,
        "thinktime_blocks": max(int(v.get("thinktime_blocks") or 1), 1),
        "thinktime_spin_ns": min(int(v.get("thinktime_spin") or 0), int(v.get("thinktime") or 0)),
        "thinktime_blocks_type": 1 if str(v.get("thinktime_blocks_type") or "complete") == "issue" else 0,
        "thinktime_blocks_set": int(blocks_set),
    }


#: errno names fio 3.33 knows in ignore_error (its list stops at ERANGE; other names are refused by fio too)
FIO_ERRNO_NAMES: tuple[str, ...] = (
    "EPERM", "ENOENT", "ESRCH", "EINTR", "EIO", "ENXIO", "E2BIG", "ENOEXEC", "EBADF", "ECHILD", "EAGAIN",
    "ENOMEM", "EACCES", "EFAULT", "ENOTBLK", "EBUSY", "EEXIST", "EXDEV", "ENODEV", "ENOTDIR", "EISDIR",
    "EINVAL", "ENFILE", "EMFILE", "ENOTTY", "ETXTBSY", "EFBIG", "ENOSPC", "ESPIPE", "EROFS", "EMLINK",
    "EPIPE", "EDOM", "ERANGE",
)  # fmt: skip


def _atoi(text: str) -> int:
    """C's atoi: leading blanks, an optional sign, then digits up to the first non-digit (0 if none)."""
    m = re.match(r"\s*([+-]?\d+)", text)
    return int(m.group(1)) if m else 0


def parse_ignore_error(text: str) -> list[list[int]]:
    """fio's ignore_error: up to three ':' separated errno lists (read, write, verify) split on ','.

    An entry is a name fio knows (errno = its place in fio's list), or a number read like C's atoi (its
    sign dropped; "0x16" reads as 0 and is refused, as in fio 3.33).  A list ends at an empty entry, as
    in fio.  Raises ValueError for what fio refuses."""
    out: list[list[int]] = []
    parts = text.strip().split(",")
    if len(parts) > 3:
        raise ValueError("at most three lists (read, write, verify)")
    for part in parts:
        codes: list[int] = []
        for entry in part.split(":"):
            if not entry:
                break
            if entry.startswith("E"):
                code = FIO_ERRNO_NAMES.index(entry) + 1 if entry in FIO_ERRNO_NAMES else 0
            else:
                code = abs(_atoi(entry))
            if not code:
                raise ValueError(
                    f"unknown error {entry} (fio knows the names {FIO_ERRNO_NAMES[0]}.."
                    f"{FIO_ERRNO_NAMES[-1]}; give others as numbers)"
                )
            codes.append(code)
        out.append(codes)
    return out


def _failure_config(jd: JobDef) -> dict[str, Any]:
    """continue_on_error / ignore_error, max_latency and rate_min / rate_iops_min / rate_cycle."""
    v = jd.values
    lists: list[list[int]] = [[], []]
    text = v.get("ignore_error")
    if text:
        try:
            parsed = parse_ignore_error(str(text))
        except ValueError as exc:
            raise PlanError(f"{_where(jd, 'ignore_error')}: ignore_error={text}: {exc}") from None
        for d in (0, 1):
            if d < len(parsed):
                if len(parsed[d]) > IGNORE_ERROR_MAX:
                    raise PlanError(
                        f"{_where(jd, 'ignore_error')}: ignore_error: at most {IGNORE_ERROR_MAX}"
                        " errors per direction"
                    )
                lists[d] = parsed[d]
    table = [0] * (2 * IGNORE_ERROR_MAX)
    for d in (0, 1):
        table[d * IGNORE_ERROR_MAX : d * IGNORE_ERROR_MAX + len(lists[d])] = lists[d]
    # fio checks max_latency on the total latency it records: not with disable_lat, gtod_reduce or stats=0
    measured = v.get("stats", True) and not (v.get("disable_lat") or v.get("gtod_reduce"))
    max_lat = int(v.get("max_latency") or 0) if measured else 0
    rmin = v.get("rate_min") or (None, None)
    imin = v.get("rate_iops_min") or (None, None)
    rate = v.get("rate") or (None, None)
    iops = v.get("rate_iops") or (None, None)
    if any(rmin) and any(imin):
        raise PlanError(
            f"{_where(jd, 'rate_iops_min')}: rate_min and rate_iops_min are mutually exclusive (as in fio)"
        )
    for d in (0, 1):
        cap, icap = _int_or(rate[d], 0), _int_or(iops[d], 0)
        if (cap and cap < _int_or(rmin[d], 0)) or (icap and icap < _int_or(imin[d], 0)):
            raise PlanError(
                f"{_where(jd, 'rate_min' if any(rmin) else 'rate_iops_min')}: the minimum rate"
                f" exceeds the rate ({('read', 'write')[d]}), as fio refuses"
            )
    return {
        "coe_mask": error_types(v),
        "ignore_error_n": [len(lists[0]), len(lists[1])],
        "ignore_error": table,
        "max_latency_ns": [max_lat, max_lat],
        "rate_min_bps": [_int_or(rmin[0], 0), _int_or(rmin[1], 0)],
        "rate_min_iops": [_int_or(imin[0], 0), _int_or(imin[1], 0)],
        "rate_cycle_ns": max(int(v.get("rate_cycle") or 1000), 1) * 1_000_000,
    }


def parse_cpu_list(text: str) -> list[int]:
    """fio's cpus_allowed syntax: '0,5,8-15' (sorted, without duplicates)."""
    cpus: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            raise ValueError(f"'{part}' is not a CPU number or a range like 8-15") from None
        if a < 0 or b < a:
            raise ValueError(f"'{part}' is not a valid CPU range")
        cpus.update(range(a, b + 1))
    if not cpus:
        raise ValueError("no CPUs listed")
    return sorted(cpus)


def _cpu_set(jd: JobDef) -> list[int] | None:
    v = jd.values
    text = v.get("cpus_allowed")
    mask = v.get("cpumask")
    if text:
        try:
            cpus = parse_cpu_list(str(text))
        except ValueError as exc:
            raise PlanError(f"{_where(jd, 'cpus_allowed')}: cpus_allowed={text}: {exc}") from None
        where = "cpus_allowed"
    elif mask:
        cpus = [i for i in range(int(mask).bit_length()) if int(mask) >> i & 1]
        where = "cpumask"
    else:
        return None
    online = os.sched_getaffinity(0)
    missing = [c for c in cpus if c not in online]
    if missing:
        raise PlanError(
            f"{_where(jd, where)}: CPU(s) {', '.join(map(str, missing))} are not available "
            f"here (this process may use {', '.join(map(str, sorted(online)))})"
        )
    return cpus


def _clone_cpus(cpus: list[int] | None, thread_index: int, policy: str) -> frozenset[int] | None:
    """shared: every clone gets the whole set; split: one CPU each, round robin over fio's thread numbers
    (counted over all jobs, from 0), as fio's fio_cpus_split."""
    if cpus is None:
        return None
    if policy == "split":
        return frozenset([cpus[thread_index % len(cpus)]])
    return frozenset(cpus)


def block_queue_dir(path: str) -> str | None:
    """The sysfs queue directory of the disk holding path (a device, or a file on one); None if unknown."""
    try:
        st = os.stat(path)
    except OSError:
        parent = os.path.dirname(os.path.abspath(path)) or "/"
        try:
            st = os.stat(parent)
        except OSError:
            return None
    dev = st.st_rdev if stat.S_ISBLK(st.st_mode) else st.st_dev
    base = f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}"
    for cand in (base, os.path.join(base, "..")):
        q = os.path.join(cand, "queue")
        if os.path.isdir(q):
            return os.path.realpath(q)
    return None


def _check_hipri(jd: JobDef, files: Sequence[FilePlan]) -> None:
    """hipri asks the kernel to poll the device for completions: refuse it where the device cannot."""
    for fp in files:
        q = block_queue_dir(fp.path)
        if q is None:
            raise PlanError(
                f"{_where(jd, 'hipri')}: hipri: cannot tell whether {fp.path} is on a device "
                "with poll queues (no block device behind it)"
            )
        try:
            with open(os.path.join(q, "io_poll")) as f:
                polled = f.read().strip() == "1"
        except OSError:
            polled = False
        if not polled:
            dev = os.path.basename(os.path.dirname(q))
            raise PlanError(
                f"{_where(jd, 'hipri')}: hipri needs polled completions, but {fp.path} is on {dev}, which "
                f"has no poll queues ({q}/io_poll is 0); for NVMe load the driver with poll_queues=N, "
                "or drop hipri"
            )


def _check_wait_for(jobs: Sequence[JobPlan]) -> None:
    seen: set[str] = set()
    for job in jobs:
        for name in job.wait_for:
            if name not in seen:
                raise PlanError(f"job '{job.name}': wait_for={name} names no earlier job")
        seen.add(job.name)
