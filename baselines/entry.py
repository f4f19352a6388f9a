"""Writing a baseline's output as an ordinary leaderboard entry: metadata.json, the
predictions in the recommended format, and the run record.

FORB baselines return ranked lists, written as one ``predictions.ndjson.gz``; anomaly
baselines return one finished prediction file per category (kept in the cache so a run
resumes), copied in as ``predictions-<category>.ndjson.gz``, each well under the size limit."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

from baselines.catalogue import BaselineSpec
from baselines.devices import hardware_text
from baselines.errors import BaselineUsageError
from baselines.run_record import RunRecord
from evaluator.entries import METADATA_FILE, RECORDS_DIR
from evaluator.forb.writers import RankedLists, write_predictions_file

PREDICTIONS_FILE = "predictions.ndjson.gz"
SMOKE_TEST_TAG = "SMOKE TEST, NOT A RESULT"


class EntryExistsError(BaselineUsageError):
    pass


def check_output(out: Path) -> None:
    """Refuse to write over an evaluated entry: its record pins the predictions' sha256."""
    if (out / RECORDS_DIR).exists():
        raise EntryExistsError(f"{out} already holds an evaluated entry ({RECORDS_DIR}/); "
                               "entries are immutable, write the run to a new --out folder")
    if out.exists() and not out.is_dir():
        raise EntryExistsError(f"{out} exists and is not a folder")


def smoke_test_reasons(weights_kind: str, synthetic: bool) -> list[str]:
    reasons = []
    if weights_kind == "random":
        reasons.append("random weights")
    if synthetic:
        reasons.append("generated data")
    return reasons


def entry_metadata(spec: BaselineSpec, board: str, record: RunRecord, synthetic: bool) -> dict:
    from evaluator.published import load_published

    papers = {p.source.key: p.source.title for p in load_published()}
    reproduces = (f"reproducing the \"{spec.published_label}\" row(s) of "
                  f"\"{papers.get(spec.published_source, spec.published_source)}\""
                  if spec.published else "with no published row to compare with")
    reasons = smoke_test_reasons(record.weights.get("kind", "none"), synthetic)
    method = spec.method + (f" [{SMOKE_TEST_TAG}: {', '.join(reasons)}]" if reasons else "")
    warning = (f"**{SMOKE_TEST_TAG}.** This run used {' and '.join(reasons)}: it only shows "
               "that the pipeline runs, and its scores mean nothing. " if reasons else "")
    weights = record.weights.get("id", "none")
    return {
        "method": method,
        "board": board,
        "authors": ["cv-leaderboards maintainers (bundled baseline)"],
        "description": (f"{warning}Bundled baseline `{spec.name}`, {reproduces}. "
                        f"{spec.notes}{_choices(record)} Weights: {weights}. Settings and "
                        "timings are in run.json."),
        "paper_url": spec.paper_url,
        "code_url": spec.code_url,
        "license": "MIT",
        "backbone": spec.backbone,
        "pretraining_data": spec.pretraining_data,
        "extra_training_data": "none",
        "hardware": hardware_text(record.device),
        "contact": "leaderboard maintainers (open an issue)",
        "date": dt.date.today().isoformat(),
        "baseline": True,
        "command": record.command,
    } | ({"modality": spec.modality, "shots": "full"} if spec.benchmark != "forb" else {})


class RankedPredictions:
    """A FORB baseline's ranked lists, written as one predictions.ndjson.gz."""

    def __init__(self, lists: RankedLists, task):
        self.lists, self.task = lists, task

    def write(self, out: Path, record: RunRecord) -> None:
        with record.stage("write predictions", self.task.n_queries * 2, "lines"):
            write_predictions_file(self.lists, self.task, out / PREDICTIONS_FILE)


class CategoryFiles:
    """An anomaly baseline's finished per-category files (kept in the cache so that a run
    resumes), copied in as predictions-<category>.ndjson.gz: each is far below the 100 MB
    limit, where one file for a whole dataset would not be."""

    def __init__(self, paths: list[Path]):
        self.paths = paths

    def write(self, out: Path, record: RunRecord) -> None:
        with record.stage("write predictions", len(self.paths), "files"):
            for path in self.paths:
                shutil.copyfile(path, out / f"predictions-{path.name}")


def _choices(record: RunRecord) -> str:
    """The published-or-corrected choices this run made, in words (anomaly baselines)."""
    chosen = record.settings.get("patchcore")
    if not chosen:
        return ""
    words = {"preprocess": "point-cloud preprocessing", "blur": "blur",
             "eyecandies_light": "Eyecandies RGB", "eyecandies_background":
             "Eyecandies background", "max_train_samples": "training scans per category at most"}
    shown = [f"{label} {_word(chosen[key])}" for key, label in words.items()
             if chosen.get(key) is not None]
    return " This run: " + "; ".join(shown) + "." if shown else ""


def _word(value) -> str:
    return "on" if value is True else "off" if value is False else str(value)


def write_entry(out: Path, spec: BaselineSpec, board: str, synthetic: bool, predictions,
                record: RunRecord) -> Path:
    """``predictions``: RankedPredictions or CategoryFiles."""
    out.mkdir(parents=True, exist_ok=True)
    predictions.write(out, record)
    metadata = entry_metadata(spec, board, record, synthetic)
    (out / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    record.write(out)
    return out
