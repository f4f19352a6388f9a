"""Rescoring a board of generated entries under protocol v2: records written beside the v1
ones (never touching them), the changes report, and the CLI's usage errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from evaluator.anomaly import synthetic
from evaluator.anomaly.datasets import MVTEC3D_LAYOUT
from evaluator.cli import main
from evaluator.registry import get_benchmark
from evaluator.rescore import changes_report
from tests.forb_data import ENTRY_METADATA

CATEGORIES = ("bagel", "rope")


@pytest.fixture(scope="module")
def board_of_v1_entries(tmp_path_factory):
    """Three mvtec3d-ad entries of different quality, each with a v1 record only."""
    tmp = tmp_path_factory.mktemp("rescore")
    root = tmp / "labels"
    samples = synthetic.write_label_root(root, MVTEC3D_LAYOUT, per_category=10, mask_size=48,
                                         seed=3, good_fraction=0.3, categories=CATEGORIES)
    submissions = tmp / "submissions"
    rng = np.random.default_rng(0)
    for i, noise in enumerate((0.05, 0.3, 0.6)):  # image scores from good to poor
        entry = submissions / "mvtec3d-ad" / f"method-{i}"
        entry.mkdir(parents=True)
        lines = list(synthetic.prediction_lines(samples, map_size=32, seed=i))
        for line in lines:
            line["score"] = round(line["score"] + float(rng.normal(0, noise)), 6)
        synthetic.write_predictions(entry / "predictions.ndjson.gz", lines)
        metadata = {**ENTRY_METADATA, "board": "mvtec3d-ad", "method": f"Method {i}",
                    "modality": "RGB"}
        (entry / "metadata.json").write_text(json.dumps(metadata))
        assert main(["evaluate", "--entry", str(entry), "--labels", str(root),
                     "--benchmark", "mvtec3d-ad-v1"]) == 0
    return root, submissions


def _snapshot(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_rescore_writes_v2_records_beside_v1_and_the_changes_report(board_of_v1_entries,
                                                                     capsys):
    root, submissions = board_of_v1_entries
    entries = sorted((submissions / "mvtec3d-ad").iterdir())
    v1_before = {e: (e / "records" / "mvtec3d-ad-v1.json").read_bytes() for e in entries}
    assert main(["rescore", "--board", "mvtec3d-ad-v2", "--labels", str(root),
                 "--submissions", str(submissions)]) == 0
    out = capsys.readouterr().out
    assert out.count("recorded mvtec3d-ad/method-") == 3
    assert "changes from mvtec3d-ad-v1 to mvtec3d-ad-v2" in out
    for entry in entries:
        assert (entry / "records" / "mvtec3d-ad-v1.json").read_bytes() == v1_before[entry]
        v1 = json.loads(v1_before[entry])
        v2 = json.loads((entry / "records" / "mvtec3d-ad-v2.json").read_text())
        assert v2["board"] == "mvtec3d-ad-v2" and v2["provenance"]["protocol_version"] == 2
        for slice_name, metrics in v1["scores"].items():
            assert {m: v2["scores"][slice_name][m] for m in metrics} == metrics
            assert set(v2["scores"][slice_name]) - set(metrics) == {"AUPRO@0.01",
                                                                   "AUPRO@0.01-exact"}
        assert "AUPRO@0.01" in v2["intervals"]["mean"]
    report = json.loads((submissions / "changes" / "mvtec3d-ad-v2.json").read_text())
    assert report["previous"] == "mvtec3d-ad-v1" and report["primary_metric"] == "I-AUROC"
    assert report["metrics"]["added"] == ["AUPRO@0.01", "AUPRO@0.01-exact"]
    assert [e["current"]["rank"] for e in report["entries"]] == [1, 2, 3]
    for e in report["entries"]:  # the primary metric is computed as in v1: nothing moves
        assert e["difference"] == 0 and e["rank_move"] == 0
        assert e["previous"]["value"] == e["current"]["value"] is not None
        assert e["added_metrics"]["AUPRO@0.01"] is not None

    # Again: every record is recomputed and confirmed, nothing is rewritten.
    snapshot = _snapshot(submissions / "mvtec3d-ad")
    assert main(["rescore", "--board", "mvtec3d-ad-v2", "--labels", str(root),
                 "--submissions", str(submissions)]) == 0
    assert capsys.readouterr().out.count("verified mvtec3d-ad/method-") == 3
    assert _snapshot(submissions / "mvtec3d-ad") == snapshot


def test_the_report_ranks_moves_and_differences_from_records(board_of_v1_entries, tmp_path):
    """A version that changes the primary metric moves ranks: records edited to say so."""
    import shutil

    _, submissions = board_of_v1_entries
    copy = tmp_path / "submissions"
    shutil.copytree(submissions / "mvtec3d-ad", copy / "mvtec3d-ad")
    benchmark = get_benchmark("mvtec3d-ad")
    v2 = benchmark.board("mvtec3d-ad-v2")
    values = {"method-0": 0.9, "method-1": 0.7, "method-2": 0.8}
    for name, value in values.items():
        for board_id, shift in (("mvtec3d-ad-v1", 0.0), ("mvtec3d-ad-v2", -0.5)):
            path = copy / "mvtec3d-ad" / name / "records" / f"{board_id}.json"
            if not path.exists():
                shutil.copy(copy / "mvtec3d-ad" / name / "records" / "mvtec3d-ad-v1.json", path)
            record = json.loads(path.read_text())
            # v2 reverses the order: 1 - value
            record["scores"]["mean"]["I-AUROC"] = value if not shift else 1 - value
            path.write_text(json.dumps(record))
    (copy / "mvtec3d-ad" / "method-2" / "records" / "mvtec3d-ad-v1.json").unlink()
    report = changes_report(copy, benchmark, v2)
    by_entry = {e["entry"]: e for e in report["entries"]}
    assert by_entry["method-0"]["previous"] == {"rank": 1, "value": 0.9}
    assert by_entry["method-0"]["current"]["rank"] == 3
    assert by_entry["method-0"]["rank_move"] == -2
    assert by_entry["method-0"]["difference"] == pytest.approx(0.1 - 0.9)
    assert by_entry["method-1"]["rank_move"] == 1  # 2nd of two before, 1st of three after
    assert by_entry["method-2"]["previous"] is None and by_entry["method-2"]["rank_move"] is None
    assert report["summary"] == {"entries": 3, "rank_moves": 2, "only_previous": 0,
                                 "only_current": 1}
    assert [e["entry"] for e in report["entries"]] == ["method-1", "method-2", "method-0"]


def test_rescore_usage_errors(tmp_path, capsys):
    assert main(["rescore", "--board", "no-such-board", "--submissions", str(tmp_path)]) == 2
    assert "unknown benchmark or board" in capsys.readouterr().err
    assert main(["rescore", "--board", "mvtec3d-ad-v2",
                 "--submissions", str(tmp_path / "missing")]) == 2
    assert "no such folder" in capsys.readouterr().err
