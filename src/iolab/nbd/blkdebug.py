"""blkdebug: QEMU's rule-based error injection and breakpoints, as a filter at the NBD level.

Semantics follow QEMU's block/blkdebug.c (read for the facts, not copied):

- the state is an integer that starts at 1; the event `none` fires once when the export opens;
- when an event fires, the rules for it whose `state` is 0 or the current state all run, seeing the state
  as it was before the event; `set-state` rules change it afterwards;
- the first `inject-error` rule that runs replaces the set of *active* error rules; further ones join it.
  Active rules stay active (errors are sticky) until another event activates a new set, or a `once` rule
  fires, which deletes it for good;
- each I/O is checked against the active rules in file order: the earliest rule whose sector (if any) lies
  in the request and whose iotype matches decides; `errno = 0` there means no error;
- a breakpoint (`break EVENT TAG`) is a one-shot rule: the request that fires it is suspended before doing
  its I/O, while every other request goes on; `resume TAG` wakes the most recently suspended request with
  the tag (LIFO); `remove_break TAG` deletes the tag's breakpoints and resumes all its suspended requests.

Where iolab differs on purpose: `remove_break` succeeds when it resumed requests even if the breakpoint
itself was already used up (QEMU reports ENOENT then); `immediately` is accepted and makes no difference,
as NBD has no synchronous submission path to fail; every NBD_CMD_FLUSH fires the flush events, where QEMU
skips a flush when nothing was written since the last one.
"""

from __future__ import annotations

import asyncio
import errno as errno_mod
import re
from dataclasses import dataclass, field
from typing import Any

from iolab.nbd.layers import Buffer, Extents, Filter, Layer, NBDError

# Events iolab fires, per NBD command, in this order (QEMU's names where QEMU has the event):
COMMAND_EVENTS: dict[str, tuple[str, ...]] = {
    "read": ("nbd_read", "read_aio"),
    "write": ("nbd_write", "write_aio", "pwritev"),
    "zero": ("nbd_write_zeroes", "pwritev_zero"),
    "trim": ("nbd_trim", "discard"),
    "flush": ("nbd_flush", "flush_to_os", "flush_to_disk"),
    "cache": ("nbd_cache",),
    "extents": ("nbd_block_status",),
}
AFTER_EVENTS: dict[str, str] = {"write": "pwritev_done", "zero": "pwritev_done"}
IOLAB_EVENTS = frozenset(
    {
        "nbd_read",
        "nbd_write",
        "nbd_write_zeroes",
        "nbd_trim",
        "nbd_flush",
        "nbd_cache",
        "nbd_block_status",
        "discard",
    }
)
# QEMU's event names (qapi BlkdebugEvent). Those a raw NBD export has no equivalent for (image-format
# internals) are accepted, so QEMU config files load, and never fire.
QEMU_EVENTS = frozenset(
    [
        "l1_update",
        "l1_grow_alloc_table",
        "l1_grow_write_table",
        "l1_grow_activate_table",
        "l2_load",
        "l2_update",
        "l2_update_compressed",
        "l2_alloc_cow_read",
        "l2_alloc_write",
        "read_aio",
        "read_backing_aio",
        "read_compressed",
        "write_aio",
        "write_compressed",
        "vmstate_load",
        "vmstate_save",
        "cow_read",
        "cow_write",
        "reftable_load",
        "reftable_grow",
        "reftable_update",
        "refblock_load",
        "refblock_update",
        "refblock_update_part",
        "refblock_alloc",
        "refblock_alloc_hookup",
        "refblock_alloc_write",
        "refblock_alloc_write_blocks",
        "refblock_alloc_write_table",
        "refblock_alloc_switch_table",
        "cluster_alloc",
        "cluster_alloc_bytes",
        "cluster_free",
        "flush_to_os",
        "flush_to_disk",
        "pwritev_rmw_head",
        "pwritev_rmw_after_head",
        "pwritev_rmw_tail",
        "pwritev_rmw_after_tail",
        "pwritev",
        "pwritev_zero",
        "pwritev_done",
        "empty_image_prepare",
        "l1_shrink_write_table",
        "l1_shrink_free_l2_clusters",
        "cor_write",
        "cluster_alloc_space",
        "none",
    ]
)
EVENTS = QEMU_EVENTS | IOLAB_EVENTS
IOTYPES = ("read", "write", "write-zeroes", "discard", "flush", "block-status")
DEFAULT_IOTYPES = frozenset({"read", "write", "write-zeroes", "discard", "flush"})
OP_IOTYPE = {
    "read": "read",
    "cache": "read",
    "write": "write",
    "zero": "write-zeroes",
    "trim": "discard",
    "flush": "flush",
    "extents": "block-status",
}
SECTOR = 512


class ConfigError(ValueError):
    pass


@dataclass(eq=False)
class Rule:
    action: str  # "inject-error" | "set-state" | "break"
    event: str
    state: int = 0
    errno: int = errno_mod.EIO
    once: bool = False
    immediately: bool = False
    offset: int = -1  # sector * 512, -1: any
    iotypes: frozenset[str] = DEFAULT_IOTYPES
    new_state: int = 0
    tag: str = ""

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"action": self.action, "event": self.event, "state": self.state}
        if self.action == "inject-error":
            d.update(
                errno=self.errno,
                once=self.once,
                sector=self.offset // SECTOR if self.offset >= 0 else -1,
                iotype=sorted(self.iotypes),
            )
        elif self.action == "set-state":
            d["new_state"] = self.new_state
        else:
            d["tag"] = self.tag
        return d


_BOOL = {
    "on": True,
    "yes": True,
    "true": True,
    "y": True,
    "off": False,
    "no": False,
    "false": False,
    "n": False,
}
_KEYS = {
    "inject-error": {"event", "state", "errno", "sector", "once", "immediately", "iotype"},
    "set-state": {"event", "state", "new_state"},
}
RULE_KEYS: dict[str, frozenset[str]] = {section: frozenset(keys) for section, keys in _KEYS.items()}


def _number(value: str, what: str) -> int:
    try:
        return int(value, 0)
    except ValueError:
        raise ConfigError(f"{what}: {value!r} is not a number") from None


def make_rule(section: str, values: dict[str, str]) -> Rule:
    """One rule from a config section's key/value strings (QEMU's option names and defaults)."""
    if section not in _KEYS:
        raise ConfigError(f"there is no option group {section!r} (inject-error, set-state)")
    unknown = set(values) - _KEYS[section]
    if unknown:
        raise ConfigError(f"[{section}]: invalid parameter {sorted(unknown)[0]!r}")
    event = values.get("event")
    if not event:
        raise ConfigError(f"[{section}]: missing event name for rule")
    if event not in EVENTS:
        raise ConfigError(f"[{section}]: unknown event {event!r}")
    rule = Rule(action=section, event=event, state=_number(values.get("state", "0"), "state"))
    if section == "inject-error":
        rule.errno = _number(values.get("errno", str(errno_mod.EIO)), "errno")
        for key in ("once", "immediately"):
            raw = values.get(key, "off").lower()
            if raw not in _BOOL:
                raise ConfigError(f"{key}: {values[key]!r} is not on/off")
            setattr(rule, key, _BOOL[raw])
        sector = _number(values.get("sector", "-1"), "sector")
        rule.offset = -1 if sector < 0 else sector * SECTOR
        iotype = values.get("iotype")
        if iotype is not None:
            if iotype not in IOTYPES:
                raise ConfigError(f"iotype: {iotype!r} is not one of {', '.join(IOTYPES)}")
            rule.iotypes = frozenset({iotype})
    else:
        rule.new_state = _number(values.get("new_state", "0"), "new_state")
    return rule


_SECTION = re.compile(r'^\[\s*([A-Za-z0-9_-]+)\s*(?:"[^"]*")?\s*\]$')
_ASSIGN = re.compile(r'^([A-Za-z0-9_.-]+)\s*=\s*(?:"([^"]*)"|(\S*))\s*$')


def parse_config(text: str, source: str = "<config>") -> list[Rule]:
    """QEMU's -readconfig format: `[inject-error]` / `[set-state]` sections of `key = "value"` lines."""
    rules: list[Rule] = []
    section: str | None = None
    values: dict[str, str] = {}
    where = ""

    def close() -> None:
        if section is not None:
            try:
                rules.append(make_rule(section, values))
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}") from None

    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _SECTION.match(line)
        if m:
            close()
            section, values, where = m.group(1), {}, f"{source}:{lineno}"
            continue
        m = _ASSIGN.match(line)
        if not m:
            raise ConfigError(f"{source}:{lineno}: parse error: {raw!r}")
        if section is None:
            raise ConfigError(f"{source}:{lineno}: no group defined")
        values[m.group(1)] = m.group(2) if m.group(2) is not None else m.group(3)
    close()
    return rules


@dataclass
class _Suspended:
    tag: str
    event: str
    future: asyncio.Future[None]


@dataclass
class BlkdebugState:
    """Rules, state and suspended requests of one export. Used only from the server's event loop."""

    state: int = 1
    rules: dict[str, list[Rule]] = field(default_factory=dict)  # per event, newest first as in QEMU
    active: list[Rule] = field(default_factory=list)
    suspended: list[_Suspended] = field(default_factory=list)  # newest first: resume is LIFO
    waiters: dict[str, list[asyncio.Future[None]]] = field(default_factory=dict)
    _by_state: dict[tuple[str, int], list[Rule]] = field(default_factory=dict)
    # per operation, in the current state: does any of its events have a rule that would run?
    _hot: dict[str, bool] = field(default_factory=dict)
    _hot_state: int | None = None

    def _changed(self) -> None:
        self._by_state.clear()
        self._hot_state = None

    def add(self, rule: Rule) -> None:
        self.rules.setdefault(rule.event, []).insert(0, rule)
        self._changed()

    def remove(self, rule: Rule) -> None:
        lst = self.rules.get(rule.event)
        if lst is not None and rule in lst:
            lst.remove(rule)
            self._changed()

    def hot(self, op: str, events: tuple[str, ...]) -> bool:
        """Whether firing `events` could do anything now: one dict lookup per request when it cannot,
        however many rules wait for other states or events."""
        if self._hot_state != self.state:
            self._hot = {}
            self._hot_state = self.state
        h = self._hot.get(op)
        if h is None:
            h = self._hot[op] = any(self._applicable(e) for e in events)
        return h

    def _applicable(self, event: str) -> list[Rule]:
        # Rules for other states cost nothing per event: the per-state view is cached until rules change.
        key = (event, self.state)
        rules = self._by_state.get(key)
        if rules is None:
            rules = [r for r in self.rules.get(event, ()) if not r.state or r.state == self.state]
            self._by_state[key] = rules
        return rules

    def fire(self, event: str) -> list[asyncio.Future[None]] | None:
        """Run the event's rules; returns futures to wait on when breakpoints suspended the request."""
        if event not in self.rules:
            return None
        rules = self._applicable(event)
        if not rules:
            return None
        new_state = self.state
        injected = False
        suspends: list[asyncio.Future[None]] = []
        for rule in list(rules):
            if rule.action == "inject-error":
                if not injected:
                    self.active = []
                    injected = True
                self.active.insert(0, rule)
            elif rule.action == "set-state":
                new_state = rule.new_state
            else:
                self.remove(rule)  # breakpoints are one-shot
                fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self.suspended.insert(0, _Suspended(rule.tag, event, fut))
                suspends.append(fut)
                for w in self.waiters.pop(rule.tag, []):
                    if not w.done():
                        w.set_result(None)
        if new_state != self.state:
            self.state = new_state
        return suspends or None

    def check(self, offset: int, length: int, iotype: str) -> None:
        """Raise the error of the earliest matching active rule, if any."""
        for rule in self.active:
            if (
                rule.offset < 0 or (length and offset <= rule.offset < offset + length)
            ) and iotype in rule.iotypes:
                break
        else:
            return
        if not rule.errno:
            return
        if rule.once:
            self.active.remove(rule)
            self.remove(rule)
        raise NBDError(
            rule.errno,
            f"blkdebug: injected errno {rule.errno} ({rule.event})",
            rule.offset if rule.offset >= 0 and length else None,
        )

    # --- breakpoints -------------------------------------------------------------------------
    def add_break(self, event: str, tag: str) -> None:
        if event not in EVENTS:
            raise NBDError(errno_mod.ENOENT, f"unknown event {event!r}")
        self.add(Rule(action="break", event=event, tag=tag))

    def is_suspended(self, tag: str) -> bool:
        return any(s.tag == tag for s in self.suspended)

    def suspended_count(self, tag: str) -> int:
        return sum(1 for s in self.suspended if s.tag == tag)

    async def wait_break(self, tag: str, count: int = 1) -> None:
        """Until `count` requests (qemu-io: 1) are suspended with the tag."""
        while self.suspended_count(tag) < count:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.waiters.setdefault(tag, []).append(fut)
            await fut

    def resume(self, tag: str) -> None:
        for s in self.suspended:
            if s.tag == tag:
                self.suspended.remove(s)
                if not s.future.done():
                    s.future.set_result(None)
                return
        raise NBDError(errno_mod.ENOENT, f"no request suspended with tag {tag!r}")

    def remove_break(self, tag: str) -> int:
        """Delete the tag's breakpoints and resume all its requests; returns how many were resumed."""
        found = False
        for lst in self.rules.values():
            for rule in [r for r in lst if r.action == "break" and r.tag == tag]:
                lst.remove(rule)
                found = True
        self._changed()
        resumed = 0
        while self.is_suspended(tag):
            self.resume(tag)
            resumed += 1
        if not found and not resumed:
            raise NBDError(errno_mod.ENOENT, f"no breakpoint or suspended request with tag {tag!r}")
        return resumed

    def release_all(self) -> None:
        for s in self.suspended:
            if not s.future.done():
                s.future.set_result(None)
        self.suspended.clear()
        for lst in self.rules.values():
            lst[:] = [r for r in lst if r.action != "break"]
        self._changed()

    def describe(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "suspended": [{"tag": s.tag, "event": s.event} for s in self.suspended],
            "rules": [r.describe() for lst in self.rules.values() for r in lst],
            "active": [r.describe() for r in self.active],
        }


class Blkdebug(Filter):
    """Fires the command's events, waits out breakpoints, then checks the active error rules.

    A FUA write (or zero, trim) is the operation followed by a flush, as QEMU emulates FUA on a file:
    it fires the flush events after the data is written, and a flush error fails it.
    """

    name = "blkdebug"
    settings = ("config",)

    def __init__(self, nxt: Layer, rules: list[Rule] | None = None) -> None:
        super().__init__(nxt)
        self.dbg = BlkdebugState()
        for rule in rules or ():
            self.dbg.add(rule)
        self._opened = False

    @classmethod
    def from_spec(cls, nxt: Layer, params: dict[str, str]) -> Blkdebug:
        return cls(nxt, load_config(params["config"]) if "config" in params else [])

    def open(self) -> None:
        """The `none` event, once, when the export opens (needs the running loop for breakpoints)."""
        if not self._opened:
            self._opened = True
            self.dbg.fire("none")

    async def _before(self, op: str, offset: int, length: int) -> None:
        dbg = self.dbg
        if dbg.rules and dbg.hot(op, COMMAND_EVENTS[op]):
            for event in COMMAND_EVENTS[op]:
                suspends = dbg.fire(event)
                if suspends:
                    for fut in suspends:
                        await fut
        if dbg.active:
            dbg.check(offset, length, OP_IOTYPE[op])

    def _after(self, op: str) -> None:
        dbg = self.dbg
        event = AFTER_EVENTS.get(op)
        if event is not None and dbg.rules and dbg.hot(event, (event,)):
            dbg.fire(event)  # a breakpoint here would hold nothing: the I/O is done

    async def pread(self, offset: int, length: int) -> Buffer:
        await self._before("read", offset, length)
        return await self.next.pread(offset, length)

    async def pwrite(self, offset: int, data: Buffer, fua: bool) -> None:
        await self._before("write", offset, len(data))
        await self.next.pwrite(offset, data, False)
        self._after("write")
        if fua:
            await self.flush()

    async def flush(self) -> None:
        await self._before("flush", 0, 0)
        await self.next.flush()

    async def trim(self, offset: int, length: int, fua: bool) -> None:
        await self._before("trim", offset, length)
        await self.next.trim(offset, length, False)
        if fua:
            await self.flush()

    async def zero(self, offset: int, length: int, may_trim: bool, fast: bool, fua: bool) -> None:
        await self._before("zero", offset, length)
        await self.next.zero(offset, length, may_trim, fast, False)
        self._after("zero")
        if fua:
            await self.flush()

    async def cache(self, offset: int, length: int) -> None:
        await self._before("cache", offset, length)
        await self.next.cache(offset, length)

    async def extents(self, offset: int, length: int, req_one: bool) -> Extents:
        await self._before("extents", offset, length)
        return await self.next.extents(offset, length, req_one)


def load_config(path: str) -> list[Rule]:
    with open(path) as f:
        return parse_config(f.read(), path)
