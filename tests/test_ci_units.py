"""The pipeline's small pieces: Markdown and workflow-command escaping, the quota rule, the
ledger carried in comments, and what the score step does when it cannot find the PR."""

from __future__ import annotations

import datetime as dt
import json
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evaluator.ci import actions
from evaluator.ci.artifact import (
    MANIFEST,
    MANIFEST_SCHEMA,
    MAX_MANIFEST_BYTES,
    ArtifactError,
    read_manifest,
)
from evaluator.ci.changes import Change, changes_from_api_files
from evaluator.ci.comment import GITHUB_COMMENT_LIMIT, EntryResult, build_comment
from evaluator.ci.github import GitHub, iso
from evaluator.ci.labels import mask_label_secrets
from evaluator.ci.quota import (
    MAX_PULLS_SCANNED,
    Quota,
    Scoring,
    decide,
    ledger_from_comment,
    ledger_marker,
)
from evaluator.ci.score import ScoreRefused, find_pull_request, scoring_history
from evaluator.cli import main
from tests.ci_support import FakeGitHub, Fault, actions_env, command_lines, iso_now, serve

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.timezone.utc)


@given(st.text(max_size=400))
def test_md_output_is_inert(text):
    out = actions.md(text)
    assert "\n" not in out and "\r" not in out
    # Only letters, digits, spaces and character references remain: no Markdown or HTML syntax.
    stripped = out.replace("&#", "").replace(";", "")
    assert all(c.isascii() and (c.isalnum() or c in " …") for c in stripped), out
    assert "%" not in out   # the toolkit turns %0A back into a newline in summaries


def test_md_defuses_mentions_and_issue_links():
    assert actions.md("@octocat #12") == "&#64;&#8203;octocat &#35;&#8203;12"
    assert actions.md("a\u202eb") == "a&#65533;b"          # a bidi override is shown as �


def test_command_text_cannot_start_a_new_command(capsys):
    actions.annotate_error("line one\n::add-mask::secret\r\n%0A", file="a.txt", line=3)
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert out == ("::error title=leaderboard,file=a.txt,line=3::line one%0A::add-mask::"
                   "secret%0D%0A%250A\n")


def test_commands_off_wraps_untrusted_lines(capsys):
    with actions.commands_off():
        actions.log("::error::pretend\n::add-mask::x")
    out = capsys.readouterr().out
    assert command_lines(out) == []
    assert out.splitlines()[1] == "::error::pretend ::add-mask::x"


def test_mask_label_secrets(monkeypatch, tmp_path, capsys):
    actions_env(monkeypatch, tmp_path)
    monkeypatch.setenv("LEADERBOARD_LABELS_MVTEC3D_AD", "url:https://x.example/l?sig=abc")
    monkeypatch.setenv("LEADERBOARD_LABEL_KEY", "lbk1:not-a-real-key")
    mask_label_secrets()
    # The toolkit writes '::add-mask ::value' (empty properties), which the runner accepts.
    masks = command_lines(capsys.readouterr().out)
    assert "::add-mask ::url:https://x.example/l?sig=abc" in masks
    assert not any("lbk1" in m for m in masks)   # secrets are masked by GitHub itself


def scoring(predictions: str, hours_ago: float, board="forb-v1", author="ann",
            pr: int = 1) -> Scoring:
    return Scoring(author, board, predictions, NOW - dt.timedelta(hours=hours_ago), pr)


def test_quota_counts_distinct_predictions_per_author_and_board_in_the_window():
    quota = Quota(limit=2)
    history = [scoring("a", 1), scoring("a", 2), scoring("b", 3),
               scoring("c", 30),                       # outside the window
               scoring("d", 1, board="forb-subset-v1"),  # another board
               scoring("e", 1, author="bob")]          # another person
    refused = decide(history, [scoring("new", 0)], NOW, quota)["forb-v1"]
    assert not refused.allowed and (refused.used, refused.needed) == (2, 1)
    assert refused.next_free == NOW - dt.timedelta(hours=3) + dt.timedelta(hours=24)
    assert decide(history, [scoring("a", 0)], NOW, quota)["forb-v1"].allowed   # seen: free
    assert decide(history, [scoring("new", 0, board="forb-subset-v1")], NOW,
                  quota)["forb-subset-v1"].allowed
    assert decide(history, [scoring("new", 0)], NOW, Quota(limit=0))["forb-v1"].allowed


def test_quota_charges_every_entry_of_a_commit_all_or_none_per_board():
    """Finding 1: five entries in one commit cost five scorings, checked before scoring."""
    five = [scoring(f"p{i}", 0) for i in range(5)]
    decision = decide([scoring("old", 2)], five, NOW, Quota(limit=3))["forb-v1"]
    assert not decision.allowed and (decision.used, decision.needed) == (1, 5)
    assert decision.next_free is None     # five never fit into three: split the PR
    two = decide([scoring("old", 2)], five[:2], NOW, Quota(limit=3))["forb-v1"]
    assert two.allowed and (two.used, two.needed) == (1, 2)
    same = [scoring("p0", 0), scoring("p0", 0)]          # identical predictions: one charge
    assert decide([], same, NOW, Quota(limit=1))["forb-v1"].needed == 1


def test_a_known_reservation_counts_whatever_its_time_or_pull_request():
    """Review 2: a reservation already in the history takes its place, also when it is dated
    the same second as the new one and made on a higher-numbered pull request."""
    quota = Quota(limit=1)
    a, b = scoring("pa", 0, pr=2), scoring("pb", 0, pr=1)
    assert decide([], [a], NOW, quota)["forb-v1"].allowed
    assert not decide([a], [b], NOW, quota)["forb-v1"].allowed
    later = scoring("pc", -1, pr=9)                    # dated after the new one
    assert not decide([later], [b], NOW, quota)["forb-v1"].allowed


def test_quota_follows_the_account_id_across_a_rename():
    """Review 4: the ledger keeps the numeric user id; a renamed account is the same person.
    Ledgers without ids still compare logins."""
    quota = Quota(limit=1)
    before = Scoring("old-name", "forb-v1", "p" * 64, NOW - dt.timedelta(hours=1), 3,
                     user_id=42)
    after = Scoring("new-name", "forb-v1", "q" * 64, NOW, 7, user_id=42)
    assert not decide([before], [after], NOW, quota)["forb-v1"].allowed
    other = Scoring("old-name", "forb-v1", "q" * 64, NOW, 7, user_id=43)   # login reused
    assert decide([before], [other], NOW, quota)["forb-v1"].allowed
    legacy = Scoring("new-name", "forb-v1", "p" * 64, NOW - dt.timedelta(hours=1), 3)
    assert not decide([legacy], [after], NOW, quota)["forb-v1"].allowed
    assert ledger_from_comment(ledger_marker([before])) == [before]


def test_a_long_comment_keeps_its_whole_ledger_under_githubs_limit():
    """Review 7b: the body is cut to make room; the ledger never is."""
    ledger = [Scoring(f"user{i}", "forb-v1", f"{i:064x}", NOW, 7, f"{i:040x}", "12.1", i)
              for i in range(150)]
    noisy = ["." * 300] * 30                       # each dot is shown as '&#46;'
    results = [EntryResult(f"submissions/forb/e{i}", None, problems=noisy) for i in range(5)]
    body = build_comment(results, "a" * 40, ledger)
    assert len(body) <= GITHUB_COMMENT_LIMIT
    assert ledger_from_comment(body) == ledger


def test_quota_settings_come_from_repository_variables(monkeypatch):
    monkeypatch.setenv("LEADERBOARD_QUOTA", "5")
    monkeypatch.setenv("LEADERBOARD_QUOTA_HOURS", "12")
    assert Quota.from_env() == Quota(5, dt.timedelta(hours=12))


def test_ledger_round_trips_and_ignores_garbage():
    scorings = [scoring("a" * 40, 1), scoring("b" * 40, 2, author="x-->y")]
    body = f"text\n{ledger_marker(scorings)}\n"
    assert body.count("-->") == 1       # a value cannot end the HTML comment early
    assert ledger_from_comment(body) == scorings
    assert ledger_from_comment("<!-- leaderboard-ledger {broken} -->") == []
    old = ('<!-- leaderboard-ledger {"v":1,"scorings":[{"author":"ann","board":"forb-v1",'
           '"head":"' + "c" * 40 + '","at":"2026-11-23T11:00:00Z"}]} -->')
    assert ledger_from_comment(old) == [    # written before predictions were charged
        Scoring("ann", "forb-v1", "c" * 40, NOW - dt.timedelta(hours=1), 0, "c" * 40)]
    assert ledger_from_comment("no ledger") == []


def test_score_without_a_matching_pull_request_says_so(monkeypatch, tmp_path, capsys):
    fake = FakeGitHub()
    server = serve(fake)
    try:
        env = actions_env(monkeypatch, tmp_path, fake.url)
        env.set_event("workflow_run", {"workflow_run": {
            "id": 5, "event": "pull_request", "conclusion": "success", "head_sha": "a" * 40,
            "head_branch": "x", "head_repository": {"owner": {"login": "someone"}},
            "pull_requests": []}})
        code = main(["ci", "score", "--repo", str(tmp_path)])
    finally:
        server.shutdown()
    out = capsys.readouterr().out
    assert code == 1
    assert "no open pull request of lb-org/leaderboard has head" in out
    assert "not scored" in env.summary_text()
    assert fake.comments == {}


@pytest.mark.parametrize("conclusion", ["failure", "cancelled"])
def test_score_ignores_failed_validate_runs(monkeypatch, tmp_path, capsys, conclusion):
    env = actions_env(monkeypatch, tmp_path)
    env.set_event("workflow_run", {"workflow_run": {"id": 5, "event": "pull_request",
                                                    "conclusion": conclusion}})
    assert main(["ci", "score", "--repo", str(tmp_path)]) == 0
    assert "nothing to score" in capsys.readouterr().out


# Finding 4: the run's head repository and branch --------------------------------------------

def _run(head_sha: str, full_name: str, branch: str = "feature") -> dict:
    owner = full_name.split("/")[0]
    return {"id": 5, "event": "pull_request", "conclusion": "success", "head_sha": head_sha,
            "head_branch": branch, "pull_requests": [],
            "head_repository": {"full_name": full_name, "owner": {"login": owner}}}


def test_a_run_from_another_fork_with_the_same_commit_is_not_the_prs(monkeypatch, tmp_path):
    fake = FakeGitHub()
    fake.add_pull(7, "victim", "a" * 40, "feature", "victim", [])
    server = serve(fake)
    try:
        actions_env(monkeypatch, tmp_path, fake.url)
        gh = GitHub()
        assert find_pull_request(gh, _run("a" * 40, "victim/leaderboard"))["number"] == 7
        for run in (_run("a" * 40, "attacker/leaderboard"),             # same commit and branch
                    _run("a" * 40, "victim/leaderboard", branch="other"),
                    {**_run("a" * 40, "victim/leaderboard"), "head_repository": None}):
            with pytest.raises(ScoreRefused, match="no open pull request"):
                find_pull_request(gh, run)
    finally:
        server.shutdown()


# Finding 5: renames --------------------------------------------------------------------------

def test_a_rename_in_the_api_file_list_deletes_the_old_path():
    files = [{"filename": "submissions/forb/new/predictions.ndjson", "status": "renamed",
              "previous_filename": "submissions/forb/old/predictions.ndjson"},
             {"filename": "submissions/forb/new/metadata.json", "status": "added"}]
    assert changes_from_api_files(files) == [
        Change("D", "submissions/forb/old/predictions.ndjson"),
        Change("A", "submissions/forb/new/predictions.ndjson"),
        Change("A", "submissions/forb/new/metadata.json")]


# Finding 6: API failures, history reads ------------------------------------------------------

@pytest.mark.parametrize("status, headers, message", [
    (403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1795435200"},
     "the API rate limit is used up until 12:00 UTC"),
    (500, {}, "the API kept answering with server errors, also when retried"),
])
def test_api_failures_end_the_step_with_one_line(monkeypatch, tmp_path, capsys, status,
                                                 headers, message):
    fake = FakeGitHub()
    fake.add_pull(7, "contrib", "a" * 40, "feature", "contrib", [])
    fake.faults.append(Fault("GET", "/repos/lb-org/leaderboard/pulls/7", status, headers,
                             times=3))
    server = serve(fake)
    try:
        env = actions_env(monkeypatch, tmp_path, fake.url)
        env.set_event("workflow_run", {"workflow_run": {
            **_run("a" * 40, "contrib/leaderboard"), "pull_requests": [{"number": 7}]}})
        code = main(["ci", "score", "--repo", str(tmp_path)])
    finally:
        server.shutdown()
    captured = capsys.readouterr()
    assert code == 3
    assert "Traceback" not in captured.out + captured.err
    assert captured.err == (f"error: GitHub API: GET /repos/lb-org/leaderboard/pulls/7: "
                            f"{message}" + ("; re-run the workflow later" if status == 403
                                            else "") + "\n")


def test_quota_history_reads_only_recent_pull_requests_and_comments(monkeypatch, tmp_path):
    fake = FakeGitHub(page_size=2)
    week_ago, hour_ago = iso_now(-dt.timedelta(days=7)), iso_now(-dt.timedelta(hours=1))
    recent = Scoring("ann", "forb-v1", "p" * 64, dt.datetime.now(dt.timezone.utc)
                     .replace(microsecond=0) - dt.timedelta(hours=1), 2)
    fake.add_pull(1, "ann", "1" * 40, "old", "ann", [], state="closed", updated_at=week_ago)
    fake.bot_comment(1, ledger_marker([recent]), updated_at=week_ago)
    fake.add_pull(2, "ann", "2" * 40, "new", "ann", [], updated_at=hour_ago)
    fake.bot_comment(2, "an old comment without a ledger", updated_at=week_ago)
    fake.bot_comment(2, ledger_marker([recent]), updated_at=hour_ago)
    server = serve(fake)
    try:
        actions_env(monkeypatch, tmp_path, fake.url)
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        history = scoring_history(GitHub(), "ann", now, Quota(), skip=7)
        assert history == [recent]
        reads = [q for m, path, q in fake.queries if path.endswith("/comments")]
        assert reads and all(q.get("since") == iso(now - dt.timedelta(hours=24))
                             for q in reads)
        assert ("GET", "/repos/lb-org/leaderboard/issues/1/comments") not in fake.requests
        search = next(q for m, path, q in fake.queries if path == "/search/issues")
        assert f"updated:>={iso(now - dt.timedelta(hours=24))}" in search["q"]
        for number in range(10, 10 + MAX_PULLS_SCANNED):   # too many to check: refused
            fake.add_pull(number, "ann", f"{number:040x}", f"b{number}", "ann", [])
        with pytest.raises(ScoreRefused, match=f"more than {MAX_PULLS_SCANNED} pull requests"):
            scoring_history(GitHub(), "ann", now, Quota(), skip=7)
        assert scoring_history(GitHub(), "ann", now, Quota(limit=0), skip=7) == []
    finally:
        server.shutdown()


# Finding 7: the manifest's size --------------------------------------------------------------

def test_an_oversized_manifest_is_refused_before_it_is_read(tmp_path):
    manifest = {"schema": MANIFEST_SCHEMA, "entries": ["submissions/forb/x"]}
    padded = tmp_path / "padded"
    padded.mkdir()
    (padded / MANIFEST).write_text(json.dumps(manifest) + " " * (2 << 20))
    with pytest.raises(ArtifactError, match=f"{MANIFEST}: larger than {MAX_MANIFEST_BYTES}"):
        read_manifest(padded)
    huge = tmp_path / "huge"
    huge.mkdir()
    with open(huge / MANIFEST, "wb") as handle:   # sparse: 1000 MiB on disk costs nothing
        handle.truncate(1000 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(ArtifactError, match=f"{MANIFEST}: larger than"):
            read_manifest(huge)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    small = tmp_path / "small"
    small.mkdir()
    (small / MANIFEST).write_text(json.dumps(manifest))
    assert read_manifest(small)["entries"] == ["submissions/forb/x"]
