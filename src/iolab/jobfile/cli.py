"""fio's command-line form: ``--name=x --rw=randread --bs=4k --name=y ... [jobfile ...]``.

As in fio 3.33 (getopt_long_only):
* ``--opt=value``, ``-opt=value`` and, for options that need a value, ``--opt value``;
  unambiguous abbreviations of a name are accepted (with a warning);
* job options before the first ``--name`` set global defaults; each ``--name`` starts a job
  (``--name=global...`` goes back to the globals); later options belong to that job;
* other arguments are job files, wherever they appear (``--`` ends option parsing);
* command-line jobs come first; the global options apply to them and to the FIRST job file
  only (fio resets its defaults between job files); files after the first start with a stonewall.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from iolab.jobfile.build import (
    _Target,
    apply_entries_cmdline,
    build_file,
    finalize,
    fresh_target,
)
from iolab.jobfile.errors import CMDLINE, JobFileError, Location
from iolab.jobfile.model import CliParse, JobDef
from iolab.jobfile.reader import read_job_file, read_sections
from iolab.options import FIO_FLAGS, OPTIONS, FioFlag, Option, suggest

#: flags that print something and end the command, as in fio
INFO_FLAGS = frozenset({"help", "version", "cmdhelp"})
_REMOTE_FLAGS = frozenset({"client", "server", "daemonize", "remote-config", "trigger-remote"})


def _refusal(flag: FioFlag) -> str:
    """Why an fio flag iolab lacks is refused (not ignored: a run without it would not be what fio does)."""
    if flag.name in _REMOTE_FLAGS:
        return (
            "fio's client/server mode is not implemented in iolab; it is refused so that the jobs "
            "never run on this machine instead of the remote one"
        )
    return f"iolab does not implement this fio flag ({flag.help}); refused rather than ignored"


def _all_long_names() -> list[str]:
    names = list(FIO_FLAGS)
    for o in OPTIONS.values():
        names.extend(o.names)
    return names


def _resolve(name: str, loc: Location) -> tuple[FioFlag | None, Option | None, str | None]:
    """(flag, option, abbreviation warning) for a long-option name, like getopt_long."""
    if name in FIO_FLAGS:
        return FIO_FLAGS[name], None, None
    for o in OPTIONS.values():
        if name in o.names:
            return None, o, None
    if name:
        flags = {f for f in FIO_FLAGS if f.startswith(name)}
        opts = {o.name for o in OPTIONS.values() for n in o.names if n.startswith(name)}
        if len(flags) + len(opts) == 1:
            full = next(iter(flags or opts))
            note = f"{loc}: fio accepts the abbreviation '--{name}' for '--{full}'"
            if flags:
                return FIO_FLAGS[full], None, note
            return None, OPTIONS[full], note
        if len(flags) + len(opts) > 1:
            choices = ", ".join(sorted(flags | opts)[:6])
            raise JobFileError(f"'--{name}' is ambiguous ({choices})", location=loc, option=name)
    hint = suggest(name, _all_long_names())
    raise JobFileError("unknown option", location=loc, option=name, suggestion=hint)


def _flag_value(
    flag: FioFlag, value: str | None, loc: Location, flags: dict[str, Any], warnings: list[str]
) -> None:
    name = flag.name
    if flag.arg == "none":
        if value is not None:
            raise JobFileError("this flag takes no value", location=loc, option=name, got=value)
        if name == "minimal":
            flags["output-format"] = ["terse"]
        flags[name] = True
        return
    if value is None:
        if flag.arg == "required":
            raise JobFileError("the flag needs a value", location=loc, option=name)
        flags[name] = True
        return
    if flag.comma_list:
        items = value.split(",")
        for item in items:
            if item not in flag.choices:
                raise JobFileError(
                    None,
                    location=loc,
                    option=name,
                    expected="one or more of " + ", ".join(flag.choices),
                    got=item,
                    suggestion=suggest(item, flag.choices),
                )
        flags[name] = items
        return
    if flag.choices and value not in flag.choices and flag.ignores_bad_choice:
        warnings.append(f"{loc}: fio ignores --{name}={value} (it knows {', '.join(flag.choices)})")
        return
    if flag.choices and value not in flag.choices:
        raise JobFileError(
            None,
            location=loc,
            option=name,
            expected="one of " + ", ".join(flag.choices),
            got=value,
            suggestion=suggest(value, flag.choices),
        )
    if name == "section" and value == "global":
        raise JobFileError("fio cannot use global as the only section", location=loc, option=name)
    if flag.multi:
        flags.setdefault(name, []).append(value)
    else:
        flags[name] = value


def parse_cli(
    argv: Sequence[str], env: Mapping[str, str] | None = None, *, fio_only: bool = False
) -> CliParse:
    """Parse fio's command-line form.  ``argv`` excludes the program name; locations count the
    arguments from 1. ``fio_only``: as fio parses, without refusing options iolab does not implement."""
    envmap: Mapping[str, str] = os.environ if env is None else env
    flags: dict[str, Any] = {}
    files: list[str] = []
    warnings: list[str] = []
    state = fresh_target()
    jobs: list[JobDef] = []
    td: _Target | None = None
    td_is_global = False
    td_loc = Location(CMDLINE, 0)
    global_opts_given = False
    only_files = False

    def finish() -> None:
        nonlocal td
        if td is not None and not td_is_global:
            name = td.values.get("name") or "fio"
            jobs.append(finalize(td, str(name), len(jobs), td_loc, check=not fio_only))
        td = None

    i = 0
    args = list(argv)
    while i < len(args):
        arg = args[i]
        loc = Location(CMDLINE, i + 1)
        i += 1
        if only_files or not arg.startswith("-") or arg == "-":
            files.append(arg)
            continue
        if arg == "--":
            only_files = True
            continue
        body = arg[2:] if arg.startswith("--") else arg[1:]
        eq = body.find("=")
        name, value = (body, None) if eq < 0 else (body[:eq], body[eq + 1 :])
        flag, opt, note = _resolve(name, loc)
        if note:
            warnings.append(note)
        needs_value = (flag.arg == "required") if flag else (opt is not None and not opt.bare)
        if value is None and needs_value:
            if i >= len(args):
                raise JobFileError(
                    "the option needs a value", location=loc, option=flag.name if flag else name
                )
            value = args[i]
            i += 1
        if flag is not None:
            if not flag.supported:
                raise JobFileError(_refusal(flag), location=loc, option=f"--{flag.name}")
            _flag_value(flag, value, loc, flags, warnings)
            if flag.name in INFO_FLAGS:
                # like fio: print the help or version and stop, the rest of the line is not looked at
                return CliParse(jobs=[], files=[], flags=flags, warnings=warnings)
            continue
        assert opt is not None
        if needs_value and not value:
            raise JobFileError("the option needs a value", location=loc, option=opt.name)
        if opt.name == "name" and td is not None:
            finish()
        if td is None:
            is_section = opt.name == "name"
            glob = not is_section or (value or "").startswith("global")
            if is_section and not glob and flags.get("section") and value not in flags["section"]:
                warnings.append(
                    f"{loc}: job '{value}' skipped (--section); like fio, the options"
                    " after it up to the next --name become global options"
                )
                continue
            if glob:
                td, td_is_global = state, True
            else:
                td, td_is_global = state.clone(), False
                td.set_at.pop("name", None)
                td_loc = loc
        if td_is_global:
            global_opts_given = True
        apply_entries_cmdline(td, opt, value, loc, from_global=td_is_global)
    finish()
    if global_opts_given and len(files) > 1:
        warnings.append(
            f"{CMDLINE}: fio applies command-line global options only to command-line jobs and"
            " the first job file; later job files start from the defaults"
        )
    sections = flags.get("section")
    for n, path in enumerate(files):
        text = read_job_file(path)
        secs = read_sections(text, path, sections)
        start = state if n == 0 else fresh_target()
        result = build_file(
            secs,
            path,
            start=start,
            first_index=len(jobs),
            stonewall_first=n > 0,
            env=envmap,
            check=not fio_only,
        )
        jobs.extend(result.jobs)
    if flags.get("readonly"):
        _check_readonly(jobs)
    return CliParse(jobs=jobs, files=files, flags=flags, warnings=warnings)


_WRITING = {"write", "randwrite", "rw", "randrw", "trim", "randtrim", "trimwrite", "randtrimwrite"}


def _check_readonly(jobs: Sequence[JobDef]) -> None:
    for job in jobs:
        if job.values.get("rw") in _WRITING:
            loc = job.set_at.get("rw", job.source)
            raise JobFileError(
                f"job '{job.name}' writes or trims (rw={job.values['rw']}), but --readonly was given",
                location=loc,
                option="rw",
            )
