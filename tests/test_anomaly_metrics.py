"""I-AUROC, P-AUROC and AUPRO: hand-computed cases, scikit-learn, and property tests against
the transcriptions in reference_anomaly.py."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from evaluator.anomaly.maps import resize_bilinear
from evaluator.metrics.anomaly import (
    Regions,
    auc_against_sorted_negatives,
    pro_curve_exact,
    pro_curve_sampled,
    roc_auc,
    trapezoid,
)
from tests import reference_anomaly as ref


def aupro(maps, masks, exact=False):
    ok_sorted = np.sort(maps[~masks])
    regions = Regions(masks, maps)
    if exact:
        fprs, pros = pro_curve_exact(ok_sorted, regions, fpr_limit=0.3)
    else:
        fprs, pros = pro_curve_sampled(ok_sorted, regions)
    return trapezoid(fprs, pros, 0.3) / 0.3


def test_two_blobs_touching_at_a_corner_are_one_region():
    mask = np.zeros((1, 4, 4), dtype=bool)
    mask[0, 0, 0] = mask[0, 1, 1] = True        # diagonal neighbours: 8-connected
    mask[0, 3, 3] = True                         # separate
    regions = Regions(mask, np.zeros((1, 4, 4), dtype=np.float32))
    assert regions.count == 2 and sorted(regions.sizes.tolist()) == [1, 2]


def test_one_pixel_region_is_found_above_the_threshold_only():
    maps = np.zeros((1, 3, 3), dtype=np.float32)
    masks = np.zeros((1, 3, 3), dtype=bool)
    masks[0, 1, 1] = True
    maps[0, 1, 1] = 0.5
    regions = Regions(masks, maps)
    assert regions.overlap_above(np.array([0.0, 0.49, 0.5, 0.7])).tolist() == [1, 1, 0, 0]


def test_tied_scores_count_half():
    assert roc_auc(np.array([0.5, 0.5]), np.array([0, 1])) == 0.5
    scores, labels = np.array([0.1, 0.5, 0.5, 0.9]), np.array([0, 0, 1, 1])
    assert roc_auc(scores, labels) == pytest.approx(0.875)  # (1 + 0.5 + 1 + 1) / 4
    assert roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-15)


def test_auroc_is_undefined_for_a_single_class():
    assert roc_auc(np.array([0.1, 0.2]), np.array([0, 0])) is None
    assert auc_against_sorted_negatives(np.array([]), np.array([0.3])) is None


def test_trapezoid_interpolates_the_last_piece():
    # Area from 0 to 0.3 under (0,0)-(0.2,1)-(0.4,1): 0.1 + 0.1.
    assert trapezoid([0, 0.2, 0.4], [0, 1, 1], 0.3) == pytest.approx(0.2)
    assert trapezoid([0, 0.3, 0.4], [0, 1, 1], 0.3) == pytest.approx(0.15)  # limit hit exactly
    assert ref.area_up_to([0, 0.2, 0.4], [0, 1, 1], 0.3) == pytest.approx(0.2)


def test_perfect_and_inverted_maps():
    masks = np.zeros((2, 8, 8), dtype=bool)
    masks[0, 2:4, 2:5] = True
    perfect = masks.astype(np.float32)
    assert aupro(perfect, masks) == pytest.approx(1.0)
    assert aupro(perfect, masks, exact=True) == pytest.approx(1.0)
    assert aupro(1 - perfect, masks, exact=True) == pytest.approx(0.0)


def test_bilinear_resize_matches_torch_values():
    # torch.nn.functional.interpolate([[0, 1], [2, 3]], size=4, mode="bilinear",
    # align_corners=False) gives these values (half-pixel centres, clamped at the border).
    small = np.array([[0, 1], [2, 3]], dtype=np.float32)
    expected = [[0.0, 0.25, 0.75, 1.0], [0.5, 0.75, 1.25, 1.5],
                [1.5, 1.75, 2.25, 2.5], [2.0, 2.25, 2.75, 3.0]]
    assert np.allclose(resize_bilinear(small, 4), expected)
    rng = np.random.default_rng(0)
    for shape in [(7, 5), (300, 224), (224, 224), (13, 400)]:
        values = rng.random(shape).astype(np.float32)
        assert np.allclose(resize_bilinear(values, 16 if shape != (224, 224) else 224),
                           ref.bilinear(values, 16 if shape != (224, 224) else 224), atol=1e-6)


@st.composite
def maps_and_masks(draw):
    """A few small maps with scores from a small set (many ties) and random masks."""
    n, h, w = draw(st.integers(1, 3)), draw(st.integers(2, 6)), draw(st.integers(2, 6))
    levels = st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.75, 1.0])
    maps = np.array(draw(st.lists(levels, min_size=n * h * w, max_size=n * h * w)),
                    dtype=np.float32).reshape(n, h, w)
    masks = np.array(draw(st.lists(st.booleans(), min_size=n * h * w, max_size=n * h * w)),
                     dtype=bool).reshape(n, h, w)
    return maps, masks


@settings(max_examples=200, deadline=None)
@given(maps_and_masks())
def test_pixel_metrics_match_transcriptions(data):
    maps, masks = data
    if masks.all() or not masks.any():
        return
    labels = masks.ravel()
    ours = auc_against_sorted_negatives(np.sort(maps[~masks]), maps[masks])
    assert ours == pytest.approx(roc_auc_score(labels, maps.ravel()), abs=1e-12)
    assert ours == pytest.approx(ref.auroc(maps.ravel(), labels), abs=1e-12)

    ok_sorted = np.sort(maps[~masks])
    regions = Regions(masks, maps)
    fprs, pros = pro_curve_sampled(ok_sorted, regions)
    want_fprs, want_pros = ref.pro_sampled(maps, masks)
    assert np.allclose(fprs, want_fprs, atol=1e-12) and np.allclose(pros, want_pros, atol=1e-12)
    assert trapezoid(fprs, pros, 0.3) == pytest.approx(
        ref.area_up_to(want_fprs, want_pros, 0.3), abs=1e-12)

    full_fprs, full_pros = ref.pro_exact(maps, masks)
    assert np.allclose(pro_curve_exact(ok_sorted, regions)[0], full_fprs, atol=1e-12)
    assert np.allclose(pro_curve_exact(ok_sorted, regions)[1], full_pros, atol=1e-12)
    limited = pro_curve_exact(ok_sorted, regions, fpr_limit=0.3)
    assert trapezoid(*limited, 0.3) == pytest.approx(
        ref.area_up_to(full_fprs, full_pros, 0.3), abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0.0, 0.3, 0.3, 0.7, 1.0]), st.booleans()),
                min_size=1, max_size=40))
def test_image_auroc_matches_scikit_learn(pairs):
    scores = np.array([p[0] for p in pairs])
    labels = np.array([p[1] for p in pairs], dtype=int)
    ours = roc_auc(scores, labels)
    if labels.min() == labels.max():
        assert ours is None
    else:
        assert ours == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_labels_keep_masks_packed_and_unpack_them_exactly():
    from evaluator.anomaly.labels import AnomalyLabels

    rng = np.random.default_rng(3)
    masks = rng.random((5, 7, 9)) < 0.3  # 63 pixels: not a whole number of bytes
    labels = AnomalyLabels.of_masks(masks, masks.reshape(5, -1).any(axis=1).astype(np.int8), "x")
    assert labels.packed.dtype == np.uint8 and labels.packed.shape == (5, 8)
    assert np.array_equal(labels.masks, masks)
    assert np.array_equal(labels.masks_of(slice(1, 4)), masks[1:4])
