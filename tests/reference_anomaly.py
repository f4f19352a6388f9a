"""Loop-by-loop transcriptions of the anomaly-detection definitions in PROTOCOLS.md, for
checking the vectorised evaluator. Slow on purpose: clarity over speed."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage


def regions_of(masks):
    """Each 8-connected region as a list of (sample, y, x) pixels."""
    regions = []
    for s, mask in enumerate(masks):
        labeled, n = ndimage.label(mask, structure=np.ones((3, 3), dtype=int))
        for k in range(1, n + 1):
            regions.append([(s, y, x) for y, x in zip(*np.nonzero(labeled == k))])
    return regions


def pro_sampled(maps, masks, num_thresholds=100):
    """Steps 1-3 of AUPRO@0.3: thresholds at truncated linspace positions of the sorted
    anomaly-free scores; PRO = mean over regions of the fraction strictly above."""
    ok = sorted(float(v) for m, g in zip(maps, masks) for v in m[~g])
    regions = regions_of(masks)
    n_ok = len(ok)
    fprs, pros = [1.0], [1.0]
    for p in np.linspace(0, n_ok - 1, num=num_thresholds).astype(int):
        t = ok[p]
        fprs.append(1 - (p + 1) / n_ok)
        total = 0.0
        for region in regions:
            total += sum(1 for s, y, x in region if maps[s][y, x] > t) / len(region)
        pros.append(total / len(regions))
    order = sorted(range(len(fprs)), key=lambda i: (fprs[i], -i))
    return [fprs[i] for i in order], [pros[i] for i in order]


def pro_exact(maps, masks):
    """The exact curve: pixels by descending score; FPR += 1/N_ok per anomaly-free pixel, PRO
    += 1/(|r| * R) per pixel of region r; the last point of each run of ties; (0,0) and (1,1)
    added."""
    regions = regions_of(masks)
    weight = {}
    for region in regions:
        for px in region:
            weight[px] = 1 / (len(region) * len(regions))
    pixels = []
    n_ok = 0
    for s, (m, g) in enumerate(zip(maps, masks)):
        for y in range(m.shape[0]):
            for x in range(m.shape[1]):
                ok = not g[y, x]
                n_ok += ok
                pixels.append((float(m[y, x]), ok, weight.get((s, y, x), 0.0)))
    pixels.sort(key=lambda p: -p[0])
    fprs, pros = [0.0], [0.0]
    fp = pro = 0.0
    for i, (score, ok, w) in enumerate(pixels):
        fp += ok
        pro += w
        if i + 1 == len(pixels) or pixels[i + 1][0] != score:
            fprs.append(min(fp / n_ok, 1.0))
            pros.append(min(pro, 1.0))
    return fprs + [1.0], pros + [1.0]


def replicate_pro_points(maps, masks, idx, thresholds, sampled: bool):
    """The PRO curve of the images drawn (``idx``, with repeats) at fixed thresholds, region by
    region, as a bootstrap replicate holds the full category's thresholds: a pixel passes a
    sampled curve's threshold when strictly above it, an exact curve's when at least it. The
    points are sorted by FPR (ties: higher threshold first); the exact curve starts at (0, 0)."""
    stack, gts = maps[idx], masks[idx]
    negatives = stack[~gts]
    regions = [(s, labeled == k) for s, mask in enumerate(gts)
               for labeled, count in [ndimage.label(mask, structure=np.ones((3, 3)))]
               for k in range(1, count + 1)]
    points = []
    for k, t in enumerate(thresholds):
        def passes(v, t=t):
            return v > t if sampled else v >= t

        fpr = passes(negatives).sum() / len(negatives)
        pro = np.mean([passes(stack[s][region]).mean() for s, region in regions])
        points.append((fpr, pro, k))
    points.sort(key=lambda p: (p[0], -p[2]))
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    if not sampled:
        xs, ys = [0.0] + xs, [0.0] + ys
    return xs + [1.0], ys + [1.0]


def area_up_to(x, y, x_max):
    """Trapezoids up to x_max, the last piece to a linearly interpolated y(x_max)."""
    area = 0.0
    for i in range(1, len(x)):
        x0, x1, y0, y1 = x[i - 1], x[i], y[i - 1], y[i]
        if x1 <= x_max:
            area += 0.5 * (y0 + y1) * (x1 - x0)
        else:
            if x0 < x_max:
                y_at = y0 + (y1 - y0) * (x_max - x0) / (x1 - x0)
                area += 0.5 * (y0 + y_at) * (x_max - x0)
            break
    return area


def auroc(scores, labels):
    """P(positive > negative) + P(tie)/2, pair by pair."""
    pos = [s for s, label in zip(scores, labels) if label]
    neg = [s for s, label in zip(scores, labels) if not label]
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def bilinear(values, size):
    """torch.nn.functional.interpolate(mode='bilinear', align_corners=False), pixel by pixel."""
    h, w = values.shape
    out = np.zeros((size, size))
    for i in range(size):
        sy = max((i + 0.5) * h / size - 0.5, 0.0)
        y0 = min(math.floor(sy), h - 1)
        y1 = min(y0 + 1, h - 1)
        ly = sy - y0
        for j in range(size):
            sx = max((j + 0.5) * w / size - 0.5, 0.0)
            x0 = min(math.floor(sx), w - 1)
            x1 = min(x0 + 1, w - 1)
            lx = sx - x0
            out[i, j] = ((1 - ly) * ((1 - lx) * values[y0, x0] + lx * values[y0, x1])
                         + ly * ((1 - lx) * values[y1, x0] + lx * values[y1, x1]))
    return out
