"""Generated MVTec 3D-AD scans with the clutter real scans have, for testing and timing the
preprocessing's DBSCAN against open3d's.

``cluttered_scan`` takes a generated scan (``baselines.anomaly.synthetic.mvtec3d_sample``)
and adds, away from the 10-pixel border that the plane fit reads:

- flying pixels: scattered points pulled up to 2 cm towards the sensor, mostly isolated
  (noise) or lying just off a surface (border points);
- outliers: points anywhere in the scene's box;
- debris: small dense discs lifted 3-15 mm off what lies under them: clusters of their own,
  noise when too small, or joined to the object when close enough;
- a floating flake pair well above the scene: two sparse square lattices 8 mm apart (two
  clusters) with a few points in the gap that lie within eps of core points of both. Those
  gap points are the border points whose label DBSCAN's definition leaves open (open3d gives
  them the first cluster's).

Sizes are in metres, so the clutter scales with the scan size (pixels per metre).
"""

from __future__ import annotations

import numpy as np

from baselines.anomaly.synthetic import MVTEC_BORDER, MVTEC_SPAN, mvtec3d_sample

FLAKE_SPACING = 0.0012   # lattice pitch of the flakes: dense enough for core points inside
FLAKE_SIDE = 9           # lattice points per side
FLAKE_GAP = 0.008        # > eps: the two flakes stay two clusters
FLAKE_LIFT = 0.1         # metres nearer the sensor than the table: nothing else is near


def cluttered_scan(size: int | tuple[int, int] = 800, seed: int = 0, category: str = "bagel",
                   debris: int = 14, flying: float = 0.004, outliers: float = 0.002
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(xyz (H, W, 3) float32, rgb (H, W, 3) uint8) of a cluttered scan; size is W = H or
    (H, W)."""
    sample = mvtec3d_sample(category, f"clutter/{seed}", "good", size=size, seed=seed)
    xyz, rgb = sample.xyz.copy(), sample.rgb.copy()
    height, width = xyz.shape[:2]
    rng = np.random.default_rng([seed, height, width, 20])
    pitch = MVTEC_SPAN / max(height, width)
    margin = MVTEC_BORDER + 2
    rows, cols = np.mgrid[margin:height - margin, margin:width - margin]
    rows, cols = rows.ravel(), cols.ravel()
    valid = np.all(xyz[rows, cols] != 0, axis=1)
    rows, cols = rows[valid], cols[valid]

    for _ in range(debris):
        r, c = _pick(rng, rows, cols)
        radius = rng.uniform(0.0005, 0.0012) / pitch
        disc = (rows - r) ** 2 + (cols - c) ** 2 <= radius ** 2
        xyz[rows[disc], cols[disc], 2] -= np.float32(rng.uniform(0.003, 0.015))

    chosen = rng.random(len(rows)) < flying
    xyz[rows[chosen], cols[chosen], 2] -= rng.uniform(0, 0.02, int(chosen.sum())).astype(
        np.float32)

    chosen = rng.random(len(rows)) < outliers
    low, high = xyz[rows, cols].min(axis=0), xyz[rows, cols].max(axis=0)
    xyz[rows[chosen], cols[chosen]] = rng.uniform(low, high, (int(chosen.sum()), 3))

    flakes = _flake_pair(rng, xyz[rows, cols].min(axis=0))
    places = np.arange(len(flakes))
    row_length = width - 2 * margin
    xyz[margin + places // row_length, margin + places % row_length] = flakes
    return xyz, rgb


def _pick(rng, rows, cols) -> tuple[int, int]:
    i = int(rng.integers(len(rows)))
    return int(rows[i]), int(cols[i])


def _flake_pair(rng, corner: np.ndarray) -> np.ndarray:
    """(2 * FLAKE_SIDE^2 + 3, 3) float32: two lattices side by side along x, FLAKE_GAP
    apart, and three points on the gap's centre line."""
    axis = np.arange(FLAKE_SIDE) * FLAKE_SPACING
    gx, gy = np.meshgrid(axis, axis)
    flake = np.stack([gx.ravel(), gy.ravel(), np.zeros(gx.size)], axis=1)
    span = axis[-1]
    second = flake + [span + FLAKE_GAP, 0, 0]
    middle = span / 2
    gap = np.array([[span + FLAKE_GAP / 2, middle + dy, 0] for dy in (-0.002, 0, 0.002)])
    origin = corner + [0.002, 0.002, -FLAKE_LIFT]
    jitter = rng.normal(0, 1e-5, (2 * len(flake) + len(gap), 3))
    return (np.concatenate([flake, second, gap]) + origin + jitter).astype(np.float32)
