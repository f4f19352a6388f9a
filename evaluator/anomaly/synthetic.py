"""Synthetic anomaly-detection data for tests, benchmarks and demos: a label root laid out as
MVTec 3D-AD or Eyecandies ships its masks, and predictions that find the defects imperfectly.
The predictions use the masks, so they are never a leaderboard entry."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from evaluator.anomaly.datasets import DatasetLayout, MVTEC3D_LAYOUT
from evaluator.anomaly.maps import encode_map

DEFECTS = ("crack", "hole", "contamination")


def write_label_root(root: Path, layout: DatasetLayout, per_category: int, mask_size: int,
                     seed: int = 0, good_fraction: float = 0.2,
                     categories: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """Write mask PNGs; return sample id -> mask (bool, mask_size x mask_size)."""
    rng = np.random.default_rng(seed)
    samples: dict[str, np.ndarray] = {}
    for category in categories or layout.categories:
        for i in range(per_category):
            good = rng.random() < good_fraction
            mask = np.zeros((mask_size, mask_size), dtype=bool) if good else _blobs(rng, mask_size)
            if layout is MVTEC3D_LAYOUT:
                defect = "good" if good else DEFECTS[i % len(DEFECTS)]
                path = root / category / "test" / defect / "gt" / f"{i:03d}.png"
                sample = f"{category}/test/{defect}/{i:03d}"
            else:
                path = root / category / "test_public" / "data" / f"{i:02d}_mask.png"
                sample = f"{category}/test_public/{i:02d}"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask.astype(np.uint8) * 255).save(path)
            samples[sample] = mask
    return samples


def _blobs(rng, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    mask = np.zeros((size, size), dtype=bool)
    for _ in range(int(rng.integers(1, 4))):
        cy, cx = rng.integers(size // 8, size - size // 8, size=2)
        ry, rx = rng.integers(max(2, size // 40), max(3, size // 8), size=2)
        mask |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    return mask


def prediction_lines(samples: dict[str, np.ndarray], map_size: int = 224,
                     dtype: str = "float16", compression: str | None = None,
                     with_maps: bool = True, seed: int = 0):
    """Yield one prediction dict per sample: noisy maps that light up near the defects."""
    rng = np.random.default_rng(seed)
    for sample, mask in samples.items():
        small = _nearest(mask, map_size)
        amap = (rng.random((map_size, map_size)) * 0.6 + small * rng.uniform(0.2, 0.8))
        amap = amap.astype(dtype)
        line = {"sample": sample, "score": round(float(amap.max() + rng.normal(0, 0.1)), 6)}
        if with_maps:
            line["map"] = encode_map(amap, dtype, compression)
        yield line


def _nearest(mask: np.ndarray, size: int) -> np.ndarray:
    idx = (np.arange(size) * mask.shape[0] // size)
    return mask[np.ix_(idx, idx)]


def write_predictions(path: Path, lines) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = (lambda: io.TextIOWrapper(gzip.GzipFile(path, "wb", mtime=0), encoding="utf-8")) \
        if path.name.endswith(".gz") else (lambda: open(path, "w", encoding="utf-8"))
    with opener() as out:
        for line in lines:
            out.write(json.dumps(line) + "\n")
    return path
