"""ioengine=nbd against real NBD servers (nbdkit's memory plugin over a unix socket and over TCP, and
`iolab serve`), compared with fio's nbd engine on the same job, and the errors a user meets, through the
command the user types (`iolab run`, a subprocess).

fio 3.33's nbd engine (libnbd) is the oracle for bytes and operations per direction; what iolab wrote is
read back with nbdcopy (fio's scramble_buffers stamps every 512-byte sector with its offset, so each
sector says where it had to land), and what it read is checked against the export byte for byte through
the core's trace hook.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from iolab import _core
from iolab.engine.config import pack_config
from iolab.jobfile import parse_cli
from iolab.nbdwire import client
from iolab.plan import build_plan
from nbd_helpers import clean_env, need_tool, proc, serve_cli

TIMEOUT = 120
TRACE = struct.Struct("=QIHBxQQ")
SIZE = 16 << 20


@contextlib.contextmanager
def short_dir() -> Iterator[Path]:
    """A directory with a short path (unix socket paths are limited to 107 bytes)."""
    d = Path(tempfile.mkdtemp(prefix="nbdeng-", dir="/tmp"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(uri: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.probe(uri)
            return
        except client.NbdError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextlib.contextmanager
def nbdkit(
    *, tcp: bool = False, read_only: bool = False, size: int = SIZE, filters: tuple[str, ...] = ()
) -> Iterator[str]:
    """nbdkit's memory plugin; yields its URI."""
    exe = need_tool("nbdkit", "nbdkit")
    with short_dir() as d:
        if tcp:
            port = free_port()
            listen = ["-i", "127.0.0.1", "-p", str(port)]
            uri = f"nbd://127.0.0.1:{port}/"
        else:
            listen = ["-U", str(d / "s")]
            uri = f"nbd+unix:///?socket={d / 's'}"
        extra = [a for f in filters for a in ("--filter", f)]
        with proc([exe, "-f", *listen, *(["-r"] if read_only else []), *extra, "memory", f"size={size}"]):
            wait_ready(uri)
            yield uri


@contextlib.contextmanager
def iolab_serve(size: int = SIZE) -> Iterator[str]:
    with short_dir() as d:
        image = d / "disk.img"
        with open(image, "wb") as f:
            f.truncate(size)
        with serve_cli(str(image), "--listen", f"unix:{d / 's'}") as (_, ready):
            yield str(ready["uris"][0])


def run_iolab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "iolab", "run", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        # iolab itself keeps the environment (the sanitizer preload of `make test-sanitize`)
    )


def iolab_json(*args: str) -> dict[str, Any]:
    p = run_iolab(*args, "--output-format=json")
    assert p.returncode == 0, p.stderr
    out: dict[str, Any] = json.loads(p.stdout)
    return out


def fio_json(*args: str, check: bool = True) -> dict[str, Any]:
    exe = need_tool("fio", "fio")
    p = subprocess.run(
        [exe, *args, "--output-format=json"], capture_output=True, text=True, timeout=TIMEOUT, env=clean_env()
    )
    assert p.returncode == 0 or not check, p.stdout + p.stderr
    # fio's nbd engine prints "fio: connected to NBD server" on stdout before the report
    out: dict[str, Any] = json.loads(p.stdout[p.stdout.index("{") :])
    return out


def counts(report: dict[str, Any]) -> dict[str, Any]:
    job = report["jobs"][0]
    return {
        "error": job["error"],
        **{f"{d}_bytes": job[d]["io_bytes"] for d in ("read", "write")},
        **{f"{d}_ios": job[d]["total_ios"] for d in ("read", "write", "sync")},
    }


def _mixed(c: dict[str, Any]) -> dict[str, Any]:
    """A mixed job's direction of each I/O is a random draw (iolab's generator is not fio's): the totals
    and the syncs must match, the split only roughly."""
    return {
        "error": c["error"],
        "bytes": c["read_bytes"] + c["write_bytes"],
        "ios": c["read_ios"] + c["write_ios"],
        "sync_ios": c["sync_ios"],
    }


def same_as_fio(uri: str, *job: str) -> dict[str, Any]:
    args = ["--name=j", "--ioengine=nbd", f"--uri={uri}", *job]
    ours = counts(iolab_json(*args))
    theirs = counts(fio_json(*args))
    if any(a in ("--rw=rw", "--rw=randrw") for a in job):
        assert _mixed(ours) == _mixed(theirs), (job, ours, theirs)
        for d in ("read", "write"):
            assert abs(ours[f"{d}_ios"] - theirs[f"{d}_ios"]) <= 0.2 * _mixed(ours)["ios"], (
                job,
                ours,
                theirs,
            )
    else:
        assert ours == theirs, (job, ours, theirs)
    return ours


JOBS = [
    pytest.param(("--rw=randread", "--bs=4k", "--iodepth=1"), id="randread-qd1"),
    pytest.param(("--rw=randread", "--bs=4k", "--iodepth=16"), id="randread-qd16"),
    pytest.param(("--rw=randwrite", "--bs=4k", "--iodepth=1"), id="randwrite-qd1"),
    pytest.param(("--rw=randwrite", "--bs=4k", "--iodepth=16"), id="randwrite-qd16"),
    pytest.param(("--rw=rw", "--bs=64k", "--iodepth=16", "--rwmixread=30"), id="rw-64k-qd16"),
    pytest.param(("--rw=randwrite", "--bs=4k", "--iodepth=1", "--fsync=8"), id="randwrite-fsync-qd1"),
    pytest.param(("--rw=write", "--bs=1m", "--iodepth=16", "--end_fsync=1"), id="write-1m-end_fsync"),
    pytest.param(("--rw=read", "--bs=128k", "--iodepth=4", "--size=4m", "--offset=8m"), id="read-offset"),
    pytest.param(
        (
            "--rw=randwrite",
            "--bs=4k",
            "--iodepth=8",
            "--numjobs=3",
            "--size=4m",
            "--offset_increment=4m",
            "--group_reporting",
        ),
        id="numjobs3-group",
    ),
    pytest.param(
        (
            "--rw=randwrite",
            "--bs=4k",
            "--iodepth=16",
            "--size=4m",
            "--verify=crc32c",
            "--verify_state_save=0",
        ),
        id="verify-crc32c-qd16",
    ),
]


@pytest.mark.parametrize("job", JOBS)
def test_same_bytes_and_ops_as_fio_on_nbdkit_unix(job: tuple[str, ...]) -> None:
    with nbdkit() as uri:
        got = same_as_fio(uri, *job)
    assert got["error"] == 0 and got["read_bytes"] + got["write_bytes"] > 0


@pytest.mark.parametrize("job", [JOBS[1], JOBS[3], JOBS[4]])
def test_same_bytes_and_ops_as_fio_on_nbdkit_tcp(job: Any) -> None:
    with nbdkit(tcp=True) as uri:
        same_as_fio(uri, *job)


@pytest.mark.parametrize("job", [JOBS[0], JOBS[3], JOBS[5]])
def test_same_bytes_and_ops_as_fio_on_iolab_serve(job: Any) -> None:
    with iolab_serve() as uri:
        same_as_fio(uri, *job)


def test_fdatasync_is_a_flush_where_fio_fails_it() -> None:
    """fio 3.33's nbd engine fails fdatasync with EINVAL (it maps only fsync to a flush); iolab sends
    NBD_CMD_FLUSH for both (docs/fio-differences.md), so the job runs as its fsync twin does in fio."""
    with nbdkit() as uri:
        job = ["--name=j", "--ioengine=nbd", f"--uri={uri}", "--rw=write", "--bs=16k", "--iodepth=8"]
        assert fio_json(*job, "--fdatasync=16", check=False)["jobs"][0]["error"] == 22
        ours = counts(iolab_json(*job, "--fdatasync=16"))
        twin = counts(fio_json(*job, "--fsync=16"))
        assert ours["write_bytes"] == twin["write_bytes"] == SIZE and ours["write_ios"] == twin["write_ios"]


def export_bytes(uri: str, dest: Path) -> bytes:
    exe = need_tool("nbdcopy", "libnbd-bin")
    subprocess.run([exe, uri, str(dest)], check=True, timeout=TIMEOUT, env=clean_env())
    return dest.read_bytes()


@pytest.mark.parametrize("depth", [1, 16])
@pytest.mark.parametrize("server", ["nbdkit", "iolab-serve"])
def test_written_data_lands_where_it_was_written(depth: int, server: str, tmp_path: Path) -> None:
    """Every 512-byte sector iolab wrote starts with its own offset (scramble_buffers' stamp); read back
    with nbdcopy, not with iolab."""
    with nbdkit() if server == "nbdkit" else iolab_serve() as uri:
        got = iolab_json(
            "--name=w", "--ioengine=nbd", f"--uri={uri}", "--rw=randwrite", "--bs=4k", f"--iodepth={depth}",
            "--size=8m", "--offset=4m",
        )  # fmt: skip
        assert counts(got)["write_bytes"] == 8 << 20
        data = export_bytes(uri, tmp_path / "back.img")
    assert len(data) == SIZE
    for off in range(4 << 20, 12 << 20, 512):
        assert struct.unpack_from("<Q", data, off)[0] == off, f"sector at {off}"
    assert data[: 4 << 20] == bytes(4 << 20) and data[12 << 20 :] == bytes(SIZE - (12 << 20))


@pytest.mark.parametrize("depth", [1, 16])
def test_reads_return_the_exports_bytes(depth: int, tmp_path: Path) -> None:
    """What the engine reads is the export's content, I/O by I/O (the core's trace: first and last 8
    bytes of every read buffer, against the image written with nbdcopy)."""
    image = tmp_path / "random.img"
    image.write_bytes(os.urandom(SIZE))
    data = image.read_bytes()
    exe = need_tool("nbdcopy", "libnbd-bin")
    with nbdkit() as uri:
        subprocess.run([exe, str(image), uri], check=True, timeout=TIMEOUT, env=clean_env())
        argv = [
            "--name=r",
            "--ioengine=nbd",
            f"--uri={uri}",
            "--rw=randread",
            "--bs=4k",
            f"--iodepth={depth}",
        ]
        plan = build_plan(parse_cli(argv).jobs)
        sock, info = client.connect(client.parse_uri(uri))
        try:
            job = _core.Job(pack_config(plan.jobs[0].config), [(sock.fileno(), 0, info.size, info.size)])
            buf = bytearray(TRACE.size * (SIZE // 4096))
            job._set_trace(buf)
            job.run()
            res = job.raw_result()
        finally:
            client.disconnect(sock)
    assert res["error"] == 0, res["error_msg"]
    recs = [TRACE.unpack_from(buf, i * TRACE.size) for i in range(job._trace_count())]
    assert len(recs) == SIZE // 4096
    for off, length, _, ddir, head, tail in recs:
        assert ddir == 0 and length == 4096
        assert head == struct.unpack_from("<Q", data, off)[0], off
        assert tail == struct.unpack_from("<Q", data, off + length - 8)[0], off


def test_several_connections_spread_the_slots(tmp_path: Path) -> None:
    """nbd_conns=4 (iolab extension): four connections besides the plan's probe, same bytes as one."""
    log = tmp_path / "nbdkit.log"
    exe = need_tool("nbdkit", "nbdkit")
    with short_dir() as d:
        uri = f"nbd+unix:///?socket={d / 's'}"
        cmd = [exe, "-f", "-U", str(d / "s"), "--filter=log", "memory", f"size={SIZE}", f"logfile={log}"]
        with proc(cmd):
            wait_ready(uri)
            before = log.read_text().count("Connect ")
            got = iolab_json(
                "--name=m", "--ioengine=nbd", f"--uri={uri}", "--rw=randwrite", "--bs=4k", "--iodepth=16",
                "--nbd_conns=4", "--end_fsync=1",
            )  # fmt: skip
            text = log.read_text()
            data = export_bytes(uri, tmp_path / "back.img")
    assert counts(got)["write_bytes"] == SIZE
    # the plan's probe, the safety gate's probe, then the job's four
    assert text.count("Connect ") - before == 6, text[-2000:]
    # end_fsync: one flush, which covers the writes of every connection (what multi-conn promises)
    assert "Flush" in text
    for off in range(0, SIZE, 512):
        assert struct.unpack_from("<Q", data, off)[0] == off


def test_several_connections_need_multi_conn() -> None:
    exe = need_tool("nbdkit", "nbdkit")
    with short_dir() as d:
        uri = f"nbd+unix:///?socket={d / 's'}"
        cmd = [
            exe,
            "-f",
            "-U",
            str(d / "s"),
            "--filter=multi-conn",
            "memory",
            "size=1M",
            "multi-conn-mode=disable",
        ]
        with proc(cmd):
            wait_ready(uri)
            p = run_iolab(
                "--name=m", "--ioengine=nbd", f"--uri={uri}", "--rw=randread", "--iodepth=4", "--nbd_conns=2"
            )
            assert p.returncode != 0 and "multi-conn" in p.stderr and "Traceback" not in p.stderr
            forced = iolab_json(
                "--name=m", "--ioengine=nbd", f"--uri={uri}", "--rw=randread", "--iodepth=4", "--nbd_conns=2",
                "--nbd_conns_force=1",
            )  # fmt: skip
    assert counts(forced)["read_bytes"] == 1 << 20


def one_line_error(p: subprocess.CompletedProcess[str], *words: str) -> str:
    assert p.returncode != 0, p.stdout
    assert "Traceback" not in p.stderr, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("iolab:")]
    assert lines, p.stderr
    for w in words:
        assert w in p.stderr, (w, p.stderr)
    assert p.stdout.strip() == "" or p.stdout.lstrip().startswith("{"), p.stdout
    return p.stderr


@pytest.mark.parametrize(
    ("uri", "words"),
    [
        ("nbds://localhost/x", ("TLS",)),
        ("nbds+unix:///?socket=/tmp/x", ("TLS",)),
        ("http://localhost/", ("not an NBD URI",)),
        ("nbd+unix:///", ("socket=PATH",)),
        ("nbd+unix:///?socket=/tmp/x&tls-certificates=/y", ("TLS",)),
        ("nbd://localhost:notaport/", ("bad port",)),
        ("nbd+vsock://1:10809/", ("vsock",)),
    ],
)
def test_bad_uri_is_a_clear_error(uri: str, words: tuple[str, ...]) -> None:
    err = one_line_error(run_iolab("--name=j", "--ioengine=nbd", f"--uri={uri}", "--rw=read"), *words)
    assert f"uri={uri}" in err


def test_missing_uri_and_local_file_options_are_refused() -> None:
    one_line_error(run_iolab("--name=j", "--ioengine=nbd", "--rw=read"), "needs uri=")
    with nbdkit() as uri:
        one_line_error(
            run_iolab("--name=j", "--ioengine=nbd", f"--uri={uri}", "--rw=read", "--filename=/tmp/x"),
            "filename=",
        )
        one_line_error(
            run_iolab("--name=j", "--ioengine=nbd", f"--uri={uri}", "--rw=read", "--size=32m"), "outside"
        )


def test_requests_over_32m_are_refused() -> None:
    with nbdkit(size=64 << 20) as uri:
        job = ("--name=j", "--ioengine=nbd", f"--uri={uri}")
        one_line_error(run_iolab(*job, "--rw=read", "--bs=64m"), "32 MiB")


def test_server_down_is_a_clear_error_naming_the_uri() -> None:
    with short_dir() as d:
        uri = f"nbd+unix:///?socket={d / 'nobody'}"
        one_line_error(
            run_iolab("--name=j", "--ioengine=nbd", f"--uri={uri}", "--rw=read"), uri, "cannot connect"
        )
    uri = f"nbd://127.0.0.1:{free_port()}/"
    one_line_error(
        run_iolab("--name=j", "--ioengine=nbd", f"--uri={uri}", "--rw=read"), uri, "cannot connect"
    )


def test_unknown_export_name_is_a_clear_error() -> None:
    with iolab_serve() as uri:
        bad = uri.replace(":///", ":///nosuchexport")
        one_line_error(
            run_iolab("--name=j", "--ioengine=nbd", f"--uri={bad}", "--rw=read"), "refused", "nosuchexport"
        )


def test_read_only_export_refuses_writes_and_serves_reads() -> None:
    with nbdkit(read_only=True) as uri:
        one_line_error(
            run_iolab("--name=j", "--ioengine=nbd", f"--uri={uri}", "--rw=randwrite"), "read-only", uri
        )
        assert (
            counts(iolab_json("--name=j", "--ioengine=nbd", f"--uri={uri}", "--rw=read", "--bs=64k"))[
                "read_bytes"
            ]
            == SIZE
        )


def test_server_dying_mid_run_ends_the_job_with_an_error(tmp_path: Path) -> None:
    exe = need_tool("nbdkit", "nbdkit")
    with short_dir() as d:
        uri = f"nbd+unix:///?socket={d / 's'}"
        with proc([exe, "-f", "-U", str(d / "s"), "memory", f"size={SIZE}"]) as server:
            wait_ready(uri)
            run = subprocess.Popen(
                [sys.executable, "-m", "iolab", "run", "--name=j", "--ioengine=nbd", f"--uri={uri}",
                 "--rw=randread", "--iodepth=16", "--time_based", "--runtime=30"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            try:
                time.sleep(1.5)
                server.kill()
                _, err = run.communicate(timeout=TIMEOUT)
            finally:
                if run.poll() is None:
                    run.kill()
                    run.wait()
    assert run.returncode != 0
    assert "Traceback" not in err and uri in err, err


def test_writing_over_a_file_system_needs_allow_destroy(tmp_path: Path) -> None:
    """The gate reads the export before writing: a file-system signature refuses (IOL-SAFE-008) unless
    --allow-destroy names the URI."""
    mkfs = need_tool("mkfs.ext4", "e2fsprogs")
    image = tmp_path / "fs.img"
    with open(image, "wb") as f:
        f.truncate(SIZE)
    subprocess.run([mkfs, "-q", "-F", str(image)], check=True, timeout=TIMEOUT)
    exe = need_tool("nbdcopy", "libnbd-bin")
    with nbdkit() as uri:
        subprocess.run([exe, str(image), uri], check=True, timeout=TIMEOUT, env=clean_env())
        job = ("--name=j", "--ioengine=nbd", f"--uri={uri}", "--rw=write", "--bs=64k", "--size=1m")
        err = one_line_error(run_iolab(*job), "IOL-SAFE-008", "ext4")
        assert f"--allow-destroy={uri}" in err
        # nothing was written: the superblock is still there
        assert export_bytes(uri, tmp_path / "still.img")[1080:1082] == b"\x53\xef"
        # reading is not gated
        assert (
            run_iolab("--name=j", "--ioengine=nbd", f"--uri={uri}", "--rw=read", "--size=1m").returncode == 0
        )
        p = run_iolab(*job, f"--allow-destroy={uri}")
        assert p.returncode == 0, p.stderr


def test_doctor_reports_the_export_it_would_write_and_a_server_that_is_down(tmp_path: Path) -> None:
    """`iolab doctor JOBFILE` on nbd jobs: IOL-SAFE-008 for a formatted export the job writes, and the
    plan's one-line error (IOL-PLAN-001) naming the URI when the server is down."""
    mkfs = need_tool("mkfs.ext4", "e2fsprogs")
    image = tmp_path / "fs.img"
    with open(image, "wb") as f:
        f.truncate(SIZE)
    subprocess.run([mkfs, "-q", "-F", str(image)], check=True, timeout=TIMEOUT)
    exe = need_tool("nbdcopy", "libnbd-bin")

    def doctor(uri: str) -> list[dict[str, Any]]:
        jobfile = tmp_path / "job.fio"
        jobfile.write_text(f"[j]\nioengine=nbd\nuri={uri}\nrw=write\nbs=1m\nsize=4m\n")
        p = subprocess.run(
            [sys.executable, "-m", "iolab", "doctor", "--output-format=json", str(jobfile)],
            capture_output=True, text=True, timeout=TIMEOUT,
        )  # fmt: skip
        assert "Traceback" not in p.stderr, p.stderr
        found: list[dict[str, Any]] = json.loads(p.stdout)["findings"]
        return found

    with nbdkit() as uri:
        assert not [f for f in doctor(uri) if f["severity"] == "error"]  # an empty export
        subprocess.run([exe, str(image), uri], check=True, timeout=TIMEOUT, env=clean_env())
        safe = [f for f in doctor(uri) if f["code"] == "IOL-SAFE-008"]
        assert len(safe) == 1 and safe[0]["severity"] == "error" and safe[0]["evidence"]["uri"] == uri
        assert safe[0]["evidence"]["signatures"][0]["type"] == "ext4"
    down = [f for f in doctor(uri) if f["code"] == "IOL-PLAN-001"]
    assert len(down) == 1 and uri in down[0]["message"] and "cannot connect" in down[0]["message"]


def test_an_io_error_of_the_server_fails_the_job_at_its_offset_as_in_fio() -> None:
    """iolab serve with a blkdebug rule failing reads of sector 2048 (EIO): both engines end the job with
    error 5, iolab's message names the offset and the URI."""
    with short_dir() as d:
        image = d / "disk.img"
        with open(image, "wb") as f:
            f.truncate(SIZE)
        rules = d / "rules.conf"
        rules.write_text('[inject-error]\nevent = "read_aio"\nerrno = "5"\nsector = "2048"\n')
        with serve_cli(str(image), "--listen", f"unix:{d / 's'}", "--blkdebug", str(rules)) as (_, ready):
            uri = str(ready["uris"][0])
            job = ("--name=j", "--ioengine=nbd", f"--uri={uri}", "--rw=read", "--bs=4k", "--iodepth=4")
            p = run_iolab(*job, "--output-format=json")
            assert p.returncode != 0 and "Traceback" not in p.stderr
            assert json.loads(p.stdout)["jobs"][0]["error"] == 5
            assert "offset 1048576" in p.stderr and uri in p.stderr and "Input/output error" in p.stderr, (
                p.stderr
            )
            assert fio_json(*job, check=False)["jobs"][0]["error"] == 5


class _OldServer:
    """A minimal fixed-newstyle server without NBD_OPT_GO (it answers NBD_REP_ERR_UNSUP), or one speaking
    the oldstyle handshake: what iolab.nbdwire.client must fall back from, or refuse."""

    def __init__(self, path: Path, oldstyle: bool = False) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(1)
        self.oldstyle = oldstyle
        self.seen: list[int] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            if self.oldstyle:
                conn.sendall(struct.pack(">QQQI", 0x4E42444D41474943, 0x00420281861253, SIZE, 1) + bytes(124))
                return
            conn.sendall(
                struct.pack(">QQH", 0x4E42444D41474943, 0x49484156454F5054, 1)
            )  # fixed newstyle only
            conn.recv(4)
            while True:
                head = conn.recv(16, socket.MSG_WAITALL)
                if len(head) < 16:
                    return
                _, option, length = struct.unpack(">QII", head)
                data = conn.recv(length, socket.MSG_WAITALL) if length else b""
                self.seen.append(option)
                if option == 7:  # GO: unknown to this server
                    conn.sendall(struct.pack(">QIII", 0x3E889045565A9, option, (1 << 31) + 1, 0))
                elif option == 1:  # EXPORT_NAME: size, flags, 124 zero bytes (no NO_ZEROES)
                    assert data == b"disk"
                    conn.sendall(struct.pack(">QH", SIZE, 1 | 4) + bytes(124))
                    conn.recv(28, socket.MSG_WAITALL)  # the client's NBD_CMD_DISC
                    return

    def close(self) -> None:
        self.listener.close()
        self.thread.join(10)


def test_handshake_falls_back_to_export_name_and_refuses_oldstyle() -> None:
    with short_dir() as d:
        server = _OldServer(d / "old")
        try:
            uri, info = client.probe(f"nbd+unix:///disk?socket={d / 'old'}")
        finally:
            server.close()
        assert server.seen == [7, 1] and uri.export == "disk"
        assert (info.size, info.can_flush, info.read_only) == (SIZE, True, False)
        server = _OldServer(d / "oldstyle", oldstyle=True)
        try:
            p = run_iolab(
                "--name=j", "--ioengine=nbd", f"--uri=nbd+unix:///?socket={d / 'oldstyle'}", "--rw=read"
            )
        finally:
            server.close()
        one_line_error(p, "oldstyle")


@pytest.mark.parametrize(
    "job",
    [
        pytest.param(("--rw=randtrim", "--bs=64k", "--iodepth=16"), id="randtrim-qd16"),
        pytest.param(("--rw=trim", "--bs=1m", "--iodepth=1"), id="trim-qd1"),
        pytest.param(("--rw=trimwrite", "--bs=64k", "--iodepth=8"), id="trimwrite-qd8"),
    ],
)
def test_trims_same_as_fio(job: tuple[str, ...]) -> None:
    """NBD_CMD_TRIM: the same trims (and trimwrite's writes) as fio's nbd engine (nbd_aio_trim)."""
    with nbdkit() as uri:
        args = ["--name=j", "--ioengine=nbd", f"--uri={uri}", *job]
        ours = iolab_json(*args)["jobs"][0]
        theirs = fio_json(*args)["jobs"][0]
    for d in ("read", "write", "trim"):
        assert (ours[d]["io_bytes"], ours[d]["total_ios"]) == (
            theirs[d]["io_bytes"],
            theirs[d]["total_ios"],
        ), d
    assert ours["trim"]["io_bytes"] == SIZE and ours["error"] == theirs["error"] == 0


def test_trim_discards_the_range_and_is_refused_on_a_read_only_export(tmp_path: Path) -> None:
    """After rw=trim the memory export reads back as zeros there and unchanged elsewhere (read with
    nbdcopy); a trim on a read-only export is refused before any I/O, as a write is."""
    image = tmp_path / "random.img"
    image.write_bytes(os.urandom(SIZE))
    exe = need_tool("nbdcopy", "libnbd-bin")
    with nbdkit() as uri:
        subprocess.run([exe, str(image), uri], check=True, timeout=TIMEOUT, env=clean_env())
        job = (
            "--name=t",
            "--ioengine=nbd",
            f"--uri={uri}",
            "--rw=trim",
            "--bs=1m",
            "--offset=4m",
            "--size=8m",
        )
        # trimming destroys data like a write: the gate looks first (random bytes carry no signature)
        got = iolab_json(*job)["jobs"][0]
        assert got["trim"]["io_bytes"] == 8 << 20
        data = export_bytes(uri, tmp_path / "back.img")
    original = image.read_bytes()
    assert data[: 4 << 20] == original[: 4 << 20] and data[12 << 20 :] == original[12 << 20 :]
    assert data[4 << 20 : 12 << 20] == bytes(8 << 20)
    with nbdkit(read_only=True) as uri:
        one_line_error(run_iolab("--name=t", "--ioengine=nbd", f"--uri={uri}", "--rw=randtrim"), "read-only")
