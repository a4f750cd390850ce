"""Job-file rules (fio 3.33 meaning) and the JobDef contract."""

from __future__ import annotations

from pathlib import Path

import pytest

from iolab.jobfile import JobDef, JobFileError, Location, parse_files, parse_text, showcmd
from iolab.options import OPTIONS


def one(text: str, **kw: object) -> JobDef:
    jobs = parse_text(text, **kw)  # type: ignore[arg-type]
    assert len(jobs) == 1
    return jobs[0]


def err(text: str, **kw: object) -> JobFileError:
    with pytest.raises(JobFileError) as ei:
        parse_text(text, **kw)  # type: ignore[arg-type]
    return ei.value


# --- sections and globals ------------------------------------------------------------------


def test_global_inheritance_and_later_global() -> None:
    jobs = parse_text("[global]\nbs=8k\n[a]\n[global]\nbs=16k\nrw=write\n[b]\nrw=read\n[c]\n")
    assert [j.name for j in jobs] == ["a", "b", "c"]
    assert [j.index for j in jobs] == [0, 1, 2]
    assert [j.values["bs"] for j in jobs] == [(8192, 8192), (16384, 16384), (16384, 16384)]
    assert [j.values["rw"] for j in jobs] == ["read", "read", "write"]
    assert jobs[0].set_at["bs"] == Location("<string>", 2)
    assert jobs[1].set_at["rw"] == Location("<string>", 8)
    assert jobs[2].set_at["rw"] == Location("<string>", 6)
    assert "iodepth" not in jobs[0].set_at
    assert jobs[1].source == Location("<string>", 7)


def test_any_section_starting_with_global_is_global() -> None:
    jobs = parse_text("[global-x]\nbs=8k\n[globalfoo]\nrw=write\n[job]\n")
    assert len(jobs) == 1 and jobs[0].values["bs"] == (8192, 8192)
    assert jobs[0].values["rw"] == "write"


def test_name_option() -> None:
    jobs = parse_text("[global]\nname=gg\n[j1]\nname=foo\n[j2]\n")
    assert [j.name for j in jobs] == ["foo", "j2"]
    assert "name" not in jobs[1].set_at


def test_values_complete() -> None:
    j = one("[a]\n")
    for o in OPTIONS.values():
        if not o.engines:
            assert o.name in j.values
    assert j.values["stonewall"] is False and j.set_at == {}


def test_section_name_quirks() -> None:
    jobs = parse_text("[j#x]\n[ k2 ]\n[k3] trailing\n[k4\n[]\n")
    assert [j.name for j in jobs] == ["", " k2 ", "k3] trailin", "k", ""]
    assert any("comment" in w for w in jobs[0].warnings)
    assert any("does not end with ']'" in w for w in jobs[3].warnings)
    assert any("spaces" in w for w in jobs[1].warnings)


def test_options_outside_sections() -> None:
    e = err("bs=4k\n[a]\n")
    assert e.location == Location("<string>", 1) and "outside of any [section]" in str(e)
    e = err("[a]\n[\n")
    assert "section header" in str(e)


def test_comments_anywhere() -> None:
    j = one("; top\n# top\n[a] ; c\nfilename=/tmp/x#y\ndescription=hello ; world\n  bs = 4k  \n")
    assert j.values["filename"] == ["/tmp/x"]
    assert j.values["description"] == "hello"
    assert j.values["bs"] == (4, 4)  # the space after '=' makes fio ignore the unit
    assert any("starts with a space" in w for w in j.warnings)


def test_bare_flags_and_bools() -> None:
    j = one("[a]\ntime_based\nruntime=1\ngroup_reporting\nnorandommap\nstonewall\ndirect=1\n")
    assert j.values["time_based"] and j.values["group_reporting"] and j.values["norandommap"]
    assert j.values["direct"] is True and j.values["buffered"] is False
    # like fio's option fixup: no runtime, no time_based (with a warning)
    j = one("[a]\ntime_based\n")
    assert j.values["time_based"] is False and any("needs a runtime" in w for w in j.warnings)
    for bad in ("direct=true", "direct=yes", "direct=2", "direct", "time_based=yes"):
        e = err(f"[a]\n{bad}\n")
        assert e.option == bad.split("=")[0]
    j = one("[a]\ntime_based=5\nruntime=1\n")
    assert j.values["time_based"] is True and any("counts as on" in w for w in j.warnings)
    assert one("[a]\nbuffered=0\n").values["direct"] is True


def test_sections_filter() -> None:
    jobs = parse_text("[global]\nbs=8k\n[a]\nfoo=bar\n[b]\n", sections=["b"])
    assert [j.name for j in jobs] == ["b"] and jobs[0].values["bs"] == (8192, 8192)


# --- includes --------------------------------------------------------------------------------


def test_include_relative_nested_and_global(tmp_path: Path) -> None:
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "g.fio").write_text("thread=1\ninclude more.fio\n")
    (sub / "more.fio").write_text("group_reporting=1\n")
    (sub / "t.fio").write_text("; comment\nrw=randread\n")
    main = sub / "main.fio"
    main.write_text("[global]\ninclude g.fio\n[test]\nbs=4k\ninclude t.fio\n[other]\n")
    jobs = parse_files([str(main)])
    assert jobs[0].values["thread"] and jobs[0].values["group_reporting"]
    assert jobs[0].values["rw"] == "randread" and jobs[1].values["rw"] == "read"
    assert jobs[1].values["group_reporting"]
    assert jobs[0].set_at["rw"] == Location(str(sub / "t.fio"), 2)


def test_include_errors(tmp_path: Path) -> None:
    main = tmp_path / "m.fio"
    main.write_text("[a]\ninclude nope.fio\n")
    with pytest.raises(JobFileError, match=r"cannot open include file 'nope\.fio'") as ei:
        parse_files([str(main)])
    assert ei.value.location == Location(str(main), 2)
    (tmp_path / "loop.fio").write_text("include m2.fio\n")
    (tmp_path / "m2.fio").write_text("include loop.fio\n")
    main.write_text("[a]\ninclude loop.fio\n")
    with pytest.raises(JobFileError, match="include loop"):
        parse_files([str(main)])
    (tmp_path / "sec.fio").write_text("[x]\n")
    main.write_text("[a]\ninclude sec.fio\n")
    with pytest.raises(JobFileError, match="may not contain"):
        parse_files([str(main)])
    main.write_text("include sec.fio\n[a]\n")
    with pytest.raises(JobFileError, match="outside"):
        parse_files([str(main)])
    main.write_text("[a]\ninclude\n")
    with pytest.raises(JobFileError, match="needs a file name"):
        parse_files([str(main)])


# --- environment -----------------------------------------------------------------------------


def test_env_substitution() -> None:
    j = one("[a]\nbs=${BS}\nsize=${NOPE}1m\nfilename=$HOME/x\n", env={"BS": "8k"})
    assert j.values["bs"] == (8192, 8192)
    assert j.values["size"] == 1048576
    assert j.values["filename"] == ["$HOME/x"]
    assert any("'NOPE' is not set" in w for w in j.warnings)
    assert any("'$HOME' stays as written" in w for w in j.warnings)
    e = err("[a]\nbs=${BS}\n", env={})
    assert e.option == "bs" and e.got == ""


def test_reserved_keywords_and_math() -> None:
    import os

    page = os.sysconf("SC_PAGE_SIZE")
    assert one("[a]\nbs=$pagesize\n").values["bs"] == (page, page)
    assert one("[a]\nsize=2*$pagesize\n").values["size"] == 2 * page
    assert one("[a]\nsize=($pagesize+1)/2\n").values["size"] == (page + 1) // 2
    assert one("[a]\nnumjobs=$ncpus\n").values["numjobs"] == os.sysconf("SC_NPROCESSORS_CONF")
    assert "bc" in str(err("[a]\nsize=4k*$pagesize\n"))


# --- values ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "key", "value"),
    [
        ("size=1.5m", "size", 1),
        ("size=4KiB", "size", 4000),
        ("size=4kb", "size", 4096),
        ("size=1g", "size", 1 << 30),
        ("runtime=1min", "runtime", 1000),
        ("runtime=10m", "runtime", 600 * 10**9),
        ("runtime=10", "runtime", 10 * 10**9),
        ("runtime=250ms", "runtime", 250 * 10**6),
        ("ramp_time=5s", "ramp_time", 5 * 10**9),
        ("thinktime=10", "thinktime", 10_000),
        ("iodepth=4k", "iodepth", 4096),
    ],
)
def test_units(line: str, key: str, value: int) -> None:
    assert one(f"[a]\n{line}\n").values[key] == value


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("size=1.5m", "drops the fraction"),
        ("runtime=1min", "minute unit is 'm'"),
        ("runtime=10sec", "second unit is 's'"),
        ("bs=4KiB", "power of 1000"),
        ("bs=4q", "not a unit"),
        ("size=0x10k", "hex"),
        ("bs=4k-8k", "not a range"),
        ("rw=randread:0", "sequential"),
        ("bssplit=4k/10:8k/20", "add up to 30"),
        ("clocksource=cpu", "not implemented by iolab, and ignored"),
        ("threads=4", "profile"),
    ],
)
def test_surprises_warn(line: str, words: str) -> None:
    j = one(f"[a]\n{line}\n")
    assert any(words in w for w in j.warnings), j.warnings
    assert all(w.startswith("<string>:2: ") for w in j.warnings)


def test_kb_base_1000() -> None:
    v = one("[a]\nkb_base=1000\nsize=4k\nbs=4KiB\n").values
    assert v["size"] == 4000 and v["bs"] == (4096, 4096)


def test_percent_forms() -> None:
    v = one("[a]\nsize=50%\noffset=10%\n").values
    assert v["size"] is None and v["size_percent"] == 0.5 and v["offset_percent"] == 0.1
    v = one("[global]\nsize=50%\n[a]\nsize=1m\n").values
    assert v["size"] == 1 << 20 and v["size_percent"] is None
    assert err("[a]\nsize=150%\n").option == "size"
    assert err("[a]\nbs=50%\n").option == "bs"


def test_rw_modes_and_modifier() -> None:
    assert one("[a]\nreadwrite=readwrite\n").values["rw"] == "rw"
    v = one("[a]\nrw=randread:8\n").values
    assert (v["rw"], v["rw_modifier"]) == ("randread", 8)
    v = one("[a]\nrw=read:4k\n").values
    assert (v["rw"], v["rw_modifier"]) == ("read", 4096)
    v = one("[a]\nrw=read:-4k\n").values
    assert v["rw_modifier"] == -4096
    assert one("[a]\nrw=randwrite\n").values["rw_modifier"] is None
    j = one("[a]\nrw=trim\n")
    assert j.values["rw"] == "trim" and not j.warnings  # trims are implemented
    e = err("[a]\nrw=raed\n")
    assert e.suggestion == "read" and e.option == "rw"
    e = err("[a]\nrw=read:\n")  # fio refuses an empty skip for sequential patterns when it runs
    assert e.option == "rw"
    assert "spaces" in str(err("[a]\nrw= read\n"))


def test_rwmix_sets_both() -> None:
    v = one("[a]\nrwmixwrite=30\n").values
    assert (v["rwmixread"], v["rwmixwrite"]) == (70, 30)
    v = one("[a]\nrwmixread=80\n").values
    assert (v["rwmixread"], v["rwmixwrite"]) == (80, 20)


def test_bs_bsrange_bssplit() -> None:
    assert one("[a]\nbs=4k,8k\n").values["bs"] == (4096, 8192)
    assert one("[a]\nbs=,8k\n").values["bs"] == (4096, 8192)
    assert one("[a]\nbs=8k,\n").values["bs"] == (8192, 4096)
    assert one("[a]\nbsrange=1k-4k\n").values["bsrange"] == ((1024, 4096), (1024, 4096))
    assert one("[a]\nblocksize_range=8k-1k,2k:4k\n").values["bsrange"] == ((1024, 8192), (2048, 4096))
    assert one("[a]\nbs=16k\nbsrange=,1k-2k\n").values["bsrange"] == ((16384, 16384), (1024, 2048))
    v = one("[a]\nbssplit=4k/10:64k/50:32k/40,4k/100\n").values["bssplit"]
    assert v == ([(4096, 10), (32768, 40), (65536, 50)], [(4096, 100)])
    v = one("[a]\nbssplit=4k/20:8k:16k\n").values["bssplit"]
    assert v[0] == [(4096, 20), (8192, 40), (16384, 40)] and v[1] == v[0]
    v = one("[a]\nbssplit=4k:8k:16k\n").values["bssplit"]
    assert sorted(p for _, p in v[0]) == [33, 33, 34]
    assert one("[a]\nbssplit=64k\n").values["bssplit"] == ([(65536, 100)], [(65536, 100)])
    assert "add up to" in str(err("[a]\nbssplit=4k/60:8k/60:1k:2k\n"))
    v = one("[a]\nbssplit=4k/60:8k/60\n").values["bssplit"]
    assert sum(p for _, p in v[0]) == 100


def test_filename_list_and_escape() -> None:
    v = one("[a]\nfilename=/tmp/a\\:b:/tmp/c\n").values
    assert v["filename"] == ["/tmp/a:b", "/tmp/c"]
    assert one("[a]\nfilename= /dev/x\n").values["filename"] == ["/dev/x"]


def test_percentile_list() -> None:
    assert one("[a]\npercentile_list=99.9:99.99\n").values["percentile_list"] == (99.9, 99.99)
    assert err("[a]\npercentile_list=abc\n").option == "percentile_list"


def test_ioengines() -> None:
    assert one("[a]\nioengine=psync\n").values["ioengine"] == "psync"
    j = one("[a]\nioengine=sync\n")
    assert j.values["ioengine"] == "psync" and any("psync" in w for w in j.warnings)
    for eng in ("libaio", "io_uring", "mmap", "libpmem"):
        assert one(f"[a]\nioengine={eng}\n").values["ioengine"] == eng
    for eng in ("dev-dax", "pvsync", "null"):
        e = err(f"[a]\nioengine={eng}\n")
        assert "not supported yet" in str(e) and "psync" in str(e) and eng in str(e)
    e = err("[a]\nioengine=psycn\n")
    assert e.suggestion == "psync"
    assert "external" in str(err("[a]\nioengine=external:/x.so\n"))


def test_engine_options_name_their_engine() -> None:
    for line, engine in [
        ("hostname=x", "net/rdma/libhdfs"),
        ("userspace_reap", "libaio"),
        ("http_host=h", "http"),
        ("cpuload=50", "cpuio/exec"),
        ("hipri", "io_uring"),
    ]:
        e = err(f"[a]\n{line}\n")
        assert engine in str(e) and e.option == line.split("=")[0]
    j = one("[global]\nioengine=io_uring\n[a]\nhipri\nfixedbufs\nnonvectored=0\nsqthread_poll_cpu=1\n")
    assert (j.values["hipri"], j.values["fixedbufs"], j.values["nonvectored"]) == (True, True, 0)
    assert j.values["sqthread_poll_cpu"] == 1
    assert one("[a]\nioengine=libaio\nuserspace_reap\n").values["userspace_reap"] is True
    assert "ioengine=psync" in str(err("[a]\nioengine=psync\nfixedbufs\n"))


def test_error_format_and_suggestion() -> None:
    e = err("[global]\n\n[a]\nbsz=4k\n", filename="x.fio")
    assert str(e) == "x.fio:4: option 'bsz': unknown option; did you mean 'bs'?"
    assert e.location == Location("x.fio", 4) and e.option == "bsz" and e.suggestion == "bs"
    e = err("[a]\nsize=abc\n", filename="x.fio")
    assert str(e).startswith(
        "x.fio:2: option 'size': expected a size such as 4k or 1g or a percentage, got 'abc'"
    )
    assert e.expected is not None and e.got == "abc"
    assert "command-line flag" in str(err("[a]\nreadonly=1\n"))
    assert "removed" in str(err("[a]\nrwmixcycle=5\n"))
    # the earliest bad line is reported, even though kb_base is applied first
    e = err("[a]\nbs=zz\nkb_base=7\n")
    assert e.location.line == 2


def test_multiple_files_stonewall_and_index(tmp_path: Path) -> None:
    a = tmp_path / "a.fio"
    b = tmp_path / "b.fio"
    a.write_text("[global]\nbs=8k\n[a1]\n[a2]\n")
    b.write_text("[global]\nrw=write\n[b1]\n[b2]\n")
    jobs = parse_files([str(a), str(b)])
    assert [(j.name, j.index, j.values["stonewall"]) for j in jobs] == [
        ("a1", 0, False),
        ("a2", 1, False),
        ("b1", 2, True),
        ("b2", 3, False),
    ]
    assert jobs[2].values["bs"] == (4096, 4096)  # globals do not cross files
    assert "stonewall" not in jobs[2].set_at


def test_missing_job_file(tmp_path: Path) -> None:
    with pytest.raises(JobFileError, match="cannot open job file") as ei:
        parse_files([str(tmp_path / "none.fio")])
    assert ei.value.location.line == 0


def test_showcmd_from_jobdefs() -> None:
    jobs = parse_text("[global]\nrw=read\n[a]\nbs=4k\ndescription=x y\n[b]\ntime_based\n")
    assert showcmd(jobs) == 'fio --rw=read --name=a --bs=4k --description="x y" --name=b --time_based \n'
    assert showcmd([]) == ""


def test_non_utf8_and_nul(tmp_path: Path) -> None:
    f = tmp_path / "x.fio"
    f.write_bytes(b"[a]\nbs=4k\x00junk\ndescription=\xff\xfe\n")
    j = parse_files([str(f)])[0]
    assert j.values["bs"] == (4096, 4096)


def test_single_digit_sizes_carry_no_unit_warning() -> None:
    from iolab.jobfile import parse_cli

    for arg in ("--fsync=1", "--loops=2", "--size=5"):
        assert parse_cli(["--name=x", arg]).jobs[0].warnings == [], arg
