"""FORB's hidden part: each query's ground-truth database images and its difficulty.

Errors name the file and line but never the label values, so a broken label bundle cannot leak
ground truth into CI logs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluator.forb.task import OBJECT_TYPES, ForbTask, TaskError, json_records

DIFFICULTIES = ("easy", "medium", "hard")


@dataclass
class ForbLabels:
    """Ground truth as flat arrays: pair i says database image ``gt_ids[i]`` is a correct
    answer for query ``gt_query[i]``. ``difficulty[q]`` indexes DIFFICULTIES."""

    gt_query: np.ndarray
    gt_ids: np.ndarray
    n_gt: np.ndarray
    difficulty: np.ndarray
    digest: str


def load_labels(directory: Path, task: ForbTask) -> ForbLabels:
    """Read ``<type>_gt.ndjson`` for every type, checked against the task's query order.

    A ground-truth image's global id is its line in all_database_images.txt; FORB's own
    per-type ``groundtruth_ids`` (offset by the sizes of the types before) must agree.
    """
    database_index = task.database_index["all"]
    gt_query: list[int] = []
    gt_ids: list[int] = []
    difficulty = np.full(task.n_queries, -1, dtype=np.int8)
    digest = hashlib.sha256()
    digest.update(b"forb-labels/1\n")
    type_offset = _type_offsets(task)
    for object_type in OBJECT_TYPES:
        path = directory / f"{object_type}_gt.ndjson"
        start = task.query_start[object_type]
        count = 0
        for line_no, record in json_records(path, "the label source"):
            where = f"{path.name}:{line_no}"
            if count >= task.query_count[object_type]:
                raise TaskError(f"{where}: more ground-truth lines than queries")
            query = start + count
            if record.get("query_image") != task.query_paths[query]:
                raise TaskError(f"{where}: query_image does not match line {count + 1} of "
                                f"{object_type}_query.ndjson")
            level = record.get("difficulty")
            if level not in DIFFICULTIES:
                raise TaskError(f"{where}: difficulty must be one of {', '.join(DIFFICULTIES)}")
            images = record.get("groundtruth_images")
            ids = record.get("groundtruth_ids")
            if not isinstance(images, list) or not isinstance(ids, list) or len(images) != len(ids):
                raise TaskError(f"{where}: groundtruth_images and groundtruth_ids must be lists "
                                "of the same length")
            for image, type_id in zip(images, ids):
                global_id = database_index.get(image) if isinstance(image, str) else None
                if global_id is None:
                    raise TaskError(f"{where}: a ground-truth image is not in "
                                    "all_database_images.txt")
                if type_id != global_id - type_offset[object_type] + 1:
                    raise TaskError(f"{where}: groundtruth_ids disagree with the positions of "
                                    "groundtruth_images in all_database_images.txt")
                gt_query.append(query)
                gt_ids.append(global_id)
            difficulty[query] = DIFFICULTIES.index(level)
            digest.update(json.dumps([task.query_paths[query], level, sorted(images)]).encode())
            digest.update(b"\n")
            count += 1
        if count != task.query_count[object_type]:
            raise TaskError(f"{path.name}: {count} lines for {task.query_count[object_type]} "
                            "queries")
    gt_query_arr = np.asarray(gt_query, dtype=np.int64)
    return ForbLabels(
        gt_query=gt_query_arr,
        gt_ids=np.asarray(gt_ids, dtype=np.int64),
        n_gt=np.bincount(gt_query_arr, minlength=task.n_queries),
        difficulty=difficulty,
        digest="sha256:" + digest.hexdigest(),
    )


def _type_offsets(task: ForbTask) -> dict[str, int]:
    """Where each type's images start in all_database_images.txt (FORB's ID_OFFSET)."""
    offsets: dict[str, int] = {}
    for i, path in enumerate(task.databases["all"]):
        offsets.setdefault(path.split("/", 1)[0], i)
    return {t: offsets.get(t, 0) for t in OBJECT_TYPES}
