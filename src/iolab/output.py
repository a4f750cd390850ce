"""`--output FILE`: the report is written to a temp file next to FILE and renamed over it at the end.

A refused, failed or killed run leaves the previous FILE as it was, and a reader never sees half a report.
The temp file is created with O_EXCL in FILE's directory (the same file system, so the rename is atomic),
fsynced, then renamed; the directory is fsynced after the rename.

* A new FILE gets the mode a new file gets from the umask; an existing one keeps its mode (and its owner and
  group, when iolab runs as root).
* A symlink is followed, as fio's open does: its target is replaced, the link stays.
* `/dev/stdout`, `/dev/stderr`, `/dev/fd/N`, `/proc/self/fd/N` write to that descriptor of ours (a shell's
  `>> log` keeps appending); anything else that is not a regular file (a FIFO, a terminal, /dev/null) is
  written as it is: a rename would replace the node. A block device is refused: the report would overwrite
  the device's data.
* A missing or read-only directory, a directory as FILE, a FILE we may not write: a one-line error naming
  the path, before anything runs.

Messages (errors, warnings, notes) go to stderr as one `iolab: ...` line each: `say()`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import sys
from types import TracebackType
from typing import TextIO


def say(msg: str) -> None:
    """One `iolab: ...` line on stderr; stdout is the report's alone."""
    # the terminal may have hung up (SIGHUP): the message has nowhere to go, the results still do
    with contextlib.suppress(OSError):
        print(f"iolab: {msg}", file=sys.stderr)


class OutputError(Exception):
    """The report cannot go to --output FILE (one line, naming the path)."""


def _error(path: str, exc: OSError, doing: str = "") -> OutputError:
    what = f" ({doing})" if doing else ""
    return OutputError(f"--output {path}: {exc.strerror or exc}{what}")


def _descriptor_alias(path: str) -> int | None:
    """The descriptor of ours that /dev/stdout, /dev/stderr, /dev/fd/N or /proc/self/fd/N names, if any."""
    absolute = os.path.abspath(path)
    named = {"/dev/stdout": 1, "/dev/stderr": 2}.get(absolute)
    if named is not None:
        return named
    for prefix in ("/dev/fd/", "/proc/self/fd/", f"/proc/{os.getpid()}/fd/"):
        rest = absolute.removeprefix(prefix)
        if rest != absolute and rest.isdigit():
            return int(rest)
    return None


class ReportFile:
    """Where the report goes with --output FILE. `open()` checks and creates the temp file (call it before
    anything runs), `write()` appends, `commit()` puts the file in place; `discard()` (or leaving the `with`
    block without commit) removes the temp file and leaves FILE untouched."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.target = os.path.realpath(path)
        self.temp: str | None = None
        self._stream: TextIO | None = None
        self._committed = False

    @classmethod
    def open(cls, path: str) -> ReportFile:
        sink = cls(path)
        sink._open()
        return sink

    def _open(self) -> None:
        path = self.path
        if not path:
            raise OutputError("--output needs a file name")
        try:
            st: os.stat_result | None = os.stat(path)
        except FileNotFoundError:
            st = None
        except OSError as exc:
            raise _error(path, exc) from None
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise OutputError(f"--output {path}: is a directory; give a file name")
        if st is not None and stat.S_ISBLK(st.st_mode):
            raise OutputError(f"--output {path}: is a block device; the report would overwrite its data")
        alias = _descriptor_alias(path)
        if alias is not None:
            # the descriptor itself, not a new open of what it points to: a shell's `>> log` keeps its
            # offset and O_APPEND, and nothing is truncated or replaced
            try:
                fd = os.dup(alias)
            except OSError as exc:
                raise _error(path, exc) from None
            self._stream = os.fdopen(fd, "w")
            return
        if st is not None and not stat.S_ISREG(st.st_mode):
            try:
                # a FIFO, a terminal, a character device: written as it is (a rename would replace the node)
                fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOCTTY)
            except OSError as exc:
                raise _error(path, exc) from None
            self._stream = os.fdopen(fd, "w")
            return
        directory = os.path.dirname(self.target) or "."
        if not os.path.isdir(directory):
            raise OutputError(f"--output {path}: the directory {directory} does not exist")
        if st is not None:
            # the rename could replace a file fio could not open for writing (read-only, busy): neither do we
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOCTTY))
            except OSError as exc:
                raise _error(path, exc) from None
        base = os.path.basename(self.target)
        for _ in range(100):
            temp = os.path.join(directory, f".{base}.{secrets.token_hex(4)}.iolab-tmp")
            try:
                # 0o666: the umask gives the mode a new file gets
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
            except FileExistsError:
                continue
            except OSError as exc:
                raise _error(path, exc, f"creating a temp file in {directory}") from None
            break
        else:
            raise OutputError(f"--output {path}: no free temp file name in {directory}")
        self.temp = temp
        try:
            if st is not None:
                os.fchmod(fd, stat.S_IMODE(st.st_mode))
                if os.geteuid() == 0:
                    os.fchown(fd, st.st_uid, st.st_gid)
        except OSError as exc:
            os.close(fd)
            self.discard()
            raise _error(path, exc, f"giving {temp} the mode of {path}") from None
        self._stream = os.fdopen(fd, "w")

    def write(self, text: str) -> None:
        assert self._stream is not None
        try:
            self._stream.write(text)
            self._stream.flush()
        except OSError as exc:
            raise _error(self.path, exc, "writing the report") from None

    def flush(self) -> None:
        if self._stream is not None:
            try:
                self._stream.flush()
            except OSError as exc:
                raise _error(self.path, exc, "writing the report") from None

    def commit(self) -> None:
        """fsync the temp file, rename it over FILE, fsync the directory."""
        stream, self._stream = self._stream, None
        if stream is None:
            return
        try:
            stream.flush()
            if self.temp is not None:
                os.fsync(stream.fileno())
        except OSError as exc:
            with contextlib.suppress(OSError):
                stream.close()
            self.discard()
            raise _error(self.path, exc, "writing the report") from None
        stream.close()
        if self.temp is None:
            self._committed = True
            return
        try:
            os.rename(self.temp, self.target)
        except OSError as exc:
            self.discard()
            raise _error(self.path, exc, f"renaming {self.temp} over it") from None
        self.temp = None
        self._committed = True
        with contextlib.suppress(OSError):
            dfd = os.open(os.path.dirname(self.target) or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    def discard(self) -> None:
        """Remove the temp file (FILE stays as it was). Safe to call from a signal handler, more than once."""
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
        temp, self.temp = self.temp, None
        if temp is not None:
            with contextlib.suppress(OSError):
                os.unlink(temp)

    def __enter__(self) -> ReportFile:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._committed:
            self.discard()
