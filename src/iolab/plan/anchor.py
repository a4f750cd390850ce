"""Open once: every file a run uses is opened by its name once, before anything is written, and used
through that open file (its *anchor*) from then on.

An anchor is an O_PATH descriptor of what the name led to when the run was checked (a written block device's
anchor is an O_EXCL descriptor instead, held for the run), plus an O_PATH descriptor of the directory the
name lives in. Later opens reopen the anchor through /proc/self/fd/N, which opens that same inode again with
the job's own flags (O_DIRECT, O_SYNC...) and never looks the name up: a symlink swapped or a file renamed
over the name after the check changes nothing. The safety gate checks the anchors (fstat), so what it
checked is what gets written.

A name that does not exist yet is created in the anchored directory with O_CREAT|O_EXCL|O_NOFOLLOW; if
something appeared there since the check, it is not used (the error names it). Removing the name (layout,
unlink=1) happens in the anchored directory, and only while the name still is the entry the run opened or
created (same device and inode, symlinks not followed); otherwise it is left alone.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import stat
import threading
from collections.abc import Iterable
from types import TracebackType

_PATH = os.O_PATH | os.O_CLOEXEC
_DIR = _PATH | os.O_DIRECTORY
#: flags that only mean something when a name is looked up; a reopen of an anchor drops them
_LOOKUP_FLAGS = os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_DIRECTORY

Ident = tuple[int, int]  # (st_dev, st_ino)


def _ident(st: os.stat_result) -> Ident:
    return (st.st_dev, st.st_ino)


def reopen(fd: int, flags: int) -> int:
    """Open the inode `fd` refers to again with `flags` (no name is looked up)."""
    return os.open(f"/proc/self/fd/{fd}", (flags & ~_LOOKUP_FLAGS) | os.O_CLOEXEC)


def _describe(dir_fd: int, name: str) -> str:
    """What is at `name` now, for an error message."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return "something"
    if stat.S_ISLNK(st.st_mode):
        try:
            return f"a symlink to {os.readlink(name, dir_fd=dir_fd)}"
        except OSError:
            return "a symlink"
    if stat.S_ISBLK(st.st_mode):
        return "a block device"
    if stat.S_ISDIR(st.st_mode):
        return "a directory"
    return "a file"


def _open_dir(path: str) -> tuple[int, tuple[str, ...]]:
    """O_PATH of the directory `path`, or of its nearest existing ancestor and the components missing."""
    missing: list[str] = []
    while True:
        try:
            return os.open(path or ".", _DIR), tuple(missing)
        except FileNotFoundError:
            head, tail = os.path.split(path)
            if not tail or head == path:
                raise
            missing.insert(0, tail)
            path = head


class FileAnchor:
    """One name of the run: its directory and what the name led to when opened (see the module doc)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.RLock()
        head, self.name = os.path.split(path)
        if not self.name:  # "dir/": the plan refuses directories; anchor the directory itself
            head, self.name = path, "."
        self.dir_fd, self.missing_dirs = _open_dir(head)
        self.fd: int | None = None
        #: the directory entry (not followed) as opened or created here: removed only while it still is
        self.entry: Ident | None = None
        #: True: fd is an O_EXCL open of a block device
        self.exclusive = False
        if self.missing_dirs:
            return
        try:
            self.fd = os.open(self.name, _PATH, dir_fd=self.dir_fd)
        except FileNotFoundError:
            pass  # missing, or a dangling symlink (recorded as the entry: a later create refuses it)
        except OSError as exc:
            os.close(self.dir_fd)
            raise OSError(exc.errno, exc.strerror, path) from None
        try:
            entry = os.stat(self.name, dir_fd=self.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            entry = None
        except OSError as exc:
            self.close()
            raise OSError(exc.errno, exc.strerror, path) from None
        if self.fd is not None and (
            entry is None or (not stat.S_ISLNK(entry.st_mode) and _ident(entry) != _ident(os.fstat(self.fd)))
        ):
            self.close()
            raise OSError(errno.EAGAIN, "changed while it was being opened (run again)", path)
        self.entry = _ident(entry) if entry is not None else None

    # ---------------------------------------------------------------------------------------- queries

    def key(self) -> tuple[Ident, tuple[str, ...], str]:
        """Two paths with the same key name the same directory entry (share one anchor)."""
        return (_ident(os.fstat(self.dir_fd)), self.missing_dirs, self.name)

    def stat(self) -> os.stat_result | None:
        return os.fstat(self.fd) if self.fd is not None else None

    @property
    def kind(self) -> str:
        """'file', 'block', 'char', 'other', or 'missing' (to be created)."""
        st = self.stat()
        if st is None:
            return "missing"
        if stat.S_ISREG(st.st_mode):
            return "file"
        if stat.S_ISBLK(st.st_mode):
            return "block"
        if stat.S_ISCHR(st.st_mode):
            return "char"
        return "other"

    # ------------------------------------------------------------------------------------------- use

    def hold_exclusive(self) -> None:
        """Replace the anchor of a block device by an O_EXCL open of it (EBUSY: someone holds it)."""
        with self.lock:
            if self.fd is None or self.exclusive:
                return
            # O_EXCL without O_CREAT: a block device's exclusive open (reopen() would drop it)
            held = os.open(f"/proc/self/fd/{self.fd}", os.O_RDONLY | os.O_EXCL | os.O_CLOEXEC)
            os.close(self.fd)
            self.fd, self.exclusive = held, True

    def directory(self, create: bool = False) -> int:
        """The directory the name lives in; its missing directories are made first (mode 0700, as fio)
        when `create`, each one opened without following symlinks."""
        with self.lock:
            cur = self.dir_fd
            done = 0
            try:
                for part in self.missing_dirs:
                    if create:
                        with contextlib.suppress(FileExistsError):
                            os.mkdir(part, 0o700, dir_fd=cur)
                    nxt = os.open(part, _DIR | os.O_NOFOLLOW, dir_fd=cur)
                    if cur != self.dir_fd:
                        os.close(cur)
                    cur = nxt
                    done += 1
            except OSError as exc:
                if cur != self.dir_fd:
                    os.close(cur)
                # the failing directory: the path's parent without the missing parts after this one
                where = os.path.dirname(self.path)
                for _ in self.missing_dirs[done + 1 :]:
                    where = os.path.dirname(where)
                raise OSError(exc.errno, exc.strerror, where) from None
            if self.missing_dirs:
                os.close(self.dir_fd)
                self.dir_fd, self.missing_dirs = cur, ()
            return cur

    def open(self, flags: int, mode: int = 0o644) -> int:
        """A new descriptor of the anchored file with `flags`; with O_CREAT, a missing file is created."""
        with self.lock:
            if self.fd is not None:
                return reopen(self.fd, flags)
            if not flags & os.O_CREAT:
                raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), self.path)
            return self._create(flags, mode)

    def _create(self, flags: int, mode: int) -> int:
        where = self.directory()
        try:
            fd = os.open(self.name, flags | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode,
                         dir_fd=where)  # fmt: skip
        except FileExistsError:
            raise OSError(
                errno.EEXIST,
                f"{_describe(where, self.name)} is there, not a new file this run created: not used",
                self.path,
            ) from None
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, self.path) from None
        self.fd = reopen(fd, os.O_PATH)
        self.entry = _ident(os.fstat(fd))
        return fd

    def remove_name(self) -> str | None:
        """Unlink the name in the anchored directory if it still is the entry this run opened or created.

        Returns why it was left in place (None: removed, or already gone)."""
        with self.lock:
            try:
                where = self.directory()
            except FileNotFoundError:
                return None
            try:
                now = os.stat(self.name, dir_fd=where, follow_symlinks=False)
            except FileNotFoundError:
                self._forget()  # someone removed it: the anchor keeps no inode a new file would replace
                return None
            if self.entry is None or _ident(now) != self.entry:
                return (
                    f"{self.path} was not removed: it is {_describe(where, self.name)} that is not the file "
                    "this run opened (replaced meanwhile)"
                )
            os.unlink(self.name, dir_fd=where)
            self._forget()
            return None

    def _forget(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
        self.fd, self.entry, self.exclusive = None, None, False

    def close(self) -> None:
        with self.lock:
            if self.fd is not None:
                os.close(self.fd)
                self.fd = None
            if self.dir_fd >= 0:
                os.close(self.dir_fd)
                self.dir_fd = -1


def _room_for(files: int) -> None:
    """Raise the soft limit on open files when the anchors (two fds a file) and the workers' own opens
    may not fit under it (nrfiles= in the thousands)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 3 * files + 256  # two anchors a file, a worker's reopen of it, room for the rest
    if soft != resource.RLIM_INFINITY and want > soft:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


class Anchors:
    """The anchors of a run, by the paths the jobs name (paths of one directory entry share one anchor).
    Use as a context manager, or close()."""

    def __init__(self) -> None:
        self._by_path: dict[str, FileAnchor] = {}
        self._by_key: dict[tuple[Ident, tuple[str, ...], str], FileAnchor] = {}

    @classmethod
    def for_paths(cls, paths: Iterable[str]) -> Anchors:
        unique = list(dict.fromkeys(paths))
        _room_for(len(unique))
        anchors = cls()
        try:
            for path in unique:
                anchors.add(path)
        except BaseException:
            anchors.close()
            raise
        return anchors

    def add(self, path: str) -> FileAnchor:
        found = self._by_path.get(path)
        if found is not None:
            return found
        anchor = FileAnchor(path)
        key = anchor.key()
        shared = self._by_key.get(key)
        if shared is not None:
            anchor.close()
            anchor = shared
        else:
            self._by_key[key] = anchor
        self._by_path[path] = anchor
        return anchor

    def __getitem__(self, path: str) -> FileAnchor:
        return self._by_path[path]

    def __contains__(self, path: object) -> bool:
        return path in self._by_path

    def unique(self) -> list[FileAnchor]:
        return list(self._by_key.values())

    def close(self) -> None:
        for anchor in self._by_key.values():
            anchor.close()
        self._by_key.clear()
        self._by_path.clear()

    def __enter__(self) -> Anchors:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
