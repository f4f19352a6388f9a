"""Writing a baseline's output as an ordinary leaderboard entry: metadata.json, the
predictions in the recommended format, and the run record."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from baselines.catalogue import BaselineSpec
from baselines.devices import hardware_text
from baselines.errors import BaselineUsageError
from baselines.forb_data import ForbImages
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
    reasons = smoke_test_reasons(record.weights.get("kind", "none"), synthetic)
    method = spec.method + (f" [{SMOKE_TEST_TAG}: {', '.join(reasons)}]" if reasons else "")
    warning = (f"**{SMOKE_TEST_TAG}.** This run used {' and '.join(reasons)}: it only shows "
               "that the pipeline runs, and its scores mean nothing. " if reasons else "")
    weights = record.weights.get("id", "none")
    return {
        "method": method,
        "board": board,
        "authors": ["cv-leaderboards maintainers (bundled baseline)"],
        "description": (f"{warning}Bundled baseline `{spec.name}`, reproducing the "
                        f"\"{spec.published_method}\" row of the FORB paper. {spec.notes} "
                        f"Weights: {weights}. Settings and timings are in run.json."),
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
    }


def write_entry(out: Path, spec: BaselineSpec, images: ForbImages, lists: RankedLists,
                record: RunRecord) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    with record.stage("write predictions", images.task.n_queries * 2, "lines"):
        write_predictions_file(lists, images.task, out / PREDICTIONS_FILE)
    metadata = entry_metadata(spec, images.board, record, images.synthetic)
    (out / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    record.write(out)
    return out
