"""The files of each job and the sizes fio gives them: fio 3.33's file setup, simulated at plan time.

fio names a job's files (filename=, or filename_format for nrfiles generated names, under directory=),
then, for every clone, decides each file's start offset and I/O size from the size the file has *at that
moment*: with create_serialize=1 (the default) all jobs are set up one after another before any starts,
so a clone sees the file as the clones set up before it left it. fio sets up a job's clones in its
thread order (clone 0, then numjobs-1 down to 1), which matters for percentage offsets: a clone placed
past the end extends the file and the later clones take their percentages of the bigger file.
A file that must grow is laid out again (`LayoutSpec`, done by layout.py): unlinked and recreated,
then fallocated, and written in full when the job reads (or overwrite=1).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from iolab.ioengines import spec_of
from iolab.jobfile import JobDef

M32 = 0xFFFFFFFF
M64 = (1 << 64) - 1
#: fio's fallocate spellings -> the mode (0 and 1 are fio's old boolean forms)
FALLOCATE_MODES = {
    "none": "none",
    "0": "none",
    "native": "native",
    "posix": "posix",
    "1": "posix",
    "keep": "keep",
    "truncate": "truncate",
}
#: fio's rand_seeds[] slot of the file size generator (FIO_RAND_FILE_SIZE_OFF)
_FILE_SIZE_SEED_SLOT = 7
#: fio's rand_seeds[] slot of the read/write mix generator (FIO_RAND_MIX_OFF)
_RWMIX_SEED_SLOT = 4
_SEED_MULT = 0x9E370001
_FIO_RANDSEED = 0xB1899BED


class PlanError(Exception):
    """A job that parses but cannot be run as written (bad geometry, missing size, read-only...)."""


def where(job: JobDef, option: str) -> str:
    """FILE:LINE where the job set `option` (where the job starts when it did not): a PlanError's prefix."""
    loc = job.set_at.get(option) or job.source
    return f"{loc.file}:{loc.line}"


@dataclass(frozen=True)
class LayoutSpec:
    """How a job's setup lays out a file it needs bigger than it is (fio's extend_file)."""

    #: write the whole file (jobs that read, and overwrite=1 writers without file_append)
    write_data: bool = True
    #: remove the old file first (every layout except a file_append writer's)
    unlink: bool = True
    fallocate: str = "native"
    create_fsync: bool = True
    allow_create: bool = True
    zero: bool = False
    #: verify_only: the job reads back what is there; a file missing or too short is an error, not laid out
    never: bool = False


@dataclass(frozen=True)
class FilePlan:
    path: str
    is_block: bool
    #: the file's size once this job's setup is done (regular files; 0 for devices)
    required_size: int
    region_offset: int
    region_size: int
    #: this job's setup lays the file out (it is missing or smaller than required_size)
    extend: bool = False
    #: a character device (/dev/null, /dev/zero...): never laid out, sized by size=
    is_char: bool = False


# --- fio's random generator for file sizes (taus88, seeded as fio seeds its per-thread streams) ---


class _Taus88:
    def __init__(self, seed: int) -> None:
        seed &= M32

        def floor(x: int, m: int) -> int:
            return x + m if x < m else x

        # 53 is fio's (2^31)+(2^17)+(2^7), where ^ is C's xor
        self.s1 = floor((53 * 69069 ^ seed) & M32, 1)
        self.s2 = floor((self.s1 * 69069 ^ seed) & M32, 7)
        self.s3 = floor((self.s2 * 69069 ^ seed) & M32, 15)
        for _ in range(6):
            self.next()

    def next(self) -> int:
        def step(s: int, a: int, b: int, c: int, d: int) -> int:
            return (((s & c) << d) ^ ((((s << a) & M32) ^ s) >> b)) & M32

        self.s1 = step(self.s1, 13, 19, 4294967294, 12)
        self.s2 = step(self.s2, 2, 25, 4294967288, 4)
        self.s3 = step(self.s3, 3, 11, 4294967280, 17)
        return self.s1 ^ self.s2 ^ self.s3


def fio_stream_seed(
    values: Mapping[str, Any], thread_number: int, set_at: Mapping[str, Any], slot: int
) -> int:
    """fio's rand_seeds[slot] for the job with fio thread number `thread_number` (1-based)."""
    if values.get("allrandrepeat"):
        return (_FIO_RANDSEED * thread_number + slot) & M64
    if not values.get("randrepeat", True) and "randseed" not in set_at:
        return int.from_bytes(os.urandom(8), "little")
    seed = int(values.get("randseed") or 0) & M64
    for _ in range(4 + slot):
        seed = seed * _SEED_MULT & M64
    return (seed * thread_number + slot) & M64


def file_size_seed(values: Mapping[str, Any], thread_number: int, set_at: Mapping[str, Any]) -> int:
    """The seed of fio's file size generator for the job with fio thread number `thread_number` (1-based)."""
    return fio_stream_seed(values, thread_number, set_at, _FILE_SIZE_SEED_SLOT)


def rwmix_seed(values: Mapping[str, Any], thread_number: int, set_at: Mapping[str, Any]) -> int:
    """The seed of fio's read/write mix generator (a taus88 seeded with the low 32 bits)."""
    return fio_stream_seed(values, thread_number, set_at, _RWMIX_SEED_SLOT) & M32


# --- names ---


def _split_colon(text: str) -> list[str]:
    """fio's ':' list, where '\\:' is a colon inside a name."""
    return [p.replace("\\:", ":") for p in re.split(r"(?<!\\):", text) if p]


def exists_and_not_regfile(path: str) -> bool:
    try:
        return not stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _literal(text: str) -> Callable[[re.Match[str]], str]:
    return lambda _m: text


def make_filename(fmt: str, jobname: str, jobnum: int, filenum: int) -> str:
    """fio's filename_format: $jobname, $jobnum, $filenum and $clientuid (empty when not a client),
    matched without regard to case and substituted in that order."""
    if not fmt:
        return f"{jobname}.{jobnum}.{filenum}"
    out = fmt
    keys = (("$jobname", jobname), ("$jobnum", str(jobnum)), ("$filenum", str(filenum)), ("$clientuid", ""))
    for key, value in keys:
        # a function, so a backslash in the job name is not read as a group reference
        out = re.sub(re.escape(key), _literal(value), out, flags=re.IGNORECASE)
    return out


def directories(values: Mapping[str, Any]) -> list[str]:
    text = str(values.get("directory") or "")
    dirs = _split_colon(text)
    for d in dirs:
        if not os.path.isdir(d):
            raise PlanError(f"directory={text}: {d} is not a directory")
    return dirs


def clone_file_names(
    name: str, values: Mapping[str, Any], subjob: int, allocated: set[str]
) -> tuple[list[str], int]:
    """(the files of clone `subjob`, fio's nr_files) as fio's add_job names them.

    A clone (subjob > 0) skips a generated name that an earlier job with numjobs > 1 already uses (so
    filename_format=shared.$filenum gives the clones no file at all, and they do no I/O, as in fio)."""
    dirs = directories(values)
    numjobs = int(values.get("numjobs") or 1)

    def under_dir(n: str, idx: int) -> str:
        # fio puts every name under directory=, absolute ones too; several directories go round robin
        return f"{dirs[idx % len(dirs)]}/{n}" if dirs else n

    given = list(values.get("filename") or [])
    if given:
        names = [under_dir(n, 0) for n in given]
        if numjobs > 1:
            allocated.update(names)
        return names, len(names)
    nr = int(values.get("nrfiles") or 1)
    fmt = str(values.get("filename_format") or "")
    if nr == 1 and exists_and_not_regfile(name):
        candidates = [name]  # a job named after a device uses it
    else:
        candidates = [make_filename(fmt, name, subjob, i) for i in range(nr)]
    names = []
    for cand in candidates:
        full = under_dir(cand, subjob)
        if subjob and full in allocated and not exists_and_not_regfile(cand):
            continue
        names.append(full)
        if numjobs > 1:
            allocated.add(full)
    return names, nr


# --- sizes and offsets ---


def _pct(values: Mapping[str, Any], key: str) -> int:
    """fio's whole-number percentage of an 'N%' option (0 if not given that way)."""
    frac = values.get(key)
    return round(float(frac) * 100) if frac else 0


@dataclass
class FileSetup:
    """fio's file setup run over the jobs in fio's order: the file sizes each setup leaves behind."""

    #: path -> size on disk after the setups so far (None: no such file)
    sizes: dict[str, int | None] = field(default_factory=dict)
    #: generated names taken by jobs with numjobs > 1 (fio's clone sibling check)
    allocated: set[str] = field(default_factory=set)
    #: NBD exports (ioengine=nbd) by URI -> their size: sized like a block device, never stat()ed
    exports: dict[str, int] = field(default_factory=dict)

    def _stat(self, path: str) -> tuple[str, int | None]:
        if path in self.exports:
            return "block", self.exports[path]
        key = os.path.realpath(path)
        if key in self.sizes:
            return "file", self.sizes[key]
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return "file", None
        if stat.S_ISBLK(st.st_mode):
            with open(path, "rb") as dev:
                return "block", dev.seek(0, os.SEEK_END)
        if stat.S_ISCHR(st.st_mode):
            return "char", None
        if stat.S_ISREG(st.st_mode):
            return "file", st.st_size
        raise PlanError(f"{path}: not a regular file, block device or character device")

    def setup(
        self,
        *,
        job: str,
        values: Mapping[str, Any],
        names: Sequence[str],
        nr_files: int,
        subjob: int,
        thread_number: int,
        set_at: Mapping[str, Any],
        min_bs: int,
        io_min_bs: int,
        layout: LayoutSpec,
    ) -> tuple[list[FilePlan], int]:
        """Files of one clone and the bytes it does per loop (fio's setup_files).

        `min_bs`: fio's smallest block size of the job over all directions (offsets and sizes are
        aligned to it); `io_min_bs`: the smallest block the job issues (its regions are cut to it)."""
        v = values
        size_opt = int(v.get("size") or 0)
        fs_low = int(v.get("filesize") or 0)
        fs_high = int(v.get("filesize_max") or 0) or fs_low
        if fs_low and fs_high < fs_low:
            raise PlanError(
                f"job '{job}': filesize={fs_low}-{fs_high}: write the smaller size first (fio keeps the ends "
                "in the order written and then picks sizes outside the range)"
            )
        kinds: list[tuple[str, int]] = []
        total = 0
        for path in names:
            kind, size = self._stat(path)
            # fio cannot size a character device: it takes size= split over the files
            real = (size_opt // nr_files if size_opt else -1) if kind == "char" else size or 0
            kinds.append((kind, real))
            total = -1 if real == -1 or total == -1 else total + real
        if total in (0, -1) and not size_opt and not (nr_files and fs_low):
            raise PlanError(f"job '{job}': you need to specify size= (no file has a size yet)")
        per_file = 0
        extra = 0
        if not fs_low and nr_files:
            per_file = size_opt // nr_files
            if per_file * nr_files < size_opt:
                extra = (size_opt - per_file * nr_files) // min_bs
        rng: _Taus88 | None = None
        plans: list[FilePlan] = []
        job_total = 0
        size_pct = _pct(v, "size_percent")
        for path, (kind, real) in zip(names, kinds, strict=True):
            offset = self._start_offset(v, real, kind, subjob, min_bs)
            if not fs_low:
                io = per_file
                if extra:
                    extra -= 1
                    io += min_bs
                if not io:
                    if offset > real:
                        raise PlanError(
                            f"job '{job}': you need to specify valid offset= (past the end of {path})"
                        )
                    io = real - offset
            elif real < fs_low or real > fs_high:
                if offset > fs_low:
                    raise PlanError(
                        f"job '{job}': you need to specify valid offset= (past filesize={fs_low})"
                    )
                if fs_low == fs_high:
                    io = fs_low - offset
                else:
                    if rng is None:
                        rng = _Taus88(file_size_seed(v, thread_number, set_at))
                    pick = fs_low + int((fs_high - fs_low) * (rng.next() / (M32 + 1.0)))
                    io = pick - pick % min_bs - offset
                    if io < 0:
                        raise PlanError(
                            f"job '{job}': offset {offset} is past the size fio picked for {path}"
                        )
            else:
                io = real - offset
            if size_pct and size_pct != 100:
                whole = io + offset
                io = min(whole * size_pct // 100, whole - offset)
                io -= io % min_bs
            job_total += io
            plans.append(self._file_plan(job, path, kind, real, offset, io, subjob, io_min_bs, v, layout))
        todo = job_total if not size_opt or (job_total and size_opt > job_total) else size_opt
        if todo < min_bs:
            raise PlanError(f"job '{job}': the block size is larger than the data set range ({todo} bytes)")
        return plans, todo

    @staticmethod
    def _start_offset(v: Mapping[str, Any], real: int, kind: str, subjob: int, min_bs: int) -> int:
        """fio's get_start_offset: offset + subjob * offset_increment, percentages of the file's current
        size, rounded *up* to offset_align (default: the smallest block size) when one is a percentage."""
        if v.get("file_append") and kind == "file":
            return real
        align = False
        inc_pct = _pct(v, "offset_increment_percent")
        if inc_pct:
            increment = inc_pct * real // 100
            align = True
        else:
            increment = int(v.get("offset_increment") or 0)
        off_pct = _pct(v, "offset_percent")
        if off_pct > 0:
            offset = real * off_pct // 100 + subjob * increment
            align = True
        else:
            offset = int(v.get("offset") or 0) + subjob * increment
        if align:
            step = int(v.get("offset_align") or 0) or min_bs
            offset = -(-offset // step) * step
        return offset

    def _file_plan(
        self,
        job: str,
        path: str,
        kind: str,
        real: int,
        offset: int,
        io: int,
        subjob: int,
        io_min_bs: int,
        v: Mapping[str, Any],
        layout: LayoutSpec,
    ) -> FilePlan:
        # not cut to whole blocks: fio's per-file io_size bounds where an I/O may START, the file's real
        # size where it may end, so a sequential job on a larger file issues a last block past it
        region = io
        if kind == "block":
            if offset >= real or offset + region > real:
                raise PlanError(
                    f"job '{job}' clone {subjob}: region [{offset}, {offset + max(region, 0)}) lies outside "
                    f"{path} ({real} bytes)"
                )
            return FilePlan(path, True, 0, offset, region)
        if kind == "char":
            return FilePlan(path, False, 0, offset, region, is_char=True)
        end = offset + io
        if end > real and layout.never:
            held = f"holds {real} bytes" if os.path.exists(path) else "does not exist"
            raise PlanError(
                f"job '{job}': verify_only reads back [{offset}, {end}) of {path}, which {held}; verify_only"
                " never creates or extends a file: run the job without verify_only first"
            )
        if end <= real or v.get("create_on_open"):
            # create_on_open: the job's open creates the file, empty; nothing is laid out
            return FilePlan(path, False, max(end, real), offset, region)
        if layout.write_data or layout.fallocate in ("native", "posix", "truncate"):
            after: int | None = end
        elif layout.unlink:
            after = 0  # recreated empty, the space not allocated (none) or past the size (keep)
        else:
            after = real  # a file_append writer without allocation: its writes grow the file
        self.sizes[os.path.realpath(path)] = after
        return FilePlan(path, False, end, offset, region, extend=True)


def layout_spec(values: Mapping[str, Any], reads: bool, writes: bool) -> LayoutSpec:
    """fio's extend_file decisions for a job (fio turns overwrite on for every job that reads)."""
    append = bool(values.get("file_append"))
    overwrite = bool(values.get("overwrite")) or reads
    spec = spec_of(str(values.get("ioengine") or "psync"))
    # fio lays a writer's file out whole when its engine cannot extend a file (FIO_NOEXTEND: mmap)
    cannot_extend = spec is not None and not spec.extends_files
    write_data = reads or (writes and ((overwrite and not append) or cannot_extend))
    mode = str(values.get("fallocate") or "native")
    return LayoutSpec(
        write_data=write_data,
        unlink=write_data or (writes and not overwrite and not append),
        fallocate=FALLOCATE_MODES.get(mode, mode),
        create_fsync=bool(values.get("create_fsync", True)),
        allow_create=bool(values.get("allow_file_create", True)),
        zero=bool(values.get("zero_buffers")),
        never=bool(values.get("verify_only")),
    )
