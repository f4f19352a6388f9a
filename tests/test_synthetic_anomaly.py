"""The generated MVTec 3D-AD / Eyecandies datasets (baselines.anomaly.synthetic): the exact
on-disk layouts, found by the evaluator, with defects where the masks say and a scene that the
Eyecandies converter's assumptions hold for."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tifffile
import yaml
from PIL import Image

from baselines.anomaly.synthetic import (
    EYECANDIES_ITEMS,
    MARKER_TEXT,
    SYNTHETIC_MARKER,
    eyecandies_sample,
    main,
    make_eyecandies_dataset,
    make_mvtec3d_dataset,
    mvtec3d_sample,
)
from evaluator.anomaly.datasets import EYECANDIES_LAYOUT, MVTEC3D_LAYOUT, folder_label

FOCAL = 711.11


@pytest.fixture(scope="module")
def mvtec(tmp_path_factory):
    root = tmp_path_factory.mktemp("mvtec3d")
    return make_mvtec3d_dataset(root, ("bagel", "carrot"))


@pytest.fixture(scope="module")
def eyecandies(tmp_path_factory):
    root = tmp_path_factory.mktemp("eyecandies")
    return make_eyecandies_dataset(root, ("CandyCane", "Confetto"))


def tree(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def mode(path):
    with Image.open(path) as image:
        return image.mode


def read(path):
    with Image.open(path) as image:
        return np.array(image)


# ------------------------------------------------------------------------------ MVTec 3D-AD

def test_mvtec_tree_and_formats(mvtec):
    expected = [SYNTHETIC_MARKER]
    for category in ("bagel", "carrot"):
        folders = [("train", "good", 6), ("validation", "good", 2), ("test", "good", 3),
                   ("test", "crack", 3), ("test", "combined", 3), ("test", "color", 2)]
        for split, defect, n in folders:
            items = ("rgb", "xyz", "gt") if split == "test" else ("rgb", "xyz")
            for i in range(n):
                for item in items:
                    ext = "tiff" if item == "xyz" else "png"
                    expected.append(f"{category}/{split}/{defect}/{item}/{i:03d}.{ext}")
    assert tree(mvtec.root) == sorted(expected)
    assert (mvtec.root / SYNTHETIC_MARKER).read_text() == MARKER_TEXT
    assert mvtec.layout == "mvtec3d" and mvtec.categories == ("bagel", "carrot")

    folder = mvtec.root / "bagel" / "test" / "crack"
    xyz = tifffile.imread(folder / "xyz" / "000.tiff")
    assert xyz.dtype == np.float32 and xyz.shape == (96, 96, 3)
    assert mode(folder / "rgb" / "000.png") == "RGB" and read(folder / "rgb" / "000.png").shape \
        == (96, 96, 3)
    assert mode(folder / "gt" / "000.png") == "L"
    assert set(np.unique(read(folder / "gt" / "000.png"))) == {0, 255}


def test_mvtec_evaluator_finds_the_test_set(mvtec):
    found = MVTEC3D_LAYOUT.list_samples(mvtec.root)
    assert set(found) == set(mvtec.samples)
    assert len(found) == 2 * 11
    for sample, info in mvtec.samples.items():
        category, path = found[sample]
        assert category == info["category"] == sample.split("/")[0]
        assert folder_label(sample) == info["label"]
        assert np.array_equal(read(path) == 255, info["mask"])
        assert info["mask"].any() == bool(info["label"])
    kinds = {s.split("/")[2]: info["kind"] for s, info in mvtec.samples.items()}
    assert kinds == {"good": "good", "crack": "dent", "combined": "bump", "color": "color"}


def test_mvtec_defects_are_where_the_masks_say(mvtec):
    for sample, info in mvtec.samples.items():
        category, key = sample.split("/", 1)
        folder, name = mvtec.root / category / "test" / key.split("/")[1], key.split("/")[2]
        xyz = tifffile.imread(folder / "xyz" / f"{name}.tiff")
        rgb = read(folder / "rgb" / f"{name}.png")
        twin = mvtec3d_sample(category, key, "good")  # the same scan without its defect
        valid = np.all(xyz != 0, axis=-1) & np.all(twin.xyz != 0, axis=-1)
        change = np.where(valid, xyz[..., 2] - twin.xyz[..., 2], 0)
        mask = info["mask"]
        if info["kind"] in ("dent", "bump"):
            # gt = exactly where the depth moved by more than 0.5 mm (float32 slack).
            assert np.all(np.abs(change[mask & valid]) > 0.00049)
            assert not np.any(np.abs(change[~mask]) > 0.00051)
            moved = change[mask & valid]
            assert np.all(moved > 0) if info["kind"] == "dent" else np.all(moved < 0)
            assert 0.003 <= np.abs(change).max() <= 0.005
            # 1-1.5 cm across; the mask is its core, at least ~0.5 cm across.
            rows, cols = np.nonzero(mask)
            extent = max(np.ptp(rows), np.ptp(cols)) + 1
            assert 4 <= extent * 0.12 / 96 / 0.001 <= 15
        else:
            assert np.array_equal(xyz, twin.xyz)  # no geometry change for stains or good
        if info["kind"] == "color":
            differs = np.any(rgb != twin.rgb, axis=-1)
            assert differs.any() and not differs[~mask].any()
            assert np.abs(rgb[mask].astype(int) - twin.rgb[mask]).sum(axis=-1).mean() > 100
        if info["kind"] == "good":
            assert np.array_equal(rgb, twin.rgb) and not mask.any()
        if mask.any():  # the defect is on the object, well above the table
            table = np.median(twin.xyz[..., 2][:10][twin.xyz[..., 2][:10] != 0])
            assert np.all(twin.xyz[..., 2][mask & valid] < table - 0.004)


def test_mvtec_geometry_border_plane_and_invalid_points(mvtec):
    pitch = 0.12 / 96
    for path in sorted(mvtec.root.glob("*/*/*/xyz/*.tiff")):
        xyz = tifffile.imread(path).astype(np.float64)
        zero = np.all(xyz == 0, axis=-1)
        # Invalid points are exactly (0, 0, 0): no point has only some coordinates zero.
        assert np.array_equal(zero, np.any(xyz == 0, axis=-1))
        assert 0 < zero.mean() < 0.1
        rows, cols = np.mgrid[0:96, 0:96]
        valid = ~zero
        # x, y: a regular grid, 12 cm across (its centre 0.3 pixel off, so never exactly 0).
        assert np.allclose(xyz[..., 0][valid], ((cols - 47.7) * pitch)[valid], atol=1e-6)
        assert np.allclose(xyz[..., 1][valid], ((rows - 47.7) * pitch)[valid], atol=1e-6)
        z = xyz[..., 2][valid]
        assert 0.40 < z.min() and z.max() < 0.48 and z.max() - z.min() > 0.012
        # The 10-pixel border is (mostly) the table: a plane to within the noise.
        border = np.zeros((96, 96), dtype=bool)
        border[:10], border[-10:], border[:, :10], border[:, -10:] = True, True, True, True
        points = xyz[border & valid]
        assert len(points) > 0.95 * border.sum()
        design = np.column_stack([points[:, 0], points[:, 1], np.ones(len(points))])
        coef, *_ = np.linalg.lstsq(design, points[:, 2], rcond=None)
        residual = points[:, 2] - design @ coef
        assert np.abs(residual).max() < 0.001 and 5e-5 < residual.std() < 2e-4
        # A shadow: invalid points touching the object's right side.
        height = (design @ coef).mean() - xyz[..., 2]
        on_object = valid & (height > 0.003)
        right_of_object = np.zeros_like(on_object)
        right_of_object[:, 1:] = on_object[:, :-1]
        assert (zero & right_of_object).sum() >= 10


def test_mvtec_non_square_and_counts(tmp_path):
    made = make_mvtec3d_dataset(tmp_path, ("tire",), size=(96, 72), train=1, validation=0,
                                test={"good": 1, "hole": 1, "contamination": 1}, seed=3)
    assert tree(tmp_path) == sorted([SYNTHETIC_MARKER] + [
        "tire/train/good/rgb/000.png", "tire/train/good/xyz/000.tiff"] + [
        f"tire/test/{d}/{item}/000.{'tiff' if item == 'xyz' else 'png'}"
        for d in ("good", "hole", "contamination") for item in ("rgb", "xyz", "gt")])
    assert tifffile.imread(tmp_path / "tire/test/hole/xyz/000.tiff").shape == (96, 72, 3)
    assert read(tmp_path / "tire/test/hole/rgb/000.png").shape == (96, 72, 3)
    assert read(tmp_path / "tire/test/hole/gt/000.png").shape == (96, 72)
    assert [made.samples[s]["kind"] for s in sorted(made.samples)] \
        == ["bump", "good", "dent"]
    with pytest.raises(ValueError, match="categories"):
        make_mvtec3d_dataset(tmp_path / "x", ("CandyCane",))
    with pytest.raises(ValueError, match="defect folders"):
        make_mvtec3d_dataset(tmp_path / "x", test={"scratch": 1})


# ------------------------------------------------------------------------------- Eyecandies

def test_eyecandies_tree_and_formats(eyecandies):
    expected = [SYNTHETIC_MARKER]
    for category in ("CandyCane", "Confetto"):
        for split, n, digits in (("train", 6, 3), ("val", 2, 3), ("test_public", 6, 2)):
            for i in range(n):
                expected += [f"{category}/{split}/data/{i:0{digits}d}_{item}"
                             for item in EYECANDIES_ITEMS]
    assert tree(eyecandies.root) == sorted(expected)
    assert len(EYECANDIES_ITEMS) == 17
    data = eyecandies.root / "Confetto" / "test_public" / "data"
    for i in range(6):
        assert mode(data / f"0{i}_image_{i}.png") == "RGB"
    assert mode(data / "00_normals.png") == "RGB"
    assert mode(data / "00_depth.png") in ("I;16", "I")
    assert read(data / "00_depth.png").shape == (64, 64)
    for item in ("mask", "bumps_mask", "dents_mask", "colors_mask", "normals_mask"):
        assert mode(data / f"00_{item}.png") == "L"
    info = yaml.safe_load((data / "00_info_depth.yaml").read_text())
    assert set(info) == {"normalization"} and set(info["normalization"]) == {"min", "max"}
    assert 0 < info["normalization"]["min"] < info["normalization"]["max"]
    assert np.loadtxt(data / "00_pose.txt").shape == (4, 4)
    for item in ("obj_params.yaml", "metadata.yaml"):
        assert isinstance(yaml.safe_load((data / f"00_{item}").read_text()), dict)


def test_eyecandies_evaluator_finds_the_test_set(eyecandies):
    found = EYECANDIES_LAYOUT.list_samples(eyecandies.root)
    assert set(found) == set(eyecandies.samples)
    assert len(found) == 12
    for sample, info in eyecandies.samples.items():
        category, path = found[sample]
        assert category == info["category"]
        assert np.array_equal(read(path) == 255, info["mask"])
        assert info["label"] == int(info["mask"].any()) == int(info["kind"] != "good")
    for category in ("CandyCane", "Confetto"):
        kinds = sorted(i["kind"] for i in eyecandies.samples.values()
                       if i["category"] == category)
        assert kinds == ["bump", "color", "dent", "good", "good", "good"]


def back_project(depth, pose):
    """The converter's formula, written out per pixel: X = d * inv(K4 @ P) @ [u, v, 1, 1/d]."""
    h, w = depth.shape
    k4 = np.array([[FOCAL, 0, w / 2, 0], [0, FOCAL, h / 2, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    inverse = np.linalg.inv(k4 @ pose)
    points = np.empty((h, w, 3))
    for v in range(h):
        for u in range(w):
            d = depth[v, u]
            points[v, u] = (d * (inverse @ np.array([u, v, 1, 1 / d])))[:3]
    return points


def load_depth(data, name):
    info = yaml.safe_load((data / f"{name}_info_depth.yaml").read_text())["normalization"]
    raw = read(data / f"{name}_depth.png").astype(np.float64)
    return raw / 65535 * (info["max"] - info["min"]) + info["min"], info


def test_eyecandies_scene_fits_the_converter(eyecandies):
    for category in ("CandyCane", "Confetto"):
        for split, name in (("train", "000"), ("val", "001"), ("test_public", "00"),
                            ("test_public", "03")):
            data = eyecandies.root / category / split / "data"
            depth, info = load_depth(data, name)
            kind = yaml.safe_load((data / f"{name}_metadata.yaml").read_text())["defect"]
            rendered = eyecandies_sample(category, f"{split}/{name}", kind)
            # 16-bit de-normalisation recovers the rendered depth.
            step = (info["max"] - info["min"]) / 65535
            assert np.abs(depth - rendered.depth).max() <= step / 2 + 1e-9
            assert depth.min() > 0
            pose = np.loadtxt(data / f"{name}_pose.txt")
            points = back_project(depth, pose)
            x, y, z = points[..., 0], points[..., 1], points[..., 2]
            table, candy = ~rendered.on_object, rendered.on_object
            # Table: y = 0 up to its 1-2 degree tilt about x.
            assert np.all(np.abs(y[table]) <= np.abs(z[table]) * math.tan(math.radians(2))
                          + 1e-4)
            assert np.abs(y[table]).max() > 1e-4  # tilted: the converter must rotate
            # Candy: above the table ("up" is -y), mostly more than 2 cm above it.
            assert np.all(y[candy] < 1e-3) and np.mean(y[candy] < -0.02) > 0.6
            assert -0.06 < y[candy].min() < -0.03
            assert np.all(np.abs(x) < 0.2) and 0.1 < candy.mean() < 0.6
            # Top- and bottom-middle pixels see the table, the top one farther away.
            w = depth.shape[1]
            assert table[0, w // 2] and table[-1, w // 2]
            assert z[0, w // 2] > z[-1, w // 2]
            assert np.hypot(*(points[0, w // 2] - points[-1, w // 2])[1:]) < 1.8
            # Masks: defects lie on the candy's part that the converter keeps.
            mask = read(data / f"{name}_mask.png") == 255
            assert np.all(candy[mask]) and np.all(y[mask] < -0.02)


def test_eyecandies_defects_are_where_the_masks_say(eyecandies):
    data_of = {c: eyecandies.root / c / "test_public" / "data" for c in eyecandies.categories}
    for sample, info in eyecandies.samples.items():
        category, key = sample.split("/", 1)
        name = key.split("/")[1]
        data = data_of[category]
        masks = {m: read(data / f"{name}_{m}_mask.png") == 255
                 for m in ("bumps", "dents", "colors", "normals")}
        mask = read(data / f"{name}_mask.png") == 255
        assert np.array_equal(mask, masks["bumps"] | masks["dents"] | masks["colors"]
                              | masks["normals"])
        non_empty = {m for m, v in masks.items() if v.any()}
        assert non_empty == ({info["kind"] + "s"} if info["label"] else set())
        depth, _ = load_depth(data, name)
        images = [read(data / f"{name}_image_{i}.png").astype(int) for i in range(6)]
        twin = eyecandies_sample(category, key, "good")
        change = depth - twin.depth
        if info["kind"] in ("bump", "dent"):
            assert np.array_equal(np.abs(change) > 0.0005, mask)  # quantisation << 0.5 mm
            sign = 1 if info["kind"] == "dent" else -1  # dents move away from the camera
            assert np.all(sign * change[mask] > 0.0005) and 0.003 <= np.abs(change).max() \
                <= 0.005
        else:
            assert np.abs(change).max() < 1e-5
        if info["kind"] == "color":
            for image, clean in zip(images, twin.images):
                differs = np.any(image != clean, axis=-1)
                assert differs.any() and not differs[~mask].any()
        # Six different lightings of the same scene.
        assert all(np.abs(images[i] - images[j]).mean() > 3
                   for i in range(6) for j in range(i + 1, 6))
        normals = read(data / f"{name}_normals.png").astype(float) / 255 * 2 - 1
        assert np.allclose(np.linalg.norm(normals, axis=-1), 1, atol=0.02)
        assert np.all(normals[..., 2] < 0.05)  # they face the camera (camera frame, z forward)


# ------------------------------------------------------------------------- determinism, CLI

def test_same_seed_same_bytes(tmp_path):
    def build(folder, seed):
        make_mvtec3d_dataset(folder / "m", ("peach",), size=48, train=1, validation=1,
                             test={"good": 1, "crack": 1, "combined": 1, "color": 1}, seed=seed)
        make_eyecandies_dataset(folder / "e", ("GummyBear",), size=32, train=1, val=1,
                                test_good=1, test_bad=3, seed=seed)
        return {p: (folder / p).read_bytes() for p in tree(folder)}

    first, second, other = build(tmp_path / "a", 0), build(tmp_path / "b", 0), \
        build(tmp_path / "c", 1)
    assert first == second
    assert first.keys() == other.keys()
    assert sum(first[p] != other[p] for p in first) > len(first) // 2


def test_cli(tmp_path, capsys):
    main(["eyecandies", str(tmp_path / "e"), "--categories", "Lollipop,Marshmallow",
          "--size", "32", "--seed", "2"])
    assert "12 test samples" in capsys.readouterr().out
    assert (tmp_path / "e" / SYNTHETIC_MARKER).is_file()
    assert read(tmp_path / "e/Marshmallow/val/data/001_image_5.png").shape == (32, 32, 3)
    main(["mvtec3d", str(tmp_path / "m"), "--size", "64x48"])
    assert read(tmp_path / "m/bagel/test/color/rgb/001.png").shape == (64, 48, 3)
    with pytest.raises(SystemExit):
        main(["mvtec3d", str(tmp_path / "x"), "--categories", "nope"])
