"""FORB's metrics for every slice: overall, each difficulty, each object type, and each
object type x difficulty, plus the t-mAP curves behind t-mAP@k."""

from __future__ import annotations

import numpy as np

from evaluator.forb.labels import DIFFICULTIES, ForbLabels
from evaluator.forb.predictions import RetrievalPredictions
from evaluator.forb.task import OBJECT_TYPES, ForbTask
from evaluator.metrics import bootstrap
from evaluator.metrics.retrieval import (
    TMAP_FPRS,
    average_precision_at_k,
    ood_thresholds,
    relevance,
)
from evaluator.registry import ScoreSheet

KS = (1, 5)
METRIC_NAMES = tuple(f"mAP@{k}" for k in KS) + tuple(f"t-mAP@{k}" for k in KS)


def slice_names() -> list[str]:
    """Slices in the order they are reported."""
    return (["overall", *DIFFICULTIES, *OBJECT_TYPES]
            + [f"{t}/{d}" for t in OBJECT_TYPES for d in DIFFICULTIES])


def slice_membership(task: ForbTask, labels: ForbLabels) -> dict[str, np.ndarray]:
    """Boolean mask of the queries in each slice."""
    masks = {"overall": np.ones(task.n_queries, dtype=bool)}
    for d_index, level in enumerate(DIFFICULTIES):
        masks[level] = labels.difficulty == d_index
    for t_index, object_type in enumerate(OBJECT_TYPES):
        masks[object_type] = task.query_type == t_index
    for object_type in OBJECT_TYPES:
        for level in DIFFICULTIES:
            masks[f"{object_type}/{level}"] = masks[object_type] & masks[level]
    return masks


def _scored_prefix(predictions: RetrievalPredictions, labels: ForbLabels):
    """(scores, relevant, valid, t-mAP thresholds) of the columns that can count.

    Scores are validated non-increasing, so every threshold keeps a prefix of each list and
    only the first max(KS) columns can be ranked within k: the rest never count."""
    width = min(max(KS), predictions.candidates.shape[1])
    candidates = predictions.candidates[:, :width]
    relevant = relevance(candidates, labels.gt_query, labels.gt_ids)
    return (predictions.scores[:, :width], relevant, candidates >= 0,
            ood_thresholds(predictions.ood_top_scores))


def _per_query_ap(predictions: RetrievalPredictions, labels: ForbLabels):
    """Each query's AP@k on the full lists (``plain[k]``) and at each t-mAP threshold
    (``curve[k][i]``), with the thresholds: what both the scores and their bootstrap average
    (computed once for both)."""
    scores, relevant, valid, thresholds = _scored_prefix(predictions, labels)
    plain, curve = {}, {}
    for k in KS:
        plain[k] = average_precision_at_k(relevant, valid, labels.n_gt, k)
        curve[k] = [average_precision_at_k(relevant, valid & (scores >= t), labels.n_gt, k)
                    for t in thresholds]
    return plain, curve, thresholds


def score(task: ForbTask, predictions: RetrievalPredictions, labels: ForbLabels,
          per_query=None) -> ScoreSheet:
    """mAP@k on the full lists and t-mAP@k over FORB's 11 OOD thresholds, for every slice.
    ``per_query``: _per_query_ap's result, when the caller already has it."""
    plain_ap, curve_ap, thresholds = per_query or _per_query_ap(predictions, labels)
    masks = slice_membership(task, labels)
    names = list(masks)
    # One row per slice: averaging is a matrix product with the normalised membership.
    membership = np.stack([masks[n] for n in names]).astype(np.float64)
    counts = membership.sum(axis=1)
    weights = membership / np.maximum(counts, 1)[:, None]

    per_slice: dict[str, dict[str, float | None]] = {n: {} for n in names}
    curve_values: dict[str, dict[str, list[float | None]]] = {n: {} for n in names}
    for k in KS:
        plain = weights @ plain_ap[k]
        curve = np.stack([weights @ ap for ap in curve_ap[k]], axis=1)  # (slices, thresholds)
        for i, name in enumerate(names):
            present = counts[i] > 0
            per_slice[name][f"mAP@{k}"] = float(plain[i]) if present else None
            per_slice[name][f"t-mAP@{k}"] = float(np.mean(curve[i])) if present else None
            curve_values[name][f"mAP@{k}"] = ([float(v) for v in curve[i]] if present
                                              else [None] * len(thresholds))
    ordered = {name: {m: per_slice[name][m] for m in METRIC_NAMES} for name in names}
    return ScoreSheet(
        scores=ordered,
        counts={name: int(c) for name, c in zip(names, counts)},
        curves={"t-mAP": {"fpr": [float(f) for f in TMAP_FPRS], "threshold": thresholds,
                          "slices": curve_values}},
    )


BOOTSTRAP_NOTES = (
    "Queries are resampled with replacement within each slice (independently per slice); a "
    "replicate's value is the slice mean of the per-query values. t-mAP is bootstrapped "
    "conditionally on its 11 thresholds: they stay those of the full OOD query set, and each "
    "query contributes its AP@k averaged over them. Paired intervals (entry A - entry B) use "
    "the same resampled queries for both entries. Slices with fewer than min_units queries "
    "have no interval.")


def per_query_values(task: ForbTask, predictions: RetrievalPredictions,
                     labels: ForbLabels, per_query=None) -> np.ndarray:
    """(queries, metrics) in METRIC_NAMES order: each query's AP@k, and its AP@k averaged over
    the t-mAP thresholds, whose slice means are the reported mAP@k and t-mAP@k. Never stored
    or printed: only bootstrap aggregates of it leave the evaluator."""
    plain, curve, _ = per_query or _per_query_ap(predictions, labels)
    columns = {}
    for k in KS:
        columns[f"mAP@{k}"] = plain[k]
        columns[f"t-mAP@{k}"] = np.mean(curve[k], axis=0)
    return np.stack([columns[m] for m in METRIC_NAMES], axis=1)


def score_and_bootstrap(task: ForbTask, predictions: RetrievalPredictions, labels: ForbLabels,
                        board_id: str) -> tuple[ScoreSheet, bootstrap.Bootstrap]:
    """score and bootstrap_replicates from one computation of the per-query AP values."""
    per_query = _per_query_ap(predictions, labels)
    return (score(task, predictions, labels, per_query),
            bootstrap_replicates(task, predictions, labels, board_id, per_query=per_query))


def bootstrap_replicates(task: ForbTask, predictions: RetrievalPredictions, labels: ForbLabels,
                         board_id: str, resamples: int = bootstrap.RESAMPLES,
                         per_query=None) -> bootstrap.Bootstrap:
    """Replicates of every metric of every slice with at least MIN_UNITS queries."""
    seed = bootstrap.board_seed(board_id)
    values = per_query_values(task, predictions, labels, per_query)
    replicates = bootstrap.slice_means(values, slice_membership(task, labels), METRIC_NAMES,
                                       seed, resamples)
    return bootstrap.Bootstrap(bootstrap.settings(seed, "query", BOOTSTRAP_NOTES, resamples),
                               replicates)
