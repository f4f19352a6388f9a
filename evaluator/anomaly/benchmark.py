"""What MVTec 3D-AD and Eyecandies share: entry metadata, metrics, format and the five steps.
Each dataset's module only declares its facts and layout."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from evaluator.anomaly import labels as ad_labels
from evaluator.anomaly import predictions as ad_predictions
from evaluator.anomaly import scoring as ad_scoring
from evaluator.anomaly import task as ad_task
from evaluator.anomaly.datasets import DatasetLayout
from evaluator.anomaly.models import AnomalyPredictionLine
from evaluator.entries import EntryMetadata
from evaluator.registry import Benchmark, BenchmarkInfo, Board, Metric, ScoreSheet
from evaluator.settings import ANOMALY_DIMENSIONS, SettingDimension

METRICS = (
    Metric("I-AUROC", "Image-level ROC AUC of the submitted image scores (ties as "
           "scikit-learn's roc_auc_score handles them)."),
    Metric("P-AUROC", "Pixel-level ROC AUC over every pixel of every test sample of the "
           "category, at 224 x 224."),
    Metric("AUPRO@0.3", "Area under the per-region-overlap curve up to FPR 0.3, divided by "
           "0.3, with 100 thresholds sampled from the anomaly-free pixels (MVTec 3D-AD's code, "
           "the published protocol)."),
    Metric("AUPRO@0.3-exact", "The same area on the exact PRO curve (every distinct score a "
           "threshold, as MVTec AD's code computes it)."),
)
SLICES = "each category, and 'mean': the unweighted mean over categories."
MODALITIES = ("RGB", "3D", "RGB+3D")
SHOTS = ("full", "50", "10", "5")


def anomaly_info(*, name: str, title: str, description: str, reference: str, license: str,
                 board: Board, label_source: str, layout: DatasetLayout,
                 dimensions: tuple[SettingDimension, ...] = ANOMALY_DIMENSIONS) -> BenchmarkInfo:
    """The BenchmarkInfo of an anomaly-detection dataset: what differs is passed in, what
    protocol v1 fixes (metrics, slices, primary metric, format, settings) is filled in."""
    return BenchmarkInfo(
        name=name, title=title, description=description, reference=reference,
        license=license, boards=(board,), metrics=METRICS, primary_metric="I-AUROC",
        slices=SLICES, label_source=label_source, formats=(ad_predictions.FORMAT,),
        headline_slice="mean",
        settings={"categories": layout.categories, "modalities": MODALITIES, "shots": SHOTS,
                  "dimensions": dimensions},
    )


class AnomalyEntryMetadata(EntryMetadata):
    modality: Literal["RGB", "3D", "RGB+3D"] = Field(
        description="Input modality the method uses: 'RGB', '3D' or 'RGB+3D'.")
    shots: Literal["full", "50", "10", "5"] = Field(
        "full", description="Training samples per category: 'full' or a few-shot count.")


class AnomalyBenchmark(Benchmark):
    layout: ClassVar[DatasetLayout]
    line_models = {ad_predictions.FORMAT.name: AnomalyPredictionLine}
    limits = ad_predictions.LIMITS
    # Masks are decoded while the predictions are read (PIL and NumPy leave the GIL to the
    # reader); evaluation uses them only once the predictions passed.
    prefetch_labels = True

    def load_task(self, board, directory: Path) -> ad_task.AnomalyTask:
        return ad_task.load_task(self.layout, directory)

    def locate_predictions(self, path: Path):
        return ad_predictions.locate(path)

    def read_predictions(self, fmt, files, task, report):
        return ad_predictions.read_predictions(files, task, report, self.limits)

    def load_labels(self, board, directory: Path, task) -> ad_labels.AnomalyLabels:
        return ad_labels.load_labels(task)

    def labels_digest(self, labels: ad_labels.AnomalyLabels) -> str:
        return labels.digest

    def score(self, board, task, predictions, labels) -> ScoreSheet:
        return ad_scoring.score(task, predictions, labels)

    def bootstrap(self, board, task, predictions, labels):
        return ad_scoring.bootstrap_replicates(task, predictions, labels, board.id)

    def score_with_bootstrap(self, board, task, predictions, labels):
        # One pass: the replicates share the score's per-key counts and regions.
        return ad_scoring.score_and_bootstrap(task, predictions, labels, board.id)

    def slice_names(self) -> list[str]:
        return [*self.layout.categories, "mean"]
