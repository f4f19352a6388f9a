"""The fast DBSCAN (baselines.anomaly.grid_dbscan) against open3d's cluster_dbscan: same labels, same
core points, same kept points after the published preprocessing. One 800 x 800 scan goes
through open3d (about 25 s on an idle core); the rest are small."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("open3d", reason="the baselines extra is not installed")

from baselines.anomaly import pointcloud as pc  # noqa: E402
from baselines.anomaly.grid_dbscan import grid_dbscan, organised_pairs  # noqa: E402
from baselines.anomaly.synthetic_clutter import cluttered_scan  # noqa: E402


def open3d_labels(points, eps, min_points) -> np.ndarray:
    return pc.dbscan_labels(points, eps, min_points)


def open3d_core(points, eps, min_points) -> np.ndarray:
    """Core flags from open3d's own neighbour search (radius search, self included)."""
    import open3d as o3d

    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    tree = o3d.geometry.KDTreeFlann(cloud)
    return np.array([tree.search_radius_vector_3d(p, eps)[0] >= min_points for p in points])


def blobs_and_noise(seed: int) -> np.ndarray:
    """Dense blobs, sparse bridges between some of them and uniform noise in a unit box."""
    rng = np.random.default_rng(seed)
    parts = [rng.uniform(0, 1, (300, 3))]
    centres = rng.uniform(0.15, 0.85, (6, 3))
    for centre in centres:
        size = int(rng.integers(20, 200))
        parts.append(centre + rng.normal(0, rng.uniform(0.01, 0.04), (size, 3)))
    for a, b in zip(centres[:-1], centres[1:]):
        t = rng.uniform(0, 1, (25, 1))
        parts.append(a + t * (b - a) + rng.normal(0, 0.01, (25, 3)))
    points = np.concatenate(parts)
    return points[rng.permutation(len(points))]


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("eps, min_points", [(0.05, 8), (0.08, 20), (0.03, 3)])
def test_labels_and_core_points_equal_open3d_on_random_clouds(seed, eps, min_points):
    points = blobs_and_noise(seed)
    result = grid_dbscan(points, eps, min_points)
    assert np.array_equal(result.labels, open3d_labels(points, eps, min_points))
    assert np.array_equal(result.core, open3d_core(points, eps, min_points))
    # Hints never change the result, even wrong ones (pairs that are not neighbours).
    rng = np.random.default_rng(seed)
    hints = rng.integers(0, len(points), (2, 2000))
    assert np.array_equal(grid_dbscan(points, eps, min_points, hints).labels, result.labels)


def test_a_point_exactly_eps_away_is_not_a_neighbour():
    """open3d's radius search is strict (distance < eps); 0.5 is exact in binary."""
    points = np.array([[1.0, 1.0, 1.0], [1.5, 1.0, 1.0], [1.5, 1.5, 1.0], [1.0, 1.5, 1.0]])
    for eps in (0.5, np.nextafter(0.5, 1)):
        assert np.array_equal(grid_dbscan(points, eps, 2).labels,
                              open3d_labels(points, eps, 2))
    assert (grid_dbscan(points, 0.5, 2).labels == -1).all()
    assert (grid_dbscan(points, np.nextafter(0.5, 1), 2).labels == 0).all()


def test_border_point_between_two_clusters_takes_the_first_clusters_label():
    """Two lines of points (clusters 0 and 1 in index order) and one point within eps of an
    end of each but with too few neighbours to be core: DBSCAN's definition allows either
    label; open3d gives the first cluster's, and it is flagged ambiguous."""
    first = np.array([[x, 0.0, 0.0] for x in np.arange(9) * 0.05])   # 0 ... 0.4
    second = first + [0.7, 0, 0]                                      # 0.7 ... 1.1
    middle = np.array([[0.55, 0.0, 0.0]])       # 0.15 from both ends: 3 neighbours, not 4
    for order in ([second, middle, first], [first, middle, second]):
        points = np.concatenate(order)
        result = grid_dbscan(points, 0.16, 4)
        expected = open3d_labels(points, 0.16, 4)
        assert np.array_equal(result.labels, expected)
        assert set(expected) == {0, 1}
        assert result.labels[9] == 0 and not result.core[9] and result.ambiguous[9]
        assert result.ambiguous.sum() == 1


def test_no_points_no_core_points_and_every_point_core():
    assert grid_dbscan(np.zeros((0, 3)), 0.1, 5).labels.shape == (0,)
    sparse = np.arange(30, dtype=np.float64).reshape(10, 3)
    assert (grid_dbscan(sparse, 0.1, 2).labels == -1).all()
    assert np.array_equal(grid_dbscan(sparse, 0.1, 1).labels, np.arange(10))
    assert np.array_equal(open3d_labels(sparse, 0.1, 1), np.arange(10))


def test_bad_arguments_are_refused_clearly():
    with pytest.raises(ValueError, match="finite"):
        grid_dbscan(np.array([[0.0, np.nan, 1.0]]), 0.1, 3)
    with pytest.raises(ValueError, match="eps > 0"):
        grid_dbscan(np.ones((3, 3)), 0.0, 3)
    with pytest.raises(ValueError, match="too wide"):
        grid_dbscan(np.array([[0.0, 0, 0], [1e9, 0, 0]]), 0.006, 3)


def padded_cloud(xyz, rgb):
    """The published steps before DBSCAN: border plane removed, padded to a square."""
    flat_xyz, flat_rgb, _ = pc.remove_plane(xyz, rgb)
    return pc.pad_to_square(flat_xyz)[0], pc.pad_to_square(flat_rgb)[0]


def published_keep(xyz: np.ndarray) -> np.ndarray:
    """Kept pixels as the published code chose them: open3d's labels, argmax of the label
    counts with noise counted."""
    valid = pc.valid_mask(xyz)
    labels = open3d_labels(xyz[valid].astype(np.float64), pc.DBSCAN_EPS, pc.DBSCAN_MIN_POINTS)
    keep = np.zeros_like(valid)
    keep[valid] = labels == pc.largest_label(labels)
    return keep


@pytest.mark.parametrize("size, seed", [(160, 0), (200, 1), (240, 2), (300, 3)])
def test_cluttered_scans_keep_the_points_open3d_keeps(size, seed):
    xyz, rgb = cluttered_scan(size, seed, category=("bagel", "cookie", "tire", "carrot")[seed])
    padded, _ = padded_cloud(xyz, rgb)
    valid = pc.valid_mask(padded)
    points = padded[valid].astype(np.float64)
    result = grid_dbscan(points, pc.DBSCAN_EPS, pc.DBSCAN_MIN_POINTS, organised_pairs(valid))
    assert np.array_equal(result.labels,
                          open3d_labels(points, pc.DBSCAN_EPS, pc.DBSCAN_MIN_POINTS))
    # The flake pair's gap points are there and ambiguous (see baselines.anomaly.synthetic_clutter).
    assert result.ambiguous.sum() >= 3
    done = pc.preprocess(xyz, rgb)
    assert np.array_equal(pc.valid_mask(done.xyz), published_keep(padded))


def test_noise_is_kept_when_it_outnumbers_every_cluster():
    xyz, rgb = cluttered_scan(160, 5)
    rng = np.random.default_rng(5)
    scattered = np.zeros(xyz.shape[:2], dtype=bool)
    scattered[12:-12, 12:-12] = rng.random((136, 136)) < 0.6   # inside the plane-fit border
    xyz[scattered] = rng.uniform([-0.5, -0.5, 0.3], [0.5, 0.5, 1.3], (int(scattered.sum()), 3))
    padded, _ = padded_cloud(xyz, rgb)
    keep = published_keep(padded)
    valid = pc.valid_mask(padded)
    labels = open3d_labels(padded[valid].astype(np.float64), pc.DBSCAN_EPS,
                           pc.DBSCAN_MIN_POINTS)
    assert pc.largest_label(labels) == -1
    assert np.array_equal(pc.valid_mask(pc.preprocess(xyz, rgb).xyz), keep)


def test_800_scan_with_debris_and_outliers_keeps_exactly_open3ds_points():
    """The size MVTec 3D-AD's scans have; open3d takes ~25 s on it, the grid well under 1."""
    xyz, rgb = cluttered_scan(800, 7, category="cable_gland")
    padded, padded_rgb = padded_cloud(xyz, rgb)
    keep = published_keep(padded)
    done = pc.preprocess(xyz, rgb)
    assert np.array_equal(pc.valid_mask(done.xyz), keep)
    assert np.array_equal(done.xyz, np.where(keep[..., None], padded, 0))
    assert np.array_equal(done.rgb, np.where(keep[..., None], padded_rgb, 0))
