"""Storage faults injected by `iolab serve` are caught by `iolab run --verify` through the nbd engine.

Each test serves an image with one fault filter (or adds it at run time), writes and verifies through
ioengine=nbd in a subprocess (what a user types), and holds the verifier's report against the server's
own log of what it did: the same offsets, the right kind of failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from iolab.nbd import serve
from iolab.nbd.api import NBDServer

BS = 64 << 10
SIZE = 4 << 20  # what the job writes: the first 4 MiB of the export
EXPORT = 16 << 20


def image_with_old_data(tmp_path: Path) -> Path:
    """An image whose every byte is old data (random, no file system signature to trip the gate): a lost
    or torn write leaves this behind, which must not pass as the new block."""
    path = tmp_path / "disk.img"
    with open(path, "wb") as fh:
        fh.write(os.urandom(EXPORT))
    return path


@pytest.fixture
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[NBDServer]:
    filters: list[str] = getattr(request, "param", [])
    with serve(image_with_old_data(tmp_path), filters=filters) as srv:
        yield srv


def run_verify(uri: str, *extra: str, keep_going: bool = True) -> tuple[int, dict[str, Any], str]:
    """Write SIZE through the nbd engine with verify=crc32c and read it all back (iolab keeps the
    environment: the sanitizer preload of `make test-sanitize` reaches its C core). keep_going:
    continue_on_error=verify, so every bad block is reported, not only the first; as in fio, the job's
    error is then EILSEQ but the exit status 0."""
    proc = subprocess.run(
        [
            sys.executable, "-m", "iolab", "run", "--name=v", "--ioengine=nbd", f"--uri={uri}",
            "--rw=write", f"--bs={BS}", f"--size={SIZE}", "--iodepth=16", "--verify=crc32c",
            "--verify_state_save=0", "--output-format=json", *extra,
            *(["--continue_on_error=verify"] if keep_going else []),
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def caught(rc: int, doc: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """The job failed verify as fio's does under continue_on_error=verify; its bad blocks."""
    assert rc == 0 and doc["jobs"][0]["error"] == 84, doc["jobs"][0]
    return failures(doc)


def failures(doc: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """The verifier's bad blocks by block offset."""
    verify = doc["jobs"][0]["iolab"]["verify"]
    return {f["block_offset"]: f for f in verify["failed"]}


def only_log(srv: NBDServer) -> list[dict[str, Any]]:
    (fault,) = srv.faults()
    assert fault["injected"] == len(fault["log"]) >= 1
    return fault["log"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("server", [["lost-write:offset=1M,length=1,once=on"]], indirect=True)
def test_lost_write_is_caught_where_it_was_lost(server: NBDServer) -> None:
    rc, doc, err = run_verify(server.uri, keep_going=False)
    (entry,) = only_log(server)
    assert (entry["fault"], entry["offset"], entry["length"]) == ("lost-write", 1 << 20, BS)
    assert rc == 1 and doc["jobs"][0]["error"] == 84, err
    bad = failures(doc)
    assert list(bad) == [1 << 20], bad
    assert bad[1 << 20]["verdict"] == "corrupted" and bad[1 << 20]["kind"] == "bad magic header"
    assert f"offset {1 << 20}" in err


def test_lost_write_over_stale_blocks_is_caught(server: NBDServer) -> None:
    """The subtle lost write: the block still holds an earlier, valid block of the same layout (a previous
    run with another seed). Magic, length and offset are right; only the seed (and so the checksum of the
    new data) tells the stale block from the new one."""
    rc, doc, err = run_verify(server.uri, "--randseed=1")
    assert rc == 0, err
    server.fault_add("lost-write:offset=2M,length=1,once=on,id=lost")
    rc, doc, err = run_verify(server.uri, "--randseed=2")
    (entry,) = server.fault_log("lost")
    assert (entry["offset"], entry["length"]) == (2 << 20, BS)
    bad = caught(rc, doc)
    assert list(bad) == [2 << 20], bad
    assert bad[2 << 20]["verdict"] == "corrupted"


@pytest.mark.parametrize("server", [["torn-write:keep=512,offset=512k,length=1,once=on"]], indirect=True)
def test_torn_write_is_caught_where_it_tore(server: NBDServer) -> None:
    """Only the first sector lands: the new header is there, the rest is old, so the checksum fails."""
    rc, doc, err = run_verify(server.uri)
    (entry,) = only_log(server)
    assert entry["landed"] == {"offset": 512 << 10, "length": 512}
    assert entry["lost"] == {"offset": (512 << 10) + 512, "length": BS - 512}
    bad = caught(rc, doc)
    assert list(bad) == [512 << 10], bad
    assert bad[512 << 10]["kind"] == "checksum mismatch" and bad[512 << 10]["verdict"] == "corrupted"
    assert f"crc32c: verify failed at file {server.uri} offset {512 << 10}, length {BS}" in err


@pytest.mark.parametrize(
    "server", [["misdirected-write:shift=-64k,offset=1M,length=1,once=on"]], indirect=True
)
def test_misdirected_write_is_caught_at_both_ends(server: NBDServer) -> None:
    """The block meant for 1M lands on the block before it (already written): at 1M the old data stays,
    and at 1M-64k a valid block says it belongs at 1M."""
    rc, doc, err = run_verify(server.uri)
    (entry,) = only_log(server)
    assert (entry["offset"], entry["target"]) == (1 << 20, (1 << 20) - BS)
    bad = caught(rc, doc)
    assert sorted(bad) == [(1 << 20) - BS, 1 << 20], bad
    assert bad[(1 << 20) - BS]["kind"] == "bad header offset"
    assert bad[1 << 20]["kind"] == "bad magic header"
    assert "bad header offset" in err


@pytest.mark.parametrize(
    "server", [["bit-rot:ops=read,offset=3M,length=1,bits=1,seed=5,once=on"]], indirect=True
)
def test_bit_rot_is_caught_on_the_read_it_hit(server: NBDServer) -> None:
    rc, doc, err = run_verify(server.uri)
    (entry,) = only_log(server)
    (flip,) = entry["bits"]
    assert entry["offset"] == 3 << 20 and 3 << 20 <= flip["offset"] < (3 << 20) + BS
    bad = caught(rc, doc)
    assert list(bad) == [3 << 20], bad
    assert bad[3 << 20]["verdict"] == "corrupted"
    # the image itself is clean (persist=off): the same verify passes once the fault is spent
    rc, doc, err = run_verify(server.uri, "--verify_only")
    assert rc == 0, err


def test_no_fault_no_failure(server: NBDServer) -> None:
    """The control: the same job through the same server without a fault passes, so the failures above
    come from the faults."""
    rc, doc, err = run_verify(server.uri)
    assert rc == 0, err
    verify = doc["jobs"][0]["iolab"]["verify"]
    assert verify["failures"] == 0 and verify["reads"] == SIZE // BS
