"""The `iolab` command: run, quick, options, doctor, explain.

Results go to stdout (or --output); everything else (warnings, errors, the status line) to stderr, so
`iolab run ... --output-format=json | jq` always sees pure JSON.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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


def _err(msg: str) -> None:
    print(f"iolab: {msg}", file=sys.stderr)


def execute(jobdefs: Sequence[Any], opts: RunOptions) -> tuple[Any, int]:
    """Plan, lay out, run and analyse; returns (RunResult, exit status)."""
    from iolab.analysis.diskstats import devices_for_paths, disk_util, snapshot
    from iolab.analysis.model import job_result, run_result
    from iolab.engine.runner import prepare_files, run_plan
    from iolab.plan import SAMPLE_INTERVAL_NS, build_plan
    from iolab.status import StatusLine

    plan = build_plan(jobdefs)
    for note in prepare_files(plan):
        if opts.output_format == "normal" and opts.eta != "never":
            print(note, file=sys.stderr)
    devices = devices_for_paths(fp.path for job in plan.jobs for fp in job.files)
    before = snapshot(devices)
    with StatusLine(opts.eta) as status:
        outcome = run_plan(plan, on_progress=status.update)
    after = snapshot(devices)
    results = []
    status_code = 0
    elapsed_ms = 0
    for worker in outcome.workers:
        jp = worker.plan
        raw = worker.raw
        warnings = list(jp.warnings)
        if raw is None:
            _err(f"job '{jp.name}' ({jp.jobnum}): {worker.setup_error or 'did not run'}")
            status_code = 1
            raw = {"error": 5, "error_msg": worker.setup_error or "did not run", "ddir": {}}
        elif raw.get("error"):
            _err(
                f"job '{jp.name}' ({jp.jobnum}): {raw.get('error_msg')} "
                f"(errno {raw['error']}, {raw.get('error_ddir')} at offset {raw.get('error_offset')})"
            )
            status_code = 1
        elapsed_ms = max(elapsed_ms, int((worker.finished_at - worker.started_at) * 1000))
        results.append(
            job_result(
                raw,
                name=jp.name,
                jobnum=jp.jobnum,
                groupid=jp.groupid,
                options=jp.options,
                sample_interval_ms=SAMPLE_INTERVAL_NS / 1e6,
                warnings=warnings,
                job_options=jp.job_options,
                elapsed_s=max(1, round(worker.finished_at - worker.started_at)),
            )
        )
    run_warnings: list[str] = []
    if outcome.interrupted:
        run_warnings.append("interrupted (Ctrl-C): results cover only what ran until then")
    run = run_result(
        results,
        group_reporting=any(j.group_reporting for j in plan.jobs),
        global_options=plan.global_options,
        disk_util=disk_util(before, after, elapsed_ms),
        warnings=run_warnings,
    )
    if outcome.interrupted and status_code == 0:
        status_code = 130
    return run, status_code


def _emit(text: str, output: str | None) -> None:
    if output:
        with open(output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


def cmd_run(argv: Sequence[str]) -> int:
    from iolab.jobfile import JobFileError, parse_cli, showcmd
    from iolab.plan import PlanError
    from iolab.report import parse_formats, render

    try:
        cli = parse_cli(argv)
    except JobFileError as exc:
        _err(str(exc))
        return 1
    for note in cli.warnings:
        _err(f"warning: {note}")
    flags = cli.flags
    if flags.get("showcmd"):
        sys.stdout.write(showcmd(cli.files) if cli.files else showcmd(cli.jobs))
        return 0
    if flags.get("parse-only"):
        for job in cli.jobs:
            for w in job.warnings:
                _err(f"warning: {job.name}: {w}")
        return 0
    if not cli.jobs:
        _err("no jobs given (a job file or --name=... options)")
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
    opts = RunOptions(output_format=fmt, output=flags.get("output"), eta=str(flags.get("eta") or "auto"))
    if "normal" in fmt.split(","):
        for job in cli.jobs:
            for w in job.warnings:
                _err(f"warning: {job.name}: {w}")
    try:
        run, status = execute(cli.jobs, opts)
    except PlanError as exc:
        _err(str(exc))
        return 1
    _emit(render(run, fmt), opts.output)
    return status


def cmd_options(argv: Sequence[str]) -> int:
    from iolab.options import format_options_listing

    name = argv[0] if argv else None
    text = format_options_listing(name)
    if not text.strip():
        _err(f"no option matches {name!r}")
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
