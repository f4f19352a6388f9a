"""AUPRO up to an FPR limit, written out from its definition for checking the evaluator:
CFM's (CVPR 2024) sampled PRO curve, and the exact curve by brute force over every distinct
score. Independent of evaluator/ and of reference_anomaly.py; slow on purpose."""

from __future__ import annotations

from bisect import bisect_right

import numpy as np
from scipy import ndimage


class Component:
    """One connected ground-truth region: its scores ascending, and how many of them are at
    most the last threshold asked (thresholds come in ascending order)."""

    def __init__(self, scores) -> None:
        self.scores = sorted(float(v) for v in scores)
        self.at_most = 0

    def overlap_above(self, threshold: float) -> float:
        while self.at_most < len(self.scores) and self.scores[self.at_most] <= threshold:
            self.at_most += 1
        return 1.0 - self.at_most / len(self.scores)


def components_and_ok_scores(maps, masks):
    components, ok = [], []
    for amap, mask in zip(maps, masks):
        labeled, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=int))
        ok.extend(float(v) for v in amap[labeled == 0])
        for k in range(1, count + 1):
            components.append(amap[labeled == k])
    return components, sorted(ok)


def sampled_curve(maps, masks, num_thresholds):
    """(FPR, PRO) in increasing FPR, (1, 1) included: thresholds at the truncated evenly
    spaced positions of the sorted anomaly-free scores; FPR = 1 - (position + 1) / N_ok."""
    region_scores, ok = components_and_ok_scores(maps, masks)
    components = [Component(s) for s in region_scores]
    points = [(1.0, 1.0)]
    for position in np.linspace(0, len(ok) - 1, num=num_thresholds).astype(int):
        threshold = ok[position]
        pro = sum(c.overlap_above(threshold) for c in components) / len(components)
        points.append((1.0 - (position + 1) / len(ok), pro))
    points.reverse()
    return [p[0] for p in points], [p[1] for p in points]


def exact_curve(maps, masks):
    """Every distinct score s, from the highest down, gives the point (share of anomaly-free
    pixels >= s, mean over regions of the share of their pixels >= s); (0, 0) and (1, 1)
    close the curve."""
    region_scores, ok = components_and_ok_scores(maps, masks)
    ok = np.asarray(ok)
    every = np.concatenate([ok] + [np.asarray(s, dtype=float) for s in region_scores])
    xs, ys = [0.0], [0.0]
    for value in sorted(set(every.tolist()), reverse=True):
        xs.append(float((ok >= value).mean()))
        ys.append(float(np.mean([(np.asarray(s) >= value).mean() for s in region_scores])))
    return xs + [1.0], ys + [1.0]


def area(xs, ys, limit):
    """Trapezoids up to ``limit``; the last piece ends at y(limit), interpolated between the
    points around it (found by bisection, as CFM's trapezoid does)."""
    total = 0.0
    for i in range(1, len(xs)):
        if xs[i] <= limit:
            total += (xs[i] - xs[i - 1]) * (ys[i] + ys[i - 1]) / 2
    if limit not in xs:
        i = bisect_right(xs, limit)
        y_at = ys[i - 1] + (ys[i] - ys[i - 1]) * (limit - xs[i - 1]) / (xs[i] - xs[i - 1])
        total += (limit - xs[i - 1]) * (y_at + ys[i - 1]) / 2
    return total


def aupro(maps, masks, limit, num_thresholds=None):
    """AUPRO@limit / limit on the sampled curve (num_thresholds) or the exact one (None)."""
    xs, ys = (exact_curve(maps, masks) if num_thresholds is None
              else sampled_curve(maps, masks, num_thresholds))
    return area(xs, ys, limit) / limit
