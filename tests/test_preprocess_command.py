"""`leaderboard baseline preprocess` end to end on a tiny generated MVTec 3D-AD: the output
layout and contents, the input left untouched, resuming after a kill, bad input."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

pytest.importorskip("open3d", reason="the baselines extra is not installed")

from baselines.anomaly import pointcloud as pc  # noqa: E402
from baselines.anomaly import preprocess as prep  # noqa: E402
from baselines.anomaly.data import load_mvtec3d, read_rgb, read_xyz_tiff  # noqa: E402
from baselines.anomaly.pointcloud import preprocess  # noqa: E402
from baselines.anomaly.synthetic import make_mvtec3d_dataset  # noqa: E402
from baselines.anomaly.synthetic_clutter import cluttered_scan  # noqa: E402
from evaluator.cli import main as cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "LEADERBOARD_NO_PROGRESS": "1"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    # 150 x 120: not square, so the padding shows (to 200 x 200).
    data = make_mvtec3d_dataset(tmp_path_factory.mktemp("mvtec") / "mvtec", ("bagel", "tire"),
                                size=(150, 120), train=3, validation=1,
                                test={"good": 1, "crack": 2}, seed=3)
    # Debris, flying pixels and outliers in the training scans (baselines.anomaly.synthetic_clutter).
    for i, tiff in enumerate(sorted(data.root.glob("*/train/good/xyz/*.tiff"))):
        xyz, rgb = cluttered_scan((150, 120), seed=i, category=tiff.parts[-5])
        tifffile.imwrite(tiff, xyz, photometric="rgb")
        Image.fromarray(rgb).save(tiff.parent.parent / "rgb" / (tiff.stem + ".png"))
    return data


def tree_digest(root: Path) -> str:
    """Names, bytes and modification times of every file under root."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*")):
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}|{stat.st_mode}|{stat.st_mtime_ns}".encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def open3d_keep(xyz: np.ndarray) -> np.ndarray:
    """The pixels the published code keeps, with open3d's own DBSCAN."""
    flat, _, _ = pc.remove_plane(xyz, None)
    padded, _ = pc.pad_to_square(flat)
    valid = pc.valid_mask(padded)
    labels = pc.dbscan_labels(padded[valid])
    keep = np.zeros_like(valid)
    keep[valid] = labels == pc.largest_label(labels)
    return keep


def outputs(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file()}


def test_writes_the_dataset_layout_with_the_published_preprocessing(dataset, tmp_path,
                                                                     capsys):
    before = tree_digest(dataset.root)
    out = tmp_path / "pre"
    assert cli(["baseline", "preprocess", "--data", str(dataset.root), "--out", str(out),
                "--workers", "1"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert tree_digest(dataset.root) == before

    inputs = sorted(p.relative_to(dataset.root) for p in dataset.root.rglob("*") if p.is_file())
    written = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert written == sorted(inputs + [Path(prep.MARKER)])
    for tiff in dataset.root.rglob("xyz/*.tiff"):
        rel = tiff.relative_to(dataset.root)
        rgb = tiff.parent.parent / "rgb" / (tiff.stem + ".png")
        expected = preprocess(read_xyz_tiff(tiff), read_rgb(rgb))
        got_xyz = read_xyz_tiff(out / rel)
        assert got_xyz.shape == (200, 200, 3) and got_xyz.dtype == np.float32
        assert np.array_equal(got_xyz, expected.xyz)
        assert np.array_equal(pc.valid_mask(got_xyz), open3d_keep(read_xyz_tiff(tiff)))
        assert np.array_equal(read_rgb(out / rel.parent.parent / "rgb" / rgb.name),
                              expected.rgb)
    for gt in dataset.root.rglob("gt/*.png"):
        assert (out / gt.relative_to(dataset.root)).read_bytes() == gt.read_bytes()
    # The output is a dataset root the loaders read like the original.
    loaded = load_mvtec3d(out)
    assert loaded.categories == load_mvtec3d(dataset.root).categories

    # The baselines take the original root (they preprocess into their cache), not this one.
    pytest.importorskip("torch", reason="the baselines extra is not installed")
    assert cli(["baseline", "run", "mvtec3d-fpfh-patchcore", "--data", str(out), "--out",
                str(tmp_path / "entry"), "--device", "cpu", "--workers", "0"]) == 2
    assert "already preprocessed" in capsys.readouterr().err

    # Run again: nothing to do, nothing rewritten.
    first = outputs(out)
    times = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert cli(["baseline", "preprocess", "--data", str(dataset.root), "--out", str(out)]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == times
    assert outputs(out) == first

    # Worker processes give the same bytes.
    parallel = tmp_path / "parallel"
    assert cli(["baseline", "preprocess", "--data", str(dataset.root), "--out", str(parallel),
                "--workers", "2"]) == 0
    assert outputs(parallel) == first
    assert tree_digest(dataset.root) == before


def test_resumes_after_an_interrupt_and_after_a_kill(dataset, tmp_path, monkeypatch, capsys):
    before = tree_digest(dataset.root)
    fresh = tmp_path / "fresh"
    prep.run(dataset.root, fresh, workers=1, log=lambda _: None)

    # Ctrl-C after three scans, with a half-written temporary file left behind.
    out = tmp_path / "resumed"
    real, calls = prep.preprocess_scan, []

    def interrupted(scan):
        if len(calls) == 3:
            scan.out_xyz.parent.mkdir(parents=True, exist_ok=True)
            (scan.out_xyz.parent / f".{scan.out_xyz.name}.999.tmp").write_bytes(b"half")
            raise KeyboardInterrupt
        calls.append(scan)
        return real(scan)

    monkeypatch.setattr(prep, "preprocess_scan", interrupted)
    args = ["baseline", "preprocess", "--data", str(dataset.root), "--out", str(out),
            "--workers", "1"]
    assert cli(args) == 130
    assert "run the same command again" in capsys.readouterr().err
    done = {scan.out_xyz: scan.out_xyz.stat().st_mtime_ns for scan in calls}
    assert len(list(out.rglob("xyz/*.tiff"))) == 3
    monkeypatch.setattr(prep, "preprocess_scan", real)
    assert cli(args) == 0
    assert "3 already done" in capsys.readouterr().out
    assert {path: path.stat().st_mtime_ns for path in done} == done  # not redone
    assert outputs(out) == outputs(fresh)  # and the leftover temporary file is gone

    # A real kill (SIGKILL) in the middle of a run with two worker processes.
    killed = tmp_path / "killed"
    command = [sys.executable, "-m", "evaluator.cli", "baseline", "preprocess", "--data",
               str(dataset.root), "--out", str(killed), "--workers", "2"]
    process = subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while not list(killed.rglob("xyz/*.tiff")) and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)  # the workers too
    process.wait()
    scans = len(list(dataset.root.rglob("xyz/*.tiff")))
    assert 0 < len(list(killed.rglob("xyz/*.tiff"))) < scans, "not killed in the middle"
    subprocess.run(command, cwd=ROOT, env=ENV, check=True, capture_output=True)
    assert outputs(killed) == outputs(fresh)
    assert tree_digest(dataset.root) == before


def test_bad_input_gets_one_clear_line(dataset, tmp_path, capsys):
    def run(data: Path, out: Path) -> tuple[int, str]:
        code = cli(["baseline", "preprocess", "--data", str(data), "--out", str(out),
                    "--workers", "1"])
        return code, capsys.readouterr().err

    code, err = run(dataset.root, dataset.root / "inside")
    assert code == 2 and "overlap" in err
    assert not (dataset.root / "inside").exists()
    code, err = run(tmp_path / "missing", tmp_path / "out")
    assert code == 3 and "no such folder" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, err = run(empty, tmp_path / "out")  # a folder without scans
    assert code == 3 and "no scans found" in err

    broken = tmp_path / "broken"
    subprocess.run(["cp", "-r", str(dataset.root), str(broken)], check=True)
    tiff = sorted(broken.rglob("xyz/*.tiff"))[0]
    tiff.write_bytes(b"not a tiff")
    code, err = run(broken, tmp_path / "out-broken")
    assert code == 3 and str(tiff) in err and "Traceback" not in err
    rgb = sorted(broken.rglob("rgb/*.png"))[-1]
    rgb.unlink()
    code, err = run(broken, tmp_path / "out-broken")
    assert code == 3 and rgb.name in err and "no RGB image" in err

    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    code, err = run(dataset.root, a_file)
    assert code == 2 and "is a file" in err
    code, err = run(dataset.root, a_file / "out")  # cannot be created: one line, no traceback
    assert code == 3 and "Traceback" not in err and str(a_file) in err

    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    code, err = run(dataset.root, other)
    assert code == 2 and "not empty" in err
    made = tmp_path / "made"
    prep.run(dataset.root, made, workers=1, log=lambda _: None)
    code, err = run(broken, made)
    assert code == 2 and "preprocessed copy of" in err
    code, err = run(made, tmp_path / "twice")
    assert code == 2 and "already" in err
