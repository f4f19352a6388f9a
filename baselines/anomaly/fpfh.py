"""FPFH patch features of a 224x224 organised point cloud, as the BTF baseline computes them
(BASELINES.md C.2).

1. The valid points (all three coordinates != 0) get open3d normals (hybrid KD-tree search,
   radius 0.1, at most 30 neighbours) and then 33-d FPFH features (radius 0.25, at most 100
   neighbours). The published "voxel_size 0.05" only sets these radii (2x and 5x); there is
   no voxel downsampling.
2. The features are scattered back to their pixels (zeros at invalid pixels): (33, H, W).
3. AvgPool2d(3, stride 1, no padding) then AdaptiveAvgPool2d(28x28): 784 row-major patches.

open3d and torch are imported only inside the functions that use them.
"""

from __future__ import annotations

import numpy as np

VOXEL_SIZE = 0.05
NORMAL_RADIUS = 2 * VOXEL_SIZE
NORMAL_MAX_NN = 30
FEATURE_RADIUS = 5 * VOXEL_SIZE
FEATURE_MAX_NN = 100
FPFH_DIM = 33
PATCH_GRID = 28


def fpfh_point_features(points: np.ndarray) -> np.ndarray:
    """(N, 33) float32 FPFH features of an (N, 3) point set, with open3d's own normals."""
    import open3d as o3d

    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if len(points) == 0:  # open3d's FPFH has nothing to do; keep the shape consistent
        return np.zeros((0, FPFH_DIM), dtype=np.float32)
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    cloud.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=NORMAL_RADIUS,
                                                                max_nn=NORMAL_MAX_NN))
    feature = o3d.pipelines.registration.compute_fpfh_feature(
        cloud, o3d.geometry.KDTreeSearchParamHybrid(radius=FEATURE_RADIUS,
                                                    max_nn=FEATURE_MAX_NN))
    return np.asarray(feature.data, dtype=np.float32).T  # open3d stores (33, N)


def fpfh_grid(xyz: np.ndarray) -> np.ndarray:
    """(33, H, W) float32: FPFH of the valid points of an (H, W, 3) organised cloud at their
    pixels, zeros at invalid pixels."""
    if xyz.ndim != 3 or xyz.shape[2] != 3:
        raise ValueError(f"an organised point cloud must be (H, W, 3), got shape {xyz.shape}")
    valid = np.all(xyz != 0, axis=-1)
    grid = np.zeros(xyz.shape[:2] + (FPFH_DIM,), dtype=np.float32)
    grid[valid] = fpfh_point_features(xyz[valid])  # boolean indexing is row-major both ways
    return np.ascontiguousarray(grid.transpose(2, 0, 1))


def pool_to_patches(feature_map: np.ndarray, grid: int = PATCH_GRID) -> np.ndarray:
    """(grid*grid, C) float32 patch features of a (C, H, W) map: AvgPool2d(3, stride 1, no
    padding) then AdaptiveAvgPool2d((grid, grid)), exactly torch's ops; row-major patches."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(feature_map, dtype=np.float32))[None]
    x = F.adaptive_avg_pool2d(F.avg_pool2d(x, kernel_size=3, stride=1), (grid, grid))
    return x[0].reshape(x.shape[1], -1).T.contiguous().numpy()


def fpfh_patches(xyz: np.ndarray, grid: int = PATCH_GRID) -> np.ndarray:
    """(grid*grid, 33) float32 FPFH patch features of a 224x224 organised cloud."""
    return pool_to_patches(fpfh_grid(xyz), grid)
