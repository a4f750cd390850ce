"""Pre-run checks: jobs that would measure something other than what their author thinks.

Each check looks at one JobDef (all its numjobs clones) and the targets under it, and returns findings.
A check is registered with the codes of its findings (`@check(...)`, the CHECKS table); `pre_run` runs
them all. Thresholds are named constants so the evidence can quote them.
"""

from __future__ import annotations

import mmap
import os
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iolab.doctor.extents import never_written
from iolab.doctor.findings import Finding, finding
from iolab.doctor.jobs import Jobs, JobView, to_views
from iolab.doctor.target import TargetInfo, inspect_target
from iolab.ioengines import depth_cap_message
from iolab.jobfile import JobDef

#: shortest meaningful measured phase, seconds
MIN_RUNTIME_S = 10.0
#: ... for RAM-backed targets (tmpfs, zram, brd) where there is no device state to settle
MIN_RUNTIME_RAM_S = 5.0
#: ... for writes to a real device (write cache, SLC cache and garbage collection, writeback) and for
#: rotational disks (seek times depend on where on the platter the heads are)
MIN_RUNTIME_SLOW_S = 30.0
#: optimistic speeds used to estimate how long a size-bound job lasts (bytes/s, IOPS)
FAST_SEQ_BPS = {"ram": 8e9, "ssd": 3e9, "hdd": 250e6}
FAST_IOPS = {"ram": 2e6, "ssd": 5e5, "hdd": 400.0}


@dataclass
class Context:
    """Caches shared by the checks of one doctor run."""

    expect_raw: bool = False
    targets: dict[str, TargetInfo] = field(default_factory=dict)
    mem_total: int | None = None

    def target(self, path: str) -> TargetInfo:
        if path not in self.targets:
            self.targets[path] = inspect_target(path)
        return self.targets[path]

    def ram(self) -> int:
        if self.mem_total is None:
            self.mem_total = mem_total()
        return self.mem_total


def mem_total() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def _gib(n: float) -> str:
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div:
            return f"{n / div:.1f}{unit}"
    return f"{int(n)}B"


def _secs(ns: int) -> float:
    return ns / 1e9


# --------------------------------------------------------------------------------------------- helpers


def block_sizes(v: Mapping[str, Any], reads: bool, writes: bool) -> list[int]:
    """Every block size the job can issue in the directions it uses."""
    sizes: set[int] = set()
    for d in [d for d, on in ((0, reads), (1, writes)) if on] or [0]:
        sizes.add(v["bs"][d])  # typed values (DESIGN.md section 1): one entry per direction
        sizes.update(v["bsrange"][d] if v["bsrange"] else ())
        sizes.update(size for size, _perc in (v["bssplit"][d] if v["bssplit"] else ()))
    return sorted(sizes)


def _group(views: Iterable[JobView]) -> list[list[JobView]]:
    groups: dict[int, list[JobView]] = {}
    for view in views:
        groups.setdefault(view.jobdef_index, []).append(view)
    return [groups[k] for k in sorted(groups)]


def _paths(clones: Sequence[JobView]) -> list[str]:
    seen: dict[str, None] = {}
    for c in clones:
        for f in c.files:
            seen.setdefault(f.path, None)
    return list(seen)


# ----------------------------------------------------------------------------------------------- checks

Check = Callable[[Sequence[JobView], Context], list[Finding]]

#: every pre-run check -> the finding codes it reports (each has an entry in CODES.md), in the order
#: `pre_run` runs them: the order they are defined in below
CHECKS: dict[Check, tuple[str, ...]] = {}


def check(*codes: str) -> Callable[[Check], Check]:
    """Register a pre-run check with the codes of its findings. A new check is one decorated function."""

    def register(run: Check) -> Check:
        CHECKS[run] = codes
        return run

    return register


def _is_char_device(path: str) -> bool:
    try:
        return stat.S_ISCHR(os.stat(path).st_mode)
    except OSError:
        return False


@check("IOL-TARGET-001", "IOL-TARGET-002", "IOL-TARGET-003")
def check_target(clones: Sequence[JobView], ctx: Context) -> list[Finding]:
    job = clones[0]
    out: list[Finding] = []
    for path in _paths(clones):
        t = ctx.target(path)
        real = t.realpath
        if _is_char_device(real):
            continue  # /dev/null, /dev/zero: fio's way to measure itself, not a mistaken file
        if t.kind != "block" and (path.startswith("/dev/") or real.startswith("/dev/")):
            where = f"{t.fstype or 'a file system'} at {t.mount.mountpoint}" if t.mount else "a file system"
            state = "does not exist" if t.kind == "missing" else f"is a {t.kind}"
            out.append(
                finding(
                    "IOL-TARGET-001",
                    f"{path} {state}, not a block device: the job would create a regular file on {where} "
                    "(devtmpfs is RAM) instead of touching a disk",
                    {"path": path, "kind": t.kind, "fstype": t.fstype},
                    job.fix(
                        "filename=/dev/<an existing block device> (check the name with lsblk)", "filename"
                    ),
                    job=job.name,
                )
            )
        elif ctx.expect_raw and t.kind != "block":
            dev = t.device.path if t.device else "no block device"
            out.append(
                finding(
                    "IOL-TARGET-001",
                    f"{path} is a {t.kind} on {t.fstype} ({dev}): results include the file system "
                    "(allocation, metadata, journal) while a raw device was meant",
                    {"path": path, "kind": t.kind, "fstype": t.fstype, "device": dev},
                    job.fix(f"filename={dev}" if t.device else "filename=/dev/<the device>", "filename"),
                    job=job.name,
                )
            )
        if t.kind == "block" and t.device is not None and t.device.stacked:
            chain = " -> ".join(f"{d.name}({d.driver})" for d in t.chain)
            lowest = [d for d in t.chain if not d.stacked]
            # a RAM device with nothing below it (zram) has no disk to measure instead: benchmarking it is
            # the point, so this is said, not warned about
            own = not lowest and t.device.ram_backed
            layer = "compressed RAM" if t.device.driver == "zram" else "mapping, caching, backing"
            out.append(
                finding(
                    "IOL-TARGET-002",
                    f"{path} is a {t.device.driver} device ({layer}) with no disk below it: "
                    "the numbers are its own"
                    if own
                    else f"{path} is a {t.device.driver} device: the numbers include that layer "
                    f"({layer}), not just a disk",
                    {"path": path, "chain": chain, "lowest_devices": [d.path for d in lowest]},
                    job.fix(
                        f"filename={lowest[-1].path}" if lowest else "filename=/dev/<the physical device>",
                        "filename",
                    )
                    + " to measure the device itself"
                    # the disk below a stack usually holds a system's data: never hint a write there lightly
                    + (
                        ", if it is a spare disk: this job writes, and a write destroys what a device holds"
                        if any(c.modifies for c in clones) and lowest
                        else ""
                    ),
                    job=job.name,
                    severity="info" if own else None,
                )
            )
        for lower in t.chain:
            if lower.driver == "loop" and lower.loop_backing_file and lower.loop_dio is False:
                out.append(
                    finding(
                        "IOL-TARGET-003",
                        f"{lower.path} reads and writes its backing file {lower.loop_backing_file} "
                        "through the "
                        "page cache (dio=0): even direct=1 I/O on it is cached",
                        {
                            "device": lower.path,
                            "backing_file": lower.loop_backing_file,
                            "dio": 0,
                            "target": path,
                        },
                        f"losetup --direct-io=on {lower.path}",
                        job=job.name,
                    )
                )
    return out


@check("IOL-CACHE-001", "IOL-CACHE-002")
def check_cache(clones: Sequence[JobView], ctx: Context) -> list[Finding]:
    job = clones[0]
    if job.direct or job.values.get("ioengine") == "nbd":  # nbd: no page cache on the client's side
        return []
    out = [
        finding(
            "IOL-CACHE-001",
            "buffered I/O: the page cache sits between the job and the device, so reads can be served from "
            "RAM and writes complete when they reach memory",
            {"direct": 0, "files": _paths(clones)},
            job.fix("direct=1", "direct"),
            job=job.name,
        )
    ]
    regions: dict[tuple[str, int, int], int] = {}
    for c in clones:
        for f in c.files:
            regions[(f.path, f.region_offset, f.region_size)] = f.region_size
    working_set = sum(regions.values())
    ram = ctx.ram()
    if working_set and ram and working_set <= ram:
        out.append(
            finding(
                "IOL-CACHE-002",
                f"buffered working set of {_gib(working_set)} fits in {_gib(ram)} of RAM: "
                "after the first pass "
                "the job measures memory, not storage",
                {"working_set_bytes": working_set, "mem_total_bytes": ram},
                job.fix("direct=1", "direct") + f" (or size= larger than RAM, > {_gib(ram)})",
                job=job.name,
            )
        )
    return out


@check("IOL-ENGINE-001")
def check_engine(clones: Sequence[JobView], ctx: Context) -> list[Finding]:
    job = clones[0]
    engine = str(job.values["ioengine"])
    depth = int(job.values["iodepth"])
    message = depth_cap_message(engine, depth)
    if message:
        return [
            finding(
                "IOL-ENGINE-001",
                message,
                {"ioengine": engine, "iodepth": depth, "effective_iodepth": 1},
                job.fix(
                    f"iodepth=1 (for {depth} requests in flight with {engine}: numjobs={depth} "
                    "with offset_increment)",
                    "iodepth",
                ),
                job=job.name,
            )
        ]
    return []


def _clone_overlaps(clones: Sequence[JobView]) -> list[tuple[str, int]]:
    """(path, largest overlap in bytes between two different clones' regions) for every shared path.

    A sweep over the regions sorted by offset (numjobs may be in the thousands, so no pairwise
    comparison): the largest overlap of a region with any earlier-starting region of another clone is
    with the one reaching furthest, so the two furthest-reaching regions of different clones are kept."""
    by_path: dict[str, list[tuple[int, int, int]]] = {}
    for n, clone in enumerate(clones):
        for f in clone.files:
            by_path.setdefault(f.path, []).append((f.region_offset, f.region_offset + f.region_size, n))
    out: list[tuple[str, int]] = []
    for path, regions in by_path.items():
        regions.sort()
        best: tuple[int, int] | None = None  # (end, clone) reaching furthest
        second: tuple[int, int] | None = None  # furthest-reaching of a clone other than best's
        largest = 0
        for start, end, n in regions:
            other = best if best is not None and best[1] != n else second
            if other is not None:
                largest = max(largest, min(other[0], end) - start)
            if best is None or end > best[0]:
                if best is not None and best[1] != n:
                    second = best
                best = (end, n)
            elif best[1] != n and (second is None or end > second[0]):
                second = (end, n)
        if largest > 0:
            out.append((path, largest))
    return out


@check("IOL-JOBS-001")
def check_clones(clones: Sequence[JobView], ctx: Context) -> list[Finding]:
    job = clones[0]
    # offset_increment smaller than the region still overlaps: regions are compared, not the option
    if len(clones) < 2 or not (job.reads or (job.writes and not job.random)):
        return []
    overlaps = _clone_overlaps(clones)
    if not overlaps:
        return []
    paths = sorted({p for p, _ in overlaps})
    region = clones[0].files[0].region_size if clones[0].files else 0
    bs = max(block_sizes(job.values, job.reads, job.writes))
    if job.values["size"]:
        per_clone = region  # size= is already per clone: move each clone past the previous one
        fix = f"offset_increment={per_clone}"
    else:
        per_clone = region // len(clones) // bs * bs  # split the target between the clones
        fix = f"size={per_clone} offset_increment={per_clone}"
    what = (
        "re-read the same blocks (the first clone's reads warm the cache for the others)"
        if job.reads
        else "write the same blocks in lockstep (caches absorb the repeats)"
    )
    return [
        finding(
            "IOL-JOBS-001",
            f"numjobs={len(clones)} clones share {', '.join(paths)}: they {what}",
            {
                "numjobs": len(clones),
                "files": paths,
                "offset_increment": int(job.values["offset_increment"] or 0),
                "overlapping_bytes": max(n for _, n in overlaps),
                "region_bytes": region,
                "per_clone_bytes": per_clone,
                "split": not job.values["size"],
            },
            job.fix(fix if per_clone else "offset_increment=<size per clone>", "offset_increment"),
            job=job.name,
        )
    ]


@check("IOL-RAMP-001")
def check_ramp(clones: Sequence[JobView], ctx: Context) -> list[Finding]:
    job = clones[0]
    if job.values["ramp_time"] > 0:
        return []
    return [
        finding(
            "IOL-RAMP-001",
            "no ramp_time: the first seconds (empty queues, cold caches, device power states, file "
            "allocation) are averaged into the result",
            {"ramp_time": 0},
            job.fix("ramp_time=5s", "ramp_time"),
            job=job.name,
        )
    ]


def _target_class(t: TargetInfo, direct: bool, reads_only: bool) -> str:
    if t.ram_backed or (not direct and reads_only):
        return "ram"
    dev = t.device
    return "hdd" if dev is not None and dev.rotational else "ssd"


@check("IOL-TIME-001")
def check_runtime(clones: Sequence[JobView], ctx: Context) -> list[Finding]:
    job = clones[0]
    v = job.values
    runtime_ns = int(v["runtime"])
    time_based = bool(v["time_based"])
    targets = [ctx.target(p) for p in _paths(clones)]
    if not targets:
        return []
    classes = {_target_class(t, job.direct, not job.writes) for t in targets}
    cls = "ram" if classes == {"ram"} else ("hdd" if "hdd" in classes else "ssd")
    if cls == "ram":
        minimum = MIN_RUNTIME_RAM_S
        why = "RAM-backed or cached target"
    elif cls == "hdd" or job.writes:
        minimum = MIN_RUNTIME_SLOW_S
        why = (
            "rotational target" if cls == "hdd" else "writes to a device (write cache, SLC cache, writeback)"
        )
    else:
        minimum = MIN_RUNTIME_S
        why = "reads from a device"
    # how long the job can last at most
    if time_based and runtime_ns:
        duration = _secs(runtime_ns)
        basis = "runtime"
    elif not job.planned:
        return []  # the plan rejected the job: no regions to estimate from
    else:
        bs = min(block_sizes(v, job.reads, job.writes))
        total = int(v["io_size"] or 0) or sum(f.region_size for f in job.files) * max(int(v["loops"]), 1)
        rate = FAST_IOPS[cls] * bs if job.random else FAST_SEQ_BPS[cls]
        rate = min(rate, FAST_SEQ_BPS[cls])
        duration = total / rate if total else 0.0
        basis = f"{_gib(total)} at up to {_gib(rate)}/s"
        if runtime_ns:
            duration = min(duration, _secs(runtime_ns))
            basis += f", runtime cap {_secs(runtime_ns):g}s"
    if duration >= minimum:
        return []
    return [
        finding(
            "IOL-TIME-001",
            f"the measured phase lasts {'at most ' if basis != 'runtime' else ''}{duration:.3g}s; "
            f"{minimum:g}s is the minimum for this target ({why})",
            {
                "estimated_seconds": round(duration, 3),
                "basis": basis,
                "minimum_seconds": minimum,
                "target_class": cls,
            },
            job.fix(f"time_based=1 and runtime={int(minimum)}s (or more)", "runtime"),
            job=job.name,
        )
    ]


def _zram_stored(name: str) -> int | None:
    try:
        return int(Path(f"/sys/block/{name}/mm_stat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


@check("IOL-DATA-001")
def check_data(clones: Sequence[JobView], ctx: Context) -> list[Finding]:
    job = clones[0]
    fill = f"{job.name or 'prepare'}-fill"
    if not job.reads or not job.planned:
        return []
    out: list[Finding] = []
    regions: dict[str, list[tuple[int, int]]] = {}
    for c in clones:
        for f in c.files:
            regions.setdefault(f.path, []).append((f.region_offset, f.region_size))
    for path, spans in regions.items():
        t = ctx.target(path)
        lo = min(o for o, _ in spans)
        hi = max(o + n for o, n in spans)
        probe: str | None = None
        base = 0
        if t.kind == "file":
            probe = path
        elif (
            t.kind == "block"
            and t.device is not None
            and t.device.loop_backing_file
            and os.path.isfile(t.device.loop_backing_file)
        ):
            probe, base = t.device.loop_backing_file, t.device.loop_offset
        if probe is not None:
            try:
                nw = never_written(probe, base + lo, hi - lo)
            except OSError:
                continue
            if nw.total == 0:
                continue
            via = f" (backing file of {t.device.path})" if probe != path and t.device else ""
            out.append(
                finding(
                    "IOL-DATA-001",
                    f"{_gib(nw.total)} of the {_gib(nw.length)} read from {probe}{via} was never written "
                    f"({nw.fraction:.0%}): holes and unwritten extents read back as zeros with no device I/O",
                    {
                        "path": probe,
                        "region_offset": nw.offset,
                        "region_bytes": nw.length,
                        "hole_bytes": nw.hole_bytes,
                        "unwritten_bytes": nw.unwritten_bytes,
                        "first_never_written_offset": nw.first_offset,
                    },
                    f"write the region first, e.g. a preceding job [{fill}] rw=write bs=1M direct=1 "
                    f"filename={path}"
                    + (f" offset={lo}" if lo else "")
                    + f" size={hi - lo}"
                    + " with stonewall before the read job",
                    job=job.name,
                )
            )
        elif t.kind == "block" and t.device is not None and t.device.driver == "zram":
            stored = _zram_stored(t.device.disk)
            if stored is not None and stored < hi - lo:
                out.append(
                    finding(
                        "IOL-DATA-001",
                        f"{path} holds {_gib(stored)} of written pages but {_gib(hi - lo)} is read: zram "
                        "answers never-written pages with zeros without touching memory",
                        {"path": path, "stored_bytes": stored, "region_bytes": hi - lo},
                        f"write the region first: a preceding job [{fill}] rw=write bs=1M "
                        f"filename={path} size={hi - lo} with stonewall before the read job",
                        job=job.name,
                    )
                )
    return out


@check("IOL-ALIGN-001")
def check_align(clones: Sequence[JobView], ctx: Context) -> list[Finding]:
    job = clones[0]
    if not job.direct:
        return []
    out: list[Finding] = []
    v = job.values
    sizes = block_sizes(v, job.reads, job.writes)
    # Byte values as written; a percentage form (offset=25%) leaves them unset (None) and is checked
    # through the offsets the plan resolved for each clone.
    offsets = {k: int(v.get(k) or 0) for k in ("offset", "offset_increment")}
    for path in _paths(clones):
        t = ctx.target(path)
        lbs = t.logical_block_size
        if not lbs:
            continue
        bad_bs = [s for s in sizes if s % lbs]
        bad_off = {k: n for k, n in offsets.items() if n % lbs}
        if not bad_off:
            starts = sorted({f.region_offset for c in clones if c.planned for f in c.files if f.path == path})
            bad_start = next((n for n in starts if n % lbs), None)
            if bad_start is not None:
                bad_off["offset"] = bad_start
        if not bad_bs and not bad_off:
            continue
        good = max(lbs, (min(sizes) // lbs) * lbs or lbs)
        fixes = [f"bs={good}"] if bad_bs else []
        fixes += [f"{k}={(n // lbs) * lbs}" for k, n in bad_off.items()]
        dev = t.device.path if t.device else "?"
        out.append(
            finding(
                "IOL-ALIGN-001",
                f"direct=1 needs sizes and offsets in multiples of {lbs} bytes "
                f"(logical block size of {dev}); "
                "the kernel rejects the rest with EINVAL",
                {"path": path, "logical_block_size": lbs, "block_sizes": bad_bs, **bad_off},
                job.fix(" ".join(fixes), "bs" if bad_bs else next(iter(bad_off))),
                job=job.name,
            )
        )
    return out


def _may_compress(t: TargetInfo) -> str | None:
    """Why this target may compress or deduplicate written data (None: not that we know)."""
    if t.ram_backed and t.device is not None:
        return f"{t.device.path} is {t.device.driver}: it compresses pages and stores zero pages as a flag"
    if t.ram_backed:
        return f"{t.fstype} is memory"
    if t.fstype == "btrfs" and t.mount is not None and "compress" in t.mount.super_options:
        return f"btrfs at {t.mount.mountpoint} is mounted with compression"
    if t.fstype in ("zfs", "bcachefs"):
        return f"{t.fstype} can compress and deduplicate"
    for dev in t.chain:
        if dev.driver == "dm":
            return f"{dev.path} is device-mapper (vdo and thin targets deduplicate or skip zeros)"
        if dev.driver in ("virtio", "xen"):
            return f"{dev.path} is a virtual disk: the host may detect zeros or deduplicate"
        if dev.driver == "loop":
            return f"{dev.path} is a loop device: its backing file may be sparse-aware or on a compressing fs"
        if dev.rotational is False and not dev.stacked:
            return f"{dev.path} is non-rotational: flash controllers may compress or deduplicate"
    return None


@check("IOL-BUF-001")
def check_buffers(clones: Sequence[JobView], ctx: Context) -> list[Finding]:
    job = clones[0]
    if not job.writes or not job.values["zero_buffers"]:
        return []
    out: list[Finding] = []
    for path in _paths(clones):
        reason = _may_compress(ctx.target(path))
        if reason is None:
            continue
        out.append(
            finding(
                "IOL-BUF-001",
                f"zero_buffers=1 writes zeros to {path}; {reason}, so little or nothing is stored",
                {"path": path, "zero_buffers": 1, "reason": reason},
                job.fix("zero_buffers=0 refill_buffers=1", "zero_buffers"),
                job=job.name,
            )
        )
    return out


@check("IOL-SYNC-001")
def check_sync(clones: Sequence[JobView], ctx: Context) -> list[Finding]:
    job = clones[0]
    v = job.values
    # nbd: nothing cached on our side; a pure trim job counts as writing (the safety gate) but writes
    # nothing through the page cache
    if not job.writes or job.direct or v.get("ioengine") == "nbd" or v.get("rw") in ("trim", "randtrim"):
        return []
    synced = [
        k
        for k in ("fsync", "fdatasync", "end_fsync", "fsync_on_close", "sync")
        if v[k] not in (0, False, "none", "0")
    ]
    if synced:
        return []
    return [
        finding(
            "IOL-SYNC-001",
            "buffered writes and no fsync: the job ends while its data is still in the page cache, "
            "so the device's write speed is not part of the result",
            {"direct": 0, "end_fsync": 0, "fsync": 0, "fdatasync": 0},
            job.fix("end_fsync=1 (or direct=1)", "end_fsync"),
            job=job.name,
        )
    ]


#: mmap(2) flags of the DAX probe (linux/mman.h): MAP_SYNC is only accepted with MAP_SHARED_VALIDATE
_MAP_SHARED_VALIDATE = 0x03
_MAP_SYNC = 0x80000


def dax_probe(path: str, info: TargetInfo) -> tuple[bool, str]:
    """Whether ``path`` is mapped DAX (persistent memory, no page cache), and how that was found.

    An existing non-empty file is asked the way the libpmem engine asks at run time: a one-page mapping
    with MAP_SYNC, which the kernel grants only on DAX. A file not laid out yet can only be judged by
    its file system's mount options (dax, dax=always)."""
    try:
        st = os.stat(path)
    except OSError:
        st = None
    if st is not None and stat.S_ISREG(st.st_mode) and st.st_size > 0:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            return False, f"cannot open it to probe MAP_SYNC: {exc.strerror}"
        try:
            with mmap.mmap(fd, mmap.PAGESIZE, flags=_MAP_SHARED_VALIDATE | _MAP_SYNC, prot=mmap.PROT_READ):
                return True, "MAP_SYNC mapping granted"
        except OSError as exc:
            return False, f"MAP_SYNC mapping refused ({exc.strerror})"
        finally:
            os.close(fd)
    mount = info.mount
    options = f"{mount.options},{mount.super_options}".split(",") if mount else []
    if any(o == "dax" or o == "dax=always" for o in options):
        return True, "file system mounted with dax"
    fs = info.fstype or "unknown"
    return False, f"{fs} file system not mounted with dax"


@check("IOL-PMEM-001")
def check_pmem(clones: Sequence[JobView], ctx: Context) -> list[Finding]:
    job = clones[0]
    if str(job.values["ioengine"]) != "libpmem":
        return []
    out: list[Finding] = []
    seen: set[str] = set()
    for clone in clones:
        for f in clone.files:
            if f.path in seen:
                continue
            seen.add(f.path)
            info = ctx.target(f.path)
            dax, how = dax_probe(f.path, info)
            if dax:
                continue
            out.append(
                finding(
                    "IOL-PMEM-001",
                    f"ioengine=libpmem on {f.path}, which is not on persistent memory (no DAX): the file "
                    "lives in the page cache, the engine falls back to msync, and the numbers are "
                    "page-cache numbers, not pmem",
                    {"path": f.path, "fstype": info.fstype or "", "dax": False, "how": how},
                    job.fix(
                        "filename= a file on a file system mounted with -o dax on a pmem device", "filename"
                    ),
                    job=job.name,
                )
            )
    return out


def pre_run(
    jobs: Jobs,
    jobdefs: Sequence[JobDef] | None = None,
    *,
    expect_raw: bool = False,
    context: Context | None = None,
) -> list[Finding]:
    """All pre-run checks for a RunPlan, a sequence of JobPlans, or a sequence of JobDefs.

    `jobdefs` (optional with a plan) gives the findings' fixes their file:line. `expect_raw` says a raw device
    is meant (TARGET-001 then also fires for files on a file system).
    """
    ctx = context or Context(expect_raw=expect_raw)
    views, out = to_views(jobs, jobdefs)
    for clones in _group(views):
        for check in CHECKS:
            out.extend(check(clones, ctx))
    return out
