"""Job files and fio command lines for the doctor, through the parser package `iolab.jobfile`.

The parser is imported lazily, so the rest of the doctor (target inspection, the safety gate, the lie
detector) works without it.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from iolab.doctor.jobs import JobDefLike


def jobfile_api(name: str) -> Callable[..., Any] | None:
    """`iolab.jobfile.<name>` when the parser package provides it (imported lazily: it may not exist yet)."""
    try:
        module = importlib.import_module("iolab.jobfile")
    except ImportError:
        return None
    func = getattr(module, name, None)
    return func if callable(func) else None


def _require(name: str) -> Callable[..., Any]:
    func = jobfile_api(name)
    if func is None:
        raise RuntimeError(f"iolab.jobfile.{name} is not available")
    return func


def load_jobfile(path: str) -> list[JobDefLike]:
    parse_files = _require("parse_files")
    result = parse_files([path], dict(os.environ))
    return list(result.jobs if hasattr(result, "jobs") else result)


def jobdefs_from_argv(args: Sequence[str]) -> list[JobDefLike]:
    """fio-style options (`--name=x --rw=read ...`) to JobDefs."""
    parse_cli = _require("parse_cli")
    result = parse_cli(list(args))
    # DESIGN.md: a list of JobDefs; the parser's CliParse carries them in .jobs
    return list(result.jobs if hasattr(result, "jobs") else result)


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
