"""FORB's AP@k, mAP@k and t-mAP@k: hand-computed cases and a property test against the
direct transcription in reference_forb.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluator.metrics.retrieval import (
    TMAP_FPRS,
    average_precision_at_k,
    ood_thresholds,
    relevance,
)
from tests import reference_forb as ref


def ap(gt: list[int], candidates: list[int], k: int, scores=None, threshold=None) -> float:
    """AP of one query through the vectorised code path."""
    width = max(1, len(candidates))
    cands = np.full((1, width), -1, dtype=np.int64)
    cands[0, : len(candidates)] = candidates
    kept = cands >= 0
    if threshold is not None:
        s = np.full((1, width), -np.inf)
        s[0, : len(scores)] = scores
        kept &= s >= threshold
    rel = relevance(cands, np.zeros(len(gt), dtype=np.int64), np.asarray(gt, dtype=np.int64))
    return float(average_precision_at_k(rel, kept, np.array([len(gt)]), k)[0])


@pytest.mark.parametrize(
    ("gt", "candidates", "k", "expected"),
    [
        ([7], [7, 1, 2], 1, 1.0),                  # hit at rank 1
        ([7], [1, 2, 7], 1, 0.0),                  # hit outside the top 1
        ([7], [1, 2, 7], 5, 1 / 3),                # P@3 = 1/3, |G| = 1
        ([1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5], 5, 5 / 6),   # logo, six answers: capped at 5/6
        ([1, 2, 3], [1, 9, 2], 5, (1 + 2 / 3) / 3),  # P@1 = 1, P@3 = 2/3, divided by |G| = 3
        ([1, 2, 3], [9, 1], 1, 0.0),
        ([4, 5], [5, 4], 1, 1 / 2),                # one of two answers at k = 1
        ([7], [], 5, 0.0),                         # empty list
        ([], [], 5, 1.0),                          # empty ground truth, empty list
        ([], [3], 5, 0.0),                         # empty ground truth, something returned
    ],
)
def test_hand_computed_average_precision(gt, candidates, k, expected):
    assert ap(gt, candidates, k) == pytest.approx(expected, abs=1e-15)
    assert ref.average_precision(set(gt), candidates, k) == pytest.approx(expected, abs=1e-15)


def test_tie_at_threshold_keeps_every_tied_candidate():
    # Scores 0.5, 0.5, 0.4 with threshold 0.5: both tied candidates stay (score >= t).
    assert ap([2], [1, 2, 3], 5, scores=[0.5, 0.5, 0.4], threshold=0.5) == pytest.approx(0.5)
    # Filtering re-ranks: with the first candidate dropped the answer moves to rank 1.
    assert ap([2], [1, 2], 1, scores=[0.3, 0.3], threshold=0.31) == 0.0
    # Empty ground truth after filtering everything away scores 1.
    assert ap([], [1, 2], 5, scores=[0.2, 0.1], threshold=0.5) == 1.0


def test_thresholds_hand_computed():
    # N = 4 top scores; FPR 0 -> m = 4 (the largest), FPR 0.5 -> m = 2, FPR 1 -> -1.
    tops = np.array([0.9, 0.1, 0.5, 0.7])
    ts = ood_thresholds(tops)
    assert ts[0] == 0.9 and ts[5] == 0.5 and ts[10] == -1.0
    assert ts[3] == 0.7  # ceil(0.7 * 4) = 3 -> third smallest
    assert ts == ref.thresholds([[0.9], [0.1], [0.5], [0.7]])


def test_empty_ood_list_counts_as_minus_one():
    assert ref.thresholds([[], [0.2]])[0] == 0.2
    assert ood_thresholds(np.array([-1.0, 0.2]))[9] == -1.0


def test_float_threshold_index_equals_exact_integer_ceiling():
    # FORB computes ceil((1 - fpr) * N) in floating point; for every N up to real FORB sizes
    # this equals the exact ceiling, so the integer transcription is the same definition.
    for n in range(1, 20001):
        for j, fpr in enumerate(TMAP_FPRS[:-1]):
            assert math.ceil((1 - fpr) * n) == -(-(10 - j) * n // 10)


@st.composite
def retrieval_problem(draw):
    """Queries with 0-6 answers, ranked lists of 0-12 unique candidates with non-increasing
    scores drawn from a small set (so ties and threshold hits are common)."""
    n_db = draw(st.integers(3, 25))
    n_q = draw(st.integers(1, 12))
    levels = st.sampled_from([-1.5, -1.0, 0.0, 0.25, 0.5, 0.75, 1.0])
    gts, lists, scores, oods = [], [], [], []
    for _ in range(n_q):
        gts.append(set(draw(st.lists(st.integers(0, n_db - 1), max_size=6, unique=True))))
        cands = draw(st.lists(st.integers(0, n_db - 1), max_size=12, unique=True))
        lists.append(cands)
        scores.append(sorted(draw(st.lists(levels, min_size=len(cands), max_size=len(cands))),
                             reverse=True))
        oods.append(sorted(draw(st.lists(levels, max_size=4)), reverse=True))
    return gts, lists, scores, oods


@settings(max_examples=300, deadline=None)
@given(retrieval_problem())
def test_vectorised_metrics_match_transcription(problem):
    gts, lists, scores, oods = problem
    n_q = len(gts)
    width = max(1, max(len(c) for c in lists))
    cands = np.full((n_q, width), -1, dtype=np.int64)
    s = np.full((n_q, width), -np.inf)
    for q in range(n_q):
        cands[q, : len(lists[q])] = lists[q]
        s[q, : len(scores[q])] = scores[q]
    gt_query = np.array([q for q in range(n_q) for _ in gts[q]], dtype=np.int64)
    gt_ids = np.array([g for q in range(n_q) for g in sorted(gts[q])], dtype=np.int64)
    n_gt = np.array([len(g) for g in gts])
    rel = relevance(cands, gt_query, gt_ids)
    tops = np.array([max(o) if o else -1.0 for o in oods])
    ts = ood_thresholds(tops)
    assert ts == ref.thresholds(oods)
    for k in (1, 5):
        got = average_precision_at_k(rel, cands >= 0, n_gt, k).mean()
        assert got == pytest.approx(ref.mean_average_precision(gts, lists, k), abs=1e-12)
        curve = [average_precision_at_k(rel, (cands >= 0) & (s >= t), n_gt, k).mean()
                 for t in ts]
        want_tmap, want_curve = ref.thresholded_map(gts, lists, scores, ts, k)
        assert np.allclose(curve, want_curve, atol=1e-12, rtol=0)
        assert float(np.mean(curve)) == pytest.approx(want_tmap, abs=1e-12)
