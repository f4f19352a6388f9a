"""Exact cosine top-k by matrix multiplication, in query chunks on the device.

FORB searched without an approximate index (FS A.5); so does this. Both sides are
L2-normalised again, so the score is the cosine similarity.
"""

from __future__ import annotations

import numpy as np


def exact_top_k(queries: np.ndarray, database: np.ndarray, k: int, device: str = "cpu",
                chunk_rows: int = 2048, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """(ids, scores), both Q x min(k, N): database rows by descending cosine similarity."""
    import torch

    k = min(k, len(database))
    ids = np.zeros((len(queries), k), dtype=np.int64)
    scores = np.zeros((len(queries), k), dtype=np.float32)
    if k == 0 or len(queries) == 0:
        return ids, scores
    db = _normalised(torch.from_numpy(np.ascontiguousarray(database, np.float32)).to(device))
    for start in range(0, len(queries), chunk_rows):
        stop = min(start + chunk_rows, len(queries))
        q = _normalised(torch.from_numpy(
            np.ascontiguousarray(queries[start:stop], np.float32)).to(device))
        top = torch.topk(q @ db.T, k, dim=1, largest=True, sorted=True)
        scores[start:stop] = top.values.cpu().numpy()
        ids[start:stop] = top.indices.cpu().numpy()
        if progress is not None:
            progress.update(stop - start)
    return ids, scores


def _normalised(x):
    import torch

    return x / torch.linalg.vector_norm(x, dim=1, keepdim=True).clamp_min(1e-12)
