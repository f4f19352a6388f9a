"""`leaderboard baseline run-all` on generated FORB, MVTec 3D-AD and Eyecandies data with the
tiny random-weight stand-ins: every entry, each evaluated, the comparison table, and a resume
after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the baselines extra is not installed")
pytest.importorskip("open3d", reason="the baselines extra is not installed")

from baselines.anomaly.synthetic import (  # noqa: E402
    make_eyecandies_dataset,
    make_mvtec3d_dataset,
)
from baselines.catalogue import BASELINES  # noqa: E402
from baselines.comparison import compare, floor  # noqa: E402
from baselines.forb.synthetic import make_forb_dataset  # noqa: E402
from baselines.run_all import is_complete, plan  # noqa: E402
from evaluator.cli import main as cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "LEADERBOARD_NO_PROGRESS": "1"}
SMALL_RUNS = ["--weights", "random-tiny", "--device", "cpu", "--workers", "0",
              "--codebook-size", "64", "--kmeans-iterations", "2"]

# Runs the CLI in a process that SIGKILLs itself right after the second entry is complete
# (its run.json is written last): a kill between runs, at a known point.
KILLED_AFTER_TWO_ENTRIES = """
import os, signal, sys
from baselines.run_record import RunRecord
write = RunRecord.write
written = []
def write_then_die(self, entry_dir):
    path = write(self, entry_dir)
    written.append(path)
    if len(written) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return path
RunRecord.write = write_then_die
from evaluator.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("run-all")
    return {
        "forb": make_forb_dataset(root / "FORB", queries_per_type={"animated_cards": 1,
                                                                   "logos": 1},
                                  distractors=1).root,
        "mvtec3d-ad": make_mvtec3d_dataset(root / "mvtec3d", ("bagel",), size=48, train=2,
                                           validation=1, test={"good": 1, "crack": 1},
                                           seed=2).root,
        "eyecandies": make_eyecandies_dataset(root / "Eyecandies", ("CandyCane",), size=48,
                                              train=2, val=1, test_good=1, test_bad=1,
                                              seed=3).root,
    }


def test_run_all_writes_every_entry_and_the_table_and_resumes(datasets, tmp_path, capsys):
    out, report = tmp_path / "submissions", tmp_path / "report"
    args = ["baseline", "run-all", "--forb", str(datasets["forb"]), "--mvtec3d",
            str(datasets["mvtec3d-ad"]), "--eyecandies", str(datasets["eyecandies"]),
            "--out", str(out), "--report", str(report), *SMALL_RUNS]
    killed = subprocess.run([sys.executable, "-c", KILLED_AFTER_TWO_ENTRIES, *args], cwd=ROOT,
                            env=ENV, capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    jobs, skipped = plan(dict(datasets), out)
    assert [is_complete(job.entry) for job in jobs[:3]] == [True, True, False]
    first = {job.entry: (job.entry / "run.json").stat().st_mtime_ns for job in jobs[:2]}

    assert cli(args) == 0
    printed = capsys.readouterr().out
    assert printed.count("entry already written: not run again") == 2
    assert {job.spec.name for job in jobs} == set(BASELINES)   # forb only: no FORB_subset
    assert skipped == [f"{name} on forb-subset: {datasets['forb'] / 'metadata/FORB_subset'} "
                       "does not exist" for name in BASELINES if name.startswith("forb-")]
    for job in jobs:
        assert is_complete(job.entry), job.entry
        assert not (job.entry / "records").exists()   # records are the publish workflow's
        metadata = json.loads((job.entry / "metadata.json").read_text())
        assert metadata["command"].startswith(
            f"leaderboard baseline run {job.spec.name} --data {job.data} --out {job.entry}")
        assert ("--weights random-tiny" in metadata["command"]) == (
            not job.spec.weights.startswith("none"))
        assert (report / "scores" / f"{job.key}.json").is_file()
    assert {entry: (entry / "run.json").stat().st_mtime_ns for entry in first} == first

    rows = json.loads((report / "comparison.json").read_text())
    table = (report / "comparison.md").read_text()
    assert {row["baseline"] for row in rows} == set(BASELINES)
    for row in rows:
        spec = BASELINES[row["baseline"]]
        assert row["ours"] is not None and row["note"].startswith("smoke test")
        assert f"| {row['baseline']} | {row['board']} | {row['metric']} |" in table
        if spec.published:
            assert row["published"] is not None and row["source"]
            assert row["difference"] == pytest.approx(row["ours"] - row["published"])
            assert row["tolerance"] >= floor(spec.benchmark, row["metric"])
            assert row["within"] == (abs(row["difference"]) <= row["tolerance"] + 1e-9)
        else:
            assert row["published"] is None and row["within"] is None
    clip = [r for r in rows if r["baseline"] == "forb-clip-vit-l14-336"]
    assert {r["metric"] for r in clip} == {"mAP@1", "t-mAP@1"}
    assert clip[0]["published"] == pytest.approx(0.8435)   # FORB Table 1, printed in %

    # Once more: nothing runs or is evaluated again.
    assert cli(args) == 0
    printed = capsys.readouterr().out
    assert printed.count("entry already written") == printed.count("scores already in the "
                                                                   "report") == len(jobs)


def test_tolerance_is_the_floor_or_half_the_bootstrap_interval():
    spec = BASELINES["mvtec3d-dino-vitb8-patchcore"]
    near = {"scores": {"mean": {"I-AUROC": 0.865, "P-AUROC": 0.987, "AUPRO@0.3": 0.920}},
            "intervals": {"mean": {"AUPRO@0.3": [0.88, 0.96]}}}
    rows = {r.metric: r for r in compare(spec, "mvtec3d-ad-v1", "mvtec3d-ad/x", near, False)}
    assert rows["I-AUROC"].published == 0.85 and rows["I-AUROC"].tolerance == 0.02
    assert rows["I-AUROC"].within                       # 0.015 off, floor 0.02
    assert rows["P-AUROC"].within and rows["P-AUROC"].difference == pytest.approx(0)
    assert rows["AUPRO@0.3"].tolerance == pytest.approx(0.04)  # the interval is wider
    assert rows["AUPRO@0.3"].within                     # 0.022 off
    far = {"scores": {"mean": {"I-AUROC": 0.80}}}
    rows = {r.metric: r for r in compare(spec, "mvtec3d-ad-v1", "mvtec3d-ad/x", far, False)}
    assert rows["I-AUROC"].within is False
    assert rows["P-AUROC"].ours is None and rows["P-AUROC"].within is None
    failed = compare(spec, "mvtec3d-ad-v1", "mvtec3d-ad/x", None, False, "run failed: boom")
    assert all(r.note == "run failed: boom" and r.within is None for r in failed)


def test_usage_errors(datasets, tmp_path, capsys):
    out = str(tmp_path / "submissions")
    assert cli(["baseline", "run-all", "--out", out]) == 2
    assert cli(["baseline", "run-all", "--forb", str(datasets["forb"]), "--out", out,
                "--baselines", "forb-bow,imagenet-resnet"]) == 2
    assert cli(["baseline", "run-all", "--forb", str(datasets["forb"]), "--out", out,
                "--baselines", "mvtec3d-fpfh-patchcore"]) == 2
    err = capsys.readouterr().err
    assert "give at least one dataset" in err and "unknown imagenet-resnet" in err
    assert "no --mvtec3d root was given" in err and "Traceback" not in err


def test_order_keeps_runs_that_share_a_cache_together(datasets, tmp_path):
    jobs, _ = plan(dict(datasets), tmp_path)
    names = [job.spec.name for job in jobs]
    assert names.index("forb-bow-rerank") == names.index("forb-bow") + 1
    preprocessed = [names.index(n) for n in ("mvtec3d-rgb-wrn50-patchcore",
                                             "mvtec3d-fpfh-patchcore",
                                             "mvtec3d-rgb-fpfh-patchcore")]
    assert max(preprocessed) - min(preprocessed) == 2
    assert jobs[0].entry == tmp_path / "forb" / "forb-clip-vit-l14-336"


def test_a_failed_run_is_reported_and_the_others_go_on(datasets, tmp_path, capsys):
    forb = tmp_path / "FORB"
    subprocess.run(["cp", "-r", str(datasets["forb"]), str(forb)], check=True)
    victim = (forb / "metadata" / "all_database_images.txt").read_text().split()[1]
    (forb / victim).write_bytes(b"not a jpeg")
    out, report = tmp_path / "submissions", tmp_path / "report"
    code = cli(["baseline", "run-all", "--forb", str(forb), "--mvtec3d",
                str(datasets["mvtec3d-ad"]), "--out", str(out), "--report", str(report),
                "--baselines", "forb-dino-vit-s8,mvtec3d-fpfh-patchcore", *SMALL_RUNS])
    assert code == 3
    err = capsys.readouterr().err
    assert "error: forb-dino-vit-s8 on forb: run failed:" in err and victim in err
    assert "Traceback" not in err
    assert is_complete(out / "mvtec3d-ad" / "mvtec3d-fpfh-patchcore")
    rows = json.loads((report / "comparison.json").read_text())
    failed = [r for r in rows if r["baseline"] == "forb-dino-vit-s8"]
    assert failed and all(r["note"].startswith("run failed") and r["ours"] is None
                          for r in failed)
