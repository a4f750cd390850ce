"""The packed C config handed to ``iolab._core.Job`` (DESIGN.md section 2).

``CONFIG_FIELDS`` is the single source of truth: ``pack_config`` packs a mapping of values with
:mod:`struct` in native alignment, and ``generate_header`` writes ``csrc/config_gen.h`` from the same
table (``python -m iolab.engine.config > csrc/config_gen.h``). Padding is made explicit on both sides
(``_padN`` members in C, ``x`` pad bytes in the struct format), so the C struct has no implicit
padding and Python and C agree byte for byte; the generated header also carries ``_Static_assert``s
on every offset, so a stale header cannot compile into a mismatching layout.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping, Sequence
from typing import NamedTuple

# the values both the plan and the C core read live below both (re-exported here, where they were)
from iolab.abi import (
    BSSPLIT_MAX,
    EF_FIXEDBUFS,
    EF_HIPRI,
    EF_NONVECTORED,
    EF_REGISTERFILES,
    EF_SQTHREAD_CPU,
    EF_SQTHREAD_POLL,
    EF_USERSPACE_REAP,
    EF_VECTORED,
    ENGINE_IDS,
    ENGINE_IO_URING,
    ENGINE_LIBAIO,
    ENGINE_PSYNC,
    IGNORE_ERROR_MAX,
    POLL_MODES,
    ZONE_TABLE,
)
from iolab.ioengines import ENGINE_FLAGS, ENGINE_SPECS, engine_flag_bit

__all__ = [
    "BSSPLIT_MAX",
    "CONFIG_FIELDS",
    "CONFIG_FORMAT",
    "CONFIG_SIZE",
    "EF_FIXEDBUFS",
    "EF_HIPRI",
    "EF_NONVECTORED",
    "EF_REGISTERFILES",
    "EF_SQTHREAD_CPU",
    "EF_SQTHREAD_POLL",
    "EF_USERSPACE_REAP",
    "EF_VECTORED",
    "ENGINE_IDS",
    "ENGINE_IO_URING",
    "ENGINE_LIBAIO",
    "ENGINE_PSYNC",
    "IGNORE_ERROR_MAX",
    "IOL_CONFIG_MAGIC",
    "POLL_MODES",
    "ZONE_TABLE",
    "ConfigField",
    "config_layout",
    "generate_header",
    "pack_config",
]


class ConfigField(NamedTuple):
    name: str
    ctype: str  # "uint32_t" or "uint64_t"
    # 1 for a scalar, else the array length (deliberately shadows tuple.count)
    count: int  # type: ignore[assignment]
    doc: str


_U32 = "uint32_t"
_U64 = "uint64_t"

CONFIG_FIELDS: tuple[ConfigField, ...] = (
    ConfigField("magic", _U32, 1, "IOL_CONFIG_MAGIC"),
    ConfigField("size", _U32, 1, "sizeof(struct iol_config); checked by C"),
    ConfigField(
        "engine",
        _U32,
        1,
        ", ".join(f"{s.engine_id} = {s.name}" for s in ENGINE_SPECS) + " (enum iol_engine_id)",
    ),
    ConfigField("ddir_mask", _U32, 1, "bit0 = reads, bit1 = writes, bit2 = trims"),
    ConfigField("random", _U32, 1, "1 = random offsets"),
    ConfigField(
        "rw_seq_nr",
        _U32,
        1,
        "random modes: issue this many I/Os sequentially after each random offset (randread:8); 1 default",
    ),
    ConfigField(
        "rw_hole",
        _U64,
        1,
        "sequential modes: bytes added after each I/O (read:4k); two's complement, negative = backwards",
    ),
    ConfigField("rwmix_read", _U32, 1, "percent of I/Os that are reads when both directions are on"),
    ConfigField(
        "direct",
        _U32,
        1,
        "informational (the fds are already opened with O_DIRECT); buffers are always 4096-aligned",
    ),
    ConfigField("iodepth", _U32, 1, "queue depth (psync: 1)"),
    ConfigField("time_based", _U32, 1, "keep looping until runtime expires"),
    ConfigField("runtime_ns", _U64, 1, "measured-phase limit; 0 = none"),
    ConfigField(
        "ramp_ns", _U64, 1, "ramp phase: I/O issued, nothing counted; then stats reset and runtime starts"
    ),
    ConfigField(
        "io_size",
        _U64,
        1,
        "bytes per loop across all files: io_size, else the sum of the region sizes (fio: io_size or size)",
    ),
    ConfigField("io_size_set", _U32, 1, "io_size was given: passes go on until io_size bytes were issued"),
    ConfigField("number_ios", _U64, 1, "I/Os per loop (fio number_ios); 0 = no limit"),
    ConfigField("loops", _U32, 1, "passes over io_size (non time_based)"),
    ConfigField("norandommap", _U32, 1, "1 = no random map (blocks may repeat)"),
    ConfigField(
        "seed", _U64, 1, "base seed; C derives separate streams for offsets, rw mix, bs choice, buffers"
    ),
    ConfigField("fsync_blocks", _U32, 1, "fsync after every N writes; 0 = never"),
    ConfigField("fdatasync_blocks", _U32, 1, "fdatasync after every N writes; 0 = never"),
    ConfigField("end_fsync", _U32, 1, "fsync every file at the end of the job"),
    ConfigField("zero_buffers", _U32, 1, "buffer contents: zeros"),
    ConfigField(
        "refill_buffers", _U32, 1, "buffer contents: refilled with fresh random data before every write"
    ),
    ConfigField("sample_interval_ns", _U64, 1, "bandwidth (and IOPS) sample interval (500 ms default)"),
    ConfigField("iops_interval_ns", _U64, 1, "IOPS sample interval if not the bandwidth one; 0 = the same"),
    ConfigField("bs_min", _U64, 2, "block size range per direction: minimum (bs = min = max)"),
    ConfigField("bs_max", _U64, 2, "block size range per direction: maximum"),
    ConfigField("blockalign", _U64, 2, "offset alignment per direction"),
    ConfigField("bssplit_n", _U32, 2, "number of bssplit entries per direction (0 = use bs_min..bs_max)"),
    ConfigField("bssplit_bs", _U64, 2 * BSSPLIT_MAX, "bssplit entries, direction-major: index d*64 + i"),
    ConfigField("bssplit_perc", _U32, 2 * BSSPLIT_MAX, "matching percentages (sum 100)"),
    ConfigField("max_bs", _U64, 1, "largest block size any direction can issue (buffer size)"),
    ConfigField("trim_bs", _U64, 1, "trims (ddir_mask bit 2): block size (bs's third value)"),
    ConfigField("trim_blockalign", _U64, 1, "trims: random offset alignment (0: the trim block size)"),
    ConfigField(
        "trimwrite", _U32, 1, "ddir_mask 6: trim a block, then write it (fio trimwrite / randtrimwrite)"
    ),
    # queue depth (asynchronous engines)
    ConfigField(
        "iodepth_batch_submit", _U32, 1, "submit when this many I/Os are queued (1..iodepth; fio default 1)"
    ),
    ConfigField(
        "iodepth_batch_complete_min",
        _U32,
        1,
        "fewest completions to wait for when reaping (0: as fio, 1 when a reap is due)",
    ),
    ConfigField(
        "iodepth_batch_complete_max", _U32, 1, "most completions to take per reap (>= the min; 0 with min 0)"
    ),
    ConfigField("iodepth_low", _U32, 1, "once the queue is full, reap until at most this many are in flight"),
    ConfigField(
        "engine_flags",
        _U32,
        1,
        "IOL_EF_* bits: userspace_reap, fixedbufs, registerfiles, sqthread_poll(+cpu), hipri, (non)vectored",
    ),
    ConfigField(
        "sqthread_poll_cpu", _U32, 1, "CPU of the io_uring submission thread (with IOL_EF_SQTHREAD_CPU)"
    ),
    ConfigField("force_async", _U32, 1, "io_uring: every N-th SQE is flagged IOSQE_ASYNC (0: none)"),
    # completion polling
    ConfigField(
        "poll_mode", _U32, 1, "0 off, 1 on (fixed window poll_max_ns), 2 adaptive (QEMU aio_poll rules)"
    ),
    ConfigField("poll_grow", _U32, 1, "adaptive: window multiplier (0 = 2)"),
    ConfigField(
        "poll_shrink", _U32, 1, "adaptive: window divisor when a wait exceeds poll_max_ns (0 = to 0)"
    ),
    ConfigField("poll_max_ns", _U64, 1, "largest poll window"),
    # rate and think time
    ConfigField(
        "rate_bps", _U64, 2, "bytes/s cap per direction (rate, or rate_iops * smallest bs); 0 = none"
    ),
    ConfigField(
        "rate_min_bs", _U64, 2, "bytes of one I/O for the poisson process (smallest bs per direction)"
    ),
    ConfigField("rate_process", _U32, 1, "0 linear, 1 poisson"),
    ConfigField("thinktime_blocks", _U32, 1, "I/Os between think pauses (1 default)"),
    ConfigField("thinktime_ns", _U64, 1, "pause after every thinktime_blocks I/Os; 0 = none"),
    ConfigField("thinktime_spin_ns", _U64, 1, "part of the pause spent busy-spinning"),
    ConfigField("thinktime_iotime_ns", _U64, 1, "also pause after this much I/O time (0 = only blocks)"),
    ConfigField("thinktime_blocks_type", _U32, 1, "count thinktime_blocks at 0 = completion, 1 = issue"),
    ConfigField(
        "thinktime_blocks_set", _U32, 1, "thinktime_blocks was given (with iotime: else iotime only)"
    ),
    # page cache and buffer contents
    ConfigField(
        "invalidate",
        _U32,
        1,
        "drop the files' cached pages at every new pass (loops, and time_based wraps when buffered), as fio",
    ),
    ConfigField(
        "scramble_buffers", _U32, 1, "stamp each 512-byte sector of a write with its offset and a counter"
    ),
    # errors and failure checks (continue_on_error, ignore_error, max_latency, rate_min)
    ConfigField("coe_mask", _U32, 1, "continue_on_error types: bit0 read, bit1 write (+sync), bit2 verify"),
    ConfigField("ignore_error_n", _U32, 2, "errnos listed per direction (read, write); 0: fio's EIO, EILSEQ"),
    ConfigField("ignore_error", _U32, 2 * IGNORE_ERROR_MAX, "ignore_error errnos, direction-major: d*16 + i"),
    ConfigField("max_latency_ns", _U64, 2, "fail when an I/O's total latency exceeds this; 0 = none"),
    ConfigField("rate_min_bps", _U64, 2, "fail when bytes/s over a rate_cycle fall below this; 0 = none"),
    ConfigField("rate_min_iops", _U64, 2, "the same in I/Os per second (used when rate_min_bps is 0)"),
    ConfigField("rate_cycle_ns", _U64, 1, "window of the rate_min checks (fio's rate_cycle)"),
    # offset patterns
    ConfigField("perc_rand", _U32, 2, "random jobs: percent of I/Os per direction at a random offset (100)"),
    ConfigField(
        "rand_dist", _U32, 1, "random offsets: 0 uniform, 1 zipf, 2 pareto, 3 normal, 4 zoned, 5 zoned_abs"
    ),
    ConfigField("rand_dist_val", _U64, 1, "zipf theta / pareto h / normal deviation %: IEEE double bits"),
    ConfigField("rand_center", _U64, 1, "zipf/pareto/normal center 0..1 as IEEE double bits; -1.0 = none"),
    ConfigField(
        "zone_lo", _U64, 2 * ZONE_TABLE, "zoned: start of the zone hit by draw v (1..100), index d*100+v-1"
    ),
    ConfigField("zone_hi", _U64, 2 * ZONE_TABLE, "zoned: its end (zoned: percent of the region; abs: bytes)"),
    ConfigField(
        "fst_mode",
        _U32,
        1,
        "file_service_type: 0 roundrobin, 1 sequential, 2 random, 3 zipf, 4 pareto, 5 normal",
    ),
    ConfigField("fst_nr", _U32, 1, "I/Os on a file before switching (1)"),
    ConfigField("fst_val", _U64, 1, "zipf/pareto/normal parameter for file_service_type (double bits)"),
    ConfigField("zonemode_strided", _U32, 1, "zonemode=strided"),
    ConfigField("zone_size", _U64, 1, "strided: bytes of I/O per zone"),
    ConfigField("zone_range", _U64, 1, "strided: zone length"),
    ConfigField("zone_skip", _U64, 1, "strided: bytes skipped after a zone"),
    ConfigField(
        "rand_repeat", _U32, 1, "randrepeat: every new pass (not time_based) repeats the same random choices"
    ),
    # data verification (verify.h)
    ConfigField("verify", _U32, 1, "fio's verify type number (verify.h enum iol_vtype); 0 = none"),
    ConfigField("verify_flags", _U32, 1, "IOL_VF_*: do_verify, verify_only, verify_fatal, check numberio"),
    ConfigField("verify_interval", _U64, 1, "bytes per verify header (fio's verify_interval, fixed up)"),
    ConfigField("verify_offset", _U64, 1, "the header is swapped to this offset in each chunk (0: none)"),
    ConfigField("verify_backlog", _U64, 1, "read back after this many logged writes; 0 = only at the end"),
    ConfigField("verify_backlog_batch", _U64, 1, "blocks read back per backlog batch (0 = verify_backlog)"),
    ConfigField("verify_thread", _U32, 1, "fio's thread number, written into each header"),
    ConfigField("verify_pattern_len", _U32, 1, "bytes of verify_pattern; 0 = random data"),
    ConfigField("verify_fmt_n", _U32, 1, "%o formats in verify_pattern"),
    ConfigField("verify_fmt_off", _U32, 4, "where each %o pastes the block offset (8 little-endian bytes)"),
    ConfigField("verify_pattern", _U64, 64, "verify_pattern bytes, little-endian 64-bit words (512 bytes)"),
)

_SIZEOF = {_U32: 4, _U64: 8}
_FMT = {_U32: "I", _U64: "Q"}


class _Slot(NamedTuple):
    name: str  # field name, or "_padN" for padding
    offset: int
    size: int  # total bytes
    field: ConfigField | None


def _compute_layout() -> tuple[tuple[_Slot, ...], int]:
    """Lay the fields out with the C rules for natural alignment (each type aligned to its size)."""
    slots: list[_Slot] = []
    off = 0
    max_align = 1
    npad = 0
    for f in CONFIG_FIELDS:
        align = _SIZEOF[f.ctype]
        max_align = max(max_align, align)
        if off % align:
            pad = align - off % align
            slots.append(_Slot(f"_pad{npad}", off, pad, None))
            npad += 1
            off += pad
        size = _SIZEOF[f.ctype] * f.count
        slots.append(_Slot(f.name, off, size, f))
        off += size
    if off % max_align:
        pad = max_align - off % max_align
        slots.append(_Slot(f"_pad{npad}", off, pad, None))
        off += pad
    return tuple(slots), off


_SLOTS, CONFIG_SIZE = _compute_layout()

CONFIG_FORMAT = "@" + "".join(
    f"{s.size}x" if s.field is None else f"{s.field.count}{_FMT[s.field.ctype]}" for s in _SLOTS
)
"""The :mod:`struct` format of the whole config, padding included (native byte order and alignment)."""

assert struct.calcsize(CONFIG_FORMAT) == CONFIG_SIZE


def _layout_signature() -> bytes:
    return ";".join(f"{f.name}:{f.ctype}:{f.count}" for f in CONFIG_FIELDS).encode()


IOL_CONFIG_MAGIC = 0x494F0000 | (zlib.crc32(_layout_signature()) & 0xFFFF)
"""``'IO'`` in the top half, a checksum of the field list in the bottom half: a C core built from an
older field list rejects configs packed from a newer one even when the size happens to match."""


def config_layout() -> list[tuple[str, int, int]]:
    """``(field name, offset, size in bytes)`` per field, as ``iolab._core.config_layout()`` reports it."""
    return [(s.name, s.offset, s.size) for s in _SLOTS if s.field is not None]


def pack_config(values: Mapping[str, int | Sequence[int]]) -> bytes:
    """Pack ``values`` (field name -> int, or a sequence of ints for array fields) into the C struct.

    Every field must be given except ``magic`` and ``size``, which default to ``IOL_CONFIG_MAGIC`` and
    ``CONFIG_SIZE`` (they may be overridden, e.g. to test the C side's checks). Array fields take a
    sequence of at most ``count`` ints; missing trailing entries are zero. Raises ``ValueError`` for
    unknown or missing fields, wrong shapes and values that do not fit the C type.
    """
    names = {f.name for f in CONFIG_FIELDS}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"unknown config field(s): {', '.join(unknown)}")
    missing = [f.name for f in CONFIG_FIELDS if f.name not in values and f.name not in ("magic", "size")]
    if missing:
        raise ValueError(f"missing config field(s): {', '.join(missing)}")
    defaults: dict[str, int] = {"magic": IOL_CONFIG_MAGIC, "size": CONFIG_SIZE}
    limit = {_U32: 1 << 32, _U64: 1 << 64}
    args: list[int] = []
    for f in CONFIG_FIELDS:
        raw = values.get(f.name, defaults.get(f.name, 0))
        items: list[int]
        if f.count == 1:
            if not isinstance(raw, int):
                raise ValueError(f"config field {f.name!r}: expected an int, got {type(raw).__name__}")
            items = [raw]
        else:
            if isinstance(raw, int | str | bytes):
                raise ValueError(
                    f"config field {f.name!r}: expected a sequence of up to {f.count} ints, "
                    f"got {type(raw).__name__}"
                )
            items = list(raw)
            if len(items) > f.count:
                raise ValueError(f"config field {f.name!r}: {len(items)} entries, at most {f.count} allowed")
            items += [0] * (f.count - len(items))
        for i, v in enumerate(items):
            if not isinstance(v, int):
                raise ValueError(f"config field {f.name!r}[{i}]: expected an int, got {type(v).__name__}")
            if not 0 <= v < limit[f.ctype]:
                raise ValueError(f"config field {f.name!r}: {v} does not fit {f.ctype}")
        args.extend(int(v) for v in items)
    return struct.pack(CONFIG_FORMAT, *args)


def generate_header() -> str:
    """The text of ``csrc/config_gen.h``."""
    out: list[str] = [
        "/* Generated by `python -m iolab.engine.config > csrc/config_gen.h` from",
        " * iolab.engine.config.CONFIG_FIELDS and iolab.ioengines.ENGINE_SPECS. Do not edit: change the",
        " * Python tables and regenerate (tests/test_core_config.py checks that this file is current). */",
        "#ifndef IOL_CONFIG_GEN_H",
        "#define IOL_CONFIG_GEN_H",
        "",
        "#include <stddef.h>",
        "#include <stdint.h>",
        "",
        f"#define IOL_CONFIG_MAGIC 0x{IOL_CONFIG_MAGIC:08X}u",
        f"#define IOL_CONFIG_SIZE {CONFIG_SIZE}u",
        f"#define IOL_BSSPLIT_MAX {BSSPLIT_MAX}",
        f"#define IOL_IGNORE_ERROR_MAX {IGNORE_ERROR_MAX}",
        f"#define IOL_ZONE_TABLE {ZONE_TABLE}",
        "",
        "/* All sizes in bytes, times in ns, directions indexed 0 = read, 1 = write. */",
        "struct iol_config {",
    ]
    for s in _SLOTS:
        if s.field is None:
            out.append(f"    uint8_t {s.name}[{s.size}]; /* explicit padding */")
            continue
        f = s.field
        out.append(f"    /* {f.doc} */")
        dim = f"[{f.count}]" if f.count > 1 else ""
        out.append(f"    {f.ctype} {f.name}{dim};")
    out.append("};")
    out.append("")
    out.append("/* X-macro over the fields (not the padding), in order. */")
    out.append("#define IOL_CONFIG_FIELD_LIST(X) \\")
    for s in _SLOTS:
        if s.field is not None:
            out.append(f"    X({s.name}) \\")
    out.append("")
    out += _engine_lines()
    out.append("")
    out.append(f'_Static_assert(sizeof(struct iol_config) == {CONFIG_SIZE}, "iol_config size");')
    for s in _SLOTS:
        out.append(
            f'_Static_assert(offsetof(struct iol_config, {s.name}) == {s.offset}, "offset of {s.name}");'
        )
    out.append("")
    out.append("#endif /* IOL_CONFIG_GEN_H */")
    return "\n".join(out) + "\n"


def _engine_lines() -> list[str]:
    """The engine ids, the ``engine_flags`` bits and the registration list, from the engines' specs."""
    out = ["/* cfg->engine: the engines' ids (iolab.ioengines.ENGINE_SPECS) */", "enum iol_engine_id {"]
    for spec in ENGINE_SPECS:
        out.append(f"    IOL_ENGINE_{spec.c_name} = {spec.engine_id},")
    out += [f"    IOL_ENGINE_COUNT = {len(ENGINE_SPECS)},", "};"]
    out += ["", "/* cfg->engine_flags */"]
    for name, doc in ENGINE_FLAGS:
        out.append(f"#define IOL_EF_{name} 0x{engine_flag_bit(name):02X}u /* {doc} */")
    out += [
        "",
        "/* X-macro over the engines: (id, vtable defined in csrc/engine_<name>.c, most I/Os in flight) */",
        "#define IOL_ENGINE_LIST(X) \\",
    ]
    for spec in ENGINE_SPECS:
        out.append(f"    X(IOL_ENGINE_{spec.c_name}, iol_engine_{spec.name}, {spec.max_depth}u) \\")
    out.append("")
    return out


if __name__ == "__main__":
    print(generate_header(), end="")
