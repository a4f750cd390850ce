"""Post-run lie detector: what the devices saw against what the job issued.

`/sys/class/block/<dev>/stat` of every device under the target is snapshotted before and after each phase of
the run (all 17 fields, discard and flush included; `iolab run` takes them where the runner's phases begin and
end). The difference is compared with what the phase's jobs issued, ramp_time I/O included:

- served from cache: the device read far less than the job read (page cache, loop backing cache, holes)
- absorbed by cache: the device wrote far less than the job wrote (buffered writes still dirty)
- amplified: the device moved more bytes (file system metadata, journal, read-modify-write, readahead)
- merged / split: the device's average request size differs from the job's (the scheduler merged adjacent
  requests, or max_sectors_kb split them)
- flushes not reaching the device: fsync/fdatasync were issued but the device saw no flush

The first device given is the one the I/O reaches first (the top of the stack): all verdicts apply to it.
Devices below it are shared with the rest of the system, so only "saw less" verdicts (which other traffic
cannot cause) are drawn from them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from iolab.doctor.findings import Finding, finding
from iolab.doctor.jobs import Jobs, to_views
from iolab.doctor.target import SYS_CLASS_BLOCK, BlockDevice, block_device_by_name, inspect_target

STAT_FIELDS = (
    "read_ios", "read_merges", "read_sectors", "read_ticks",
    "write_ios", "write_merges", "write_sectors", "write_ticks",
    "in_flight", "io_ticks", "time_in_queue",
    "discard_ios", "discard_merges", "discard_sectors", "discard_ticks",
    "flush_ios", "flush_ticks",
)  # fmt: skip
SECTOR = 512

#: "far less": the device saw under this fraction of the issued bytes
CACHE_RATIO = 0.5
#: below this many issued bytes no cache verdict is drawn
CACHE_MIN_BYTES = 1 << 20
#: "more": above this factor of the issued bytes, plus a fixed allowance for metadata
AMPLIFY_RATIO = 1.25
AMPLIFY_SLACK = 256 << 10
#: request size differs by this factor -> merged / split
MERGE_FACTOR = 2.0
#: direction -> code, verdict, verb and the rest of the message, fix: when the device saw far less
_SAW_LESS = {
    "read": (
        "IOL-LIE-001",
        "served from cache",
        "read",
        "came from a cache or from never-written data, not from the device",
        "direct=1 (and write the region before reading it)",
    ),
    "write": (
        "IOL-LIE-002",
        "absorbed by cache",
        "wrote",
        "was still in a cache when the phase ended",
        "direct=1, or end_fsync=1 so the flush is inside the measurement",
    ),
}


@dataclass(frozen=True)
class DeviceStat:
    """One /sys/class/block/<dev>/stat reading (or the difference of two)."""

    values: tuple[int, ...]

    @classmethod
    def parse(cls, text: str) -> DeviceStat:
        nums = [int(x) for x in text.split()]
        nums += [0] * (len(STAT_FIELDS) - len(nums))
        return cls(tuple(nums[: len(STAT_FIELDS)]))

    def __getitem__(self, name: str) -> int:
        return self.values[STAT_FIELDS.index(name)]

    def __sub__(self, other: DeviceStat) -> DeviceStat:
        diff = [a - b for a, b in zip(self.values, other.values, strict=True)]
        diff[STAT_FIELDS.index("in_flight")] = self["in_flight"]  # a gauge, not a counter
        return DeviceStat(tuple(diff))

    @property
    def read_ios(self) -> int:
        return self["read_ios"]

    @property
    def write_ios(self) -> int:
        return self["write_ios"]

    @property
    def read_bytes(self) -> int:
        return self["read_sectors"] * SECTOR

    @property
    def write_bytes(self) -> int:
        return self["write_sectors"] * SECTOR

    @property
    def discard_bytes(self) -> int:
        return self["discard_sectors"] * SECTOR

    @property
    def flush_ios(self) -> int:
        return self["flush_ios"]

    def to_json(self) -> dict[str, int]:
        out = dict(zip(STAT_FIELDS, self.values, strict=True))
        out.update(read_bytes=self.read_bytes, write_bytes=self.write_bytes, discard_bytes=self.discard_bytes)
        return out


@dataclass(frozen=True)
class Snapshot:
    taken_ns: int
    stats: Mapping[str, DeviceStat]


def _name(dev: str | BlockDevice) -> str:
    if isinstance(dev, BlockDevice):
        return dev.name
    return dev.removeprefix("/dev/")


class DeviceCounters:
    """Snapshots of block-device counters."""

    @staticmethod
    def read(dev: str | BlockDevice) -> DeviceStat:
        return DeviceStat.parse((SYS_CLASS_BLOCK / _name(dev) / "stat").read_text())

    @staticmethod
    def snapshot(devices: Iterable[str | BlockDevice]) -> Snapshot:
        """Devices by kernel name ("loop0"), /dev path, or BlockDevice; order is kept (top of stack first)."""
        stats = {}
        for dev in devices:
            stats[_name(dev)] = DeviceCounters.read(dev)
        return Snapshot(time.monotonic_ns(), stats)

    @staticmethod
    def diff(before: Snapshot, after: Snapshot) -> dict[str, DeviceStat]:
        return {name: after.stats[name] - before.stats[name] for name in before.stats if name in after.stats}


def devices_under(paths: Iterable[str]) -> list[str]:
    """Kernel names of every block device under these targets, top of each stack first, no repeats."""
    seen: dict[str, None] = {}
    for path in paths:
        for dev in inspect_target(path).chain:
            seen.setdefault(dev.name, None)
    return list(seen)


def devices_for(jobs: Jobs) -> list[str]:
    """Devices under every file of a plan / JobPlans / JobDefs, for DeviceCounters.snapshot()."""
    views, _ = to_views(jobs)
    return devices_under(f.path for v in views for f in v.files)


_COUNTS = tuple((d, k) for d in ("read", "write", "trim") for k in ("ios", "bytes"))
_FLUSHES = len(_COUNTS)  # index of the flush count after the per-direction counts


@dataclass(frozen=True)
class Issued:
    """What the job itself did in the phase (all its workers summed): every I/O the device was sent.

    With ramp_time the totals include the ramp's I/O, which the job's statistics leave out; `ramp` is that
    part. `drained` is the part that was in flight when a job ended on an error (waited for, not counted by
    the job; I/O in flight at the end of the runtime is counted, as fio does)."""

    read_ios: int = 0
    read_bytes: int = 0
    write_ios: int = 0
    write_bytes: int = 0
    flushes: int = 0  # fsync/fdatasync calls
    trim_ios: int = 0
    trim_bytes: int = 0
    #: the trims were holes punched in regular files (a file system passes them down as discards only
    #: when mounted with -o discard); trims of a block device are BLKDISCARDs, which some drivers (zram)
    #: never count in their statistics, so only punched holes are held against the device's discards
    trims_punch_files: bool = False
    direct: bool | None = None
    #: included in the totals above: issued during ramp_time (None: no ramp_time, no ramp I/O)
    ramp: Issued | None = None
    #: included in the totals above: in flight when a job ended (None: none)
    drained: Issued | None = None

    @classmethod
    def from_raw(
        cls,
        raws: Iterable[Mapping[str, Any]],
        direct: bool | None = None,
        *,
        ramp_time: bool = False,
        trims_punch_files: bool = False,
    ) -> Issued:
        """Sum raw C results (DESIGN.md section 3): ddir.read/write/trim ios and bytes, ddir.sync ios, plus
        the `ramp` and `drained` I/O the statistics leave out. `ramp_time`: the jobs had one (`ramp` is then
        set even when it is all zeros)."""
        tot = [0] * (_FLUSHES + 1)
        ramp = [0] * (_FLUSHES + 1)
        drained = [0] * (_FLUSHES + 1)
        for raw in raws:
            dd = raw.get("ddir", {})
            for i, (d, k) in enumerate(_COUNTS):
                tot[i] += int(dd.get(d, {}).get(k, 0))
            # end_fsync is out of the statistics, as in fio, but it reached the device
            tot[_FLUSHES] += int(dd.get("sync", {}).get("ios", 0)) + int(raw.get("end_syncs", 0))
            for part, acc in (("ramp", ramp), ("drained", drained)):
                extra = raw.get(part) or {}
                for i, (d, k) in enumerate(_COUNTS):
                    acc[i] += int(extra.get(d, {}).get(k, 0))
                acc[_FLUSHES] += int(extra.get("syncs", 0))

        def make(v: list[int], **kw: Any) -> Issued:
            # v is in _COUNTS order, then the flushes
            r_ios, r_bytes, w_ios, w_bytes, t_ios, t_bytes, flushes = v
            return cls(r_ios, r_bytes, w_ios, w_bytes, flushes, t_ios, t_bytes, **kw)

        return make(
            [t + r + x for t, r, x in zip(tot, ramp, drained, strict=True)],
            direct=direct,
            trims_punch_files=trims_punch_files,
            ramp=make(ramp) if ramp_time or any(ramp) else None,
            drained=make(drained) if any(drained) else None,
        )

    def counts(self) -> dict[str, int]:
        return {
            "read_ios": self.read_ios,
            "read_bytes": self.read_bytes,
            "write_ios": self.write_ios,
            "write_bytes": self.write_bytes,
            "trim_ios": self.trim_ios,
            "trim_bytes": self.trim_bytes,
            "flushes": self.flushes,
        }

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = self.counts()
        out["includes_ramp"] = self.ramp is not None
        if self.ramp is not None:
            out["ramp"] = self.ramp.counts()
        if self.drained is not None:
            out["drained"] = self.drained.counts()
        return out

    def describe(self) -> str:
        return (
            f"read {self.read_ios} ios / {self.read_bytes} B, "
            f"write {self.write_ios} ios / {self.write_bytes} B, "
            + (f"trim {self.trim_ios} ios / {self.trim_bytes} B, " if self.trim_ios else "")
            + f"flushes {self.flushes}"
        )


@dataclass
class DeviceVerdict:
    device: str
    observed: DeviceStat
    primary: bool
    verdicts: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "primary": self.primary,
            "verdicts": self.verdicts or ["consistent"],
            "observed": self.observed.to_json(),
        }


@dataclass
class LieReport:
    issued: Issued
    devices: list[DeviceVerdict]
    findings: list[Finding]

    @property
    def verdict(self) -> str:
        primary = [d for d in self.devices if d.primary]
        words = [v for d in self.devices for v in d.verdicts]
        if not self.devices:
            return "no device under the target"
        if not words:
            return "consistent" if primary else "no verdict"
        return ", ".join(dict.fromkeys(words))

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "issued": self.issued.to_json(),
            "devices": [d.to_json() for d in self.devices],
            "findings": [f.to_json() for f in self.findings],
        }

    def render(self, title: str = "Device check", *, with_findings: bool = False) -> str:
        """The numbers and verdicts; with_findings adds the findings (code, evidence, fix) below them."""
        i = self.issued
        lines = [f"{title}: {self.verdict}", f"  issued: {i.describe()}"]
        if i.ramp is not None:
            lines.append(
                f"    ramp_time I/O included (the device saw it, the job's statistics leave it out): "
                f"{i.ramp.describe()}"
            )
        if i.drained is not None:
            lines.append(
                f"    in flight when a job failed, included (completed, not counted by the job): "
                f"{i.drained.describe()}"
            )
        for d in self.devices:
            o = d.observed
            lines.append(
                f"  {d.device}{' (top)' if d.primary else ''}: read {o.read_ios} ios / {o.read_bytes} B, "
                f"write {o.write_ios} ios / {o.write_bytes} B, discard {o['discard_ios']} ios / "
                f"{o.discard_bytes} B, flush {o.flush_ios}"
                f" -> {', '.join(d.verdicts) or 'consistent'}"
            )
        if with_findings:
            lines += ["  " + line for f in self.findings for line in f.render().splitlines()]
        return "\n".join(lines)


def _avg(nbytes: int, ios: int) -> float:
    return nbytes / ios if ios else 0.0


def max_request_bytes(name: str) -> int | None:
    """The largest request the device takes without splitting: max_sectors_kb, and max_segments pages."""
    dev = block_device_by_name(name)
    if dev is None:
        return None
    queue = SYS_CLASS_BLOCK / dev.disk / "queue"
    limits = []
    for attr, unit in (("max_sectors_kb", 1024), ("max_segments", 4096)):
        try:
            limits.append(int((queue / attr).read_text()) * unit)
        except (OSError, ValueError):
            continue
    return min(limits) if limits else None


def _write_cache(name: str) -> str | None:
    dev = block_device_by_name(name)
    return dev.write_cache if dev else None


def lie_report(
    issued: Issued, observed: Mapping[str, DeviceStat], *, primary: str | None = None
) -> LieReport:
    """Compare; `observed` is DeviceCounters.diff() (ordered top of stack first unless `primary` is given)."""
    names = list(observed)
    top = primary if primary is not None else (names[0] if names else None)
    report = LieReport(issued, [], [])
    for name in names:
        o = observed[name]
        dv = DeviceVerdict(name, o, name == top)
        report.devices.append(dv)
        ev_base: dict[str, Any] = {"device": f"/dev/{name}"}
        directions = (
            ("read", issued.read_bytes, issued.read_ios, o.read_bytes, o.read_ios),
            ("write", issued.write_bytes, issued.write_ios, o.write_bytes, o.write_ios),
        )
        for d, iss_b, iss_n, obs_b, obs_n in directions:
            if iss_b < CACHE_MIN_BYTES or obs_b >= CACHE_RATIO * iss_b:
                continue
            code, verdict, verb, rest, fix = _SAW_LESS[d]
            dv.verdicts.append(verdict)
            report.findings.append(
                finding(
                    code,
                    f"/dev/{name} {verb} {obs_b} B while the job {verb} {iss_b} B ({obs_b / iss_b:.1%}): "
                    f"the rest {rest}",
                    {
                        **ev_base,
                        f"issued_{d}_bytes": iss_b,
                        f"device_{d}_bytes": obs_b,
                        f"issued_{d}_ios": iss_n,
                        f"device_{d}_ios": obs_n,
                    },
                    fix,
                )
            )
        if name != top:
            continue
        punched = issued.trims_punch_files and issued.trim_bytes >= CACHE_MIN_BYTES
        if punched and o.discard_bytes < CACHE_RATIO * issued.trim_bytes:
            dv.verdicts.append("discards dropped")
            report.findings.append(
                finding(
                    "IOL-LIE-006",
                    f"/dev/{name} discarded {o.discard_bytes} B while the job trimmed {issued.trim_bytes} B "
                    f"({o.discard_bytes / issued.trim_bytes:.1%}): the trims did not reach the device as "
                    "discards, so the trim rate is not the device's",
                    {
                        **ev_base,
                        "issued_trim_bytes": issued.trim_bytes,
                        "device_discard_bytes": o.discard_bytes,
                        "issued_trim_ios": issued.trim_ios,
                        "device_discard_ios": o["discard_ios"],
                    },
                    "trim the raw device (filename=/dev/...), or mount the file system with -o discard "
                    "if punched holes should reach the device",
                )
            )
        amplified = []
        if o.write_bytes > AMPLIFY_RATIO * issued.write_bytes + AMPLIFY_SLACK:
            amplified.append(("write", issued.write_bytes, o.write_bytes))
        if o.read_bytes > AMPLIFY_RATIO * issued.read_bytes + AMPLIFY_SLACK:
            amplified.append(("read", issued.read_bytes, o.read_bytes))
        if amplified:
            dv.verdicts.append("amplified")
            what = "; ".join(
                f"{d}s: issued {a} B, device {b} B"
                + (f" (x{b / a:.2f})" if a else " (none issued: read-modify-write or metadata)")
                for d, a, b in amplified
            )
            report.findings.append(
                finding(
                    "IOL-LIE-003",
                    f"/dev/{name} moved more data than the job issued ({what}): "
                    "file system metadata, journal, "
                    "read-modify-write or readahead",
                    {
                        **ev_base,
                        **{f"issued_{d}_bytes": a for d, a, _ in amplified},
                        **{f"device_{d}_bytes": b for d, _, b in amplified},
                    },
                    "measure the raw device (filename=/dev/...) to see the device alone, "
                    "or keep the amplification "
                    "in mind: it is part of what the file system costs",
                )
            )
        for d, iss_b, iss_n, obs_b, obs_n in directions:
            if not (iss_n and obs_n) or not (
                CACHE_RATIO * iss_b <= obs_b <= iss_b * AMPLIFY_RATIO + AMPLIFY_SLACK
            ):
                continue
            a_iss, a_obs = _avg(iss_b, iss_n), _avg(obs_b, obs_n)
            # "split" only when the job's requests exceed what the device takes in one request: extra
            # small requests (journal, metadata) also lower the average, and that is not splitting
            limit = max_request_bytes(name)
            kind = (
                "merged"
                if a_obs >= MERGE_FACTOR * a_iss
                else "split"
                if a_obs * MERGE_FACTOR <= a_iss and (limit is None or a_iss > limit)
                else ""
            )
            if not kind:
                continue
            dv.verdicts.append(f"{d}s {kind}")
            report.findings.append(
                finding(
                    "IOL-LIE-004",
                    f"/dev/{name} {kind} the {d}s: {iss_n} requests of {a_iss:.0f} B on average "
                    f"became {obs_n} of "
                    f"{a_obs:.0f} B",
                    {
                        **ev_base,
                        "direction": d,
                        "issued_ios": iss_n,
                        "issued_avg_bytes": round(a_iss),
                        "device_ios": obs_n,
                        "device_avg_bytes": round(a_obs),
                    },
                    "the IOPS reported are the job's, not the device's; "
                    + (
                        "direct=1 keeps the scheduler from merging page-cache writeback"
                        if kind == "merged"
                        else f"bs= at most max_sectors_kb of /dev/{name}"
                    ),
                )
            )
        if issued.flushes and o.flush_ios == 0:
            cache = _write_cache(name)
            through = cache == "write through"
            dv.verdicts.append("flushes not reaching the device")
            report.findings.append(
                finding(
                    "IOL-LIE-005",
                    f"{issued.flushes} fsync/fdatasync issued, /dev/{name} saw no flush"
                    + (
                        " (write_cache=write through: the kernel drops flushes "
                        "for devices without a volatile cache)"
                        if through
                        else ": data may sit in a volatile cache when the job reports it durable"
                    ),
                    {**ev_base, "issued_flushes": issued.flushes, "device_flushes": 0, "write_cache": cache},
                    "nothing to do (no volatile cache)"
                    if through
                    else "check the file system's barrier/flush mount options and the device's write_cache",
                    severity="info" if through else "warning",
                )
            )
    return report


def lie_detector(
    issued: Issued, observed: Mapping[str, DeviceStat], *, primary: str | None = None
) -> list[Finding]:
    return lie_report(issued, observed, primary=primary).findings


@dataclass
class PhaseCheck:
    """The lie detector for one measured phase of a run: the jobs that ran together between two snapshots."""

    number: int
    jobs: list[str]
    report: LieReport

    def to_json(self) -> dict[str, Any]:
        return {"phase": self.number, "jobs": self.jobs, **self.report.to_json()}


@dataclass
class DeviceCheck:
    """Every phase of a run (jobs separated by stonewall/wait_for run one phase after another)."""

    phases: list[PhaseCheck]

    @property
    def verdict(self) -> str:
        if len(self.phases) == 1:
            return self.phases[0].report.verdict
        return "; ".join(f"phase {p.number} [{','.join(p.jobs)}]: {p.report.verdict}" for p in self.phases)

    def to_json(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "phases": [p.to_json() for p in self.phases]}

    def render(self) -> str:
        if len(self.phases) == 1:
            return self.phases[0].report.render(with_findings=True)
        n = len(self.phases)
        return "\n".join(
            p.report.render(f"Device check, phase {p.number} of {n} [{','.join(p.jobs)}]", with_findings=True)
            for p in self.phases
        )
