"""Filters besides blkdebug and the storage faults (faults.py): delay, error-rate, log; the registry of
filters; building a stack from `--filter` specs.

A spec is `NAME[:key=value,...]`. `FILTERS` maps each name to its class, which lists the keys it takes
(`settings`) and reads their values (`from_spec`). Per-operation settings are keyed by operation name
(`layers.OPS`): `OP=...` sets one operation, `all=...` every operation.
"""

from __future__ import annotations

import asyncio
import difflib
import errno as errno_mod
import random
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import IO, Any, TypeVar

from iolab.nbd import blkdebug, faults
from iolab.nbd.layers import OPS, Buffer, Extents, Filter, FilterSpecError, Layer, NBDError

T = TypeVar("T")


def parse_duration(text: str) -> float:
    """Seconds from `5ms`, `200us`, `1.5s`, `2` (seconds)."""
    t = text.strip().lower()
    for suffix, scale in (("ns", 1e-9), ("us", 1e-6), ("ms", 1e-3), ("s", 1.0)):
        if t.endswith(suffix):
            t, mult = t[: -len(suffix)], scale
            break
    else:
        mult = 1.0
    try:
        value = float(t) * mult
    except ValueError:
        raise FilterSpecError(f"{text!r} is not a duration (e.g. 5ms, 200us)") from None
    if value < 0:
        raise FilterSpecError(f"{text!r}: a delay cannot be negative")
    return value


def parse_errno(text: str) -> int:
    t = text.strip()
    if t.isdigit():
        return int(t)
    code = getattr(errno_mod, t.upper(), None)
    if not isinstance(code, int):
        raise FilterSpecError(f"{text!r} is not an errno (number or name such as EIO)")
    return code


def _per_op(params: dict[str, str], parse: Callable[[str], T], default: T) -> dict[str, T]:
    table = dict.fromkeys(OPS, default)
    if "all" in params:
        table = dict.fromkeys(OPS, parse(params["all"]))
    for op in OPS:
        if op in params:
            table[op] = parse(params[op])
    return table


_PER_OP_KEYS = (*OPS, "all")


class PerOperation(Filter):
    """A filter that does something before every operation, set per operation: subclasses implement
    `before` alone and every operation passes on to the next layer after it."""

    settings = _PER_OP_KEYS

    @classmethod
    def settings_help(cls) -> str:
        return f"operations: {', '.join(_PER_OP_KEYS)}"

    async def before(self, op: str) -> None:
        """The hook every per-operation filter defines (delay sleeps, error-rate may raise): run before `op`
        ("read", "write", ...) is passed on. This base class is never used as a filter itself."""
        raise NotImplementedError

    async def pread(self, offset: int, length: int) -> Buffer:
        await self.before("read")
        return await self.next.pread(offset, length)

    async def pwrite(self, offset: int, data: Buffer, fua: bool) -> None:
        await self.before("write")
        await self.next.pwrite(offset, data, fua)

    async def flush(self) -> None:
        await self.before("flush")
        await self.next.flush()

    async def trim(self, offset: int, length: int, fua: bool) -> None:
        await self.before("trim")
        await self.next.trim(offset, length, fua)

    async def zero(self, offset: int, length: int, may_trim: bool, fast: bool, fua: bool) -> None:
        await self.before("zero")
        await self.next.zero(offset, length, may_trim, fast, fua)

    async def cache(self, offset: int, length: int) -> None:
        await self.before("cache")
        await self.next.cache(offset, length)

    async def extents(self, offset: int, length: int, req_one: bool) -> Extents:
        await self.before("extents")
        return await self.next.extents(offset, length, req_one)


class Delay(PerOperation):
    """Adds a fixed latency per operation before passing the request on."""

    name = "delay"

    def __init__(self, nxt: Layer, delays: dict[str, float]) -> None:
        super().__init__(nxt)
        self.delays = delays

    @classmethod
    def from_spec(cls, nxt: Layer, params: dict[str, str]) -> Delay:
        return cls(nxt, _per_op(params, parse_duration, 0.0))

    async def before(self, op: str) -> None:
        d = self.delays[op]
        if d > 0:
            await asyncio.sleep(d)


def _rate(text: str) -> float:
    try:
        value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        raise FilterSpecError(f"error-rate: {text!r} is not a rate (0.01 or 1%)") from None
    if not 0 <= value <= 1:
        raise FilterSpecError(f"error-rate: {text!r} is not between 0 and 1")
    return value


class ErrorRate(PerOperation):
    """Fails a fraction of each operation with an errno, from a seeded generator (reproducible)."""

    name = "error-rate"
    settings = (*_PER_OP_KEYS, "errno", "seed", *(f"{op}.errno" for op in OPS))

    def __init__(self, nxt: Layer, rates: dict[str, float], errnos: dict[str, int], seed: int) -> None:
        super().__init__(nxt)
        self.rates = rates
        self.errnos = errnos
        self.rng = random.Random(seed)

    @classmethod
    def settings_help(cls) -> str:
        return f"operations: {', '.join(_PER_OP_KEYS)}; errno, OP.errno, seed"

    @classmethod
    def from_spec(cls, nxt: Layer, params: dict[str, str]) -> ErrorRate:
        rates = _per_op({k: v for k, v in params.items() if k in _PER_OP_KEYS}, _rate, 0.0)
        base = parse_errno(params.get("errno", "EIO"))
        errnos = {op: parse_errno(params[f"{op}.errno"]) if f"{op}.errno" in params else base for op in OPS}
        try:
            seed = int(params.get("seed", "0"))
        except ValueError:
            raise FilterSpecError("error-rate: seed must be an integer") from None
        return cls(nxt, rates, errnos, seed)

    async def before(self, op: str) -> None:
        rate = self.rates[op]
        if rate > 0 and self.rng.random() < rate:
            raise NBDError(self.errnos[op], f"error-rate: injected {op} error")


class Log(Filter):
    """One line per request: start time, operation, range, flags, outcome and how long it took."""

    name = "log"
    settings = ("file",)

    def __init__(self, nxt: Layer, out: IO[str]) -> None:
        super().__init__(nxt)
        self.out = out
        self.seq = 0

    async def _logged(self, op: str, detail: str, call: Awaitable[T]) -> T:
        self.seq += 1
        seq = self.seq
        start = time.monotonic()
        wall = time.time()
        outcome = "ok"
        try:
            return await call
        except NBDError as exc:
            outcome = f"error errno={exc.errno}"
            raise
        finally:
            us = (time.monotonic() - start) * 1e6
            self.out.write(f"{wall:.6f} #{seq} {op} {detail} -> {outcome} {us:.0f}us\n")

    async def pread(self, offset: int, length: int) -> Buffer:
        return await self._logged("read", f"offset={offset} length={length}", self.next.pread(offset, length))

    async def pwrite(self, offset: int, data: Buffer, fua: bool) -> None:
        detail = f"offset={offset} length={len(data)}" + (" fua" if fua else "")
        await self._logged("write", detail, self.next.pwrite(offset, data, fua))

    async def flush(self) -> None:
        await self._logged("flush", "", self.next.flush())

    async def trim(self, offset: int, length: int, fua: bool) -> None:
        detail = f"offset={offset} length={length}" + (" fua" if fua else "")
        await self._logged("trim", detail, self.next.trim(offset, length, fua))

    async def zero(self, offset: int, length: int, may_trim: bool, fast: bool, fua: bool) -> None:
        detail = (
            f"offset={offset} length={length}"
            + ("" if may_trim else " no_hole")
            + (" fast" if fast else "")
            + (" fua" if fua else "")
        )
        await self._logged("zero", detail, self.next.zero(offset, length, may_trim, fast, fua))

    async def cache(self, offset: int, length: int) -> None:
        await self._logged("cache", f"offset={offset} length={length}", self.next.cache(offset, length))

    async def extents(self, offset: int, length: int, req_one: bool) -> Extents:
        detail = f"offset={offset} length={length}" + (" req_one" if req_one else "")
        return await self._logged("extents", detail, self.next.extents(offset, length, req_one))

    @classmethod
    def from_spec(cls, nxt: Layer, params: dict[str, str]) -> Log:
        path = params.get("file", "-")
        out: IO[str] = sys.stderr if path == "-" else open(path, "a", buffering=1)  # noqa: SIM115
        return cls(nxt, out)

    def close(self) -> None:
        self.out.flush()
        if self.out not in (sys.stderr, sys.stdout):
            self.out.close()
        super().close()


# The filters `--filter NAME:...` can build, by name.
_FILTER_CLASSES: tuple[type[Filter], ...] = (blkdebug.Blkdebug, Delay, ErrorRate, Log, *faults.FAULT_FILTERS)
FILTERS: dict[str, type[Filter]] = {cls.name: cls for cls in _FILTER_CLASSES}


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    name, _, rest = spec.partition(":")
    params: dict[str, str] = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise FilterSpecError(f"filter {name}: {item!r} is not key=value")
        params[key.strip()] = value.strip()
    return name.strip(), params


def build_filter(spec: str, nxt: Layer) -> Filter:
    """One filter from its spec, on top of `nxt`."""
    name, params = parse_spec(spec)
    cls = FILTERS.get(name)
    if cls is None:
        raise FilterSpecError(
            f"unknown filter {name!r} ({', '.join(sorted(FILTERS))}){_did_you_mean(name, FILTERS)}"
        )
    bad = sorted(set(params) - set(cls.settings))
    if bad:
        hint = _did_you_mean(bad[0], cls.settings)
        raise FilterSpecError(f"filter {name}: unknown setting {bad[0]!r} ({cls.settings_help()}){hint}")
    return cls.from_spec(nxt, params)


def build_stack(backend: Layer, specs: list[str]) -> tuple[Layer, blkdebug.Blkdebug | None]:
    """Filters in command-line order, the first one outermost (closest to the client), as nbdkit does."""
    top: Layer = backend
    found: blkdebug.Blkdebug | None = None
    for spec in reversed(specs):
        top = build_filter(spec, top)
        if isinstance(top, blkdebug.Blkdebug):
            if found is not None:
                raise FilterSpecError("only one blkdebug filter per export")
            found = top
    return top, found


def describe(specs: list[str]) -> list[dict[str, Any]]:
    return [{"filter": parse_spec(s)[0], "settings": parse_spec(s)[1]} for s in specs]
