"""The count-based scoring of float16 maps (histograms over order-preserving 16-bit keys)
equals the reference transcriptions and the sort-based path to 1e-12: scores, curves and
bootstrap replicates, with ties, all-equal maps, images without defects and one-class
categories."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from evaluator.anomaly import scoring
from evaluator.metrics import bootstrap as bs
from tests import reference_anomaly as ref


def _category(seed: int, n: int = 12, size: int = 16, levels: int | None = None):
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, size, size), dtype=bool)
    for i in range(n):
        if i % 3:  # every third image has no defect
            y, x = rng.integers(0, size - 4, size=2)
            masks[i, y:y + int(rng.integers(1, 5)), x:x + int(rng.integers(1, 5))] = True
    maps = rng.normal(0, 1, (n, size, size)) + masks * rng.uniform(0.5, 2, (n, 1, 1))
    if levels:  # few distinct values: many ties, negative values and both zeros
        maps = np.round(maps * levels / 4) / (levels / 4)
        maps[maps == 0] = np.where(rng.random((maps == 0).sum()) < 0.5, -0.0, 0.0)
    return maps.astype(np.float16), masks


def _counts(masks: np.ndarray, resamples: int = 40) -> np.ndarray:
    anomalous = masks.reshape(len(masks), -1).any(axis=1)
    return bs.stratified_counts(7, "c", {"good": np.flatnonzero(~anomalous),
                                         "anomalous": np.flatnonzero(anomalous)},
                                len(masks), resamples)


def _assert_paths_agree(maps: np.ndarray, reference: np.ndarray, masks: np.ndarray,
                        bitwise_replicates: bool) -> dict:
    """Scores, curves and replicates of ``maps`` against ``reference`` (the same values in a
    dtype that takes the plain sorting path); returns the scores of ``maps``."""
    got_sheet = scoring._pixel_metrics(maps, masks)
    want_sheet = scoring._pixel_metrics(reference, masks)
    assert got_sheet[0].keys() == want_sheet[0].keys()
    for metric, want in want_sheet[0].items():
        got = got_sheet[0][metric]
        assert (got is None) == (want is None), metric
        if want is not None:
            assert got == pytest.approx(want, abs=1e-12), metric
    assert got_sheet[1] == want_sheet[1]  # ROC plot points: the same integers
    for key in want_sheet[2]:
        assert np.allclose(got_sheet[2][key], want_sheet[2][key], rtol=0, atol=1e-12)
    counts = _counts(masks)
    got = scoring._pixel_replicates(maps, masks, counts)
    want = scoring._pixel_replicates(reference, masks, counts)
    assert got.keys() == want.keys()
    for metric in want:
        if bitwise_replicates:
            assert np.array_equal(got[metric], want[metric], equal_nan=True), metric
        else:
            assert np.array_equal(np.isnan(got[metric]), np.isnan(want[metric])), metric
            assert np.allclose(got[metric], want[metric], rtol=0, atol=1e-12, equal_nan=True)
    return got_sheet[0]


def _assert_same_as_sorting(maps16: np.ndarray, masks: np.ndarray) -> dict:
    """The float16 (count) path against the float32 (sort) path on the same values."""
    return _assert_paths_agree(maps16, maps16.astype(np.float32), masks,
                               bitwise_replicates=False)


def test_order_keys_sort_like_the_values_and_merge_the_zeros():
    bits = np.arange(1 << 16, dtype=np.uint16)
    values = bits.view(np.float16)
    finite = np.isfinite(values)
    keys = scoring.order_keys(values[finite]).astype(np.int64)
    as_float = values[finite].astype(np.float64)
    order = np.argsort(as_float, kind="stable")
    assert np.all(np.diff(keys[order]) >= 0)
    assert np.array_equal(np.diff(keys[order]) == 0, np.diff(as_float[order]) == 0)
    assert np.array_equal(scoring.KEY_OF_BITS[bits[finite]], scoring.order_keys(values[finite]))


@pytest.mark.parametrize("seed, levels", [(0, None), (1, 8), (2, 3), (3, None)])
def test_counts_equal_sorting_and_the_reference(seed, levels):
    maps, masks = _category(seed, levels=levels)
    metrics = _assert_same_as_sorting(maps, masks)
    exact = maps.astype(np.float64)
    assert metrics["P-AUROC"] == pytest.approx(roc_auc_score(masks.ravel(), exact.ravel()),
                                               abs=1e-12)
    fprs, pros = ref.pro_sampled(exact, masks)
    assert metrics["AUPRO@0.3"] == pytest.approx(ref.area_up_to(fprs, pros, 0.3) / 0.3,
                                                 abs=1e-12)
    fprs, pros = ref.pro_exact(exact, masks)
    assert metrics["AUPRO@0.3-exact"] == pytest.approx(ref.area_up_to(fprs, pros, 0.3) / 0.3,
                                                       abs=1e-12)


def test_all_equal_maps():
    maps, masks = _category(4)
    metrics = _assert_same_as_sorting(np.full_like(maps, 0.25), masks)
    assert metrics["P-AUROC"] == 0.5


def test_a_category_without_any_defect_has_no_pixel_metric():
    maps, masks = _category(5)
    masks[:] = False
    metrics, roc, pro = scoring._pixel_metrics(maps, masks)
    assert metrics["P-AUROC"] is None and roc == {} and pro == {}
    assert "AUPRO@0.3" not in metrics
    assert scoring._pixel_replicates(maps, masks, _counts(masks)) == {}


def test_a_category_of_defect_pixels_only_has_no_pixel_metric():
    maps, masks = _category(6)
    masks[:] = True
    assert scoring._pixel_metrics(maps, masks)[0]["P-AUROC"] is None
    assert scoring._pixel_replicates(maps, masks, _counts(masks)) == {}


def test_every_image_anomalous_and_more_keys_than_the_dense_pair_table(monkeypatch):
    maps, masks = _category(7, n=10, size=24)
    masks[:, 2:5, 2:5] = True  # every image has a defect
    _assert_same_as_sorting(maps, masks)
    monkeypatch.setattr(scoring, "PAIR_DENSE_CELLS", 1)
    monkeypatch.setattr(scoring, "COUNT_CELLS", 1)  # one image per chunk
    _assert_same_as_sorting(maps, masks)


@pytest.mark.parametrize("batch", [1, 3, 5, 100])
def test_dense_pair_products_over_batches_of_chunks_equal_sorting(monkeypatch, batch):
    maps, masks = _category(8, n=13, size=20)
    monkeypatch.setattr(scoring, "COUNT_CELLS", 1)  # one image per chunk
    monkeypatch.setattr(scoring, "PAIR_BATCH", batch)  # 13 images: a partial last batch
    _assert_paths_agree(maps, maps.astype(np.float32), masks, bitwise_replicates=True)


def test_float32_maps_keep_the_sorted_path_and_match_the_reference():
    maps16, masks = _category(8)
    rng = np.random.default_rng(8)
    maps = (maps16.astype(np.float32) + rng.normal(0, 1e-3, maps16.shape)).astype(np.float32)
    metrics = scoring._pixel_metrics(maps, masks)[0]
    fprs, pros = ref.pro_exact(maps.astype(np.float64), masks)
    assert metrics["AUPRO@0.3-exact"] == pytest.approx(ref.area_up_to(fprs, pros, 0.3) / 0.3,
                                                       abs=1e-12)
    assert metrics["P-AUROC"] == pytest.approx(roc_auc_score(masks.ravel(), maps.ravel()),
                                               abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_twice_below_counts_what_two_searches_count(seed):
    """_ordered_pairs' per-image counts (negatives looked up among the values) equal the
    negatives' counts below and at most each value, ties and both zeros included."""
    rng = np.random.default_rng(seed)
    negative = np.sort(np.round(rng.normal(0, 1, 300) * 4) / 4).astype(np.float32)
    negative[negative == 0] = -0.0
    values = np.unique(np.round(rng.normal(0.5, 1, 80) * 4) / 4).astype(np.float32)
    want = (np.searchsorted(negative, values, side="left")
            + np.searchsorted(negative, values, side="right"))
    assert np.array_equal(scoring._twice_below(values, negative), want)
    assert len(scoring._twice_below(values[:0], negative)) == 0


@pytest.mark.parametrize("seed", range(4))
def test_last_column_past_is_the_highest_column_every_replicate_passes(seed):
    """The bisection finds what testing every column of the whole product finds."""
    rng = np.random.default_rng(seed)
    n, t = 9, 57
    # Per image, pixels above ascending thresholds: non-increasing along a row.
    fpr_table = np.sort(rng.integers(0, 100, (n, t)), axis=1)[:, ::-1].astype(np.float64)
    n_neg = fpr_table[:, 0] + rng.integers(0, 50, n)
    counts = rng.integers(0, 3, (30, n)).astype(np.float64)
    counts[0] = 0  # a replicate without pixels: FPR undefined, so no column is past for all
    for rows in (slice(1, None), slice(None)):
        with np.errstate(invalid="ignore", divide="ignore"):
            fprs = (counts[rows] @ fpr_table) / (counts[rows] @ n_neg)[:, None]
        past = np.flatnonzero((fprs >= scoring.PRO_LIMIT).all(axis=0))
        want = past[-1] if len(past) else -1
        assert scoring._last_column_past(fpr_table, counts[rows] @ n_neg, counts[rows]) == want


def test_float32_keys_sort_like_the_values_and_merge_the_zeros():
    rng = np.random.default_rng(11)
    special = [0, 1, 2, 3, 0x80000000, 0x80000001, 0x80000002, 0x80000003,  # zeros, denormals
               0x7F800000, 0xFF800000, 0x7F7FFFFF, 0xFF7FFFFF]  # infinities, extremes
    bits = np.concatenate([rng.integers(0, 1 << 32, 200_000, dtype=np.uint64),
                           special]).astype(np.uint32)
    values = bits.view(np.float32)
    values = values[~np.isnan(values)]
    keys = scoring.float32_keys(values).astype(np.int64)
    as_float = values.astype(np.float64)
    order = np.argsort(as_float, kind="stable")
    assert np.all(np.diff(keys[order]) >= 0)
    assert np.array_equal(np.diff(keys[order]) == 0, np.diff(as_float[order]) == 0)
    assert scoring.float32_keys(np.array([-0.0, 0.0], dtype=np.float32)).tolist() == [1 << 31] * 2


def _float32_category(seed: int, kind: str):
    maps16, masks = _category(seed, levels=8 if kind == "ties" else None)
    rng = np.random.default_rng(seed)
    maps = maps16.astype(np.float32)
    if kind == "fine":  # (almost) all distinct, negative and positive
        maps = (maps + rng.normal(0, 1e-3, maps.shape)).astype(np.float32)
    elif kind == "denormals":  # tiny values of both signs, both zeros, ties among them
        tiny = rng.integers(-6, 7, maps.shape) * np.float32(1e-45)
        maps = np.where(rng.random(maps.shape) < 0.6, tiny, maps).astype(np.float32)
        maps[rng.random(maps.shape) < 0.05] = -0.0
    elif kind == "equal":
        maps = np.full_like(maps, -0.0)
        maps[:, ::2] = 0.0
    return maps, masks


@pytest.mark.parametrize("seed, kind", [(20, "fine"), (21, "ties"), (22, "denormals"),
                                        (23, "equal"), (24, "ties")])
def test_float32_keys_path_equals_sorting_the_values(seed, kind):
    """float32 maps (scored on uint32 keys) against the same values as float64 (sorted as
    floats): the same scores, curves and, bitwise, the same replicates."""
    maps, masks = _float32_category(seed, kind)
    scores = _assert_paths_agree(maps, maps.astype(np.float64), masks, bitwise_replicates=True)
    if kind == "equal":
        assert scores["P-AUROC"] == 0.5
