"""Spatial verification of one (query, database image) pair, as FORB's BoW re-ranking does it
(BASELINES.md B.1, step 8).

Given the RootSIFTs of both images that lie in visual words the two images share:

1. match them with a brute-force L2 matcher, 2 nearest neighbours, and keep a pair only if it
   passes Lowe's ratio test (0.8) in **both** directions and each is the other's nearest
   neighbour (mutual);
2. require at least 4 distinct keypoint positions on each side;
3. fit a homography database -> query with ``cv2.findHomography(..., cv2.RANSAC, 10.0)``;
4. reject implausible homographies (``homography_is_plausible``) and those whose projected
   database image covers too little of the query (``projection_covers_enough``);
5. count the inliers as distinct (database point, query point) pairs.

``verify_pair`` returns that count, or None when the candidate fails any step (FORB drops such
candidates; its minimum inlier count is 0).
"""

from __future__ import annotations

import numpy as np

RATIO = 0.8
MIN_UNIQUE_POINTS = 4
REPROJECTION_THRESHOLD = 10.0  # pixels, in the query image (short side 480)
MIN_INLIERS = 0
# Homography plausibility: det(H[:2, :2]) >= 0 (no reflection); the column norms of the linear
# part, N1 = |(H00, H10)| and N2 = |(H01, H11)|, in [0.05, 6] (scale); N3 = |(H20, H21)| at
# most 0.002 (perspective).
SCALE_RANGE = (0.05, 6.0)
MAX_PERSPECTIVE = 0.002
# The projected database image's bounding box, clipped to the query image, must cover at least
# this fraction of the query's area, and of its width and of its height.
MIN_AREA_FRACTION = 0.05
MIN_SIDE_FRACTION = 0.1

VERIFICATION_SETTINGS = {
    "matcher": "BFMatcher L2, 2-NN, mutual Lowe ratio test", "ratio": RATIO,
    "min_unique_points": MIN_UNIQUE_POINTS, "homography": "database -> query, cv2.RANSAC",
    "reprojection_threshold": REPROJECTION_THRESHOLD, "min_inliers": MIN_INLIERS,
    "scale_range": list(SCALE_RANGE), "max_perspective": MAX_PERSPECTIVE,
    "min_area_fraction": MIN_AREA_FRACTION, "min_side_fraction": MIN_SIDE_FRACTION,
    "inliers": "distinct (database point, query point) pairs among RANSAC inliers",
}


def _ratio_best(knn, n_rows: int, ratio: float) -> np.ndarray:
    """For each row, the index of its nearest neighbour if it passes the ratio test, else -1."""
    best = np.full(n_rows, -1, np.int64)
    for pair in knn:
        if len(pair) == 2 and pair[0].distance < ratio * pair[1].distance:
            best[pair[0].queryIdx] = pair[0].trainIdx
    return best


def mutual_ratio_matches(a: np.ndarray, b: np.ndarray, ratio: float = RATIO) -> np.ndarray:
    """(m, 2) index pairs (i in a, j in b): b[j] is a[i]'s nearest neighbour and a[i] is
    b[j]'s, and both pass the ratio test (nearest < ratio x second nearest). Fewer than two
    descriptors on a side leave no second neighbour, so no match."""
    import cv2

    a = np.ascontiguousarray(a, np.float32)
    b = np.ascontiguousarray(b, np.float32)
    if len(a) < 2 or len(b) < 2:
        return np.zeros((0, 2), np.int64)
    matcher = cv2.BFMatcher(cv2.NORM_L2)
    forward = _ratio_best(matcher.knnMatch(a, b, k=2), len(a), ratio)
    backward = _ratio_best(matcher.knnMatch(b, a, k=2), len(b), ratio)
    i = np.nonzero(forward >= 0)[0]
    j = forward[i]
    keep = backward[j] == i
    return np.stack([i[keep], j[keep]], axis=1)


def homography_is_plausible(h: np.ndarray) -> bool:
    """No reflection, a scale within SCALE_RANGE and little perspective (H scaled so that
    H22 = 1, as findHomography returns it)."""
    h = np.asarray(h, np.float64)
    if not np.all(np.isfinite(h)):
        return False
    if h[2, 2] != 0:
        h = h / h[2, 2]
    det = h[0, 0] * h[1, 1] - h[0, 1] * h[1, 0]
    n1 = np.hypot(h[0, 0], h[1, 0])
    n2 = np.hypot(h[0, 1], h[1, 1])
    n3 = np.hypot(h[2, 0], h[2, 1])
    low, high = SCALE_RANGE
    return bool(det >= 0 and low <= n1 <= high and low <= n2 <= high and n3 <= MAX_PERSPECTIVE)


def projection_covers_enough(h: np.ndarray, database_size: tuple[int, int],
                             query_size: tuple[int, int]) -> bool:
    """The bounding box of the database image's projected corners, clipped to the query image,
    covers >= MIN_AREA_FRACTION of its area and >= MIN_SIDE_FRACTION of its width and height.
    Sizes are (height, width)."""
    db_h, db_w = database_size
    q_h, q_w = query_size
    corners = np.array([[0, 0, 1], [db_w, 0, 1], [db_w, db_h, 1], [0, db_h, 1]], np.float64)
    projected = corners @ np.asarray(h, np.float64).T
    with np.errstate(divide="ignore", invalid="ignore"):
        xy = projected[:, :2] / projected[:, 2:3]
    if not np.all(np.isfinite(xy)):
        return False
    x = np.clip(xy[:, 0], 0, q_w)
    y = np.clip(xy[:, 1], 0, q_h)
    width, height = x.max() - x.min(), y.max() - y.min()
    return bool(width * height >= MIN_AREA_FRACTION * q_w * q_h
                and width >= MIN_SIDE_FRACTION * q_w and height >= MIN_SIDE_FRACTION * q_h)


def verify_pair(db_xy: np.ndarray, db_desc: np.ndarray, db_size: tuple[int, int],
                query_xy: np.ndarray, query_desc: np.ndarray, query_size: tuple[int, int],
                seed: int = 0) -> int | None:
    """Inlier count of a geometrically verified pair, or None if it fails verification.

    ``*_desc`` are the RootSIFTs in shared words and ``*_xy`` their keypoints; ``seed`` seeds
    OpenCV's RNG just before RANSAC, so a pair's result does not depend on what ran before.
    """
    import cv2

    matches = mutual_ratio_matches(db_desc, query_desc)
    if len(matches) < MIN_UNIQUE_POINTS:
        return None
    db_points = np.ascontiguousarray(db_xy[matches[:, 0]], np.float32)
    query_points = np.ascontiguousarray(query_xy[matches[:, 1]], np.float32)
    if (len(np.unique(db_points, axis=0)) < MIN_UNIQUE_POINTS
            or len(np.unique(query_points, axis=0)) < MIN_UNIQUE_POINTS):
        return None
    cv2.setRNGSeed(int(seed))
    h, mask = cv2.findHomography(db_points, query_points, cv2.RANSAC, REPROJECTION_THRESHOLD)
    if h is None or mask is None:
        return None
    if not homography_is_plausible(h) or not projection_covers_enough(h, db_size, query_size):
        return None
    inliers = mask.ravel().astype(bool)
    pairs = np.unique(np.hstack([db_points[inliers], query_points[inliers]]), axis=0)
    if len(pairs) < MIN_INLIERS:
        return None
    return int(len(pairs))
