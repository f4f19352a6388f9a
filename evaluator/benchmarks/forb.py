"""FORB: flat object retrieval (Wu et al., NeurIPS 2023 Datasets and Benchmarks)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from evaluator.entries import EntryMetadata
from evaluator.forb import labels as forb_labels
from evaluator.forb import predictions as forb_predictions
from evaluator.forb import scoring as forb_scoring
from evaluator.forb import task as forb_task
from evaluator.forb.models import ForbPredictionLine, ForbResultLine
from evaluator.registry import (
    Benchmark,
    BenchmarkInfo,
    Board,
    Metric,
    PredictionFormat,
    ScoreSheet,
    register,
)
from evaluator.validation.report import ValidationReport

_MAP = ("mean over the slice's queries of FORB's AP@{k}: the sum over the first {k} ranks of "
        "P@i at each correct candidate, divided by max(1, number of correct images, that sum)")
_TMAP = ("mAP@{k} averaged over 11 score thresholds taken from the top scores of all queries "
         "against the OOD database (false-positive rates 0, 0.1, ..., 1): does a score mean "
         "the same across queries?")


class ForbEntryMetadata(EntryMetadata):
    board: Literal["forb", "forb-subset"] = Field(
        "forb", description="'forb': the full FORB database; 'forb-subset': the reduced FORB "
                            "without LAION duplicates (metadata/FORB_subset).")


@register
class Forb(Benchmark):
    info = BenchmarkInfo(
        name="forb",
        title="FORB: Flat Object Retrieval Benchmark",
        description="Image retrieval of flat objects (cards, book covers, paintings, currency, "
                    "logos, packaged goods, movie posters) against a database with "
                    "distractors. Every query is also searched in an out-of-distribution "
                    "database without its answers, which calibrates score thresholds.",
        reference="https://arxiv.org/abs/2309.16249",
        license="CC BY-NC-SA 4.0 (metadata)",
        boards=(
            Board("forb", 1, "FORB", "13,901 queries against 54,435 database images "
                  "(49,850 in the OOD database)."),
            Board("forb-subset", 1, "FORB subset", "The reduced FORB without images "
                  "duplicated in LAION: 8,995 queries, 43,585 database images (40,648 OOD).",
                  label_subdir="FORB_subset"),
        ),
        metrics=tuple(
            [Metric(f"mAP@{k}", _MAP.format(k=k), percent=True, decimals=2) for k in (1, 5)]
            + [Metric(f"t-mAP@{k}", _TMAP.format(k=k), percent=True, decimals=2)
               for k in (1, 5)]
        ),
        primary_metric="mAP@1",
        slices="overall; by difficulty (easy, medium, hard); by object type; and by object "
               "type x difficulty, named '<object_type>/<difficulty>'.",
        label_source="A FORB metadata folder as FORB publishes it: <type>_query.ndjson, "
                     "<type>_gt.ndjson, all_database_images.txt and oods_database_images.txt; "
                     "the subset board reads its FORB_subset/ folder.",
        formats=(forb_predictions.CANONICAL_FORMAT, forb_predictions.RESULTS_FORMAT),
        settings={"object_types": forb_task.OBJECT_TYPES,
                  "difficulties": forb_labels.DIFFICULTIES},
    )
    entry_metadata = ForbEntryMetadata
    line_models = {
        forb_predictions.CANONICAL_FORMAT.name: ForbPredictionLine,
        forb_predictions.RESULTS_FORMAT.name: ForbResultLine,
    }

    def load_task(self, board: Board, directory: Path) -> forb_task.ForbTask:
        return forb_task.load_task(directory)

    def locate_predictions(self, path: Path):
        return forb_predictions.locate(path)

    def read_predictions(self, fmt: PredictionFormat, files, task,
                         report: ValidationReport):
        if fmt is forb_predictions.RESULTS_FORMAT:
            return forb_predictions.read_results_folder(files, task, report, self.limits)
        return forb_predictions.read_predictions_file(files, task, report, self.limits)

    def load_labels(self, board: Board, directory: Path, task) -> forb_labels.ForbLabels:
        return forb_labels.load_labels(directory, task)

    def labels_digest(self, labels: forb_labels.ForbLabels) -> str:
        return labels.digest

    def score(self, board: Board, task, predictions, labels) -> ScoreSheet:
        return forb_scoring.score(task, predictions, labels)

    def bootstrap(self, board: Board, task, predictions, labels):
        return forb_scoring.bootstrap_replicates(task, predictions, labels, board.id)

    def score_with_bootstrap(self, board: Board, task, predictions, labels):
        # The per-query AP values behind both are computed once.
        return forb_scoring.score_and_bootstrap(task, predictions, labels, board.id)

    def slice_names(self) -> list[str]:
        return forb_scoring.slice_names()
