"""The doctor's view of jobs, from a RunPlan or from JobDefs (DESIGN.md sections 1 and plan).

Checks see `JobView`s: one per worker (numjobs clone) with its files and regions resolved. They come from
`iolab.plan.build_plan` when it can be used; otherwise (plan package not importable, or the plan rejects the
job) from a best-effort resolution here that follows the same rules, so a job the plan refuses is still
diagnosed.
"""

from __future__ import annotations

import importlib
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from iolab.doctor.findings import Finding, finding

MODES: dict[str, tuple[bool, bool, bool]] = {
    # mode: (reads, writes, random)
    "read": (True, False, False),
    "write": (False, True, False),
    "randread": (True, False, True),
    "randwrite": (False, True, True),
    "rw": (True, True, False),
    "readwrite": (True, True, False),
    "randrw": (True, True, True),
    "trim": (False, True, False),
    "randtrim": (False, True, True),
    "trimwrite": (False, True, False),
    "randtrimwrite": (False, True, True),
}


class LocationLike(Protocol):
    @property
    def file(self) -> str: ...
    @property
    def line(self) -> int: ...


class JobDefLike(Protocol):
    """Structural type of `iolab.jobfile.JobDef` (DESIGN.md section 1)."""

    @property
    def name(self) -> str: ...
    @property
    def index(self) -> int: ...
    @property
    def values(self) -> Mapping[str, Any]: ...
    @property
    def set_at(self) -> Mapping[str, Any]: ...
    @property
    def source(self) -> Any: ...


class FilePlanLike(Protocol):
    @property
    def path(self) -> str: ...
    @property
    def is_block(self) -> bool: ...
    @property
    def required_size(self) -> int: ...
    @property
    def region_offset(self) -> int: ...
    @property
    def region_size(self) -> int: ...


class JobPlanLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def jobnum(self) -> int: ...
    @property
    def files(self) -> Sequence[FilePlanLike]: ...
    @property
    def reads(self) -> bool: ...
    @property
    def writes(self) -> bool: ...
    @property
    def direct(self) -> bool: ...
    @property
    def options(self) -> Mapping[str, Any]: ...
    @property
    def jobdef_index(self) -> int: ...


class RunPlanLike(Protocol):
    @property
    def jobs(self) -> Sequence[JobPlanLike]: ...


@dataclass(frozen=True)
class FileView:
    path: str
    is_block: bool
    region_offset: int
    region_size: int
    required_size: int = 0


@dataclass(frozen=True)
class JobView:
    name: str
    jobnum: int
    jobdef_index: int
    values: Mapping[str, Any]
    files: tuple[FileView, ...]
    reads: bool
    writes: bool
    random: bool
    direct: bool
    #: option -> "file:line" for options set explicitly (empty when only a plan was given)
    set_at: Mapping[str, str] = field(default_factory=dict)
    source: str = ""

    def where(self, option: str) -> str:
        return self.set_at.get(option) or self.source

    def fix(self, line: str, option: str | None = None) -> str:
        """The job line to change, with where it is when known: 'jobs.fio:4 [name]: direct=1'."""
        loc = self.where(option) if option else self.source
        section = f"[{self.name}] " if self.name else ""
        return f"{loc + ' ' if loc else ''}{section}{line}"


def _loc(location: Any) -> str:
    file = getattr(location, "file", None)
    line = getattr(location, "line", None)
    if file is None or line == 0:  # line 0: no real place (a translated command)
        return ""
    return f"{file}:{line}" if line is not None else str(file)


def _mode(values: Mapping[str, Any]) -> tuple[bool, bool, bool]:
    return MODES.get(str(values.get("rw") or "read"), (True, False, False))


def _direct(values: Mapping[str, Any], set_at: Mapping[str, Any] | None = None) -> bool:
    direct = bool(values.get("direct"))
    if set_at is not None and "buffered" in set_at and "direct" not in set_at:
        direct = not bool(values.get("buffered"))
    return direct


def _current_size(path: str) -> tuple[bool, int | None]:
    try:
        st = os.stat(path)
    except OSError:
        return False, None
    if stat.S_ISBLK(st.st_mode):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return True, None
        try:
            return True, os.lseek(fd, 0, os.SEEK_END)
        finally:
            os.close(fd)
    return False, st.st_size


def _resolve_files(jd: JobDefLike, jobnum: int) -> tuple[FileView, ...]:
    """The plan's file rules, best effort (never raises)."""
    v = jd.values
    names = [str(n) for n in (v.get("filename") or [])]
    if isinstance(v.get("filename"), str):
        names = [n for n in str(v["filename"]).split(":") if n]
    directory = str(v.get("directory") or "")
    if not names:
        names = [f"{jd.name}.{jobnum}.{i}" for i in range(int(v.get("nrfiles") or 1))]
    names = [n if os.path.isabs(n) or not directory else os.path.join(directory, n) for n in names]
    size = int(v.get("size") or 0)
    filesize = int(v.get("filesize") or 0)
    offset = int(v.get("offset") or 0) + jobnum * int(v.get("offset_increment") or 0)
    per_file = size // len(names) if size else 0
    files = []
    for path in names:
        is_block, current = _current_size(path)
        if per_file:
            region = per_file
        elif filesize and not is_block:
            region = filesize - offset
        else:
            region = (current or 0) - offset
        region = max(region, 0)
        required = 0 if is_block else max(offset + region, filesize)
        files.append(FileView(path, is_block, offset, region, required))
    return tuple(files)


def views_from_jobdefs(jobdefs: Sequence[JobDefLike]) -> tuple[list[JobView], list[Finding]]:
    """JobViews for JobDefs: through iolab.plan when possible, else resolved here."""
    notes: list[Finding] = []
    try:
        plan_module = importlib.import_module("iolab.plan")
    except ImportError:
        plan_module = None
    if plan_module is not None:
        plan_error: type[Exception] = plan_module.PlanError
        try:
            plan = plan_module.build_plan(list(jobdefs))
        except (plan_error, OSError) as exc:  # OSError: a target the plan cannot open (permissions)
            notes.append(
                finding(
                    "IOL-PLAN-001", str(exc), {"error": str(exc)}, "change the option named in the message"
                )
            )
        else:
            return views_from_plan(plan, jobdefs), notes
    views: list[JobView] = []
    for jd in jobdefs:
        v = jd.values
        reads, writes, random = _mode(v)
        for jobnum in range(max(int(v.get("numjobs") or 1), 1)):
            views.append(
                JobView(
                    name=jd.name,
                    jobnum=jobnum,
                    jobdef_index=jd.index,
                    values=v,
                    files=_resolve_files(jd, jobnum),
                    reads=reads,
                    writes=writes,
                    random=random,
                    direct=_direct(v, jd.set_at),
                    set_at={k: _loc(loc) for k, loc in jd.set_at.items()},
                    source=_loc(jd.source),
                )
            )
    return views, notes


def views_from_plan(
    plan: RunPlanLike | Sequence[JobPlanLike], jobdefs: Sequence[JobDefLike] | None = None
) -> list[JobView]:
    jobs = plan.jobs if hasattr(plan, "jobs") else plan
    by_index = {jd.index: jd for jd in jobdefs or ()}
    views = []
    for job in jobs:
        jd = by_index.get(job.jobdef_index)
        v = job.options
        views.append(
            JobView(
                name=job.name,
                jobnum=job.jobnum,
                jobdef_index=job.jobdef_index,
                values=v,
                files=tuple(
                    FileView(f.path, f.is_block, f.region_offset, f.region_size, f.required_size)
                    for f in job.files
                ),
                reads=job.reads,
                writes=job.writes,
                random=_mode(v)[2],
                direct=job.direct,
                set_at={k: _loc(loc) for k, loc in jd.set_at.items()} if jd else {},
                source=_loc(jd.source) if jd else "",
            )
        )
    return views


def to_views(jobs: Any, jobdefs: Sequence[JobDefLike] | None = None) -> tuple[list[JobView], list[Finding]]:
    """Accept a RunPlan, a sequence of JobPlans, or a sequence of JobDefs."""
    if hasattr(jobs, "jobs"):
        return views_from_plan(jobs, jobdefs), []
    seq = list(jobs)
    if seq and all(isinstance(j, JobView) for j in seq):
        return seq, []
    if seq and hasattr(seq[0], "files") and hasattr(seq[0], "jobnum"):
        return views_from_plan(seq, jobdefs), []
    return views_from_jobdefs(seq)


# ------------------------------------------------------------------ JobDef-shaped values without the parser

#: fio defaults of the options the doctor reads (the option table fills every option; this is for JobDefs the
#: doctor builds itself, from a translated command line)
DEFAULTS: dict[str, Any] = {
    "rw": "read",
    "rw_modifier": None,
    "bs": (4096, 4096),
    "bsrange": None,
    "bssplit": None,
    "ioengine": "psync",
    "iodepth": 1,
    "numjobs": 1,
    "direct": False,
    "buffered": True,
    "size": 0,
    "filesize": 0,
    "io_size": 0,
    "offset": 0,
    "offset_increment": 0,
    "filename": [],
    "directory": "",
    "nrfiles": 1,
    "runtime": 0,
    "ramp_time": 0,
    "time_based": False,
    "loops": 1,
    "fsync": 0,
    "fdatasync": 0,
    "end_fsync": False,
    "fsync_on_close": False,
    "sync": "none",
    "zero_buffers": False,
    "refill_buffers": False,
    "allow_mounted_write": False,
}


@dataclass(frozen=True)
class Location:
    file: str
    line: int


@dataclass(frozen=True)
class SimpleJobDef:
    """A JobDef-shaped object (DESIGN.md section 1) for jobs the doctor builds itself."""

    name: str
    index: int
    values: Mapping[str, Any]
    set_at: Mapping[str, Location] = field(default_factory=dict)
    source: Location = Location("<command>", 0)
    warnings: tuple[str, ...] = ()


def make_jobdef(
    name: str, values: Mapping[str, Any], index: int = 0, source: str = "<command>"
) -> SimpleJobDef:
    """Defaults filled in; every given value counts as explicitly set."""
    full = {**DEFAULTS, **values}
    if "buffered" in values and "direct" not in values:
        full["direct"] = not bool(values["buffered"])
    full["buffered"] = not bool(full["direct"])
    loc = Location(source, 0)
    return SimpleJobDef(name, index, full, {k: loc for k in values}, loc)
