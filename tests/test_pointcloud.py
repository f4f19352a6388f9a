"""Point-cloud preprocessing (MVTec 3D-AD), FPFH patch features and the Eyecandies
depth-to-cloud conversion, on tiny synthetic clouds (BASELINES.md C.1, C.2, D)."""

from __future__ import annotations

import numpy as np
import pytest

from baselines.anomaly import eyecandies_cloud as ec
from baselines.anomaly import fpfh
from baselines.anomaly import pointcloud as pc
from baselines.errors import BaselineDataError

OBJECT_RADIUS = 20  # pixels
OBJECT_HEIGHT = 0.02  # metres above (closer to the camera than) the table


def synthetic_scene(h: int = 120, w: int = 120, seed: int = 0) -> dict:
    """A tilted table at z ~ 0.45 m (1 mm pixels), a flat-topped disc 2 cm above it in the
    middle, ~2 % invalid pixels, five isolated far outliers and a small 6x6 patch floating
    5 cm above the table (a second, smaller cluster). RGB is non-zero everywhere."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:h, 0:w]
    x = (cols - w / 2 + 0.5) * 0.001  # never exactly 0: a zero coordinate means invalid
    y = (rows - h / 2 + 0.5) * 0.001
    z = 0.45 + 0.05 * x + 0.03 * y + rng.normal(0, 0.0003, (h, w))
    obj = (rows - h // 2) ** 2 + (cols - w // 2) ** 2 <= OBJECT_RADIUS ** 2
    z = np.where(obj, z - OBJECT_HEIGHT, z)
    xyz = np.stack([x, y, z], axis=-1).astype(np.float32)
    patch = np.zeros((h, w), bool)
    patch[15:21, 15:21] = True
    xyz[patch, 2] -= 0.05
    outliers = np.zeros((h, w), bool)
    outliers[[14, 30, 100, 105, 60], [70, 14, 20, 70, 14]] = True
    xyz[outliers, 2] = 0.2 + 0.01 * np.arange(outliers.sum())
    invalid = (rng.random((h, w)) < 0.02) & ~obj
    xyz[invalid] = 0.0
    rgb = rng.integers(1, 256, (h, w, 3), dtype=np.uint8)
    table = ~(obj | patch | outliers | invalid)
    return {"xyz": xyz, "rgb": rgb, "object": obj & ~invalid, "table": table,
            "patch": patch, "outliers": outliers}


@pytest.fixture(scope="module")
def scene() -> dict:
    return synthetic_scene(120, 90)


@pytest.fixture(scope="module")
def processed(scene) -> pc.Preprocessed:
    xyz, rgb = scene["xyz"].copy(), scene["rgb"].copy()
    xyz.setflags(write=False)  # any in-place write would raise
    rgb.setflags(write=False)
    return pc.preprocess(xyz, rgb)


def unpad(array: np.ndarray, result: pc.Preprocessed) -> np.ndarray:
    (top, left), (h, w) = result.offset, result.original_shape
    return array[top:top + h, left:left + w]


# --- MVTec 3D-AD preprocessing ---------------------------------------------------------------

def test_border_points_are_the_valid_border_pixels():
    xyz = np.arange(1, 30 * 40 * 3 + 1, dtype=np.float32).reshape(30, 40, 3)
    xyz[0, 20] = 0.0  # invalid: all zero
    xyz[12, 0, 1] = 0.0  # invalid: one zero coordinate is enough
    points = pc.border_points(xyz)
    # 10 top + 10 bottom rows of 40, 10 left + 10 right columns of 30, minus the 2 invalid
    # (the left-column one lies in no row strip; the top-row one also in no column strip).
    assert points.shape == (2 * 10 * 40 + 2 * 10 * 30 - 2, 3)
    assert np.all(points != 0)
    assert not np.any(np.all(points == xyz[15, 15], axis=1))  # interior pixel excluded


def test_fit_plane_finds_the_table_and_needs_enough_points(scene):
    plane = pc.fit_plane(pc.border_points(scene["xyz"]))
    normal = plane[:3] / np.linalg.norm(plane[:3])
    expected = np.array([0.05, 0.03, -1.0]) / np.linalg.norm([0.05, 0.03, -1.0])
    assert abs(abs(normal @ expected) - 1) < 1e-3
    with pytest.raises(ValueError, match="only 49 valid border points"):
        pc.fit_plane(np.ones((49, 3)))


def test_remove_plane_zeroes_table_in_xyz_and_rgb_without_touching_inputs(scene):
    xyz, rgb = scene["xyz"].copy(), scene["rgb"].copy()
    out_xyz, out_rgb, removed = pc.remove_plane(xyz, rgb)
    np.testing.assert_array_equal(xyz, scene["xyz"])
    np.testing.assert_array_equal(rgb, scene["rgb"])
    assert removed[scene["table"]].mean() > 0.99
    assert not removed[scene["object"]].any()
    assert np.all(out_xyz[removed] == 0) and np.all(out_rgb[removed] == 0)
    np.testing.assert_array_equal(out_rgb[~removed], rgb[~removed])


def test_pad_to_square_sizes_and_offsets():
    cases = {(120, 90): (200, (40, 55)), (200, 100): (200, (0, 50)),
             (100, 100): (100, (0, 0)), (101, 30): (200, (49, 85)), (1, 250): (300, (149, 25))}
    for (h, w), (side, offset) in cases.items():
        image = np.arange(1, h * w + 1).reshape(h, w)
        padded, got = pc.pad_to_square(image)
        assert padded.shape == (side, side) and got == offset
        top, left = offset
        np.testing.assert_array_equal(padded[top:top + h, left:left + w], image)
        assert padded.sum() == image.sum()  # zeros everywhere else
    rgb_padded, _ = pc.pad_to_square(np.ones((120, 90, 3), np.uint8))
    assert rgb_padded.shape == (200, 200, 3) and rgb_padded.dtype == np.uint8


def test_keep_largest_cluster_drops_small_clusters_and_noise(scene):
    xyz, rgb, removed = pc.remove_plane(scene["xyz"], scene["rgb"])
    out_xyz, out_rgb, n_clusters = pc.keep_largest_cluster(xyz, rgb)
    kept = pc.valid_mask(out_xyz)
    assert n_clusters == 2  # the disc and the floating patch; the outliers are noise
    np.testing.assert_array_equal(kept, scene["object"])
    np.testing.assert_array_equal(out_rgb.any(axis=-1), kept)


def test_keep_largest_cluster_keeps_noise_when_it_outnumbers_clusters():
    # Published quirk: the noise label -1 competes like a cluster. 200 isolated points (2 cm
    # apart, eps is 6 mm) against one dense 40-point cluster: the noise is kept.
    xyz = np.zeros((20, 20, 3), np.float32)
    rows, cols = np.mgrid[0:20, 0:20]
    xyz[..., 0], xyz[..., 1], xyz[..., 2] = (cols + 1) * 0.02, (rows + 1) * 0.02, 0.5
    xyz[:10] = 0.0  # 200 sparse points remain in rows 10..19
    dense = np.stack([np.full(40, 0.3), np.full(40, 0.3), 0.1 + 0.0001 * np.arange(40)], 1)
    xyz[:2].reshape(-1, 3)[:40] = dense
    out, _, n_clusters = pc.keep_largest_cluster(xyz, None)
    assert n_clusters == 1
    assert not pc.valid_mask(out)[:2].any()
    np.testing.assert_array_equal(out[10:], xyz[10:])
    assert pc.largest_label(np.array([-1, -1, 0, 0, 1])) == -1  # ties go to noise


def test_keep_largest_cluster_without_valid_points():
    xyz = np.zeros((5, 5, 3), np.float32)
    rgb = np.full((5, 5, 3), 7, np.uint8)
    out_xyz, out_rgb, n_clusters = pc.keep_largest_cluster(xyz, rgb)
    assert n_clusters == 0
    np.testing.assert_array_equal(out_rgb, rgb)
    assert out_rgb is not rgb and not out_xyz.any()


def test_preprocess_removes_table_and_outliers_keeps_object(scene, processed):
    assert processed.xyz.shape == (200, 200, 3) and processed.xyz.dtype == np.float32
    assert processed.rgb.shape == (200, 200, 3) and processed.rgb.dtype == np.uint8
    assert processed.offset == (40, 55) and processed.original_shape == (120, 90)
    assert processed.n_clusters == 2 and processed.plane.shape == (4,)
    kept = pc.valid_mask(unpad(processed.xyz, processed))
    assert (~kept[scene["table"]]).mean() >= 0.9
    np.testing.assert_array_equal(kept, scene["object"])  # patch and outliers are gone too
    np.testing.assert_array_equal(unpad(processed.xyz, processed)[kept], scene["xyz"][kept])
    # RGB is zeroed exactly where xyz was removed, and the padding is zero.
    np.testing.assert_array_equal(processed.rgb.any(axis=-1), pc.valid_mask(processed.xyz))
    np.testing.assert_array_equal(unpad(processed.rgb, processed)[kept], scene["rgb"][kept])
    assert pc.valid_mask(processed.xyz).sum() == kept.sum()


def test_preprocess_leaves_inputs_alone_and_is_reproducible(scene, processed):
    xyz, rgb = scene["xyz"].copy(), scene["rgb"].copy()
    again = pc.preprocess(xyz, rgb)
    np.testing.assert_array_equal(xyz, scene["xyz"])
    np.testing.assert_array_equal(rgb, scene["rgb"])
    np.testing.assert_array_equal(again.xyz, processed.xyz)
    np.testing.assert_array_equal(again.rgb, processed.rgb)
    np.testing.assert_array_equal(again.plane, processed.plane)


@pytest.mark.parametrize("shape", [(800, 800), (600, 600), (300, 500), (224, 224),
                                   (200, 200), (112, 112), (37, 41), (333, 333)])
def test_resize_organised_matches_torch_nearest(shape):
    torch = pytest.importorskip("torch")
    xyz = np.random.default_rng(1).random(shape + (3,), dtype=np.float32)
    expected = torch.nn.functional.interpolate(
        torch.from_numpy(xyz).permute(2, 0, 1)[None], size=(224, 224), mode="nearest")
    got = pc.resize_organised(xyz)
    assert got.shape == (224, 224, 3)
    np.testing.assert_array_equal(got, expected[0].permute(1, 2, 0).numpy())


# --- FPFH --------------------------------------------------------------------------------------

def curved_cloud(h: int, w: int, invalid_fraction: float, seed: int = 0) -> np.ndarray:
    """A wavy surface (so FPFH varies from point to point) with some invalid pixels."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:h, 0:w]
    x, y = cols * 0.02, rows * 0.02
    z = 0.5 + 0.05 * np.sin(6 * x) * np.cos(4 * y)
    xyz = np.stack([x + 0.01, y + 0.01, z], axis=-1).astype(np.float32)
    xyz[rng.random((h, w)) < invalid_fraction] = 0.0
    return xyz


def test_fpfh_grid_scatters_open3d_features_to_their_pixels():
    import open3d as o3d

    xyz = curved_cloud(24, 30, 0.2)
    valid = pc.valid_mask(xyz)
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz[valid].astype(np.float64)))
    cloud.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=0.1, max_nn=30))
    direct = np.asarray(o3d.pipelines.registration.compute_fpfh_feature(
        cloud, o3d.geometry.KDTreeSearchParamHybrid(radius=0.25, max_nn=100)).data).T
    assert len(np.unique(direct.round(3), axis=0)) > len(direct) // 2  # order matters
    grid = fpfh.fpfh_grid(xyz)
    assert grid.shape == (33, 24, 30) and grid.dtype == np.float32
    rows, cols = np.nonzero(valid)
    for k in (0, 7, len(rows) // 2, len(rows) - 1):
        np.testing.assert_allclose(grid[:, rows[k], cols[k]], direct[k], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(grid[:, valid].T, direct, rtol=1e-5, atol=1e-4)
    assert not grid[:, ~valid].any()


def test_fpfh_point_features_of_no_points():
    assert fpfh.fpfh_point_features(np.zeros((0, 3))).shape == (0, 33)
    assert not fpfh.fpfh_grid(np.zeros((4, 5, 3), np.float32)).any()


def numpy_pool(feature_map: np.ndarray, grid: int) -> np.ndarray:
    """Reference: 3x3 mean (stride 1, valid), then adaptive mean over torch's bins
    [floor(i*n/g), ceil((i+1)*n/g)); row-major patches."""
    c, h, w = feature_map.shape
    windows = np.lib.stride_tricks.sliding_window_view(feature_map, (3, 3), axis=(1, 2))
    smooth = windows.mean(axis=(-2, -1), dtype=np.float64)
    n = smooth.shape[1]
    bins = [(i * n // grid, -(-(i + 1) * n // grid)) for i in range(grid)]
    out = np.empty((grid, grid, c))
    for i, (r0, r1) in enumerate(bins):
        for j, (c0, c1) in enumerate(bins):
            out[i, j] = smooth[:, r0:r1, c0:c1].mean(axis=(1, 2))
    return out.reshape(grid * grid, c)


def test_pool_to_patches_equals_torch_modules_and_reference():
    torch = pytest.importorskip("torch")
    feature_map = np.random.default_rng(2).random((5, 224, 224), dtype=np.float32)
    modules = torch.nn.Sequential(torch.nn.AvgPool2d(3, stride=1),
                                  torch.nn.AdaptiveAvgPool2d((28, 28)))
    expected = modules(torch.from_numpy(feature_map)[None])[0].reshape(5, -1).T.numpy()
    got = fpfh.pool_to_patches(feature_map)
    assert got.shape == (784, 5) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got, numpy_pool(feature_map, 28), rtol=1e-5, atol=1e-6)


def test_fpfh_patches_on_a_sparse_224_cloud():
    xyz = np.zeros((224, 224, 3), np.float32)
    xyz[100:140, 60:110] = curved_cloud(40, 50, 0.1)  # only 2,000 pixels to keep it quick
    patches = fpfh.fpfh_patches(xyz)
    assert patches.shape == (784, 33) and patches.dtype == np.float32
    np.testing.assert_array_equal(patches, fpfh.pool_to_patches(fpfh.fpfh_grid(xyz)))
    active = patches.reshape(28, 28, 33).any(axis=-1)
    assert active[14, 10] and not active[0, 0] and not active[27, 27]


# --- Eyecandies ----------------------------------------------------------------------------

def rotation_xyz(ax: float, ay: float, az: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


POSE = np.eye(4)
POSE[:3, :3] = rotation_xyz(0.4, -0.2, 0.7)
POSE[:3, 3] = [0.1, -0.3, 0.8]


def test_depth_to_cloud_matches_the_per_pixel_formula():
    h, w = 6, 8
    depth = np.random.default_rng(3).uniform(0.5, 1.5, (h, w))
    depth[2, 3] = 0.0  # invalid depth
    k4 = np.array([[711.11, 0, w / 2, 0], [0, 711.11, h / 2, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    inverse = np.linalg.inv(k4 @ POSE)
    expected = np.zeros((h * w, 3))
    for v in range(h):
        for u in range(w):
            d = depth[v, u]
            if d != 0:
                expected[v * w + u] = (d * inverse @ np.array([u, v, 1, 1 / d]))[:3]
    got = ec.depth_to_cloud(depth, POSE)
    assert got.shape == (h * w, 3) and got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    assert not got[2 * w + 3].any() and np.all(np.delete(got, 2 * w + 3, axis=0) != 0)


def table_scene(h: int = 6, w: int = 8, theta: float = 0.3):
    """A cloud built in M3DM's table frame (table y = 0, objects y < 0) and rotated back by
    theta about x around s = (0, 0.5, 1.2). Returns cloud, background mask, R, s."""
    rows, cols = np.mgrid[0:h, 0:w]
    p = np.stack([(cols - w / 2) * 0.3, np.zeros((h, w)), (h - 1 - rows) * 0.45], -1)
    obj = (rows >= 2) & (rows <= 4) & (cols >= 2) & (cols <= 5)
    p[obj, 1] = -0.1
    background = ~obj | (p[..., 2] > 1.8) | (np.abs(p[..., 0]) > 1)
    assert background[obj].sum() < obj.sum() and (~obj & ~background).sum() == 0
    rotation = np.array([[1, 0, 0], [0, np.cos(theta), -np.sin(theta)],
                         [0, np.sin(theta), np.cos(theta)]])
    shift = np.array([0.0, 0.5, 1.2])
    cloud = p.reshape(-1, 3) @ rotation + shift  # R^T p + s
    return cloud, background.ravel(), rotation, shift


def test_remove_background_published_and_zero_modes():
    cloud, background, rotation, shift = table_scene()
    r, s = ec.table_frame(cloud, 8)
    np.testing.assert_allclose(r, rotation, atol=1e-12)
    np.testing.assert_allclose(s, shift, atol=1e-12)
    published = ec.remove_background(cloud, width=8, background="published")
    zero = ec.remove_background(cloud, width=8, background="zero")
    assert published.dtype == zero.dtype == np.float32 and published.shape == (48, 3)
    # Object points: unchanged up to the (x, z, y) * (0.1, -0.1, 0.1) axis change.
    expected = cloud[:, [0, 2, 1]] * [0.1, -0.1, 0.1]
    np.testing.assert_allclose(published[~background], expected[~background], atol=1e-6)
    np.testing.assert_array_equal(zero[~background], published[~background])
    # Published: every background point lands on the same non-zero point R^T(-s) + s.
    constant = (-shift @ rotation + shift)[[0, 2, 1]] * [0.1, -0.1, 0.1]
    np.testing.assert_allclose(published[background], np.tile(constant, (background.sum(), 1)),
                               atol=1e-6)
    assert np.abs(constant).max() > 0.01
    assert not zero[background].any()
    with pytest.raises(ValueError, match="background must be one of"):
        ec.remove_background(cloud, width=8, background="nope")


def write_sample(folder, raw: np.ndarray, low=0.6, high=1.4, pose=POSE):
    from PIL import Image

    Image.fromarray(raw.astype(np.uint16)).save(folder / "000_depth.png")
    (folder / "000_info_depth.yaml").write_text(
        f"normalization:\n  min: {low}\n  max: {high}\n", encoding="utf-8")
    np.savetxt(folder / "000_pose.txt", pose)
    return folder / "000_depth.png", folder / "000_info_depth.yaml", folder / "000_pose.txt"


def test_read_depth_metres_and_eyecandies_cloud(tmp_path):
    raw = np.random.default_rng(4).integers(1, 65536, (6, 8))
    raw[0, 0], raw[1, 1] = 0, 65535
    png, info, pose = write_sample(tmp_path, raw)
    depth = ec.read_depth_metres(png, info)
    assert depth.shape == (6, 8) and depth.dtype == np.float32
    np.testing.assert_allclose(depth, raw / 65535 * 0.8 + 0.6, rtol=1e-6)
    assert depth[0, 0] == pytest.approx(0.6) and depth[1, 1] == pytest.approx(1.4)
    for mode in ("published", "zero"):
        organised = ec.eyecandies_cloud(png, info, pose, background=mode)
        assert organised.shape == (6, 8, 3) and organised.dtype == np.float32
        flat = ec.remove_background(ec.depth_to_cloud(depth, POSE), width=8, background=mode)
        np.testing.assert_allclose(organised.reshape(-1, 3), flat, atol=1e-6)


def test_eyecandies_bad_files_name_the_file(tmp_path):
    from PIL import Image

    png, info, pose = write_sample(tmp_path, np.full((6, 8), 1000))
    eight_bit = tmp_path / "8bit_depth.png"
    Image.fromarray(np.zeros((6, 8), np.uint8)).save(eight_bit)
    with pytest.raises(BaselineDataError, match=r"8bit_depth\.png.*mode 'L'"):
        ec.read_depth_metres(eight_bit, info)
    colour = tmp_path / "rgb_depth.png"
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(colour)
    with pytest.raises(BaselineDataError, match=r"rgb_depth\.png.*'RGB'"):
        ec.read_depth_metres(colour, info)
    not_png = tmp_path / "junk_depth.png"
    not_png.write_text("not an image")
    with pytest.raises(BaselineDataError, match=r"junk_depth\.png"):
        ec.read_depth_metres(not_png, info)
    bad_yaml = {"missing.yaml": "normalization:\n  min: 0.5\n",
                "text.yaml": "normalization:\n  min: low\n  max: 1.0\n",
                "list.yaml": "- 1\n- 2\n", "broken.yaml": "normalization: [\n"}
    for name, text in bad_yaml.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        with pytest.raises(BaselineDataError, match=name.replace(".", r"\.")):
            ec.read_depth_metres(png, tmp_path / name)
    with pytest.raises(BaselineDataError, match=r"absent\.yaml"):
        ec.read_depth_metres(png, tmp_path / "absent.yaml")
    bad_pose = {"short_pose.txt": "1 0 0 0\n0 1 0 0\n0 0 1 0\n",
                "text_pose.txt": "1 0 0 0\n0 1 0 0\n0 0 x 0\n0 0 0 1\n"}
    for name, text in bad_pose.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        with pytest.raises(BaselineDataError, match=name.replace(".", r"\.")):
            ec.eyecandies_cloud(png, info, tmp_path / name)
    np.savetxt(tmp_path / "singular_pose.txt", np.zeros((4, 4)))
    with pytest.raises(BaselineDataError, match=r"singular_pose\.txt"):
        ec.eyecandies_cloud(png, info, tmp_path / "singular_pose.txt")
