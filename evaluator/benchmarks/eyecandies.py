"""Eyecandies (Bonfiglioli et al., ACCV 2022), scored as the M3DM paper does (protocol v1)
and with AUPRO@0.01 added (protocol v2)."""

from __future__ import annotations

from typing import Literal

from evaluator.anomaly.benchmark import (
    AnomalyBenchmark,
    AnomalyEntryMetadata,
    anomaly_info,
    protocol_boards,
)
from evaluator.anomaly.datasets import EYECANDIES_LAYOUT
from evaluator.registry import register
from evaluator.settings import EYECANDIES_DIMENSIONS


class EyecandiesEntryMetadata(AnomalyEntryMetadata):
    board: Literal["eyecandies"] = "eyecandies"


@register
class Eyecandies(AnomalyBenchmark):
    info = anomaly_info(
        name="eyecandies",
        title="Eyecandies",
        description="Synthetic candies rendered with RGB, depth and normals; 10 categories, "
                    "test_public with masks and test_private with hidden labels.",
        reference="https://eyecan-ai.github.io/eyecandies/",
        license="CC BY 4.0",
        boards=protocol_boards(
            "eyecandies", "Eyecandies", "test_public (50 samples per category), plus "
            "test_private wherever its masks are supplied; protocol v1."),
        label_source="The dataset root as it ships: <Category>/test_public/data/<NN>_mask.png "
                     "(and test_private/ when its labels are supplied).",
        layout=EYECANDIES_LAYOUT,
        dimensions=EYECANDIES_DIMENSIONS,
    )
    entry_metadata = EyecandiesEntryMetadata
    layout = EYECANDIES_LAYOUT
