"""Synthetic FORB predictions for tests, benchmarks and demos: they look like a real method's
output (hits at varied ranks, score ties, some empty lists) but come from a random generator.

Hits are planted using the ground truth, so these predictions are never a leaderboard entry.
Write them with evaluator.forb.writers in either accepted format; both must score identically.
"""

from __future__ import annotations

import numpy as np

from evaluator.forb.labels import ForbLabels
from evaluator.forb.task import DATABASES, ForbTask
from evaluator.forb.writers import RankedLists


def generate(task: ForbTask, labels: ForbLabels, n_candidates: int = 10, seed: int = 0,
             hit_rate: float = 0.6, empty_rate: float = 0.01,
             tie_rate: float = 0.05) -> RankedLists:
    rng = np.random.default_rng(seed)
    order = np.argsort(labels.gt_query, kind="stable")
    starts = np.searchsorted(labels.gt_query[order], np.arange(task.n_queries + 1))
    gt_sorted = labels.gt_ids[order]
    run = RankedLists(ids={db: [] for db in DATABASES}, scores={db: [] for db in DATABASES})
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
