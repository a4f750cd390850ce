"""Typed stub of the C core, ``iolab._core`` (built from ``csrc/``; contract: docs/DESIGN.md section 3)."""

from collections.abc import Sequence
from typing import Any, Final, final

from iolab.analysis.core_result import CoreResult, RawResult

HIST_SUB_BITS: Final[int]
"""Sub-bucket bits S of the latency histogram (7)."""
HIST_BUCKETS: Final[int]
"""Number of histogram buckets: 2**S + (40 - S) * 2**S (4352)."""
CONFIG_SIZE: Final[int]
"""sizeof(struct iol_config): the length ``Job`` expects its config bytes to have."""
CONFIG_MAGIC: Final[int]
"""IOL_CONFIG_MAGIC the core was built with."""
_TRACE_RECORD_SIZE: Final[int]
"""Test hook: bytes per trace record (struct ``"=QIHBxQQ"``: offset, len, file, ddir, first and last 8 bytes
of the data)."""

def config_layout() -> list[tuple[str, int, int]]:
    """``(field name, offsetof, sizeof)`` for every field of struct iol_config, in order."""

def hist_index(v: int, /) -> int:
    """Histogram bucket of value ``v`` (``0 <= v < 2**64``; OverflowError otherwise)."""

def _poll_simulate(
    mode: int,
    max_ns: int,
    grow: int,
    shrink: int,
    arrivals: Sequence[int],
    tick_ns: int = 100,
    wake_ns: int = 5000,
) -> tuple[list[tuple[int, int, int, int]], dict[str, Any]]:
    """Test hook: the C completion wait (poll, block, adjust the window) against a scripted clock.

    Wait i's completion arrives ``arrivals[i]`` ns after the wait starts; every clock read costs
    ``tick_ns``, a blocking wakeup ``wake_ns``. Returns ``[(window_before, block_ns, window_after, hit)]``
    per wait and the poll counters (as ``CoreResult.poll``, ``CorePoll`` there)."""

@final
class Job:
    """One benchmark job.

    ``config``: ``iolab.engine.config.pack_config()`` output. ``files``: ``(fd, region_offset,
    region_size[, file_size])`` per file; ``file_size`` is fio's real_file_size, the size the job's
    setup left (0 or left out: the file's size now). ``engine_fds``: more descriptors for the engine
    (ioengine=nbd: connections to the export besides the one of file 0), at most 64. The caller opens
    the fds (with O_DIRECT if wanted) and closes them after the job. ValueError for a bad config or
    file list, TypeError for wrongly typed ``files``.
    """

    def __init__(
        self,
        config: bytes,
        files: Sequence[tuple[int, int, int] | tuple[int, int, int, int]],
        engine_fds: Sequence[int] | None = None,
    ) -> None: ...
    def run(self) -> None:
        """Run to the end, a stop() or the first I/O error; releases the GIL. RuntimeError if called twice."""
    def stop(self) -> None:
        """Thread-safe; run() returns soon after (after the I/O in progress) and results stay valid."""
    def progress(self) -> tuple[int, int, int, int, int, int, int]:
        """``(read_ios, write_ios, read_bytes, write_bytes, phase, trim_ios, trim_bytes)``; phase 0 setup,
        1 ramp, 2 measuring, 3 done. The counters restart from 0 when the ramp ends."""
    def result(self) -> CoreResult:
        """The typed result, built by ``iolab.analysis.core_result``, the one declaration of its shape
        (DESIGN.md section 3 shows it). RuntimeError until run() has returned."""
    def raw_result(self) -> RawResult:
        """The same result as the plain mapping the core builds (``CoreResult.to_core()``'s form)."""
    def thread_id(self) -> int:
        """Kernel thread id of the thread inside run() (0 before run() started)."""
    def _set_trace(self, buffer: bytearray | memoryview | None, /) -> None:
        """Test hook: record every counted I/O of the measured phase into ``buffer`` (writable,
        8-byte aligned, ``_TRACE_RECORD_SIZE`` bytes a record) until it is full; before run()."""
    def _trace_count(self) -> int:
        """Records written by the test hook."""

def checksum(kind: str, data: bytes | bytearray | memoryview, /) -> bytes:
    """Test hook: the checksum of ``data``. ``kind``: crc32c, md5, sha1, sha256, sha512, xxhash (the bytes fio
    3.33 stores in its verify header: sizes 4, 16, 20, 64, 128, 4), sha1-std, sha256-std, sha512-std (standard
    digests), crc32c-table, crc32c-sse42 (one CRC32C path each; the latter only where ``crc32c_hw()``).
    ValueError for any other kind."""

def crc32c_hw() -> bool:
    """True when crc32c runs on the SSE4.2 crc32 instruction."""
