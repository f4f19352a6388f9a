"""`leaderboard baseline preprocess`: MVTec 3D-AD with the published (BTF) preprocessing
applied, written as a new dataset root in the dataset's own layout.

BTF's script (utils/preprocessing.py, also M3DM's) overwrites the dataset in place and takes
hours, mostly in open3d's DBSCAN. This writes ``OUT/<category>/<split>/<defect>/...`` instead:

- ``xyz/<id>.tiff``: the organised cloud after ``baselines.anomaly.pointcloud.preprocess`` (border
  plane removed, zero-padded to a square, largest DBSCAN cluster kept), float32, as BTF wrote it;
- ``rgb/<id>.png``: the RGB with the same pixels blanked and the same padding, as BTF wrote it;
- every other file (``gt/<id>.png``, calibration, readme, ...): copied unchanged. BTF padded
  the gt masks too; they are kept in the scan's own frame here, which is where the benchmark
  compares anomaly maps.

The input is only read. Each output file is written to a temporary name and renamed, so a
killed run leaves no half-written file, and a rerun skips the scans whose outputs exist and
are newer than their inputs. The baselines call the same ``preprocess`` for their cache.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from baselines.errors import BaselineDataError, BaselineUsageError

MARKER = "PREPROCESSED.json"  # anomaly_patchcore refuses a root holding it
MARKER_VERSION = 1
SETTINGS = ("BTF/M3DM utils/preprocessing.py: plane fitted to the 10-pixel border "
            "(open3d RANSAC, 0.004, 50 points, 1000 iterations, seed 0) and points within "
            "0.005 of it removed from xyz and rgb; zero-padded to a square (side rounded up to "
            "100); DBSCAN eps 0.006, min_points 30 (open3d's labels), largest label kept, "
            "noise counted; gt copied unchanged")


@dataclass(frozen=True)
class Scan:
    xyz: Path        # input tiff
    rgb: Path        # input png
    out_xyz: Path
    out_rgb: Path

    def done(self) -> bool:
        """Both outputs exist and are newer than both inputs."""
        try:
            newest_input = max(self.xyz.stat().st_mtime_ns, self.rgb.stat().st_mtime_ns)
            return min(self.out_xyz.stat().st_mtime_ns,
                       self.out_rgb.stat().st_mtime_ns) >= newest_input
        except FileNotFoundError:
            return False


@dataclass(frozen=True)
class Plan:
    scans: list[Scan]
    copies: list[tuple[Path, Path]]   # (input file, output file), copied unchanged


def plan(root: Path, out: Path) -> Plan:
    """Every ``xyz/*.tiff`` under ``root`` with its ``rgb/*.png``, and every other file."""
    files = sorted(Path(folder, name) for folder, _, names in os.walk(root) for name in names)
    scans, paired = [], set()
    for path in files:
        if path.parent.name == "xyz" and path.suffix == ".tiff":
            rgb = path.parent.parent / "rgb" / (path.stem + ".png")
            if not rgb.is_file():
                raise BaselineDataError(f"{path}: no RGB image {rgb} beside this scan")
            target = out / path.parent.parent.relative_to(root)
            scans.append(Scan(path, rgb, target / "xyz" / path.name, target / "rgb" / rgb.name))
            paired.update((path, rgb))
    if not scans:
        raise BaselineDataError(f"{root}: no scans found; --data must be MVTec 3D-AD's root "
                                "(<category>/<split>/<defect>/xyz/<id>.tiff with rgb/<id>.png)")
    copies = [(path, out / path.relative_to(root)) for path in files if path not in paired]
    return Plan(scans, copies)


def check_folders(root: Path, out: Path) -> tuple[Path, Path]:
    """Resolved (root, out); refuses an output inside the input or the other way round, and
    an output folder made from another dataset."""
    if not root.is_dir():
        raise BaselineDataError(f"{root}: no such folder (--data)")
    root, out = root.resolve(), out.resolve()
    if out.exists() and not out.is_dir():
        raise BaselineUsageError(f"--out {out} is a file; give a folder")
    if out == root or root in out.parents or out in root.parents:
        raise BaselineUsageError(f"--out {out} and --data {root} overlap; the output must be "
                                 "a folder outside the dataset (the dataset is never written)")
    if (root / MARKER).is_file():
        raise BaselineUsageError(f"{root} was written by `leaderboard baseline preprocess` "
                                 "already; give the original dataset root")
    marker = out / MARKER
    if marker.is_file():
        try:
            stored = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BaselineDataError(f"{marker}: unreadable ({exc}); delete it to start over"
                                    ) from None
        if not isinstance(stored, dict):
            stored = {}
        if stored.get("source") != str(root) or stored.get("version") != MARKER_VERSION:
            raise BaselineUsageError(f"{out} holds a preprocessed copy of "
                                     f"{stored.get('source')!r} (version "
                                     f"{stored.get('version')}), not of {root}; choose another "
                                     "--out or delete that folder")
    elif out.is_dir() and any(out.iterdir()):
        raise BaselineUsageError(f"{out}: this folder is not empty and was not made by "
                                 "`leaderboard baseline preprocess`; choose an empty or new one")
    return root, out


def preprocess_scan(scan: Scan) -> float:
    """Read, preprocess and write one scan (outputs written atomically); CPU seconds."""
    from baselines.anomaly.data import read_rgb, read_xyz_tiff
    from baselines.anomaly.pointcloud import preprocess

    start = time.process_time()
    rgb, xyz = read_rgb(scan.rgb), read_xyz_tiff(scan.xyz)
    if xyz.shape[:2] != rgb.shape[:2]:
        raise BaselineDataError(f"{scan.xyz}: the point cloud is {xyz.shape[0]} x "
                                f"{xyz.shape[1]} but its RGB image {scan.rgb} is "
                                f"{rgb.shape[0]} x {rgb.shape[1]}; they must match")
    try:
        done = preprocess(xyz, rgb)
    except ValueError as exc:
        raise BaselineDataError(f"{scan.xyz}: preprocessing failed: {exc}") from None
    _write_png(scan.out_rgb, done.rgb)
    _write_tiff(scan.out_xyz, done.xyz)
    return time.process_time() - start


def _temporary(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _write_tiff(path: Path, xyz: np.ndarray) -> None:
    import tifffile

    tmp = _temporary(path)
    tifffile.imwrite(tmp, xyz.astype(np.float32, copy=False), photometric="rgb")
    os.replace(tmp, path)


def _write_png(path: Path, rgb: np.ndarray) -> None:
    from PIL import Image

    tmp = _temporary(path)
    Image.fromarray(rgb).save(tmp, format="PNG")
    os.replace(tmp, path)


def _copy(source: Path, target: Path) -> bool:
    """Copy unless an identical-looking copy (same size and time) is there; True if copied."""
    src = source.stat()
    try:
        dst = target.stat()
        if dst.st_size == src.st_size and dst.st_mtime_ns == src.st_mtime_ns:
            return False
    except FileNotFoundError:
        pass
    tmp = _temporary(target)
    shutil.copy2(source, tmp)
    os.replace(tmp, target)
    return True


def _work(scan: Scan) -> tuple[float | None, str | None]:
    """One scan in a worker: (CPU seconds, None) or (None, error message)."""
    try:
        return preprocess_scan(scan), None
    except BaselineDataError as exc:
        return None, str(exc)


def _worker_setup() -> None:
    # One thread per worker: the workers already use every core asked for.
    os.environ["OMP_NUM_THREADS"] = "1"


def run(root: Path, out: Path, workers: int | None = None, log=print) -> dict:
    """Preprocess every scan of ``root`` into ``out``; returns a summary dict."""
    from baselines.progress import progress_bar

    root, out = check_folders(Path(root), Path(out))
    work = plan(root, out)
    out.mkdir(parents=True, exist_ok=True)
    marker = out / MARKER
    if not marker.is_file():
        tmp = _temporary(marker)
        tmp.write_text(json.dumps({"source": str(root), "version": MARKER_VERSION,
                                   "preprocessing": SETTINGS}, indent=2) + "\n",
                       encoding="utf-8")
        os.replace(tmp, marker)
    copied = sum(_copy(src, dst) for src, dst in work.copies)
    todo = [scan for scan in work.scans if not scan.done()]
    workers = max(1, min(os.cpu_count() or 1, 16)) if workers is None else workers
    log(f"{len(work.scans)} scans under {root}: {len(work.scans) - len(todo)} already done, "
        f"{len(todo)} to preprocess with {max(workers, 1)} process(es); {copied} other "
        f"file(s) copied, {len(work.copies) - copied} already there")
    start, cpu = time.perf_counter(), []
    with progress_bar(len(todo), "preprocess", "scan") as bar:
        for seconds, error in _results(todo, workers):
            if error is not None:
                raise BaselineDataError(error)
            cpu.append(seconds)
            bar.update(1)
    wall = time.perf_counter() - start
    _remove_leftovers(out)
    summary = {"scans": len(work.scans), "preprocessed": len(todo), "wall_s": wall,
               "cpu_s_per_scan": float(np.mean(cpu)) if cpu else None}
    if todo:
        log(f"preprocessed {len(todo)} scans in {wall:.1f} s ({wall / len(todo):.2f} s per "
            f"scan wall, {summary['cpu_s_per_scan']:.2f} s CPU per scan); wrote {out}")
    else:
        log(f"nothing to do: {out} is complete")
    return summary


def _remove_leftovers(out: Path) -> None:
    """Temporary files a killed run left behind (``_temporary``'s names)."""
    for folder, _, files in os.walk(out):
        for name in files:
            if name.startswith(".") and name.endswith(".tmp"):
                Path(folder, name).unlink(missing_ok=True)


def _results(todo: list[Scan], workers: int):
    if workers <= 1 or len(todo) <= 1:
        for scan in todo:
            yield _work(scan)
        return
    import multiprocessing

    with multiprocessing.get_context().Pool(workers, initializer=_worker_setup) as pool:
        yield from pool.imap_unordered(_work, todo)


def cmd_preprocess(args) -> int:
    """CLI entry (``baselines.cli``): exit 0, 2 (usage), 3 (data) or 130 (interrupted)."""
    try:
        run(args.data, args.out, args.workers)
    except BaselineDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except BaselineUsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. the output disk is full or not writable
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}; run the same command "
              "again once fixed: finished scans are kept", file=sys.stderr)
        return 3
    except ModuleNotFoundError as exc:
        print(f"error: preprocessing needs the '{exc.name}' package: pip install -e "
              "'.[baselines]'", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to resume (finished scans are kept)",
              file=sys.stderr)
        return 130
    return 0
