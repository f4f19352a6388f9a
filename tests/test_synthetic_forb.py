"""The generated FORB-shaped image datasets (baselines.forb.synthetic): FORB's exact layout, read
by the project's own loaders and evaluator, and pictures on which local features really work."""

from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest
from PIL import Image

from baselines.forb.data import load_forb
from baselines.forb.random_ranking import metadata as random_metadata
from baselines.forb.random_ranking import rank_randomly
from baselines.forb.synthetic import make_forb_dataset
from evaluator.cli import main
from evaluator.forb.labels import load_labels
from evaluator.forb.task import OBJECT_TYPES, load_task
from evaluator.forb.writers import write_predictions_file
from tests.forb_data import REAL_METADATA

NAME = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\.jpg$")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic") / "forb"
    start = time.perf_counter()
    made = make_forb_dataset(root)
    seconds = time.perf_counter() - start
    print(f"\ndefault dataset generated in {seconds:.2f} s")
    assert seconds < 10  # about 0.4 s on one core; the bound only catches gross regressions
    return made


def read_ndjson(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_list(path):
    return [line for line in path.read_text().splitlines() if line]


def test_metadata_is_forbs_layout_and_loads(dataset):
    meta = dataset.metadata
    task = load_task(meta)
    labels = load_labels(meta, task)  # also checks groundtruth_ids against the database lists
    assert task.query_count == {t: 2 for t in OBJECT_TYPES}
    assert not (meta / "movie_posters_database.ndjson").exists()

    # all = the per-type database files concatenated (movie posters: whatever remains).
    all_db = read_list(meta / "all_database_images.txt")
    assert task.databases["all"] == all_db
    listed = [r["image"] for t in OBJECT_TYPES[:-1]
              for r in read_ndjson(meta / f"{t}_database.ndjson")]
    assert all_db[:len(listed)] == listed
    assert all(p.startswith("movie_posters/database/") for p in all_db[len(listed):])
    # 16 query objects, one with a second (variant) image, and 8 distractors, one per type.
    assert len(all_db) == 16 + 1 + 8
    assert {p.split("/")[0] for p in all_db} == set(OBJECT_TYPES)

    gt = {p for t in OBJECT_TYPES for r in read_ndjson(meta / f"{t}_gt.ndjson")
          for p in r["groundtruth_images"]}
    assert len(gt) == 17 and set(all_db[i] for i in labels.gt_ids) == gt
    assert read_list(meta / "oods_database_images.txt") == [p for p in all_db if p not in gt]
    assert len(task.databases["oods"]) == 8
    assert read_list(meta / "images_for_building_codebook.txt") == all_db

    for t in OBJECT_TYPES:
        queries = read_ndjson(meta / f"{t}_query.ndjson")
        gts = read_ndjson(meta / f"{t}_gt.ndjson")
        database = [p for p in all_db if p.startswith(f"{t}/")]
        assert [r["query_image"] for r in gts] == [r["image"] for r in queries]
        for i, record in enumerate(gts, start=1):
            assert record["query_id"] == i
            assert record["difficulty"] in ("easy", "medium", "hard")
            assert len(record["groundtruth_urls"]) == len(record["groundtruth_images"])
            assert [database[j - 1] for j in record["groundtruth_ids"]] == \
                record["groundtruth_images"]
    assert {d for t in OBJECT_TYPES for d in
            (r["difficulty"] for r in read_ndjson(meta / f"{t}_gt.ndjson"))} == \
        {"easy", "medium", "hard"}

    # Same keys as the published files, where those are at hand.
    if REAL_METADATA.is_dir():
        for suffix in ("query", "database", "gt"):
            real = json.loads((REAL_METADATA / f"logos_{suffix}.ndjson").open().readline())
            ours = read_ndjson(meta / f"logos_{suffix}.ndjson")[0]
            assert list(ours) == list(real), suffix


def test_images_exist_open_and_are_marked_synthetic(dataset):
    images = load_forb(dataset.root)  # the baselines' own loader
    assert images.synthetic
    paths = images.database_paths + images.query_paths
    images.check_files(paths)
    for relative in paths:
        assert NAME.match(relative.rsplit("/", 1)[1]), relative
        with Image.open(dataset.root / relative) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            if "/database/" in relative:
                assert max(image.size) == 192
                assert 0.74 <= image.width / image.height <= 1.34


def test_special_queries(dataset):
    meta = dataset.metadata
    gts = {r["query_image"]: r for t in OBJECT_TYPES for r in read_ndjson(meta / f"{t}_gt.ndjson")}
    assert len(dataset.two_answer_queries) == 1
    for query in dataset.two_answer_queries:
        assert query.startswith("logos/") and len(gts[query]["groundtruth_images"]) == 2
    assert sum(len(r["groundtruth_images"]) == 2 for r in gts.values()) == 1
    assert [q.split("/")[0] for q in dataset.exact_copy_queries] == ["animated_cards"]
    for query in dataset.exact_copy_queries:
        record = gts[query]
        assert record["difficulty"] == "easy"
        assert (dataset.root / query).read_bytes() == \
            (dataset.root / record["groundtruth_images"][0]).read_bytes()
    # No other query is a byte copy of any database image.
    database = {(dataset.root / p).read_bytes()
                for p in read_list(meta / "all_database_images.txt")}
    copies = [q for q in gts if (dataset.root / q).read_bytes() in database]
    assert copies == dataset.exact_copy_queries


def test_same_arguments_same_bytes(dataset, tmp_path):
    again = make_forb_dataset(tmp_path / "again")
    files = sorted(p.relative_to(dataset.root) for p in dataset.root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again.root) for p in again.root.rglob("*")
                           if p.is_file())
    for relative in files:
        assert (dataset.root / relative).read_bytes() == (again.root / relative).read_bytes()
    assert again.exact_copy_queries == dataset.exact_copy_queries
    other = make_forb_dataset(tmp_path / "other", seed=1, queries_per_type=1, distractors=0)
    assert not set(read_list(other.metadata / "all_database_images.txt")) & \
        set(read_list(dataset.metadata / "all_database_images.txt"))


def test_options(tmp_path):
    made = make_forb_dataset(tmp_path / "a", queries_per_type={"bookcovers": 3, "currency": 1},
                             distractors=3, image_size=96, exact_copies=2,
                             two_answer_queries=1, codebook_images=4)
    task = load_task(made.metadata)
    load_labels(made.metadata, task)
    assert task.query_count == {t: {"bookcovers": 3, "currency": 1}.get(t, 0)
                                for t in OBJECT_TYPES}
    for t in ("animated_cards", "logos", "movie_posters"):
        assert (made.metadata / f"{t}_query.ndjson").read_text() == ""
        assert (made.metadata / f"{t}_gt.ndjson").read_text() == ""
    assert made.two_answer_queries == []  # logos has no queries
    assert [q.split("/")[0] for q in made.exact_copy_queries] == ["bookcovers", "currency"]
    all_db = task.databases["all"]
    # Distractors go to the first types: animated_cards, photorealistic_cards, bookcovers.
    assert [p.split("/")[0] for p in task.databases["oods"]] == list(OBJECT_TYPES[:3])
    assert len(all_db) == 4 + 3
    codebook = read_list(made.metadata / "images_for_building_codebook.txt")
    assert len(codebook) == 4 and codebook == [p for p in all_db if p in codebook]
    with Image.open(made.root / all_db[0]) as image:
        assert max(image.size) == 96
    with pytest.raises(ValueError):
        make_forb_dataset(tmp_path / "b", queries_per_type={"cards": 1})


@pytest.mark.parametrize("queries", [2, {"animated_cards": 1, "logos": 1}],
                         ids=["every-type", "zero-query-types"])
def test_chance_entry_through_the_evaluator_cli(queries, tmp_path, capsys):
    made = make_forb_dataset(tmp_path / "data", queries_per_type=queries)
    task = load_task(made.metadata)
    entry = tmp_path / "submissions" / "forb" / "random-ranking-synthetic"
    write_predictions_file(rank_randomly(task, 5, 0), task, entry / "predictions.ndjson.gz")
    (entry / "metadata.json").write_text(json.dumps(random_metadata("forb", 5, 0, "2024-01-01")))
    code = main(["evaluate", "--entry", str(entry), "--labels", str(made.metadata),
                 "--no-record"])
    out = capsys.readouterr()
    assert code == 0, out.out + out.err
    assert "overall" in out.out
    assert not (entry / "records").exists()


def test_sift_finds_the_object_and_only_it(dataset):
    """RootSIFT-BoW + RANSAC re-ranking only works if SIFT finds structure that survives the
    'photograph'. Matching as the baseline does: 711 SIFT features at 480 px on the shorter side,
    a 2-NN ratio test (0.8) and a RANSAC homography (10 px)."""
    cv2 = pytest.importorskip("cv2")
    sift, matcher = cv2.SIFT_create(nfeatures=711), cv2.BFMatcher()

    def features(relative):
        grey = cv2.imread(str(dataset.root / relative), cv2.IMREAD_GRAYSCALE)
        h, w = grey.shape
        scale = 480 / min(h, w)
        return sift.detectAndCompute(cv2.resize(grey, (round(w * scale), round(h * scale))), None)

    def inliers(a, b):
        (kp_a, desc_a), (kp_b, desc_b) = a, b
        good = [m for m, n in matcher.knnMatch(desc_a, desc_b, k=2)
                if m.distance < 0.8 * n.distance]
        if len(good) < 4:
            return 0
        _, mask = cv2.findHomography(np.float32([kp_a[m.queryIdx].pt for m in good]),
                                     np.float32([kp_b[m.trainIdx].pt for m in good]),
                                     cv2.RANSAC, 10)
        return 0 if mask is None else int(mask.sum())

    cv2.setRNGSeed(0)
    database = read_list(dataset.metadata / "all_database_images.txt")
    db_features = {p: features(p) for p in database}
    counts = sorted(len(kp) for kp, _ in db_features.values())
    print(f"\ndatabase keypoints: min {counts[0]}, median {counts[len(counts) // 2]}, "
          f"max {counts[-1]}")
    assert counts[0] >= 100 and counts[len(counts) // 2] >= 200

    results = {"easy": [], "medium": [], "hard": []}
    for t in OBJECT_TYPES:
        for record in read_ndjson(dataset.metadata / f"{t}_gt.ndjson"):
            if record["query_image"] in dataset.exact_copy_queries:
                continue
            query = features(record["query_image"])
            right = min(inliers(query, db_features[p]) for p in record["groundtruth_images"])
            wrong = max(inliers(query, f) for p, f in db_features.items()
                        if p not in record["groundtruth_images"])
            results[record["difficulty"]].append((right, wrong))
            print(f"{record['difficulty']:6s} {t:21s} inliers: its image {right:4d}, "
                  f"best other {wrong:3d}")

    def clear(right, wrong):
        return right >= 15 and right >= 2 * wrong

    for level in ("easy", "medium"):
        assert results[level] and all(clear(*pair) for pair in results[level]), results
    assert sum(clear(*pair) for pair in results["hard"]) * 2 >= len(results["hard"]), results
