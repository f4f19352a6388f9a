"""Rescoring: every stored entry of a board, scored under one version of its protocol, and
the report of what that version changed.

``leaderboard rescore --board mvtec3d-ad-v2`` validates each stored entry's predictions again,
scores them under v2 and writes ``records/mvtec3d-ad-v2.json`` beside the older records (an
existing record of that version is recomputed and must agree, as ``evaluate`` does; older
versions' records are never opened for writing). It then writes the changes report,
``<submissions>/changes/<board-id>.json``: each entry's rank and primary metric under the
previous version and under this one, the difference and the rank move, and the values of the
metrics the version adds. The report is derived from records alone, so anyone can recompute
it; the site renders it as the version's "what changed" page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from evaluator import progress
from evaluator.board_data import BoardData
from evaluator.entries import METADATA_FILE
from evaluator.evaluation import evaluate_entry
from evaluator.records import RecordConflict, dumps, record_path, store_record
from evaluator.registry import Benchmark, Board
from evaluator.validation.report import ValidationReport
from evaluator.validation.parsing import load_json

CHANGES_DIR = "changes"
CHANGES_SCHEMA = "leaderboard-changes/1"


def changes_path(submissions: Path, board: Board) -> Path:
    return submissions / CHANGES_DIR / f"{board.id}.json"


def entries_of(submissions: Path, benchmark: Benchmark, board: Board) -> list[Path]:
    """The stored entries of the benchmark whose metadata names ``board``'s board."""
    folder = submissions / benchmark.info.name
    if not folder.is_dir():
        return []
    found = []
    for entry in sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()):
        if _board_name(entry) == board.name:
            found.append(entry)
    return found


def _board_name(entry: Path) -> str | None:
    try:
        metadata = load_json((entry / METADATA_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    name = metadata.get("board") if isinstance(metadata, dict) else None
    return name if isinstance(name, str) else None


def needs_rescoring(submissions: Path, benchmark: Benchmark, board: Board) -> bool:
    """Has a board version appeared that stored entries have no record for? True when an
    entry of the board has a record of an older version but none of this one."""
    older = [b for b in benchmark.versions(board.name) if b.version < board.version]
    return any(not record_path(entry, board).is_file()
               and any(record_path(entry, b).is_file() for b in older)
               for entry in entries_of(submissions, benchmark, board))


@dataclass
class RescoreResult:
    written: list[str] = field(default_factory=list)
    verified: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (entry, why)
    labels_missing: bool = False
    report: dict | None = None
    report_path: Path | None = None


def rescore(benchmark: Benchmark, board: Board, data: BoardData,
            submissions: Path, ci_run: str | None = None) -> RescoreResult:
    """Score every stored entry of ``board``'s board under ``board``; write the new records
    and the changes report (see the module's docstring)."""
    result = RescoreResult()
    for entry in entries_of(submissions, benchmark, board):
        name = f"{benchmark.info.name}/{entry.name}"
        progress.status(f"rescoring {name}", force=True)
        report = ValidationReport()
        outcome = evaluate_entry(entry, benchmark, data, report, versions=board)
        if outcome.labels_missing:
            result.labels_missing = True
            return result
        if outcome.evaluation is None:
            result.failed.append((name, "; ".join(report.lines()[:5]) or "not scored"))
            continue
        if ci_run:
            outcome.evaluation["provenance"]["ci_run"] = ci_run
        try:
            stored = store_record(entry, board, outcome.evaluation)
        except RecordConflict as exc:
            result.failed.append((name, str(exc)))
            continue
        (result.written if stored == "written" else result.verified).append(name)
    progress.clear()
    result.report = changes_report(submissions, benchmark, board)
    result.report_path = write_changes_report(submissions, board, result.report)
    return result


def write_changes_report(submissions: Path, board: Board, report: dict) -> Path:
    path = changes_path(submissions, board)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(report), encoding="utf-8")
    return path


def changes_report(submissions: Path, benchmark: Benchmark, board: Board) -> dict:
    """Each stored entry's rank and primary metric under the previous version and ``board``
    (ranked as the boards rank recomputed entries: the default view, ties sharing a rank),
    from their records."""
    from evaluator.site.boards import recomputed_view  # the site's ranking, not its pages

    info = benchmark.info
    previous = benchmark.previous(board)
    now = recomputed_view(submissions, benchmark, board)
    before = recomputed_view(submissions, benchmark, previous) if previous else None
    old_rows = {row.source: row for row in before.rows} if before else {}
    new_rows = {row.source: row for row in now.rows}
    old_metrics = {m.name for m in benchmark.metrics_of(previous)} if previous else set()
    added = [m.name for m in benchmark.metrics_of(board) if m.name not in old_metrics]
    removed = sorted(old_metrics - {m.name for m in benchmark.metrics_of(board)})
    entries = []
    for source in sorted(set(old_rows) | set(new_rows)):
        old, new = old_rows.get(source), new_rows.get(source)
        before_value = _headline(old, info) if old else None
        after_value = _headline(new, info) if new else None
        entries.append({
            "entry": source.rsplit("/", 1)[-1],
            "method": (new or old).method,
            "previous": None if old is None else {"rank": old.rank, "value": before_value},
            "current": None if new is None else {"rank": new.rank, "value": after_value},
            "difference": (None if before_value is None or after_value is None
                           else after_value - before_value),
            "rank_move": (None if old is None or new is None or old.rank is None
                          or new.rank is None else old.rank - new.rank),
            "added_metrics": {m: new.values.get(info.headline_slice, {}).get(m)
                              for m in added} if new else {},
        })
    entries.sort(key=lambda e: (e["current"] is None or e["current"]["rank"] is None,
                                (e["current"] or {}).get("rank") or 0, e["entry"]))
    moved = sum(1 for e in entries if e["rank_move"])
    return {
        "schema": CHANGES_SCHEMA,
        "benchmark": info.name,
        "board": board.id,
        "previous": previous.id if previous else None,
        "changelog": board.changelog,
        "primary_metric": info.primary_metric,
        "headline_slice": info.headline_slice,
        "metrics": {"added": added, "removed": removed},
        "entries": entries,
        "summary": {"entries": len(entries), "rank_moves": moved,
                    "only_previous": sum(1 for e in entries if e["current"] is None),
                    "only_current": sum(1 for e in entries if e["previous"] is None)},
    }


def _headline(row, info) -> float | None:
    return row.values.get(info.headline_slice, {}).get(info.primary_metric)


def format_report(report: dict) -> list[str]:
    """The report as lines for a terminal: one row per entry."""
    metric, previous = report["primary_metric"], report["previous"] or "(none)"
    lines = [f"changes from {previous} to {report['board']} ({metric} on "
             f"{report['headline_slice']}; rank among recomputed entries):"]
    if not report["entries"]:
        return lines + ["  no stored entry"]
    width = max(len(e["entry"]) for e in report["entries"])

    def cell(side: dict | None) -> str:
        if side is None:
            return f"{'-':>4} {'-':>9}"
        rank = "-" if side["rank"] is None else str(side["rank"])
        value = "-" if side["value"] is None else f"{side['value']:.4f}"
        return f"{rank:>4} {value:>9}"

    lines.append(f"  {'entry':<{width}}  {'rank':>4} {'before':>9}  {'rank':>4} {'after':>9}"
                 f"  {'diff':>8}  move")
    for e in report["entries"]:
        diff = "-" if e["difference"] is None else f"{e['difference']:+.4f}"
        move = "-" if e["rank_move"] is None else f"{e['rank_move']:+d}"
        lines.append(f"  {e['entry']:<{width}}  {cell(e['previous'])}  {cell(e['current'])}"
                     f"  {diff:>8}  {move}")
    summary = report["summary"]
    lines.append(f"  {summary['entries']} entries, {summary['rank_moves']} moved rank")
    return lines
