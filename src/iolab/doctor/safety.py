"""Data safety gate: no write reaches a block device that holds someone's data unless the user names it.

Before any write to a block device the gate refuses when the device (or a partition of it, or a device stacked
on it) is mounted, has holders, is active swap, or carries a partition table or file-system signature. Devices
are compared by device number (st_rdev), never by path, so a symlink or a /dev/disk/by-* alias does not get
around it. The signatures are read here from the device's first and last blocks.

While the job runs, the gate holds every written device open with O_EXCL, so nothing can mount it or claim it
meanwhile (the engine's own non-exclusive opens still work).

Override: `--allow-destroy=/dev/X` for exactly the device the job writes (matched by device number).
fio's allow_mounted_write=1 lets the mounted check pass, but not the signature check.
Active swap is never overridable: writing over it corrupts running processes; swapoff first.

Regular files are gated too, for what they are under a block device: the backing file of a loop device
(IOL-SAFE-006; `--allow-destroy=PATH` naming that file overrides) or an active swap file (IOL-SAFE-007, never
overridable). Files are compared by (st_dev, st_ino) after following symlinks, never by path, so a symlink or
a hard link does not get around it; a loop device's backing file is identified by the LOOP_GET_STATUS64 ioctl
(its lo_device and lo_inode, also right after the file was renamed or unlinked), else by stat() of
/sys/block/loopN/loop/backing_file (a " (deleted)" one then cannot be identified).
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any

from iolab.doctor.findings import Finding, finding, has_errors
from iolab.doctor.jobs import Jobs, JobView, to_views
from iolab.doctor.target import (
    SYS_CLASS_BLOCK,
    active_swaps,
    block_device,
    block_devno,
    mounts,
    partitions_of,
)

# --------------------------------------------------------------------------------------------- signatures

#: (name, byte offset from the start, magic bytes). Offsets and magics are the on-disk formats' own.
_HEAD_MAGICS: tuple[tuple[str, int, bytes], ...] = (
    ("xfs", 0, b"XFSB"),
    ("luks", 0, b"LUKS\xba\xbe"),
    ("squashfs", 0, b"hsqs"),
    ("ntfs", 3, b"NTFS    "),
    ("vfat (FAT12)", 54, b"FAT12   "),
    ("vfat (FAT16)", 54, b"FAT16   "),
    ("vfat (FAT32)", 82, b"FAT32   "),
    ("ext2/3/4", 1080, b"\x53\xef"),
    ("f2fs", 1024, b"\x10\x20\xf5\xf2"),
    ("erofs", 1024, b"\xe2\xe1\xf5\xe0"),
    ("linux_raid_member (md 1.1)", 0, b"\xfc\x4e\x2b\xa9"),
    ("linux_raid_member (md 1.2)", 4096, b"\xfc\x4e\x2b\xa9"),
    ("bcache", 4096 + 24, bytes.fromhex("c68573f64e1a45ca8265f57f48ba6d81")),
    ("iso9660", 32769, b"CD001"),
    ("btrfs", 65536 + 64, b"_BHRfS_M"),
)
_SWAP_MAGICS = (b"SWAPSPACE2", b"SWAP-SPACE")
_PAGE_SIZES = (4096, 8192, 16384, 65536)
HEAD_BYTES = 65536 + 4096


@dataclass(frozen=True)
class Signature:
    name: str
    offset: int

    def __str__(self) -> str:
        return f"{self.name}@{self.offset}"


def _ext_flavour(head: bytes) -> str:
    sb = 1024
    compat = int.from_bytes(head[sb + 0x5C : sb + 0x60], "little")
    incompat = int.from_bytes(head[sb + 0x60 : sb + 0x64], "little")
    if incompat & (0x40 | 0x80 | 0x200):  # extents, 64bit, flex_bg
        return "ext4"
    if compat & 0x4:  # has_journal
        return "ext3"
    return "ext2"


def _dos_partitions(head: bytes) -> int:
    """Number of non-empty primary entries in an MBR with a valid boot signature."""
    if head[510:512] != b"\x55\xaa":
        return 0
    count = 0
    for i in range(4):
        entry = head[446 + 16 * i : 446 + 16 * (i + 1)]
        if entry[4] != 0 and entry[0] in (0x00, 0x80):
            count += 1
    return count


def signatures_in(head: bytes, tail: bytes, size: int, lbs: int = 512) -> list[Signature]:
    """Signatures in a device's first HEAD_BYTES and last 128 KiB (`tail` ends at `size`)."""
    found: list[Signature] = []
    for name, off, magic in _HEAD_MAGICS:
        if head[off : off + len(magic)] == magic:
            found.append(Signature(_ext_flavour(head) if name == "ext2/3/4" else name, off))
    for page in _PAGE_SIZES:
        if head[page - 10 : page] in _SWAP_MAGICS:
            found.append(Signature("swap", page - 10))
            break
    for lba in sorted({512, lbs}):
        if head[lba : lba + 8] == b"EFI PART":
            found.append(Signature("gpt partition table", lba))
            break
    parts = _dos_partitions(head)
    if parts and not any(s.name.startswith("vfat") or s.name == "ntfs" for s in found):
        protective = head[446 + 4] == 0xEE
        found.append(
            Signature("gpt protective mbr" if protective else f"dos partition table ({parts} entries)", 510)
        )
    elif head[510:512] == b"\x55\xaa" and not found:
        found.append(Signature("boot sector (0x55aa)", 510))
    if head[:8] == b"LABELONE" or any(head[s : s + 8] == b"LABELONE" for s in (512, 1024, 1536)):
        found.append(
            Signature(
                "lvm2 physical volume",
                next(s for s in (0, 512, 1024, 1536) if head[s : s + 8] == b"LABELONE"),
            )
        )
    tail_start = size - len(tail)

    def at(offset: int, n: int) -> bytes:
        rel = offset - tail_start
        return tail[rel : rel + n] if 0 <= rel <= len(tail) - n else b""

    if size >= 128 * 1024:
        md090 = (size & ~(65536 - 1)) - 65536
        if at(md090, 4) in (b"\xfc\x4e\x2b\xa9", b"\xa9\x2b\x4e\xfc"):  # 0.90 is host-endian
            found.append(Signature("linux_raid_member (md 0.90)", md090))
        md10 = ((size // 512 - 16) & ~7) * 512
        if at(md10, 4) == b"\xfc\x4e\x2b\xa9":
            found.append(Signature("linux_raid_member (md 1.0)", md10))
        for backup in sorted({size - 512, size - lbs}):
            if at(backup, 8) == b"EFI PART" and not any(s.name.startswith("gpt partition") for s in found):
                found.append(Signature("gpt partition table (backup header)", backup))
                break
    return found


def read_signatures(path: str) -> list[Signature]:
    """Open the device read-only and look for signatures."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.lseek(fd, 0, os.SEEK_END)
        head = os.pread(fd, min(HEAD_BYTES, size), 0)
        head = head + bytes(HEAD_BYTES - len(head))
        tail_len = min(size, 128 * 1024)
        tail = os.pread(fd, tail_len, size - tail_len) if tail_len else b""
    finally:
        os.close(fd)
    devno = block_devno(path)
    dev = block_device(devno) if devno else None
    return signatures_in(head, tail, size, dev.logical_block_size if dev else 512)


# ------------------------------------------------------------------------------------------ the gate


def _holders(name: str) -> list[str]:
    try:
        return sorted(os.listdir(SYS_CLASS_BLOCK / name / "holders"))
    except OSError:
        return []


def _covering(name: str, depth: int = 0) -> dict[tuple[int, int], str]:
    """Device numbers whose use means `name` is in use: itself, its partitions, what is stacked on them."""
    out: dict[tuple[int, int], str] = {}
    if depth > 16:
        return out
    names = [name, *partitions_of(name)]
    for n in names:
        try:
            major, minor = (SYS_CLASS_BLOCK / n / "dev").read_text().strip().split(":")
        except (OSError, ValueError):
            continue
        out[(int(major), int(minor))] = n
        for holder in _holders(n):
            out.update(_covering(holder, depth + 1))
    return out


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
        if not view.writes:
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


def _check_device(t: WriteTarget, allow_destroy: Sequence[str], probe_excl: bool = True) -> list[Finding]:
    allowed = _allowed(t.devno, allow_destroy)
    cover = _covering(t.name)
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

    # mounted: any mount whose device number (or source device) is the device, a partition, or a holder
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
            f"{t.path} is mounted: /dev/{hit} holds the {m.fstype} file system at {m.mountpoint}",
            {
                "path": t.path,
                "device": f"/dev/{t.name}",
                "devno": f"{t.devno[0]}:{t.devno[1]}",
                "mounted_device": f"/dev/{hit}",
                "mountpoint": m.mountpoint,
                "fstype": m.fstype,
            },
            f"umount {m.mountpoint}, or write to a file in it instead; " + fix_allow,
            bypass=bypass,
        )
    holders = {n: _holders(n) for n in [t.name, *partitions_of(t.name)]}
    holders = {n: h for n, h in holders.items() if h}
    if holders:
        add(
            "IOL-SAFE-002",
            f"{t.path} is in use by " + ", ".join(f"{h} (on {n})" for n, hs in holders.items() for h in hs),
            {"path": t.path, "device": f"/dev/{t.name}", "holders": {n: h for n, h in holders.items()}},
            "remove what is stacked on it (dmsetup remove, mdadm --stop, ...); " + fix_allow,
            bypass=f"--allow-destroy={allowed}" if allowed else None,
        )
    for swap in active_swaps():
        sd = block_devno(swap)
        if sd is not None and sd in cover:
            add(
                "IOL-SAFE-003",
                f"{t.path} is active swap ({swap}): writing over it corrupts running programs",
                {"path": t.path, "device": f"/dev/{t.name}", "swap": swap},
                f"swapoff {swap} first (--allow-destroy does not override this)",
                bypass=None,
            )
    try:
        sigs = read_signatures(t.path)
    except OSError as exc:
        sigs = []
        out.append(
            finding(
                "IOL-SAFE-005",
                f"cannot read {t.path} to look for signatures: {exc.strerror}",
                {"path": t.path, "errno": exc.errno},
                "the gate must read the device before writing it: run where it can be opened (root)",
                job=",".join(t.jobs),
            )
        )
    if sigs:
        add(
            "IOL-SAFE-004",
            f"{t.path} carries {', '.join(s.name for s in sigs)}: writing destroys it",
            {"path": t.path, "device": f"/dev/{t.name}", "signatures": [str(s) for s in sigs]},
            f"write to another device, or wipe it (wipefs -a /dev/{t.name}); " + fix_allow,
            bypass=f"--allow-destroy={allowed}" if allowed else None,
        )
    blocking = [f for f in out if f.severity == "error"]
    if probe_excl and not blocking and not any(f.code == "IOL-SAFE-001" for f in out):
        try:
            fd = os.open(t.path, os.O_RDONLY | os.O_EXCL | os.O_CLOEXEC)
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
            os.close(fd)
    return out


# ------------------------------------------------------------------------------------- regular files

#: LOOP_GET_STATUS64 (linux/loop.h) and the head of struct loop_info64: lo_device, lo_inode (the backing file)
_LOOP_GET_STATUS64 = 0x4C05
_LOOP_INFO64_SIZE = 232
_DELETED = " (deleted)"

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


def _huge_decode_dev(dev: int) -> tuple[int, int]:
    """The kernel's huge_encode_dev() (new_encode_dev) back to (major, minor)."""
    return (dev & 0xFFF00) >> 8, (dev & 0xFF) | ((dev >> 12) & 0xFFF00)


def _loop_status_id(name: str) -> FileId | None:
    try:
        major, minor = (SYS_CLASS_BLOCK / name / "dev").read_text().strip().split(":")
        node = f"/dev/{name}"
        if block_devno(node) != (int(major), int(minor)):
            return None
        fd = os.open(node, os.O_RDONLY | os.O_CLOEXEC)
    except (OSError, ValueError):
        return None
    try:
        info = fcntl.ioctl(fd, _LOOP_GET_STATUS64, bytes(_LOOP_INFO64_SIZE))
    except OSError:
        return None  # ENXIO: not bound (any more)
    finally:
        os.close(fd)
    lo_device, lo_inode = struct.unpack_from("=QQ", info)
    return (*_huge_decode_dev(lo_device), lo_inode)


@dataclass(frozen=True)
class LoopBacking:
    loop: str  # kernel name
    backing_file: str  # as sysfs shows it (" (deleted)" kept)
    file: FileId | None  # None: could not be identified


def loop_backings() -> list[LoopBacking]:
    """Every bound loop device and the identity of its backing file."""
    out = []
    try:
        names = sorted(n for n in os.listdir(SYS_CLASS_BLOCK) if n.startswith("loop"))
    except OSError:
        return []
    for name in names:
        try:
            text = (SYS_CLASS_BLOCK / name / "loop" / "backing_file").read_text().rstrip("\n")
        except OSError:
            continue  # not bound, or a partition of a loop device
        ident = _loop_status_id(name)
        if ident is None and not text.endswith(_DELETED):
            ident = file_id(text)  # without the ioctl (not root): by its path, if it still has that name
        out.append(LoopBacking(name, text, ident))
    return out


@dataclass(frozen=True)
class FileTarget:
    path: str  # as the job names it
    file: FileId
    jobs: tuple[str, ...]


def written_files(views: Iterable[JobView]) -> list[FileTarget]:
    """Existing regular files that jobs write, one entry per file (device and inode)."""
    by_id: dict[FileId, FileTarget] = {}
    for view in views:
        if not view.writes:
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


def _allowed_file(ident: FileId, allow_destroy: Sequence[str]) -> str | None:
    for path in allow_destroy:
        if file_id(path) == ident:
            return path
    return None


def _check_file(t: FileTarget, allow_destroy: Sequence[str]) -> list[Finding]:
    out: list[Finding] = []
    job = ",".join(t.jobs)
    where = {
        "path": t.path,
        "realpath": os.path.realpath(t.path),
        "file": f"{t.file[0]}:{t.file[1]}:{t.file[2]}",  # st_dev major:minor:inode
    }
    allowed = _allowed_file(t.file, allow_destroy)
    for lb in loop_backings():
        if lb.file != t.file:
            continue
        message = (
            f"{t.path} is the backing file of /dev/{lb.loop}: writing it rewrites what /dev/{lb.loop} holds "
            "under whoever uses it"
        )
        fix = (
            f"losetup -d /dev/{lb.loop} first (if nothing uses it), or write another file; "
            f"--allow-destroy={t.path} (if what /dev/{lb.loop} holds may be destroyed)"
        )
        evidence = {**where, "loop_device": f"/dev/{lb.loop}", "backing_file": lb.backing_file}
        if allowed:
            out.append(
                finding("IOL-SAFE-006", f"{message} (allowed by --allow-destroy={allowed})", evidence, fix,
                        severity="info", job=job)
            )  # fmt: skip
        else:
            out.append(finding("IOL-SAFE-006", message, evidence, fix, job=job))
    for swap in active_swaps():
        if file_id(swap) == t.file:
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
    return out


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
        return _check_device(target, allow_destroy, probe_excl=False)
    if stat.S_ISREG(st.st_mode):
        ident = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
        return _check_file(FileTarget(path, ident, tuple(users)), allow_destroy)
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


class SafetyGate:
    """`check()` before the run (errors block it); `exclusive()` around the run."""

    @staticmethod
    def check(jobs: Jobs, allow_destroy: Sequence[str] = ()) -> list[Finding]:
        views, _ = to_views(jobs)
        out: list[Finding] = []
        for t in write_targets(views):
            out.extend(_check_device(t, allow_destroy))
        for f in written_files(views):
            out.extend(_check_file(f, allow_destroy))
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
