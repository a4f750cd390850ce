"""Report phase: fio-compatible output formats from a :class:`~iolab.analysis.model.RunResult`.

``render(run, "normal" | "json" | "json+" | "terse")``; several formats may be given comma separated
(``"json,normal"``).  As fio does, they are then written in a fixed order whatever the order asked: terse
lines, then the JSON document (json+ if both json and json+ are asked), then the normal report.

The normal-mode preamble fio prints before jobs start ("name: (g=0): rw=..." / version / "Starting N ...")
is not part of ``render``: it is :func:`render_preamble`, for the caller to print before running.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from iolab.analysis.model import RunResult
from iolab.report.fiojson import render_json
from iolab.report.normal import PreambleJob, render_normal, render_preamble
from iolab.report.terse import render_terse


@dataclass(frozen=True)
class Format:
    """One output format: its renderer (the run and the terse version, which only terse reads)."""

    render: Callable[[RunResult, int], str]
    #: where it goes when several formats are asked (fio's fixed order: terse, JSON, normal)
    written: int
    #: a format asked together with this one that already holds all of it (json+ holds json)
    covered_by: str | None = None


#: every output format, by name (in the order error messages list them); a new format is one row
FORMAT_TABLE: dict[str, Format] = {
    "normal": Format(lambda run, _: render_normal(run), written=2),
    "json": Format(lambda run, _: render_json(run, plus=False), written=1, covered_by="json+"),
    "json+": Format(lambda run, _: render_json(run, plus=True), written=1),
    "terse": Format(render_terse, written=0),
}
FORMATS: tuple[str, ...] = tuple(FORMAT_TABLE)


def parse_formats(fmt: str) -> list[str]:
    """Validate a format list (``"json,normal"``); returns the distinct names in the order given."""
    out: list[str] = []
    for part in fmt.split(","):
        name = part.strip().lower()
        if not name:
            continue
        if name not in FORMAT_TABLE:
            raise ValueError(f"unknown output format {part.strip()!r}; expected one of {', '.join(FORMATS)}")
        if name not in out:
            out.append(name)
    if not out:
        raise ValueError("empty output format")
    return out


def render(run: RunResult, fmt: str, *, terse_version: int = 3) -> str:
    """Render ``run`` in one or more (comma separated) output formats."""
    names = parse_formats(fmt)
    wanted = [name for name in names if FORMAT_TABLE[name].covered_by not in names]
    wanted.sort(key=lambda name: FORMAT_TABLE[name].written)
    return "".join(FORMAT_TABLE[name].render(run, terse_version) for name in wanted)


__all__ = [
    "FORMATS",
    "FORMAT_TABLE",
    "Format",
    "PreambleJob",
    "parse_formats",
    "render",
    "render_json",
    "render_normal",
    "render_preamble",
    "render_terse",
]
