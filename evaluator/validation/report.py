"""Collects validation problems so a contributor sees many at once, each with file and line."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

DEFAULT_MAX_ERRORS = 50


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.severity}: {self.message}"


@dataclass
class ValidationReport:
    """Problems found so far. Stops storing after ``max_errors`` but keeps counting, so the
    summary says how many more there were without memory growing with a broken file."""

    max_errors: int = DEFAULT_MAX_ERRORS
    problems: list[Problem] = field(default_factory=list)
    error_count: int = 0
    stopped: bool = False   # a problem after which reading on would be pointless or unbounded

    def error(self, file: str, line: int | None, message: str) -> None:
        self.error_count += 1
        if self.error_count <= self.max_errors:
            self.problems.append(Problem(printable(file), line, message))

    def stop(self, file: str, line: int | None, message: str) -> None:
        """An error that ends reading (readers stop once the report is :attr:`full`)."""
        self.error(file, line, message)
        self.stopped = True

    def warning(self, file: str, line: int | None, message: str) -> None:
        self.problems.append(Problem(printable(file), line, message, severity="warning"))

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    @property
    def full(self) -> bool:
        """True once no more errors will be stored: callers may stop reading early. Never
        before the first error, whatever max_errors says: a report that stopped reading
        without an error would pass what it never read."""
        return self.stopped or self.error_count >= max(1, self.max_errors)

    def lines(self) -> list[str]:
        out = [str(p) for p in self.problems]
        hidden = self.error_count - min(self.error_count, self.max_errors)
        if hidden:
            out.append(f"... and {hidden} more errors (showing the first {self.max_errors}; "
                       "raise --max-errors to see more)")
        elif self.full and not self.stopped:
            # Readers stop at the cap to stay fast on a badly broken file.
            out.append(f"... stopped reading after {self.max_errors} errors; there may be "
                       "more (raise --max-errors to see them)")
        return out


# Characters that would let a name act on a terminal or a log rather than be read: C0/C1
# controls (escape sequences, line breaks that forge log lines or CI commands) and the
# bidirectional overrides that make text display in another order than it is.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(name: str) -> str:
    """A file name (or any text from a submission) as one line any terminal shows as it is:
    undecodable bytes and control characters become backslash escapes."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return _CONTROLS.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
