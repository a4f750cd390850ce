"""The I/O engines iolab runs: one :class:`EngineSpec` each, declared once.

Everything else about an engine is derived from :data:`ENGINE_SPECS`: its entries in the option table
(:mod:`iolab.options`), the plan's mapping of its options onto the packed C config, the doctor's engine
facts, and the C enum, ``IOL_EF_*`` flag bits and registration list of the generated
``csrc/config_gen.h`` (:mod:`iolab.engine.config`).  Adding an engine means its C file
(``csrc/engine_NAME.c``, defining ``iol_engine_NAME``), a spec appended here, and a test.

This module imports nothing of iolab's: the option table and the C config generator both build on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ENGINE_FLAGS",
    "ENGINE_SPECS",
    "GIVEN",
    "JOB_FLAGS",
    "SYNC_ENGINES",
    "EngineOption",
    "EngineSpec",
    "depth_cap_message",
    "engine_flag_bit",
    "engine_flags",
    "spec_of",
]

#: ``engine_flags`` bits of the C config, in bit order (bit 0 first): name, what it asks for.
#: Appending is safe; reordering changes the bits the C side reads.
ENGINE_FLAGS: tuple[tuple[str, str], ...] = (
    ("USERSPACE_REAP", "libaio: accepted; ready completions are always read in user space"),
    ("FIXEDBUFS", "io_uring: registered buffers"),
    ("REGISTERFILES", "io_uring: registered files"),
    ("SQTHREAD_POLL", "io_uring: kernel submission thread"),
    ("SQTHREAD_CPU", "io_uring: pin that thread to cfg->sqthread_poll_cpu"),
    ("HIPRI", "io_uring: polled completions (IORING_SETUP_IOPOLL)"),
    ("NONVECTORED", "io_uring: force IORING_OP_READ/WRITE"),
    ("VECTORED", "io_uring: force IORING_OP_READV/WRITEV (nonvectored=0)"),
    ("MADVISE", "mmap: fadvise_hint is on: madvise the mapping random or sequential by the pattern"),
    ("SYNC_IO", "libpmem: sync=1 (or dsync): drain after every write"),
    ("THP", "mmap: thp=1: MAP_PRIVATE mapping advised MADV_HUGEPAGE, as fio"),
)


def engine_flag_bit(name: str) -> int:
    """The ``engine_flags`` bit of ``name`` (a name of :data:`ENGINE_FLAGS`)."""
    names = [n for n, _ in ENGINE_FLAGS]
    return 1 << names.index(name)


class _Given:
    """Matches any value the job gave (not None): for options whose mere presence sets a flag."""

    def __repr__(self) -> str:
        return "GIVEN"


GIVEN: Any = _Given()


@dataclass(frozen=True)
class EngineOption:
    """An option of one engine, and how it fills the C config.

    ``config_field`` receives the value as a number (a plain copy, done by the plan for every option that
    names a field); ``sets_flags`` lists (value, flag names): when the job's value is ``value`` (``True``:
    any true value, :data:`GIVEN`: any value at all) those ``engine_flags`` bits are set."""

    name: str
    help: str
    kind: str  # "flag" (a boolean), "int" or "str" (text the plan reads; never a config field)
    default: Any = None
    note: str = ""
    minval: int | None = None
    maxval: int | None = None
    config_field: str | None = None
    sets_flags: tuple[tuple[Any, tuple[str, ...]], ...] = ()

    def flags_for(self, value: Any) -> int:
        bits = 0
        if value is None:
            return bits
        for when, names in self.sets_flags:
            if when is GIVEN or (when is True and bool(value)) or (when is not True and value == when):
                for name in names:
                    bits |= engine_flag_bit(name)
        return bits


@dataclass(frozen=True)
class EngineSpec:
    """One engine iolab runs: its C identity, the fio names it runs, its options and capabilities."""

    name: str
    #: the C config's ``engine`` value (``IOL_ENGINE_<NAME>`` in C); the C vtable is ``iol_engine_<name>``
    engine_id: int
    #: one line for ``iolab options`` and the ioengine choices
    note: str
    #: other fio engine names that run as this engine, with why the results are the same
    runs_as: tuple[tuple[str, str], ...] = ()
    #: keeps several I/Os in flight (iodepth, batching and completion polling apply); else depth 1
    is_async: bool = False
    #: most I/Os in flight the C core takes (its I/O pool holds 16-bit indexes)
    max_depth: int = 65535
    #: direct=1 needs buffers, offsets and lengths aligned to the logical block size
    needs_direct_alignment: bool = True
    #: completions can be busy-polled (poll=on|adaptive)
    polling: bool = False
    #: the plan's warning for direct=0 with iodepth>1, when the engine cannot keep a buffered queue full
    buffered_depth_note: str = ""
    options: tuple[EngineOption, ...] = ()
    #: the engine can write past a file's end (else, as fio's FIO_NOEXTEND, a writer's files are laid out
    #: whole before the job, and file_append is refused)
    extends_files: bool = True
    #: ``engine_flags`` this engine takes from fio's general options (see :data:`JOB_FLAGS`)
    job_flags: tuple[str, ...] = ()
    #: the normal output shows the engine's setup line (what it chose changes what the numbers mean)
    setup_in_text: bool = False
    #: does trims (rw=trim, randtrim, trimwrite, randtrimwrite): the C engine handles IOL_OP_TRIM; an engine
    #: without it gets those jobs refused
    trim: bool = False

    @property
    def c_name(self) -> str:
        return self.name.upper()


_URING = "engine-specific: only with ioengine=io_uring"

ENGINE_SPECS: tuple[EngineSpec, ...] = (
    EngineSpec(
        name="psync",
        engine_id=0,
        note="",
        runs_as=(("sync", "run with pread/pwrite (psync); results are equivalent"),),
        trim=True,
    ),
    EngineSpec(
        name="libaio",
        engine_id=1,
        note="io_submit/io_getevents system calls, no libaio library",
        is_async=True,
        polling=True,
        trim=True,
        buffered_depth_note="ioengine=libaio without direct=1: Linux does buffered I/O synchronously inside "
        "io_submit, so the iodepth is not reached (use direct=1)",
        options=(
            EngineOption(
                "userspace_reap",
                "libaio: read completions from the ring in user space, not with io_getevents",
                "flag",
                False,
                note="engine-specific: only with ioengine=libaio; iolab always takes completions that are"
                " ready from the ring (io_getevents only to wait), with or without it (fio reads the ring"
                " only with this option, and only when it reaps with a minimum of 0)",
                sets_flags=((True, ("USERSPACE_REAP",)),),
            ),
        ),
    ),
    EngineSpec(
        name="io_uring",
        engine_id=2,
        note="io_uring system calls and mmapped rings, no liburing",
        is_async=True,
        polling=True,
        trim=True,
        options=(
            EngineOption(
                "fixedbufs",
                "io_uring: register the I/O buffers with the kernel once",
                "flag",
                False,
                note=_URING,
                sets_flags=((True, ("FIXEDBUFS",)),),
            ),
            EngineOption(
                "registerfiles",
                "io_uring: register the files with the kernel once",
                "flag",
                False,
                note=_URING,
                sets_flags=((True, ("REGISTERFILES",)),),
            ),
            EngineOption(
                "sqthread_poll",
                "io_uring: a kernel thread polls the submission ring (no submit system calls)",
                "flag",
                False,
                note=_URING + "; implies registerfiles, as in fio",
                sets_flags=((True, ("SQTHREAD_POLL", "REGISTERFILES")),),
            ),
            EngineOption(
                "sqthread_poll_cpu",
                "io_uring: CPU of the sqthread_poll thread",
                "int",
                None,
                note=_URING,
                minval=0,
                config_field="sqthread_poll_cpu",
            ),
            EngineOption(
                "hipri",
                "io_uring: polled completions (IORING_SETUP_IOPOLL); the device needs poll queues",
                "flag",
                False,
                note="iolab implements it for io_uring and refuses it for a device without poll queues"
                " (/sys/block/DEV/queue/io_poll is 0)",
                sets_flags=((True, ("HIPRI",)),),
            ),
            EngineOption(
                "nonvectored",
                "io_uring: 1 non-vectored read/write, 0 vectored, -1 non-vectored if the kernel has it",
                "int",
                -1,
                note=_URING,
                minval=-1,
                maxval=1,
                sets_flags=((1, ("NONVECTORED",)), (0, ("VECTORED",))),
            ),
            EngineOption(
                "force_async",
                "io_uring: every N-th request is queued with IOSQE_ASYNC (straight to the kernel's io-wq "
                "workers, without the non-blocking try); 0: never",
                "int",
                0,
                note=_URING,
                minval=0,
                config_field="force_async",
            ),
        ),
    ),
    EngineSpec(
        name="mmap",
        engine_id=3,
        note="files mapped whole (MAP_SHARED), I/O by memcpy; fsync/fdatasync are msync(MS_SYNC)",
        needs_direct_alignment=False,
        extends_files=False,
        job_flags=("MADVISE",),
        setup_in_text=True,
        options=(
            EngineOption(
                "thp",
                "mmap: 1 maps the files MAP_PRIVATE and advises MADV_HUGEPAGE (writes stay in memory)",
                "int",
                0,
                note="engine-specific: only with ioengine=mmap; as in fio, thp=1 makes the mapping"
                " private, so writes never reach the file",
                minval=0,
                sets_flags=((True, ("THP",)),),
            ),
        ),
    ),
    EngineSpec(
        name="libpmem",
        engine_id=4,
        note="persistent memory without PMDK: MAP_SYNC mapping (page cache where the file system has no DAX),"
        " flushes by clwb/clflushopt/clflush + sfence, movnt with direct=1",
        needs_direct_alignment=False,
        extends_files=False,
        job_flags=("SYNC_IO",),
        setup_in_text=True,
    ),
)

_NBD = "engine-specific: only with ioengine=nbd"

ENGINE_SPECS += (
    EngineSpec(
        name="nbd",
        engine_id=5,
        note="NBD client over raw sockets (nbd:// and nbd+unix:// URIs), no libnbd",
        is_async=True,
        needs_direct_alignment=False,
        trim=True,
        options=(
            EngineOption(
                "uri",
                "nbd: the NBD URI of the export: nbd://HOST[:PORT]/EXPORT or nbd+unix:///EXPORT?socket=PATH",
                "str",
                None,
                note=_NBD + "; the export's size is the file size; nbds:// (TLS) is refused",
            ),
            EngineOption(
                "nbd_conns",
                "nbd: connections per job, the I/O slots spread over them (slot i on connection i mod N)",
                "int",
                1,
                note="iolab extension (fio has one connection per job); more than 1 needs a server that "
                "advertises multi-conn (NBD_FLAG_CAN_MULTI_CONN) unless nbd_conns_force=1",
                minval=1,
                maxval=64,
            ),
            EngineOption(
                "nbd_conns_force",
                "nbd: open nbd_conns connections even when the server does not advertise multi-conn",
                "flag",
                False,
                note="iolab extension; without multi-conn a flush may not cover writes sent on the other "
                "connections",
            ),
        ),
    ),
)

#: fio's synchronous engines iolab does not run: one request at a time whatever iodepth says
_FIO_ONLY_SYNC = ("vsync", "pvsync", "pvsync2", "splice", "dev-dax")

#: fio engine names (iolab's and fio's others) that have one request in flight whatever iodepth says
SYNC_ENGINES: frozenset[str] = frozenset(
    [s.name for s in ENGINE_SPECS if not s.is_async]
    + [alias for s in ENGINE_SPECS if not s.is_async for alias, _ in s.runs_as]
    + list(_FIO_ONLY_SYNC)
)


def depth_cap_message(engine: str, iodepth: int) -> str | None:
    """What a synchronous engine does with iodepth>1, or None: one text for the plan's note and the
    doctor's finding, so a run that shows the finding does not repeat the note."""
    if engine not in SYNC_ENGINES or iodepth <= 1:
        return None
    return (
        f"ioengine={engine} is synchronous: iodepth={iodepth} is silently capped at 1, one request "
        "is in flight per job"
    )


def spec_of(name: str) -> EngineSpec | None:
    """The spec of an engine iolab runs, by its own name (not a fio alias)."""
    return next((s for s in ENGINE_SPECS if s.name == name), None)


#: ``engine_flags`` set from fio's general options, for the engines whose spec lists them in job_flags:
#: flag name -> whether a job's option values ask for it
JOB_FLAGS: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    # fio's mmap engine advises by the pattern for any hint but 0, "random"/"sequential" included
    "MADVISE": lambda v: str(v.get("fadvise_hint", "1")) not in ("0", "False", "false"),
    "SYNC_IO": lambda v: str(v.get("sync") or "none") not in ("none", "0"),
}


def engine_flags(spec: EngineSpec, values: Mapping[str, Any]) -> int:
    """The ``engine_flags`` word for a job of ``spec`` with option ``values``."""
    bits = 0
    for name in spec.job_flags:
        if JOB_FLAGS[name](values):
            bits |= engine_flag_bit(name)
    for opt in spec.options:
        bits |= opt.flags_for(values.get(opt.name))
    # sqthread_poll_cpu pins the submission thread only when there is one (fio ignores it otherwise)
    if values.get("sqthread_poll") and values.get("sqthread_poll_cpu") is not None:
        bits |= engine_flag_bit("SQTHREAD_CPU")
    return bits


def _check() -> None:
    ids = [s.engine_id for s in ENGINE_SPECS]
    assert ids == list(range(len(ids))), "engine ids index the C registration table: 0, 1, 2, ..."
    names = [o.name for s in ENGINE_SPECS for o in s.options]
    assert len(names) == len(set(names)), "an engine option is declared by one spec"
    assert len(ENGINE_FLAGS) <= 32


_check()
