"""Baselines under torchrun: two CPU processes on the gloo backend write the same predictions as
one process. FORB's neural baselines split the feature chunks, the anomaly baselines the
categories, and BoW (which does not split) runs on rank 0 while the other rank waits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the baselines extra is not installed")
pytest.importorskip("open3d", reason="the baselines extra is not installed")

from baselines.anomaly.synthetic import make_mvtec3d_dataset  # noqa: E402
from baselines.distributed import Ranks  # noqa: E402
from baselines.forb.synthetic import make_forb_dataset  # noqa: E402
from evaluator.cli import main as cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BASELINES = "forb-dino-vit-s8,forb-bow,mvtec3d-fpfh-patchcore"


def test_two_processes_write_what_one_writes(tmp_path):
    forb = make_forb_dataset(tmp_path / "FORB", queries_per_type={"animated_cards": 1,
                                                                  "logos": 1},
                             distractors=2).root
    mvtec = make_mvtec3d_dataset(tmp_path / "mvtec3d", ("bagel", "tire"), size=48, train=2,
                                 validation=1, test={"good": 1, "crack": 1}, seed=2).root
    common = ["baseline", "run-all", "--forb", str(forb), "--mvtec3d", str(mvtec),
              "--baselines", BASELINES, "--weights", "random-tiny", "--device", "cpu",
              "--workers", "0", "--chunk-images", "1", "--batch-size", "2",
              "--codebook-size", "64", "--kmeans-iterations", "2"]
    two = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "evaluator.cli", *common, "--out", str(tmp_path / "two")],
        cwd=ROOT, env={**os.environ, "LEADERBOARD_NO_PROGRESS": "1"}, capture_output=True,
        text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    assert cli([*common, "--out", str(tmp_path / "one")]) == 0

    files = sorted(p.relative_to(tmp_path / "one")
                   for p in (tmp_path / "one").glob("*/*/predictions*.ndjson.gz"))
    assert len(files) == 4   # dino, bow, and two anomaly categories
    for name in files:
        assert (tmp_path / "two" / name).read_bytes() == (tmp_path / "one" / name).read_bytes()
    # Rank 0 computed only its share (its run record says so); rank 1 did the rest.
    record = json.loads((tmp_path / "two/forb/forb-dino-vit-s8/run.json").read_text())
    stages = {s["name"]: s for s in record["stages"]}
    n_database = len((forb / "metadata/all_database_images.txt").read_text().split())
    assert record["device"]["processes"] == 2
    assert stages["features: database (7 scales)"]["items"] == (n_database + 1) // 2
    record = json.loads((tmp_path / "two/mvtec3d-ad/mvtec3d-fpfh-patchcore/run.json").read_text())
    stages = {s["name"] for s in record["stages"]}
    assert "bagel: scoring" in stages and "tire: scoring" not in stages
    assert "tire: all stages" in stages   # read back from the cache


def test_ranks_share_items_round_robin():
    items = list(range(7))
    shares = [Ranks(rank, 3, rank).share(items) for rank in range(3)]
    assert shares == [[0, 3, 6], [1, 4], [2, 5]]
    assert Ranks().share(items) == items and not Ranks().active
