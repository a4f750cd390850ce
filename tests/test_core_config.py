"""The packed C config: Python's layout against the compiled core, the generated header, pack_config."""

from __future__ import annotations

import itertools
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from iolab import _core
from iolab.engine import config
from iolab.engine.config import CONFIG_FIELDS, pack_config

REPO = Path(__file__).resolve().parents[1]

# DESIGN.md section 2, in order: (name, C type, count)
DESIGN_FIELDS = [
    ("magic", "uint32_t", 1),
    ("size", "uint32_t", 1),
    ("engine", "uint32_t", 1),
    ("ddir_mask", "uint32_t", 1),
    ("random", "uint32_t", 1),
    ("rw_seq_nr", "uint32_t", 1),
    ("rw_hole", "uint64_t", 1),
    ("rwmix_read", "uint32_t", 1),
    ("direct", "uint32_t", 1),
    ("iodepth", "uint32_t", 1),
    ("time_based", "uint32_t", 1),
    ("runtime_ns", "uint64_t", 1),
    ("ramp_ns", "uint64_t", 1),
    ("io_size", "uint64_t", 1),
    ("io_size_set", "uint32_t", 1),
    ("number_ios", "uint64_t", 1),
    ("loops", "uint32_t", 1),
    ("norandommap", "uint32_t", 1),
    ("seed", "uint64_t", 1),
    ("fsync_blocks", "uint32_t", 1),
    ("fdatasync_blocks", "uint32_t", 1),
    ("end_fsync", "uint32_t", 1),
    ("zero_buffers", "uint32_t", 1),
    ("refill_buffers", "uint32_t", 1),
    ("sample_interval_ns", "uint64_t", 1),
    ("iops_interval_ns", "uint64_t", 1),
    ("bs_min", "uint64_t", 2),
    ("bs_max", "uint64_t", 2),
    ("blockalign", "uint64_t", 2),
    ("bssplit_n", "uint32_t", 2),
    ("bssplit_bs", "uint64_t", 128),
    ("bssplit_perc", "uint32_t", 128),
    ("max_bs", "uint64_t", 1),
    ("trim_bs", "uint64_t", 1),
    ("trim_blockalign", "uint64_t", 1),
    ("trimwrite", "uint32_t", 1),
    ("iodepth_batch_submit", "uint32_t", 1),
    ("iodepth_batch_complete_min", "uint32_t", 1),
    ("iodepth_batch_complete_max", "uint32_t", 1),
    ("iodepth_low", "uint32_t", 1),
    ("engine_flags", "uint32_t", 1),
    ("sqthread_poll_cpu", "uint32_t", 1),
    ("force_async", "uint32_t", 1),
    ("poll_mode", "uint32_t", 1),
    ("poll_grow", "uint32_t", 1),
    ("poll_shrink", "uint32_t", 1),
    ("poll_max_ns", "uint64_t", 1),
    ("rate_bps", "uint64_t", 2),
    ("rate_min_bs", "uint64_t", 2),
    ("rate_process", "uint32_t", 1),
    ("thinktime_blocks", "uint32_t", 1),
    ("thinktime_ns", "uint64_t", 1),
    ("thinktime_spin_ns", "uint64_t", 1),
    ("thinktime_iotime_ns", "uint64_t", 1),
    ("thinktime_blocks_type", "uint32_t", 1),
    ("thinktime_blocks_set", "uint32_t", 1),
    ("invalidate", "uint32_t", 1),
    ("scramble_buffers", "uint32_t", 1),
    ("coe_mask", "uint32_t", 1),
    ("ignore_error_n", "uint32_t", 2),
    ("ignore_error", "uint32_t", 32),
    ("max_latency_ns", "uint64_t", 2),
    ("rate_min_bps", "uint64_t", 2),
    ("rate_min_iops", "uint64_t", 2),
    ("rate_cycle_ns", "uint64_t", 1),
    ("perc_rand", "uint32_t", 2),
    ("rand_dist", "uint32_t", 1),
    ("rand_dist_val", "uint64_t", 1),
    ("rand_center", "uint64_t", 1),
    ("zone_lo", "uint64_t", 200),
    ("zone_hi", "uint64_t", 200),
    ("fst_mode", "uint32_t", 1),
    ("fst_nr", "uint32_t", 1),
    ("fst_val", "uint64_t", 1),
    ("zonemode_strided", "uint32_t", 1),
    ("zone_size", "uint64_t", 1),
    ("zone_range", "uint64_t", 1),
    ("zone_skip", "uint64_t", 1),
    ("rand_repeat", "uint32_t", 1),
    ("verify", "uint32_t", 1),
    ("verify_flags", "uint32_t", 1),
    ("verify_interval", "uint64_t", 1),
    ("verify_offset", "uint64_t", 1),
    ("verify_backlog", "uint64_t", 1),
    ("verify_backlog_batch", "uint64_t", 1),
    ("verify_thread", "uint32_t", 1),
    ("verify_pattern_len", "uint32_t", 1),
    ("verify_fmt_n", "uint32_t", 1),
    ("verify_fmt_off", "uint32_t", 4),
    ("verify_pattern", "uint64_t", 64),
    ("rwmix_seed", "uint32_t", 1),
]


def full_values(**over: int | list[int]) -> dict[str, int | list[int]]:
    v: dict[str, int | list[int]] = {f.name: ([0] * f.count if f.count > 1 else 0) for f in CONFIG_FIELDS}
    del v["magic"], v["size"]
    v.update(over)
    return v


def test_fields_are_the_design_table() -> None:
    assert [(f.name, f.ctype, f.count) for f in CONFIG_FIELDS] == DESIGN_FIELDS
    assert all(f.doc for f in CONFIG_FIELDS)


def test_layout_python_equals_c() -> None:
    assert _core.config_layout() == config.config_layout()
    assert _core.CONFIG_SIZE == config.CONFIG_SIZE
    assert _core.CONFIG_MAGIC == config.IOL_CONFIG_MAGIC
    assert struct.calcsize(config.CONFIG_FORMAT) == config.CONFIG_SIZE


def test_layout_is_natural_alignment() -> None:
    sizes = {"uint32_t": 4, "uint64_t": 8}
    layout = config.config_layout()
    for (name, off, size), f in zip(layout, CONFIG_FIELDS, strict=True):
        assert name == f.name
        assert off % sizes[f.ctype] == 0
        assert size == sizes[f.ctype] * f.count
    for (_, off, size), (_, nxt, _) in itertools.pairwise(layout):
        assert nxt - (off + size) in (0, 4)  # only padding before an 8-byte field
    assert config.CONFIG_SIZE % 8 == 0


def test_generated_header_is_current() -> None:
    committed = (REPO / "csrc" / "config_gen.h").read_text()
    assert committed == config.generate_header(), "run: python -m iolab.engine.config > csrc/config_gen.h"


def test_generator_main_prints_header() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "iolab.engine.config"], check=True, capture_output=True, text=True
    ).stdout
    assert out == config.generate_header()


def test_header_documents_every_field() -> None:
    text = config.generate_header()
    for f in CONFIG_FIELDS:
        assert f"/* {f.doc} */" in text
    assert f"#define IOL_CONFIG_MAGIC 0x{config.IOL_CONFIG_MAGIC:08X}u" in text


def test_pack_places_every_field() -> None:
    # distinct values per field and array element; read them back at the C offsets
    over: dict[str, int | list[int]] = {}
    for i, f in enumerate(CONFIG_FIELDS[2:], start=2):
        if f.count == 1:
            over[f.name] = 1000 + i
        else:
            over[f.name] = [i * 1000 + k for k in range(f.count)]
    blob = pack_config(full_values(**over))
    assert len(blob) == _core.CONFIG_SIZE
    fmt = {"uint32_t": "I", "uint64_t": "Q"}
    for (name, off, size), f in zip(_core.config_layout(), CONFIG_FIELDS, strict=True):
        vals = list(struct.unpack_from(f"={f.count}{fmt[f.ctype]}", blob, off))
        assert size == struct.calcsize(f"={f.count}{fmt[f.ctype]}")
        if name == "magic":
            assert vals == [_core.CONFIG_MAGIC]
        elif name == "size":
            assert vals == [_core.CONFIG_SIZE]
        else:
            expect = over[name]
            assert vals == (expect if isinstance(expect, list) else [expect])


def test_pack_pads_short_arrays_with_zeros() -> None:
    blob = pack_config(full_values(bssplit_bs=[4096, 8192]))
    off = dict((n, o) for n, o, _ in _core.config_layout())["bssplit_bs"]
    assert struct.unpack_from("=4Q", blob, off) == (4096, 8192, 0, 0)


@pytest.mark.parametrize(
    ("values", "match"),
    [
        (full_values(bogus=1), "unknown config field"),
        ({"engine": 0}, "missing config field"),
        (full_values(loops=-1), "does not fit uint32_t"),
        (full_values(loops=1 << 32), "does not fit uint32_t"),
        (full_values(seed=1 << 64), "does not fit uint64_t"),
        (full_values(bs_min=[1, 2, 3]), "at most 2"),
        (full_values(bs_min=4096), "sequence"),
        (full_values(loops=[1]), "expected an int"),
    ],
)
def test_pack_rejects(values: dict[str, int | list[int]], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        pack_config(values)


def test_core_constants() -> None:
    assert _core.HIST_SUB_BITS == 7
    assert _core.HIST_BUCKETS == 2**7 + (40 - 7) * 2**7 == 4352
