"""`iolab explain COMMAND`: what a quick benchmark command really measures, and the honest iolab job.

Understood: dd, cp, scp, hdparm -t/-T, and fio command lines. Each translation gives
- what the command measures, and why that misleads;
- the command's own behaviour as JobDefs (`as_is`), so `iolab doctor -- COMMAND` can run the pre-run
  checks on it;
- the equivalent iolab job, as a job file.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from iolab.doctor.checks import pre_run
from iolab.doctor.counters import Issued
from iolab.doctor.findings import Finding
from iolab.doctor.fioargs import jobdefs_from_argv, load_jobfile
from iolab.doctor.jobs import make_jobdefs
from iolab.doctor.target import block_devno
from iolab.ioengines import SYNC_ENGINES
from iolab.jobfile import JobDef, JobFileError

# --------------------------------------------------------------------------------------------- helpers

_DD_SUFFIX = {
    "c": 1, "w": 2, "b": 512,
    "kB": 1000, "K": 1024, "KiB": 1024, "k": 1024,
    "MB": 1000**2, "M": 1024**2, "MiB": 1024**2,
    "GB": 1000**3, "G": 1024**3, "GiB": 1024**3,
    "TB": 1000**4, "T": 1024**4, "TiB": 1024**4,
}  # fmt: skip


class ExplainError(ValueError):
    """The command is not one the explainer understands, or is malformed."""


def dd_number(text: str) -> int:
    """dd's numbers: 1M = MiB, 1MB = 10^6, `x` multiplies (2x512)."""
    total = 1
    for part in text.split("x"):
        m = re.fullmatch(r"(\d+)([A-Za-z]*)", part)
        if not m or (m.group(2) and m.group(2) not in _DD_SUFFIX):
            raise ExplainError(f"dd: invalid number {text!r}")
        total *= int(m.group(1)) * (_DD_SUFFIX[m.group(2)] if m.group(2) else 1)
    return total


def size_text(n: int) -> str:
    """A size for a job file, exact: 1048576000 -> 1000M."""
    for suffix, div in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= div and n % div == 0:
            return f"{n // div}{suffix}"
    return str(n)


@dataclass
class Explanation:
    command: str
    tool: str
    measures: list[str]
    misleading: list[str]
    #: JobDefs reproducing what the command itself does (for the pre-run checks)
    as_is: list[JobDef]
    #: the honest equivalent, as job-file sections: (name, [(key, value-text, comment)])
    job: list[tuple[str, list[tuple[str, str, str]]]]
    notes: list[str] = field(default_factory=list)
    #: what running the command issues (for `iolab doctor --run`), None when it cannot be known
    issued: Issued | None = None
    #: the files and devices it reads or writes
    paths: list[str] = field(default_factory=list)

    def jobfile(self) -> str:
        lines = [f"# iolab job equivalent to: {self.command}"]
        lines += [f"# {n}" for n in self.notes]
        for name, opts in self.job:
            lines.append(f"[{name}]")
            width = max((len(k) + len(v) + 1 for k, v, _ in opts), default=0)
            for key, value, comment in opts:
                text = f"{key}={value}" if value != "" else key
                lines.append(f"{text:<{width}}  ; {comment}" if comment else text)
            lines.append("")
        return "\n".join(lines).rstrip() + "\n"

    def render(self) -> str:
        out = [f"$ {self.command}", "", "What it measures:"]
        out += [f"  - {m}" for m in self.measures]
        out += ["", "Why that misleads:"]
        out += [f"  - {m}" for m in self.misleading]
        out += ["", "The equivalent iolab job (iolab run FILE):", "", self.jobfile()]
        return "\n".join(out)

    def to_json(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "tool": self.tool,
            "measures": self.measures,
            "misleading": self.misleading,
            "jobfile": self.jobfile(),
        }


def _filename(path: str) -> str:
    """A path as a filename= value: fio separates files with ':'."""
    return path.replace(":", "\\:")


def _honest(
    name: str, filename: str, rw: str, bs: int, size: int | None, *, write: bool, block: bool = False
) -> tuple[str, list[tuple[str, str, str]]]:
    block = block or block_devno(filename) is not None
    opts: list[tuple[str, str, str]] = [
        (
            "filename",
            _filename(filename),
            "block device" if block else "a file: the file system is part of the result",
        ),
        ("rw", rw, ""),
        ("bs", size_text(bs), ""),
    ]
    if size:
        opts.append(("size", size_text(size), "the region the job covers, looped over until runtime ends"))
    opts += [
        ("ioengine", "psync", "one request at a time, like the original; raise numjobs for parallelism"),
        ("iodepth", "1", ""),
        ("direct", "1", "bypass the page cache: the device answers, not RAM"),
        ("ramp_time", "5s", "warm-up not counted"),
        ("time_based", "1", "stop on time, not on size"),
        ("runtime", "30s", "long enough for caches and device state to settle"),
    ]
    if write:
        opts += [
            ("refill_buffers", "1", "fresh random data every write: nothing to compress or deduplicate"),
            ("end_fsync", "1", "the final flush is part of the measurement"),
        ]
    return name, opts


def _as_is(
    name: str, filename: str, rw: str, bs: int, size: int | None, *, direct: bool = False, **more: bool | str
) -> tuple[str, dict[str, str]]:
    """What the command itself does, as job options (text, for the parser)."""
    opts = {"filename": _filename(filename), "rw": rw, "bs": size_text(bs), "direct": direct, **more}
    if size:
        opts["size"] = size_text(size)
    return name, {k: str(int(v)) if isinstance(v, bool) else v for k, v in opts.items()}


# ------------------------------------------------------------------------------------------------- dd


def explain_dd(argv: Sequence[str], command: str) -> Explanation:
    ops: dict[str, str] = {}
    for arg in argv[1:]:
        key, eq, value = arg.partition("=")
        if not eq:
            raise ExplainError(f"dd: operand {arg!r} is not key=value")
        ops[key] = value
    src, dst = ops.get("if", "<stdin>"), ops.get("of", "<stdout>")
    bs = dd_number(ops["bs"]) if "bs" in ops else None
    ibs = bs or (dd_number(ops["ibs"]) if "ibs" in ops else 512)
    obs = bs or (dd_number(ops["obs"]) if "obs" in ops else 512)
    count = dd_number(ops["count"]) if "count" in ops else None
    iflag = set(ops.get("iflag", "").split(",")) - {""}
    oflag = set(ops.get("oflag", "").split(",")) - {""}
    conv = set(ops.get("conv", "").split(",")) - {""}
    total = count * ibs if count is not None else None
    null_out = dst == "/dev/null"
    zero_in = src == "/dev/zero"
    random_in = src in ("/dev/urandom", "/dev/random")
    writing = not null_out and dst != "<stdout>"
    reading = not (zero_in or random_in) and src != "<stdin>"
    measures: list[str] = []
    misleading: list[str] = []
    if writing:
        direct = "direct" in oflag
        synced = bool({"fdatasync", "fsync"} & conv) or bool({"dsync", "sync"} & oflag)
        what = "zeros" if zero_in else "random bytes from the kernel's generator" if random_in else f"{src}"
        measures.append(
            f"sequential writes of {what} to {dst}, {size_text(obs)} at a time, one request in flight"
        )
        if not direct:
            measures.append(
                "without oflag=direct: the copy into the page cache, plus whatever writeback "
                "happened to finish"
                + (
                    "; conv=fdatasync/fsync adds one flush at the end"
                    if {"fdatasync", "fsync"} & conv
                    else ""
                )
            )
            if not synced:
                misleading.append(
                    "dd exits while most of the data is still dirty in RAM: the rate is memory "
                    "speed, the disk writes happen after the timer stopped"
                )
        if "dsync" in oflag or "sync" in oflag:
            measures.append(
                "oflag=dsync/sync: every write waits for the device, so it measures the latency "
                "of one synchronous write, not throughput"
            )
        if zero_in:
            misleading.append(
                "zeros compress and deduplicate to nothing: zram, thin/VDO volumes, virtual "
                "disks and some SSDs store almost nothing for them"
            )
        if random_in:
            misleading.append(
                "/dev/urandom generates data with the CPU at a few hundred MB/s to a few "
                "GB/s: that can be the bottleneck, not the disk"
            )
        if block_devno(dst) is None and dst.startswith("/"):
            misleading.append(
                f"{dst} is a file: block allocation, metadata and the journal of its file "
                "system are in the number"
            )
    if reading:
        direct = "direct" in iflag
        measures.append(f"sequential reads of {src}, {size_text(ibs)} at a time, one request in flight")
        if not direct:
            misleading.append(
                "without iflag=direct, data read or written recently comes from the page cache "
                "(GB/s, no disk involved); readahead also hides the request size"
            )
    if total is not None and total < (4 << 30):
        misleading.append(
            f"only {size_text(total)} is moved: a few seconds at most, too short for device "
            "caches and write-back to settle"
        )
    misleading.append(
        "one request at a time (queue depth 1) and no warm-up: the first, slowest second is "
        "averaged in, and a device that needs parallel requests looks slow"
    )
    as_is: list[tuple[str, dict[str, str]]] = []
    job: list[tuple[str, list[tuple[str, str, str]]]] = []
    if writing:
        as_is.append(
            _as_is(
                "dd-write",
                dst,
                "write",
                obs,
                total,
                direct="direct" in oflag,
                zero_buffers=zero_in,
                end_fsync=bool({"fdatasync", "fsync"} & conv),
                fsync=bool({"dsync", "sync"} & oflag),
            )
        )
        job.append(_honest("dd-write", dst, "write", obs, total, write=True))
    if reading:
        as_is.append(_as_is("dd-read", src, "read", ibs, total, direct="direct" in iflag))
        job.append(_honest("dd-read", src, "read", ibs, total, write=False))
    if not as_is:
        raise ExplainError("dd: neither a file/device to read (if=) nor one to write (of=)")
    if total is None and reading and os.path.isfile(src):
        total = os.stat(src).st_size
    issued = None
    if total is not None:
        n_in = -(-total // ibs)
        n_out = -(-total // obs)
        issued = Issued(
            read_ios=n_in if reading else 0,
            read_bytes=total if reading else 0,
            write_ios=n_out if writing else 0,
            write_bytes=total if writing else 0,
            flushes=(n_out if {"dsync", "sync"} & oflag else 1 if {"fdatasync", "fsync"} & conv else 0)
            if writing
            else 0,
            direct=("direct" in oflag) if writing else ("direct" in iflag),
        )
    paths = ([dst] if writing else []) + ([src] if reading else [])
    return Explanation(
        command, "dd", measures, misleading, make_jobdefs(as_is, "<dd>"), job, issued=issued, paths=paths
    )


# ------------------------------------------------------------------------------------------------- cp


def explain_cp(argv: Sequence[str], command: str) -> Explanation:
    flags = [a for a in argv[1:] if a.startswith("-")]
    paths = [a for a in argv[1:] if not a.startswith("-")]
    if len(paths) < 2:
        raise ExplainError("cp: need a source and a destination")
    src, dst = paths[0], paths[-1]
    recursive = any(
        f in ("-r", "-R", "-a", "--recursive", "--archive")
        or (not f.startswith("--") and set(f[1:]) & {"r", "R", "a"})
        for f in flags
    )
    try:
        size = os.stat(src).st_size if os.path.isfile(src) else None
    except OSError:
        size = None
    measures = [
        f"reading {src} and writing {dst} through the page cache, about 128 KiB per request, one at a time",
        "on file systems that share extents (btrfs, XFS with reflink, bcachefs) or with copy_file_range "
        "(NFS, SMB server-side copy), possibly no data transfer at all",
    ]
    misleading = [
        "cp does not fsync: it returns when the data is in RAM, the destination disk works afterwards",
        f"{src} was probably read or written recently: its pages are cached, so the source disk is not read",
        "holes in sparse sources are skipped, not copied",
    ]
    if recursive:
        misleading.append(
            "a tree copy is dominated by per-file metadata (create, open, close), not bandwidth"
        )
    bs = 128 << 10
    job = [
        _honest("cp-read", src, "read", bs, size, write=False),
        _honest("cp-write", dst, "write", bs, size or (1 << 30), write=True),
    ]
    notes = [] if size else ["size= of cp-write: set it to the size of the source"]
    as_is = make_jobdefs(
        [_as_is("cp-read", src, "read", bs, size), _as_is("cp-write", dst, "write", bs, size or (1 << 30))],
        "<cp>",
    )
    issued = None
    if size is not None and not recursive:
        ios = -(-size // bs)
        issued = Issued(read_ios=ios, read_bytes=size, write_ios=ios, write_bytes=size, direct=False)
    target = os.path.join(dst, os.path.basename(src)) if os.path.isdir(dst) else dst
    return Explanation(command, "cp", measures, misleading, as_is, job, notes, issued, [target, src])


# ------------------------------------------------------------------------------------------------ scp


def explain_scp(argv: Sequence[str], command: str) -> Explanation:
    paths = []
    skip = False
    for a in argv[1:]:
        if skip:
            skip = False
            continue
        if a in ("-P", "-i", "-o", "-c", "-F", "-l", "-S", "-J"):
            skip = True
            continue
        if not a.startswith("-"):
            paths.append(a)
    if len(paths) < 2:
        raise ExplainError("scp: need a source and a destination")
    src, dst = paths[0], paths[-1]

    def remote(p: str) -> bool:
        return re.match(r"^[^/]*:", p) is not None

    upload = remote(dst) and not remote(src)
    local = src if upload else dst
    measures = [
        "the slowest of: the SSH cipher on one CPU core, the network path (bandwidth, latency, TCP window), "
        "the local read, the remote write",
        "both ends through the page cache: neither side's disk has to keep up while the copy runs",
    ]
    misleading = [
        "a storage number read off scp is usually a CPU (encryption) or network number",
        "the remote side writes into RAM and flushes after scp reports success",
    ]
    bs = 256 << 10
    try:
        size = os.stat(local).st_size if upload and os.path.isfile(local) else None
    except OSError:
        size = None
    side = "read" if upload else "write"
    job = [_honest(f"scp-local-{side}", local, side, bs, size or (1 << 30), write=not upload)]
    notes = [
        "run the matching job on the remote host to measure its disk; measure the network apart "
        "(a TCP throughput tool)"
    ]
    as_is = make_jobdefs([_as_is(f"scp-local-{side}", local, side, bs, size or (1 << 30))], "<scp>")
    return Explanation(command, "scp", measures, misleading, as_is, job, notes)


# --------------------------------------------------------------------------------------------- hdparm


def explain_hdparm(argv: Sequence[str], command: str) -> Explanation:
    flags = [a for a in argv[1:] if a.startswith("-")]
    devices = [a for a in argv[1:] if not a.startswith("-")]
    dev = devices[0] if devices else "/dev/sdX"
    timing = any("t" in f[1:] for f in flags if not f.startswith("--"))
    cached = any("T" in f[1:] for f in flags if not f.startswith("--"))
    direct = "--direct" in flags
    if not (timing or cached):
        raise ExplainError("hdparm: only the timing tests -t and -T are benchmarks")
    measures: list[str] = []
    misleading: list[str] = []
    if cached:
        measures.append("-T: reads of data already in the kernel's cache: memory and CPU bandwidth, no disk")
        misleading.append("-T never touches the disk: it is a memory benchmark")
    if timing:
        measures.append(
            f"-t: about 3 seconds of sequential {'O_DIRECT ' if direct else ''}reads in 2 MiB "
            f"chunks from the start of {dev}, one request at a time"
        )
        misleading += [
            "only the first gigabytes are read: on a rotating disk the outer tracks are the fastest ones",
            "3 seconds include spin-up and power-state exits, and no steady state",
            "no random I/O, no writes, no parallelism: says little about how the device behaves under load",
        ]
        if not direct:
            misleading.append(
                "without --direct the reads go through the block device's page cache and readahead"
            )
    bs = 2 << 20
    job = [_honest("hdparm-read", dev, "read", bs, None, write=False, block=True)]
    notes = ["add a job with rw=randread bs=4k to see seek and latency behaviour"]
    as_is = make_jobdefs(
        [_as_is("hdparm-read", dev, "read", bs, None, direct=direct, runtime="3s", time_based=True)],
        "<hdparm>",
    )
    return Explanation(command, "hdparm", measures, misleading, as_is, job, notes)


# ------------------------------------------------------------------------------------------------ fio


def explain_fio(argv: Sequence[str], command: str) -> Explanation:
    args = list(argv[1:])
    jobfiles = [a for a in args if not a.startswith("-")]
    options = [a for a in args if a.startswith("--") and not a.startswith("--output")]
    jobdefs = [jd for path in jobfiles for jd in load_jobfile(path)]
    if any(o.startswith("--name=") for o in options):
        jobdefs += jobdefs_from_argv(options)
    if not jobdefs:
        raise ExplainError("fio: no job (give --name=... options or a job file)")
    findings = pre_run(jobdefs)
    measures = []
    for jd in jobdefs:
        v = jd.values
        engine = str(v["ioengine"])
        eff = 1 if engine in SYNC_ENGINES else int(v["iodepth"])
        files = ", ".join(str(f) for f in (v["filename"] or [f"{jd.name}.*"]))
        measures.append(
            f"[{jd.name}] {v['rw']} bs={size_text(int(v['bs'][0]))} on {files}, "
            f"{int(v['numjobs'])} job(s) x {eff} in flight ({engine}), "
            f"{'direct I/O' if v['direct'] else 'through the page cache'}"
        )
    misleading = [f"{f.code}: {f.message}" for f in findings] or ["nothing the pre-run checks can see"]
    job: list[tuple[str, list[tuple[str, str, str]]]] = []
    glob: list[tuple[str, str, str]] = []
    current = glob
    for opt in options:
        key, eq, value = opt[2:].partition("=")
        if key == "name":
            current = []
            job.append((value, current))
            continue
        current.append((key, value if eq else "1", ""))
    # cure what the checks find, then check the cured job again: one cure can expose another finding
    # (direct=1 turns a "RAM" target into a device that needs a longer runtime)
    round_findings = findings
    for _ in range(4):
        changed = False
        for f in round_findings:
            for name, opts in job:
                if f.job == name:
                    for key, value, comment in _corrections(f):
                        changed |= _set_option(opts, key, value, f"{f.code}: {comment}")
        if not changed:
            break
        round_findings = pre_run(jobdefs_from_argv(_as_argv(glob, job)))
    if glob:
        job.insert(0, ("global", glob))
    notes = ["job files: " + ", ".join(jobfiles)] if jobfiles else []
    notes += [f"{f.code} [{f.job}]: {f.fix}" for f in findings if f.fix and not _corrections(f)]
    return Explanation(command, "fio", measures, misleading, jobdefs, job, notes)


def _corrections(f: Finding) -> list[tuple[str, str, str]]:
    """Job lines that cure a finding (empty when it needs a decision the explainer cannot make)."""
    ev = f.evidence
    table: dict[str, list[tuple[str, str, str]]] = {
        "IOL-CACHE-001": [("direct", "1", "bypass the page cache")],
        "IOL-CACHE-002": [("direct", "1", "bypass the page cache")],
        "IOL-ENGINE-001": [("iodepth", "1", "a synchronous engine has one request in flight")],
        "IOL-RAMP-001": [("ramp_time", "5s", "warm-up not counted")],
        "IOL-TIME-001": [
            ("time_based", "1", "stop on time, not on size"),
            ("runtime", f"{int(ev.get('minimum_seconds', 30))}s", "long enough for this target"),
        ],
        "IOL-BUF-001": [("zero_buffers", "0", "no zeros"), ("refill_buffers", "1", "incompressible data")],
        "IOL-SYNC-001": [("end_fsync", "1", "the final flush is measured")],
    }
    if f.code == "IOL-JOBS-001" and ev.get("per_clone_bytes"):
        per_clone = size_text(int(ev["per_clone_bytes"]))
        lines = [("offset_increment", per_clone, "each clone its own region")]
        return [("size", per_clone, "per clone"), *lines] if ev.get("split") else lines
    return table.get(f.code, [])


def _set_option(opts: list[tuple[str, str, str]], key: str, value: str, comment: str) -> bool:
    """Set key=value in a section; True if that changed anything."""
    for i, (k, v, _c) in enumerate(opts):
        if k == key or (key == "direct" and k == "buffered"):
            if (k, v) == (key, value):
                return False
            opts[i] = (key, value, comment)
            return True
    opts.append((key, value, comment))
    return True


def _as_argv(
    glob: list[tuple[str, str, str]], job: list[tuple[str, list[tuple[str, str, str]]]]
) -> list[str]:
    args = [f"--{k}={v}" for k, v, _ in glob]
    for name, opts in job:
        args.append(f"--name={name}")
        args += [f"--{k}={v}" for k, v, _ in opts]
    return args


_HANDLERS = {
    "dd": explain_dd,
    "cp": explain_cp,
    "scp": explain_scp,
    "hdparm": explain_hdparm,
    "fio": explain_fio,
}


def translate(command: str | Sequence[str]) -> Explanation:
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    text = command if isinstance(command, str) else shlex.join(command)
    while argv and (argv[0] in ("sudo", "time", "nice", "ionice") or ("=" in argv[0] and argv[0][0] != "-")):
        argv = argv[1:]
    if not argv:
        raise ExplainError("empty command")
    tool = os.path.basename(argv[0])
    handler = _HANDLERS.get(tool)
    if handler is None:
        raise ExplainError(f"don't know {tool!r}: iolab explain understands {', '.join(sorted(_HANDLERS))}")
    try:
        return handler(argv, text)
    except JobFileError as exc:  # file:line: option ... of a fio job, or of a translated command
        raise ExplainError(f"{tool}: {exc}") from exc


def explain(command: str | Sequence[str]) -> str:
    """The explanation of a command, as printed by `iolab explain`."""
    return translate(command).render()
