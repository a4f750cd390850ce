"""Data safety gate: no write reaches a block device that holds someone's data unless the user names it.

Before any write to a block device the gate refuses when the device, or anything stacked on it, is mounted,
has holders, is active swap, or carries a partition table or file-system signature. "Stacked on it"
(stacking.py) is found upwards and recursively: partitions, sysfs holders (dm, md ...), loop devices whose
backing file is the device at any offset (the loop driver's lo_rdevice; loop devices make no holders/ link),
loop devices backed by a file in a file system mounted from it, and swap files in such file systems. Devices
are compared by device number (st_rdev), never by path, so a symlink or a /dev/disk/by-* alias does not get
around it. Findings name the chain: "/dev/loop7 (offset 1048576) on /dev/zram3 holds the ext4 file system at
/mnt/x".

Signatures are probed with libblkid (blkid.py: superblocks and partition tables, all of them, on the whole
device) on the device itself and on every partition and loop device stacked on it (a loop at an offset holds
its file system where the device shows nothing); where libblkid.so.1 cannot be loaded the gate's own table
(first 68 KiB and last 128 KiB) is the fallback, and IOLAB_SIGNATURE_PROBER=table forces it. The finding's
evidence says which prober was used. A probe can go through the fd the engine writes with (`fd=`).

Open once (`SafetyGate.open`, what `iolab run` uses): every file and device of the run is opened by its name
once, before anything is written (iolab/plan/anchor.py), and the checks run on those descriptors (`check_fd`:
fstat, no name resolved again). The run then uses only these anchors: layout, the workers' opens (a reopen
through /proc/self/fd/N with the job's flags) and unlink=1, so a symlink swapped or a file renamed over the
name after the check changes nothing. What a job writes, lays out (creates, extends, pre-fills) or unlinks is
gated: a read job that lays a file out or has unlink=1 is gated like a writer. A name that does not exist at
the check is created later only as a new file in the directory opened at the check (O_EXCL, O_NOFOLLOW).
`SafetyGate.check` runs the same checks by path, for `iolab doctor` (it writes nothing).

While the job runs, the gate holds every written device open with O_EXCL, so nothing can mount it or claim it
meanwhile (the engine's own non-exclusive opens, through the same anchor, still work).

Override: `--allow-destroy=/dev/X` for exactly the device the job writes (matched by device number).
fio's allow_mounted_write=1 lets the mounted check pass, but not the signature check.
Active swap is never overridable, also swap on a device stacked on the written one: writing over it corrupts
running processes; swapoff first.

Regular files are gated too, for what they are under a block device: the backing file of a loop device
(IOL-SAFE-006; `--allow-destroy=PATH` naming that file overrides) or an active swap file, or the file under a
loop device that swap is on, however deep (IOL-SAFE-007, never overridable). Files are compared by
(st_dev, st_ino) after following symlinks, never by path, so a symlink or a hard link does not get around it;
on overlayfs the merged path and the real files in the upper and lower layers are the same data, and are
compared as one (mountinfo's upperdir/lowerdir). A loop device's backing file is identified by the
LOOP_GET_STATUS64 ioctl (lo_device and lo_inode, also right after the file was renamed or unlinked), else by
stat() of /sys/block/loopN/loop/backing_file (a " (deleted)" one then cannot be identified).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any

from iolab.doctor import blkid
from iolab.doctor.findings import Finding, finding, has_errors
from iolab.doctor.jobs import Jobs, JobView, to_views
from iolab.doctor.nbd_gate import nbd_write_findings
from iolab.doctor.signatures import HEAD_BYTES, Signature, signatures_in
from iolab.doctor.stacking import (
    Layer,
    file_identities,
    loop_identities,
    loops,
    stack_above,
    swaps_in,
)
from iolab.doctor.target import (
    SYS_CLASS_BLOCK,
    active_swaps,
    block_device,
    block_devno,
    mounts,
    partitions_of,
)
from iolab.plan import JobPlan, RunPlan
from iolab.plan.anchor import Anchors, FileAnchor

#: IOLAB_SIGNATURE_PROBER=table makes the gate use its own table even where libblkid loads (tests of the
#: fallback); any other value, or none, means libblkid when it loads
PROBER_ENV = "IOLAB_SIGNATURE_PROBER"
TABLE_PROBER = "iolab table"


@dataclass(frozen=True)
class SignatureProbe:
    prober: str  # "libblkid 2.38.1" | "iolab table" (+ why, when libblkid was wanted but failed)
    signatures: tuple[Signature, ...]
    #: libblkid's safe probe found more than one file system on it (still data: refused like any signature)
    ambivalent: bool = False


def _table_probe(fd: int, lbs: int) -> list[Signature]:
    size = os.lseek(fd, 0, os.SEEK_END)
    head = os.pread(fd, min(HEAD_BYTES, size), 0)
    head = head + bytes(HEAD_BYTES - len(head))
    tail_len = min(size, 128 * 1024)
    tail = os.pread(fd, tail_len, size - tail_len) if tail_len else b""
    return signatures_in(head, tail, size, lbs)


def _blkid_name(sig: blkid.BlkidSignature) -> str:
    return f"{sig.type} partition table" if sig.kind == "partition table" else sig.type


def probe_signatures(path: str, fd: int | None = None, *, prober: str | None = None) -> SignatureProbe:
    """Every signature on the device (or file) `path`, or on the one open at `fd` when given (then `path` only
    names it). libblkid probes when it loads, else our table; `prober="table"` (or the environment variable
    IOLAB_SIGNATURE_PROBER=table) forces the table. Raises OSError when the device cannot be read.

    The device is reopened read-only (from the fd via /proc/self/fd: the same open device, never a path looked
    up again), so the caller's fd keeps its offset and may be O_DIRECT.
    """
    source = f"/proc/self/fd/{fd}" if fd is not None else path
    own = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
    try:
        st = os.fstat(own)
        dev = block_device((os.major(st.st_rdev), os.minor(st.st_rdev))) if stat.S_ISBLK(st.st_mode) else None
        lbs = dev.logical_block_size if dev else 512
        wanted = prober or os.environ.get(PROBER_ENV, "")
        why = ""
        if wanted != "table":
            try:
                found = blkid.probe_fd(own)
            except blkid.BlkidUnavailable as exc:
                why = f" (libblkid unavailable: {exc})"
            except blkid.BlkidError as exc:
                why = f" (libblkid failed: {exc})"
            else:
                sigs = tuple(
                    Signature(
                        _blkid_name(s), s.offset, s.usage, s.label or None, s.uuid or None, s.bad_checksum
                    )
                    for s in found.signatures
                )
                return SignatureProbe(f"libblkid {blkid.version()}", sigs, found.ambivalent)
        return SignatureProbe(TABLE_PROBER + why, tuple(_table_probe(own, lbs)))
    finally:
        os.close(own)


def read_signatures(path: str) -> list[Signature]:
    """Open the device read-only and look for signatures (libblkid, else our table)."""
    return list(probe_signatures(path).signatures)


# ------------------------------------------------------------------------------------------ the gate


def _holders(name: str) -> list[str]:
    try:
        return sorted(os.listdir(SYS_CLASS_BLOCK / name / "holders"))
    except OSError:
        return []


def _covering(name: str) -> dict[tuple[int, int], str]:
    """Device numbers whose use means `name` is in use: itself, its partitions, what is stacked on them
    (holders, loop devices backed by it, recursively): see stacking.stack_above()."""
    return {devno: layer.name for devno, layer in stack_above(name).items()}


@dataclass(frozen=True)
class WriteTarget:
    path: str  # as the job names it
    devno: tuple[int, int]
    name: str  # kernel name
    jobs: tuple[str, ...]
    allow_mounted_write: bool


def write_targets(views: Iterable[JobView]) -> list[WriteTarget]:
    """Block devices that jobs write (or trim), one entry per device number."""
    by_dev: dict[tuple[int, int], WriteTarget] = {}
    for view in views:
        if not view.modifies:
            continue
        for f in view.files:
            devno = block_devno(f.path)
            if devno is None:
                continue
            dev = block_device(devno)
            name = dev.name if dev else f"{devno[0]}:{devno[1]}"
            amw = bool(view.values["allow_mounted_write"])
            prev = by_dev.get(devno)
            if prev is None:
                by_dev[devno] = WriteTarget(f.path, devno, name, (view.name,), amw)
            elif view.name not in prev.jobs:
                by_dev[devno] = replace(
                    prev, jobs=(*prev.jobs, view.name), allow_mounted_write=prev.allow_mounted_write and amw
                )
    return list(by_dev.values())


def _allowed(devno: tuple[int, int], allow_destroy: Sequence[str]) -> str | None:
    for path in allow_destroy:
        if block_devno(path) == devno:
            return path
    return None


def _on(layer: Layer) -> str:
    """How a finding names a device: "/dev/zram3", or "/dev/loop7 (offset 1048576) on /dev/zram3"."""
    return layer.describe()


def _check_device(
    t: WriteTarget, allow_destroy: Sequence[str], probe_excl: bool = True, *, fd: int | None = None
) -> list[Finding]:
    """`fd`: the written device as the engine has it open (its signatures are probed through it)."""
    allowed = _allowed(t.devno, allow_destroy)
    cover = stack_above(t.name)
    fix_allow = f"--allow-destroy=/dev/{t.name} (if everything on it may be destroyed)"
    out: list[Finding] = []

    def add(code: str, message: str, evidence: dict[str, Any], fix: str, *, bypass: str | None) -> None:
        if bypass:
            out.append(
                finding(
                    code,
                    f"{message} (allowed by {bypass})",
                    evidence,
                    fix,
                    severity="info",
                    job=",".join(t.jobs),
                )
            )
        else:
            out.append(finding(code, message, evidence, fix, job=",".join(t.jobs)))

    # mounted: any mount whose device number (or source device) is the device or anything stacked on it
    for m in mounts():
        hit = cover.get(m.devno)
        if hit is None and m.source.startswith("/"):
            src = block_devno(m.source)
            hit = cover.get(src) if src else None
        if hit is None:
            continue
        bypass = f"--allow-destroy={allowed}" if allowed else None
        if bypass is None and t.allow_mounted_write:
            bypass = "allow_mounted_write=1"
        add(
            "IOL-SAFE-001",
            f"{t.path} is mounted: {_on(hit)} holds the {m.fstype} file system at {m.mountpoint}",
            {
                "path": t.path,
                "device": f"/dev/{t.name}",
                "devno": f"{t.devno[0]}:{t.devno[1]}",
                "mounted_device": hit.path,
                "chain": _on(hit),
                "mountpoint": m.mountpoint,
                "fstype": m.fstype,
            },
            f"umount {m.mountpoint}, or write to a file in it instead; " + fix_allow,
            bypass=bypass,
        )
    holders = {n: _holders(n) for n in [t.name, *partitions_of(t.name)]}
    holders = {n: h for n, h in holders.items() if h}
    loops_on = [layer for layer in cover.values() if layer.via in ("loop", "loop on a file")]
    if holders or loops_on:
        users = [f"{h} (on {n})" for n, hs in holders.items() for h in hs] + [_on(x) for x in loops_on]
        add(
            "IOL-SAFE-002",
            f"{t.path} is in use by " + ", ".join(users),
            {
                "path": t.path,
                "device": f"/dev/{t.name}",
                "holders": {n: h for n, h in holders.items()},
                "loop_devices": [_on(x) for x in loops_on],
            },
            "remove what is stacked on it (losetup -d, dmsetup remove, mdadm --stop, ...); " + fix_allow,
            bypass=f"--allow-destroy={allowed}" if allowed else None,
        )
    for swap in swaps_in(cover):
        what = f"active swap ({swap.swap})" if swap.direct else f"under active swap: {swap.on}"
        add(
            "IOL-SAFE-003",
            f"{t.path} is {what}: writing over it corrupts running programs",
            {"path": t.path, "device": f"/dev/{t.name}", "swap": swap.swap, "chain": swap.on},
            f"swapoff {swap.swap} first (--allow-destroy does not override this)",
            bypass=None,
        )
    # signatures: the device's own (through the engine's fd when given), and those of the partitions and loop
    # devices stacked on it: a loop at an offset holds its file system past anything the device shows
    probes: list[tuple[Layer, SignatureProbe]] = []
    for layer in cover.values():
        if layer.via in ("holder", "loop on a file"):
            # reported above as users. dm/md/bcache: reading a suspended dm device could block; a loop device
            # over a file in a mounted file system: reading it would update that file's atime, a write
            continue
        try:
            probes.append((layer, probe_signatures(layer.path, fd if layer.via == "self" else None)))
        except OSError as exc:
            if layer.via != "self" and exc.errno in (errno.ENOENT, errno.ENXIO):
                continue  # a loop device detached meanwhile
            out.append(
                finding(
                    "IOL-SAFE-005",
                    f"cannot read {_on(layer)} to look for signatures: {exc.strerror}",
                    {"path": t.path, "device": layer.path, "errno": exc.errno},
                    "the gate must read the device before writing it: run where it can be opened (root)",
                    job=",".join(t.jobs),
                )
            )
    found = [(layer, p, s) for layer, p in probes for s in p.signatures]
    ambivalent = [layer for layer, p in probes if p.ambivalent]
    if found or ambivalent:
        names = [s.name if not layer.stacked else f"{s.name} on {_on(layer)}" for layer, _, s in found]
        names += [f"several file systems at once on {_on(layer)}" for layer in ambivalent if not found]
        add(
            "IOL-SAFE-004",
            f"{t.path} carries {', '.join(names)}: writing destroys it",
            {
                "path": t.path,
                "device": f"/dev/{t.name}",
                "signatures": [
                    str(s) if not layer.stacked else f"{s} on {_on(layer)}" for layer, _, s in found
                ],
                "details": [{**s.to_json(), "on": _on(layer)} for layer, _, s in found],
                "prober": sorted({p.prober for _, p in probes}),
            }
            | ({"ambivalent": [_on(layer) for layer in ambivalent]} if ambivalent else {}),
            f"write to another device, or wipe it (wipefs -a /dev/{t.name}); " + fix_allow,
            bypass=f"--allow-destroy={allowed}" if allowed else None,
        )
    blocking = [f for f in out if f.severity == "error"]
    if probe_excl and not blocking and not any(f.code == "IOL-SAFE-001" for f in out):
        try:
            excl = os.open(t.path, os.O_RDONLY | os.O_EXCL | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                out.append(
                    finding(
                        "IOL-SAFE-005",
                        f"{t.path} is held exclusively by someone else (O_EXCL open: EBUSY)",
                        {"path": t.path, "device": f"/dev/{t.name}", "errno": "EBUSY"},
                        f"find the user: ls /sys/class/block/{t.name}/holders; fuser -v {t.path}",
                        job=",".join(t.jobs),
                    )
                )
        else:
            os.close(excl)
    return out


# ------------------------------------------------------------------------------------- regular files

FileId = tuple[int, int, int]  # (major, minor) of st_dev, st_ino


def file_id(path: str) -> FileId | None:
    """Identity of the regular file `path` leads to (symlinks followed); None when it is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)


@dataclass(frozen=True)
class FileTarget:
    path: str  # as the job names it
    file: FileId
    jobs: tuple[str, ...]


def written_files(views: Iterable[JobView]) -> list[FileTarget]:
    """Existing regular files that jobs write, one entry per file (device and inode)."""
    by_id: dict[FileId, FileTarget] = {}
    for view in views:
        if not view.modifies:
            continue
        for f in view.files:
            ident = file_id(f.path)
            if ident is None:
                continue
            prev = by_id.get(ident)
            if prev is None:
                by_id[ident] = FileTarget(f.path, ident, (view.name,))
            elif view.name not in prev.jobs:
                by_id[ident] = replace(prev, jobs=(*prev.jobs, view.name))
    return list(by_id.values())


def _allowed_file(ident: FileId, allow_destroy: Sequence[str], same: set[FileId] | None = None) -> str | None:
    """The --allow-destroy path naming this file: any of its names, or (overlayfs) a layer of it."""
    ids = same if same is not None else {ident}
    for path in allow_destroy:
        if file_id(path) == ident or file_identities(path) & ids:
            return path
    return None


def _written_identities(t: FileTarget, fd: int | None) -> set[FileId]:
    """The written file's identities: itself and, on overlayfs, its real files in the layers."""
    ids = {t.file} | file_identities(t.path)
    if fd is not None:
        st = os.fstat(fd)
        ids.add((os.major(st.st_dev), os.minor(st.st_dev), st.st_ino))
        with contextlib.suppress(OSError):
            ids |= file_identities(os.readlink(f"/proc/self/fd/{fd}"))
    return ids


def _check_file(t: FileTarget, allow_destroy: Sequence[str], *, fd: int | None = None) -> list[Finding]:
    """`fd`: the written file as the engine has it open."""
    out: list[Finding] = []
    job = ",".join(t.jobs)
    ids = _written_identities(t, fd)
    where: dict[str, Any] = {
        "path": t.path,
        "realpath": os.path.realpath(t.path),
        "file": f"{t.file[0]}:{t.file[1]}:{t.file[2]}",  # st_dev major:minor:inode
    }
    if len(ids) > 1:  # overlayfs: the same data under other (device, inode)s
        where["same_file_as"] = sorted(f"{i[0]}:{i[1]}:{i[2]}" for i in ids - {t.file})
    allowed = _allowed_file(t.file, allow_destroy, ids)
    all_loops = loops()
    swaps: list[tuple[str, str]] = []  # (swap, what it is on)
    for lp in all_loops:
        if not loop_identities(lp) & ids:
            continue
        cover = stack_above(lp.name, base=(t.path,), all_loops=all_loops)
        top = cover[lp.devno]
        used = [
            f"{m.fstype} mounted at {m.mountpoint} from {cover[m.devno].describe()}"
            for m in mounts()
            if m.devno in cover
        ]
        stacked = [layer.describe() for layer in cover.values() if layer.stacked]
        swaps += [(sw.swap, sw.on) for sw in swaps_in(cover)]
        message = (
            f"{t.path} is the backing file of {top.describe()}: writing it rewrites what /dev/{lp.name} "
            "holds under whoever uses it" + (f" ({'; '.join(used)})" if used else "")
        )
        fix = (
            f"losetup -d /dev/{lp.name} first (if nothing uses it), or write another file; "
            f"--allow-destroy={t.path} (if what /dev/{lp.name} holds may be destroyed)"
        )
        evidence = {
            **where,
            "loop_device": f"/dev/{lp.name}",
            "backing_file": lp.backing_file,
            "offset": lp.offset,
            "chain": top.describe(),
            "stacked": stacked,
            "mounted": used,
        }
        if allowed:
            out.append(
                finding("IOL-SAFE-006", f"{message} (allowed by --allow-destroy={allowed})", evidence, fix,
                        severity="info", job=job)
            )  # fmt: skip
        else:
            out.append(finding("IOL-SAFE-006", message, evidence, fix, job=job))
    for swap in active_swaps():
        if file_identities(swap) & ids:
            out.append(
                finding(
                    "IOL-SAFE-007",
                    f"{t.path} is an active swap file ({swap}): writing over it corrupts running programs "
                    "(and the kernel refuses writes to it: ETXTBSY)",
                    {**where, "swap": swap},
                    f"swapoff {swap} first (--allow-destroy does not override this)",
                    job=job,
                )
            )
    for swap, on in swaps:
        out.append(
            finding(
                "IOL-SAFE-007",
                f"{t.path} is under active swap: {on}: writing it corrupts running programs",
                {**where, "swap": swap, "chain": on},
                f"swapoff {swap} first (--allow-destroy does not override this)",
                job=job,
            )
        )
    return out


def allow_destroy_problem(paths: Sequence[str]) -> str | None:
    """What is wrong with an --allow-destroy list (a path that does not exist, or is neither a block device
    nor a regular file), as a one-line message; None when every path can be named."""
    for path in paths:
        if path.startswith("nbd"):
            continue  # an NBD export's URI (ioengine=nbd), matched as written
        try:
            st = os.stat(path)
        except OSError as exc:
            return f"--allow-destroy={path}: {exc.strerror}"
        if not (stat.S_ISBLK(st.st_mode) or stat.S_ISREG(st.st_mode)):
            return f"--allow-destroy={path}: not a block device or a regular file"
    return None


def check_fd(
    fd: int,
    path: str,
    *,
    users: Sequence[str],
    allow_destroy: Sequence[str] = (),
    allow_mounted_write: bool = False,
) -> list[Finding]:
    """The gate's checks on what an open file descriptor really is (fstat: no path is resolved again), for
    a caller about to write through that same fd. `users` name who writes (jobs, or an NBD export). The
    caller holds a block device with O_EXCL itself when it wants others kept out."""
    st = os.fstat(fd)
    if stat.S_ISBLK(st.st_mode):
        devno = (os.major(st.st_rdev), os.minor(st.st_rdev))
        dev = block_device(devno)
        name = dev.name if dev else f"{devno[0]}:{devno[1]}"
        target = WriteTarget(path, devno, name, tuple(users), allow_mounted_write)
        return _check_device(target, allow_destroy, probe_excl=False, fd=fd)
    if stat.S_ISREG(st.st_mode):
        ident = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
        return _check_file(FileTarget(path, ident, tuple(users)), allow_destroy, fd=fd)
    return []


class SafetyError(Exception):
    def __init__(self, findings: Sequence[Finding]) -> None:
        self.findings = list(findings)
        super().__init__("; ".join(f"{f.code}: {f.message}" for f in self.findings if f.severity == "error"))


@dataclass
class ExclusiveHold:
    """O_EXCL fds on every written block device, held for the run. Use as a context manager."""

    fds: dict[str, int] = field(default_factory=dict)  # device path -> fd
    #: devices written without an exclusive hold (mounted, allowed by --allow-destroy)
    unheld: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()

    def __enter__(self) -> ExclusiveHold:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@dataclass
class RunGate:
    """What `SafetyGate.open()` returns: the run's anchors (every file opened once, iolab/plan/anchor.py),
    the block devices it holds with O_EXCL, and the findings of the checks on them. A context manager:
    closing it releases everything."""

    anchors: Anchors
    findings: list[Finding] = field(default_factory=list)
    #: written block devices held with O_EXCL for the run
    held: list[str] = field(default_factory=list)
    #: written block devices held by someone else (mounted, allowed by --allow-destroy)
    unheld: list[str] = field(default_factory=list)

    def close(self) -> None:
        self.anchors.close()

    def __enter__(self) -> RunGate:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def modifying_jobs(plan: RunPlan) -> dict[str, list[JobPlan]]:
    """Path -> the jobs that write, lay out (create, extend, pre-fill) or unlink (unlink=1) it."""
    out: dict[str, list[JobPlan]] = {}
    for job in plan.jobs:
        for fp in job.files:
            if job.writes or job.unlink or fp.extend:
                out.setdefault(fp.path, []).append(job)
    return out


def _check_anchor(
    gate: RunGate, anchor: FileAnchor, jobs: Sequence[JobPlan], allow_destroy: Sequence[str]
) -> list[Finding]:
    """check_fd on one anchor that jobs write, lay out or unlink; block devices get held with O_EXCL."""
    users = tuple(dict.fromkeys(j.name for j in jobs))
    amw = all(bool(j.options.get("allow_mounted_write")) for j in jobs)
    kind = anchor.kind
    if kind not in ("block", "file"):
        # missing: the run creates it (O_CREAT|O_EXCL in the anchored directory); a char device: no data
        return []
    busy = False
    if kind == "block":
        try:
            anchor.hold_exclusive()
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise OSError(exc.errno, exc.strerror, anchor.path) from None
            busy = True
    assert anchor.fd is not None
    found = check_fd(
        anchor.fd, anchor.path, users=users, allow_destroy=allow_destroy, allow_mounted_write=amw
    )
    if kind == "file":
        return found
    st = anchor.stat()
    assert st is not None
    devno = (os.major(st.st_rdev), os.minor(st.st_rdev))
    if busy:
        # someone holds it exclusively: acceptable only for a file system mounted from it that the user
        # allowed to destroy; any other holder (a lazily unmounted file system, a program) refuses the run
        mounted = any(f.code == "IOL-SAFE-001" for f in found)
        if not has_errors(found) and not (mounted and _allowed(devno, allow_destroy)):
            found.append(
                finding(
                    "IOL-SAFE-005",
                    f"{anchor.path} is held exclusively by someone else (O_EXCL open: EBUSY)",
                    {"path": anchor.path, "devno": f"{devno[0]}:{devno[1]}", "errno": "EBUSY"},
                    f"find the user: ls /sys/dev/block/{devno[0]}:{devno[1]}/holders; fuser -v {anchor.path}",
                    job=",".join(users),
                )
            )
        gate.unheld.append(anchor.path)
    else:
        gate.held.append(anchor.path)
    return found


class SafetyGate:
    """`open()` for a run: every file opened once and checked on its fd (errors block the run);
    `check()`: the same checks by path, for `iolab doctor` (nothing is opened for writing);
    `exclusive()`: O_EXCL on the written devices of jobs, by path (kept for callers without anchors)."""

    @staticmethod
    def open(plan: RunPlan, allow_destroy: Sequence[str] = ()) -> RunGate:
        """Open every file of the run once (anchors), hold the written block devices with O_EXCL, and run the
        checks on those fds for everything the jobs write, lay out or unlink. The run then uses the anchors
        only. Errors are findings in the result (the caller refuses); an OSError names a file that cannot
        be opened at all."""
        gate = RunGate(Anchors.for_paths(fp.path for job in plan.jobs for fp in job.files))
        try:
            by_anchor: dict[FileAnchor, list[JobPlan]] = {}
            for path, jobs in modifying_jobs(plan).items():
                by_anchor.setdefault(gate.anchors[path], []).extend(jobs)
            for anchor, jobs in by_anchor.items():
                gate.findings.extend(_check_anchor(gate, anchor, jobs, allow_destroy))
            written = [(job.name, job.nbd) for job in plan.jobs if job.nbd is not None and job.writes]
            gate.findings.extend(nbd_write_findings(written, allow_destroy))
        except BaseException:
            gate.close()
            raise
        return gate

    @staticmethod
    def check(jobs: Jobs, allow_destroy: Sequence[str] = ()) -> list[Finding]:
        views, _ = to_views(jobs)
        out: list[Finding] = []
        for t in write_targets(views):
            out.extend(_check_device(t, allow_destroy))
        for f in written_files(views):
            out.extend(_check_file(f, allow_destroy))
        exports = [(v.name, v.nbd) for v in views if v.nbd is not None and v.writes]
        out.extend(nbd_write_findings(exports, allow_destroy))
        return out

    @staticmethod
    def exclusive(jobs: Jobs, allow_destroy: Sequence[str] = ()) -> ExclusiveHold:
        """Take O_EXCL on every written block device, then check again (nothing can change under us now).

        Raises SafetyError (releasing what it took) when a device cannot be held or a check fails.
        """
        views, _ = to_views(jobs)
        hold = ExclusiveHold()
        try:
            for t in write_targets(views):
                try:
                    hold.fds[t.path] = os.open(t.path, os.O_RDONLY | os.O_EXCL | os.O_CLOEXEC)
                except OSError as exc:
                    if exc.errno != errno.EBUSY:
                        raise
                    findings = _check_device(t, allow_destroy, probe_excl=False)
                    if has_errors(findings) or not _allowed(t.devno, allow_destroy):
                        if not has_errors(findings):
                            findings.append(
                                finding(
                                    "IOL-SAFE-005",
                                    f"{t.path} is held exclusively by someone else (EBUSY)",
                                    {"path": t.path, "errno": "EBUSY"},
                                    f"find the user: ls /sys/class/block/{t.name}/holders",
                                    job=",".join(t.jobs),
                                )
                            )
                        raise SafetyError(findings) from None
                    hold.unheld.append(t.path)
                    hold.findings.extend(findings)
                    continue
                findings = _check_device(t, allow_destroy, probe_excl=False)
                hold.findings.extend(findings)
                if has_errors(findings):
                    raise SafetyError(findings)
            for f in written_files(views):  # no hold on a file: checked once more, just before the run
                findings = _check_file(f, allow_destroy)
                hold.findings.extend(findings)
                if has_errors(findings):
                    raise SafetyError(findings)
        except BaseException:
            hold.close()
            raise
        return hold
