"""Job files and fio's command-line form -> list of :class:`JobDef` (docs/DESIGN.md section 1).

Public API:

* :func:`parse_files` / :func:`parse_text` - job files (fio's INI dialect, its quirks included);
* :func:`parse_cli` - fio's command-line form (job options, job files, fio's own flags);
* :func:`showcmd` - what ``fio --showcmd`` prints for job files;
* :class:`JobFileError` - every problem with the input, with ``file:line`` and a suggestion.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from iolab.jobfile.build import FileResult, build_file, fresh_target
from iolab.jobfile.cli import parse_cli
from iolab.jobfile.errors import CMDLINE, JobFileError, Location
from iolab.jobfile.model import CliParse, JobDef, RawSetting
from iolab.jobfile.reader import read_job_file, read_sections

__all__ = [
    "CMDLINE",
    "CliParse",
    "FileResult",
    "JobDef",
    "JobFileError",
    "Location",
    "RawSetting",
    "parse_cli",
    "parse_file_results",
    "parse_files",
    "parse_text",
    "showcmd",
]


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def parse_file_results(
    sources: Sequence[tuple[str, str]],
    env: Mapping[str, str] | None = None,
    *,
    sections: Sequence[str] | None = None,
    any_engine: bool = False,
    fio_only: bool = False,
) -> list[FileResult]:
    """Parse (filename, text) pairs as fio parses several job files given together.

    ``any_engine`` accepts ioengines iolab cannot run (useful for showcmd only). ``fio_only`` parses as
    fio does without refusing the options iolab does not implement (to compare the parser with fio's).
    """
    envmap = _env(env)
    out: list[FileResult] = []
    index = 0
    for n, (name, text) in enumerate(sources):
        secs = read_sections(text, name, list(sections) if sections else None)
        res = build_file(
            secs,
            name,
            start=fresh_target(),
            first_index=index,
            stonewall_first=n > 0,
            env=envmap,
            any_engine=any_engine,
            check=not (any_engine or fio_only),
        )
        index += len(res.jobs)
        out.append(res)
    return out


def parse_files(
    paths: Sequence[str],
    env: Mapping[str, str] | None = None,
    *,
    sections: Sequence[str] | None = None,
    fio_only: bool = False,
) -> list[JobDef]:
    """Parse job files given together (each file after the first starts with a stonewall).

    ``env`` replaces ``os.environ`` for ``${VAR}``; ``sections`` is fio's ``--section`` filter.
    """
    if isinstance(paths, str):
        paths = [paths]
    sources = [(p, read_job_file(p)) for p in paths]
    results = parse_file_results(sources, env, sections=sections, fio_only=fio_only)
    return [job for r in results for job in r.jobs]


def parse_text(
    text: str,
    filename: str = "<string>",
    env: Mapping[str, str] | None = None,
    *,
    sections: Sequence[str] | None = None,
    fio_only: bool = False,
) -> list[JobDef]:
    """Parse one job file's text (``filename`` is used for messages and relative includes)."""
    return parse_file_results([(filename, text)], env, sections=sections, fio_only=fio_only)[0].jobs


def _showcmd_jobdefs(jobs: Sequence[JobDef]) -> str:
    lines: list[str] = []
    by_file: dict[str, list[JobDef]] = {}
    for j in jobs:
        by_file.setdefault(j.source.file, []).append(j)
    for file_jobs in by_file.values():
        parts = ["fio "]
        globals_done = False
        for j in file_jobs:
            if not globals_done:
                parts += [_fmt(r.name, r.value) for r in j.raw if r.from_global]
                globals_done = True
            parts.append(f"--name={j.name} ")
            parts += [_fmt(r.name, r.value) for r in j.raw if not r.from_global]
        lines.append("".join(parts) + "\n")
    return "".join(lines)


def _fmt(name: str, value: str | None) -> str:
    if value is None:
        return f"--{name} "
    if name == "description":
        return f'--{name}="{value}" '
    return f"--{name}={value} "


def showcmd(
    items: Sequence[str] | Sequence[JobDef] | Sequence[FileResult],
    env: Mapping[str, str] | None = None,
) -> str:
    """The command line(s) ``fio --showcmd`` prints: one ``fio ...`` line per job file.

    Given paths, the files are parsed and fio's output is reproduced exactly (including its habit
    of repeating all global options after every later [global] section).  Given FileResults, their
    text is joined.  Given JobDefs, an equivalent command line is rebuilt from what was written.
    """
    if not items:
        return ""
    first = items[0]
    if isinstance(first, str):
        paths = [str(p) for p in items]
        sources = [(p, read_job_file(p)) for p in paths]
        return "".join(r.showcmd for r in parse_file_results(sources, env, any_engine=True))
    if isinstance(first, FileResult):
        return "".join(r.showcmd for r in items if isinstance(r, FileResult))
    return _showcmd_jobdefs([j for j in items if isinstance(j, JobDef)])
