"""Benchmark anomaly-detection scoring against the decode floor.

Writes (once, into --workdir) a label root of 10 categories x 120 test samples with 800 x 800
PNG masks, and predictions with 224 x 224 float16 maps split into one file per category
(the whole set is 160 MB, over the 100 MB a file may hold), plus the same predictions with
160 x 160 float32 maps (decoded to float32 and resized to 224 x 224). Then times, interleaved
(floor, command, floor, command, ...), whole `leaderboard evaluate` processes and the decode
floor: a single-threaded process that only reads every prediction line, decodes its map
(JSON, base64, zlib when compressed, resize when not 224 x 224) and decodes every mask PNG to
224 x 224. Prints medians, their ratio and peak memory, and the same for an Eyecandies-sized
workload (10 x 50 samples, 512 x 512 masks).

    python -m perf.bench_anomaly [--workdir /tmp/ad-bench] [--repeat 3]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import sys
import time
import zlib
from pathlib import Path

import numpy as np

from evaluator.anomaly import synthetic
from evaluator.anomaly.datasets import EYECANDIES_LAYOUT, MVTEC3D_LAYOUT
from perf.measure import run_cli, run_python

WORKLOADS = {
    "mvtec3d-ad": (MVTEC3D_LAYOUT, 120, 800),
    "eyecandies": (EYECANDIES_LAYOUT, 50, 512),
}
# Prediction sets per workload: folder name -> (map side, dtype).
MAP_VARIANTS = {
    "mvtec3d-ad": {"predictions": (224, "float16"), "predictions-float32-160": (160, "float32")},
    "eyecandies": {"predictions": (224, "float16")},
}
MAP_SIZE = 224


def prepare(workdir: Path, name: str) -> tuple[Path, Path]:
    """The label root and the float16 predictions of a workload (written once)."""
    root = workdir / name / "labels"
    return root, prepare_predictions(workdir, name, "predictions")


def prepare_predictions(workdir: Path, name: str, folder: str) -> Path:
    layout, per_category, mask_size = WORKLOADS[name]
    root, preds = workdir / name / "labels", workdir / name / folder
    map_size, dtype = MAP_VARIANTS[name][folder]
    ready = preds / "ready" if folder != "predictions" else workdir / name / "ready"
    if not ready.exists():
        start = time.perf_counter()
        if root.exists():  # the masks of an earlier run: the maps must match them
            samples = _written_masks(root, layout)
        else:
            samples = synthetic.write_label_root(root, layout, per_category, mask_size, seed=0)
        lines = list(synthetic.prediction_lines(samples, map_size=map_size, dtype=dtype))
        for category in layout.categories:
            synthetic.write_predictions(
                preds / f"predictions-{category}.ndjson",
                [line for line in lines if line["sample"].startswith(category + "/")])
        ready.write_text("")
        print(f"  generated {len(samples)} samples ({folder}) in "
              f"{time.perf_counter() - start:.0f} s")
    return preds


def _written_masks(root: Path, layout) -> dict[str, np.ndarray]:
    return {sample: _decode_mask(path, full_size=True)
            for sample, (_, path) in sorted(layout.list_samples(root).items())}


def decode_floor(predictions: Path, labels: Path, dataset: str) -> None:
    """Only what any evaluation must do, on one thread: every line parsed and its map decoded
    to 224 x 224, every mask PNG decoded to 224 x 224. Nothing is validated or scored."""
    from evaluator.anomaly.maps import resize_bilinear

    for path in sorted(p for p in predictions.iterdir() if p.name.endswith(".ndjson")):
        with open(path, "rb") as lines:
            for text in lines:
                payload = json.loads(text)["map"]
                raw = base64.b64decode(payload["data"])
                if payload.get("compression") == "zlib":
                    raw = zlib.decompress(raw)
                values = np.frombuffer(raw, dtype=payload["dtype"]).reshape(payload["shape"])
                if values.shape != (MAP_SIZE, MAP_SIZE):
                    resize_bilinear(values.astype(np.float32), MAP_SIZE)
    for _, mask_path in WORKLOADS[dataset][0].list_samples(labels).values():
        _decode_mask(mask_path)


def _decode_mask(path: Path, full_size: bool = False) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        grey = image.convert("L")
        if not full_size:
            grey = grey.resize((MAP_SIZE, MAP_SIZE), Image.NEAREST)
        return np.asarray(grey) > 127


_FLOOR = ("from pathlib import Path\nfrom perf.bench_anomaly import decode_floor\n"
          "decode_floor(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])\n")


def compare(name: str, root: Path, preds: Path, repeat: int) -> None:
    """Interleaved runs of the decode floor and the whole command; medians and their ratio."""
    cli = ["evaluate", "--benchmark", name, "--predictions", str(preds), "--labels", str(root)]
    floors, commands = [], []
    for _ in range(repeat):
        floors.append(run_python(_FLOOR, [str(preds), str(root), name], "decode floor"))
        commands.append(run_cli(cli))
    floor = statistics.median(w for w, _ in floors)
    command = statistics.median(w for w, _ in commands)
    print(f"    decode floor (1 thread):      median {floor:.2f} s "
          f"({_spread(floors)}); peak RSS {max(m for _, m in floors):.0f} MB")
    print(f"    whole `leaderboard evaluate`: median {command:.2f} s "
          f"({_spread(commands)}); peak RSS {max(m for _, m in commands):.0f} MB")
    print(f"    ratio command / floor: {command / floor:.2f}x over {repeat} interleaved runs")


def _spread(runs: list[tuple[float, float]]) -> str:
    walls = [w for w, _ in runs]
    return f"min {min(walls):.2f}, max {max(walls):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ad-bench"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=sorted(WORKLOADS), help="one workload only")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, NumPy {np.__version__}")
    for name in [args.only] if args.only else WORKLOADS:
        print(f"{name}:")
        root = prepare(args.workdir, name)[0]
        for folder, (side, dtype) in MAP_VARIANTS[name].items():
            preds = prepare_predictions(args.workdir, name, folder)
            files = [p for p in preds.iterdir() if p.name.endswith(".ndjson")]
            size = sum(p.stat().st_size for p in files)
            print(f"  {side} x {side} {dtype} maps: {size / 1e6:.0f} MB in {len(files)} files")
            compare(name, root, preds, args.repeat)


if __name__ == "__main__":
    main()
