"""The safety gate against a corpus of real devices, through `iolab run` as a user runs it.

Every case builds real data on a device made here (a loop device over a sparse temp file, or a hot-added
zram), hashes the whole device, runs a write job on it (`iolab run --name=w --filename=DEV --rw=write
--bs=4k --size=1M --direct=1`) and checks: exit status 1, the finding on stderr, the same sha256 afterwards.
Where the finding is overridable, the same command with `--allow-destroy=DEV` must then write (exit 0, the
hash changes): a gate that refuses everything would fail here.

The corpus: every file system Debian can make here (mkfs.*, mkswap, cryptsetup luksFormat, pvcreate, image
builders for cramfs/squashfs/erofs), signatures libblkid knows that cannot be made here without their
software or kernel module (zfs_member, ceph_bluestore, md RAID 1.2: written from the formats' public on-disk
facts), and stacked devices (a loop device at an offset of a zram, a loop on a loop, swap on loops, overlayfs
upper vs merged paths).

Root is needed (loop devices, zram, mounts, swap): skipped with a reason elsewhere, required in CI. The
verdict table is printed at the end of the module (pytest -s) and written to $IOLAB_CORPUS_REPORT when set.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import need
from iolab.doctor import blkid
from iolab.doctor.safety import check_fd, probe_signatures
from test_doctor_support import MiB, attached, mkfs_ext4, mounted, need_root, need_tool, sparse

# ------------------------------------------------------------------------------------------------ helpers

VERDICTS: list[tuple[str, str, str]] = []  # (case, what was run, verdict)


@pytest.fixture(scope="module", autouse=True)
def verdict_table() -> Iterator[None]:
    yield
    if not VERDICTS:
        return
    width = max(len(c) for c, _, _ in VERDICTS)
    lines = [f"{'case':<{width}}  verdict", *(f"{c:<{width}}  {w}: {v}" for c, w, v in VERDICTS)]
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    report = os.environ.get("IOLAB_CORPUS_REPORT")
    if report:
        Path(report).write_text(text)


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * MiB):
            h.update(chunk)
    return h.hexdigest()


def iolab_run(
    target: str | Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    cmd = [
        sys.executable,
        "-m",
        "iolab",
        "run",
        "--name=w",
        f"--filename={target}",
        "--rw=write",
        "--bs=4k",
        "--size=1M",
        "--direct=1",
        *extra,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})


def error_codes(stderr: str) -> list[str]:
    return sorted(set(re.findall(r"^error: (IOL-[A-Z]+-\d+)", stderr, re.M)))


def refused(
    case: str,
    target: str | Path,
    *extra: str,
    codes: set[str],
    says: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> str:
    """Run the write job: it must be refused with `codes` among the errors, the device left as it was."""
    before = sha256(target)
    r = iolab_run(target, *extra, env=env)
    after = sha256(target)
    found = error_codes(r.stderr)
    cmd = f"write {target}" + "".join(f" {e}" for e in extra)
    VERDICTS.append((case, cmd, f"exit {r.returncode}, refused: {', '.join(found) or '-'}"))
    assert r.returncode == 1, (r.returncode, r.stderr[-3000:])
    assert codes <= set(found), (codes, r.stderr[-3000:])
    for text in says:
        assert text in r.stderr, (text, r.stderr[-3000:])
    assert "Traceback" not in r.stderr
    assert before == after, f"{target} changed although the run was refused"
    return r.stderr


def allowed(case: str, target: str | Path, *extra: str) -> list[str]:
    """Run the write job: it must run and write the device. Returns the safety findings it reported (info)."""
    before = sha256(target)
    r = iolab_run(target, *extra, "--output-format=json")
    after = sha256(target)
    cmd = f"write {target}" + "".join(f" {e}" for e in extra)
    assert r.returncode == 0, (r.returncode, r.stderr[-3000:])
    infos = sorted(
        {f["code"] for f in json.loads(r.stdout)["iolab"]["findings"] if f["code"].startswith("IOL-SAFE")}
    )
    VERDICTS.append((case, cmd, "exit 0, written" + (f" (info: {', '.join(infos)})" if infos else "")))
    assert before != after, f"{target} was not written"
    return infos


def run(*cmd: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, f"{cmd}: {r.stderr.strip()}"
    return r


def mkfs_ext4_settled(target: str | Path) -> None:
    """ext4 with its inode tables and journal written at mkfs time: mounted, it has no lazy-init thread
    writing the device in the background, so the device's hash holds still while the gate is tested."""
    run("mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", target)


@contextmanager
def hot_zram(size: str = "64M") -> Iterator[str]:
    """A zram device hot-added for the test (never zram0), reset and removed afterwards."""
    need_root("hot-add a zram device")
    control = Path("/sys/class/zram-control/hot_add")
    if not control.exists() and shutil.which("modprobe"):
        subprocess.run(["modprobe", "zram"], check=False, capture_output=True)
    need(control.exists(), "no /sys/class/zram-control (zram module not available)")
    index = int(control.read_text().strip())
    sysfs = Path(f"/sys/block/zram{index}")
    try:
        (sysfs / "disksize").write_text(size)
        yield f"/dev/zram{index}"
    finally:
        for _ in range(100):
            try:
                (sysfs / "reset").write_text("1")
                break
            except OSError:
                time.sleep(0.05)
        Path("/sys/class/zram-control/hot_remove").write_text(str(index))


@contextmanager
def swapped_on(dev: str | Path) -> Iterator[None]:
    need_tool("swapon")
    r = subprocess.run(["swapon", str(dev)], capture_output=True, text=True)
    need(r.returncode == 0, f"swapon {dev} failed: {r.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["swapoff", str(dev)], check=False, capture_output=True)


# ------------------------------------------------------------------------- signatures written by hand


def md12_superblock(image: Path) -> None:
    """An md RAID1 member with a version-1.2 superblock (4 KiB from the start), as linux/raid/md_p.h lays it
    out: mdadm needs the md kernel module to create one, which this machine may not have."""
    size = image.stat().st_size
    sectors = size // 512
    max_dev = 2
    sb = bytearray(256 + 2 * max_dev)
    struct.pack_into("<IIII", sb, 0, 0xA92B4EFC, 1, 0, 0)  # magic, major_version, feature_map, pad
    sb[16:32] = uuid.UUID("0badc0de-0000-4000-8000-00000000f00d").bytes  # set_uuid
    sb[32:64] = b"iolab:corpus".ljust(32, b"\0")  # set_name
    struct.pack_into("<QiiQii", sb, 64, 1_700_000_000, 1, 0, sectors - 2048, 0, 2)  # ctime level layout size
    struct.pack_into("<QQQ", sb, 128, 2048, sectors - 2048, 8)  # data_offset, data_size, super_offset
    struct.pack_into("<I", sb, 160, 0)  # dev_number
    sb[168:184] = uuid.UUID("0badc0de-0000-4000-8000-0000000000aa").bytes  # device_uuid
    struct.pack_into("<QQQ", sb, 192, 1_700_000_000, 1, 2**64 - 1)  # utime, events, resync_offset
    struct.pack_into("<I", sb, 220, max_dev)
    struct.pack_into("<HH", sb, 256, 0, 1)  # dev_roles
    total = sum(struct.unpack_from(f"<{len(sb) // 4}I", sb))  # sb_csum is still 0 here
    if len(sb) % 4:
        total += struct.unpack_from("<H", sb, len(sb) - 2)[0]
    struct.pack_into("<I", sb, 216, ((total & 0xFFFFFFFF) + (total >> 32)) & 0xFFFFFFFF)
    with open(image, "r+b") as f:
        f.seek(4096)
        f.write(sb)


def zfs_member(image: Path) -> None:
    """A ZFS vdev: the four 256 KiB labels (two at the start, two at the end), each with its name/value list
    (pool name and guid, at 16 KiB) and an uberblock (magic 0x00bab10c, at 128 KiB)."""

    def pair(name: str, value: bytes) -> bytes:
        raw_name = name.encode()
        padded = raw_name + bytes(-len(raw_name) % 4)
        body = struct.pack(">I", len(raw_name)) + padded + value
        return struct.pack(">II", 8 + len(body), 0) + body

    def u64(v: int) -> bytes:
        return struct.pack(">IIQ", 8, 1, v)  # DATA_TYPE_UINT64, one element

    def string(s: str) -> bytes:
        raw = s.encode()
        return struct.pack(">III", 9, 1, len(raw)) + raw + bytes(-len(raw) % 4)  # DATA_TYPE_STRING

    nvlist = (
        bytes([1, 1, 0, 0])
        + struct.pack(">II", 0, 1)
        + pair("version", u64(5000))
        + pair("name", string("iolabpool"))
        + pair("state", u64(0))
        + pair("txg", u64(4))
        + pair("pool_guid", u64(0x10AB5EED))
        + pair("guid", u64(0x5EED))
        + bytes(8)
    )
    uberblock = struct.pack("<QQQQQ", 0x00BAB10C, 5000, 4, 0x10AB5EED + 0x5EED, 1_700_000_000)
    size = image.stat().st_size
    label = 256 * 1024
    with open(image, "r+b") as f:
        for start in (0, label, size - 2 * label, size - label):
            f.seek(start + 16 * 1024)
            f.write(nvlist)
            f.seek(start + 128 * 1024)
            f.write(uberblock)


def ceph_bluestore(image: Path) -> None:
    """A Ceph BlueStore OSD's block device: its label starts with "bluestore block device" and the uuid."""
    with open(image, "r+b") as f:
        f.write(b"bluestore block device\n" + str(uuid.UUID(int=0x10AB)).encode() + b"\n")


# ----------------------------------------------------------------------------------------------- corpus


@dataclass(frozen=True)
class Case:
    name: str
    size: int
    expect: str  # what libblkid must name: a TYPE, or "<PTTYPE> partition table"
    build: Callable[[Path], None]  # makes the signature on the image file (or on the loop device: on_device)
    tool: str | None = None
    on_device: bool = False
    label: str | None = None  # the LABEL libblkid must read


def _mkfs(*cmd: str) -> Callable[[Path], None]:
    def build(target: Path) -> None:
        run(*cmd, target)

    return build


def _from_tree(kind: str) -> Callable[[Path], None]:
    """cramfs, squashfs and erofs images are built from a directory, then padded to the device size."""

    def build(image: Path) -> None:
        size = image.stat().st_size
        tree = image.parent / f"{kind}-tree"
        tree.mkdir()
        (tree / "hello.txt").write_text("someone's data\n")
        image.unlink()
        if kind == "cramfs":
            run("mkfs.cramfs", tree, image)
        elif kind == "squashfs":
            run("mksquashfs", tree, image, "-quiet", "-noappend")
        else:
            run("mkfs.erofs", image, tree)
        with open(image, "r+b") as f:
            f.truncate(size)

    return build


def _luks(image: Path) -> None:
    key = image.parent / "luks.key"
    key.write_text("not-a-secret")
    run(
        "cryptsetup",
        "luksFormat",
        "--batch-mode",
        "--type",
        "luks2",
        "--pbkdf",
        "pbkdf2",
        "--pbkdf-force-iterations",
        "1000",
        "--key-file",
        key,
        image,
    )


def _pvcreate(dev: Path) -> None:
    only_this = f'devices {{ filter=["a|^{dev}$|", "r|.*|"] use_devicesfile=0 }}'
    run(
        "pvcreate",
        "--config",
        only_this,
        "-ff",
        "-y",
        dev,
        env={**os.environ, "LVM_SUPPRESS_FD_WARNINGS": "1"},
    )


def _dos_table(image: Path) -> None:
    """One Linux partition in an MBR (libblkid's "dos"), written by hand as fdisk would."""
    entry = struct.pack("<B3sB3sII", 0x00, b"\x00\x02\x00", 0x83, b"\xff\xff\xff", 2048, 16 * 2048 - 2048)
    with open(image, "r+b") as f:
        f.seek(446)
        f.write(entry + bytes(48) + b"\x55\xaa")


def _ambivalent(image: Path) -> None:
    """vfat with an ext2 superblock in its reserved sectors: `blkid -p` gives up ("ambivalent result") and
    shows nothing; both are someone's data."""
    run("mkfs.vfat", image)
    other = image.parent / "ext2-donor.img"
    sparse(other, 16 * MiB)
    run("mkfs.ext2", "-q", "-F", other)
    with open(other, "rb") as src, open(image, "r+b") as dst:
        src.seek(1024)
        dst.seek(1024)
        dst.write(src.read(1024))


def _nilfs2_damaged(image: Path) -> None:
    """nilfs2 with a flipped byte in both superblocks (the first at 1 KiB, the second 4 KiB before the end):
    their checksums fail, `blkid -p` shows nothing, and it is still someone's file system."""
    run("mkfs.nilfs2", "-q", "-f", "-B", "256", "-L", "damaged", image)
    with open(image, "r+b") as f:
        for sb in (1024, image.stat().st_size - 4096):
            f.seek(sb + 0x90)
            byte = f.read(1)[0]
            f.seek(sb + 0x90)
            f.write(bytes([byte ^ 0xFF]))


CORPUS = [
    Case("ext2", 16 * MiB, "ext2", _mkfs("mkfs.ext2", "-q", "-F"), "mkfs.ext2"),
    Case("ext3", 16 * MiB, "ext3", _mkfs("mkfs.ext3", "-q", "-F"), "mkfs.ext3"),
    Case(
        "ext4", 16 * MiB, "ext4", _mkfs("mkfs.ext4", "-q", "-F", "-L", "corpus"), "mkfs.ext4", label="corpus"
    ),
    Case("xfs", 300 * MiB, "xfs", _mkfs("mkfs.xfs", "-q", "-f"), "mkfs.xfs"),
    Case("btrfs", 128 * MiB, "btrfs", _mkfs("mkfs.btrfs", "-q", "-f"), "mkfs.btrfs"),
    Case("vfat", 16 * MiB, "vfat", _mkfs("mkfs.vfat"), "mkfs.vfat"),
    Case("exfat", 16 * MiB, "exfat", _mkfs("mkfs.exfat"), "mkfs.exfat"),
    Case("ntfs", 16 * MiB, "ntfs", _mkfs("mkntfs", "-q", "-F", "-f"), "mkntfs"),
    Case("jfs", 16 * MiB, "jfs", _mkfs("mkfs.jfs", "-q"), "mkfs.jfs"),
    Case("udf", 16 * MiB, "udf", _mkfs("mkudffs", "--label=corpus"), "mkudffs", label="corpus"),
    Case("nilfs2", 32 * MiB, "nilfs2", _mkfs("mkfs.nilfs2", "-q", "-f", "-B", "256"), "mkfs.nilfs2"),
    Case("f2fs", 64 * MiB, "f2fs", _mkfs("mkfs.f2fs", "-q", "-f"), "mkfs.f2fs"),
    Case("minix", 16 * MiB, "minix", _mkfs("mkfs.minix"), "mkfs.minix"),
    Case("bfs", 16 * MiB, "bfs", _mkfs("mkfs.bfs"), "mkfs.bfs"),
    Case("reiserfs", 64 * MiB, "reiserfs", _mkfs("mkfs.reiserfs", "-q", "-f"), "mkfs.reiserfs"),
    Case("cramfs", 16 * MiB, "cramfs", _from_tree("cramfs"), "mkfs.cramfs"),
    Case("squashfs", 16 * MiB, "squashfs", _from_tree("squashfs"), "mksquashfs"),
    Case("erofs", 16 * MiB, "erofs", _from_tree("erofs"), "mkfs.erofs"),
    Case("swap", 16 * MiB, "swap", _mkfs("mkswap"), "mkswap"),
    Case("luks2", 32 * MiB, "crypto_LUKS", _luks, "cryptsetup"),
    Case("lvm2 pv", 16 * MiB, "LVM2_member", _pvcreate, "pvcreate", on_device=True),
    Case("dos partition table", 16 * MiB, "dos partition table", _dos_table),
    Case("md raid1 1.2 (synthesised)", 16 * MiB, "linux_raid_member", md12_superblock, label="iolab:corpus"),
    Case("zfs_member (synthesised)", 64 * MiB, "zfs_member", zfs_member, label="iolabpool"),
    Case("ceph_bluestore (synthesised)", 16 * MiB, "ceph_bluestore", ceph_bluestore),
    Case("vfat+ext2 ambivalent", 16 * MiB, "ext2", _ambivalent, "mkfs.vfat"),
    Case(
        "nilfs2, both superblocks damaged",
        32 * MiB,
        "nilfs2",
        _nilfs2_damaged,
        "mkfs.nilfs2",
        label="damaged",
    ),
]


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_corpus_signature_refused_then_allowed(case: Case, direct_dir: Path) -> None:
    need_root("create loop devices")
    if case.tool == "mkntfs":
        need(shutil.which("mkntfs") is not None, "mkntfs (Debian's ntfs-3g) is not installed")
    if case.tool:
        need_tool(case.tool)
    image = sparse(direct_dir / f"{case.name.split()[0]}.img", case.size)
    if not case.on_device:
        case.build(image)
    with attached(image) as dev:
        if case.on_device:
            case.build(Path(dev))
        probe = probe_signatures(dev)
        names = [s.name for s in probe.signatures]
        assert probe.prober == f"libblkid {blkid.version()}"
        assert case.expect in names, names
        if case.label:
            assert case.label in [s.label for s in probe.signatures], probe.signatures
        stderr = refused(case.name, dev, codes={"IOL-SAFE-004"}, says=(case.expect, "prober=[libblkid 2."))
        assert "Traceback" not in stderr
        assert allowed(case.name, dev, f"--allow-destroy={dev}") == ["IOL-SAFE-004"]


def test_corpus_ambivalent_counts_as_data(direct_dir: Path) -> None:
    image = sparse(direct_dir / "amb.img", 16 * MiB)
    need_tool("mkfs.vfat")
    _ambivalent(image)
    with attached(image) as dev:
        probe = probe_signatures(dev)
        assert probe.ambivalent
        assert {"vfat", "ext2"} <= {s.name for s in probe.signatures}


def test_corpus_bad_checksum_counts_as_data(direct_dir: Path) -> None:
    need_tool("mkfs.nilfs2")
    image = sparse(direct_dir / "nilfs2.img", 32 * MiB)
    _nilfs2_damaged(image)
    assert subprocess.run(["blkid", "-p", str(image)], capture_output=True).returncode == 2  # blkid: nothing
    with attached(image) as dev:
        sigs = probe_signatures(dev).signatures
        assert [(s.name, s.bad_checksum) for s in sigs] == [("nilfs2", True)]


def test_corpus_blank_device_is_written_without_override(direct_dir: Path) -> None:
    """The control: nothing on it, nothing stacked on it, so the gate lets the job write."""
    with attached(sparse(direct_dir / "blank.img", 16 * MiB)) as dev:
        assert probe_signatures(dev).signatures == ()
        assert allowed("blank device", dev) == []


def test_corpus_table_fallback(direct_dir: Path) -> None:
    """IOLAB_SIGNATURE_PROBER=table: the gate's own table, named as the prober in the finding."""
    image = sparse(direct_dir / "ext4.img", 16 * MiB)
    mkfs_ext4(image)
    with attached(image) as dev:
        probe = probe_signatures(dev, prober="table")
        assert probe.prober == "iolab table" and [str(s) for s in probe.signatures] == ["ext4@1080"]
        refused(
            "ext4, table prober",
            dev,
            codes={"IOL-SAFE-004"},
            says=("prober=[iolab table]",),
            env={"IOLAB_SIGNATURE_PROBER": "table"},
        )


def test_table_fallback_when_libblkid_cannot_load(direct_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    image = sparse(direct_dir / "ext4.img", 16 * MiB)
    mkfs_ext4(image)

    def missing() -> None:
        raise blkid.BlkidUnavailable("cannot load libblkid.so.1: (test) not here")

    monkeypatch.setattr(blkid, "_load", missing)
    probe = probe_signatures(str(image))
    assert probe.prober.startswith("iolab table (libblkid unavailable: cannot load libblkid.so.1")
    assert [str(s) for s in probe.signatures] == ["ext4@1080"]


# ---------------------------------------------------------------------------------------- stacked devices


def test_stacked_mounted_ext4_at_an_offset_of_a_zram(direct_dir: Path) -> None:
    """`losetup -o 1M /dev/zramN`, ext4 on that loop device, mounted: writing /dev/zramN destroys it."""
    need_tool("e2fsck")
    with hot_zram("64M") as zram, attached(Path(zram), "--offset", str(MiB)) as loop:
        mkfs_ext4_settled(loop)
        with mounted(loop, direct_dir / "mnt") as mnt:
            (mnt / "data.txt").write_text("someone's data\n")
            run("sync")
            chain = f"{loop} (offset 1048576) on {zram}"
            refused(
                "ext4 mounted on a loop at 1 MiB of a zram",
                zram,
                codes={"IOL-SAFE-001", "IOL-SAFE-002", "IOL-SAFE-004"},
                says=(f"{chain} holds the ext4 file system at {mnt}", f"ext4 on {chain}"),
            )
        assert subprocess.run(["e2fsck", "-fn", loop], capture_output=True).returncode == 0
        # unmounted, the loop device and its file system are still data on the zram
        refused("ext4 on a loop at 1 MiB of a zram (unmounted)", zram, codes={"IOL-SAFE-002", "IOL-SAFE-004"})
        infos = allowed("ext4 on a loop at 1 MiB of a zram (unmounted)", zram, f"--allow-destroy={zram}")
        assert infos == ["IOL-SAFE-002", "IOL-SAFE-004"]


def test_stacked_loop_on_a_loop_on_a_zram(direct_dir: Path) -> None:
    with (
        hot_zram("64M") as zram,
        attached(Path(zram), "--offset", str(MiB)) as lower,
        attached(Path(lower), "--offset", str(MiB)) as upper,
    ):
        mkfs_ext4_settled(upper)
        with mounted(upper, direct_dir / "mnt") as mnt:
            chain = f"{upper} (offset 1048576) on {lower} (offset 1048576) on {zram}"
            refused(
                "ext4 mounted on a loop on a loop on a zram",
                zram,
                codes={"IOL-SAFE-001", "IOL-SAFE-002", "IOL-SAFE-004"},
                says=(f"{chain} holds the ext4 file system at {mnt}",),
            )
            refused(
                "ext4 mounted on a loop on a loop on a zram", lower, codes={"IOL-SAFE-001", "IOL-SAFE-004"}
            )


def test_stacked_loop_on_a_loop_on_a_file(direct_dir: Path) -> None:
    image = sparse(direct_dir / "base.img", 32 * MiB)
    with attached(image) as lower, attached(Path(lower), "--offset", str(MiB)) as upper:
        mkfs_ext4(upper)
        refused(
            "ext4 on a loop on a loop on a file",
            lower,
            codes={"IOL-SAFE-002", "IOL-SAFE-004"},
            says=(f"ext4 on {upper} (offset 1048576) on {lower}",),
        )
        refused(
            "ext4 on a loop on a loop on a file",
            image,
            codes={"IOL-SAFE-006"},
            says=(f"{upper} (offset 1048576) on {lower} on {image}",),
        )
        allowed("ext4 on a loop on a loop on a file", lower, f"--allow-destroy={lower}")


def test_stacked_swap_on_a_loop_on_a_loop_on_a_file_is_never_overridable(direct_dir: Path) -> None:
    image = sparse(direct_dir / "swap-base.img", 32 * MiB)
    with attached(image) as lower, attached(Path(lower)) as upper:
        run("mkswap", upper)
        with swapped_on(upper):
            says = (f"under active swap: {upper} on {lower} on {image}",)
            refused(
                "swap on a loop on a loop on a file",
                image,
                f"--allow-destroy={image}",
                codes={"IOL-SAFE-007"},
                says=says,
            )
            refused(
                "swap on a loop on a loop on a file",
                lower,
                f"--allow-destroy={lower}",
                codes={"IOL-SAFE-003"},
                says=(f"under active swap: {upper} on {lower}",),
            )


def test_stacked_swap_file_in_a_file_system_on_the_device(direct_dir: Path) -> None:
    image = sparse(direct_dir / "fs.img", 64 * MiB)
    mkfs_ext4_settled(image)
    with attached(image) as dev, mounted(dev, direct_dir / "mnt") as mnt:
        swapfile = mnt / "swapfile"
        with open(swapfile, "wb") as f:
            f.write(bytes(8 * MiB))
        swapfile.chmod(0o600)
        run("mkswap", swapfile)
        with swapped_on(swapfile):
            refused(
                "swap file in the ext4 on the device",
                dev,
                f"--allow-destroy={dev}",
                codes={"IOL-SAFE-003"},
                says=(f"under active swap: {swapfile} in the file system at {mnt} on {dev}",),
            )


@contextmanager
def overlay(base: Path, lower_file: str = "", upper_file: str = "") -> Iterator[tuple[Path, Path, Path]]:
    """An overlayfs in temp dirs: (lower, upper, merged), unmounted afterwards. The layers' files are made
    before the mount (changing a layer under a mounted overlay is undefined)."""
    need_root("mount overlayfs")
    lower, upper, work, merged = (base / n for n in ("lower", "upper", "work", "merged"))
    for d in (lower, upper, work, merged):
        d.mkdir(parents=True)
    if lower_file:
        sparse(lower / lower_file, 16 * MiB)
    if upper_file:
        sparse(upper / upper_file, 16 * MiB)
    opts = f"lowerdir={lower},upperdir={upper},workdir={work}"
    r = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", opts, str(merged)], capture_output=True, text=True
    )
    need(r.returncode == 0, f"mount -t overlay failed: {r.stderr.strip()}")
    try:
        yield lower, upper, merged
    finally:
        if subprocess.run(["umount", str(merged)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(merged)], capture_output=True)


def test_overlay_loop_on_merged_path_write_upper(direct_dir: Path) -> None:
    with (
        overlay(direct_dir / "ovl", upper_file="disk.img") as (_lower, upper, merged),
        attached(merged / "disk.img") as dev,
    ):
        refused(
            "loop on the overlay's merged path, write the upper path",
            upper / "disk.img",
            codes={"IOL-SAFE-006"},
            says=(f"backing file of {dev}",),
        )
        allowed(
            "loop on the overlay's merged path, write the upper path",
            upper / "disk.img",
            f"--allow-destroy={merged / 'disk.img'}",
        )


def test_overlay_loop_on_upper_path_write_merged(direct_dir: Path) -> None:
    with (
        overlay(direct_dir / "ovl", upper_file="disk.img") as (_lower, upper, merged),
        attached(upper / "disk.img") as dev,
    ):
        refused(
            "loop on the overlay's upper path, write the merged path",
            merged / "disk.img",
            codes={"IOL-SAFE-006"},
            says=(f"backing file of {dev}",),
        )


def test_overlay_loop_on_lower_path_write_merged(direct_dir: Path) -> None:
    """The file only in the lower layer: the merged path shows that file's data."""
    with (
        overlay(direct_dir / "ovl", lower_file="disk.img") as (lower, _upper, merged),
        attached(lower / "disk.img", "--read-only") as dev,
    ):
        refused(
            "loop on the overlay's lower path, write the merged path",
            merged / "disk.img",
            codes={"IOL-SAFE-006"},
            says=(f"backing file of {dev}",),
        )


def test_stacked_loop_on_a_file_in_a_lazily_unmounted_file_system(direct_dir: Path) -> None:
    """`umount -l` hides the mount, but a loop device still holds a file in the file system on the device."""
    image = sparse(direct_dir / "fs.img", 32 * MiB)
    mkfs_ext4_settled(image)
    mnt = direct_dir / "mnt"
    with attached(image) as dev:
        with mounted(dev, mnt):
            inner = sparse(mnt / "inner.img", 8 * MiB)
        # read-only from here: nothing but the gate's runs could change the device while it is hashed
        run("mount", "-o", "ro", dev, mnt)
        try:
            with attached(inner, "--read-only") as inner_loop:
                run("umount", "-l", mnt)
                assert str(mnt) not in Path("/proc/self/mountinfo").read_text()
                # the kernel now names the backing file from the detached mount's root
                says = (f"{inner_loop} on /{inner.name} (in a file system without a mount) on {dev}",)
                case = "loop on a file in a lazily unmounted ext4 on the device"
                refused(case, dev, codes={"IOL-SAFE-002", "IOL-SAFE-004"}, says=says)
                # allowed, the file system that is still alive holds the device: O_EXCL fails
                refused(case, dev, f"--allow-destroy={dev}", codes={"IOL-SAFE-005"})
        finally:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_probe_through_the_engines_fd(direct_dir: Path) -> None:
    """The gate probes the device the engine has open (O_DIRECT, any offset), not a path looked up again."""
    image = sparse(direct_dir / "ext4.img", 16 * MiB)
    mkfs_ext4(image)
    blank = sparse(direct_dir / "blank.img", 16 * MiB)
    with attached(image) as dev, attached(blank) as other:
        fd = os.open(dev, os.O_RDWR | os.O_DIRECT | os.O_CLOEXEC)
        try:
            os.lseek(fd, 4096, os.SEEK_SET)
            probe = probe_signatures(other, fd)  # the path names another device: the fd decides
            assert [str(s) for s in probe.signatures] == ["ext4@1080"]
            assert os.lseek(fd, 0, os.SEEK_CUR) == 4096
            assert [str(s) for s in probe_signatures(dev, fd, prober="table").signatures] == ["ext4@1080"]
        finally:
            os.close(fd)


def test_check_fd_probes_the_fd_not_the_path(direct_dir: Path) -> None:
    """check_fd(): the signatures are those of the device open at the fd, even when the path now names a blank
    device (a symlink swapped after the open)."""
    image = sparse(direct_dir / "ext4.img", 16 * MiB)
    mkfs_ext4(image)
    with attached(image) as dev, attached(sparse(direct_dir / "blank.img", 16 * MiB)) as blank:
        fd = os.open(dev, os.O_RDWR | os.O_DIRECT | os.O_CLOEXEC)
        try:
            found = check_fd(fd, blank, users=["w"])
        finally:
            os.close(fd)
        sig = [f for f in found if f.code == "IOL-SAFE-004"]
        assert sig and sig[0].severity == "error" and sig[0].evidence["signatures"] == ["ext4@1080"]
