"""A small reader for job files, enough for the harness to know what to expect of a job.

It does not replace iolab's parser (that is under test): it only finds each job's options (with
[global] sections applied in order) so the comparison can tell timed jobs, mixed jobs and random
writes apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from iolab.options import lookup

_TIME = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|usec|ms|msec|s|m|h|d)?\s*$", re.I)
_TIME_UNITS = {
    "us": 1e-6,
    "usec": 1e-6,
    "ms": 1e-3,
    "msec": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
MIXED = ("rw", "readwrite", "randrw", "trimwrite", "randtrimwrite")


def canonical(key: str) -> str:
    opt = lookup(key)
    return opt.name if opt else key


def parse_lines(text: str) -> list[tuple[str, dict[str, str]]]:
    """Sections in order as (name, {canonical option: value}); bare options get value ''."""
    sections: list[tuple[str, dict[str, str]]] = []
    current: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and "]" in line:
            current = {}
            sections.append((line[1 : line.index("]")].strip(), current))
            continue
        if current is None:
            continue
        key, sep, value = line.partition("=")
        current[canonical(key.strip())] = value.strip() if sep else ""
    return sections


@dataclass
class JobInfo:
    """One job section with the [global] options in force for it."""

    name: str
    opts: dict[str, str]
    # another job's exitall may stop this one: when depends on the clock
    stoppable: bool = False

    def flag(self, key: str) -> bool:
        v = self.opts.get(key)
        return v is not None and v.strip() not in ("0", "false", "off")

    @property
    def rw(self) -> str:
        return self.opts.get("rw", "read").split(":")[0].strip()

    @property
    def writes(self) -> bool:
        return "write" in self.rw or self.rw in ("rw", "randrw")

    @property
    def mixed(self) -> bool:
        return self.rw in MIXED

    @property
    def random(self) -> bool:
        return self.rw.startswith("rand")

    def seconds(self, key: str) -> float | None:
        """A time option in seconds (bare numbers are seconds here: runtime, ramp_time)."""
        v = self.opts.get(key)
        if v is None:
            return None
        m = _TIME.match(v)
        if not m:
            return -1.0  # unreadable: treat as set
        return float(m.group(1)) * _TIME_UNITS[(m.group(2) or "s").lower()]

    @property
    def timed(self) -> bool:
        """How much I/O the job does depends on the clock (time_based, ramp_time, a short runtime)."""
        if self.flag("time_based") or self.stoppable:
            return True
        ramp = self.seconds("ramp_time")
        if ramp is not None and ramp != 0:
            return True
        runtime = self.seconds("runtime")
        return runtime is not None and runtime != 0 and runtime < 2.0

    @property
    def random_runs(self) -> bool:
        """A random job with sequential runs (rw=randread:N, N > 1): a run that reaches the end of the region
        ends the job's pass early, and where the random picks fall decides when that happens."""
        if not self.random:
            return False
        mod = self.opts.get("rw", "").partition(":")[2].strip()
        try:
            return int(mod) > 1
        except ValueError:
            return bool(mod)

    @property
    def varied_bs(self) -> bool:
        """Block sizes drawn at random, so the I/O count depends on the random sequence."""
        if "bsrange" in self.opts or "bssplit" in self.opts:
            return True
        return self.mixed and "," in self.opts.get("bs", "")

    @property
    def rng_coverage(self) -> bool:
        """Which blocks a write job touches depends on the random sequence (or on the clock)."""
        if not self.writes:
            return False
        if self.timed:
            return True
        # which I/Os are writes (a mixed job draws the direction) or where a block ends (drawn sizes)
        if self.mixed or self.varied_bs:
            return True
        if not self.random:
            return False
        # filesize: the budget (size) can be less than the region, so the blocks picked are a random subset
        keys = (
            "norandommap",
            "io_size",
            "number_ios",
            "percentage_random",
            "random_distribution",
            "zonemode",
            "filesize",
        )
        return any(k in self.opts for k in keys) or ":" in self.opts.get("rw", "")


def jobs(text: str) -> list[JobInfo]:
    out: list[JobInfo] = []
    glob: dict[str, str] = {}
    for name, opts in parse_lines(text):
        if name == "global":
            glob.update(opts)
            continue
        merged = {**glob, **opts}
        out.append(JobInfo(opts.get("name", name), merged))
    if any(j.flag("exitall") for j in out):
        for j in out:
            j.stoppable = True
    return out


def options_used(text: str) -> set[str]:
    """Every option (canonical name) the job text sets, in any section."""
    return {k for _name, opts in parse_lines(text) for k in opts}
