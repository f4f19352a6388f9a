"""Eyecandies depth maps to organised point clouds, as M3DM converted them (BASELINES.md D).

Per sample (in ``<Category>/<split>/data/``): ``<id>_depth.png`` (16-bit, normalised to
0..65535), ``<id>_info_depth.yaml`` (``normalization: {min, max}`` in metres) and
``<id>_pose.txt`` (4x4). The conversion:

1. de-normalise the depth to metres (``read_depth_metres``);
2. back-project every pixel with focal 711.11, the principal point at the image centre, and
   the pose (``depth_to_cloud``; vectorised, the original looped per pixel);
3. remove the background by rotating about the x axis so that the table is the plane y = 0,
   then thresholding (``remove_background``);
4. reorder the axes to (x, z, y) and scale by (0.1, -0.1, 0.1).

Background: the published code sets background points to -s in the rotated frame and then
rotates everything back, so they all land on ONE constant point R^T(-s) + s, which is not
(0, 0, 0) unless R is the identity (likely a bug). ``background="published"`` reproduces
that; ``background="zero"`` makes them exactly (0, 0, 0), the convention for invalid points.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from baselines.errors import BaselineDataError

FOCAL = 711.11
BACKGROUND_MODES = ("published", "zero")
# Thresholds in the rotated frame (metres): the table is y = 0, objects are at y < 0.
TABLE_CLEARANCE = -0.02
MAX_DEPTH = 1.8
MAX_ABS_X = 1.0
AXES = (0, 2, 1)  # output (x, z, y)
AXIS_SCALE = np.array([0.1, -0.1, 0.1])


def read_depth_metres(png_path: str | Path, yaml_path: str | Path) -> np.ndarray:
    """(H, W) float32 depth in metres: png / 65535 * (max - min) + min."""
    raw = _read_png16(Path(png_path))
    low, high = _read_normalization(Path(yaml_path))
    return (raw.astype(np.float64) / 65535.0 * (high - low) + low).astype(np.float32)


def _read_png16(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            mode, size = image.mode, image.size
            # Pillow opens 16-bit greyscale PNG as "I;16" (newer) or "I" (older).
            if not mode.startswith("I;16") and mode != "I":
                raise BaselineDataError(f"{path}: expected a single-channel 16-bit depth PNG, "
                                        f"got mode {mode!r} ({size[0]}x{size[1]})")
            raw = np.array(image)
    except (OSError, UnidentifiedImageError) as error:
        raise BaselineDataError(f"{path}: cannot read the depth PNG ({error})") from None
    if raw.ndim != 2 or raw.size == 0 or raw.min() < 0 or raw.max() > 65535:
        raise BaselineDataError(f"{path}: expected a 16-bit depth image, got shape "
                                f"{raw.shape}, values {raw.min()}..{raw.max()}")
    return raw


def _read_normalization(path: Path) -> tuple[float, float]:
    import yaml

    try:
        info = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise BaselineDataError(f"{path}: cannot read the depth info YAML ({error})") from None
    norm = info.get("normalization") if isinstance(info, dict) else None
    if not isinstance(norm, dict) or "min" not in norm or "max" not in norm:
        raise BaselineDataError(f"{path}: missing 'normalization: {{min, max}}'")
    values = []
    for key in ("min", "max"):
        value = norm[key]
        # bool is an int subclass; "true" is not a depth.
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            raise BaselineDataError(f"{path}: normalization {key} is not a finite number: "
                                    f"{value!r}")
        values.append(float(value))
    return values[0], values[1]


def read_pose(path: str | Path) -> np.ndarray:
    """(4, 4) float64 camera pose from a whitespace-separated text file."""
    path = Path(path)
    try:
        pose = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except (OSError, ValueError) as error:
        raise BaselineDataError(f"{path}: cannot read the 4x4 pose ({error})") from None
    if pose.shape != (4, 4) or not np.all(np.isfinite(pose)):
        raise BaselineDataError(f"{path}: expected a 4x4 numeric pose, got shape {pose.shape}")
    return pose


def camera_matrix(height: int, width: int, focal: float = FOCAL) -> np.ndarray:
    """M3DM's 4x4 intrinsics: focal f, principal point at (W/2, H/2)."""
    return np.array([[focal, 0, width / 2, 0], [0, focal, height / 2, 0],
                     [0, 0, 1, 0], [0, 0, 0, 1]], dtype=np.float64)


def depth_to_cloud(depth: np.ndarray, pose: np.ndarray, focal: float = FOCAL) -> np.ndarray:
    """(H*W, 3) float64 points in row-major pixel order: X = d * inv(K4 @ pose) @ [u, v, 1, 1/d]
    with u the column and v the row; the first three coordinates are kept.

    d * [u, v, 1, 1/d] is computed as [u d, v d, d, 1], which is the same for d != 0 and
    needs no 1/d. Pixels with d == 0 (which real data should not have; the published loop
    would give NaN there) are treated as invalid and come out as (0, 0, 0).
    """
    h, w = depth.shape
    inverse = np.linalg.inv(camera_matrix(h, w, focal) @ np.asarray(pose, dtype=np.float64))
    v, u = np.mgrid[0:h, 0:w]
    d = depth.astype(np.float64).ravel()
    scaled = np.stack([u.ravel() * d, v.ravel() * d, d, np.ones_like(d)])
    points = (inverse @ scaled)[:3].T
    points[d == 0] = 0.0
    return points


def table_frame(cloud: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(R, s) of M3DM's rotation about x that puts the table on y = 0.

    a = cloud[width // 2] (first row, middle) and b = cloud[-(width // 2)] (last row) are
    taken as two table points; s = (0, b_y, b_z) and R rotates a - b onto the +z axis.
    """
    a, b = cloud[width // 2], cloud[-(width // 2)]
    dz, dy = a[1] - b[1], a[2] - b[2]
    norm = math.hypot(dz, dy)
    if norm == 0 or not math.isfinite(norm):
        raise ValueError("the two table reference points coincide in y and z; cannot find the "
                         "table rotation")
    cos, sin = dy / norm, dz / norm
    rotation = np.array([[1, 0, 0], [0, cos, -sin], [0, sin, cos]], dtype=np.float64)
    return rotation, np.array([0.0, b[1], b[2]])


def remove_background(cloud: np.ndarray, width: int = 512,
                      background: str = "published") -> np.ndarray:
    """(H*W, 3) float32: M3DM's background removal, then the (x, z, y) * (0.1, -0.1, 0.1)
    axis change. A point is background when, in the table frame, y > -0.02 or z > 1.8 or
    |x| > 1. See the module docstring for the two ``background`` modes. Input points that
    are (0, 0, 0) (invalid depth) stay (0, 0, 0) in both modes."""
    if background not in BACKGROUND_MODES:
        raise ValueError(f"background must be one of {BACKGROUND_MODES}, got {background!r}")
    cloud = np.asarray(cloud, dtype=np.float64)
    rotation, shift = table_frame(cloud, width)
    rotated = (cloud - shift) @ rotation.T
    is_background = ((rotated[:, 1] > TABLE_CLEARANCE) | (rotated[:, 2] > MAX_DEPTH)
                     | (np.abs(rotated[:, 0]) > MAX_ABS_X))
    rotated[is_background] = -shift  # the published "removal", undone by the back-rotation
    points = rotated @ rotation + shift  # R^T p + s, row-wise
    if background == "zero":
        points[is_background] = 0.0
    points[np.all(cloud == 0, axis=1)] = 0.0
    # "+ 0.0" turns the -0.0 that the negative scale makes of zeros into 0.0.
    return (points[:, AXES] * AXIS_SCALE + 0.0).astype(np.float32)


def eyecandies_cloud(depth_png: str | Path, info_yaml: str | Path, pose_txt: str | Path,
                     background: str = "published") -> np.ndarray:
    """(H, W, 3) float32 organised cloud of one Eyecandies sample, as M3DM made it."""
    if background not in BACKGROUND_MODES:  # a usage error, not one about the files
        raise ValueError(f"background must be one of {BACKGROUND_MODES}, got {background!r}")
    depth = read_depth_metres(depth_png, info_yaml)
    pose = read_pose(pose_txt)
    try:
        cloud = depth_to_cloud(depth, pose)
    except np.linalg.LinAlgError:
        raise BaselineDataError(f"{pose_txt}: the pose makes the camera matrix singular") \
            from None
    h, w = depth.shape
    try:
        points = remove_background(cloud, width=w, background=background)
    except ValueError as error:
        raise BaselineDataError(f"{depth_png}: {error}") from None
    return points.reshape(h, w, 3)
