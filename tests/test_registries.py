"""The tables that replace if-chains: subcommands (with did-you-mean), output formats, doctor checks.

Each test holds a table against what users see (the real `iolab` process) or against the code it names."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

from iolab.cli import COMMANDS, did_you_mean
from iolab.doctor.checks import CHECKS
from iolab.doctor.findings import CODES
from iolab.report import FORMAT_TABLE, parse_formats

IOLAB = [sys.executable, "-m", "iolab"]


def iolab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*IOLAB, *args], capture_output=True, text=True, timeout=60)


# ----------------------------------------------------------------------------------------- subcommands


@pytest.mark.parametrize(
    ("typed", "meant"), [("rnu", "run"), ("quik", "quick"), ("doctr", "doctor"), ("optoins", "options")]
)
def test_unknown_subcommand_suggests_the_near_one(typed: str, meant: str) -> None:
    proc = iolab(typed)
    assert proc.returncode == 2
    first = proc.stderr.splitlines()[0]
    assert first == f"iolab: unknown command '{typed}'; did you mean '{meant}'?"
    assert proc.stdout == ""  # the usage that follows is a message too: stderr only


def test_unknown_subcommand_far_from_all_gets_no_guess() -> None:
    proc = iolab("xyzzy")
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[0] == "iolab: unknown command 'xyzzy'"
    assert "did you mean" not in proc.stderr
    assert did_you_mean("xyzzy") == ""


def test_help_lists_every_registered_subcommand() -> None:
    proc = iolab("--help")
    assert proc.returncode == 0 and proc.stderr == ""
    listed = re.findall(r"^  iolab (\S+) ", proc.stdout, re.MULTILINE)
    assert listed == list(COMMANDS)
    for name, command in COMMANDS.items():
        row = next(line for line in proc.stdout.splitlines() if line.startswith(f"  iolab {name} "))
        assert row.endswith(command.help) and command.args in row


def test_no_arguments_prints_usage_and_fails() -> None:
    proc = iolab()
    assert proc.returncode == 2
    assert re.findall(r"^  iolab (\S+) ", proc.stdout, re.MULTILINE) == list(COMMANDS)


@pytest.mark.parametrize("name", ["run", "quick", "serve", "ctl", "doctor", "explain"])
def test_each_subcommand_reaches_its_own_help(name: str) -> None:
    # the table's handler is the subcommand's own command line: its --help names it and succeeds
    proc = iolab(name, "--help")
    assert proc.returncode == 0, proc.stderr
    assert f"iolab {name}" in proc.stdout + proc.stderr  # explain prints its usage on stderr


# ------------------------------------------------------------------------------------------ formats


def test_every_format_in_the_table_is_accepted_and_listed_when_one_is_not() -> None:
    for name in FORMAT_TABLE:
        assert parse_formats(name) == [name]
    with pytest.raises(ValueError) as info:
        parse_formats("yaml")
    assert str(info.value) == "unknown output format 'yaml'; expected one of normal, json, json+, terse"


# ----------------------------------------------------------------------------------------- doctor checks


def test_each_check_reports_exactly_the_codes_it_is_registered_with() -> None:
    codes_md = (Path(__file__).parent.parent / "src" / "iolab" / "doctor" / "CODES.md").read_text()
    seen: list[str] = []
    for run, codes in CHECKS.items():
        in_source = set(re.findall(r'"(IOL-[A-Z]+-\d{3})"', inspect.getsource(run)))
        assert in_source == set(codes), run.__name__
        for code in codes:
            assert code in CODES and code in codes_md, code
        seen.extend(codes)
    assert len(seen) == len(set(seen)), "a code belongs to one check"


def test_checks_run_in_the_table_order_target_first() -> None:
    names = [run.__name__ for run in CHECKS]
    assert names[0] == "check_target" and names[1] == "check_cache"
    assert len(names) == 11
