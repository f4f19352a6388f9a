"""``leaderboard ci score``: the workflow_run job. Runs the default branch's code only, with the
hidden labels, and treats everything from the pull request as data.

Steps: find the pull request (fork PRs arrive with an empty ``pull_requests`` list), download and
safely extract the validate run's artifact, check every file in it against the pull request's
own files (blob hashes from the API) or the default branch, apply the submission rules again,
enforce the scoring quota, validate and score each entry, and post or update one comment.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tempfile
from contextlib import ExitStack
from pathlib import Path

from evaluator.board_data import BoardData
from evaluator.ci import actions
from evaluator.ci.actions import md
from evaluator.ci.artifact import (
    ARTIFACT_NAME,
    DEFAULT_ARTIFACT_LIMITS,
    ArtifactError,
    artifact_files,
    read_manifest,
    safe_extract,
)
from evaluator.ci.changes import Change, plan_changes
from evaluator.ci.comment import MARKER, EntryResult, build_comment
from evaluator.ci.github import GitHub, GitHubError
from evaluator.ci.labels import default_label_specs, mask_label_secrets
from evaluator.ci.quota import Quota, Scoring, decide, ledger_from_comment
from evaluator.entries import METADATA_FILE
from evaluator.evaluation import benchmark_of_entry, evaluate_entry
from evaluator.labels import LabelSourceError
from evaluator.registry import BoardDataError
from evaluator.site.boards import collect, would_rank
from evaluator.validation.report import ValidationReport

PR_STATUS_TO_GIT = {"added": "A", "modified": "M", "changed": "M", "removed": "D",
                    "renamed": "A", "copied": "A"}


class ScoreRefused(Exception):
    """The run cannot be scored (no PR found, artifact does not match the PR, ...)."""


def find_pull_request(gh: GitHub, run: dict) -> dict:
    """The open PR whose head is the run's head commit, in this repository."""
    head_sha = run.get("head_sha")
    candidates = [p.get("number") for p in run.get("pull_requests") or []]
    if not candidates:  # fork PRs: look the PR up by its head branch, then by commit
        head_repo = (run.get("head_repository") or {}).get("owner", {}).get("login")
        if head_repo and run.get("head_branch"):
            candidates = [p["number"] for p in gh.open_pulls_from(head_repo, run["head_branch"])]
        if not candidates:
            candidates = [p["number"] for p in gh.pulls_with_commit(head_sha)]
    for number in candidates:
        pr = gh.pull_request(number)
        if (pr.get("head", {}).get("sha") == head_sha and pr.get("state") == "open"
                and pr.get("base", {}).get("repo", {}).get("full_name") == gh.repo):
            return pr
    raise ScoreRefused(f"no open pull request of {gh.repo} has head {head_sha}")


def git_blob_sha(path: Path) -> str:
    """The hash git gives a file's content (what the PR files API reports)."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_artifact_matches_pr(files: dict[str, Path], pr_files: list[dict], manifest: dict,
                              repo: Path) -> list[str]:
    """Every artifact file is the PR's version (same blob hash) or unchanged from the default
    branch; every file the PR adds or changes in those entries is in the artifact."""
    problems = []
    changed = {f["filename"]: f for f in pr_files if f.get("status") != "removed"}
    for name, path in files.items():
        if not any(name.startswith(entry + "/") for entry in manifest["entries"]):
            problems.append(f"{name}: in the artifact but not in a listed entry")
        elif name in changed:
            if git_blob_sha(path) != changed[name].get("sha"):
                problems.append(f"{name}: differs from the file in the pull request")
        elif not (repo / name).is_file() or (repo / name).read_bytes() != path.read_bytes():
            problems.append(f"{name}: neither in the pull request nor on the default branch")
    for name in changed:
        if any(name.startswith(e + "/") for e in manifest["entries"]) and name not in files:
            problems.append(f"{name}: changed by the pull request but missing from the artifact")
    return problems


def _metadata(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {} if path.exists() else None
    return data if isinstance(data, dict) else {}


def scoring_history(gh: GitHub, login: str, now: dt.datetime, quota: Quota,
                    skip: int) -> list[Scoring]:
    """Scorings recorded on the author's other recent PRs (``skip``: this PR, whose comments
    the caller already has)."""
    since = (now - quota.window).strftime("%Y-%m-%d")
    history = []
    for number in gh.pulls_by_author_since(login, since):
        if number == skip:
            continue
        for comment in gh.bot_comments(number):
            history += ledger_from_comment(comment.get("body", ""))
    return history


class ScoreJob:
    def __init__(self, repo: Path, gh: GitHub, label_specs: list[str] | None,
                 quota: Quota, now: dt.datetime, site_url: str | None = None) -> None:
        self.repo, self.gh, self.quota, self.now, self.site_url = repo, gh, quota, now, site_url
        self.label_specs = (label_specs or []) + default_label_specs(repo)

    def run(self, payload: dict, workdir: Path) -> int:
        run = payload.get("workflow_run") or {}
        if run.get("event") != "pull_request" or run.get("conclusion") != "success":
            actions.log("the validate run did not succeed on a pull request: nothing to score")
            return 0
        try:
            pr = find_pull_request(self.gh, run)
        except ScoreRefused as exc:   # nowhere to comment: the run's log and summary say why
            actions.annotate_error(str(exc), title="leaderboard score")
            actions.write_summary(f"### Leaderboard: not scored\n\n{md(exc)}\n")
            return 1
        number, author = pr["number"], pr["user"]["login"]
        bot_comments = self.gh.bot_comments(number)
        ledger = [s for c in bot_comments for s in ledger_from_comment(c.get("body", ""))]
        try:
            results = self._score(run, pr, workdir, ledger)
            problems: list[str] = []
        except (ScoreRefused, ArtifactError, GitHubError) as exc:
            results, problems = [], [str(exc)]
        body = build_comment(results, pr["head"]["sha"], ledger, self.site_url, problems)
        self._post(number, body, bot_comments)
        actions.write_summary(body.replace(MARKER, ""))
        failed = problems or any(r.problems for r in results)
        actions.set_output("scored", str(sum(r.evaluation is not None for r in results)))
        actions.log(f"commented on pull request #{number} by {author}")
        return 1 if failed else 0

    def _score(self, run: dict, pr: dict, workdir: Path, ledger: list[Scoring]):
        zip_path = self.gh.download_artifact(int(run["id"]), ARTIFACT_NAME,
                                             workdir / "artifact.zip",
                                             DEFAULT_ARTIFACT_LIMITS.max_zip_bytes)
        root = safe_extract(zip_path, workdir / "artifact")
        manifest = read_manifest(root)
        files = artifact_files(root)
        pr_files = self.gh.pull_request_files(pr["number"])
        mismatches = check_artifact_matches_pr(files, pr_files, manifest, self.repo)
        if mismatches:
            raise ScoreRefused("the validate run's artifact does not match the pull request: "
                               + "; ".join(mismatches[:10]))
        changes = [Change(PR_STATUS_TO_GIT.get(f.get("status"), "M"), f["filename"])
                   for f in pr_files]
        plan = plan_changes(changes, lambda e: _metadata(self.repo / e / METADATA_FILE),
                            lambda e: _metadata(root / e / METADATA_FILE))
        if not plan.report.ok:
            raise ScoreRefused("the pull request breaks the submission rules: "
                               + "; ".join(plan.report.lines()[:10]))
        if sorted(plan.entries) != sorted(manifest["entries"]):
            raise ScoreRefused("the artifact's entries are not the ones the pull request changes")
        views = {v.board.id: v for v in collect(self.repo / "submissions")}
        author = pr["user"]["login"]
        history = scoring_history(self.gh, author, self.now, self.quota,
                                  skip=pr["number"]) + ledger
        results = []
        with ExitStack() as stack:
            data = BoardData(self.label_specs, stack)
            for entry in plan.entries:
                result = self._score_entry(root / entry, entry, data, author, pr, history)
                if result.evaluation is not None:
                    view = views.get(result.board.id)
                    result.rank, result.rows = would_rank(view, result.evaluation["scores"])
                    scoring = Scoring(author, result.board.id, pr["head"]["sha"], self.now)
                    if scoring.head_sha not in {s.head_sha for s in ledger
                                                if s.board == scoring.board}:
                        ledger.append(scoring)
                    history.append(scoring)
                    # Counted again with this scoring, for the comment's "n of limit".
                    result.quota = decide(history, author, scoring.board, scoring.head_sha,
                                          self.now, self.quota)
                results.append(result)
        return results

    def _score_entry(self, entry_dir: Path, entry: str, data: BoardData, author: str,
                     pr: dict, history: list[Scoring]) -> EntryResult:
        benchmark = benchmark_of_entry(entry_dir)
        result = EntryResult(entry, benchmark)
        report = ValidationReport()
        try:
            # Quota first: it needs only the board, and refusing must not touch the labels.
            board_name = (_metadata(entry_dir / METADATA_FILE) or {}).get("board")
            try:
                board = benchmark.board(str(board_name))
            except KeyError:
                board = None
            if board is not None:
                result.board = board
                result.quota = decide(history, author, board.id, pr["head"]["sha"], self.now,
                                      self.quota)
                if not result.quota.allowed:
                    return result
            outcome = evaluate_entry(entry_dir, benchmark, data, report, submission=True)
        except (LabelSourceError, BoardDataError) as exc:
            result.note = f"Validated, but not scored: {exc}"
            return result
        result.board = outcome.board or result.board
        if outcome.checked.metadata is not None:
            result.method = outcome.checked.metadata.method
        if not report.ok:
            result.problems = report.lines()
        elif outcome.labels_missing:
            result.note = (f"Valid. Not scored: no labels are configured for "
                           f"{benchmark.info.name} yet (see the maintainer guide).")
        else:
            result.evaluation = outcome.evaluation
        return result

    def _post(self, number: int, body: str, bot_comments: list[dict]) -> None:
        """Update the bot's existing score comment, or create it: never a second one."""
        mine = [c for c in bot_comments if MARKER in c.get("body", "")]
        if mine:
            self.gh.update_comment(mine[0]["id"], body)
        else:
            self.gh.create_comment(number, body)


def run(repo: Path, label_specs: list[str] | None, site_url: str | None) -> int:
    mask_label_secrets()
    quota = Quota.from_env()  # settings first: a malformed one fails before any API call
    gh = GitHub()
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    job = ScoreJob(repo, gh, label_specs, quota, now, site_url)
    # Decrypted labels and the artifact live only in the runner's temp folder.
    with tempfile.TemporaryDirectory(dir=os.environ.get("RUNNER_TEMP")) as workdir:
        return job.run(actions.event_payload(), Path(workdir))
