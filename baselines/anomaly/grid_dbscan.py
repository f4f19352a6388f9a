"""Exact DBSCAN with open3d's ``cluster_dbscan`` labels, >100x faster on 800 x 800 scans.

What open3d computes (read from its ClusterDBSCAN and KDTreeFlann, then checked against it in
tests/test_grid_dbscan.py):

- the neighbours of p are the points q with ((xp-xq)^2 + (yp-yq)^2) + (zp-zq)^2 < eps^2 in
  float64, p itself included (strict: a point at exactly eps is not a neighbour);
- p is *core* iff it has at least ``min_points`` neighbours;
- clusters are the connected components of core points linked by that relation. open3d visits
  points in index order and grows a whole cluster from the first unlabelled core point before
  moving on, so cluster k is the component whose smallest core index is the k-th smallest;
- a non-core point within eps of a core point (a *border* point) takes the label of the first
  cluster that reaches it, i.e. the smallest label among the clusters of its core neighbours.
  A point relabelled from noise is never taken back, and a labelled one is never relabelled,
  so the order in which open3d walks a cluster does not matter. Every other point is noise
  (-1).

DBSCAN's own definition leaves a border point that touches two clusters ambiguous; open3d's
rule above settles it, and ``GridDbscan.ambiguous`` marks those points so they can be counted.

Why this method (rather than open3d's): open3d stores the full eps-neighbour list of every
point (thousands per point on an 800 x 800 scan), which is where its ~25 s per scan go. Here
nothing needs those lists:

1. A grid of cubes of side eps / sqrt(3) (diagonal just under eps): all points in one cube
   are neighbours of one another, so every point of a cube holding >= min_points points is
   core, and all core points of one cube are in one cluster. On a scan nearly every point is
   in such a cube.
2. Only the points of sparse cubes are counted one by one, with scipy's KD-tree at radii just
   below and just above eps (certain either way), and the few undecided ones, and the
   non-core ones, are settled by the exact float64 distance above.
3. Cubes are joined into clusters where two of their core points are neighbours: first
   through the cheap hint pairs (on an organised cloud, adjacent pixels); then, only for
   nearby cubes still in different clusters, each cube's most central core point is tried
   against the other's core points; for the cubes still apart after that, every pair of
   their core points is checked.

The ``dbscan`` package on PyPI (Wang, Gu and Shun, SIGMOD 2020) is exact and grid-based too,
and faster (0.18 s on an 800 x 800 scan here), but not open3d's DBSCAN: checked against
open3d 0.20, it counts a point at exactly eps as a neighbour (open3d does not), numbers the
clusters its own way and gave an ambiguous border point of a random test cloud another
cluster than open3d. Matching open3d would still need the renumbering and steps 2-3's border
work, on top of a compiled dependency; this module needs only numpy and scipy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Radii just below / above eps for the KD-tree: far wider than float64 rounding, so a point the
# tree finds within the smaller one is certainly a neighbour, and every neighbour is within the
# larger one. Points between the two are settled by the exact distance.
_SURE_INSIDE, _SURE_OUTSIDE = 1 - 1e-7, 1 + 1e-7
# Cube side slightly under eps / sqrt(3), so two points of one cube are always neighbours.
_CUBE_SHRINK = 1 - 1e-6
_MAX_CELLS_PER_AXIS = 2 ** 20   # keeps the linear cube keys inside int64
_PAIR_CHUNK = 4_000_000         # point pairs checked per step (bounds memory)
# Cube offsets that can hold neighbours: every offset in -2..2 per axis, each unordered pair
# of cubes once (the offsets that are lexicographically positive).
_OFFSETS = np.array([(a, b, c) for a in range(-2, 3) for b in range(-2, 3)
                     for c in range(-2, 3) if (a, b, c) > (0, 0, 0)], dtype=np.int64)


@dataclass(frozen=True)
class GridDbscan:
    labels: np.ndarray     # (N,) int64: open3d's labels, -1 for noise
    core: np.ndarray       # (N,) bool
    ambiguous: np.ndarray  # (N,) bool: border points within eps of cores of 2+ clusters


def squared_distances(points: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """((xi-xj)^2 + (yi-yj)^2) + (zi-zj)^2 in float64, summed in the order open3d's KD-tree
    does, so ``< eps * eps`` gives the same neighbours bit for bit."""
    d = points[i] - points[j]
    d *= d
    return (d[:, 0] + d[:, 1]) + d[:, 2]


def organised_pairs(valid: np.ndarray) -> np.ndarray:
    """(2, P) index pairs of image-adjacent valid pixels (right, down and both diagonals), in
    the numbering of ``xyz[valid]``: the hint pairs for ``grid_dbscan`` on an organised cloud.
    """
    index = np.full(valid.shape, -1, dtype=np.int64)
    index[valid] = np.arange(int(valid.sum()))
    pairs = [(index[:, :-1], index[:, 1:]), (index[:-1, :], index[1:, :]),
             (index[:-1, :-1], index[1:, 1:]), (index[:-1, 1:], index[1:, :-1])]
    i = np.concatenate([a.ravel() for a, _ in pairs])
    j = np.concatenate([b.ravel() for _, b in pairs])
    both = (i >= 0) & (j >= 0)
    return np.stack([i[both], j[both]])


def grid_dbscan(points: np.ndarray, eps: float, min_points: int,
                hint_pairs: np.ndarray | None = None) -> GridDbscan:
    """DBSCAN of (N, 3) points with exactly open3d's labels (see the module docstring).

    ``hint_pairs`` (2, P) are point pairs likely to be neighbours (e.g. ``organised_pairs``);
    they only save work: the result is the same with or without them.
    """
    points = np.ascontiguousarray(points, dtype=np.float64).reshape(-1, 3)
    n = len(points)
    if not np.isfinite(points).all():
        raise ValueError("DBSCAN needs finite coordinates")
    if eps <= 0 or min_points < 1:
        raise ValueError(f"DBSCAN needs eps > 0 and min_points >= 1, not {eps}, {min_points}")
    if n == 0:
        empty = np.zeros(0, dtype=bool)
        return GridDbscan(np.zeros(0, dtype=np.int64), empty, empty)
    eps2 = eps * eps
    grid = _Grid(points, eps)
    core = _core_points(points, grid, eps, eps2, min_points)
    neighbours = core.border_pairs
    cube_cluster = _cube_clusters(points, grid, core.mask, eps2, hint_pairs)

    # Cluster k is the one whose smallest core index is the k-th smallest (open3d's order).
    core_index = np.flatnonzero(core.mask)
    point_cluster = cube_cluster[grid.cube[core_index]]
    first = np.full(len(cube_cluster), n, dtype=np.int64)
    np.minimum.at(first, point_cluster, core_index)
    rank = np.empty_like(first)
    rank[np.argsort(first)] = np.arange(len(first))
    labels = np.full(n, -1, dtype=np.int64)
    labels[core_index] = rank[point_cluster]

    # Border points: the smallest label among their core neighbours.
    src, dst = neighbours
    to_core = core.mask[dst]
    src, dst_label = src[to_core], labels[dst[to_core]]
    smallest = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    largest = np.full(n, -1, dtype=np.int64)
    np.minimum.at(smallest, src, dst_label)
    np.maximum.at(largest, src, dst_label)
    border = largest >= 0
    labels[border] = smallest[border]
    return GridDbscan(labels, core.mask, border & (largest != smallest))


class _Grid:
    """Points binned into cubes of side just under eps / sqrt(3)."""

    def __init__(self, points: np.ndarray, eps: float):
        self.side = side = eps / np.sqrt(3.0) * _CUBE_SHRINK
        self.low = low = points.min(axis=0)
        extent = (points.max(axis=0) - low) / side
        if extent.max() >= _MAX_CELLS_PER_AXIS - 8:
            raise ValueError(f"the points span {extent.max() * side:.3g} (coordinate units), "
                             f"too wide for a DBSCAN grid of eps {eps}")
        # +2 leaves room for the offsets -2..2 without wrapping into another row of cubes.
        cell = np.floor((points - low) / side).astype(np.int64) + 2
        self.dims = cell.max(axis=0) + 3
        self.key_of_point = self._key(cell)
        order = np.argsort(self.key_of_point, kind="stable")
        self.keys, self.start, self.count = np.unique(self.key_of_point[order],
                                                      return_index=True, return_counts=True)
        self.order = order                       # points sorted by cube
        self.cube = np.empty(len(points), dtype=np.int64)
        self.cube[order] = np.repeat(np.arange(len(self.keys)), self.count)
        self.cell_of_cube = cell[order[self.start]]

    def _key(self, cell: np.ndarray) -> np.ndarray:
        return (cell[:, 0] * self.dims[1] + cell[:, 1]) * self.dims[2] + cell[:, 2]

    def find(self, cells: np.ndarray) -> np.ndarray:
        """Cube number of each (M, 3) cell, -1 where no point lies in it."""
        keys = self._key(cells)
        where = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return np.where(self.keys[where] == keys, where, -1)


@dataclass
class _Core:
    mask: np.ndarray          # (N,) bool
    border_pairs: tuple[np.ndarray, np.ndarray]  # every (non-core point, neighbour) pair


def _core_points(points: np.ndarray, grid: _Grid, eps: float, eps2: float,
                 min_points: int) -> _Core:
    """Core flags: whole cubes of >= min_points points at once; the points of sparser cubes
    counted with the KD-tree, exact distances where the tree cannot be sure."""
    from scipy.spatial import cKDTree

    core = grid.count[grid.cube] >= min_points
    sparse = np.flatnonzero(~core)
    no_pairs = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    if len(sparse) == 0:
        return _Core(core, no_pairs)
    tree = cKDTree(points)
    sure = tree.query_ball_point(points[sparse], eps * _SURE_INSIDE, return_length=True)
    core[sparse[sure >= min_points]] = True
    unsure = sparse[sure < min_points]
    if len(unsure) == 0:
        return _Core(core, no_pairs)
    lists = tree.query_ball_point(points[unsure], eps * _SURE_OUTSIDE)
    sizes = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
    src = np.repeat(unsure, sizes)
    dst = np.fromiter((j for x in lists for j in x), dtype=np.int64, count=int(sizes.sum()))
    close = squared_distances(points, src, dst) < eps2
    src, dst = src[close], dst[close]
    counts = np.bincount(src, minlength=len(points))[unsure]
    core[unsure[counts >= min_points]] = True
    border = ~core[src]
    return _Core(core, (src[border], dst[border]))


def _cube_clusters(points: np.ndarray, grid: _Grid, core: np.ndarray, eps2: float,
                   hint_pairs: np.ndarray | None) -> np.ndarray:
    """(cubes,) cluster number of each cube's core points (-1 for cubes without any)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n_cubes = len(grid.keys)
    core_cubes = np.zeros(n_cubes, dtype=bool)
    core_cubes[grid.cube[core]] = True

    def components(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n_cubes, n_cubes))
        return connected_components(graph, directed=False)[1]

    # Cheap links first: hint pairs of core neighbours in different cubes.
    links_a, links_b = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    if hint_pairs is not None and hint_pairs.size:
        i, j = np.asarray(hint_pairs, dtype=np.int64)
        keep = core[i] & core[j] & (grid.cube[i] != grid.cube[j])
        i, j = i[keep], j[keep]
        close = squared_distances(points, i, j) < eps2
        links_a.append(grid.cube[i[close]])
        links_b.append(grid.cube[j[close]])
    cluster = components(np.concatenate(links_a), np.concatenate(links_b))

    # Then every pair of nearby core cubes still apart. Pairs already joined need no check:
    # their link would change nothing. A cheap probe first (each cube's core point nearest its
    # centre against the other cube's core points: on a surface that links most neighbouring
    # cubes), then every pair of core points for the cubes still apart.
    cubes = np.flatnonzero(core_cubes)
    near = grid.find((grid.cell_of_cube[cubes][:, None, :] + _OFFSETS[None]).reshape(-1, 3))
    a = np.repeat(cubes, len(_OFFSETS))
    keep = near >= 0
    a, b = a[keep], near[keep]
    keep = core_cubes[b] & (cluster[a] != cluster[b])
    a, b = a[keep], b[keep]
    if len(a) == 0:
        return np.where(core_cubes, cluster, -1)
    cores = _CoresByCube(points, grid, core)
    one = np.ones(len(a), dtype=np.int64)
    linked = (_any_pair_within(points, cores.central, a, one, cores.points, cores.first[b],
                               cores.size[b], eps2)
              | _any_pair_within(points, cores.central, b, one, cores.points, cores.first[a],
                                 cores.size[a], eps2))
    links_a.append(a[linked])
    links_b.append(b[linked])
    cluster = components(np.concatenate(links_a), np.concatenate(links_b))
    keep = cluster[a] != cluster[b]
    a, b = a[keep], b[keep]
    if len(a):
        linked = _any_pair_within(points, cores.points, cores.first[a], cores.size[a],
                                  cores.points, cores.first[b], cores.size[b], eps2)
        links_a.append(a[linked])
        links_b.append(b[linked])
        cluster = components(np.concatenate(links_a), np.concatenate(links_b))
    return np.where(core_cubes, cluster, -1)


class _CoresByCube:
    """Core points grouped by cube: cube c's are points[first[c]:first[c] + size[c]];
    central[c] is the one nearest the cube's centre."""

    def __init__(self, points: np.ndarray, grid: _Grid, core: np.ndarray):
        self.points = grid.order[core[grid.order]]
        cube = grid.cube[self.points]
        self.size = np.bincount(cube, minlength=len(grid.keys))
        self.first = np.concatenate([[0], np.cumsum(self.size)[:-1]])
        centre = grid.low + (grid.cell_of_cube[cube] - 2 + 0.5) * grid.side
        offset = points[self.points] - centre
        by_cube = np.lexsort((np.einsum("ij,ij->i", offset, offset), cube))
        first_of_cube = np.flatnonzero(np.diff(cube[by_cube], prepend=-1))
        self.central = np.zeros(len(grid.keys), dtype=np.int64)
        self.central[cube[by_cube[first_of_cube]]] = self.points[by_cube[first_of_cube]]


def _any_pair_within(points: np.ndarray, list_a: np.ndarray, first_a: np.ndarray,
                     size_a: np.ndarray, list_b: np.ndarray, first_b: np.ndarray,
                     size_b: np.ndarray, eps2: float) -> np.ndarray:
    """(K,) bool: whether some point of list_a[first_a[k]:][:size_a[k]] and some point of
    list_b[first_b[k]:][:size_b[k]] are closer than eps, checked a chunk of pairs at a time."""
    pair_sizes = size_a * size_b
    linked = np.zeros(len(pair_sizes), dtype=bool)
    ends = np.cumsum(pair_sizes)
    bounds = np.searchsorted(ends, np.arange(_PAIR_CHUNK, int(ends[-1]), _PAIR_CHUNK),
                             side="right")
    for lo, hi in zip(np.concatenate([[0], bounds]), np.concatenate([bounds, [len(ends)]])):
        if lo == hi:
            continue
        sizes = pair_sizes[lo:hi]
        pair = np.repeat(np.arange(lo, hi), sizes)
        within = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        nb = size_b[pair]
        i = list_a[first_a[pair] + within // nb]
        j = list_b[first_b[pair] + within % nb]
        close = squared_distances(points, i, j) < eps2
        linked[lo:hi] = np.bincount(pair[close] - lo, minlength=hi - lo) > 0
    return linked
