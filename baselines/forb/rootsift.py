"""RootSIFT features as FORB's BoW baseline computes them (BASELINES.md B.1, step 2), and a
resumable, memory-mapped store for them.

Per image: read in colour (``cv2.imread``), resize with ``cv2.resize`` (bilinear) so that the
shorter side is exactly 480 pixels and the longer one ``int(longer * 480 / shorter)``
(truncated), convert to grey, detect and describe with ``cv2.SIFT_create(nfeatures=711)``
(OpenCV defaults otherwise), and keep each keypoint's (x, y) in the resized image. RootSIFT:
L1-normalise each descriptor (with 1e-7 added to the norm), then take the square root; the
results have unit L2 norm. An image whose descriptor array has exactly one row counts as having
no features, as in FORB's extractor; so does an image where SIFT finds nothing.

Storage. OpenCV's float SIFT descriptors are integers in 0..255 (each value is saturated to a
byte inside OpenCV), so the store keeps the **raw SIFT descriptors as uint8** and computes
RootSIFT from them when they are read. That is lossless (the float32 RootSIFT is bit for bit
what it would be from OpenCV's float output) and a quarter of the size of float32 RootSIFTs:
about 5 GB instead of 20 GB for FORB's 54,435 database images. Extraction checks the integer
property on every image and fails loudly if an OpenCV version ever breaks it.

Images are processed in chunks of ``CHUNK_IMAGES`` by worker processes and written chunk by
chunk as ``.npy`` files that are read back memory-mapped, so the descriptors are never all in
RAM. A chunk's files are written under temporary names and renamed, its index file last, so a
killed run keeps every finished chunk and the next run computes only the missing ones.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from baselines.errors import BaselineDataError
from baselines.feature_cache import claim_cache_folder
from baselines.progress import progress_bar

SHORT_SIDE = 480
SIFT_FEATURES = 711
ROOTSIFT_EPS = 1e-7
CHUNK_IMAGES = 256
OPEN_CHUNKS = 32  # memory-mapped chunks kept open per store (bounded file descriptors)
STORE_VERSION = 1

# What the stored features depend on; part of the cache folder's key.
FEATURE_SETTINGS = {"short_side": SHORT_SIDE, "sift_nfeatures": SIFT_FEATURES,
                    "resize": "cv2.INTER_LINEAR", "descriptor_storage": "uint8 SIFT",
                    "store_version": STORE_VERSION}


@dataclass
class ImageFeatures:
    xy: np.ndarray        # (n, 2) float32 keypoint positions in the resized image
    sift: np.ndarray      # (n, 128) uint8 raw SIFT descriptors
    size: tuple[int, int]  # (height, width) of the resized image


def resized_shape(height: int, width: int, short_side: int = SHORT_SIDE) -> tuple[int, int]:
    """(height, width) after resizing the shorter side to ``short_side`` (longer: truncated)."""
    if height <= 0 or width <= 0:
        raise ValueError(f"empty image ({height} x {width})")
    if height <= width:
        return short_side, int(width * short_side / height)
    return int(height * short_side / width), short_side


def load_resized(path: Path) -> np.ndarray:
    """The image as ``cv2.imread`` reads it (BGR), resized to the published size."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise BaselineDataError(f"{path}: missing")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise BaselineDataError(f"{path}: not a readable image (OpenCV could not decode it)")
    height, width = resized_shape(*image.shape[:2])
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def rootsift(sift: np.ndarray) -> np.ndarray:
    """RootSIFT of (n, 128) SIFT descriptors: L1-normalise (eps 1e-7), square root; float32."""
    x = np.asarray(sift, dtype=np.float32)
    x = x / (np.abs(x).sum(axis=1, keepdims=True) + np.float32(ROOTSIFT_EPS))
    return np.sqrt(x)


_SIFT = None


def _sift():
    global _SIFT
    if _SIFT is None:
        import cv2

        _SIFT = cv2.SIFT_create(nfeatures=SIFT_FEATURES)
    return _SIFT


def extract(path: Path) -> ImageFeatures:
    """Keypoints and raw SIFT descriptors of one image, with the published preprocessing."""
    import cv2

    image = load_resized(path)
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    keypoints, descriptors = _sift().detectAndCompute(grey, None)
    size = (int(grey.shape[0]), int(grey.shape[1]))
    if descriptors is None or len(descriptors) <= 1:
        return ImageFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.uint8), size)
    as_bytes = np.rint(descriptors)
    if not (np.array_equal(as_bytes, descriptors) and as_bytes.min() >= 0
            and as_bytes.max() <= 255):
        raise RuntimeError(f"OpenCV {cv2.__version__} returned SIFT descriptors that are not "
                           "bytes; the uint8 descriptor store assumes they are")
    xy = np.asarray([kp.pt for kp in keypoints], dtype=np.float32).reshape(-1, 2)
    return ImageFeatures(xy, as_bytes.astype(np.uint8), size)


def _worker_init() -> None:
    import cv2

    cv2.setNumThreads(1)  # one process per core; no nested thread pools


def _extract_task(path: str) -> ImageFeatures:
    return extract(Path(path))


def default_workers(workers: int | None) -> int:
    """``--workers``, or every CPU core this process may use."""
    if workers is not None:
        return max(0, workers)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class FeatureStore:
    """RootSIFT features of one image list, stored in chunks under ``folder``.

    Per chunk c: ``sift-c.npy`` (M x 128 uint8), ``xy-c.npy`` (M x 2 float32) and
    ``index-c.npz`` (``offsets``: n+1 int64 row offsets into the chunk's arrays, ``sizes``:
    n x 2 resized (height, width)). The index is renamed into place last, so it marks a
    complete chunk. Descriptor and keypoint arrays are opened memory-mapped.
    """

    def __init__(self, folder: Path, n_images: int, chunk_size: int = CHUNK_IMAGES,
                 description: dict | None = None):
        self.folder = Path(folder)
        self.n_images = n_images
        self.chunk_size = chunk_size
        claim_cache_folder(self.folder, {"n_images": self.n_images, "chunk_size": chunk_size,
                                         **FEATURE_SETTINGS, **(description or {})})
        self._chunks: OrderedDict[int, tuple] = OrderedDict()
        self._counts: np.ndarray | None = None

    @classmethod
    def open(cls, folder: Path) -> "FeatureStore":
        """An existing store, read-only use (worker processes)."""
        info = json.loads((Path(folder) / "cache.json").read_text(encoding="utf-8"))
        store = cls.__new__(cls)
        store.folder, store.n_images = Path(folder), int(info["n_images"])
        store.chunk_size, store._chunks = int(info["chunk_size"]), OrderedDict()
        store._counts = None
        return store

    # --- layout ---------------------------------------------------------------------------
    @property
    def n_chunks(self) -> int:
        return -(-self.n_images // self.chunk_size)

    def bounds(self, chunk: int) -> tuple[int, int]:
        start = chunk * self.chunk_size
        return start, min(start + self.chunk_size, self.n_images)

    def files(self, chunk: int) -> dict[str, Path]:
        return {"sift": self.folder / f"sift-{chunk:05d}.npy",
                "xy": self.folder / f"xy-{chunk:05d}.npy",
                "index": self.folder / f"index-{chunk:05d}.npz"}

    def missing(self) -> list[int]:
        return [c for c in range(self.n_chunks)
                if not all(p.is_file() for p in self.files(c).values())]

    # --- writing --------------------------------------------------------------------------
    def save_chunk(self, chunk: int, features: list[ImageFeatures]) -> None:
        start, stop = self.bounds(chunk)
        if len(features) != stop - start:
            raise ValueError(f"chunk {chunk} has {len(features)} images, expected {stop - start}")
        files = self.files(chunk)
        counts = [len(f.sift) for f in features]
        offsets = np.zeros(len(features) + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        sift = (np.concatenate([f.sift for f in features]) if offsets[-1]
                else np.zeros((0, 128), np.uint8))
        xy = (np.concatenate([f.xy for f in features]) if offsets[-1]
              else np.zeros((0, 2), np.float32))
        sizes = np.asarray([f.size for f in features], np.int32).reshape(-1, 2)
        files["index"].unlink(missing_ok=True)  # the index marks completeness: drop it first
        _save_npy(files["sift"], sift.astype(np.uint8, copy=False))
        _save_npy(files["xy"], xy.astype(np.float32, copy=False))
        tmp = files["index"].with_suffix(".tmp")
        with open(tmp, "wb") as handle:
            np.savez(handle, offsets=offsets, sizes=sizes)
        os.replace(tmp, files["index"])
        self._chunks.pop(chunk, None)
        self._counts = None

    # --- reading --------------------------------------------------------------------------
    def chunk(self, chunk: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(sift uint8 memmap, xy float32 memmap, offsets, sizes) of one chunk."""
        if chunk in self._chunks:
            self._chunks.move_to_end(chunk)
            return self._chunks[chunk]
        files = self.files(chunk)
        if not files["index"].is_file():
            raise BaselineDataError(f"{files['index']}: missing; the feature cache is "
                                    "incomplete (run the baseline again to fill it)")
        with np.load(files["index"]) as index:
            offsets, sizes = index["offsets"], index["sizes"]
        self._chunks[chunk] = (_open_npy(files["sift"], (offsets[-1], 128)),
                               _open_npy(files["xy"], (offsets[-1], 2)), offsets, sizes)
        while len(self._chunks) > OPEN_CHUNKS:  # each memmap holds a file descriptor
            self._chunks.popitem(last=False)
        return self._chunks[chunk]

    def _locate(self, image: int) -> tuple[int, int]:
        if not 0 <= image < self.n_images:
            raise IndexError(f"image {image} out of range 0..{self.n_images - 1}")
        return divmod(image, self.chunk_size)

    def sift(self, image: int) -> np.ndarray:
        c, i = self._locate(image)
        sift, _, offsets, _ = self.chunk(c)
        return sift[offsets[i]:offsets[i + 1]]

    def rootsift(self, image: int) -> np.ndarray:
        return rootsift(self.sift(image))

    def keypoints(self, image: int) -> np.ndarray:
        c, i = self._locate(image)
        _, xy, offsets, _ = self.chunk(c)
        return xy[offsets[i]:offsets[i + 1]]

    def image_size(self, image: int) -> tuple[int, int]:
        """(height, width) of the resized image the keypoints live in."""
        c, i = self._locate(image)
        return tuple(int(v) for v in self.chunk(c)[3][i])

    def counts(self) -> np.ndarray:
        """Number of descriptors of every image."""
        if self._counts is None:
            parts = [np.zeros(0, np.int64)]
            for c in range(self.n_chunks):
                index = self.files(c)["index"]
                if not index.is_file():
                    raise BaselineDataError(f"{index}: missing; the feature cache is "
                                            "incomplete (run the baseline again to fill it)")
                with np.load(index) as data:
                    parts.append(np.diff(data["offsets"]).astype(np.int64))
            self._counts = np.concatenate(parts)
        return self._counts


def extract_features(root: Path, paths: list[str], folder: Path, workers: int | None,
                     desc: str, chunk_size: int = CHUNK_IMAGES) -> tuple[FeatureStore, int]:
    """Fill the store for ``paths`` (relative to ``root``); (store, images computed now)."""
    store = FeatureStore(folder, len(paths), chunk_size,
                         {"paths_sha256_16": _paths_digest(paths)})
    missing = store.missing()
    todo = [i for c in missing for i in range(*store.bounds(c))]
    if not todo:
        return store, 0
    for i in todo:  # fail early, naming the first missing image
        if not (Path(root) / paths[i]).is_file():
            raise BaselineDataError(f"{Path(root) / paths[i]}: missing (listed in the FORB "
                                    "metadata); is --data the folder that holds metadata/ "
                                    "and the image folders?")
    n_workers = min(default_workers(workers), len(todo))
    tasks = [str(Path(root) / paths[i]) for i in todo]
    with progress_bar(len(todo), desc, "img") as bar:
        if n_workers <= 1:
            results = map(_extract_task, tasks)
            _collect(store, missing, results, bar)
        else:
            import multiprocessing

            context = multiprocessing.get_context("spawn")
            with context.Pool(n_workers, initializer=_worker_init) as pool:
                results = pool.imap(_extract_task, tasks, chunksize=4)
                _collect(store, missing, results, bar)
    return store, len(todo)


def _collect(store: FeatureStore, missing: list[int], results, bar) -> None:
    """Write chunks in order as their images come back (``results`` keeps the task order)."""
    for chunk in missing:
        start, stop = store.bounds(chunk)
        features = []
        for _ in range(start, stop):
            features.append(next(results))
            bar.update(1)
        store.save_chunk(chunk, features)


def _paths_digest(paths: list[str]) -> str:
    import hashlib

    return hashlib.sha256("\n".join(paths).encode()).hexdigest()[:16]


def _save_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as handle:
        np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
    os.replace(tmp, path)


def _open_npy(path: Path, shape: tuple[int, int]) -> np.ndarray:
    if not path.is_file():
        raise BaselineDataError(f"{path}: missing; the feature cache is incomplete (run the "
                                "baseline again to fill it)")
    if shape[0] == 0:  # an empty array cannot be memory-mapped
        return np.load(path, allow_pickle=False)
    array = np.load(path, mmap_mode="r", allow_pickle=False)
    if array.shape != tuple(int(s) for s in shape):
        raise BaselineDataError(f"{path}: holds {array.shape}, its index says {shape}; delete "
                                "the chunk's files to recompute it")
    return array

