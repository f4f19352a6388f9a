"""Evaluation records: one JSON file per entry and board version, in the entry's ``records/``
folder. A record is written once; evaluating the same inputs again must give the same scores
(and, for records that have them, the same bootstrap intervals), so a second evaluation either
confirms the record or is refused as a conflict. ``paired`` intervals depend on which other
entries had records when the record was written, so they are never compared."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

from evaluator.entries import RECORDS_DIR
from evaluator.metrics.bootstrap import same_settings
from evaluator.registry import Board
from evaluator.validation.parsing import load_json

# Scores recomputed on another machine may differ in the last bits of a float sum.
SCORE_TOLERANCE = 1e-12


class RecordConflict(Exception):
    """A stored record disagrees with a new evaluation of the same entry and board."""


def record_path(entry_dir: Path, board: Board) -> Path:
    return entry_dir / RECORDS_DIR / f"{board.id}.json"


def dumps(document: dict) -> str:
    """The canonical text of a record: stable key order, exact floats, no NaN."""
    return json.dumps(document, indent=1, allow_nan=False, ensure_ascii=False) + "\n"


def store_record(entry_dir: Path, board: Board, evaluation: dict) -> str:
    """Write the record unless it exists. Returns 'written' or 'verified' (an existing record
    matches this evaluation); raises RecordConflict if it does not."""
    path = record_path(entry_dir, board)
    if path.exists():
        _verify(path, evaluation)
        return "verified"
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temporary file lives beside the entry, not in it: a process killed mid-write must
    # not leave a stray file that makes the entry fail validation.
    handle, tmp = tempfile.mkstemp(prefix=f".record-{entry_dir.name[:40]}-", suffix=".tmp",
                                   dir=entry_dir.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(dumps(evaluation))
            out.flush()
            os.fsync(out.fileno())
        # link() fails if another process wrote the record meanwhile: never overwrite.
        try:
            os.link(tmp, path)
        except FileExistsError:
            _verify(path, evaluation)
            return "verified"
    finally:
        os.unlink(tmp)
    return "written"


def _verify(path: Path, evaluation: dict) -> None:
    try:
        stored = load_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RecordConflict(f"{path}: the stored record cannot be read ({exc})") from None
    # A hand-edited record may have any shape: refuse it as a conflict, never crash on it.
    old = stored.get("provenance") if isinstance(stored, dict) else None
    if not isinstance(old, dict) or not isinstance(old.get("predictions"), dict):
        raise RecordConflict(f"{path}: the stored record is not an evaluation record (no "
                             "provenance object); merged records are never edited by hand")
    new = evaluation["provenance"]
    if old["predictions"].get("sha256") != new["predictions"]["sha256"]:
        raise RecordConflict(f"{path}: the predictions changed since this record was written; "
                             "merged entries are immutable, submit a new entry instead")
    if old.get("labels_digest") != new["labels_digest"]:
        raise RecordConflict(f"{path}: the labels differ from those this record was scored "
                             "with; a label change needs a new board version")
    if not _same_scores(stored.get("scores"), evaluation["scores"]):
        raise RecordConflict(f"{path}: recomputing gives different scores for the same inputs; "
                             "a scoring change needs a new board version")
    # Records written before intervals existed (leaderboard-evaluation/1) have none to check.
    if "intervals" in stored and not (
            same_settings(stored.get("bootstrap"), evaluation.get("bootstrap"))
            and _same_intervals(stored["intervals"], evaluation.get("intervals"))):
        raise RecordConflict(f"{path}: recomputing gives different bootstrap intervals for the "
                             "same inputs; a change of the resampling needs a new board version")


def _same_table(old, new, same_cell) -> bool:
    """Same slices and metrics in both slice -> metric tables, and ``same_cell(new, old)``
    for every cell. ``old`` comes from a stored record and may have any shape."""
    if not isinstance(old, dict) or not isinstance(new, dict) or old.keys() != new.keys():
        return False
    for slice_name, metrics in new.items():
        stored = old[slice_name]
        if not isinstance(stored, dict) or stored.keys() != metrics.keys():
            return False
        if not all(same_cell(value, stored[metric]) for metric, value in metrics.items()):
            return False
    return True


def _same_number(new, old) -> bool:
    """Equal within SCORE_TOLERANCE; a stored value that is not a number (e.g. a score edited
    into the text "0.5") never is."""
    return (isinstance(old, (int, float)) and not isinstance(old, bool)
            and math.isclose(new, old, rel_tol=0, abs_tol=SCORE_TOLERANCE))


def _same_score(new, old) -> bool:
    return new is None and old is None or new is not None and _same_number(new, old)


def _same_ends(new, old) -> bool:
    return isinstance(old, list) and len(old) == len(new) and all(
        _same_number(a, b) for a, b in zip(new, old))


def _same_scores(old, new) -> bool:
    return _same_table(old, new, _same_score)


def _same_intervals(old, new) -> bool:
    """Same slices and metrics, and interval ends within SCORE_TOLERANCE."""
    return _same_table(old, new, _same_ends)
