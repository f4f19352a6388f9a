"""The anomaly protocols' metrics per category and their unweighted mean (protocol v1, and v2
with the AUPRO@0.01 pair: see ProMetric)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property, partial

import numpy as np

from evaluator.anomaly.labels import AnomalyLabels
from evaluator.anomaly.predictions import AnomalyPredictions
from evaluator.anomaly.task import AnomalyTask
from evaluator.metrics import bootstrap
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

PLOT_POINTS = 300


@dataclass(frozen=True)
class ProMetric:
    """An area under the PRO curve up to FPR ``limit``, divided by it: on the curve sampled at
    ``thresholds`` evenly spaced positions of the sorted anomaly-free scores (MVTec 3D-AD's
    code uses 100, CFM's 99), or on the exact curve when ``thresholds`` is None. An exact
    metric's bootstrap evaluates the curve at the full category's distinct scores down to FPR
    ``exact_margin`` (past the limit, so that every replicate's curve still crosses it)."""

    name: str
    limit: float
    thresholds: int | None
    exact_margin: float = 0.5


PRO_V1 = (ProMetric("AUPRO@0.3", 0.3, 100), ProMetric("AUPRO@0.3-exact", 0.3, None))
# Protocol v2 adds AUPRO@1 %, as CFM (CVPR 2024) introduced it: its calculate_au_pro samples
# 99 thresholds.
PRO_V2 = PRO_V1 + (ProMetric("AUPRO@0.01", 0.01, 99),
                   ProMetric("AUPRO@0.01-exact", 0.01, None, exact_margin=0.05))
PRO_METRICS = {m.name: m for m in PRO_V2}
IMAGE_PIXEL_METRICS = ("I-AUROC", "P-AUROC")
PRO_LIMIT = 0.3  # protocol v1's limit
METRIC_NAMES = IMAGE_PIXEL_METRICS + tuple(m.name for m in PRO_V1)  # protocol v1


def pro_metrics_of(metric_names) -> tuple[ProMetric, ...]:
    """The PRO metrics among a board's metric names, in their order."""
    return tuple(PRO_METRICS[name] for name in metric_names if name in PRO_METRICS)


def _names(pro: tuple[ProMetric, ...]) -> tuple[str, ...]:
    return IMAGE_PIXEL_METRICS + tuple(m.name for m in pro)


# Categories are scored in this many threads: the work is sorts, counts and matrix products,
# which NumPy runs without the GIL.
WORKERS = max(1, min(2, os.cpu_count() or 1))


def score(task: AnomalyTask, predictions: AnomalyPredictions, labels: AnomalyLabels,
          pro: tuple[ProMetric, ...] = PRO_V1) -> ScoreSheet:
    return score_and_bootstrap(task, predictions, labels, None, pro=pro)[0]


def score_and_bootstrap(task: AnomalyTask, predictions: AnomalyPredictions,
                        labels: AnomalyLabels, board_id: str | None,
                        resamples: int = bootstrap.RESAMPLES,
                        pro: tuple[ProMetric, ...] = PRO_V1,
                        ) -> tuple[ScoreSheet, bootstrap.Bootstrap | None]:
    """The score sheet and (with a board id) the bootstrap replicates, each category's in one
    go so that what both need (counts, regions) is derived once. ``pro``: the board's PRO
    metrics."""
    seed = bootstrap.board_seed(board_id) if board_id is not None else None
    done = _each_category(task, predictions, labels, lambda inputs: (
        _score_category(inputs, pro),
        None if seed is None else _category_replicates(inputs, seed, resamples, pro)))
    sheet = _sheet(task, [d[0] for d in done], pro)
    if seed is None:
        return sheet, None
    return sheet, _bootstrap(task, [d[1] for d in done], seed, resamples, pro)


def _each_category(task, predictions, labels, work) -> list:
    """``work(inputs)`` for every category, in category order, in WORKERS threads with BLAS
    on one thread each: its own threads would only compete with them (the products come out
    the same either way)."""
    from threadpoolctl import threadpool_limits

    def one(c_index: int):
        return work(_CategoryInputs(task, predictions, labels, c_index))

    with threadpool_limits(limits=1, user_api="blas"), \
            ThreadPoolExecutor(max_workers=WORKERS) as pool:
        return list(pool.map(one, range(len(task.categories))))


class _CategoryInputs:
    """A category's slices of the maps and masks, and what score and bootstrap both derive
    from them, derived once. The task keeps each category contiguous: slicing makes views
    instead of copying hundreds of MB of maps."""

    def __init__(self, task, predictions, labels, c_index: int) -> None:
        positions = np.flatnonzero(task.category == c_index)
        self.name = task.categories[c_index]
        self.n = len(positions)
        self.members = slice(positions[0], positions[-1] + 1)
        self.scores = predictions.scores[self.members]
        self.labels = labels.labels[self.members]
        self.has_maps = predictions.maps is not None
        self.maps = predictions.maps[self.members] if self.has_maps else None
        self.masks = labels.masks_of(self.members)
        # Not a lambda over self: that would be a reference cycle, which keeps a category's
        # masks, counts and regions alive until the garbage collector happens to run.
        self._make_regions = partial(labels.regions, self.members, self.maps, self.masks)

    @cached_property
    def pixels(self) -> _PixelInputs:
        return _PixelInputs(self.maps, self.masks, self._make_regions)


class _PixelInputs:
    """Maps and masks with their regions (scores as keys for float16 maps) and, for float16
    maps, their key counts: each made on first use."""

    def __init__(self, maps: np.ndarray, masks: np.ndarray, make_regions=None) -> None:
        self.maps, self.masks = maps, masks
        self._make_regions = make_regions or (lambda: Regions(masks, maps))

    @cached_property
    def regions(self) -> Regions:
        regions = self._make_regions()
        if self.maps.dtype == np.float16:
            regions.scores = KEY_OF_BITS[regions.scores.astype(np.float16).view(np.uint16)]
        elif self.maps.dtype == np.float32:
            regions.scores = float32_keys(regions.scores.astype(np.float32, copy=False))
        return regions

    @cached_property
    def counted(self) -> KeyCounts:
        return KeyCounts.of(self.maps, self.masks)

    @cached_property
    def negatives(self) -> list[np.ndarray]:
        """Each image's anomaly-free scores, sorted (maps other than float16)."""
        n = len(self.maps)
        return [np.sort(_sortable(amap[~mask]))
                for amap, mask in zip(self.maps.reshape(n, -1), self.masks.reshape(n, -1))]

    @cached_property
    def ok_sorted(self) -> np.ndarray:
        """Every anomaly-free score, sorted: the images' sorted runs merged (a stable sort of
        sorted runs is a merge), shared by the score and its bootstrap."""
        return np.sort(np.concatenate(self.negatives), kind="stable")


def _sheet(task: AnomalyTask, results: list, pro: tuple[ProMetric, ...]) -> ScoreSheet:
    scores = {c: r[0] for c, r in zip(task.categories, results)}
    counts = {c: r[1] for c, r in zip(task.categories, results)}
    curves = {"roc": {c: r[2] for c, r in zip(task.categories, results) if r[2]},
              "pro": {c: r[3] for c, r in zip(task.categories, results) if r[3]}}
    scores["mean"] = {m: _mean([scores[c][m] for c in task.categories]) for m in _names(pro)}
    counts["mean"] = task.n_samples
    return ScoreSheet(scores=scores, counts=counts, curves=curves)


def _score_category(inputs: _CategoryInputs, pro: tuple[ProMetric, ...]):
    result: dict[str, float | None] = {m: None for m in _names(pro)}
    result["I-AUROC"] = roc_auc(inputs.scores, inputs.labels)
    roc_curve, pro_curve = {}, {}
    if inputs.has_maps:
        pixel, roc_curve, pro_curve = _pixel_metrics(inputs.maps, inputs.masks, inputs.pixels,
                                                     pro)
        result.update(pixel)
    return result, inputs.n, roc_curve, pro_curve


def _pixel_metrics(maps: np.ndarray, masks: np.ndarray, inputs: _PixelInputs | None = None,
                   pro: tuple[ProMetric, ...] = PRO_V1):
    inputs = inputs or _PixelInputs(maps, masks)
    if maps.dtype == np.float16:
        return _pixel_metrics_from_counts(inputs.counted, inputs.regions, pro)
    ok_sorted = inputs.ok_sorted
    positives_sorted = np.sort(_sortable(maps[masks]))
    regions = inputs.regions
    metrics = {"P-AUROC": auc_against_sorted_negatives(ok_sorted, positives_sorted)}
    pro_plot: dict = {}
    if regions.count and len(ok_sorted):
        for metric in pro:
            if metric.thresholds is None:
                fprs, pros = pro_curve_exact(ok_sorted, regions, fpr_limit=metric.limit)
            else:
                fprs, pros = pro_curve_sampled(ok_sorted, regions,
                                               num_thresholds=metric.thresholds)
            metrics[metric.name] = trapezoid(fprs, pros, metric.limit) / metric.limit
        fprs, pros = pro_curve_sampled(ok_sorted, regions, num_thresholds=PLOT_POINTS)
        pro_plot = {"fpr": fprs.tolist(), "pro": pros.tolist()}
    return metrics, roc_curve_points(ok_sorted, positives_sorted), pro_plot


def _sortable(values: np.ndarray) -> np.ndarray:
    """Scores in a form that sorts and compares like them. float32 scores become their
    order-preserving uint32 keys (float32_keys): the sort path only ever compares scores and
    counts them, so ranks, ties and every count stay the same, and integer sorts and searches
    are the faster. float16 scores become (exactly equal) float32: NumPy's default sort of
    float16 arrays returns unsorted output on some CPUs (seen with NumPy 2.4.6 on an AMD EPYC,
    e.g. arrays with repeated negative values), which would silently break every sorted
    search."""
    if values.dtype == np.float32:
        return float32_keys(values)
    return values.astype(np.float32) if values.dtype == np.float16 else values


def float32_keys(values: np.ndarray) -> np.ndarray:
    """uint32 keys of float32 values with the same order and ties: -0 and +0 share a key
    (NaN is rejected when maps are read). Negatives count down from 2^31 by their magnitude's
    bits, the rest count up from it."""
    bits = values.view(np.uint32)
    magnitude = bits & np.uint32(0x7FFFFFFF)
    negative = bits >= np.uint32(0x80000000)
    return np.where(negative, np.uint32(0x80000000) - magnitude, bits | np.uint32(0x80000000))


def _mean(values: list[float | None]) -> float | None:
    """Unweighted mean over categories; undefined if any category's value is."""
    if not values or any(v is None for v in values):
        return None
    return float(np.mean(values))


# The exact PRO curve's bootstrap evaluates it at the distinct scores down to a FPR of the
# full category past the limit (ProMetric.exact_margin), at most this many of them.
EXACT_MAX_THRESHOLDS = 4096
# P-AUROC's pair counts use a dense (images x distinct positive scores) histogram up to this size.
PAIR_DENSE_CELLS = 1 << 23
# Images whose pair counts one dense product makes.
PAIR_BATCH = 16

BOOTSTRAP_NOTES = (
    "Images are resampled with replacement within each category, stratified by image label "
    "(good and anomalous images resampled separately, so both classes stay present); every "
    "metric of a category uses the same resampled images, and a replicate of the mean is the "
    "mean of the categories' replicates. I-AUROC and P-AUROC are recomputed exactly on each "
    "replicate (P-AUROC from per-image-pair counts of correctly ordered pixel pairs). AUPRO is "
    "bootstrapped conditionally on its thresholds, held at those of the full category: "
    "AUPRO@0.3 at the protocol's 100 sampled thresholds (FPR = the replicate's share of "
    "anomaly-free pixels ranked above the threshold's position), AUPRO@0.3-exact at the full "
    "category's distinct scores down to FPR 0.5 (at most 4096 of them, evenly spaced, when "
    "there are more); the curves' FPR and region overlap are reweighted by how often each "
    "image was drawn. Categories with fewer than min_units test images have no interval, and "
    "then neither has the mean.")
# Protocol v2's two metrics are resampled the same way (the notes of its records say so).
BOOTSTRAP_NOTES_V2 = BOOTSTRAP_NOTES[:-1] + (
    "; AUPRO@0.01 at its 99 sampled thresholds and AUPRO@0.01-exact at the full category's "
    "distinct scores down to FPR 0.05 (at most 4096 of them), in the same way.")


def bootstrap_replicates(task: AnomalyTask, predictions: AnomalyPredictions,
                         labels: AnomalyLabels, board_id: str,
                         resamples: int = bootstrap.RESAMPLES,
                         pro: tuple[ProMetric, ...] = PRO_V1) -> bootstrap.Bootstrap:
    """Replicates of every metric of every category with at least MIN_UNITS test images,
    and of their mean when every category has them."""
    seed = bootstrap.board_seed(board_id)
    per_category = _each_category(
        task, predictions, labels,
        lambda inputs: _category_replicates(inputs, seed, resamples, pro))
    return _bootstrap(task, per_category, seed, resamples, pro)


def _category_replicates(inputs: _CategoryInputs, seed: int, resamples: int,
                         pro: tuple[ProMetric, ...]) -> dict | None:
    """A category's replicates (None below MIN_UNITS images); its own stream, so the
    categories can be resampled in any order."""
    if inputs.n < bootstrap.MIN_UNITS:
        return None
    anomalous = inputs.labels.astype(bool)
    counts = bootstrap.stratified_counts(
        seed, inputs.name, {"good": np.flatnonzero(~anomalous),
                            "anomalous": np.flatnonzero(anomalous)},
        inputs.n, resamples)
    values: dict[str, np.ndarray | None] = {m: None for m in _names(pro)}
    if anomalous.any() and not anomalous.all():
        values["I-AUROC"] = bootstrap.auc_replicates(inputs.scores, anomalous, counts)
    if inputs.has_maps:
        values.update(_pixel_replicates(inputs.maps, inputs.masks, counts, inputs.pixels, pro))
    return values


def _bootstrap(task: AnomalyTask, per_category: list, seed: int,
               resamples: int, pro: tuple[ProMetric, ...]) -> bootstrap.Bootstrap:
    replicates: bootstrap.Replicates = {
        c: v for c, v in zip(task.categories, per_category) if v is not None}
    if replicates and len(replicates) == len(task.categories):
        replicates["mean"] = {}
        for metric in _names(pro):
            per_category = [replicates[c][metric] for c in task.categories]
            replicates["mean"][metric] = (None if any(r is None for r in per_category)
                                          else np.mean(per_category, axis=0))
    notes = BOOTSTRAP_NOTES if pro == PRO_V1 else BOOTSTRAP_NOTES_V2
    return bootstrap.Bootstrap(bootstrap.settings(seed, "image", notes, resamples), replicates)


def _pixel_replicates(maps: np.ndarray, masks: np.ndarray, counts: np.ndarray,
                      inputs: _PixelInputs | None = None,
                      pro: tuple[ProMetric, ...] = PRO_V1) -> dict:
    inputs = inputs or _PixelInputs(maps, masks)
    n = len(maps)
    flat_masks = masks.reshape(n, -1)
    n_pos = flat_masks.sum(axis=1).astype(np.float64)
    n_neg = flat_masks.shape[1] - n_pos
    out: dict[str, np.ndarray | None] = {}
    if not n_pos.sum() or not n_neg.sum():
        return out
    if maps.dtype == np.float16:
        return _pixel_replicates_from_counts(inputs, n_pos, n_neg, counts, pro)
    negatives = inputs.negatives
    out["P-AUROC"] = bootstrap.pair_count_auc(_ordered_pairs(maps, masks, negatives),
                                              n_pos, n_neg, counts)
    regions = inputs.regions
    if regions.count:
        region_counts = np.bincount(regions.image, minlength=n).astype(np.float64)
        ok_sorted = inputs.ok_sorted
        for metric in pro:
            area = _sampled_aupro if metric.thresholds is not None else _exact_aupro
            out[metric.name] = area(negatives, ok_sorted, n_neg, regions, region_counts,
                                    counts, metric)
    return out


def _ordered_pairs(maps: np.ndarray, masks: np.ndarray, negatives: list[np.ndarray]):
    """pairs[i, j]: (positive pixel of image i, negative pixel of image j) pairs where the
    positive scores higher, plus one half per tie (exact: integers and halves). Positive
    pixels are grouped by distinct value, which float16 maps have few of."""
    n = len(maps)
    owner = np.repeat(np.arange(n), masks.reshape(n, -1).sum(axis=1))
    values, inverse = np.unique(_sortable(maps[masks]), return_inverse=True)
    inverse = inverse.ravel()
    u = len(values)
    dense = n * u <= PAIR_DENSE_CELLS
    if dense:  # positives of image i per distinct value
        hist = np.bincount(owner * u + inverse, minlength=n * u).reshape(n, u).astype(np.float64)
    pairs = np.zeros((n, n))
    for j, negative in enumerate(negatives):
        twice = _twice_below(values, negative)
        pairs[:, j] = (hist @ twice if dense
                       else np.bincount(owner, weights=twice[inverse], minlength=n)) / 2
    return pairs


def _twice_below(values: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """For each of the distinct ascending ``values``: the sorted ``negative`` scores below it
    plus those at most it, as float64. Each negative is looked up among the values (sorted
    needles, which NumPy's search narrows from the last hit) instead of every value among
    the negatives: the values are the more numerous."""
    u = len(values)
    if not u:
        return np.zeros(0)
    lower = np.searchsorted(values, negative, side="left")  # values below each negative
    # A negative is at most values[k] when k or fewer values are below it: cumulated counts
    # of `lower`. It is also below values[k] unless it equals values[k] (then lower == k).
    at_most = np.cumsum(np.bincount(lower, minlength=u + 1)[:u])
    tied = lower[values[np.minimum(lower, u - 1)] == negative]
    return (2 * at_most - np.bincount(tied, minlength=u)).astype(np.float64)


def _region_table(regions: Regions, thresholds: np.ndarray, side: str, n: int) -> np.ndarray:
    """(images, thresholds): the summed overlap of each image's regions with the pixels
    scoring above each (ascending) threshold: strictly above with side='left', at least
    it with side='right'."""
    t = len(thresholds)
    if regions.scores.dtype == np.uint16:  # keys: search every key once, then look up
        passed = np.searchsorted(thresholds, np.arange(KEYS), side=side)[regions.scores]
    else:
        passed = np.searchsorted(thresholds, regions.scores, side=side)
    table = np.zeros((n, t))
    # A few images' regions at a time: a (regions x thresholds) histogram of a whole category
    # can take tens of MB. Regions and their pixels come in image order, so each group is a
    # slice of both, and every row is computed and added as it would be in one go.
    first_region = np.searchsorted(regions.image, np.arange(n + 1))
    first_pixel = np.searchsorted(regions.image[regions.ids], np.arange(n + 1))
    for images in _image_chunks(n, 1, (t + 1) * int(np.diff(first_region).max(initial=1))):
        r0, r1 = first_region[images.start], first_region[images.stop]
        p0, p1 = first_pixel[images.start], first_pixel[images.stop]
        hist = np.bincount((regions.ids[p0:p1] - r0) * (t + 1) + passed[p0:p1],
                           minlength=(r1 - r0) * (t + 1)).reshape(r1 - r0, t + 1)
        above = np.cumsum(hist[:, ::-1], axis=1)[:, ::-1][:, 1:]
        np.add.at(table, regions.image[r0:r1], above / regions.sizes[r0:r1, None])
    return table


def _replicate_aupro(fpr_table, n_neg, pro_table, region_counts, counts, prepend_origin,
                     limit: float = PRO_LIMIT):
    """Weighted curves (thresholds ascending, so FPR descending) -> AUPRO@limit per replicate.
    Thresholds below the highest one at which every replicate is past the limit add nothing
    to any area, nor do the curves' points after it: both are cut."""
    with np.errstate(invalid="ignore", divide="ignore"):
        fpr_den = counts @ n_neg
        pro_den = counts @ region_counts
        past = _last_column_past(fpr_table, fpr_den, counts, limit)
    start = max(past, 0)
    fpr_table, pro_table = fpr_table[:, start:], pro_table[:, start:]
    # With a cut, the last point kept is that threshold's (the first every row has past the
    # limit, in ascending FPR); without one, the closing (1, 1).
    keep = int(prepend_origin) + fpr_table.shape[1] + (past < 0)
    areas = np.empty(len(counts))
    for rows in _row_chunks(len(counts)):
        with np.errstate(invalid="ignore", divide="ignore"):
            fprs = (counts[rows] @ fpr_table) / fpr_den[rows, None]
            pros = (counts[rows] @ pro_table) / pro_den[rows, None]
        x, y = _curves(fprs, pros, prepend_origin, keep)
        areas[rows] = np.where(np.isfinite(y).all(axis=1) & np.isfinite(x).all(axis=1),
                               bootstrap.area_up_to(x, y, limit) / limit, np.nan)
    return areas


# Element-wise work on (replicates x thresholds) matrices is done this many rows at a time:
# whole, a category's curves and their temporaries would take a hundred MB or more.
ROW_CHUNK = 64


def _row_chunks(n: int) -> list[slice]:
    return [slice(start, min(n, start + ROW_CHUNK)) for start in range(0, n, ROW_CHUNK)]


def _last_column_past(fpr_table, fpr_den, counts, limit: float = PRO_LIMIT) -> int:
    """The highest threshold column at which every replicate's FPR (counts @ fpr_table /
    fpr_den) is at least ``limit``; -1 if there is none. Each replicate's FPR falls as the
    thresholds rise (the table counts pixels above them), so bisection finds its last such
    column without the whole (replicates x thresholds) product. Every numerator is a sum of
    integers, exact in any order: these are the product's values."""
    low = np.full(len(counts), -1)  # each replicate's last column past, in [low, high]
    high = np.full(len(counts), fpr_table.shape[1] - 1)
    while (low < high).any():
        mid = (low + high + 1) // 2
        with np.errstate(invalid="ignore", divide="ignore"):
            fpr = np.einsum("ij,ji->i", counts, fpr_table[:, mid]) / fpr_den
        past = fpr >= limit
        low, high = np.where(past, mid, low), np.where(past, high, mid - 1)
    return int(low.min()) if len(low) else -1


def _curves(fprs, pros, prepend_origin: bool, keep: int):
    """The replicates' curves in ascending FPR, closed by (1, 1) and, with prepend_origin,
    opened by (0, 0); their first ``keep`` points."""
    b = len(fprs)
    parts_x = [fprs[:, ::-1], np.ones((b, 1))]
    parts_y = [pros[:, ::-1], np.ones((b, 1))]
    if prepend_origin:
        parts_x.insert(0, np.zeros((b, 1)))
        parts_y.insert(0, np.zeros((b, 1)))
    x, y = np.concatenate(parts_x, axis=1), np.concatenate(parts_y, axis=1)
    return x[:, :keep], y[:, :keep]


def _sampled_aupro(negatives, ok_sorted, n_neg, regions, region_counts, counts,
                   metric: ProMetric = PRO_V1[0]):
    """The metric's thresholds (100 for AUPRO@0.3) t = ok_sorted[p] at positions p of the category's sorted
    anomaly-free scores; FPR at p is the share of anomaly-free pixels sorted after position p.
    Image j's part of that: its pixels above t, plus its part of the pixels tied with t that
    a stable sort of the images' pixels (in image order) puts after p."""
    positions = np.linspace(0, len(ok_sorted) - 1, num=metric.thresholds, dtype=int)
    thresholds = ok_sorted[positions]
    at_most = np.stack([np.searchsorted(neg, thresholds, side="right") for neg in negatives])
    below = np.stack([np.searchsorted(neg, thresholds, side="left") for neg in negatives])
    fpr_table = _sampled_fpr_table(at_most, below, positions, n_neg)
    pro_table = _region_table(regions, thresholds, "left", len(negatives))
    return _replicate_aupro(fpr_table, n_neg, pro_table, region_counts, counts,
                            prepend_origin=False, limit=metric.limit)


def _sampled_fpr_table(at_most, below, positions, n_neg):
    """(images, thresholds): each image's anomaly-free pixels sorted after each position,
    from its counts of pixels at most / below each threshold."""
    ties = at_most - below
    after_ties = at_most.sum(axis=0) - 1 - positions  # tied pixels sorted after position p
    later_images = np.cumsum(ties[::-1], axis=0)[::-1] - ties  # ties of images after j
    tied_after = np.clip(after_ties[None, :] - later_images, 0, ties)
    return (n_neg[:, None] - at_most + tied_after).astype(np.float64)


def _distinct_sorted(values: np.ndarray) -> np.ndarray:
    """The distinct values of a sorted array (np.unique without its sort)."""
    return values[np.concatenate([[True], values[1:] != values[:-1]])]


def _exact_aupro(negatives, ok_sorted, n_neg, regions, region_counts, counts,
                 metric: ProMetric = PRO_V1[1]):
    """The exact curve's points (FPR = share of anomaly-free pixels scoring at least the
    value, PRO likewise) at the full category's distinct scores down to the metric's
    exact_margin."""
    floor = ok_sorted[max(0, len(ok_sorted) - int(np.floor(metric.exact_margin
                                                           * len(ok_sorted))) - 1)]
    tail = ok_sorted[np.searchsorted(ok_sorted, floor, "left"):]
    # np.unique would hash uint32 keys (slow); sorting and dropping repeats is not.
    region_values = _distinct_sorted(np.sort(regions.scores[regions.scores >= floor]))
    values = _distinct_sorted(np.sort(np.concatenate([_distinct_sorted(tail), region_values]),
                                      kind="stable"))  # two sorted runs: a merge
    if len(values) > EXACT_MAX_THRESHOLDS:
        values = values[np.linspace(0, len(values) - 1, EXACT_MAX_THRESHOLDS).astype(int)]
    fpr_table = np.stack([len(neg) - np.searchsorted(neg, values, side="left")
                          for neg in negatives]).astype(np.float64)
    pro_table = _region_table(regions, values, "right", len(negatives))
    return _replicate_aupro(fpr_table, n_neg, pro_table, region_counts, counts,
                            prepend_origin=True, limit=metric.limit)


# float16 maps: everything from counts ---------------------------------------------------------
# A float16 score has one of 65,536 bit patterns, so the category's scores can be counted per
# order-preserving 16-bit key instead of sorted: every quantity above (ranks, ties, pixels
# above a threshold) is a cumulative count. The results are the same integers, hence the same
# floats (no sort of float16 data is ever used: NumPy's is unreliable on some CPUs).

KEYS = 1 << 16
# Images are counted in chunks of at most this many histogram cells, to bound memory.
COUNT_CELLS = 1 << 17


def order_keys(values: np.ndarray) -> np.ndarray:
    """uint16 keys of float16 values with the same order and ties: -0 and +0 share a key
    (NaN is rejected when maps are read)."""
    bits = values.view(np.uint16)
    magnitude = bits & np.uint16(0x7FFF)
    negative = bits >= np.uint16(0x8000)
    return np.where(negative, np.uint16(0x8000) - magnitude, np.uint16(0x8000) + magnitude)


# The key of every float16 bit pattern: keys are one table look-up away, and a histogram of
# bit patterns becomes one of keys by moving its cells.
KEY_OF_BITS = order_keys(np.arange(KEYS, dtype=np.uint16).view(np.float16))


def _bit_histogram_to_keys(by_bits: np.ndarray) -> np.ndarray:
    by_keys = np.zeros(KEYS, dtype=np.int64)
    by_keys[KEY_OF_BITS] = by_bits
    by_keys[KEY_OF_BITS[0]] = by_bits[0] + by_bits[0x8000]  # +0 and -0 share a key
    return by_keys


def _bits(maps: np.ndarray) -> np.ndarray:
    return maps.view(np.uint16).reshape(-1)


class KeyCounts:
    """A category's anomaly-free (negative) and anomalous (positive) pixels counted per key,
    with the keys and owners of the positive pixels (few, kept for per-image counts)."""

    def __init__(self, negative: np.ndarray, positive: np.ndarray, positive_keys: np.ndarray,
                 positive_owner: np.ndarray) -> None:
        self.negative, self.positive = negative, positive
        self.positive_keys, self.positive_owner = positive_keys, positive_owner
        self.n_neg, self.n_pos = int(negative.sum()), int(positive.sum())
        self.neg_at_most = np.cumsum(negative)   # [k]: negatives with key <= k
        self.neg_below = self.neg_at_most - negative
        self.pos_below = np.cumsum(positive) - positive

    @classmethod
    def of(cls, maps: np.ndarray, masks: np.ndarray) -> KeyCounts:
        n = len(maps)
        negative = np.zeros(KEYS, dtype=np.int64)
        positive = np.zeros(KEYS, dtype=np.int64)
        keys_of_positives, owners = [], []
        for rows in _image_chunks(n, maps[0].size, KEYS):
            bits = _bits(maps[rows])
            chosen = bits[masks[rows].reshape(-1)]
            negative += np.bincount(bits, minlength=KEYS)
            positive += np.bincount(chosen, minlength=KEYS)
            keys_of_positives.append(KEY_OF_BITS[chosen])
            owners.append(np.repeat(np.arange(rows.start, rows.stop),
                                    masks[rows].reshape(rows.stop - rows.start, -1).sum(axis=1)))
        negative = _bit_histogram_to_keys(negative - positive)
        positive = _bit_histogram_to_keys(positive)
        return cls(negative, positive, np.concatenate(keys_of_positives),
                   np.concatenate(owners))

    def negative_key_at(self, positions: np.ndarray) -> np.ndarray:
        """The key of the anomaly-free pixel at each position of their ascending order."""
        return np.searchsorted(self.neg_at_most, positions, side="right")


def _image_chunks(n: int, pixels: int, cells: int):
    """Slices of images with at most about COUNT_CELLS pixels or histogram cells each."""
    step = max(1, COUNT_CELLS // max(pixels, cells))
    return [slice(start, min(n, start + step)) for start in range(0, n, step)]


def _pixel_metrics_from_counts(counted: KeyCounts, regions: Regions,
                               pro: tuple[ProMetric, ...]):
    metrics: dict = {"P-AUROC": _count_auc(counted)}
    pro_plot: dict = {}
    if regions.count and counted.n_neg:
        for metric in pro:
            if metric.thresholds is None:
                fprs, pros = _count_pro_exact(counted, regions, metric.limit)
            else:
                fprs, pros = _count_pro_sampled(counted, regions, metric.thresholds)
            metrics[metric.name] = trapezoid(fprs, pros, metric.limit) / metric.limit
        fprs, pros = _count_pro_sampled(counted, regions, PLOT_POINTS)
        pro_plot = {"fpr": fprs.tolist(), "pro": pros.tolist()}
    return metrics, _count_roc_points(counted), pro_plot


def _count_auc(counted: KeyCounts) -> float | None:
    """auc_against_sorted_negatives from counts: the same two integers."""
    if not counted.n_neg or not counted.n_pos:
        return None
    below = int(counted.positive @ counted.neg_below)
    not_above = int(counted.positive @ counted.neg_at_most)
    return float(below + not_above) / (2.0 * counted.n_pos * counted.n_neg)


def _count_roc_points(counted: KeyCounts, n_points: int = 200) -> dict[str, list[float]]:
    """roc_curve_points from counts."""
    if not counted.n_neg or not counted.n_pos:
        return {}
    picks = [np.searchsorted(np.cumsum(hist), np.linspace(0, total - 1, n_points // 2,
                                                          dtype=int), side="right")
             for hist, total in ((counted.negative, counted.n_neg),
                                 (counted.positive, counted.n_pos))]
    thresholds = np.unique(np.concatenate(picks))[::-1]
    fpr = 1 - counted.neg_below[thresholds] / counted.n_neg
    tpr = 1 - counted.pos_below[thresholds] / counted.n_pos
    return {"fpr": [0.0, *fpr.tolist(), 1.0], "tpr": [0.0, *tpr.tolist(), 1.0]}


def _count_pro_sampled(counted: KeyCounts, regions: Regions, num_thresholds: int):
    """pro_curve_sampled from counts (the regions' scores are keys)."""
    positions = np.linspace(0, counted.n_neg - 1, num=num_thresholds, dtype=int)
    fprs = 1.0 - (positions + 1) / counted.n_neg
    pros = regions.overlap_above(counted.negative_key_at(positions))
    return np.concatenate([fprs[::-1], [1.0]]), np.concatenate([pros[::-1], [1.0]])


def _count_pro_exact(counted: KeyCounts, regions: Regions, fpr_limit: float):
    """pro_curve_exact with a limit, from counts: a point at every key present, from the
    one where the anomaly-free share at or above passes the limit upwards."""
    n_ok = counted.n_neg
    weights = 1.0 / (regions.sizes[regions.ids] * regions.count)
    # Summed in extended precision: the result is then the exact sum rounded once, whatever
    # order the pixels come in.
    per_key = np.bincount(regions.scores, weights=weights, minlength=KEYS)
    weight_below = np.concatenate([[0.0], np.cumsum(per_key, dtype=np.longdouble)])
    floor_key = counted.negative_key_at(max(0, n_ok - int(np.floor(fpr_limit * n_ok)) - 1))
    values = _present_keys(counted.negative, regions, floor_key)[::-1]
    fprs = (n_ok - counted.neg_below[values]) / n_ok
    pros = (weight_below[-1] - weight_below[values]).astype(np.float64)
    np.clip(fprs, None, 1.0, out=fprs)
    np.clip(pros, None, 1.0, out=pros)
    return np.concatenate([[0.0], fprs, [1.0]]), np.concatenate([[0.0], pros, [1.0]])


def _present_keys(negative: np.ndarray, regions: Regions, floor_key: int) -> np.ndarray:
    """Ascending keys from floor_key up that an anomaly-free or region pixel has."""
    present = negative > 0
    present[regions.scores] = True
    present[:floor_key] = False
    return np.flatnonzero(present)


def _pixel_replicates_from_counts(inputs: _PixelInputs, n_pos, n_neg, counts,
                                  pro: tuple[ProMetric, ...] = PRO_V1) -> dict:
    """_pixel_replicates from counts: the same tables, so the same replicates. Every PRO
    metric's thresholds are read off in the same pass over the images (their columns side by
    side in one table)."""
    maps, masks = inputs.maps, inputs.masks
    n = len(maps)
    counted, regions = inputs.counted, inputs.regions
    keys, positions = {}, {}
    for metric in pro:
        if metric.thresholds is not None:
            positions[metric.name] = np.linspace(0, counted.n_neg - 1, num=metric.thresholds,
                                                 dtype=int)
            keys[metric.name] = counted.negative_key_at(positions[metric.name])
        elif regions.count:
            keys[metric.name] = _exact_threshold_keys(counted, regions, metric)
    sampled_names = [m.name for m in pro if m.name in positions]
    exact_names = [m.name for m in pro if m.name in keys and m.name not in positions]
    columns = _column_slices(keys, sampled_names) | _column_slices(keys, exact_names)
    joined = [np.concatenate([keys[m] for m in names]) if names else np.zeros(0, np.int64)
              for names in (sampled_names, exact_names)]
    tables = _per_image_counts(maps, masks, counted, *joined)
    out: dict[str, np.ndarray | None] = {
        "P-AUROC": bootstrap.pair_count_auc(tables.pairs, n_pos, n_neg, counts)}
    if regions.count:
        region_counts = np.bincount(regions.image, minlength=n).astype(np.float64)
        for metric in pro:
            cut = columns[metric.name]
            if metric.thresholds is not None:
                fpr_table = _sampled_fpr_table(tables.sampled_at_most[:, cut],
                                               tables.sampled_below[:, cut],
                                               positions[metric.name], n_neg)
                pro_table = _region_table(regions, keys[metric.name], "left", n)
            else:
                fpr_table = (n_neg[:, None] - tables.exact_below[:, cut]).astype(np.float64)
                pro_table = _region_table(regions, keys[metric.name], "right", n)
            out[metric.name] = _replicate_aupro(fpr_table, n_neg, pro_table, region_counts,
                                                counts, prepend_origin=metric.thresholds is None,
                                                limit=metric.limit)
    return out


def _column_slices(keys: dict, names: list[str]) -> dict[str, slice]:
    """Where each metric's thresholds sit among the joined columns of ``names``."""
    out, start = {}, 0
    for name in names:
        out[name] = slice(start, start + len(keys[name]))
        start += len(keys[name])
    return out


def _exact_threshold_keys(counted: KeyCounts, regions: Regions,
                          metric: ProMetric = PRO_V1[1]) -> np.ndarray:
    """The keys _exact_aupro's thresholds have: present keys down to the metric's
    exact_margin."""
    n_ok = counted.n_neg
    floor_key = counted.negative_key_at(max(0, n_ok - int(np.floor(metric.exact_margin * n_ok))
                                            - 1))
    values = _present_keys(counted.negative, regions, floor_key)
    if len(values) > EXACT_MAX_THRESHOLDS:
        values = values[np.linspace(0, len(values) - 1, EXACT_MAX_THRESHOLDS).astype(int)]
    return values


class _ImageTables:
    """Per-image counts of anomaly-free pixels at the thresholds, and the pair counts."""

    def __init__(self, n: int, sampled: int, exact: int) -> None:
        self.pairs = np.zeros((n, n))
        self.sampled_at_most = np.zeros((n, sampled), dtype=np.int64)
        self.sampled_below = np.zeros((n, sampled), dtype=np.int64)
        self.exact_below = np.zeros((n, exact), dtype=np.int64)


def _per_image_counts(maps, masks, counted: KeyCounts, sampled, exact) -> _ImageTables:
    """One pass over the images, a chunk at a time: each image's anomaly-free pixels counted
    per key (keys renumbered to the ones present), cumulated, read at the thresholds and at
    the positive pixels' keys (for _ordered_pairs' counts)."""
    n = len(maps)
    present = (counted.negative + counted.positive) > 0
    rank = np.cumsum(present) - 1  # key -> index among the present keys
    rank_of_bits = rank[KEY_OF_BITS]
    u = int(present.sum())
    positive_values = np.flatnonzero(counted.positive)
    inverse = np.searchsorted(positive_values, counted.positive_keys)
    owner = counted.positive_owner
    dense = n * len(positive_values) <= PAIR_DENSE_CELLS
    if dense:  # positives of image i per distinct value
        hist = np.bincount(owner * len(positive_values) + inverse,
                           minlength=n * len(positive_values))
        hist = hist.reshape(n, len(positive_values)).astype(np.float64)
    tables = _ImageTables(n, len(sampled), len(exact))
    pending: list[np.ndarray] = []  # twice counts of images first.. not yet in a product
    first = 0
    for rows in _image_chunks(n, maps[0].size, 2 * u):
        c = rows.stop - rows.start
        index = rank_of_bits[_bits(maps[rows])].reshape(c, -1)
        index += (np.arange(c)[:, None] * 2 + masks[rows].reshape(c, -1)) * u
        negative = np.bincount(index.ravel(), minlength=2 * c * u).reshape(c, 2, u)[:, 0]
        at_most = np.cumsum(negative, axis=1)
        below = at_most - negative
        tables.sampled_at_most[rows] = at_most[:, rank[sampled]]
        tables.sampled_below[rows] = below[:, rank[sampled]]
        tables.exact_below[rows] = below[:, rank[exact]]
        columns = rank[positive_values]
        twice = (below[:, columns] + at_most[:, columns]).astype(np.float64)
        if not dense:
            tables.pairs[:, rows] = np.stack(
                [np.bincount(owner, weights=t[inverse], minlength=n) for t in twice], axis=1) / 2
            continue
        # The product reads all of `hist` whatever the number of images: a few chunks at a
        # time, it is read a few times instead of once per chunk. Its values are sums of
        # integer products, exact however BLAS groups them.
        pending.append(twice)
        if rows.stop - first >= PAIR_BATCH or rows.stop == n:
            tables.pairs[:, first:rows.stop] = hist @ np.concatenate(pending).T / 2
            pending.clear()
            first = rows.stop
    return tables
