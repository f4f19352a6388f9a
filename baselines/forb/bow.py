"""FORB's bag-of-words baselines: RootSIFT, a k-means codebook, tf-idf cosine search, and (for
``forb-bow-rerank``) RANSAC re-ranking (BASELINES.md B.1).

Pipeline, with the published settings unless stated:

1. RootSIFT of every database image and every query (``baselines.forb.rootsift``): short side 480,
   ``SIFT_create(nfeatures=711)``, L1 + square root. The database list is done once; the
   codebook images and the ``oods`` database are rows of it.
2. Codebook: ``faiss.Kmeans`` on all RootSIFTs of FORB's ``images_for_building_codebook.txt``;
   20 iterations, at least 10 and at most N points per centroid (no subsampling), seed 1234
   (faiss's default). Published: 1,000,000 words on GPU, the default here with ``--device
   cuda``. **CPU default: 65,536 words** (``--codebook-size`` overrides): a 1M-word k-means on
   ~10.7 M descriptors costs ~5e16 FLOP, days on a CPU; 65,536 words is ~15x less work. A run
   with another codebook size is a deviation from the published baseline and its run record
   says so. k-means runs one iteration per faiss call from the previous centroids (identical
   to one 20-iteration call: faiss re-seeds its empty-cluster splitting every iteration) and
   saves the centroids after each, so a killed run resumes at the last finished iteration.
3. Words: hard assignment of every descriptor to one word with faiss ``IndexHNSWSQ`` (8-bit
   scalar quantiser, M 16, efConstruction 40, efSearch 64), as published; for codebooks of at
   most ``EXACT_ASSIGNMENT_MAX_WORDS`` words exact search (``IndexFlatL2``) is used instead,
   since an approximate graph saves nothing there.
4. tf-idf: document frequencies from the codebook images only (n_docs = their number),
   idf = ln(n_docs / (df + 1)), weight sqrt(tf * idf), rows L2-normalised; cosine similarity
   by sparse matrix product.
5. Search: the top ``--top-k`` (published 10) database images by cosine, for the ``all``
   database and separately for its ``oods`` rows; candidates sharing fewer than 2 visual words
   with the query are dropped. Ties are broken by the lower database row.
6. Re-ranking (``forb-bow-rerank``, ``baselines.forb.ransac``): every remaining candidate is
   verified with mutual-ratio matches of the descriptors in shared words and a RANSAC
   homography; failures are dropped, survivors sorted by inlier count (stable).

Scores after re-ranking (a deviation). FORB kept each candidate's tf-idf cosine as its score
after re-ranking by inlier count, so its published score lists are not sorted, and this
project's evaluator only accepts non-increasing scores. The re-ranked lists here keep FORB's
order, and each score is the running minimum of the tf-idf cosines down the list: the closest
non-increasing version of the published scores (a candidate keeps its cosine unless one above
it scored lower). mAP only looks at the order, so it is unaffected. t-mAP thresholds the scores,
so it can differ from FORB's where a re-ranked candidate has a higher cosine than one ranked
above it: FORB would keep it at a threshold that drops the one above, this version drops both.

Memory stays bounded on the full dataset (54,435 database images, ~13,901 queries, ~48 M
descriptors): descriptors are stored as uint8 SIFT in memory-mapped chunks (``rootsift``),
words are assigned chunk by chunk, the tf-idf database is a sparse matrix (~40 M non-zeros),
and search runs in batches of queries. Everything slow (SIFT, k-means, word assignment,
re-ranking) shows progress and is cached under ``<cache>/bow/``, resumable, shared by
``forb-bow`` and ``forb-bow-rerank`` (the default cache, ``.baseline-cache/`` beside
``--out``, is shared by every run written to the same folder).

SIFT extraction and re-ranking run in ``--workers`` processes (default: every CPU core), started
with the "spawn" method; a script that calls ``run`` directly needs the usual
``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from baselines.errors import BaselineDataError, BaselineUsageError
from baselines.forb.data import ForbImages
from baselines.options import RunOptions
from baselines.progress import progress_bar
from baselines.forb.ransac import VERIFICATION_SETTINGS, verify_pair
from baselines.forb.rootsift import (FEATURE_SETTINGS, OPEN_CHUNKS, FeatureStore, default_workers,
                                extract_features)
from baselines.run_record import RunRecord
from evaluator.forb.writers import RankedLists

GPU_CODEBOOK_SIZE = 1_000_000   # published
CPU_CODEBOOK_SIZE = 65_536      # this project's CPU default (see the module docstring)
KMEANS_SEED = 1234              # faiss's default seed
MIN_POINTS_PER_CENTROID = 10    # published; faiss warns below it, we refuse
EXACT_ASSIGNMENT_MAX_WORDS = 8192
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 16, 40, 64
ASSIGN_BATCH = 65_536           # descriptors per index search
MIN_SHARED_WORDS = 2
SEARCH_BATCH = 256              # queries per sparse product
RERANK_CHUNK = 512              # queries per resumable re-ranking chunk
DESCRIPTOR_DIM = 128


# --- settings -----------------------------------------------------------------------------

def codebook_size(options: RunOptions) -> tuple[int, str]:
    """(words, where the number comes from)."""
    if options.codebook_size is not None:
        return int(options.codebook_size), "--codebook-size"
    if options.device.startswith("cuda"):
        return GPU_CODEBOOK_SIZE, "published (GPU default)"
    return CPU_CODEBOOK_SIZE, "CPU default (published: 1,000,000 on GPU)"


def kmeans_uses_gpu(options: RunOptions) -> bool:
    if not options.device.startswith("cuda"):
        return False
    import faiss

    if faiss.get_num_gpus() > 0:
        return True
    if options.codebook_size is None:
        raise BaselineUsageError(
            "--device cuda: the published 1,000,000-word k-means needs faiss with GPU support, "
            "but this faiss sees no GPU (install faiss-gpu-cu12 instead of faiss-cpu), or pass "
            f"--codebook-size K to run a smaller k-means on the CPU (CPU default "
            f"{CPU_CODEBOOK_SIZE:,})")
    return False


def assignment_kind(n_words: int) -> str:
    return "exact" if n_words <= EXACT_ASSIGNMENT_MAX_WORDS else "hnsw"


def assignment_description(kind: str) -> str:
    if kind == "exact":
        return (f"IndexFlatL2 (exact nearest word; used for codebooks of at most "
                f"{EXACT_ASSIGNMENT_MAX_WORDS} words)")
    return (f"IndexHNSWSQ (8-bit scalar quantiser, M={HNSW_M}, efConstruction="
            f"{HNSW_EF_CONSTRUCTION}, efSearch={HNSW_EF_SEARCH}; published)")


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


# --- k-means codebook ---------------------------------------------------------------------

@dataclass
class Sources:
    """Where each codebook image's features are: (store, row) pairs."""

    stores: list[FeatureStore]
    rows: list[tuple[int, int]]  # (store index, row)


def check_codebook_size(n_descriptors: int, k: int) -> None:
    """Refuse a k-means with fewer than MIN_POINTS_PER_CENTROID (FORB's 10) descriptors per
    word. faiss itself only warns there, but most words would then be fitted to a handful of
    descriptors. (faiss's own default is 39 per word; FORB's 1M words on ~10.7M descriptors
    are ~10.7 per word, so that stricter rule would refuse the published configuration.)"""
    if k < 1 or n_descriptors < k or n_descriptors < MIN_POINTS_PER_CENTROID * k:
        largest = max(1, n_descriptors // MIN_POINTS_PER_CENTROID)
        raise BaselineUsageError(
            f"a {k:,}-word codebook needs at least {MIN_POINTS_PER_CENTROID} descriptors per "
            f"word ({MIN_POINTS_PER_CENTROID * k:,}), but the codebook images have "
            f"{n_descriptors:,}; pass --codebook-size {largest} or smaller")


def _training_matrix(sources: Sources, folder: Path, desc: str) -> np.ndarray:
    """All RootSIFTs of the codebook images, N x 128 float32, memory-mapped from disk."""
    counts = [int(sources.stores[s].counts()[r]) for s, r in sources.rows]
    n = int(sum(counts))
    path = folder / "training-rootsift.f32.npy"
    if path.is_file():
        array = np.load(path, mmap_mode="r")
        if array.shape == (n, DESCRIPTOR_DIM):
            return array
        path.unlink()
    tmp = folder / "training-rootsift.f32.tmp"
    array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32,
                                      shape=(n, DESCRIPTOR_DIM))
    start = 0
    with progress_bar(len(sources.rows), desc, "img") as bar:
        for (s, r), count in zip(sources.rows, counts):
            array[start:start + count] = sources.stores[s].rootsift(r)
            start += count
            bar.update(1)
    array.flush()
    del array
    os.replace(tmp, path)
    return np.load(path, mmap_mode="r")


def train_codebook(sources: Sources, k: int, iterations: int, folder: Path, gpu: bool,
                   desc: str = "k-means") -> tuple[np.ndarray, dict]:
    """(k x 128 float32 centroids, info). Resumable after every iteration."""
    import faiss

    folder.mkdir(parents=True, exist_ok=True)
    final = folder / "centroids.npy"
    state_path = folder / "kmeans.json"
    if final.is_file() and state_path.is_file():
        info = json.loads(state_path.read_text(encoding="utf-8"))
        return np.load(final), {**info, "iterations_run_now": 0}
    total = int(sum(int(sources.stores[s].counts()[r]) for s, r in sources.rows))
    check_codebook_size(total, k)
    x = _training_matrix(sources, folder, f"{desc}: training data")
    n = len(x)
    info = {"training_descriptors": n, "codebook_images": len(sources.rows),
            "iterations": iterations, "min_points_per_centroid": MIN_POINTS_PER_CENTROID,
            "max_points_per_centroid": n, "seed": KMEANS_SEED,
            "device": "gpu" if gpu else "cpu", "objective": []}
    done, centroids = 0, None
    for it in range(iterations, 0, -1):  # resume from the last saved iteration
        partial = folder / f"centroids-iter{it:03d}.npy"
        if partial.is_file() and state_path.with_suffix(f".iter{it:03d}.json").is_file():
            centroids = np.load(partial)
            info = json.loads(state_path.with_suffix(f".iter{it:03d}.json").read_text())
            info["iterations"] = iterations
            done = it
            break
    with progress_bar(iterations, desc, "iter") as bar:
        bar.update(done)
        for it in range(done + 1, iterations + 1):
            kmeans = faiss.Kmeans(DESCRIPTOR_DIM, k, niter=1, seed=KMEANS_SEED,
                                  min_points_per_centroid=MIN_POINTS_PER_CENTROID,
                                  max_points_per_centroid=n, gpu=bool(gpu), verbose=False)
            kmeans.train(x, init_centroids=centroids)
            centroids = np.ascontiguousarray(kmeans.centroids, np.float32)
            info["objective"].append(float(kmeans.obj[-1]))
            _save_npy(folder / f"centroids-iter{it:03d}.npy", centroids)
            _write_json(state_path.with_suffix(f".iter{it:03d}.json"), info)
            for old in (folder / f"centroids-iter{it - 1:03d}.npy",
                        state_path.with_suffix(f".iter{it - 1:03d}.json")):
                old.unlink(missing_ok=True)
            bar.set_postfix(objective=f"{info['objective'][-1]:.4g}")
            bar.update(1)
    _save_npy(final, centroids)
    _write_json(state_path, info)
    info = {**info, "iterations_run_now": iterations - done}
    for leftover in folder.glob("centroids-iter*"):
        leftover.unlink()
    for leftover in folder.glob("kmeans.iter*.json"):
        leftover.unlink()
    (folder / "training-rootsift.f32.npy").unlink(missing_ok=True)
    return centroids, info


# --- word assignment ----------------------------------------------------------------------

def build_assigner(centroids: np.ndarray, kind: str, path: Path | None = None,
                   desc: str = "assignment index"):
    """A faiss index over the centroids for nearest-word search (cached at ``path``)."""
    import faiss

    if path is not None and path.is_file():
        index = faiss.read_index(str(path))
    elif kind == "exact":
        index = faiss.IndexFlatL2(DESCRIPTOR_DIM)
        index.add(np.ascontiguousarray(centroids, np.float32))
    else:
        index = faiss.IndexHNSWSQ(DESCRIPTOR_DIM, faiss.ScalarQuantizer.QT_8bit, HNSW_M)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        centroids = np.ascontiguousarray(centroids, np.float32)
        index.train(centroids)
        step = 50_000
        with progress_bar(len(centroids), desc, "word") as bar:
            for start in range(0, len(centroids), step):
                index.add(centroids[start:start + step])
                bar.update(min(step, len(centroids) - start))
    if kind != "exact":
        index.hnsw.efSearch = HNSW_EF_SEARCH
    if path is not None and not path.is_file():
        tmp = path.with_suffix(".tmp")
        faiss.write_index(index, str(tmp))
        os.replace(tmp, path)
    return index


def nearest_words(index, descriptors: np.ndarray) -> np.ndarray:
    """Hard assignment of float32 descriptors to one word each (int32)."""
    words = np.empty(len(descriptors), np.int32)
    for start in range(0, len(descriptors), ASSIGN_BATCH):
        x = np.ascontiguousarray(descriptors[start:start + ASSIGN_BATCH], np.float32)
        _, ids = index.search(x, 1)
        words[start:start + len(x)] = ids[:, 0]
    return words


class WordStore:
    """Each descriptor's word, in chunks aligned with a FeatureStore's (``words-c.npy``)."""

    def __init__(self, folder: Path, features: FeatureStore):
        self.folder = Path(folder)
        self.features = features
        self._chunks: OrderedDict[int, np.ndarray] = OrderedDict()

    def path(self, chunk: int) -> Path:
        return self.folder / f"words-{chunk:05d}.npy"

    def missing(self) -> list[int]:
        return [c for c in range(self.features.n_chunks) if not self.path(c).is_file()]

    def fill(self, index, desc: str) -> int:
        """Assign the missing chunks; returns the number of images done now."""
        from baselines.forb.rootsift import rootsift

        self.folder.mkdir(parents=True, exist_ok=True)
        missing = self.missing()
        n_images = sum(len(range(*self.features.bounds(c))) for c in missing)
        with progress_bar(n_images, desc, "img") as bar:
            for c in missing:
                sift, _, offsets, _ = self.features.chunk(c)
                words = np.empty(len(sift), np.int32)
                for start in range(0, len(sift), ASSIGN_BATCH):  # bounded float32 copies
                    stop = min(start + ASSIGN_BATCH, len(sift))
                    words[start:stop] = nearest_words(index, rootsift(sift[start:stop]))
                _save_npy(self.path(c), words)
                bar.update(len(offsets) - 1)
        return n_images

    def chunk(self, chunk: int) -> np.ndarray:
        if chunk in self._chunks:
            self._chunks.move_to_end(chunk)
            return self._chunks[chunk]
        path = self.path(chunk)
        if not path.is_file():
            raise BaselineDataError(f"{path}: missing; the word cache is incomplete (run "
                                    "the baseline again to fill it)")
        offsets = self.features.chunk(chunk)[2]
        self._chunks[chunk] = (np.load(path) if offsets[-1] == 0
                               else np.load(path, mmap_mode="r"))
        while len(self._chunks) > OPEN_CHUNKS:
            self._chunks.popitem(last=False)
        return self._chunks[chunk]

    def words(self, image: int) -> np.ndarray:
        c, i = divmod(image, self.features.chunk_size)
        offsets = self.features.chunk(c)[2]
        return self.chunk(c)[offsets[i]:offsets[i + 1]]


# --- tf-idf -------------------------------------------------------------------------------

def document_frequency(word_lists, n_words: int) -> np.ndarray:
    """Number of documents (word arrays) each word occurs in."""
    df = np.zeros(n_words, np.int64)
    for words in word_lists:
        df[np.unique(words)] += 1
    return df


def inverse_document_frequency(df: np.ndarray, n_docs: int) -> np.ndarray:
    """idf = ln(n_docs / (df + 1)), as published. A word in every codebook image (df = n_docs)
    would get a negative idf, and sqrt(tf * idf) would be undefined; such words are clamped to
    idf 0 (they carry no information)."""
    idf = np.log(n_docs / (df.astype(np.float64) + 1.0))
    return np.maximum(idf, 0.0)


@dataclass
class BagsOfWords:
    """Per image: distinct words (``indptr``/``indices``, sorted) and their counts."""

    indptr: np.ndarray   # int64, n_images + 1
    indices: np.ndarray  # int32 words
    counts: np.ndarray   # int32 term frequencies

    def words(self, image: int) -> np.ndarray:
        return self.indices[self.indptr[image]:self.indptr[image + 1]]


def bags_of_words(store: WordStore, desc: str | None = None) -> BagsOfWords:
    features = store.features
    indptr = [np.zeros(1, np.int64)]
    indices, counts = [], []
    total = 0
    with progress_bar(features.n_images, desc or "bags of words", "img") as bar:
        for c in range(features.n_chunks):
            words = np.asarray(store.chunk(c), np.int64)
            offsets = features.chunk(c)[2]
            n = len(offsets) - 1
            image = np.repeat(np.arange(n, dtype=np.int64), np.diff(offsets))
            keys, tf = np.unique(image * (1 << 32) + words, return_counts=True)
            per_image = np.bincount(keys >> 32, minlength=n)
            indptr.append(total + np.cumsum(per_image))
            total += len(keys)
            indices.append((keys & 0xFFFFFFFF).astype(np.int32))
            counts.append(tf.astype(np.int32))
            bar.update(n)
    return BagsOfWords(np.concatenate(indptr),
                       np.concatenate(indices) if indices else np.zeros(0, np.int32),
                       np.concatenate(counts) if counts else np.zeros(0, np.int32))


def bags_from_word_lists(word_lists) -> BagsOfWords:
    """Bags of words of in-memory word arrays (one per image)."""
    indptr, indices, counts = [0], [], []
    for words in word_lists:
        w, tf = np.unique(np.asarray(words, np.int64), return_counts=True)
        indices.append(w.astype(np.int32))
        counts.append(tf.astype(np.int32))
        indptr.append(indptr[-1] + len(w))
    return BagsOfWords(np.asarray(indptr, np.int64),
                       np.concatenate(indices) if indices else np.zeros(0, np.int32),
                       np.concatenate(counts) if counts else np.zeros(0, np.int32))


def tfidf_matrix(bags: BagsOfWords, idf: np.ndarray):
    """Rows sqrt(tf * idf), L2-normalised (an all-zero row stays zero); scipy CSR float32."""
    from scipy import sparse

    weights = np.sqrt(bags.counts.astype(np.float64) * idf[bags.indices])
    rows = np.repeat(np.arange(len(bags.indptr) - 1), np.diff(bags.indptr))
    norms = np.sqrt(np.bincount(rows, weights=weights ** 2, minlength=len(bags.indptr) - 1))
    weights = weights / np.where(norms > 0, norms, 1.0)[rows]
    return sparse.csr_matrix((weights.astype(np.float32), bags.indices, bags.indptr),
                             shape=(len(bags.indptr) - 1, len(idf)))


# --- search -------------------------------------------------------------------------------

def top_k_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores, best first, ties broken by the lower index."""
    k = min(k, len(scores))
    if k == 0:
        return np.zeros(0, np.int64)
    if k < len(scores):
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        candidates = np.nonzero(scores >= kth)[0]
    else:
        candidates = np.arange(len(scores))
    order = np.argsort(-scores[candidates], kind="stable")
    return candidates[order][:k]


def shared_word_count(a: np.ndarray, b: np.ndarray) -> int:
    return len(np.intersect1d(a, b, assume_unique=True))


def search(query_tfidf, database_t, query_bags: BagsOfWords, database_bags: BagsOfWords,
           rows: np.ndarray | None, top_k: int, desc: str) -> tuple[list, list]:
    """Top-k by cosine for every query, candidates sharing < 2 words dropped.

    ``database_t`` is the transposed (words x images) tf-idf CSR of the ``all`` database;
    ``rows`` selects the database searched (None: all), and the returned ids index ``rows``.
    """
    n_queries = query_tfidf.shape[0]
    ids: list[list[int]] = []
    scores: list[list[float]] = []
    with progress_bar(n_queries, desc, "query") as bar:
        for start in range(0, n_queries, SEARCH_BATCH):
            block = (query_tfidf[start:start + SEARCH_BATCH] @ database_t).toarray()
            if rows is not None:
                block = block[:, rows]
            for offset, row_scores in enumerate(block):
                q = start + offset
                query_words = query_bags.words(q)
                kept_ids, kept_scores = [], []
                for candidate in top_k_rows(row_scores, top_k):
                    db_row = int(candidate if rows is None else rows[candidate])
                    if shared_word_count(query_words, database_bags.words(db_row)) \
                            >= MIN_SHARED_WORDS:
                        kept_ids.append(int(candidate))
                        kept_scores.append(float(row_scores[candidate]))
                ids.append(kept_ids)
                scores.append(kept_scores)
            bar.update(len(block))
    return ids, scores


# --- re-ranking ---------------------------------------------------------------------------

_WORKER: dict = {}


def _rerank_init(query_features: str, query_words: str, db_features: str,
                 db_words: str) -> None:
    import cv2

    cv2.setNumThreads(1)
    q, d = FeatureStore.open(Path(query_features)), FeatureStore.open(Path(db_features))
    _WORKER.update(query=q, query_words=WordStore(Path(query_words), q),
                   db=d, db_words=WordStore(Path(db_words), d))


def pair_seed(query: int, db_row: int) -> int:
    """RANSAC seed of a (query, all-database row) pair: the same in both databases' lists."""
    return (query * 1_000_003 + db_row) % (2 ** 31 - 1)


def verify_candidates(query: int, db_rows: list[int], state: dict | None = None) -> list[int]:
    """Inlier count of every candidate (-1 where verification fails)."""
    from baselines.forb.rootsift import rootsift

    state = state or _WORKER
    q_store, q_words_store = state["query"], state["query_words"]
    d_store, d_words_store = state["db"], state["db_words"]
    q_words = np.asarray(q_words_store.words(query))
    q_xy, q_sift, q_size = (q_store.keypoints(query), q_store.sift(query),
                            q_store.image_size(query))
    out = []
    for row in db_rows:
        d_words = np.asarray(d_words_store.words(row))
        shared = np.intersect1d(q_words, d_words)
        q_sel = np.isin(q_words, shared)
        d_sel = np.isin(d_words, shared)
        inliers = verify_pair(np.asarray(d_store.keypoints(row))[d_sel],
                              rootsift(np.asarray(d_store.sift(row))[d_sel]),
                              d_store.image_size(row),
                              np.asarray(q_xy)[q_sel], rootsift(np.asarray(q_sift)[q_sel]),
                              q_size, seed=pair_seed(query, row))
        out.append(-1 if inliers is None else inliers)
    return out


def _verify_task(task: tuple[int, list[int]]) -> list[int]:
    return verify_candidates(*task)


def rerank_order(ids: list[int], scores: list[float], inliers: list[int]) -> tuple[list, list]:
    """Drop failed candidates (-1), sort the rest by inliers (descending, stable); scores:
    running minimum of the tf-idf cosines in the new order (non-increasing)."""
    kept = [(i, s, n) for i, s, n in zip(ids, scores, inliers) if n >= 0]
    kept.sort(key=lambda item: -item[2])
    out_ids, out_scores, low = [], [], np.inf
    for i, s, _ in kept:
        low = min(low, s)
        out_ids.append(i)
        out_scores.append(low)
    return out_ids, out_scores


class RerankCache:
    """Verification results per chunk of queries (``chunk-c.npz``: offsets, inliers)."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def path(self, chunk: int) -> Path:
        return self.folder / f"chunk-{chunk:05d}.npz"

    def load(self, chunk: int) -> list[list[int]] | None:
        if not self.path(chunk).is_file():
            return None
        with np.load(self.path(chunk)) as data:
            offsets, inliers = data["offsets"], data["inliers"]
        return [inliers[offsets[i]:offsets[i + 1]].tolist() for i in range(len(offsets) - 1)]

    def save(self, chunk: int, results: list[list[int]]) -> None:
        offsets = np.zeros(len(results) + 1, np.int64)
        np.cumsum([len(r) for r in results], out=offsets[1:])
        flat = np.asarray([n for r in results for n in r], np.int64)
        tmp = self.path(chunk).with_suffix(".tmp")
        with open(tmp, "wb") as handle:
            np.savez(handle, offsets=offsets, inliers=flat)
        os.replace(tmp, self.path(chunk))


def rerank(candidates: list[list[int]], known: dict[tuple[int, int], int], folder: Path,
           stores: dict, workers: int, desc: str) -> tuple[list[list[int]], int, int]:
    """Inlier counts for every (query, all-database row) candidate; (results, pairs verified
    now, chunks computed now). ``known`` holds pairs verified before (reused, and extended
    with the new ones)."""
    cache = RerankCache(folder)
    n_queries = len(candidates)
    chunks = range(-(-n_queries // RERANK_CHUNK))
    results: list[list[int]] = [[] for _ in range(n_queries)]
    pool = None
    verified = computed = 0
    try:
        with progress_bar(n_queries, desc, "query") as bar:
            for c in chunks:
                start, stop = c * RERANK_CHUNK, min((c + 1) * RERANK_CHUNK, n_queries)
                loaded = cache.load(c)
                if loaded is None:
                    tasks = []
                    for q in range(start, stop):
                        todo = [r for r in candidates[q] if (q, r) not in known]
                        if todo:
                            tasks.append((q, todo))
                    if workers > 1 and pool is None and tasks:
                        import multiprocessing

                        pool = multiprocessing.get_context("spawn").Pool(
                            workers, initializer=_rerank_init,
                            initargs=(str(stores["query"].folder),
                                      str(stores["query_words"].folder),
                                      str(stores["db"].folder), str(stores["db_words"].folder)))
                    mapped = (pool.imap(_verify_task, tasks, chunksize=4) if pool is not None
                              else (verify_candidates(q, rows, stores) for q, rows in tasks))
                    done_queries = stop - start - len(tasks)
                    bar.update(done_queries)
                    for (q, rows), counts in zip(tasks, mapped):
                        for r, n in zip(rows, counts):
                            known[(q, r)] = n
                        verified += len(rows)
                        bar.update(1)
                    loaded = [[known[(q, r)] for r in candidates[q]] for q in range(start, stop)]
                    cache.save(c, loaded)
                    computed += 1
                else:
                    for q, counts in zip(range(start, stop), loaded):
                        for r, n in zip(candidates[q], counts):
                            known[(q, r)] = n
                    bar.update(stop - start)
                results[start:stop] = loaded
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    return results, verified, computed


# --- the run ------------------------------------------------------------------------------

def _row_lookup(images: ForbImages, paths: list[str]) -> tuple[list[int | None], list[str]]:
    """Row of each path in the database list (None if absent) and the absent paths."""
    index = images.task.database_index["all"]
    rows = [index.get(p) for p in paths]
    return rows, [p for p, r in zip(paths, rows) if r is None]


def _features(images: ForbImages, paths: list[str], label: str, root: Path,
              options: RunOptions, record: RunRecord, stage: str) -> FeatureStore:
    # The key covers the list, the settings, and the byte sizes of a sample of the files, so a
    # cache shared between datasets with the same relative paths (e.g. generated ones) never
    # serves another dataset's features; moving the dataset keeps it valid.
    key = _digest({"paths": paths, "settings": FEATURE_SETTINGS,
                   "sizes": _size_sample(images, paths)})
    with record.stage(stage, len(paths), "images") as st:
        store, computed = extract_features(images.root, paths, root / f"sift-{label}-{key}",
                                           options.workers, stage)
        st.items, st.cached = computed, computed == 0
    return store


def _size_sample(images: ForbImages, paths: list[str]) -> list[int]:
    """Byte sizes of up to ~16 evenly spaced files of a list (-1 for a missing one, which is
    reported by name when it is read)."""
    sizes = []
    for relative in paths[::max(1, len(paths) // 16)]:
        try:
            sizes.append(images.path(relative).stat().st_size)
        except OSError:
            sizes.append(-1)
    return sizes


def run(spec, images: ForbImages, options: RunOptions, record: RunRecord) -> RankedLists:
    rerank_on = spec.name == "forb-bow-rerank"
    if spec.name not in ("forb-bow", "forb-bow-rerank"):
        raise BaselineUsageError(f"baselines.forb.bow runs forb-bow and forb-bow-rerank, not "
                                 f"{spec.name}")
    k, k_source = codebook_size(options)
    gpu = kmeans_uses_gpu(options)
    workers = default_workers(options.workers)
    cache_root = Path(options.cache_dir) / "bow"
    kind = assignment_kind(k)
    settings = {
        "features": {**FEATURE_SETTINGS, "descriptor": "RootSIFT (L1, eps 1e-7, sqrt)",
                     "storage": "raw SIFT as uint8 (OpenCV's values are integers 0..255), "
                                "RootSIFT computed on read: lossless, 4x smaller than float32",
                     "one_descriptor_images": "treated as having no features"},
        "codebook_size": k, "codebook_size_source": k_source,
        "codebook_size_is_published": k == GPU_CODEBOOK_SIZE,
        "kmeans": {"iterations": options.kmeans_iterations, "seed": KMEANS_SEED,
                   "min_points_per_centroid": MIN_POINTS_PER_CENTROID,
                   "max_points_per_centroid": "N (no subsampling)",
                   "device": "gpu (faiss)" if gpu else "cpu (faiss)",
                   "codebook_images": len(images.codebook_paths)},
        "assignment_index": assignment_description(kind),
        "tfidf": {"df": "codebook images only", "n_docs": len(images.codebook_paths),
                  "idf": "ln(n_docs / (df + 1)), negative clamped to 0",
                  "weight": "sqrt(tf * idf)", "normalisation": "L2", "score": "cosine"},
        "top_k": options.top_k, "min_shared_words": MIN_SHARED_WORDS,
        "workers": workers, "cache": str(cache_root),
    }
    if rerank_on:
        settings["rerank"] = {**VERIFICATION_SETTINGS, "order": "inliers, descending, stable",
                              "scores": "running minimum of the tf-idf cosines down the "
                                        "re-ranked list (FORB kept raw cosines, not monotone)"}
    record.settings["bow"] = settings
    record.settings["codebook_size"] = k
    record.settings["workers"] = workers

    # 1. RootSIFT: the database list once, the queries once.
    database_paths, query_paths = images.database_paths, images.query_paths
    database = _features(images, database_paths, "database", cache_root, options, record,
                         "sift: database")
    queries = _features(images, query_paths, "query", cache_root, options, record,
                        "sift: queries")
    codebook_paths = images.codebook_paths
    codebook_rows, outside = _row_lookup(images, codebook_paths)
    stores = [database]
    extra = None
    if outside:  # e.g. the FORB subset: some codebook images are not in its database
        extra = _features(images, outside, "codebook-extra", cache_root, options, record,
                          "sift: codebook images outside the database")
        stores.append(extra)
    outside_index = {p: i for i, p in enumerate(outside)}
    sources = Sources(stores, [(0, r) if r is not None else (1, outside_index[p])
                               for p, r in zip(codebook_paths, codebook_rows)])

    # 2. Codebook.
    codebook_key = _digest({"codebook": codebook_paths, "features": FEATURE_SETTINGS,
                            "sizes": _size_sample(images, codebook_paths), "k": k,
                            "iterations": options.kmeans_iterations, "seed": KMEANS_SEED,
                            "min_points": MIN_POINTS_PER_CENTROID})
    codebook_dir = cache_root / f"codebook-k{k}-{codebook_key}"
    with record.stage("codebook k-means", None, "iterations") as st:
        st.cached = (codebook_dir / "centroids.npy").is_file()
        centroids, kmeans_info = train_codebook(sources, k, options.kmeans_iterations,
                                                codebook_dir, gpu, "codebook k-means")
        st.items = kmeans_info.get("iterations_run_now", 0)
    settings["kmeans"]["training_descriptors"] = kmeans_info["training_descriptors"]
    settings["kmeans"]["final_objective"] = (kmeans_info["objective"] or [None])[-1]

    # 3. Words.
    index_path = codebook_dir / f"assign-{kind}.faissindex"
    with record.stage("assignment index", k, "words") as st:
        st.cached = index_path.is_file()
        assigner = build_assigner(centroids, kind, index_path, "assignment index")
    word_stores = {"database": WordStore(codebook_dir / f"words-{database.folder.name}",
                                         database),
                   "query": WordStore(codebook_dir / f"words-{queries.folder.name}", queries)}
    if extra is not None:
        word_stores["extra"] = WordStore(codebook_dir / f"words-{extra.folder.name}", extra)
    with record.stage("assign words", None, "images") as st:
        done = sum(store.fill(assigner, f"assign words: {name}")
                   for name, store in word_stores.items())
        st.items, st.cached = done, done == 0
    del assigner

    # 4. tf-idf index.
    with record.stage("index", len(database_paths), "images"):
        database_bags = bags_of_words(word_stores["database"], "bags of words: database")
        query_bags = bags_of_words(word_stores["query"], "bags of words: queries")
        extra_bags = (bags_of_words(word_stores["extra"], "bags of words: codebook extras")
                      if extra is not None else None)
        codebook_docs = [database_bags.words(r) if s == 0 else extra_bags.words(r)
                         for s, r in sources.rows]
        df = document_frequency(codebook_docs, k)
        idf = inverse_document_frequency(df, len(codebook_paths))
        database_t = tfidf_matrix(database_bags, idf).T.tocsr()
        query_tfidf = tfidf_matrix(query_bags, idf)
    settings["tfidf"]["clamped_words"] = int(np.sum(df + 1 > len(codebook_paths)))

    # 5. Search.
    ids: dict[str, list[list[int]]] = {}
    scores: dict[str, list[list[float]]] = {}
    for name, rows in (("all", None), ("oods", images.oods_rows)):
        with record.stage(f"search: {name}", len(query_paths), "queries"):
            ids[name], scores[name] = search(query_tfidf, database_t, query_bags,
                                             database_bags, rows, options.top_k,
                                             f"search: {name}")
    del database_t, query_tfidf

    # 6. Re-ranking.
    if rerank_on:
        state = {"query": queries, "query_words": word_stores["query"],
                 "db": database, "db_words": word_stores["database"]}
        known: dict[tuple[int, int], int] = {}
        for name, rows in (("all", None), ("oods", images.oods_rows)):
            as_db_rows = [[int(c if rows is None else rows[c]) for c in q_ids]
                          for q_ids in ids[name]]
            key = _digest({"codebook": codebook_dir.name, "queries": queries.folder.name,
                           "database": database.folder.name, "candidates": as_db_rows,
                           "verification": VERIFICATION_SETTINGS})
            with record.stage(f"rerank: {name}", len(query_paths), "queries") as st:
                inliers, verified, computed_chunks = rerank(as_db_rows, known,
                                           codebook_dir / f"rerank-{name}-{key}", state,
                                           workers, f"rerank: {name}")
                st.cached = computed_chunks == 0
            reranked = [rerank_order(i, s, n) for i, s, n in zip(ids[name], scores[name],
                                                                  inliers)]
            ids[name] = [r[0] for r in reranked]
            scores[name] = [r[1] for r in reranked]

    # Six decimals keep the files small; rounding is monotone, so the order stays valid.
    rounded = {name: [[round(float(s), 6) for s in row] for row in lists]
               for name, lists in scores.items()}
    return RankedLists(ids, rounded)


def _save_npy(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as handle:
        np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
    os.replace(tmp, path)


def _write_json(path: Path, value) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
