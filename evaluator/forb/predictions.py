"""Reading FORB predictions in either accepted layout into one set of arrays.

- ``forb-retrieval-results``: FORB's own ``retrieval_results/<type>_<all|oods>.ndjson`` files,
  accepted unchanged (``.ndjson.gz`` too). Candidates are integer line numbers of the database
  lists, queries are per-type ``query_id``.
- ``forb-predictions``: one ``predictions.ndjson`` (or ``.ndjson.gz``) naming queries and
  candidates by image path, both databases in one file. Recommended: it does not depend on
  per-type id offsets, which differ between FORB and the FORB subset.

Both stream line by line; memory grows with queries x candidates, not with the file size.
"""

from __future__ import annotations

import itertools
from array import array
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluator.forb.models import ForbPredictionLine, ForbResultLine
from evaluator.forb.task import DATABASE_FILES, DATABASES, OBJECT_TYPES, ForbTask
from evaluator.registry import PredictionFile, PredictionFormat
from evaluator.validation.ids import FirstSeen
from evaluator.validation.limits import DEFAULT_LIMITS, Limits
from evaluator.validation.lines import iter_lines
from evaluator.validation.parsing import parse_json_line
from evaluator.validation.report import ValidationReport

RESULTS_DIR = "retrieval_results"
CANONICAL_NAMES = ("predictions.ndjson", "predictions.ndjson.gz")

RESULTS_FORMAT = PredictionFormat(
    name="forb-retrieval-results",
    description="FORB's own retrieval_results/ folder: <type>_all.ndjson and <type>_oods.ndjson "
                "for the 8 object types, lines {query_id, candidate_db_ids, global_scores} with "
                "ids as FORB's tools write them. Also accepted gzip-compressed (.ndjson.gz).",
)
CANONICAL_FORMAT = PredictionFormat(
    name="forb-predictions",
    description="One predictions.ndjson or predictions.ndjson.gz, a line per query and "
                "database: {database: all|oods, query: <query image path>, candidates: "
                "[<database image paths>, best first], scores: [...]}.",
    recommended=True,
)


@dataclass
class RetrievalPredictions:
    """Predictions in the evaluator's shape, rows in the task's global query order.

    candidates: (Q, K) int64 indices into the full database, -1 where a list is shorter.
    scores: (Q, K) float64 scores of those candidates, -inf where a list is shorter.
    ood_top_scores: (Q,) float64 best score against the OOD database; -1 for an empty list,
        as FORB's evaluation code does.
    """

    candidates: np.ndarray
    scores: np.ndarray
    ood_top_scores: np.ndarray


def locate(path: Path) -> tuple[PredictionFormat, list[PredictionFile]] | None:
    """Find FORB predictions at ``path``: a predictions file, an entry or method folder holding
    ``retrieval_results/`` or ``predictions.ndjson[.gz]``, or a ``retrieval_results`` folder."""
    if path.is_file():
        return CANONICAL_FORMAT, [PredictionFile(path, path.name)]
    canonical = [path / n for n in CANONICAL_NAMES if (path / n).is_file()]
    if canonical:
        return CANONICAL_FORMAT, [PredictionFile(p, p.name) for p in canonical]
    results_dir = path / RESULTS_DIR if (path / RESULTS_DIR).is_dir() else path
    prefix = f"{RESULTS_DIR}/" if results_dir != path else ""
    if not any(results_dir.glob("*_all.ndjson*")):
        return None
    files = []
    for object_type, database in itertools.product(OBJECT_TYPES, DATABASES):
        stem = f"{object_type}_{database}.ndjson"
        found = [results_dir / n for n in (stem, stem + ".gz") if (results_dir / n).exists()]
        files.extend(PredictionFile(p, prefix + p.name) for p in (found or [results_dir / stem]))
    return RESULTS_FORMAT, files


class _Collector:
    """Gathers validated lines, checks every query appears once per database, and builds the
    arrays. ``task`` None means structural checks only (no metadata was given)."""

    def __init__(self, task: ForbTask | None, report: ValidationReport, limits: Limits) -> None:
        self.task = task
        self.report = report
        self.seen = {db: FirstSeen(limits.max_distinct_ids, f"'{db}' queries")
                     for db in DATABASES}
        # Flat typed arrays: about 16 bytes per candidate, whatever the list lengths.
        self.rows = array("q")
        self.lengths = array("q")
        self.ids = array("q")
        self.scores = array("d")
        n = task.n_queries if task else 0
        self.ood_top = np.full(n, np.nan)

    def first_time(self, database: str, key: object, name: str, line_no: int) -> bool:
        earlier = self.seen[database].earlier(key, name, line_no, self.report)
        if earlier is not None:
            self.report.error(name, line_no, f"this query already has a line in the "
                              f"'{database}' predictions ({earlier[0]}:{earlier[1]}); give each "
                              "query exactly once per database")
            return False
        return True

    def add(self, database: str, row: int, ids: list[int], scores: list[float]) -> None:
        if self.task is None:  # nothing to score without the task; keep memory flat
            return
        if database == "all":
            self.rows.append(row)
            self.lengths.append(len(ids))
            self.ids.extend(ids)
            self.scores.extend(scores)
        else:
            self.ood_top[row] = max(scores) if scores else -1.0

    def build(self) -> RetrievalPredictions:
        assert self.task is not None
        lengths = np.frombuffer(self.lengths, dtype=np.int64)
        width = max(1, int(lengths.max(initial=0)))
        filled = np.arange(width) < lengths[:, None]
        rows = np.frombuffer(self.rows, dtype=np.int64)
        candidates = np.full((self.task.n_queries, width), -1, dtype=np.int64)
        scores = np.full((self.task.n_queries, width), -np.inf)
        cand_rows = np.full((len(rows), width), -1, dtype=np.int64)
        score_rows = np.full((len(rows), width), -np.inf)
        cand_rows[filled] = np.frombuffer(self.ids, dtype=np.int64)
        score_rows[filled] = np.frombuffer(self.scores, dtype=np.float64)
        candidates[rows] = cand_rows
        scores[rows] = score_rows
        return RetrievalPredictions(candidates, scores, self.ood_top)


def read_results_folder(files: list[PredictionFile], task: ForbTask | None,
                        report: ValidationReport,
                        limits: Limits = DEFAULT_LIMITS) -> RetrievalPredictions | None:
    """Read FORB's ``retrieval_results`` layout (one file per object type and database)."""
    collector = _Collector(task, report, limits)
    by_stem: dict[str, PredictionFile] = {}
    for file in files:
        stem = file.path.name.removesuffix(".gz")
        if stem in by_stem:
            report.error(file.name, None, f"give either {stem} or {stem}.gz, not both")
        by_stem[stem] = file
    absent = [f.name for f in files if not f.path.exists()]
    if absent:
        report.error(absent[0].rsplit("/", 1)[0] if "/" in absent[0] else ".", None,
                     f"{len(absent)} of {len(files)} files are missing ({', '.join(absent)}); "
                     "FORB's layout has <type>_all.ndjson and <type>_oods.ndjson for each of "
                     f"the 8 object types: {', '.join(OBJECT_TYPES)}")
    for object_type, database in itertools.product(OBJECT_TYPES, DATABASES):
        file = by_stem[f"{object_type}_{database}.ndjson"]
        if not file.path.exists():
            continue
        errors_before = report.error_count
        _read_results_file(file, object_type, database, task, collector, report, limits)
        if report.full:
            return None
        # Queries whose lines were rejected would be listed as missing too: say it only
        # about files that were otherwise clean.
        if task is not None and report.error_count == errors_before:
            _report_missing_ids(file, object_type, database, task, collector, report)
    if task is None or not report.ok:
        return None
    return collector.build()


def _read_results_file(file, object_type, database, task, collector, report, limits) -> None:
    n_db = task.database_size(database) if task else None
    n_queries = task.query_count[object_type] if task else None
    start = task.query_start[object_type] if task else 0
    list_name = DATABASE_FILES[database]
    for line_no, text in iter_lines(file.path, file.name, report, limits):
        line = parse_json_line(ForbResultLine, text, file.name, line_no, report)
        if line is None:
            continue
        if n_queries is not None and line.query_id > n_queries:
            report.error(file.name, line_no, f"query_id {line.query_id} does not exist: "
                         f"{object_type} has {n_queries} queries")
            continue
        if not collector.first_time(database, (object_type, line.query_id), file.name, line_no):
            continue
        ids = line.candidate_db_ids
        if n_db is not None and ids and max(ids) >= n_db:
            bad = next(i for i, c in enumerate(ids) if c >= n_db)
            report.error(file.name, line_no, f"candidate_db_ids[{bad}] = {ids[bad]} is not a line "
                         f"of {list_name} ({n_db} images, ids 0 to {n_db - 1})")
            continue
        collector.add(database, start + line.query_id - 1, ids, line.global_scores)


def _report_missing_ids(file, object_type, database, task, collector, report) -> None:
    seen = collector.seen[database]
    missing = [q for q in range(1, task.query_count[object_type] + 1)
               if (object_type, q) not in seen]
    if missing:
        examples = ", ".join(str(q) for q in missing[:5])
        report.error(file.name, None, f"{len(missing)} of {task.query_count[object_type]} "
                     f"{object_type} queries have no line (query_id {examples}"
                     f"{', ...' if len(missing) > 5 else ''})")


def read_predictions_file(files: list[PredictionFile], task: ForbTask | None,
                          report: ValidationReport,
                          limits: Limits = DEFAULT_LIMITS) -> RetrievalPredictions | None:
    """Read the canonical single-file format."""
    if len(files) != 1:
        report.error(files[0].name, None, "give either predictions.ndjson or "
                     "predictions.ndjson.gz, not both")
        return None
    file = files[0]
    if not (file.name.endswith(".ndjson") or file.name.endswith(".ndjson.gz")):
        report.error(file.name, None, "predictions files are named *.ndjson or *.ndjson.gz")
        return None
    collector = _Collector(task, report, limits)
    index = task.database_index if task else None
    query_index = task.query_index if task else None
    for line_no, text in iter_lines(file.path, file.name, report, limits):
        line = parse_json_line(ForbPredictionLine, text, file.name, line_no, report)
        if line is None:
            continue
        row = 0
        if query_index is not None:
            row = query_index.get(line.query, -1)
            if row < 0:
                report.error(file.name, line_no, f"unknown query {line.query!r}: not in any "
                             "<type>_query.ndjson of this board")
                continue
        if not collector.first_time(line.database, line.query, file.name, line_no):
            continue
        ids: list[int] = []
        if index is not None:
            db_index = index[line.database]
            ids = [db_index.get(c, -1) for c in line.candidates]
            if ids and min(ids) < 0:
                bad = ids.index(-1)
                report.error(file.name, line_no, f"candidates[{bad}] = {line.candidates[bad]!r} "
                             f"is not in {DATABASE_FILES[line.database]}")
                continue
        collector.add(line.database, row, ids, line.scores)
    if task is None or not report.ok:
        return None
    for database in DATABASES:
        seen = collector.seen[database]
        if len(seen) < task.n_queries:
            missing = [p for p in task.query_paths if p not in seen]
            examples = ", ".join(missing[:3])
            report.error(file.name, None, f"{len(missing)} of {task.n_queries} queries have no "
                         f"'{database}' line (e.g. {examples}"
                         f"{', ...' if len(missing) > 3 else ''})")
    if not report.ok:
        return None
    return collector.build()
