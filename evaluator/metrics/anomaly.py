"""Anomaly-detection metrics on arrays: ROC AUC with ties as scikit-learn handles them, and
MVTec's per-region-overlap (PRO) curves, sampled and exact, without loops over thresholds or
regions."""

from __future__ import annotations

import numpy as np

EIGHT_CONNECTED = np.ones((3, 3), dtype=int)


def auc_against_sorted_negatives(negatives_sorted: np.ndarray,
                                 positives: np.ndarray) -> float | None:
    """ROC AUC = P(positive > negative) + P(tie) / 2 (the Mann-Whitney statistic, which is what
    roc_auc_score's trapezoids add up to). Counted exactly in integers; None when one class is
    empty, where AUROC is undefined."""
    if len(negatives_sorted) == 0 or len(positives) == 0:
        return None
    below = np.searchsorted(negatives_sorted, positives, side="left").sum(dtype=np.int64)
    not_above = np.searchsorted(negatives_sorted, positives, side="right").sum(dtype=np.int64)
    return float(int(below) + int(not_above)) / (2.0 * len(positives) * len(negatives_sorted))


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    labels = np.asarray(labels).astype(bool)
    return auc_against_sorted_negatives(np.sort(scores[~labels]), scores[labels])


def roc_curve_points(negatives_sorted: np.ndarray, positives_sorted: np.ndarray,
                     n_points: int = 200) -> dict[str, list[float]]:
    """About ``n_points`` (FPR, TPR) pairs for plots, at thresholds spread over both classes."""
    if len(negatives_sorted) == 0 or len(positives_sorted) == 0:
        return {}  # undefined: no curve
    picks = [a[np.linspace(0, len(a) - 1, n_points // 2, dtype=int)]
             for a in (negatives_sorted, positives_sorted)]
    thresholds = np.unique(np.concatenate(picks))[::-1]
    fpr = 1 - np.searchsorted(negatives_sorted, thresholds, "left") / len(negatives_sorted)
    tpr = 1 - np.searchsorted(positives_sorted, thresholds, "left") / len(positives_sorted)
    return {"fpr": [0.0, *fpr.tolist(), 1.0], "tpr": [0.0, *tpr.tolist(), 1.0]}


class Regions:
    """Connected ground-truth regions (8-connectivity) of a stack of masks, with the anomaly
    scores of their pixels: ``scores[i]`` belongs to region ``ids[i]`` of ``sizes[ids[i]]``
    pixels, and region r to mask ``image[r]``."""

    def __init__(self, masks: np.ndarray, maps: np.ndarray) -> None:
        from scipy import ndimage  # imported here: it costs 0.2 s that FORB runs never need

        ids, scores, images = [], [], []
        count = 0
        for index, (mask, amap) in enumerate(zip(masks, maps)):
            labeled, n = ndimage.label(mask, structure=EIGHT_CONNECTED)
            if n:
                inside = labeled > 0
                ids.append(labeled[inside].astype(np.int64) - 1 + count)
                scores.append(amap[inside])
                images.append(np.full(n, index, dtype=np.int64))
                count += n
        self.count = count
        self.image = np.concatenate(images) if images else np.zeros(0, dtype=np.int64)
        self.ids = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
        self.scores = np.concatenate(scores) if scores else np.zeros(0, dtype=np.float32)
        self.sizes = np.bincount(self.ids, minlength=count)

    def overlap_above(self, thresholds: np.ndarray) -> np.ndarray:
        """PRO at each (non-decreasing) threshold: the mean over regions of the fraction of a
        region's pixels scoring strictly above it. One sorted search and one histogram."""
        n_t = len(thresholds)
        # passed[i] = how many thresholds pixel i is strictly above (t < s).
        passed = np.searchsorted(thresholds, self.scores, side="left")
        hist = np.bincount(self.ids * (n_t + 1) + passed,
                           minlength=self.count * (n_t + 1)).reshape(self.count, n_t + 1)
        at_least = np.cumsum(hist[:, ::-1], axis=1)[:, ::-1]  # pixels passing >= j thresholds
        above = at_least[:, 1:]  # column j: pixels above threshold j
        return (above / self.sizes[:, None]).mean(axis=0)


def pro_curve_sampled(ok_sorted: np.ndarray, regions: Regions,
                      num_thresholds: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """MVTec 3D-AD's PRO curve: thresholds at num_thresholds evenly spaced (truncated) positions
    of the sorted anomaly-free scores, FPR = 1 - (p + 1) / N_ok, with (1, 1) added; returned in
    increasing FPR order."""
    positions = np.linspace(0, len(ok_sorted) - 1, num=num_thresholds, dtype=int)
    fprs = 1.0 - (positions + 1) / len(ok_sorted)
    pros = regions.overlap_above(ok_sorted[positions])
    return np.concatenate([fprs[::-1], [1.0]]), np.concatenate([pros[::-1], [1.0]])


def pro_curve_exact(ok_sorted: np.ndarray, regions: Regions,
                    fpr_limit: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The exact PRO curve (MVTec AD's): a point after every run of tied scores, taking pixels
    in descending score order; anomaly-free pixels add 1/N_ok to FPR, a pixel of region r adds
    1/(|r| * regions) to PRO. With ``fpr_limit``, only the points up to the limit and the first
    one past it are made (all an integral up to the limit needs). Starts at (0, 0), ends at
    (1, 1), in increasing FPR order."""
    n_ok = len(ok_sorted)
    # The order inside a run of ties does not matter: only run ends become points.
    # float16 scores are sorted as float32: NumPy's float16 sort is unreliable on some CPUs.
    scores = regions.scores
    order = np.argsort(scores.astype(np.float32) if scores.dtype == np.float16 else scores)
    region_sorted = regions.scores[order]
    weights = 1.0 / (regions.sizes[regions.ids[order]] * regions.count)
    cumulative = np.concatenate([[0.0], np.cumsum(weights)])
    floor_value = -np.inf
    if fpr_limit is not None and n_ok:
        # The value at which more than fpr_limit of the anomaly-free pixels score at least it.
        floor_value = ok_sorted[max(0, n_ok - int(np.floor(fpr_limit * n_ok)) - 1)]
    merged = np.sort(np.concatenate([  # two sorted runs: a merge
        ok_sorted[np.searchsorted(ok_sorted, floor_value, "left"):],
        region_sorted[np.searchsorted(region_sorted, floor_value, "left"):],
    ]), kind="stable")
    values = merged[np.concatenate([[True], merged[1:] != merged[:-1]])]
    # Searched in ascending order (NumPy's search narrows from the last hit), then reversed.
    fprs = (n_ok - np.searchsorted(ok_sorted, values, "left")[::-1]) / n_ok
    pros = cumulative[-1] - cumulative[np.searchsorted(region_sorted, values, "left")[::-1]]
    np.clip(fprs, None, 1.0, out=fprs)
    np.clip(pros, None, 1.0, out=pros)
    return np.concatenate([[0.0], fprs, [1.0]]), np.concatenate([[0.0], pros, [1.0]])


def trapezoid(x: np.ndarray, y: np.ndarray, x_max: float) -> float:
    """Trapezoid-rule area under (x, y) (x non-decreasing) from x[0] to x_max, where the piece
    up to x_max uses y linearly interpolated between its neighbours, as MVTec's code does."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    extra = 0.0
    if not np.any(x == x_max):
        i = int(np.searchsorted(x, x_max, side="right"))
        if not 0 < i < len(x):
            raise ValueError("x_max must lie inside the range of x")
        y_at = y[i - 1] + (y[i] - y[i - 1]) * (x_max - x[i - 1]) / (x[i] - x[i - 1])
        extra = 0.5 * (y_at + y[i - 1]) * (x_max - x[i - 1])
    keep = x <= x_max
    x, y = x[keep], y[keep]
    return float(np.sum(0.5 * (y[1:] + y[:-1]) * (x[1:] - x[:-1])) + extra)
