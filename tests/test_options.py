"""The option table: lookups, defaults, listing, and coverage of fio's own option list."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from iolab.options import (
    COMPANIONS,
    ENGINES,
    FIO_FLAGS,
    OPTIONS,
    SUPPORTED_ENGINES,
    FioType,
    Kind,
    default_values,
    engine_option_owners,
    format_options_listing,
    lookup,
    suggest,
)

HAVE_FIO = shutil.which("fio") is not None


def test_lookup_names_and_aliases() -> None:
    for alias, name in [
        ("blocksize", "bs"),
        ("readwrite", "rw"),
        ("timeout", "runtime"),
        ("wait_for_previous", "stonewall"),
        ("blockalign", "ba"),
        ("blocksize_range", "bsrange"),
        ("nr_files", "nrfiles"),
        ("fileoffset", "offset"),
        ("iomem", "mem"),
        ("ss", "steadystate"),
    ]:
        o = lookup(alias)
        assert o is not None and o.name == name
        assert lookup(name) is o
    assert lookup("BS") is None  # fio option names are case-sensitive
    assert lookup("nosuchoption") is None


def test_every_name_unique_and_consistent() -> None:
    seen: set[str] = set()
    for name, o in OPTIONS.items():
        assert o.name == name
        for n in o.names:
            assert n not in seen
            seen.add(n)
        assert o.help and o.category
        if o.kind is Kind.TIME:
            assert o.unit in (1_000, 1_000_000_000), name
        if o.kind is Kind.ENUM and name != "ioengine":
            assert o.choices, name
        if o.bare:
            assert o.fio_type in (FioType.STR_SET, FioType.STR), name


def test_required_coverage() -> None:
    required = [
        "name",
        "filename",
        "directory",
        "size",
        "filesize",
        "offset",
        "offset_increment",
        "rw",
        "rwmixread",
        "rwmixwrite",
        "bs",
        "bsrange",
        "bssplit",
        "ba",
        "direct",
        "buffered",
        "ioengine",
        "iodepth",
        "numjobs",
        "runtime",
        "time_based",
        "ramp_time",
        "startdelay",
        "loops",
        "group_reporting",
        "randrepeat",
        "randseed",
        "norandommap",
        "thread",
        "stonewall",
        "wait_for",
        "new_group",
        "fsync",
        "fdatasync",
        "end_fsync",
        "create_on_open",
        "unlink",
        "zero_buffers",
        "refill_buffers",
        "percentile_list",
        "lat_percentiles",
        "clat_percentiles",
        "kb_base",
        "unit_base",
        "iodepth_batch",
        "invalidate",
        "nrfiles",
        "file_service_type",
        "write_bw_log",
        "exitall",
        "description",
    ]
    for n in required:
        assert lookup(n) is not None, n
    for n in ["bs", "rw", "size", "runtime", "direct", "iodepth", "filename", "bssplit"]:
        assert OPTIONS[n].supported, n
    assert OPTIONS["invalidate"].supported and OPTIONS["invalidate"].default is True


def test_defaults_are_typed() -> None:
    d = default_values()
    assert d["bs"] == (4096, 4096)
    assert d["rw"] == "read" and d["rw_modifier"] is None
    assert d["runtime"] == 0 and d["direct"] is False and d["buffered"] is True
    assert d["rwmixread"] == 50 and d["rwmixwrite"] == 50
    assert d["kb_base"] == 1024 and d["ioengine"] == "psync"
    assert d["filename"] == [] and d["size"] is None and d["size_percent"] is None
    assert d["percentile_list"][-1] == 99.99
    assert d["randseed"] == 0x89 and d["randrepeat"] is True
    for key in COMPANIONS:
        assert key in d
    for o in OPTIONS.values():
        if o.engines:
            assert o.name not in d
        else:
            assert o.name in d
    # a fresh dict each time
    d["filename"].append("x")
    assert default_values()["filename"] == []


def test_engines() -> None:
    assert {"psync", "sync", "libaio", "io_uring", "mmap", "libpmem", "nbd"} <= set(SUPPORTED_ENGINES)
    assert ENGINES["sync"].runs_as == "psync"
    assert ENGINES["libaio"].runs_as == "libaio" and ENGINES["io_uring"].runs_as == "io_uring"
    assert ENGINES["mmap"].runs_as == "mmap" and ENGINES["libpmem"].runs_as == "libpmem"
    for e in ["dev-dax", "pvsync", "pvsync2", "vsync", "null", "net", "rdma"]:
        assert ENGINES[e].runs_as is None
    assert engine_option_owners("hostname") == ("net", "rdma", "libhdfs")
    assert engine_option_owners("userspace_reap") == ("libaio",)
    assert engine_option_owners("bs") == ()


def test_suggest() -> None:
    assert suggest("bsz") == "bs"
    assert suggest("runtme") == "runtime"
    assert suggest("iodepht") == "iodepth"
    assert suggest("zzzzzzzzzz") is None


def test_listing_all_and_one() -> None:
    text = format_options_listing(None)
    lines = text.splitlines()
    assert len(lines) == len(OPTIONS)
    assert any(line.startswith("bs ") and "blocksize" in line for line in lines)
    one = format_options_listing("bs")
    assert one.startswith("bs: ") and "aliases:  blocksize" in one and "bs-pair" in one
    assert "default:  4K" in one
    rt = format_options_listing("timeout")
    assert rt.startswith("runtime: ") and "a bare number means 1s" in rt
    assert "supported" in format_options_listing("rw")
    assert "engine-specific (libaio)" in format_options_listing("userspace_reap")
    assert "did you mean 'iodepth'" in format_options_listing("iodeptj")
    sub = format_options_listing("iodepth_batch")
    assert sub.startswith("iodepth_batch:")
    part = format_options_listing("verify_")
    assert "verify_fatal" in part and "bs " not in part


def test_fio_flags() -> None:
    assert FIO_FLAGS["output-format"].choices == ("normal", "json", "json+", "terse")
    assert FIO_FLAGS["section"].multi
    assert FIO_FLAGS["minimal"].arg == "none"


@pytest.mark.skipif(not HAVE_FIO, reason="fio is not installed")
def test_table_covers_fio_option_list() -> None:
    """Every option `fio --cmdhelp=all` lists (3.33) is in the table, as a general option."""
    out = subprocess.run(["fio", "--cmdhelp=all"], capture_output=True, text=True, check=False).stdout
    names = {m.group(1) for m in re.finditer(r"^\s*([A-Za-z0-9_\-]+)\s*:", out, re.MULTILINE)}
    assert len(names) > 150
    missing = sorted(n for n in names if lookup(n) is None)
    assert not missing, missing
    engine_named = sorted(n for n in names if OPTIONS[lookup(n).name].engines)  # type: ignore[union-attr]
    assert not engine_named


@pytest.mark.skipif(not HAVE_FIO, reason="fio is not installed")
def test_engine_list_matches_fio() -> None:
    out = subprocess.run(["fio", "--enghelp"], capture_output=True, text=True, check=False).stdout
    engines = out.split(":", 1)[1].split()
    for e in engines:
        assert e in ENGINES, e
