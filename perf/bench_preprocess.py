"""Benchmark MVTec 3D-AD's published preprocessing per 800 x 800 scan, open3d's DBSCAN against
``baselines.anomaly.grid_dbscan``, and the ``leaderboard baseline preprocess`` command.

1. Per generated cluttered scan (``baselines.anomaly.synthetic_clutter``: debris, flying pixels,
   outliers): the published steps timed one by one (border plane fit and removal, padding,
   DBSCAN, keeping the largest label), once with open3d's ``cluster_dbscan`` as published and
   once with the grid DBSCAN; wall and CPU seconds (CPU counts every thread, open3d's OpenMP
   ones included) and whether the kept points are identical.
2. The command on a generated 800 x 800 dataset: seconds per scan including reading and
   writing the files, with 1 worker process and with --workers.

    python -m perf.bench_preprocess [--scans 2] [--repeat 3] [--command-scans 6]
        [--workers 2] [--skip-open3d]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from baselines.anomaly import pointcloud as pc
from baselines.anomaly.grid_dbscan import grid_dbscan, organised_pairs
from baselines.anomaly.preprocess import run as preprocess_command
from baselines.anomaly.synthetic import make_mvtec3d_dataset
from baselines.anomaly.synthetic_clutter import cluttered_scan

CATEGORIES = ("bagel", "cable_gland", "carrot", "cookie", "tire")


class Clock:
    """Wall and CPU seconds of the stages of one run."""

    def __init__(self):
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def time(self, stage: str, function, *args):
        wall, cpu = time.perf_counter(), time.process_time()
        result = function(*args)
        self.wall[stage] = time.perf_counter() - wall
        self.cpu[stage] = time.process_time() - cpu
        return result


def published_steps(xyz: np.ndarray, rgb: np.ndarray, dbscan: str) -> tuple[np.ndarray, Clock]:
    """The published preprocessing stage by stage; returns (kept-pixel mask, clock)."""
    clock = Clock()
    plane = clock.time("plane fit + removal", lambda: pc.remove_plane(xyz, rgb)[0])
    padded = clock.time("padding", lambda: pc.pad_to_square(plane)[0])
    valid = pc.valid_mask(padded)
    if dbscan == "open3d":
        labels = clock.time("DBSCAN", pc.dbscan_labels, padded[valid])
    else:
        labels = clock.time("DBSCAN", lambda: grid_dbscan(
            padded[valid], pc.DBSCAN_EPS, pc.DBSCAN_MIN_POINTS, organised_pairs(valid)).labels)

    def keep_largest():
        keep = np.zeros_like(valid)
        keep[valid] = labels == pc.largest_label(labels)
        return keep

    keep = clock.time("largest label", keep_largest)
    return keep, clock


def per_scan(scans: int, repeat: int, skip_open3d: bool) -> None:
    print(f"1. per 800 x 800 cluttered scan (grid: median of {repeat} runs)")
    header = f"{'scan':<22}{'points':>8}  {'stage':<20}{'open3d wall/CPU s':>19}" \
             f"{'grid wall/CPU s':>18}{'speed-up (CPU)':>16}"
    print(header)
    small_xyz, small_rgb = cluttered_scan(200)
    for dbscan in ("grid", "open3d"):  # warm-up: imports and first calls are not timed
        published_steps(small_xyz, small_rgb, dbscan)
    for i in range(scans):
        category = CATEGORIES[i % len(CATEGORIES)]
        xyz, rgb = cluttered_scan(800, seed=100 + i, category=category)
        runs = [published_steps(xyz, rgb, "grid") for _ in range(repeat)]
        keep = runs[0][0]
        grid_wall = {s: statistics.median(c.wall[s] for _, c in runs) for s in runs[0][1].wall}
        grid_cpu = {s: statistics.median(c.cpu[s] for _, c in runs) for s in runs[0][1].cpu}
        o3d = None if skip_open3d else published_steps(xyz, rgb, "open3d")
        points = int(pc.valid_mask(pc.pad_to_square(pc.remove_plane(xyz, rgb)[0])[0]).sum())
        first = f"{category + ' #' + str(i):<22}{points:>8}"
        for stage in [*grid_wall, "whole"]:
            gw = sum(grid_wall.values()) if stage == "whole" else grid_wall[stage]
            gc = sum(grid_cpu.values()) if stage == "whole" else grid_cpu[stage]
            if o3d is None:
                ow = oc = float("nan")
            else:
                ow = sum(o3d[1].wall.values()) if stage == "whole" else o3d[1].wall[stage]
                oc = sum(o3d[1].cpu.values()) if stage == "whole" else o3d[1].cpu[stage]
            ratio = f"{oc / gc:14.1f}x" if o3d is not None and stage in ("DBSCAN", "whole") \
                else ""
            print(f"{first:<30}  {stage:<20}{ow:>9.3f} / {oc:<7.3f}"
                  f"{gw:>8.3f} / {gc:<7.3f}{ratio:>16}")
            first = ""
        if o3d is not None:
            same = np.array_equal(o3d[0], keep)
            print(f"{'':<30}kept points identical to open3d's: {'yes' if same else 'NO'} "
                  f"({int(keep.sum())} kept)")


def command(scans: int, workers: int) -> None:
    print(f"\n2. leaderboard baseline preprocess on {scans} generated 800 x 800 scans "
          "(reading, preprocessing, writing)")
    with tempfile.TemporaryDirectory() as tmp:
        data = make_mvtec3d_dataset(Path(tmp) / "mvtec", ("bagel",), size=800, train=scans,
                                    validation=0, test={}, seed=0)
        for n in sorted({1, workers}):
            out = Path(tmp) / f"out-{n}"
            summary = preprocess_command(data.root, out, workers=n, log=lambda _: None)
            print(f"   --workers {n}: {summary['wall_s'] / scans:.2f} s per scan wall "
                  f"({summary['wall_s']:.1f} s in all), {summary['cpu_s_per_scan']:.2f} s CPU "
                  "per scan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scans", type=int, default=2, help="cluttered scans for part 1")
    parser.add_argument("--repeat", type=int, default=3, help="grid runs per scan")
    parser.add_argument("--command-scans", type=int, default=6, help="scans for part 2")
    parser.add_argument("--workers", type=int, default=2, help="processes for part 2")
    parser.add_argument("--skip-open3d", action="store_true",
                        help="time the grid DBSCAN only (open3d takes ~25 s a scan)")
    args = parser.parse_args()
    per_scan(args.scans, args.repeat, args.skip_open3d)
    if args.command_scans:
        command(args.command_scans, args.workers)


if __name__ == "__main__":
    main()
