"""Job files and fio command lines for the doctor, through the parser `iolab.jobfile`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from iolab.jobfile import JobDef, parse_cli, parse_files


def load_jobfile(path: str) -> list[JobDef]:
    return parse_files([path])


def jobdefs_from_argv(args: Sequence[str]) -> list[JobDef]:
    """fio-style options (`--name=x --rw=read ...`) to JobDefs."""
    return parse_cli(list(args)).jobs


def looks_like_jobfile(path: str) -> bool:
    """A small text file with at least one [section] header."""
    p = Path(path)
    try:
        if not p.is_file() or p.stat().st_size > (1 << 20):
            return False
        text = p.read_text()
    except (OSError, UnicodeDecodeError):
        return False
    return re.search(r"^\s*\[[^\]\n]+\]\s*$", text, re.MULTILINE) is not None
