"""`iolab doctor` and `iolab explain`.

    iolab doctor [options] TARGET|JOBFILE ...     inspect targets / check job files
    iolab doctor [options] -- COMMAND ...         check a benchmark command (dd, cp, scp, hdparm, fio)
    iolab explain COMMAND                         what the command really measures, and the iolab job for it

Exit status: 0 nothing found, 1 something found, 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from iolab.doctor.checks import Context, check_data, check_target, pre_run
from iolab.doctor.counters import DeviceCounters, LieReport, devices_under, lie_report
from iolab.doctor.explain import ExplainError, Explanation, translate
from iolab.doctor.findings import Finding, findings_json, has_errors, render_findings, sort_findings
from iolab.doctor.fioargs import load_jobfile, looks_like_jobfile
from iolab.doctor.jobs import FileView, JobView
from iolab.doctor.safety import SafetyGate, allow_destroy_problem
from iolab.doctor.target import TargetInfo
from iolab.jobfile import JobFileError
from iolab.options import default_values


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse exits 2 on usage errors; keep that, but as an exception
        self.print_usage(sys.stderr)
        raise _UsageError(f"{self.prog}: error: {message}")


class _UsageError(Exception):
    pass


def _doctor_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="iolab doctor", description="Find what would make a storage benchmark lie.")
    p.add_argument(
        "items",
        nargs="*",
        metavar="TARGET|JOBFILE",
        help="block devices, files or directories to inspect, or job files to check",
    )
    p.add_argument("--output-format", choices=("normal", "json"), default="normal")
    p.add_argument(
        "--raw", action="store_true", help="a raw device is meant: a file on a file system is reported too"
    )
    p.add_argument(
        "--allow-destroy",
        action="append",
        default=[],
        metavar="DEV",
        help="allow writes to this block device (or loop backing file) whatever it holds (repeat per target)",
    )
    p.add_argument("--strict", action="store_true", help="(for iolab run) warnings count as errors")
    p.add_argument(
        "--run",
        action="store_true",
        help="with -- COMMAND (dd, cp): run it and compare what the devices saw with what it issued",
    )
    return p


def _target_view(path: str, info: TargetInfo) -> JobView:
    """A job reading and writing all of a target, for the target-level checks."""
    size = info.size or 0
    return JobView(
        name="",
        jobnum=0,
        jobdef_index=0,
        values={**default_values(), "rw": "randrw"},
        files=(FileView(path, 0, size),),
        reads=True,
        writes=True,
        random=True,
        direct=True,
    )


def _check_target(path: str, ctx: Context, allow_destroy: Sequence[str]) -> list[Finding]:
    info = ctx.target(path)
    view = _target_view(path, info)
    out = check_target([view], ctx) + check_data([view], ctx)
    if info.is_block or info.kind == "file":
        # what a write job on it would meet
        out += SafetyGate.check([view], allow_destroy)
    return out


def _run_observed(command: Sequence[str], explanation: Explanation) -> tuple[str, LieReport | None]:
    """Run the command (no shell) between two device-counter snapshots; compare with what it issues."""
    if explanation.issued is None:
        return f"cannot tell what `{explanation.tool}` issues (dd with count= or a file, cp of a file)", None
    devices = devices_under(explanation.paths)
    if not devices:
        return "no block device under the command's files", None
    before = DeviceCounters.snapshot(devices)
    t0 = time.monotonic()
    proc = subprocess.run(
        list(command), stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
    )
    elapsed = time.monotonic() - t0
    observed = DeviceCounters.diff(before, DeviceCounters.snapshot(devices))
    status = f"ran `{shlex.join(command)}`: exit status {proc.returncode}, {elapsed:.2f}s"
    if proc.returncode:
        status += f" ({proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else 'no message'})"
    return status, lie_report(explanation.issued, observed)


def _emit(
    out: TextIO,
    fmt: str,
    findings: list[Finding],
    targets: list[TargetInfo],
    extra: str = "",
    device_check: dict[str, Any] | None = None,
) -> int:
    findings = sort_findings(findings)
    if fmt == "json":
        doc: dict[str, Any] = {"findings": findings_json(findings)}
        if device_check is not None:
            doc["device_check"] = device_check
        if targets:
            doc["targets"] = [t.to_json() for t in targets]
        json.dump(doc, out, indent=2)
        out.write("\n")
    else:
        for t in targets:
            out.write(t.describe() + "\n")
        if targets:
            out.write("\n")
        if findings:
            out.write(render_findings(findings) + "\n")
            counts = {s: sum(f.severity == s for f in findings) for s in ("error", "warning", "info")}
            out.write(
                f"\n{len(findings)} finding(s): "
                + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
                + "\n"
            )
        else:
            out.write("no findings\n")
        if extra:
            out.write("\n" + extra)
    return 1 if findings else 0


def doctor_main(argv: Sequence[str], out: TextIO | None = None) -> int:
    out = out or sys.stdout
    argv = list(argv)
    command: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, command = argv[:i], argv[i + 1 :]
    try:
        args = _doctor_parser().parse_args(argv)
        if args.run and not command:
            raise _UsageError("iolab doctor: --run needs -- COMMAND")
        if command and args.items:
            raise _UsageError("iolab doctor: give targets/job files or `-- COMMAND`, not both")
        if not command and not args.items:
            raise _UsageError("iolab doctor: nothing to check (TARGET, JOBFILE or -- COMMAND)")
        problem = allow_destroy_problem(args.allow_destroy)
        if problem:
            raise _UsageError(problem)
    except _UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    ctx = Context(expect_raw=args.raw)
    findings: list[Finding] = []
    targets: list[TargetInfo] = []
    extra = ""
    device_check: dict[str, Any] | None = None
    if command:
        try:
            explanation = translate(command)
        except ExplainError as exc:
            print(f"iolab doctor: {exc}", file=sys.stderr)
            return 2
        findings += pre_run(explanation.as_is, context=ctx)
        findings += SafetyGate.check(explanation.as_is, args.allow_destroy)
        extra = "Equivalent iolab job:\n\n" + explanation.jobfile()
        if args.run:
            if has_errors(findings):
                extra = "Not run: the safety gate refused it.\n\n" + extra
            else:
                status, report = _run_observed(command, explanation)
                if report is None:
                    print(f"iolab doctor: --run: {status}", file=sys.stderr)
                    return 2
                findings += report.findings
                extra = f"{status}\n{report.render()}\n\n" + extra
                device_check = report.to_json()
    for item in args.items:
        if looks_like_jobfile(item):
            try:
                jobdefs = load_jobfile(item)
            except (JobFileError, OSError) as exc:
                print(f"iolab doctor: {exc}", file=sys.stderr)
                return 2
            findings += pre_run(jobdefs, context=ctx)
            findings += SafetyGate.check(jobdefs, args.allow_destroy)
        else:
            targets.append(ctx.target(item))
            findings += _check_target(item, ctx, args.allow_destroy)
    return _emit(out, args.output_format, findings, targets, extra, device_check)


def explain_main(argv: Sequence[str], out: TextIO | None = None) -> int:
    out = out or sys.stdout
    argv = list(argv)
    fmt = "normal"
    if argv and argv[0].startswith("--output-format"):
        fmt = argv[0].partition("=")[2] or (argv[1] if len(argv) > 1 else "")
        argv = argv[1:] if "=" in argv[0] else argv[2:]
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv or fmt not in ("normal", "json") or argv[0] in ("-h", "--help"):
        print(
            "usage: iolab explain [--output-format=normal|json] 'COMMAND' (dd, cp, scp, hdparm -t, fio)",
            file=sys.stderr,
        )
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    command: str | list[str] = argv[0] if len(argv) == 1 else argv
    try:
        explanation = translate(command)
    except ExplainError as exc:
        print(f"iolab explain: {exc}", file=sys.stderr)
        return 2
    if fmt == "json":
        json.dump(explanation.to_json(), out, indent=2)
        out.write("\n")
    else:
        out.write(explanation.render())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`iolab doctor ...` / `iolab explain ...`; argv may start with the subcommand name."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "explain":
        return explain_main(args[1:])
    if args and args[0] == "doctor":
        args = args[1:]
    return doctor_main(args)
