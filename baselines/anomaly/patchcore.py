"""The PatchCore memory-bank core shared by the anomaly baselines (BTF's RGB iNet, FPFH and
RGB+FPFH, and M3DM's single-modality banks): BASELINES.md section C.2 and C.4.

Fitting: every training patch goes into a bank; a sparse random projection (Johnson-Lindenstrauss
dimension for eps 0.9) feeds a greedy k-center coreset that keeps 10 % of the rows, and the bank
keeps the selected *original* rows.

Scoring: each test patch's L2 distance to its nearest bank row gives the patch map; the image
score is the largest of those distances, reweighted as PatchCore does (it is not the map's max).

Maps: the patch grid is bilinearly upsampled to 224 x 224 and blurred, either as published
(through an 8-bit PIL image, so quantised to 256 levels of the map's max) or in float.

Deliberate differences from the published code, each recorded by the caller:
- the projection is seeded (``seed``, default 0); the published one had no random_state;
- nearest-neighbour distances are recomputed exactly (norm of the difference) for the selected
  neighbours, where ``torch.cdist`` keeps the ||a||^2 + ||b||^2 - 2ab rounding; they agree to
  float32 rounding.

Functions take torch tensors and a ``device`` string ("cpu", "cuda", "cuda:0"); results come
back on the CPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

MAP_SIZE = 224


# --- random projection -------------------------------------------------------------------------

def projection_dim(n_samples: int, eps: float = 0.9) -> int:
    """The Johnson-Lindenstrauss target dimension, as sklearn's SparseRandomProjection("auto")
    picks it: 4 ln(n) / (eps^2 / 2 - eps^3 / 3), rounded down."""
    from sklearn.random_projection import johnson_lindenstrauss_min_dim

    return int(johnson_lindenstrauss_min_dim(n_samples=int(n_samples), eps=eps))


def random_projection(features: torch.Tensor, eps: float = 0.9,
                      seed: int | None = 0) -> torch.Tensor | None:
    """Project the (N, D) bank with sklearn's SparseRandomProjection(eps, random_state=seed).

    Returns the (N, dim) float32 projection on the CPU, or ``None`` when sklearn would refuse:
    the JL dimension is larger than D (FPFH's 33-d features: about 25 ln N > 33 for any real
    bank) or not positive (N = 1). The published code caught sklearn's ValueError in exactly
    those cases and ran the coreset on the unprojected features; the caller does the same on
    ``None``. Deciding it from the dimensions means no other ValueError is swallowed.
    A JL dimension equal to D is projected, as sklearn does (it only refuses dim > D).

    The published projection had no random_state; ``seed`` makes it reproducible.
    """
    from sklearn.random_projection import SparseRandomProjection

    n, d = features.shape
    dim = projection_dim(n, eps)
    if dim <= 0 or dim > d:
        return None
    x = features.detach().to("cpu", torch.float32).numpy()
    projected = SparseRandomProjection(eps=eps, random_state=seed).fit_transform(x)
    return torch.from_numpy(np.ascontiguousarray(projected, dtype=np.float32))


# --- greedy coreset ----------------------------------------------------------------------------

def _row_distances_into(z: torch.Tensor, last: torch.Tensor, min_distances: torch.Tensor,
                        chunk_rows: int) -> None:
    """min_distances = minimum(min_distances, ||z - last||) row by row, in row chunks so the
    (rows, D) difference never exceeds ``chunk_rows`` rows. The norm of the difference (not the
    dot-product expansion) is what the published loop computes."""
    for start in range(0, z.shape[0], chunk_rows):
        stop = min(start + chunk_rows, z.shape[0])
        dist = torch.linalg.vector_norm(z[start:stop] - last, dim=1)
        torch.minimum(min_distances[start:stop], dist, out=min_distances[start:stop])


def greedy_coreset(features: torch.Tensor, n_select: int, device: str = "cpu",
                   half: bool = False, chunk_rows: int = 1 << 20,
                   progress: Callable[[int], None] | None = None) -> torch.Tensor:
    """Greedy k-center selection of ``n_select`` rows of the (N, D) ``features``, as published.

    Start at row 0; keep each row's distance to the nearest selected row; repeatedly select the
    row farthest from the selected set (torch.argmax: the first index on ties) and zero its
    distance. Returns int64 indices on the CPU, the first being 0. ``n_select >= N`` returns
    arange(N).

    Published details kept on purpose:
    - the initial distances (to row 0) are computed at the input precision before any fp16
      conversion, and the first loop step recomputes the distances to row 0 (in fp16 when
      ``half``) and takes the minimum with them;
    - ``half=True`` runs the loop in float16 (the published default on a GPU).
    ``progress`` (e.g. tqdm's update) gets the number of new selections about every 1 %.
    """
    n = features.shape[0]
    if n_select < 1:
        raise ValueError(f"greedy_coreset: n_select must be >= 1, got {n_select}")
    if n_select >= n:
        return torch.arange(n, dtype=torch.int64)
    chunk_rows = max(1, int(chunk_rows))
    # The features go to the device once; everything after stays there (no per-step sync:
    # the selected index is kept as a device tensor and gathered at the end).
    z = features.detach().to(device)
    if not z.is_floating_point():
        z = z.float()
    last = z[0:1]
    min_distances = torch.empty(n, dtype=z.dtype, device=z.device)
    min_distances.fill_(float("inf"))
    _row_distances_into(z, last, min_distances, chunk_rows)
    if half:
        z = z.half()
        last = last.half()
        min_distances = min_distances.half()
    selected = torch.zeros(n_select, dtype=torch.int64, device=z.device)
    report_every = max(1, (n_select - 1) // 100)
    pending = 0
    for step in range(1, n_select):
        _row_distances_into(z, last, min_distances, chunk_rows)
        index = torch.argmax(min_distances).view(1)
        last = z.index_select(0, index)
        min_distances.index_fill_(0, index, 0)
        selected[step:step + 1] = index
        pending += 1
        if progress is not None and pending >= report_every:
            progress(pending)
            pending = 0
    if progress is not None and pending:
        progress(pending)
    return selected.cpu()


# --- nearest neighbours ------------------------------------------------------------------------

def nearest_distances(queries: torch.Tensor, bank: torch.Tensor, k: int = 1,
                      device: str = "cpu", query_chunk: int = 4096,
                      bank_chunk: int = 65536) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact k nearest bank rows (L2) of every query row.

    Returns (distances (Nq, k) float32, indices (Nq, k) int64) on the CPU, ascending.
    Works in (query_chunk x bank_chunk) blocks on ``device`` with a running top-k, so the
    full distance matrix is never held. ``bank`` may already be on the device (then it is not
    copied again). Candidates are ranked with ||q||^2 + ||b||^2 - 2 q.b (what torch.cdist does
    for large inputs; tiny negatives clamped to 0); the k winners' distances are then
    recomputed as the norm of the difference, so they do not depend on the chunking and an
    identical row is at exactly 0. Ties keep the lower bank index where the ranking sees them.
    """
    nq, nb = queries.shape[0], bank.shape[0]
    if k < 1 or k > nb:
        raise ValueError(f"nearest_distances: k = {k} for a bank of {nb} rows")
    if queries.shape[1] != bank.shape[1]:
        raise ValueError(f"nearest_distances: queries are {queries.shape[1]}-d, the bank "
                         f"{bank.shape[1]}-d")
    dtype = torch.promote_types(queries.dtype, bank.dtype)
    if not dtype.is_floating_point:
        dtype = torch.float32
    query_chunk, bank_chunk = max(1, int(query_chunk)), max(1, int(bank_chunk))
    out_dist = torch.empty(nq, k, dtype=torch.float32)
    out_index = torch.empty(nq, k, dtype=torch.int64)
    for q0 in range(0, nq, query_chunk):
        q = queries[q0:q0 + query_chunk].detach().to(device, dtype)
        q_sq = (q * q).sum(dim=1, keepdim=True)
        best_d2 = best_index = None
        for b0 in range(0, nb, bank_chunk):
            b = bank[b0:b0 + bank_chunk].detach().to(device, dtype)
            d2 = q_sq + (b * b).sum(dim=1)[None, :] - 2.0 * (q @ b.T)
            d2.clamp_(min=0)
            kk = min(k, b.shape[0])
            if kk == 1:
                # torch.min returns the first minimum on ties
                chunk_d2, chunk_index = d2.min(dim=1, keepdim=True)
            else:
                chunk_d2, chunk_index = torch.topk(d2, kk, dim=1, largest=False, sorted=True)
            chunk_index = chunk_index + b0
            if best_d2 is None:
                best_d2, best_index = chunk_d2, chunk_index
            else:
                # earlier chunks (lower indices) first + stable sort: ties keep the lower index
                cand_d2 = torch.cat([best_d2, chunk_d2], dim=1)
                cand_index = torch.cat([best_index, chunk_index], dim=1)
                order = torch.sort(cand_d2, dim=1, stable=True).indices[:, :k]
                best_d2 = cand_d2.gather(1, order)
                best_index = cand_index.gather(1, order)
        # Exact distances of the winners, then re-sorted (stably) in case rounding swapped two.
        neighbours = bank.index_select(0, best_index.reshape(-1).to(bank.device))
        neighbours = neighbours.to(device, dtype).view(q.shape[0], k, -1)
        dist = torch.linalg.vector_norm(q[:, None, :] - neighbours, dim=2)
        order = torch.sort(dist, dim=1, stable=True).indices
        out_dist[q0:q0 + q.shape[0]] = dist.gather(1, order).float().cpu()
        out_index[q0:q0 + q.shape[0]] = best_index.gather(1, order).cpu()
    return out_dist, out_index


# --- image score -------------------------------------------------------------------------------

def reweighted_image_score(patch_features: torch.Tensor, patch_min_distances: torch.Tensor,
                           patch_nn_index: torch.Tensor, bank: torch.Tensor,
                           n_reweight: int = 3, denominator_epsilon: float = 0.0,
                           device: str = "cpu") -> float:
    """PatchCore's reweighted image score, as BTF / M3DM compute it.

    s* = the largest patch min-distance (first on ties); m_test = that patch; m* = its nearest
    bank row. Of the ``n_reweight`` nearest bank rows of m* (m* itself first, at distance 0)
    the first is dropped; over the rest
        w = 1 - exp(s*/sqrt(D)) / (sum_k exp(||m_test - b_k|| / sqrt(D)) + epsilon)
    and the score is w * s*. BTF used epsilon 0; M3DM's RGB class adds 1e-5.
    ``patch_min_distances`` / ``patch_nn_index`` are (Nq,) or (Nq, k) (column 0 is used).
    """
    min_distances = patch_min_distances.reshape(patch_min_distances.shape[0], -1)[:, 0]
    nn_index = patch_nn_index.reshape(patch_nn_index.shape[0], -1)[:, 0]
    worst = int(torch.argmax(min_distances))
    s_star = min_distances[worst].to(torch.float32).cpu()
    m_test = patch_features[worst:worst + 1].detach().to("cpu", torch.float32)
    star_index = int(nn_index[worst])
    m_star = bank[star_index:star_index + 1]
    _, knn = nearest_distances(m_star, bank, k=n_reweight, device=device)
    neighbours = bank.index_select(0, knn[0, 1:].to(bank.device)).to("cpu", torch.float32)
    # Published: the norm of the difference, in float32, D = sqrt(feature dimension).
    m_star_knn = torch.linalg.vector_norm(m_test - neighbours, dim=1)
    root_d = torch.sqrt(torch.tensor(float(patch_features.shape[1])))
    w = 1 - torch.exp(s_star / root_d) / (torch.sum(torch.exp(m_star_knn / root_d))
                                          + denominator_epsilon)
    return float(w * s_star)


# --- anomaly maps ------------------------------------------------------------------------------

def upsample_map(grid: np.ndarray | torch.Tensor, size: int = MAP_SIZE) -> np.ndarray:
    """(h, w) patch-distance grid -> (size, size) float32, bilinear with align_corners=False
    (the published F.interpolate call)."""
    g = grid if isinstance(grid, torch.Tensor) else torch.from_numpy(np.asarray(grid))
    g = g.detach().to("cpu", torch.float32)[None, None]
    up = torch.nn.functional.interpolate(g, size=(size, size), mode="bilinear",
                                         align_corners=False)
    return up[0, 0].numpy()


def blur_map_published(amap: np.ndarray, radius: float = 4) -> np.ndarray:
    """The published KNNGaussianBlur(4): the map over its max, to an 8-bit PIL "L" image as
    torchvision's to_pil_image does for floats ((x * 255).astype(uint8): truncation, 1.0 ->
    255), PIL GaussianBlur(radius) (PIL's radius is the sigma), back / 255, times the max.
    The result therefore takes at most 256 levels of the max. An all-zero map (max 0) comes
    back as zeros (the published code would divide by zero). Maps must be non-negative."""
    from PIL import Image, ImageFilter

    a = np.asarray(amap, dtype=np.float32)
    if a.ndim != 2:
        raise ValueError(f"blur_map_published: expected a 2-d map, got shape {a.shape}")
    if a.size and a.min() < 0:
        raise ValueError("blur_map_published: the map has negative values")
    m = np.float32(a.max()) if a.size else np.float32(0)
    if m == 0:
        return np.zeros_like(a)
    # float32 throughout, as the published torch tensors were
    levels = np.clip((a / m) * np.float32(255), 0, 255).astype(np.uint8)
    image = Image.fromarray(levels)  # a 2-d uint8 array gives mode "L"
    blurred = image.filter(ImageFilter.GaussianBlur(radius))
    return (np.asarray(blurred, dtype=np.uint8).astype(np.float32) / np.float32(255)) * m


def blur_map_float(amap: np.ndarray, sigma: float = 4) -> np.ndarray:
    """The corrected blur: a float32 Gaussian (sigma, reflect borders, truncated at 4 sigma),
    with no 8-bit quantisation."""
    from scipy.ndimage import gaussian_filter

    a = np.asarray(amap, dtype=np.float32)
    return gaussian_filter(a, sigma=sigma, mode="reflect", truncate=4.0, output=np.float32)


BLURS: dict[str, Callable[..., np.ndarray]] = {
    "published": blur_map_published,
    "float": blur_map_float,
}


# --- the memory bank ---------------------------------------------------------------------------

@dataclass
class MemoryBank:
    """A PatchCore memory bank: ``fit`` on all training patches, ``score`` one image's patches.

    normalise: M3DM's RGB bank: subtract the full bank's scalar mean and divide by its scalar
    (unbiased) std, both computed before the coreset; test patches use the same two scalars.
    """

    coreset_fraction: float = 0.1
    projection_eps: float = 0.9
    seed: int | None = 0
    half: bool = False  # greedy loop in fp16 (published on GPU)
    device: str = "cpu"
    normalise: bool = False
    denominator_epsilon: float = 0.0
    n_reweight: int = 3
    bank: torch.Tensor | None = field(default=None, repr=False)
    selected: torch.Tensor | None = field(default=None, repr=False)
    mean: float | None = None
    std: float | None = None
    n_patches: int | None = None
    projected_dim: int | None = None

    def _normalised(self, patches: torch.Tensor) -> torch.Tensor:
        if not self.normalise:
            return patches
        return (patches - self.mean) / self.std

    def fit(self, patches: torch.Tensor,
            progress: Callable[[int], None] | None = None) -> MemoryBank:
        """Build the bank from all (N, D) training patches. Keeps int(coreset_fraction * N)
        rows (as published; at least 1), every row when coreset_fraction >= 1."""
        if patches.ndim != 2 or patches.shape[0] == 0:
            raise ValueError(f"MemoryBank.fit: expected (N, D) patches, got {tuple(patches.shape)}")
        patches = patches.detach().to(torch.float32)
        n = patches.shape[0]
        if self.normalise:
            # scalars over the full bank, before the coreset (M3DM)
            self.mean = float(torch.mean(patches))
            self.std = float(torch.std(patches))
            patches = self._normalised(patches)
        self.n_patches = n
        self.projected_dim = None
        if self.coreset_fraction >= 1:
            self.selected = torch.arange(n, dtype=torch.int64)
        else:
            n_select = max(1, int(self.coreset_fraction * n))
            projected = None
            if n_select < n:
                projected = random_projection(patches, self.projection_eps, self.seed)
            if projected is not None:
                self.projected_dim = int(projected.shape[1])
            coreset_input = projected if projected is not None else patches
            self.selected = greedy_coreset(coreset_input, n_select, device=self.device,
                                           half=self.half, progress=progress)
        # the ORIGINAL (normalised when asked) rows, kept on the device for scoring
        self.bank = patches.index_select(0, self.selected.to(patches.device)).to(self.device)
        return self

    def score(self, patches: torch.Tensor,
              grid: tuple[int, int]) -> tuple[float, np.ndarray]:
        """One image's (h * w, D) patches (row-major over the grid) -> (reweighted image score,
        (h, w) float32 grid of each patch's distance to its nearest bank row)."""
        if self.bank is None:
            raise RuntimeError("MemoryBank.score before fit")
        h, w = grid
        if patches.shape[0] != h * w:
            raise ValueError(f"MemoryBank.score: {patches.shape[0]} patches for a {h} x {w} grid")
        patches = self._normalised(patches.detach().to(torch.float32))
        dist, index = nearest_distances(patches, self.bank, k=1, device=self.device)
        image_score = reweighted_image_score(patches, dist[:, 0], index[:, 0], self.bank,
                                             n_reweight=self.n_reweight,
                                             denominator_epsilon=self.denominator_epsilon,
                                             device=self.device)
        return image_score, dist[:, 0].reshape(h, w).numpy().astype(np.float32, copy=False)

    def state(self) -> dict[str, torch.Tensor]:
        """Everything needed to score again without refitting, as CPU tensors (torch.save or
        numpy friendly). Optional values (seed, projected_dim, mean, std) use NaN / -1 for None."""
        if self.bank is None:
            raise RuntimeError("MemoryBank.state before fit")

        def opt(value, missing):
            return missing if value is None else value

        return {
            "bank": self.bank.detach().cpu(),
            "selected": self.selected.detach().cpu(),
            "coreset_fraction": torch.tensor(self.coreset_fraction, dtype=torch.float64),
            "projection_eps": torch.tensor(self.projection_eps, dtype=torch.float64),
            "seed": torch.tensor(opt(self.seed, -1), dtype=torch.int64),
            "half": torch.tensor(bool(self.half)),
            "normalise": torch.tensor(bool(self.normalise)),
            "denominator_epsilon": torch.tensor(self.denominator_epsilon, dtype=torch.float64),
            "n_reweight": torch.tensor(self.n_reweight, dtype=torch.int64),
            "n_patches": torch.tensor(self.n_patches, dtype=torch.int64),
            "projected_dim": torch.tensor(opt(self.projected_dim, -1), dtype=torch.int64),
            "mean": torch.tensor(opt(self.mean, math.nan), dtype=torch.float64),
            "std": torch.tensor(opt(self.std, math.nan), dtype=torch.float64),
        }

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor], device: str = "cpu") -> MemoryBank:
        """Restore a bank saved by ``state()`` onto ``device``."""

        def value(key):
            return state[key].item()

        seed = int(value("seed"))
        projected_dim = int(value("projected_dim"))
        normalise = bool(value("normalise"))
        return cls(
            coreset_fraction=float(value("coreset_fraction")),
            projection_eps=float(value("projection_eps")),
            seed=None if seed < 0 else seed,
            half=bool(value("half")),
            device=device,
            normalise=normalise,
            denominator_epsilon=float(value("denominator_epsilon")),
            n_reweight=int(value("n_reweight")),
            bank=state["bank"].to(device),
            selected=state["selected"].to(torch.int64),
            mean=float(value("mean")) if normalise else None,
            std=float(value("std")) if normalise else None,
            n_patches=int(value("n_patches")),
            projected_dim=None if projected_dim < 0 else projected_dim,
        )

    def describe(self) -> dict:
        """JSON-able settings and statistics for the run record."""
        return {
            "coreset_fraction": self.coreset_fraction,
            "projection_eps": self.projection_eps,
            "projection_seed": self.seed,
            "coreset_fp16": self.half,
            "device": self.device,
            "normalise": self.normalise,
            "denominator_epsilon": self.denominator_epsilon,
            "n_reweight": self.n_reweight,
            "n_patches": self.n_patches,
            "n_selected": None if self.selected is None else int(self.selected.shape[0]),
            "feature_dim": None if self.bank is None else int(self.bank.shape[1]),
            "projected_dim": self.projected_dim,
            "mean": self.mean,
            "std": self.std,
        }
