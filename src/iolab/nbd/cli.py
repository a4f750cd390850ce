"""`iolab serve` and `iolab ctl`."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import signal
import socket
import sys
from typing import Any

SERVE_USAGE = "iolab serve IMAGE [NAME=IMAGE ...] --listen ADDR [options]"
CTL_USAGE = """iolab ctl SOCKET COMMAND [ARGS]

commands:
  break EVENT TAG          suspend the next request that fires EVENT (one-shot)
  wait_break TAG [SECS]    wait until a request is suspended with TAG (default 30 s)
  resume TAG               resume the most recently suspended request with TAG
  remove_break TAG         delete TAG's breakpoints and resume all its requests
  inject EVENT [K=V ...]   add an inject-error rule (errno=, sector=, once=on, state=, iotype=)
  state                    blkdebug state, rules, suspended requests (JSON)
  stats                    per-command counters (JSON)
  exports                  exports and URIs (JSON)
  faults [ID] [--no-log]   storage-fault filters: settings, counts, log of injected faults (JSON)
  fault_enable ID          start injecting again
  fault_disable ID         stop injecting (requests pass untouched)
  fault_reset [ID]         clear the counts and the log (all fault filters without ID)
  fault_add SPEC           add a fault filter outermost, e.g. lost-write:offset=1M,length=4k,once=on
  fault_remove ID          take a fault filter out
"""


def _serve_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="iolab serve",
        usage=SERVE_USAGE,
        description="NBD server with QEMU-compatible blkdebug fault injection and breakpoints.",
    )
    p.add_argument(
        "images", nargs="+", metavar="IMAGE", help="file or block device; NAME=PATH names the export"
    )
    p.add_argument(
        "--listen",
        action="append",
        required=True,
        metavar="ADDR",
        help="unix:PATH | tcp:HOST:PORT (loopback when HOST is empty) | vsock:CID:PORT; repeatable",
    )
    p.add_argument(
        "--control",
        action="append",
        default=[],
        metavar="ADDR",
        help="control socket: PATH, unix:PATH or tcp:HOST:PORT (an existing socket at PATH is replaced only "
        "when stale; any other file there is an error)",
    )
    p.add_argument(
        "--blkdebug", metavar="CONFIG", help="QEMU blkdebug config file ([inject-error], [set-state])"
    )
    p.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="SPEC",
        help="delay:write=5ms | error-rate:read=0.01,seed=1 | log:file=PATH | blkdebug:config=PATH | "
        "lost-write:... | torn-write:... | misdirected-write:... | bit-rot:... (docs/nbd.md); "
        "the first is outermost",
    )
    p.add_argument(
        "--read-only",
        "-r",
        action="store_true",
        help="export read-only (no safety gate: nothing can be written)",
    )
    p.add_argument(
        "--allow-destroy",
        action="append",
        default=[],
        metavar="PATH",
        help="serve this image writable although the safety gate objects (mounted, in use, a file-system "
        "or partition signature, a loop device's backing file); matched by device number or inode, as "
        "`iolab run --allow-destroy`; repeatable. Active swap is never allowed",
    )
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow --listen/--control on a non-loopback TCP address or vsock (reachable by other machines "
        "or VM guests, with no authentication)",
    )
    p.add_argument(
        "--socket-mode",
        type=_octal_mode,
        default=0o600,
        metavar="OCTAL",
        help="permissions of the unix sockets created (default 600: only this user may connect)",
    )
    p.add_argument(
        "--max-connections",
        type=_positive_int,
        default=64,
        metavar="N",
        help="connections served at once (default 64); more are closed at accept",
    )
    p.add_argument(
        "--max-buffer",
        type=_size,
        default=64 << 20,
        metavar="SIZE",
        help="payload bytes of reads and writes in flight across all connections (default 64M); at the "
        "bound, requests wait and the server stops reading from clients",
    )
    p.add_argument(
        "--handshake-timeout",
        type=_seconds,
        default=10.0,
        metavar="SECS",
        help="drop a client that has not finished the handshake in this time (default 10)",
    )
    p.add_argument("--min-block-size", type=int, default=1, metavar="N", help="advertised minimum block size")
    p.add_argument("--threads", type=int, default=16, help="I/O threads for requests that would block")
    p.add_argument("--uvloop", action="store_true", help="run on uvloop (if installed)")
    tls = p.add_argument_group(
        "TLS (NBD_OPT_STARTTLS, x509 certificates, TLS 1.2 or later)",
        "Clients: nbds+unix:///?socket=PATH&tls-certificates=DIR (libnbd), or qemu's "
        "--object tls-creds-x509,id=tls0,dir=DIR,endpoint=client with tls-creds=tls0.",
    )
    tls.add_argument(
        "--tls",
        choices=("off", "on", "require"),
        help="off: no TLS; on: offered, plaintext allowed; require: every client must start TLS before "
        "anything else (URIs become nbds://). Default: off, or require when certificates are given",
    )
    tls.add_argument(
        "--tls-certs",
        metavar="DIR",
        help="x509 directory as for qemu-nbd/nbdkit/libnbd: server-cert.pem, server-key.pem "
        "(and ca-cert.pem with --tls-verify-peer)",
    )
    tls.add_argument("--tls-cert", metavar="FILE", help="server certificate (PEM), instead of --tls-certs")
    tls.add_argument("--tls-key", metavar="FILE", help="server private key (PEM, unencrypted)")
    tls.add_argument("--tls-ca", metavar="FILE", help="CA certificate for client certificates")
    tls.add_argument(
        "--tls-verify-peer",
        action="store_true",
        help="require a client certificate signed by the CA (ca-cert.pem or --tls-ca)",
    )
    p.add_argument("--verbose", "-v", action="store_true")
    return p


def _octal_mode(text: str) -> int:
    try:
        mode = int(text, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an octal mode such as 600 or 660") from None
    if not 0 <= mode <= 0o777:
        raise argparse.ArgumentTypeError(f"{text!r}: permission bits only (0 to 777)")
    return mode


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: at least 1")
    return value


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def _size(text: str) -> int:
    number = text.upper().removesuffix("B").removesuffix("I")
    unit = number[-1:] if number[-1:] in ("K", "M", "G") else ""
    try:
        value = int(number[: len(number) - len(unit)]) * _UNITS[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size such as 64M, 512K or 1G") from None
    if value < 4096:
        raise argparse.ArgumentTypeError(f"{text!r}: at least 4K")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"{text!r}: more than 0 and at most 86400")
    return value


def _export_configs(args: argparse.Namespace) -> list[Any]:
    from iolab.nbd.service import ExportConfig

    configs = []
    for i, item in enumerate(args.images):
        name, sep, path = item.partition("=")
        if not sep or os.path.exists(item):
            name, path = ("" if i == 0 else os.path.basename(item)), item
        configs.append(
            ExportConfig(
                path=path,
                name=name,
                read_only=args.read_only,
                blkdebug=args.blkdebug,
                with_blkdebug=bool(args.blkdebug or args.control),
                filters=list(args.filter),
                min_block=args.min_block_size,
                threads=args.threads,
                allow_destroy=list(args.allow_destroy),
            )
        )
    return configs


def _tls_config(args: argparse.Namespace) -> Any:
    from iolab.nbd.tls import make_config

    return make_config(
        args.tls, args.tls_certs, args.tls_cert, args.tls_key, args.tls_ca, args.tls_verify_peer
    )


async def _serve(args: argparse.Namespace) -> int:
    from iolab.doctor import render_findings
    from iolab.doctor.safety import allow_destroy_problem
    from iolab.nbd.limits import Limits
    from iolab.nbd.service import Service

    problem = allow_destroy_problem(args.allow_destroy)
    if problem:
        raise ValueError(problem)
    svc = await Service.start(
        _export_configs(args),
        args.listen,
        args.control,
        limits=Limits(
            max_connections=args.max_connections,
            max_buffer=args.max_buffer,
            handshake_timeout=args.handshake_timeout,
        ),
        allow_remote=args.allow_remote,
        socket_mode=args.socket_mode,
        tls=_tls_config(args),
    )
    allowed = [f for e in svc.server.exports.values() for f in e.gate_findings]
    if allowed:
        print(render_findings(allowed), file=sys.stderr)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    ready = {
        "ready": True,
        "pid": os.getpid(),
        "uris": svc.server.uris(),
        "exports": [e.info() for e in svc.server.exports.values()],
        "control": [str(a) for a in svc.control_addresses],
        "tls": svc.server.tls.mode if svc.server.tls is not None else "off",
    }
    print(json.dumps(ready), flush=True)
    try:
        await stop.wait()
    finally:
        await svc.stop()
    return 0


def serve_main(argv: list[str]) -> int:
    from iolab.doctor import SafetyError, render_findings

    args = _serve_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="iolab serve: %(message)s",
        stream=sys.stderr,
    )
    try:
        if args.uvloop:
            # optional, not a dependency: imported by name so type checking does not need it installed
            uvloop = importlib.import_module("uvloop")
            return int(uvloop.run(_serve(args)))
        return asyncio.run(_serve(args))
    except ImportError as exc:
        print(f"iolab serve: {exc}", file=sys.stderr)
        return 1
    except SafetyError as exc:
        print(render_findings(exc.findings), file=sys.stderr)
        print(
            "iolab serve: refused to serve writable what holds data: serve it --read-only, or name it "
            "with --allow-destroy=PATH if it may be destroyed",
            file=sys.stderr,
        )
        return 1
    except (OSError, ValueError) as exc:
        print(f"iolab serve: {exc}", file=sys.stderr)
        return 1


def _connect(target: str) -> socket.socket:
    if target.startswith("tcp:"):
        from iolab.nbd.addresses import parse_address

        addr = parse_address(target)
        return socket.create_connection((addr.host, addr.port))
    path = target[5:] if target.startswith("unix:") else target
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    return sock


def _value(text: str) -> Any:
    try:
        return int(text, 0)
    except ValueError:
        return text


def ctl_request(argv: list[str]) -> dict[str, Any]:
    """The control request for `iolab ctl` arguments after the socket."""
    export = ""
    if len(argv) >= 2 and argv[0] == "--export":
        export, argv = argv[1], argv[2:]
    if not argv:
        raise ValueError("no command")
    cmd, rest = argv[0], argv[1:]
    req: dict[str, Any] = {"cmd": cmd, "export": export}
    if cmd == "break" and len(rest) == 2:
        req.update(event=rest[0], tag=rest[1])
    elif cmd in ("resume", "remove_break") and len(rest) == 1:
        req["tag"] = rest[0]
    elif cmd == "wait_break" and len(rest) in (1, 2):
        req["tag"] = rest[0]
        if len(rest) == 2:
            req["timeout"] = float(rest[1])
    elif cmd == "inject" and rest:
        values: dict[str, Any] = {"event": rest[0]}
        for item in rest[1:]:
            key, sep, val = item.partition("=")
            if not sep:
                raise ValueError(f"{item!r} is not KEY=VALUE")
            values[key] = _value(val)
        req["values"] = values
    elif cmd in ("state", "stats", "exports") and not rest:
        pass
    elif cmd == "faults" and len(rest) <= 2:
        for item in rest:
            if item == "--no-log":
                req["log"] = False
            elif "id" not in req and not item.startswith("-"):
                req["id"] = item
            else:
                raise ValueError(f"faults: unexpected {item!r} (faults [ID] [--no-log])")
    elif cmd in ("fault_enable", "fault_disable", "fault_remove") and len(rest) == 1:
        req["id"] = rest[0]
    elif cmd == "fault_reset" and len(rest) <= 1:
        if rest:
            req["id"] = rest[0]
    elif cmd == "fault_add" and len(rest) == 1:
        req["spec"] = rest[0]
    else:
        raise ValueError(f"bad arguments for {cmd!r}")
    return req


def ctl_main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] in ("-h", "--help"):
        sys.stdout.write(CTL_USAGE)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    target, rest = argv[0], argv[1:]
    try:
        req = ctl_request(rest)
    except ValueError as exc:
        print(f"iolab ctl: {exc}\n\n{CTL_USAGE}", file=sys.stderr)
        return 2
    try:
        with _connect(target) as sock:
            sock.sendall(json.dumps(req).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError as exc:
        print(f"iolab ctl: {target}: {exc}", file=sys.stderr)
        return 1
    try:
        reply = json.loads(data)
    except ValueError:
        print("iolab ctl: no valid reply from the server", file=sys.stderr)
        return 1
    if not reply.pop("ok", False):
        print(f"iolab ctl: {req['cmd']}: {reply.get('error')}", file=sys.stderr)
        return 1
    if reply:
        print(json.dumps(reply, indent=2))
    return 0


def main(argv: list[str]) -> int:
    """argv[0] is "serve" or "ctl" (routed here by iolab.cli)."""
    if not argv:
        return 2
    if argv[0] == "serve":
        return serve_main(argv[1:])
    if argv[0] == "ctl":
        return ctl_main(argv[1:])
    print(f"iolab: unknown command {argv[0]!r}", file=sys.stderr)
    return 2
