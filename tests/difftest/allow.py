"""The known differences: entries of docs/fio-differences.md that excuse a disagreement.

An entry is a level-3 heading (its id) followed by a ``match:`` line and a ``reason:`` line::

    ### norandommap-blocks
    match: field=blocks option=norandommap
    reason: ...

Every ``key=value`` token of ``match:`` must hold for a finding: ``field`` (a glob on the finding's
field, e.g. ``io.*``), ``case`` (a glob on the case id), ``option`` (the job sets this option, any
spelling), ``source`` (gen or example).  Internal errors are never excused.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path

from . import jobtext
from .model import DISAGREE, Finding, Result

DOC = Path(__file__).resolve().parents[2] / "docs" / "fio-differences.md"
KEYS = ("field", "case", "option", "source")


@dataclass
class Entry:
    id: str
    match: dict[str, str]
    reason: str

    def covers(self, result: Result, finding: Finding) -> bool:
        for key, pat in self.match.items():
            if key == "field" and not fnmatch.fnmatchcase(finding.field, pat):
                return False
            if key == "case" and not fnmatch.fnmatchcase(result.case.id, pat):
                return False
            if key == "source" and result.case.source != pat:
                return False
            if key == "option" and jobtext.canonical(pat) not in jobtext.options_used(result.case.text):
                return False
        return True


class DocError(ValueError):
    pass


def load(path: Path = DOC) -> list[Entry]:
    """The entries of the document; a malformed entry is an error, not silently skipped."""
    if not path.exists():
        return []
    entries: list[Entry] = []
    current: Entry | None = None
    in_fence = False
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith("```"):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        if line.startswith("### "):
            current = Entry(line[4:].strip(), {}, "")
            entries.append(current)
        elif current is not None and line.startswith("match:"):
            for tok in line[6:].split():
                key, sep, val = tok.partition("=")
                if not sep or key not in KEYS:
                    raise DocError(f"{path}:{n}: bad match token {tok!r} (use {', '.join(KEYS)})")
                current.match[key] = val
        elif current is not None and line.startswith("reason:"):
            current.reason = line[7:].strip()
    for e in entries:
        if not e.match:
            raise DocError(f"{path}: entry {e.id!r} has no match: line")
        if not re.match(r"^[A-Za-z0-9_.:-]+$", e.id):
            raise DocError(f"{path}: entry id {e.id!r}: use letters, digits and -_.:")
    return entries


def apply(result: Result, entries: list[Entry]) -> None:
    """Record which entry excuses each finding of a disagreement."""
    if result.verdict != DISAGREE:
        return
    for f in result.findings:
        for e in entries:
            if e.covers(result, f):
                result.allowed_by[f.field] = e.id
                break
