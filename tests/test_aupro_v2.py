"""Protocol v2's AUPRO@0.01 (CFM's 99 sampled thresholds) and AUPRO@0.01-exact against the
definition written out in reference_aupro_cfm.py, on generated maps with ties, one-pixel
regions and several regions per image, for the sorting (float32) and counting (float16)
paths; and their bootstrap replicates against a loop over each resample."""

from __future__ import annotations

import numpy as np
import pytest

from evaluator.anomaly import scoring
from evaluator.metrics import bootstrap as bs
from tests import reference_anomaly
from tests import reference_aupro_cfm as cfm

V2 = scoring.PRO_V2


def _maps_and_masks(seed: int, n: int = 10, size: int = 32, levels: int | None = 64):
    """Masks with several regions per image (blobs and lone pixels, some touching only at a
    corner), a third of the images defect-free; maps scoring defects higher, rounded to
    ``levels`` steps per unit so that many pixels tie."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, size, size), dtype=bool)
    for i in range(n):
        if i % 3 == 0:
            continue
        for _ in range(int(rng.integers(1, 4))):  # blobs
            y, x = rng.integers(0, size - 5, size=2)
            masks[i, y:y + int(rng.integers(1, 5)), x:x + int(rng.integers(1, 5))] = True
        for _ in range(int(rng.integers(1, 4))):  # one-pixel regions
            y, x = rng.integers(0, size, size=2)
            masks[i, y, x] = True
    maps = rng.normal(0, 1, masks.shape) + masks * rng.uniform(0.5, 2.5, (n, 1, 1))
    if levels:
        maps = np.round(maps * levels) / levels
    return maps, masks


def test_the_generated_maps_have_what_the_cases_need():
    from scipy import ndimage

    maps, masks = _maps_and_masks(1)
    sizes, per_image = [], []
    for mask in masks:
        labeled, count = ndimage.label(mask, structure=np.ones((3, 3)))
        per_image.append(count)
        sizes += np.bincount(labeled.ravel())[1:].tolist()
    assert 1 in sizes and max(per_image) >= 3
    assert len(np.unique(maps)) < maps.size / 10  # ties everywhere


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_aupro_at_one_percent_equals_the_definition(seed, dtype):
    maps, masks = _maps_and_masks(seed)
    maps = maps.astype(dtype)
    got = scoring._pixel_metrics(maps, masks, pro=V2)[0]
    as_float = maps.astype(np.float64)
    assert got["AUPRO@0.01"] == pytest.approx(cfm.aupro(as_float, masks, 0.01, 99), abs=1e-12)
    assert got["AUPRO@0.01-exact"] == pytest.approx(cfm.aupro(as_float, masks, 0.01),
                                                    abs=1e-12)
    # v1's two are what they were, and the 0.3 reference agrees with them too.
    v1 = scoring._pixel_metrics(maps, masks)[0]
    assert {m: got[m] for m in v1} == v1
    assert v1["AUPRO@0.3"] == pytest.approx(cfm.aupro(as_float, masks, 0.3, 100), abs=1e-12)


def test_without_ties_and_with_every_pixel_of_a_region_above_every_normal_one():
    maps, masks = _maps_and_masks(4, n=6, size=20, levels=None)
    maps = maps.astype(np.float32)
    got = scoring._pixel_metrics(maps, masks, pro=V2)[0]
    assert got["AUPRO@0.01-exact"] == pytest.approx(cfm.aupro(maps, masks, 0.01), abs=1e-12)
    perfect = np.where(masks, 10.0, maps).astype(np.float32)
    got = scoring._pixel_metrics(perfect, masks, pro=V2)[0]
    assert got["AUPRO@0.01"] == pytest.approx(1.0) and got["AUPRO@0.01-exact"] == 1.0


def _loop_aupro(maps, masks, idx, thresholds, sampled: bool, limit: float) -> float:
    """AUPRO@limit of the images drawn (idx, with repeats) at fixed thresholds, region by
    region (maps without ties, so positions need no tie-breaking)."""
    xs, ys = reference_anomaly.replicate_pro_points(maps, masks, idx, thresholds, sampled)
    return cfm.area(xs, ys, limit) / limit


def test_replicates_of_aupro_at_one_percent_equal_the_loop():
    maps, masks = _maps_and_masks(5, n=12, size=24, levels=None)
    anomalous = masks.reshape(len(masks), -1).any(axis=1)
    counts = bs.stratified_counts(3, "cat", {"good": np.flatnonzero(~anomalous),
                                             "anomalous": np.flatnonzero(anomalous)},
                                  len(maps), 10)
    got = scoring._pixel_replicates(maps, masks, counts, pro=V2)
    ok_sorted = np.sort(maps[~masks])
    sampled_t = ok_sorted[np.linspace(0, len(ok_sorted) - 1, 99, dtype=int)]
    floor = ok_sorted[len(ok_sorted) - int(np.floor(0.05 * len(ok_sorted))) - 1]
    exact_t = np.union1d(ok_sorted[ok_sorted >= floor], maps[masks & (maps >= floor)])
    assert len(exact_t) <= scoring.EXACT_MAX_THRESHOLDS
    for b in range(len(counts)):
        idx = np.repeat(np.arange(len(maps)), counts[b].astype(int))
        assert got["AUPRO@0.01"][b] == pytest.approx(
            _loop_aupro(maps, masks, idx, sampled_t, True, 0.01), abs=1e-12)
        assert got["AUPRO@0.01-exact"][b] == pytest.approx(
            _loop_aupro(maps, masks, idx, exact_t, False, 0.01), abs=1e-12)
    v1 = scoring._pixel_replicates(maps, masks, counts)
    for metric, values in v1.items():  # v1's replicates are untouched by v2's metrics
        assert np.array_equal(values, got[metric], equal_nan=True)


@pytest.mark.parametrize("seed", [6, 7])
def test_float16_counts_give_the_replicates_of_sorting(seed):
    maps, masks = _maps_and_masks(seed, levels=32)
    maps16 = maps.astype(np.float16)
    anomalous = masks.reshape(len(masks), -1).any(axis=1)
    counts = bs.stratified_counts(4, "c", {"good": np.flatnonzero(~anomalous),
                                           "anomalous": np.flatnonzero(anomalous)},
                                  len(maps), 30)
    got = scoring._pixel_replicates(maps16, masks, counts, pro=V2)
    want = scoring._pixel_replicates(maps16.astype(np.float32), masks, counts, pro=V2)
    assert got.keys() == want.keys() >= {"AUPRO@0.01", "AUPRO@0.01-exact"}
    for metric in want:
        assert np.allclose(got[metric], want[metric], rtol=0, atol=1e-12, equal_nan=True)
