"""``leaderboard ci publish``: on every push to the default branch, evaluate the merged entries
that have no record for their board's current version and write those records (the workflow
then commits them and deploys the site). Existing records are never rewritten."""

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
from evaluator.validation.report import ValidationReport


def target_board(entry: Path):
    """The board version an entry should have a record for: the newest version of the board
    its metadata names (or exactly the version, when it names a board id)."""
    benchmark = benchmark_of_entry(entry)
    try:
        name = json.loads((entry / METADATA_FILE).read_text(encoding="utf-8"))["board"]
        return benchmark, benchmark.board(str(name))
    except (OSError, ValueError, KeyError, TypeError):
        return benchmark, None


def run(repo: Path, submissions: Path, label_specs: list[str] | None) -> int:
    mask_label_secrets()
    recorded, skipped, failed = [], [], []
    with ExitStack() as stack:
        data = BoardData((label_specs or []) + default_label_specs(repo), stack)
        for entry in find_entries(submissions):
            if not (entry / METADATA_FILE).is_file():
                continue
            benchmark, board = target_board(entry)
            if board is not None and record_path(entry, board).is_file():
                continue
            name = f"{benchmark.info.name}/{entry.name}"
            report = ValidationReport()
            outcome = evaluate_entry(entry, benchmark, data, report)
            if outcome.labels_missing:
                skipped.append((name, f"no labels configured for {benchmark.info.name}"))
                continue
            if outcome.evaluation is None:
                failed.append((name, "; ".join(report.lines()[:5])))
                continue
            evaluation = outcome.evaluation
            if actions.run_url():
                evaluation["provenance"]["ci_run"] = actions.run_url()
            try:
                store_record(entry, outcome.board, evaluation)
            except RecordConflict as exc:
                failed.append((name, str(exc)))
                continue
            primary = benchmark.info.primary_metric
            value = evaluation["scores"][benchmark.info.headline_slice][primary]
            recorded.append((name, outcome.board.id, primary, value))
    _report(recorded, skipped, failed)
    actions.set_output("recorded", str(len(recorded)))
    return 0


def _report(recorded, skipped, failed) -> None:
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
        lines.append("Every merged entry already has a record for its board's current version.")
    lines += [f"- recorded {md_code(n)} on {md(b)}: {md(m)} = {v}" for n, b, m, v in recorded]
    lines += [f"- skipped {md_code(n)}: {md(why)}" for n, why in skipped]
    lines += [f"- **not recorded** {md_code(n)}: {md(why)}" for n, why in failed]
    actions.write_summary("\n".join(lines) + "\n")
