"""Small FORB-shaped metadata folders for tests, and the path of the real metadata."""

from __future__ import annotations

import json
import random
from pathlib import Path

from evaluator.forb.task import OBJECT_TYPES

REAL_METADATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "forb" / "metadata"
DIFFICULTIES = ("easy", "medium", "hard")


def write_tiny_forb(folder: Path, seed: int = 0, queries_per_type: int = 6,
                    images_per_type: int = 8, gt_marker: str = "") -> Path:
    """Write a FORB metadata folder in FORB's layout: per-type query and gt files, the full
    database list grouped by type, and the OOD list (database minus every ground-truth image).

    Logos get 1 to 6 ground-truth images like the real data. ``gt_marker`` is put into the
    names of ground-truth images, so tests can check it never leaks into any output.
    """
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    database: list[str] = []
    gt_images: set[str] = set()
    for object_type in OBJECT_TYPES:
        names = [f"{object_type}/database/d{i}.jpg" for i in range(images_per_type)]
        n_answers = min(images_per_type, 6) if object_type == "logos" else 3
        answers = [f"{object_type}/database/gt{gt_marker}{i}.jpg" for i in range(n_answers)]
        type_images = names[: images_per_type - n_answers] + answers
        rng.shuffle(type_images)
        start = len(database)
        database.extend(type_images)
        queries, gts = [], []
        for q in range(queries_per_type):
            query = f"{object_type}/query/q{q}.jpg"
            k = rng.randint(1, len(answers)) if object_type == "logos" else 1
            chosen = rng.sample(answers, k)
            gt_images.update(chosen)
            queries.append({"image": query, "image_url": "https://example.org/" + query})
            gts.append({
                "query_id": q + 1, "query_image": query,
                "groundtruth_ids": [type_images.index(c) + 1 for c in chosen],
                "groundtruth_images": chosen,
                "difficulty": DIFFICULTIES[rng.randrange(3)],
            })
        assert all(database[start + g["groundtruth_ids"][0] - 1] == g["groundtruth_images"][0]
                   for g in gts)
        _write_lines(folder / f"{object_type}_query.ndjson", queries)
        _write_lines(folder / f"{object_type}_gt.ndjson", gts)
    (folder / "all_database_images.txt").write_text("\n".join(database) + "\n")
    oods = [p for p in database if p not in gt_images]
    (folder / "oods_database_images.txt").write_text("\n".join(oods) + "\n")
    return folder


def _write_lines(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


ENTRY_METADATA = {
    "method": "Test method",
    "board": "forb",
    "authors": ["A. Person"],
    "description": "A method used in tests.",
    "paper_url": "https://example.org/paper",
    "code_url": None,
    "license": "MIT",
    "backbone": "none",
    "pretraining_data": "none",
    "extra_training_data": "none",
    "hardware": "CPU",
    "contact": "@someone",
    "date": "2026-11-23",
    "baseline": False,
}
