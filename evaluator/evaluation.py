"""The evaluation pipeline shared by the CLI and CI: validate everything, then read labels,
score, and describe the result with its provenance.

Order matters: the task (public lists) is read first, the predictions are validated fully,
and only then are labels used. (A benchmark with ``prefetch_labels`` has them decoded in the
background while its predictions are read, for speed; they, and any error reading them, are
looked at only once the predictions passed.) Nothing label-derived leaves this module except
aggregate scores, per-slice query counts, a digest, and the ends of bootstrap intervals
(per-query and per-image values are resampled here, while the labels are loaded, and never
kept).
"""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaluator import __version__, progress
from evaluator.entries import (
    METADATA_FILE,
    RUN_RECORD_FILE,
    EntryMetadata,
    check_entry_tree,
    read_metadata,
)
from evaluator.metrics.bootstrap import Bootstrap, paired_intervals
from evaluator.records import record_path
from evaluator.registry import (
    Benchmark,
    Board,
    PredictionFile,
    PredictionFormat,
    ScoreSheet,
    get_benchmark,
)
from evaluator.run_records import RunRecordError, read_run_record, smoke_test_reasons
from evaluator.validation.report import ValidationReport
from evaluator.validation.parsing import load_json

# /2 adds "bootstrap", "intervals" and "paired"; /1 records (without them) still verify.
EVALUATION_SCHEMA = "leaderboard-evaluation/2"


@dataclass
class CheckedPredictions:
    """Predictions that passed (or failed) validation; ``arrays`` is None unless they passed
    and a task was available to check them against."""

    fmt: PredictionFormat | None
    files: list[PredictionFile]
    arrays: Any
    metadata: EntryMetadata | None = None
    labels: Future | None = None  # labels being read meanwhile (see prefetch_labels)


class EntryError(Exception):
    """An entry folder cannot be attributed to a benchmark."""


def benchmark_of_entry(entry_dir: Path, explicit: str | None = None) -> Benchmark:
    """An entry's benchmark is its parent folder: submissions/<benchmark>/<entry-id>. An entry
    elsewhere (a baseline's output folder, say) is known by the board its metadata names."""
    for name in (explicit, entry_dir.resolve().parent.name, _board_in_metadata(entry_dir)):
        if not name:
            continue
        try:
            return get_benchmark(name)
        except KeyError:
            if name == explicit:
                break
    raise EntryError(f"{entry_dir}: cannot tell the benchmark; entries live in "
                         "submissions/<benchmark>/<entry-id>/ (or pass --benchmark)")


def _board_in_metadata(entry_dir: Path) -> str | None:
    """The "board" of an entry's metadata.json, read as plain data (full checks come later)."""
    path = entry_dir / METADATA_FILE
    try:
        if path.is_symlink() or path.stat().st_size > 64 * 1024:
            return None
        data = load_json(path.read_bytes().decode("utf-8-sig"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    board = data.get("board") if isinstance(data, dict) else None
    return board if isinstance(board, str) else None


def check_predictions(benchmark: Benchmark, path: Path, task: Any,
                      report: ValidationReport, labels_for: tuple | None = None
                      ) -> CheckedPredictions:
    """Validate predictions at ``path`` (a file or folder in one of the benchmark's formats).

    ``labels_for``: (board, labels directory) of an evaluation that follows; a benchmark
    with ``prefetch_labels`` starts reading them now (checked.labels)."""
    if path.is_symlink():
        report.error(path.name, None, "symbolic links are not accepted")
        return CheckedPredictions(None, [], None)
    located = benchmark.locate_predictions(path)
    if located is None:
        formats = "; ".join(f"{f.name}: {f.description}" for f in benchmark.info.formats)
        report.error(path.name, None, f"no {benchmark.info.name} predictions found here. "
                     f"Accepted formats: {formats}")
        return CheckedPredictions(None, [], None)
    fmt, files = located
    for file in files:
        if file.path.is_symlink():
            report.error(file.name, None, "symbolic links are not accepted")
    if not report.ok:
        return CheckedPredictions(fmt, files, None)
    labels = None
    if labels_for and task is not None and benchmark.prefetch_labels:
        labels = _in_background(benchmark.load_labels, *labels_for, task)
    arrays = benchmark.read_predictions(fmt, files, task, report)
    progress.clear()
    if not report.ok:
        return CheckedPredictions(fmt, files, None)
    return CheckedPredictions(fmt, files, arrays, labels=labels)


def _in_background(function, *args) -> Future:
    """function(*args) in a daemon thread (an invalid entry's exit does not wait for it)."""
    future: Future = Future()

    def run() -> None:
        try:
            future.set_result(function(*args))
        except BaseException as exc:  # kept for whoever asks for the result
            future.set_exception(exc)

    threading.Thread(target=run, name="labels", daemon=True).start()
    return future


def check_entry(entry_dir: Path, benchmark: Benchmark, task_for_board,
                report: ValidationReport, submission: bool = False,
                labels_dir_for=None) -> tuple[Board | None, CheckedPredictions]:
    """Validate an entry folder: metadata, folder rules and predictions.

    ``task_for_board(board)`` returns the board's task, or None when no label source is
    available (then predictions get the checks that need no task). ``submission``: the entry
    is being submitted (the pull-request pipeline), so a smoke-test run is an error, not a
    warning."""
    metadata = read_metadata(entry_dir, benchmark.entry_metadata, report)
    board = benchmark.board(metadata.board) if metadata else None
    located = benchmark.locate_predictions(entry_dir)
    allowed = {f.name for f in located[1]} if located else set()
    check_entry_tree(entry_dir, allowed, report)
    _check_run_record(entry_dir, report, smoke_test_is_error=submission)
    if located is None:
        formats = ", ".join(f.name for f in benchmark.info.formats)
        report.error(entry_dir.name, None, f"no predictions found (accepted formats: {formats})")
        return board, CheckedPredictions(None, [], None, metadata)
    if not report.ok:
        return board, CheckedPredictions(located[0], located[1], None, metadata)
    task = task_for_board(board) if board else None
    directory = labels_dir_for(board) if labels_dir_for and task is not None else None
    checked = check_predictions(benchmark, entry_dir, task, report,
                                labels_for=(board, directory) if directory else None)
    checked.metadata = metadata
    return board, checked


def _check_run_record(entry_dir: Path, report: ValidationReport,
                      smoke_test_is_error: bool) -> None:
    """A baseline's run.json must parse; a smoke-test run is flagged (an error where the
    entry is being submitted)."""
    try:
        record = read_run_record(entry_dir)
    except RunRecordError as exc:
        report.error(RUN_RECORD_FILE, None, str(exc))
        return
    reasons = smoke_test_reasons(record) if record else []
    if reasons:
        message = (f"a smoke-test run ({'; '.join(reasons)}): fine for trying the pipeline, "
                   "but never a leaderboard entry")
        (report.error if smoke_test_is_error else report.warning)(RUN_RECORD_FILE, None, message)


@dataclass
class EntryEvaluation:
    """The outcome of :func:`evaluate_entry`: ``evaluation`` is None unless the entry passed
    validation and its board's labels were available (``labels_missing`` tells which).
    ``board`` is the version the entry's metadata names (its newest); ``scored`` holds every
    version scored, oldest first, with its evaluation."""

    board: Board | None
    checked: CheckedPredictions
    evaluation: dict | None = None
    labels_missing: bool = False
    scored: list[tuple[Board, dict]] = field(default_factory=list)


def in_benchmark_folder(entry_dir: Path, benchmark: Benchmark) -> bool:
    """Does the entry live in a folder named after its benchmark (submissions/<benchmark>/)?
    Only such entries get records: the site and CI find records there and nowhere else."""
    return entry_dir.resolve().parent.name == benchmark.info.name


def evaluate_entry(entry_dir: Path, benchmark: Benchmark, data: Any,
                   report: ValidationReport, submission: bool = False,
                   versions: str | Board | list[Board] = "current") -> EntryEvaluation:
    """Validate an entry and, if it passed and labels are at hand, score it. ``data`` is a
    :class:`evaluator.board_data.BoardData` (it opens label sources once per run).

    ``versions``: "current" scores the newest version of the board the metadata names,
    "all" every version of it (validated once; labels read once per label folder), a Board
    (or a list of them) those versions alone (each must be a version of the entry's
    board)."""
    board, checked = check_entry(entry_dir, benchmark, lambda b: data.task(benchmark, b), report,
                                 submission=submission,
                                 labels_dir_for=lambda b: data.directory(benchmark, b))
    if board is None or not report.ok:
        return EntryEvaluation(board, checked)
    if isinstance(versions, (Board, list)):
        chosen = [versions] if isinstance(versions, Board) else versions
        for version in chosen:
            if version.name != board.name:
                report.error(METADATA_FILE, None, f"the entry is for board {board.name!r}, "
                             f"not {version.id!r}")
                return EntryEvaluation(board, checked)
    else:
        chosen = benchmark.versions(board.name) if versions == "all" else [board]
    directory = data.directory(benchmark, board)
    if directory is None or checked.arrays is None:
        return EntryEvaluation(board, checked, labels_missing=directory is None)
    key = f"{benchmark.info.name}/{entry_dir.name}"
    loaded: dict[Path, Any] = {}  # labels by folder: versions sharing labels read them once
    outcome = EntryEvaluation(board, checked)
    for version in chosen:
        folder = data.directory(benchmark, version)
        if folder not in loaded and folder == directory and checked.labels is not None:
            loaded[folder] = checked.labels.result()  # read while the predictions were
        checked.labels = None
        # Paired intervals go into a new record only (an existing one is verified, never
        # rewritten), and not into pull-request scoring, whose comment does not show them.
        pairing = None if submission or record_path(entry_dir, version).exists() \
            else recorded_siblings(entry_dir, version)
        task = data.task(benchmark, version)
        if folder not in loaded:
            progress.status("reading labels", force=True)
            loaded[folder] = benchmark.load_labels(version, folder, task)
        evaluation = score_predictions(benchmark, version, task, checked, folder,
                                       entry_key=key, siblings=pairing,
                                       labels=loaded[folder])
        outcome.scored.append((version, evaluation))
        if outcome.evaluation is None or version == board:  # the current one, if scored
            outcome.board, outcome.evaluation = version, evaluation
    return outcome


def recorded_siblings(entry_dir: Path, board: Board) -> list[Path]:
    """The other entries in the entry's benchmark folder that have a record for ``board``."""
    here = entry_dir.resolve()
    return [p for p in sorted(entry_dir.parent.iterdir())
            if p.is_dir() and not p.is_symlink() and p.resolve() != here
            and record_path(p, board).is_file()]


def predictions_provenance(fmt: PredictionFormat, files: list[PredictionFile]) -> dict:
    """sha256 of each prediction file, and one sha256 for the set: of the file itself when
    there is one, else of the manifest lines '<sha256>  <name>' in name order (sha256sum's
    format), so anyone can recompute it with standard tools."""
    listed = []
    for file in sorted(files, key=lambda f: f.name):
        digest = hashlib.sha256()
        with open(file.path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        listed.append({"name": file.name, "sha256": digest.hexdigest(),
                       "bytes": file.path.stat().st_size})
    if len(listed) == 1:
        overall = listed[0]["sha256"]
    else:
        manifest = "".join(f"{f['sha256']}  {f['name']}\n" for f in listed)
        overall = hashlib.sha256(manifest.encode()).hexdigest()
    return {"format": fmt.name, "sha256": overall, "files": listed}


def score_predictions(benchmark: Benchmark, board: Board, task: Any, checked: CheckedPredictions,
                      labels_dir: Path, entry_key: str | None = None,
                      siblings: list[Path] | None = None, labels: Any = None) -> dict:
    """Read labels (unless ``labels`` are given), score, and return the evaluation document
    (what records and --json hold).

    ``siblings``: entries of the same board whose predictions this one is compared with,
    paired, while the labels are loaded (None: no ``paired`` block)."""
    if labels is None:
        progress.status("reading labels", force=True)
        labels = checked.labels.result() if checked.labels is not None \
            else benchmark.load_labels(board, labels_dir, task)
    checked.labels = None  # not kept with the predictions
    progress.status("scoring, with bootstrap intervals", force=True)
    sheet, resampled = benchmark.score_with_bootstrap(board, task, checked.arrays, labels)
    paired = None
    if resampled is not None and siblings is not None:
        paired = {}
        for sibling in siblings:
            progress.status(f"paired intervals with {sibling.name}", force=True)
            other = _sibling_bootstrap(benchmark, board, task, labels, sibling)
            if other is not None:
                paired[sibling.name] = paired_intervals(resampled, other)
    progress.clear()
    return evaluation_document(benchmark, board, sheet,
                               predictions_provenance(checked.fmt, checked.files),
                               benchmark.labels_digest(labels), entry_key,
                               resampled=resampled, paired=paired)


def _sibling_bootstrap(benchmark: Benchmark, board: Board, task: Any, labels: Any,
                       entry_dir: Path) -> Bootstrap | None:
    """Replicates of a recorded entry, when its predictions are still the ones its record
    scored against these labels and still pass validation; None (no pair) otherwise."""
    try:
        record = load_json(record_path(entry_dir, board).read_text(encoding="utf-8"))
        provenance = record["provenance"]
        if provenance["labels_digest"] != benchmark.labels_digest(labels):
            return None
        located = benchmark.locate_predictions(entry_dir)
        if located is None or any(f.path.is_symlink() for f in located[1]):
            return None
        if (predictions_provenance(*located)["sha256"]
                != provenance["predictions"]["sha256"]):
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    checked = check_predictions(benchmark, entry_dir, task, ValidationReport())
    if checked.arrays is None:
        return None
    return benchmark.bootstrap(board, task, checked.arrays, labels)


def evaluation_document(benchmark: Benchmark, board: Board, sheet: ScoreSheet,
                        predictions: dict, labels_digest: str,
                        entry_key: str | None = None, resampled: Bootstrap | None = None,
                        paired: dict | None = None) -> dict:
    uncertainty = {}
    if resampled is not None:
        uncertainty = {"bootstrap": resampled.settings, "intervals": resampled.intervals()}
        if paired is not None:
            uncertainty["paired"] = paired
    return {
        "schema": EVALUATION_SCHEMA,
        "benchmark": benchmark.info.name,
        "board": board.id,
        "entry": entry_key,
        "primary_metric": benchmark.info.primary_metric,
        "scores": sheet.scores,
        "counts": sheet.counts,
        "curves": sheet.curves,
        **uncertainty,
        "provenance": {
            "evaluator_version": __version__,
            "board": board.id,
            "protocol_version": board.version,
            "predictions": predictions,
            "labels_digest": labels_digest,
        },
    }
