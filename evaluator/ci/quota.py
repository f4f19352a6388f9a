"""The scoring quota: how often one contributor may have predictions scored on one board.

Scores against hidden labels leak a little about them; many scored variants leak more. So each
contributor gets at most ``limit`` scorings per board in any rolling ``window`` (default 3 per
24 hours), counted over all their pull requests, and a pull request may hold at most
``MAX_ENTRIES_PER_PULL_REQUEST`` entries.

What is charged is a distinct set of predictions (its sha256, as in the evaluation record): each
entry with new predictions costs one scoring, however many share a commit, and scoring the same
predictions again (a re-run, a rebase, a README fix, a force-push that keeps them) is free
because it reveals nothing new.

The ledger needs no storage of its own: the score workflow's PR comment carries a hidden list of
the scorings it made on that PR, and only the workflow's bot can write or edit those comments.
Each scoring names the account by its numeric id as well as its login (a renamed account is the
same contributor) and the run that wrote it (a run removes only its own reservation).
The score job writes its new scorings there as a reservation before it opens any label, then
reads the other pull requests again: a competing scoring that appeared meanwhile, whatever its
time, means another run may have decided without seeing this one, so the board is not scored
(both runs may refuse; a re-run of the workflow then decides alone).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_LIMIT = 3
DEFAULT_WINDOW = dt.timedelta(hours=24)
# More entries in one pull request are refused outright: each costs a scoring anyway, and a
# short list keeps the comment and the run readable.
MAX_ENTRIES_PER_PULL_REQUEST = 5
# The author's pull requests updated within the window whose ledgers are read. More than this
# and the quota cannot be checked cheaply: the run refuses (LEADERBOARD_QUOTA=0 lifts it).
MAX_PULLS_SCANNED = 30
LEDGER_OPEN = "<!-- leaderboard-ledger "
_LEDGER = re.compile(r"<!-- leaderboard-ledger (\{.*?\}) -->")
_TIME = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class Scoring:
    author: str
    board: str
    predictions: str          # sha256 of the scored predictions: the thing charged
    at: dt.datetime
    pull_request: int = 0
    head_sha: str = ""
    run: str = ""             # the score run that wrote it ("<run id>.<attempt>")
    user_id: int = 0          # the account's numeric id: logins can be renamed

    def to_json(self) -> dict:
        return {"author": self.author, "uid": self.user_id, "board": self.board,
                "predictions": self.predictions, "at": self.at.strftime(_TIME),
                "pr": self.pull_request, "head": self.head_sha, "run": self.run}

    @classmethod
    def from_json(cls, data: dict) -> Scoring:
        at = dt.datetime.strptime(data["at"], _TIME).replace(tzinfo=dt.timezone.utc)
        # Ledgers written before predictions were charged name only the commit.
        charged = data.get("predictions") or data["head"]
        return cls(str(data["author"]), str(data["board"]), str(charged), at,
                   int(data.get("pr", 0)), str(data.get("head", "")),
                   str(data.get("run", "")), int(data.get("uid", 0)))

    def same_author(self, other: Scoring) -> bool:
        """The same account: by id where both know it (ledgers written before ids were kept
        know only the login)."""
        if self.user_id and other.user_id:
            return self.user_id == other.user_id
        return self.author == other.author


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
    """The quota on one board for one pull request's new scorings."""

    allowed: bool
    used: int                 # distinct predictions charged in the window before these
    needed: int               # new predictions this pull request wants scored
    limit: int
    next_free: dt.datetime | None = None   # when enough charges leave the window, if ever
    window: dt.timedelta = DEFAULT_WINDOW
    contended: bool = False   # refused because another run reserved at the same time

    @property
    def window_text(self) -> str:
        hours = self.window.total_seconds() / 3600
        return f"{hours:g} hours"


def counts(s: Scoring, who: Scoring, board: str, now: dt.datetime, quota: Quota) -> bool:
    """Does ``s`` count against ``who``'s quota on ``board`` now?"""
    return s.board == board and s.same_author(who) and now - s.at < quota.window


def charges(history: Iterable[Scoring], who: Scoring, board: str, now: dt.datetime,
            quota: Quota) -> list[Scoring]:
    """The distinct predictions charged to ``who``'s account on ``board`` in the window, each
    at its first scoring, oldest first."""
    first: dict[str, Scoring] = {}
    for s in history:
        if counts(s, who, board, now, quota):
            if s.predictions not in first or s.at < first[s.predictions].at:
                first[s.predictions] = s
    return sorted(first.values(), key=lambda s: (s.at, s.predictions))


def new_scorings(history: list[Scoring], wanted: list[Scoring], now: dt.datetime,
                 quota: Quota) -> list[Scoring]:
    """The scorings of ``wanted`` that cost one: predictions not yet charged on their board."""
    new: dict[tuple[str, str], Scoring] = {}
    for s in wanted:
        known = {c.predictions for c in charges(history, s, s.board, now, quota)}
        if s.predictions not in known:
            new.setdefault((s.board, s.predictions), s)
    return list(new.values())


def decide(history: list[Scoring], wanted: list[Scoring], now: dt.datetime,
           quota: Quota) -> dict[str, Decision]:
    """May the scorings in ``wanted`` (one pull request's, by one author) be made now, next to
    ``history`` (every other scoring and reservation known)? Per board, all or none: every
    charge already known counts first, whatever its time, and the board's new predictions
    must all fit in what is left."""
    decisions = {}
    for board in sorted({s.board for s in wanted}):
        mine = [s for s in wanted if s.board == board]
        new = new_scorings(history, mine, now, quota)
        others = charges(history, mine[0], board, now, quota)
        used = len(others)
        if quota.limit <= 0 or used + len(new) <= quota.limit:
            decisions[board] = Decision(True, used, len(new), quota.limit, window=quota.window)
            continue
        over = used + len(new) - quota.limit   # how many charges must leave the window first
        next_free = (others[over - 1].at + quota.window
                     if len(new) <= quota.limit and 0 < over <= len(others) else None)
        decisions[board] = Decision(False, used, len(new), quota.limit, next_free, quota.window)
    return decisions


def contended(before: list[Scoring], after: list[Scoring], reserved: list[Scoring],
              now: dt.datetime, quota: Quota) -> set[str]:
    """The boards of ``reserved`` on which a scoring by the same account appeared between
    two reads of the history: its run may have decided without seeing this reservation, so
    neither order of the two can be trusted."""
    appeared = set(after) - set(before)
    return {r.board for r in reserved
            if any(counts(s, r, r.board, now, quota) for s in appeared)}


def pruned(ledger: list[Scoring], now: dt.datetime, quota: Quota) -> list[Scoring]:
    """The ledger without scorings that no longer count (older than the window; never less
    than the default window, so a maintainer's brief change of the setting loses nothing)."""
    keep = max(quota.window, DEFAULT_WINDOW)
    return [s for s in ledger if now - s.at < keep]


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
    hashes, numbers and times, none of which can hold '-->'."""
    payload = json.dumps({"v": 2, "scorings": [s.to_json() for s in scorings]},
                         separators=(",", ":")).replace(">", "\\u003e")
    return f"{LEDGER_OPEN}{payload} -->"
