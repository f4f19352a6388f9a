"""Resumable on-disk storage of per-image arrays, in fixed-size chunks.

A killed run keeps every finished chunk; the next run with the same inputs computes only the
missing ones. Chunks are written to a temporary name and renamed, so a chunk file is either
complete or absent. The folder name carries everything the arrays depend on (baseline, weights
digest, image list, scales), so a run with other inputs never reads stale features.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from baselines.errors import BaselineDataError


class ChunkedArrays:
    def __init__(self, folder: Path, n_items: int, chunk_size: int, description: dict):
        self.folder = folder
        self.n_items = n_items
        self.chunk_size = chunk_size
        claim_cache_folder(folder, {"n_items": n_items, "chunk_size": chunk_size,
                                    **description})

    @property
    def n_chunks(self) -> int:
        return -(-self.n_items // self.chunk_size)

    def bounds(self, index: int) -> tuple[int, int]:
        start = index * self.chunk_size
        return start, min(start + self.chunk_size, self.n_items)

    def path(self, index: int) -> Path:
        return self.folder / f"chunk-{index:05d}.npy"

    def missing(self) -> list[int]:
        return [i for i in range(self.n_chunks) if not self.path(i).is_file()]

    def save(self, index: int, array: np.ndarray) -> None:
        start, stop = self.bounds(index)
        if len(array) != stop - start:
            raise ValueError(f"chunk {index} has {len(array)} rows, expected {stop - start}")
        tmp = self.path(index).with_suffix(".tmp")
        with open(tmp, "wb") as handle:
            np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
        os.replace(tmp, self.path(index))

    def load(self) -> np.ndarray:
        parts = [np.load(self.path(i), allow_pickle=False) for i in range(self.n_chunks)]
        return np.concatenate(parts) if parts else np.zeros((0,), np.float32)


def claim_cache_folder(folder: Path, inputs: dict) -> None:
    """Create a cache folder described by ``inputs`` (its cache.json), or check that an
    existing one was made for the same inputs, so stale results are never reused."""
    folder.mkdir(parents=True, exist_ok=True)
    info = folder / "cache.json"
    if info.is_file():
        stored = json.loads(info.read_text(encoding="utf-8"))
        if stored != json.loads(json.dumps(inputs)):
            raise BaselineDataError(f"{folder}: this cache was made for other inputs; delete "
                                    "it or pass another --cache folder")
    else:
        atomic_write(info, (json.dumps(inputs, indent=2) + "\n").encode())


def atomic_write(path: Path, data: bytes) -> None:
    # The process id in the temporary name: torchrun's ranks may write the same file at once.
    tmp = path.with_suffix(f"{path.suffix}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
