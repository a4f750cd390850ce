"""`iolab quick` end to end, and every command block of README.md run as written (shortened where a run would
take minutes), so that the README cannot drift from what the commands do.

README blocks are fenced blocks of `$ command` lines (each followed by the output it shows) or plain command
lists (`make run   # comment`). Every command in them must be known to COVERED below: a new or changed README
command fails test_every_readme_command_is_covered until a test runs it. Commands run through bash from a
temporary directory with this interpreter's bin directory (the venv's `iolab`) first on PATH; each block is
self-contained: background commands (`... &`) are stopped at the end of their block.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import need
from iolab.jobfile import parse_files
from iolab.options import OPTIONS
from iolab.plan import PlanError
from iolab.quick import JOBS_DIR, _fit_clones, _fmt_duration, _parse_seconds

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent
MiB = 1 << 20


# ------------------------------------------------------------------------------------- README parsing


@dataclass
class Command:
    block: int
    text: str  # as written, without the '$ ' and without a trailing '# comment' in command lists
    output: list[str] = field(default_factory=list)  # the lines the README shows after it

    @property
    def background(self) -> bool:
        return self.text.rstrip().endswith("&")


def readme_blocks() -> list[tuple[str, list[str]]]:
    """(info string, lines) of every fenced block."""
    blocks: list[tuple[str, list[str]]] = []
    lines: list[str] | None = None
    info = ""
    for line in README.read_text().splitlines():
        if line.startswith("```"):
            if lines is None:
                lines, info = [], line[3:].strip()
            else:
                blocks.append((info, lines))
                lines = None
        elif lines is not None:
            lines.append(line)
    return blocks


_COMMAND_WORDS = ("make ", "iolab ", "python ", "qemu-io ")


def readme_commands() -> list[Command]:
    out: list[Command] = []
    for n, (info, lines) in enumerate(readme_blocks()):
        if info and info not in ("sh", "shell", "console", "bash"):
            continue  # code (python, ini...) is not a command
        if any(line.startswith("$ ") for line in lines):
            for line in lines:
                if line.startswith("$ "):
                    out.append(Command(n, line[2:]))
                elif out and out[-1].block == n:
                    out[-1].output.append(line)
        else:
            for line in lines:
                if line.strip():
                    assert line.startswith(_COMMAND_WORDS), f"README block {n}: not a command: {line!r}"
                    out.append(Command(n, _strip_comment(line)))
    return out


def _strip_comment(line: str) -> str:
    """A command list line without its trailing '   # what it does' (a '#' inside quotes stays)."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].strip()
    return line.strip()


#: every README command starts with one of these, and each has a test below that runs it
COVERED = {
    "make run": "test_readme_make_run",
    "make test": "test_readme_make_test",
    "iolab quick": "test_readme_quick",
    "iolab run --name=randread": "test_readme_run_randread",
    "iolab run job.fio --output-format=json": "test_readme_other_commands",
    "iolab run --parse-only job.fio": "test_readme_other_commands",
    "iolab run --showcmd job.fio": "test_readme_other_commands",
    "iolab options [NAME]": "test_readme_other_commands",
    "iolab doctor TARGET | JOBFILE | -- fio/dd/cp COMMAND": "test_readme_other_commands",
    "iolab explain": "test_readme_other_commands",
    "iolab serve disk.img": "test_readme_nbd_blocks",
    "qemu-io -f raw": "test_readme_nbd_blocks",
    "iolab ctl ctl.sock": "test_readme_nbd_blocks",
    "python bench/": "test_readme_bench_commands",
    "iolab run --name=r --ioengine=nbd": "test_readme_nbd_engine",
    "iolab run --name=w --ioengine=nbd": "test_readme_nbd_engine",
    "iolab run --name=v --filename=v.dat": "test_readme_verify",
}


def find(prefix: str) -> Command:
    found = [c for c in readme_commands() if c.text.startswith(prefix)]
    assert found, f"README has no command starting with {prefix!r} any more: update this test"
    return found[0]


def test_every_readme_command_is_covered() -> None:
    commands = readme_commands()
    assert len(commands) >= 15, "the README's command blocks were not found"
    for c in commands:
        assert any(c.text.startswith(p) for p in COVERED), f"README command not run by any test: {c.text!r}"
    for prefix in COVERED:
        find(prefix)
    assert _strip_comment("make run     # creates .venv if missing") == "make run"
    assert _strip_comment("iolab explain 'dd if=/x # y'   # z") == "iolab explain 'dd if=/x # y'"


# ------------------------------------------------------------------------------------- running


def _env() -> dict[str, str]:
    need(shutil.which("iolab", path=str(BIN)) is not None, f"no iolab script in {BIN} (run make build)")
    return dict(os.environ, PATH=f"{BIN}:{os.environ.get('PATH', '')}")


#: qemu-io is not ours: under `make test-sanitize` it must not get the sanitizer preload (it stalled)
_SANITIZER_VARS = ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS")


def _env_for(cmd: str) -> dict[str, str]:
    env = _env()
    if "qemu-io" in cmd:
        env = {k: v for k, v in env.items() if k not in _SANITIZER_VARS}
    return env


def sh(cmd: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", cmd], cwd=cwd, env=_env_for(cmd), capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def background() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a block started with '&', stopped (by their own pid) when the block ends."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def start(
    cmd: str, cwd: Path, procs: list[subprocess.Popen[str]], merge: bool = False
) -> subprocess.Popen[str]:
    p = subprocess.Popen(
        ["bash", "-c", cmd.rstrip().removesuffix("&")],
        cwd=cwd,
        env=_env_for(cmd),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge else subprocess.PIPE,
        start_new_session=True,
    )
    procs.append(p)
    return p


def landmarks(lines: list[str]) -> list[str]:
    """The shape of fio's normal output: each line's label up to its first ':' or '=', units folded, numbers
    and per-run values (percentile rows, device names, finding details) left out."""
    out = []
    for line in lines:
        s = line.rstrip()
        if not s or s.lstrip().startswith(("|", "evidence:", "fix:")) or re.match(r"^\s+\w+ \(top\)", s):
            continue
        if re.match(r"^(warning|info|error): ", s) or re.match(r"^  \w+: ios=", s):
            continue
        label = re.split(r"[:=]", s, maxsplit=1)[0]
        label = re.sub(r"\((usec|msec|nsec)\)", "(time)", label)
        label = re.sub(r"\d", "", label).rstrip()
        if label not in out:
            out.append(label)
    return out


def is_subsequence(small: list[str], big: list[str]) -> bool:
    it = iter(big)
    return all(any(x == y for y in it) for x in small)


# ------------------------------------------------------------------------------------- quick


QUICK_ROW = re.compile(r"^(.{34}) (read |write)\s+\d+\s+[\d.]+MiB/s\s+[\d.]+ (us|ms)\s+[\d.]+ (us|ms)$")
QUICK_HEAD = re.compile(r"^target: (\S+)  \(direct=1, psync; (.+) ramp, (.+) measured\)$")


def quick_table(lines: list[str]) -> tuple[re.Match[str], str, list[tuple[str, str]]]:
    rows = [line for line in lines if line.strip()]
    head = QUICK_HEAD.match(rows[0])
    assert head, rows[0]
    body = []
    for row in rows[2:]:
        if row.startswith("doctor:"):
            break
        m = QUICK_ROW.match(row)
        assert m, row
        body.append((m.group(1).strip(), m.group(2).strip()))
    return head, rows[1], body


def test_readme_quick(tmp_path: Path) -> None:
    cmd = find("iolab quick")
    assert cmd.text == "iolab quick"
    proc = sh(f"{cmd.text} --size 64m --runtime 1 --ramp-time 0", tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip("\n").splitlines()
    head, header, rows = quick_table(lines)
    doc_head, doc_header, doc_rows = quick_table(cmd.output)
    assert header == doc_header and rows == doc_rows
    assert head.group(1) == str(tmp_path / "iolab-quick.dat")
    assert (head.group(2), head.group(3)) == ("0 s", "1 s")
    # the README's durations are quick's defaults
    assert (doc_head.group(2), doc_head.group(3)) == (_fmt_duration(2_000_000_000), _fmt_duration(10**10))
    assert os.listdir(tmp_path) == ["iolab-quick.dat"]
    note = re.compile(r"^  (IOL-[A-Z]+-\d+: .+|device check \(.+\): .+)$")
    for shown in (lines, cmd.output):
        doctor = shown[shown.index("doctor:") + 1 :]
        assert doctor and all(note.match(x) for x in doctor), doctor


#: a make started from inside `make test` (as CI runs the suite) would inherit its level and flags
MAKE_ENV = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}


def test_readme_make_run(tmp_path: Path) -> None:
    find("make run")
    # `make -n` shows the recipe without building: it ends in `iolab quick` with no arguments
    recipe = subprocess.run(
        ["make", "-n", "--no-print-directory", "run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env=MAKE_ENV,
    ).stdout
    assert recipe.strip().splitlines()[-1].split() == [".venv/bin/iolab", "quick"]
    # ... which writes a 1 GiB file in the current directory (one workload, shortened, to check it)
    proc = sh("iolab quick --only latency-reads --runtime 1 --ramp-time 0", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "iolab-quick.dat").stat().st_size == 1 << 30
    assert "Latency-sensitive random reads" in proc.stdout


def test_readme_make_test() -> None:
    find("make test")
    recipe = subprocess.run(
        ["make", "-n", "--no-print-directory", "test"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env=MAKE_ENV,
    ).stdout
    assert "pytest" in recipe and "apt-get" in recipe  # system packages as root, then the suite


def test_quick_colon_target_and_small_size(tmp_path: Path) -> None:
    target = tmp_path / "x:y.dat"
    proc = sh(f"iolab quick --target '{target}' --size 64m --runtime 1s --ramp-time 500ms", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert os.listdir(tmp_path) == ["x:y.dat"], "the ':' split the target into several files"
    assert target.stat().st_size == 64 * MiB
    assert "each job reads 8 MiB" in proc.stderr  # 8 parallel readers share the 64 MiB
    head, _, rows = quick_table(proc.stdout.strip("\n").splitlines())
    assert head.group(1) == str(target) and (head.group(2), head.group(3)) == ("500 ms", "1 s")
    assert [r[0] for r in rows] == [
        "High-throughput parallel reads",
        "Latency-sensitive random reads",
        "Mixed workload (70/30)",
        "Mixed workload (70/30)",
    ]
    assert "error" not in proc.stderr


def test_quick_durations_read_like_runtime() -> None:
    s = 1_000_000_000
    assert _parse_seconds("--runtime", "10") == 10 * s  # a bare number is seconds, as runtime=10
    assert _parse_seconds("--runtime", "1s") == s
    assert _parse_seconds("--ramp-time", "500ms") == s // 2
    assert _parse_seconds("--runtime", "1m") == 60 * s
    assert _parse_seconds("--ramp-time", "0") == 0


def test_quick_bad_durations_are_usage_errors(tmp_path: Path) -> None:
    for args in ("--runtime abc", "--runtime 0", "--ramp-time -1", "--size 10%"):
        proc = sh(f"iolab quick {args}", tmp_path, timeout=30)
        assert proc.returncode == 2 and args.split()[0] in proc.stderr, args
    assert os.listdir(tmp_path) == []


def test_parallel_reads_fit_a_small_target() -> None:
    jobs = parse_files([str(JOBS_DIR / "parallel-reads.fio")], {"IOLAB_TARGET": "/dev/x"})
    assert jobs[0].values["size"] == 128 * MiB  # as written: 8 x 128m for 1 GiB
    assert _fit_clones(jobs, 1 << 30) is None and jobs[0].values["size"] == 128 * MiB
    note = _fit_clones(jobs, 100 * MiB + 4096)  # e.g. a 100 MiB device
    v = jobs[0].values
    assert v["size"] == v["offset_increment"] == 100 * MiB // 8 // 65536 * 65536
    assert note and "parallel-reads" in note
    with pytest.raises(PlanError, match="too small"):
        _fit_clones(parse_files([str(JOBS_DIR / "parallel-reads.fio")], {"IOLAB_TARGET": "/dev/x"}), 65536)


# ------------------------------------------------------------------------------------- iolab run


def test_readme_run_randread(tmp_path: Path) -> None:
    cmd = find("iolab run --name=randread")
    assert "--runtime=3" in cmd.text
    (tmp_path / "iolab-quick.dat").write_bytes(os.urandom(16 * MiB))  # what `iolab quick` leaves behind
    proc = sh(cmd.text.replace("--runtime=3", "--runtime=1"), tmp_path)
    assert proc.returncode == 0, proc.stderr
    ours = proc.stdout.splitlines()
    missing = [x for x in landmarks(cmd.output) if x not in landmarks(ours)]
    assert not missing, f"README output lines not in ours: {missing}"
    assert is_subsequence(landmarks(cmd.output), landmarks(ours)), "the sections come in another order"
    codes = {m.group(1) for m in re.finditer(r"^warning: (IOL-\w+-\d+)", "\n".join(cmd.output), re.M)}
    assert codes and all(f"warning: {c} [randread]" in proc.stdout for c in codes)


def test_readme_other_commands(tmp_path: Path) -> None:
    job = tmp_path / "job.fio"
    (tmp_path / "data").write_bytes(os.urandom(4 * MiB))
    job.write_text("[j]\nfilename=data\nrw=randread\nbs=4k\ndirect=1\nruntime=1\ntime_based\n")

    cmd = find("iolab run job.fio --output-format=json")
    assert cmd.text.endswith("> result.json")
    proc = sh(cmd.text, tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((tmp_path / "result.json").read_text())  # pure JSON on stdout ...
    assert doc["jobs"][0]["jobname"] == "j"
    assert "IOL-RAMP-001" in proc.stderr  # ... messages on stderr

    cmd = find("iolab run --parse-only job.fio")
    assert sh(cmd.text, tmp_path).returncode == 0
    (tmp_path / "bad.fio").write_text("[j]\nfilename=data\nrww=read\n")
    bad = sh(cmd.text.replace("job.fio", "bad.fio"), tmp_path)
    assert bad.returncode == 1 and "bad.fio:3" in bad.stderr and "did you mean 'rw'?" in bad.stderr

    cmd = find("iolab run --showcmd job.fio")
    shown = sh(cmd.text, tmp_path)
    assert shown.returncode == 0 and shown.stdout.startswith("fio --name=j ")
    assert "--rw=randread" in shown.stdout

    cmd = find("iolab options [NAME]")
    listing = sh("iolab options", tmp_path)
    assert listing.returncode == 0 and len(listing.stdout.splitlines()) == len(OPTIONS)
    one = sh("iolab options bs", tmp_path)
    assert one.returncode == 0 and one.stdout.startswith("bs: ")
    fio_help = sh("iolab run --cmdhelp=bs", tmp_path)  # "like fio --cmdhelp"
    assert fio_help.stdout == one.stdout

    find("iolab doctor TARGET | JOBFILE | -- fio/dd/cp COMMAND")
    target = sh("iolab doctor data", tmp_path)
    assert target.returncode == 0 and target.stdout.startswith("data: regular file")
    jobfile = sh("iolab doctor job.fio --output-format=json", tmp_path)
    assert jobfile.returncode == 1
    assert "IOL-RAMP-001" in {f["code"] for f in json.loads(jobfile.stdout)["findings"]}
    dd = sh("iolab doctor -- dd if=data of=/dev/null bs=1M count=1", tmp_path)
    assert dd.returncode == 1 and "IOL-CACHE-001" in dd.stdout

    cmd = find("iolab explain")
    proc = sh(cmd.text, tmp_path)
    assert proc.returncode == 0 and "What it measures:" in proc.stdout


# ------------------------------------------------------------------------------------- NBD


def _ops_shape(line: str) -> str:
    """qemu-io's timing line without its numbers and units."""
    return re.sub(r"[KMG]?i?B/sec", "B/sec", re.sub(r"\d+(\.\d+)?", "N", line))


def _nbd_rules() -> str:
    text = (ROOT / "docs" / "nbd.md").read_text()
    m = re.search(r"```\n(\[set-state\].*?)```", text, re.S)
    assert m, "docs/nbd.md no longer has the rules.conf example the README refers to"
    return m.group(1)


def test_readme_nbd_blocks(tmp_path: Path, background: list[subprocess.Popen[str]]) -> None:
    need(shutil.which("qemu-io") is not None, "qemu-io is not installed (qemu-utils)")
    (tmp_path / "disk.img").write_bytes(b"")
    os.truncate(tmp_path / "disk.img", 64 * MiB)
    (tmp_path / "rules.conf").write_text(_nbd_rules())
    blocks: dict[int, list[Command]] = {}
    for c in readme_commands():
        if c.text.startswith(("iolab serve", "qemu-io", "iolab ctl")):
            blocks.setdefault(c.block, []).append(c)
    assert len(blocks) == 2
    for commands in blocks.values():
        procs_before = len(background)
        last_bg: subprocess.Popen[str] | None = None
        for c in commands:
            text = c.text.replace("/tmp/demo", str(tmp_path))
            text = re.sub(r"\s+#.*$", "", text)
            if c.text.startswith("iolab serve"):
                assert c.background
                server = start(text, tmp_path, background)
                assert server.stdout is not None
                ready = json.loads(server.stdout.readline())
                assert c.output, "the README shows the server's ready line"
                doc = json.loads(c.output[0].replace("/tmp/demo", str(tmp_path)))
                assert set(ready) == set(doc) and ready["ready"] is True
                assert ready["uris"] == doc["uris"] and ready["control"] == doc["control"]
                assert ready["exports"] == doc["exports"]
            elif c.background:
                last_bg = start(text.rstrip().removesuffix("&") + " 2>&1 &", tmp_path, background, merge=True)
                time.sleep(0.5)
            else:
                proc = sh(f"{{ {text}; }} 2>&1", tmp_path, timeout=60)  # in the order a terminal shows
                assert proc.returncode == 0 or c.text.startswith("qemu-io"), (c.text, proc.stdout)
                got = proc.stdout.splitlines()
                if last_bg is not None and c is commands[-1]:
                    out, _ = last_bg.communicate(timeout=30)
                    got += out.splitlines()
                assert [_ops_shape(x) for x in got] == [_ops_shape(x) for x in c.output], c.text
        assert len(background) > procs_before
        for p in background:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(10)


def test_readme_nbd_engine(tmp_path: Path) -> None:
    """The nbd engine's README commands against nbdkit (memory plugin) on the socket and port they name."""
    nbdkit = shutil.which("nbdkit")
    need(nbdkit is not None, "nbdkit is not installed (Debian package nbdkit)")
    assert nbdkit is not None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    sock = tmp_path / "nbd.sock"
    servers = [
        subprocess.Popen([nbdkit, "-f", "-U", str(sock), "memory", "size=16M"], start_new_session=True),
        subprocess.Popen(
            [nbdkit, "-f", "-i", "127.0.0.1", "-p", str(port), "memory", "size=16M"], start_new_session=True
        ),
    ]
    try:
        deadline = time.monotonic() + 20
        while not sock.exists() or not _listening(port):
            assert time.monotonic() < deadline, "nbdkit did not start"
            time.sleep(0.05)
        for prefix in ("iolab run --name=r --ioengine=nbd", "iolab run --name=w --ioengine=nbd"):
            text = (
                find(prefix)
                .text.replace("/tmp/nbd.sock", str(sock))
                .replace("127.0.0.1:10809", f"127.0.0.1:{port}")
            )
            proc = sh(text, tmp_path)
            assert proc.returncode == 0, (text, proc.stderr)
            assert "ioengine=nbd" in proc.stdout and "err= 0" in proc.stdout, proc.stdout
    finally:
        for p in servers:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(10)


def test_readme_verify(direct_dir: Path) -> None:
    """The Verify section's two commands as typed: write and verify, verify alone, then verify alone after
    dd overwrote one block, which must fail at that block."""
    write, check = (
        c.text for c in readme_commands() if c.text.startswith("iolab run --name=v --filename=v.dat")
    )
    assert check == write + " --verify_only"
    for cmd in (write, check):
        proc = sh(cmd, direct_dir)
        assert proc.returncode == 0, (cmd, proc.stderr)
        assert "err= 0" in proc.stdout
    bad = 77 * 65536
    with open(direct_dir / "v.dat", "r+b") as fh:
        fh.seek(bad + 1000)
        fh.write(os.urandom(512))
    proc = sh(check, direct_dir)
    assert proc.returncode == 1
    assert f"crc32c: verify failed at file v.dat offset {bad}, length 65536" in proc.stderr, proc.stderr


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


# ------------------------------------------------------------------------------------- bench and prose


def test_readme_bench_commands() -> None:
    # the benchmarks take minutes and, as root, use zram: each documented flag must exist in the script
    for c in readme_commands():
        if not c.text.startswith("python bench/"):
            continue
        argv = shlex.split(c.text)
        script = ROOT / argv[1]
        assert script.is_file(), c.text
        helptext = subprocess.run(
            [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=60
        )
        assert helptext.returncode == 0, (c.text, helptext.stderr)
        for flag in (a for a in argv[2:] if a.startswith("--")):
            assert flag.split("=")[0] in helptext.stdout, (c.text, flag)


def test_readme_command_table_matches_the_cli() -> None:
    from iolab.options import FIO_FLAGS

    text = README.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| command line |"))
    implemented, refused = row.split("fio's other flags")
    for flag in re.findall(r"`(--[a-z-]+)", implemented):
        name = flag[2:]
        assert name == "name" or (name in FIO_FLAGS and FIO_FLAGS[name].supported), flag
    for flag in re.findall(r"`(--[a-z-]+)", refused):
        assert not FIO_FLAGS[flag[2:]].supported, flag
