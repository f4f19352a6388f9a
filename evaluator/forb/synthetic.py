"""Synthetic FORB predictions for tests, benchmarks and demos: they look like a real method's
output (hits at varied ranks, score ties, some empty lists) but come from a random generator.

Hits are planted using the ground truth, so these predictions are never a leaderboard entry.
The same arrays can be written in both accepted formats, which must then score identically.
"""

from __future__ import annotations

import gzip
import io
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluator.forb.labels import ForbLabels
from evaluator.forb.predictions import RESULTS_DIR
from evaluator.forb.task import DATABASES, OBJECT_TYPES, ForbTask


@dataclass
class SyntheticRun:
    """Ranked lists per database: ``ids[db][q]`` index that database's list."""

    ids: dict[str, list[list[int]]]
    scores: dict[str, list[list[float]]]


def generate(task: ForbTask, labels: ForbLabels, n_candidates: int = 10, seed: int = 0,
             hit_rate: float = 0.6, empty_rate: float = 0.01, tie_rate: float = 0.05) -> SyntheticRun:
    rng = np.random.default_rng(seed)
    order = np.argsort(labels.gt_query, kind="stable")
    starts = np.searchsorted(labels.gt_query[order], np.arange(task.n_queries + 1))
    gt_sorted = labels.gt_ids[order]
    run = SyntheticRun(ids={db: [] for db in DATABASES}, scores={db: [] for db in DATABASES})
    for q in range(task.n_queries):
        gts = gt_sorted[starts[q]:starts[q + 1]]
        for database in DATABASES:
            size = task.database_size(database)
            n = 0 if rng.random() < empty_rate else int(rng.integers(1, n_candidates + 1))
            picks = [int(i) for i in rng.choice(size, size=min(n + len(gts), size), replace=False)]
            if database == "all":
                picks = [p for p in picks if p not in set(gts.tolist())][:n]
                for g in gts:
                    if n and rng.random() < hit_rate:
                        picks.insert(int(rng.integers(0, len(picks) + 1)), int(g))
                picks = picks[:n]
            else:
                picks = picks[:n]
            scores = np.sort(rng.random(len(picks)))[::-1]
            if len(scores) > 1 and rng.random() < tie_rate:
                scores[1] = scores[0]
            # Round so that written and re-read scores are the same floats in both formats.
            run.ids[database].append(picks)
            run.scores[database].append([round(float(s), 6) for s in scores])
    return run


def write_results_folder(run: SyntheticRun, task: ForbTask, out_dir: Path,
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


def write_predictions_file(run: SyntheticRun, task: ForbTask, path: Path) -> Path:
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
