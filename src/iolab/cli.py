"""The `iolab` command: run, quick, options, doctor, explain.

Results go to stdout (or --output); everything else (warnings, errors, the status line) to stderr, so
`iolab run ... --output-format=json | jq` always sees pure JSON.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from iolab.doctor import DeviceCheck
    from iolab.engine.runner import Phase
    from iolab.options import FioFlag
    from iolab.plan import RunPlan

from iolab import __version__

USAGE = f"""\
iolab {__version__} - honest storage benchmarks

usage:
  iolab run [fio options] [job files]   run fio jobs on iolab's engine (fio's command-line form)
  iolab quick [--target PATH] ...       the three workloads of "Common disk benchmarking mistakes"
  iolab options [NAME]                  list job options (like fio --cmdhelp)
  iolab doctor TARGET|JOBFILE|-- CMD    find benchmarking mistakes before they cost you a run
  iolab explain 'COMMAND'               what a dd/cp/hdparm/fio command really measures
  iolab serve IMAGE --listen ADDR       NBD server with blkdebug fault injection and breakpoints
  iolab ctl SOCKET COMMAND              control a running `iolab serve` (break, resume, state...)
  iolab --version
"""


class UsageError(Exception):
    pass


@dataclass
class RunOptions:
    output_format: str = "normal"
    output: str | None = None
    eta: str = "auto"
    strict: bool = False
    allow_destroy: tuple[str, ...] = ()
    # the doctor's findings also go to stderr (the normal report on stdout has them already)
    findings_to_stderr: bool = False


def _err(msg: str) -> None:
    # the terminal may have hung up (SIGHUP): the message has nowhere to go, the results still do
    with contextlib.suppress(OSError):
        print(f"iolab: {msg}", file=sys.stderr)


class RunRefused(Exception):
    """The doctor found errors (unsafe target, or any warning under --strict): nothing was run."""


def execute(
    jobdefs: Sequence[Any], opts: RunOptions, on_start: Callable[[RunPlan], None] | None = None
) -> tuple[Any, int]:
    """Check, plan, lay out, run and analyse; returns (RunResult, exit status).

    `on_start` is called with the plan once the checks passed, just before the files are laid out."""
    from iolab import doctor, interrupt
    from iolab.analysis.diskstats import disk_util
    from iolab.analysis.model import job_result, run_result
    from iolab.engine.runner import prepare_files, run_plan
    from iolab.plan import build_plan
    from iolab.status import StatusLine

    plan = build_plan(jobdefs)
    findings = doctor.pre_run(plan, jobdefs)
    # open once: every file the run uses is opened here, once, and checked on that fd; from here on it is
    # used through these anchors only (layout, the workers' opens, unlink), never through its name
    gate = doctor.SafetyGate.open(plan, opts.allow_destroy)
    with gate:
        findings += gate.findings
        if opts.strict:
            findings = doctor.strict(findings)
        if doctor.has_errors(findings):
            raise RunRefused(doctor.render_findings(findings))
        interrupt.check("checking the jobs")
        if opts.findings_to_stderr and findings:
            print(doctor.render_findings(findings), file=sys.stderr)
        if on_start is not None:
            on_start(plan)
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
    if outcome.signal is not None and all(w.raw is None for w in outcome.workers):
        raise interrupt.Interrupted(outcome.signal, "starting the jobs")
    device_diff = doctor.DeviceCounters.diff(counters_before, counters_after)
    results = []
    reported = {f.message for f in findings}
    raws: dict[int, dict[str, Any]] = {}  # JobPlan.index -> raw result
    status_code = 0
    elapsed_ms = 0
    for worker in outcome.workers:
        jp = worker.plan
        raw = worker.raw
        if raw is None:
            _err(f"job '{jp.name}' ({jp.jobnum}): {worker.setup_error or 'did not run'}")
            # stopped by the signal (its layout, or abandoned after a second one): the interruption's status
            if not (outcome.interrupted and worker.setup_errno == errno.EINTR):
                status_code = 1
            raw = {
                "error": worker.setup_errno,
                "error_msg": worker.setup_error or "did not run",
                "ddir": {},
                "io_loop": False,
            }
        elif raw.get("error"):
            ddir = raw.get("error_ddir")
            where = f", {ddir} at offset {raw.get('error_offset')}" if ddir else ""
            _err(f"job '{jp.name}' ({jp.jobnum}): {raw.get('error_msg')} (errno {raw['error']}{where})")
            status_code = 1
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
        disk_util=disk_util(device_diff, elapsed_ms),
        warnings=run_warnings,
    )
    run.preface = doctor.render_findings(findings).splitlines()
    run.appendix = appendix
    run.iolab = extra
    if outcome.signal is not None and status_code == 0:
        status_code = 128 + outcome.signal
    return run, status_code


def _device_check(plan: RunPlan, phases: Sequence[Phase], raws: dict[int, dict[str, Any]]) -> DeviceCheck:
    """The lie detector, once per phase: device counters at the phase's ends against what its jobs issued
    (ramp_time I/O included: the device saw it), on the devices under that phase's files only."""
    from iolab import doctor

    checks = []
    for number, phase in enumerate(phases, 1):
        jobs = [plan.jobs[i] for i in phase.jobs]
        issued = doctor.Issued.from_raw(
            [raws[i] for i in phase.jobs if i in raws],
            direct=all(jp.direct for jp in jobs),
            ramp_time=any(jp.config["ramp_ns"] for jp in jobs),
        )
        diff = doctor.DeviceCounters.diff(phase.before, phase.after)
        observed = {name: diff[name] for name in doctor.devices_for(jobs) if name in diff}
        names = list(dict.fromkeys(jp.name for jp in jobs))
        checks.append(doctor.PhaseCheck(number, names, doctor.lie_report(issued, observed)))
    return doctor.DeviceCheck(checks)


def _iolab_flags(argv: Sequence[str]) -> tuple[list[str], bool, list[str]]:
    """Take iolab's own run flags (--strict, --allow-destroy=DEV|FILE) out of a fio-style command line."""
    rest: list[str] = []
    strict = False
    allow: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--strict":
            strict = True
        elif arg.startswith("--allow-destroy="):
            allow.append(arg.split("=", 1)[1])
        elif arg == "--allow-destroy":
            value = next(args, None)
            if value is None:
                raise UsageError("--allow-destroy needs a device, e.g. --allow-destroy=/dev/loop0")
            allow.append(value)
        else:
            rest.append(arg)
    return rest, strict, allow


def run_usage() -> str:
    """`iolab run --help`: the flags, as fio's --help lists its own."""
    from iolab.options import FIO_FLAGS

    def arg(flag: FioFlag) -> str:
        shown = "|".join(flag.choices) if flag.choices and len(flag.choices) <= 4 else "X"
        return {"none": "", "required": f"={shown}", "optional": f"[={shown}]"}[flag.arg]

    supported = [f for f in FIO_FLAGS.values() if f.supported]
    rows = [(f"--{f.name}{arg(f)}", f.help) for f in supported]
    rows += [
        ("--strict", "iolab: every doctor warning is an error (nothing runs)"),
        ("--allow-destroy=DEV|FILE", "iolab: allow writing to this device or loop backing file"),
    ]
    width = max(len(r[0]) for r in rows)
    refused = ", ".join(f"--{f.name}" for f in FIO_FLAGS.values() if not f.supported)
    return (
        f"iolab-{__version__}\n"
        "usage: iolab run [flags] [job options] [job files]\n\n"
        "Job options are fio's, written --option=value; --name=NAME starts a job and the options before\n"
        "the first --name are global. `iolab options` (or --cmdhelp) lists them.\n\n"
        + "".join(f"  {left:<{width}}  {right}\n" for left, right in rows)
        + f"\nfio flags iolab does not implement (refused): {refused}\n"
    )


def cmd_run(argv: Sequence[str]) -> int:
    from iolab.jobfile import JobFileError, parse_cli, showcmd
    from iolab.report import parse_formats

    try:
        argv, strict, allow_destroy = _iolab_flags(argv)
        cli = parse_cli(argv)
    except UsageError as exc:
        _err(str(exc))
        return 2
    except JobFileError as exc:
        _err(str(exc))
        return 1
    flags = cli.flags
    if flags.get("help"):
        sys.stdout.write(run_usage())
        return 0
    if flags.get("version"):
        print(f"iolab-{__version__}")
        return 0
    if "cmdhelp" in flags:
        value = flags["cmdhelp"]
        return cmd_options([] if value is True or value == "all" else [str(value)])
    # fio's parser warnings, in every output format (stdout stays the report's alone)
    parser_warnings = list(cli.warnings) + [f"{job.name}: {w}" for job in cli.jobs for w in job.warnings]
    if flags.get("warnings-fatal") and parser_warnings:
        for note in parser_warnings:
            _err(f"error: {note}")
        _err(f"{len(parser_warnings)} parser warning(s), fatal with --warnings-fatal")
        return 1
    for note in dict.fromkeys(parser_warnings):
        _err(f"warning: {note}")
    if flags.get("showcmd"):
        sys.stdout.write(showcmd(cli.files) if cli.files else showcmd(cli.jobs))
        return 0
    if flags.get("parse-only"):
        return 0
    if not cli.jobs:
        _err("no jobs given (a job file or --name=... options); `iolab run --help` lists the flags")
        return 1
    fmts = flags.get("output-format") or ["normal"]
    if flags.get("minimal"):
        fmts = ["terse"]
    fmt = ",".join(f if isinstance(f, str) else ",".join(f) for f in fmts)
    try:
        parse_formats(fmt)
    except ValueError as exc:
        _err(str(exc))
        return 1
    normal_on_stdout = "normal" in fmt.split(",") and not flags.get("output")
    opts = RunOptions(
        output_format=fmt,
        output=flags.get("output"),
        eta=str(flags.get("eta") or "auto"),
        strict=strict,
        allow_destroy=tuple(allow_destroy),
        findings_to_stderr=not normal_on_stdout,
    )
    from iolab import interrupt

    with interrupt.handling(), interrupt.forgiving_stderr():
        try:
            return _run_and_report(cli.jobs, opts, fmt, parser_warnings, int(flags.get("terse-version") or 3))
        except interrupt.Interrupted as exc:
            _err(str(exc))
            return interrupt.exit_status()


def _run_and_report(
    jobs: Sequence[Any], opts: RunOptions, fmt: str, parser_warnings: Sequence[str], terse_version: int
) -> int:
    """Run, then write the report to stdout or to --output (a temp file renamed over it at the end, so
    that a refused, failed or killed run leaves the previous file as it was)."""
    from iolab import interrupt
    from iolab.output import OutputError, ReportFile
    from iolab.plan import PlanError
    from iolab.report import PreambleJob, render, render_preamble

    written: list[str] = []  # what went to --output, printed on stdout if the file cannot be written

    with contextlib.ExitStack() as stack:
        sink: ReportFile | None = None
        if opts.output:
            try:
                # checked and created before anything runs: a long run must not die at the end for a typo
                sink = stack.enter_context(ReportFile.open(opts.output))
            except OutputError as exc:
                _err(str(exc))
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
            _err(str(exc))
            return 1
        except RunRefused as exc:
            _err(f"refusing to run:\n{exc}")
            return 1
        except OSError as exc:
            # e.g. a target we may not open, or no space to lay a file out
            _err(f"{exc.filename or 'error'}: {exc.strerror or exc}")
            return 1
        if sink is not None or "normal" not in fmt.split(","):
            # the warnings found while planning and running (the normal report lists them at its top)
            for note in dict.fromkeys(run.all_warnings()):
                if note not in parser_warnings:
                    _err(f"warning: {note}")
        report = render(run, fmt, terse_version=terse_version)
        if sink is None:
            try:
                emit(report)
            except BrokenPipeError:
                raise  # main() handles the reader going away
            except OSError as exc:
                _err(f"stdout: {exc.strerror or exc} (writing the report)")  # e.g. the terminal hung up
                return 1
        else:
            try:
                emit(report)
                sink.commit()
            except OutputError as exc:
                # never lose the results: they go to stdout instead
                _err(f"{exc}; the report follows on stdout")
                with contextlib.suppress(OSError):
                    sys.stdout.write("".join(written))
                    sys.stdout.flush()
                return 1
    # a signal that came while the report was written: the results are complete, the status says it came
    return status or interrupt.exit_status()


def cmd_options(argv: Sequence[str]) -> int:
    from iolab.options import format_options_listing

    name = argv[0] if argv else None
    text = format_options_listing(name)
    if not text.strip() or (name and text.startswith("no option matches")):
        # nothing to list: an error (with the listing's "did you mean"), not an empty success
        _err(text.strip() or f"no option matches {name!r}")
        return 1
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0 if args else 2
    if args[0] in ("--version", "version"):
        print(f"iolab-{__version__}")
        return 0
    command, rest = args[0], args[1:]
    try:
        if command == "run":
            return cmd_run(rest)
        if command == "quick":
            from iolab.quick import main as quick_main

            return quick_main(rest)
        if command == "options":
            return cmd_options(rest)
        if command in ("serve", "ctl"):
            from iolab.nbd.cli import main as nbd_main

            return nbd_main([command, *rest])
        if command in ("doctor", "explain"):
            from iolab.doctor.cli import main as doctor_main

            return doctor_main([command, *rest])
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except BrokenPipeError:
        # the reader went away (| head): not an error worth a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    _err(f"unknown command {command!r}\n\n{USAGE}")
    return 2
