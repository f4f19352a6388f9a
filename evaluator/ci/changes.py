"""What a pull request changes, and whether a submission PR may change it.

Rules (the pipeline's contract with contributors):

* a submission PR changes files under ``submissions/`` only; a PR that touches nothing there is
  not a submission PR and is left to maintainers' review;
* every change lies inside an entry folder ``submissions/<benchmark>/<entry-id>/`` of a
  registered benchmark;
* ``records/`` are written by the publish workflow, never in a PR;
* an entry already on the default branch is immutable: its predictions may not change or be
  deleted. Its ``README.md`` and ``metadata.json`` may be corrected, but not its board. A new
  version of a method is a new entry, optionally naming the entry it revises
  (``"revises": "<entry-id>"`` in its metadata).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from evaluator.entries import ENTRY_ID, METADATA_FILE, README_FILE, RECORDS_DIR
from evaluator.registry import benchmarks
from evaluator.validation.report import ValidationReport, printable
from evaluator.validation.parsing import load_json

SUBMISSIONS = "submissions"
EDITABLE_AFTER_MERGE = {METADATA_FILE, README_FILE}


@dataclass(frozen=True)
class Change:
    status: str   # git's letter: A added, M modified, D deleted, T type changed
    path: str     # repository-relative, '/' separators


@dataclass
class Plan:
    """The entries a PR adds or changes, and the problems that reject it."""

    submission: bool
    entries: list[str] = field(default_factory=list)   # 'submissions/<benchmark>/<entry-id>'
    report: ValidationReport = field(default_factory=ValidationReport)
    merge_base: str | None = None   # set when planned from git: what "merged" is relative to


class GitError(Exception):
    pass


def git(repo: Path, *args: str) -> bytes:
    try:
        result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True,
                                check=False)
    except FileNotFoundError:
        raise GitError("git is not installed") from None
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GitError(f"git {args[0]} failed: {message[-1] if message else result.returncode}")
    return result.stdout


def changed_files(repo: Path, base: str, head: str) -> list[Change]:
    """Files that differ between the merge base of ``base`` and ``head``, and ``head``; renames
    are reported as a deletion and an addition (moving a merged entry deletes it)."""
    raw = git(repo, "diff", "--name-status", "-z", "--no-renames", f"{base}...{head}")
    fields = raw.decode("utf-8", "surrogateescape").split("\0")
    changes = []
    for status, path in zip(fields[0::2], fields[1::2]):
        if status:
            changes.append(Change(status[0], path))
    return changes


# The GitHub API's file statuses as git's letters; an unknown status counts as a change.
API_STATUS_TO_GIT = {"added": "A", "modified": "M", "changed": "M", "removed": "D",
                     "renamed": "A", "copied": "A"}


def changes_from_api_files(files: list[dict]) -> list[Change]:
    """The changes a GitHub API file list (compare or pull request files) describes. A rename
    is the deletion of ``previous_filename`` and an addition, as :func:`changed_files` reports
    it, so moving a merged entry deletes it."""
    changes = []
    for file in files:
        if file.get("status") == "renamed" and file.get("previous_filename"):
            changes.append(Change("D", file["previous_filename"]))
        changes.append(Change(API_STATUS_TO_GIT.get(file.get("status"), "M"), file["filename"]))
    return changes


def exists_at(repo: Path, commit: str, path: str) -> bool:
    result = subprocess.run(["git", "-C", str(repo), "cat-file", "-e", f"{commit}:{path}"],
                            capture_output=True, check=False)
    return result.returncode == 0


def metadata_at(repo: Path, commit: str, entry: str) -> dict | None:
    """An entry's metadata at ``commit``: None if the entry is not there, {} if unreadable."""
    if not exists_at(repo, commit, f"{entry}/{METADATA_FILE}"):
        return None
    try:
        data = load_json(git(repo, "show", f"{commit}:{entry}/{METADATA_FILE}"))
    except (GitError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


MetadataLookup = Callable[[str], "dict | None"]


def plan_changes(changes: list[Change], merged: MetadataLookup, proposed: MetadataLookup) -> Plan:
    """Check a PR's changes against the rules above and list the entries to validate.

    ``merged(entry)`` is the entry's metadata on the default branch (None for a new entry);
    ``proposed(entry)`` its metadata in the PR. The validate job answers both from git, the
    score job from its checkout of the default branch and the downloaded artifact."""
    touched = [c for c in changes if c.path.split("/", 1)[0] == SUBMISSIONS]
    plan = Plan(submission=bool(touched))
    if not touched:
        return plan
    names = {b.info.name for b in benchmarks()}
    entries: dict[str, bool] = {}   # entry -> still present in the PR
    for change in changes:
        shown = printable(change.path)
        parts = change.path.split("/")
        if parts[0] != SUBMISSIONS:
            plan.report.error(shown, None, "a submission pull request changes files under "
                              "submissions/ only; send other changes in a separate pull request")
            continue
        if len(parts) < 4 or parts[1] not in names or not ENTRY_ID.match(parts[2]):
            plan.report.error(shown, None, "files go in an entry folder "
                              "submissions/<benchmark>/<entry-id>/ (benchmarks: "
                              f"{', '.join(sorted(names))}; entry ids use a-z, 0-9, '.', '_', '-')")
            continue
        entry, inner = "/".join(parts[:3]), "/".join(parts[3:])
        is_merged = merged(entry) is not None
        if parts[3] == RECORDS_DIR:
            plan.report.error(shown, None, "records/ are written by the leaderboard's publish "
                              "workflow after merging; remove them from the pull request")
        elif is_merged and (inner not in EDITABLE_AFTER_MERGE or change.status == "D"):
            verb = "deletes" if change.status == "D" else "changes"
            plan.report.error(shown, None, f"this pull request {verb} a file of the merged entry "
                              f"{parts[2]}; merged entries are immutable. Submit a new entry "
                              f"folder instead (it may say \"revises\": \"{parts[2]}\")")
        entries[entry] = entries.get(entry, False) or change.status != "D"
    for entry, present in sorted(entries.items()):
        if not present:
            continue
        before, after = merged(entry), proposed(entry)
        if before is not None and after is not None and before.get("board") != after.get("board"):
            plan.report.error(f"{entry}/{METADATA_FILE}", None, "the board of a merged entry "
                              f"cannot change (it is {before.get('board')!r})")
        plan.entries.append(entry)
    return plan


def plan_from_git(repo: Path, base: str, head: str) -> Plan:
    """The validate job's plan: changes between the merge base of ``base`` and ``head``."""
    merge_base = git(repo, "merge-base", base, head).decode().strip()
    plan = plan_changes(changed_files(repo, base, head),
                        lambda entry: metadata_at(repo, merge_base, entry),
                        lambda entry: metadata_at(repo, head, entry))
    plan.merge_base = merge_base
    return plan


def merged_entry_ids(repo: Path, commit: str, benchmark: str) -> set[str]:
    """Entry ids present at ``commit`` for ``benchmark`` (what ``revises`` may name)."""
    try:
        raw = git(repo, "ls-tree", "-d", "--name-only", "-z", f"{commit}:{SUBMISSIONS}/{benchmark}")
    except GitError:
        return set()
    return {name for name in raw.decode("utf-8", "replace").split("\0") if name}
