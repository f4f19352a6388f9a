"""The scoring quota: how often one contributor may have predictions scored on one board.

Scores against hidden labels leak a little about them; many scored variants leak more. So each
contributor gets at most ``limit`` scorings per board in any rolling ``window`` (default 3 per
24 hours), counted over all their pull requests.

The ledger needs no storage of its own: the score workflow's PR comment carries a hidden list of
the scorings it made on that PR, and only the workflow's bot can write or edit those comments.
Scoring the same commit again (a re-run) is free.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from dataclasses import dataclass

DEFAULT_LIMIT = 3
DEFAULT_WINDOW = dt.timedelta(hours=24)
LEDGER_OPEN = "<!-- leaderboard-ledger "
_LEDGER = re.compile(r"<!-- leaderboard-ledger (\{.*?\}) -->")


@dataclass(frozen=True)
class Scoring:
    author: str
    board: str
    head_sha: str
    at: dt.datetime

    def to_json(self) -> dict:
        return {"author": self.author, "board": self.board, "head": self.head_sha,
                "at": self.at.strftime("%Y-%m-%dT%H:%M:%SZ")}

    @classmethod
    def from_json(cls, data: dict) -> Scoring:
        at = dt.datetime.strptime(data["at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
        return cls(str(data["author"]), str(data["board"]), str(data["head"]), at)


@dataclass(frozen=True)
class Quota:
    limit: int = DEFAULT_LIMIT
    window: dt.timedelta = DEFAULT_WINDOW

    @classmethod
    def from_env(cls) -> Quota:
        """``LEADERBOARD_QUOTA`` (scorings per board and window, 0 = unlimited) and
        ``LEADERBOARD_QUOTA_HOURS`` come from repository variables in the workflow."""
        limit = os.environ.get("LEADERBOARD_QUOTA", "").strip()
        hours = os.environ.get("LEADERBOARD_QUOTA_HOURS", "").strip()
        # A RuntimeError ends the CI step with a one-line usage error (exit status 2).
        try:
            count = int(limit) if limit else DEFAULT_LIMIT
        except ValueError:
            raise RuntimeError(f"LEADERBOARD_QUOTA must be a whole number (0 = unlimited), "
                               f"not {limit!r}") from None
        try:
            window = dt.timedelta(hours=float(hours)) if hours else DEFAULT_WINDOW
        except (ValueError, OverflowError):
            raise RuntimeError(f"LEADERBOARD_QUOTA_HOURS must be a number of hours, "
                               f"not {hours!r}") from None
        return cls(count, window)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    used: int            # scorings counted in the window, before this one
    limit: int
    next_free: dt.datetime | None = None   # when the oldest counted scoring leaves the window
    window: dt.timedelta = DEFAULT_WINDOW

    @property
    def window_text(self) -> str:
        hours = self.window.total_seconds() / 3600
        return f"{hours:g} hours"


def decide(history: list[Scoring], author: str, board: str, head_sha: str,
           now: dt.datetime, quota: Quota) -> Decision:
    """May ``author`` have ``head_sha`` scored on ``board`` now? Each commit counts once."""
    first_scored: dict[str, dt.datetime] = {}
    for s in history:
        if s.author == author and s.board == board and now - s.at < quota.window:
            first_scored[s.head_sha] = min(s.at, first_scored.get(s.head_sha, s.at))
    used = len(first_scored)
    if head_sha in first_scored or quota.limit <= 0 or used < quota.limit:
        return Decision(True, used, quota.limit, window=quota.window)
    return Decision(False, used, quota.limit, min(first_scored.values()) + quota.window,
                    quota.window)


def ledger_from_comment(body: str) -> list[Scoring]:
    """The scorings recorded in one of the bot's comments (bad entries are skipped)."""
    match = _LEDGER.search(body or "")
    if not match:
        return []
    try:
        items = json.loads(match.group(1)).get("scorings", [])
        return [Scoring.from_json(item) for item in items]
    except (ValueError, KeyError, TypeError, AttributeError):
        return []


def ledger_marker(scorings: list[Scoring]) -> str:
    """The hidden HTML comment that carries the ledger. Its fields are board ids, logins,
    commit hashes and times, none of which can hold '-->'."""
    payload = json.dumps({"v": 1, "scorings": [s.to_json() for s in scorings]},
                         separators=(",", ":")).replace(">", "\\u003e")
    return f"{LEDGER_OPEN}{payload} -->"
