"""The public part of an anomaly-detection board: which test samples exist, by category."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from evaluator.anomaly.datasets import DatasetLayout
from evaluator.registry import BoardDataError

MAP_SIZE = 224  # the protocol scores every map and mask at 224 x 224


@dataclass
class AnomalyTask:
    layout: DatasetLayout
    samples: list[str]
    category: np.ndarray  # index into categories, per sample
    categories: tuple[str, ...]
    mask_paths: list[Path]

    @property
    def n_samples(self) -> int:
        return len(self.samples)

    @cached_property
    def index(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.samples)}


def load_task(layout: DatasetLayout, root: Path) -> AnomalyTask:
    listed = layout.list_samples(root)
    if not listed:
        raise BoardDataError(f"no test masks found under {root} (expected e.g. "
                             f"{layout.categories[0]}/{layout.mask_globs[0]})")
    categories = tuple(c for c in layout.categories if any(v[0] == c for v in listed.values()))
    # Grouped by category (in the dataset's order), so each category is a contiguous run.
    samples = sorted(listed, key=lambda s: (categories.index(listed[s][0]), s))
    return AnomalyTask(
        layout=layout,
        samples=samples,
        category=np.asarray([categories.index(listed[s][0]) for s in samples], dtype=np.int16),
        categories=categories,
        mask_paths=[listed[s][1] for s in samples],
    )
