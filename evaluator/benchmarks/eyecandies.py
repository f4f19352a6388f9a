"""Eyecandies (Bonfiglioli et al., ACCV 2022), scored as the M3DM paper does (protocol v1)."""

from __future__ import annotations

from typing import Literal

from evaluator.anomaly.benchmark import (
    METRICS,
    MODALITIES,
    SHOTS,
    SLICES,
    AnomalyBenchmark,
    AnomalyEntryMetadata,
)
from evaluator.anomaly.datasets import EYECANDIES_CATEGORIES, EYECANDIES_LAYOUT
from evaluator.anomaly.predictions import FORMAT
from evaluator.registry import BenchmarkInfo, Board, register


class EyecandiesEntryMetadata(AnomalyEntryMetadata):
    board: Literal["eyecandies"] = "eyecandies"


@register
class Eyecandies(AnomalyBenchmark):
    info = BenchmarkInfo(
        name="eyecandies",
        title="Eyecandies",
        description="Synthetic candies rendered with RGB, depth and normals; 10 categories, "
                    "test_public with masks and test_private with hidden labels.",
        reference="https://eyecan-ai.github.io/eyecandies/",
        license="CC BY 4.0",
        boards=(Board("eyecandies", 1, "Eyecandies", "test_public (50 samples per category), "
                      "plus test_private wherever its masks are supplied; protocol v1."),),
        metrics=METRICS,
        primary_metric="I-AUROC",
        slices=SLICES,
        label_source="The dataset root as it ships: <Category>/test_public/data/<NN>_mask.png "
                     "(and test_private/ when its labels are supplied).",
        formats=(FORMAT,),
        headline_slice="mean",
        settings={"categories": EYECANDIES_CATEGORIES, "modalities": MODALITIES, "shots": SHOTS},
    )
    entry_metadata = EyecandiesEntryMetadata
    layout = EYECANDIES_LAYOUT
