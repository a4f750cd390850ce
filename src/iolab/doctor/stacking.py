"""What is stacked on a block device or a file: the gate's view of "data on it" that sits somewhere else.

A block device is in use through everything built on it, found upwards from the device:

- its partitions, and the holders sysfs lists (dm, md, bcache ...);
- loop devices whose backing file IS the device (or one of the above): the loop driver itself says so
  (LOOP_GET_STATUS64's lo_rdevice, the device number of the backing inode when it is a block device node,
  right even when the node was renamed or removed), at any offset and size limit. Loop devices make no
  holders/ link in sysfs, and what they hold sits at their offset, past any fixed window of the device;
- loop devices whose backing file lives on a file system mounted from one of the above;
- and so on upwards (a loop on a loop on zramN), up to a depth that no real stack reaches.

Each device found carries the chain down to the written device, for the finding's message:
"/dev/loop7 (offset 1048576) on /dev/zram3".

A regular file is identified by (st_dev, st_ino), and on overlayfs also by the real files of its layers: the
merged path and the upper or lower path are the same data. `file_identities()` resolves an overlay path to the
same relative path in the upperdir and every lowerdir (from mountinfo's super options), recursively.
"""

from __future__ import annotations

import fcntl
import os
import stat
import struct
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from iolab.doctor.target import SYS_CLASS_BLOCK, Mount, active_swaps, mount_of, mounts, partitions_of

Devno = tuple[int, int]
FileId = tuple[int, int, int]  # (major, minor) of st_dev, st_ino

#: LOOP_GET_STATUS64 (linux/loop.h); struct loop_info64 starts with lo_device, lo_inode, lo_rdevice,
#: lo_offset, lo_sizelimit (all __u64)
_LOOP_GET_STATUS64 = 0x4C05
_LOOP_INFO64_SIZE = 232
_DELETED = " (deleted)"
_MAX_DEPTH = 16


def huge_decode_dev(dev: int) -> Devno:
    """The kernel's huge_encode_dev() (new_encode_dev) back to (major, minor)."""
    return (dev & 0xFFF00) >> 8, (dev & 0xFF) | ((dev >> 12) & 0xFFF00)


def _stat_id(st: os.stat_result) -> FileId:
    return (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)


def _devno_of(name: str) -> Devno | None:
    try:
        major, minor = (SYS_CLASS_BLOCK / name / "dev").read_text().strip().split(":")
        return int(major), int(minor)
    except (OSError, ValueError):
        return None


def _holders(name: str) -> list[str]:
    try:
        return sorted(os.listdir(SYS_CLASS_BLOCK / name / "holders"))
    except OSError:
        return []


# ------------------------------------------------------------------------------------------- loop devices


@dataclass(frozen=True)
class LoopInfo:
    """A bound loop device and what it is backed by."""

    name: str  # kernel name
    devno: Devno
    backing_file: str  # as sysfs shows it (" (deleted)" kept)
    file: FileId | None  # identity of the backing inode (None: could not be identified)
    rdev: Devno | None  # the backing inode's device number when it is a block device node
    offset: int
    sizelimit: int

    @property
    def label(self) -> str:
        bits = [f"offset {self.offset}"] if self.offset else []
        if self.sizelimit:
            bits.append(f"sizelimit {self.sizelimit}")
        return f"/dev/{self.name}" + (f" ({', '.join(bits)})" if bits else "")


def _loop_status(name: str, devno: Devno) -> tuple[FileId, Devno | None, int, int] | None:
    """LOOP_GET_STATUS64 on /dev/NAME (only when that node is this device): backing id, rdev, offset,
    size limit."""
    node = f"/dev/{name}"
    try:
        st = os.stat(node)
        if not stat.S_ISBLK(st.st_mode) or (os.major(st.st_rdev), os.minor(st.st_rdev)) != devno:
            return None
        fd = os.open(node, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        info = fcntl.ioctl(fd, _LOOP_GET_STATUS64, bytes(_LOOP_INFO64_SIZE))
    except OSError:
        return None  # ENXIO: not bound (any more)
    finally:
        os.close(fd)
    lo_device, lo_inode, lo_rdevice, lo_offset, lo_sizelimit = struct.unpack_from("=QQQQQ", info)
    rdev = huge_decode_dev(lo_rdevice) if lo_rdevice else None
    return (*huge_decode_dev(lo_device), lo_inode), rdev, lo_offset, lo_sizelimit


def _read_int(path: str) -> int:
    try:
        return int((SYS_CLASS_BLOCK / path).read_text().strip())
    except (OSError, ValueError):
        return 0


def loops() -> list[LoopInfo]:
    """Every bound loop device, identified by the loop driver (LOOP_GET_STATUS64), else by sysfs."""
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
        devno = _devno_of(name)
        if devno is None:
            continue
        status = _loop_status(name, devno)
        if status is not None:
            ident, rdev, offset, sizelimit = status
            out.append(LoopInfo(name, devno, text, ident, rdev, offset, sizelimit))
            continue
        # without the ioctl (not root): by the backing file's path, if it still has that name
        ident_: FileId | None = None
        rdev_: Devno | None = None
        if not text.endswith(_DELETED):
            try:
                st = os.stat(text)
            except OSError:
                pass
            else:
                ident_ = _stat_id(st)
                if stat.S_ISBLK(st.st_mode):
                    rdev_ = (os.major(st.st_rdev), os.minor(st.st_rdev))
        out.append(
            LoopInfo(
                name, devno, text, ident_, rdev_, _read_int(f"{name}/loop/offset"),
                _read_int(f"{name}/loop/sizelimit"),
            )
        )  # fmt: skip
    return out


# ---------------------------------------------------------------------------------------- devices upwards


@dataclass(frozen=True)
class Layer:
    """A block device that the written one (or file) is under, and how."""

    name: str  # kernel name
    devno: Devno
    #: from this device down to the written one: ("/dev/loop7 (offset 1048576)", "/dev/zram3")
    chain: tuple[str, ...]
    via: str  # "self" | "partition" | "holder" | "loop" | "loop on a file"

    @property
    def path(self) -> str:
        return f"/dev/{self.name}"

    @property
    def stacked(self) -> bool:
        return self.via != "self"

    def describe(self) -> str:
        return " on ".join(self.chain)


def filesystems_on(devnos: Iterable[Devno], all_mounts: list[Mount] | None = None) -> dict[Devno, Mount]:
    """st_dev of each file system mounted from one of `devnos` (btrfs: an anonymous one) -> a mount of it."""
    wanted = set(devnos)
    out: dict[Devno, Mount] = {}
    for m in all_mounts if all_mounts is not None else mounts():
        src: Devno | None = None
        if m.source.startswith("/"):
            try:
                st = os.stat(m.source)
            except OSError:
                st = None
            if st is not None and stat.S_ISBLK(st.st_mode):
                src = (os.major(st.st_rdev), os.minor(st.st_rdev))
        if m.devno in wanted or src in wanted:
            out.setdefault(m.devno, m)
    return out


def stack_above(
    name: str, *, base: tuple[str, ...] | None = None, all_loops: list[LoopInfo] | None = None
) -> dict[Devno, Layer]:
    """The device `name` and everything built on it, upwards, each with its chain down to `name`.

    `base` is the chain below `name` when it is itself stacked on something written (a file, for the gate's
    file checks): ("/dev/loop3 (offset 0)", "/srv/disk.img").
    """
    devno = _devno_of(name)
    if devno is None:
        return {}
    the_loops = loops() if all_loops is None else all_loops
    all_mounts = mounts()
    start = Layer(name, devno, (f"/dev/{name}", *(base or ())), "self")
    out: dict[Devno, Layer] = {devno: start}
    queue: deque[tuple[Layer, int]] = deque([(start, 0)])

    def add(layer: Layer, depth: int) -> None:
        if layer.devno not in out:
            out[layer.devno] = layer
            queue.append((layer, depth))

    while queue:
        layer, depth = queue.popleft()
        if depth >= _MAX_DEPTH:
            continue
        for part in partitions_of(layer.name):
            pd = _devno_of(part)
            if pd is not None:
                add(Layer(part, pd, (f"/dev/{part}", *layer.chain), "partition"), depth + 1)
        for holder in _holders(layer.name):
            hd = _devno_of(holder)
            if hd is not None:
                add(Layer(holder, hd, (f"/dev/{holder}", *layer.chain), "holder"), depth + 1)
        fs_here = filesystems_on([layer.devno], all_mounts)
        for lp in the_loops:
            if lp.rdev == layer.devno:
                add(Layer(lp.name, lp.devno, (lp.label, *layer.chain), "loop"), depth + 1)
            elif lp.file is not None and lp.rdev is None:
                # its backing file is in a file system on this device: mounted (btrfs: under an anonymous
                # st_dev), or still alive without a mount (umount -l) under the device's own number
                fs = fs_here.get(lp.file[:2])
                if fs is None and lp.file[:2] != layer.devno:
                    continue
                where = f"in the file system at {fs.mountpoint}" if fs else "in a file system without a mount"
                add(
                    Layer(
                        lp.name,
                        lp.devno,
                        (lp.label, f"{lp.backing_file} ({where})", *layer.chain),
                        "loop on a file",
                    ),
                    depth + 1,
                )
    return out


@dataclass(frozen=True)
class SwapHit:
    swap: str  # as /proc/swaps names it
    #: the swap and what it is on, down to the written device or file:
    #: "/dev/loop5 on /dev/loop4 on /srv/f.img", "/mnt/x/swapfile in the file system at /mnt/x on /dev/loop3"
    on: str
    direct: bool  # the swap is the written device itself


def swaps_in(cover: dict[Devno, Layer]) -> list[SwapHit]:
    """Active swap devices in `cover`, and swap files on file systems mounted from a device in it."""
    fs = filesystems_on(cover)
    fs_layer = {st_dev: cover.get(m.devno) or _layer_of_source(m, cover) for st_dev, m in fs.items()}
    out = []
    for swap in active_swaps():
        try:
            st = os.stat(swap)
        except OSError:
            continue
        if stat.S_ISBLK(st.st_mode):
            layer = cover.get((os.major(st.st_rdev), os.minor(st.st_rdev)))
            if layer is not None:
                out.append(SwapHit(swap, layer.describe(), layer.via == "self"))
        elif stat.S_ISREG(st.st_mode):
            dev = (os.major(st.st_dev), os.minor(st.st_dev))
            if dev in fs:
                below = fs_layer.get(dev)
                on = f"{swap} in the file system at {fs[dev].mountpoint}"
                on += f" on {below.describe()}" if below else ""
                out.append(SwapHit(swap, on, False))
            elif dev in cover:  # its file system has no mount any more (umount -l) but lives on
                out.append(SwapHit(swap, f"{swap} in a file system on {cover[dev].describe()}", False))
    return out


def _layer_of_source(m: Mount, cover: dict[Devno, Layer]) -> Layer | None:
    try:
        st = os.stat(m.source)
    except OSError:
        return None
    return cover.get((os.major(st.st_rdev), os.minor(st.st_rdev))) if stat.S_ISBLK(st.st_mode) else None


# ------------------------------------------------------------------------------------------------ overlayfs


def _split_layers(value: str) -> list[str]:
    """An overlay lowerdir value: ':' separates layers ("::" before data-only layers), "\\:" is a colon."""
    out: list[str] = []
    cur: list[str] = []
    i = 0
    while i < len(value):
        c = value[i]
        if c == "\\" and i + 1 < len(value):
            cur.append(value[i + 1])
            i += 2
            continue
        if c == ":":
            out.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    out.append("".join(cur))
    return [p for p in out if p]


def _unescape_octal(text: str) -> str:
    """mountinfo writes space, tab, newline, backslash (and in options: comma) as \\ooo."""
    out = []
    i = 0
    while i < len(text):
        code = text[i + 1 : i + 4]
        if text[i] == "\\" and len(code) == 3 and all(c in "01234567" for c in code):
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def overlay_layer_dirs(super_options: str) -> list[str]:
    """upperdir first, then every lowerdir (and data-only layer), from mountinfo's super options."""
    upper: list[str] = []
    lower: list[str] = []
    for raw in super_options.split(","):
        key, sep, value = raw.partition("=")
        if not sep:
            continue
        value = _unescape_octal(value)
        if key == "upperdir":
            upper.append(value)
        elif key == "lowerdir":
            lower.extend(_split_layers(value))
        elif key in ("lowerdir+", "datadir+"):
            lower.append(value)
    return [d for d in upper + lower if d.startswith("/")]


def overlay_real_paths(path: str) -> list[str]:
    """The same file in the layers of the overlayfs `path` is on (upper first), where it exists; else []."""
    real = os.path.realpath(path)
    m = mount_of(real)
    if m is None or m.fstype != "overlay":
        return []
    rel = os.path.relpath(real, m.mountpoint)
    inner = os.path.normpath(os.path.join(m.root, rel)).lstrip("/")
    out = []
    for layer in overlay_layer_dirs(m.super_options):
        candidate = os.path.join(layer, inner)
        if os.path.lexists(candidate):
            out.append(candidate)
    return out


def file_identities(path: str, depth: int = 0) -> set[FileId]:
    """(st_dev, st_ino) of the file `path` leads to, and of its real files when it is on overlayfs."""
    try:
        st = os.stat(path)
    except OSError:
        return set()
    ids = {_stat_id(st)}
    if depth < _MAX_DEPTH:
        for layer_path in overlay_real_paths(path):
            ids |= file_identities(layer_path, depth + 1)
    return ids


def loop_identities(lp: LoopInfo) -> set[FileId]:
    """What a loop device's backing file is: the driver's (device, inode), and when its path still leads to
    that same file, the real files under it on overlayfs."""
    ids = {lp.file} if lp.file is not None else set()
    if lp.backing_file.endswith(_DELETED):
        return ids
    by_path = file_identities(lp.backing_file)
    try:
        current = _stat_id(os.stat(lp.backing_file))
    except OSError:
        return ids
    if lp.file is None or current == lp.file:
        ids |= by_path
    return ids
