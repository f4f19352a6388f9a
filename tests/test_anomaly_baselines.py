"""The bundled anomaly-detection baselines end to end, on generated MVTec 3D-AD and
Eyecandies datasets in their exact layouts: no weights, data or GPU needed. The building
blocks (coreset, nearest neighbours, reweighting, blur, preprocessing, FPFH) are tested in
test_patchcore.py and test_pointcloud.py. Each full RGB architecture runs once on one image;
the pipelines run with ``--weights random-tiny`` (the same families, one narrow block)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import signal
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the baselines extra is not installed")
pytest.importorskip("open3d", reason="the baselines extra is not installed")

from baselines.anomaly.pipeline import unpad_map  # noqa: E402
from baselines.catalogue import BASELINES, published_mean  # noqa: E402
from baselines.anomaly.synthetic import (  # noqa: E402
    make_eyecandies_dataset,
    make_mvtec3d_dataset,
)
from evaluator.cli import main as cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ANOMALY = [s for s in BASELINES.values() if s.benchmark != "forb"]
ENV = {**os.environ, "LEADERBOARD_NO_PROGRESS": "1"}


@pytest.fixture(scope="module")
def geometric(tmp_path_factory):
    """One category with dents and bumps: enough test scans for a meaningful I-AUROC."""
    return make_mvtec3d_dataset(tmp_path_factory.mktemp("mvtec") / "mvtec3d", ("bagel",),
                                size=96, train=6, validation=1,
                                test={"good": 4, "crack": 4, "combined": 4}, seed=1)


@pytest.fixture(scope="module")
def tiny_mvtec(tmp_path_factory):
    """Two categories, two training and three test scans each: the smallest run that still
    fits a bank, scores good and defective scans and resumes per category."""
    return make_mvtec3d_dataset(tmp_path_factory.mktemp("mvtec") / "mvtec3d",
                                ("bagel", "tire"), size=64, train=2, validation=1,
                                test={"good": 1, "crack": 1, "color": 1}, seed=2)


@pytest.fixture(scope="module")
def tiny_eyecandies(tmp_path_factory):
    return make_eyecandies_dataset(tmp_path_factory.mktemp("eyecandies") / "Eyecandies",
                                   ("CandyCane",), size=64, train=2, val=1, test_good=1,
                                   test_bad=2, seed=3)


def run(name: str, data: Path, out: Path, *extra: str) -> int:
    return cli(["baseline", "run", name, "--data", str(data), "--out", str(out),
                "--device", "cpu", "--workers", "0", *extra])


def evaluate(entry: Path, labels: Path, tmp_path: Path) -> dict:
    scores = tmp_path / f"{entry.name}-scores.json"
    # The entry is a run's output folder, not in submissions/<benchmark>/: no record.
    assert cli(["evaluate", "--entry", str(entry), "--labels", str(labels),
                "--json", str(scores), "--no-record"]) == 0
    return json.loads(scores.read_text())


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()


def prediction_lines(entry: Path) -> list[dict]:
    lines = []
    for path in sorted(entry.glob("predictions-*.ndjson.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            lines += [json.loads(line) for line in handle]
    return lines


def decoded(line: dict) -> np.ndarray:
    return np.frombuffer(zlib.decompress(base64.b64decode(line["map"]["data"])), "<f2")


# Detection on real geometry ------------------------------------------------------------------

def test_fpfh_patchcore_finds_dents_and_bumps(geometric, tmp_path, capsys):
    """No weights involved: FPFH on the preprocessed clouds must separate the scans with a
    dent or bump from the good ones, and light up the defects in the maps."""
    before = tree_digest(geometric.root)
    entry = tmp_path / "fpfh"
    assert run("mvtec3d-fpfh-patchcore", geometric.root, entry) == 0
    assert tree_digest(geometric.root) == before, "the dataset was modified"
    scores = evaluate(entry, geometric.root, tmp_path)["scores"]["mean"]
    with capsys.disabled():
        print(f"\nFPFH PatchCore on generated dents and bumps: I-AUROC {scores['I-AUROC']:.3f}, "
              f"P-AUROC {scores['P-AUROC']:.3f}, AUPRO@0.3 {scores['AUPRO@0.3']:.3f}")
    assert scores["I-AUROC"] >= 0.9
    assert scores["P-AUROC"] >= 0.85
    assert scores["AUPRO@0.3"] >= 0.5


def test_preprocessing_removes_the_background_plane(geometric, tmp_path):
    """The cached, preprocessed scans keep the object and lose the plane around it."""
    from baselines.anomaly.data import read_xyz_tiff

    cache = tmp_path / "cache"
    assert run("mvtec3d-fpfh-patchcore", geometric.root, tmp_path / "entry", "--cache",
               str(cache), "--categories", "bagel") == 0
    stored = sorted(cache.glob("preprocessed-*/bagel__train__good__*.npz"))
    assert len(stored) == 6
    for path in stored:
        with np.load(path, allow_pickle=False) as scan:
            processed = scan["xyz"]
        original = read_xyz_tiff(geometric.root / "bagel/train/good/xyz" /
                                 (path.stem.rsplit("__", 1)[1] + ".tiff"))
        valid_before = np.all(original != 0, axis=2)
        valid_after = np.all(processed != 0, axis=2)
        assert valid_after.sum() < 0.6 * valid_before.sum()   # the plane is gone
        assert valid_after.sum() > 0.05 * valid_before.sum()  # the object is not
        border = np.concatenate([valid_after[:10].ravel(), valid_after[-10:].ravel()])
        assert border.mean() < 0.05
    # Another baseline beside it reuses the preprocessed scans instead of redoing them.
    stamps = {p: p.stat().st_mtime_ns for p in cache.glob("preprocessed-*/*.npz")}
    assert run("mvtec3d-rgb-fpfh-patchcore", geometric.root, tmp_path / "entry2", "--cache",
               str(cache), "--categories", "bagel", "--weights", "random-tiny") == 0
    assert {p: p.stat().st_mtime_ns for p in cache.glob("preprocessed-*/*.npz")} == stamps


# Every baseline runs and writes an entry the evaluator scores ---------------------------------

@pytest.mark.parametrize("key", ["wrn50", "dino_vitb8"])
def test_full_rgb_architecture_gives_28_by_28_patches(key):
    """The published architecture (random weights) on one 224 x 224 image."""
    from baselines.anomaly.models import EXTRACTORS, RgbPatchFeatures

    extractor = EXTRACTORS[key]
    features = RgbPatchFeatures(extractor, "random", "cpu")
    assert "tiny" not in features.weights["id"]
    image = np.random.default_rng(0).integers(0, 256, (1, 224, 224, 3), dtype=np.uint8)
    patches = features(image)
    assert patches.shape == (1, 28 * 28, extractor.dim) and np.isfinite(patches).all()


@pytest.mark.parametrize("name", [s.name for s in ANOMALY])
def test_every_anomaly_baseline_writes_an_entry_that_scores(name, tiny_mvtec, tiny_eyecandies,
                                                           tmp_path):
    dataset = tiny_mvtec if name.startswith("mvtec3d") else tiny_eyecandies
    entry = tmp_path / name
    weights = ["--weights", "random-tiny"] if BASELINES[name].weights != "none" else []
    assert run(name, dataset.root, entry, *weights) == 0
    metadata = json.loads((entry / "metadata.json").read_text())
    assert "SMOKE TEST, NOT A RESULT" in metadata["method"]
    assert metadata["modality"] == BASELINES[name].modality and metadata["shots"] == "full"
    assert metadata["board"] == BASELINES[name].boards[0]
    files = sorted(p.name for p in entry.glob("predictions-*.ndjson.gz"))
    assert files == [f"predictions-{c}.ndjson.gz" for c in dataset.categories]
    lines = prediction_lines(entry)
    assert {line["sample"] for line in lines} == set(dataset.samples)
    for line in lines:
        assert line["map"]["shape"] == [224, 224] and line["map"]["dtype"] == "float16"
        if dataset is tiny_eyecandies:  # not padded, so not resampled after the blur
            assert len(np.unique(decoded(line))) <= 256   # the published blur's 8-bit levels
    record = json.loads((entry / "run.json").read_text())
    assert record["weights"]["kind"] in ("random", "none")
    names = [s["name"] for s in record["stages"]]
    assert any("memory bank" in n for n in names) and any("scoring" in n for n in names)
    assert record["settings"]["patchcore"]["blur"] == "published"
    scores = evaluate(entry, dataset.root, tmp_path)["scores"]["mean"]
    for metric in ("I-AUROC", "P-AUROC", "AUPRO@0.3"):
        assert 0 <= scores[metric] <= 1


def test_run_record_says_which_published_quirks_were_kept(tiny_eyecandies, tmp_path):
    entry = tmp_path / "zero"
    assert run("eyecandies-fpfh-patchcore", tiny_eyecandies.root, entry,
               "--eyecandies-background", "zero", "--blur", "float",
               "--eyecandies-light", "image_5") == 0
    settings = json.loads((entry / "run.json").read_text())["settings"]["patchcore"]
    description = json.loads((entry / "metadata.json").read_text())["description"]
    assert ("This run: point-cloud preprocessing off; blur float; Eyecandies RGB image_5; "
            "Eyecandies background zero; training scans per category at most 401.") in description
    assert settings["eyecandies_background"] == "zero"
    assert settings["blur"] == "float" and settings["eyecandies_light"] == "image_5"
    assert settings["max_train_samples"] == 401 and settings["preprocess"] is False
    maps = [decoded(line) for line in prediction_lines(entry)]
    assert any(len(np.unique(m)) > 256 for m in maps), "float blur is not quantised"


# Resuming ---------------------------------------------------------------------------------

# Runs the CLI in a process that SIGKILLs itself once the first category's predictions are
# stored: a kill at a known point, however fast the run.
KILLED_AFTER_FIRST_CATEGORY = """
import os, signal, sys
from baselines.anomaly import pipeline
write = pipeline.atomic_write
def write_then_die(path, data):
    write(path, data)
    if path.name.endswith(".ndjson.gz"):
        os.kill(os.getpid(), signal.SIGKILL)
pipeline.atomic_write = write_then_die
from evaluator.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_killed_run_resumes_to_identical_predictions(tiny_mvtec, tmp_path):
    """SIGKILL a run once its first category is finished; the rerun reuses that category and
    writes the same bytes as an uninterrupted run."""
    args = ["baseline", "run", "mvtec3d-fpfh-patchcore", "--data", str(tiny_mvtec.root),
            "--device", "cpu", "--workers", "0"]
    cache, entry = tmp_path / "cache", tmp_path / "resumed"
    killed = subprocess.run([sys.executable, "-c", KILLED_AFTER_FIRST_CATEGORY, *args,
                             "--out", str(entry), "--cache", str(cache)], cwd=ROOT, env=ENV,
                            capture_output=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert list(cache.glob("mvtec3d-fpfh-patchcore-*/bagel.ndjson.gz"))
    assert not list(cache.glob("*/tire.ndjson.gz"))
    # The rerun and an uninterrupted run need no kill: in this process, which is quicker.
    assert cli(args + ["--out", str(entry), "--cache", str(cache)]) == 0
    fresh = tmp_path / "fresh"
    assert cli(args + ["--out", str(fresh), "--cache", str(tmp_path / "fresh-cache")]) == 0
    for category in tiny_mvtec.categories:
        name = f"predictions-{category}.ndjson.gz"
        assert (entry / name).read_bytes() == (fresh / name).read_bytes()
    stages = {s["name"]: s for s in json.loads((entry / "run.json").read_text())["stages"]}
    assert stages["bagel: all stages"]["cached"] is True
    assert "tire: scoring" in stages


# Bad input ----------------------------------------------------------------------------------

def _copy(dataset, tmp_path: Path) -> Path:
    root = tmp_path / dataset.root.name
    subprocess.run(["cp", "-r", str(dataset.root), str(root)], check=True)
    return root


def _run_cli(name: str, root: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "evaluator.cli", "baseline", "run", name, "--data", str(root),
         "--out", str(tmp_path / "entry"), "--device", "cpu", "--workers", "0"],
        cwd=ROOT, capture_output=True, text=True, env=ENV)


def test_a_tiff_of_the_wrong_shape_is_named(tiny_mvtec, tmp_path):
    import tifffile

    root = _copy(tiny_mvtec, tmp_path)
    victim = root / "bagel/train/good/xyz/000.tiff"
    tifffile.imwrite(victim, np.zeros((64, 64), np.float32))
    result = _run_cli("mvtec3d-fpfh-patchcore", root, tmp_path)
    assert result.returncode == 3, result.stderr
    assert str(victim) in result.stderr and "H x W x 3" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_rgb_without_its_point_cloud_is_named(tiny_mvtec, tmp_path):
    root = _copy(tiny_mvtec, tmp_path)
    (root / "tire/test/crack/xyz/000.tiff").unlink()
    result = _run_cli("mvtec3d-rgb-fpfh-patchcore", root, tmp_path)
    assert result.returncode == 3, result.stderr
    assert "tire/test/crack" in result.stderr and "1 rgb/*.png but 0 xyz/*.tiff" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_rgb_and_cloud_of_different_sizes_are_named(tiny_mvtec, tmp_path):
    from PIL import Image

    root = _copy(tiny_mvtec, tmp_path)
    victim = root / "bagel/train/good/rgb/001.png"
    Image.new("RGB", (32, 32)).save(victim)
    result = _run_cli("mvtec3d-fpfh-patchcore", root, tmp_path)
    assert result.returncode == 3, result.stderr
    assert "must match pixel for pixel" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("damage", ["missing depth", "bad yaml", "bad pose"])
def test_broken_eyecandies_files_are_named(damage, tiny_eyecandies, tmp_path):
    root = _copy(tiny_eyecandies, tmp_path)
    data = root / "CandyCane/train/data"
    victim = {"missing depth": data / "000_depth.png", "bad yaml": data / "001_info_depth.yaml",
              "bad pose": data / "000_pose.txt"}[damage]
    if damage == "missing depth":
        victim.unlink()
    else:
        victim.write_text("normalization: [1, 2]\n" if damage == "bad yaml" else "1 2 3\n")
    result = _run_cli("eyecandies-fpfh-patchcore", root, tmp_path)
    assert result.returncode == 3, result.stderr
    assert str(victim) in result.stderr and "Traceback" not in result.stderr


def test_usage_errors(tiny_mvtec, tmp_path, capsys):
    assert run("mvtec3d-fpfh-patchcore", tiny_mvtec.root, tmp_path / "a",
               "--categories", "bagle") == 2
    assert "unknown bagle" in capsys.readouterr().err
    assert run("mvtec3d-fpfh-patchcore", tiny_mvtec.root, tmp_path / "b",
               "--weights", "random") == 2
    assert "no network" in capsys.readouterr().err


# Pieces of the family module ------------------------------------------------------------

def test_maps_of_a_padded_scan_go_back_to_its_frame():
    """A 96 x 72 scan is padded to 100 x 100 (top 2, left 14); a map that is 1 exactly on the
    scan's own area of the square comes back as (nearly) all ones."""
    side, top, left, height, width = 100, 2, 14, 96, 72
    square = torch.zeros(side, side)
    square[top:top + height, left:left + width] = 1
    amap = torch.nn.functional.interpolate(square[None, None], size=(224, 224),
                                           mode="bilinear", align_corners=False)[0, 0].numpy()
    back = unpad_map(amap, (side, top, left, height, width))
    assert back.shape == (224, 224)
    assert back[8:-8, 8:-8].min() > 0.99
    np.testing.assert_array_equal(unpad_map(amap, None), amap)


def test_list_shows_each_anomaly_baseline_and_its_published_numbers(capsys):
    assert cli(["baseline", "list"]) == 0
    out = capsys.readouterr().out
    for spec in ANOMALY:
        assert spec.name in out
    dino = published_mean(BASELINES["mvtec3d-dino-vitb8-patchcore"], "mvtec3d-ad-v1", "mean")
    assert dino == {"P-AUROC": 0.987, "I-AUROC": 0.85, "AUPRO@0.3": 0.942}
    assert "I-AUROC 0.850" in out
    eyecandies = published_mean(BASELINES["eyecandies-dino-vitb8-patchcore"], "eyecandies-v1",
                                "mean")
    assert eyecandies == {"I-AUROC": 0.879, "P-AUROC": 0.976, "AUPRO@0.3": 0.88}


def test_readme_lists_every_anomaly_baseline():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for spec in ANOMALY:
        assert f"| `{spec.name}` |" in readme, spec.name
        assert spec.command() in readme
        for metric, value in published_mean(spec, f"{spec.boards[0]}-v1", "mean").items():
            assert f"{metric} {value:.3f}" in readme, (spec.name, metric)
