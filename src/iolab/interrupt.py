"""SIGINT, SIGTERM and SIGHUP end a run the same way: the jobs stop, the results of what ran are written.

The handlers only record the signal: an exception raised from a handler could land anywhere (in the middle
of the bookkeeping, between writing a report and renaming it) and lose results. Whoever runs a phase polls
`requested()`: the scheduler stops the workers, the layout stops between chunks, `check()` ends the phases
before any job ran.

The first signal stops the jobs and waits for them. A second one (of any of the three) stops waiting for a
job that does not end (an exec_prerun command, an I/O stuck in a device): the report is written with what
ended. A third one runs `on_abandon` callbacks (the temp file of --output is removed) and kills the process
with that signal, as if iolab had no handler; the previous --output file stays as it was.

A signal that was ignored when iolab started (`nohup` ignores SIGHUP, a non-interactive shell's background
job SIGINT) stays ignored.

The exit status of an interrupted run is 128 + the first signal's number (130, 143, 129), as a shell
reports a process killed by it, but with the results written.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, TextIO, cast

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(Exception):
    """A stop signal came before any job ran: there is nothing to report."""

    def __init__(self, signum: int, while_doing: str = "") -> None:
        self.signum = signum
        what = f" while {while_doing}" if while_doing else ""
        super().__init__(f"interrupted ({signal_name(signum)}){what}: no job ran, nothing to report")


class _State:
    def __init__(self) -> None:
        self.signum: int | None = None
        self.count = 0
        self.depth = 0
        self.previous: dict[int, Any] = {}
        self.on_signal: list[Callable[[], None]] = []
        self.on_abandon: list[Callable[[], None]] = []


_state = _State()


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def requested() -> int | None:
    """The number of the first stop signal received, or None."""
    return _state.signum


def forced() -> bool:
    """A second stop signal came: stop waiting for jobs that do not end."""
    return _state.count >= 2


def exit_status() -> int:
    """128 + the first signal's number; 0 if none came."""
    return 128 + _state.signum if _state.signum is not None else 0


def check(while_doing: str = "") -> None:
    """Raise Interrupted if a stop signal came (for the phases before any job ran)."""
    if _state.signum is not None:
        raise Interrupted(_state.signum, while_doing)


def _handler(signum: int, frame: object) -> None:
    _state.count += 1
    if _state.signum is None:
        _state.signum = signum
    if _state.count >= 3:
        for cleanup in list(_state.on_abandon):
            with contextlib.suppress(Exception):
                cleanup()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    for notify in list(_state.on_signal):
        notify()


@contextlib.contextmanager
def handling() -> Iterator[None]:
    """Catch the stop signals for the duration (main thread only; nested uses share the outer state)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _state.depth:
        _state.depth += 1
        try:
            yield
        finally:
            _state.depth -= 1
        return
    _state.signum, _state.count = None, 0
    # a signal ignored by whoever started us stays ignored: `nohup iolab run ...` must survive the terminal's
    # SIGHUP, and a shell script's background job its SIGINT
    caught = [sig for sig in STOP_SIGNALS if signal.getsignal(sig) != signal.SIG_IGN]
    _state.previous = {sig: signal.signal(sig, _handler) for sig in caught}
    _state.depth = 1
    try:
        yield
    finally:
        _state.depth = 0
        for sig, previous in _state.previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        _state.on_signal.clear()
        _state.on_abandon.clear()


@contextlib.contextmanager
def on_signal(callback: Callable[[], None]) -> Iterator[None]:
    """Call `callback` from the handler on the first and second stop signal (e.g. set an Event)."""
    _state.on_signal.append(callback)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            _state.on_signal.remove(callback)


@contextlib.contextmanager
def on_abandon(callback: Callable[[], None]) -> Iterator[None]:
    """Call `callback` before the third stop signal kills the process (e.g. remove a temp file)."""
    _state.on_abandon.append(callback)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            _state.on_abandon.remove(callback)


class _ForgivingStream(io.TextIOBase):
    """A text stream that drops what it cannot write: after SIGHUP the terminal is gone (EIO), and a warning
    that cannot be shown must not stop the results from being written to --output."""

    def __init__(self, inner: TextIO) -> None:
        super().__init__()
        self._inner = inner

    def write(self, text: str) -> int:
        with contextlib.suppress(OSError, ValueError):
            self._inner.write(text)
        return len(text)

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._inner.flush()

    def isatty(self) -> bool:
        try:
            return self._inner.isatty()
        except (OSError, ValueError):
            return False

    def fileno(self) -> int:
        return self._inner.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._inner.encoding

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return self._inner.errors


@contextlib.contextmanager
def forgiving_stderr() -> Iterator[None]:
    """sys.stderr drops what the terminal no longer takes, for the duration."""
    previous = sys.stderr
    sys.stderr = cast(TextIO, _ForgivingStream(previous))
    try:
        yield
    finally:
        sys.stderr = previous
