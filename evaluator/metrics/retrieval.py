"""Retrieval metrics as FORB defines them, vectorised over queries.

FORB's AP@k differs from the textbook one: the denominator is max(1, |G|, sum of P@i*rel_i),
not min(k, |G|), so a logo query with six correct images cannot reach 1 at k=5; and a query
with no ground truth scores 1 exactly when its (thresholded) list is empty.
"""

from __future__ import annotations

import math

import numpy as np

# FORB's false-positive rates for t-mAP, computed as FORB does (np.linspace) so that
# ceil((1 - fpr) * N) rounds identically.
TMAP_FPRS = np.linspace(0, 1.0, num=11, endpoint=True)
EMPTY_LIST_SCORE = -1.0  # FORB's stand-in top score for an empty OOD list, and the last threshold


def relevance(candidates: np.ndarray, gt_query: np.ndarray, gt_ids: np.ndarray) -> np.ndarray:
    """``rel[q, j]``: is candidate j of query q one of q's ground-truth ids? Padding (-1) is not.

    Ground truth comes as pairs (gt_query[i], gt_ids[i]); both sides are encoded as one integer
    key per (query, id) so a single sorted membership test answers every cell.
    """
    n_rows = candidates.shape[0]
    stride = int(max(candidates.max(initial=-1), gt_ids.max(initial=-1))) + 2
    rows = np.arange(n_rows, dtype=np.int64)[:, None]
    cell_keys = rows * stride + (candidates + 1)
    gt_keys = gt_query.astype(np.int64) * stride + (gt_ids + 1)
    return np.isin(cell_keys, gt_keys) & (candidates >= 0)


def average_precision_at_k(relevant: np.ndarray, kept: np.ndarray, n_gt: np.ndarray,
                           k: int) -> np.ndarray:
    """Per-query AP@k over the candidates where ``kept`` is True, in column order.

    ``kept`` removes candidates (padding, or scores under a t-mAP threshold); the remaining
    ones are re-ranked 1, 2, ... so P@i counts hits among the first i kept candidates.
    """
    kept = kept.astype(bool)
    hits_kept = relevant & kept
    rank = np.cumsum(kept, axis=1)
    hits = np.cumsum(hits_kept, axis=1)
    counted = hits_kept & (rank <= k)
    precision_sum = np.where(counted, hits / np.maximum(rank, 1), 0.0).sum(axis=1)
    denominator = np.maximum(1.0, np.maximum(n_gt, precision_sum))
    ap = precision_sum / denominator
    no_gt = n_gt == 0
    if no_gt.any():
        ap[no_gt] = (kept[no_gt].sum(axis=1) == 0).astype(float)
    return ap


def ood_thresholds(ood_top_scores: np.ndarray, fprs: np.ndarray = TMAP_FPRS) -> list[float]:
    """FORB's t-mAP thresholds: for each FPR, the score that lets that fraction of the OOD
    queries' top scores through (s_m with m = ceil((1 - FPR) * N)), and -1 for FPR = 1."""
    ordered = np.sort(np.asarray(ood_top_scores, dtype=np.float64))
    n = len(ordered)
    if n == 0:
        raise ValueError("t-mAP needs at least one OOD query")
    thresholds = []
    for fpr in fprs:
        if fpr == 1:
            thresholds.append(EMPTY_LIST_SCORE)
        else:
            thresholds.append(float(ordered[math.ceil((1 - fpr) * n) - 1]))
    return thresholds
