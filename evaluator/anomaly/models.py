"""The model of one anomaly-detection prediction line: the validator parses with it and the
published JSON Schema is generated from it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from evaluator.anomaly.maps import MAX_SIDE

Side = Annotated[int, Field(ge=1, le=MAX_SIDE)]


class AnomalyMap(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", title="Anomaly map")

    shape: tuple[Side, Side] = Field(description="[height, width], each 1 to 1024; resized to "
                                     "224 x 224 with half-pixel-centre bilinear interpolation.")
    dtype: Literal["float16", "float32"] = Field(description="Element type of the array.")
    data: str = Field(description="base64 of the C-order little-endian array (of its zlib "
                      "stream when compression is 'zlib').")
    compression: Literal["zlib"] | None = Field(None, description="'zlib' if data is the "
                                                "base64 of a zlib stream.")


class AnomalyPredictionLine(BaseModel):
    """One test sample: the method's image-level anomaly score and, optionally, its map."""

    model_config = ConfigDict(strict=True, extra="forbid", title="Anomaly prediction line")

    sample: Annotated[str, StringConstraints(min_length=1, max_length=200)] = Field(
        description="Test sample id: '<category>/test/<defect>/<id>' (MVTec 3D-AD) or "
                    "'<Category>/test_public/<NN>' (Eyecandies).")
    score: Annotated[float, Field(allow_inf_nan=False)] = Field(
        description="Image-level anomaly score (higher = more anomalous).")
    map: AnomalyMap | None = Field(None, description="Pixel anomaly map; omit for "
                                   "detection-only methods (then only I-AUROC is scored).")
