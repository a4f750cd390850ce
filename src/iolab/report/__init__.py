"""Report phase: fio-compatible output formats from a :class:`~iolab.analysis.model.RunResult`.

``render(run, "normal" | "json" | "json+" | "terse")``; several formats may be given comma separated
(``"json,normal"``).  As fio does, they are then written in a fixed order whatever the order asked: terse
lines, then the JSON document (json+ if both json and json+ are asked), then the normal report.

The normal-mode preamble fio prints before jobs start ("name: (g=0): rw=..." / version / "Starting N ...")
is not part of ``render``: it is :func:`render_preamble`, for the caller to print before running.
"""

from __future__ import annotations

from iolab.analysis.model import RunResult
from iolab.report.fiojson import render_json
from iolab.report.normal import PreambleJob, render_normal, render_preamble
from iolab.report.terse import render_terse

FORMATS: tuple[str, ...] = ("normal", "json", "json+", "terse")


def parse_formats(fmt: str) -> list[str]:
    """Validate a format list (``"json,normal"``); returns the distinct names in the order given."""
    out: list[str] = []
    for part in fmt.split(","):
        name = part.strip().lower()
        if not name:
            continue
        if name not in FORMATS:
            raise ValueError(f"unknown output format {part.strip()!r}; expected one of {', '.join(FORMATS)}")
        if name not in out:
            out.append(name)
    if not out:
        raise ValueError("empty output format")
    return out


def render(run: RunResult, fmt: str, *, terse_version: int = 3) -> str:
    """Render ``run`` in one or more (comma separated) output formats."""
    names = parse_formats(fmt)
    parts: list[str] = []
    if "terse" in names:
        parts.append(render_terse(run, terse_version))
    if "json+" in names:
        parts.append(render_json(run, plus=True))
    elif "json" in names:
        parts.append(render_json(run, plus=False))
    if "normal" in names:
        parts.append(render_normal(run))
    return "".join(parts)


__all__ = [
    "FORMATS",
    "PreambleJob",
    "parse_formats",
    "render",
    "render_json",
    "render_normal",
    "render_preamble",
    "render_terse",
]
