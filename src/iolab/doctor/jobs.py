"""The doctor's view of jobs: one `JobView` per worker, as `iolab.plan.build_plan` resolved it.

Files, sizes and offsets are the plan's: the doctor never works them out itself. When the plan rejects the
jobs (IOL-PLAN-001) each JobDef still gets a view, with the JobDef's values and the files it names but no
regions (`planned=False`), so the checks that need no regions still run on a job that cannot be run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from iolab.doctor.findings import Finding, finding
from iolab.jobfile import JobDef, Location, parse_cli
from iolab.plan import JobPlan, NbdTarget, PlanError, RunPlan, build_plan, storage_flags


@dataclass(frozen=True)
class FileView:
    path: str
    region_offset: int = 0
    region_size: int = 0


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
    #: False: the plan rejected the job, the files carry no regions
    planned: bool = True
    #: the job's setup lays a file out (creates, extends, pre-fills it); it removes its files (unlink=1)
    lays_out: bool = False
    unlinks: bool = False
    #: ioengine=nbd: the export (the job has no local files)
    nbd: NbdTarget | None = None

    @property
    def modifies(self) -> bool:
        """Writes, lays out or unlinks: what the safety gate checks."""
        return self.writes or self.lays_out or self.unlinks

    def where(self, option: str) -> str:
        return self.set_at.get(option) or self.source

    def fix(self, line: str, option: str | None = None) -> str:
        """The job line to change, with where it is when known: 'jobs.fio:4 [name]: direct=1'."""
        loc = self.where(option) if option else self.source
        section = f"[{self.name}] " if self.name else ""
        return f"{loc + ' ' if loc else ''}{section}{line}"


#: what the checks, the safety gate and devices_for accept
Jobs = RunPlan | Sequence[JobPlan] | Sequence[JobDef] | Sequence[JobView]


def _loc(location: Location) -> str:
    return str(location) if location.line else ""  # line 0: no real place (a translated command)


def _located(jd: JobDef | None) -> dict[str, Any]:
    """JobView's set_at and source for a JobDef."""
    if jd is None:
        return {}
    return {"set_at": {k: _loc(loc) for k, loc in jd.set_at.items()}, "source": _loc(jd.source)}


def views_from_plan(jobs: Sequence[JobPlan], jobdefs: Sequence[JobDef] | None = None) -> list[JobView]:
    by_index = {jd.index: jd for jd in jobdefs or ()}
    return [
        JobView(
            name=job.name,
            jobnum=job.jobnum,
            jobdef_index=job.jobdef_index,
            values=job.options,
            files=tuple(FileView(f.path, f.region_offset, f.region_size) for f in job.files),
            reads=job.reads,
            writes=job.writes,
            random=bool(job.config["random"]),
            direct=job.direct,
            lays_out=any(f.extend for f in job.files),
            unlinks=job.unlink,
            nbd=job.nbd,
            **_located(by_index.get(job.jobdef_index)),
        )
        for job in jobs
    ]


def _unplanned(jd: JobDef) -> JobView:
    """A JobDef the plan rejected: its values and the files it names, no regions."""
    v = jd.values
    # trims count as writes (they destroy data); a mode the plan does not know is taken as writing too
    reads, writes, random = storage_flags(v) or (False, True, str(v["rw"]).startswith("rand"))
    files = tuple(FileView(os.path.join(v["directory"] or "", name)) for name in v["filename"])
    return JobView(
        jd.name,
        0,
        jd.index,
        v,
        files,
        reads,
        writes,
        random,
        bool(v["direct"]),
        planned=False,
        unlinks=bool(v.get("unlink")),
        **_located(jd),
    )


def views_from_jobdefs(jobdefs: Sequence[JobDef]) -> tuple[list[JobView], list[Finding]]:
    """JobViews through the plan; when it rejects the jobs, IOL-PLAN-001 and unplanned views."""
    try:
        plan = build_plan(jobdefs)
    except (PlanError, OSError) as exc:  # OSError: a target the plan cannot open (permissions)
        error = finding(
            "IOL-PLAN-001", str(exc), {"error": str(exc)}, "change the option named in the message"
        )
        return [_unplanned(jd) for jd in jobdefs], [error]
    return views_from_plan(plan.jobs, jobdefs), []


def to_views(jobs: Jobs, jobdefs: Sequence[JobDef] | None = None) -> tuple[list[JobView], list[Finding]]:
    """Accept a RunPlan, JobPlans, JobDefs (planned here) or JobViews."""
    items = list(jobs.jobs if isinstance(jobs, RunPlan) else jobs)
    views = [j for j in items if isinstance(j, JobView)]
    plans = [j for j in items if isinstance(j, JobPlan)]
    if views or plans:
        return views + views_from_plan(plans, jobdefs), []
    return views_from_jobdefs([j for j in items if isinstance(j, JobDef)])


def make_jobdefs(jobs: Sequence[tuple[str, Mapping[str, str]]], source: str) -> list[JobDef]:
    """JobDefs for jobs the doctor builds itself (a translated command), from option text, by the parser.

    They are written nowhere: every location is `source` at line 0, so fixes name no place.
    """
    argv = [
        arg for name, opts in jobs for arg in (f"--name={name}", *(f"--{k}={v}" for k, v in opts.items()))
    ]
    nowhere = Location(source, 0)
    return [
        replace(jd, set_at=dict.fromkeys(jd.set_at, nowhere), source=nowhere) for jd in parse_cli(argv).jobs
    ]
