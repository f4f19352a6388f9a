"""The pipeline's Python entry points (`leaderboard ci validate|score|publish`) under a simulated
GitHub Actions environment: a real git repository with a default branch and a PR branch, the
runner's output/summary/event files, and a fake GitHub REST API on 127.0.0.1.

Covers the submission rules, annotations, the artifact hand-over (with tampering and unsafe
zips), fork PRs (empty ``pull_requests``), one comment per PR, the quota, records on publish,
a canary planted in the labels, and an entry whose name tries to inject commands and markup."""

from __future__ import annotations

import datetime as dt
import html
import json
import shutil
import zipfile
from contextlib import contextmanager
from pathlib import Path

import pytest

from evaluator import labels as labels_module
from evaluator.bundles import generate_key, pack, parse_key
from evaluator.ci.artifact import ArtifactError, safe_extract, stage_entries
from evaluator.ci.comment import MARKER
from evaluator.ci.quota import (
    MAX_ENTRIES_PER_PULL_REQUEST,
    Scoring,
    ledger_from_comment,
    ledger_marker,
)
from evaluator.cli import main
from evaluator.forb import synthetic, writers
from evaluator.forb.labels import load_labels
from evaluator.forb.task import load_task
from evaluator.labels import DirectorySource, LabelSource
from tests.ci_support import (
    FakeGitHub,
    Fault,
    actions_env,
    command_lines,
    commit_all,
    git,
    init_repo,
    pr_files,
    serve,
    zip_folder,
)
from tests.forb_data import ENTRY_METADATA, write_tiny_forb

CANARY = "CANARYq9z4"
INJECTION = ("Evil\n::add-mask::x\n::error file=README.md::pwned\r\n%0A::warning::y "
             "<script>alert(1)</script> [x](javascript:alert(1)) @maintainer #1 | a | b |")


@pytest.fixture(scope="module")
def forb(tmp_path_factory):
    meta = write_tiny_forb(tmp_path_factory.mktemp("labels") / "forb", seed=4, gt_marker=CANARY)
    task = load_task(meta)
    return meta, task, load_labels(meta, task)


def write_entry(folder: Path, forb, seed: int, **metadata) -> Path:
    """An entry whose predictions never name a ground-truth image, so the canary in those
    names exists only in the labels (scores are then 0, which is all these tests need)."""
    _, task, labels = forb
    run = synthetic.generate(task, labels, n_candidates=6, seed=seed, hit_rate=0.3)
    for db, per_query in run.ids.items():   # drop every ground-truth image (canary in name)
        names = task.databases[db]
        for q, ids in enumerate(per_query):
            keep = [i for i, c in enumerate(ids) if CANARY not in names[c]]
            run.ids[db][q] = [ids[i] for i in keep]
            run.scores[db][q] = [run.scores[db][q][i] for i in keep]
    writers.write_predictions_file(run, task, folder / "predictions.ndjson")
    assert CANARY not in (folder / "predictions.ndjson").read_text()
    (folder / "metadata.json").write_text(json.dumps({**ENTRY_METADATA, **metadata}))
    return folder


@pytest.fixture
def repo(tmp_path, forb):
    """main: one merged, recorded entry. The PR branch 'feature' starts from there."""
    root = init_repo(tmp_path / "repo")
    (root / "README.md").write_text("the leaderboard\n")
    merged = write_entry(root / "submissions/forb/merged-one", forb, seed=1, method="Merged")
    assert main(["evaluate", "--entry", str(merged), "--labels", str(forb[0])]) == 0
    commit_all(root, "main")
    git(root, "checkout", "-q", "-b", "feature")
    return root


def pr_event(env, repo: Path, number: int = 7) -> tuple[str, str]:
    base, head = git(repo, "rev-parse", "main"), git(repo, "rev-parse", "HEAD")
    env.set_event("pull_request", {"number": number, "pull_request": {
        "number": number, "base": {"sha": base, "ref": "main"},
        "head": {"sha": head, "ref": "feature"}}})
    return base, head


def run_cli(capsys, *args) -> tuple[int, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    return code, captured.out + captured.err


# validate ------------------------------------------------------------------------------------

def test_validate_accepts_a_new_entry_and_stages_it(repo, forb, tmp_path, monkeypatch, capsys):
    write_entry(repo / "submissions/forb/new-method", forb, seed=2, method="New method")
    commit_all(repo, "add entry")
    env = actions_env(monkeypatch, tmp_path / "runner")
    _, head = pr_event(env, repo)
    out = tmp_path / "staged"
    code, log = run_cli(capsys, "ci", "validate", "--repo", str(repo), "--out", str(out))
    assert code == 0, log
    assert json.loads(env.outputs()["entries"]) == ["submissions/forb/new-method"]
    assert "Valid." in env.summary_text()
    manifest = json.loads((out / "submission.json").read_text())
    assert manifest["entries"] == ["submissions/forb/new-method"]
    assert manifest["head_sha"] == head and manifest["pull_request"] == 7
    assert (out / "submissions/forb/new-method/predictions.ndjson").is_file()
    assert not (out / "submissions/forb/merged-one").exists()
    assert command_lines(log) == []


def test_validate_enforces_the_submission_rules(repo, forb, tmp_path, monkeypatch, capsys):
    merged = repo / "submissions/forb/merged-one"
    with open(merged / "predictions.ndjson", "a") as handle:
        handle.write("\n")
    (repo / "README.md").write_text("changed\n")
    (repo / "submissions/forb/stray.txt").write_text("x")
    entry = write_entry(repo / "submissions/forb/new-method", forb, seed=2)
    (entry / "records").mkdir()
    (entry / "records/forb-v1.json").write_text("{}")
    commit_all(repo, "many things")
    env = actions_env(monkeypatch, tmp_path / "runner")
    pr_event(env, repo)
    out = tmp_path / "staged"
    code, log = run_cli(capsys, "ci", "validate", "--repo", str(repo), "--out", str(out))
    assert code == 1
    errors = "\n".join(command_lines(log))
    assert "::error title=leaderboard,file=submissions/forb/merged-one/predictions.ndjson::" \
           in errors and "merged entries are immutable" in errors
    assert "file=README.md::a submission pull request changes files under submissions/" in errors
    assert "file=submissions/forb/stray.txt::" in errors
    assert "file=submissions/forb/new-method/records/forb-v1.json::records/ are written" in errors
    assert "immutable" in env.summary_text()
    assert not out.exists(), "nothing is staged for scoring when validation fails"


def test_deleting_a_merged_entry_or_moving_its_board_is_refused(repo, tmp_path, monkeypatch,
                                                                capsys):
    metadata = json.loads((repo / "submissions/forb/merged-one/metadata.json").read_text())
    (repo / "submissions/forb/merged-one/metadata.json").write_text(
        json.dumps({**metadata, "board": "forb-subset", "description": "fixed a typo"}))
    commit_all(repo, "move board")
    env = actions_env(monkeypatch, tmp_path / "runner")
    pr_event(env, repo)
    code, log = run_cli(capsys, "ci", "validate", "--repo", str(repo))
    assert code == 1 and "the board of a merged entry cannot change" in log
    git(repo, "reset", "-q", "--hard", "main")
    shutil.rmtree(repo / "submissions/forb/merged-one")
    commit_all(repo, "delete")
    pr_event(env, repo)
    code, log = run_cli(capsys, "ci", "validate", "--repo", str(repo))
    assert code == 1 and "deletes a file of the merged entry merged-one" in log


def test_metadata_fix_on_a_merged_entry_and_an_explicit_revision_are_allowed(
        repo, forb, tmp_path, monkeypatch, capsys):
    path = repo / "submissions/forb/merged-one/metadata.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "description": "Typo fixed."}))
    write_entry(repo / "submissions/forb/merged-two", forb, seed=3, revises="merged-one")
    commit_all(repo, "fix and revise")
    env = actions_env(monkeypatch, tmp_path / "runner")
    pr_event(env, repo)
    code, log = run_cli(capsys, "ci", "validate", "--repo", str(repo))
    assert code == 0, log
    assert json.loads(env.outputs()["entries"]) == ["submissions/forb/merged-one",
                                                    "submissions/forb/merged-two"]
    metadata = json.loads((repo / "submissions/forb/merged-two/metadata.json").read_text())
    metadata["revises"] = "never-merged"
    (repo / "submissions/forb/merged-two/metadata.json").write_text(json.dumps(metadata))
    commit_all(repo, "bad revision")
    pr_event(env, repo)
    code, log = run_cli(capsys, "ci", "validate", "--repo", str(repo))
    assert code == 1 and "'never-merged' is not a merged forb entry" in log


def test_bad_lines_are_annotated_on_their_file_and_line(repo, forb, tmp_path, monkeypatch,
                                                        capsys):
    entry = write_entry(repo / "submissions/forb/new-method", forb, seed=2)
    lines = (entry / "predictions.ndjson").read_text().splitlines()
    lines[2] = lines[2].replace('"scores": [', '"scores": ["high", ')
    (entry / "predictions.ndjson").write_text("\n".join(lines) + "\n")
    commit_all(repo, "broken line")
    env = actions_env(monkeypatch, tmp_path / "runner")
    pr_event(env, repo)
    code, log = run_cli(capsys, "ci", "validate", "--repo", str(repo))
    assert code == 1
    assert any(c.startswith("::error title=leaderboard,file=submissions/forb/new-method/"
                            "predictions.ndjson,line=3::") for c in command_lines(log))


def test_a_pr_without_submissions_is_not_a_submission(repo, tmp_path, monkeypatch, capsys):
    (repo / "README.md").write_text("docs change\n")
    commit_all(repo, "docs")
    env = actions_env(monkeypatch, tmp_path / "runner")
    pr_event(env, repo)
    code, _ = run_cli(capsys, "ci", "validate", "--repo", str(repo))
    assert code == 0 and env.outputs()["entries"] == "[]"


def test_validate_outside_actions_says_what_is_missing(monkeypatch, capsys):
    monkeypatch.delenv("GITHUB_EVENT_PATH", raising=False)
    code, out = run_cli(capsys, "ci", "validate")
    assert code == 2 and "GITHUB_EVENT_PATH" in out


# score ---------------------------------------------------------------------------------------

class Pipeline:
    """validate on the PR branch, then score from a checkout of main, as the workflows do."""

    def __init__(self, repo, forb, tmp_path, monkeypatch, capsys):
        self.repo, self.forb, self.tmp, self.mp, self.capsys = (repo, forb, tmp_path,
                                                                monkeypatch, capsys)
        self.fake = FakeGitHub(page_size=1, git_repo=repo)
        self.server = serve(self.fake)
        self.logs: list[str] = []
        self.runner_temps: list[Path] = []
        self.label_key = ""
        self.run_id = 100
        self.variables: dict[str, str] = {}   # repository variables the score job reads

    def validate(self, number: int = 7, author: str = "contrib") -> Path:
        env = actions_env(self.mp, self.tmp / f"validate-{self.run_id}", self.fake.url)
        base, head = pr_event(env, self.repo, number)
        out = self.tmp / f"staged-{self.run_id}"
        code, log = run_cli(self.capsys, "ci", "validate", "--repo", str(self.repo),
                            "--out", str(out))
        self.logs.append(log)
        assert code == 0, log
        self._open_or_push(number, author, base, head)
        return out

    def stage(self, entries: list[str], number: int = 7, author: str = "contrib") -> Path:
        """What a validate run whose checks the PR changed uploads: the entries, unchecked."""
        base, head = git(self.repo, "rev-parse", "main"), git(self.repo, "rev-parse", "HEAD")
        out = self.tmp / f"staged-{self.run_id}-{head[:8]}"
        stage_entries(self.repo, entries, out,
                      {"pull_request": number, "head_sha": head, "base_sha": base})
        self._open_or_push(number, author, base, head)
        return out

    def _open_or_push(self, number: int, author: str, base: str, head: str) -> None:
        if number not in self.fake.pulls:
            self.fake.add_pull(number, author, head, "feature", "contrib-owner",
                               pr_files(self.repo, base, head), base_sha=base)
        else:
            self.fake.move_head(number, head)

    def score(self, staged: Path | bytes, number: int = 7, bundle: bool = False,
              labels: str | None = None) -> tuple[int, str]:
        self.run_id += 1
        data = staged if isinstance(staged, bytes) else zip_folder(staged)
        self.fake.add_artifact(self.run_id, "submission", data)
        head = self.fake.pulls[number]["head"]["sha"]
        branch = git(self.repo, "rev-parse", "--abbrev-ref", "HEAD")
        git(self.repo, "checkout", "-q", "main")   # the score job runs the default branch
        try:
            env = actions_env(self.mp, self.tmp / f"score-{self.run_id}", self.fake.url)
            for name, value in self.variables.items():
                self.mp.setenv(name, value)
            env.set_event("workflow_run", {"workflow_run": {
                "id": self.run_id, "event": "pull_request", "conclusion": "success",
                "head_sha": head, "head_branch": "feature",
                "head_repository": {"full_name": "contrib-owner/leaderboard",
                                    "owner": {"login": "contrib-owner"}},
                "pull_requests": []}})   # what fork PRs give workflow_run
            source = labels or str(self.forb[0])
            labels = [] if bundle else ["--labels", f"forb={source}"]
            if bundle:   # the workflow's environment secret
                self.mp.setenv("LEADERBOARD_LABEL_KEY", self.label_key)
            code, log = run_cli(self.capsys, "ci", "score", "--repo", str(self.repo), *labels)
            self.runner_temps.append(self.tmp / f"score-{self.run_id}" / "runner-temp")
        finally:
            git(self.repo, "checkout", "-q", branch)
        self.logs += [log, env.summary_text(), env.output.read_text()
                      if env.output.exists() else ""]
        return code, log

    def comment(self, number: int = 7) -> str:
        mine = [c for c in self.fake.comments[number] if MARKER in c["body"]]
        assert len(mine) == 1, "exactly one score comment per pull request"
        return mine[0]["body"]


@pytest.fixture
def pipeline(repo, forb, tmp_path, monkeypatch, capsys):
    p = Pipeline(repo, forb, tmp_path, monkeypatch, capsys)
    yield p
    p.server.shutdown()


def test_a_fork_pr_is_scored_and_commented_once(pipeline, forb, monkeypatch):
    monkeypatch.setenv("LEADERBOARD_SITE_URL", "https://lb.example/")
    write_entry(pipeline.repo / "submissions/forb/new-method", forb, seed=2, method="New")
    commit_all(pipeline.repo, "entry")
    staged = pipeline.validate()
    code, log = pipeline.score(staged)
    assert code == 0, log
    body = pipeline.comment()
    assert "<code>forb&#47;new&#45;method</code> (New)" in body
    assert "Would rank **" in body and "| overall |" in body
    assert "](https://lb.example/boards/forb-v1.html)" in body   # LEADERBOARD_SITE_URL
    assert "Scorings used on this board in the last 24 hours: 1 of 3." in body
    # The PR was found through its head branch (fork PRs come without pull_requests).
    assert ("GET", "/repos/lb-org/leaderboard/pulls") in pipeline.fake.requests
    # The changed files were listed for exactly the validated commit.
    pr = pipeline.fake.pulls[7]
    assert ("GET", f"/repos/lb-org/leaderboard/compare/{pr['base']['sha']}..."
                   f"{pr['head']['sha']}") in pipeline.fake.requests
    code, _ = pipeline.score(staged)
    assert code == 0
    pipeline.comment()          # updated, not duplicated
    assert body.count("scorings") == 1
    assert '"head":"' in pipeline.comment()


def test_scores_in_the_comment_match_the_evaluator(pipeline, forb, tmp_path):
    entry = write_entry(pipeline.repo / "submissions/forb/new-method", forb, seed=2)
    commit_all(pipeline.repo, "entry")
    pipeline.score(pipeline.validate())
    out = tmp_path / "direct.json"
    assert main(["evaluate", "--entry", str(entry), "--labels", str(forb[0]), "--no-record",
                 "--json", str(out)]) == 0
    overall = json.loads(out.read_text())["scores"]["overall"]
    row = next(line for line in pipeline.comment().splitlines() if line.startswith("| overall"))
    shown = [cell.strip() for cell in row.strip("|").split("|")[1:]]
    assert shown == [f"{100 * overall[m]:.2f}" for m in ("mAP@1", "mAP@5", "t-mAP@1", "t-mAP@5")]


def test_quota_stops_a_fourth_scoring_within_a_day(pipeline, forb):
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    earlier = [Scoring("contrib", "forb-v1", f"{i:040x}", now - dt.timedelta(hours=i + 1))
               for i in range(3)]
    pipeline.fake.add_pull(3, "contrib", "f" * 40, "older", "contrib-owner", [], state="closed")
    pipeline.fake.bot_comment(3, f"{MARKER}\nold\n{ledger_marker(earlier)}")
    write_entry(pipeline.repo / "submissions/forb/new-method", forb, seed=2)
    commit_all(pipeline.repo, "entry")
    staged = pipeline.validate()
    code, _ = pipeline.score(staged)
    body = pipeline.comment()
    assert code == 0
    assert "Not scored: this pull request needs 1 new scoring(s) on forb-v1, and 3 of the " \
           "quota of 3" in body and "| overall |" not in body
    pipeline.variables["LEADERBOARD_QUOTA"] = "0"        # maintainers can lift it
    code, _ = pipeline.score(staged)
    assert code == 0 and "| overall |" in pipeline.comment()


def test_a_tampered_artifact_is_not_scored(pipeline, forb):
    write_entry(pipeline.repo / "submissions/forb/new-method", forb, seed=2)
    commit_all(pipeline.repo, "entry")
    staged = pipeline.validate()
    predictions = staged / "submissions/forb/new-method/predictions.ndjson"
    predictions.write_text(predictions.read_text().replace("0.", "0.9", 1))
    code, _ = pipeline.score(staged)
    assert code == 1
    body = pipeline.comment()
    assert "differs from the file in the pull request" in body.replace("&#32;", " ")
    assert "| overall |" not in body


@pytest.mark.parametrize("member, problem", [
    ("../escape.txt", "path leaves the artifact folder"),
    ("/abs.txt", "not a relative path"),
    ("submissions/forb/x/link", "not a regular file"),
    ("elsewhere/file.txt", "only submission.json and submissions/"),
])
def test_unsafe_artifacts_are_refused_before_anything_is_written(tmp_path, member, problem):
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as archive:
        info = zipfile.ZipInfo(member)
        if member.endswith("link"):
            info.external_attr = (0o120777 << 16)
        archive.writestr(info, "../../etc/passwd")
    with pytest.raises(ArtifactError, match=problem):
        safe_extract(path, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "escape.txt").exists()


@pytest.mark.parametrize("names", [
    ["submissions/forb/x", "submissions/forb/x/y"],
    ["submissions/forb/x/y", "submissions/forb/x"],
])
def test_a_name_that_is_a_file_and_a_folder_is_refused(tmp_path, names):
    """Review 3: it used to crash the job in mkdir (FileExistsError), with no comment."""
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name in names:
            archive.writestr(name, "x")
    with pytest.raises(ArtifactError, match="'submissions/forb/x': both a file and a folder"):
        safe_extract(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_failure_to_write_a_member_is_an_artifact_error(tmp_path, monkeypatch):
    """Review 3: any OSError while extracting ends as an ArtifactError (a comment)."""
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("submissions/forb/x/predictions.ndjson", "x")
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if self.name == "x":
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    with pytest.raises(ArtifactError, match="predictions.ndjson.*PermissionError"):
        safe_extract(path, tmp_path / "out")


def test_a_zip_bomb_is_refused(tmp_path):
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("submissions/forb/x/predictions.ndjson", b"\0" * (20 << 20))
    with pytest.raises(ArtifactError, match="compression ratio"):
        safe_extract(path, tmp_path / "out")


def test_an_unsafe_artifact_gets_a_comment_not_a_score(pipeline, forb, tmp_path):
    write_entry(pipeline.repo / "submissions/forb/new-method", forb, seed=2)
    commit_all(pipeline.repo, "entry")
    pipeline.validate()
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("../../outside.txt", "x")
    code, _ = pipeline.score(bad.read_bytes())
    assert code == 1
    assert "path leaves the artifact folder" in pipeline.comment().replace("&#32;", " ")


# injection and canary ------------------------------------------------------------------------

def test_hostile_names_cannot_inject_commands_or_markup(pipeline, forb):
    entry = write_entry(pipeline.repo / "submissions/forb/new-method", forb, seed=2,
                        method=INJECTION, authors=[INJECTION])
    metadata = json.loads((entry / "metadata.json").read_text())
    metadata[INJECTION] = "unknown field with a hostile name"
    (entry / "metadata.json").write_text(json.dumps(metadata))
    commit_all(pipeline.repo, "hostile")
    env = actions_env(pipeline.mp, pipeline.tmp / "hostile", pipeline.fake.url)
    pr_event(env, pipeline.repo)
    code, log = run_cli(pipeline.capsys, "ci", "validate", "--repo", str(pipeline.repo))
    assert code == 1
    for command in command_lines(log):
        assert command.startswith(("::error title=leaderboard,file=", "::warning title="))
        assert "pwned" not in command.split("::")[1]       # nothing reaches the properties
    assert not any(line.startswith(("::add-mask", "::warning::y", "::error file=README"))
                   for line in command_lines(log))
    summary = env.summary_text()
    assert "<script" not in summary and "](javascript" not in summary
    # Without the unknown field the entry is valid and reaches the comment.
    del metadata[INJECTION]
    (entry / "metadata.json").write_text(json.dumps(metadata))
    commit_all(pipeline.repo, "hostile but valid")
    code, log = pipeline.score(pipeline.validate())
    assert code == 0, log
    body = pipeline.comment()
    for raw in ("<script", "](javascript", "@maintainer", "\n::", "| a | b |", "%0A"):
        assert raw not in body
    title = next(line for line in body.splitlines() if line.startswith("#### "))
    assert "&#60;script&#62;" in title and "@&#8203;" not in title  # shown, inert
    assert "&#64;&#8203;maintainer" in title
    assert command_lines("\n".join(pipeline.logs)) == [
        c for c in command_lines("\n".join(pipeline.logs)) if c.startswith("::error title=")]


def test_the_canary_in_the_labels_reaches_no_output(pipeline, forb, tmp_path, capsys,
                                                     monkeypatch):
    # The labels travel as the encrypted bundle the workflows use by default.
    key = pipeline.label_key = generate_key()
    git(pipeline.repo, "checkout", "-q", "main")
    pack(forb[0], pipeline.repo / "labels/forb.bundle", parse_key(key), "forb")
    commit_all(pipeline.repo, "labels")
    git(pipeline.repo, "checkout", "-q", "feature")
    git(pipeline.repo, "merge", "-q", "main")
    write_entry(pipeline.repo / "submissions/forb/new-method", forb, seed=2)
    commit_all(pipeline.repo, "entry")
    code, log = pipeline.score(pipeline.validate(), bundle=True)
    assert code == 0, log
    assert "| overall |" in pipeline.comment()
    for runner_temp in pipeline.runner_temps:   # decrypted labels are gone after the job
        assert list(runner_temp.iterdir()) == []
    # Merge, then publish records and build the site, as publish.yml does.
    git(pipeline.repo, "checkout", "-q", "main")
    git(pipeline.repo, "merge", "-q", "--no-ff", "feature", "-m", "merge")
    env = actions_env(pipeline.mp, tmp_path / "publish", pipeline.fake.url)
    env.set_event("push", {"ref": "refs/heads/main"})
    monkeypatch.setenv("LEADERBOARD_LABEL_KEY", key)
    code, log = run_cli(capsys, "ci", "publish", "--repo", str(pipeline.repo))
    assert code == 0 and env.outputs()["recorded"] == "1"
    record = json.loads((pipeline.repo / "submissions/forb/new-method/records/forb-v1.json")
                        .read_text())
    assert record["provenance"]["ci_run"] == "https://github.com/lb-org/leaderboard/actions/runs/4242"
    site = tmp_path / "site"
    code, build_log = run_cli(capsys, "build", "--submissions",
                              str(pipeline.repo / "submissions"), "--out", str(site))
    assert code == 0
    texts = pipeline.logs + [log, build_log, env.summary_text()]
    texts += [c["body"] for comments in pipeline.fake.comments.values() for c in comments]
    texts += [p.read_text(errors="replace") for p in pipeline.tmp.rglob("github_output")]
    texts += [p.read_text(errors="replace") for p in pipeline.tmp.rglob("step_summary.md")]
    texts += [p.read_text(errors="replace") for p in site.rglob("*") if p.is_file()]
    texts += [p.read_text(errors="replace")
              for p in (pipeline.repo / "submissions").rglob("*") if p.is_file()]
    leaks = [text[max(0, text.find(CANARY) - 200):text.find(CANARY) + 50] for text in texts
             if CANARY in text] + [text[:300] for text in texts if key in text]
    assert leaks == []
    assert CANARY in (forb[0] / "logos_gt.ndjson").read_text()   # the canary was planted
    entry_page = site / "entries/forb-v1/new-method.html"
    assert "actions/runs/4242" in entry_page.read_text()
    guide = (site / "maintainers.html").read_text()
    for topic in ("LEADERBOARD_LABEL_KEY", "Environment <code>labels</code>", "GitHub Pages",
                  "Scoring quota", "Key rotation", "leaderboard labels rotate"):
        assert topic in guide, topic


def test_publish_records_only_what_is_missing(repo, forb, tmp_path, monkeypatch, capsys):
    env = actions_env(monkeypatch, tmp_path / "publish")
    env.set_event("push", {"ref": "refs/heads/main"})
    record = repo / "submissions/forb/merged-one/records/forb-v1.json"
    before = record.read_bytes()
    code, _ = run_cli(capsys, "ci", "publish", "--repo", str(repo), "--labels", str(forb[0]))
    assert code == 0 and env.outputs()["recorded"] == "0"
    assert "already has a record" in env.summary_text()
    assert record.read_bytes() == before
    write_entry(repo / "submissions/forb/another", forb, seed=9)
    code, _ = run_cli(capsys, "ci", "publish", "--repo", str(repo))
    assert code == 0 and "skipped" in env.summary_text()   # no labels: skipped, site still builds
    assert not (repo / "submissions/forb/another/records").exists()


# quota and scoring integrity -------------------------------------------------------------------

class SpySource(LabelSource):
    """The FORB label folder, noting what the PR's comment said each time it is opened."""

    def __init__(self, path: Path, on_open) -> None:
        self.path, self.on_open = path, on_open

    def describe(self) -> str:
        return "spy"

    @contextmanager
    def open(self):
        self.on_open()
        with DirectorySource(self.path).open() as folder:
            yield folder


@pytest.fixture
def label_opens(pipeline, forb, monkeypatch) -> list[list[str]]:
    """Pass labels="spy:" to Pipeline.score; each opening appends PR #7's comment bodies."""
    opens: list[list[str]] = []

    def note() -> None:
        opens.append([c["body"] for c in pipeline.fake.comments.get(7, [])])

    monkeypatch.setitem(labels_module._KINDS, "spy", lambda rest: SpySource(forb[0], note))
    return opens


def add_entries(pipeline, forb, count: int, first_seed: int = 10) -> list[str]:
    names = [f"submissions/forb/entry-{i}" for i in range(count)]
    for i, name in enumerate(names):
        write_entry(pipeline.repo / name, forb, seed=first_seed + i, method=f"Entry {i}")
    commit_all(pipeline.repo, f"{count} entries")
    return names


def shown(body: str) -> str:
    """The comment as GitHub renders it (character references decoded)."""
    return html.unescape(body)


def test_each_entry_of_a_commit_costs_one_scoring(pipeline, forb, label_opens):
    """Finding 1: four entries in one commit need four scorings; with three left, none is
    scored and no label is opened. Two entries fit and are charged two."""
    add_entries(pipeline, forb, 4)
    code, log = pipeline.score(pipeline.validate(), labels="spy:")
    body = pipeline.comment()
    assert code == 0, log
    assert "needs 4 new scoring(s) on forb-v1, and 0 of the quota of 3" in body
    assert "| overall |" not in body and label_opens == []
    assert ledger_from_comment(body) == []
    git(pipeline.repo, "rm", "-q", "-r", "submissions/forb/entry-2", "submissions/forb/entry-3")
    commit_all(pipeline.repo, "two entries only")
    code, log = pipeline.score(pipeline.validate(), labels="spy:")
    body = pipeline.comment()
    assert code == 0, log
    assert body.count("| overall |") == 2
    assert body.count("Scorings used on this board in the last 24 hours: 2 of 3.") == 2
    charged = ledger_from_comment(body)
    assert len(charged) == 2 and len({s.predictions for s in charged}) == 2
    assert {s.pull_request for s in charged} == {7}


def test_more_entries_than_a_pull_request_may_hold_are_refused(pipeline, forb, label_opens):
    pipeline.variables["LEADERBOARD_QUOTA"] = "0"   # unlimited: the cap holds all the same
    add_entries(pipeline, forb, MAX_ENTRIES_PER_PULL_REQUEST + 1)
    code, _ = pipeline.score(pipeline.validate(), labels="spy:")
    body = shown(pipeline.comment())
    assert code == 1
    assert (f"adds or changes {MAX_ENTRIES_PER_PULL_REQUEST + 1} entries; at most "
            f"{MAX_ENTRIES_PER_PULL_REQUEST} are scored per pull request") in body
    assert "| overall |" not in body and label_opens == []


def test_a_force_push_cannot_swap_the_predictions_of_a_paid_commit(pipeline, forb):
    """Finding 2: the run of commit A (already scored) arrives with commit B's files while the
    PR is force-pushed to B: the files are checked against A itself."""
    write_entry(pipeline.repo / "submissions/forb/new-method", forb, seed=2)
    paid = commit_all(pipeline.repo, "entry")
    code, _ = pipeline.score(pipeline.validate())
    assert code == 0 and "| overall |" in pipeline.comment()
    write_entry(pipeline.repo / "submissions/forb/new-method", forb, seed=5)
    git(pipeline.repo, "commit", "-q", "--amend", "-a", "-m", "other predictions")
    swapped = pipeline.validate()          # B's files, uploaded by a run that claims A
    pushed = pipeline.fake.pulls[7]["head"]["sha"]
    pipeline.fake.move_head(7, paid)

    def force_push(method: str, path: str) -> None:
        if path.startswith("/blob/"):      # during the artifact download
            pipeline.fake.move_head(7, pushed)

    pipeline.fake.on_request = force_push
    code, _ = pipeline.score(swapped)
    body = shown(pipeline.comment())
    assert code == 1
    assert "new-method/predictions.ndjson: differs from the file in the pull request" in body
    assert "| overall |" not in body
    assert len(ledger_from_comment(body)) == 1       # still the one paid scoring


def test_scores_of_a_commit_that_is_no_longer_the_head_are_not_published(pipeline, forb):
    write_entry(pipeline.repo / "submissions/forb/new-method", forb, seed=2)
    commit_all(pipeline.repo, "entry")
    staged = pipeline.validate()
    (pipeline.repo / "submissions/forb/new-method/README.md").write_text("More words.\n")
    newer = commit_all(pipeline.repo, "readme")

    def push(method: str, path: str) -> None:
        if path == "/search/issues":       # after the files were checked, before the labels
            pipeline.fake.move_head(7, newer)

    pipeline.fake.on_request = push
    code, _ = pipeline.score(staged)
    body = shown(pipeline.comment())
    assert code == 1
    assert "head moved on from commit" in body and "not charged" in body
    assert "| overall |" not in body and ledger_from_comment(body) == []


def test_a_parallel_reservation_that_came_first_wins(pipeline, forb, label_opens):
    """Finding 3: the scoring is reserved in the comment before any label is opened; a
    reservation another PR made meanwhile (earlier) takes the last place instead."""
    pipeline.variables["LEADERBOARD_QUOTA"] = "1"
    pipeline.fake.add_pull(8, "contrib", "8" * 40, "other", "contrib-owner", [])
    write_entry(pipeline.repo / "submissions/forb/new-method", forb, seed=2)
    commit_all(pipeline.repo, "entry")
    staged = pipeline.validate()
    code, _ = pipeline.score(staged, labels="spy:")
    assert code == 0 and "| overall |" in pipeline.comment()
    # The labels were opened after the reservation was in the comment.
    [bodies] = label_opens
    assert any("scoring in progress" in b and ledger_from_comment(b) for b in bodies)
    charged = ledger_from_comment(pipeline.comment())
    # Again, as if a run of PR #8 had reserved a second before this one started.
    pipeline.fake.comments[7].clear()
    label_opens.clear()
    rival = Scoring("contrib", "forb-v1", "f" * 64,
                    charged[0].at - dt.timedelta(seconds=1), 8, "8" * 40)

    def rival_reserves(method: str, path: str) -> None:   # before this run's first decision
        if path == "/search/issues" and not pipeline.fake.comments[8]:
            pipeline.fake.bot_comment(8, f"{MARKER}\n{ledger_marker([rival])}")

    pipeline.fake.on_request = rival_reserves
    code, _ = pipeline.score(staged, labels="spy:")
    body = pipeline.comment()
    assert code == 0
    assert "Not scored: this pull request needs 1 new scoring(s) on forb-v1" in body
    assert "| overall |" not in body and label_opens == []
    assert ledger_from_comment(body) == []           # the reservation is released


def test_moving_a_merged_entrys_file_is_a_deletion(pipeline, forb):
    """Finding 5: GitHub reports a move as a rename; it still deletes the merged file."""
    entry = pipeline.repo / "submissions/forb/new-one"
    entry.mkdir()
    git(pipeline.repo, "mv", "submissions/forb/merged-one/predictions.ndjson",
        "submissions/forb/new-one/predictions.ndjson")
    (entry / "metadata.json").write_text(json.dumps(ENTRY_METADATA))
    commit_all(pipeline.repo, "move")
    code, _ = pipeline.score(pipeline.stage(["submissions/forb/new-one"]))
    body = shown(pipeline.comment())
    assert any(f["status"] == "renamed" for f in pipeline.fake.files[7])
    assert code == 1
    assert "deletes a file of the merged entry merged-one" in body
    assert "| overall |" not in body


def test_a_retried_comment_post_leaves_one_comment(pipeline, forb):
    """Finding 6: a POST that lands but answers 502 is not posted again."""
    write_entry(pipeline.repo / "submissions/forb/new-method", forb, seed=2)
    commit_all(pipeline.repo, "entry")
    pipeline.fake.faults.append(Fault("POST", "/repos/lb-org/leaderboard/issues/7/comments",
                                      502, landed=True))
    code, log = pipeline.score(pipeline.validate())
    assert code == 0, log
    assert "| overall |" in pipeline.comment()      # exactly one comment, updated


def test_a_file_list_longer_than_the_api_gives_is_refused(pipeline, forb, monkeypatch):
    """Finding 6: the API stops listing files at a cap, silently; a list that long is
    refused (here the cap is 3, and the 4th file changes a merged entry)."""
    monkeypatch.setattr("evaluator.ci.score.COMPARE_FILE_LIMIT", 3, raising=False)
    pipeline.fake.file_list_cap = pipeline.fake.compare_cap = 3
    entry = write_entry(pipeline.repo / "submissions/forb/a-new", forb, seed=2)
    (entry / "README.md").write_text("A new method.\n")
    with open(pipeline.repo / "submissions/forb/merged-one/predictions.ndjson", "a") as handle:
        handle.write("\n")
    commit_all(pipeline.repo, "entry and a change to a merged one")
    code, _ = pipeline.score(pipeline.stage(["submissions/forb/a-new"]))
    body = shown(pipeline.comment())
    assert code == 1
    assert "changes 3 files or more, more than GitHub lists for checking" in body
    assert "| overall |" not in body


def test_label_source_errors_reach_neither_comment_nor_log(pipeline, forb):
    """Review 5: the error text may name the source's host and path, and a public
    repository's logs are public: the log has a generic line and the exception's class."""
    write_entry(pipeline.repo / "submissions/forb/new-method", forb, seed=2)
    commit_all(pipeline.repo, "entry")
    code, log = pipeline.score(pipeline.validate(),
                               labels="url:http://labels.example.org/private-path/forb.tar")
    body = shown(pipeline.comment())
    assert "the labels of forb could not be loaded" in body
    for text in (body, *pipeline.logs):
        assert "labels.example.org" not in text and "private-path" not in text
    assert "the labels of forb could not be loaded (LabelSourceError)" in log
    assert ledger_from_comment(body) == []           # nothing shown, nothing charged


def test_labels_are_opened_only_for_entries_that_passed_validation(pipeline, forb,
                                                                   label_opens):
    """Finding 6: a broken line is found before any label source is opened."""
    entry = write_entry(pipeline.repo / "submissions/forb/new-method", forb, seed=2)
    lines = (entry / "predictions.ndjson").read_text().splitlines()
    lines[2] = lines[2].replace('"scores": [', '"scores": ["high", ')
    (entry / "predictions.ndjson").write_text("\n".join(lines) + "\n")
    commit_all(pipeline.repo, "broken line")
    code, _ = pipeline.score(pipeline.stage(["submissions/forb/new-method"]), labels="spy:")
    body = shown(pipeline.comment())
    assert code == 1 and "the default branch's evaluator found problems" in body
    assert label_opens == []


def test_two_runs_of_one_pull_request_keep_each_others_charges(pipeline, forb, monkeypatch):
    """Review 1: run S1 (head h1) is slow; S2 (head h2) reserves, scores and charges
    meanwhile; S1 then finds the head moved and releases its own reservation only."""
    write_entry(pipeline.repo / "submissions/forb/new-method", forb, seed=2)
    first = commit_all(pipeline.repo, "entry")
    staged_first = zip_folder(pipeline.validate())   # the next validate reuses the folder
    write_entry(pipeline.repo / "submissions/forb/new-method", forb, seed=5)
    second = commit_all(pipeline.repo, "other predictions")
    staged_second = pipeline.validate()
    pipeline.fake.move_head(7, first)                # S1 starts while h1 is the head
    second_run: list[tuple[int, str]] = []

    def on_open() -> None:                           # S1 holds its reservation here
        if not second_run:
            second_run.append((0, ""))
            pipeline.fake.move_head(7, second)
            second_run[0] = pipeline.score(staged_second, labels="spy:")

    monkeypatch.setitem(labels_module._KINDS, "spy", lambda rest: SpySource(forb[0], on_open))
    code, _ = pipeline.score(staged_first, labels="spy:")
    assert second_run and second_run[0][0] == 0, pipeline.comment()
    assert code == 1 and "head moved on from commit" in shown(pipeline.comment())
    charged = ledger_from_comment(pipeline.comment())
    assert [(s.head_sha, s.run) for s in charged] == [(second, f"{pipeline.run_id}.1")]


def test_a_reservation_that_appears_meanwhile_refuses_whatever_its_time(pipeline, forb,
                                                                        label_opens):
    """Review 2: a competing reservation that was not there at the first decision refuses
    this run's board, even when it is dated later or made on a higher-numbered PR: its run
    may have decided without seeing this one. No charge; re-run the workflow."""
    pipeline.variables["LEADERBOARD_QUOTA"] = "1"
    pipeline.fake.add_pull(8, "contrib", "8" * 40, "other", "contrib-owner", [])
    write_entry(pipeline.repo / "submissions/forb/new-method", forb, seed=2)
    commit_all(pipeline.repo, "entry")
    later = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(minutes=5)
    rival = Scoring("contrib", "forb-v1", "f" * 64, later, 8, "8" * 40)

    def rival_reserves(method: str, path: str) -> None:
        if method in ("POST", "PATCH") and not pipeline.fake.comments[8]:
            pipeline.fake.bot_comment(8, f"{MARKER}\n{ledger_marker([rival])}")

    pipeline.fake.on_request = rival_reserves
    code, _ = pipeline.score(pipeline.validate(), labels="spy:")
    body = shown(pipeline.comment())
    assert code == 0
    assert "another scoring by the same contributor on forb-v1 was in progress" in body
    assert "re-run this workflow" in body
    assert "| overall |" not in body and label_opens == []
    assert ledger_from_comment(body) == []           # released


def test_a_renamed_account_keeps_its_quota(pipeline, forb):
    """Review 4: charges made under the old login count for the same account id."""
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    user_id = pipeline.fake.user_id("contrib")
    earlier = [Scoring("old-login", "forb-v1", f"{i:040x}", now - dt.timedelta(hours=i + 1),
                       3, user_id=user_id) for i in range(3)]
    # GitHub shows (and searches) the closed PR under the account's current login.
    pipeline.fake.add_pull(3, "contrib", "f" * 40, "older", "contrib-owner", [], state="closed")
    pipeline.fake.bot_comment(3, f"{MARKER}\nold\n{ledger_marker(earlier)}")
    write_entry(pipeline.repo / "submissions/forb/new-method", forb, seed=2)
    commit_all(pipeline.repo, "entry")
    code, _ = pipeline.score(pipeline.validate())
    body = pipeline.comment()
    assert code == 0
    assert "needs 1 new scoring(s) on forb-v1, and 3 of the quota of 3" in body
    assert "| overall |" not in body


def test_a_merged_entry_is_scored_only_with_all_its_files(pipeline, forb):
    """Review 6: a PR that fixes a merged entry's README cannot have the entry scored from
    a subset of its files (records/ aside)."""
    readme = pipeline.repo / "submissions/forb/merged-one/README.md"
    readme.write_text("A fix.\n")
    commit_all(pipeline.repo, "readme")
    staged = pipeline.stage(["submissions/forb/merged-one"])
    (staged / "submissions/forb/merged-one/predictions.ndjson").unlink()
    code, _ = pipeline.score(staged)
    body = shown(pipeline.comment())
    assert code == 1
    assert ("submissions/forb/merged-one/predictions.ndjson: in the merged entry but missing "
            "from the artifact") in body
    assert "records/" not in body


def test_an_unexpected_error_after_reserving_releases_it(pipeline, forb, monkeypatch):
    """Review 7a: any failure once the reservation is written still updates the comment
    (released, one line in the log, no traceback)."""
    class Broken(SpySource):
        @contextmanager
        def open(self):
            raise RuntimeError("disk full at /secret/place")
            yield

    monkeypatch.setitem(labels_module._KINDS, "spy", lambda rest: Broken(forb[0], None))
    write_entry(pipeline.repo / "submissions/forb/new-method", forb, seed=2)
    commit_all(pipeline.repo, "entry")
    code, log = pipeline.score(pipeline.validate(), labels="spy:")
    body = shown(pipeline.comment())
    assert code == 1
    assert "scoring in progress" not in body and ledger_from_comment(body) == []
    assert "RuntimeError" in log and "/secret/place" not in log + body


def test_old_ledger_entries_are_dropped_when_the_comment_is_written(pipeline, forb):
    """Review 7b: entries older than the window no longer count; they are not kept, so a
    long-lived PR's comment stays small. Recent ones written by other runs stay."""
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    old = Scoring("contrib", "forb-v1", "a" * 64, now - dt.timedelta(hours=30), 7, "a" * 40)
    recent = Scoring("contrib", "forb-v1", "b" * 64, now - dt.timedelta(hours=1), 7, "b" * 40)
    write_entry(pipeline.repo / "submissions/forb/new-method", forb, seed=2)
    commit_all(pipeline.repo, "entry")
    staged = pipeline.validate()
    pipeline.fake.bot_comment(7, f"{MARKER}\nearlier\n{ledger_marker([old, recent])}")
    code, _ = pipeline.score(staged)
    ledger = ledger_from_comment(pipeline.comment())
    assert code == 0
    assert old not in ledger and recent in ledger and len(ledger) == 2


def test_this_pull_requests_own_charges_count(pipeline, forb):
    """Review 1: the history the quota is decided on holds this PR's ledger as it is now."""
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    earlier = [Scoring("contrib", "forb-v1", f"{i:064x}", now - dt.timedelta(hours=1), 7,
                       f"{i:040x}", "99.1") for i in range(3)]
    write_entry(pipeline.repo / "submissions/forb/new-method", forb, seed=2)
    commit_all(pipeline.repo, "entry")
    staged = pipeline.validate()
    pipeline.fake.bot_comment(7, f"{MARKER}\nearlier\n{ledger_marker(earlier)}")
    code, _ = pipeline.score(staged)
    body = pipeline.comment()
    assert code == 0
    assert "needs 1 new scoring(s) on forb-v1, and 3 of the quota of 3" in body
    assert sorted(ledger_from_comment(body), key=lambda s: s.predictions) == earlier
