"""Target inspection from sysfs and procfs: what a path really is and which block devices serve it.

No shelling out: everything is a stat() or a read of /sys/dev/block, /sys/class/block, /proc/self/mountinfo
and /proc/swaps.

A regular file leads to its file system (the mountinfo entry of its st_dev) and the block device under it
(/sys/dev/block/MAJ:MIN; the whole disk for a partition). Stacked devices are followed downwards: dm-* and md*
through `slaves/`, loop devices through their backing file (whose own file system leads further down).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SYS_DEV_BLOCK = Path("/sys/dev/block")
SYS_CLASS_BLOCK = Path("/sys/class/block")
MOUNTINFO = Path("/proc/self/mountinfo")
SWAPS = Path("/proc/swaps")

#: kernel-name prefix -> driver family; the first five are stacked or virtual
_DRIVERS = (
    ("loop", "loop"),
    ("dm-", "dm"),
    ("md", "md"),
    ("zram", "zram"),
    ("nbd", "nbd"),
    ("ram", "brd"),
    ("pmem", "pmem"),
    ("nvme", "nvme"),
    ("vd", "virtio"),
    ("xvd", "xen"),
    ("sd", "scsi"),
    ("hd", "ide"),
    ("mmcblk", "mmc"),
    ("sr", "cdrom"),
)
STACKED_DRIVERS = frozenset({"loop", "dm", "md", "zram", "nbd"})
RAM_DRIVERS = frozenset({"zram", "brd", "pmem"})
VIRTUAL_DISK_DRIVERS = frozenset({"virtio", "xen"})
RAM_FILESYSTEMS = frozenset({"tmpfs", "ramfs", "devtmpfs"})


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _read_int(path: Path) -> int | None:
    text = _read(path)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def driver_of(name: str) -> str:
    for prefix, driver in _DRIVERS:
        if name.startswith(prefix):
            return driver
    return "other"


@dataclass(frozen=True)
class BlockDevice:
    """One block device (whole disk or partition) as sysfs describes it."""

    name: str  # kernel name: vda, vda1, loop0, dm-0
    devno: tuple[int, int]
    is_partition: bool
    parent: str | None  # the whole disk of a partition
    driver: str
    size_bytes: int
    rotational: bool | None
    write_cache: str | None  # "write back" | "write through"
    scheduler: str | None  # the active one
    logical_block_size: int
    physical_block_size: int
    nr_requests: int | None
    max_sectors_kb: int | None
    read_only: bool
    holders: tuple[str, ...]
    slaves: tuple[str, ...]
    dm_name: str | None = None
    loop_backing_file: str | None = None
    loop_offset: int = 0
    loop_sizelimit: int = 0
    loop_dio: bool | None = None

    @property
    def path(self) -> str:
        return f"/dev/{self.name}"

    @property
    def disk(self) -> str:
        return self.parent or self.name

    @property
    def stacked(self) -> bool:
        return self.driver in STACKED_DRIVERS

    @property
    def ram_backed(self) -> bool:
        return self.driver in RAM_DRIVERS

    @property
    def stat_path(self) -> Path:
        return SYS_CLASS_BLOCK / self.name / "stat"

    def describe(self) -> str:
        bits = [f"{self.path} ({self.devno[0]}:{self.devno[1]}, {self.driver}"]
        if self.is_partition:
            bits.append(f", partition of {self.parent}")
        bits.append(")")
        attrs = [
            f"size={self.size_bytes}",
            f"rotational={int(self.rotational) if self.rotational is not None else '?'}",
            f"write_cache={self.write_cache or '?'}",
            f"scheduler={self.scheduler or 'n/a'}",
            f"logical_block_size={self.logical_block_size}",
            f"physical_block_size={self.physical_block_size}",
            f"nr_requests={self.nr_requests if self.nr_requests is not None else 'n/a'}",
        ]
        if self.loop_backing_file is not None:
            attrs.append(f"backing_file={self.loop_backing_file} dio={int(bool(self.loop_dio))}")
        if self.dm_name:
            attrs.append(f"dm_name={self.dm_name}")
        if self.holders:
            attrs.append(f"holders={','.join(self.holders)}")
        if self.slaves:
            attrs.append(f"slaves={','.join(self.slaves)}")
        return "".join(bits) + ": " + " ".join(attrs)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "path": self.path,
            "devno": f"{self.devno[0]}:{self.devno[1]}",
            "partition_of": self.parent,
            "driver": self.driver,
            "size": self.size_bytes,
            "rotational": self.rotational,
            "write_cache": self.write_cache,
            "scheduler": self.scheduler,
            "logical_block_size": self.logical_block_size,
            "physical_block_size": self.physical_block_size,
            "nr_requests": self.nr_requests,
            "holders": list(self.holders),
            "slaves": list(self.slaves),
            "loop_backing_file": self.loop_backing_file,
            "loop_dio": self.loop_dio,
        }


def sysfs_dir(devno: tuple[int, int]) -> Path | None:
    """/sys/dev/block/MAJ:MIN resolved, or None if the number is not a block device (tmpfs, btrfs anon...)."""
    link = SYS_DEV_BLOCK / f"{devno[0]}:{devno[1]}"
    return link.resolve() if link.exists() else None


def _scheduler(text: str | None) -> str | None:
    if not text:
        return None
    for word in text.split():
        if word.startswith("[") and word.endswith("]"):
            return word[1:-1]
    return text.split()[0] if text.split() else None


def _listdir(path: Path) -> tuple[str, ...]:
    try:
        return tuple(sorted(os.listdir(path)))
    except OSError:
        return ()


def block_device(devno: tuple[int, int]) -> BlockDevice | None:
    """Describe the block device with this number (None when sysfs has no block device by that number)."""
    d = sysfs_dir(devno)
    if d is None:
        return None
    name = d.name
    is_part = (d / "partition").exists()
    parent = d.parent.name if is_part else None
    disk_dir = d.parent if is_part else d
    q = disk_dir / "queue"
    sectors = _read_int(d / "size") or 0
    rot = _read_int(q / "rotational")
    loop_dir = disk_dir / "loop"
    backing = None
    if loop_dir.is_dir():
        backing = _read(loop_dir / "backing_file")
        if backing and backing.endswith(" (deleted)"):
            backing = backing[: -len(" (deleted)")]
    dio = _read_int(loop_dir / "dio") if backing is not None else None
    return BlockDevice(
        name=name,
        devno=devno,
        is_partition=is_part,
        parent=parent,
        driver=driver_of(disk_dir.name),
        size_bytes=sectors * 512,
        rotational=None if rot is None else bool(rot),
        write_cache=_read(q / "write_cache"),
        scheduler=_scheduler(_read(q / "scheduler")),
        logical_block_size=_read_int(q / "logical_block_size") or 512,
        physical_block_size=_read_int(q / "physical_block_size") or 512,
        nr_requests=_read_int(q / "nr_requests"),
        max_sectors_kb=_read_int(q / "max_sectors_kb"),
        read_only=bool(_read_int(d / "ro")),
        holders=_listdir(d / "holders"),
        slaves=_listdir(disk_dir / "slaves"),
        dm_name=_read(disk_dir / "dm" / "name"),
        loop_backing_file=backing,
        loop_offset=(_read_int(loop_dir / "offset") or 0) if backing is not None else 0,
        loop_sizelimit=(_read_int(loop_dir / "sizelimit") or 0) if backing is not None else 0,
        loop_dio=None if dio is None else bool(dio),
    )


def block_devno(path: str) -> tuple[int, int] | None:
    """The device number of a block device node (None: not one, or no such path)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (os.major(st.st_rdev), os.minor(st.st_rdev)) if stat.S_ISBLK(st.st_mode) else None


def block_device_by_name(name: str) -> BlockDevice | None:
    dev = _read(SYS_CLASS_BLOCK / name / "dev")
    if not dev or ":" not in dev:
        return None
    major, minor = dev.split(":", 1)
    return block_device((int(major), int(minor)))


def partitions_of(disk: str) -> tuple[str, ...]:
    """Kernel names of the partitions of a whole disk."""
    base = SYS_CLASS_BLOCK / disk
    return tuple(n for n in _listdir(base) if (base / n / "partition").exists())


# ----------------------------------------------------------------------------------------------- mounts


@dataclass(frozen=True)
class Mount:
    mount_id: int
    devno: tuple[int, int]
    root: str
    mountpoint: str
    options: str
    fstype: str
    source: str
    super_options: str

    def to_json(self) -> dict[str, object]:
        return {
            "mountpoint": self.mountpoint,
            "fstype": self.fstype,
            "source": self.source,
            "devno": f"{self.devno[0]}:{self.devno[1]}",
            "options": self.options,
            "super_options": self.super_options,
        }


def _unescape(field_: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo octal."""
    if "\\" not in field_:
        return field_
    out = []
    i = 0
    while i < len(field_):
        if field_[i] == "\\" and i + 3 < len(field_) and field_[i + 1 : i + 4].isdigit():
            out.append(chr(int(field_[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field_[i])
            i += 1
    return "".join(out)


def mounts(path: Path = MOUNTINFO) -> list[Mount]:
    result: list[Mount] = []
    try:
        text = path.read_text()
    except OSError:
        return result
    for line in text.splitlines():
        parts = line.split()
        try:
            sep = parts.index("-")
            major, minor = parts[2].split(":")
            result.append(
                Mount(
                    mount_id=int(parts[0]),
                    devno=(int(major), int(minor)),
                    root=_unescape(parts[3]),
                    mountpoint=_unescape(parts[4]),
                    options=parts[5],
                    fstype=parts[sep + 1],
                    source=_unescape(parts[sep + 2]) if len(parts) > sep + 2 else "",
                    super_options=parts[sep + 3] if len(parts) > sep + 3 else "",
                )
            )
        except (ValueError, IndexError):
            continue
    return result


def mount_of(path: str, st_dev: int | None = None) -> Mount | None:
    """The mount a path lives on: the deepest mountpoint containing it, preferring one with its st_dev."""
    real = os.path.realpath(path)
    all_mounts = mounts()

    def contains(m: Mount) -> bool:
        mp = m.mountpoint.rstrip("/") or "/"
        return mp == "/" or real == mp or real.startswith(mp + "/")

    candidates = [m for m in all_mounts if contains(m)]
    if st_dev is not None:
        same = [m for m in candidates if m.devno == (os.major(st_dev), os.minor(st_dev))]
        if same:
            candidates = same
    if not candidates:
        return None
    # deepest mountpoint; among equals the last mounted one (it hides the earlier ones)
    return max(enumerate(candidates), key=lambda im: (len(im[1].mountpoint), im[0]))[1]


def active_swaps() -> list[str]:
    try:
        lines = SWAPS.read_text().splitlines()[1:]
    except OSError:
        return []
    out = []
    for line in lines:
        if line.split():
            out.append(_unescape(line.split()[0]))
    return out


# ----------------------------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class TargetInfo:
    """What a job's filename really is."""

    path: str
    realpath: str
    kind: str  # "block" | "file" | "directory" | "missing" | "other"
    size: int | None
    #: the file system the path lives on (for a missing file: the one its directory is on)
    mount: Mount | None
    #: the block device I/O reaches first: the device node itself, or the device under the file system
    device: BlockDevice | None
    #: device first, then every device below it (slaves, loop backing files' devices), without repeats
    chain: tuple[BlockDevice, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def is_block(self) -> bool:
        return self.kind == "block"

    @property
    def fstype(self) -> str | None:
        return self.mount.fstype if self.mount else None

    @property
    def stacked(self) -> tuple[BlockDevice, ...]:
        return tuple(d for d in self.chain if d.stacked)

    @property
    def logical_block_size(self) -> int | None:
        return self.device.logical_block_size if self.device else None

    @property
    def ram_backed(self) -> bool:
        """Storage that is memory: tmpfs/ramfs/devtmpfs files, zram, brd."""
        if self.kind != "block" and self.fstype in RAM_FILESYSTEMS:
            return True
        return self.device is not None and self.device.ram_backed

    def describe(self) -> str:
        if self.kind == "block":
            head = f"{self.path}: block device"
        elif self.kind == "file":
            head = f"{self.path}: regular file ({self.size} bytes)"
        elif self.kind == "missing":
            head = f"{self.path}: does not exist yet"
        else:
            head = f"{self.path}: {self.kind}"
        if self.realpath != self.path:
            head += f" -> {self.realpath}"
        lines = [head]
        if self.mount and self.kind != "block":
            lines.append(
                f"  file system: {self.mount.fstype} from {self.mount.source} at {self.mount.mountpoint} "
                f"({self.mount.devno[0]}:{self.mount.devno[1]})"
            )
        for dev in self.chain:
            lines.append(f"  device: {dev.describe()}")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "realpath": self.realpath,
            "kind": self.kind,
            "size": self.size,
            "mount": self.mount.to_json() if self.mount else None,
            "devices": [d.to_json() for d in self.chain],
            "notes": list(self.notes),
        }


def _fs_device(st_dev: int, mount: Mount | None) -> BlockDevice | None:
    """The block device under a file system: st_dev, or the mount source when st_dev is anonymous (btrfs)."""
    dev = block_device((os.major(st_dev), os.minor(st_dev)))
    if dev is None and mount is not None and mount.source.startswith("/"):
        try:
            st = os.stat(mount.source)
        except OSError:
            return None
        if stat.S_ISBLK(st.st_mode):
            dev = block_device((os.major(st.st_rdev), os.minor(st.st_rdev)))
    return dev


def _below(dev: BlockDevice, notes: list[str], depth: int = 0) -> Iterator[BlockDevice]:
    """Every device under a stacked one, depth first."""
    if depth > 16:
        return
    if dev.loop_backing_file:
        try:
            st = os.stat(dev.loop_backing_file)
        except OSError:
            notes.append(f"{dev.path}: backing file {dev.loop_backing_file} is gone")
            return
        if stat.S_ISBLK(st.st_mode):
            lower = block_device((os.major(st.st_rdev), os.minor(st.st_rdev)))
        else:
            lower = _fs_device(st.st_dev, mount_of(dev.loop_backing_file, st.st_dev))
        if lower is not None:
            yield lower
            yield from _below(lower, notes, depth + 1)
        return
    for slave in dev.slaves:
        lower = block_device_by_name(slave)
        if lower is not None:
            yield lower
            yield from _below(lower, notes, depth + 1)


def _chain(dev: BlockDevice | None, notes: list[str]) -> tuple[BlockDevice, ...]:
    if dev is None:
        return ()
    seen: dict[str, BlockDevice] = {dev.name: dev}
    for lower in _below(dev, notes):
        seen.setdefault(lower.name, lower)
    return tuple(seen.values())


def inspect_target(path: str) -> TargetInfo:
    """Inspect a job target (a device node, a file, or a file not created yet)."""
    real = os.path.realpath(path)
    notes: list[str] = []
    try:
        st = os.stat(path)
    except FileNotFoundError:
        parent = os.path.dirname(real) or "."
        while not os.path.exists(parent) and parent not in ("/", ""):
            parent = os.path.dirname(parent)
        try:
            pst = os.stat(parent)
        except OSError:
            return TargetInfo(path, real, "missing", None, None, None)
        mount = mount_of(parent, pst.st_dev)
        dev = _fs_device(pst.st_dev, mount)
        return TargetInfo(path, real, "missing", None, mount, dev, _chain(dev, notes), tuple(notes))
    if stat.S_ISBLK(st.st_mode):
        dev = block_device((os.major(st.st_rdev), os.minor(st.st_rdev)))
        size = dev.size_bytes if dev else None
        return TargetInfo(
            path, real, "block", size, mount_of(real, st.st_dev), dev, _chain(dev, notes), tuple(notes)
        )
    kind = "file" if stat.S_ISREG(st.st_mode) else "directory" if stat.S_ISDIR(st.st_mode) else "other"
    mount = mount_of(real, st.st_dev)
    dev = _fs_device(st.st_dev, mount)
    if dev is None and mount is not None:
        notes.append(f"{mount.fstype} at {mount.mountpoint} has no block device under it")
    return TargetInfo(
        path, real, kind, st.st_size if kind == "file" else None, mount, dev, _chain(dev, notes), tuple(notes)
    )
