"""A direct, loop-by-loop transcription of FORB's metric definitions (PROTOCOLS.md), written
for clarity rather than speed. Tests check the vectorised evaluator against it."""

from __future__ import annotations


def average_precision(gt: set, candidates: list, k: int) -> float:
    """AP@k = sum_{i<=min(k,n)} P@i * rel_i / max(1, |G|, that sum); empty G: 1 iff no
    candidates."""
    if not gt:
        return 1.0 if not candidates else 0.0
    total = 0.0
    for i in range(1, min(k, len(candidates)) + 1):
        if candidates[i - 1] in gt:
            precision = len(gt & set(candidates[:i])) / i
            total += precision
    return total / max(1, len(gt), total)


def mean_average_precision(gts: list[set], lists: list[list], k: int) -> float:
    return sum(average_precision(g, c, k) for g, c in zip(gts, lists)) / len(gts)


def thresholds(ood_lists_scores: list[list[float]]) -> list[float]:
    """s_m with m = ceil((1 - FPR) * N) over the sorted top OOD scores (-1 for an empty list),
    for FPR = 0, 0.1, ..., 0.9, then -1 for FPR = 1. Integer arithmetic: m = ceil((10-j)N/10)."""
    tops = sorted(max(s) if s else -1.0 for s in ood_lists_scores)
    n = len(tops)
    out = [tops[-(-(10 - j) * n // 10) - 1] for j in range(10)]
    return out + [-1.0]


def thresholded_map(gts, lists, scores, ts, k, members=None) -> tuple[float, list[float]]:
    """t-mAP@k over ``members`` (indices; all by default) and the mAP at each threshold."""
    idx = list(range(len(gts))) if members is None else members
    curve = []
    for t in ts:
        kept = [[c for c, s in zip(lists[q], scores[q]) if s >= t] for q in idx]
        curve.append(mean_average_precision([gts[q] for q in idx], kept, k))
    return sum(curve) / len(curve), curve
