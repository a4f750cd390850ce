"""`iolab serve` gated and hardened: the safety gate on writable exports, socket paths and modes, remote
listeners, connection/handshake/buffer bounds, and control requests validated. Real clients (qemu-io,
nbdinfo, libnbd) and raw sockets for the attacks; real loop devices, file systems and mounts for the gate
(root: skipped outside CI with the reason, run in CI)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import stat
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

from conftest import need
from iolab.doctor import SafetyError
from iolab.nbd import serve
from iolab.nbd.tls import make_config
from nbd_helpers import clean_env, ctl, libnbd, make_image, need_tool, qemu_io, serve_cli
from test_doctor_support import attached, mkfs_ext4, mounted
from test_nbd_tls import PKI, libnbd_uri, pki  # noqa: F401 (pki: a fixture)

MiB = 1 << 20
IHAVEOPT = 0x49484156454F5054
REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698
REQ = struct.Struct(">IHHQQI")
CMD_READ, CMD_WRITE = 0, 1


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def serve_fails(*args: str) -> subprocess.CompletedProcess[str]:
    """`iolab serve ARGS`, expected to refuse: exits by itself (timeout otherwise)."""
    proc_ = subprocess.run(
        [sys.executable, "-m", "iolab", "serve", *args],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc_.returncode == 1, (proc_.returncode, proc_.stdout, proc_.stderr)
    assert proc_.stdout == "", proc_.stdout  # no ready line
    assert "Traceback" not in proc_.stderr, proc_.stderr
    return proc_


def recv_exact(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"EOF after {len(data)} of {n} bytes")
        data += chunk
    return data


def nbd_connect(path: str, timeout: float = 10) -> socket.socket:
    """A raw client past the handshake (NBD_OPT_EXPORT_NAME of the default export, simple replies)."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    s.connect(path)
    assert recv_exact(s, 18)[:8] == b"NBDMAGIC"
    s.sendall(struct.pack(">I", 3) + struct.pack(">QII", IHAVEOPT, 1, 0))  # fixed newstyle, no zeroes
    recv_exact(s, 10)  # size and transmission flags
    return s


def simple_reply(s: socket.socket) -> tuple[int, int]:
    magic, err, cookie = struct.unpack(">IIQ", recv_exact(s, 16))
    assert magic == SIMPLE_REPLY_MAGIC
    return err, cookie


def is_closed(s: socket.socket, within: float) -> bool:
    """True when the peer closes (EOF or reset) within `within` seconds."""
    s.settimeout(within)
    try:
        while s.recv(65536):
            pass
        return True
    except ConnectionError:
        return True
    except TimeoutError:
        return False


def status_kib(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    m = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    assert m, text
    return int(m.group(1))


# ------------------------------------------------------------------------------------ the safety gate


@contextlib.contextmanager
def ext4_loop(direct_dir: Path) -> Iterator[tuple[str, Path]]:
    backing = direct_dir / "ext4.img"
    with open(backing, "wb") as f:
        f.truncate(64 * MiB)
    mkfs_ext4(backing)
    with attached(backing) as dev:
        yield dev, backing


def test_gate_refuses_a_mounted_device_and_read_only_serves_it(direct_dir: Path) -> None:
    with ext4_loop(direct_dir) as (dev, _backing), mounted(dev, direct_dir / "mnt") as mnt:
        (mnt / "precious").write_text("data")
        os.sync()
        before = sha256(dev)
        sock = str(direct_dir / "nbd.sock")
        refused = serve_fails(dev, "--listen", f"unix:{sock}")
        assert "IOL-SAFE-001" in refused.stderr and "mounted" in refused.stderr, refused.stderr
        assert "--read-only" in refused.stderr and "--allow-destroy" in refused.stderr
        assert not os.path.exists(sock)
        assert sha256(dev) == before
        # read-only: no gate, served, and nothing can be written through it
        with serve_cli(dev, "--read-only", "--listen", f"unix:{sock}") as (p, ready):
            assert not any("IOL-SAFE" in line for line in p.seen)
            out = qemu_io(ready["uris"][0], "read 0 64k", "write -P 7 0 4k", read_only=True)
            assert "read 65536/65536" in out
        assert sha256(dev) == before
        assert (mnt / "precious").read_text() == "data"


def test_gate_refuses_a_signature_and_allow_destroy_serves_it_held_exclusively(direct_dir: Path) -> None:
    with ext4_loop(direct_dir) as (dev, _backing):
        before = sha256(dev)
        sock = str(direct_dir / "nbd.sock")
        refused = serve_fails(dev, "--listen", f"unix:{sock}")
        assert "IOL-SAFE-004" in refused.stderr and "ext4" in refused.stderr, refused.stderr
        # allowing something else does not allow this device
        other = make_image(direct_dir / "other.img", MiB)
        refused = serve_fails(dev, f"--allow-destroy={other}", "--listen", f"unix:{sock}")
        assert "IOL-SAFE-004" in refused.stderr
        assert sha256(dev) == before
        # an alias (a symlink) in --allow-destroy names the same device: allowed, by device number
        alias = direct_dir / "alias"
        alias.symlink_to(dev)
        with serve_cli(dev, "--allow-destroy", str(alias), "--listen", f"unix:{sock}") as (p, ready):
            assert any("IOL-SAFE-004" in line and "allowed by" in line for line in p.seen), p.seen
            # held with O_EXCL while served: it cannot be mounted or opened exclusively meanwhile
            with pytest.raises(OSError) as busy:
                os.close(os.open(dev, os.O_RDONLY | os.O_EXCL))
            assert busy.value.errno == 16  # EBUSY
            mnt = direct_dir / "mnt"
            mnt.mkdir()
            r = subprocess.run(["mount", dev, str(mnt)], capture_output=True, text=True)
            if r.returncode == 0:
                subprocess.run(["umount", str(mnt)], check=False)
            assert r.returncode != 0, "mounted a device the server holds"
            assert "wrote 4096/4096" in qemu_io(ready["uris"][0], "write -P 0x5a 1M 4k", check=True)
        with open(dev, "rb") as f:
            f.seek(1 * MiB)
            assert f.read(4096) == b"\x5a" * 4096
        # released when the server stops
        os.close(os.open(dev, os.O_RDONLY | os.O_EXCL))


def test_gate_refuses_a_loop_backing_file(direct_dir: Path) -> None:
    backing = make_image(direct_dir / "backing.img", 16 * MiB, pattern=0x11)
    before = sha256(backing)
    sock = str(direct_dir / "nbd.sock")
    with attached(backing):
        link = direct_dir / "link.img"
        link.symlink_to(backing)
        for image in (str(backing), str(link)):  # by inode: a symlink does not get around it
            refused = serve_fails(image, "--listen", f"unix:{sock}")
            assert "IOL-SAFE-006" in refused.stderr and "backing file" in refused.stderr, refused.stderr
        # the Python API has the same gate
        with pytest.raises(SafetyError) as refused_api, serve(link):
            pass
        assert [f.code for f in refused_api.value.findings if f.severity == "error"] == ["IOL-SAFE-006"]
        assert sha256(backing) == before
        with serve_cli(str(backing), "--read-only", "--listen", f"unix:{sock}") as (_p, ready):
            assert "read 4096/4096" in qemu_io(ready["uris"][0], "read -P 0x11 0 4k", read_only=True)
        with serve_cli(str(backing), f"--allow-destroy={link}", "--listen", f"unix:{sock}") as (p, ready):
            assert any("IOL-SAFE-006" in line and "allowed" in line for line in p.seen), p.seen
            assert "wrote 4096/4096" in qemu_io(ready["uris"][0], "write -P 0x22 0 4k", check=True)
    assert backing.read_bytes()[:4096] == b"\x22" * 4096


def test_gate_swap_is_never_overridable(direct_dir: Path) -> None:
    need(shutil.which("mkswap") is not None and shutil.which("swapon") is not None, "no mkswap/swapon")
    backing = make_image(direct_dir / "swap.img", 16 * MiB)
    with attached(backing) as dev:
        subprocess.run(["mkswap", dev], check=True, capture_output=True)
        r = subprocess.run(["swapon", dev], capture_output=True, text=True)
        need(r.returncode == 0, f"swapon failed: {r.stderr.strip()}")
        try:
            before = sha256(dev)
            refused = serve_fails(dev, f"--allow-destroy={dev}", "--listen", f"unix:{direct_dir}/nbd.sock")
            assert "IOL-SAFE-003" in refused.stderr and "swap" in refused.stderr, refused.stderr
            assert sha256(dev) == before
        finally:
            subprocess.run(["swapoff", dev], check=False)


def test_allow_destroy_must_exist(tmp_path: Path) -> None:
    img = make_image(tmp_path / "a.img", MiB)
    r = serve_fails(str(img), "--allow-destroy", str(tmp_path / "nope"), "--listen", f"unix:{tmp_path}/s")
    assert "--allow-destroy=" in r.stderr and "No such file" in r.stderr


# ------------------------------------------------------------------------------------------- sockets


@pytest.mark.parametrize("option", ["--control", "--listen"])
@pytest.mark.parametrize("kind", ["file", "directory", "symlink", "symlink-to-socket", "fifo"])
def test_socket_path_replaces_only_a_stale_socket(tmp_path: Path, option: str, kind: str) -> None:
    img = make_image(tmp_path / "a.img", MiB, pattern=0x33)
    disk = make_image(tmp_path / "disk.img", MiB, pattern=0x44)
    before = sha256(disk)
    target = tmp_path / "target"
    if kind == "file":
        target = disk
    elif kind == "directory":
        target.mkdir()
        (target / "inside").write_text("x")
    elif kind == "symlink":
        target.symlink_to(disk)
    elif kind == "symlink-to-socket":
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(str(tmp_path / "real.sock"))
        stale.close()
        target.symlink_to(tmp_path / "real.sock")
    else:
        os.mkfifo(target)
    mode_before = os.lstat(target).st_mode
    args = [str(img), "--listen", f"unix:{tmp_path}/nbd.sock"]
    if option == "--control":
        args += ["--control", str(target)]
    else:
        args = [str(img), "--listen", f"unix:{target}"]
    r = serve_fails(*args)
    assert f"{option} {target}" in r.stderr and "nothing was removed" in r.stderr, r.stderr
    assert os.lstat(target).st_mode == mode_before
    assert sha256(disk) == before
    if kind == "directory":
        assert (target / "inside").read_text() == "x"


def test_control_on_the_image_itself_keeps_the_image(tmp_path: Path) -> None:
    """The attack of issue 10: `--control disk.img` deleted the image being served."""
    img = make_image(tmp_path / "disk.img", 4 * MiB, pattern=0x5C)
    before = sha256(img)
    for control in (str(img), f"unix:{img}"):
        r = serve_fails(str(img), "--listen", f"unix:{tmp_path}/nbd.sock", "--control", control)
        assert f"--control {img}: a regular file is there" in r.stderr, r.stderr
        assert sha256(img) == before
    r = serve_fails(str(img), "--listen", f"unix:{img}")
    assert f"--listen {img}: a regular file is there" in r.stderr, r.stderr
    assert sha256(img) == before


def test_stale_socket_replaced_live_socket_refused(tmp_path: Path) -> None:
    img = make_image(tmp_path / "a.img", MiB)
    path = str(tmp_path / "nbd.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)  # left behind by a process that is gone: nothing listens
    stale.close()
    with serve_cli(str(img), "--listen", f"unix:{path}") as (p, ready):
        assert "read 4096/4096" in qemu_io(ready["uris"][0], "read 0 4k", check=True)
        # a second server on the live socket does not steal it
        r = serve_fails(str(img), "--read-only", "--listen", f"unix:{path}")
        assert "a server is listening" in r.stderr
        assert "read 4096/4096" in qemu_io(ready["uris"][0], "read 0 4k", check=True)
        os.kill(ready["pid"], signal.SIGTERM)
        assert p.p.wait(30) == 0
    assert not os.path.exists(path)  # removed at the end: it was ours


def test_unix_sockets_are_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    img = make_image(tmp_path / "a.img", MiB)
    sock, csock = str(tmp_path / "nbd.sock"), str(tmp_path / "ctl.sock")
    old = os.umask(0)  # inherited by the server: without care its sockets would be 0777
    try:
        with serve_cli(str(img), "--listen", f"unix:{sock}", "--control", csock):
            assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
            assert stat.S_IMODE(os.stat(csock).st_mode) == 0o600
            assert stat.S_ISSOCK(os.stat(sock).st_mode)
        with serve_cli(str(img), "--socket-mode", "660", "--listen", f"unix:{sock}", "--control", csock):
            assert stat.S_IMODE(os.stat(sock).st_mode) == 0o660
            assert stat.S_IMODE(os.stat(csock).st_mode) == 0o660
    finally:
        os.umask(old)
    r = subprocess.run(
        [sys.executable, "-m", "iolab", "serve", str(img), "--socket-mode", "9", "--listen", f"unix:{sock}"],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
    )
    assert r.returncode == 2 and "octal" in r.stderr


def test_only_the_owner_can_connect(tmp_path: Path) -> None:
    """What 0600 means: another user's connect() is refused by the kernel (root ignores modes, so the
    client runs as nobody); with --socket-mode 666 the same client gets in."""
    need(os.geteuid() == 0, "needs root to connect as another user")
    need(os.path.exists("/usr/bin/python3"), "no /usr/bin/python3 for the other user")
    img = make_image(tmp_path / "a.img", MiB)
    public = Path(tempfile.mkdtemp(prefix="iolab-sock-", dir="/tmp"))  # a directory nobody can enter
    try:
        public.chmod(0o755)
        sock = str(public / "nbd.sock")
        probe = f"import socket; s = socket.socket(socket.AF_UNIX); s.connect({sock!r}); print('connected')"

        def connect_as_nobody() -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["/usr/bin/python3", "-c", probe], user="nobody", capture_output=True, text=True, timeout=30
            )

        with serve_cli(str(img), "--listen", f"unix:{sock}"):
            denied = connect_as_nobody()
        with serve_cli(str(img), "--socket-mode", "666", "--listen", f"unix:{sock}"):
            allowed = connect_as_nobody()
    finally:
        shutil.rmtree(public, ignore_errors=True)
    assert denied.returncode != 0 and "PermissionError" in denied.stderr, (denied.stdout, denied.stderr)
    assert allowed.returncode == 0 and "connected" in allowed.stdout, (allowed.stdout, allowed.stderr)


@pytest.mark.parametrize("option", ["--listen", "--control"])
def test_remote_listeners_need_allow_remote_and_warn(tmp_path: Path, option: str) -> None:
    img = make_image(tmp_path / "a.img", MiB)
    base = [str(img), "--listen", f"unix:{tmp_path}/nbd.sock"]
    args = (
        [*base, option, "tcp:0.0.0.0:0"] if option == "--control" else [str(img), "--listen", "tcp:0.0.0.0:0"]
    )
    r = serve_fails(*args)
    assert "--allow-remote" in r.stderr and "0.0.0.0" in r.stderr, r.stderr
    with serve_cli(*args, "--allow-remote") as (p, ready):
        warning = [line for line in p.seen if "no authentication" in line]
        assert warning, p.seen
        if option == "--listen":
            assert "write" in warning[0]
            port = int(ready["uris"][0].rsplit(":", 1)[1].strip("/"))
            assert "read 4096/4096" in qemu_io(f"nbd://127.0.0.1:{port}/", "read 0 4k", check=True)
        else:
            assert "inject" in warning[0]
    # loopback needs no flag and says nothing
    loop_args = (
        [*base, option, "tcp:127.0.0.1:0"] if option == "--control" else [str(img), "--listen", "tcp::0"]
    )
    with serve_cli(*loop_args) as (p, _ready):
        assert not any("no authentication" in line for line in p.seen), p.seen


def test_read_only_remote_listener_warns_without_write(tmp_path: Path) -> None:
    img = make_image(tmp_path / "a.img", MiB)
    with serve_cli(str(img), "-r", "--allow-remote", "--listen", "tcp:[::]:0") as (p, _ready):
        warning = [line for line in p.seen if "no authentication" in line]
        assert warning and "read-only" in warning[0], p.seen


def test_vsock_counts_as_remote(tmp_path: Path) -> None:
    need(hasattr(socket, "AF_VSOCK"), "this Python has no socket.AF_VSOCK")
    img = make_image(tmp_path / "a.img", MiB)
    r = serve_fails(str(img), "--listen", "vsock::0")
    assert "--allow-remote" in r.stderr and "VM guests" in r.stderr, r.stderr


# -------------------------------------------------------------------------------------------- limits


def test_connection_limit(tmp_path: Path) -> None:
    img = make_image(tmp_path / "a.img", 4 * MiB, pattern=0x66)
    sock = str(tmp_path / "nbd.sock")
    nbdinfo = need_tool("nbdinfo", "libnbd-bin")
    with serve_cli(str(img), "--max-connections", "3", "--listen", f"unix:{sock}") as (p, ready):
        held = [nbd_connect(sock) for _ in range(3)]
        try:
            extra = socket.socket(socket.AF_UNIX)
            extra.connect(sock)
            assert is_closed(extra, 5), "the 4th connection was served"
            extra.close()
            r = subprocess.run([nbdinfo, ready["uris"][0]], capture_output=True, text=True, env=clean_env())
            assert r.returncode != 0
            p.wait_for(r"refused \d+ connection.*--max-connections", timeout=10)
            # the three held connections still work
            for i, s in enumerate(held):
                s.sendall(REQ.pack(REQUEST_MAGIC, 0, CMD_READ, i, 0, 4096))
                assert simple_reply(s) == (0, i)
                assert recv_exact(s, 4096) == b"\x66" * 4096
            held.pop().close()
            time.sleep(0.2)
            r = subprocess.run([nbdinfo, ready["uris"][0]], capture_output=True, text=True, env=clean_env())
            assert r.returncode == 0, r.stderr
        finally:
            for s in held:
                s.close()


def test_handshake_timeout(tmp_path: Path) -> None:
    img = make_image(tmp_path / "a.img", MiB, pattern=0x77)
    sock = str(tmp_path / "nbd.sock")
    with serve_cli(str(img), "--handshake-timeout", "1", "--listen", f"unix:{sock}") as (p, _ready):
        # silent after connecting
        idle = socket.socket(socket.AF_UNIX)
        idle.connect(sock)
        t0 = time.monotonic()
        assert is_closed(idle, 5)
        idle_s = time.monotonic() - t0
        # stalled in the middle of an option header
        stall = socket.socket(socket.AF_UNIX)
        stall.connect(sock)
        recv_exact(stall, 18)
        stall.sendall(struct.pack(">I", 3) + struct.pack(">Q", IHAVEOPT))
        t0 = time.monotonic()
        assert is_closed(stall, 5)
        stall_s = time.monotonic() - t0
        # a client past the handshake may stay idle for longer than the timeout
        ok = nbd_connect(sock)
        time.sleep(1.5)
        ok.sendall(REQ.pack(REQUEST_MAGIC, 0, CMD_READ, 9, 0, 512))
        assert simple_reply(ok) == (0, 9) and recv_exact(ok, 512) == b"\x77" * 512
        ok.close()
        p.wait_for("no complete handshake within 1s")
    assert 0.8 <= idle_s <= 3.5, idle_s
    assert stall_s <= 3.5, stall_s


def test_oversized_write_refused_without_buffering(tmp_path: Path) -> None:
    img = make_image(tmp_path / "a.img", 64 * MiB, pattern=0x12)
    sock = str(tmp_path / "nbd.sock")
    with serve_cli(str(img), "--listen", f"unix:{sock}") as (_p, ready):
        s = nbd_connect(sock)
        size = 48 * MiB  # over the 32 MiB maximum payload
        s.sendall(REQ.pack(REQUEST_MAGIC, 0, CMD_WRITE, 1, 0, size))
        chunk = b"\x99" * MiB
        for _ in range(size // MiB):
            s.sendall(chunk)
        assert simple_reply(s) == (22, 1)  # EINVAL, after the payload was skipped
        s.sendall(REQ.pack(REQUEST_MAGIC, 0, CMD_READ, 2, 0, 4096))  # the connection is still in step
        assert simple_reply(s) == (0, 2) and recv_exact(s, 4096) == b"\x12" * 4096
        s.close()
        hwm = status_kib(ready["pid"], "VmHWM")
    assert img.read_bytes()[:4096] == b"\x12" * 4096
    assert hwm < 150 * 1024, hwm


def _slow_writer(path: str, size: int, cookie: int, errors: list[str], pause: float) -> None:
    try:
        s = nbd_connect(path, timeout=120)
        s.sendall(REQ.pack(REQUEST_MAGIC, 0, CMD_WRITE, cookie, (cookie % 8) * size, size))
        chunk = bytes([cookie & 0xFF]) * (256 << 10)
        for _ in range(size // len(chunk)):
            s.sendall(chunk)
            time.sleep(pause)
        err, got = simple_reply(s)
        if (err, got) != (0, cookie):
            errors.append(f"write {cookie}: {err}")
        s.sendall(REQ.pack(REQUEST_MAGIC, 0, 2, 0, 0, 0))  # NBD_CMD_DISC
        s.close()
    except Exception as exc:
        errors.append(f"write {cookie}: {exc!r}")


def measure_rss(sock: str, pid: int, clients: int, size: int, pause: float) -> dict[str, int]:
    base = status_kib(pid, "VmRSS")
    errors: list[str] = []
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            with contextlib.suppress(OSError):
                peak[0] = max(peak[0], status_kib(pid, "VmRSS"))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    threads = [
        threading.Thread(target=_slow_writer, args=(sock, size, i, errors, pause), daemon=True)
        for i in range(clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    done.set()
    sampler.join()
    assert not errors, errors
    time.sleep(1)
    return {"base": base, "peak": peak[0], "hwm": status_kib(pid, "VmHWM"), "after": status_kib(pid, "VmRSS")}


def test_buffered_payload_is_bounded_and_returned(tmp_path: Path) -> None:
    """30 clients each send a 32 MiB write slowly (the payloads arrive interleaved, so without a global
    bound the server would hold ~1 GiB of partial payloads). With --max-buffer 64M the server's RSS stays
    within the bound plus its baseline and slack, every write completes, and RSS drops once they leave."""
    img = make_image(tmp_path / "a.img", 256 * MiB)
    sock, csock = str(tmp_path / "nbd.sock"), str(tmp_path / "ctl.sock")
    with serve_cli(str(img), "--max-buffer", "64M", "--listen", f"unix:{sock}", "--control", csock) as (
        _p,
        ready,
    ):
        # warm up: the thread pool and the page cache of the image exist before the baseline
        assert "wrote" in qemu_io(ready["uris"][0], "write -P 1 0 4M", check=True)
        rss = measure_rss(sock, ready["pid"], clients=30, size=32 * MiB, pause=0.002)
        stats = json.loads(ctl(csock, "stats").stdout)
    print(f"RSS KiB: {rss}")
    assert stats["commands"]["write"]["ops"] >= 31
    grown = (rss["peak"] - rss["base"]) // 1024
    assert grown <= 64 + 48, f"RSS grew by {grown} MiB with a 64 MiB bound: {rss}"
    assert rss["hwm"] - rss["base"] <= (64 + 64) * 1024, rss
    assert rss["after"] - rss["base"] <= 24 * 1024, f"RSS stayed up after the clients left: {rss}"
    # the data arrived whole: each client's writes landed at its own offset
    with open(img, "rb") as f:
        for cookie in (0, 7, 29):
            f.seek((cookie % 8) * 32 * MiB)
            head = f.read(4096)
            assert len(set(head)) == 1, cookie


def _slow_reader(path: str, size: int, cookie: int, errors: list[str], stall: float) -> None:
    try:
        s = nbd_connect(path, timeout=120)
        s.sendall(REQ.pack(REQUEST_MAGIC, 0, CMD_READ, cookie, (cookie % 8) * size, size))
        time.sleep(stall)  # not reading: the reply waits in the server
        if simple_reply(s) != (0, cookie):
            errors.append(f"read {cookie}: bad reply")
        got = 0
        while got < size:
            chunk = s.recv(min(1 << 20, size - got))
            if not chunk or chunk.count(7) != len(chunk):
                errors.append(f"read {cookie}: bad data at {got}")
                break
            got += len(chunk)
            time.sleep(0.002)
        s.close()
    except Exception as exc:
        errors.append(f"read {cookie}: {exc!r}")


def test_buffered_read_data_is_bounded(tmp_path: Path) -> None:
    """30 clients each ask for a 32 MiB read and are slow to read the reply: replies not yet read count
    against the same bound, so the server holds about --max-buffer, not 30 x 32 MiB."""
    img = make_image(tmp_path / "a.img", 256 * MiB, pattern=7)
    sock = str(tmp_path / "nbd.sock")
    with serve_cli(str(img), "--max-buffer", "64M", "--listen", f"unix:{sock}") as (_p, ready):
        pid = ready["pid"]
        assert "read" in qemu_io(ready["uris"][0], "read 0 4M", check=True)
        base = status_kib(pid, "VmRSS")
        errors: list[str] = []
        threads = [
            threading.Thread(target=_slow_reader, args=(sock, 32 * MiB, i, errors, 1.0), daemon=True)
            for i in range(30)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        time.sleep(1)
        hwm, after = status_kib(pid, "VmHWM"), status_kib(pid, "VmRSS")
    print(f"reads RSS KiB: base {base} hwm {hwm} after {after}")
    assert not errors, errors
    assert hwm - base <= (64 + 48) * 1024, (base, hwm)
    assert after - base <= 24 * 1024, (base, after)


def test_large_reads_then_disconnect_deliver_everything(tmp_path: Path) -> None:
    """Reads queued for sending when the client sends NBD_CMD_DISC (or shuts its side) are all sent
    before the server closes."""
    img = make_image(tmp_path / "a.img", 64 * MiB, pattern=7)
    sock = str(tmp_path / "nbd.sock")
    with serve_cli(str(img), "--listen", f"unix:{sock}") as _:
        for ending in ("disc", "shutdown"):
            s = nbd_connect(sock, timeout=60)
            reqs = b"".join(REQ.pack(REQUEST_MAGIC, 0, CMD_READ, i, i * 8 * MiB, 8 * MiB) for i in range(4))
            s.sendall(reqs + (REQ.pack(REQUEST_MAGIC, 0, 2, 0, 0, 0) if ending == "disc" else b""))
            if ending == "shutdown":
                s.shutdown(socket.SHUT_WR)
            time.sleep(0.5)  # let the server finish the reads while nothing is read
            for i in range(4):
                assert simple_reply(s) == (0, i)
                data = recv_exact(s, 8 * MiB)
                assert data.count(7) == len(data)
            assert s.recv(1) == b""
            s.close()


def test_small_buffer_bound_serves_everything(tmp_path: Path) -> None:
    """With a bound far below the clients' request sizes (nbdcopy: 256 KiB requests, several in flight on
    4 connections) requests wait or run alone, none is refused, nothing deadlocks, the data is exact."""
    nbdcopy = need_tool("nbdcopy", "libnbd-bin")
    src = tmp_path / "src.img"
    src.write_bytes(os.urandom(32 * MiB))
    img = make_image(tmp_path / "a.img", 32 * MiB)
    back = tmp_path / "back.img"
    sock = str(tmp_path / "nbd.sock")
    with serve_cli(str(img), "--max-buffer", "64K", "--listen", f"unix:{sock}") as (_p, ready):
        uri = ready["uris"][0]
        for cmd in (
            [nbdcopy, "--connections=4", str(src), uri],
            [nbdcopy, "--connections=4", uri, str(back)],
        ):
            r = subprocess.run(cmd, capture_output=True, text=True, env=clean_env(), timeout=120)
            assert r.returncode == 0, (cmd, r.stderr)
    assert sha256(img) == sha256(src) == sha256(back)


# ----------------------------------------------------------------------------------- control requests


def control_exchange(path: str, lines: list[bytes]) -> list[dict[str, Any]]:
    """Send each line on ONE control connection; the replies in order (the connection must survive)."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(path)
    f = s.makefile("rb")
    replies = []
    try:
        for line in lines:
            s.sendall(line + b"\n")
            reply = f.readline()
            assert reply.endswith(b"\n"), f"no reply to {line[:80]!r}"
            replies.append(json.loads(reply))
    finally:
        f.close()
        s.close()
    return replies


BAD_CONTROL = [
    (b"[" * 100_000 + b"]" * 100_000, "nested deeper"),
    (b'{"cmd": "inject", "values": {"event": "read_aio", "errno": {"a": {"b": {"c": 1}}}}}', "nested deeper"),
    (b'{"cmd": "inject", "event": "read_aio", "errno": -1}', "errno -1 is out of range"),
    (b'{"cmd": "inject", "event": "read_aio", "errno": 4000}', "not a known error number"),
    (b'{"cmd": "inject", "event": "read_aio", "errno": "EIO"}', "errno must be an integer"),
    (b'{"cmd": "inject", "event": "read_aio", "errno": true}', "errno must be an integer"),
    (b'{"cmd": "wait_break", "tag": "a", "count": -5}', "count -5 is out of range"),
    (b'{"cmd": "wait_break", "tag": "a", "count": 1e400}', "count must be an integer"),
    (b'{"cmd": "wait_break", "tag": "a", "count": ' + b"9" * 4000 + b"}", "out of range"),
    (b'{"cmd": "wait_break", "tag": "a", "count": ' + b"9" * 5000 + b"}", "not JSON"),
    (b'{"cmd": "wait_break", "tag": "a", "timeout": NaN}', "timeout must be a number"),
    (b'{"cmd": "wait_break", "tag": "a", "timeout": -1}', "timeout must be"),
    (b'{"cmd": "inject", "event": "read_aio", "sector": -2}', "sector -2 is out of range"),
    (b'{"cmd": "inject", "event": "read_aio", "state": -1}', "state -1 is out of range"),
    (b'{"cmd": "inject", "event": "read_aio", "state": 99999999999}', "out of range"),
    (b'{"cmd": "inject", "event": "read_aio", "once": 3}', "once must be"),
    (b'{"cmd": "inject", "event": "read_aio", "bogus": 1}', "valid keys"),
    (b'{"cmd": "stats", "foo": 1}', "unknown key 'foo' for stats; valid keys: cmd, export"),
    (b'{"cmd": "break", "event": ["x"], "tag": "t"}', "event must be a string"),
    (b'{"cmd": "break", "event": "read_aio"}', "needs 'tag'"),
    (b'{"cmd": "break", "event": "read_aio", "tag": "' + b"t" * 300 + b'"}', "tag must be 1 to 256"),
    (
        b'{"cmd": "rule", "section": "set-state", "values": {"event": "read_aio", "new_state": -3}}',
        "new_state",
    ),
    (b'{"cmd": "rule", "section": 5}', "section must be a string"),
    (b'{"cmd": "stats", "export": 7}', "export must be a string"),
    (b'{"cmd": 1}', "cmd must be one of"),
    (b'{"cmd": "nope"}', "unknown command"),
    (b"[1, 2]", "a request is a JSON object, not an array"),
    (b'"stats"', "not a string"),
    (b"42", "not a number"),
    (b"null", "not null"),
    (b"\xff\xfe{}", "not"),
    (b'{"cmd": "st\xc3\x28"}', "not"),
    (b"{", "not JSON"),
    (b"x" * (2 << 20), "longer than"),
]


def test_control_requests_validated(tmp_path: Path) -> None:
    img = make_image(tmp_path / "a.img", MiB)
    sock, csock = str(tmp_path / "nbd.sock"), str(tmp_path / "ctl.sock")
    with serve_cli(str(img), "--listen", f"unix:{sock}", "--control", csock) as (p, _ready):
        lines = [line for line, _ in BAD_CONTROL] + [b'{"cmd": "stats"}']
        replies = control_exchange(csock, lines)
        for (line, expected), reply in zip(BAD_CONTROL, replies, strict=False):
            assert reply["ok"] is False, (line[:80], reply)
            assert set(reply) == {"ok", "error", "errno"}, reply
            assert expected in reply["error"], (line[:80], reply)
            assert len(reply["error"]) < 400, reply  # errors name the problem, not echo the input
        assert replies[-1]["ok"] is True and "commands" in replies[-1]
        # valid requests still work, with the forms `iolab ctl` and the Python API send
        good = control_exchange(
            csock,
            [
                b'{"cmd": "inject", "export": "", "values": {"event": "read_aio", "errno": 5, "once": "on"}}',
                b'{"cmd": "inject", "event": "read_aio", "errno": 28, "sector": 8, "once": true, "state": 0}',
                b'{"cmd": "rule", "section": "set-state", "values": {"event": "read_aio", "state": 0, '
                b'"new_state": 2}}',
                b'{"cmd": "break", "event": "write_aio", "tag": "b"}',
                b'{"cmd": "remove_break", "tag": "b"}',
                b'{"cmd": "wait_break", "tag": "never", "timeout": 0.1, "count": 1}',
            ],
        )
        assert [r["ok"] for r in good] == [True] * 5 + [False], good
        assert "never" in good[-1]["error"]
        r = ctl(csock, "inject", "read_aio", "errno=-1", check=False)
        assert r.returncode == 1 and "errno -1 is out of range" in r.stderr, r.stderr
        r = ctl(csock, "inject", "read_aio", "errno=28", "colour=red", check=False)
        assert r.returncode == 1 and "valid keys" in r.stderr, r.stderr
        r = ctl(csock, "inject", "read_aio", "errno=28", "once=on")
        assert "ENOSPC" in r.stdout or "28" in r.stdout
    assert not any("Traceback" in line for line in p.seen), "\n".join(p.seen)


def test_python_api_arguments_validated(tmp_path: Path) -> None:
    from iolab.nbd.api import NBDServerError

    img = make_image(tmp_path / "a.img", MiB)
    with serve(img) as srv:
        with pytest.raises(NBDServerError, match="errno -1 is out of range"):
            srv.inject("read_aio", errno=-1)
        with pytest.raises(NBDServerError, match="count -5 is out of range"):
            srv.wait_break("t", timeout=0.1, count=-5)
        srv.inject("read_aio", errno=5, sector=0, once=True)
        assert "read failed" in qemu_io(srv.uri, "read 0 512")


def test_serve_help_documents_the_options() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "iolab", "serve", "--help"], capture_output=True, text=True, env=clean_env()
    )
    assert r.returncode == 0
    for option in (
        "--allow-destroy",
        "--allow-remote",
        "--socket-mode",
        "--max-connections",
        "--max-buffer",
        "--handshake-timeout",
    ):
        assert option in r.stdout, option


def test_large_requests_over_tls_under_a_small_bound(tmp_path: Path, pki: PKI) -> None:  # noqa: F811
    """Over TLS the transport is asyncio's TLS layer: large reads fed a slice at a time and a bound far
    below the request size still deliver exact data, on several connections at once."""
    from iolab.nbd.server import Limits

    src = tmp_path / "src.img"
    src.write_bytes(os.urandom(32 * MiB))
    img = make_image(tmp_path / "a.img", 32 * MiB)
    sockdir = Path(tempfile.mkdtemp(prefix="iolab-tls-", dir="/tmp"))  # short path for sun_path
    try:
        tls = make_config("require", certs_dir=str(pki.server))
        with serve(img, listen=f"unix:{sockdir / 's'}", tls=tls, limits=Limits(max_buffer=1 << 20)) as srv:
            uri = libnbd_uri(srv.uri, pki.client)
            out = libnbd(
                """
                import json, sys, nbd
                data = open(sys.argv[2], "rb").read()
                hs = []
                for i in range(4):
                    h = nbd.NBD(); h.set_uri_allow_local_file(True); h.connect_uri(sys.argv[1]); hs.append(h)
                for i, h in enumerate(hs):  # 8 MiB each, in flight together
                    h.aio_pwrite(nbd.Buffer.from_bytearray(data[i * 8 << 20:(i + 1) * 8 << 20]), i * 8 << 20)
                for h in hs:
                    while h.aio_in_flight():
                        h.poll(-1)
                hs[0].flush()
                ok = all(h.pread(8 << 20, i * 8 << 20) == data[i * 8 << 20:(i + 1) * 8 << 20]
                         for i, h in enumerate(hs))
                for h in hs:
                    h.shutdown()
                print(json.dumps(ok))
                """,
                uri,
                str(src),
            )
            assert out is True
    finally:
        shutil.rmtree(sockdir, ignore_errors=True)
    assert sha256(img) == sha256(src)


def test_remote_warning_under_tls(tmp_path: Path, pki: PKI) -> None:  # noqa: F811
    img = make_image(tmp_path / "a.img", MiB)
    base = [str(img), "--allow-remote", "--listen", "tcp:0.0.0.0:0", "--tls-certs", str(pki.server)]
    with serve_cli(*base, "--tls", "require") as (p, _ready):
        warning = [line for line in p.seen if "no authentication" in line]
        assert warning and "TLS encrypts, but any client may connect" in warning[0], p.seen
    with serve_cli(*base, "--tls", "on") as (p, _ready):  # plaintext still allowed: the plain warning
        warning = [line for line in p.seen if "no authentication" in line]
        assert warning and "TLS" not in warning[0] and "write" in warning[0], p.seen
    with serve_cli(*base, "--tls", "require", "--tls-verify-peer") as (p, _ready):
        assert not any("no authentication" in line for line in p.seen), p.seen
