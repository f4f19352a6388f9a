"""`leaderboard baseline run-all`: every bundled baseline on the datasets given, each entry
evaluated with the dataset's labels, and a table of each entry against the published row it
reproduces. The one command that seeds the boards.

- Order: the catalogue's, which keeps the runs that share cached work together (forb-bow then
  forb-bow-rerank: SIFT, codebook and words; the three MVTec 3D-AD baselines that read the
  preprocessed scans). Every run uses one cache (``--cache``, default ``<out>/.baseline-cache``).
- Resuming: an entry that is already complete is not run again, and a run in progress resumes
  from the cache; an evaluated entry's scores are kept in the report folder. Running the same
  command again after a kill picks up where it stopped.
- Evaluation: ``leaderboard evaluate --entry E --labels L --no-record --json ...``, the same
  evaluator as for any entry. No ``records/`` are written into the entries: records are the
  publish workflow's, and a pull request that carries them is refused.
- Under torchrun every rank walks the same plan; the runs split their work (see
  baselines.distributed) and rank 0 alone writes entries, evaluates and writes the table.
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from baselines.catalogue import BASELINES, BaselineSpec
from baselines.comparison import LEGEND, Comparison, compare, format_table, write_table
from baselines.distributed import Ranks
from baselines.entry import PREDICTIONS_FILE
from baselines.errors import BaselineDataError, BaselineUsageError
from baselines.options import ANOMALY_ONLY, FORB_ONLY, RunOptions
from evaluator.entries import METADATA_FILE, RECORDS_DIR, RUN_RECORD_FILE
from evaluator.registry import get_benchmark

DATASET_OPTIONS = {"forb": "--forb", "mvtec3d-ad": "--mvtec3d", "eyecandies": "--eyecandies"}


@dataclass(frozen=True)
class Job:
    spec: BaselineSpec
    board: str          # board name, e.g. forb-subset
    data: Path          # dataset root
    labels: Path        # label root for `leaderboard evaluate`
    entry: Path         # entry folder

    @property
    def board_id(self) -> str:
        return get_benchmark(self.spec.benchmark).board(self.board).id

    @property
    def key(self) -> str:
        return f"{self.spec.benchmark}/{self.entry.name}"


def label_root(benchmark: str, data: Path) -> Path:
    """Where the evaluator finds a dataset's labels: FORB's in metadata/, the anomaly
    datasets' beside their images."""
    return data / "metadata" if benchmark == "forb" else data


def plan(roots: dict[str, Path], out: Path, names: list[str] | None = None
         ) -> tuple[list[Job], list[str]]:
    """The runs for the datasets given, in catalogue order, and why any board is skipped."""
    if names:
        unknown = sorted(set(names) - set(BASELINES))
        if unknown:
            raise BaselineUsageError(f"--baselines: unknown {', '.join(unknown)} (`leaderboard "
                                     "baseline list` shows them)")
        missing = sorted({BASELINES[n].benchmark for n in names} - set(roots))
        if missing:
            raise BaselineUsageError("--baselines names baselines of "
                                     f"{', '.join(missing)}, but no "
                                     f"{' / '.join(DATASET_OPTIONS[m] for m in missing)} root "
                                     "was given")
    jobs, skipped = [], []
    for spec in BASELINES.values():
        data = roots.get(spec.benchmark)
        if data is None or (names and spec.name not in names):
            continue
        labels = label_root(spec.benchmark, data)
        for board_name in spec.boards:
            board = get_benchmark(spec.benchmark).board(board_name)
            if board.label_subdir and not (labels / board.label_subdir).is_dir():
                skipped.append(f"{spec.name} on {board_name}: {labels / board.label_subdir} "
                               "does not exist")
                continue
            entry = out / spec.reproduction.entry(board_name)
            jobs.append(Job(spec, board_name, data, labels, entry))
    return jobs, skipped


def is_complete(entry: Path) -> bool:
    """Written to the end: write_entry writes run.json last."""
    if (entry / RECORDS_DIR).exists():
        return True
    try:
        json.loads((entry / RUN_RECORD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (entry / METADATA_FILE).is_file() and (
        (entry / PREDICTIONS_FILE).is_file() or any(entry.glob("predictions-*.ndjson.gz")))


def run_all(jobs: list[Job], template: RunOptions, report: Path,
            run_flags: list[tuple[str, list[str]]], ranks: Ranks
            ) -> tuple[list[Comparison], list[str]]:
    """Run, evaluate and compare every job; returns the table rows and the failures."""
    from baselines.runner import run_baseline

    rows: list[Comparison] = []
    failures: list[str] = []
    for number, job in enumerate(jobs, start=1):
        say = print if ranks.is_main else (lambda *a, **k: None)
        say(f"[{number}/{len(jobs)}] {job.spec.name} on {job.board} -> {job.entry}", flush=True)
        scores = report / "scores" / f"{job.key}.json"
        failure = None
        if is_complete(job.entry):
            say("  entry already written: not run again")
        else:
            if ranks.is_main:
                scores.unlink(missing_ok=True)  # scores of an earlier, unfinished entry
            # --weights applies to the baselines with a network; the others take none.
            weights = template.weights if _has_network(job.spec) else "published"
            options = replace(template, data=job.data, out=job.entry, board=job.board,
                              weights=weights)
            try:
                run_baseline(job.spec.name, options, argv=_run_argv(job, run_flags),
                             ranks=ranks)
            except (BaselineDataError, BaselineUsageError) as exc:
                if ranks.active:
                    # The other processes are at a barrier of this run: end them all (the
                    # message names the problem; the same command resumes once it is fixed).
                    raise
                failure = f"run failed: {exc}"
        if not ranks.is_main:
            continue
        evaluation = None
        if failure is None:
            evaluation, failure = _evaluate(job, scores)
        if failure:
            print(f"  {failure}", file=sys.stderr)
            failures.append(f"{job.spec.name} on {job.board}: {failure}")
        rows += compare(job.spec, job.board_id, job.key, evaluation,
                        smoke=_is_smoke(job.entry), failure=failure)
    return rows, failures


def _has_network(spec: BaselineSpec) -> bool:
    return not spec.weights.startswith("none")


def _run_argv(job: Job, run_flags: list[tuple[str, list[str]]]) -> list[str]:
    """The equivalent `leaderboard baseline run` command, recorded in the entry: run-all's
    run options (option name, its flag tokens) that apply to this baseline."""
    other = set(ANOMALY_ONLY if job.spec.benchmark == "forb" else FORB_ONLY)
    if not _has_network(job.spec):
        other.add("weights")
    flags = [token for dest, tokens in run_flags if dest not in other for token in tokens]
    board = [] if job.board == job.spec.boards[0] else ["--board", job.board]
    return ["baseline", "run", job.spec.name, "--data", str(job.data), "--out",
            str(job.entry), *board, *flags]


def _evaluate(job: Job, scores: Path) -> tuple[dict | None, str | None]:
    try:
        evaluation = json.loads(scores.read_text(encoding="utf-8"))
        print("  scores already in the report: not evaluated again")
        return evaluation, None
    except (OSError, ValueError):  # none yet, or cut short by a kill
        pass
    from evaluator.cli import main as leaderboard

    scores.parent.mkdir(parents=True, exist_ok=True)
    code = leaderboard(["evaluate", "--entry", str(job.entry), "--labels", str(job.labels),
                        "--no-record", "--json", str(scores)])
    if code != 0 or not scores.is_file():
        return None, (f"evaluation failed (leaderboard evaluate exit code {code}); run "
                      f"`leaderboard evaluate --entry {shlex.quote(str(job.entry))} --labels "
                      f"{shlex.quote(str(job.labels))}` to see why")
    return json.loads(scores.read_text(encoding="utf-8")), None


def _is_smoke(entry: Path) -> bool:
    try:
        record = json.loads((entry / RUN_RECORD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (record.get("weights", {}).get("kind") == "random"
            or bool(record.get("data", {}).get("synthetic")))


def finish(rows: list[Comparison], report: Path) -> str:
    """Print the table and write it (Markdown and JSON) into the report folder."""
    table = format_table(rows)
    markdown, data = write_table(rows, report)
    print("\n" + LEGEND + "\n\n" + table)
    print(f"wrote {markdown} and {data}")
    return table
