"""The bootstrap's per-category tables stay small whatever the number of replicates, regions
and thresholds: they are built a few rows or images at a time (two categories are scored at
once, so every MB here counts twice in a run's peak), and the chunks add up to what one
whole-category computation gives. Memory is measured with tracemalloc, which sees NumPy's
allocations: deterministic, unlike a timing."""

from __future__ import annotations

import tracemalloc
from functools import partial

import numpy as np

from evaluator.anomaly import scoring
from evaluator.metrics.anomaly import Regions

MB = 1 << 20


def _peak_bytes(work) -> tuple[object, int]:
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        result = work()
        return result, tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def _regions(n: int = 40, size: int = 64, per_image: int = 6, seed: int = 0) -> Regions:
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, size, size), dtype=bool)
    for i in range(n):
        for r in range(per_image):  # separate squares: per_image regions each
            y, x = 10 * r + 1, int(rng.integers(0, size - 8))
            masks[i, y:y + 8, x:x + 8] = True
    maps = rng.random((n, size, size)).astype(np.float32)
    return Regions(masks, maps)


def _region_table_in_one_go(regions: Regions, thresholds, side: str, n: int) -> np.ndarray:
    """The whole (regions x thresholds) histogram at once, as the table was first built."""
    t = len(thresholds)
    passed = np.searchsorted(thresholds, regions.scores, side=side)
    hist = np.bincount(regions.ids * (t + 1) + passed,
                       minlength=regions.count * (t + 1)).reshape(regions.count, t + 1)
    above = np.cumsum(hist[:, ::-1], axis=1)[:, ::-1][:, 1:]
    table = np.zeros((n, t))
    np.add.at(table, regions.image, above / regions.sizes[:, None])
    return table


def test_region_table_built_by_image_groups_equals_the_whole_table_and_stays_small():
    n = 40
    regions = _regions(n)
    thresholds = np.sort(np.random.default_rng(1).random(4096)).astype(np.float32)
    for side in ("left", "right"):
        table, peak = _peak_bytes(partial(scoring._region_table, regions, thresholds, side, n))
        assert np.array_equal(table, _region_table_in_one_go(regions, thresholds, side, n))
    # In one go the histogram, its cumulation and the overlaps take 3 x 240 x 4097 x 8 bytes
    # (24 MB); by groups of images, about a MB each, next to the 1.3 MB table.
    assert peak < 6 * MB, peak


def test_replicate_aupro_of_many_thresholds_does_not_hold_every_replicate_curve():
    rng = np.random.default_rng(2)
    n, t, resamples = 60, 4096, 1000
    n_neg = rng.integers(3000, 4000, n).astype(np.float64)
    # Anomaly-free pixels above ascending thresholds: falling counts per image.
    fpr_table = np.sort(rng.integers(0, 3000, (n, t)), axis=1)[:, ::-1].astype(np.float64)
    pro_table = np.sort(rng.random((n, t)), axis=1)[:, ::-1] * 2
    region_counts = np.full(n, 2.0)
    counts = rng.multinomial(n, np.full(n, 1 / n), size=resamples).astype(np.float64)
    areas, peak = _peak_bytes(lambda: scoring._replicate_aupro(
        fpr_table, n_neg, pro_table, region_counts, counts, prepend_origin=True))
    assert areas.shape == (resamples,) and np.isfinite(areas).all()
    # Every replicate's PRO curve at once is 1000 x 4096 x 8 bytes (33 MB); a chunk of rows
    # at a time is a few MB.
    assert peak < 12 * MB, peak
