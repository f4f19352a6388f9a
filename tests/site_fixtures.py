"""A small but real submissions folder for site tests: FORB and MVTec 3D-AD entries scored by
the evaluator on generated data (tiny FORB metadata, synthetic masks), so every record on the
test site went through the real pipeline."""

from __future__ import annotations

import json
from pathlib import Path

from evaluator.anomaly import synthetic as ad_synthetic
from evaluator.anomaly.datasets import MVTEC3D_LAYOUT
from evaluator.cli import main
from evaluator.forb import synthetic as forb_synthetic
from evaluator.forb import writers
from evaluator.forb.labels import load_labels
from evaluator.forb.task import load_task
from tests.forb_data import ENTRY_METADATA, write_tiny_forb

HOSTILE_NAME = ('Evil </title><script>alert("x")</script> [link](javascript:alert(1)) '
                '{{ x }} <img src=x onerror=alert(2)>')


def make_submissions(root: Path) -> Path:
    submissions = root / "submissions"
    meta = write_tiny_forb(root / "forb-meta", seed=1)
    task = load_task(meta)
    labels = load_labels(meta, task)
    for i, (name, hit_rate, baseline) in enumerate([
            ("Strong retriever", 0.9, False), ("Weak retriever", 0.3, False),
            ("Chance baseline", 0.0, True), (HOSTILE_NAME, 0.5, False)]):
        entry = submissions / "forb" / f"forb-entry-{i}"
        run = forb_synthetic.generate(task, labels, n_candidates=8, seed=i, hit_rate=hit_rate)
        writers.write_predictions_file(run, task, entry / "predictions.ndjson")
        _metadata(entry, method=name, board="forb", baseline=baseline,
                  description="A <b>bold</b> claim" if name == HOSTILE_NAME else "Test entry.")
        assert main(["evaluate", "--entry", str(entry), "--labels", str(meta)]) == 0

    ad_root = root / "mvtec-labels"
    samples = ad_synthetic.write_label_root(ad_root, MVTEC3D_LAYOUT, per_category=4,
                                            mask_size=48, seed=3, good_fraction=0.3)
    for i, (modality, shots) in enumerate([("RGB+3D", "full"), ("RGB", "full"), ("3D", "5")]):
        entry = submissions / "mvtec3d-ad" / f"ad-entry-{i}"
        lines = ad_synthetic.prediction_lines(samples, map_size=32, seed=10 + i)
        ad_synthetic.write_predictions(entry / "predictions.ndjson.gz", lines)
        _metadata(entry, method=f"Detector {modality} {shots}", board="mvtec3d-ad",
                  modality=modality, shots=shots)
        assert main(["evaluate", "--entry", str(entry), "--labels", str(ad_root)]) == 0
    return submissions


def _metadata(entry: Path, **fields) -> None:
    entry.mkdir(parents=True, exist_ok=True)
    (entry / "metadata.json").write_text(json.dumps({**ENTRY_METADATA, **fields}))


# Flags that keep chromium from calling home (this machine has no network beyond registries).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic", "--disable-default-apps", "--disable-extensions"]


def build_site(root: Path):
    """(site folder, board views, submissions folder) of the fixture submissions, built."""
    from evaluator.site.render import build

    submissions = make_submissions(root)
    out = root / "out"
    views = build(out, submissions, work=root / "work")
    return out, views, submissions
