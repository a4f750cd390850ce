"""The `iolab` command line: finds the subcommand in a table and hands it its arguments.

Each subcommand is one row of COMMANDS (its handler and one line of help; `iolab --help` is made from the
table). What a run does is iolab.session's; this layer only reads flags and chooses.

Results go to stdout (or --output); everything else (warnings, errors, the status line) to stderr, so
`iolab run ... --output-format=json | jq` always sees pure JSON.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from iolab.options import FioFlag

from iolab import __version__
from iolab.output import say


class UsageError(Exception):
    pass


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
        ("--allow-destroy=DEV|FILE|URI", "iolab: allow writing to this device, loop file or NBD export"),
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
        say(str(exc))
        return 2
    except JobFileError as exc:
        say(str(exc))
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
            say(f"error: {note}")
        say(f"{len(parser_warnings)} parser warning(s), fatal with --warnings-fatal")
        return 1
    for note in dict.fromkeys(parser_warnings):
        say(f"warning: {note}")
    if flags.get("showcmd"):
        sys.stdout.write(showcmd(cli.files) if cli.files else showcmd(cli.jobs))
        return 0
    if flags.get("parse-only"):
        return 0
    if not cli.jobs:
        say("no jobs given (a job file or --name=... options); `iolab run --help` lists the flags")
        return 1
    fmts = flags.get("output-format") or ["normal"]
    if flags.get("minimal"):
        fmts = ["terse"]
    fmt = ",".join(f if isinstance(f, str) else ",".join(f) for f in fmts)
    try:
        parse_formats(fmt)
    except ValueError as exc:
        say(str(exc))
        return 1
    normal_on_stdout = "normal" in fmt.split(",") and not flags.get("output")
    from iolab import interrupt
    from iolab.session import RunOptions, run_and_report

    opts = RunOptions(
        output_format=fmt,
        output=flags.get("output"),
        eta=str(flags.get("eta") or "auto"),
        strict=strict,
        allow_destroy=tuple(allow_destroy),
        findings_to_stderr=not normal_on_stdout,
    )
    with interrupt.handling(), interrupt.forgiving_stderr():
        try:
            return run_and_report(cli.jobs, opts, parser_warnings, int(flags.get("terse-version") or 3))
        except interrupt.Interrupted as exc:
            say(str(exc))
            return interrupt.exit_status()


def cmd_options(argv: Sequence[str]) -> int:
    from iolab.options import format_options_listing

    name = argv[0] if argv else None
    text = format_options_listing(name)
    if not text.strip() or (name and text.startswith("no option matches")):
        # nothing to list: an error (with the listing's "did you mean"), not an empty success
        say(text.strip() or f"no option matches {name!r}")
        return 1
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def cmd_quick(argv: Sequence[str]) -> int:
    from iolab.quick import main as quick_main

    return quick_main(argv)


def cmd_nbd(command: str) -> Callable[[Sequence[str]], int]:
    """`iolab serve` and `iolab ctl`: the NBD server's own command line."""

    def handler(argv: Sequence[str]) -> int:
        from iolab.nbd.cli import main as nbd_main

        return nbd_main([command, *argv])

    return handler


def cmd_doctor(command: str) -> Callable[[Sequence[str]], int]:
    """`iolab doctor` and `iolab explain`: the doctor's own command line."""

    def handler(argv: Sequence[str]) -> int:
        from iolab.doctor.cli import main as doctor_main

        return doctor_main([command, *argv])

    return handler


@dataclass(frozen=True)
class Command:
    """One subcommand: what it takes (as `iolab --help` shows it), one line of help, and its handler."""

    args: str
    help: str
    handler: Callable[[Sequence[str]], int]


#: every subcommand, in the order `iolab --help` lists them
COMMANDS: dict[str, Command] = {
    "run": Command(
        "[fio options] [job files]", "run fio jobs on iolab's engine (fio's command-line form)", cmd_run
    ),
    "quick": Command(
        "[--target PATH] ...", 'the three workloads of "Common disk benchmarking mistakes"', cmd_quick
    ),
    "options": Command("[NAME]", "list job options (like fio --cmdhelp)", cmd_options),
    "doctor": Command(
        "TARGET|JOBFILE|-- CMD", "find benchmarking mistakes before they cost you a run", cmd_doctor("doctor")
    ),
    "explain": Command("'COMMAND'", "what a dd/cp/hdparm/fio command really measures", cmd_doctor("explain")),
    "serve": Command(
        "IMAGE --listen ADDR", "NBD server with blkdebug fault injection and breakpoints", cmd_nbd("serve")
    ),
    "ctl": Command(
        "SOCKET COMMAND", "control a running `iolab serve` (break, resume, state...)", cmd_nbd("ctl")
    ),
}


def usage() -> str:
    """`iolab --help`: one line per registered subcommand."""
    rows = [(f"iolab {name} {command.args}", command.help) for name, command in COMMANDS.items()]
    width = max(len(left) for left, _ in rows)
    lines = "".join(f"  {left:<{width}}   {right}\n" for left, right in rows)
    return f"iolab {__version__} - honest storage benchmarks\n\nusage:\n{lines}  iolab --version\n"


def did_you_mean(command: str) -> str:
    """The hint for a near miss of a subcommand's name ("; did you mean 'run'?"), else ""."""
    close = difflib.get_close_matches(command, list(COMMANDS), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(usage())
        return 0 if args else 2
    if args[0] in ("--version", "version"):
        print(f"iolab-{__version__}")
        return 0
    name, rest = args[0], args[1:]
    command = COMMANDS.get(name)
    if command is None:
        say(f"unknown command {name!r}{did_you_mean(name)}\n\n{usage()}")
        return 2
    try:
        return command.handler(rest)
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    except BrokenPipeError:
        # the reader went away (| head): not an error worth a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
