"""Run a RunPlan on the C core: one thread per worker, each inside `_core.Job.run()` with the GIL released.

Threads rather than processes: the C loop holds no Python state while it runs, so threads scale like
processes here and the main thread can read live progress counters without IPC. Measured on the 2-vCPU
development VM with bench/threads_vs_processes.py (zram, 4k randread, numjobs 2 and 4, psync and libaio
QD16, 5 rotated rounds of 5 s): fio --thread against fio's default processes gave 0.94..1.04 (median of
the per-round ratios), i.e. no cost of threads beyond the noise, and iolab's threads 1.12..1.34x fio's
processes; so the simpler design stays.
A worker thread pins itself to its JobPlan.cpus (cpus_allowed/cpumask) before it starts.
While io_uring jobs run, the main thread looks for io-wq workers ("iou-wrk-<tid>" threads of this process)
of each job's thread: their presence means the kernel punted the I/O to worker threads.
Start order follows fio: stonewall waits for every earlier worker, wait_for for the named job's workers.
A stop signal (SIGINT, SIGTERM, SIGHUP; see iolab.interrupt) stops running workers (their partial results
stay valid) and starts no new ones; after a second one, workers that have not ended are abandoned.
Phases: from the moment a worker starts while none runs until none runs again. Jobs separated by stonewall
(or wait_for, or groups run one after another) are separate phases; an optional `phase_snapshot` callable is
called at both ends of each (for the device counters of the post-run check).
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import re
import shlex
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from iolab import _core, interrupt
from iolab.analysis.core_result import CoreResult
from iolab.engine.config import ENGINE_PSYNC, pack_config
from iolab.nbdwire import client as nbd_client
from iolab.plan import FilePlan, JobPlan, NbdTarget, RunPlan
from iolab.plan.anchor import Anchors
from iolab.plan.layout import LayoutError, layout_file
from iolab.plan.steadystate import SteadyState


@dataclass
class WorkerOutcome:
    plan: JobPlan
    raw: CoreResult | None = None
    setup_error: str | None = None
    #: fio's error number for a job that did not run (0: fio reports no error number, only a message)
    setup_errno: int = errno.EIO
    started_at: float = 0.0
    finished_at: float = 0.0
    #: most io_uring worker threads (iou-wrk) seen for the job's thread while it ran
    iowq_workers: int = 0
    #: what fio would print as information while setting the job up (a cache drop that failed)
    notes: list[str] = field(default_factory=list)
    #: steadystate= (ss_dur set): the runner's per-second checks and their outcome
    steadystate: SteadyState | None = None


def iowq_workers(tid: int) -> int:
    """How many io_uring io-wq worker threads of this process serve the thread ``tid``.

    The kernel names them ``iou-wrk-<tid of the submitting thread>`` (comm is cut to 15 characters).
    """
    if tid <= 0:
        return 0
    name = f"iou-wrk-{tid}"[:15]
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return 0
    n = 0
    for t in tasks:
        try:
            with open(f"/proc/self/task/{t}/comm") as f:
                if f.read().strip() == name:
                    n += 1
        except OSError:
            continue
    return n


@dataclass
class Progress:
    """A snapshot for the status line."""

    elapsed_s: float
    running: int
    done: int
    total: int
    read_ios: int
    write_ios: int
    read_bytes: int
    write_bytes: int
    measuring: bool
    eta_s: float | None
    trim_ios: int = 0
    trim_bytes: int = 0


@dataclass
class Phase:
    """Workers that ran while at least one of them was running: started when none ran, ended when none did."""

    #: JobPlan.index of each worker, in start order
    jobs: list[int] = field(default_factory=list)
    #: phase_snapshot() just before the first worker started, and just after the last one ended
    before: Any = None
    after: Any = None


@dataclass
class RunOutcome:
    workers: list[WorkerOutcome]
    interrupted: bool = False
    #: the first stop signal's number when interrupted
    signal: int | None = None
    warnings: list[str] = field(default_factory=list)
    phases: list[Phase] = field(default_factory=list)


def anchors_for(plan: RunPlan | JobPlan) -> Anchors:
    """Anchors (plan/anchor.py) of every file the jobs name, opened here, unchecked: `iolab run` gets them
    from the safety gate instead (SafetyGate.open), which checks them first."""
    jobs = plan.jobs if isinstance(plan, RunPlan) else (plan,)
    return Anchors.for_paths(fp.path for job in jobs for fp in job.files)


def setup_job(job: JobPlan, anchors: Anchors) -> list[str]:
    """fio's file setup for one job: the first file's missing directories, then every file the job needs
    bigger laid out, all through the run's anchors. Raises LayoutError (the job does not run)."""
    notes: list[str] = []
    nested = [fp.path for fp in job.files if "/" in fp.path and not (fp.is_block or fp.is_char)]
    if nested:
        # fio creates the directories of the first such file only
        try:
            anchors[nested[0]].directory(create=True)
        except OSError as exc:
            msg = f"failed to create dir ({nested[0]}): {exc.strerror}"
            raise LayoutError(msg, exc.errno or errno.EIO) from None
    for fp in job.files:
        if layout_file(fp, job.layout, anchors[fp.path]):
            notes.append(f"{job.name}: laid out {fp.path} ({fp.required_size} bytes)")
    return notes


def prepare_files(
    plan: RunPlan, failed: dict[int, tuple[str, int]] | None = None, anchors: Anchors | None = None
) -> list[str]:
    """Set up the files of every create_serialize job (fio's default) before any job starts, in fio's
    thread order; a job whose setup fails goes into `failed` (JobPlan.index -> (message, errno)) and is
    not run. The other jobs set their files up when they start. Without `anchors`, the files are opened
    here (unchecked) for the setup only."""
    if anchors is None:
        with anchors_for(plan) as own:
            return prepare_files(plan, failed, own)
    notes: list[str] = []
    for job in sorted(plan.jobs, key=lambda j: j.thread_number):
        if not job.create_serialize:
            continue
        try:
            notes.extend(setup_job(job, anchors))
        except LayoutError as exc:
            if failed is None:
                raise OSError(exc.errnum, str(exc)) from None
            failed[job.index] = (str(exc), exc.errnum)
    return notes


def _open_flags(job: JobPlan, fp: FilePlan | None = None) -> int:
    # fio opens character devices read-write whatever the job does
    char = fp is not None and fp.is_char
    flags = os.O_RDWR if (job.writes or char) else os.O_RDONLY
    if job.direct:
        flags |= os.O_DIRECT
    if job.create_on_open and job.layout.allow_create and not (fp is None or fp.is_block or char):
        flags |= os.O_CREAT
    flags |= SYNC_FLAGS[str(job.options.get("sync") or "none")]
    return flags | os.O_CLOEXEC


def _pre_read(fd: int, fp: FilePlan, bs: int) -> None:
    """Read the region once so it is in the page cache (fio's pre_read), with the job's own fd."""
    buf = mmap.mmap(-1, bs)  # page aligned, fine for O_DIRECT
    try:
        pos, end = fp.region_offset, fp.region_offset + fp.region_size
        while pos < end:
            n = os.preadv(fd, [memoryview(buf)[: min(bs, end - pos)]], pos)
            if n <= 0:
                raise OSError(errno.EIO, f"pre_read of {fp.path}: short read at {pos}")
            pos += n
    finally:
        buf.close()


#: fio's sync= values -> open flags
SYNC_FLAGS = {"none": 0, "0": 0, "sync": os.O_SYNC, "1": os.O_SYNC, "dsync": os.O_DSYNC}
#: fio's fadvise_hint= values -> the advice given at open ("1": by the pattern, random or sequential)
_FADVISE = {"random": os.POSIX_FADV_RANDOM, "sequential": os.POSIX_FADV_SEQUENTIAL}
BLKFLSBUF = 0x1261


#: ioprio_set(2) has no wrapper in Python or glibc: its number per architecture
_NR_IOPRIO_SET = {"x86_64": 251, "aarch64": 30, "riscv64": 30, "i686": 289, "ppc64le": 273, "s390x": 282}
_IOPRIO_WHO_PROCESS = 1  # with a thread id: that thread only
_IOPRIO_CLASS_SHIFT = 13
_IOPRIO_CLASS_BE = 2


def _ioprio_set(tid: int, ioclass: int, level: int) -> None:
    """The calling thread's I/O priority, as fio's ioprio_set(IOPRIO_WHO_PROCESS, 0, class, prio)."""
    import ctypes
    import platform

    nr = _NR_IOPRIO_SET.get(platform.machine())
    if nr is None:
        raise OSError(errno.ENOSYS, f"ioprio_set: system call number unknown on {platform.machine()}")
    libc = ctypes.CDLL(None, use_errno=True)
    ioclass = ioclass or _IOPRIO_CLASS_BE  # fio: no class given means best effort
    if libc.syscall(nr, _IOPRIO_WHO_PROCESS, tid, (ioclass << _IOPRIO_CLASS_SHIFT) | level) == -1:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def apply_priorities(job: JobPlan) -> str | None:
    """nice, prio and prioclass for the calling worker thread, as fio sets them in its job process (nice is
    an increment, as nice(2)); the error fio would report, or None."""
    v = job.options
    tid = threading.get_native_id()
    if v.get("prio") is not None or v.get("prioclass") is not None:
        try:
            _ioprio_set(tid, int(v.get("prioclass") or 0), int(v.get("prio") or 0))
        except OSError as exc:
            return f"ioprio_set: {exc.strerror}"
    nice = int(v.get("nice") or 0)
    if nice:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + nice)
        except OSError as exc:
            return f"nice: {exc.strerror}"
    return None


def run_hook(job: JobPlan, which: str) -> tuple[str | None, str]:
    """exec_prerun / exec_postrun: the command through the shell, its output in '<name>.<which>.txt' as fio
    does. Returns (error or None, the note fio prints)."""
    command = job.options.get(f"exec_{which}")
    if not command:
        return None, ""
    out = f"{job.name}.{which}.txt"
    note = f"{job.name}: saving the output of exec_{which} in {out}"
    status = subprocess.run(f"{command} > {shlex.quote(out)} 2>&1", shell=True, check=False).returncode
    if status != 0:
        return f"exec_{which} command exited with status {status} (see {out})", note
    return None, note


def _file_size(fp: FilePlan) -> int:
    return 0 if fp.is_block or fp.is_char else fp.required_size


def prepare_open_file(job: JobPlan, fd: int, fp: FilePlan) -> list[str]:
    """What fio does to a file it has just opened: drop its cached pages (invalidate=1, fio's default:
    posix_fadvise DONTNEED over the job's region of a file, BLKFLSBUF for a block device), then give the
    fadvise_hint. A failure is a note, not an error, as in fio."""
    notes: list[str] = []
    if job.options.get("invalidate", True) and not job.pre_read:  # pre_read turns invalidate off
        try:
            if fp.is_block:
                fcntl.ioctl(fd, BLKFLSBUF, 0)
            else:
                os.posix_fadvise(fd, fp.region_offset, fp.region_size, os.POSIX_FADV_DONTNEED)
        except OSError as exc:
            notes.append(f"cache invalidation of {fp.path} failed: {exc.strerror}")
    hint = str(job.options.get("fadvise_hint") or "1")
    if hint != "0":
        advice = _FADVISE.get(hint) or (
            os.POSIX_FADV_RANDOM if job.config["random"] else os.POSIX_FADV_SEQUENTIAL
        )
        try:
            os.posix_fadvise(fd, fp.region_offset, fp.region_size, advice)
        except OSError as exc:
            notes.append(f"fadvise_hint on {fp.path} failed: {exc.strerror}")
    return notes


class _Worker(threading.Thread):
    def __init__(self, plan: JobPlan, cancel: threading.Event, anchors: Anchors) -> None:
        super().__init__(name=f"iolab-{plan.name}.{plan.jobnum}", daemon=True)
        self.outcome = WorkerOutcome(plan, steadystate=SteadyState.from_options(plan.options))
        self._anchors = anchors
        self.job: _core.Job | None = None
        self._cancel = cancel
        self._lock = threading.Lock()
        # exitall: this worker alone is told to stop (it may still be waiting out its startdelay)
        self._stopped = threading.Event()

    def stop(self) -> None:
        with self._lock:
            self._stopped.set()
            if self.job is not None:
                self.job.stop()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def _delay(self, seconds: float) -> bool:
        """Wait out the startdelay; True if the run was cancelled or the worker stopped meanwhile."""
        end = time.monotonic() + seconds
        while not (self._cancel.is_set() or self._stopped.is_set()):
            left = end - time.monotonic()
            if left <= 0:
                return False
            self._stopped.wait(min(left, 0.05))
        return True

    def check_iowq(self) -> None:
        """Count the io-wq workers of this worker's job thread (from any thread)."""
        with self._lock:
            job = self.job
        if job is None or self.outcome.plan.ioengine != "io_uring":
            return
        seen = iowq_workers(job.thread_id())
        with self._lock:
            self.outcome.iowq_workers = max(self.outcome.iowq_workers, seen)

    def _open_files(self, plan: JobPlan, fds: list[int]) -> bool:
        for fp in plan.files:
            try:
                # the anchor, never the name: what the gate checked is what this job opens
                fds.append(self._anchors[fp.path].open(_open_flags(plan, fp)))
            except OSError as exc:
                hint = " (the file system may not support O_DIRECT)" if exc.errno == errno.EINVAL else ""
                self.outcome.setup_error = f"{fp.path}: {exc.strerror}{hint}"
                self.outcome.setup_errno = exc.errno or errno.EIO
                return False
        return True

    def _connect_nbd(
        self, plan: JobPlan, target: NbdTarget, socks: list[socket.socket]
    ) -> list[tuple[int, int, int, int]] | None:
        """The job's connections to the export (nbd_conns, at most one per I/O slot) and its one "file":
        the first connection over the export's region. None (setup_error set) if one cannot be made."""
        fp = target.file
        assert fp is not None
        want = max(1, min(target.conns, int(plan.config["iodepth"])))
        uri = nbd_client.parse_uri(target.uri)
        try:
            for _ in range(want):
                sock, info = nbd_client.connect(uri)
                socks.append(sock)
                if info.size != target.info.size:
                    self.outcome.setup_error = (
                        f"uri={target.uri}: the export's size changed from {target.info.size} to {info.size} "
                        "bytes since the job was planned"
                    )
                    self.outcome.setup_errno = errno.ESTALE
                    return None
        except nbd_client.NbdError as exc:
            self.outcome.setup_error = str(exc)
            self.outcome.setup_errno = errno.ECONNREFUSED
            return None
        if fp.region_size <= 0:
            return []
        return [(socks[0].fileno(), fp.region_offset, fp.region_size, target.info.size)]

    def _unlink(self, path: str) -> None:
        """unlink=1: remove the name only while it still is the file the job used (anchor.py)."""
        try:
            kept = self._anchors[path].remove_name()
        except OSError as exc:
            kept = f"{path} was not removed: {exc.strerror}"
        if kept:
            self.outcome.notes.append(kept)

    def run(self) -> None:
        plan = self.outcome.plan
        self.outcome.started_at = time.monotonic()
        fds: list[int] = []
        socks: list[socket.socket] = []
        try:
            if plan.startdelay_ns and self._delay(plan.startdelay_ns / 1e9):
                return  # stopped before it started (no postrun: fio kills such a job)
            if plan.cpus is not None:
                try:
                    os.sched_setaffinity(0, plan.cpus)  # this thread only (Linux)
                except OSError as exc:
                    cpus = ",".join(map(str, sorted(plan.cpus)))
                    self.outcome.setup_error = f"cannot run on CPU(s) {cpus}: {exc.strerror}"
                    return
            problem = apply_priorities(plan)
            if problem is None:
                problem, note = run_hook(plan, "prerun")
                if note:
                    self.outcome.notes.append(note)
            if problem is not None:
                self.outcome.setup_error = problem
                return
            if plan.nbd is not None:
                # the export, through connections made now (the plan's probe connection is closed)
                files = self._connect_nbd(plan, plan.nbd, socks)
                if files is None:
                    return
            elif plan.create_only and plan.create_on_open:
                # fio: a create_only job never opens its files, so those created on open never appear
                files = []
            else:
                if not self._open_files(plan, fds):
                    return
                for fd, fp in zip(fds, plan.files, strict=True):
                    if not fp.is_char:
                        self.outcome.notes.extend(prepare_open_file(plan, fd, fp))
                if plan.pre_read:
                    for fd, fp in zip(fds, plan.files, strict=True):
                        _pre_read(fd, fp, int(plan.config["max_bs"]))
                # a regular file's size is the one its setup left (fio's real_file_size): a job does not
                # see another job growing the file later
                files = [
                    (fd, fp.region_offset, fp.region_size, _file_size(fp))
                    for fd, fp in zip(fds, plan.files, strict=True)
                    if fp.region_size > 0  # fio ignores a file with nothing to do
                ]
            idle = plan.create_only or not files
            if not files:
                # a clone left without files (fio's shared generated names) does no I/O: an idle core job
                # on /dev/null gives its empty result
                fds.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
                files = [(fds[-1], 0, int(plan.config["max_bs"]), 0)]
            config = plan.config
            if idle:
                io_size = max(int(config["max_bs"]), int(config["io_size"]))
                config = dict(config, engine=ENGINE_PSYNC, engine_flags=0, io_size=io_size)
            paths = [fp.path for fp in plan.files if fp.region_size > 0] or [os.devnull]
            if plan.nbd is not None:
                paths = [plan.nbd.uri]
            job = _core.Job(pack_config(config), files, [s.fileno() for s in socks[1:]])
            with self._lock:
                self.job = job
                # stopped before its I/O loop (exitall, Ctrl-C, create_only): fio reports no latency depth
                no_loop = self._cancel.is_set() or self._stopped.is_set() or plan.create_only
                if no_loop or idle:
                    job.stop()  # run() then returns at once with an empty, valid result
            job.run()
            self.check_iowq()  # the workers outlive the run until the ring is closed
            raw = job.result()
            error_msg = name_files(raw.error_msg, paths) if raw.error_msg else raw.error_msg
            if error_msg and plan.nbd is not None and plan.nbd.uri not in error_msg:
                error_msg = f"{error_msg} (NBD server at uri={plan.nbd.uri})"
            # idle: doing nothing was the plan, not an interruption
            stopped = False if idle and not self._cancel.is_set() else raw.stopped
            # a stop that lands before the first I/O counts as one before the loop: in fio the window
            # between entering the loop and issuing the first I/O is microseconds
            ddirs = [d for d in (raw.ddir.read, raw.ddir.write, raw.ddir.sync) if d is not None]
            issued = any(d.ios or d.err_ios for d in ddirs)
            io_loop = not no_loop and (issued or not stopped)
            with self._lock:
                iowq_workers = self.outcome.iowq_workers
            self.outcome.raw = replace(
                raw, error_msg=error_msg, stopped=stopped, io_loop=io_loop, iowq_workers=iowq_workers
            )
        except (OSError, ValueError, RuntimeError) as exc:
            self.outcome.setup_error = str(exc)
        finally:
            for fd in fds:
                os.close(fd)
            clean = self.outcome.raw is not None and not self.outcome.raw.error_msg
            for sock in socks:
                # NBD_CMD_DISC only when nothing can be in flight; otherwise just close
                if clean:
                    nbd_client.disconnect(sock)
                else:
                    sock.close()
            if self.outcome.raw is not None:  # fio runs it once the job has completed
                problem, note = run_hook(plan, "postrun")
                if note:
                    self.outcome.notes.append(note)
                if problem is not None:
                    self.outcome.notes.append(problem)
            if plan.unlink:
                for fp in plan.files:
                    if not (fp.is_block or fp.is_char):
                        self._unlink(fp.path)
            self.outcome.finished_at = time.monotonic()


_FILE_REF = re.compile(r"of file (\d+)(?: \(fd \d+\))?")


def name_files(message: str, paths: Sequence[str]) -> str:
    """The core says "of file N (fd M)" (the Nth file it was given): the user wants the path."""

    def path(match: re.Match[str]) -> str:
        index = int(match.group(1))
        return f"of {paths[index]}" if index < len(paths) else match.group(0)

    return _FILE_REF.sub(path, message)


def empty_result() -> CoreResult:
    """The result of a worker that never ran its job (exitall stopped it first): no I/O, no error."""
    return CoreResult(stopped=True, io_loop=False)


#: exit_what values
EXIT_GROUP, EXIT_STONEWALL, EXIT_ALL = "group", "stonewall", "all"


def _exitall(
    plan: RunPlan, ended: WorkerOutcome, running: Sequence[_Worker], pending: list[JobPlan]
) -> list[JobPlan]:
    """fio's exitall / exitall_on_error when `ended` finished: stop the jobs its exit_what names.

    As in fio, exitall set in any job applies to every job's end; exitall_on_error only to the end of a
    job that failed.  group: the running and not yet started jobs of its reporting group; stonewall: every
    running job (later groups still start); all: every running job, and no job starts any more.
    Returns the pending jobs that will now never start (they are reported as jobs that did nothing)."""
    opts = ended.plan.options
    failed = bool(ended.setup_error) or bool(ended.raw and ended.raw.error)
    if not (any(j.options.get("exitall") for j in plan.jobs) or (opts.get("exitall_on_error") and failed)):
        return []
    what = str(opts.get("exit_what") or EXIT_GROUP)
    gid = ended.plan.groupid
    for worker in running:
        if what != EXIT_GROUP or worker.outcome.plan.groupid == gid:
            worker.stop()
    if what == EXIT_STONEWALL:
        return []
    dropped = [j for j in pending if what == EXIT_ALL or j.groupid == gid]
    for j in dropped:
        pending.remove(j)
    return dropped


def _eligible(
    plan: JobPlan, finished: set[int], finished_names: dict[str, int], counts: dict[str, int]
) -> bool:
    if plan.wait_for_all_previous and any(i not in finished for i in range(plan.index)):
        return False
    return all(finished_names.get(name, 0) >= counts.get(name, 0) for name in plan.wait_for)


def _eta(workers: Sequence[_Worker], now: float) -> float | None:
    """Seconds left for the running workers of time-limited jobs (None when unknown)."""
    left: list[float] = []
    for w in workers:
        cfg = w.outcome.plan.config
        limit = (cfg["ramp_ns"] + cfg["runtime_ns"]) / 1e9
        if not cfg["runtime_ns"]:
            return None
        left.append(max(0.0, limit - (now - w.outcome.started_at)))
    return max(left) if left else None


def run_plan(
    plan: RunPlan,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    progress_interval_s: float = 0.5,
    phase_snapshot: Callable[[], Any] | None = None,
    failed: dict[int, tuple[str, int]] | None = None,
    anchors: Anchors | None = None,
) -> RunOutcome:
    """Run the workers; `failed` (from prepare_files) names the jobs whose setup failed: not run, done.
    Every file is used through `anchors` (the safety gate's; without them, opened here unchecked)."""
    if anchors is None:
        with anchors_for(plan) as own:
            return run_plan(
                plan,
                on_progress=on_progress,
                progress_interval_s=progress_interval_s,
                phase_snapshot=phase_snapshot,
                failed=failed,
                anchors=own,
            )
    cancel = threading.Event()
    # the handler only sets the event: an exception could land mid-bookkeeping and lose results
    with interrupt.handling(), interrupt.on_signal(cancel.set):
        return _schedule(
            plan, anchors, cancel, on_progress, progress_interval_s, phase_snapshot, failed or {}
        )


def _schedule(
    plan: RunPlan,
    anchors: Anchors,
    cancel: threading.Event,
    on_progress: Callable[[Progress], None] | None,
    progress_interval_s: float,
    phase_snapshot: Callable[[], Any] | None = None,
    failed: dict[int, tuple[str, int]] | None = None,
) -> RunOutcome:
    snapshot = phase_snapshot or (lambda: None)
    phases: list[Phase] = []
    phase: Phase | None = None
    pending = list(plan.jobs)
    counts: dict[str, int] = {}
    for job in plan.jobs:
        counts[job.name] = counts.get(job.name, 0) + 1
    running: list[_Worker] = []
    finished: set[int] = set()
    finished_names: dict[str, int] = {}
    outcomes: dict[int, WorkerOutcome] = {}
    for job in [j for j in pending if j.index in (failed or {})]:
        # fio reaps a job whose setup failed at once: it counts as finished for the jobs waiting on it
        message, errnum = (failed or {})[job.index]
        outcomes[job.index] = WorkerOutcome(job, setup_error=message, setup_errno=errnum)
        pending.remove(job)
        finished.add(job.index)
        finished_names[job.name] = finished_names.get(job.name, 0) + 1
    stopped = False
    t0 = time.monotonic()
    next_progress = t0 + progress_interval_s
    next_iowq = t0 + 0.5
    while pending or running:
        if interrupt.requested() is not None:
            cancel.set()  # also when the signal came before the run started
        if interrupt.forced() and running:
            _abandon(running, outcomes)
            running.clear()
            pending.clear()
        if cancel.is_set() and not stopped:
            stopped = True
            pending.clear()
            for worker in running:
                worker.stop()
        if not cancel.is_set():
            batch = [j for j in pending if _eligible(j, finished, finished_names, counts)]
            # create_serialize=0 jobs set their files up as they start, all of a batch before any does
            # I/O (fio's threads set up, then wait for the go), so no clone's layout removes a file
            # another already opened
            for job in sorted(batch, key=lambda j: j.thread_number):
                if job.create_serialize:
                    continue
                try:
                    setup_job(job, anchors)
                except LayoutError as exc:
                    outcomes[job.index] = WorkerOutcome(job, setup_error=str(exc), setup_errno=exc.errnum)
                    batch.remove(job)
                    pending.remove(job)
                    finished.add(job.index)
                    finished_names[job.name] = finished_names.get(job.name, 0) + 1
            for job in batch:
                if phase is None:
                    phase = Phase(before=snapshot())
                phase.jobs.append(job.index)
                pending.remove(job)
                worker = _Worker(job, cancel, anchors)
                running.append(worker)
                worker.start()
        if running:
            running[0].join(timeout=0.05)
        for worker in [w for w in running if not w.is_alive()]:
            running.remove(worker)
            if worker.outcome.raw is None and worker.outcome.setup_error is None and worker.stopped:
                worker.outcome.raw = empty_result()  # exitall stopped it in its startdelay: it did nothing
            done = [worker.outcome]
            for job in _exitall(plan, worker.outcome, running, pending):
                done.append(WorkerOutcome(job, raw=empty_result()))
            for out in done:
                finished.add(out.plan.index)
                name = out.plan.name
                finished_names[name] = finished_names.get(name, 0) + 1
                outcomes[out.plan.index] = out
        if phase is not None and not running:
            phase.after = snapshot()
            phases.append(phase)
            phase = None
        now = time.monotonic()
        if now >= next_iowq:
            next_iowq = now + 0.5
            for worker in running:
                worker.check_iowq()
        for worker in running:
            _check_steadystate(worker, now)
        if on_progress is not None and now >= next_progress:
            next_progress = now + progress_interval_s
            on_progress(_progress(running, len(finished), len(plan.jobs), now - t0, now))
    signum = interrupt.requested()
    return RunOutcome(
        workers=[outcomes[i] for i in sorted(outcomes)],
        interrupted=signum is not None,
        signal=signum,
        phases=phases,
    )


def _check_steadystate(worker: _Worker, now: float) -> None:
    """steadystate=: once a second, from the job's live counters; the job is stopped when it settled."""
    ss = worker.outcome.steadystate
    job = worker.job
    if ss is None or job is None or ss.attained or (ss.started and not ss.due(now)):
        return
    r_ios, w_ios, r_bytes, w_bytes, phase, t_ios, t_bytes = job.progress()
    ios, nbytes = r_ios + w_ios + t_ios, r_bytes + w_bytes + t_bytes
    if not ss.started:
        if phase in (1, 2):  # the job is doing I/O (ramp or measured): the clock starts
            ss.start(now, ios, nbytes)
        return
    if phase in (1, 2) and ss.sample(now, ios, nbytes):
        job.stop()


def _abandon(running: Sequence[_Worker], outcomes: dict[int, WorkerOutcome]) -> None:
    """After a second stop signal: report the workers that have not ended as such, without waiting (their
    threads are daemons; a copy of the outcome, so that the thread cannot change it while it is reported)."""
    signum = interrupt.requested() or 0
    now = time.monotonic()
    for worker in running:
        plan = worker.outcome.plan
        outcomes[plan.index] = WorkerOutcome(
            plan,
            setup_error=f"had not ended when the second stop signal came ({interrupt.signal_name(signum)}): "
            "abandoned, no results",
            setup_errno=errno.EINTR,
            started_at=worker.outcome.started_at,
            finished_at=now,
            notes=list(worker.outcome.notes),
        )


def _progress(running: Sequence[_Worker], done: int, total: int, elapsed: float, now: float) -> Progress:
    totals = [0, 0, 0, 0, 0, 0]
    measuring = False
    for worker in running:
        job = worker.job
        if job is None:
            continue
        r_ios, w_ios, r_bytes, w_bytes, phase, t_ios, t_bytes = job.progress()
        now_counts = (r_ios, w_ios, r_bytes, w_bytes, t_ios, t_bytes)
        totals = [a + b for a, b in zip(totals, now_counts, strict=True)]
        measuring = measuring or phase == 2
    return Progress(
        elapsed_s=elapsed,
        running=len(running),
        done=done,
        total=total,
        read_ios=totals[0],
        write_ios=totals[1],
        read_bytes=totals[2],
        write_bytes=totals[3],
        measuring=measuring,
        eta_s=_eta(running, now),
        trim_ios=totals[4],
        trim_bytes=totals[5],
    )
