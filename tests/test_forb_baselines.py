"""The FORB neural baselines, end to end on generated FORB-shaped data with random weights
(no weights or images can be downloaded here), plus their building blocks against torchvision
and brute force.

Each full architecture runs once, on one image at one scale (its smallest valid input); the
pipeline (every stage, the run record, resuming) runs with ``--weights random-tiny``, the same
model family with one narrow block, so it takes seconds instead of minutes."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the baselines extra is not installed")
from PIL import Image  # noqa: E402

from baselines.catalogue import BASELINES, published_rows  # noqa: E402
from baselines.forb.multiscale import (  # noqa: E402
    DATABASE_SCALES,
    QUERY_SCALES,
    crop_sizes,
    scaled_crop,
)
from baselines.forb.search import exact_top_k  # noqa: E402
from baselines.forb.synthetic import make_forb_dataset  # noqa: E402
from evaluator.cli import main as cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NEURAL = ["forb-dino-vit-s8", "forb-dinov2-vit-l14", "forb-clip-vit-l14-336"]
FORB_BASELINES = [s for s in BASELINES.values() if s.benchmark == "forb"]


@pytest.fixture(scope="module")
def tiny_forb(tmp_path_factory):
    """Two queries (one an exact copy of its database image, one logo with two answers) and
    four database images: the smallest FORB that still tests retrieval."""
    return make_forb_dataset(tmp_path_factory.mktemp("forb") / "FORB",
                             queries_per_type={"animated_cards": 1, "logos": 1}, distractors=1)


def read_predictions(entry: Path) -> dict:
    with gzip.open(entry / "predictions.ndjson.gz", "rt", encoding="utf-8") as handle:
        lines = [json.loads(line) for line in handle]
    return {(line["database"], line["query"]): line for line in lines}


# Building blocks ------------------------------------------------------------------------------

def test_crop_sizes_are_forbs_table():
    # BASELINES.md A.2: the shorter side before the centre crop, per scale.
    assert crop_sizes(336, DATABASE_SCALES) == [672, 475, 336, 237, 168, 118, 84]
    assert crop_sizes(224, DATABASE_SCALES) == [448, 316, 224, 158, 112, 79, 56]
    assert crop_sizes(336, QUERY_SCALES) == [475, 336, 237]
    assert crop_sizes(224, QUERY_SCALES) == [316, 224, 158]


@pytest.mark.parametrize("size", [(300, 200), (200, 301), (97, 160), (640, 480), (336, 336)])
@pytest.mark.parametrize("crop", [224, 336])
def test_scaled_crop_equals_torchvision(size, crop):
    transforms = pytest.importorskip("torchvision.transforms")
    rng = np.random.default_rng(sum(size) + crop)
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    for scale in DATABASE_SCALES:
        bicubic = transforms.InterpolationMode.BICUBIC
        expected = np.asarray(transforms.Compose([
            transforms.Resize(int(crop * scale), interpolation=bicubic),
            transforms.CenterCrop(crop)])(image))
        got = scaled_crop(image, crop, scale, Image.BICUBIC)
        assert got.shape == (crop, crop, 3)
        np.testing.assert_array_equal(got, expected)


def test_small_scales_get_a_black_border():
    image = Image.new("RGB", (400, 300), (200, 100, 50))
    out = scaled_crop(image, 224, 0.25, Image.BICUBIC)   # 56 px shorter side, padded to 224
    assert (out[:10] == 0).all() and (out[-10:] == 0).all()
    assert (out[112, 112] == (200, 100, 50)).all()


@pytest.mark.parametrize("k", [1, 5, 40])
def test_exact_top_k_equals_brute_force(k):
    rng = np.random.default_rng(k)
    queries = rng.normal(size=(37, 16)).astype(np.float32)
    database = rng.normal(size=(29, 16)).astype(np.float32)
    ids, scores = exact_top_k(queries, database, k, chunk_rows=8)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    d = database / np.linalg.norm(database, axis=1, keepdims=True)
    for i in range(len(queries)):
        cosines = [(float(np.dot(q[i].astype(np.float64), d[j])), j) for j in range(len(d))]
        best = sorted(cosines, key=lambda pair: -pair[0])[:min(k, len(d))]
        assert ids[i].tolist() == [j for _, j in best]
        np.testing.assert_allclose(scores[i], [s for s, _ in best], atol=1e-5)


def test_list_names_every_baseline_and_its_published_row(capsys):
    assert cli(["baseline", "list"]) == 0
    out = capsys.readouterr().out
    for spec in BASELINES.values():
        assert spec.name in out
    for spec in FORB_BASELINES:
        label, _, values = published_rows(spec, "forb-v1")[0]
        assert f"mAP@1 {values['overall']['mAP@1']:.2f}" in out


# End to end -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NEURAL)
def test_full_architecture_embeds_one_image(name, tiny_forb):
    """The published architecture (random weights) at its input size: one image, one scale,
    through the crops, normalisation and forward the pipeline uses."""
    from baselines.forb.data import load_forb
    from baselines.forb.models import EMBEDDERS, build_embedder, normaliser
    from baselines.forb.neural import MultiScaleCrops

    embedder = EMBEDDERS[name]
    images = load_forb(tiny_forb.root, "forb")
    forward, model, record = build_embedder(embedder, "random")
    assert record["kind"] == "random" and "tiny" not in record["id"]
    _, crops, error = MultiScaleCrops(images, images.query_paths, [0], embedder, (1.0,))[0]
    assert error == "" and crops.shape == (1, embedder.crop, embedder.crop, 3)
    with torch.inference_mode():
        out = forward(normaliser(embedder, "cpu")(torch.from_numpy(crops)))
    assert tuple(out.shape) == (1, embedder.dim) and bool(torch.isfinite(out).all())


@pytest.mark.parametrize("name", NEURAL)
def test_neural_baseline_runs_validates_and_scores(name, tiny_forb, tmp_path, capsys):
    data = tiny_forb
    entry = tmp_path / "submissions" / "forb" / name  # where evaluate --entry records it
    code = cli(["baseline", "run", name, "--data", str(data.root), "--out", str(entry),
                "--weights", "random-tiny", "--device", "cpu", "--workers", "1",
                "--batch-size", "3"])
    assert code == 0, capsys.readouterr().err
    assert {p.name for p in entry.iterdir()} == {"metadata.json", "predictions.ndjson.gz",
                                                 "run.json"}
    metadata = json.loads((entry / "metadata.json").read_text())
    assert "SMOKE TEST" in metadata["method"] and metadata["baseline"] is True
    assert metadata["command"].startswith(f"leaderboard baseline run {name} ")

    # A query that is a byte copy of a database image finds it first, even with random weights.
    predictions = read_predictions(entry)
    copy = data.exact_copy_queries[0]
    gt = _ground_truth(data.metadata)[copy]
    assert predictions[("all", copy)]["candidates"][0] in gt

    record = json.loads((entry / "run.json").read_text())
    _check_run_record(record, name, n_database=len(_database(data)))
    assert "tiny test architecture" in record["weights"]["id"]

    labels = str(data.metadata)
    assert cli(["validate", str(entry), "--labels", labels]) == 0
    assert "smoke-test run" in capsys.readouterr().out
    assert cli(["evaluate", "--entry", str(entry), "--labels", labels]) == 0
    assert (entry / "records" / "forb-v1.json").is_file()


def _ground_truth(metadata: Path) -> dict[str, set[str]]:
    out = {}
    for path in metadata.glob("*_gt.ndjson"):
        for line in path.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                out[record["query_image"]] = set(record["groundtruth_images"])
    return out


def _database(data) -> list[str]:
    return (data.metadata / "all_database_images.txt").read_text().split()


def _check_run_record(record: dict, name: str, n_database: int) -> None:
    assert record["baseline"] == name
    assert record["weights"]["kind"] == "random"
    assert record["weights"]["state_sha256"].startswith("sha256:")
    assert record["device"]["device"] == "cpu" and record["device"]["cpu_count"] >= 1
    assert record["data"]["synthetic"] is True
    for package in ("python", "torch", "timm", "numpy", "cv-leaderboards"):
        assert record["packages"].get(package), package
    stages = {s["name"]: s for s in record["stages"]}
    for stage in ("load model", "features: database (7 scales)", "features: query (3 scales)",
                  "search: all", "search: oods", "write predictions"):
        assert stages[stage]["seconds"] >= 0
    assert stages["features: database (7 scales)"]["items"] == n_database
    assert record["peak_memory"]["host_rss_bytes"] > 0
    assert record["settings"]["top_k"] == 10 and record["settings"]["precision"] == "fp32"


# Runs the CLI in a process that SIGKILLs itself right after it stored its second feature
# chunk: a kill at a known point, however fast the model.
KILLED_AFTER_CHUNK_1 = """
import os, signal, sys
from baselines.feature_cache import ChunkedArrays
save = ChunkedArrays.save
def save_then_die(self, index, array):
    save(self, index, array)
    if index == 1:
        os.kill(os.getpid(), signal.SIGKILL)
ChunkedArrays.save = save_then_die
from evaluator.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_killed_run_resumes_to_identical_predictions(tiny_forb, tmp_path):
    """SIGKILL a run once two cache chunks are on disk; the rerun computes only what is
    missing and writes the same bytes as an uninterrupted run."""
    name = "forb-dino-vit-s8"
    args = ["baseline", "run", name, "--data", str(tiny_forb.root), "--weights", "random-tiny",
            "--device", "cpu", "--workers", "0", "--chunk-images", "1"]
    env = {**os.environ, "LEADERBOARD_NO_PROGRESS": "1"}
    cache = tmp_path / "cache"
    entry = tmp_path / "resumed"
    killed = subprocess.run([sys.executable, "-c", KILLED_AFTER_CHUNK_1, *args, "--out",
                             str(entry), "--cache", str(cache)], cwd=ROOT, env=env,
                            capture_output=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (entry / "predictions.ndjson.gz").exists()
    assert len(list(cache.glob("**/chunk-*.npy"))) == 2

    # The rerun and an uninterrupted run need no kill: in this process, which is quicker.
    assert cli(args + ["--out", str(entry), "--cache", str(cache)]) == 0
    fresh = tmp_path / "fresh"
    assert cli(args + ["--out", str(fresh), "--cache", str(tmp_path / "fresh-cache")]) == 0
    assert ((entry / "predictions.ndjson.gz").read_bytes()
            == (fresh / "predictions.ndjson.gz").read_bytes())
    stages = {s["name"]: s for s in json.loads((entry / "run.json").read_text())["stages"]}
    assert stages["features: database (7 scales)"]["items"] == len(_database(tiny_forb)) - 2


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_bad_image_is_named_without_a_traceback(damage, tiny_forb, tmp_path):
    root = tmp_path / "FORB"
    subprocess.run(["cp", "-r", str(tiny_forb.root), str(root)], check=True)
    victim = (root / "metadata" / "all_database_images.txt").read_text().split()[2]
    if damage == "missing":
        (root / victim).unlink()
    else:
        (root / victim).write_bytes(b"not a jpeg")
    result = subprocess.run(
        [sys.executable, "-m", "evaluator.cli", "baseline", "run", "forb-dino-vit-s8",
         "--data", str(root), "--out", str(tmp_path / "entry"), "--weights", "random-tiny",
         "--device", "cpu", "--workers", "1"],
        cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "LEADERBOARD_NO_PROGRESS": "1"})
    assert result.returncode == 3, result.stderr
    assert victim in result.stderr
    assert "Traceback" not in result.stderr


def test_usage_errors_are_one_line(tiny_forb, tmp_path, capsys):
    common = ["--data", str(tiny_forb.root), "--device", "cpu", "--weights", "random-tiny"]
    assert cli(["baseline", "run", "forb-dino-vit-s8", "--out", str(tmp_path / "a"),
                "--top-k", "101", *common]) == 2
    assert cli(["baseline", "run", "forb-dino-vit-s8", "--out", str(tmp_path / "b"),
                "--board", "mvtec3d-ad", *common]) == 2
    assert cli(["baseline", "run", "forb-dino-vit-s8", "--data", str(tmp_path),
                "--out", str(tmp_path / "c"), "--device", "cpu"]) == 3
    assert cli(["baseline", "run", "forb-dino-vit-s8", "--out", str(tmp_path / "d"),
                *common[:4], "--weights", str(tmp_path / "nope.pth")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("error:") == 4


@pytest.mark.parametrize("submission", [False, True])
def test_smoke_test_runs_never_enter_submissions(submission, tmp_path):
    """validate warns about a run with random weights; the pull-request pipeline refuses it."""
    from evaluator.evaluation import check_entry
    from evaluator.registry import get_benchmark
    from evaluator.validation.report import ValidationReport

    entry = tmp_path / "forb" / "smoke"
    entry.mkdir(parents=True)
    source = ROOT / "submissions" / "forb" / "random-ranking"
    for name in ("metadata.json", "predictions.ndjson.gz"):
        (entry / name).write_bytes((source / name).read_bytes())
    (entry / "run.json").write_text(json.dumps({"weights": {"kind": "random"},
                                                "data": {"synthetic": False}}))
    report = ValidationReport()
    check_entry(entry, get_benchmark("forb"), lambda board: None, report, submission=submission)
    lines = "\n".join(report.lines())
    assert "smoke-test run (it ran with --weights random)" in lines
    assert report.ok is not submission
    (entry / "run.json").write_text("[1, 2")
    report = ValidationReport()
    check_entry(entry, get_benchmark("forb"), lambda board: None, report)
    assert not report.ok and "run.json: error: not valid JSON" in "\n".join(report.lines())


def test_readme_lists_every_baseline_with_its_published_row():
    """The README's table quotes the paper: check it against the transcribed tables."""
    import re

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for spec in FORB_BASELINES:
        row = re.search(rf"^\| `{re.escape(spec.name)}` \| (.+?): mAP@1 ([\d.]+), "
                        rf"t-mAP@1 ([\d.]+) \|", readme, re.MULTILINE)
        assert row, spec.name
        label, method, values = published_rows(spec, "forb-v1")[0]
        assert label == "Table 1" and row.group(1) == method == spec.published_label
        assert float(row.group(2)) == values["overall"]["mAP@1"]
        assert float(row.group(3)) == values["overall"]["t-mAP@1"]
        assert f"leaderboard baseline run {spec.name} --data FORB_ROOT" in readme


def test_the_evaluator_never_imports_torch():
    """`leaderboard` with its `baseline` command registered still loads no deep-learning
    package until a baseline runs (validate, evaluate, build and list do without them)."""
    code = ("import sys; from evaluator.cli import main; import evaluator.site.render; "
            "main(['baseline', 'list']); main(['boards']); "
            "print(sorted(m for m in ('torch', 'timm', 'open_clip', 'cv2', 'faiss') "
            "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"
