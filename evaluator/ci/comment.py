"""The score workflow's pull-request comment: aggregate scores at the precision the board shows
and the rank the entry would take. Never per-sample results, never label content. Every piece
of text from the submission goes through :func:`evaluator.ci.actions.md`."""

from __future__ import annotations

from dataclasses import dataclass, field

from evaluator.ci.actions import md, md_code
from evaluator.ci.quota import Decision, Scoring, ledger_marker
from evaluator.registry import Benchmark, Board
from evaluator.site.formatting import format_value

MARKER = "<!-- leaderboard-score -->"
MAX_BODY_CHARS = 50_000
GITHUB_COMMENT_LIMIT = 65_536   # GitHub refuses longer comments


@dataclass
class EntryResult:
    entry: str                          # submissions/<benchmark>/<id>
    benchmark: Benchmark
    method: str | None = None
    board: Board | None = None
    evaluation: dict | None = None
    rank: int | None = None
    rows: int = 0                       # rows on the board, this entry included
    problems: list[str] = field(default_factory=list)
    quota: Decision | None = None
    note: str | None = None             # e.g. "labels not configured"


def scores_table(benchmark: Benchmark, scores: dict) -> list[str]:
    """The top-level slices (e.g. FORB's overall, difficulties and types; each anomaly
    category and the mean) with every metric."""
    names = [s for s in benchmark.slice_names() if "/" not in s and s in scores]
    # The metrics of the board version that was scored (a later version may add some).
    metrics = [m for m in benchmark.info.metrics if any(m.name in scores[s] for s in names)]
    # Slice and metric names come from the registry (trusted), so they are shown verbatim.
    lines = ["| Slice | " + " | ".join(m.name for m in metrics) + " |",
             "|---|" + "---:|" * len(metrics)]
    for name in names:
        cells = [format_value(scores[name].get(m.name), m) for m in metrics]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def entry_section(result: EntryResult, site_url: str | None) -> list[str]:
    title = md_code(result.entry.removeprefix("submissions/"))
    if result.method:
        title += f" ({md(result.method)})"
    lines = [f"#### {title}", ""]
    if result.problems:
        lines += ["Not scored: the default branch's evaluator found problems.", ""]
        lines += [f"- {md(p)}" for p in result.problems[:30]]
        if len(result.problems) > 30:
            lines.append(f"- … and {len(result.problems) - 30} more")
        return lines + [""]
    if result.note:
        return lines + [md(result.note, limit=500), ""]
    if result.quota is not None and not result.quota.allowed:
        return lines + [quota_refusal(result.quota, result.board.id), ""]
    info = result.benchmark.info
    metric = next(m for m in info.metrics if m.name == info.primary_metric)
    primary = result.evaluation["scores"].get(info.headline_slice, {}).get(metric.name)
    board = f"{result.board.title} v{result.board.version}"
    if site_url:
        board = f"[{board}]({site_url.rstrip('/')}/boards/{result.board.id}.html)"
    if result.rank is not None:
        lines.append(f"Would rank **{result.rank}** of {result.rows} on {board} "
                     f"({metric.name} on {info.headline_slice}: "
                     f"{format_value(primary, metric)}).")
    else:
        lines.append(f"Scored on {board}; {metric.name} is undefined, so it is not ranked.")
    lines += [""] + scores_table(result.benchmark, result.evaluation["scores"]) + [""]
    provenance = result.evaluation["provenance"]
    lines.append(f"Predictions sha256 {md_code(provenance['predictions']['sha256'][:16])}…, "
                 f"evaluator {provenance['evaluator_version']}.")
    if result.quota is not None:
        lines.append(f"Scorings used on this board in the last {result.quota.window_text}: "
                     f"{result.quota.used + result.quota.needed} of "
                     f"{result.quota.limit or 'unlimited'}.")
    return lines + [""]


def quota_refusal(decision: Decision, board: str) -> str:
    if decision.contended:
        return (f"Not scored: another scoring by the same contributor on {board} was in "
                "progress at the same time, so the quota could not be checked safely. Nothing "
                "was charged; re-run this workflow (or push again) once the other run ended.")
    text = (f"Not scored: this pull request needs {decision.needed} new scoring(s) on {board}, "
            f"and {decision.used} of the quota of {decision.limit} scorings per board and "
            f"contributor in {decision.window_text} are used. Each entry with new predictions "
            "costs one; nothing on this board is scored unless all of them fit.")
    if decision.next_free is None:
        return text + " Split the entries over several pull requests (or ask a maintainer)."
    when = decision.next_free.strftime("%Y-%m-%d %H:%M UTC")
    return text + (f" They fit after {when}; push again then (or ask a maintainer to re-run "
                   "this workflow).")


def progress_comment(head_sha: str, ledger: list[Scoring]) -> str:
    """What the comment says while the scorings in ``ledger`` are reserved and scored."""
    return with_ledger("\n".join([
        MARKER, "### Leaderboard: scoring in progress", "",
        f"Commit {md_code(head_sha[:12])} is being scored against the hidden labels; this "
        "comment is updated with the scores when the run ends."]), ledger)


def build_comment(results: list[EntryResult], head_sha: str, ledger: list[Scoring],
                  site_url: str | None = None, problems: list[str] | None = None) -> str:
    lines = [MARKER, "### Leaderboard: scores for this pull request", "",
             f"Recomputed from the predictions at commit {md_code(head_sha[:12])} by the "
             "default branch's evaluator, against the hidden labels. Only aggregate scores are "
             "shown; they become official when the pull request is merged.", ""]
    if problems:
        lines += ["The submission could not be scored:", ""]
        lines += [f"- {md(p)}" for p in problems[:30]] + [""]
    for result in results:
        lines += entry_section(result, site_url)
    return with_ledger("\n".join(lines), ledger)


def with_ledger(body: str, ledger: list[Scoring]) -> str:
    """``body`` and the hidden ledger; the body is cut to fit GitHub's limit, the ledger never
    is (a cut ledger would read as empty and free the quota)."""
    marker = ledger_marker(ledger)
    note = "\n\n(truncated: see the workflow run's summary)"
    room = min(MAX_BODY_CHARS, GITHUB_COMMENT_LIMIT - len(marker) - len(note) - 4)
    if len(body) > room:
        body = body[:max(room, 0)] + note
    return body + "\n\n" + marker + "\n"
