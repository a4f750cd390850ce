"""A running `iolab serve`: exports, NBD listeners and the control socket, in one event loop.

The control protocol is JSON lines: one request object per line (`{"cmd": "break", "event": "write_aio",
"tag": "A"}`), one reply object per line (`{"ok": true, ...}` or `{"ok": false, "error": "...", "errno": N}`).
Commands: break, remove_break, resume, wait_break, inject, rule, state, stats, exports, and for the
storage-fault filters faults, fault_enable, fault_disable, fault_reset, fault_add, fault_remove. Each
takes an optional "export" (default: the default export).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import math
import os
from dataclasses import dataclass, field
from typing import Any

from iolab.nbd import blkdebug, faults, filters
from iolab.nbd.addresses import (
    DEFAULT_SOCKET_MODE,
    Address,
    UnixSocketPath,
    bind_unix,
    check_remote,
    is_local,
    parse_address,
)
from iolab.nbd.export import Export
from iolab.nbd.layers import FileBackend, Filter, NBDError
from iolab.nbd.limits import Limits
from iolab.nbd.server import Server
from iolab.nbd.tls import TLSConfig

log = logging.getLogger("iolab.nbd")

MAX_CONTROL_LINE = 1 << 20
MAX_CONTROL_DEPTH = 4  # a request is an object whose "values" is an object: nothing deeper is valid


@dataclass
class ExportConfig:
    path: str
    name: str = ""
    read_only: bool = False
    blkdebug: str | None = None  # QEMU-style config file
    rules: str | None = None  # or its text
    with_blkdebug: bool = True  # keep an (empty) blkdebug layer so breakpoints can be set at run time
    filters: list[str] = field(default_factory=list)  # outermost first
    min_block: int = 1
    threads: int = 16
    description: str = ""
    #: images a writable export may destroy although the safety gate objects (as `iolab run --allow-destroy`)
    allow_destroy: list[str] = field(default_factory=list)


def gate_export(backend: FileBackend, cfg: ExportConfig) -> list[Any]:
    """The safety gate of `iolab run` on a writable export's open fd: refuse (SafetyError) an image that
    holds someone's data (mounted, in use, swap, a file-system or partition signature, a loop device's
    backing file) unless --allow-destroy names it. A block device stays held with O_EXCL while served,
    so nothing can mount or claim it meanwhile. Returns the findings (info ones when allowed)."""
    from iolab.doctor import SafetyError, check_fd, has_errors
    from iolab.doctor.findings import finding
    from iolab.doctor.target import block_devno

    users = [f"export {cfg.name!r}" if cfg.name else "the default export"]
    busy = False
    if backend.is_block:
        try:
            # the same device as the fd being served: reopened through /proc, not by its path again
            backend.exclusive_fd = os.open(
                f"/proc/self/fd/{backend.fd}", os.O_RDONLY | os.O_EXCL | os.O_CLOEXEC
            )
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise OSError(exc.errno, f"{cfg.path}: cannot open exclusively: {exc.strerror}") from None
            busy = True
    findings = check_fd(backend.fd, cfg.path, users=users, allow_destroy=cfg.allow_destroy)
    if busy and not has_errors(findings):
        # someone holds it exclusively: acceptable only for a file system mounted from it that the user
        # allowed to destroy (as `iolab run`); any other holder (a lazily unmounted file system, a
        # program) refuses
        st = os.fstat(backend.fd)
        devno = (os.major(st.st_rdev), os.minor(st.st_rdev))
        mounted = any(f.code == "IOL-SAFE-001" for f in findings)
        if not (mounted and any(block_devno(p) == devno for p in cfg.allow_destroy)):
            findings.append(
                finding(
                    "IOL-SAFE-005",
                    f"{cfg.path} is held exclusively by someone else (O_EXCL open: EBUSY)",
                    {"path": cfg.path, "errno": "EBUSY"},
                    f"find the user: fuser -v {cfg.path}; or serve it --read-only",
                    job=users[0],
                )
            )
    if has_errors(findings):
        raise SafetyError(findings)
    return findings


def build_export(cfg: ExportConfig) -> Export:
    backend = FileBackend(cfg.path, read_only=cfg.read_only, threads=cfg.threads)
    try:
        gate_findings = [] if cfg.read_only else gate_export(backend, cfg)
        specs = list(cfg.filters)
        rules: list[blkdebug.Rule] = []
        if cfg.blkdebug:
            rules += blkdebug.load_config(cfg.blkdebug)
        if cfg.rules:
            rules += blkdebug.parse_config(cfg.rules, "<rules>")
        top, dbg = filters.build_stack(backend, specs)
        if dbg is None and (rules or cfg.with_blkdebug):
            # blkdebug sits right above the image, as QEMU's blkdebug node sits above the file
            if top is backend:
                top = dbg = blkdebug.Blkdebug(backend, rules)
            else:
                inner = top
                while isinstance(inner, Filter) and inner.next is not backend:
                    inner = inner.next
                assert isinstance(inner, Filter)
                dbg = blkdebug.Blkdebug(backend, rules)
                inner.next = dbg
        elif dbg is not None:
            for rule in rules:
                dbg.dbg.add(rule)
        faults.attach(top, dbg.dbg if dbg is not None else None)
        export = Export(cfg.name, top, min_block=cfg.min_block, blkdebug=dbg, description=cfg.description)
        export.gate_findings = gate_findings
        return export
    except BaseException:
        backend.close()
        raise


class Service:
    def __init__(
        self, exports: list[Export], limits: Limits | None = None, tls: TLSConfig | None = None
    ) -> None:
        self.server = Server(exports, limits, tls=tls)
        self.control_addresses: list[Address] = []
        self._control_servers: list[asyncio.AbstractServer] = []
        self._control_tasks: set[asyncio.Task[None]] = set()
        self._control_paths: list[UnixSocketPath] = []
        self.stopped = asyncio.Event()

    @classmethod
    async def start(
        cls,
        exports: list[ExportConfig],
        listen: list[str],
        control: list[str] | None = None,
        *,
        limits: Limits | None = None,
        allow_remote: bool = False,
        socket_mode: int = DEFAULT_SOCKET_MODE,
        tls: TLSConfig | None = None,
    ) -> Service:
        built: list[Export] = []
        try:
            for cfg in exports:
                built.append(build_export(cfg))
            svc = cls(built, limits, tls=tls)
        except BaseException:
            for e in built:
                e.close()
            raise
        try:
            for e in built:
                if e.blkdebug is not None:
                    e.blkdebug.open()
            for text in listen:
                await svc.server.listen(
                    parse_address(text), allow_remote=allow_remote, socket_mode=socket_mode
                )
            for text in control or ():
                await svc.listen_control(text, allow_remote=allow_remote, socket_mode=socket_mode)
        except BaseException:
            await svc.stop()
            raise
        return svc

    async def listen_control(
        self, text: str, *, allow_remote: bool = False, socket_mode: int = DEFAULT_SOCKET_MODE
    ) -> Address:
        addr = parse_address(text if ":" in text and not text.startswith("/") else f"unix:{text}")
        if addr.kind == "unix":
            unix = bind_unix(addr.path, socket_mode, "--control")
            try:
                srv = await asyncio.start_unix_server(self._control_client, sock=unix.sock)
            except BaseException:
                unix.remove()
                raise
            self._control_paths.append(unix)
        elif addr.kind == "tcp":
            check_remote(addr, allow_remote, "--control")
            srv = await asyncio.start_server(self._control_client, addr.host, addr.port)
            addr = Address("tcp", host=addr.host, port=srv.sockets[0].getsockname()[1])
            if not is_local(addr):
                log.warning(
                    "control socket %s is reachable from other machines, with no authentication: anyone "
                    "can inject errors and suspend requests",
                    addr,
                )
        else:
            raise ValueError("the control socket is unix:PATH or tcp:HOST:PORT")
        self._control_servers.append(srv)
        self.control_addresses.append(addr)
        return addr

    async def _control_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._control_tasks.add(task)
        try:
            async for line in _control_lines(reader):
                if line is None:
                    reply: dict[str, Any] = _bad(f"request line longer than {MAX_CONTROL_LINE} bytes")
                elif not line.strip():
                    continue
                else:
                    req = parse_control_request(line)
                    reply = req if "ok" in req else await self.command(req)
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._control_tasks.discard(task)
            writer.close()

    def _export(self, req: dict[str, Any]) -> Export:
        name = req.get("export", "")
        export = self.server.find_export(str(name))
        if export is None:
            raise NBDError(errno.ENOENT, f"no export named {name!r}")
        return export

    def _dbg(self, req: dict[str, Any]) -> blkdebug.BlkdebugState:
        export = self._export(req)
        if export.blkdebug is None:
            raise NBDError(errno.ENOTSUP, f"export {export.name!r} has no blkdebug layer")
        dbg: blkdebug.BlkdebugState = export.blkdebug.dbg
        return dbg

    async def command(self, req: dict[str, Any]) -> dict[str, Any]:
        """Run one control command (validated first); never raises."""
        try:
            validate_request(req)
            return {"ok": True, **(await self._command(req))}
        except NBDError as exc:
            return {"ok": False, "error": exc.message, "errno": exc.errno}
        except (KeyError, TypeError, ValueError) as exc:
            return _bad(str(exc))
        except Exception as exc:  # a bug must not take the control connection down
            log.exception("control command %r failed", req.get("cmd"))
            return {"ok": False, "error": f"internal error: {exc}", "errno": errno.EIO}

    async def _command(self, req: dict[str, Any]) -> dict[str, Any]:
        cmd = req.get("cmd")
        if cmd == "break":
            self._dbg(req).add_break(str(req["event"]), str(req["tag"]))
            return {}
        if cmd == "remove_break":
            return {"resumed": self._dbg(req).remove_break(str(req["tag"]))}
        if cmd == "resume":
            self._dbg(req).resume(str(req["tag"]))
            return {}
        if cmd == "wait_break":
            dbg = self._dbg(req)
            timeout = float(req.get("timeout", 30))
            try:
                await asyncio.wait_for(dbg.wait_break(str(req["tag"]), int(req.get("count", 1))), timeout)
            except TimeoutError:
                raise NBDError(
                    errno.ETIMEDOUT, f"no request hit breakpoint {req['tag']!r} in {timeout}s"
                ) from None
            return {}
        if cmd in ("inject", "rule"):
            section = "inject-error" if cmd == "inject" else str(req["section"])
            values = req.get(
                "values", {k: v for k, v in req.items() if k not in ("cmd", "export", "section")}
            )
            if not isinstance(values, dict):
                raise ValueError("values must be an object")
            str_values = {
                str(k): ("on" if v is True else "off" if v is False else str(v)) for k, v in values.items()
            }
            try:
                rule = blkdebug.make_rule(section, str_values)
            except blkdebug.ConfigError as exc:
                raise NBDError(errno.EINVAL, str(exc)) from None
            self._dbg(req).add(rule)
            return {"rule": rule.describe()}
        if cmd == "state":
            return self._dbg(req).describe()
        if cmd == "stats":
            export = self._export(req)
            return {"export": export.name, **export.stats.as_dict()}
        if cmd in _FAULT_COMMANDS:
            return self._fault_command(cmd, req)
        if cmd == "exports":
            return {
                "exports": [e.info() for e in self.server.exports.values()],
                "uris": self.server.uris(),
                "tls": self.server.tls.mode if self.server.tls is not None else "off",
            }
        raise NBDError(errno.EINVAL, f"unknown command {cmd!r}")

    def _fault_command(self, cmd: str, req: dict[str, Any]) -> dict[str, Any]:
        """faults, fault_enable, fault_disable, fault_reset, fault_add, fault_remove (faults.py)."""
        export = self._export(req)
        if cmd == "fault_add":
            if len(faults.find_faults(export.top)) >= faults.MAX_FAULT_FILTERS:
                raise NBDError(
                    errno.EINVAL,
                    f"export {export.name!r} has {faults.MAX_FAULT_FILTERS} fault filters already",
                )
            try:
                added = filters.build_filter(str(req["spec"]), export.top)
            except ValueError as exc:
                raise NBDError(errno.EINVAL, str(exc)) from None
            if not isinstance(added, faults.StorageFault):
                names = ", ".join(f.name for f in faults.FAULT_FILTERS)
                raise NBDError(errno.EINVAL, f"only fault filters can be added at run time ({names})")
            try:
                faults.attach(added, export.blkdebug.dbg if export.blkdebug is not None else None)
            except ValueError as exc:
                raise NBDError(errno.EINVAL, str(exc)) from None
            export.top = added  # outermost: the next request passes through it
            return {"fault": added.describe(with_log=False)}
        if cmd == "faults":
            chosen = (
                [faults.lookup(export.top, str(req["id"]))] if "id" in req else faults.find_faults(export.top)
            )
            with_log = bool(req.get("log", True))
            return {"export": export.name, "faults": [f.describe(with_log) for f in chosen]}
        if cmd == "fault_reset" and "id" not in req:
            chosen = faults.find_faults(export.top)
        else:
            chosen = [faults.lookup(export.top, str(req["id"]))]
        for f in chosen:
            if cmd == "fault_enable":
                f.enabled = True
            elif cmd == "fault_disable":
                f.enabled = False
            elif cmd == "fault_reset":
                f.reset()
            else:  # fault_remove: unlink it; requests already inside it finish through it
                faults.unlink(export, f)
        return {"faults": [f.describe(with_log=False) for f in chosen]}

    async def stop(self) -> None:
        for srv in self._control_servers:
            srv.close()
        for t in list(self._control_tasks):
            t.cancel()
        await self.server.stop()
        for unix in self._control_paths:
            unix.remove()
        self.stopped.set()


# ------------------------------------------------------------------------------ control requests


def _bad(message: str) -> dict[str, Any]:
    return {"ok": False, "error": f"bad request: {message}", "errno": errno.EINVAL}


async def _control_lines(reader: asyncio.StreamReader) -> Any:
    """Lines of a control connection; None for one longer than MAX_CONTROL_LINE (dropped as it arrives,
    up to its newline, so the next line is read normally)."""
    pending = bytearray()
    dropping = False
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            return
        start = 0
        while True:
            nl = chunk.find(b"\n", start)
            piece = chunk[start:] if nl < 0 else chunk[start:nl]
            if not dropping:
                pending += piece
                if len(pending) > MAX_CONTROL_LINE:
                    pending = bytearray()
                    dropping = True
                    yield None
            if nl < 0:
                break
            start = nl + 1
            if dropping:
                dropping = False
            else:
                line = bytes(pending)
                pending = bytearray()
                yield line


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of parsed JSON, counting no further than limit + 1."""
    if limit < 0 or not isinstance(value, dict | list):
        return 0
    items = value.values() if isinstance(value, dict) else value
    return 1 + max((_depth(v, limit - 1) for v in items), default=0)


def parse_control_request(line: bytes) -> dict[str, Any]:
    """A request object, or the error reply (a dict with "ok") for a line that is not one."""
    try:
        req = json.loads(line)
    except RecursionError:
        return _bad(f"JSON nested deeper than {MAX_CONTROL_DEPTH} levels")
    except UnicodeDecodeError:
        return _bad("not UTF-8 text")
    except ValueError as exc:
        return _bad(f"not JSON ({exc})")
    if not isinstance(req, dict):
        return _bad(f"a request is a JSON object, not {_json_type(req)}")
    if _depth(req, MAX_CONTROL_DEPTH) > MAX_CONTROL_DEPTH:
        return _bad(f"JSON nested deeper than {MAX_CONTROL_DEPTH} levels")
    return req


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if value is None:
        return "null"
    return "an object"


MAX_TAG = 256
MAX_STATE = 1 << 31  # blkdebug states, as QEMU's (unsigned int)
MAX_SECTOR = (1 << 63) // 512
MAX_WAIT_COUNT = 1 << 16
MAX_WAIT_SECONDS = 24 * 3600.0

#: keys of each command besides "cmd" and "export"
_COMMAND_KEYS: dict[str, frozenset[str]] = {
    "break": frozenset({"event", "tag"}),
    "remove_break": frozenset({"tag"}),
    "resume": frozenset({"tag"}),
    "wait_break": frozenset({"tag", "timeout", "count"}),
    "inject": frozenset({"values"}) | blkdebug.RULE_KEYS["inject-error"],
    "rule": frozenset({"section", "values"})
    | blkdebug.RULE_KEYS["inject-error"]
    | blkdebug.RULE_KEYS["set-state"],
    "state": frozenset(),
    "stats": frozenset(),
    "exports": frozenset(),
    "faults": frozenset({"id", "log"}),
    "fault_enable": frozenset({"id"}),
    "fault_disable": frozenset({"id"}),
    "fault_reset": frozenset({"id"}),
    "fault_add": frozenset({"spec"}),
    "fault_remove": frozenset({"id"}),
}
_FAULT_COMMANDS = frozenset(k for k in _COMMAND_KEYS if k.startswith("fault"))
MAX_FILTER_SPEC = 1024
_REQUIRED: dict[str, tuple[str, ...]] = {
    "break": ("event", "tag"),
    "remove_break": ("tag",),
    "resume": ("tag",),
    "wait_break": ("tag",),
    "rule": ("section",),
    "fault_enable": ("id",),
    "fault_disable": ("id",),
    "fault_add": ("spec",),
    "fault_remove": ("id",),
}


def _string(key: str, value: Any, limit: int = MAX_TAG) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string, not {_json_type(value)}")
    if not value or len(value) > limit:
        raise ValueError(f"{key} must be 1 to {limit} characters")
    return value


def _integer(key: str, value: Any, low: int, high: int) -> int:
    """An integer (a JSON number or a decimal/0x string, as `iolab ctl K=V` sends) in [low, high]."""
    if isinstance(value, str) and len(value) <= 24:
        with contextlib.suppress(ValueError):
            value = int(value, 0)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} must be an integer, not {_json_type(value)}")
    if not low <= value <= high:
        raise ValueError(f"{key} {value if abs(value) < 10**30 else 'number'} is out of range {low}..{high}")
    return value


def _switch(key: str, value: Any) -> None:
    if isinstance(value, bool) or (isinstance(value, str) and value.lower() in _SWITCH_WORDS):
        return
    raise ValueError(f'{key} must be true/false or "on"/"off"')


_SWITCH_WORDS = frozenset({"on", "off", "yes", "no", "true", "false", "y", "n"})


def _check_rule_values(section: str, values: dict[str, Any]) -> None:
    valid = blkdebug.RULE_KEYS.get(section)
    if valid is None:
        raise ValueError(f"section {section!r} is not one of inject-error, set-state")
    unknown = sorted(set(values) - valid)
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} in [{section}]; valid keys: {', '.join(sorted(valid))}")
    if "event" not in values:
        raise ValueError(f"[{section}] needs an event")
    _string("event", values["event"])
    for key in ("state", "new_state"):
        if key in values:
            _integer(key, values[key], 0, MAX_STATE)
    if "errno" in values:
        err = _integer("errno", values["errno"], 1, 4095)
        if err not in errno.errorcode:
            raise ValueError(f"errno {err} is not a known error number (EIO is {errno.EIO})")
    if "sector" in values:
        _integer("sector", values["sector"], -1, MAX_SECTOR)
    for key in ("once", "immediately"):
        if key in values:
            _switch(key, values[key])
    if "iotype" in values:
        _string("iotype", values["iotype"])


def validate_request(req: dict[str, Any]) -> None:
    """Types, ranges and known keys of a control request; raises ValueError naming what is wrong."""
    cmd = req.get("cmd")
    if not isinstance(cmd, str):
        raise ValueError(f"cmd must be one of {', '.join(_COMMAND_KEYS)}")
    valid = _COMMAND_KEYS.get(cmd)
    if valid is None:
        raise NBDError(errno.EINVAL, f"unknown command {cmd[:64]!r}; commands: {', '.join(_COMMAND_KEYS)}")
    keys = set(req) - {"cmd", "export"}
    unknown = sorted(keys - valid)
    if unknown:
        raise ValueError(
            f"unknown key {unknown[0][:64]!r} for {cmd}; valid keys: "
            + (", ".join(sorted(valid | {"cmd", "export"})))
        )
    for key in _REQUIRED.get(cmd, ()):
        if key not in req:
            raise ValueError(f"{cmd} needs {key!r}")
    if "export" in req and not isinstance(req["export"], str):
        raise ValueError(f"export must be a string, not {_json_type(req['export'])}")
    for key in ("tag", "event", "id"):
        if key in req:
            _string(key, req[key])
    if "spec" in req:
        _string("spec", req["spec"], MAX_FILTER_SPEC)
    if "log" in req and not isinstance(req["log"], bool):
        raise ValueError(f"log must be true or false, not {_json_type(req['log'])}")
    if "timeout" in req:
        timeout = req["timeout"]
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not math.isfinite(timeout):
            raise ValueError("timeout must be a number of seconds")
        if not 0 <= timeout <= MAX_WAIT_SECONDS:
            raise ValueError(f"timeout must be 0 to {MAX_WAIT_SECONDS:g} seconds")
    if "count" in req:
        _integer("count", req["count"], 1, MAX_WAIT_COUNT)
    if cmd in ("inject", "rule"):
        section = "inject-error" if cmd == "inject" else req["section"]
        if not isinstance(section, str):
            raise ValueError("section must be a string")
        if "values" in req:
            if not isinstance(req["values"], dict):
                raise ValueError(f"values must be an object, not {_json_type(req['values'])}")
            flat = sorted(keys - {"values", "section"})
            if flat:
                raise ValueError(f"{flat[0]!r} goes inside values (or give no values object)")
            values = req["values"]
        else:
            values = {k: v for k, v in req.items() if k not in ("cmd", "export", "section")}
        _check_rule_values(section, values)
