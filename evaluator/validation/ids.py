"""Where each query or sample id was first given, to report repeats with both places."""

from __future__ import annotations

from collections.abc import Hashable

from evaluator.validation.report import ValidationReport


class FirstSeen:
    """Remembers the file and line of each id's first line, for at most ``limit`` ids: a
    submission naming more ids than any test set has stops there, so memory stays bounded
    even when no labels are given to reject unknown ids."""

    def __init__(self, limit: int, what: str) -> None:
        self.limit, self.what = limit, what
        self.places: dict[Hashable, tuple[str, int]] = {}

    def earlier(self, key: Hashable, name: str, line_no: int,
                report: ValidationReport) -> tuple[str, int] | None:
        """Where ``key`` was given before, or None when this is its first line (which is
        remembered, unless the limit is reached: then the report is stopped)."""
        found = self.places.get(key)
        if found is not None:
            return found
        if len(self.places) >= self.limit:
            report.stop(name, line_no, f"more than {self.limit:,} distinct {self.what}s: no "
                        "test set of this benchmark has that many; stopped reading here")
        else:
            self.places[key] = (name, line_no)
        return None

    def __contains__(self, key: Hashable) -> bool:
        return key in self.places

    def __len__(self) -> int:
        return len(self.places)
