"""Where the server listens: `unix:`, `tcp:` and `vsock:` addresses, who can reach them, and unix sockets
that are created with their final mode and replace only a stale socket."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import stat
from dataclasses import dataclass

DEFAULT_SOCKET_MODE = 0o600
VMADDR_CID_LOCAL = 1  # vsock's loopback CID (linux/vm_sockets.h)


@dataclass
class Address:
    kind: str  # "unix" | "tcp" | "vsock"
    host: str = ""
    port: int = 0
    path: str = ""
    cid: int = 0

    def uri(self, export: str = "", tls: bool = False) -> str:
        scheme = "nbds" if tls else "nbd"  # nbds: the client must use TLS
        if self.kind == "unix":
            return f"{scheme}+unix:///{export}?socket={self.path}"
        if self.kind == "vsock":
            return f"{scheme}+vsock://{self.cid}:{self.port}/{export}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}/{export}"

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.path}"
        if self.kind == "vsock":
            return f"vsock:{self.cid}:{self.port}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp:{host}:{self.port}"


def parse_address(text: str) -> Address:
    """`unix:PATH`, `tcp:[HOST:]PORT` (loopback when HOST is empty) or `vsock:[CID:]PORT`."""
    kind, sep, rest = text.partition(":")
    if not sep:
        raise ValueError(f"address {text!r}: expected unix:PATH, tcp:HOST:PORT or vsock:CID:PORT")
    if kind == "unix":
        if not rest:
            raise ValueError("unix: needs a socket path")
        return Address("unix", path=rest)
    if kind == "tcp":
        if rest.startswith("["):
            host, _, port = rest[1:].partition("]:")
        else:
            host, _, port = rest.rpartition(":")
        try:
            return Address("tcp", host=host or "127.0.0.1", port=int(port))
        except ValueError:
            raise ValueError(f"address {text!r}: bad TCP port") from None
    if kind == "vsock":
        cid, _, port = rest.rpartition(":")
        try:
            return Address(
                "vsock",
                cid=int(cid) if cid else socket.VMADDR_CID_ANY,
                port=int(port) or socket.VMADDR_PORT_ANY,  # 0: any free port, as with TCP
            )
        except ValueError:
            raise ValueError(f"address {text!r}: bad vsock CID or port") from None
    raise ValueError(f"address {text!r}: unknown kind {kind!r} (unix, tcp or vsock)")


def is_local(addr: Address) -> bool:
    """Only this machine can connect: a unix socket, a loopback TCP address, vsock's local CID."""
    if addr.kind == "unix":
        return True
    if addr.kind == "vsock":
        return addr.cid == VMADDR_CID_LOCAL
    try:
        return ipaddress.ip_address(addr.host.partition("%")[0]).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(addr.host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    hosts = [str(info[4][0]).partition("%")[0] for info in infos]
    return bool(hosts) and all(ipaddress.ip_address(h).is_loopback for h in hosts)


def check_remote(addr: Address, allow_remote: bool, option: str) -> None:
    if not allow_remote and not is_local(addr):
        where = "VM guests and other machines" if addr.kind == "vsock" else "other machines"
        raise ValueError(
            f"{option} {addr}: {where} could connect, and NBD has no authentication; listen on "
            "unix:PATH or a loopback address (tcp:127.0.0.1:PORT), or pass --allow-remote"
        )


# what lstat found at a socket path, for the error that says why it is not replaced
_FILE_KINDS = (
    (stat.S_ISREG, "a regular file"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISFIFO, "a FIFO"),
)


def _kind_of(mode: int) -> str:
    return next((name for test, name in _FILE_KINDS if test(mode)), "not a socket")


@dataclass
class UnixSocketPath:
    """A unix socket we created; removed at the end only if the path still is that socket."""

    path: str
    sock: socket.socket
    ident: tuple[int, int]

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            st = os.lstat(self.path)
            if stat.S_ISSOCK(st.st_mode) and (st.st_dev, st.st_ino) == self.ident:
                os.unlink(self.path)


def clear_stale_socket(path: str, option: str) -> None:
    """Make room for a socket at `path`: only a socket nobody listens on is removed; anything else
    there (a file, a device, a directory, a symlink) is an error and stays untouched."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ValueError(f"{option} {path}: {exc.strerror}") from None
    if not stat.S_ISSOCK(st.st_mode):
        raise ValueError(
            f"{option} {path}: {_kind_of(st.st_mode)} is there; only a stale socket is replaced, so choose "
            "another path (nothing was removed)"
        )
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        pass  # stale: left by a server that is gone
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ValueError(
            f"{option} {path}: cannot tell whether the socket is in use: {exc.strerror}"
        ) from None
    else:
        raise ValueError(
            f"{option} {path}: a server is listening on this socket; stop it or choose another path"
        )
    finally:
        probe.close()
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ValueError(f"{option} {path}: cannot remove the stale socket: {exc.strerror}") from None


def bind_unix(path: str, mode: int, option: str, backlog: int = 128) -> UnixSocketPath:
    """A listening unix socket at `path`, born with `mode` (the umask is narrowed around bind(), so it
    is never reachable more widely than `mode`, not even for an instant)."""
    if not 0 <= mode <= 0o777:
        raise ValueError(f"socket mode {mode:o}: permission bits only (0 to 777)")
    clear_stale_socket(path, option)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o777 & ~mode)
    try:
        sock.bind(path)
    except OSError as exc:
        sock.close()
        raise ValueError(f"{option} {path}: {exc.strerror}") from None
    finally:
        os.umask(old)
    try:
        st = os.lstat(path)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return UnixSocketPath(path, sock, (st.st_dev, st.st_ino))
