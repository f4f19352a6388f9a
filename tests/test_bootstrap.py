"""Bootstrap intervals: the vectorised replicates equal a loop-by-loop transcription drawing the
same indices; intervals behave (zero width for a constant, contain the estimate, a pair with
itself is [0, 0]); records keep only interval ends, reproduce them exactly, and old records
without them still verify."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from evaluator.anomaly import scoring as ad_scoring
from evaluator.cli import main
from evaluator.forb import synthetic, writers
from evaluator.forb.labels import load_labels
from evaluator.forb.predictions import locate, read_predictions_file
from evaluator.forb.scoring import (
    METRIC_NAMES,
    bootstrap_replicates,
    per_query_values,
    score,
    slice_membership,
)
from evaluator.forb.task import load_task
from evaluator.metrics import bootstrap as bs
from evaluator.metrics.anomaly import roc_auc, trapezoid
from evaluator.validation.report import ValidationReport
from tests import reference_anomaly as ref
from tests.forb_data import ENTRY_METADATA, REAL_METADATA, write_tiny_forb

B = 40  # resamples in the loop-checked tests


def loop_indices(seed: int, name: str, n: int, resamples: int) -> list[list[int]]:
    """The documented draw, one index at a time: raw 64-bit outputs of the stream, mod n."""
    generator = bs.stream(seed, name)
    return [[int(generator.random_raw()) % n for _ in range(n)] for _ in range(resamples)]


def expand(counts_row: np.ndarray) -> list[int]:
    return [i for i, c in enumerate(counts_row) for _ in range(int(c))]


# Generic functions ----------------------------------------------------------------------------

def test_resampled_means_equal_the_loop(monkeypatch):
    rng = np.random.default_rng(0)
    values = rng.random((23, 3))
    # Small chunks: the result must not depend on how replicates are chunked.
    monkeypatch.setattr(bs, "MEAN_CHUNK_CELLS", 50)
    got = bs.resample_means(values, 7, "slice", B)
    for b, idx in enumerate(loop_indices(7, "slice", 23, B)):
        assert got[b] == pytest.approx(values[idx].mean(axis=0), abs=1e-14)
    assert np.array_equal(bs.resample_means(values, 7, "slice", B), got)  # same seed, same
    assert not np.array_equal(bs.resample_means(values, 8, "slice", B), got)


def test_stratified_counts_keep_each_stratum_size():
    strata = {"good": np.array([0, 3, 4]), "anomalous": np.array([1, 2, 5, 6, 7])}
    counts = bs.stratified_counts(3, "cat", strata, 8, B)
    assert np.all(counts[:, strata["good"]].sum(axis=1) == 3)
    assert np.all(counts[:, strata["anomalous"]].sum(axis=1) == 5)
    good = loop_indices(3, "cat/good", 3, B)
    for b in range(B):
        want = np.bincount(strata["good"][good[b]], minlength=8)
        assert np.array_equal(counts[b, strata["good"]], want[strata["good"]])


def test_weighted_auc_equals_roc_auc_score_on_each_resample():
    rng = np.random.default_rng(1)
    scores = np.round(rng.random(30), 1)  # many ties
    positive = rng.random(30) < 0.4
    strata = {"good": np.flatnonzero(~positive), "anomalous": np.flatnonzero(positive)}
    counts = bs.stratified_counts(5, "c", strata, 30, B)
    got = bs.auc_replicates(scores, positive, counts)
    for b in range(B):
        idx = expand(counts[b])
        assert got[b] == roc_auc(scores[idx], positive[idx])  # both count exactly
        assert got[b] == pytest.approx(roc_auc_score(positive[idx], scores[idx]), abs=1e-12)


def test_percentile_interval_behaves():
    assert bs.percentile_interval(np.full(100, 0.25)) == [0.25, 0.25]
    values = np.arange(1001) / 1000
    assert bs.percentile_interval(values) == pytest.approx([0.025, 0.975])
    assert bs.percentile_interval(np.array([0.1, np.nan])) is None
    assert bs.percentile_interval(None) is None


def test_area_up_to_equals_trapezoid_row_by_row():
    rng = np.random.default_rng(2)
    x = np.sort(np.concatenate([rng.random((6, 9)), np.zeros((6, 1)), np.ones((6, 1))],
                               axis=1), axis=1)
    x[2, 3:5] = 0.3  # points exactly at the limit, and a vertical step
    x[2] = np.sort(x[2])
    y = np.sort(rng.random(x.shape), axis=1)
    got = bs.area_up_to(x, y, 0.3)
    for row in range(len(x)):
        assert got[row] == pytest.approx(trapezoid(x[row], y[row], 0.3), abs=1e-14)


# FORB ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def forb(tmp_path_factory):
    meta = write_tiny_forb(tmp_path_factory.mktemp("meta"), seed=4, queries_per_type=8)
    task = load_task(meta)
    labels = load_labels(meta, task)
    out = tmp_path_factory.mktemp("preds")
    files, arrays = [], []
    for i, hit_rate in enumerate((0.8, 0.4)):
        run = synthetic.generate(task, labels, n_candidates=8, seed=20 + i, hit_rate=hit_rate,
                                 tie_rate=0.3)
        path = writers.write_predictions_file(run, task, out / f"p{i}" / "predictions.ndjson")
        report = ValidationReport()
        arrays.append(read_predictions_file(locate(path)[1], task, report))
        assert report.ok
        files.append(path)
    return meta, task, labels, files, arrays


def test_forb_per_query_values_average_to_the_scores(forb):
    _, task, labels, _, arrays = forb
    values = per_query_values(task, arrays[0], labels)
    sheet = score(task, arrays[0], labels)
    for name, mask in slice_membership(task, labels).items():
        if mask.any():
            for i, metric in enumerate(METRIC_NAMES):
                assert values[mask, i].mean() == pytest.approx(sheet.scores[name][metric],
                                                               abs=1e-12)


def test_forb_replicates_equal_the_loop_and_pairs_share_indices(forb):
    _, task, labels, _, arrays = forb
    first = bootstrap_replicates(task, arrays[0], labels, "forb-v1", resamples=B)
    second = bootstrap_replicates(task, arrays[1], labels, "forb-v1", resamples=B)
    seed = bs.board_seed("forb-v1")
    assert first.settings["seed"] == seed and first.settings["resamples"] == B
    masks = slice_membership(task, labels)
    values = [per_query_values(task, a, labels) for a in arrays]
    assert "overall" in first.replicates
    for name, metrics in first.replicates.items():
        members = np.flatnonzero(masks[name])
        assert len(members) >= bs.MIN_UNITS
        for b, idx in enumerate(loop_indices(seed, name, len(members), B)):
            for i, metric in enumerate(METRIC_NAMES):
                assert metrics[metric][b] == pytest.approx(values[0][members[idx], i].mean(),
                                                           abs=1e-12)
                diff = values[0][members[idx], i] - values[1][members[idx], i]
                assert metrics[metric][b] - second.replicates[name][metric][b] == \
                    pytest.approx(diff.mean(), abs=1e-12)
    small = [n for n, m in masks.items() if 0 < m.sum() < bs.MIN_UNITS]
    assert small and not set(small) & set(first.replicates)  # too few queries: no interval
    intervals = first.intervals()
    assert all(low <= high for metrics in intervals.values() for low, high in metrics.values())
    # The interval holds the estimate in typical cases (here: the overall slice).
    sheet = score(task, arrays[0], labels)
    for metric, (low, high) in intervals["overall"].items():
        assert low <= sheet.scores["overall"][metric] <= high
    itself = bs.paired_intervals(first, first)
    assert itself and all(v == [0.0, 0.0] for m in itself.values() for v in m.values())
    paired = bs.paired_intervals(first, second)
    flipped = bs.paired_intervals(second, first)
    for name, metrics in paired.items():
        for metric, (low, high) in metrics.items():
            assert flipped[name][metric] == pytest.approx([-high, -low], abs=1e-12)


def walk_lists(value, found):
    if isinstance(value, list):
        found.append(value)
    elif isinstance(value, dict):
        for item in value.values():
            walk_lists(item, found)
    return found


def test_records_hold_intervals_only_reproduce_them_and_pair_siblings(forb, tmp_path, capsys):
    meta, task, _, files, _ = forb
    folder = tmp_path / "submissions" / "forb"
    entries = []
    for i, path in enumerate(files):
        entry = folder / f"entry-{i}"
        entry.mkdir(parents=True)
        (entry / "metadata.json").write_text(json.dumps(ENTRY_METADATA))
        shutil.copy(path, entry / "predictions.ndjson")
        entries.append(entry)
    for entry in entries:
        assert main(["evaluate", "--entry", str(entry), "--labels", str(meta)]) == 0
    out = capsys.readouterr().out
    assert "overall, 95 % bootstrap intervals (1000 resamples by query, seed" in out
    first = json.loads((entries[0] / "records" / "forb-v1.json").read_text())
    second = json.loads((entries[1] / "records" / "forb-v1.json").read_text())
    assert first["schema"] == "leaderboard-evaluation/2"
    assert first["bootstrap"]["resamples"] == 1000 and first["bootstrap"]["unit"] == "query"
    assert first["paired"] == {} and list(second["paired"]) == ["entry-0"]
    assert set(second["paired"]["entry-0"]) == set(second["intervals"])
    # Only aggregates: every list outside the curves is an interval's two ends.
    for record in (first, second):
        assert set(record) == {"schema", "benchmark", "board", "entry", "primary_metric",
                               "scores", "counts", "curves", "bootstrap", "intervals", "paired",
                               "provenance"}
        lists = walk_lists({k: record[k] for k in ("intervals", "paired", "bootstrap")}, [])
        assert lists and all(len(v) == 2 and all(isinstance(x, float) for x in v)
                             for v in lists)
        assert max(len(v) for v in walk_lists(record["curves"], [])) == 11
    # Re-evaluating reproduces the intervals exactly and confirms the record.
    record_file = entries[1] / "records" / "forb-v1.json"
    before = record_file.read_bytes()
    again = tmp_path / "again.json"
    assert main(["evaluate", "--entry", str(entries[1]), "--labels", str(meta),
                 "--json", str(again)]) == 0
    assert "record verified" in capsys.readouterr().out
    assert record_file.read_bytes() == before
    recomputed = json.loads(again.read_text())
    assert recomputed["intervals"] == second["intervals"]
    assert "paired" not in recomputed  # a verified record is never rewritten: no pairing
    # Paired intervals are never compared; intervals are.
    edited = json.loads(before)
    edited["paired"] = {"someone-else": {"overall": {"mAP@1": [0.0, 0.1]}}}
    record_file.write_text(json.dumps(edited))
    assert main(["evaluate", "--entry", str(entries[1]), "--labels", str(meta)]) == 0
    edited["intervals"]["overall"]["mAP@1"][0] -= 0.01
    record_file.write_text(json.dumps(edited))
    assert main(["evaluate", "--entry", str(entries[1]), "--labels", str(meta)]) == 4
    assert "different bootstrap intervals" in capsys.readouterr().err
    # A record from before intervals (format /1) still verifies on its scores alone.
    old = json.loads(before)
    for key in ("bootstrap", "intervals", "paired"):
        del old[key]
    old["schema"] = "leaderboard-evaluation/1"
    record_file.write_text(json.dumps(old))
    assert main(["evaluate", "--entry", str(entries[1]), "--labels", str(meta)]) == 0
    old["scores"]["overall"]["mAP@1"] += 0.01
    record_file.write_text(json.dumps(old))
    assert main(["evaluate", "--entry", str(entries[1]), "--labels", str(meta)]) == 4


@pytest.mark.skipif(not REAL_METADATA.is_dir(),
                    reason=f"real FORB metadata not found at {REAL_METADATA}")
def test_the_committed_record_without_intervals_still_verifies(tmp_path, capsys):
    committed = Path(__file__).resolve().parents[1] / "submissions" / "forb" / "random-ranking"
    record = json.loads((committed / "records" / "forb-v1.json").read_text())
    if "intervals" in record:
        pytest.skip("the committed record has intervals now")
    entry = tmp_path / "submissions" / "forb" / "random-ranking"
    shutil.copytree(committed, entry)
    assert main(["evaluate", "--entry", str(entry), "--labels", str(REAL_METADATA)]) == 0
    assert "record verified" in capsys.readouterr().out
    assert json.loads((entry / "records" / "forb-v1.json").read_text()) == record


# Anomaly detection ------------------------------------------------------------------------------

def _anomaly_category(seed: int, n: int = 12, size: int = 10, dtype=np.float32):
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, size, size), dtype=bool)
    anomalous = np.arange(n) % 3 != 0
    for i in np.flatnonzero(anomalous):
        for _ in range(int(rng.integers(1, 3))):
            y, x = rng.integers(0, size - 3, size=2)
            masks[i, y:y + int(rng.integers(1, 4)), x:x + int(rng.integers(1, 4))] = True
    maps = (rng.random((n, size, size)) * 0.7 + masks * rng.uniform(0.1, 0.6, (n, 1, 1)))
    scores = maps.reshape(n, -1).max(axis=1) + rng.normal(0, 0.2, n)
    return maps.astype(dtype), masks, anomalous, scores


def _loop_aupro(maps, masks, idx, thresholds, sampled: bool):
    """The conditional bootstrap's AUPRO@0.3 of the replicate drawing images ``idx``, threshold
    by threshold at the full category's thresholds."""
    xs, ys = ref.replicate_pro_points(maps, masks, idx, thresholds, sampled)
    return ref.area_up_to(xs, ys, 0.3) / 0.3


def test_anomaly_replicates_equal_the_loop():
    maps, masks, anomalous, scores = _anomaly_category(3)
    n = len(maps)
    counts = bs.stratified_counts(9, "cat", {"good": np.flatnonzero(~anomalous),
                                             "anomalous": np.flatnonzero(anomalous)}, n, 12)
    got = ad_scoring._pixel_replicates(maps, masks, counts)
    image = bs.auc_replicates(scores, anomalous, counts)
    ok_sorted = np.sort(maps[~masks])
    sampled_t = ok_sorted[np.linspace(0, len(ok_sorted) - 1, 100, dtype=int)]
    floor = ok_sorted[len(ok_sorted) - int(np.floor(0.5 * len(ok_sorted))) - 1]
    exact_t = np.union1d(ok_sorted[ok_sorted >= floor], maps[masks & (maps >= floor)])
    assert len(exact_t) <= ad_scoring.EXACT_MAX_THRESHOLDS
    for b in range(len(counts)):
        idx = expand(counts[b])
        assert image[b] == roc_auc(scores[idx], anomalous[idx])
        assert got["P-AUROC"][b] == pytest.approx(
            roc_auc_score(masks[idx].ravel(), maps[idx].ravel()), abs=1e-12)
        assert got["AUPRO@0.3"][b] == pytest.approx(
            _loop_aupro(maps, masks, idx, sampled_t, sampled=True), abs=1e-12)
        assert got["AUPRO@0.3-exact"][b] == pytest.approx(
            _loop_aupro(maps, masks, idx, exact_t, sampled=False), abs=1e-12)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_anomaly_replicate_of_every_image_once_is_the_score(dtype):
    """Drawing each image once reproduces the reported value exactly, ties included (float16
    maps are full of them)."""
    from evaluator.anomaly.labels import AnomalyLabels
    from evaluator.anomaly.predictions import AnomalyPredictions

    maps, masks, anomalous, scores = _anomaly_category(5, n=14, size=24, dtype=dtype)

    class Task:  # one category, contiguous
        categories = ("cat",)
        category = np.zeros(len(maps), dtype=np.int64)
        n_samples = len(maps)

    sheet = ad_scoring.score(Task, AnomalyPredictions(scores, maps),
                             AnomalyLabels.of_masks(masks, anomalous.astype(np.int8), "x"))
    ones = np.ones((1, len(maps)))
    got = ad_scoring._pixel_replicates(maps, masks, ones)
    assert bs.auc_replicates(scores, anomalous, ones)[0] == sheet.scores["cat"]["I-AUROC"]
    for metric in ("P-AUROC", "AUPRO@0.3", "AUPRO@0.3-exact"):
        assert got[metric][0] == pytest.approx(sheet.scores["cat"][metric], abs=1e-12), metric
    labels = AnomalyLabels.of_masks(masks, anomalous.astype(np.int8), "x")
    boot = ad_scoring.bootstrap_replicates(Task, AnomalyPredictions(scores, maps), labels,
                                           "mvtec3d-ad-v1", resamples=200)
    assert set(boot.intervals()) == {"cat", "mean"}
    for metric, (low, high) in boot.intervals()["cat"].items():
        assert low <= sheet.scores["cat"][metric] <= high, metric
    assert boot.intervals()["mean"] == boot.intervals()["cat"]  # one category: its own mean


def test_anomaly_records_hold_intervals_and_pairs(tmp_path):
    from evaluator.anomaly import synthetic as ad_synthetic
    from evaluator.anomaly.datasets import MVTEC3D_LAYOUT

    root = tmp_path / "labels"
    samples = ad_synthetic.write_label_root(root, MVTEC3D_LAYOUT, per_category=12, mask_size=40,
                                            seed=1, good_fraction=0.3,
                                            categories=("bagel", "rope"))
    entries = []
    for i in range(2):
        entry = tmp_path / "submissions" / "mvtec3d-ad" / f"ad-{i}"
        ad_synthetic.write_predictions(entry / "predictions.ndjson.gz",
                                       ad_synthetic.prediction_lines(samples, map_size=32,
                                                                     seed=i))
        (entry / "metadata.json").write_text(json.dumps(
            {**ENTRY_METADATA, "board": "mvtec3d-ad", "modality": "RGB", "shots": "full"}))
        assert main(["evaluate", "--entry", str(entry), "--labels", str(root)]) == 0
        entries.append(entry)
    record = json.loads((entries[1] / "records" / "mvtec3d-ad-v1.json").read_text())
    assert record["bootstrap"]["unit"] == "image"
    assert set(record["intervals"]) == {"bagel", "rope", "mean"}
    for name, metrics in record["intervals"].items():
        assert set(metrics) == set(ad_scoring.METRIC_NAMES)
        for metric, (low, high) in metrics.items():
            assert low <= record["scores"][name][metric] + 1e-12 and low <= high
    assert set(record["paired"]) == {"ad-0"}
    assert set(record["paired"]["ad-0"]) == {"bagel", "rope", "mean"}
    lists = walk_lists({k: record[k] for k in ("intervals", "paired", "bootstrap")}, [])
    assert all(len(v) == 2 for v in lists)
    assert main(["evaluate", "--entry", str(entries[1]), "--labels", str(root)]) == 0


def test_float16_maps_with_repeated_negative_scores_score_exactly():
    """NumPy's default float16 sort returns unsorted arrays on some CPUs (NumPy 2.4.6, an AMD
    EPYC): scores and replicates sort exact float32 copies, so they agree with scikit-learn."""
    from evaluator.anomaly.labels import AnomalyLabels
    from evaluator.anomaly.predictions import AnomalyPredictions

    pattern = np.array([-0.5991, -0.5986, 0.3, -0.1], dtype=np.float16)
    rng = np.random.default_rng(0)
    n = 12
    maps = np.stack([rng.permutation(np.resize(pattern, 32 * 32)).reshape(32, 32)
                     for _ in range(n)]).astype(np.float16)
    masks = np.zeros_like(maps, dtype=bool)
    masks[n // 3:, 8:14, 8:14] = True
    maps[masks] = np.float16(0.3)
    maps[masks & (rng.random(maps.shape) < 0.5)] = np.float16(-0.1)
    anomalous = masks.reshape(n, -1).any(axis=1)

    class Task:
        categories = ("cat",)
        category = np.zeros(n, dtype=np.int64)
        n_samples = n

    predictions = AnomalyPredictions(rng.random(n), maps)
    labels = AnomalyLabels.of_masks(masks, anomalous.astype(np.int8), "x")
    sheet = ad_scoring.score(Task, predictions, labels)
    assert sheet.scores["cat"]["P-AUROC"] == pytest.approx(
        roc_auc_score(masks.ravel(), maps.ravel().astype(np.float32)), abs=1e-12)
    got = ad_scoring._pixel_replicates(maps, masks, np.ones((1, n)))
    for metric in ("P-AUROC", "AUPRO@0.3", "AUPRO@0.3-exact"):
        assert got[metric][0] == pytest.approx(sheet.scores["cat"][metric], abs=1e-12), metric
