"""``leaderboard ci validate``: the pull_request job. No secrets, no labels, read-only token.

Checks the PR's changes against the submission rules, validates every entry it adds or changes,
annotates problems on the right file and line, writes a step summary and stages the entries as
the artifact the score workflow picks up.
"""

from __future__ import annotations

import json
from pathlib import Path

from evaluator.ci import actions
from evaluator.ci.actions import md, md_code
from evaluator.ci.artifact import stage_entries
from evaluator.ci.changes import Plan, merged_entry_ids, plan_from_git
from evaluator.entries import METADATA_FILE
from evaluator.evaluation import check_entry
from evaluator.registry import get_benchmark
from evaluator.validation.report import ValidationReport


def pr_refs(payload: dict) -> tuple[int, str, str]:
    """PR number, base sha and head sha from a pull_request event payload."""
    pr = payload.get("pull_request") or {}
    try:
        return int(pr["number"]), str(pr["base"]["sha"]), str(pr["head"]["sha"])
    except (KeyError, TypeError, ValueError):
        raise RuntimeError("the event payload has no pull_request with number, base and head "
                           "(this step runs on pull_request events)") from None


def validate_entries(repo: Path, plan: Plan, merge_base: str,
                     max_errors: int) -> dict[str, ValidationReport]:
    """Validate each entry of the plan as the evaluator would, without labels."""
    reports = {}
    for entry in plan.entries:
        report = ValidationReport(max_errors=max_errors)
        benchmark = get_benchmark(entry.split("/")[1])
        _, checked = check_entry(repo / entry, benchmark, lambda board: None, report,
                                 submission=True)
        revises = checked.metadata.revises if checked.metadata else None
        if revises:
            known = merged_entry_ids(repo, merge_base, benchmark.info.name)
            if revises not in known or revises == entry.split("/")[2]:
                report.error(METADATA_FILE, None, f"\"revises\": {revises!r} is not a merged "
                             f"{benchmark.info.name} entry")
        reports[entry] = report
    return reports


def run(repo: Path, out: Path | None, max_errors: int) -> int:
    number, base, head = pr_refs(actions.event_payload())
    plan = plan_from_git(repo, base, head)
    if not plan.submission:
        actions.write_summary("### Leaderboard\n\nThis pull request changes nothing under "
                              "`submissions/`: no entry to validate.\n")
        actions.set_output("entries", "[]")
        return 0
    reports = validate_entries(repo, plan, plan.merge_base, max_errors)
    ok = plan.report.ok and all(r.ok for r in reports.values())
    _annotate(plan, reports)
    _log(plan, reports)
    actions.write_summary(summary(plan, reports))
    actions.set_output("entries", json.dumps(plan.entries))
    if ok and out is not None:
        stage_entries(repo, plan.entries, out,
                      {"pull_request": number, "head_sha": head, "base_sha": base})
    return 0 if ok else 1


def _annotate(plan: Plan, reports: dict[str, ValidationReport]) -> None:
    # Paths are repository-relative so the annotations land on the PR's files.
    for problem in plan.report.problems:
        actions.annotate_error(problem.message, file=problem.file)
    for entry, report in reports.items():
        for problem in report.problems:
            file = entry if problem.file in (".", "") else f"{entry}/{problem.file}"
            if problem.severity == "error":
                actions.annotate_error(problem.message, file=file, line=problem.line)
            else:
                actions.annotate_warning(problem.message, file=file, line=problem.line)


def _log(plan: Plan, reports: dict[str, ValidationReport]) -> None:
    with actions.commands_off():
        for line in plan.report.lines():
            actions.log(line)
        for entry, report in reports.items():
            actions.log(f"{entry}: {'ok' if report.ok else f'{report.error_count} error(s)'}")
            for line in report.lines():
                actions.log(f"  {line}")


def summary(plan: Plan, reports: dict[str, ValidationReport]) -> str:
    lines = ["### Leaderboard: validation", ""]
    if not plan.report.ok:
        lines += ["This pull request breaks the submission rules:", ""]
        lines += [f"- {md(line)}" for line in plan.report.lines()]
        lines.append("")
    for entry, report in reports.items():
        status = "valid" if report.ok else f"{report.error_count} error(s)"
        lines.append(f"- {md_code(entry)}: {status}")
        lines += [f"    - {md(line)}" for line in report.lines()]
    if plan.report.ok and all(r.ok for r in reports.values()):
        lines += ["", "Valid. The score workflow now evaluates the entries against the hidden "
                  "labels and comments on this pull request."]
    return "\n".join(lines) + "\n"
