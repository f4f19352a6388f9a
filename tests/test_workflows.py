"""The GitHub Actions workflows: zizmor finds nothing, they match GitHub's workflow schema, and
the rules the pipeline's safety rests on hold in every file."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    path = BIN / name
    found = str(path) if path.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: it is part of the test extra "
                    "(pip install -e '.[test]')")
    return found


def load(path: Path) -> dict:
    # PyYAML reads the key `on` as True (YAML 1.1); map it back.
    document = yaml.safe_load(path.read_text())
    if True in document:
        document["on"] = document.pop(True)
    return document


def test_the_four_workflows_exist():
    assert {p.stem for p in WORKFLOWS} == {"validate", "score", "publish", "published"}


def test_published_results_are_checked_read_only_against_their_quotes():
    """A pull request adding a paper's results runs the cell test on the data files, with no
    secrets and a read-only token; the command it runs passes on the repository as it is."""
    from evaluator.cli import main

    document = load(REPO / ".github/workflows/published.yml")
    assert document["on"]["pull_request"]["paths"] == ["site/data/**"]
    assert document["permissions"] == {}
    (job,) = document["jobs"].values()
    assert job["permissions"] == {"contents": "read"}
    runs = [step.get("run", "") for step in job["steps"]]
    assert "python -m evaluator.cli published check" in runs
    assert "secrets." not in (REPO / ".github/workflows/published.yml").read_text()
    assert main(["published", "check"]) == 0


def test_zizmor_offline_reports_nothing():
    result = subprocess.run([tool("zizmor"), "--offline", "--persona", "pedantic",
                             "--no-progress", *map(str, WORKFLOWS)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout


def test_inline_zizmor_ignores_give_a_reason():
    for path in WORKFLOWS:
        for line in path.read_text().splitlines():
            if "zizmor: ignore" in line:
                reason = line.split("]", 1)[1].strip()
                assert len(reason) > 30, f"{path.name}: an ignore needs a written reason: {line}"


def test_workflows_match_githubs_schema():
    result = subprocess.run([tool("check-jsonschema"), "--builtin-schema",
                             "vendor.github-workflows", *map(str, WORKFLOWS)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_to_full_commit_shas(path):
    uses = re.findall(r"uses:\s*(\S+)(.*)", path.read_text())
    assert uses
    for ref, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", ref), ref
        assert re.match(r"\s+# v\d+(\.\d+)*", comment), f"{ref}: needs a '# vX.Y.Z' comment"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_permissions_are_empty_at_the_top_and_granted_per_job(path):
    document = load(path)
    assert document["permissions"] == {}
    for name, job in document["jobs"].items():
        assert "permissions" in job, f"{path.name}: job {name} needs its own permissions"
        assert "write-all" not in str(job["permissions"])


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_expression_inside_run_scripts(path):
    # Untrusted values reach scripts through env: variables only, never by ${{ }} expansion.
    for job in load(path)["jobs"].values():
        for step in job.get("steps", []):
            assert "${{" not in step.get("run", ""), step


def test_validate_runs_without_secrets_and_a_read_only_token():
    text = (REPO / ".github/workflows/validate.yml").read_text()
    document = load(REPO / ".github/workflows/validate.yml")
    assert list(document["on"]) == ["pull_request"]
    assert "secrets." not in text
    for job in document["jobs"].values():
        assert job["permissions"] == {"contents": "read"}
        checkout = job["steps"][0]
        assert checkout["with"]["persist-credentials"] is False


def test_score_runs_trusted_code_only():
    document = load(REPO / ".github/workflows/score.yml")
    assert list(document["on"]) == ["workflow_run"]
    job = document["jobs"]["score"]
    assert job["environment"] == "labels"
    assert job["permissions"] == {"contents": "read", "actions": "read",
                                  "pull-requests": "write"}
    for step in job["steps"]:
        # Checking out the PR's head (or anything the run names) would run its code.
        assert "ref" not in step.get("with", {}), step
        assert "workflow_run" not in str(step.get("with", {})), step


def test_publish_deploys_with_the_official_pages_actions():
    document = load(REPO / ".github/workflows/publish.yml")
    assert document["on"]["push"]["branches"] == ["main"]
    uses = [s.get("uses", "") for job in document["jobs"].values() for s in job["steps"]]
    for action in ("actions/configure-pages@", "actions/upload-pages-artifact@",
                   "actions/deploy-pages@"):
        assert any(u.startswith(action) for u in uses), action
    assert document["jobs"]["deploy"]["environment"]["name"] == "github-pages"
    records = document["jobs"]["records"]
    assert records["if"] == "github.actor != 'github-actions[bot]'"   # no self-retrigger
    build = "\n".join(s.get("run", "") for s in document["jobs"]["build"]["steps"])
    assert "evaluator.cli build" in build   # runs mkdocs build --strict


def _runs(job: dict) -> list[str]:
    return [step["run"] for step in job["steps"] if "run" in step]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_install_is_of_hashed_wheels_from_a_lock_file(path):
    """Privileged jobs sit next to the label key and a write token: no floating versions, no
    source builds, and the project itself is run from the checkout, never built."""
    installs = [line for job in load(path)["jobs"].values() for run in _runs(job)
                for line in run.splitlines() if "pip install" in line]
    for line in installs:
        assert re.fullmatch(r"python -m pip install --quiet --require-hashes "
                            r"--only-binary ':all:' -r requirements/(ci|site)\.lock",
                            line.strip()), line
        assert (REPO / line.split(" -r ")[1].strip()).is_file(), line
    for job in load(path)["jobs"].values():
        for run in _runs(job):
            assert not re.search(r"(^|\s)leaderboard\s", run), \
                f"{path.name}: run the evaluator as python -m evaluator.cli: {run}"


def test_the_job_holding_the_label_key_cannot_push():
    jobs = load(REPO / ".github/workflows/publish.yml")["jobs"]
    assert jobs["records"]["permissions"] == {"contents": "read"}
    assert jobs["records"]["environment"] == "labels"


def test_the_job_that_pushes_runs_no_project_code_and_holds_no_label_secret():
    job = load(REPO / ".github/workflows/publish.yml")["jobs"]["push"]
    assert job["permissions"] == {"contents": "write"}
    assert "environment" not in job
    assert "secrets." not in str(job)
    assert _runs(job) == ['bash .github/scripts/push-records.sh "$RUNNER_TEMP/records" '
                          '"$BRANCH"']
    assert job["steps"][0]["with"]["persist-credentials"] is False


@pytest.mark.parametrize("path", [*WORKFLOWS, REPO / ".github/scripts/push-records.sh"],
                         ids=lambda p: p.name)
def test_the_token_is_never_on_a_command_line(path):
    text = path.read_text()
    assert "x-access-token:" not in text
    for line in text.splitlines():
        code = line.strip()
        if code.startswith("#") or code == "GITHUB_TOKEN: ${{ github.token }}":
            continue   # comments, and handing the token to a step through its environment
        if "GITHUB_TOKEN" in code and "$" in code:
            # The one use: inside the single-quoted credential helper, expanded by the shell
            # git starts, not by the script.
            assert "password=${GITHUB_TOKEN}" in code and code.startswith("'!f()"), \
                f"{path.name}: {code}"


def test_scoring_is_serialised_per_contributor():
    # The quota ledger is read and written per pull request and per contributor: runs of one
    # branch, and runs started by one user, never overlap (reservations still decide the quota).
    document = load(REPO / ".github/workflows/score.yml")
    run = "github.event.workflow_run"
    assert document["concurrency"] == {
        "group": f"score-${{{{ {run}.head_repository.full_name }}}}-${{{{ {run}.head_branch }}}}",
        "cancel-in-progress": False}
    assert document["jobs"]["score"]["concurrency"] == {
        "group": f"score-author-${{{{ {run}.actor.login }}}}", "cancel-in-progress": False}


def test_the_site_is_deployed_also_when_there_was_nothing_to_record():
    """push is skipped when no record is new; GitHub then skips every job downstream of it
    whose `if:` is the implicit success(), so build and deploy must say what they wait for."""
    jobs = load(REPO / ".github/workflows/publish.yml")["jobs"]
    assert jobs["push"]["if"] == "needs.records.outputs.recorded != '0'"

    def ancestors(name: str) -> set[str]:
        needs = jobs[name].get("needs", [])
        needs = [needs] if isinstance(needs, str) else needs
        return set(needs).union(*(ancestors(n) for n in needs)) if needs else set()

    for name in jobs:
        if "push" in ancestors(name):
            condition = jobs[name].get("if", "")
            assert "!failure()" in condition and "!cancelled()" in condition, name
