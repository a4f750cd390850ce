"""fio's example job files (Debian's fio-examples), shrunk to run in a temp directory.

Every example is rewritten the same way for both tools: file and directory names become plain names
in the run directory (a /dev/X becomes a file dev_X: the harness never touches a device), sizes are
capped at 1 MiB, time-based runs last 200 ms, clone and file counts are capped.  Examples that need an
engine iolab does not run or a zoned device are not run with fio; iolab must refuse them cleanly.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from iolab.options import OPTIONS, SUPPORTED_ENGINES, Kind

from . import jobtext
from .model import Case

CAP = 1 << 20
_SIZE = re.compile(r"^\s*(\d+)\s*([kmgtp]?)(i?)(b?)\s*$", re.I)
_MULT = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_COMMENT = re.compile(r"\s+[;#].*$")
SIZE_KEYS = ("size", "filesize", "io_size")
# Every other byte-valued option of the table (offsets, zones, ...) is scaled like the sizes and then
# capped too: an example's offset_increment=124g once made a 79 GiB file.
SCALED_KEYS = tuple(
    o.name for o in OPTIONS.values() if (o.kind is Kind.SIZE or o.zone_ok) and o.name not in SIZE_KEYS
)
RATE_KEYS = {"rate": "16m"}
IOPS_KEYS = {"rate_iops": 10000}
COUNT_CAPS = {"numjobs": 4, "nrfiles": 4, "loops": 2, "openfiles": 4}


def example_dir() -> Path | None:
    """Where the fio-examples package put the job files (dpkg -L), or None."""
    try:
        out = subprocess.run(
            ["dpkg", "-L", "fio-examples"], capture_output=True, text=True, check=False
        ).stdout
    except OSError:
        out = ""
    dirs = sorted({str(Path(p).parent) for p in out.split() if p.endswith(".fio")})
    for d in [*dirs, "/usr/share/doc/fio/examples"]:
        if Path(d).is_dir() and any(Path(d).glob("*.fio")):
            return Path(d)
    return None


def size_bytes(text: str) -> int | None:
    m = _SIZE.match(text)
    if not m:
        return None
    return int(m.group(1)) * _MULT[m.group(2).lower()]


def _plain_name(name: str, notes: list[str]) -> str:
    if name.startswith("/dev/"):
        new = "dev_" + name[5:].replace("/", "_")
        notes.append(f"device {name} -> file {new}")
        return new
    if "/" in name:
        new = name.rstrip("/").rsplit("/", 1)[-1] or "file"
        notes.append(f"{name} -> {new}")
        return new
    return name


def _split_files(value: str) -> list[str]:
    return [p.replace("\\:", ":") for p in re.split(r"(?<!\\):", value)]


def rewrite(text: str) -> tuple[str, list[str], str | None]:
    """The shrunk job text, the rewrites made, and why fio can't run it (None if it can)."""
    notes: list[str] = []
    skip: str | None = None
    infos = jobtext.jobs(text)
    time_based = any(i.flag("time_based") for i in infos)
    sizes = [
        size_bytes(v)
        for _n, opts in jobtext.parse_lines(text)
        for k, v in opts.items()
        if k in ("size", "filesize")
    ]
    biggest = max([s for s in sizes if s], default=0)
    ratio = CAP / biggest if biggest > CAP else 1.0
    devices = False
    has_size = bool(sizes)
    out: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;[" or ("=" not in line and not line.isidentifier()):
            out.append(raw)
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        canon = jobtext.canonical(key)
        value = _COMMENT.sub("", value).strip()
        new: str | None = value
        if canon == "ioengine":
            engine = value.split(":")[0]
            if engine not in SUPPORTED_ENGINES and skip is None:
                skip = f"ioengine={engine}: iolab runs only {', '.join(SUPPORTED_ENGINES)}"
        elif canon == "io_submit_mode" and value == "offload":
            # seen here: fio 3.33 never finishes such a job (killed after the timeout)
            skip = skip or "io_submit_mode=offload: fio 3.33 hangs with it on this machine"
        elif canon == "zonemode" and value == "zbd":
            skip = skip or "zonemode=zbd needs a zoned block device"
        elif canon == "filename":
            parts = [_plain_name(p, notes) for p in _split_files(value)]
            devices |= any(p.startswith("/dev/") for p in _split_files(value))
            new = ":".join(p.replace(":", "\\:") for p in parts)
        elif (
            canon
            in (
                "filename_format",
                "write_bw_log",
                "write_lat_log",
                "write_iops_log",
                "write_hist_log",
                "read_iolog",
                "write_iolog",
            )
            and "/" in value
        ):
            new = _plain_name(value, notes)
        elif canon in ("directory", "opendir"):
            new = None
            notes.append(f"dropped {key}={value}")
        elif canon == "fill_device":
            new = None  # fio would write until the file system is full
            notes.append(f"dropped {key}={value} (fills the file system)")
        elif canon in SIZE_KEYS:
            parts = [size_bytes(p) for p in value.split("-")]
            if any(p is None for p in parts) and "%" not in value:
                new = "1m"
            elif all(p is not None for p in parts) and max(p or 0 for p in parts) > CAP:
                new = "-".join(str(max(512, min(int(p or 0), CAP))) for p in parts)
        elif canon in SCALED_KEYS:
            v = size_bytes(value)
            if v is not None and v > 0 and (ratio < 1.0 or v > CAP):
                new = str(min(CAP, max(4096, int(v * ratio) // 4096 * 4096)))
            elif v is None and "%" not in value and value.strip() not in ("", "0"):
                new = "0"  # a form this reader can't size: make it harmless
        elif canon == "runtime":
            new = "200ms" if time_based else "5s"
        elif canon == "ramp_time" and value not in ("0", ""):
            new = "50ms"
        elif canon == "startdelay" and value not in ("0", ""):
            new = "10ms"
        elif canon in COUNT_CAPS:
            v = size_bytes(value)
            if v is not None and v > COUNT_CAPS[canon]:
                new = str(COUNT_CAPS[canon])
        elif canon in RATE_KEYS:
            parts = value.split(",")
            new = ",".join(
                p if (size_bytes(p) or 0) >= 16 << 20 or not p else RATE_KEYS[canon] for p in parts
            )
        elif canon in IOPS_KEYS:
            parts = value.split(",")
            new = ",".join(
                p if not p.isdigit() or int(p) >= IOPS_KEYS[canon] else str(IOPS_KEYS[canon]) for p in parts
            )
        if new is None:
            continue
        if new != value:
            if canon not in ("filename", "filename_format") and not canon.startswith("write_"):
                notes.append(f"{key}={value} -> {new}")
            out.append(f"{key}={new}" if sep else key)
        else:
            out.append(raw)
    result = "\n".join(out) + "\n"
    if devices and not has_size:
        result = "[global]\nsize=1m\n" + result
        notes.append("added size=1m (the job used a device's size)")
    return result, notes, skip


def example_cases(directory: Path | None = None) -> list[Case]:
    d = directory or example_dir()
    if d is None:
        return []
    cases = []
    for path in sorted(d.glob("*.fio")):
        text, notes, skip = rewrite(path.read_text(errors="replace"))
        cases.append(Case(f"ex-{path.stem}", "example", text, skip_fio=skip, notes=notes))
    return cases
