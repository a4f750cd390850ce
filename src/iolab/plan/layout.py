"""Lay files out before a job runs, as fio's setup does (filesetup.c extend_file).

A file a job needs bigger than it is gets laid out again: removed and recreated (except for a
file_append writer, which keeps its data), preallocated as `fallocate=` says, and, for a job that
reads (or overwrite=1), written in full so reads hit data rather than holes the file system answers
without touching the device. A write-only job only gets the space (fallocate=native by default).
"""

from __future__ import annotations

import contextlib
import errno
import os

from iolab.plan.anchor import FileAnchor
from iolab.plan.files import FilePlan, LayoutSpec

CHUNK = 1 << 20
#: fallocate(2) mode flag FALLOC_FL_KEEP_SIZE (linux/falloc.h)
FALLOC_FL_KEEP_SIZE = 0x01


class LayoutError(Exception):
    """The file could not be laid out; the job does not run (fio reaps it)."""

    def __init__(self, message: str, errnum: int) -> None:
        super().__init__(message)
        self.errnum = errnum


def _chunk_source(zero: bool) -> bytearray:
    return bytearray(CHUNK) if zero else bytearray(os.urandom(CHUNK))


def _fallocate(fd: int, mode: str, size: int) -> None:
    if mode == "native":
        with contextlib.suppress(OSError):  # fio falls back to no preallocation
            _linux_fallocate(fd, 0, size)
    elif mode == "posix":
        with contextlib.suppress(OSError):  # fio only logs it
            os.posix_fallocate(fd, 0, size)
    elif mode == "keep":
        _linux_fallocate(fd, FALLOC_FL_KEEP_SIZE, size)
    elif mode == "truncate":
        os.ftruncate(fd, size)


def _linux_fallocate(fd: int, flags: int, size: int) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    if libc.fallocate(fd, flags, 0, size) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def layout_file(plan: FilePlan, spec: LayoutSpec, anchor: FileAnchor) -> bool:
    """Lay `plan.path` out to `plan.required_size` bytes if `plan.extend`; return True if done.

    Everything goes through the run's anchor of the file (anchor.py): the old file is removed only if its
    name still is the file the safety gate checked, and the new one is created where the name was."""
    if plan.is_block or plan.is_char or not plan.extend:
        return False
    with anchor.lock:
        if anchor.kind not in ("file", "missing"):
            # planned as a regular file, but the name led to something else when the run opened it
            raise LayoutError(
                f"{plan.path}: not a regular file when the run opened it: not laid out", errno.EEXIST
            )
        if spec.unlink:
            try:
                kept = anchor.remove_name()
            except OSError as exc:
                raise LayoutError(f"{plan.path}: unlink: {exc.strerror}", exc.errno or errno.EIO) from None
            if kept:
                raise LayoutError(f"{kept}: not laid out", errno.EEXIST)
        flags = os.O_WRONLY | os.O_CLOEXEC
        if spec.allow_create:
            flags |= os.O_CREAT
        try:
            fd = anchor.open(flags, 0o644)
        except OSError as exc:
            if exc.errno == errno.ENOENT and not spec.allow_create:
                raise LayoutError("file creation disallowed by allow_file_create=0", 0) from None
            raise LayoutError(
                f"{exc.filename or plan.path}: open: {exc.strerror}", exc.errno or errno.EIO
            ) from None
    try:
        try:
            _fallocate(fd, spec.fallocate, plan.required_size)
        except OSError as exc:
            raise LayoutError(f"{plan.path}: fallocate: {exc.strerror}", exc.errno or errno.EIO) from None
        if not spec.write_data:
            return True
        os.ftruncate(fd, plan.required_size)
        data = _chunk_source(spec.zero)
        pos = 0
        try:
            while pos < plan.required_size:
                n = min(CHUNK, plan.required_size - pos)
                if not spec.zero:
                    # stamp the position: no two chunks alike (dedup/compression would see through it)
                    data[:8] = pos.to_bytes(8, "little")
                os.pwrite(fd, memoryview(data)[:n], pos)
                pos += n
            if spec.create_fsync:
                os.fsync(fd)
        except OSError as exc:
            raise LayoutError(f"{plan.path}: laying out: {exc.strerror}", exc.errno or errno.EIO) from None
        return True
    finally:
        os.close(fd)
