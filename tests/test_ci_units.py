"""The pipeline's small pieces: Markdown and workflow-command escaping, the quota rule, the
ledger carried in comments, and what the score step does when it cannot find the PR."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evaluator.ci import actions
from evaluator.ci.labels import mask_label_secrets
from evaluator.ci.quota import Quota, Scoring, decide, ledger_from_comment, ledger_marker
from evaluator.cli import main
from tests.ci_support import FakeGitHub, actions_env, command_lines, serve

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


def scoring(head: str, hours_ago: float, board="forb-v1", author="ann") -> Scoring:
    return Scoring(author, board, head, NOW - dt.timedelta(hours=hours_ago))


def test_quota_counts_distinct_commits_per_author_and_board_in_the_window():
    quota = Quota(limit=2)
    history = [scoring("a", 1), scoring("a", 2), scoring("b", 3),
               scoring("c", 30),                       # outside the window
               scoring("d", 1, board="forb-subset-v1"),  # another board
               scoring("e", 1, author="bob")]          # another person
    refused = decide(history, "ann", "forb-v1", "new", NOW, quota)
    assert not refused.allowed and refused.used == 2
    assert refused.next_free == NOW - dt.timedelta(hours=3) + dt.timedelta(hours=24)
    assert decide(history, "ann", "forb-v1", "a", NOW, quota).allowed      # re-run is free
    assert decide(history, "ann", "forb-subset-v1", "new", NOW, quota).allowed
    assert decide(history, "ann", "forb-v1", "new", NOW, Quota(limit=0)).allowed


def test_quota_settings_come_from_repository_variables(monkeypatch):
    monkeypatch.setenv("LEADERBOARD_QUOTA", "5")
    monkeypatch.setenv("LEADERBOARD_QUOTA_HOURS", "12")
    assert Quota.from_env() == Quota(5, dt.timedelta(hours=12))


def test_ledger_round_trips_and_ignores_garbage():
    scorings = [scoring("a" * 40, 1), scoring("b" * 40, 2, author="x-->y")]
    body = f"text\n{ledger_marker(scorings)}\n"
    assert body.count("-->") == 1       # a value cannot end the HTML comment early
    assert ledger_from_comment(body) == [
        Scoring(s.author, s.board, s.head_sha, s.at) for s in scorings]
    assert ledger_from_comment("<!-- leaderboard-ledger {broken} -->") == []
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
