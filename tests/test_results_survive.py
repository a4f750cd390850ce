"""Results that survive: stop signals, --output written by rename, OS errors that name the path.

Real signals to a real `iolab run` subprocess, real files, tmpfs mounts in our own temp dirs (root), and the
same signals sent to fio for comparison.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import need
from test_doctor_safety import swap_file

IOLAB = [sys.executable, "-m", "iolab"]
MiB = 1 << 20
SIGNALS = [signal.SIGTERM, signal.SIGHUP, signal.SIGINT]


_started: list[subprocess.Popen[Any]] = []


@pytest.fixture(autouse=True)
def _no_process_left() -> Iterator[None]:
    """A failed test must not leave its iolab running (it would hold our mounts busy)."""
    yield
    while _started:
        proc = _started.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def read_bytes(pid: int) -> int:
    """Bytes the process has read through read calls so far (/proc/PID/io rchar)."""
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    raise AssertionError("no rchar in /proc/PID/io")


class Running:
    """A subprocess whose stderr is read line by line while it runs (to wait for what it announces)."""

    def __init__(self, argv: list[str], **kwargs: Any) -> None:
        pipe = subprocess.PIPE
        self.proc = subprocess.Popen(argv, stdout=pipe, stderr=pipe, text=True, **kwargs)
        _started.append(self.proc)
        self.lines: list[str] = []
        self._stdout: list[str] = []
        assert self.proc.stderr is not None and self.proc.stdout is not None
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stderr, self.lines), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stdout, self._stdout), daemon=True),
        ]
        for t in self._threads:
            t.start()

    @staticmethod
    def _pump(stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line)

    def wait_for_line(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"never saw {text!r}; stderr:\n{''.join(self.lines)}")
            time.sleep(0.02)

    def read_bytes(self) -> int:
        return read_bytes(self.proc.pid)

    def wait_for_reads(self, nbytes: int, timeout: float = 60) -> None:
        """Until the process has read `nbytes` more than now: its job is doing I/O."""
        start = self.read_bytes()
        deadline = time.monotonic() + timeout
        while self.read_bytes() - start < nbytes:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the job did not read {nbytes} bytes; stderr:\n{''.join(self.lines)}")
            time.sleep(0.02)

    def finish(self, timeout: float = 60) -> tuple[int, str, str]:
        code = self.proc.wait(timeout=timeout)
        for t in self._threads:
            t.join(timeout=10)
        return code, "".join(self._stdout), "".join(self.lines)


def start_reader(target: Path, *args: str, runtime: int = 60, **kwargs: Any) -> Running:
    """A time_based read job on `target` that announces its layout on stderr, then reads until stopped."""
    run = Running(
        [
            *IOLAB,
            "run",
            "--name=sig",
            f"--filename={target}",
            "--size=16m",
            "--rw=read",
            "--bs=64k",
            "--time_based",
            f"--runtime={runtime}",
            *args,
        ],
        **kwargs,
    )
    run.wait_for_line(f"laid out {target}")
    run.wait_for_reads(64 * MiB)  # its job is reading (not only laid out)
    return run


def no_temp_files(directory: Path) -> None:
    left = [p.name for p in directory.iterdir() if p.name.endswith(".iolab-tmp")]
    assert left == [], f"temp files left behind: {left}"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- stop signals ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_signal_prints_valid_json_and_exits_128_plus_n(tmp_path: Path, sig: signal.Signals) -> None:
    run = start_reader(tmp_path / "data", "--output-format=json")
    run.proc.send_signal(sig)
    code, out, err = run.finish()
    assert code == 128 + sig, err
    data = json.loads(out)  # stdout is pure JSON
    job = data["jobs"][0]
    assert job["read"]["io_bytes"] > 0
    assert job["read"]["runtime"] < 50_000  # stopped, not run out
    assert data["iolab"]["interrupted"] == {"signal": sig.name, "exit_status": 128 + sig, "abandoned_jobs": 0}
    assert f"interrupted ({sig.name}): results cover only what ran until then" in job["iolab"]["run_warnings"]
    assert f"iolab: warning: interrupted ({sig.name})" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("fmt", "sig"), [("normal", signal.SIGTERM), ("json+", signal.SIGHUP), ("terse", signal.SIGTERM)]
)
def test_signal_writes_output_file_in_every_format(tmp_path: Path, fmt: str, sig: signal.Signals) -> None:
    result = tmp_path / "result.txt"
    result.write_text("previous results\n")
    run = start_reader(tmp_path / "data", f"--output-format={fmt}", f"--output={result}")
    assert result.read_text() == "previous results\n"  # not truncated while the run goes on
    run.proc.send_signal(sig)
    code, out, err = run.finish()
    assert code == 128 + sig, err
    assert out == ""
    text = result.read_text()
    if fmt == "normal":
        assert text.startswith("sig: (g=0): rw=read")  # the preamble, then the report
        assert f"warning: interrupted ({sig.name})" in text
        assert "Run status group 0 (all jobs):" in text
        assert "READ: bw=" in text
    elif fmt == "json+":
        data = json.loads(text)
        assert data["jobs"][0]["read"]["io_bytes"] > 0
        assert data["jobs"][0]["read"]["clat_ns"]["bins"]  # json+ has the latency bins
        assert data["iolab"]["interrupted"]["signal"] == sig.name
    else:
        fields = text.strip().split(";")
        assert fields[0] == "3" and fields[2] == "sig"
        assert int(fields[5]) > 0  # read KiB
    assert f"interrupted ({sig.name})" in err
    no_temp_files(tmp_path)


@pytest.mark.parametrize("fmt", ["json", "normal"])
def test_terminal_hangup_still_writes_output(tmp_path: Path, fmt: str) -> None:
    """The real SIGHUP: iolab runs on a terminal (its controlling tty, the status line on it) that goes
    away. The kernel sends SIGHUP, stderr now fails with EIO; the results still reach --output."""
    result = tmp_path / "r.out"
    data = tmp_path / "data"
    master, slave = pty.openpty()

    def controlling_tty() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        [*IOLAB, "run", "--name=hup", f"--filename={data}", "--size=16m", "--rw=read", "--bs=64k",
         "--time_based", "--runtime=60", f"--output-format={fmt}", f"--output={result}"],
        stdin=slave, stdout=slave, stderr=slave, preexec_fn=controlling_tty,
    )  # fmt: skip
    _started.append(proc)
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 60
    while b"laid out" not in seen:
        assert time.monotonic() < deadline and proc.poll() is None, seen.decode(errors="replace")
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            seen += os.read(master, 65536)
    time.sleep(1)  # reading (the status line keeps writing to the terminal meanwhile)
    os.close(master)  # the terminal hangs up
    code = proc.wait(timeout=60)
    assert code == 128 + signal.SIGHUP
    text = result.read_text()
    if fmt == "json":
        doc = json.loads(text)
        assert doc["jobs"][0]["read"]["io_bytes"] > 0
        assert doc["iolab"]["interrupted"]["signal"] == "SIGHUP"
    else:
        assert "warning: interrupted (SIGHUP)" in text and "READ: bw=" in text
    no_temp_files(tmp_path)


def test_an_ignored_sighup_stays_ignored(tmp_path: Path) -> None:
    """`nohup iolab run ...`: SIGHUP ignored by the parent stays ignored; SIGTERM still ends the run."""

    def like_nohup() -> None:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    run = start_reader(tmp_path / "data", "--output-format=json", preexec_fn=like_nohup)
    run.proc.send_signal(signal.SIGHUP)
    run.wait_for_reads(64 * MiB)  # still running, still reading
    assert run.proc.poll() is None
    run.proc.send_signal(signal.SIGTERM)
    code, out, err = run.finish()
    assert code == 143, err
    assert json.loads(out)["iolab"]["interrupted"]["signal"] == "SIGTERM"


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_fio_on_the_same_signals(fio: str, tmp_path: Path, sig: signal.Signals) -> None:
    """What the README says fio 3.33 does: SIGINT and SIGTERM stop the jobs and write the results (exit 128,
    with a "terminating on signal" line before the report); SIGHUP kills it without results."""
    result = tmp_path / "fio.json"
    proc = subprocess.Popen(
        [fio, "--name=x", f"--filename={tmp_path / 'data'}", "--size=16m", "--rw=read", "--time_based",
         "--runtime=60", "--output-format=json", f"--output={result}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    jobs: list[int] = []
    try:
        deadline = time.monotonic() + 30
        while not jobs and time.monotonic() < deadline:
            with contextlib.suppress(OSError):  # fio's job process, once forked
                children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text()
                jobs = [int(p) for p in children.split()]
            time.sleep(0.05)
        assert jobs, "fio started no job process"
        # fio announces nothing on a pipe: wait until its job process reads (the layout only writes)
        while read_bytes(jobs[0]) < 64 * MiB:
            assert time.monotonic() < deadline, "fio's job did not start reading"
            time.sleep(0.02)
        proc.send_signal(sig)
        proc.wait(timeout=30)
    finally:
        for pid in jobs:  # after SIGHUP fio's job process is left running, an orphan
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = result.read_text()
    if sig == signal.SIGHUP:
        assert proc.returncode == -signal.SIGHUP
        assert text == ""
    else:
        assert proc.returncode == 128
        assert text.lstrip().startswith(f"fio: terminating on signal {int(sig)}")
        data = json.loads(text[text.index("{") :])
        assert data["jobs"][0]["read"]["io_bytes"] > 0


def test_second_signal_stops_waiting_for_a_job_that_does_not_end(tmp_path: Path) -> None:
    """The first signal waits for the jobs to stop; a job stuck in its exec_prerun (sleep 60) keeps it
    waiting; the second signal writes the results without it."""
    result = tmp_path / "r.json"
    hook_pid = tmp_path / "hook.pid"
    run = Running(
        [
            *IOLAB, "run", "--output-format=json", f"--output={result}",
            "--name=fast", f"--filename={tmp_path / 'a'}", "--size=16m", "--rw=read", "--time_based",
            "--runtime=60",
            "--name=stuck", f"--filename={tmp_path / 'b'}", "--size=1m", "--rw=read",
            # fio's redirection binds to the last command: `exec sleep` holds none of iolab's pipes
            f"--exec_prerun=echo $$ > {hook_pid}; exec sleep 60",
        ],
        cwd=tmp_path,
    )  # fmt: skip
    try:
        run.wait_for_line(f"laid out {tmp_path / 'a'}")
        run.wait_for_reads(64 * MiB)
        run.proc.send_signal(signal.SIGTERM)
        time.sleep(2)
        assert run.proc.poll() is None, "the first signal must wait for the stuck job"
        start = time.monotonic()
        run.proc.send_signal(signal.SIGTERM)
        code, _out, err = run.finish(timeout=30)
        assert time.monotonic() - start < 10
    finally:
        with contextlib.suppress(OSError, ValueError):  # the abandoned hook, still sleeping
            os.kill(int(hook_pid.read_text()), signal.SIGKILL)
    assert code == 143, err
    data = json.loads(result.read_text())
    jobs = {j["jobname"]: j for j in data["jobs"]}
    assert jobs["fast"]["read"]["io_bytes"] > 0 and jobs["fast"]["error"] == 0
    assert jobs["stuck"]["error"] == 4  # EINTR
    assert data["iolab"]["interrupted"]["abandoned_jobs"] == 1
    assert "job 'stuck' (0): had not ended when the second stop signal came (SIGTERM)" in err
    assert "Traceback" not in err


def test_signal_during_layout_keeps_old_output_and_cuts_the_file(direct_dir: Path) -> None:
    """Nothing ran: no report, the old --output stays; the half laid out file is cut to what was written,
    so that the next run lays it out again instead of reading holes."""
    target = direct_dir / "big"
    result = direct_dir / "old.json"
    result.write_text('{"old": true}\n')
    before = result.stat()
    size = 8 << 30
    run = Running(
        [*IOLAB, "run", "--name=l", f"--filename={target}", f"--size={size}", "--rw=read",
         "--output-format=json", f"--output={result}"]
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (target.exists() and target.stat().st_size == size) and time.monotonic() < deadline:
        time.sleep(0.01)  # the layout has started (the file is sized at once, then written)
    time.sleep(0.3)
    run.proc.send_signal(signal.SIGTERM)
    code, out, err = run.finish()
    assert code == 143, err
    assert f"interrupted (SIGTERM) while laying out the files ({target}: interrupted (SIGTERM) while " in err
    assert "no job ran, nothing to report" in err
    assert out == ""
    assert result.read_text() == '{"old": true}\n'
    assert result.stat().st_ino == before.st_ino and result.stat().st_mtime_ns == before.st_mtime_ns
    no_temp_files(direct_dir)
    assert 0 < target.stat().st_size < size
    assert target.stat().st_size % MiB == 0  # whole chunks: what was written, nothing more


def test_quick_on_sigterm_prints_the_table_of_what_ran(direct_dir: Path) -> None:
    target = direct_dir / "q.dat"
    run = Running(
        [*IOLAB, "quick", f"--target={target}", "--size=16m", "--runtime=60", "--ramp-time=0",
         "--only=latency-reads", "--only=mixed"]
    )  # fmt: skip
    run.wait_for_line("Latency-sensitive random reads")
    run.wait_for_reads(16 * MiB)
    run.proc.send_signal(signal.SIGTERM)
    code, out, err = run.finish()
    assert code == 143, err
    rows = [line for line in out.splitlines() if line.startswith("Latency-sensitive random reads")]
    assert len(rows) == 1 and float(rows[0].split()[4]) > 0  # IOPS of what ran
    assert "Mixed workload" not in out  # nothing started after the signal
    assert "Traceback" not in err


# --- --output by rename ------------------------------------------------------------------------------------


def test_refused_runs_leave_output_byte_identical(tmp_path: Path) -> None:
    result = tmp_path / "keep.json"
    result.write_bytes(b'{"previous": "results"}\n')
    before = result.stat()
    refusals = [
        ["--name=x", f"--filename={tmp_path / 'f'}", "--size=1m", "--rw=bogus"],  # bad option value
        ["--strict", "--name=x", f"--filename={tmp_path / 'f'}", "--size=1m", "--rw=read"],  # doctor refusal
        # an engine iolab does not implement
        ["--name=x", f"--filename={tmp_path / 'f'}", "--size=1m", "--rw=read", "--ioengine=dev-dax"],
    ]  # fmt: skip
    for args in refusals:
        command = [*IOLAB, "run", *args, "--output-format=json", f"--output={result}"]
        proc = subprocess.run(command, capture_output=True, text=True)
        assert proc.returncode == 1, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert result.read_bytes() == b'{"previous": "results"}\n'
        assert result.stat().st_ino == before.st_ino and result.stat().st_mtime_ns == before.st_mtime_ns
        no_temp_files(tmp_path)
    ok = subprocess.run(
        [*IOLAB, "run", "--name=x", f"--filename={tmp_path / 'f'}", "--size=1m", "--rw=read",
         "--output-format=json", f"--output={result}"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert json.loads(result.read_text())["jobs"][0]["read"]["io_bytes"] == MiB
    assert result.stat().st_ino != before.st_ino  # a new file renamed over the old one


def test_output_in_a_missing_directory_is_an_error_before_the_run(tmp_path: Path) -> None:
    target = tmp_path / "data"
    missing = tmp_path / "no" / "such" / "r.json"
    proc = subprocess.run(
        [*IOLAB, "run", "--name=x", f"--filename={target}", "--size=1m", "--rw=read", f"--output={missing}"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        f"iolab: --output {missing}: the directory {missing.parent} does not exist"
    )
    assert not target.exists()  # checked before anything ran or was laid out
    proc = subprocess.run(
        [*IOLAB, "run", "--name=x", f"--filename={target}", "--size=1m", "--rw=read", f"--output={tmp_path}"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 1 and f"iolab: --output {tmp_path}: is a directory" in proc.stderr
    proc = subprocess.run(  # EISDIR for a job's file: named too
        [*IOLAB, "run", "--name=x", f"--filename={tmp_path}", "--size=1m", "--rw=write"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 1 and f"{tmp_path}: not a regular file" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_output_symlink_mode_and_dev_stdout(tmp_path: Path) -> None:
    data = tmp_path / "data"
    real = tmp_path / "real.json"
    real.write_text("old")
    real.chmod(0o600)
    link = tmp_path / "link.json"
    link.symlink_to(real.name)
    base = [*IOLAB, "run", "--name=x", f"--filename={data}", "--size=1m", "--rw=read", "--output-format=json"]
    proc = subprocess.run([*base, f"--output={link}"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert link.is_symlink() and os.readlink(link) == real.name  # the link stays, its target is replaced
    assert json.loads(real.read_text())["jobs"][0]["read"]["io_bytes"] == MiB
    assert real.stat().st_mode & 0o777 == 0o600  # an existing file keeps its mode
    new = tmp_path / "new.json"
    proc = subprocess.run(
        [*base, f"--output={new}"], capture_output=True, text=True, preexec_fn=lambda: os.umask(0o027)
    )
    assert proc.returncode == 0, proc.stderr
    assert new.stat().st_mode & 0o777 == 0o640  # a new file: the umask's mode
    proc = subprocess.run([*base, "--output=/dev/stdout"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["jobs"][0]["read"]["io_bytes"] == MiB  # written through, not replaced
    log = tmp_path / "app.log"
    log.write_text("earlier line\n")
    with open(log, "a") as appending:  # a shell's `>> app.log`
        proc = subprocess.run([*base, "--output=/dev/stdout"], stdout=appending, stderr=subprocess.PIPE)
    assert proc.returncode == 0, proc.stderr
    text = log.read_text()
    assert text.startswith("earlier line\n{")
    assert json.loads(text.removeprefix("earlier line\n"))["jobs"][0]["read"]["io_bytes"] == MiB
    if os.geteuid() == 0:  # only root could replace /dev/null
        before = os.stat("/dev/null")
        proc = subprocess.run([*base, "--output=/dev/null"], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        after = os.stat("/dev/null")
        assert (after.st_ino, after.st_rdev, after.st_mode) == (before.st_ino, before.st_rdev, before.st_mode)
    no_temp_files(tmp_path)


def test_output_refuses_a_block_device(loop_device: str, tmp_path: Path) -> None:
    before = hashlib.sha256(Path(loop_device).read_bytes()).hexdigest()
    proc = subprocess.run(
        [*IOLAB, "run", "--name=x", f"--filename={tmp_path / 'd'}", "--size=1m", "--rw=read",
         f"--output={loop_device}"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 1
    assert f"--output {loop_device}: is a block device" in proc.stderr
    assert hashlib.sha256(Path(loop_device).read_bytes()).hexdigest() == before


# --- OS errors name the path (tmpfs mounts of our own) -----------------------------------------------------


@contextlib.contextmanager
def tmpfs(where: Path, size: str, *options: str) -> Iterator[Path]:
    need(os.geteuid() == 0, "needs root to mount a tmpfs")
    where.mkdir()
    opts = ",".join([f"size={size}", *options])
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "iolab-test", str(where)], capture_output=True)
    need(proc.returncode == 0, f"mount -t tmpfs failed: {proc.stderr.decode().strip()}")
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], check=False).returncode != 0:
            subprocess.run(["umount", "--lazy", str(where)], check=False)


def test_enospc_during_layout_names_the_file_and_no_holes_remain(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "small", "1M") as small:
        target = small / "f"
        args = [*IOLAB, "run", "--name=x", f"--filename={target}", "--size=4m", "--rw=read",
                "--output-format=json"]  # fmt: skip
        for attempt in range(2):  # the second run must not read the holes of the first one's layout
            proc = subprocess.run(args, capture_output=True, text=True)
            assert proc.returncode == 1, (attempt, proc.stderr)
            assert f"{target}: No space left on device (while laying out 4 MiB)" in proc.stderr
            assert "Traceback" not in proc.stderr
            assert target.stat().st_size <= MiB  # cut to what was written


def test_enospc_during_the_run_names_the_file(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "small", "1M") as small:
        target = small / "f"
        proc = subprocess.run(
            [*IOLAB, "run", "--name=x", f"--filename={target}", "--size=4m", "--rw=write", "--fallocate=none",
             "--output-format=json"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert proc.returncode == 1
        assert f"of {target}: No space left on device" in proc.stderr
        job = json.loads(proc.stdout)["jobs"][0]
        assert job["error"] == 28 and str(target) in job["iolab"]["error"]["msg"]


def test_output_that_cannot_be_written_at_the_end_goes_to_stdout(tmp_path: Path) -> None:
    """The --output file system fills up during the run: the results are not lost (stdout), the old file
    stays, exit 1."""
    with tmpfs(tmp_path / "small", "1M") as small:
        result = small / "r.json"
        result.write_text("old\n")
        data = tmp_path / "data"
        run = Running(
            [*IOLAB, "run", "--name=x", f"--filename={data}", "--size=16m", "--rw=read", "--bs=64k",
             "--time_based", "--runtime=60", "--output-format=json", f"--output={result}"]
        )  # fmt: skip
        run.wait_for_line(f"laid out {data}")
        run.wait_for_reads(64 * MiB)
        filler = small / "filler"
        with contextlib.suppress(OSError), open(filler, "wb", buffering=0) as f:
            while True:
                f.write(b"\0" * 4096)
        run.proc.send_signal(signal.SIGTERM)
        code, out, err = run.finish()
        assert code == 1
        assert f"iolab: --output {result}: No space left on device" in err
        assert "the report follows on stdout" in err
        assert json.loads(out)["jobs"][0]["read"]["io_bytes"] > 0
        assert result.read_text() == "old\n"
        no_temp_files(small)


def test_erofs_names_the_file_and_output_dir(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "4M") as ro:
        (ro / "f").write_bytes(b"\1" * MiB)
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        proc = subprocess.run(
            [*IOLAB, "run", "--name=x", f"--filename={ro / 'f'}", "--size=1m", "--rw=write"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert proc.returncode == 1
        assert f"{ro / 'f'}: Read-only file system" in proc.stderr
        data = tmp_path / "data"
        for output in (ro / "new.json", ro / "f"):
            proc = subprocess.run(
                [*IOLAB, "run", "--name=x", f"--filename={data}", "--size=1m", "--rw=read",
                 f"--output={output}"],
                capture_output=True, text=True,
            )  # fmt: skip
            assert proc.returncode == 1
            assert f"iolab: --output {output}: Read-only file system" in proc.stderr
            assert not data.exists()  # before anything ran
        assert (ro / "f").read_bytes() == b"\1" * MiB


def test_etxtbsy_names_the_executable(tmp_path: Path) -> None:
    program = tmp_path / "busy"
    shutil.copy("/bin/sleep", program)
    before = sha256(program)
    sleeper = subprocess.Popen([str(program), "60"])
    try:
        time.sleep(0.2)
        for rw in ("write", "randrw"):
            proc = subprocess.run(
                [*IOLAB, "run", "--name=x", f"--filename={program}", "--size=4k", f"--rw={rw}",
                 "--output-format=json"],
                capture_output=True, text=True,
            )  # fmt: skip
            assert proc.returncode == 1
            assert f"job 'x' (0): {program}: Text file busy" in proc.stderr
            assert json.loads(proc.stdout)["jobs"][0]["error"] == 26
            assert "Traceback" not in proc.stderr
        assert sha256(program) == before
    finally:
        sleeper.kill()
        sleeper.wait()


def test_active_swap_file_errors_name_it(direct_dir: Path) -> None:
    """A swap file in use: writing it is refused, and so is laying it out again (a read job wanting it
    bigger: the layout would remove and recreate the file), before anything is touched; it is unchanged."""
    with swap_file(direct_dir / "swapfile") as swap:
        before = sha256(swap)
        write = subprocess.run(
            [*IOLAB, "run", "--name=x", f"--filename={swap}", "--size=4k", "--rw=write"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert write.returncode == 1 and f"{swap} is an active swap file" in write.stderr
        layout = subprocess.run(
            [*IOLAB, "run", "--name=x", f"--filename={swap}", "--size=64m", "--rw=read",
             "--output-format=json"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert layout.returncode == 1
        assert "refusing to run" in layout.stderr and "IOL-SAFE-007" in layout.stderr
        assert f"{swap} is an active swap file" in layout.stderr
        assert layout.stdout == ""  # refused: no report
        assert "Traceback" not in write.stderr + layout.stderr
        assert sha256(swap) == before
        assert str(swap) in Path("/proc/swaps").read_text()


def test_eacces_and_eisdir_name_the_path() -> None:
    need(os.geteuid() == 0, "needs root to run iolab as another user (nobody)")
    base = Path(tempfile.mkdtemp(prefix="iolab-eacces-"))
    try:
        base.chmod(0o755)
        (base / "f").write_bytes(b"x" * 4096)
        (base / "f").chmod(0o644)
        (base / "d").mkdir()

        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        probe = subprocess.run([*nobody, sys.executable, "-c", "import iolab"], capture_output=True, cwd=base)
        need(probe.returncode == 0, f"iolab cannot run as nobody: {probe.stderr.decode().strip()[-200:]}")
        cases = [
            (["--filename=f", "--rw=write", "--size=4k"], "iolab: job 'x' (0): f: Permission denied"),
            (["--filename=f", "--rw=read", "--size=1m"],
             "iolab: job 'x' (0): f: Permission denied (removing it to lay it out again as 1 MiB)"),
            (["--filename=g", "--rw=write", "--size=4k"],
             "iolab: job 'x' (0): g: Permission denied (opening it to lay out 4 KiB)"),
            (["--filename=f", "--rw=read", "--size=4k", "--output=r.json"],
             "iolab: --output r.json: Permission denied (creating a temp file in"),
            (["--filename=f", "--rw=read", "--size=4k", "--output=f"],
             "iolab: --output f: Permission denied"),
        ]  # fmt: skip
        for args, message in cases:
            command = [*nobody, *IOLAB, "run", "--name=x", *args]
            proc = subprocess.run(command, capture_output=True, text=True, cwd=base)
            assert proc.returncode == 1, (args, proc.stderr)
            assert message in proc.stderr, (args, proc.stderr)
            assert "Traceback" not in proc.stderr
        proc = subprocess.run(
            [*IOLAB, "run", "--name=x", "--filename=f", "--size=4k", "--rw=read", "--output=d"],
            capture_output=True, text=True, cwd=base,
        )  # fmt: skip
        assert proc.returncode == 1 and "iolab: --output d: is a directory" in proc.stderr
        assert (base / "f").read_bytes() == b"x" * 4096
    finally:
        shutil.rmtree(base, ignore_errors=True)
