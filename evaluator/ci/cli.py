"""``leaderboard ci``: the steps the GitHub Actions workflows run. Each reads what it needs from
the Actions environment (event payload, GITHUB_* variables) so no workflow expression ever
passes untrusted text on a command line."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EPILOG = """\
The workflows in .github/workflows/ call these; they also run locally with a simulated Actions
environment (GITHUB_EVENT_PATH, GITHUB_REPOSITORY, GITHUB_OUTPUT, GITHUB_STEP_SUMMARY).

examples:
  leaderboard ci validate --out "$RUNNER_TEMP/submission"
  leaderboard ci score
  leaderboard ci publish

exit status: 0 done, 1 the pull request is not valid or was not scored (the summary and the
comment say why), 2 a usage or environment error, 3 a GitHub API failure (one line, e.g. the
rate limit).
"""


def add_parser(sub) -> None:
    parser = sub.add_parser(
        "ci", help="pull-request pipeline steps (validate, score, publish)",
        description="Steps of the leaderboard's GitHub Actions pipeline.", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    steps = parser.add_subparsers(dest="step", required=True, metavar="STEP")

    p = steps.add_parser(
        "validate", help="pull_request: check the PR's changes and entries, stage the artifact",
        description="Check a pull request against the submission rules and validate every "
                    "entry it adds or changes (no labels needed). Base and head come from the "
                    "pull_request event payload.")
    p.add_argument("--repo", type=Path, default=Path("."), help="the checked-out repository")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="stage the entries here for upload as the 'submission' artifact")
    p.add_argument("--max-errors", type=int, default=50, metavar="N")
    p.set_defaults(func=cmd_validate)

    p = steps.add_parser(
        "score", help="workflow_run: score the validated artifact, comment on the PR",
        description="Find the pull request of the finished validate run, check its artifact "
                    "against the pull request, enforce the scoring quota, score against the "
                    "hidden labels and post (or update) one comment. Needs GITHUB_TOKEN.")
    p.add_argument("--repo", type=Path, default=Path("."), help="checkout of the default branch")
    p.add_argument("--labels", action="append", metavar="SOURCE",
                   help="label source (default: labels/<benchmark>.bundle, or "
                        "$LEADERBOARD_LABELS_<BENCHMARK>)")
    p.add_argument("--site-url", metavar="URL", help="the published site, for board links")
    p.set_defaults(func=cmd_score)

    p = steps.add_parser(
        "publish", help="push to main: record merged entries that have no record yet",
        description="Evaluate merged entries without a record for their board's current "
                    "version and write the records (never rewriting one).")
    p.add_argument("--repo", type=Path, default=Path("."))
    p.add_argument("--submissions", type=Path, default=None, metavar="DIR",
                   help="default: REPO/submissions")
    p.add_argument("--labels", action="append", metavar="SOURCE")
    p.set_defaults(func=cmd_publish)


INSTALL_HINT = "pip install -e '.[ci]' (in a clone) or pip install 'cv-leaderboards[ci]'"


def _guarded(step):
    """Environment and API problems end the step with a one-line error, not a traceback; so
    does a missing optional dependency (the ci extra), named with how to install it."""
    def run(args) -> int:
        try:
            from evaluator.ci.changes import GitError
            from evaluator.ci.github import GitHubError
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] == "evaluator":
                raise
            print(f"error: `leaderboard ci` needs the '{exc.name}' package of the ci extra: "
                  f"{INSTALL_HINT}", file=sys.stderr)
            return 2
        try:
            return step(args)
        except (RuntimeError, GitError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except GitHubError as exc:
            print(f"error: GitHub API: {exc}", file=sys.stderr)
            return 3
    return run


@_guarded
def cmd_validate(args) -> int:
    from evaluator.ci import validate

    return validate.run(args.repo, args.out, args.max_errors)


@_guarded
def cmd_score(args) -> int:
    from evaluator.ci import score

    # The workflow passes the site address as the LEADERBOARD_SITE_URL repository variable.
    return score.run(args.repo, args.labels,
                     args.site_url or os.environ.get("LEADERBOARD_SITE_URL") or None)


@_guarded
def cmd_publish(args) -> int:
    from evaluator.ci import publish

    return publish.run(args.repo, args.submissions or args.repo / "submissions", args.labels)
