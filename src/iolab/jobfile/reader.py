"""Job-file lines to sections, with fio 3.33's line rules.

* A ';' or '#' anywhere cuts the rest of the line (values included: ``filename=a#b`` is ``a``).
* ``[name]``: the section name is everything after '[' with the LAST character dropped, whatever
  it is; so ``[job`` is ``jo`` and ``[a] b`` is ``a] ``.  Sections whose name starts with
  ``global`` (``[global]``, ``[global-2]``, ``[globalfoo]``) are global sections.
* An option line before any section is an error.
* ``include FILE`` (any line starting with ``include``; the name starts one character later) pulls
  in option lines; fio looks for FILE relative to the current directory first, then next to the
  including file.  Included files may not open sections.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

from iolab.jobfile.convert import strip_blank_end, strip_blank_front
from iolab.jobfile.errors import JobFileError, Location

OPT_LEN_MAX = 8192
SECTION_NAME_MAX = 255
MAX_INCLUDE_DEPTH = 32


@dataclass
class Entry:
    """One option line of a section, as written (comments and outer blanks removed)."""

    text: str
    location: Location


@dataclass
class Section:
    name: str
    is_global: bool
    location: Location
    entries: list[Entry] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def is_global_name(name: str) -> bool:
    return name.startswith("global")


def _c_lines(text: str) -> list[str]:
    """Lines as fio's fgets loop sees them: cut at NUL, long lines split into 8191-char pieces."""
    out: list[str] = []
    for line in text.split("\n"):
        nul = line.find("\x00")
        if nul >= 0:
            line = line[:nul]
        while len(line) > OPT_LEN_MAX - 1:
            out.append(line[: OPT_LEN_MAX - 1])
            line = line[OPT_LEN_MAX - 1 :]
        out.append(line)
    return out


def _is_empty_or_comment(line: str) -> bool:
    for ch in line:
        if ch in ";#":
            return True
        if not (ch.isascii() and (ch.isspace() or ord(ch) < 32 or ch == "\x7f")):
            return False
    return True


def read_file_text(path: str) -> str:
    with open(path, "rb") as f:
        data = f.read()
    return data.decode("utf-8", errors="replace")


def read_job_file(path: str) -> str:
    """A job file's text ("-" is standard input); any failure becomes a JobFileError naming the file."""
    try:
        if path == "-":
            return sys.stdin.read()
        return read_file_text(path)
    except (OSError, ValueError) as e:
        reason = getattr(e, "strerror", None) or str(e)
        raise JobFileError(f"cannot open job file: {reason}", location=Location(path, 0)) from None


class _Reader:
    def __init__(self, sections_filter: list[str] | None) -> None:
        self.sections_filter = sections_filter
        self.sections: list[Section] = []

    def skip(self, name: str) -> bool:
        if not self.sections_filter:
            return False
        if is_global_name(name):
            return False
        return name not in self.sections_filter

    def read_top(self, text: str, filename: str) -> list[Section]:
        inside_skip = False
        current: Section | None = None
        for lineno, line in enumerate(_c_lines(text), start=1):
            loc = Location(filename, lineno)
            p = strip_blank_end(strip_blank_front(line))
            if _is_empty_or_comment(p):
                continue
            if p.startswith("[") and len(p) >= 2:
                raw_name = p[1 : 1 + SECTION_NAME_MAX]
                name = raw_name[:-1]
                warnings: list[str] = []
                if not raw_name.endswith("]"):
                    warnings.append(
                        f"{loc}: section header '{line.strip()}' does not end with ']'; fio drops"
                        f" its last character and names the section '{name}'"
                    )
                elif "]" in name:
                    warnings.append(f"{loc}: text after ']' becomes part of the section name '{name}'")
                elif name != name.strip():
                    warnings.append(f"{loc}: the section name '{name}' keeps its spaces")
                cuts = [i for i in (line.find(";"), line.find("#")) if i >= 0]
                bracket = line.find("]")
                if cuts and (bracket < 0 or bracket > min(cuts)):
                    warnings.append(
                        f"{loc}: ';' and '#' start a comment even inside a section header; the"
                        f" section is named '{name}'"
                    )
                if self.skip(name):
                    inside_skip = True
                    current = None
                    continue
                inside_skip = False
                current = Section(name, is_global_name(name), loc, warnings=warnings)
                self.sections.append(current)
                continue
            if inside_skip:
                continue
            if current is None or p.startswith("["):
                if p.startswith("["):
                    raise JobFileError("expected a section header like '[name]'", location=loc, got=None)
                raise JobFileError(
                    f"'{p}' is outside of any [section]; start a job with '[name]' or '[global]'",
                    location=loc,
                )
            self._option_line(p, loc, current, filename, [os.path.abspath(filename)], depth=0)
        return self.sections

    def _option_line(
        self, p: str, loc: Location, section: Section, filename: str, stack: list[str], depth: int
    ) -> None:
        if p.startswith("include"):
            self._include(p, loc, section, filename, stack, depth)
            return
        section.entries.append(Entry(p, loc))

    def _include(
        self, p: str, loc: Location, section: Section, filename: str, stack: list[str], depth: int
    ) -> None:
        if len(p) <= len("include"):
            raise JobFileError("'include' needs a file name (include FILE)", location=loc)
        name = p[len("include") + 1 :]
        if p[len("include")] not in " \t":
            section.warnings.append(
                f"{loc}: fio reads '{p}' as an include of '{name}' (it skips the character after 'include')"
            )
        candidates = [name]
        slash = filename.rfind("/")
        if slash >= 0:
            candidates.append(filename[: slash + 1] + name)
        path = None
        for c in candidates:
            if os.path.exists(c):
                path = c
                break
        if path is None:
            hint = " (note the extra space after 'include')" if name.startswith((" ", "\t")) else ""
            raise JobFileError(
                f"cannot open include file '{name}'{hint}; looked in "
                + " and ".join(f"'{c}'" for c in candidates),
                location=loc,
            )
        if (
            len(candidates) > 1
            and path == candidates[0]
            and os.path.exists(candidates[1])
            and (os.path.realpath(candidates[0]) != os.path.realpath(candidates[1]))
        ):
            section.warnings.append(
                f"{loc}: include '{name}' found in the current directory; fio prefers it over"
                f" '{candidates[1]}' next to the including file"
            )
        if not os.path.isfile(path):
            raise JobFileError(f"include '{name}' is not a regular file", location=loc)
        real = os.path.abspath(path)
        if real in stack:
            chain = " -> ".join([*stack, real])
            raise JobFileError(f"include loop: {chain}", location=loc)
        if depth >= MAX_INCLUDE_DEPTH:
            raise JobFileError(f"includes nested deeper than {MAX_INCLUDE_DEPTH}", location=loc)
        try:
            text = read_file_text(path)
        except (OSError, ValueError) as e:
            reason = getattr(e, "strerror", None) or str(e)
            raise JobFileError(f"cannot read include file '{path}': {reason}", location=loc) from None
        for lineno, line in enumerate(_c_lines(text), start=1):
            iloc = Location(path, lineno)
            if _is_empty_or_comment(line):
                continue
            q = strip_blank_front(line)
            if q.startswith("["):
                raise JobFileError("included files may not contain [sections]", location=iloc)
            q = strip_blank_end(q)
            if not q:
                continue
            self._option_line(q, iloc, section, path, [*stack, real], depth + 1)


def read_sections(text: str, filename: str, sections_filter: list[str] | None = None) -> list[Section]:
    """Split job-file text into sections (includes resolved)."""
    return _Reader(sections_filter).read_top(text, filename)
