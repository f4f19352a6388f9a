"""End to end on FORB-shaped data: both formats score identically, every slice matches the
transcription of the definitions, the JSON has the documented shape, and nothing label-derived
beyond aggregates reaches any output."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest

from evaluator.cli import main
from evaluator.forb import synthetic, writers
from evaluator.forb.labels import load_labels
from evaluator.forb.scoring import METRIC_NAMES, slice_names
from evaluator.forb.task import OBJECT_TYPES, load_task
from tests import reference_forb as ref
from tests.forb_data import ENTRY_METADATA, REAL_METADATA, write_tiny_forb

CANARY = "CANARY7f3a"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    meta = write_tiny_forb(tmp_path_factory.mktemp("meta"), seed=3, gt_marker=CANARY)
    task = load_task(meta)
    labels = load_labels(meta, task)
    run = synthetic.generate(task, labels, n_candidates=10, seed=5, hit_rate=0.7,
                             empty_rate=0.1, tie_rate=0.3)
    out = tmp_path_factory.mktemp("preds")
    native = writers.write_results_folder(run, task, out / "native")
    canonical = writers.write_predictions_file(run, task,
                                               out / "canonical" / "predictions.ndjson.gz")
    return meta, task, labels, run, native, canonical


def evaluate(tmp_path, predictions, meta, benchmark="forb") -> dict:
    out = tmp_path / f"{predictions.name}.json"
    code = main(["evaluate", "--benchmark", benchmark, "--predictions", str(predictions),
                 "--labels", str(meta), "--json", str(out)])
    assert code == 0
    return json.loads(out.read_text())


def test_both_formats_give_identical_scores(tiny, tmp_path):
    meta, _, _, _, native, canonical = tiny
    a = evaluate(tmp_path, native, meta)
    b = evaluate(tmp_path, canonical, meta)
    assert a["scores"] == b["scores"]
    assert a["curves"] == b["curves"]
    assert a["provenance"]["labels_digest"] == b["provenance"]["labels_digest"]
    assert a["provenance"]["predictions"]["format"] == "forb-retrieval-results"
    assert b["provenance"]["predictions"]["format"] == "forb-predictions"


def test_every_slice_matches_the_transcription(tiny, tmp_path):
    meta, task, labels, run, native, _ = tiny
    result = evaluate(tmp_path, native, meta)
    gts = [set() for _ in range(task.n_queries)]
    for q, g in zip(labels.gt_query, labels.gt_ids):
        gts[q].add(int(g))
    lists, scores = run.ids["all"], run.scores["all"]
    ts = ref.thresholds(run.scores["oods"])
    assert result["curves"]["t-mAP"]["threshold"] == ts
    difficulty = ["easy", "medium", "hard"]
    members = {"overall": list(range(task.n_queries))}
    for q in range(task.n_queries):
        t = OBJECT_TYPES[task.query_type[q]]
        d = difficulty[labels.difficulty[q]]
        for name in (d, t, f"{t}/{d}"):
            members.setdefault(name, []).append(q)
    assert set(result["scores"]) == set(slice_names())
    for name in slice_names():
        idx = members.get(name)
        got = result["scores"][name]
        if not idx:  # a slice without queries is reported as undefined, not 0
            assert all(v is None for v in got.values()) and result["counts"][name] == 0
            continue
        assert result["counts"][name] == len(idx)
        for k in (1, 5):
            want = ref.mean_average_precision([gts[q] for q in idx], [lists[q] for q in idx], k)
            assert got[f"mAP@{k}"] == pytest.approx(want, abs=1e-12)
            tmap, curve = ref.thresholded_map(gts, lists, scores, ts, k, idx)
            assert got[f"t-mAP@{k}"] == pytest.approx(tmap, abs=1e-12)
            assert np.allclose(result["curves"]["t-mAP"]["slices"][name][f"mAP@{k}"], curve,
                               atol=1e-12, rtol=0)


def test_evaluation_json_shape_and_provenance(tiny, tmp_path):
    meta, _, _, _, _, canonical = tiny
    result = evaluate(tmp_path, canonical, meta)
    assert result["board"] == "forb-v1" and result["primary_metric"] == "mAP@1"
    assert list(result["scores"]["overall"]) == list(METRIC_NAMES)
    assert {"overall", "easy", "medium", "hard", "logos", "logos/hard"} <= set(result["scores"])
    curves = result["curves"]["t-mAP"]
    assert len(curves["fpr"]) == len(curves["threshold"]) == 11
    assert curves["fpr"][0] == 0.0 and curves["fpr"][-1] == 1.0
    provenance = result["provenance"]
    digest = hashlib.sha256(canonical.read_bytes()).hexdigest()
    assert provenance["predictions"]["sha256"] == digest
    assert provenance["labels_digest"].startswith("sha256:")
    assert provenance["evaluator_version"]


def test_labels_digest_ignores_storage_details(tiny, tmp_path):
    meta, task, labels, *_ = tiny
    copy = tmp_path / "copy"
    shutil.copytree(meta, copy)
    # Same content, different bytes: extra fields and a blank line in a gt file.
    path = copy / "logos_gt.ndjson"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("\n".join(json.dumps({**r, "note": "x"}, indent=None) for r in lines) + "\n\n")
    assert load_labels(copy, load_task(copy)).digest == labels.digest


def test_outputs_never_contain_label_content(tiny, tmp_path, capsys):
    """Predictions that never name a ground-truth image: any canary in an output came from
    the labels."""
    meta, task, _, _, _, _ = tiny
    lines = []
    for db in ("all", "oods"):
        pool = [i for i, p in enumerate(task.databases[db]) if CANARY not in p]
        for q, query in enumerate(task.query_paths):
            cands = [task.databases[db][i] for i in pool[q % 3: q % 3 + 4]]
            lines.append(json.dumps({"database": db, "query": query, "candidates": cands,
                                     "scores": [0.9, 0.8, 0.7, 0.6][: len(cands)]}))
    predictions = tmp_path / "predictions.ndjson"
    predictions.write_text("\n".join(lines) + "\n")
    assert CANARY not in predictions.read_text()
    result = evaluate(tmp_path, predictions, meta)
    assert result["intervals"]["overall"]  # bootstrap intervals are checked for canaries too
    # A broken label file must fail without quoting it.
    broken = tmp_path / "broken"
    shutil.copytree(meta, broken)
    gt = broken / "logos_gt.ndjson"
    gt.write_text(gt.read_text().replace('"groundtruth_ids": [', '"groundtruth_ids": [99, '))
    code = main(["evaluate", "--benchmark", "forb", "--predictions", str(predictions),
                 "--labels", str(broken)])
    assert code == 3
    main(["validate", "--benchmark", "forb", str(predictions), "--labels", str(meta)])
    captured = capsys.readouterr()
    for text in (captured.out, captured.err, json.dumps(result)):
        assert CANARY not in text
    assert "logos_gt.ndjson:1: " in captured.err


def test_subset_board_reads_its_subfolder(tiny, tmp_path):
    meta, _, _, _, native, _ = tiny
    root = tmp_path / "root"
    root.mkdir()
    shutil.copytree(meta, root / "FORB_subset")
    result = evaluate(tmp_path, native, root, benchmark="forb-subset")
    assert result["board"] == "forb-subset-v1"
    assert result["scores"] == evaluate(tmp_path, native, meta, benchmark="forb-subset")["scores"]


def test_entry_evaluation_writes_an_immutable_record(tiny, tmp_path, capsys):
    meta, _, _, _, native, canonical = tiny
    entry = tmp_path / "submissions" / "forb" / "tiny-entry"
    entry.mkdir(parents=True)
    (entry / "metadata.json").write_text(json.dumps(ENTRY_METADATA))
    shutil.copy(canonical, entry / "predictions.ndjson.gz")
    args = ["evaluate", "--entry", str(entry), "--labels", str(meta)]
    assert main(args) == 0
    record = entry / "records" / "forb-v1.json"
    first = record.read_bytes()
    assert main(args) == 0  # same inputs: the record is recomputed and confirmed
    assert "record verified" in capsys.readouterr().out
    assert record.read_bytes() == first
    assert main(["validate", str(entry), "--labels", str(meta)]) == 0
    # Changing merged predictions is refused and the record stays as it was.
    (entry / "predictions.ndjson.gz").unlink()
    shutil.copytree(native, entry / "retrieval_results")
    assert main(args) == 4
    assert "predictions changed" in capsys.readouterr().err
    assert record.read_bytes() == first
    # So is a record whose scores were edited by hand.
    shutil.rmtree(entry / "retrieval_results")
    shutil.copy(canonical, entry / "predictions.ndjson.gz")
    doc = json.loads(first)
    doc["scores"]["overall"]["mAP@1"] += 0.01
    record.write_text(json.dumps(doc))
    assert main(args) == 4
    assert "different scores" in capsys.readouterr().err


@pytest.mark.skipif(not REAL_METADATA.is_dir(),
                    reason=f"real FORB metadata not found at {REAL_METADATA}")
@pytest.mark.parametrize("board, subdir", [("forb", ""), ("forb-subset", "FORB_subset")])
def test_real_metadata_both_formats_and_transcription(board, subdir, tmp_path):
    meta = REAL_METADATA / subdir if subdir else REAL_METADATA
    task = load_task(meta)
    labels = load_labels(meta, task)
    assert task.n_queries == {"forb": 13901, "forb-subset": 8995}[board]
    run = synthetic.generate(task, labels, n_candidates=10, seed=11)
    native = writers.write_results_folder(run, task, tmp_path / "native")
    canonical = writers.write_predictions_file(run, task, tmp_path / "c" / "predictions.ndjson.gz")
    assert main(["validate", "--benchmark", board, str(native), str(canonical),
                 "--labels", str(REAL_METADATA)]) == 0
    a = evaluate(tmp_path, native, REAL_METADATA, benchmark=board)
    b = evaluate(tmp_path, canonical, REAL_METADATA, benchmark=board)
    assert a["scores"] == b["scores"]
    gts = [set() for _ in range(task.n_queries)]
    for q, g in zip(labels.gt_query, labels.gt_ids):
        gts[q].add(int(g))
    ts = ref.thresholds(run.scores["oods"])
    for k in (1, 5):
        want = ref.mean_average_precision(gts, run.ids["all"], k)
        assert a["scores"]["overall"][f"mAP@{k}"] == pytest.approx(want, abs=1e-9)
        tmap, _ = ref.thresholded_map(gts, run.ids["all"], run.scores["all"], ts, k)
        assert a["scores"]["overall"][f"t-mAP@{k}"] == pytest.approx(tmap, abs=1e-9)
