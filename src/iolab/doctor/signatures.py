"""The gate's own table of partition-table and file-system signatures (magic bytes at known offsets).

It reads only a device's first HEAD_BYTES and last 128 KiB, so it also works where nothing but those bytes
can be had: the fallback prober of block devices when libblkid.so.1 cannot be loaded (safety.py), and the
head and tail of an NBD export read over the network (nbd_gate.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["HEAD_BYTES", "Signature", "signatures_in"]

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
    offset: int | None  # of the magic; None when the prober does not say
    usage: str | None = None  # libblkid's USAGE: filesystem, raid, crypto, other (a partition table: None)
    label: str | None = None
    uuid: str | None = None
    #: libblkid found it with a bad checksum: a damaged file system, still someone's data
    bad_checksum: bool = False

    def __str__(self) -> str:
        return self.name if self.offset is None else f"{self.name}@{self.offset}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.name, "offset": self.offset}
        extra = (("usage", self.usage), ("label", self.label), ("uuid", self.uuid))
        out.update({k: v for k, v in extra if v})
        if self.bad_checksum:
            out["bad_checksum"] = True
        return out


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
