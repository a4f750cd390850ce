"""Property tests: whatever the text or argv, the parser returns JobDefs or raises JobFileError."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iolab.jobfile import JobFileError, parse_cli, parse_files, parse_text, showcmd
from iolab.options import FIO_FLAGS, OPTIONS

NAMES = sorted({n for o in OPTIONS.values() for n in o.names})
CHOICES = sorted({c for o in OPTIONS.values() for c in o.choices})
TRICKY = [
    "",
    " ",
    "0",
    "1",
    "-1",
    "4k",
    "1.5m",
    "4KiB",
    "0x10",
    "0x",
    "1e3",
    "50%",
    "150%",
    "10z",
    "z",
    "(1+1)",
    "4k,8k",
    "4k-8k",
    ",8k",
    "8k,",
    "4k:8k",
    "1k-4k,8k-16k",
    "4k/10:64k/50:32k/40,4k/100",
    "4k/",
    "/50",
    ":",
    "::",
    "a\\:b:c",
    "99.9:99.99",
    "1min",
    "10sec",
    "10m",
    " 10ms",
    "randread:8",
    "read:-4k",
    "rw:",
    "${X}",
    "${",
    "${}",
    "$pagesize",
    "2*$pagesize",
    "$ncpus-",
    "$mb_memory/0",
    "9223372036854775807",
    "99999999999999999999999",
    "-9223372036854775808",
    "1p",
    "16e",
    "nan",
    "inf",
    "true",
    "yes",
    "\x01",
    "é",
    "4k ; c",
    "x # y",
    "'",
    "external:/x.so",
    "psync",
    "libaio",
]
TMP = Path(tempfile.mkdtemp(prefix="iolab-fuzz-"))
(TMP / "ok.fio").write_text("bs=4k\nthread\n")
(TMP / "loop.fio").write_text("include loop.fio\n")
(TMP / "sect.fio").write_text("[x]\n")
(TMP / "bad.fio").write_text("bs=zz\n")
INCLUDES = [f"include {TMP / n}" for n in ("ok.fio", "loop.fio", "sect.fio", "bad.fio", "nope.fio")]

values = st.one_of(st.sampled_from(TRICKY), st.sampled_from(CHOICES), st.text(max_size=12))
option_line = st.builds(
    lambda n, sep, v: f"{n}{sep}{v}",
    st.one_of(st.sampled_from(NAMES), st.text(max_size=8)),
    st.sampled_from(["=", " = ", "= ", "", "=="]),
    values,
)
section_line = st.one_of(
    st.sampled_from(["[global]", "[global-2]", "[job]", "[job", "[]", "[", "[a] b", "[a#b]", " [x]"]),
    st.builds(lambda s: f"[{s}]", st.text(max_size=10)),
)
line = st.one_of(
    option_line,
    option_line,
    option_line,
    section_line,
    st.sampled_from([*INCLUDES, "include", "includefoo", "; comment", "# c", "", "   "]),
    st.text(max_size=20),
)
texts = st.lists(line, max_size=25).map("\n".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts)
def test_parse_text_only_raises_jobfileerror(text: str) -> None:
    try:
        jobs = parse_text(text, filename=str(TMP / "main.fio"), env={"X": "4k"})
    except JobFileError as e:
        assert str(e)
        return
    for j in jobs:
        assert set(j.set_at) <= set(j.values)
        assert isinstance(j.warnings, list)
    showcmd(jobs)


@settings(max_examples=150, deadline=None)
@given(st.lists(texts, min_size=1, max_size=3))
def test_parse_files_only_raises_jobfileerror(contents: list[str]) -> None:
    paths = []
    for i, c in enumerate(contents):
        p = TMP / f"f{i}.fio"
        p.write_text(c)
        paths.append(str(p))
    with contextlib.suppress(JobFileError):
        parse_files(paths, env={})


FLAG_NAMES = sorted(FIO_FLAGS)
arg = st.one_of(
    st.builds(lambda n, v: f"--{n}={v}", st.sampled_from(NAMES + FLAG_NAMES), values),
    st.builds(lambda n: f"--{n}", st.sampled_from(NAMES + FLAG_NAMES)),
    st.sampled_from(
        ["--name=a", "--name=global", "--", "-", "--x", "-bs=4k", str(TMP / "ok.fio"), str(TMP / "nope.fio")]
    ),
    values,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(arg, max_size=12))
def test_parse_cli_only_raises_jobfileerror(argv: list[str]) -> None:
    try:
        parse_cli(argv, env={})
    except JobFileError as e:
        assert str(e)
