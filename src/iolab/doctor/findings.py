"""Findings: what the doctor reports, and the registry of stable codes.

Every check reports through `Finding`. Codes never change meaning once released; `CODES` is the registry and
`CODES.md` beside this file documents it (a test keeps the two in step).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

Severity = Literal["error", "warning", "info"]
SEVERITY_ORDER: dict[str, int] = {"error": 0, "warning": 1, "info": 2}


@dataclass(frozen=True)
class CodeInfo:
    title: str
    default_severity: Severity


#: The stable codes. Title = the one-line "what"; CODES.md has the why and the fix.
CODES: dict[str, CodeInfo] = {
    "IOL-CACHE-001": CodeInfo("page cache not bypassed (direct=0 / buffered=1)", "warning"),
    "IOL-CACHE-002": CodeInfo("buffered working set fits in RAM", "warning"),
    "IOL-TARGET-001": CodeInfo("target is not the raw device that was meant", "error"),
    "IOL-TARGET-002": CodeInfo("target is a stacked or virtual device", "warning"),
    "IOL-TARGET-003": CodeInfo(
        "loop device without direct I/O: its backing file's page cache serves I/O", "warning"
    ),
    "IOL-ENGINE-001": CodeInfo("synchronous engine with iodepth>1 (capped at 1)", "warning"),
    "IOL-PMEM-001": CodeInfo("ioengine=libpmem on a file without DAX: page-cache numbers", "warning"),
    "IOL-JOBS-001": CodeInfo("numjobs clones share the same file region", "warning"),
    "IOL-RAMP-001": CodeInfo("no ramp_time", "warning"),
    "IOL-TIME-001": CodeInfo("runtime too short for the target", "warning"),
    "IOL-DATA-001": CodeInfo("reads of never-written data (holes or unwritten extents)", "warning"),
    "IOL-ALIGN-001": CodeInfo("direct I/O size or offset not a multiple of the logical block size", "error"),
    "IOL-BUF-001": CodeInfo(
        "zero-filled write buffers to a target that may compress or deduplicate", "warning"
    ),
    "IOL-SYNC-001": CodeInfo("buffered writes without fsync/end_fsync", "warning"),
    "IOL-PLAN-001": CodeInfo("the job cannot be planned as written", "error"),
    "IOL-LIE-001": CodeInfo(
        "reads served from cache: the device saw far fewer bytes than were read", "warning"
    ),
    "IOL-LIE-002": CodeInfo(
        "writes absorbed by cache: the device saw far fewer bytes than were written", "warning"
    ),
    "IOL-LIE-003": CodeInfo("amplified: the device saw more bytes than were issued", "warning"),
    "IOL-LIE-004": CodeInfo("merged or split: the device's request size differs from the issued one", "info"),
    "IOL-LIE-005": CodeInfo("flushes not reaching the device", "warning"),
    "IOL-LIE-006": CodeInfo("trims not reaching the device as discards", "info"),
    "IOL-SAFE-001": CodeInfo("write to a mounted block device", "error"),
    "IOL-SAFE-002": CodeInfo("write to a block device that has holders", "error"),
    "IOL-SAFE-003": CodeInfo("write to an active swap device", "error"),
    "IOL-SAFE-004": CodeInfo(
        "write to a block device carrying a partition table or file-system signature", "error"
    ),
    "IOL-SAFE-005": CodeInfo("cannot open the block device exclusively (O_EXCL) or read it", "error"),
    "IOL-SAFE-006": CodeInfo("write to a regular file that is the backing file of a loop device", "error"),
    "IOL-SAFE-007": CodeInfo("write to an active swap file, or to a file under active swap", "error"),
    "IOL-SAFE-008": CodeInfo(
        "write to an NBD export carrying a partition table or file-system signature", "error"
    ),
}


@dataclass(frozen=True)
class Finding:
    """One diagnosis: stable code, severity, one-line message, evidence (paths, numbers) and the fix."""

    code: str
    severity: Severity
    message: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    fix: str = ""
    #: the job (section name) it concerns, "" when it concerns a target or a command
    job: str = ""

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unknown finding code {self.code!r}")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "evidence": dict(self.evidence),
            "fix": self.fix,
        }
        if self.job:
            out["job"] = self.job
        return out

    def render(self) -> str:
        """Normal-output form: a headline, then indented evidence and fix lines."""
        where = f" [{self.job}]" if self.job else ""
        lines = [f"{self.severity}: {self.code}{where}: {self.message}"]
        if self.evidence:
            ev = ", ".join(f"{k}={_fmt(v)}" for k, v in self.evidence.items())
            lines.append(f"    evidence: {ev}")
        if self.fix:
            lines.append(f"    fix: {self.fix}")
        return "\n".join(lines)


def finding(
    code: str,
    message: str,
    evidence: Mapping[str, Any] | None = None,
    fix: str = "",
    *,
    job: str = "",
    severity: Severity | None = None,
) -> Finding:
    """Build a finding with the code's default severity unless one is given."""
    return Finding(code, severity or CODES[code].default_severity, message, dict(evidence or {}), fix, job)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Errors first, then warnings, then info; stable within a severity."""
    return sorted(findings, key=lambda f: SEVERITY_ORDER[f.severity])


def strict(findings: Iterable[Finding]) -> list[Finding]:
    """`--strict`: every warning becomes an error (info stays info)."""
    return [replace(f, severity="error") if f.severity == "warning" else f for f in findings]


def has_errors(findings: Iterable[Finding]) -> bool:
    return any(f.severity == "error" for f in findings)


def findings_json(findings: Iterable[Finding]) -> list[dict[str, Any]]:
    return [f.to_json() for f in sort_findings(findings)]


def render_findings(findings: Iterable[Finding]) -> str:
    """The block printed at the top of normal output (empty string when there is nothing to say)."""
    return "\n".join(f.render() for f in sort_findings(findings))
