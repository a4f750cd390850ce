"""Storage faults that data verification must catch: lost-write, torn-write, misdirected-write, bit-rot.

Each is a filter (registered in filters.FILTERS) that overrides only the operation it corrupts. Which
requests it hits is chosen by a rule, in the spirit of blkdebug's: the operations, a byte range the
request must overlap, the blkdebug state, then every Nth of those, with a probability, at most so many
times. Every injected fault is logged (kind, operation, offsets, lengths, what landed where) so a test
can compare what a verifier reported with what was really done; `iolab ctl SOCKET faults` returns it
as JSON, and enable/disable/reset/add/remove act on a running server.
"""

from __future__ import annotations

import errno
import random
import time
from collections import deque
from typing import TYPE_CHECKING, Any, ClassVar

from iolab.nbd.layers import Buffer, Filter, FilterSpecError, Layer, NBDError

if TYPE_CHECKING:
    from iolab.nbd.blkdebug import BlkdebugState

#: fault filters one export may hold (a control client adding them without end would slow every request)
MAX_FAULT_FILTERS = 64
#: injections kept in a filter's log (the oldest are dropped past it; `log_dropped` counts them)
LOG_LIMIT = 10000

_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SWITCH = {"on": True, "yes": True, "true": True, "1": True}
_SWITCH.update({"off": False, "no": False, "false": False, "0": False})


class FaultSpecError(ValueError):
    """A bad setting of a fault filter (layers.FilterSpecError derives from ValueError as well)."""


def parse_size(text: str, what: str, *, signed: bool = False) -> int:
    """Bytes from `4096`, `0x1000`, `4k`, `1M`, `2G` (binary units); `-1M` when signed."""
    t = text.strip().lower()
    sign = 1
    if signed and t.startswith("-"):
        sign, t = -1, t[1:]
    try:
        if t.startswith("0x"):
            value = int(t[2:], 16)
        else:
            t = t.removesuffix("ib").removesuffix("b")
            unit = t[-1:] if t[-1:] in ("k", "m", "g", "t") else ""
            value = int(t[: len(t) - len(unit)], 10) * _SIZE_UNITS[unit]
    except ValueError:
        raise FaultSpecError(f"{what}: {text!r} is not a size (4096, 4k, 1M)") from None
    if value < 0:
        raise FaultSpecError(f"{what}: {text!r} cannot be negative")
    return sign * value


def _int(text: str, what: str, low: int, high: int) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise FaultSpecError(f"{what}: {text!r} is not a whole number") from None
    if not low <= value <= high:
        raise FaultSpecError(f"{what}: {value} is out of range {low}..{high}")
    return value


def _switch(text: str, what: str) -> bool:
    value = _SWITCH.get(text.strip().lower())
    if value is None:
        raise FaultSpecError(f"{what}: {text!r} is not on/off")
    return value


def _probability(text: str) -> float:
    t = text.strip()
    try:
        value = float(t.rstrip("%")) / (100 if t.endswith("%") else 1)
    except ValueError:
        raise FaultSpecError(f"probability: {text!r} is not a probability (0.25 or 25%)") from None
    if not 0 < value <= 1:
        raise FaultSpecError(f"probability: {text!r} is not more than 0 and at most 1")
    return value


class StorageFault(Filter):
    """Base of the fault filters: the rule that picks requests, the switch, the counters and the log.

    Subclasses set `name`, `fault_ops` (the operations they can corrupt) and `default_ops`, read their own
    settings in `configure`, and call `select()` in the operations they override.
    """

    name: ClassVar[str] = "storage-fault"
    fault_ops: ClassVar[tuple[str, ...]] = ("write",)
    default_ops: ClassVar[tuple[str, ...]] = ("write",)
    common_settings: ClassVar[tuple[str, ...]] = (
        "ops",
        "offset",
        "length",
        "every",
        "probability",
        "seed",
        "once",
        "limit",
        "state",
        "enabled",
        "id",
    )
    own_settings: ClassVar[tuple[str, ...]] = ()

    def __init__(self, nxt: Layer) -> None:
        super().__init__(nxt)
        self.fault_id = self.name
        self.ops: frozenset[str] = frozenset(self.default_ops)
        self.start = 0
        self.end: int | None = None  # exclusive; None: the end of the export
        self.every = 1
        self.probability = 1.0
        self.seed = 0
        self.rng = random.Random(0)
        self.limit: int | None = None
        self.state = 0  # blkdebug state the rule needs (0: any)
        self.enabled = True
        self.dbg: BlkdebugState | None = None  # the export's blkdebug state, for `state=`
        self.settings_given: dict[str, str] = {}
        self.attached = False  # given its export's blkdebug state and its final id (attach())
        self.reset()

    # --- construction -----------------------------------------------------------------------
    @classmethod
    def settings_help(cls) -> str:
        return ", ".join((*cls.common_settings, *cls.own_settings))

    @classmethod
    def from_spec(cls, nxt: Layer, params: dict[str, str]) -> StorageFault:
        f = cls(nxt)
        f.settings_given = dict(params)
        try:
            f._configure_rule(params)
            f.configure(params)
        except FaultSpecError as exc:
            raise FilterSpecError(f"filter {cls.name}: {exc}") from None
        return f

    def _configure_rule(self, p: dict[str, str]) -> None:
        if "ops" in p:
            ops = frozenset(o.strip() for o in p["ops"].split("+") if o.strip())
            bad = sorted(ops - set(self.fault_ops))
            if bad or not ops:
                raise FaultSpecError(
                    f"ops: {bad[0] if bad else p['ops']!r} is not one of {'+'.join(self.fault_ops)} "
                    "(join several with +)"
                )
            self.ops = ops
        self.start = parse_size(p.get("offset", "0"), "offset")
        if "length" in p:
            length = parse_size(p["length"], "length")
            if length == 0:
                raise FaultSpecError("length: 0 selects nothing (leave it out for the whole export)")
            self.end = self.start + length
        self.every = _int(p.get("every", "1"), "every", 1, 1 << 32)
        if "probability" in p:
            self.probability = _probability(p["probability"])
        self.seed = _int(p.get("seed", "0"), "seed", 0, (1 << 64) - 1)
        self.rng = random.Random(self.seed)
        if "limit" in p:
            self.limit = _int(p["limit"], "limit", 1, 1 << 62)
        if _switch(p.get("once", "off"), "once"):
            if self.limit not in (None, 1):
                raise FaultSpecError("once=on and limit= contradict each other (once is limit=1)")
            self.limit = 1
        self.state = _int(p.get("state", "0"), "state", 0, 1 << 31)
        self.enabled = _switch(p.get("enabled", "on"), "enabled")
        if "id" in p:
            ident = p["id"].strip()
            if not ident or len(ident) > 64 or not all(c.isalnum() or c in "-_.#" for c in ident):
                raise FaultSpecError(f"id: {p['id']!r} is not 1 to 64 letters, digits, - _ . #")
            self.fault_id = ident

    def configure(self, params: dict[str, str]) -> None:
        """Read the filter's own settings (keys already checked against `settings`)."""

    # --- selection --------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget what was injected: counters and log (the rule's generator restarts from its seed)."""
        self.matched = 0
        self.injected = 0
        self.log_dropped = 0
        self.log: deque[dict[str, Any]] = deque(maxlen=LOG_LIMIT)
        self.rng = random.Random(self.seed)

    def overlap(self, offset: int, length: int) -> tuple[int, int]:
        """The part of [offset, offset + length) in the rule's range: (start, end); empty if start >= end."""
        end = offset + length if self.end is None else min(offset + length, self.end)
        return max(offset, self.start), end

    def select(self, op: str, offset: int, length: int) -> bool:
        """Whether this request gets the fault: enabled, the operation, the range, the blkdebug state, the
        limit, then every Nth matching request, then the probability."""
        if not self.enabled or op not in self.ops:
            return False
        lo, hi = self.overlap(offset, length)
        if lo >= hi:
            return False
        if self.state and (self.dbg is None or self.dbg.state != self.state):
            return False
        if self.limit is not None and self.injected >= self.limit:
            return False
        self.matched += 1
        if self.matched % self.every:
            return False
        return not (self.probability < 1 and self.rng.random() >= self.probability)

    def record(self, op: str, offset: int, length: int, **detail: Any) -> None:
        self.injected += 1
        if len(self.log) == self.log.maxlen:
            self.log_dropped += 1
        self.log.append(
            {
                "seq": self.injected,
                "fault": self.name,
                "id": self.fault_id,
                "op": op,
                "offset": offset,
                "length": length,
                **detail,
                "time": round(time.time(), 6),
            }
        )

    def describe(self, with_log: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.fault_id,
            "fault": self.name,
            "enabled": self.enabled,
            "settings": self.settings_given,
            "ops": sorted(self.ops),
            "range": [self.start, self.end],
            "matched": self.matched,
            "injected": self.injected,
            "exhausted": self.limit is not None and self.injected >= self.limit,
            "log_dropped": self.log_dropped,
        }
        if with_log:
            d["log"] = list(self.log)
        return d


class LostWrite(StorageFault):
    """The write is acknowledged and never reaches the image (neither do zero or trim, when selected)."""

    name = "lost-write"
    fault_ops = ("write", "zero", "trim")
    settings = (*StorageFault.common_settings,)

    async def pwrite(self, offset: int, data: Buffer, fua: bool) -> None:
        if self.select("write", offset, len(data)):
            self.record("write", offset, len(data))
            return
        await self.next.pwrite(offset, data, fua)

    async def zero(self, offset: int, length: int, may_trim: bool, fast: bool, fua: bool) -> None:
        if self.select("zero", offset, length):
            self.record("zero", offset, length)
            return
        await self.next.zero(offset, length, may_trim, fast, fua)

    async def trim(self, offset: int, length: int, fua: bool) -> None:
        if self.select("trim", offset, length):
            self.record("trim", offset, length)
            return
        await self.next.trim(offset, length, fua)


class TornWrite(StorageFault):
    """Only part of the write lands: `keep` bytes (default 512, the first sector; or a percentage) at its
    head (`lands=head`, default) or its tail (`lands=tail`); the rest of the range keeps its old data.
    Writes no longer than `keep` cannot tear and pass whole (they are not counted as matched)."""

    name = "torn-write"
    own_settings = ("keep", "lands")
    settings = (*StorageFault.common_settings, *own_settings)

    def configure(self, params: dict[str, str]) -> None:
        keep = params.get("keep", "512").strip()
        self.keep_percent: float | None = None
        self.keep_bytes = 0
        if keep.endswith("%"):
            try:
                pct = float(keep[:-1])
            except ValueError:
                raise FaultSpecError(f"keep: {keep!r} is not a percentage such as 50%") from None
            if not 0 <= pct < 100:
                raise FaultSpecError(f"keep: {keep!r} must be 0% or more and under 100%")
            self.keep_percent = pct
        else:
            self.keep_bytes = parse_size(keep, "keep")
        self.lands = params.get("lands", "head").strip()
        if self.lands not in ("head", "tail"):
            raise FaultSpecError(f"lands: {self.lands!r} is not head or tail")

    def kept(self, length: int) -> int:
        if self.keep_percent is not None:
            return int(length * self.keep_percent / 100)
        return self.keep_bytes

    async def pwrite(self, offset: int, data: Buffer, fua: bool) -> None:
        length = len(data)
        keep = self.kept(length)
        if keep >= length or not self.select("write", offset, length):
            await self.next.pwrite(offset, data, fua)
            return
        view = memoryview(data)
        land_at = offset if self.lands == "head" else offset + length - keep
        part = view[:keep] if self.lands == "head" else view[length - keep :]
        lost_at = offset + keep if self.lands == "head" else offset
        self.record(
            "write",
            offset,
            length,
            landed={"offset": land_at, "length": keep},
            lost={"offset": lost_at, "length": length - keep},
        )
        if keep:
            await self.next.pwrite(land_at, part, fua)


class MisdirectedWrite(StorageFault):
    """The data lands `shift` bytes away (negative: before) and the intended range is left untouched. A
    target past either end wraps around the export; a write whose target would cross the end of the
    export, or overlap the write's own range, is not misdirected (passes whole, not counted)."""

    name = "misdirected-write"
    own_settings = ("shift",)
    settings = (*StorageFault.common_settings, *own_settings)

    def configure(self, params: dict[str, str]) -> None:
        self.shift = parse_size(params.get("shift", "1M"), "shift", signed=True)
        if self.shift == 0:
            raise FaultSpecError("shift: 0 would write where the data belongs")

    def target(self, offset: int, length: int) -> int | None:
        size = self.next.size()
        if size <= 0:
            return None
        target = (offset + self.shift) % size
        if target + length > size or (target < offset + length and offset < target + length):
            return None
        return target

    async def pwrite(self, offset: int, data: Buffer, fua: bool) -> None:
        length = len(data)
        target = self.target(offset, length)
        if target is None or not self.select("write", offset, length):
            await self.next.pwrite(offset, data, fua)
            return
        self.record("write", offset, length, target=target)
        await self.next.pwrite(target, data, fua)


class BitRot(StorageFault):
    """Reads return data with `bits` bits flipped (default 1), at positions drawn from `seed` inside the part
    of the read within the rule's range. With `persist=off` (default) the image is not changed: the rot is
    on the way back, and the next read may be clean. With `persist=on` the flipped bytes are written back
    to the image too, as decayed media would hold them."""

    name = "bit-rot"
    fault_ops = ("read",)
    default_ops = ("read",)
    own_settings = ("bits", "persist")
    settings = (*StorageFault.common_settings, *own_settings)

    def configure(self, params: dict[str, str]) -> None:
        self.bits = _int(params.get("bits", "1"), "bits", 1, 1 << 20)
        self.persist = _switch(params.get("persist", "off"), "persist")
        if self.persist and not self.next.can_write():
            raise FaultSpecError("persist=on needs a writable export")

    async def pread(self, offset: int, length: int) -> Buffer:
        data = await self.next.pread(offset, length)
        if not self.select("read", offset, length):
            return data
        lo, hi = self.overlap(offset, length)
        nbits = min(self.bits, (hi - lo) * 8)
        positions = sorted(self.rng.sample(range((lo - offset) * 8, (hi - offset) * 8), nbits))
        rotten = bytearray(data)
        for pos in positions:
            rotten[pos >> 3] ^= 1 << (pos & 7)
        flipped = [{"offset": offset + (pos >> 3), "bit": pos & 7} for pos in positions]
        self.record("read", offset, length, bits=flipped, persisted=self.persist)
        if self.persist:
            # only the changed bytes, right away: a client write to the rest of the range meanwhile stays
            for byte in sorted({pos >> 3 for pos in positions}):
                await self.next.pwrite(offset + byte, bytes(rotten[byte : byte + 1]), False)
        return rotten


FAULT_FILTERS: tuple[type[StorageFault], ...] = (LostWrite, TornWrite, MisdirectedWrite, BitRot)


def find_faults(top: Layer) -> list[StorageFault]:
    """The fault filters of a layer stack, outermost first."""
    found: list[StorageFault] = []
    layer: Layer | None = top
    while isinstance(layer, Filter):
        if isinstance(layer, StorageFault):
            found.append(layer)
        layer = layer.next
    return found


def attach(top: Layer, dbg: BlkdebugState | None) -> None:
    """Give the stack's new fault filters the export's blkdebug state and ids unique in the export
    (a second lost-write is lost-write#2 unless it names itself); filters already attached keep theirs."""

    stack = find_faults(top)
    taken = {f.fault_id for f in stack if f.attached}
    for f in stack:  # outermost first: the first on the command line gets the plain name
        if f.attached:
            continue
        if f.state and dbg is None:
            raise FilterSpecError(
                f"filter {f.name}: state={f.state} needs a blkdebug layer (--blkdebug or --control)"
            )
        f.dbg = dbg
        if f.fault_id in taken:
            if "id" in f.settings_given:
                raise FilterSpecError(f"filter {f.name}: id {f.fault_id!r} is used twice in one export")
            n = 2
            while f"{f.fault_id}#{n}" in taken:
                n += 1
            f.fault_id = f"{f.fault_id}#{n}"
        taken.add(f.fault_id)
        f.attached = True


def unlink(export: Any, fault: StorageFault) -> None:
    """Take a fault filter out of an export's stack (export.top or the layer above it points past it)."""
    if export.top is fault:
        export.top = fault.next
        return
    layer = export.top
    while isinstance(layer, Filter):
        if layer.next is fault:
            layer.next = fault.next
            return
        layer = layer.next
    raise NBDError(errno.ENOENT, f"fault filter {fault.fault_id!r} is not in this export")


def lookup(top: Layer, ident: str) -> StorageFault:
    for f in find_faults(top):
        if f.fault_id == ident:
            return f
    known = ", ".join(f.fault_id for f in find_faults(top)) or "none"
    raise NBDError(errno.ENOENT, f"no fault filter {ident!r} in this export (fault filters: {known})")
