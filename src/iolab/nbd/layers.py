"""The layer stack: a backend at the bottom, filters above it, nbdkit-style.

A filter overrides only the operations it changes; every other call falls through to `self.next`.
Layers raise `NBDError` to fail a request; the server turns it into the reply's error.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import errno
import os
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

from iolab.nbdwire import proto

# The operations every layer implements; per-operation settings of filters are keyed by these names.
OPS: tuple[str, ...] = ("read", "write", "flush", "trim", "zero", "cache", "extents")

Extents = list[tuple[int, int]]  # (length, base:allocation flags)
Buffer = bytes | bytearray | memoryview


class FilterSpecError(ValueError):
    """A filter spec (`--filter NAME:key=value,...`) that cannot be built: the message says why."""


class NBDError(Exception):
    """A request failed with `err` (a host errno; mapped to the protocol's set on the wire)."""

    def __init__(self, err: int, message: str = "", offset: int | None = None) -> None:
        super().__init__(message or os.strerror(err))
        self.errno = err
        self.message = message or os.strerror(err)
        self.offset = offset


class Layer:
    """Base of backends and filters. Sizes and capabilities are fixed once the export is open."""

    name: ClassVar[str] = "layer"

    def size(self) -> int:
        raise NotImplementedError

    def can_write(self) -> bool:
        return False

    def can_flush(self) -> bool:
        return False

    def can_fua(self) -> bool:
        return False

    def can_trim(self) -> bool:
        return False

    def can_zero(self) -> bool:
        return False

    def can_fast_zero(self) -> bool:
        return False

    def can_cache(self) -> bool:
        return False

    def can_extents(self) -> bool:
        return False

    def can_multi_conn(self) -> bool:
        return False

    def is_rotational(self) -> bool:
        return False

    async def pread(self, offset: int, length: int) -> Buffer:
        raise NBDError(errno.EINVAL)

    async def pwrite(self, offset: int, data: Buffer, fua: bool) -> None:
        raise NBDError(errno.EPERM)

    async def flush(self) -> None:
        raise NBDError(errno.EINVAL)

    async def trim(self, offset: int, length: int, fua: bool) -> None:
        raise NBDError(errno.EINVAL)

    async def zero(self, offset: int, length: int, may_trim: bool, fast: bool, fua: bool) -> None:
        raise NBDError(errno.EINVAL)

    async def cache(self, offset: int, length: int) -> None:
        raise NBDError(errno.EINVAL)

    async def extents(self, offset: int, length: int, req_one: bool) -> Extents:
        return [(length, 0)]

    def close(self) -> None:
        """Release resources (called once, when the server stops)."""


class Filter(Layer):
    """Passes everything to the next layer; subclasses override what they change.

    A filter that `--filter NAME:key=value,...` can build lists its keys in `settings` and reads their
    values in `from_spec` (filters.FILTERS is the registry).
    """

    name: ClassVar[str] = "filter"
    #: the keys its spec may give (the registry refuses others, naming these)
    settings: ClassVar[tuple[str, ...]] = ()

    def __init__(self, nxt: Layer) -> None:
        self.next = nxt

    @classmethod
    def settings_help(cls) -> str:
        """The valid keys, as an unknown key's error lists them."""
        return ", ".join(cls.settings)

    @classmethod
    def from_spec(cls, nxt: Layer, params: dict[str, str]) -> Filter:
        """The filter on top of `nxt`, from its spec's settings (keys already checked against `settings`)."""
        return cls(nxt)

    def size(self) -> int:
        return self.next.size()

    def can_write(self) -> bool:
        return self.next.can_write()

    def can_flush(self) -> bool:
        return self.next.can_flush()

    def can_fua(self) -> bool:
        return self.next.can_fua()

    def can_trim(self) -> bool:
        return self.next.can_trim()

    def can_zero(self) -> bool:
        return self.next.can_zero()

    def can_fast_zero(self) -> bool:
        return self.next.can_fast_zero()

    def can_cache(self) -> bool:
        return self.next.can_cache()

    def can_extents(self) -> bool:
        return self.next.can_extents()

    def can_multi_conn(self) -> bool:
        return self.next.can_multi_conn()

    def is_rotational(self) -> bool:
        return self.next.is_rotational()

    async def pread(self, offset: int, length: int) -> Buffer:
        return await self.next.pread(offset, length)

    async def pwrite(self, offset: int, data: Buffer, fua: bool) -> None:
        await self.next.pwrite(offset, data, fua)

    async def flush(self) -> None:
        await self.next.flush()

    async def trim(self, offset: int, length: int, fua: bool) -> None:
        await self.next.trim(offset, length, fua)

    async def zero(self, offset: int, length: int, may_trim: bool, fast: bool, fua: bool) -> None:
        await self.next.zero(offset, length, may_trim, fast, fua)

    async def cache(self, offset: int, length: int) -> None:
        await self.next.cache(offset, length)

    async def extents(self, offset: int, length: int, req_one: bool) -> Extents:
        return await self.next.extents(offset, length, req_one)

    def close(self) -> None:
        self.next.close()


# fallocate(2) modes; Python's os module has no fallocate with flags.
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10
POSIX_FADV_WILLNEED = 3

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_fallocate = _libc.fallocate
_fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
_fallocate.restype = ctypes.c_int


def fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    if _fallocate(fd, mode, offset, length) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


_BLKGETSIZE64 = 0x80081272
_NOT_SUPPORTED = (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL, errno.ENODEV)
_ZERO_CHUNK = 1 << 20
_EXTENTS_MAX = 1 << 16
_INLINE_WRITE_MAX = 256 << 10
_SLOW_INLINE_WRITE = 0.001
_POOL_BACKOFF = 0.1  # per reply; the spec allows up to 2^20, clients come back for the rest


class FileBackend(Layer):
    """A regular file or block device.

    Reads and writes are tried first without blocking (RWF_NOWAIT: served from the page cache, on the
    event loop, a few microseconds); only what would block goes to a thread pool. fdatasync always runs
    in the pool. So a cached image costs no thread hop, and an uncached one does not stall the loop.
    """

    name = "file"

    def __init__(self, path: str, read_only: bool = False, threads: int = 16) -> None:
        self.path = path
        self.read_only = read_only
        self.fd = os.open(path, (os.O_RDONLY if read_only else os.O_RDWR) | os.O_CLOEXEC)
        st = os.fstat(self.fd)
        self.is_block = stat.S_ISBLK(st.st_mode)
        if not (self.is_block or stat.S_ISREG(st.st_mode)):
            os.close(self.fd)
            raise ValueError(f"{path}: not a regular file or block device")
        self._size = os.lseek(self.fd, 0, os.SEEK_END) if self.is_block else st.st_size
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="iolab-nbd-io")
        self._nowait_read = hasattr(os, "RWF_NOWAIT")
        self._nowait_write = hasattr(os, "RWF_NOWAIT")
        self._can_punch = True
        self._can_zero_range = True
        self._pool_writes_until = 0.0
        self._rotational = self._detect_rotational(st)
        self.exclusive_fd: int | None = None  # an O_EXCL hold on a served block device (the safety gate)

    def _detect_rotational(self, st: os.stat_result) -> bool:
        dev = st.st_rdev if self.is_block else st.st_dev
        path = f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}/queue/rotational"
        for candidate in (path, f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}/../queue/rotational"):
            try:
                with open(candidate) as f:
                    return f.read().strip() == "1"
            except OSError:
                continue
        return False

    def size(self) -> int:
        return self._size

    def can_write(self) -> bool:
        return not self.read_only

    def can_flush(self) -> bool:
        return not self.read_only

    def can_fua(self) -> bool:
        return not self.read_only

    def can_trim(self) -> bool:
        return not self.read_only

    def can_zero(self) -> bool:
        return not self.read_only

    def can_fast_zero(self) -> bool:
        return not self.read_only

    def can_cache(self) -> bool:
        return True

    def can_extents(self) -> bool:
        return True

    def can_multi_conn(self) -> bool:
        # One fd and no cache of our own: a flush or FUA write on any connection covers every
        # connection's completed writes, which is exactly what the flag promises.
        return True

    def is_rotational(self) -> bool:
        return self._rotational

    async def _in_pool(self, fn: object, *args: object) -> object:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, fn, *args)  # type: ignore[arg-type]

    def _pread_all(self, buf: bytearray, start: int, offset: int) -> None:
        view = memoryview(buf)
        while start < len(buf):
            n = os.preadv(self.fd, [view[start:]], offset + start)
            if n == 0:  # the file shrank under us: what is not there reads as zeroes
                break
            start += n

    async def pread(self, offset: int, length: int) -> Buffer:
        buf = bytearray(length)
        done = 0
        if self._nowait_read:
            try:
                done = os.preadv(self.fd, [buf], offset, os.RWF_NOWAIT)
            except BlockingIOError:
                done = 0
            except OSError as exc:
                if exc.errno not in _NOT_SUPPORTED:
                    raise NBDError(exc.errno or errno.EIO) from exc
                self._nowait_read = False
        if done < length:
            try:
                await self._in_pool(self._pread_all, buf, done, offset)
            except OSError as exc:
                raise NBDError(exc.errno or errno.EIO) from exc
        return buf

    def _pwrite_all(self, data: Buffer, start: int, offset: int) -> None:
        view = memoryview(data)
        while start < len(view):
            start += os.pwritev(self.fd, [view[start:]], offset + start)

    async def pwrite(self, offset: int, data: Buffer, fua: bool) -> None:
        done = 0
        length = len(memoryview(data))
        if self._nowait_write:
            try:
                done = os.pwritev(self.fd, [data], offset, os.RWF_NOWAIT)
            except BlockingIOError:
                done = 0
            except OSError as exc:
                if exc.errno not in _NOT_SUPPORTED:
                    raise NBDError(exc.errno or errno.EIO) from exc
                self._nowait_write = False
        elif length <= _INLINE_WRITE_MAX and time.monotonic() >= self._pool_writes_until:
            # No RWF_NOWAIT for buffered writes here (ext4): a page-cache write costs microseconds,
            # so do it on the loop, and go back to the pool for a while when one turns out slow
            # (writeback throttling), so a slow disk never stalls the other clients for long.
            start = time.monotonic()
            try:
                done = os.pwrite(self.fd, data, offset)
            except OSError as exc:
                raise NBDError(exc.errno or errno.EIO) from exc
            if time.monotonic() - start > _SLOW_INLINE_WRITE:
                self._pool_writes_until = time.monotonic() + _POOL_BACKOFF
        try:
            if done < length:
                await self._in_pool(self._pwrite_all, data, done, offset)
            if fua:
                await self._in_pool(os.fdatasync, self.fd)
        except OSError as exc:
            raise NBDError(exc.errno or errno.EIO) from exc

    async def flush(self) -> None:
        try:
            await self._in_pool(os.fdatasync, self.fd)
        except OSError as exc:
            raise NBDError(exc.errno or errno.EIO) from exc

    async def trim(self, offset: int, length: int, fua: bool) -> None:
        # A hint: where holes cannot be punched, doing nothing is a valid answer.
        if self._can_punch and length:
            try:
                await self._in_pool(
                    fallocate, self.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length
                )
            except OSError as exc:
                if exc.errno not in _NOT_SUPPORTED:
                    raise NBDError(exc.errno or errno.EIO) from exc
                self._can_punch = False
        if fua:
            await self.flush()

    def _write_zeroes(self, offset: int, length: int) -> None:
        chunk = bytes(min(length, _ZERO_CHUNK))
        end = offset + length
        while offset < end:
            n = min(len(chunk), end - offset)
            self._pwrite_all(chunk[:n], 0, offset)
            offset += n

    async def zero(self, offset: int, length: int, may_trim: bool, fast: bool, fua: bool) -> None:
        try:
            done = length == 0  # fallocate(2) refuses a zero length; nothing to do anyway
            if may_trim and self._can_punch:
                try:
                    await self._in_pool(
                        fallocate, self.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length
                    )
                    done = True
                except OSError as exc:
                    if exc.errno not in _NOT_SUPPORTED:
                        raise
                    self._can_punch = False
            if not done and self._can_zero_range:
                try:
                    await self._in_pool(
                        fallocate, self.fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, offset, length
                    )
                    done = True
                except OSError as exc:
                    if exc.errno not in _NOT_SUPPORTED:
                        raise
                    self._can_zero_range = False
            if not done:
                if fast:  # writing the zeroes would be no faster than a write: say so, change nothing
                    raise NBDError(errno.ENOTSUP, "fast zero not possible here")
                await self._in_pool(self._write_zeroes, offset, length)
            if fua:
                await self._in_pool(os.fdatasync, self.fd)
        except OSError as exc:
            raise NBDError(exc.errno or errno.EIO) from exc

    async def cache(self, offset: int, length: int) -> None:
        try:
            os.posix_fadvise(self.fd, offset, length, POSIX_FADV_WILLNEED)
        except OSError as exc:
            raise NBDError(exc.errno or errno.EIO) from exc

    async def extents(self, offset: int, length: int, req_one: bool) -> Extents:
        if self.is_block:
            return [(length, 0)]
        end = offset + length
        out: Extents = []
        pos = offset
        try:
            while pos < end and len(out) < _EXTENTS_MAX:
                try:
                    data = os.lseek(self.fd, pos, os.SEEK_DATA)
                except OSError as exc:
                    if exc.errno != errno.ENXIO:  # ENXIO: only a hole is left up to EOF
                        raise
                    data = end
                if data > pos:
                    out.append((min(data, end) - pos, proto.STATE_HOLE | proto.STATE_ZERO))
                    pos = min(data, end)
                    if req_one:
                        break
                    continue
                hole = os.lseek(self.fd, pos, os.SEEK_HOLE)
                out.append((min(hole, end) - pos, 0))
                pos = min(hole, end)
                if req_one:
                    break
        except OSError:
            return [(length, 0)]  # "allocated, contents unknown" is always a truthful answer
        return out or [(length, 0)]

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        os.close(self.fd)
        if self.exclusive_fd is not None:
            os.close(self.exclusive_fd)
            self.exclusive_fd = None
