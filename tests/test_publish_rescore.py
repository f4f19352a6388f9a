"""The publish workflow when a board version appears that stored entries have no record for:
`leaderboard ci publish` under the simulated Actions environment rescores the board under the
new version (records beside the old ones, the changes report), the workflow's staging step
picks both up, and push-records.sh commits them to the default branch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import yaml

from evaluator.anomaly import synthetic
from evaluator.anomaly.datasets import MVTEC3D_LAYOUT
from evaluator.cli import main
from tests.ci_support import actions_env, commit_all, git, init_repo
from tests.forb_data import ENTRY_METADATA
from tests.test_ci_pipeline import run_cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _merged_v1_board(tmp_path):
    """A default branch whose two mvtec3d-ad entries were recorded under v1 only."""
    labels = tmp_path / "mvtec"
    samples = synthetic.write_label_root(labels, MVTEC3D_LAYOUT, per_category=10,
                                         mask_size=32, seed=5, categories=("bagel",))
    repo = init_repo(tmp_path / "repo")
    rng = np.random.default_rng(1)
    for i in range(2):
        entry = repo / "submissions" / "mvtec3d-ad" / f"entry-{i}"
        entry.mkdir(parents=True)
        lines = list(synthetic.prediction_lines(samples, map_size=24, seed=i))
        for line in lines:
            line["score"] = round(line["score"] + float(rng.normal(0, 0.2 + 0.3 * i)), 6)
        synthetic.write_predictions(entry / "predictions.ndjson.gz", lines)
        (entry / "metadata.json").write_text(json.dumps(
            {**ENTRY_METADATA, "board": "mvtec3d-ad", "method": f"M{i}", "modality": "RGB"}))
        assert main(["evaluate", "--entry", str(entry), "--labels", str(labels),
                     "--benchmark", "mvtec3d-ad-v1"]) == 0
    commit_all(repo, "main with v1 records")
    return repo, labels


def _staging_script() -> str:
    jobs = yaml.safe_load(open(os.path.join(REPO, ".github/workflows/publish.yml")))["jobs"]
    step = next(s for s in jobs["records"]["steps"] if s.get("name") == "Stage the new records")
    return step["run"]


def test_a_new_board_version_is_rescored_staged_and_pushed(tmp_path, monkeypatch, capsys):
    repo, labels = _merged_v1_board(tmp_path)
    v1 = {p: p.read_bytes() for p in repo.glob("submissions/*/*/records/*-v1.json")}
    env = actions_env(monkeypatch, tmp_path / "publish")
    env.set_event("push", {"ref": "refs/heads/main"})
    code, log = run_cli(capsys, "ci", "publish", "--repo", str(repo),
                        "--labels", f"mvtec3d-ad={labels}")
    assert code == 0, log
    assert env.outputs()["recorded"] == "3"  # two v2 records and the changes report
    summary = env.summary_text()
    assert "rescored every stored entry under mvtec3d&#45;ad&#45;v2" in summary
    assert "submissions&#47;changes&#47;mvtec3d&#45;ad&#45;v2&#46;json" in summary
    for path, text in v1.items():
        assert path.read_bytes() == text
    for i in range(2):
        record = json.loads((repo / f"submissions/mvtec3d-ad/entry-{i}/records/"
                             "mvtec3d-ad-v2.json").read_text())
        assert record["provenance"]["ci_run"].endswith("/actions/runs/4242")
    report = json.loads((repo / "submissions/changes/mvtec3d-ad-v2.json").read_text())
    assert [e["entry"] for e in report["entries"]] == ["entry-0", "entry-1"]
    assert all(e["rank_move"] == 0 for e in report["entries"])

    # The workflow's staging step, then the push job's script, against a bare origin.
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    git(repo, "push", "-q", str(origin), "main")
    runner_temp = tmp_path / "publish" / "runner-temp"
    subprocess.run(["bash", "-e", "-c", _staging_script()], cwd=repo, check=True,
                   env={**os.environ, "RUNNER_TEMP": str(runner_temp)})
    staged = sorted(str(p.relative_to(runner_temp / "records"))
                    for p in (runner_temp / "records").rglob("*.json"))
    assert staged == ["submissions/changes/mvtec3d-ad-v2.json",
                      "submissions/mvtec3d-ad/entry-0/records/mvtec3d-ad-v2.json",
                      "submissions/mvtec3d-ad/entry-1/records/mvtec3d-ad-v2.json"]
    checkout = tmp_path / "checkout"
    git(tmp_path, "clone", "-q", str(origin), str(checkout))
    pushed = subprocess.run(
        ["bash", os.path.join(REPO, ".github/scripts/push-records.sh"),
         str(runner_temp / "records"), "main"], cwd=checkout, capture_output=True, text=True,
        env={**os.environ, "GITHUB_TOKEN": "t", "GITHUB_OUTPUT": str(tmp_path / "out"),
             "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x",
             "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x"}, timeout=120)
    assert pushed.returncode == 0, pushed.stderr
    files = git(origin, "ls-tree", "-r", "--name-only", "main").splitlines()
    assert set(staged) <= set(files)

    # Nothing left to do on the next push.
    code, log = run_cli(capsys, "ci", "publish", "--repo", str(repo),
                        "--labels", f"mvtec3d-ad={labels}")
    assert code == 0 and env.outputs()["recorded"] == "0", log

    # A new entry merged later is recorded under every version of its board, and the
    # changes report (a record of the rescoring) is left as it was.
    report_before = (repo / "submissions/changes/mvtec3d-ad-v2.json").read_bytes()
    new = repo / "submissions" / "mvtec3d-ad" / "entry-new"
    shutil.copytree(repo / "submissions/mvtec3d-ad/entry-0", new, ignore=shutil.ignore_patterns(
        "records"))
    code, log = run_cli(capsys, "ci", "publish", "--repo", str(repo),
                        "--labels", f"mvtec3d-ad={labels}")
    assert code == 0 and env.outputs()["recorded"] == "2", log
    assert sorted(p.name for p in (new / "records").iterdir()) == ["mvtec3d-ad-v1.json",
                                                                  "mvtec3d-ad-v2.json"]
    assert (repo / "submissions/changes/mvtec3d-ad-v2.json").read_bytes() == report_before
