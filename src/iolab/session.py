"""One run, start to end: the pipeline every way of running jobs goes through.

    job definitions -> plan -> guard -> engine -> analysis -> report

The caller reads the jobs (the jobfile phase: `iolab run` from fio's command line, `iolab quick` from its
shipped job files) and hands this module the parsed JobDefs:

- `execute(jobdefs, opts)` plans them (iolab.plan), guards the run (the doctor's pre-run checks and the
  safety gate, which opens every file once: the anchors), lays the files out and runs the jobs on the
  engine (iolab.engine) through those anchors only, then analyses the raw results (iolab.analysis) into a
  RunResult and an exit status.
- `run_and_report(jobdefs, opts, ...)` is `execute` followed by the report phase (iolab.report): the
  chosen formats on stdout, or in --output, a file that is only replaced once the report is complete.

Messages go to stderr as `iolab: ...`; stdout carries the report alone.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from iolab import __version__, doctor, interrupt
from iolab.analysis.core_result import CoreResult
from iolab.analysis.diskstats import disk_util
from iolab.analysis.model import RunResult, job_result, run_result
from iolab.analysis.verify import verify_messages, write_dumps
from iolab.doctor import Finding
from iolab.engine.runner import Phase, RunOutcome, prepare_files, run_plan
from iolab.jobfile import JobDef
from iolab.output import OutputError, ReportFile, say
from iolab.plan import JobPlan, PlanError, RunPlan, build_plan
from iolab.report import PreambleJob, render, render_preamble
from iolab.status import StatusLine

__all__ = ["RunOptions", "RunRefused", "execute", "run_and_report"]


@dataclass
class RunOptions:
    output_format: str = "normal"
    output: str | None = None
    eta: str = "auto"
    strict: bool = False
    allow_destroy: tuple[str, ...] = ()
    # the doctor's findings also go to stderr (the normal report on stdout has them already)
    findings_to_stderr: bool = False


class RunRefused(Exception):
    """The doctor found errors (unsafe target, or any warning under --strict): nothing was run."""


@dataclass
class _Ran:
    """What the engine phase hands the analysis: the workers' outcomes and the devices' counters."""

    outcome: RunOutcome
    #: each watched device's counters over the whole run (ends included)
    device_diff: dict[str, doctor.DeviceStat]


def execute(
    jobdefs: Sequence[JobDef], opts: RunOptions, on_start: Callable[[RunPlan], None] | None = None
) -> tuple[RunResult, int]:
    """Plan, guard, lay out, run and analyse; returns (RunResult, exit status).

    `on_start` is called with the plan once the checks passed, just before the files are laid out.
    Raises PlanError (bad jobs), RunRefused (the doctor said no), OSError (a file we may not open, no space
    for a layout) and interrupt.Interrupted (stopped before any job ran)."""
    plan = build_plan(jobdefs)
    findings = doctor.pre_run(plan, jobdefs)
    # open once: every file the run uses is opened here, once, and checked on that fd; from here on it is
    # used through these anchors only (layout, the workers' opens, unlink), never through its name
    gate = doctor.SafetyGate.open(plan, opts.allow_destroy)
    with gate:
        findings = _guard([*findings, *gate.findings], opts)
        if on_start is not None:
            on_start(plan)
        ran = _run_engine(plan, gate, opts)
    return _analyse(plan, ran, findings, opts)


def _guard(findings: list[Finding], opts: RunOptions) -> list[Finding]:
    """The doctor's verdict on the run: refuse it on errors (every warning is one under --strict)."""
    if opts.strict:
        findings = doctor.strict(findings)
    if doctor.has_errors(findings):
        raise RunRefused(doctor.render_findings(findings))
    interrupt.check("checking the jobs")
    if opts.findings_to_stderr and findings:
        print(doctor.render_findings(findings), file=sys.stderr)
    return findings


def _run_engine(plan: RunPlan, gate: doctor.RunGate, opts: RunOptions) -> _Ran:
    """Lay the files out and run the jobs, through the gate's anchors, with the device counters read
    around the whole run and around every phase."""
    failed: dict[int, tuple[str, int]] = {}
    for note in prepare_files(plan, failed, gate.anchors):
        if opts.eta != "never":
            print(f"iolab: {note}", file=sys.stderr)
    cut = [message for message, errnum in failed.values() if errnum == errno.EINTR]
    interrupt.check(f"laying out the files ({cut[0]})" if cut else "laying out the files")
    watched = doctor.devices_for(plan)

    def snapshot() -> doctor.Snapshot:
        return doctor.DeviceCounters.snapshot(watched)

    counters_before = snapshot()
    with StatusLine(opts.eta) as status:
        # the device counters are also read at both ends of every phase (stonewall, wait_for)
        outcome = run_plan(
            plan, on_progress=status.update, phase_snapshot=snapshot, failed=failed, anchors=gate.anchors
        )
    counters_after = snapshot()
    return _Ran(outcome, doctor.DeviceCounters.diff(counters_before, counters_after))


def _paths(jp: JobPlan) -> list[str]:
    """The job's files in the core's numbering (a file with nothing to do is left out, as the runner
    does); an nbd job's one file is its export, named by its URI."""
    if jp.nbd is not None:
        return [jp.nbd.uri]
    return [fp.path for fp in jp.files if fp.region_size > 0]


def _analyse(plan: RunPlan, ran: _Ran, findings: list[Finding], opts: RunOptions) -> tuple[RunResult, int]:
    """The workers' raw results -> a RunResult (with the doctor's findings and the device check) and the
    exit status."""
    outcome = ran.outcome
    if outcome.signal is not None and all(w.raw is None for w in outcome.workers):
        raise interrupt.Interrupted(outcome.signal, "starting the jobs")
    results = []
    reported = {f.message for f in findings}
    raws: dict[int, CoreResult] = {}  # JobPlan.index -> the core's result
    status_code = 0
    elapsed_ms = 0
    for worker in outcome.workers:
        jp = worker.plan
        raw = worker.raw
        if raw is None:
            say(f"job '{jp.name}' ({jp.jobnum}): {worker.setup_error or 'did not run'}")
            # stopped by the signal (its layout, or abandoned after a second one): the interruption's status
            if not (outcome.interrupted and worker.setup_errno == errno.EINTR):
                status_code = 1
            raw = CoreResult(
                error=worker.setup_errno, error_msg=worker.setup_error or "did not run", io_loop=False
            )
        elif raw.error:
            ddir = raw.error_ddir
            where = f", {ddir} at offset {raw.error_offset}" if ddir else ""
            say(f"job '{jp.name}' ({jp.jobnum}): {raw.error_msg} (errno {raw.error}{where})")
            status_code = 1
        dumps: dict[int, list[tuple[str, str]]] = {}
        if raw.verify is not None:  # fio's report of each bad block (also those continue_on_error let pass)
            if jp.options.get("verify_dump"):
                dumps = write_dumps(raw.verify, _paths(jp), os.getcwd())
            for line in verify_messages(raw.verify, _paths(jp), dumps):
                say(line)
        raws[jp.index] = raw
        elapsed_ms = max(elapsed_ms, int((worker.finished_at - worker.started_at) * 1000))
        results.append(
            job_result(
                raw,
                name=jp.name,
                jobnum=jp.jobnum,
                groupid=jp.groupid,
                options=jp.options,
                sample_interval_ms=jp.config["sample_interval_ns"] / 1e6,
                iops_interval_ms=(jp.config["iops_interval_ns"] or jp.config["sample_interval_ns"]) / 1e6,
                # a plan note the doctor reported as a finding is not said twice
                warnings=[*(w for w in jp.warnings if w not in reported), *worker.notes],
                job_options=jp.job_options,
                elapsed_s=max(1, round(worker.finished_at - worker.started_at)),
                paths=_paths(jp),
                verify_dumps=dumps,
                steadystate=worker.steadystate,
            )
        )
    run_warnings: list[str] = []
    if outcome.signal is not None:
        name = interrupt.signal_name(outcome.signal)
        run_warnings.append(f"interrupted ({name}): results cover only what ran until then")
    extra: dict[str, Any] = {"version": __version__, "findings": doctor.findings_json(findings)}
    if outcome.signal is not None:
        abandoned = [w for w in outcome.workers if w.raw is None and w.setup_errno == errno.EINTR]
        extra["interrupted"] = {
            "signal": interrupt.signal_name(outcome.signal),
            "exit_status": 128 + outcome.signal,
            "abandoned_jobs": len(abandoned),
        }
    check = _device_check(plan, outcome.phases, raws)
    extra["device_check"] = check.to_json()
    if opts.findings_to_stderr:
        after = [f for phase in check.phases for f in phase.report.findings]
        if after:
            print(doctor.render_findings(after), file=sys.stderr)
    appendix = check.render().splitlines()
    run = run_result(
        results,
        group_reporting=False,  # fio takes group_reporting per job: each result carries its own
        global_options=plan.global_options,
        disk_util=disk_util(ran.device_diff, elapsed_ms),
        warnings=run_warnings,
    )
    run.preface = doctor.render_findings(findings).splitlines()
    run.appendix = appendix
    run.iolab = extra
    if outcome.signal is not None and status_code == 0:
        status_code = 128 + outcome.signal
    return run, status_code


def _device_check(plan: RunPlan, phases: Sequence[Phase], raws: dict[int, CoreResult]) -> doctor.DeviceCheck:
    """The lie detector, once per phase: device counters at the phase's ends against what its jobs issued
    (ramp_time I/O included: the device saw it), on the devices under that phase's files only."""
    checks = []
    for number, phase in enumerate(phases, 1):
        jobs = [plan.jobs[i] for i in phase.jobs]
        issued = doctor.Issued.from_raw(
            [raws[i].to_core() for i in phase.jobs if i in raws],
            direct=all(jp.direct for jp in jobs),
            ramp_time=any(jp.config["ramp_ns"] for jp in jobs),
            trims_punch_files=any(not (f.is_block or f.is_char) for jp in jobs for f in jp.files),
        )
        diff = doctor.DeviceCounters.diff(phase.before, phase.after)
        observed = {name: diff[name] for name in doctor.devices_for(jobs) if name in diff}
        names = list(dict.fromkeys(jp.name for jp in jobs))
        checks.append(doctor.PhaseCheck(number, names, doctor.lie_report(issued, observed)))
    return doctor.DeviceCheck(checks)


def run_and_report(
    jobs: Sequence[JobDef], opts: RunOptions, parser_warnings: Sequence[str], terse_version: int
) -> int:
    """Run, then write the report in opts.output_format to stdout or to --output (a temp file renamed over
    it at the end, so that a refused, failed or killed run leaves the previous file as it was). Returns
    the exit status."""
    fmt = opts.output_format
    written: list[str] = []  # what went to --output, printed on stdout if the file cannot be written

    with contextlib.ExitStack() as stack:
        sink: ReportFile | None = None
        if opts.output:
            try:
                # checked and created before anything runs: a long run must not die at the end for a typo
                sink = stack.enter_context(ReportFile.open(opts.output))
            except OutputError as exc:
                say(str(exc))
                return 1
            stack.enter_context(interrupt.on_abandon(sink.discard))

        def emit(text: str) -> None:
            if sink is None:
                sys.stdout.write(text)
                sys.stdout.flush()
            else:
                written.append(text)
                sink.write(text)

        def preamble(plan: RunPlan) -> None:
            # fio announces the jobs before it starts them, in normal output only
            if "normal" in fmt.split(","):
                jobs = [PreambleJob(j.name, j.groupid, j.options, clone=j.jobnum > 0) for j in plan.jobs]
                with contextlib.suppress(OutputError):  # the final write reports it
                    emit(render_preamble(jobs))

        try:
            run, status = execute(jobs, opts, on_start=preamble)
        except PlanError as exc:
            say(str(exc))
            return 1
        except RunRefused as exc:
            say(f"refusing to run:\n{exc}")
            return 1
        except OSError as exc:
            # e.g. a target we may not open, or no space to lay a file out
            say(f"{exc.filename or 'error'}: {exc.strerror or exc}")
            return 1
        if sink is not None or "normal" not in fmt.split(","):
            # the warnings found while planning and running (the normal report lists them at its top)
            for note in dict.fromkeys(run.all_warnings()):
                if note not in parser_warnings:
                    say(f"warning: {note}")
        report = render(run, fmt, terse_version=terse_version)
        if sink is None:
            try:
                emit(report)
            except BrokenPipeError:
                raise  # main() handles the reader going away
            except OSError as exc:
                say(f"stdout: {exc.strerror or exc} (writing the report)")  # e.g. the terminal hung up
                return 1
        else:
            try:
                emit(report)
                sink.commit()
            except OutputError as exc:
                # never lose the results: they go to stdout instead
                say(f"{exc}; the report follows on stdout")
                with contextlib.suppress(OSError):
                    sys.stdout.write("".join(written))
                    sys.stdout.flush()
                return 1
    # a signal that came while the report was written: the results are complete, the status says it came
    return status or interrupt.exit_status()
