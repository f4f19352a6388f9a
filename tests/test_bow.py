"""FORB's BoW baselines (baselines.forb.rootsift, baselines.forb.ransac, baselines.forb.bow):
each published rule on hand-made inputs, the resumable memory-mapped descriptor store, and both
baselines end to end on a generated FORB-shaped dataset, scored by the project's evaluator."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
faiss = pytest.importorskip("faiss")

from baselines.forb import bow  # noqa: E402
from baselines.errors import BaselineDataError, BaselineUsageError  # noqa: E402
from baselines.forb.data import load_forb  # noqa: E402
from baselines.options import RunOptions  # noqa: E402
from baselines.forb.ransac import (  # noqa: E402
    homography_is_plausible, mutual_ratio_matches, projection_covers_enough, verify_pair)
from baselines.forb.rootsift import (  # noqa: E402
    FeatureStore, extract, extract_features, load_resized, resized_shape, rootsift)
from baselines.run_record import RunRecord  # noqa: E402
from baselines.forb.synthetic import make_forb_dataset  # noqa: E402

K_WORDS = 1024  # the generated codebook images hold ~35k descriptors: >= 10 per word


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("bow-cache")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic-forb")
    made = make_forb_dataset(root, queries_per_type=4, distractors=100, image_size=192,
                             seed=0, codebook_images=100)
    return made, load_forb(root)


def _textured(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 8, width // 8, 3)).astype(np.uint8)
    image = cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST)
    for _ in range(25):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.circle(image, centre, int(rng.integers(3, 20)),
                   tuple(int(c) for c in rng.integers(0, 256, 3)), -1)
    return image


# --- RootSIFT ------------------------------------------------------------------------------

def test_resize_rule_short_side_480_with_truncation(tmp_path):
    assert resized_shape(300, 451) == (480, 721)
    assert resized_shape(451, 300) == (721, 480)
    assert resized_shape(333, 500) == (480, 720)      # 720.72 truncated, not rounded
    assert resized_shape(480, 480) == (480, 480)
    path = tmp_path / "landscape.png"
    cv2.imwrite(str(path), _textured(333, 500))
    assert load_resized(path).shape == (480, 720, 3)


def test_rootsift_matches_its_definition(tmp_path):
    path = tmp_path / "small.png"
    cv2.imwrite(str(path), _textured(120, 160, seed=1))
    features = extract(path)
    assert features.size == (480, 640)
    assert features.sift.dtype == np.uint8 and len(features.sift) > 50

    # Independently: imread, bilinear resize, grey, SIFT(711), L1 (eps 1e-7), sqrt.
    image = cv2.resize(cv2.imread(str(path)), (640, 480), interpolation=cv2.INTER_LINEAR)
    keypoints, raw = cv2.SIFT_create(nfeatures=711).detectAndCompute(
        cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), None)
    expected = np.sqrt(raw / (np.abs(raw).sum(axis=1, keepdims=True) + 1e-7))
    got = rootsift(features.sift)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected.astype(np.float32))
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(features.xy, np.float32([kp.pt for kp in keypoints]))
    # The uint8 store is lossless: OpenCV's float descriptors are bytes.
    np.testing.assert_array_equal(features.sift.astype(np.float32), raw)


def test_unreadable_or_missing_images_name_the_file(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(BaselineDataError, match="broken.jpg"):
        extract(bad)
    with pytest.raises(BaselineDataError, match="absent.jpg"):
        extract(tmp_path / "absent.jpg")


def test_one_descriptor_counts_as_no_features(tmp_path, monkeypatch):
    from baselines.forb import rootsift as module

    class OneKeypoint:
        def detectAndCompute(self, grey, mask):
            return [cv2.KeyPoint(5.0, 5.0, 3.0)], np.ones((1, 128), np.float32)

    path = tmp_path / "flat.png"
    cv2.imwrite(str(path), np.full((64, 64, 3), 128, np.uint8))
    monkeypatch.setattr(module, "_SIFT", OneKeypoint())
    features = extract(path)
    assert features.sift.shape == (0, 128) and features.xy.shape == (0, 2)


def test_descriptor_store_is_memory_mapped_and_resumable(dataset, tmp_path):
    _, images = dataset
    paths = images.database_paths[:10]
    folder = tmp_path / "store"
    store, computed = extract_features(images.root, paths, folder, workers=0, desc="sift",
                                       chunk_size=4)
    assert computed == 10 and store.n_chunks == 3
    assert isinstance(store.chunk(0)[0], np.memmap) and isinstance(store.chunk(0)[1], np.memmap)
    assert isinstance(store.sift(5), np.memmap)
    before = [(store.sift(i).copy(), store.keypoints(i).copy(), store.image_size(i))
              for i in range(10)]
    stamps = {p: p.stat().st_mtime_ns for p in folder.iterdir()}

    store.files(1)["sift"].unlink()           # lose one chunk (as a killed run would)
    again, computed = extract_features(images.root, paths, folder, workers=0, desc="sift",
                                       chunk_size=4)
    assert computed == 4                      # only that chunk's 4 images
    for path, stamp in stamps.items():
        if path.name.endswith("-00001.npy") or path.name.endswith("-00001.npz"):
            continue
        assert path.stat().st_mtime_ns == stamp, f"{path.name} was rewritten"
    for i, (sift, xy, size) in enumerate(before):
        np.testing.assert_array_equal(again.sift(i), sift)
        np.testing.assert_array_equal(again.keypoints(i), xy)
        assert again.image_size(i) == size
    assert extract_features(images.root, paths, folder, workers=0, desc="sift",
                            chunk_size=4)[1] == 0
    # A store made for other inputs is refused, not silently reused.
    with pytest.raises(BaselineDataError, match="other inputs"):
        FeatureStore(folder, 11, 4)


# --- spatial verification ------------------------------------------------------------------

SIZE = (480, 640)  # (height, width) of both images


def test_homography_checks_on_hand_made_homographies():
    identity = np.eye(3)
    assert homography_is_plausible(identity)
    assert projection_covers_enough(identity, SIZE, SIZE)
    assert homography_is_plausible(np.array([[1, 0, 0], [0, 1, 0], [0.001, 0, 1.0]]))

    reflection = np.array([[-1.0, 0, 640], [0, 1, 0], [0, 0, 1]])
    assert projection_covers_enough(reflection, SIZE, SIZE)
    assert not homography_is_plausible(reflection)                      # det < 0
    assert not homography_is_plausible(np.diag([8.0, 8.0, 1.0]))        # N1, N2 > 6
    assert not homography_is_plausible(np.diag([0.04, 1.0, 1.0]))       # N1 < 0.05
    assert not homography_is_plausible(np.diag([1.0, 7.0, 1.0]))        # N2 > 6
    strong_perspective = np.array([[1.0, 0, 0], [0, 1, 0], [0.01, 0, 1]])
    assert not homography_is_plausible(strong_perspective)              # N3 > 0.002
    assert homography_is_plausible(2 * np.eye(3))                       # scale-free

    tiny = np.diag([0.1, 0.1, 1.0])           # plausible, but covers 1% of the query
    assert homography_is_plausible(tiny)
    assert not projection_covers_enough(tiny, SIZE, SIZE)
    thin = np.diag([1.0, 0.08, 1.0])          # 8% of the area, but 8% < 10% of the height
    assert homography_is_plausible(thin)
    assert not projection_covers_enough(thin, SIZE, SIZE)
    mostly_outside = np.array([[1.0, 0, 600], [0, 1, 0], [0, 0, 1]])    # clipped: 40 px wide
    assert not projection_covers_enough(mostly_outside, SIZE, SIZE)
    half = np.diag([0.5, 0.5, 1.0])           # 25% of the area, half of each side
    assert projection_covers_enough(half, SIZE, SIZE)


def test_mutual_ratio_test_on_hand_made_descriptors():
    def vec(**dims):
        v = np.zeros(128, np.float32)
        for name, value in dims.items():
            v[int(name[1:])] = value
        return v

    a = np.stack([
        vec(d0=10),                 # a0 <-> b0: clear in both directions
        vec(d1=10),                 # a1: two equally near b (b1, b2): fails forward
        vec(d2=10),                 # a2, a3: both nearest to b3, which cannot tell them
        vec(d2=10, d8=1.0),         #   apart: fails backward
        vec(d3=10),                 # a4 -> b4 passes, but b4's nearest is a5
        vec(d3=10, d9=2.5),         # a5 <-> b4
    ])
    b = np.stack([
        vec(d0=10, d5=0.5),
        vec(d1=10, d6=1.0),
        vec(d1=10, d7=1.0),
        vec(d2=10, d8=0.5),
        vec(d3=10, d9=2.0),
    ])
    matches = mutual_ratio_matches(a, b)
    assert sorted(map(tuple, matches.tolist())) == [(0, 0), (5, 4)]
    # One direction alone would have accepted a2 -> b3, a3 -> b3 and a4 -> b4.
    forward = cv2.BFMatcher(cv2.NORM_L2).knnMatch(a, b, k=2)
    one_way = {(m.queryIdx, m.trainIdx) for m, n in forward if m.distance < 0.8 * n.distance}
    assert {(2, 3), (3, 3), (4, 4)} <= one_way
    assert mutual_ratio_matches(a[:1], b).shape == (0, 2)  # no second neighbour


def test_verification_finds_a_warped_copy_and_is_reproducible(tmp_path):
    base = _textured(240, 320, seed=4)
    warp = np.array([[0.9, 0.08, 20], [-0.05, 0.95, 15], [0.0001, 0.0, 1]])
    warped = cv2.warpPerspective(base, warp, (320, 240), borderValue=(90, 90, 90))
    other = _textured(240, 320, seed=5)
    for name, image in (("db", base), ("query", warped), ("other", other)):
        cv2.imwrite(str(tmp_path / f"{name}.png"), image)
    db, query, unrelated = (extract(tmp_path / f"{n}.png") for n in ("db", "query", "other"))

    def verified(a, b, seed):
        return verify_pair(a.xy, rootsift(a.sift), a.size, b.xy, rootsift(b.sift), b.size,
                           seed=seed)

    inliers = verified(db, query, seed=7)
    assert inliers is not None and inliers >= 30
    cv2.setRNGSeed(12345)
    cv2.findHomography(np.random.default_rng(0).random((50, 2)).astype(np.float32),
                       np.random.default_rng(1).random((50, 2)).astype(np.float32),
                       cv2.RANSAC, 10.0)          # disturb OpenCV's RNG in between
    assert verified(db, query, seed=7) == inliers
    weak = verified(unrelated, query, seed=7)
    assert weak is None or weak < inliers / 3


# --- words, tf-idf, search ------------------------------------------------------------------

def test_tfidf_weights_follow_the_definition():
    n_words = 5
    codebook_docs = [[0, 0, 1, 2], [0, 1], [0, 3]]
    df = bow.document_frequency([np.asarray(d) for d in codebook_docs], n_words)
    np.testing.assert_array_equal(df, [3, 2, 1, 1, 0])
    idf = bow.inverse_document_frequency(df, n_docs=3)
    # ln(3 / (df + 1)): word 0 would be ln(3/4) < 0 and is clamped to 0.
    np.testing.assert_allclose(idf, [0.0, 0.0, math.log(1.5), math.log(1.5), math.log(3)])

    database = [[0, 0, 1, 2], [4, 4, 2], [3]]      # the last two are not codebook images
    matrix = bow.tfidf_matrix(bow.bags_from_word_lists(database), idf).toarray()
    expected = np.zeros((3, n_words))
    for row, words in enumerate(database):
        for w in set(words):
            expected[row, w] = math.sqrt(words.count(w) * idf[w])
        expected[row] /= np.linalg.norm(expected[row])
    np.testing.assert_allclose(matrix, expected, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, rtol=1e-6)
    # A document whose words all have idf 0 stays a zero row (cosine 0 with everything).
    assert not bow.tfidf_matrix(bow.bags_from_word_lists([[0, 1]]), idf).toarray().any()


def test_top_k_breaks_ties_by_the_lower_row():
    scores = np.array([0.5, 0.9, 0.5, 0.9, 0.1, 0.5], np.float32)
    assert bow.top_k_rows(scores, 3).tolist() == [1, 3, 0]
    assert bow.top_k_rows(scores, 4).tolist() == [1, 3, 0, 2]
    assert bow.top_k_rows(scores, 10).tolist() == [1, 3, 0, 2, 5, 4]


def test_rerank_order_and_monotone_scores():
    ids, scores = bow.rerank_order([10, 11, 12, 13], [0.9, 0.8, 0.7, 0.6], [5, -1, 20, 5])
    assert ids == [12, 10, 13]                      # by inliers, stable; 11 failed
    assert scores == [0.7, 0.7, 0.6]                # running minimum of the cosines
    assert bow.rerank_order([1], [0.3], [-1]) == ([], [])


def test_hnsw_assignment_agrees_with_exact(dataset):
    _, images = dataset
    x = np.concatenate([rootsift(extract(images.path(p)).sift)
                        for p in images.database_paths[:12]])
    centroids = x[np.random.default_rng(0).choice(len(x), 1000, replace=False)]
    exact = bow.nearest_words(bow.build_assigner(centroids, "exact"), x[:2000])
    hnsw_index = bow.build_assigner(centroids, "hnsw")
    assert isinstance(hnsw_index, faiss.IndexHNSWSQ) and hnsw_index.hnsw.efSearch == 64
    approx = bow.nearest_words(hnsw_index, x[:2000])
    assert (approx == exact).mean() > 0.95
    assert bow.assignment_kind(bow.EXACT_ASSIGNMENT_MAX_WORDS) == "exact"
    assert bow.assignment_kind(65_536) == "hnsw"


def test_kmeans_resumes_after_an_interrupted_iteration(dataset, tmp_path):
    _, images = dataset
    store, _ = extract_features(images.root, images.database_paths[:6], tmp_path / "f",
                                workers=0, desc="sift")
    sources = bow.Sources([store], [(0, r) for r in range(6)])
    full, info = bow.train_codebook(sources, 32, 3, tmp_path / "a", gpu=False)
    assert full.shape == (32, 128) and len(info["objective"]) == 3
    # A run killed after iteration 2: its saved state is what 2 iterations leave behind.
    partial, _ = bow.train_codebook(sources, 32, 2, tmp_path / "b", gpu=False)
    (tmp_path / "b" / "centroids.npy").rename(tmp_path / "b" / "centroids-iter002.npy")
    (tmp_path / "b" / "kmeans.json").rename(tmp_path / "b" / "kmeans.iter002.json")
    resumed, info_b = bow.train_codebook(sources, 32, 3, tmp_path / "b", gpu=False)
    np.testing.assert_array_equal(resumed, full)
    assert info_b["objective"] == info["objective"]
    assert not list((tmp_path / "b").glob("training-*"))   # the scratch matrix is removed


def test_codebook_size_and_device_errors(dataset, tmp_path):
    with pytest.raises(BaselineUsageError, match=r"1,000 descriptors per|10,000.*999"):
        bow.check_codebook_size(999, 1000)
    with pytest.raises(BaselineUsageError, match="--codebook-size 99"):
        bow.check_codebook_size(999, 100)
    bow.check_codebook_size(1000, 100)
    options = RunOptions(data=tmp_path, out=tmp_path / "out", device="cuda")
    assert bow.codebook_size(options)[0] == 1_000_000
    assert bow.codebook_size(RunOptions(data=tmp_path, out=tmp_path / "o", device="cpu"))[0] \
        == 65_536
    if faiss.get_num_gpus() == 0:
        with pytest.raises(BaselineUsageError, match="faiss-gpu.*--codebook-size"):
            bow.kmeans_uses_gpu(options)
        options.codebook_size = 4096
        assert bow.kmeans_uses_gpu(options) is False


# --- end to end ----------------------------------------------------------------------------

def _run(name: str, images, cache: Path, out: Path):
    options = RunOptions(data=images.root, out=out, device="cpu", codebook_size=K_WORDS,
                         workers=2, cache=cache)
    record = RunRecord(baseline=name, command="test", settings=options.as_settings())
    lists = bow.run(SimpleNamespace(name=name), images, options, record)
    return lists, record


def _evaluate(lists, images, tmp_path: Path, name: str) -> dict:
    from evaluator.cli import main
    from evaluator.forb.writers import write_predictions_file

    predictions = write_predictions_file(lists, images.task,
                                         tmp_path / name / "predictions.ndjson.gz")
    out = tmp_path / f"{name}.json"
    assert main(["evaluate", "--benchmark", "forb", "--predictions", str(predictions),
                 "--labels", str(images.metadata_dir), "--json", str(out)]) == 0
    return json.loads(out.read_text())["scores"]["overall"]


def test_bow_and_rerank_end_to_end(dataset, shared_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("LEADERBOARD_NO_PROGRESS", "1")
    made, images = dataset
    cache = shared_cache
    plain, plain_record = _run("forb-bow", images, cache, tmp_path / "bow")
    reranked, rerank_record = _run("forb-bow-rerank", images, cache, tmp_path / "rerank")

    n_all, n_oods = len(images.database_paths), len(images.task.databases["oods"])
    for lists in (plain, reranked):
        for db, size in (("all", n_all), ("oods", n_oods)):
            assert len(lists.ids[db]) == images.task.n_queries
            for ids, scores in zip(lists.ids[db], lists.scores[db]):
                assert len(ids) == len(scores) <= 10 and len(set(ids)) == len(ids)
                assert all(0 <= i < size for i in ids)
                assert all(a >= b for a, b in zip(scores, scores[1:]))
    # Re-ranking only reorders and filters BoW's candidates.
    for db in ("all", "oods"):
        for before, after in zip(plain.ids[db], reranked.ids[db]):
            assert set(after) <= set(before)

    bow_scores = _evaluate(plain, images, tmp_path, "bow")
    rerank_scores = _evaluate(reranked, images, tmp_path, "rerank")
    chance = 1 / n_all
    print(f"\nsynthetic FORB: {images.task.n_queries} queries, {n_all} database images, "
          f"{K_WORDS} words: mAP@1 BoW {bow_scores['mAP@1']:.4f}, BoW + rerank "
          f"{rerank_scores['mAP@1']:.4f}; t-mAP@1 {bow_scores['t-mAP@1']:.4f} vs "
          f"{rerank_scores['t-mAP@1']:.4f} (chance {chance:.4f}); k-means on "
          f"{plain_record.settings['bow']['kmeans']['training_descriptors']} descriptors")
    for record in (plain_record, rerank_record):
        print("  " + "; ".join(s.summary() for s in record.stages))
    assert bow_scores["mAP@1"] >= 0.6 > 20 * chance
    assert rerank_scores["mAP@1"] > bow_scores["mAP@1"]
    # A query that is a byte copy of a database image finds that image first.
    assert made.exact_copy_queries
    for path in made.exact_copy_queries:
        q = images.task.query_index[path]
        for lists in (plain, reranked):
            top = images.database_paths[lists.ids["all"][q][0]]
            assert images.path(top).read_bytes() == images.path(path).read_bytes()

    # The run record: stages, effective settings; the rerank run reused every cache.
    names = [s.name for s in rerank_record.stages]
    for stage in ("sift: database", "sift: queries", "codebook k-means", "assign words",
                  "index", "search: all", "search: oods", "rerank: all", "rerank: oods"):
        assert stage in names
    cached = {s.name for s in rerank_record.stages if s.cached}
    assert {"sift: database", "sift: queries", "codebook k-means", "assign words"} <= cached
    settings = rerank_record.settings["bow"]
    assert settings["codebook_size"] == K_WORDS and rerank_record.settings["codebook_size"] \
        == K_WORDS
    assert settings["assignment_index"].startswith("IndexFlatL2")
    assert settings["tfidf"]["n_docs"] == len(images.codebook_paths) == 100
    assert settings["kmeans"]["training_descriptors"] >= 10 * K_WORDS
    assert "rerank" in settings and "rerank" not in plain_record.settings["bow"]

    # Running again reads everything from the cache and gives identical lists.
    again, again_record = _run("forb-bow-rerank", images, cache, tmp_path / "again")
    assert again.ids == reranked.ids and again.scores == reranked.scores
    assert {"rerank: all", "rerank: oods"} <= {s.name for s in again_record.stages if s.cached}
    assert os.listdir(cache) == ["bow"]


def test_codebook_images_outside_the_database(dataset, shared_cache, tmp_path, monkeypatch):
    """As on the FORB subset board: some codebook images are not database images. They get
    their own features and count as codebook documents; the database is not recomputed."""
    monkeypatch.setenv("LEADERBOARD_NO_PROGRESS", "1")
    _, images = dataset
    root = tmp_path / "forb"
    (root / "metadata").mkdir(parents=True)
    for item in images.root.iterdir():
        if item.name != "metadata":
            (root / item.name).symlink_to(item)
    for item in images.metadata_dir.iterdir():
        (root / "metadata" / item.name).write_bytes(item.read_bytes())
    extra = images.query_paths[:2]
    with open(root / "metadata" / "images_for_building_codebook.txt", "a") as handle:
        handle.write("".join(p + "\n" for p in extra))
    moved = load_forb(root)
    lists, record = _run("forb-bow", moved, shared_cache, tmp_path / "out")
    stages = {s.name: s for s in record.stages}
    assert stages["sift: codebook images outside the database"].items == 2
    assert stages["sift: database"].cached and stages["sift: queries"].cached
    assert record.settings["bow"]["tfidf"]["n_docs"] == len(images.codebook_paths) + 2
    assert len(lists.ids["all"]) == moved.task.n_queries
