"""Checksums of the C core (csrc/checksum*.c) against independent oracles.

Standard digests against hashlib, CRC32C against RFC 3720's vectors, XXH32 against the xxhash package,
the two CRC32C paths against each other, and every verify kind against the header fio 3.33 itself writes
(fio stores some of them in quirky forms; the C comments say which).
"""

from __future__ import annotations

import hashlib
import random
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from conftest import need
from iolab import _core

VERIFY_KINDS = ("crc32c", "md5", "sha1", "sha256", "sha512", "xxhash")
DIGEST_LEN = {"crc32c": 4, "xxhash": 4, "md5": 16, "sha1": 20, "sha256": 64, "sha512": 128}
# Lengths around the block boundaries of every algorithm (64 and 128 bytes, padding at 55/56 and 111/112).
EDGE_LENGTHS = [0, 1, 3, 4, 15, 16, 17, 55, 56, 57, 63, 64, 65, 111, 112, 119, 120, 127, 128, 129, 255, 256]


def random_lengths(count: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return EDGE_LENGTHS + [rng.randrange(0, 10001) for _ in range(count)]


def unaligned(data: bytes, shift: int) -> memoryview:
    """data at an address shift bytes past an 8-byte boundary (bytearray storage is 8+ aligned)."""
    store = bytearray(len(data) + 16)
    store[shift : shift + len(data)] = data
    return memoryview(store)[shift : shift + len(data)]


def crc32c_std(data: bytes | memoryview) -> int:
    """The RFC 3720 CRC32C: fio's value (no final inversion) inverted."""
    (raw,) = struct.unpack("<I", _core.checksum("crc32c", data))
    return raw ^ 0xFFFFFFFF


@pytest.mark.parametrize(
    ("name", "oracle"),
    [
        ("md5", hashlib.md5),
        ("sha1-std", hashlib.sha1),
        ("sha256-std", hashlib.sha256),
        ("sha512-std", hashlib.sha512),
    ],
)
def test_digests_match_hashlib(name: str, oracle: type) -> None:
    rng = random.Random(name)
    for n in random_lengths(60, seed=len(name)):
        data = rng.randbytes(n)
        want = oracle(data).digest()
        assert _core.checksum(name, data) == want, (name, n)
        assert _core.checksum(name, unaligned(data, 1 + n % 7)) == want, (name, n, "unaligned")


def test_rfc3720_crc32c_vectors() -> None:
    # RFC 3720 appendix B.4 (values as little-endian integers) and the common "123456789" check value.
    assert crc32c_std(bytes(32)) == 0x8A9136AA
    assert crc32c_std(b"\xff" * 32) == 0x62A8AB43
    assert crc32c_std(bytes(range(32))) == 0x46DD794E
    assert crc32c_std(bytes(range(31, -1, -1))) == 0x113FDB5C
    assert crc32c_std(b"123456789") == 0xE3069283
    # fio's form is stored as a host-order (little-endian) word without the final inversion
    assert _core.checksum("crc32c", b"") == b"\xff\xff\xff\xff"


def test_crc32c_paths_agree() -> None:
    need(_core.crc32c_hw(), "this CPU has no SSE4.2: only the table path exists")
    rng = random.Random(32)
    for n in random_lengths(200, seed=5):
        data = rng.randbytes(n)
        table = _core.checksum("crc32c-table", data)
        assert _core.checksum("crc32c-sse42", data) == table, n
        shifted = unaligned(data, 1 + n % 7)
        assert _core.checksum("crc32c-sse42", shifted) == table, (n, "unaligned")
        assert _core.checksum("crc32c", shifted) == table


def test_xxh32_matches_xxhash_package() -> None:
    try:
        import xxhash
    except ImportError:
        need(False, "the xxhash package (dev extra) is the XXH32 oracle")
    rng = random.Random(1)
    for n in random_lengths(100, seed=9):
        data = rng.randbytes(n)
        want = xxhash.xxh32_intdigest(data, seed=1).to_bytes(4, "little")
        assert _core.checksum("xxhash", data) == want, n
        assert _core.checksum("xxhash", unaligned(data, 3)) == want, n


def test_digest_lengths_and_fio_forms_are_related_to_the_standard() -> None:
    rng = random.Random(7)
    for n in (0, 55, 56, 64, 200, 3928):
        data = rng.randbytes(n)
        for kind in VERIFY_KINDS:
            assert len(_core.checksum(kind, data)) == DIGEST_LEN[kind]
        std = hashlib.sha1(data).digest()
        # fio keeps sha1's state words in host (little-endian) order
        swapped = b"".join(std[i : i + 4][::-1] for i in range(0, 20, 4))
        assert _core.checksum("sha1", data) == swapped
        # fio's sha512 stores data bytes, no hash: last n % 128 bytes, then the first block's rest
        if n >= 128:
            tail = n % 128
            assert _core.checksum("sha512", data) == data[n - tail :] + data[tail:128]


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown or unavailable kind sha3"):
        _core.checksum("sha3", b"x")


# fio's struct verify_header: magic, type, len, seed, offset, sec, nsec, thread, numberio, crc32
VERIFY_HEADER = struct.Struct("<HHIQQIIHHI")


@pytest.mark.parametrize("kind", VERIFY_KINDS)
@pytest.mark.parametrize("bs", [512, 4096, 8192 + 512])
def test_fio_written_headers_match(kind: str, bs: int, tmp_path: Path) -> None:
    """fio 3.33 writes blocks with verify=KIND; our checksum of each block's data equals its header field."""
    need(shutil.which("fio") is not None, "fio is not installed")
    target = tmp_path / "data"
    size = bs * 8
    subprocess.run(
        ["fio", "--name=w", f"--filename={target}", f"--size={size}", f"--bs={bs}", "--rw=write",
         f"--verify={kind}", "--do_verify=0", "--ioengine=psync", "--randrepeat=0", "--output=/dev/null"],
        check=True, capture_output=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    image = target.read_bytes()
    assert len(image) == size
    for off in range(0, size, bs):
        block = image[off : off + bs]
        fields = VERIFY_HEADER.unpack_from(block)
        assert fields[0] == 0xACCA and fields[2] == bs, fields  # fio's header magic and block length
        # the header's own crc32 is fio_crc32c() over the bytes before it
        assert _core.checksum("crc32c", block[:36]) == block[36:40]
        field_end = VERIFY_HEADER.size + DIGEST_LEN[kind]
        stored = block[VERIFY_HEADER.size : field_end]
        assert _core.checksum(kind, block[field_end:]) == stored, (kind, bs, off)
