"""The parser's output: JobDef (docs/DESIGN.md section 1) and the command-line result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from iolab.jobfile.errors import Location


@dataclass(frozen=True)
class RawSetting:
    """One option as written, after ${VAR} substitution, in the order fio applied it."""

    name: str  # canonical option name (as ``fio --showcmd`` prints it)
    value: str | None  # None: written without '='
    location: Location
    from_global: bool  # inherited from a [global] section (or command-line global options)


@dataclass
class JobDef:
    name: str  # section name ("global" never appears: it is merged in)
    index: int  # order of appearance, 0-based
    values: dict[str, Any]  # canonical option name -> typed value, for every general option
    set_at: dict[str, Location]  # only options explicitly set (after inheritance)
    source: Location  # the section header (or the --name argument)
    warnings: list[str] = field(default_factory=list)  # fio surprises, unimplemented options
    raw: list[RawSetting] = field(default_factory=list)  # what was written, for showcmd


@dataclass
class CliParse:
    """``parse_cli`` result: the jobs (command-line jobs first, then job files) and fio's flags."""

    jobs: list[JobDef]
    files: list[str]  # job files named on the command line, in order
    flags: dict[str, Any]  # fio's non-job flags, e.g. {"output-format": ["json"], "parse-only": True}
    warnings: list[str] = field(default_factory=list)  # about the command line itself
