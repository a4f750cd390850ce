"""A running `iolab serve`: exports, NBD listeners and the control socket, in one event loop.

The control protocol is JSON lines: one request object per line (`{"cmd": "break", "event": "write_aio",
"tag": "A"}`), one reply object per line (`{"ok": true, ...}` or `{"ok": false, "error": "...", "errno": N}`).
Commands: break, remove_break, resume, wait_break, inject, rule, state, stats, exports. Each takes an
optional "export" (default: the default export).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from iolab.nbd import blkdebug, filters
from iolab.nbd.export import Export
from iolab.nbd.layers import FileBackend, Filter, NBDError
from iolab.nbd.server import Address, Server, parse_address
from iolab.nbd.tls import TLSConfig

log = logging.getLogger("iolab.nbd")

MAX_CONTROL_LINE = 1 << 20


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


def build_export(cfg: ExportConfig) -> Export:
    backend = FileBackend(cfg.path, read_only=cfg.read_only, threads=cfg.threads)
    try:
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
        return Export(cfg.name, top, min_block=cfg.min_block, blkdebug=dbg, description=cfg.description)
    except BaseException:
        backend.close()
        raise


class Service:
    def __init__(self, exports: list[Export], tls: TLSConfig | None = None) -> None:
        self.server = Server(exports, tls=tls)
        self.control_addresses: list[Address] = []
        self._control_servers: list[asyncio.AbstractServer] = []
        self._control_tasks: set[asyncio.Task[None]] = set()
        self._control_paths: list[str] = []
        self.stopped = asyncio.Event()

    @classmethod
    async def start(
        cls,
        exports: list[ExportConfig],
        listen: list[str],
        control: list[str] | None = None,
        *,
        tls: TLSConfig | None = None,
    ) -> Service:
        built: list[Export] = []
        try:
            for cfg in exports:
                built.append(build_export(cfg))
            svc = cls(built, tls=tls)
        except BaseException:
            for e in built:
                e.close()
            raise
        try:
            for e in built:
                if e.blkdebug is not None:
                    e.blkdebug.open()
            for text in listen:
                await svc.server.listen(parse_address(text))
            for text in control or ():
                await svc.listen_control(text)
        except BaseException:
            await svc.stop()
            raise
        return svc

    async def listen_control(self, text: str) -> Address:
        addr = parse_address(text if ":" in text and not text.startswith("/") else f"unix:{text}")
        if addr.kind == "unix":
            with contextlib.suppress(FileNotFoundError):
                os.unlink(addr.path)
            srv = await asyncio.start_unix_server(
                self._control_client, path=addr.path, limit=MAX_CONTROL_LINE
            )
            self._control_paths.append(addr.path)
        elif addr.kind == "tcp":
            srv = await asyncio.start_server(
                self._control_client, addr.host, addr.port, limit=MAX_CONTROL_LINE
            )
            addr = Address("tcp", host=addr.host, port=srv.sockets[0].getsockname()[1])
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
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    writer.write(b'{"ok": false, "error": "request line too long"}\n')
                    break
                if not line:
                    break
                if not line.strip():
                    continue
                try:
                    req = json.loads(line)
                    if not isinstance(req, dict):
                        raise ValueError("a request is a JSON object")
                except ValueError as exc:
                    reply: dict[str, Any] = {
                        "ok": False,
                        "error": f"bad request: {exc}",
                        "errno": errno.EINVAL,
                    }
                else:
                    reply = await self.command(req)
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
        """Run one control command; never raises."""
        try:
            return {"ok": True, **(await self._command(req))}
        except NBDError as exc:
            return {"ok": False, "error": exc.message, "errno": exc.errno}
        except (KeyError, TypeError, ValueError) as exc:
            return {"ok": False, "error": f"bad request: {exc}", "errno": errno.EINVAL}

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
        if cmd == "exports":
            return {
                "exports": [e.info() for e in self.server.exports.values()],
                "uris": self.server.uris(),
                "tls": self.server.tls.mode if self.server.tls is not None else "off",
            }
        raise NBDError(errno.EINVAL, f"unknown command {cmd!r}")

    async def stop(self) -> None:
        for srv in self._control_servers:
            srv.close()
        for t in list(self._control_tasks):
            t.cancel()
        await self.server.stop()
        for path in self._control_paths:
            with contextlib.suppress(OSError):
                os.unlink(path)
        self.stopped.set()
