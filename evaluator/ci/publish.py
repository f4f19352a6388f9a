"""``leaderboard ci publish``: on every push to the default branch, evaluate the merged entries
under every version of their board that they have no record for, and write those records
(the workflow then commits them and deploys the site). When a board version appears that
stored entries have no record for, the whole board is rescored under it first, which also
writes the version's changes report (``submissions/changes/<board-id>.json``). Existing records
are never rewritten."""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path

from evaluator.board_data import BoardData
from evaluator.ci import actions
from evaluator.ci.actions import md, md_code
from evaluator.ci.labels import default_label_specs, mask_label_secrets
from evaluator.entries import METADATA_FILE, find_entries
from evaluator.evaluation import benchmark_of_entry, evaluate_entry
from evaluator.records import RecordConflict, record_path, store_record
from evaluator.registry import benchmarks
from evaluator.rescore import needs_rescoring, rescore
from evaluator.validation.report import ValidationReport
from evaluator.validation.parsing import load_json


def missing_versions(entry: Path):
    """The entry's benchmark and the versions of its board it has no record for (None when
    its metadata names no board the benchmark knows)."""
    benchmark = benchmark_of_entry(entry)
    try:
        name = load_json((entry / METADATA_FILE).read_text(encoding="utf-8"))["board"]
        board = benchmark.board(str(name))
    except (OSError, ValueError, KeyError, TypeError):
        return benchmark, None
    return benchmark, [b for b in benchmark.versions(board.name)
                       if not record_path(entry, b).is_file()]


def run(repo: Path, submissions: Path, label_specs: list[str] | None) -> int:
    mask_label_secrets()
    recorded, skipped, failed = [], [], []
    rescored: list[tuple[str, Path]] = []
    with ExitStack() as stack:
        data = BoardData((label_specs or []) + default_label_specs(repo), stack)
        for benchmark in benchmarks():
            for board in benchmark.info.boards:
                if needs_rescoring(submissions, benchmark, board):
                    _rescore(benchmark, board, data, submissions, recorded, skipped, failed,
                             rescored)
        for entry in find_entries(submissions):
            if not (entry / METADATA_FILE).is_file():
                continue
            benchmark, versions = missing_versions(entry)
            if versions == []:
                continue
            name = f"{benchmark.info.name}/{entry.name}"
            if any(n == name and why.startswith("not rescored") for n, why in failed):
                continue  # already reported by the rescoring
            report = ValidationReport()
            outcome = evaluate_entry(entry, benchmark, data, report,
                                     versions=versions if versions else "current")
            if outcome.labels_missing:
                skipped.append((name, f"no labels configured for {benchmark.info.name}"))
                continue
            if outcome.evaluation is None:
                failed.append((name, "; ".join(report.lines()[:5])))
                continue
            for board, evaluation in outcome.scored:
                if actions.run_url():
                    evaluation["provenance"]["ci_run"] = actions.run_url()
                try:
                    store_record(entry, board, evaluation)
                except RecordConflict as exc:
                    failed.append((name, str(exc)))
                    continue
                primary = benchmark.info.primary_metric
                value = evaluation["scores"][benchmark.info.headline_slice][primary]
                recorded.append((name, board.id, primary, value))
    _report(recorded, skipped, failed, rescored)
    actions.set_output("recorded", str(len(recorded) + len(rescored)))
    return 0


def _rescore(benchmark, board, data, submissions, recorded, skipped, failed, rescored) -> None:
    """A board version stored entries have no record for: rescore the board under it."""
    result = rescore(benchmark, board, data, submissions, ci_run=actions.run_url())
    if result.labels_missing:
        skipped.append((board.id, f"rescoring: no labels configured for "
                                  f"{benchmark.info.name}"))
        return
    primary = benchmark.info.primary_metric
    for name in result.written:
        record = json.loads(record_path(submissions / name, board).read_text(encoding="utf-8"))
        recorded.append((name, board.id, primary,
                         record["scores"][benchmark.info.headline_slice][primary]))
    for name, why in result.failed:
        failed.append((name, f"not rescored under {board.id}: {why}"))
    if result.report_path is not None:
        rescored.append((board.id, Path(submissions.name) / result.report_path.relative_to(
            submissions)))


def _report(recorded, skipped, failed, rescored) -> None:
    with actions.commands_off():
        for name, board, metric, value in recorded:
            actions.log(f"recorded {name} on {board}: {metric} {value}")
        for name, why in skipped:
            actions.log(f"skipped {name}: {why}")
    for name, why in failed:
        # Merged entries passed validation once; failing now needs a maintainer's look, but
        # must not keep the site from being published.
        actions.annotate_error(f"{name}: not recorded: {why}", title="leaderboard publish")
    lines = ["### Leaderboard: records", ""]
    if not (recorded or skipped or failed):
        lines.append("Every merged entry already has a record for every version of its board.")
    lines += [f"- rescored every stored entry under {md(b)}: changes report {md_code(str(p))}"
              for b, p in rescored]
    lines += [f"- recorded {md_code(n)} on {md(b)}: {md(m)} = {v}" for n, b, m, v in recorded]
    lines += [f"- skipped {md_code(n)}: {md(why)}" for n, why in skipped]
    lines += [f"- **not recorded** {md_code(n)}: {md(why)}" for n, why in failed]
    actions.write_summary("\n".join(lines) + "\n")
