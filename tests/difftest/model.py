"""Data the harness passes around: a case, what one tool did with it, and the verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

AGREE = "agree"
DISAGREE = "disagree"
REFUSED = "refused"
INTERNAL = "internal error"
VERDICTS = (AGREE, DISAGREE, REFUSED, INTERNAL)


@dataclass
class Case:
    """One job file to run through both tools."""

    id: str  # stable: gen-<hash of the text> or ex-<example file stem>
    source: str  # "gen" or "example"
    text: str
    # Why fio is not run (a device or engine we don't have); iolab must then refuse cleanly.
    skip_fio: str | None = None
    notes: list[str] = field(default_factory=list)  # rewrites done to an example


@dataclass
class Observation:
    """What one tool did: exit status, output, and the files it left in its directory."""

    tool: str
    rc: int
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False
    json: dict[str, Any] | None = None
    # relative path -> (size, non-zero 512-byte sector ranges as text, or None if not read)
    files: dict[str, tuple[int, str | None]] = field(default_factory=dict)


@dataclass
class Finding:
    """One field on which the tools differ."""

    field: str  # exit_code, jobs, io.<job>.<dir>.<key>, files, blocks.<file>, json_keys, logs, internal
    fio: Any
    iolab: Any
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "fio": self.fio, "iolab": self.iolab, "detail": self.detail}


@dataclass
class Result:
    case: Case
    verdict: str
    findings: list[Finding] = field(default_factory=list)
    refused_by: str | None = None  # the option/feature iolab named when refusing
    message: str = ""  # iolab's error line for refusals and internal errors
    skipped_compares: list[str] = field(default_factory=list)  # fields not compared and why
    allowed_by: dict[str, str] = field(default_factory=dict)  # finding field -> doc entry id
    fio_rc: int | None = None
    iolab_rc: int | None = None
    seconds: float = 0.0

    @property
    def unlisted(self) -> list[Finding]:
        """Findings not covered by docs/fio-differences.md (internal errors never are)."""
        if self.verdict == INTERNAL:
            return self.findings
        if self.verdict != DISAGREE:
            return []
        return [f for f in self.findings if f.field not in self.allowed_by]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.case.id,
            "source": self.case.source,
            "verdict": self.verdict,
            "findings": [f.as_dict() for f in self.findings],
            "unlisted": [f.field for f in self.unlisted],
            "allowed_by": self.allowed_by,
            "refused_by": self.refused_by,
            "message": self.message,
            "skip_fio": self.case.skip_fio,
            "skipped_compares": self.skipped_compares,
            "notes": self.case.notes,
            "fio_rc": self.fio_rc,
            "iolab_rc": self.iolab_rc,
            "seconds": round(self.seconds, 2),
            "job": self.case.text,
        }
