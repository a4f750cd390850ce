"""Error type and source locations of the job-file front end."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """Where something was written: a job file line, or an argv index for the command line."""

    file: str  # path, or "<cmdline>"
    line: int  # 1-based; for the command line, the argv index

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


CMDLINE = "<cmdline>"


class JobFileError(Exception):
    """A job file or command line iolab cannot accept.

    ``str()`` gives ``file:line: option 'x': expected ..., got '...'; did you mean 'y'?``; the parts
    that do not apply are left out.
    """

    def __init__(
        self,
        message: str | None = None,
        *,
        location: Location,
        option: str | None = None,
        expected: str | None = None,
        got: str | None = None,
        suggestion: str | None = None,
    ) -> None:
        self.location = location
        self.option = option
        self.expected = expected
        self.got = got
        self.suggestion = suggestion
        self.message = message
        super().__init__(self._render())

    def _render(self) -> str:
        parts = [str(self.location)]
        if self.option is not None:
            parts.append(f"option '{self.option}'")
        body: list[str] = []
        if self.expected is not None:
            got = "" if self.got is None else self.got
            body.append(f"expected {self.expected}, got '{got}'")
        if self.message:
            body.append(self.message)
        text = ": ".join(parts)
        if body:
            text += ": " + "; ".join(body)
        if self.suggestion:
            text += f"; did you mean '{self.suggestion}'?"
        return text

    def __str__(self) -> str:
        return self._render()
