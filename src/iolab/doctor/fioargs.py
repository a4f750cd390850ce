"""Job files and fio command lines for the doctor.

The real parser is `iolab.jobfile` (parse_files / parse_cli); it is used whenever it can be imported. Until
then, and only for the options the doctor's checks read, a minimal reading is done here: sections,
`[global]` inheritance, `key=value`, and the units of those options (sizes in bytes with 1024-based suffixes,
times in ns with seconds as the default unit).
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from iolab.doctor.jobs import JobDefLike, Location, SimpleJobDef, make_jobdef

_SIZE_OPTS = {"size", "filesize", "io_size", "offset", "offset_increment"}
_BS_OPTS = {"bs", "blocksize"}
_TIME_OPTS = {"runtime", "ramp_time", "startdelay"}
_INT_OPTS = {"iodepth", "numjobs", "nrfiles", "loops", "fsync", "fdatasync", "rwmixread"}
_BOOL_OPTS = {
    "direct",
    "buffered",
    "time_based",
    "end_fsync",
    "fsync_on_close",
    "zero_buffers",
    "refill_buffers",
    "allow_mounted_write",
    "group_reporting",
    "stonewall",
    "norandommap",
}
_ALIASES = {"blocksize": "bs", "readwrite": "rw", "timeout": "runtime", "ioscheduler": "ioscheduler"}
_SUFFIX = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_TIME_UNIT = {
    "": 10**9,
    "s": 10**9,
    "ms": 10**6,
    "us": 10**3,
    "usec": 10**3,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
    "d": 86400 * 10**9,
}


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtpb]?)(?:i?b)?\s*", text, re.IGNORECASE)
    if not m:
        raise ValueError(f"not a size: {text!r}")
    return int(float(m.group(1)) * _SUFFIX[m.group(2).lower()])


def parse_time_ns(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", text, re.IGNORECASE)
    if not m or m.group(2).lower() not in _TIME_UNIT:
        raise ValueError(f"not a time: {text!r}")
    return int(float(m.group(1)) * _TIME_UNIT[m.group(2).lower()])


def typed(option: str, text: str) -> tuple[str, Any]:
    name = _ALIASES.get(option, option)
    try:
        if name in _SIZE_OPTS:
            return name, parse_size(text)
        if name in _BS_OPTS or name == "bs":
            parts = [parse_size(p) for p in text.split(",") if p]
            return "bs", (parts[0], parts[1] if len(parts) > 1 else parts[0])
        if name in _TIME_OPTS:
            return name, parse_time_ns(text)
        if name in _INT_OPTS:
            return name, int(text)
        if name in _BOOL_OPTS:
            return name, text.strip().lower() not in ("0", "false", "no", "off")
        if name == "filename":
            return name, [p for p in re.split(r"(?<!\\):", text) if p]
        if name == "rw":
            return name, text.partition(":")[0].strip()
    except (ValueError, IndexError):
        return name, text
    return name, text


def _to_jobdefs(
    glob: dict[str, str],
    sections: list[tuple[str, dict[str, str], int]],
    source: str,
    lines: dict[tuple[str, str], int],
) -> list[SimpleJobDef]:
    out = []
    for index, (name, opts, line) in enumerate(sections):
        merged = {**glob, **opts}
        values: dict[str, Any] = {}
        for key, text in merged.items():
            k, v = typed(key, text)
            values[k] = v
        jd = make_jobdef(name, values, index, source)
        set_at = {
            typed(k, "0")[0]: Location(source, lines.get((name, k), lines.get(("global", k), 0)))
            for k in merged
        }
        out.append(SimpleJobDef(jd.name, index, jd.values, set_at, Location(source, line)))
    return out


def fallback_parse_text(text: str, source: str) -> list[SimpleJobDef]:
    glob: dict[str, str] = {}
    sections: list[tuple[str, dict[str, str], int]] = []
    lines: dict[tuple[str, str], int] = {}
    current: dict[str, str] | None = None
    current_name = ""
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        m = re.fullmatch(r"\[(.+)\]", line)
        if m:
            current_name = m.group(1).strip()
            if current_name == "global":
                current = glob
            else:
                current = {}
                sections.append((current_name, current, no))
            continue
        if current is None:
            continue
        key, _, value = line.partition("=")
        current[key.strip()] = value.strip() if _ else "1"
        lines[(current_name, key.strip())] = no
    return _to_jobdefs(glob, sections, source, lines)


def fallback_parse_argv(args: Sequence[str]) -> list[SimpleJobDef]:
    glob: dict[str, str] = {}
    sections: list[tuple[str, dict[str, str], int]] = []
    lines: dict[tuple[str, str], int] = {}
    current = glob
    name = "global"
    for i, arg in enumerate(args):
        if not arg.startswith("--"):
            continue
        key, eq, value = arg[2:].partition("=")
        if key == "name":
            name = value
            current = {}
            sections.append((value, current, i))
            continue
        current[key] = value if eq else "1"
        lines[(name, key)] = i
    return _to_jobdefs(glob, sections, "<cmdline>", lines)


def jobfile_api(name: str) -> Callable[..., Any] | None:
    """`iolab.jobfile.<name>` when the parser package provides it (imported lazily: it may not exist yet)."""
    try:
        module = importlib.import_module("iolab.jobfile")
    except ImportError:
        return None
    func = getattr(module, name, None)
    return func if callable(func) else None


def load_jobfile(path: str) -> list[JobDefLike]:
    parse_files = jobfile_api("parse_files")
    if parse_files is None:
        return list(fallback_parse_text(Path(path).read_text(), path))
    result = parse_files([path], dict(os.environ))
    return list(result.jobs if hasattr(result, "jobs") else result)


def jobdefs_from_argv(args: Sequence[str]) -> list[JobDefLike]:
    """fio-style options (`--name=x --rw=read ...`) to JobDefs."""
    parse_cli = jobfile_api("parse_cli")
    if parse_cli is None:
        return list(fallback_parse_argv(args))
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
