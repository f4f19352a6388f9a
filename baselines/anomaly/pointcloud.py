"""MVTec 3D-AD point-cloud preprocessing as BTF and M3DM published it (BASELINES.md C.1).

An *organised point cloud* is an (H, W, 3) float32 array, one 3-D point per pixel. A point is
valid iff all three coordinates are != 0; invalid points are (0, 0, 0). RGB is (H, W, 3) uint8
with the same H, W.

The published preprocessing, in its order:

1. fit a plane (open3d RANSAC) to the valid points of the 10-pixel image border and zero the
   xyz *and* RGB of every point within 0.005 of it (``remove_plane``);
2. zero-pad to a square whose side is the larger side rounded up to a multiple of 100
   (``pad_to_square``);
3. DBSCAN (eps 0.006, min_points 30) and keep only the largest cluster
   (``keep_largest_cluster``). The labels are open3d's ``cluster_dbscan`` labels, computed by
   ``baselines.anomaly.grid_dbscan`` (identical, over 100 times faster on 800 x 800 scans).

The published script overwrote the dataset files in place; every function here returns new
arrays and never writes into its inputs (the caller caches the results on disk).
``resize_organised`` is the nearest-neighbour 224x224 resize the loaders apply afterwards.
open3d and scipy are imported only inside the functions that use them, so importing this
module is cheap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BORDER_WIDTH = 10
PLANE_FIT_DISTANCE = 0.004
PLANE_RANSAC_N = 50
PLANE_ITERATIONS = 1000
PLANE_REMOVE_DISTANCE = 0.005
PAD_MULTIPLE = 100
DBSCAN_EPS = 0.006
DBSCAN_MIN_POINTS = 30


@dataclass(frozen=True)
class Preprocessed:
    """The output of ``preprocess``: xyz and rgb padded to the square, and how to undo it."""

    xyz: np.ndarray  # (S, S, 3) float32
    rgb: np.ndarray | None  # (S, S, 3) uint8, or None when no RGB was given
    offset: tuple[int, int]  # (top, left) of the original image inside the square
    original_shape: tuple[int, int]  # (h, w) before padding
    n_clusters: int  # DBSCAN clusters, noise not counted
    plane: np.ndarray  # (4,) float64: a, b, c, d of the border plane


def valid_mask(xyz: np.ndarray) -> np.ndarray:
    """(H, W) bool: True where all three coordinates are != 0 (the published convention)."""
    return np.all(xyz != 0, axis=-1)


def _check_cloud(xyz: np.ndarray, rgb: np.ndarray | None = None) -> None:
    if xyz.ndim != 3 or xyz.shape[2] != 3:
        raise ValueError(f"an organised point cloud must be (H, W, 3), got shape {xyz.shape}")
    if rgb is not None and rgb.shape != xyz.shape:
        raise ValueError(f"RGB shape {rgb.shape} does not match the point cloud {xyz.shape}")


def border_points(xyz: np.ndarray, width: int = BORDER_WIDTH) -> np.ndarray:
    """(M, 3) valid points of the image border: top rows, bottom rows, left and right columns.

    The corners are taken twice, as in the published code; for a plane fit that is harmless,
    and keeping the same order keeps the seeded RANSAC close to the published one.
    """
    _check_cloud(xyz)
    strips = [xyz[:width], xyz[-width:], xyz[:, :width], xyz[:, -width:]]
    points = np.concatenate([s.reshape(-1, 3) for s in strips], axis=0)
    return points[np.all(points != 0, axis=1)]


def fit_plane(points: np.ndarray, distance: float = PLANE_FIT_DISTANCE,
              ransac_n: int = PLANE_RANSAC_N, iterations: int = PLANE_ITERATIONS,
              seed: int = 0) -> np.ndarray:
    """(4,) plane a, b, c, d from open3d's RANSAC ``segment_plane``, with its RNG seeded.

    Raises ValueError when there are fewer than ``ransac_n`` points (open3d would fail with
    a less readable message); callers wrap it with the file name.
    """
    import open3d as o3d

    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if len(points) < ransac_n:
        raise ValueError(f"only {len(points)} valid border points, the plane fit needs at least "
                         f"{ransac_n}")
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    o3d.utility.random.seed(seed)  # RANSAC samples are drawn from open3d's global RNG
    plane, _ = cloud.segment_plane(distance_threshold=distance, ransac_n=ransac_n,
                                   num_iterations=iterations)
    return np.asarray(plane, dtype=np.float64).reshape(4)


def remove_plane(xyz: np.ndarray, rgb: np.ndarray | None,
                 distance: float = PLANE_REMOVE_DISTANCE, plane: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Zero xyz and RGB of every point with |a x + b y + c z + d| < distance.

    The plane is fitted to the border (``border_points`` + ``fit_plane``) unless given.
    Invalid (0, 0, 0) points have distance |d|; they may be "removed" too, which changes
    nothing since they are already zero. Returns (xyz, rgb, removed_mask (H, W)).
    """
    _check_cloud(xyz, rgb)
    if plane is None:
        plane = fit_plane(border_points(xyz))
    plane = np.asarray(plane, dtype=np.float64)
    removed = np.abs(xyz.astype(np.float64) @ plane[:3] + plane[3]) < distance
    return _zero_where(xyz, removed), _zero_where(rgb, removed), removed


def _zero_where(array: np.ndarray | None, mask: np.ndarray) -> np.ndarray | None:
    """A copy of ``array`` with the pixels in ``mask`` set to 0 (None stays None)."""
    if array is None:
        return None
    out = array.copy()
    out[mask] = 0
    return out


def square_padding(h: int, w: int, multiple: int = PAD_MULTIPLE
                   ) -> tuple[int, tuple[int, int]]:
    """(side, (top, left)) of the published padding of an h x w image."""
    side = max(-(-h // multiple) * multiple, -(-w // multiple) * multiple)
    return side, ((side - h) // 2, (side - w) // 2)


def pad_to_square(array: np.ndarray, multiple: int = PAD_MULTIPLE
                  ) -> tuple[np.ndarray, tuple[int, int]]:
    """Zero-pad an (H, W) or (H, W, C) array to a square (side: larger side rounded up to a
    multiple of ``multiple``), centred as published: top = (side - h) // 2, bottom the rest,
    likewise left/right. Returns (padded, (top, left))."""
    h, w = array.shape[:2]
    side, (top, left) = square_padding(h, w, multiple)
    padded = np.zeros((side, side) + array.shape[2:], dtype=array.dtype)
    padded[top:top + h, left:left + w] = array
    return padded, (top, left)


def dbscan_labels(points: np.ndarray, eps: float = DBSCAN_EPS,
                  min_points: int = DBSCAN_MIN_POINTS) -> np.ndarray:
    """(N,) int labels from open3d's DBSCAN; -1 is noise. The published code's call; the
    preprocessing uses ``baselines.anomaly.grid_dbscan``, which gives the same labels much faster,
    and tests and perf/ compare the two."""
    import open3d as o3d

    cloud = o3d.geometry.PointCloud(
        o3d.utility.Vector3dVector(np.asarray(points, dtype=np.float64)))
    return np.asarray(cloud.cluster_dbscan(eps=eps, min_points=min_points), dtype=np.int64)


def organised_dbscan_labels(xyz: np.ndarray, valid: np.ndarray, eps: float = DBSCAN_EPS,
                            min_points: int = DBSCAN_MIN_POINTS) -> np.ndarray:
    """Labels of ``xyz[valid]`` equal to ``dbscan_labels(xyz[valid])`` (open3d's), computed
    by ``grid_dbscan`` with adjacent pixels as hints."""
    from baselines.anomaly.grid_dbscan import grid_dbscan, organised_pairs

    return grid_dbscan(xyz[valid], eps, min_points, organised_pairs(valid)).labels


def largest_label(labels: np.ndarray) -> int:
    """The most frequent label, *counting the noise label -1 like any cluster*.

    This reproduces the published code, which takes the argmax of np.unique's counts over all
    labels: when noise points outnumber every cluster, the noise "cluster" is the one kept.
    Ties go to the smaller label (np.argmax takes the first), so noise wins a tie.
    """
    values, counts = np.unique(labels, return_counts=True)
    return int(values[np.argmax(counts)])


def keep_largest_cluster(xyz: np.ndarray, rgb: np.ndarray | None, eps: float = DBSCAN_EPS,
                         min_points: int = DBSCAN_MIN_POINTS
                         ) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Keep only the largest DBSCAN cluster of the valid points (see ``largest_label`` for
    the published noise quirk); zero everything else in xyz and RGB.

    Returns (xyz, rgb, n_clusters), n_clusters not counting noise. With no valid point the
    arrays come back unchanged (as copies) with 0 clusters.
    """
    _check_cloud(xyz, rgb)
    valid = valid_mask(xyz)
    if not valid.any():
        return xyz.copy(), None if rgb is None else rgb.copy(), 0
    labels = organised_dbscan_labels(xyz, valid, eps, min_points)
    keep = np.zeros_like(valid)
    keep[valid] = labels == largest_label(labels)
    n_clusters = int(labels.max()) + 1  # labels are -1, 0, 1, ..., n-1
    return _zero_where(xyz, ~keep), _zero_where(rgb, ~keep), n_clusters


def preprocess(xyz: np.ndarray, rgb: np.ndarray | None) -> Preprocessed:
    """The published preprocessing: plane removal, square padding, largest cluster (in that
    order). Inputs are not modified; xyz comes back float32."""
    xyz = np.asarray(xyz, dtype=np.float32)
    _check_cloud(xyz, rgb)
    plane = fit_plane(border_points(xyz))
    flat_xyz, flat_rgb, _ = remove_plane(xyz, rgb, plane=plane)
    padded_xyz, offset = pad_to_square(flat_xyz)
    padded_rgb = None if flat_rgb is None else pad_to_square(flat_rgb)[0]
    out_xyz, out_rgb, n_clusters = keep_largest_cluster(padded_xyz, padded_rgb)
    return Preprocessed(xyz=out_xyz, rgb=out_rgb, offset=offset,
                        original_shape=(xyz.shape[0], xyz.shape[1]), n_clusters=n_clusters,
                        plane=plane)


def nearest_indices(in_size: int, out_size: int) -> np.ndarray:
    """Source indices of torch's ``interpolate(mode="nearest")``: floor(dst * in / out).

    torch computes the scale in float32, so this does too (it matters for exact ties).
    """
    scale = np.float32(in_size) / np.float32(out_size)
    index = np.floor(np.arange(out_size, dtype=np.float32) * scale).astype(np.int64)
    return np.minimum(index, in_size - 1)


def resize_organised(xyz: np.ndarray, size: int = 224) -> np.ndarray:
    """Nearest-neighbour resize of an (H, W, C) organised cloud to (size, size, C), as the
    published loaders do with ``F.interpolate``; nearest never mixes valid and invalid
    points."""
    rows = nearest_indices(xyz.shape[0], size)
    cols = nearest_indices(xyz.shape[1], size)
    return xyz[rows[:, None], cols[None, :]]
