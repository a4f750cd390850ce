"""The finding codes: registry, CODES.md and the Finding format agree."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import iolab.doctor
from iolab.doctor import CODES, Finding
from iolab.doctor.findings import finding, render_findings, sort_findings, strict

CODES_MD = Path(iolab.doctor.__file__).with_name("CODES.md")


def documented() -> dict[str, str]:
    rows = {}
    for line in CODES_MD.read_text().splitlines():
        m = re.match(r"\|\s*(IOL-[A-Z]+-\d{3})\s*\|\s*([^|]+)\|", line)
        if m:
            rows[m.group(1)] = m.group(2).strip()
    return rows


def test_every_code_is_documented_once_and_nothing_else() -> None:
    rows = documented()
    assert set(rows) == set(CODES)
    text = CODES_MD.read_text()
    for code in CODES:
        assert len(re.findall(rf"^\|\s*{code}\s*\|", text, re.MULTILINE)) == 1, code


def test_documented_severity_matches_the_registry() -> None:
    for code, severity in documented().items():
        assert severity.startswith(CODES[code].default_severity), code


def test_codes_are_well_formed() -> None:
    for code in CODES:
        assert re.fullmatch(r"IOL-[A-Z]+-\d{3}", code)


def test_finding_json_has_the_documented_keys() -> None:
    f = finding("IOL-RAMP-001", "no ramp_time", {"ramp_time": 0}, "[job] ramp_time=5s", job="job")
    doc = json.loads(json.dumps(f.to_json()))
    assert set(doc) >= {"code", "severity", "message", "evidence", "fix"}
    assert doc["severity"] == "warning"


def test_unknown_code_is_rejected() -> None:
    with pytest.raises(ValueError):
        Finding("IOL-NOPE-001", "error", "x")


def test_strict_and_ordering() -> None:
    found = [finding("IOL-LIE-004", "m"), finding("IOL-RAMP-001", "r"), finding("IOL-ALIGN-001", "a")]
    assert [f.severity for f in sort_findings(found)] == ["error", "warning", "info"]
    assert [f.severity for f in strict(found)] == ["info", "error", "error"]
    text = render_findings(found)
    assert text.splitlines()[0].startswith("error: IOL-ALIGN-001")
