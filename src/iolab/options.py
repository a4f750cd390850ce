"""THE option table: every fio job option iolab knows, once.

Everything else (the job-file parser, the command-line mapping, ``iolab options``, the planner's
defaults) is derived from :data:`OPTIONS`.  Each :class:`Option` records the option's name and
aliases, the typed value kind iolab stores, its default, its unit, the fio parser class whose quirks
the value follows, whether iolab implements it, and notes on fio behaviour that surprises people.

Facts here were checked against fio 3.33 (its source and ``fio --parse-only --debug=parse``).
Help texts are iolab's own words.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from iolab.ioengines import ENGINE_SPECS

__all__ = [
    "ASYNC_ENGINES",
    "COMPANIONS",
    "ENGINES",
    "FIO_FLAGS",
    "OPTIONS",
    "SUPPORTED_ENGINES",
    "EngineInfo",
    "FioFlag",
    "FioType",
    "Kind",
    "Option",
    "default_values",
    "engine_option_owners",
    "format_options_listing",
    "lookup",
    "lookup_flag",
    "suggest",
    "unimplemented",
]

NS_PER_US = 1_000
NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000


class Kind(StrEnum):
    """The typed value iolab stores for an option (see docs/DESIGN.md section 1)."""

    STR = "str"  # free text
    INT = "int"  # whole number; fio accepts size suffixes here too (iodepth=2k is 2048)
    BOOL = "bool"
    SIZE = "size"  # bytes
    TIME = "time"  # nanoseconds; Option.unit is the unit of a bare number
    PERCENT = "percent"  # whole number 0..100
    ENUM = "enum"  # one of Option.choices (canonical spelling)
    ENUM_LIST = "enum list"  # comma separated choices, stored joined by ','
    RW = "rw"  # I/O pattern plus optional ':N' modifier
    BS_PAIR = "bs-pair"  # sizes per direction: 'read[,write[,trim]]' -> (read, write)
    INT_PAIR = "int-pair"  # whole numbers per direction -> (read, write)
    RANGE = "range"  # 'lo-hi[,lo-hi]' sizes per direction -> ((rlo, rhi), (wlo, whi))
    BSSPLIT = "bssplit"  # 'bs/perc:bs/perc[,...]' -> (read list, write list)
    FILENAMES = "filename list"  # ':' separated, '\:' escapes a colon
    FLOAT_LIST = "percentile list"  # ':' separated floats


class FioType(StrEnum):
    """fio's parser class for the option; it decides fio's splitting and range quirks."""

    STR_STORE = "str_store"  # any non-empty text, stored as is
    STR = "str"  # fixed choices (or a parsing callback)
    STR_MULTI = "str_multi"  # several choices separated by ','
    INT = "int"  # 32-bit number via the size parser
    ULL = "ull"  # 64-bit number via the size parser
    VAL = "val"  # 64-bit number via the size parser
    VAL_ZONE = "val_zone"  # like VAL, plus '%' and zone ('z') forms
    VAL_TIME = "val_time"  # time with suffix
    RANGE = "range"  # lo-hi pairs split on ','
    BOOL = "bool"  # 0 or 1 via sscanf("%u")
    STR_SET = "str_set"  # like BOOL but may be given without a value; any number accepted
    FLOAT_LIST = "float_list"
    STR_ULL = "str_ull"  # parsed by a callback (bssplit)
    DEPRECATED = "deprecated"  # fio refuses it
    SOFT_DEPRECATED = "soft_deprecated"  # fio accepts and ignores it


@dataclass(frozen=True)
class Option:
    """One fio job option."""

    name: str
    kind: Kind
    fio_type: FioType
    default: Any
    help: str
    category: str
    aliases: tuple[str, ...] = ()
    # TIME kinds: nanoseconds meant by a bare number (fio's default unit for this option).
    unit: int = 1
    choices: tuple[str, ...] = ()
    # Ioengines this option belongs to; non-empty only for engine-specific options.
    engines: tuple[str, ...] = ()
    # fio profile (act, tiobench) that defines this option; fio accepts it anywhere, ignoring it.
    profile: str | None = None
    quirks: str = ""
    supported: bool = False
    note: str = ""
    minval: int | None = None
    maxval: int | None = None
    # fio validates a float list against these bounds.
    minfloat: float | None = None
    maxfloat: float | None = None
    max_items: int | None = None
    # The option may be written without '=value' (fio: STR_SET, and a few callback strings).
    bare: bool = False
    # fio sorts the options of one section by this before parsing them (higher first).
    prio: int = 0
    # Another option that mirrors this one: 'not' (direct/buffered) or 'complement' (100 - v).
    inverse: str | None = None
    inverse_kind: str = ""
    # Companion value key for the 'N%' form (a float fraction), e.g. size -> size_percent.
    percent_key: str | None = None
    # Companion value key for the upper end of an 'a-b' range (filesize, startdelay); None if no range.
    range_key: str | None = None
    # Companion value key for the text after 'choice:' (e.g. random_distribution=zipf:1.2).
    suffix_key: str | None = None
    # fio accepts the zone suffix ('10z') for this option.
    zone_ok: bool = False
    # fio runs a callback for every ',', ':' or '-' separated part, so the LAST part wins.
    last_part_wins: bool = False
    # Choice value -> typed value (kb_base=1024 -> 1024), for choice options stored as numbers.
    choice_values: tuple[tuple[str, Any], ...] = ()
    # What happens to an option iolab does not implement (supported=False), decided on the job's final
    # value (see :func:`unimplemented`): a value in ``runs_as`` is what iolab does anyway (default: fio's
    # default), so it is accepted; otherwise, with ``ignorable`` (why no value changes the I/O issued or the
    # numbers reported) it is accepted with a warning; otherwise it is refused. ``planned`` names the
    # issue that brings it.
    runs_as: tuple[Any, ...] | None = None
    ignorable: str = ""
    planned: str = ""
    # The field of the packed C config (iolab.engine.config) the plan copies the value into: booleans as
    # 0/1, numbers as they are (an unset or zero value as the default).  Options whose field is computed
    # (from several options, or fixed up as fio does) leave it None and the plan fills the field itself.
    config_field: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)

    @property
    def takes_value(self) -> bool:
        return not self.bare


# ---------------------------------------------------------------------------------------------
# Categories (for ``iolab options`` grouping)
C_DESC = "description"
C_FILE = "files"
C_IO = "I/O pattern"
C_BS = "block size"
C_ENGINE = "ioengine"
C_TIME = "time"
C_BUF = "buffers"
C_SYNC = "sync"
C_RATE = "rate"
C_VERIFY = "verify"
C_LOG = "logging"
C_STAT = "reporting"
C_PROC = "process"
C_ZONE = "zoned"
C_SS = "steady state"
C_MISC = "misc"
C_PROFILE = "profile"


_table: list[Option] = []


def _add(
    name: str,
    kind: Kind,
    fio_type: FioType,
    default: Any,
    help: str,
    category: str,
    **kw: Any,
) -> None:
    _table.append(Option(name, kind, fio_type, default, help, category, **kw))


def _s(name: str, help: str, cat: str, default: str | None = None, **kw: Any) -> None:
    """Free text (fio STR_STORE)."""
    _add(name, Kind.STR, FioType.STR_STORE, default, help, cat, **kw)


def _cb(name: str, help: str, cat: str, default: str | None = None, **kw: Any) -> None:
    """Text parsed by a fio callback we keep as raw text."""
    _add(name, Kind.STR, FioType.STR, default, help, cat, **kw)


def _i(name: str, help: str, cat: str, default: int | None = 0, **kw: Any) -> None:
    _add(name, Kind.INT, FioType.INT, default, help, cat, **kw)


def _u(name: str, help: str, cat: str, default: int | None = 0, **kw: Any) -> None:
    """64-bit whole number (fio ULL / STR_VAL)."""
    kw.setdefault("fio_type", FioType.VAL)
    ft = kw.pop("fio_type")
    _add(name, Kind.INT, ft, default, help, cat, **kw)


def _b(name: str, help: str, cat: str, default: bool = False, **kw: Any) -> None:
    _add(name, Kind.BOOL, FioType.BOOL, default, help, cat, **kw)


def _f(name: str, help: str, cat: str, default: bool = False, **kw: Any) -> None:
    """Flag: may be written bare (fio STR_SET)."""
    _add(name, Kind.BOOL, FioType.STR_SET, default, help, cat, bare=True, **kw)


def _z(name: str, help: str, cat: str, default: int | None = 0, **kw: Any) -> None:
    """Size in bytes (fio STR_VAL)."""
    kw.setdefault("fio_type", FioType.VAL)
    ft = kw.pop("fio_type")
    _add(name, Kind.SIZE, ft, default, help, cat, **kw)


def _t(name: str, help: str, cat: str, unit: int, default: int | None = 0, **kw: Any) -> None:
    """Time, stored in ns; ``unit`` is what a bare number means."""
    kw.setdefault("fio_type", FioType.VAL_TIME)
    ft = kw.pop("fio_type")
    _add(name, Kind.TIME, ft, default, help, cat, unit=unit, **kw)


def _e(name: str, help: str, cat: str, choices: Iterable[str], default: Any, **kw: Any) -> None:
    _add(name, Kind.ENUM, FioType.STR, default, help, cat, choices=tuple(choices), **kw)


def _p(name: str, help: str, cat: str, default: int | None = 0, **kw: Any) -> None:
    kw.setdefault("minval", 0)
    kw.setdefault("maxval", 100)
    _add(name, Kind.PERCENT, FioType.INT, default, help, cat, **kw)


def _fl(name: str, help: str, cat: str, default: tuple[float, ...], **kw: Any) -> None:
    _add(name, Kind.FLOAT_LIST, FioType.FLOAT_LIST, default, help, cat, **kw)


def _prof(name: str, profile: str, kind: Kind, fio_type: FioType, help: str) -> None:
    _add(
        name,
        kind,
        fio_type,
        None,
        help,
        C_PROFILE,
        unit=NS_PER_S if kind is Kind.TIME else 1,
        profile=profile,
        bare=fio_type == FioType.STR_SET,
        note=f"belongs to fio's '{profile}' profile; fio accepts it in any job and ignores it",
    )


# ---------------------------------------------------------------------------------------------
# Description and job control
_s(
    "name",
    "Job name; in a job section it overrides the section name",
    C_DESC,
    supported=True,
    quirks="a name= inside [global] does not rename the jobs; on the command line --name starts a job",
)
_s("description", "Free text describing the job; printed, never interpreted", C_DESC, supported=True)
_s("wait_for", "Start this job only after the named job has finished", C_PROC, supported=True)
_i("loops", "Run the whole workload this many times", C_TIME, 1, supported=True, config_field="loops")
_i("numjobs", "Run this many identical clones of the job", C_PROC, 1, supported=True)
_f(
    "stonewall",
    "Wait for all earlier jobs to finish before starting; starts a new reporting group",
    C_PROC,
    aliases=("wait_for_previous",),
    supported=True,
)
_f("new_group", "Start a new reporting group without waiting", C_PROC, supported=True)
_f("group_reporting", "Report the jobs of a group as one", C_STAT, supported=True)
_f("thread", "Run jobs as threads instead of processes (iolab always uses threads)", C_PROC, supported=True)
_f(
    "exitall",
    "When one job finishes, stop the others",
    C_PROC,
    supported=True,
    note="as in fio it applies to the whole run once any job sets it; exit_what says which jobs stop",
)
_e(
    "exit_what",
    "Which jobs exitall stops: group, stonewall or all",
    C_PROC,
    ("group", "stonewall", "all"),
    "group",
    supported=True,
    note="group: the finished job's group; stonewall: every running job; all: every job, none starts",
)
_f("exitall_on_error", "When one job fails, stop the others", C_PROC, supported=True)
_s(
    "exec_prerun",
    "Shell command run before the job",
    C_PROC,
    supported=True,
    note="its output goes to <job name>.prerun.txt; a command that fails fails the job",
)
_s(
    "exec_postrun",
    "Shell command run after the job",
    C_PROC,
    supported=True,
    note="its output goes to <job name>.postrun.txt",
)
_i(
    "nice",
    "Scheduling nice value of the job",
    C_PROC,
    0,
    minval=-20,
    maxval=19,
    supported=True,
    quirks="fio parses it with its unsigned integer reader",
)
_i("prio", "I/O priority level within the class", C_PROC, None, minval=0, maxval=7, supported=True)
_i("prioclass", "I/O priority class", C_PROC, None, minval=0, maxval=3, supported=True)
_i("cpumask", "CPU affinity as a bit mask", C_PROC, None, supported=True)
_cb("cpus_allowed", "CPUs the job may run on (list or ranges)", C_PROC, supported=True)
_e(
    "cpus_allowed_policy",
    "How cpus_allowed is shared among clones: shared or split",
    C_PROC,
    ("shared", "split"),
    "shared",
    prio=1,
    supported=True,
)
_cb("numa_cpu_nodes", "NUMA nodes whose CPUs the job may use", C_PROC)
_cb("numa_mem_policy", "NUMA memory policy for the job", C_PROC)
_i("gpu_dev_id", "GPU device used for cuda memory", C_PROC, 0)
_s("cgroup", "Run the job in this cgroup", C_PROC)
_b("cgroup_nodelete", "Keep the cgroup after the job", C_PROC)
_i("cgroup_weight", "Weight of the job's cgroup", C_PROC, None, minval=100, maxval=1000)
_i("uid", "Switch to this user id before running", C_PROC, None)
_i("gid", "Switch to this group id before running", C_PROC, None)
_s("profile", "Run one of fio's built-in profiles (act, tiobench)", C_PROC)
_i("flow_id", "Flow control group id", C_RATE, 0)
_i("flow", "Weight of this job in flow control", C_RATE, 0)
_add(
    "flow_watermark",
    Kind.STR,
    FioType.SOFT_DEPRECATED,
    None,
    "Deprecated flow control setting; fio accepts and ignores it",
    C_RATE,
)
_i("flow_sleep", "Microseconds to sleep when flow control holds the job back", C_RATE, 0)
_f("verify_only", "Only verify data written earlier, do not write", C_VERIFY, supported=True)
_i("hugepage-size", "Huge page size used for shmhuge/mmaphuge memory", C_BUF, 2 * 1024 * 1024)
_u("lockmem", "Lock this much memory to simulate less RAM", C_MISC, 0)
_s("ioscheduler", "Switch the device to this I/O scheduler", C_FILE)
_e(
    "kb_base",
    "Meaning of k/m/g in values: 1024 (fio default) or 1000",
    C_MISC,
    ("1024", "1000"),
    1024,
    prio=1,
    choice_values=(("1024", 1024), ("1000", 1000)),
    supported=True,
    quirks="with 1024 (default) 'k'/'KB' mean 1024 while 'KiB' means 1000; with 1000 it is the other"
    " way round. fio applies it before the other options of the same section.",
)
_e(
    "unit_base",
    "Report bits (1), bytes (8) or guess (0)",
    C_STAT,
    ("0", "8", "1"),
    0,
    prio=1,
    choice_values=(("0", 0), ("8", 8), ("1", 1)),
    supported=True,
)
_e("clocksource", "Clock used for timing", C_MISC, ("gettimeofday", "clock_gettime", "cpu"), None)
_i("gtod_cpu", "Dedicate this CPU to timekeeping", C_MISC, None)

# Files
_add(
    "filename",
    Kind.FILENAMES,
    FioType.STR_STORE,
    [],
    "File(s) or device(s) to use, ':' separated",
    C_FILE,
    prio=-1,
    supported=True,
    quirks="a ':' separates names; write '\\:' for a colon inside a name",
)
_s(
    "directory",
    "Directory for the job's files",
    C_FILE,
    supported=True,
    quirks="a ':' separates several directories, which fio uses in turn",
)
_s(
    "filename_format",
    "Pattern for generated file names",
    C_FILE,
    "$jobname.$jobnum.$filenum",
    prio=-1,
    supported=True,
    quirks="$jobname, $jobnum, $filenum and $clientuid, in any case; without $jobnum the clones find"
    " their names taken and get no file (they do no I/O); missing directories of the first file are"
    " created (mode 0700)",
)
_b("unique_filename", "Prefix file names with the client address in client/server mode", C_FILE, True)
_e(
    "lockfile",
    "Lock files during I/O: none, exclusive or readwrite",
    C_FILE,
    ("none", "exclusive", "readwrite"),
    "none",
    prio=1,
    suffix_key="lockfile_arg",
)
_s("opendir", "Add every file under this directory", C_FILE)
_i("nrfiles", "Number of files per job", C_FILE, 1, aliases=("nr_files",), supported=True)
_i("openfiles", "How many files may be open at once", C_FILE, None)
_e(
    "file_service_type",
    "How I/O moves between files",
    C_FILE,
    ("random", "zipf", "pareto", "normal", "gauss", "roundrobin", "sequential"),
    "roundrobin",
    suffix_key="file_service_type_arg",
    supported=True,
    quirks="':N' after random, roundrobin or sequential is the I/Os per turn; after zipf, pareto or"
    " normal it is the distribution's parameter, and a file that runs out starts over (never done)",
)
_e(
    "fallocate",
    "How files are preallocated",
    C_FILE,
    ("none", "native", "posix", "keep", "truncate", "0", "1"),
    "native",
    supported=True,
    quirks="only when a file is laid out; 0 means none and 1 posix; with none or keep a write-only"
    " job's new file starts empty and grows as it is written",
)
_e(
    "fadvise_hint",
    "posix_fadvise hint for the access pattern",
    C_FILE,
    ("0", "1", "random", "sequential"),
    "1",
    supported=True,
    note="1 (the default) advises random or sequential access by the job's pattern, on every file it opens",
)
_add(
    "filesize",
    Kind.SIZE,
    FioType.VAL,
    None,
    "Size of each file (a range 'lo-hi' picks sizes in between)",
    C_FILE,
    minval=1,
    supported=True,
    range_key="filesize_max",
    quirks="'lo-hi' gives a range (upper end in filesize_max); fio keeps the values in the order written",
)
_b(
    "file_append",
    "Start I/O at the end of existing files",
    C_FILE,
    supported=True,
    quirks="the offset becomes the file's size; a job that reads rewrites the whole file first",
)
_b("fill_device", "Write until the device or file system is full", C_FILE, aliases=("fill_fs",))
_b(
    "create_serialize",
    "Lay out files one at a time",
    C_FILE,
    True,
    supported=True,
    quirks="0: each job sets its files up when it starts (after stonewalls), not all before the run",
)
_b("create_fsync", "fsync files after laying them out", C_FILE, True, supported=True)
_b("create_on_open", "Create files when the job opens them, not at setup", C_FILE, supported=True)
_b("create_only", "Only create the files, do no I/O", C_FILE, supported=True)
_b(
    "allow_file_create",
    "Allow fio to create files that do not exist",
    C_FILE,
    True,
    supported=True,
    quirks="0 with a file that must grow: fio removes the old file, then fails to create it",
)
_b("allow_mounted_write", "Allow writes to a mounted block device", C_FILE)
_b(
    "pre_read",
    "Read files into the page cache before starting",
    C_FILE,
    supported=True,
    quirks="turns invalidate off",
)
_b("unlink", "Delete the job's files when it finishes", C_FILE, supported=True)
_b("unlink_each_loop", "Delete the job's files after every loop", C_FILE)
_b(
    "overwrite",
    "Lay out files fully before writing so writes overwrite data",
    C_FILE,
    supported=True,
    quirks="always on for jobs that read",
)
_b(
    "invalidate",
    "Drop the page cache for the files before starting",
    C_FILE,
    True,
    supported=True,
    note="as fio: at open, at every new loop, and when a buffered time_based job wraps round its file;"
    " files with posix_fadvise(DONTNEED) over the job's region, block devices with BLKFLSBUF",
)

# I/O pattern
_add(
    "rw",
    Kind.RW,
    FioType.STR,
    "read",
    "I/O pattern",
    C_IO,
    aliases=("readwrite",),
    choices=(
        "read",
        "write",
        "trim",
        "randread",
        "randwrite",
        "randtrim",
        "rw",
        "readwrite",
        "randrw",
        "trimwrite",
        "randtrimwrite",
    ),
    suffix_key="rw_modifier",
    supported=True,
    note="trim, randtrim, trimwrite, randtrimwrite: BLKDISCARD on block devices, a punched hole"
    " (fallocate PUNCH_HOLE|KEEP_SIZE) in regular files, where fio 3.33 fails the trim",
    quirks="':N' after a sequential pattern adds N bytes after every I/O and stops at the end of the"
    " file; a negative N goes backwards and wraps to the end. After a random pattern every N-th I/O"
    " takes a random offset and the others continue from the previous one. fio reads 'randread:'"
    " and 'randread:0' as never jumping, i.e. sequential.",
)
_e("rw_sequencer", "How the ':N' modifier of rw is applied", C_IO, ("sequential", "identical"), "sequential")
_p(
    "rwmixread",
    "Percent of mixed I/O that reads",
    C_IO,
    50,
    inverse="rwmixwrite",
    inverse_kind="complement",
    last_part_wins=True,
    supported=True,
)
_p(
    "rwmixwrite",
    "Percent of mixed I/O that writes",
    C_IO,
    50,
    inverse="rwmixread",
    inverse_kind="complement",
    last_part_wins=True,
    supported=True,
)
_add("rwmixcycle", Kind.STR, FioType.DEPRECATED, None, "Removed option; fio refuses it", C_IO)
_z(
    "size",
    "Total bytes of I/O region for the job (or 'N%' of the file/device)",
    C_IO,
    None,
    fio_type=FioType.VAL_ZONE,
    percent_key="size_percent",
    zone_ok=True,
    last_part_wins=True,
    supported=True,
)
_z(
    "io_size",
    "Bytes to transfer, if different from size",
    C_IO,
    None,
    aliases=("io_limit",),
    fio_type=FioType.VAL_ZONE,
    percent_key="io_size_percent",
    zone_ok=True,
    last_part_wins=True,
    supported=True,
    quirks="I/O stops once io_size x loops bytes were issued, the last block whole (so up to a block"
    " more); a region used up before that starts over",
)
_z(
    "offset",
    "Start I/O at this offset in each file (or 'N%')",
    C_IO,
    0,
    aliases=("fileoffset",),
    fio_type=FioType.VAL_ZONE,
    percent_key="offset_percent",
    zone_ok=True,
    last_part_wins=True,
    supported=True,
)
_z(
    "offset_increment",
    "Each clone starts this much further than the previous",
    C_IO,
    0,
    fio_type=FioType.VAL_ZONE,
    percent_key="offset_increment_percent",
    zone_ok=True,
    last_part_wins=True,
    supported=True,
    quirks="a clone past the end extends the file; fio sets clones up as 0, then numjobs-1 down to 1,"
    " so a percentage is of the file as the clones before left it",
)
_z(
    "offset_align",
    "Align a percentage offset to this many bytes",
    C_IO,
    0,
    fio_type=FioType.INT,
    supported=True,
    quirks="percentage offsets are rounded up, to the smallest block size by default",
)
_u(
    "number_ios",
    "Stop after this many I/Os",
    C_IO,
    0,
    supported=True,
    quirks="counts both directions; the limit is number_ios x loops; size/io_size still end the job"
    " first if they come first",
    config_field="number_ios",
)
_f("norandommap", "Random I/O may hit the same block twice", C_IO, supported=True)
_b("softrandommap", "Continue without the random map if it cannot be allocated", C_IO)
_b(
    "randrepeat",
    "Use the same random sequence on every run",
    C_IO,
    True,
    supported=True,
    config_field="rand_repeat",
)
_u("randseed", "Seed for the random generators", C_IO, 0x89, supported=True)
_b("allrandrepeat", "Make every random choice repeatable", C_IO)
_e("random_generator", "Random number generator", C_IO, ("tausworthe", "lfsr", "tausworthe64"), "tausworthe")
_e(
    "random_distribution",
    "Distribution of random offsets",
    C_IO,
    ("random", "zipf", "pareto", "normal", "zoned", "zoned_abs"),
    "random",
    suffix_key="random_distribution_arg",
    supported=True,
    note="per-direction zone sets (',' in zoned/zoned_abs) are refused",
    quirks="every distribution but random turns the random map off (blocks repeat); zipf and pareto"
    " scatter their hot blocks over the file; 'normal' is fio's: the mean of 12 uniform draws plus a"
    " uniform deviation of the given percent",
)
_add(
    "percentage_random",
    Kind.INT_PAIR,
    FioType.INT,
    (100, 100),
    "Percent of I/O that is random (rest sequential), per direction",
    C_IO,
    maxval=100,
    supported=True,
    quirks="a sequential I/O continues from the end of the previous I/O of its direction, random or not",
)
_add("percentage_sequential", Kind.STR, FioType.DEPRECATED, None, "Removed option; fio refuses it", C_IO)
_e("io_submit_mode", "Submit I/O inline or from a helper thread", C_IO, ("inline", "offload"), "inline")
_b("serialize_overlap", "Never have two overlapping I/Os in flight", C_IO)
_e(
    "sync",
    "Open files with O_SYNC/O_DSYNC",
    C_SYNC,
    ("none", "0", "sync", "1", "dsync"),
    "none",
    supported=True,
)
_b("atomic", "Use atomic direct I/O", C_IO)
_b(
    "direct",
    "Use O_DIRECT (no page cache)",
    C_IO,
    False,
    inverse="buffered",
    inverse_kind="not",
    supported=True,
    config_field="direct",
)
_b(
    "buffered",
    "Use the page cache (the opposite of direct)",
    C_IO,
    True,
    inverse="direct",
    inverse_kind="not",
    supported=True,
)
_s("read_iolog", "Replay I/O from this log", C_IO)
_s("write_iolog", "Record the job's I/O to this log", C_IO)
_b("read_iolog_chunked", "Read the replay log in chunks", C_IO)
_b("replay_no_stall", "Replay without the recorded delays", C_IO)
_s("replay_redirect", "Replay on this device instead of the recorded one", C_IO)
_i("replay_scale", "Divide replayed offsets by this", C_IO, 1)
_i("replay_align", "Align replayed offsets to this", C_IO, None)
_i("replay_time_scale", "Percent scale of replay timing", C_IO, 100, minval=1)
_cb("replay_skip", "I/O kinds to skip while replaying", C_IO)
_s("merge_blktrace_file", "Merged blktrace output file", C_IO)
_fl("merge_blktrace_scalars", "Per-trace time scale percentages", C_IO, (), max_items=20)
_fl("merge_blktrace_iters", "Per-trace iteration counts", C_IO, (), max_items=20)

# Block sizes
_add(
    "bs",
    Kind.BS_PAIR,
    FioType.ULL,
    (4096, 4096),
    "Block size; 'read,write' sets each direction",
    C_BS,
    aliases=("blocksize",),
    minval=1,
    supported=True,
    quirks="':' and '-' separate directions just like ',', so bs=4k-8k means read 4k, write 8k",
)
_add(
    "ba",
    Kind.BS_PAIR,
    FioType.ULL,
    (None, None),
    "Align random offsets to this, per direction",
    C_BS,
    aliases=("blockalign",),
    minval=1,
    supported=True,
)
_add(
    "bsrange",
    Kind.RANGE,
    FioType.RANGE,
    None,
    "Block size range 'lo-hi', per direction",
    C_BS,
    aliases=("blocksize_range",),
    supported=True,
)
_add(
    "bssplit",
    Kind.BSSPLIT,
    FioType.STR_ULL,
    None,
    "Mix of block sizes: 'bs/percent:bs/percent', per direction after ','",
    C_BS,
    supported=True,
    quirks="entries without a percent share what is left; '/0' counts as no percent; percents"
    " above 100 are cut to 100",
)
_f(
    "bs_unaligned",
    "Allow block sizes that are not a multiple of the smallest",
    C_BS,
    aliases=("blocksize_unaligned",),
)
_b("bs_is_seq_rand", "bs values mean sequential,random instead of read,write", C_BS)

# Engine and depth
_RUN = [spec.name for spec in ENGINE_SPECS]
_add(
    "ioengine",
    Kind.ENUM,
    FioType.STR_STORE,
    "psync",
    "How I/O is issued",
    C_ENGINE,
    choices=(),
    supported=True,
    note=f"iolab runs {', '.join(_RUN[:-1])} and {_RUN[-1]} (by raw system calls); "
    + "; ".join(f"{alias} is run as {spec.name}" for spec in ENGINE_SPECS for alias, _ in spec.runs_as),
    quirks="fio loads the engine only when the job starts; unknown engines fail then",
)
_i(
    "iodepth",
    "I/Os kept in flight",
    C_ENGINE,
    1,
    minval=1,
    supported=True,
    note="psync always has depth 1; libaio and io_uring keep this many in flight",
)
_i(
    "iodepth_batch",
    "I/Os submitted at once (0: iodepth)",
    C_ENGINE,
    1,
    aliases=("iodepth_batch_submit",),
    supported=True,
    quirks="0 or more than iodepth means iodepth",
)
_i(
    "iodepth_batch_complete_min",
    "Fewest completions to wait for when reaping",
    C_ENGINE,
    1,
    aliases=("iodepth_batch_complete",),
    supported=True,
    quirks="fio still waits for one completion when it reaps with 0 (fio 3.33's wait_for_completions); with"
    " iodepth_batch_complete_max also 0 it reaps after every I/O",
)
_i(
    "iodepth_batch_complete_max",
    "Most completions to reap at once (default: the min)",
    C_ENGINE,
    None,
    supported=True,
)
_i(
    "iodepth_low",
    "Once the queue is full, reap until this many are in flight (default: iodepth)",
    C_ENGINE,
    None,
    supported=True,
)
_e(
    "mem",
    "Where I/O buffers come from",
    C_BUF,
    ("malloc", "shm", "shmhuge", "mmap", "mmapshared", "mmaphuge"),
    "malloc",
    aliases=("iomem",),
    suffix_key="mem_arg",
)
_i("iomem_align", "Alignment of I/O buffers in memory", C_BUF, 0, aliases=("mem_align",))
_e("write_hint", "Write lifetime hint", C_ENGINE, ("none", "short", "medium", "long", "extreme"), None)

# Time
_t(
    "runtime",
    "Stop the job after this long (bare number: seconds)",
    C_TIME,
    NS_PER_S,
    aliases=("timeout",),
    supported=True,
    quirks="fio knows the units us/usec, ms/msec, s, m, h, d only; 'min' or 'sec' make fio read"
    " the number as microseconds",
    config_field="runtime_ns",
)
_f(
    "time_based",
    "Keep repeating the workload until runtime expires",
    C_TIME,
    supported=True,
    config_field="time_based",
)
_t(
    "ramp_time",
    "Run this long before measuring (bare number: seconds)",
    C_TIME,
    NS_PER_S,
    supported=True,
    config_field="ramp_ns",
)
_add(
    "startdelay",
    Kind.TIME,
    FioType.VAL_TIME,
    0,
    "Wait this long before starting; 'lo-hi' picks a random delay",
    C_TIME,
    unit=NS_PER_S,
    range_key="startdelay_max",
    supported=True,
    quirks="with 'lo-hi' the upper end is in startdelay_max; fio reads '10s-20s' as 10 us to 20 s"
    " because the unit check sees 's-20s'",
)
_t(
    "thinktime",
    "Pause this long between I/Os (bare number: microseconds)",
    C_TIME,
    NS_PER_US,
    fio_type=FioType.INT,
    supported=True,
    note="like fio, the job first waits for the I/Os in flight, so thinktime caps the depth",
    config_field="thinktime_ns",
)
_t(
    "thinktime_spin",
    "Busy-spin this long of the thinktime",
    C_TIME,
    NS_PER_US,
    fio_type=FioType.INT,
    supported=True,
)
_i("thinktime_blocks", "I/Os between pauses", C_TIME, 1, supported=True)
_e(
    "thinktime_blocks_type",
    "Count thinktime_blocks at completion or issue",
    C_TIME,
    ("complete", "issue"),
    "complete",
    supported=True,
)
_t(
    "thinktime_iotime",
    "Do I/O this long between pauses (bare number: seconds)",
    C_TIME,
    NS_PER_S,
    fio_type=FioType.INT,
    supported=True,
    config_field="thinktime_iotime_ns",
)

# Sync
_i("fsync", "fsync after every N writes (0: never)", C_SYNC, 0, supported=True, config_field="fsync_blocks")
_i(
    "fdatasync",
    "fdatasync after every N writes (0: never)",
    C_SYNC,
    0,
    supported=True,
    config_field="fdatasync_blocks",
)
_i("write_barrier", "Make every Nth write a barrier write", C_SYNC, 0)
_add(
    "sync_file_range",
    Kind.ENUM_LIST,
    FioType.STR_MULTI,
    None,
    "sync_file_range flags after every N writes ('flags:N')",
    C_SYNC,
    choices=("wait_before", "write", "wait_after"),
)
_b("end_fsync", "fsync every file when the job ends", C_SYNC, supported=True, config_field="end_fsync")
_b("fsync_on_close", "fsync a file whenever it is closed", C_SYNC)

# Rate
_add(
    "rate",
    Kind.BS_PAIR,
    FioType.ULL,
    (None, None),
    "Bandwidth cap in bytes/s, per direction",
    C_RATE,
    supported=True,
    note="latencies are measured from each I/O's scheduled time, so a device that falls behind shows it"
    " (no coordinated omission)",
)
_add(
    "rate_min",
    Kind.BS_PAIR,
    FioType.ULL,
    (None, None),
    "Fail if bandwidth falls below this, per direction",
    C_RATE,
    aliases=("ratemin",),
    supported=True,
    note="as fio: checked from 2 s into the job, every rate_cycle, over the I/O done since the last check;"
    " the job then fails with EIO",
)
_add(
    "rate_iops",
    Kind.INT_PAIR,
    FioType.INT,
    (None, None),
    "IOPS cap, per direction",
    C_RATE,
    supported=True,
    note="counted in bytes of the smallest block size, as fio does; latencies are"
    " measured from each I/O's scheduled time (no coordinated omission)",
)
_add(
    "rate_iops_min",
    Kind.INT_PAIR,
    FioType.INT,
    (None, None),
    "Fail if IOPS fall below this, per direction",
    C_RATE,
    supported=True,
    note="checked like rate_min (which wins if both are set per direction; fio refuses both at once)",
)
_e(
    "rate_process",
    "How rate-limited I/O is spaced: linear or poisson",
    C_RATE,
    ("linear", "poisson"),
    "linear",
    supported=True,
)
_i("rate_cycle", "Window in ms for rate_min checks", C_RATE, 1000, aliases=("ratecycle",), supported=True)
_b("rate_ignore_thinktime", "Rate limiting ignores thinktime", C_RATE)
_add(
    "max_latency",
    Kind.TIME,
    FioType.ULL,
    None,
    "Fail the job when a latency exceeds this (bare number: microseconds)",
    C_RATE,
    unit=NS_PER_US,
    supported=True,
    note="total latency (lat) of reads and writes; the job fails with ETIMEDOUT (110)."
    " As in fio, not checked with disable_lat, gtod_reduce or stats=0",
)
_t("latency_target", "Latency to aim for (bare number: microseconds)", C_RATE, NS_PER_US, None)
_t("latency_window", "Window for latency_target (bare number: microseconds)", C_RATE, NS_PER_US, None)
_fl(
    "latency_percentile",
    "Percent of I/O that must meet latency_target",
    C_RATE,
    (100.0,),
    minfloat=0.0,
    maxfloat=100.0,
    max_items=1,
)
_b("latency_run", "Keep searching for the best depth for latency_target", C_RATE)

# Buffers
_f("zero_buffers", "Fill write buffers with zeros", C_BUF, supported=True, config_field="zero_buffers")
_f(
    "refill_buffers",
    "Fill write buffers with fresh data before every write",
    C_BUF,
    supported=True,
    config_field="refill_buffers",
)
_b(
    "scramble_buffers",
    "Lightly scramble buffers to defeat dedupe",
    C_BUF,
    True,
    supported=True,
    note="every 512-byte sector of a write gets its offset and a running count (fio stamps offset and"
    " time); not with refill_buffers or zero_buffers",
    config_field="scramble_buffers",
)
_cb("buffer_pattern", "Fill buffers with this pattern", C_BUF)
_p("buffer_compress_percentage", "How compressible write buffers are", C_BUF, None)
_i("buffer_compress_chunk", "Granularity of buffer_compress_percentage", C_BUF, 512)
_p("dedupe_percentage", "Percent of writes that repeat earlier buffers", C_BUF, None)
_b("dedupe_global", "Dedupe across jobs", C_BUF)
_e("dedupe_mode", "Where duplicate buffers come from", C_BUF, ("repeat", "working_set"), "repeat")
_p("dedupe_working_set_percentage", "Size of the dedupe working set", C_BUF, 5)

# Verify
_e(
    "verify",
    "Verify written data with this method",
    C_VERIFY,
    (
        "0",
        "md5",
        "crc64",
        "crc32",
        "crc32c-intel",
        "crc32c",
        "crc16",
        "crc7",
        "sha1",
        "sha256",
        "sha512",
        "sha3-224",
        "sha3-256",
        "sha3-384",
        "sha3-512",
        "xxhash",
        "meta",
        "pattern",
        "null",
    ),
    "0",
    supported=True,
    note="crc64, crc32, crc16, crc7, sha3-* and null are refused (not implemented by iolab)",
)
_b("do_verify", "Run the verify phase", C_VERIFY, True, supported=True)
_add("verifysort", Kind.STR, FioType.SOFT_DEPRECATED, None, "Deprecated; fio ignores it", C_VERIFY)
_add("verifysort_nr", Kind.STR, FioType.SOFT_DEPRECATED, None, "Deprecated; fio ignores it", C_VERIFY)
_i("verify_interval", "Verify header every this many bytes", C_VERIFY, None, minval=80, supported=True)
_i("verify_offset", "Put the verify header at this offset", C_VERIFY, None, minval=40, supported=True)
_cb(
    "verify_pattern",
    "Pattern to write and check",
    C_VERIFY,
    supported=True,
    note="0x hex, decimal numbers, \"strings\" and %o; a pattern read from a file ('name') is refused",
)
_b("verify_fatal", "Stop at the first verify failure", C_VERIFY, supported=True)
_b(
    "verify_dump",
    "Dump data of failed verifies",
    C_VERIFY,
    supported=True,
    note="the first 4 bad chunks, as FILE.OFFSET.received/.expected (.hdr_fail for a bad header) in the "
    "working directory; an existing file is never overwritten",
)
_i("verify_async", "Threads doing verify", C_VERIFY, 0)
_u("verify_backlog", "Verify after this many writes", C_VERIFY, None, supported=True)
_i("verify_backlog_batch", "Blocks to verify per backlog run", C_VERIFY, None, supported=True)
_cb("verify_async_cpus", "CPUs for the verify threads", C_VERIFY)
_b("experimental_verify", "Verify with the experimental method", C_VERIFY)
_b("verify_state_load", "Load the verify state of a previous run", C_VERIFY)
_b("verify_state_save", "Save the verify state at the end", C_VERIFY, True)
_p("trim_percentage", "Percent of verified blocks to trim", C_VERIFY, 0)
_b("trim_verify_zero", "Check that trimmed blocks read back as zeros", C_VERIFY, True)
_u("trim_backlog", "Trim after this many blocks", C_VERIFY, None)
_i("trim_backlog_batch", "Blocks to trim per backlog run", C_VERIFY, None)

# Zoned
_e(
    "zonemode",
    "Zone handling: none, strided or zbd",
    C_ZONE,
    ("none", "strided", "zbd"),
    "none",
    supported=True,
    note="zbd is refused",
    quirks="strided zones apply only to a job with one file (fio ignores them otherwise)",
)
_z(
    "zonesize",
    "Zone size",
    C_ZONE,
    0,
    supported=True,
    quirks="with zonemode=strided: bytes of I/O done in a zone before moving on; refused (as in fio)"
    " without zonemode=strided",
)
_z("zonecapacity", "Zone capacity", C_ZONE, 0)
_z(
    "zonerange",
    "Zone range",
    C_ZONE,
    0,
    supported=True,
    quirks="length of a strided zone (default zonesize); the next zone starts zonerange+zoneskip later",
)
_z(
    "zoneskip",
    "Bytes to skip after each zone",
    C_ZONE,
    0,
    fio_type=FioType.VAL_ZONE,
    zone_ok=True,
    last_part_wins=True,
    supported=True,
)
_b("read_beyond_wp", "Allow reads past the write pointer", C_ZONE)
_i("max_open_zones", "Most zones open at once", C_ZONE, 0)
_i("job_max_open_zones", "Most zones this job keeps open", C_ZONE, 0)
_b("ignore_zone_limits", "Ignore the device's open zone limit", C_ZONE)
_fl(
    "zone_reset_threshold",
    "Reset zones above this fraction of capacity",
    C_ZONE,
    (),
    minfloat=0.0,
    maxfloat=1.0,
    max_items=1,
)
_fl(
    "zone_reset_frequency",
    "Fraction of writes that trigger a zone reset",
    C_ZONE,
    (),
    minfloat=0.0,
    maxfloat=1.0,
    max_items=1,
)

# Logging
_b("per_job_logs", "Separate log files per job", C_LOG, True)
_cb("write_bw_log", "Log bandwidth samples (optional file name prefix)", C_LOG, bare=True)
_cb("write_lat_log", "Log latency samples (optional file name prefix)", C_LOG, bare=True)
_cb("write_iops_log", "Log IOPS samples (optional file name prefix)", C_LOG, bare=True)
_cb("write_hist_log", "Log latency histograms (optional file name prefix)", C_LOG, bare=True)
_i("log_entries", "Initial number of log entries", C_LOG, 1024, minval=1024)
_i("log_avg_msec", "Average log samples over this many ms", C_LOG, 0)
_i("log_hist_msec", "Histogram log interval in ms", C_LOG, 0)
_i("log_hist_coarseness", "Merge histogram buckets by 2^N", C_LOG, 0)
_b("log_max_value", "Log the maximum instead of the average", C_LOG)
_b("log_offset", "Add the I/O offset to log entries", C_LOG)
_b("log_prio", "Add the I/O priority to log entries", C_LOG)
_i("log_compression", "Compress logs in chunks of this size", C_LOG, None)
_cb("log_compression_cpus", "CPUs for log compression", C_LOG)
_b("log_store_compressed", "Keep logs compressed on disk", C_LOG)
_b("log_unix_epoch", "Log absolute Unix times", C_LOG)
_b("log_alternate_epoch", "Log times from another clock's epoch", C_LOG)
_i("log_alternate_epoch_clock_id", "Clock id for log_alternate_epoch", C_LOG, None)
_b("block_error_percentiles", "Report trim error histogram per block", C_LOG)
_i(
    "bwavgtime",
    "Bandwidth sample interval in ms",
    C_LOG,
    500,
    supported=True,
    note="bw_* statistics over intervals of this length, apart from iopsavgtime (as fio); an interval without"
    " I/O is no sample; iolab closes each on time, fio 3.33 a bit late (a few samples fewer) and, if"
    " bwavgtime < iopsavgtime, only when it wakes up for IOPS (far fewer)",
)
_i(
    "iopsavgtime",
    "IOPS sample interval in ms",
    C_LOG,
    500,
    supported=True,
    note="iops_* statistics over intervals of this length, apart from bwavgtime (as fio); an interval without"
    " I/O is no sample",
)

# Reporting
_b(
    "stats",
    "Collect statistics for this job",
    C_STAT,
    True,
    supported=True,
    note="stats=0: the job runs but is left out of every report and of its group's run status line",
)
_b("clat_percentiles", "Report completion latency percentiles", C_STAT, True, supported=True)
_b("lat_percentiles", "Report total latency percentiles", C_STAT, False, supported=True)
_b("slat_percentiles", "Report submission latency percentiles", C_STAT, False, supported=True)
_fl(
    "percentile_list",
    "Percentiles to report, ':' separated",
    C_STAT,
    (1.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99),
    minfloat=0.0,
    maxfloat=100.0,
    max_items=20,
    supported=True,
)
_i("significant_figures", "Digits in terse/json+ latency output", C_STAT, 4, minval=1, maxval=10)
_b("disk_util", "Report disk utilisation", C_STAT, True)
_b(
    "gtod_reduce",
    "Cut down on time calls (turns most latency stats off)",
    C_STAT,
    supported=True,
    note="as fio: sets disable_lat, disable_clat, disable_slat and turns latency percentiles off",
)
_b(
    "disable_lat",
    "Do not measure total latency",
    C_STAT,
    supported=True,
    note="lat is reported as zeros; as in fio, max_latency is then not checked",
)
_b(
    "disable_clat",
    "Do not measure completion latency",
    C_STAT,
    supported=True,
    note="clat, sync latencies and the latency distribution are reported as zeros",
)
_b(
    "disable_slat",
    "Do not measure submission latency",
    C_STAT,
    supported=True,
    note="slat is reported as zeros",
)
_b(
    "disable_bw_measurement",
    "Do not measure bandwidth",
    C_STAT,
    aliases=("disable_bw",),
    supported=True,
    note="fio 3.33 still reports the bandwidth and IOPS samples with it, and so does iolab",
)
_e(
    "unified_rw_reporting",
    "Report reads and writes together",
    C_STAT,
    ("none", "mixed", "both", "0", "1", "2"),
    "none",
    supported=True,
    note="mixed (1): one 'mixed' direction replaces read/write/trim (and JSON's sync); both (2): added",
)
_e(
    "continue_on_error",
    "Keep going after these kinds of errors",
    C_MISC,
    ("none", "read", "write", "io", "verify", "all", "0", "1"),
    "none",
    supported=True,
    note="as fio: only EIO and EILSEQ let the job go on unless ignore_error lists others; errors are"
    " counted (total_err, first_error) and shown as the job's error, with exit status 0",
)
_cb(
    "ignore_error",
    "Error numbers to ignore, per direction",
    C_MISC,
    supported=True,
    note="'read,write,verify' lists of ':' separated errnos; names EPERM..ERANGE as fio 3.33 knows them,"
    " other errors as numbers; a list turns continue_on_error on for its direction",
)
_b("error_dump", "Print every error", C_MISC)

# Steady state
_e(
    "steadystate",
    "Stop when this metric settles (e.g. iops_slope:0.1%)",
    C_SS,
    ("iops", "iops_slope", "bw", "bw_slope"),
    "iops_slope",
    aliases=("ss",),
    suffix_key="steadystate_arg",
    supported=True,
    note="checked once a second by the runner from the job's live counters (fio's criteria and window);"
    " per job: refused with group_reporting",
)
_t(
    "steadystate_duration",
    "Window for steady state detection (bare number: seconds)",
    C_SS,
    NS_PER_S,
    aliases=("ss_dur",),
    supported=True,
)
_t(
    "steadystate_ramp_time",
    "Wait this long before steady state checks (bare number: seconds)",
    C_SS,
    NS_PER_S,
    aliases=("ss_ramp",),
    supported=True,
)

# Profile options: fio registers them for every job, whether the profile runs or not.
_prof("block", "tiobench", Kind.INT, FioType.INT, "tiobench profile: block size in bytes")
_prof("numruns", "tiobench", Kind.INT, FioType.INT, "tiobench profile: number of runs")
_prof("dir", "tiobench", Kind.STR, FioType.STR_STORE, "tiobench profile: test directory")
_prof("threads", "tiobench", Kind.INT, FioType.INT, "tiobench profile: number of threads")
_prof("device-names", "act", Kind.STR, FioType.STR_STORE, "act profile: devices to test")
_prof("load", "act", Kind.INT, FioType.INT, "act profile: load multiplier")
_prof("test-duration", "act", Kind.TIME, FioType.VAL_TIME, "act profile: test length")
_prof("threads-per-queue", "act", Kind.INT, FioType.INT, "act profile: threads per queue")
_prof("read-req-num-512-blocks", "act", Kind.INT, FioType.INT, "act profile: read size in sectors")
_prof("large-block-op-kbytes", "act", Kind.INT, FioType.INT, "act profile: large op size in KiB")
_prof("prep", "act", Kind.BOOL, FioType.STR_SET, "act profile: prepare the devices first")


# ---------------------------------------------------------------------------------------------
# I/O engines


@dataclass(frozen=True)
class EngineInfo:
    """An ioengine fio 3.33 knows, and what iolab does with it."""

    name: str
    runs_as: str | None  # iolab engine used for it; None: not supported
    note: str = ""


#: the engine names iolab accepts: its engines, each followed by the fio names it runs as it
SUPPORTED_ENGINES: tuple[str, ...] = tuple(
    name for spec in ENGINE_SPECS for name in (spec.name, *(alias for alias, _ in spec.runs_as))
)
#: engines that keep several I/Os in flight (iodepth, batching and completion polling apply)
ASYNC_ENGINES: tuple[str, ...] = tuple(spec.name for spec in ENGINE_SPECS if spec.is_async)

_ENGINE_NAMES = (
    "sync",
    "psync",
    "vsync",
    "pvsync",
    "pvsync2",
    "libaio",
    "io_uring",
    "io_uring_cmd",
    "posixaio",
    "solarisaio",
    "windowsaio",
    "rbd",
    "rados",
    "mmap",
    "splice",
    "netsplice",
    "sg",
    "null",
    "cpp_null",
    "net",
    "cpuio",
    "rdma",
    "librpma_apm_client",
    "librpma_apm_server",
    "librpma_gpspm_client",
    "librpma_gpspm_server",
    "e4defrag",
    "falloc",
    "gfapi",
    "gfapi_async",
    "libhdfs",
    "pmemblk",
    "ime_psync",
    "ime_psyncv",
    "ime_aio",
    "dev-dax",
    "filecreate",
    "filestat",
    "filedelete",
    "ftruncate",
    "exec",
    "external",
    "libpmem",
    "http",
    "nbd",
    "dfs",
    "nfs",
    "xnvme",
    "libzbc",
    "libiscsi",
    "libcufile",
    "mtd",
)

ENGINES: dict[str, EngineInfo] = {
    n: EngineInfo(n, n if n in SUPPORTED_ENGINES else None) for n in _ENGINE_NAMES
}
for _spec in ENGINE_SPECS:
    ENGINES[_spec.name] = EngineInfo(_spec.name, _spec.name, _spec.note)
    for _alias, _why in _spec.runs_as:
        ENGINES[_alias] = EngineInfo(_alias, _spec.name, _why)

# Engine-specific options fio 3.33 defines, and the engines that define them.
_ENGINE_OPTIONS: dict[str, tuple[str, ...]] = {
    "hipri": ("io_uring", "io_uring_cmd", "pvsync2", "sg", "xnvme"),
    "hipri_percentage": ("pvsync2",),
    "uncached": ("io_uring", "pvsync2"),
    "nowait": ("io_uring", "libaio", "pvsync2"),
    "cmdprio_percentage": ("io_uring", "libaio"),
    "cmdprio_class": ("io_uring", "libaio"),
    "cmdprio": ("io_uring", "libaio"),
    "cmdprio_bssplit": ("io_uring", "libaio"),
    "userspace_reap": ("libaio",),
    "fixedbufs": ("io_uring",),
    "registerfiles": ("io_uring", "io_uring_cmd"),
    "sqthread_poll": ("io_uring", "io_uring_cmd", "xnvme"),
    "sqthread_poll_cpu": ("io_uring", "io_uring_cmd"),
    "nonvectored": ("io_uring", "io_uring_cmd"),
    "force_async": ("io_uring",),
    "cmd_type": ("io_uring_cmd",),
    "cpuload": ("cpuio", "exec"),
    "cpumode": ("cpuio", "exec"),
    "cpuchunks": ("cpuio",),
    "exit_on_io_done": ("cpuio",),
    "pool": ("dfs", "rados", "rbd"),
    "cont": ("dfs",),
    "chunk_size": ("dfs", "libhdfs"),
    "object_class": ("dfs",),
    "svcl": ("dfs",),
    "donorname": ("e4defrag",),
    "inplace": ("e4defrag",),
    "program": ("exec",),
    "arguments": ("exec",),
    "grace_time": ("exec",),
    "std_redirect": ("exec",),
    "stat_type": ("filestat",),
    "volume": ("gfapi", "gfapi_async"),
    "brick": ("gfapi", "gfapi_async"),
    "single-instance": ("gfapi", "gfapi_async"),
    "https": ("http",),
    "http_host": ("http",),
    "http_user": ("http",),
    "http_pass": ("http",),
    "http_s3_key": ("http",),
    "http_s3_keyid": ("http",),
    "http_swift_auth_token": ("http",),
    "http_s3_region": ("http",),
    "http_s3_sse_customer_key": ("http",),
    "http_s3_sse_customer_algorithm": ("http",),
    "http_s3_storage_class": ("http",),
    "http_mode": ("http",),
    "http_verbose": ("http",),
    "gpu_dev_ids": ("libcufile",),
    "cuda_io": ("libcufile",),
    "namenode": ("libhdfs",),
    "hostname": ("net", "rdma", "libhdfs"),
    "port": (
        "net",
        "rdma",
        "libhdfs",
        "librpma_apm_client",
        "librpma_apm_server",
        "librpma_gpspm_client",
        "librpma_gpspm_server",
    ),
    "hdfsdirectory": ("libhdfs",),
    "single_instance": ("libhdfs",),
    "hdfs_use_direct": ("libhdfs",),
    "initiator": ("libiscsi",),
    "serverip": ("librpma_apm_client", "librpma_apm_server", "librpma_gpspm_client", "librpma_gpspm_server"),
    "direct_write_to_pmem": ("librpma_apm_server", "librpma_gpspm_server"),
    "busy_wait_polling": (
        "librpma_apm_client",
        "librpma_apm_server",
        "librpma_gpspm_client",
        "librpma_gpspm_server",
    ),
    "thp": ("mmap",),
    "skip_bad": ("mtd",),
    "uri": ("nbd",),
    "protocol": ("net", "netsplice"),
    "nodelay": ("net", "netsplice"),
    "listen": ("net", "netsplice"),
    "pingpong": ("net", "netsplice"),
    "interface": ("net", "netsplice"),
    "ttl": ("net", "netsplice"),
    "window_size": ("net", "netsplice"),
    "mss": ("net", "netsplice"),
    "nfs_url": ("nfs",),
    "clustername": ("rados", "rbd"),
    "clientname": ("rados", "rbd"),
    "conf": ("rados",),
    "busy_poll": ("rados", "rbd"),
    "touch_objects": ("rados",),
    "rbdname": ("rbd",),
    "bindname": ("rdma",),
    "verb": ("rdma",),
    "readfua": ("sg",),
    "writefua": ("sg",),
    "sg_write_mode": ("sg",),
    "stream_id": ("sg",),
    "xnvme_be": ("xnvme",),
    "xnvme_async": ("xnvme",),
    "xnvme_sync": ("xnvme",),
    "xnvme_admin": ("xnvme",),
    "xnvme_dev_nsid": ("xnvme",),
    "xnvme_iovec": ("xnvme",),
    "no_completion_thread": ("windowsaio",),
}

# Engine options iolab implements, typed like fio's: declared by the engines' specs (iolab.ioengines).
for _spec in ENGINE_SPECS:
    for _eo in _spec.options:
        _typed: Callable[..., None] = _f if _eo.kind == "flag" else _i if _eo.kind == "int" else _s
        _typed(
            _eo.name,
            _eo.help,
            C_ENGINE,
            _eo.default,
            engines=_ENGINE_OPTIONS.get(_eo.name, (_spec.name,)),  # fio's engines, else iolab's only
            supported=True,
            note=_eo.note,
            config_field=_eo.config_field,
            **({"minval": _eo.minval} if _eo.minval is not None else {}),
            **({"maxval": _eo.maxval} if _eo.maxval is not None else {}),
        )
_TYPED_ENGINE_OPTIONS = {_eo.name for _spec in ENGINE_SPECS for _eo in _spec.options}

for _name, _engs in _ENGINE_OPTIONS.items():
    if _name in _TYPED_ENGINE_OPTIONS:
        continue
    _add(
        _name,
        Kind.STR,
        FioType.STR_STORE,
        None,
        f"Option of the {'/'.join(_engs)} ioengine{'s' if len(_engs) > 1 else ''}",
        C_ENGINE,
        engines=_engs,
        note="engine-specific; "
        + (
            "not implemented by iolab"
            if set(_engs) & set(SUPPORTED_ENGINES)
            else "iolab does not support the engine"
        ),
    )

# Completion polling (iolab only: fio has no such options)
C_POLL = "completion polling (iolab)"
_POLL_NOTE = "iolab extension (fio does not know it); libaio and io_uring only"
_e(
    "poll",
    "Busy-poll for completions before blocking: off, on (fixed window) or adaptive (QEMU's rules)",
    C_POLL,
    ("off", "on", "adaptive"),
    "off",
    supported=True,
    note=_POLL_NOTE,
)
_i(
    "poll_max_ns",
    "Largest poll window in nanoseconds (on: the window)",
    C_POLL,
    32768,
    minval=1,
    supported=True,
    note=_POLL_NOTE + "; QEMU's iothread default",
    config_field="poll_max_ns",
)
_i(
    "poll_grow",
    "Adaptive: multiply the window by this when a wait ends just after it (0: 2)",
    C_POLL,
    0,
    minval=0,
    supported=True,
    note=_POLL_NOTE + "; from 0 the window grows to 4000 ns first",
    config_field="poll_grow",
)
_i(
    "poll_shrink",
    "Adaptive: divide the window by this when a wait exceeds poll_max_ns (0: back to 0)",
    C_POLL,
    0,
    minval=0,
    supported=True,
    note=_POLL_NOTE,
    config_field="poll_shrink",
)

# ---------------------------------------------------------------------------------------------
# Options iolab does not implement: what each of their values means for a run.
# No entry: only fio's default is accepted (it is what iolab does), any other value is refused.

_V12 = "the verify issue (12)"
_LOG13 = "the log-files issue (13)"
_NOT_IMPLEMENTED: dict[str, dict[str, Any]] = {
    # no value changes the I/O or the numbers
    "unique_filename": {"ignorable": "it only names files in fio's client/server mode, which iolab has not"},
    "clocksource": {
        "ignorable": "iolab always times with clock_gettime(CLOCK_MONOTONIC); the source does "
        "not change what is measured"
    },
    "hugepage-size": {"ignorable": "only mem=shmhuge/mmaphuge use it, and iolab refuses those"},
    "gpu_dev_id": {"ignorable": "only mem=cudamalloc uses it, and iolab refuses that"},
    "create_serialize": {
        "ignorable": "files are laid out before anything is measured (iolab lays them out one at a time)"
    },
    "cgroup_nodelete": {"ignorable": "only cgroup= uses it, and iolab refuses that"},
    "error_dump": {"ignorable": "it only prints each error; iolab's JSON holds the error details"},
    "softrandommap": {"ignorable": "iolab's random map is always allocated, so the fallback never happens"},
    "allrandrepeat": {
        "runs_as": (False, True),
        "note": "iolab derives every random choice from the job's seed, so with randrepeat=1 "
        "(the default) all of them repeat",
    },
    "allow_mounted_write": {
        "ignorable": "iolab's safety gate decides: a device that holds data is written "
        "only when --allow-destroy names it, whatever this option says"
    },
    "buffer_compress_chunk": {"ignorable": "only buffer_compress_percentage uses it, and iolab refuses that"},
    "dedupe_global": {"ignorable": "only dedupe_percentage uses it, and iolab refuses that"},
    "dedupe_mode": {"ignorable": "only dedupe_percentage uses it, and iolab refuses that"},
    "dedupe_working_set_percentage": {"ignorable": "only dedupe_percentage uses it, and iolab refuses that"},
    "replay_no_stall": {"ignorable": "only read_iolog uses it, and iolab refuses that"},
    "replay_redirect": {"ignorable": "only read_iolog uses it, and iolab refuses that"},
    "replay_scale": {"ignorable": "only read_iolog uses it, and iolab refuses that"},
    "replay_align": {"ignorable": "only read_iolog uses it, and iolab refuses that"},
    "replay_time_scale": {"ignorable": "only read_iolog uses it, and iolab refuses that"},
    "replay_skip": {"ignorable": "only read_iolog uses it, and iolab refuses that"},
    "read_iolog_chunked": {"ignorable": "only read_iolog uses it, and iolab refuses that"},
    "rate_cycle": {"ignorable": "only rate_min and rate_iops_min use it, and iolab refuses those"},
    "random_generator": {
        "runs_as": ("tausworthe", "tausworthe64"),
        "note": "iolab has one generator of its own (fio's random streams are not "
        "reproduced); lfsr is refused because with norandommap it still covers each block"
        " once, which iolab's generator does not promise",
    },
    # buffers are 4096-aligned, so every smaller power of two is met too
    "iomem_align": {"runs_as": tuple([0] + [1 << i for i in range(13)])},
    # planned
    "verify_async": {"note": "iolab verifies in the job's thread, when a read completes"},
    "verify_async_cpus": {"note": "only verify_async uses it"},
    "experimental_verify": {"note": "iolab reads back what it logged, as fio does by default"},
    "verify_state_load": {
        "note": "iolab keeps no verify state between runs; use verify_only after the write run"
    },
    "verify_state_save": {
        "runs_as": (False, True),
        "note": "fio writes <type>-<job>-<n>-verify.state when a verify job fails or is stopped; iolab "
        "writes no state file (it cannot load one), and reports the failure in its JSON",
    },
    "trim_percentage": {"planned": _V12},
    "trim_verify_zero": {"planned": _V12},
    "trim_backlog": {"planned": _V12},
    "trim_backlog_batch": {"planned": _V12},
    "write_bw_log": {"planned": _LOG13},
    "write_lat_log": {"planned": _LOG13},
    "write_iops_log": {"planned": _LOG13},
    "write_hist_log": {"planned": _LOG13},
    "log_avg_msec": {"planned": _LOG13},
    "log_hist_msec": {"planned": _LOG13},
    "log_hist_coarseness": {"planned": _LOG13},
    "log_max_value": {"planned": _LOG13},
    "log_offset": {"planned": _LOG13},
    "log_prio": {"planned": _LOG13},
    "log_compression": {"planned": _LOG13},
    "log_store_compressed": {"planned": _LOG13},
    "log_unix_epoch": {"planned": _LOG13},
    "log_alternate_epoch": {"planned": _LOG13},
    "log_alternate_epoch_clock_id": {"planned": _LOG13},
    "per_job_logs": {"ignorable": "it only matters with log files, which iolab refuses until " + _LOG13},
    "log_entries": {
        "ignorable": "it only sizes fio's in-memory log, and iolab refuses log files until " + _LOG13
    },
    "log_compression_cpus": {
        "ignorable": "it only matters with log files, which iolab refuses until " + _LOG13
    },
}
for _i_opt, _o in enumerate(_table):
    _extra = _NOT_IMPLEMENTED.get(_o.name)
    if _extra and not _o.supported:
        _fields = {k: v for k, v in _extra.items() if k != "note"}
        if "note" in _extra:
            _fields["note"] = _extra["note"]
        _table[_i_opt] = dataclasses.replace(_o, **_fields)

# ---------------------------------------------------------------------------------------------
# The table

OPTIONS: dict[str, Option] = {}
_BY_NAME: dict[str, Option] = {}
for _o in _table:
    if _o.name in OPTIONS:
        raise RuntimeError(f"option {_o.name} defined twice")
    OPTIONS[_o.name] = _o
    for _n in _o.names:
        if _n in _BY_NAME:
            raise RuntimeError(f"option name {_n} defined twice")
        _BY_NAME[_n] = _o


# Companion value keys (percent forms, choice arguments) and their defaults.
COMPANIONS: dict[str, Any] = {}
for _o in OPTIONS.values():
    if _o.percent_key:
        COMPANIONS[_o.percent_key] = None
    if _o.suffix_key:
        COMPANIONS[_o.suffix_key] = None
    if _o.range_key:
        COMPANIONS[_o.range_key] = None


def lookup(name: str) -> Option | None:
    """Find an option by its name or any alias (exact, case-sensitive as in fio)."""
    return _BY_NAME.get(name)


def companions_of(o: Option) -> tuple[str, ...]:
    """The companion value keys an option fills besides its own (percent form, choice argument, range end)."""
    return tuple(k for k in (o.percent_key, o.suffix_key, o.range_key) if k)


def unimplemented(o: Option, values: Mapping[str, Any]) -> tuple[str, str] | None:
    """What a job's final value of an option iolab does not implement means for the run.

    None: the value is what iolab does anyway (accepted in silence). ``("warning", why)``: the option
    changes neither the I/O issued nor the numbers reported. ``("error", why)``: the option is refused,
    because running the job without it would issue other I/O or report other numbers than fio.
    """
    if o.supported or o.profile or o.fio_type is FioType.SOFT_DEPRECATED:
        return None
    value = values.get(o.name)
    companions = [values.get(k) for k in companions_of(o)]
    accepted = o.runs_as if o.runs_as is not None else (o.default,)
    if value in accepted and all(c is None for c in companions):
        return None
    if o.ignorable:
        return "warning", f"not implemented by iolab, and ignored: {o.ignorable}"
    later = f"; planned in {o.planned}" if o.planned else ""
    shown = "|".join(str(v) for v in accepted if v is not None) or "unset"
    return "error", f"not implemented by iolab{later}; only {o.name}={shown} (what iolab does) is accepted"


def engine_option_owners(name: str) -> tuple[str, ...]:
    """Engines an engine-specific option belongs to (empty for general options)."""
    o = _BY_NAME.get(name)
    return o.engines if o else ()


def suggest(name: str, candidates: Iterable[str] | None = None) -> str | None:
    """Closest option name or alias (difflib), or None if nothing is close."""
    pool = list(candidates) if candidates is not None else list(_BY_NAME)
    best = difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
    if best:
        o = _BY_NAME.get(best[0])
        return o.name if o and candidates is None and best[0] not in o.aliases else best[0]
    return None


def default_values() -> dict[str, Any]:
    """Typed defaults for every general option plus companion keys (a fresh dict)."""
    out: dict[str, Any] = {}
    for o in OPTIONS.values():
        if o.engines:
            continue
        out[o.name] = list(o.default) if isinstance(o.default, list) else o.default
    out.update(COMPANIONS)
    return out


# ---------------------------------------------------------------------------------------------
# fio's own command-line flags (not job options)


@dataclass(frozen=True)
class FioFlag:
    """A fio command-line flag that is not a job option."""

    name: str
    arg: str  # "none", "required" or "optional"
    help: str
    choices: tuple[str, ...] = ()
    multi: bool = False  # may be repeated, values collected in a list
    comma_list: bool = False  # the value is a ',' separated list
    supported: bool = False
    # fio ignores a value outside ``choices`` (keeping its default) instead of failing.
    ignores_bad_choice: bool = False


_flags: list[FioFlag] = [
    FioFlag("output", "required", "Write the report to this file", supported=True),
    FioFlag(
        "output-format",
        "required",
        "Report format(s): normal, json, json+, terse",
        choices=("normal", "json", "json+", "terse"),
        comma_list=True,
        supported=True,
    ),
    FioFlag("minimal", "none", "Same as --output-format=terse", supported=True),
    FioFlag("parse-only", "none", "Parse the jobs and stop", supported=True),
    FioFlag("showcmd", "none", "Print the job files as command lines", supported=True),
    FioFlag(
        "eta",
        "required",
        "When to show progress: always, never or auto",
        choices=("always", "never", "auto"),
        supported=True,
        ignores_bad_choice=True,
    ),
    FioFlag("eta-newline", "required", "Start a new progress line this often"),
    FioFlag("eta-interval", "required", "Progress update interval"),
    FioFlag("status-interval", "required", "Print a full report this often"),
    FioFlag("section", "required", "Only run this job section (may be repeated)", multi=True, supported=True),
    FioFlag(
        "alloc-size", "required", "fio's shared memory pool size in KiB (iolab ignores it)", supported=True
    ),
    FioFlag("readonly", "none", "Refuse jobs that would write or trim", supported=True),
    FioFlag("debug", "required", "fio debug tracing classes"),
    FioFlag("bandwidth-log", "none", "Write aggregate bandwidth logs"),
    FioFlag("append-terse", "none", "Also print terse output (deprecated in fio)"),
    FioFlag(
        "terse-version",
        "required",
        "Terse format version (2..5; 3 by default)",
        choices=("2", "3", "4", "5"),
        supported=True,
    ),
    FioFlag("version", "none", "Print the version and exit", supported=True),
    FioFlag("help", "none", "Print the command-line flags and exit", supported=True),
    FioFlag("cpuclock-test", "none", "Test the CPU clock"),
    FioFlag("crctest", "optional", "Benchmark checksums"),
    FioFlag(
        "cmdhelp", "optional", "List the job options, or show one (--cmdhelp=bs) and exit", supported=True
    ),
    FioFlag("enghelp", "optional", "Help on ioengines"),
    FioFlag("warnings-fatal", "none", "Treat parser warnings as errors", supported=True),
    # fio 3.33 parses --max-jobs and ignores it (its limit is fixed): iolab does the same
    FioFlag(
        "max-jobs", "required", "Accepted and ignored, as fio does (the limit is 4088 jobs)", supported=True
    ),
    FioFlag("server", "optional", "Run as a fio server"),
    FioFlag("daemonize", "required", "Run the server in the background"),
    FioFlag("client", "required", "Run the jobs on a fio server", multi=True),
    FioFlag("remote-config", "required", "Job file on the server side"),
    FioFlag("idle-prof", "required", "Report CPU idleness"),
    FioFlag("inflate-log", "required", "Decompress a compressed log"),
    FioFlag("trigger-file", "required", "Run the trigger when this file appears"),
    FioFlag("trigger-timeout", "required", "Run the trigger at this time"),
    FioFlag("trigger", "required", "Local trigger command"),
    FioFlag("trigger-remote", "required", "Remote trigger command"),
    FioFlag("aux-path", "required", "Directory for fio's state files"),
    FioFlag("merge-blktrace-only", "none", "Only merge blktraces"),
    FioFlag("profile", "required", "Run a built-in profile"),
]
FIO_FLAGS: dict[str, FioFlag] = {f.name: f for f in _flags}
del _flags


def lookup_flag(name: str) -> FioFlag | None:
    return FIO_FLAGS.get(name)


# ---------------------------------------------------------------------------------------------
# ``iolab options``


def _fmt_time(ns: int, unit: int) -> str:
    for div, suffix in (
        (86400 * NS_PER_S, "d"),
        (3600 * NS_PER_S, "h"),
        (60 * NS_PER_S, "m"),
        (NS_PER_S, "s"),
        (NS_PER_MS, "ms"),
        (NS_PER_US, "us"),
    ):
        if ns % div == 0 and (ns or div == unit):
            return f"{ns // div}{suffix}"
    return f"{ns}ns"


def _fmt_size(n: int) -> str:
    for div, suffix in ((1 << 40, "T"), (1 << 30, "G"), (1 << 20, "M"), (1 << 10, "K")):
        if n and n % div == 0:
            return f"{n // div}{suffix}"
    return str(n)


def format_default(o: Option) -> str:
    """The default as fio-style text ('-' when the option has none)."""
    d = o.default
    if d is None or d == () or d == []:
        return "-"
    if o.kind is Kind.BOOL:
        return "1" if d else "0"
    if o.kind is Kind.TIME and isinstance(d, int):
        return _fmt_time(d, o.unit)
    if o.kind is Kind.SIZE and isinstance(d, int):
        return _fmt_size(d)
    if o.kind in (Kind.BS_PAIR, Kind.INT_PAIR) and isinstance(d, tuple):
        if d[0] is None:
            return "-"
        parts = [_fmt_size(int(v)) if o.kind is Kind.BS_PAIR else str(v) for v in d]
        return parts[0] if len(set(parts)) == 1 else ",".join(parts)
    if o.kind is Kind.FLOAT_LIST and isinstance(d, tuple):
        return ":".join(f"{v:g}" for v in d)
    if o.name == "randseed" and isinstance(d, int):
        return hex(d)
    return str(d)


def _status(o: Option) -> str:
    if o.engines:
        state = "supported" if o.supported else "rejected"
        return "engine-specific (" + "/".join(o.engines) + "): " + state
    if o.fio_type is FioType.DEPRECATED:
        return "removed from fio: rejected"
    if o.fio_type is FioType.SOFT_DEPRECATED:
        return "deprecated: accepted, ignored"
    if o.profile:
        return f"{o.profile} profile: accepted, ignored"
    if o.supported:
        return "supported"
    accepted = o.runs_as if o.runs_as is not None else (o.default,)
    shown = "|".join(str(v) for v in accepted if v is not None and v != ()) or "unset"
    if o.ignorable:
        return "not implemented: ignored with a warning (changes neither the I/O nor the numbers)"
    later = f", planned in {o.planned}" if o.planned else ""
    return f"not implemented{later}: refused unless {shown}"


def _detail(o: Option) -> str:
    lines = [f"{o.name}: {o.help}"]
    if o.aliases:
        lines.append(f"  aliases:  {', '.join(o.aliases)}")
    lines.append(f"  type:     {o.kind.value}")
    lines.append(f"  default:  {format_default(o)}")
    if o.kind is Kind.TIME:
        lines.append(f"  unit:     a bare number means {_fmt_time(o.unit, o.unit)}")
    if o.choices:
        lines.append(f"  values:   {', '.join(o.choices)}")
    elif o.name == "ioengine":
        lines.append(f"  values:   {', '.join(SUPPORTED_ENGINES)} (fio's others are refused)")
    if o.minval is not None or o.maxval is not None:
        lo = "" if o.minval is None else str(o.minval)
        hi = "" if o.maxval is None else str(o.maxval)
        lines.append(f"  range:    {lo}..{hi}")
    if o.category:
        lines.append(f"  category: {o.category}")
    lines.append(f"  status:   {_status(o)}")
    if o.ignorable and not o.supported:
        lines.append(f"  why:      {o.ignorable}")
    if o.note:
        lines.append(f"  note:     {o.note}")
    if o.quirks:
        lines.append(f"  fio:      {o.quirks}")
    return "\n".join(lines)


def format_options_listing(filter: str | None = None) -> str:
    """Text for ``iolab options [filter]``.

    No filter: one line per option.  A filter naming an option (or alias) shows that option in
    detail; otherwise options whose name or category contains the filter are listed.
    """
    if filter:
        exact = lookup(filter)
        if exact is not None:
            return _detail(exact) + "\n"
        matches = [
            o
            for o in OPTIONS.values()
            if filter in o.name or filter in o.category or any(filter in a for a in o.aliases)
        ]
        if not matches:
            hint = suggest(filter)
            msg = f"no option matches '{filter}'"
            return msg + (f"; did you mean '{hint}'?\n" if hint else "\n")
    else:
        matches = list(OPTIONS.values())
    width = max(len(o.name) for o in matches)
    out = []
    for o in sorted(matches, key=lambda o: o.name):
        alias = f" (alias {', '.join(o.aliases)})" if o.aliases else ""
        flag = "" if o.supported else " [" + _status(o) + "]"
        out.append(f"{o.name:<{width}}  {o.kind.value:<15} {format_default(o):>9}  {o.help}{alias}{flag}")
    return "\n".join(out) + "\n"
