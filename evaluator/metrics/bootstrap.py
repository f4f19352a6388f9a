"""Percentile bootstrap intervals, computed while the labels are loaded so that only the
interval ends (aggregates) ever leave the evaluator.

Resampling is deterministic and independent of NumPy's sampling algorithms: every slice (or
stratum) draws from its own PCG64 bit generator, seeded with sha256 of ``"<seed>/<name>"``, and
a draw of an index in [0, n) is one raw 64-bit output modulo n (bias below n / 2^64). NumPy
guarantees the raw streams of its bit generators across versions, so re-evaluating an entry
reproduces its intervals exactly; and because the indices depend only on the board, the slice
and the resample number, every entry of a board is resampled identically, which is what the
paired intervals (entry A minus entry B, replicate by replicate) need.

A replicate is represented by how often each unit (query, image) is drawn: a ``(B, n)`` matrix
of counts, so that means, weighted Mann-Whitney statistics and weighted PRO curves are matrix
products instead of gathers.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

RESAMPLES = 1000
LEVEL = 0.95
METHOD = "percentile"
# Slices with fewer units get no interval: its ends would sit close to single units' values.
MIN_UNITS = 10
# Replicates are made in chunks of at most this many counts (rows x units), to bound memory.
CHUNK_CELLS = 1 << 21
# resample_means draws this many indices at a time: a chunk's indices and gathered values
# stay in the CPU's caches.
MEAN_CHUNK_CELLS = 1 << 18

# slice_means resamples slices in this many threads.
WORKERS = max(1, min(2, os.cpu_count() or 1))

Replicates = dict[str, dict[str, "np.ndarray | None"]]  # slice -> metric -> (B,) values


@dataclass
class Bootstrap:
    """Replicate values of every metric with an interval, and the settings that made them
    (the record's ``bootstrap`` block). Replicates never leave the evaluator; only
    :meth:`intervals` and :func:`paired_intervals` do."""

    settings: dict
    replicates: Replicates = field(default_factory=dict)

    def intervals(self) -> dict[str, dict[str, list[float]]]:
        level = self.settings["level"]
        out: dict[str, dict[str, list[float]]] = {}
        for slice_name, metrics in self.replicates.items():
            cells = {m: percentile_interval(r, level) for m, r in metrics.items()}
            cells = {m: v for m, v in cells.items() if v is not None}
            if cells:
                out[slice_name] = cells
        return out


def settings(seed: int, unit: str, notes: str, resamples: int = RESAMPLES,
             level: float = LEVEL) -> dict:
    return {"resamples": resamples, "seed": seed, "level": level, "method": METHOD,
            "unit": unit, "min_units": MIN_UNITS,
            "streams": "per slice: PCG64 seeded with sha256('<seed>/<slice>'), index = raw "
                       "64-bit output mod n",
            "notes": notes}


def board_seed(board_id: str) -> int:
    """The seed of a board's resampling: the first 4 bytes of sha256('bootstrap/<board id>')."""
    digest = hashlib.sha256(f"bootstrap/{board_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def stream(seed: int, name: str) -> np.random.PCG64:
    """The bit generator of one slice or stratum."""
    digest = hashlib.sha256(f"{seed}/{name}".encode()).digest()
    return np.random.PCG64(int.from_bytes(digest[:16], "big"))


def draw(bit_generator: np.random.PCG64, n: int, size: int) -> np.ndarray:
    """``size`` indices in [0, n), in stream order: raw outputs modulo n."""
    return (bit_generator.random_raw(size) % np.uint64(n)).astype(np.int64)


def count_chunks(seed: int, name: str, n: int, resamples: int) -> Iterator[np.ndarray]:
    """The replicates of resampling ``n`` units with replacement, as float64 count matrices
    of a few rows each (replicate b's row counts how often each unit was drawn). Replicate b
    takes draws b*n ... b*n + n - 1 of the stream, whatever the chunking."""
    generator = stream(seed, name)
    rows = max(1, CHUNK_CELLS // max(n, 1))
    for start in range(0, resamples, rows):
        r = min(rows, resamples - start)
        picks = draw(generator, n, r * n).reshape(r, n)
        flat = (np.arange(r, dtype=np.int64)[:, None] * n + picks).ravel()
        yield np.bincount(flat, minlength=r * n).reshape(r, n).astype(np.float64)


def resample_means(values: np.ndarray, seed: int, name: str, resamples: int) -> np.ndarray:
    """Replicates of the column means of ``values`` (n units x m columns) under resampling of
    the units: (resamples, m). The draws are count_chunks' (replicate b takes draws b*n ...
    b*n + n - 1 of the stream); each replicate sums the drawn units' values directly, which
    reads a few MB per chunk where counting them into a (replicates x units) matrix first
    wrote and read several times that (FORB's 36 slices: 55 M draws)."""
    values = np.asarray(values, dtype=np.float64)
    n, m = values.shape
    columns = [np.ascontiguousarray(values[:, j]) for j in range(m)]
    generator = stream(seed, name)
    rows = max(1, MEAN_CHUNK_CELLS // max(n, 1))
    out = np.empty((resamples, m))
    for start in range(0, resamples, rows):
        r = min(rows, resamples - start)
        picks = draw(generator, n, r * n)
        for j, column in enumerate(columns):
            out[start:start + r, j] = np.take(column, picks).reshape(r, n).sum(axis=1)
    return out / n


def stratified_counts(seed: int, name: str, strata: Mapping[str, np.ndarray], n: int,
                      resamples: int) -> np.ndarray:
    """(resamples, n) counts resampling each stratum (positions into the n units) within
    itself, so every replicate keeps each stratum's size. Stratum s draws from the stream
    '<name>/<s>'."""
    counts = np.zeros((resamples, n), dtype=np.float64)
    for stratum, positions in strata.items():
        positions = np.asarray(positions, dtype=np.int64)
        if len(positions) == 0:
            continue
        for start, chunk in _offsets(count_chunks(seed, f"{name}/{stratum}", len(positions),
                                                  resamples)):
            counts[start:start + len(chunk), positions] += chunk
    return counts


def _offsets(chunks: Iterator[np.ndarray]) -> Iterator[tuple[int, np.ndarray]]:
    start = 0
    for chunk in chunks:
        yield start, chunk
        start += len(chunk)


def auc_replicates(scores: np.ndarray, positive: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """ROC AUC (ties count one half, as roc_auc_score) of each weighted replicate: unit i
    appears counts[b, i] times in replicate b. NaN where a replicate lacks a class. Counted
    exactly: below[i] and not_above[i] are integer counts of negatives, weights are integers."""
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    neg_order = np.flatnonzero(~positive)[np.argsort(scores[~positive], kind="stable")]
    pos_index = np.flatnonzero(positive)
    neg_sorted = scores[neg_order]
    lo = np.searchsorted(neg_sorted, scores[pos_index], side="left")
    hi = np.searchsorted(neg_sorted, scores[pos_index], side="right")
    w_neg = counts[:, neg_order]
    cumulative = np.concatenate([np.zeros((len(counts), 1)), np.cumsum(w_neg, axis=1)], axis=1)
    w_pos = counts[:, pos_index]
    twice = (w_pos * (cumulative[:, lo] + cumulative[:, hi])).sum(axis=1)
    denominator = 2.0 * w_pos.sum(axis=1) * w_neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, twice / np.where(denominator > 0, denominator, 1),
                        np.nan)


def pair_count_auc(pairs: np.ndarray, positives: np.ndarray, negatives: np.ndarray,
                   counts: np.ndarray) -> np.ndarray:
    """Pixel ROC AUC of each replicate of images: ``pairs[i, j]`` is the number of (positive
    pixel of image i, negative pixel of image j) pairs ranked correctly (ties one half), so a
    replicate drawing image i c_i times has AUC = c M c / ((c . positives) (c . negatives))."""
    numerator = ((counts @ pairs) * counts).sum(axis=1)
    denominator = (counts @ positives) * (counts @ negatives)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1),
                        np.nan)


def area_up_to(x: np.ndarray, y: np.ndarray, x_max: float) -> np.ndarray:
    """Row-wise trapezoid area under curves (rows of x non-decreasing) from x[:, 0] to x_max,
    the piece up to x_max interpolated linearly (what evaluator.metrics.anomaly.trapezoid does
    for one curve). Whole pieces form a prefix of each row; only the one piece per row that
    crosses x_max needs interpolating."""
    x0, x1, y0, y1 = x[:, :-1], x[:, 1:], y[:, :-1], y[:, 1:]
    whole = x1 <= x_max
    pieces = np.where(whole, 0.5 * (y0 + y1) * (x1 - x0), 0.0)
    rows = np.arange(len(x))
    crossing = whole.sum(axis=1)  # the first piece that is not whole, per row
    has = crossing < pieces.shape[1]
    rows, crossing = rows[has], crossing[has]
    a, b = x0[rows, crossing], x1[rows, crossing]
    c, d = y0[rows, crossing], y1[rows, crossing]
    width = b - a
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.where(width > 0, (d - c) / np.where(width > 0, width, 1), 0.0)
    end = np.minimum(b, x_max)
    piece = 0.5 * (c + (c + slope * (end - a))) * (end - a)
    pieces[rows, crossing] = np.where(a < x_max, piece, 0.0)
    return pieces.sum(axis=1)


def percentile_interval(replicates: np.ndarray | None, level: float = LEVEL) -> list[float] | None:
    """The central ``level`` percentile interval of the replicates (linear interpolation
    between order statistics); None if there are none or any replicate is undefined."""
    if replicates is None:
        return None
    replicates = np.asarray(replicates, dtype=np.float64)
    if replicates.size == 0 or not np.all(np.isfinite(replicates)):
        return None
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(replicates, [tail, 100 - tail])
    return [float(low), float(high)]


def paired_intervals(a: Bootstrap, b: Bootstrap) -> dict[str, dict[str, list[float]]]:
    """Intervals of (a - b), replicate by replicate, wherever both have replicates. Only
    meaningful when both were resampled with the same settings (then the same indices)."""
    if _comparable(a.settings) != _comparable(b.settings):
        return {}
    level = a.settings["level"]
    out: dict[str, dict[str, list[float]]] = {}
    for slice_name, metrics in a.replicates.items():
        other = b.replicates.get(slice_name, {})
        cells = {}
        for metric, values in metrics.items():
            if values is None or other.get(metric) is None:
                continue
            interval = percentile_interval(values - other[metric], level)
            if interval is not None:
                cells[metric] = interval
        if cells:
            out[slice_name] = cells
    return out


def _comparable(block: dict) -> tuple:
    return tuple(block.get(k) for k in ("resamples", "seed", "level", "method", "unit"))


def same_settings(a: dict | None, b: dict | None) -> bool:
    """Do two ``bootstrap`` blocks resample identically (notes aside)?"""
    return isinstance(a, dict) and isinstance(b, dict) and _comparable(a) == _comparable(b)


def slice_means(values: np.ndarray, masks: Mapping[str, np.ndarray], metrics: Sequence[str],
                seed: int, resamples: int) -> Replicates:
    """Replicates of every slice's mean of per-unit ``values`` (n x len(metrics)), resampling
    the slice's own units (slices with fewer than MIN_UNITS units get none)."""
    chosen = {name: members for name, mask in masks.items()
              if len(members := np.flatnonzero(mask)) >= MIN_UNITS}

    def one(name: str) -> np.ndarray:
        return resample_means(values[chosen[name]], seed, name, resamples)

    # Every slice has its own stream, so the slices can be resampled in any order: in
    # WORKERS threads (drawing, gathering and summing leave the GIL).
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        done = dict(zip(chosen, pool.map(one, chosen)))
    return {name: {m: done[name][:, i] for i, m in enumerate(metrics)} for name in chosen}
