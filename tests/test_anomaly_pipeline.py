"""End to end on generated MVTec-3D-AD- and Eyecandies-shaped data: the CLI's numbers equal
an independent reading of masks and maps scored with scikit-learn and the transcriptions."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from evaluator.anomaly import synthetic
from evaluator.anomaly.datasets import EYECANDIES_LAYOUT, MVTEC3D_LAYOUT
from evaluator.anomaly.maps import decode_map
from evaluator.cli import main
from tests import reference_anomaly as ref
from tests import reference_aupro_cfm as cfm
from tests.forb_data import ENTRY_METADATA

CATEGORIES = {"mvtec3d-ad": ("bagel", "rope"), "eyecandies": ("CandyCane", "Lollipop")}


def protocol_mask(path) -> np.ndarray:
    image = Image.open(path).convert("L").resize((224, 224), Image.NEAREST)
    return np.asarray(image) > 127


@pytest.fixture(params=["mvtec3d-ad", "eyecandies"])
def dataset(request, tmp_path):
    name = request.param
    layout = MVTEC3D_LAYOUT if name == "mvtec3d-ad" else EYECANDIES_LAYOUT
    root = tmp_path / "labels"
    samples = synthetic.write_label_root(root, layout, per_category=5, mask_size=96, seed=2,
                                         good_fraction=0.3, categories=CATEGORIES[name])
    lines = list(synthetic.prediction_lines(samples, map_size=224, compression="zlib", seed=4))
    predictions = synthetic.write_predictions(tmp_path / "predictions.ndjson.gz", lines)
    return name, layout, root, lines, predictions


def test_cli_scores_equal_an_independent_computation(dataset, tmp_path):
    name, layout, root, lines, predictions = dataset
    out, out_v1 = tmp_path / "scores.json", tmp_path / "scores-v1.json"
    assert main(["evaluate", "--benchmark", f"{name}-v2", "--predictions", str(predictions),
                 "--labels", str(root), "--json", str(out)]) == 0
    assert main(["evaluate", "--benchmark", f"{name}-v1", "--predictions", str(predictions),
                 "--labels", str(root), "--json", str(out_v1)]) == 0
    result, v1 = json.loads(out.read_text()), json.loads(out_v1.read_text())
    assert result["board"] == f"{name}-v2" and result["primary_metric"] == "I-AUROC"
    assert v1["board"] == f"{name}-v1"
    for slice_name, metrics in v1["scores"].items():  # v1's metrics, unchanged in v2
        assert list(metrics) == ["I-AUROC", "P-AUROC", "AUPRO@0.3", "AUPRO@0.3-exact"]
        assert {m: result["scores"][slice_name][m] for m in metrics} == metrics
    assert set(result["scores"]) == {*CATEGORIES[name], "mean"}
    by_sample = {line["sample"]: line for line in lines}
    listed = layout.list_samples(root)
    both_classes_seen: list[str] = []
    for category in CATEGORIES[name]:
        ids = sorted(s for s, (c, _) in listed.items() if c == category)
        masks = np.stack([protocol_mask(listed[s][1]) for s in ids])
        maps = np.stack([decode_map(tuple(by_sample[s]["map"]["shape"]), "float16",
                                    by_sample[s]["map"]["data"], "zlib") for s in ids])
        if name == "mvtec3d-ad":
            labels = [0 if s.split("/")[2] == "good" else 1 for s in ids]
        else:
            labels = [int(m.any()) for m in masks]
        got = result["scores"][category]
        if len(set(labels)) < 2:  # a single class: AUROC is undefined, reported as null
            assert got["I-AUROC"] is None and result["scores"]["mean"]["I-AUROC"] is None
        else:
            both_classes_seen.append(category)
            assert got["I-AUROC"] == pytest.approx(
                roc_auc_score(labels, [by_sample[s]["score"] for s in ids]), abs=1e-12)
        assert got["P-AUROC"] == pytest.approx(
            roc_auc_score(masks.ravel(), maps.ravel()), abs=1e-12)
        fprs, pros = ref.pro_sampled(maps, masks)
        assert got["AUPRO@0.3"] == pytest.approx(ref.area_up_to(fprs, pros, 0.3) / 0.3, abs=1e-9)
        assert 0 < got["AUPRO@0.3-exact"] <= 1
        assert got["AUPRO@0.01"] == pytest.approx(cfm.aupro(maps, masks, 0.01, 99), abs=1e-9)
        assert result["counts"][category] == len(ids)
        assert result["curves"]["pro"][category]["fpr"][-1] == 1.0
        assert len(result["curves"]["roc"][category]["fpr"]) > 50
    assert both_classes_seen
    for metric in ("P-AUROC", "AUPRO@0.3", "AUPRO@0.3-exact", "AUPRO@0.01",
                   "AUPRO@0.01-exact"):
        values = [result["scores"][c][metric] for c in CATEGORIES[name]]
        assert result["scores"]["mean"][metric] == pytest.approx(np.mean(values), abs=1e-15)


def test_exact_aupro_matches_the_transcription(tmp_path):
    root = tmp_path / "labels"
    samples = synthetic.write_label_root(root, MVTEC3D_LAYOUT, per_category=2, mask_size=40,
                                         seed=9, good_fraction=0.0, categories=("tire",))
    lines = list(synthetic.prediction_lines(samples, map_size=24, dtype="float32", seed=1))
    predictions = synthetic.write_predictions(tmp_path / "p.ndjson", lines)
    out = tmp_path / "s.json"
    assert main(["evaluate", "--benchmark", "mvtec3d-ad", "--predictions", str(predictions),
                 "--labels", str(root), "--json", str(out)]) == 0
    listed = MVTEC3D_LAYOUT.list_samples(root)
    ids = sorted(listed)
    masks = np.stack([protocol_mask(listed[s][1]) for s in ids])
    by_sample = {line["sample"]: line for line in lines}
    maps = np.stack([decode_map((24, 24), "float32", by_sample[s]["map"]["data"], None)
                     for s in ids])
    fprs, pros = ref.pro_exact(maps, masks)
    got = json.loads(out.read_text())["scores"]["tire"]
    assert got["AUPRO@0.3-exact"] == pytest.approx(ref.area_up_to(fprs, pros, 0.3) / 0.3,
                                                   abs=1e-9)
    assert got["AUPRO@0.01-exact"] == pytest.approx(cfm.aupro(maps, masks, 0.01), abs=1e-9)


def test_entry_with_modality_and_shots_gets_a_record(dataset, tmp_path):
    name, _, root, _, predictions = dataset
    entry = tmp_path / "submissions" / name / "my-method"
    entry.mkdir(parents=True)
    metadata = {**ENTRY_METADATA, "board": name, "modality": "RGB+3D", "shots": "10"}
    (entry / "metadata.json").write_text(json.dumps(metadata))
    (entry / "predictions.ndjson.gz").write_bytes(predictions.read_bytes())
    args = ["evaluate", "--entry", str(entry), "--labels", str(root)]
    assert main(args) == 0
    assert (entry / "records" / f"{name}-v1.json").is_file()
    assert main(args) == 0  # recomputed and confirmed
    bad = {**metadata, "modality": "depth"}
    (entry / "metadata.json").write_text(json.dumps(bad))
    assert main(["validate", str(entry), "--labels", str(root)]) == 1


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_decode_map_refuses_exactly_the_non_finite_values(dtype):
    """Every float16 bit pattern, and float32 ones with every sign and exponent: a value
    passes the map check exactly when np.isfinite says it is finite."""
    import base64

    from evaluator.anomaly.maps import MapError, _all_finite

    patterns = np.arange(1 << 16, dtype=np.uint32)
    if dtype == "float16":
        values = patterns.astype(np.uint16).view(np.float16)
    else:  # sign and exponent from the high bits, some mantissa below them
        values = ((patterns << 16) | 0x1234).astype(np.uint32).view(np.float32)
    finite = np.isfinite(values)
    assert [_all_finite(v) for v in values.reshape(-1, 1)] == finite.tolist()
    for value in (values[~finite][0], values[~finite][-1]):
        data = base64.b64encode(np.full((2, 2), value).tobytes()).decode("ascii")
        with pytest.raises(MapError, match="NaN or infinite"):
            decode_map((2, 2), dtype, data, None)
