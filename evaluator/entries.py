"""Leaderboard entries: a folder ``submissions/<benchmark>/<entry-id>/`` holding ``metadata.json``
and predictions. This module knows the metadata model and the folder rules; what predictions
look like is each benchmark's business."""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from evaluator.validation.limits import DEFAULT_LIMITS, Limits, human_size
from evaluator.validation.parsing import parse_json_line
from evaluator.validation.report import ValidationReport

METADATA_FILE = "metadata.json"
RECORDS_DIR = "records"
README_FILE = "README.md"
RUN_RECORD_FILE = "run.json"   # written by the bundled baselines (baselines/run_record.py)
ENTRY_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,79}$")
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_METADATA_BYTES = 64 * 1024

Url = Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$", max_length=500)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]


class EntryMetadata(BaseModel):
    """What every entry says about itself. Benchmarks subclass it to add their own fields
    (and to restrict ``board`` to their board names)."""

    model_config = ConfigDict(extra="forbid", strict=True, title="Entry metadata")

    method: Text = Field(description="Method name as it should appear on the leaderboard.")
    board: str = Field(description="Board the predictions are for (see `leaderboard boards`).")
    authors: list[Text] = Field(min_length=1, max_length=50,
                                description="Authors of the method or of this submission.")
    description: Annotated[str, StringConstraints(min_length=1, max_length=4000)] = Field(
        description="What the method does, in a few sentences (Markdown allowed).")
    paper_url: Url | None = Field(None, description="Paper describing the method.")
    code_url: Url | None = Field(None, description="Code that produced the predictions.")
    license: Text = Field(description="Licence of the predictions and code (SPDX id, e.g. MIT).")
    backbone: Text = Field(description="Backbone network, e.g. 'ViT-B/16'; 'none' if none.")
    pretraining_data: Text = Field(
        description="Data the backbone was pre-trained on, e.g. 'LAION-2B'; 'none' if none.")
    extra_training_data: Text = Field(
        description="Data used beyond the benchmark's own training split; 'none' if none.")
    hardware: Text = Field(description="Hardware the predictions were computed on.")
    contact: Text = Field(description="E-mail address or GitHub handle of a maintainer.")
    date: dt.date = Field(description="Date of the submission (YYYY-MM-DD).")
    baseline: bool = Field(False, description="True for the baselines bundled in baselines/.")
    command: Annotated[str, StringConstraints(min_length=1, max_length=2000)] | None = Field(
        None, description="The command that produced the predictions, e.g. `leaderboard "
                          "baseline run forb-bow --data FORB_ROOT --out ENTRY`.")
    revises: Annotated[str, StringConstraints(pattern=ENTRY_ID.pattern)] | None = Field(
        None, description="Entry id of an earlier entry of the same benchmark that this one "
                          "revises (merged entries are immutable; a revision is a new entry).")


def find_entries(path: Path) -> list[Path]:
    """Entry folders at or below ``path`` (an entry, a benchmark folder or ``submissions/``)."""
    if (path / METADATA_FILE).is_file() or not path.is_dir():
        return [path]
    found = []
    for child in sorted(path.iterdir()):
        if child.is_dir() and not child.is_symlink() and not child.name.startswith("."):
            if (child / METADATA_FILE).is_file():
                found.append(child)
            else:
                found.extend(e for e in find_entries(child) if e != child)
    return found


def read_metadata(entry_dir: Path, model: type[EntryMetadata],
                  report: ValidationReport) -> EntryMetadata | None:
    """Read and validate ``metadata.json`` against the benchmark's metadata model."""
    path = entry_dir / METADATA_FILE
    if path.is_symlink():
        return None  # check_entry_tree reports symbolic links
    if not path.is_file():
        report.error(METADATA_FILE, None, "missing: every entry needs a metadata.json")
        return None
    if path.stat().st_size > MAX_METADATA_BYTES:
        report.error(METADATA_FILE, None, f"larger than {human_size(MAX_METADATA_BYTES)}")
        return None
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        report.error(METADATA_FILE, None, f"not valid UTF-8 (byte offset {exc.start})")
        return None
    if not text.lstrip().startswith("{"):
        report.error(METADATA_FILE, None, "must hold one JSON object ({\"method\": ..., ...})")
        return None
    return parse_json_line(model, text, METADATA_FILE, None, report)


def check_entry_tree(entry_dir: Path, allowed: set[str], report: ValidationReport,
                     limits: Limits = DEFAULT_LIMITS) -> None:
    """Enforce the folder rules: no symlinks or special files, safe names, size caps, and no
    files other than metadata, README, records and the prediction files in ``allowed`` (paths
    relative to the entry, with '/' separators)."""
    if entry_dir.is_symlink():
        report.error(entry_dir.name, None, "the entry folder is a symbolic link")
        return
    if not ENTRY_ID.match(entry_dir.name):
        report.error(entry_dir.name, None, "entry folder names use lower-case letters, digits, "
                     "'.', '_' and '-' (at most 80 characters), starting with a letter or digit")
    count = 0
    total = 0
    for root, dirs, files in os.walk(entry_dir, followlinks=False):
        rel_root = Path(root).relative_to(entry_dir)
        for name in sorted(dirs + files):
            rel = (rel_root / name).as_posix()
            full = Path(root) / name
            if full.is_symlink():
                report.error(rel, None, "symbolic links are not allowed in an entry")
                continue
            if not SAFE_NAME.match(name):
                report.error(rel, None, "file and folder names use letters, digits, '.', '_' "
                             "and '-' only")
                continue
            if name in files:
                if not full.is_file():
                    report.error(rel, None, "not a regular file")
                    continue
                count += 1
                total += full.stat().st_size
                if not _is_allowed(rel, allowed):
                    report.error(rel, None, "unexpected file: an entry holds metadata.json, "
                                 "README.md, run.json and its prediction files only")
        # Never descend into symlinked or badly named folders.
        dirs[:] = [d for d in dirs if not (Path(root) / d).is_symlink() and SAFE_NAME.match(d)]
    if count > limits.max_entry_files:
        report.error(".", None, f"{count} files, more than the {limits.max_entry_files} allowed")
    if total > limits.max_entry_bytes:
        report.error(".", None, f"{human_size(total)} in all, over the "
                     f"{human_size(limits.max_entry_bytes)} an entry may hold")


def _is_allowed(rel: str, allowed: set[str]) -> bool:
    if rel in (METADATA_FILE, README_FILE, RUN_RECORD_FILE) or rel in allowed:
        return True
    # Evaluation records are written by the evaluator as records/<board-id>.json.
    parts = rel.split("/")
    return len(parts) == 2 and parts[0] == RECORDS_DIR and parts[1].endswith(".json")
