"""MVTec 3D-AD (Bergmann et al., VISAPP 2022), scored as the M3DM paper does (protocol v1)
and with AUPRO@0.01 added (protocol v2)."""

from __future__ import annotations

from typing import Literal

from evaluator.anomaly.benchmark import (
    AnomalyBenchmark,
    AnomalyEntryMetadata,
    anomaly_info,
    protocol_boards,
)
from evaluator.anomaly.datasets import MVTEC3D_LAYOUT
from evaluator.registry import register


class MvtecEntryMetadata(AnomalyEntryMetadata):
    board: Literal["mvtec3d-ad"] = "mvtec3d-ad"


@register
class Mvtec3dAd(AnomalyBenchmark):
    info = anomaly_info(
        name="mvtec3d-ad",
        title="MVTec 3D-AD",
        description="Unsupervised anomaly detection and segmentation on 10 categories of "
                    "industrial objects scanned in RGB and 3D (1,197 test scans, 249 good).",
        reference="https://www.mvtec.com/company/research/datasets/mvtec-3d-ad",
        license="CC BY-NC-SA 4.0",
        boards=protocol_boards(
            "mvtec3d-ad", "MVTec 3D-AD", "Test set, protocol v1: masks resized to 224 x 224 "
            "with nearest neighbour, maps with bilinear interpolation."),
        label_source="The dataset root as it ships (only <category>/test/<defect>/gt/<id>.png "
                     "masks are read, so a masks-only copy works).",
        layout=MVTEC3D_LAYOUT,
    )
    entry_metadata = MvtecEntryMetadata
    layout = MVTEC3D_LAYOUT
