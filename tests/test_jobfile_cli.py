"""fio's command-line form -> JobDefs plus fio's own flags."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from iolab.jobfile import CMDLINE, JobFileError, Location, parse_cli


def cli_error(argv: list[str]) -> JobFileError:
    with pytest.raises(JobFileError) as ei:
        parse_cli(argv, env={})
    return ei.value


def test_globals_then_jobs() -> None:
    r = parse_cli(["--rw=randread", "--size=1m", "--name=a", "--bs=8k", "--name=b", "--iodepth=2"])
    assert [j.name for j in r.jobs] == ["a", "b"]
    a, b = r.jobs
    assert a.values["rw"] == b.values["rw"] == "randread"
    assert a.values["bs"] == (8192, 8192) and b.values["bs"] == (4096, 4096)
    assert b.values["iodepth"] == 2 and a.values["iodepth"] == 1
    assert a.source == Location(CMDLINE, 3) and b.source == Location(CMDLINE, 5)
    assert a.set_at["rw"] == Location(CMDLINE, 1) and a.set_at["bs"] == Location(CMDLINE, 4)
    assert r.files == [] and r.flags == {}


def test_name_global_goes_back_to_globals() -> None:
    r = parse_cli(["--name=a", "--name=global", "--bs=16k", "--name=b"])
    assert [j.values["bs"][0] for j in r.jobs] == [4096, 16384]


def test_no_name_means_no_job() -> None:
    assert parse_cli(["--rw=read", "--size=1m"]).jobs == []


def test_values_forms() -> None:
    r = parse_cli(["--name=a", "--bs", "8k", "-iodepth=4", "--time_based", "--direct", "1", "--runtime=10"])
    v = r.jobs[0].values
    assert v["bs"] == (8192, 8192) and v["iodepth"] == 4 and v["time_based"] and v["direct"]
    assert v["runtime"] == 10 * 10**9


def test_files_mixed_in_and_double_dash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("j.fio").write_text("[filejob]\nrw=write\n")
    Path("--odd.fio").write_text("[odd]\n")
    r = parse_cli(["j.fio", "--name=c", "--", "--odd.fio"], env={})
    assert r.files == ["j.fio", "--odd.fio"]
    assert [j.name for j in r.jobs] == ["c", "filejob", "odd"]


def test_files_and_cmdline_jobs_order(tmp_path: Path) -> None:
    f = tmp_path / "j.fio"
    f.write_text("[filejob]\nrw=write\n")
    r = parse_cli([str(f), "--name=c", "--output-format=json,json+"], env={})
    assert [j.name for j in r.jobs] == ["c", "filejob"]
    assert r.flags["output-format"] == ["json", "json+"]
    assert r.files == [str(f)]


def test_flags() -> None:
    r = parse_cli(
        [
            "--output=out.txt",
            "--minimal",
            "--eta=never",
            "--section=a",
            "--section=b",
            "--parse-only",
            "--showcmd",
            "--alloc-size=1024",
            "--readonly",
        ]
    )
    assert r.flags == {
        "output": "out.txt",
        "output-format": ["terse"],
        "minimal": True,
        "eta": "never",
        "section": ["a", "b"],
        "parse-only": True,
        "showcmd": True,
        "alloc-size": "1024",
        "readonly": True,
    }
    e = cli_error(["--output-format=jsn"])
    assert e.suggestion == "json" and e.option == "output-format"
    with pytest.raises(JobFileError, match="global"):
        parse_cli(["--section=global"])


def test_section_filter_on_files(tmp_path: Path) -> None:
    f = tmp_path / "j.fio"
    f.write_text("[global]\nbs=8k\n[a]\n[b]\n")
    r = parse_cli(["--section=b", str(f)], env={})
    assert [j.name for j in r.jobs] == ["b"]


def test_errors() -> None:
    e = cli_error(["--name=a", "--bsz=4k"])
    assert e.location == Location(CMDLINE, 2) and e.suggestion == "bs"
    assert str(e).startswith("<cmdline>:2: option 'bsz': unknown option")
    e = cli_error(["--name=a", "--bs=zz"])
    assert e.option == "bs" and e.got == "zz"
    e = cli_error(["--name=a", "--hostname=x"])
    assert "net" in str(e)
    e = cli_error(["--name=a", "--ioengine=pvsync2"])
    assert "not supported yet" in str(e)
    e = cli_error(["--name=a", "--hipri", "--ioengine=io_uring"])
    assert "io_uring" in str(e) and e.option == "hipri"
    with pytest.raises(JobFileError, match="needs a value"):
        parse_cli(["--name=a", "--bs"])
    with pytest.raises(JobFileError, match="ambiguous"):
        parse_cli(["--name=a", "--ra=1"])
    with pytest.raises(JobFileError, match="readonly"):
        parse_cli(["--readonly", "--name=a", "--rw=write"])
    with pytest.raises(JobFileError, match="cannot open job file"):
        parse_cli(["/nonexistent/x.fio"])


def test_abbreviation_warns() -> None:
    r = parse_cli(["--name=a", "--runt=10"])
    assert r.jobs[0].values["runtime"] == 10 * 10**9
    assert any("abbreviation" in w for w in r.warnings)


def test_cli_globals_and_several_files_warn(tmp_path: Path) -> None:
    a = tmp_path / "a.fio"
    b = tmp_path / "b.fio"
    a.write_text("[a]\n")
    b.write_text("[b]\n")
    r = parse_cli(["--bs=8k", str(a), str(b)], env={})
    assert [j.values["bs"][0] for j in r.jobs] == [8192, 4096]
    assert r.jobs[1].values["stonewall"] is True
    assert any("first job file" in w for w in r.warnings)


@pytest.mark.skipif(shutil.which("fio") is None, reason="fio is not installed")
@pytest.mark.parametrize(
    "argv",
    [
        ["--name=a", "--bs=4k"],
        ["--name=a", "--bsz=4k"],
        ["--name=a", "--bs", "8k"],
        ["--name=a", "--direct=true"],
        ["--name=a", "--time_based"],
        ["--name=a", "--runt=5"],
        ["--name=a", "--rw=randread:8", "--name=b", "--rw=reed"],
        ["--output-format=json", "--name=a"],
        ["--output-format=xml", "--name=a"],
        ["--eta=sometimes", "--name=a"],
    ],
)
def test_cli_verdict_matches_fio(argv: list[str]) -> None:
    proc = subprocess.run(["fio", "--parse-only", *argv], capture_output=True, text=True, check=False)
    try:
        parse_cli(argv, env={})
        ours = True
    except JobFileError:
        ours = False
    assert ours == (proc.returncode == 0), proc.stderr
