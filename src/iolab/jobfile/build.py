"""Sections to JobDefs: inheritance, substitution and option application as fio 3.33 does it.

* Global sections change the defaults for the jobs that FOLLOW them in the same file; each job
  file starts again from fio's defaults (only the first file also sees global options given on
  the command line).
* The first job of every job file after the first gets an implicit ``stonewall``.
* ``${VAR}`` is replaced by the environment variable (empty if unset) anywhere in the line;
  ``$VAR`` without braces is left alone.  ``$pagesize``, ``$mb_memory`` and ``$ncpus`` are replaced
  by system values, after which a value with + - * / is computed (fio hands it to ``bc``).
* Within a section fio applies ``kb_base``/``unit_base``/``lockfile``/``cpus_allowed_policy``
  first and ``filename``/``filename_format`` last, the rest in written order.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from iolab.jobfile.convert import Applied, BadValue, apply_value, strip_blank_end
from iolab.jobfile.errors import JobFileError, Location
from iolab.jobfile.model import JobDef, RawSetting
from iolab.jobfile.reader import Entry, Section
from iolab.options import (
    FIO_FLAGS,
    OPTIONS,
    SUPPORTED_ENGINES,
    Kind,
    Option,
    default_values,
    lookup,
    suggest,
    unimplemented,
)

_KEYWORDS = ("$pagesize", "$mb_memory", "$ncpus")
_BARE_VAR = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def _system_keywords() -> dict[str, str]:
    try:
        page = int(os.sysconf("SC_PAGE_SIZE"))
        pages = int(os.sysconf("SC_PHYS_PAGES"))
        ncpu = int(os.sysconf("SC_NPROCESSORS_CONF"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        page, pages, ncpu = 4096, 0, os.cpu_count() or 1
    return {
        "$pagesize": str(page),
        "$mb_memory": str(page * pages // (1024 * 1024)),
        "$ncpus": str(ncpu),
    }


def substitute_env(line: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """fio's ``${VAR}`` expansion (unset or empty names give '')."""
    out: list[str] = []
    notes: list[str] = []
    i = 0
    n = len(line)
    while i < n:
        if line.startswith("${", i):
            close = line.find("}", i)
            if close > i + 1:
                var = line[i + 2 : close]
                val = env.get(var)
                if val is None:
                    notes.append(f"environment variable '{var}' is not set; fio substitutes an empty string")
                    val = ""
                out.append(val)
                i = close + 1
                continue
        out.append(line[i])
        i += 1
    text = "".join(out)
    for m in _BARE_VAR.finditer(line):
        word = m.group(0)
        if any(word.startswith(k) for k in _KEYWORDS):
            continue
        if m.start() > 0 and line[m.start() - 1 : m.start() + 1] == "${":
            continue
        notes.append(f"fio expands only ${{{m.group(1)}}}, so '{word}' stays as written")
    return text, notes


class _BcError(Exception):
    pass


def _bc_eval(expr: str) -> int:
    """Integer arithmetic the way ``bc`` (scale 0) does it: + - * / % ^ and parentheses."""
    tokens: list[str] = re.findall(r"\d+|[-+*/%^()]|\S", expr)
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise _BcError("unexpected end")
        pos += 1
        return tokens[pos - 1]

    def atom() -> int:
        t = take()
        if t == "(":
            v = add()
            if take() != ")":
                raise _BcError("missing ')'")
            return v
        if t.isdigit():
            return int(t)
        raise _BcError(f"unexpected '{t}'")

    def unary() -> int:
        if peek() == "-":
            take()
            return -unary()
        return atom()

    def power() -> int:
        base = unary()
        if peek() == "^":
            take()
            exp = power()
            if exp < 0:
                if base == 0:
                    raise _BcError("divide by zero")
                if abs(base) == 1:
                    return base if exp % 2 else 1
                return 0
            if exp > 4096 or abs(base) > (1 << 64):
                raise _BcError("number too large")
            return int(base**exp)
        return base

    def mul() -> int:
        v = power()
        while peek() in ("*", "/", "%"):
            op = take()
            r = power()
            if op == "*":
                v *= r
            else:
                if r == 0:
                    raise _BcError("divide by zero")
                q = abs(v) // abs(r)
                q = q if (v >= 0) == (r >= 0) else -q
                v = q if op == "/" else v - q * r
        return v

    def add() -> int:
        v = mul()
        while peek() in ("+", "-"):
            op = take()
            r = mul()
            v = v + r if op == "+" else v - r
        return v

    result = add()
    if pos != len(tokens):
        raise _BcError(f"unexpected '{tokens[pos]}'")
    return result


def replace_keywords(line: str, keywords: Mapping[str, str]) -> tuple[str, bool]:
    """fio's reserved words; returns (text, changed).  Math is done after a replacement."""
    changed = False
    for word in _KEYWORDS:
        while word in line:
            line = line.replace(word, keywords[word], 1)
            changed = True
    return line, changed


def bc_calc(line: str) -> str | None:
    """fio's ``bc_calc``: None when bc would fail."""
    if not any(c in line for c in "+-*/") or "'" in line:
        return line
    eq = line.find("=")
    if eq < 0:
        return line
    value = line[eq + 1 :]
    if len(line) >= 128 or len(value) > 100:
        return line
    try:
        result = _bc_eval(value)
    except _BcError:
        return None
    return line[: eq + 1] + str(result)


# ---------------------------------------------------------------------------------------------


@dataclass
class _Target:
    """The option state of a job (or of the global defaults) while a file is parsed."""

    values: dict[str, Any]
    set_at: dict[str, Location] = field(default_factory=dict)
    raw: list[RawSetting] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def clone(self) -> _Target:
        return _Target(
            copy.deepcopy(self.values),
            dict(self.set_at),
            [RawSetting(r.name, r.value, r.location, True) for r in self.raw],
            list(self.warnings),
        )


def fresh_target() -> _Target:
    return _Target(default_values())


@dataclass
class _Pending:
    entry: Entry
    order: int
    prio: int
    name: str
    value: str | None
    substituted: str


def _split_entry(text: str) -> tuple[str, str | None]:
    eq = text.find("=")
    if eq < 0:
        return strip_blank_end(text), None
    return strip_blank_end(text[:eq]), text[eq + 1 :]


def _unknown_option(name: str, loc: Location, value: str | None) -> JobFileError:
    bare = name.lstrip("-")
    if bare in FIO_FLAGS:
        return JobFileError(
            f"'{bare}' is a fio command-line flag (--{bare}), not a job option", location=loc, option=name
        )
    hint = suggest(name, [n for o in OPTIONS.values() if not o.engines for n in o.names])
    return JobFileError("unknown option", location=loc, option=name, suggestion=hint)


def error_from(e: BadValue, loc: Location, name: str, value: str | None) -> JobFileError:
    return JobFileError(
        e.message,
        location=loc,
        option=name,
        expected=e.expected,
        got=value if e.expected else None,
        suggestion=e.suggestion,
    )


def apply_entries(
    target: _Target,
    entries: Sequence[Entry],
    *,
    env: Mapping[str, str],
    keywords: Mapping[str, str],
    from_global: bool,
    any_engine: bool = False,
) -> list[tuple[str, str | None]]:
    """Apply a section's option lines to ``target``; returns the showcmd dump of this section.

    ``any_engine``: accept ioengines and engine options iolab cannot run (for showcmd).

    All lines are tried (as fio does); the error on the earliest line is raised.
    """
    pending: list[_Pending] = []
    errors: list[tuple[int, JobFileError]] = []
    for order, entry in enumerate(entries):
        raw_name, _ = _split_entry(entry.text)
        known = lookup(raw_name)
        prio = known.prio if known else 0
        text, notes = substitute_env(entry.text, env)
        text, changed = replace_keywords(text, keywords)
        if changed:
            calc = bc_calc(text)
            if calc is None:
                errors.append(
                    (
                        order,
                        JobFileError(
                            f"'{text}' needs arithmetic that fio hands to bc, and bc cannot compute it",
                            location=entry.location,
                        ),
                    )
                )
                continue
            text = calc
        target.warnings.extend(f"{entry.location}: {n}" for n in notes)
        name, value = _split_entry(text)
        pending.append(_Pending(entry, order, prio, name, value, text))
    pending.sort(key=lambda p: -p.prio)  # stable, like fio's qsort of a few entries
    dump: list[tuple[str, str | None]] = []
    engine_later: list[_Pending] = []
    for p in pending:
        loc = p.entry.location
        opt = lookup(p.name)
        if opt is None:
            errors.append((p.order, _unknown_option(p.name, loc, p.value)))
            continue
        if opt.engines:
            if any_engine or opt.supported:  # fio parses engine options after all the others
                engine_later.append(p)
                continue
            errors.append((p.order, engine_option_error(opt, p.name, loc)))
            continue
        try:
            applied = apply_value(opt, p.value, target.values, any_engine=any_engine)
        except BadValue as e:
            errors.append((p.order, error_from(e, loc, p.name, p.value)))
            continue
        record(target, opt, p.value, loc, applied, from_global)
        dump.append((opt.name, p.value))
    for p in engine_later:
        opt = lookup(p.name)
        if opt is not None and opt.supported and not any_engine:
            loc = p.entry.location
            wrong = engine_mismatch(opt, p.name, loc, target.values)
            if wrong is not None:
                errors.append((p.order, wrong))
                continue
            try:
                applied = apply_value(opt, p.value, target.values)
            except BadValue as e:
                errors.append((p.order, error_from(e, loc, p.name, p.value)))
                continue
            record(target, opt, p.value, loc, applied, from_global)
            dump.append((opt.name, p.value))
            continue
        target.raw.append(RawSetting(p.name, p.value, p.entry.location, from_global))
        dump.append((p.name, p.value))
    if errors:
        errors.sort(key=lambda e: e[0])
        raise errors[0][1]
    return dump


def engine_mismatch(opt: Option, name: str, loc: Location, values: Mapping[str, Any]) -> JobFileError | None:
    """An implemented engine option given for a job whose ioengine is not one of its engines."""
    engine = str(values.get("ioengine") or "psync")
    if engine in opt.engines:
        return None
    owners = "/".join(e for e in opt.engines if e in SUPPORTED_ENGINES)
    return JobFileError(
        f"this option belongs to the {owners} ioengine, but the job uses ioengine={engine}"
        f" (set ioengine={owners.split('/')[0]} first)",
        location=loc,
        option=name,
    )


def engine_option_error(opt: Option, name: str, loc: Location) -> JobFileError:
    owners = "/".join(opt.engines)
    plural = "s" if len(opt.engines) > 1 else ""
    return JobFileError(
        f"this option belongs to the {owners} ioengine{plural}, which iolab does not support",
        location=loc,
        option=name,
    )


def record(
    target: _Target,
    opt: Option,
    value: str | None,
    loc: Location,
    applied: Applied,
    from_global: bool,
) -> None:
    """Store an applied option in the target: values, set_at, raw text, warnings."""
    target.values.update(applied.updates)
    for key in applied.updates:
        if key in OPTIONS:
            target.set_at[key] = loc
    target.set_at[opt.name] = loc
    target.raw.append(RawSetting(opt.name, value, loc, from_global))
    target.warnings.extend(w if w.startswith(str(loc)) else f"{loc}: {w}" for w in applied.warnings)
    if opt.profile:
        target.warnings.append(f"{loc}: {opt.name}: {opt.note}")


def apply_entries_cmdline(
    target: _Target, opt: Option, value: str | None, loc: Location, *, from_global: bool
) -> None:
    """Apply one command-line option (fio does no substitution or reordering there)."""
    if opt.engines:
        if not opt.supported:
            raise engine_option_error(opt, opt.name, loc)
        wrong = engine_mismatch(opt, opt.name, loc, target.values)
        if wrong is not None:
            raise wrong
    try:
        applied = apply_value(opt, value, target.values)
    except BadValue as e:
        raise error_from(e, loc, opt.name, value) from None
    record(target, opt, value, loc, applied, from_global)


def check_unimplemented(target: _Target) -> None:
    """Refuse the options iolab does not implement whose final value would change the run; warn about
    those that change neither the I/O nor the numbers.  Decided on final values, so an option set in
    [global] and set back to what iolab does in the job section is fine."""
    for name, loc in list(target.set_at.items()):
        opt = OPTIONS.get(name)
        if opt is None or opt.engines:
            continue
        verdict = unimplemented(opt, target.values)
        if verdict is None:
            continue
        kind, why = verdict
        if kind == "error":
            raise JobFileError(why, location=loc, option=name)
        target.warnings.append(f"{loc}: {name}: {why}")


def finalize(target: _Target, name: str, index: int, source: Location, *, check: bool = True) -> JobDef:
    """The JobDef of a finished section. ``check``: refuse unimplemented options (off for showcmd)."""
    if check:
        check_unimplemented(target)
    values = target.values
    # A bsrange side fio never set falls back to the block size of that direction.
    br = values.get("bsrange")
    if isinstance(br, tuple):
        bs = values.get("bs") or (4096, 4096)
        values["bsrange"] = tuple(side if side is not None else (bs[d], bs[d]) for d, side in enumerate(br))
    for key in ("bs", "ba", "rate", "rate_min", "rate_iops", "rate_iops_min", "percentage_random"):
        v = values.get(key)
        if isinstance(v, tuple) and OPTIONS[key].kind in (Kind.BS_PAIR, Kind.INT_PAIR):
            values[key] = (v[0], v[1])
    if values.get("time_based") and not values.get("runtime"):
        # fio's option fixup turns time_based off when no runtime bounds it (a warning, fatal with
        # --warnings-fatal): the job then ends when its I/O is done instead of running forever
        values["time_based"] = False
        where = target.set_at.get("time_based", source)
        target.warnings.append(f"{where}: time_based=1 needs a runtime=; like fio, it is turned off")
    warnings = list(dict.fromkeys(target.warnings))
    return JobDef(
        name=name,
        index=index,
        values=values,
        set_at=target.set_at,
        source=source,
        warnings=warnings,
        raw=target.raw,
    )


@dataclass
class FileResult:
    """One job file, parsed: its jobs and what ``fio --showcmd`` prints for it."""

    path: str
    jobs: list[JobDef]
    showcmd: str


def build_file(
    sections: Sequence[Section],
    path: str,
    *,
    start: _Target,
    first_index: int,
    stonewall_first: bool,
    env: Mapping[str, str],
    any_engine: bool = False,
    check: bool = True,
) -> FileResult:
    keywords = _system_keywords()
    state = start
    jobs: list[JobDef] = []
    out: list[str] = []
    pending_stonewall = stonewall_first
    for sec in sections:
        if not out:
            out.append("fio ")
        if sec.is_global:
            state.warnings.extend(sec.warnings)
            apply_entries(
                state, sec.entries, env=env, keywords=keywords, from_global=True, any_engine=any_engine
            )
            out.extend(_dump([(r.name, r.value) for r in state.raw]))
            continue
        out.append(f"--name={sec.name} ")
        job = state.clone()
        job.values["name"] = sec.name
        job.set_at.pop("name", None)
        job.warnings.extend(sec.warnings)
        if pending_stonewall:
            job.values["stonewall"] = True
            pending_stonewall = False
        own = _Target(job.values, job.set_at, [], job.warnings)
        dump = apply_entries(
            own, sec.entries, env=env, keywords=keywords, from_global=False, any_engine=any_engine
        )
        out.extend(_dump(dump))
        job.raw.extend(own.raw)
        jobs.append(
            finalize(job, str(job.values["name"]), first_index + len(jobs), sec.location, check=check)
        )
    out.append("\n")
    return FileResult(path, jobs, "".join(out))


def _dump(pairs: Sequence[tuple[str, str | None]]) -> list[str]:
    out: list[str] = []
    for name, value in pairs:
        if value is None:
            out.append(f"--{name} ")
        elif name == "description":
            out.append(f'--{name}="{value}" ')
        else:
            out.append(f"--{name}={value} ")
    return out
