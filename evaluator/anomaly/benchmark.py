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
    Metric("AUPRO@0.01", "Area under the per-region-overlap curve up to FPR 0.01, divided by "
           "0.01, with 99 thresholds sampled from the anomaly-free pixels, as CFM's code "
           "(calculate_au_pro, CVPR 2024) computes AUPRO@1 % (protocol v2)."),
    Metric("AUPRO@0.01-exact", "The same area on the exact PRO curve (protocol v2)."),
)
V1_METRICS = ("I-AUROC", "P-AUROC", "AUPRO@0.3", "AUPRO@0.3-exact")
V2_METRICS = V1_METRICS + ("AUPRO@0.01", "AUPRO@0.01-exact")
V2_CHANGELOG = ("Adds AUPRO@0.01 (the PRO curve at CFM's 99 sampled thresholds, integrated up to "
                "FPR 0.01 and divided by 0.01) and AUPRO@0.01-exact (the same on the exact "
                "curve), each with bootstrap intervals. v1's metrics are computed exactly as "
                "in v1; the primary metric stays I-AUROC.")
SLICES = "each category, and 'mean': the unweighted mean over categories."
MODALITIES = ("RGB", "3D", "RGB+3D")
SHOTS = ("full", "50", "10", "5")


def protocol_boards(name: str, title: str, v1_description: str) -> tuple[Board, Board]:
    """A dataset's board under protocol v1 (as M3DM scores it) and v2 (v1 plus AUPRO@0.01)."""
    return (
        Board(name, 1, title, v1_description, metrics=V1_METRICS),
        Board(name, 2, title, v1_description.replace("protocol v1", "protocol v2")
              + " Adds AUPRO@0.01 and AUPRO@0.01-exact.",
              changelog=V2_CHANGELOG, metrics=V2_METRICS),
    )


def anomaly_info(*, name: str, title: str, description: str, reference: str, license: str,
                 boards: tuple[Board, ...], label_source: str, layout: DatasetLayout,
                 dimensions: tuple[SettingDimension, ...] = ANOMALY_DIMENSIONS) -> BenchmarkInfo:
    """The BenchmarkInfo of an anomaly-detection dataset: what differs is passed in, what
    the protocols fix (metrics, slices, primary metric, format, settings) is filled in."""
    return BenchmarkInfo(
        name=name, title=title, description=description, reference=reference,
        license=license, boards=boards, metrics=METRICS, primary_metric="I-AUROC",
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
        return ad_scoring.score(task, predictions, labels, pro=self._pro(board))

    def bootstrap(self, board, task, predictions, labels):
        return ad_scoring.bootstrap_replicates(task, predictions, labels, board.id,
                                               pro=self._pro(board))

    def score_with_bootstrap(self, board, task, predictions, labels):
        # One pass: the replicates share the score's per-key counts and regions.
        return ad_scoring.score_and_bootstrap(task, predictions, labels, board.id,
                                              pro=self._pro(board))

    def _pro(self, board) -> tuple[ad_scoring.ProMetric, ...]:
        return ad_scoring.pro_metrics_of(m.name for m in self.metrics_of(board))

    def slice_names(self) -> list[str]:
        return [*self.layout.categories, "mean"]
