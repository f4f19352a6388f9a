"""``leaderboard ci score``: the workflow_run job. Runs the default branch's code only, with the
hidden labels, and treats everything from the pull request as data.

Steps, in this order:

1. find the pull request: open, in this repository, with the run's head commit, head repository
   and head branch (fork PRs arrive with an empty ``pull_requests`` list);
2. download and safely extract the validate run's artifact; check every file in it against the
   files the run's head commit changes (the compare API, pinned to that commit: blob hashes) or
   the default branch, apply the submission rules again, refuse more than
   ``MAX_ENTRIES_PER_PULL_REQUEST`` entries;
3. validate each entry with the default branch's evaluator, without labels;
4. quota: decide, reserve the new scorings in this PR's comment, read the author's pull
   requests again and refuse a board where a competing scoring appeared meanwhile (see
   :mod:`evaluator.ci.quota`);
5. only then open the labels, check the predictions against the board's lists and score;
6. read the pull request again: if its head moved meanwhile, nothing is published or charged;
7. post or update the one comment, with the scorings charged in its hidden ledger.

Every write of the comment re-reads its ledger first and replaces only this run's own
scorings: two runs of one pull request never erase each other's charges.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
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
from evaluator.ci.changes import Plan, changes_from_api_files, plan_changes
from evaluator.ci.comment import MARKER, EntryResult, build_comment, progress_comment
from evaluator.ci.github import COMPARE_FILE_LIMIT, GitHub, GitHubError
from evaluator.ci.labels import default_label_specs, mask_label_secrets
from evaluator.ci.quota import (
    MAX_ENTRIES_PER_PULL_REQUEST,
    MAX_PULLS_SCANNED,
    Decision,
    Quota,
    Scoring,
    contended,
    decide,
    ledger_from_comment,
    new_scorings,
    pruned,
)
from evaluator.entries import METADATA_FILE
from evaluator.evaluation import (
    benchmark_of_entry,
    check_entry,
    evaluate_entry,
    predictions_provenance,
)
from evaluator.labels import LabelSourceError
from evaluator.registry import BoardDataError
from evaluator.site.boards import collect, would_rank
from evaluator.validation.parsing import load_json
from evaluator.validation.report import ValidationReport


class ScoreRefused(Exception):
    """The run cannot be scored (no PR found, artifact does not match the PR, ...)."""


def find_pull_request(gh: GitHub, run: dict) -> dict:
    """The open PR in this repository whose head is the run's: same commit, and the same head
    repository and branch (another fork can push the same commit and run validate on it)."""
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
        if _is_the_runs_pull_request(pr, run, gh.repo):
            return pr
    raise ScoreRefused(f"no open pull request of {gh.repo} has head {head_sha} from "
                       f"{_run_head_name(run)}")


def _run_head_name(run: dict) -> str:
    repo = (run.get("head_repository") or {}).get("full_name")
    return f"{repo}:{run.get('head_branch')}"


def _is_the_runs_pull_request(pr: dict, run: dict, repo: str) -> bool:
    head = pr.get("head") or {}
    head_repo = (head.get("repo") or {}).get("full_name")   # None once the fork is deleted
    run_repo = (run.get("head_repository") or {}).get("full_name")
    return (pr.get("state") == "open"
            and (pr.get("base") or {}).get("repo", {}).get("full_name") == repo
            and bool(run.get("head_sha")) and head.get("sha") == run.get("head_sha")
            and bool(run_repo) and head_repo == run_repo
            and bool(run.get("head_branch")) and head.get("ref") == run.get("head_branch"))


def git_blob_sha(path: Path) -> str:
    """The hash git gives a file's content (what the API lists as a changed file's sha)."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_artifact_matches_pr(files: dict[str, Path], changed_files: list[dict],
                              manifest: dict, repo: Path) -> list[str]:
    """Every artifact file is the validated commit's version (same blob hash as in
    ``changed_files``, the API's list for that commit) or unchanged from the default branch;
    every file the commit adds or changes in those entries is in the artifact."""
    problems = []
    changed = {f["filename"]: f for f in changed_files if f.get("status") != "removed"}
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
    removed = removed_paths(changed_files)
    for entry in manifest["entries"]:
        problems += [f"{name}: in the merged entry but missing from the artifact"
                     for name in merged_files(repo, entry)
                     if name not in files and name not in removed]
    return problems


def removed_paths(changed_files: list[dict]) -> set[str]:
    """Paths the commit deletes or moves away (the submission rules refuse those, naming
    them better)."""
    return ({f["filename"] for f in changed_files if f.get("status") == "removed"}
            | {f["previous_filename"] for f in changed_files if f.get("previous_filename")})


def merged_files(repo: Path, entry: str) -> list[str]:
    """The files of ``entry`` on the default branch, records aside: a PR that changes a
    merged entry must carry all of them, or it could have a subset of them scored."""
    folder = repo / entry
    if not folder.is_dir():
        return []
    return [path.relative_to(repo).as_posix() for path in sorted(folder.rglob("*"))
            if path.is_file() and path.relative_to(folder).parts[0] != "records"]


def _metadata(path: Path) -> dict | None:
    try:
        data = load_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {} if path.exists() else None
    return data if isinstance(data, dict) else {}


def scoring_history(gh: GitHub, login: str, now: dt.datetime, quota: Quota,
                    skip: int) -> list[Scoring]:
    """Scorings recorded on the author's other PRs updated within the window (``skip``: this
    PR, whose ledger the caller reads whole). Only comments updated within the window are read:
    a ledger comment is rewritten with each scoring, so older ones hold no scoring that counts."""
    if quota.limit <= 0:
        return []
    since = now - quota.window
    numbers = gh.pulls_by_author_since(login, since, MAX_PULLS_SCANNED)
    if len(numbers) > MAX_PULLS_SCANNED:
        raise ScoreRefused(f"more than {MAX_PULLS_SCANNED} pull requests by {login} were "
                           "updated within the quota's window, too many to check the scoring "
                           "quota; ask a maintainer to score this one")
    history = []
    for number in numbers:
        if number != skip:
            for comment in gh.bot_comments(number, since=since):
                history += ledger_from_comment(comment.get("body", ""))
    return history


@dataclass
class Candidate:
    """An entry that passed validation without labels: what scoring it would charge."""

    result: EntryResult
    entry_dir: Path
    scoring: Scoring


class ScoreJob:
    def __init__(self, repo: Path, gh: GitHub, label_specs: list[str] | None,
                 quota: Quota, now: dt.datetime, site_url: str | None = None) -> None:
        self.repo, self.gh, self.quota, self.now, self.site_url = repo, gh, quota, now, site_url
        self.label_specs = (label_specs or []) + default_label_specs(repo)
        self.run_id = ""   # set per run: tags the scorings this run writes

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
        # Unique per execution: a re-run attempt must not take the first attempt's charges.
        self.run_id = f"{run.get('id')}.{run.get('run_attempt') or 1}"
        try:
            results, charged = self._score(run, pr, workdir)
            problems: list[str] = []
        except (ScoreRefused, ArtifactError, GitHubError) as exc:
            # Nothing is published, so nothing is charged (a reservation is released).
            results, charged, problems = [], [], [str(exc)]
        except Exception as exc:   # whatever failed, the reservation must be released
            # The text may name the label source or the runner's paths: the class only.
            actions.log(f"error: scoring stopped on an unexpected {type(exc).__name__}")
            results, charged = [], []
            problems = [f"the scoring stopped on an unexpected error ({type(exc).__name__}); "
                        "nothing was charged. Please ask a maintainer."]
        body = self._write_comment(
            number, lambda ledger: build_comment(results, run["head_sha"], ledger,
                                                 self.site_url, problems), charged)
        actions.write_summary(body.replace(MARKER, ""))
        failed = problems or any(r.problems for r in results)
        actions.set_output("scored", str(sum(r.evaluation is not None for r in results)))
        actions.log(f"commented on pull request #{number} by {author}")
        return 1 if failed else 0

    def _pr_ledger(self, number: int) -> list[Scoring]:
        """This PR's ledger as it is now (other runs of the PR may have written)."""
        return [s for c in self.gh.bot_comments(number)
                for s in ledger_from_comment(c.get("body", ""))]

    def _write_comment(self, number: int, make_body: Callable[[list[Scoring]], str],
                       mine: list[Scoring]) -> str:
        """Write this PR's comment with a ledger read just before: every other run's entries
        kept, this run's replaced by ``mine``, those past the window dropped."""
        current = [s for s in self._pr_ledger(number) if s.run != self.run_id]
        body = make_body(pruned(current + mine, self.now, self.quota))
        self.gh.upsert_marked_comment(number, MARKER, body)
        return body

    def _score(self, run: dict, pr: dict,
               workdir: Path) -> tuple[list[EntryResult], list[Scoring]]:
        """The results to show and the scorings they charge."""
        head_sha = run["head_sha"]
        zip_path = self.gh.download_artifact(int(run["id"]), ARTIFACT_NAME,
                                             workdir / "artifact.zip",
                                             DEFAULT_ARTIFACT_LIMITS.max_zip_bytes)
        root = safe_extract(zip_path, workdir / "artifact")
        plan = self._check_artifact(root, pr["base"]["sha"], head_sha)
        results, candidates = [], []
        for entry in plan.entries:
            result, candidate = self._validate_without_labels(root / entry, entry, pr, head_sha)
            results.append(result)
            candidates += [candidate] if candidate else []
        decisions, reserved = self._reserve(candidates, pr)
        granted = []
        for candidate in candidates:
            candidate.result.quota = decisions[candidate.scoring.board]
            if candidate.result.quota.allowed:
                granted.append(candidate)
        self._score_with_labels(granted)
        if self.gh.pull_request(pr["number"])["head"]["sha"] != head_sha:
            raise ScoreRefused(f"the pull request's head moved on from commit {head_sha[:12]} "
                               "while it was being scored, so its scores are not shown (and "
                               "not charged); the run for the new head commit posts its own")
        return results, self._charged(granted, reserved)

    def _check_artifact(self, root: Path, base_sha: str, head_sha: str) -> Plan:
        """The PR's plan at exactly ``head_sha``, after checking that the artifact holds that
        commit's files and nothing else."""
        manifest = read_manifest(root)
        files = artifact_files(root)
        changed = self.gh.changed_files(base_sha, head_sha)
        if len(changed) >= COMPARE_FILE_LIMIT:
            raise ScoreRefused(f"the pull request changes {COMPARE_FILE_LIMIT} files or more, "
                               "more than GitHub lists for checking; a submission pull request "
                               "changes a few entry folders only")
        mismatches = check_artifact_matches_pr(files, changed, manifest, self.repo)
        if mismatches:
            raise ScoreRefused("the validate run's artifact does not match the pull request: "
                               + "; ".join(mismatches[:10]))
        plan = plan_changes(changes_from_api_files(changed),
                            lambda e: _metadata(self.repo / e / METADATA_FILE),
                            lambda e: _metadata(root / e / METADATA_FILE))
        if not plan.report.ok:
            raise ScoreRefused("the pull request breaks the submission rules: "
                               + "; ".join(plan.report.lines()[:10]))
        if sorted(plan.entries) != sorted(manifest["entries"]):
            raise ScoreRefused("the artifact's entries are not the ones the pull request changes")
        if len(plan.entries) > MAX_ENTRIES_PER_PULL_REQUEST:
            raise ScoreRefused(f"the pull request adds or changes {len(plan.entries)} entries; "
                               f"at most {MAX_ENTRIES_PER_PULL_REQUEST} are scored per pull "
                               "request, so none was. Split it into smaller pull requests")
        return plan

    def _validate_without_labels(self, entry_dir: Path, entry: str, pr: dict,
                                 head_sha: str) -> tuple[EntryResult, Candidate | None]:
        """Everything that can be checked before a label is opened; a valid entry becomes a
        candidate charged by its predictions' sha256."""
        benchmark = benchmark_of_entry(entry_dir)
        result = EntryResult(entry, benchmark)
        report = ValidationReport()
        board, checked = check_entry(entry_dir, benchmark, lambda board: None, report,
                                     submission=True)
        result.board = board
        if checked.metadata is not None:
            result.method = checked.metadata.method
        if not report.ok or board is None or checked.fmt is None:
            result.problems = report.lines() or ["no board or predictions found"]
            return result, None
        digest = predictions_provenance(checked.fmt, checked.files)["sha256"]
        scoring = Scoring(pr["user"]["login"], board.id, digest, self.now, pr["number"],
                          head_sha, self.run_id, int(pr["user"].get("id") or 0))
        return result, Candidate(result, entry_dir, scoring)

    def _history(self, pr: dict) -> list[Scoring]:
        """Every scoring that counts for the decisions: the author's other PRs and this PR's
        ledger as it is now, without this run's own reservation."""
        mine = [s for s in self._pr_ledger(pr["number"]) if s.run != self.run_id]
        return scoring_history(self.gh, pr["user"]["login"], self.now, self.quota,
                               skip=pr["number"]) + mine

    def _reserve(self, candidates: list[Candidate],
                 pr: dict) -> tuple[dict[str, Decision], list[Scoring]]:
        """Decide the quota per board; write the new scorings into this PR's ledger as a
        reservation before any label is opened, then read the history again: a board where a
        competing scoring appeared meanwhile is refused (that run may have decided without
        seeing this reservation). Returns the decisions and the reservation kept.

        A reservation is dated when it is written, not when the run started: a run that was
        slow to get here must not overtake one that reserved and scored meanwhile."""
        before = self._history(pr)
        moment = max(self.now, dt.datetime.now(dt.timezone.utc).replace(microsecond=0))
        wanted = [dataclasses.replace(c.scoring, at=moment) for c in candidates]
        decisions = decide(before, wanted, self.now, self.quota)
        reserved = [s for s in new_scorings(before, wanted, self.now, self.quota)
                    if decisions[s.board].allowed]
        if not reserved:
            return decisions, []
        head = reserved[0].head_sha
        self._write_comment(pr["number"], lambda ledger: progress_comment(head, ledger),
                            reserved)
        for board in contended(before, self._history(pr), reserved, self.now, self.quota):
            decisions[board] = dataclasses.replace(decisions[board], allowed=False,
                                                   contended=True)
        return decisions, [s for s in reserved if decisions[s.board].allowed]

    def _charged(self, granted: list[Candidate], reserved: list[Scoring]) -> list[Scoring]:
        """The reserved scorings whose scores are shown: only those are charged. Each result's
        quota line then counts what was charged."""
        shown = {(c.scoring.board, c.scoring.predictions) for c in granted
                 if c.result.evaluation is not None}
        charged = [s for s in reserved if (s.board, s.predictions) in shown]
        for candidate in granted:
            board = candidate.scoring.board
            candidate.result.quota = dataclasses.replace(
                candidate.result.quota, needed=sum(s.board == board for s in charged))
        return charged

    def _score_with_labels(self, granted: list[Candidate]) -> None:
        if not granted:
            return
        views = {v.board.id: v for v in collect(self.repo / "submissions")}
        with ExitStack() as stack:
            data = BoardData(self.label_specs, stack)
            for candidate in granted:
                result = candidate.result
                self._score_entry(candidate.entry_dir, result, data)
                if result.evaluation is not None:
                    result.rank, result.rows = would_rank(views.get(result.board.id),
                                                          result.evaluation["scores"])

    def _score_entry(self, entry_dir: Path, result: EntryResult, data: BoardData) -> None:
        """Validate against the board's lists (they ship with the labels) and score."""
        benchmark = result.benchmark
        report = ValidationReport()
        try:
            outcome = evaluate_entry(entry_dir, benchmark, data, report, submission=True)
        except (LabelSourceError, BoardDataError) as exc:
            # The text may name the label source (a host, a path) and a public repository's
            # log is public: the class only. `leaderboard evaluate` shows the whole reason.
            actions.log(f"{result.entry}: the labels of {benchmark.info.name} could not be "
                        f"loaded ({type(exc).__name__}); run `leaderboard evaluate` with the "
                        "same label source on a trusted machine to see why")
            result.note = (f"Validated, but not scored: the labels of {benchmark.info.name} "
                           "could not be loaded. Please ask a maintainer (the workflow run's log "
                           "names the kind of error).")
            return
        result.board = outcome.board or result.board
        if not report.ok:
            result.problems = report.lines()
        elif outcome.labels_missing:
            result.note = (f"Valid. Not scored: no labels are configured for "
                           f"{benchmark.info.name} yet (see the maintainer guide).")
        else:
            result.evaluation = outcome.evaluation


def run(repo: Path, label_specs: list[str] | None, site_url: str | None) -> int:
    mask_label_secrets()
    quota = Quota.from_env()  # settings first: a malformed one fails before any API call
    gh = GitHub()
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    job = ScoreJob(repo, gh, label_specs, quota, now, site_url)
    # Decrypted labels and the artifact live only in the runner's temp folder.
    with tempfile.TemporaryDirectory(dir=os.environ.get("RUNNER_TEMP")) as workdir:
        return job.run(actions.event_payload(), Path(workdir))
