"""MVTec 3D-AD and Eyecandies as their downloaders lay them out, for the anomaly baselines.

MVTec 3D-AD: ``<category>/{train,test}/<defect>/{rgb/<id>.png, xyz/<id>.tiff}`` (train holds
only ``good``). Eyecandies: ``<Category>/{train,test_public}/data/<id>_<item>``; a sample's
point cloud is made from its 16-bit depth, ``info_depth.yaml`` and ``pose.txt`` as M3DM did
(baselines.anomaly.eyecandies_cloud). Test masks are never opened here: a baseline only needs the
images, and the evaluator reads the masks.

Test sample ids are the evaluator's (``<category>/test/<defect>/<id>``,
``<Category>/test_public/<NN>``), so predictions name exactly the samples it scores.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from baselines.errors import BaselineDataError, BaselineUsageError
from evaluator.anomaly.datasets import EYECANDIES_CATEGORIES, MVTEC3D_CATEGORIES

SYNTHETIC_MARKER = "SYNTHETIC"
EYECANDIES_LIGHTS = ("image_0", "image_1", "image_2", "image_3", "image_4", "image_5")
# M3DM copied image_4 (the left spotlight); its text says the environment light (image_5).
EYECANDIES_PUBLISHED_LIGHT = "image_4"


@dataclass(frozen=True)
class AnomalySample:
    """One scan. ``id`` is the evaluator's sample id for test samples."""

    id: str
    category: str
    rgb: Path
    xyz: Path | None = None      # MVTec 3D-AD: organised point cloud (H x W x 3 float32 tiff)
    depth: Path | None = None    # Eyecandies: 16-bit depth, its info_depth.yaml and pose.txt
    info: Path | None = None
    pose: Path | None = None

    @property
    def files(self) -> tuple[Path, ...]:
        return tuple(p for p in (self.rgb, self.xyz, self.depth, self.info, self.pose) if p)


@dataclass
class AnomalyDataset:
    benchmark: str               # "mvtec3d-ad" or "eyecandies"
    root: Path
    categories: tuple[str, ...]
    train: dict[str, list[AnomalySample]]
    test: dict[str, list[AnomalySample]]
    light: str | None = None     # Eyecandies: which RGB image is read

    @property
    def synthetic(self) -> bool:
        """Generated test data (baselines.anomaly.synthetic) rather than the real dataset."""
        return (self.root / SYNTHETIC_MARKER).is_file()

    @property
    def n_test(self) -> int:
        return sum(len(v) for v in self.test.values())

    def fingerprint(self, category: str | None = None) -> str:
        """sha256 of the file names and sizes a run reads (of one category, or all)."""
        digest = hashlib.sha256()
        for name in [category] if category else self.categories:
            for split in (self.train, self.test):
                for sample in split[name]:
                    digest.update(sample.id.encode())
                    for path in sample.files:
                        digest.update(f"|{path.relative_to(self.root)}:{path.stat().st_size}"
                                      .encode())
        return digest.hexdigest()[:16]

    def describe(self) -> dict:
        return {"root": str(self.root.resolve()), "benchmark": self.benchmark,
                "synthetic": self.synthetic, "categories": list(self.categories),
                "train": {c: len(self.train[c]) for c in self.categories},
                "test": {c: len(self.test[c]) for c in self.categories},
                "files_sha256": self.fingerprint(), "light": self.light}


def choose_categories(known: tuple[str, ...], root: Path, wanted: list[str] | None,
                      ) -> tuple[str, ...]:
    """The categories to run: those asked for (each must exist), else every known one the
    root holds."""
    if wanted:
        unknown = [c for c in wanted if c not in known]
        if unknown:
            raise BaselineUsageError(f"--categories: unknown {', '.join(unknown)}; this "
                                     f"dataset has {', '.join(known)}")
        missing = [c for c in wanted if not (root / c).is_dir()]
        if missing:
            raise BaselineDataError(f"{root}: no folder for {', '.join(missing)}")
        return tuple(c for c in known if c in wanted)
    found = tuple(c for c in known if (root / c).is_dir())
    if not found:
        raise BaselineDataError(f"{root}: none of the category folders ({', '.join(known)}) "
                                "is there; --data must be the dataset's root folder")
    return found


# ----------------------------------------------------------------------------- MVTec 3D-AD

def load_mvtec3d(root: Path, categories: list[str] | None = None,
                 max_train: int | None = None) -> AnomalyDataset:
    root = Path(root)
    if not root.is_dir():
        raise BaselineDataError(f"{root}: no such dataset folder")
    chosen = choose_categories(MVTEC3D_CATEGORIES, root, categories)
    train, test = {}, {}
    for category in chosen:
        good = root / category / "train" / "good"
        train[category] = _mvtec_folder(root, category, good, "train")[:max_train]
        if not train[category]:
            raise BaselineDataError(f"{good}: no training scans (rgb/*.png with xyz/*.tiff)")
        test_root = root / category / "test"
        if not test_root.is_dir():
            raise BaselineDataError(f"{test_root}: missing (the test scans)")
        test[category] = [s for defect in sorted(p for p in test_root.iterdir() if p.is_dir())
                          for s in _mvtec_folder(root, category, defect, "test")]
        if not test[category]:
            raise BaselineDataError(f"{test_root}: no test scans")
    return AnomalyDataset("mvtec3d-ad", root, chosen, train, test)


def _mvtec_folder(root: Path, category: str, folder: Path, split: str) -> list[AnomalySample]:
    """Pair rgb/<id>.png with xyz/<id>.tiff by id; a scan without its partner is an error
    (the published loaders zip two sorted lists and would silently shift every pair)."""
    rgb = {p.stem: p for p in (folder / "rgb").glob("*.png")}
    xyz = {p.stem: p for p in (folder / "xyz").glob("*.tiff")}
    if rgb.keys() != xyz.keys():
        lonely = sorted(rgb.keys() ^ xyz.keys())
        raise BaselineDataError(
            f"{folder}: {len(rgb)} rgb/*.png but {len(xyz)} xyz/*.tiff; without a partner: "
            + ", ".join(f"{'rgb' if i in rgb else 'xyz'}/{i}" for i in lonely[:5])
            + (" ..." if len(lonely) > 5 else ""))
    return [AnomalySample(id=f"{category}/{split}/{folder.name}/{i}", category=category,
                          rgb=rgb[i], xyz=xyz[i]) for i in sorted(rgb)]


# ------------------------------------------------------------------------------ Eyecandies

_EYECANDIES_ITEM = re.compile(r"^(?P<id>\d+)_(?P<item>.+)$")


def load_eyecandies(root: Path, categories: list[str] | None = None,
                    max_train: int | None = None,
                    light: str = EYECANDIES_PUBLISHED_LIGHT) -> AnomalyDataset:
    root = Path(root)
    if not root.is_dir():
        raise BaselineDataError(f"{root}: no such dataset folder")
    if light not in EYECANDIES_LIGHTS:
        raise BaselineUsageError("--eyecandies-light must be one of "
                                 + ", ".join(EYECANDIES_LIGHTS))
    chosen = choose_categories(EYECANDIES_CATEGORIES, root, categories)
    train, test = {}, {}
    for category in chosen:
        train[category] = _eyecandies_split(root, category, "train", light)[:max_train]
        test[category] = _eyecandies_split(root, category, "test_public", light)
    return AnomalyDataset("eyecandies", root, chosen, train, test, light=light)


def _eyecandies_split(root: Path, category: str, split: str, light: str) -> list[AnomalySample]:
    folder = root / category / split / "data"
    if not folder.is_dir():
        raise BaselineDataError(f"{folder}: missing (Eyecandies keeps each split's files in "
                                "<Category>/<split>/data/)")
    ids = sorted({m["id"] for p in folder.iterdir()
                  if (m := _EYECANDIES_ITEM.match(p.name))}, key=int)
    samples = []
    for i in ids:
        files = {item: folder / f"{i}_{item}" for item in
                 (f"{light}.png", "depth.png", "info_depth.yaml", "pose.txt")}
        missing = [str(p) for p in files.values() if not p.is_file()]
        if missing:
            raise BaselineDataError(f"{missing[0]}: missing (sample {i} of {category}/{split} "
                                    f"needs {', '.join(files)})")
        sample_id = f"{category}/{split}/{i}" if split != "train" else f"{category}/train/{i}"
        samples.append(AnomalySample(
            id=sample_id, category=category, rgb=files[f"{light}.png"],
            depth=files["depth.png"], info=files["info_depth.yaml"], pose=files["pose.txt"]))
    if not samples:
        raise BaselineDataError(f"{folder}: no samples")
    return samples


# ---------------------------------------------------------------------------------- reading

def read_rgb(path: Path) -> np.ndarray:
    """H x W x 3 uint8."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise BaselineDataError(f"{path}: cannot read this image ({exc})") from None


def read_xyz_tiff(path: Path) -> np.ndarray:
    """An organised point cloud: H x W x 3 float32, (0, 0, 0) where the scanner saw nothing."""
    import tifffile

    try:
        xyz = tifffile.imread(path)
    except Exception as exc:  # tifffile raises many kinds of errors for a bad file
        raise BaselineDataError(f"{path}: cannot read this tiff ({type(exc).__name__}: "
                                f"{exc})") from None
    if xyz.ndim != 3 or xyz.shape[2] != 3:
        raise BaselineDataError(f"{path}: an organised point cloud must be H x W x 3, but "
                                f"this tiff is {' x '.join(map(str, xyz.shape))}")
    if not np.issubdtype(xyz.dtype, np.floating):
        raise BaselineDataError(f"{path}: point coordinates must be floats, not {xyz.dtype}")
    xyz = xyz.astype(np.float32, copy=False)
    if not np.isfinite(xyz).all():
        # Invalid points are zeros in MVTec 3D-AD; NaN marks them in some re-exports.
        xyz = np.where(np.isfinite(xyz).all(axis=2, keepdims=True), xyz, 0).astype(np.float32)
    return xyz


def read_scan(sample: AnomalySample, eyecandies_background: str = "published",
              with_xyz: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """(RGB H x W x 3 uint8, organised cloud H x W x 3 float32 or None)."""
    rgb = read_rgb(sample.rgb)
    if not with_xyz:
        return rgb, None
    if sample.xyz is not None:
        xyz = read_xyz_tiff(sample.xyz)
        where = sample.xyz
    else:
        from baselines.anomaly.eyecandies_cloud import eyecandies_cloud

        xyz = eyecandies_cloud(sample.depth, sample.info, sample.pose,
                               background=eyecandies_background)
        where = sample.depth
    if xyz.shape[:2] != rgb.shape[:2]:
        raise BaselineDataError(f"{where}: the point cloud is {xyz.shape[0]} x {xyz.shape[1]} "
                                f"but its RGB image {sample.rgb.name} is {rgb.shape[0]} x "
                                f"{rgb.shape[1]}; they must match pixel for pixel")
    return rgb, xyz
