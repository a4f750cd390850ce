"""Python API: `iolab.nbd.serve(...)` runs a server in a background thread for the length of a `with`."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from iolab.nbd.addresses import DEFAULT_SOCKET_MODE
from iolab.nbd.limits import Limits
from iolab.nbd.service import ExportConfig, Service
from iolab.nbd.tls import TLSConfig


class NBDServerError(RuntimeError):
    def __init__(self, reply: dict[str, Any]) -> None:
        super().__init__(reply.get("error", "failed"))
        self.errno = int(reply.get("errno", 0))


class NBDServer:
    """A running server. Methods are thread-safe and block until the server has acted."""

    def __init__(
        self,
        exports: list[ExportConfig],
        listen: Sequence[str],
        control: Sequence[str] = (),
        use_uvloop: bool = False,
        *,
        limits: Limits | None = None,
        allow_remote: bool = False,
        socket_mode: int = DEFAULT_SOCKET_MODE,
        tls: TLSConfig | None = None,
    ) -> None:
        self._options: dict[str, Any] = {
            "limits": limits,
            "allow_remote": allow_remote,
            "socket_mode": socket_mode,
            "tls": tls,
        }
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._service: Service | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(
            target=self._run,
            args=(exports, list(listen), list(control), use_uvloop),
            name="iolab-nbd",
            daemon=True,
        )
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error
        assert self._service is not None
        self.uris: list[str] = self._service.server.uris()
        self.uri: str = self.uris[0]
        self.control: list[str] = [str(a) for a in self._service.control_addresses]

    def _run(
        self, exports: list[ExportConfig], listen: list[str], control: list[str], use_uvloop: bool
    ) -> None:
        if use_uvloop:
            # optional, not a dependency: imported by name so type checking does not need it installed
            loop: asyncio.AbstractEventLoop = importlib.import_module("uvloop").new_event_loop()
        else:
            loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main(exports, listen, control))
        except BaseException as exc:  # reported to the starting thread
            if not self._ready.is_set():
                self._error = exc
        finally:
            self._ready.set()
            loop.close()

    async def _main(self, exports: list[ExportConfig], listen: list[str], control: list[str]) -> None:
        self._stop = asyncio.Event()
        self._service = await Service.start(exports, listen, control, **self._options)
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self._service.stop()

    def uri_for(self, export: str) -> str:
        assert self._service is not None
        return self._service.server.uris(export)[0]

    def command(self, cmd: str, *, wait: float | None = 60, **args: Any) -> dict[str, Any]:
        """Run a control command (see iolab.nbd.service); raises NBDServerError when it fails."""
        if self._loop is None or self._service is None or not self._thread.is_alive():
            raise RuntimeError("the server is not running")
        fut = asyncio.run_coroutine_threadsafe(self._service.command({"cmd": cmd, **args}), self._loop)
        reply = fut.result(wait)
        if not reply.get("ok"):
            raise NBDServerError(reply)
        return reply

    def break_(self, event: str, tag: str, export: str = "") -> None:
        """Suspend the next request that fires `event` (one-shot), like qemu-io's `break`."""
        self.command("break", event=event, tag=tag, export=export)

    def wait_break(self, tag: str, timeout: float = 30, export: str = "", count: int = 1) -> None:
        """Block until a request (or `count` of them) is suspended on a breakpoint with this tag."""
        self.command("wait_break", wait=timeout + 5, tag=tag, export=export, timeout=timeout, count=count)

    def resume(self, tag: str, export: str = "") -> None:
        """Resume the most recently suspended request with this tag."""
        self.command("resume", tag=tag, export=export)

    def remove_break(self, tag: str, export: str = "") -> int:
        """Delete the tag's breakpoints and resume its suspended requests; returns how many resumed."""
        return int(self.command("remove_break", tag=tag, export=export)["resumed"])

    def inject(
        self,
        event: str,
        errno: int = 5,
        *,
        sector: int | None = None,
        once: bool = False,
        state: int = 0,
        iotype: str | None = None,
        export: str = "",
    ) -> dict[str, Any]:
        """Add an inject-error rule, as in a blkdebug config file."""
        values: dict[str, Any] = {"event": event, "errno": errno, "once": once, "state": state}
        if sector is not None:
            values["sector"] = sector
        if iotype is not None:
            values["iotype"] = iotype
        rule: dict[str, Any] = self.command("inject", values=values, export=export)["rule"]
        return rule

    def set_state_rule(self, event: str, new_state: int, state: int = 0, export: str = "") -> None:
        self.command(
            "rule",
            section="set-state",
            values={"event": event, "state": state, "new_state": new_state},
            export=export,
        )

    def state(self, export: str = "") -> dict[str, Any]:
        return self.command("state", export=export)

    def stats(self, export: str = "") -> dict[str, Any]:
        return self.command("stats", export=export)

    def faults(self, fault_id: str = "", export: str = "", log: bool = True) -> list[dict[str, Any]]:
        """The storage-fault filters (all, or the one with this id): settings, counts, log of injections."""
        args: dict[str, Any] = {"export": export, "log": log}
        if fault_id:
            args["id"] = fault_id
        found: list[dict[str, Any]] = self.command("faults", **args)["faults"]
        return found

    def fault_log(self, fault_id: str, export: str = "") -> list[dict[str, Any]]:
        """The injections of one fault filter, oldest first."""
        log: list[dict[str, Any]] = self.faults(fault_id, export)[0]["log"]
        return log

    def fault_enable(self, fault_id: str, enabled: bool = True, export: str = "") -> None:
        self.command("fault_enable" if enabled else "fault_disable", id=fault_id, export=export)

    def fault_reset(self, fault_id: str = "", export: str = "") -> None:
        if fault_id:
            self.command("fault_reset", export=export, id=fault_id)
        else:
            self.command("fault_reset", export=export)

    def fault_add(self, spec: str, export: str = "") -> str:
        """Add a fault filter outermost at run time; returns its id."""
        return str(self.command("fault_add", spec=spec, export=export)["fault"]["id"])

    def fault_remove(self, fault_id: str, export: str = "") -> None:
        self.command("fault_remove", id=fault_id, export=export)

    def close(self) -> None:
        """Stop: release breakpoints, finish in-flight requests, close connections and the image."""
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def __enter__(self) -> NBDServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def serve(
    image: str | os.PathLike[str],
    *,
    name: str = "",
    listen: str | Sequence[str] | None = None,
    read_only: bool = False,
    blkdebug: str | os.PathLike[str] | None = None,
    rules: str | None = None,
    filters: Sequence[str] = (),
    control: str | Sequence[str] | None = None,
    extra_exports: Sequence[ExportConfig] = (),
    min_block: int = 1,
    use_uvloop: bool = False,
    allow_destroy: Sequence[str] = (),
    allow_remote: bool = False,
    limits: Limits | None = None,
    tls: TLSConfig | None = None,
) -> Iterator[NBDServer]:
    """Serve `image` over NBD for the duration of the block.

    With no `listen`, a unix socket in a private temporary directory. A blkdebug layer is always there,
    so breakpoints and injected errors work without a config file; `blkdebug` (a QEMU-style config file)
    or `rules` (its text) preload rules. `filters` are specs such as "delay:write=5ms", outermost first.
    A writable image passes the safety gate of `iolab serve` (iolab.doctor.SafetyError when it holds
    data), unless `allow_destroy` names it; TCP beyond loopback and vsock need `allow_remote`.
    `tls` (from `iolab.nbd.tls.make_config`) offers or requires NBD TLS.
    """
    tmp = None
    if listen is None:
        tmp = tempfile.mkdtemp(prefix="iolab-nbd-")
        listen = [f"unix:{os.path.join(tmp, 'nbd.sock')}"]
    elif isinstance(listen, str):
        listen = [listen]
    controls = [control] if isinstance(control, str) else list(control or ())
    cfg = ExportConfig(
        path=os.fspath(image),
        name=name,
        read_only=read_only,
        blkdebug=os.fspath(blkdebug) if blkdebug is not None else None,
        rules=rules,
        filters=list(filters),
        min_block=min_block,
        allow_destroy=list(allow_destroy),
    )
    try:
        server = NBDServer(
            [cfg, *extra_exports],
            listen,
            controls,
            use_uvloop=use_uvloop,
            limits=limits,
            allow_remote=allow_remote,
            tls=tls,
        )
        try:
            yield server
        finally:
            server.close()
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
