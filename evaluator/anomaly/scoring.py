"""Protocol v1 metrics per category and their unweighted mean."""

from __future__ import annotations

import numpy as np

from evaluator.anomaly.labels import AnomalyLabels
from evaluator.anomaly.predictions import AnomalyPredictions
from evaluator.anomaly.task import AnomalyTask
from evaluator.metrics.anomaly import (
    Regions,
    auc_against_sorted_negatives,
    pro_curve_exact,
    pro_curve_sampled,
    roc_auc,
    roc_curve_points,
    trapezoid,
)
from evaluator.registry import ScoreSheet

PRO_LIMIT = 0.3
METRIC_NAMES = ("I-AUROC", "P-AUROC", "AUPRO@0.3", "AUPRO@0.3-exact")
PLOT_POINTS = 300


def score(task: AnomalyTask, predictions: AnomalyPredictions, labels: AnomalyLabels) -> ScoreSheet:
    results = [_score_category(task, predictions, labels, c) for c in range(len(task.categories))]
    scores = {c: r[0] for c, r in zip(task.categories, results)}
    counts = {c: r[1] for c, r in zip(task.categories, results)}
    curves = {"roc": {c: r[2] for c, r in zip(task.categories, results) if r[2]},
              "pro": {c: r[3] for c, r in zip(task.categories, results) if r[3]}}
    scores["mean"] = {m: _mean([scores[c][m] for c in task.categories]) for m in METRIC_NAMES}
    counts["mean"] = task.n_samples
    return ScoreSheet(scores=scores, counts=counts, curves=curves)


def _score_category(task, predictions, labels, c_index):
    # The task keeps each category contiguous: slicing makes views instead of copying
    # hundreds of MB of maps.
    positions = np.flatnonzero(task.category == c_index)
    members = slice(positions[0], positions[-1] + 1)
    result: dict[str, float | None] = {m: None for m in METRIC_NAMES}
    result["I-AUROC"] = roc_auc(predictions.scores[members], labels.labels[members])
    roc_curve, pro_curve = {}, {}
    if predictions.maps is not None:
        pixel, roc_curve, pro_curve = _pixel_metrics(predictions.maps[members],
                                                     labels.masks[members])
        result.update(pixel)
    return result, len(positions), roc_curve, pro_curve


def _pixel_metrics(maps: np.ndarray, masks: np.ndarray):
    ok_sorted = np.sort(maps[~masks])
    positives_sorted = np.sort(maps[masks])
    regions = Regions(masks, maps)
    metrics = {"P-AUROC": auc_against_sorted_negatives(ok_sorted, positives_sorted)}
    pro_plot: dict = {}
    if regions.count and len(ok_sorted):
        fprs, pros = pro_curve_sampled(ok_sorted, regions, num_thresholds=100)
        metrics["AUPRO@0.3"] = trapezoid(fprs, pros, PRO_LIMIT) / PRO_LIMIT
        fprs, pros = pro_curve_exact(ok_sorted, regions, fpr_limit=PRO_LIMIT)
        metrics["AUPRO@0.3-exact"] = trapezoid(fprs, pros, PRO_LIMIT) / PRO_LIMIT
        fprs, pros = pro_curve_sampled(ok_sorted, regions, num_thresholds=PLOT_POINTS)
        pro_plot = {"fpr": fprs.tolist(), "pro": pros.tolist()}
    return metrics, roc_curve_points(ok_sorted, positives_sorted), pro_plot


def _mean(values: list[float | None]) -> float | None:
    """Unweighted mean over categories; undefined if any category's value is."""
    if not values or any(v is None for v in values):
        return None
    return float(np.mean(values))
