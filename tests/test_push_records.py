"""`.github/scripts/push-records.sh`, the publish workflow's only step with a write token, run
against real git repositories: it adds new records only, never overwrites one, refuses an
artifact holding anything else, runs no hooks, keeps the token off every command line, and
rebases and retries when the branch moved under it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / ".github" / "scripts" / "push-records.sh"
RECORD = "submissions/forb/new-entry/records/forb-v1.json"
TOKEN = "ghs_NotARealTokenButDistinctive123"


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x"}
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True,
                           text=True, env=env).stdout.strip()


@pytest.fixture
def repos(tmp_path):
    """A bare origin with one commit on main, and a fresh clone of it (the job's checkout)."""
    origin, seed = tmp_path / "origin.git", tmp_path / "seed"
    git(tmp_path, "init", "--quiet", "--bare", "-b", "main", str(origin))
    git(tmp_path, "init", "--quiet", "-b", "main", str(seed))
    (seed / "submissions/forb/old-entry/records").mkdir(parents=True)
    (seed / "submissions/forb/old-entry/records/forb-v1.json").write_text('{"old": 1}\n')
    git(seed, "add", "-A")
    git(seed, "commit", "--quiet", "-m", "seed")
    git(seed, "push", "--quiet", str(origin), "main")
    checkout = tmp_path / "checkout"
    git(tmp_path, "clone", "--quiet", str(origin), str(checkout))
    return origin, seed, checkout


def stage(tmp_path: Path, files: dict[str, str]) -> Path:
    staged = tmp_path / "staged"
    for name, text in files.items():
        (staged / name).parent.mkdir(parents=True, exist_ok=True)
        (staged / name).write_text(text)
    staged.mkdir(exist_ok=True)
    return staged


def push(checkout: Path, staged: Path, shim_log: Path | None = None):
    env = {**os.environ, "GITHUB_TOKEN": TOKEN, "GITHUB_OUTPUT": str(staged.parent / "out")}
    if shim_log is not None:   # a `git` first on PATH that logs its arguments
        shim = staged.parent / "shim"
        shim.mkdir(exist_ok=True)
        real = subprocess.run(["which", "git"], capture_output=True, text=True).stdout.strip()
        (shim / "git").write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{shim_log}"\n'
                                  f'exec "{real}" "$@"\n')
        (shim / "git").chmod(0o755)
        env["PATH"] = f"{shim}:{env['PATH']}"
    return subprocess.run(["bash", str(SCRIPT), str(staged), "main"], cwd=checkout, env=env,
                          capture_output=True, text=True, timeout=120)


def test_new_records_are_committed_and_pushed(tmp_path, repos):
    origin, _, checkout = repos
    staged = stage(tmp_path, {RECORD: '{"new": 1}\n'})
    result = push(checkout, staged)
    assert result.returncode == 0, result.stderr
    assert git(origin, "show", f"main:{RECORD}") == '{"new": 1}'
    head = git(origin, "rev-parse", "main")
    assert f"commit={head}" in (tmp_path / "out").read_text()


def test_a_moved_branch_is_rebased_onto_and_pushed(tmp_path, repos):
    origin, seed, checkout = repos
    (seed / "README.md").write_text("merged meanwhile\n")
    git(seed, "add", "-A")
    git(seed, "commit", "--quiet", "-m", "another merge")
    git(seed, "push", "--quiet", str(origin), "main")
    result = push(checkout, stage(tmp_path, {RECORD: "{}\n"}))
    assert result.returncode == 0, result.stderr
    assert "rebasing" in result.stdout
    assert git(origin, "show", "main:README.md") == "merged meanwhile"
    assert git(origin, "show", f"main:{RECORD}") == "{}"


def test_an_existing_record_is_never_overwritten(tmp_path, repos):
    origin, _, checkout = repos
    before = git(origin, "rev-parse", "main")
    old = "submissions/forb/old-entry/records/forb-v1.json"
    result = push(checkout, stage(tmp_path, {old: '{"forged": 1}\n'}))
    assert result.returncode == 0, result.stderr
    assert git(origin, "show", f"main:{old}") == '{"old": 1}'
    assert git(origin, "rev-parse", "main") == before


@pytest.mark.parametrize("name", ["submissions/forb/x/predictions.ndjson",
                                  ".github/workflows/publish.yml",
                                  "submissions/forb/x/records/.hidden.json"])
def test_anything_but_a_record_refuses_the_whole_artifact(tmp_path, repos, name):
    origin, _, checkout = repos
    before = git(origin, "rev-parse", "main")
    staged = stage(tmp_path, {RECORD: "{}\n"})
    target = staged / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("x")
    result = push(checkout, staged)
    assert result.returncode == 1
    assert "refusing" in result.stderr
    assert git(origin, "rev-parse", "main") == before


def test_a_symlink_in_the_artifact_is_refused(tmp_path, repos):
    _, _, checkout = repos
    staged = stage(tmp_path, {RECORD: "{}\n"})
    (staged / "submissions/forb/new-entry/records/forb-v2.json").symlink_to("/etc/passwd")
    result = push(checkout, staged)
    assert result.returncode == 1 and "not a plain file" in result.stderr


def test_hooks_do_not_run_and_the_token_is_on_no_command_line(tmp_path, repos):
    origin, _, checkout = repos
    hook = checkout / ".git" / "hooks" / "pre-commit"
    hook.write_text(f"#!/bin/sh\ntouch {tmp_path / 'hook-ran'}\nexit 1\n")
    hook.chmod(0o755)
    log = tmp_path / "argv.log"
    result = push(checkout, stage(tmp_path, {RECORD: json.dumps({"a": 1})}), shim_log=log)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "hook-ran").exists()
    assert TOKEN not in log.read_text()
    assert "credential.helper" in log.read_text()   # the shim saw the calls
    assert TOKEN not in (checkout / ".git" / "config").read_text()
