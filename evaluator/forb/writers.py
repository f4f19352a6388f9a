"""Writing FORB predictions in both accepted formats, for baselines and tests."""

from __future__ import annotations

import gzip
import io
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

from evaluator.forb.predictions import RESULTS_DIR
from evaluator.forb.task import DATABASES, OBJECT_TYPES, ForbTask


@dataclass
class RankedLists:
    """A method's output: ``ids[db][q]`` are ranked indices into database ``db``'s image list
    (best first) for the task's q-th query, ``scores[db][q]`` their non-increasing scores."""

    ids: dict[str, list[list[int]]]
    scores: dict[str, list[list[float]]]


def write_results_folder(run: RankedLists, task: ForbTask, out_dir: Path,
                         compress: bool = False) -> Path:
    """Write FORB's own retrieval_results/ layout under ``out_dir``."""
    folder = out_dir / RESULTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for object_type, database in itertools.product(OBJECT_TYPES, DATABASES):
        start = task.query_start[object_type]
        name = f"{object_type}_{database}.ndjson" + (".gz" if compress else "")
        with _open(folder / name, compress) as out:
            for q in range(start, start + task.query_count[object_type]):
                out.write(json.dumps({"query_id": q - start + 1,
                                      "candidate_db_ids": run.ids[database][q],
                                      "global_scores": run.scores[database][q]}) + "\n")
    return folder


def write_predictions_file(run: RankedLists, task: ForbTask, path: Path) -> Path:
    """Write the canonical format (gzip when ``path`` ends in .gz)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _open(path, path.name.endswith(".gz")) as out:
        for database in DATABASES:
            names = task.databases[database]
            for q, query in enumerate(task.query_paths):
                out.write(json.dumps({"database": database, "query": query,
                                      "candidates": [names[i] for i in run.ids[database][q]],
                                      "scores": run.scores[database][q]}) + "\n")
    return path


def _open(path: Path, compress: bool):
    if compress:
        # mtime=0 keeps the bytes, and so the sha256, reproducible.
        return io.TextIOWrapper(gzip.GzipFile(path, "wb", mtime=0), encoding="utf-8")
    return open(path, "w", encoding="utf-8")
