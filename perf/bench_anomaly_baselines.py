"""Benchmark the anomaly-detection baselines stage by stage, at MVTec 3D-AD's sizes.

1. Per scan: preprocessing of an 800 x 800 organised cloud (plane, padding, DBSCAN), FPFH on
   its 224 x 224 resize, and the RGB networks' forward (WRN-50-2, DINO ViT-B/8).
2. Memory bank: the greedy coreset at one category's size (MVTec 3D-AD's largest train set
   is about 360 scans; 250 x 784 patches = 196k rows, 10 % selected), timed on the first
   --coreset-steps selections and extrapolated.
3. Scoring: nearest-neighbour distances of one scan's 784 patches to a 19.6k-row bank, the
   reweighting, upsampling and blur, at every feature width (33, 1536, 1569, 768); the search
   runs in chunks, so memory stays at one chunk of distances whatever the bank size.
4. The projection: a whole-test-set estimate (1,197 scans, 2,656 training scans) per
   baseline from the figures above.

    python -m perf.bench_anomaly_baselines [--device cuda] [--train-scans 250]
        [--coreset-steps 500] [--scans 8]

Random weights and generated data: speed does not depend on either.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from baselines.anomaly.data import load_mvtec3d, read_scan
from baselines.anomaly.models import EXTRACTORS, RgbPatchFeatures, resize_rgb
from baselines.anomaly.fpfh import fpfh_patches
from baselines.anomaly.patchcore import BLURS, MemoryBank, greedy_coreset, random_projection, \
    upsample_map
from baselines.anomaly.pointcloud import preprocess, resize_organised
from baselines.anomaly.synthetic import make_mvtec3d_dataset

PATCHES = 784
MVTEC_TEST, MVTEC_TRAIN = 1_197, 2_656
DIMS = {"fpfh": 33, "rgb-wrn50": 1536, "rgb-fpfh": 1569, "dino-vitb8": 768}


def timed(function, repeat: int) -> float:
    """Seconds per call, after one warm-up call."""
    function()
    start = time.perf_counter()
    for _ in range(repeat):
        function()
    return (time.perf_counter() - start) / repeat


def per_scan(device: str, scans: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        data = make_mvtec3d_dataset(Path(tmp) / "mvtec", ("bagel",), size=800, train=1,
                                    validation=1, test={"good": 1}, seed=0)
        scan = load_mvtec3d(data.root).train["bagel"][0]
        figures = {"read scan (800 x 800 png + tiff)": timed(lambda: read_scan(scan), 2)}
        rgb, xyz = read_scan(scan)
    done = preprocess(xyz, rgb)
    figures["preprocess (plane, pad, DBSCAN)"] = timed(lambda: preprocess(xyz, rgb), 1)
    xyz224 = resize_organised(done.xyz, 224)
    figures["FPFH (224 x 224 cloud)"] = timed(lambda: fpfh_patches(xyz224), 3)
    batch = np.stack([resize_rgb(rgb)] * scans)
    for key in ("wrn50", "dino_vitb8"):
        extractor = RgbPatchFeatures(EXTRACTORS[key], "random", device)
        figures[f"{key} forward"] = timed(lambda e=extractor: e(batch), 1) / scans
    return figures


def coreset(device: str, train_scans: int, steps: int) -> tuple[float, float, int]:
    """(projection seconds, seconds per greedy selection, selections) at one category's size,
    with WRN-50-2-wide features."""
    rows = train_scans * PATCHES
    features = torch.randn(rows, DIMS["rgb-wrn50"])
    start = time.perf_counter()
    projected = random_projection(features, 0.9, 0)
    projection = time.perf_counter() - start
    half = device.startswith("cuda")
    greedy_coreset(projected, 2, device=device, half=half)  # warm-up
    start = time.perf_counter()
    greedy_coreset(projected, steps, device=device, half=half)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return projection, (time.perf_counter() - start) / steps, int(0.1 * rows)


def scoring(device: str, bank_rows: int) -> dict[str, float]:
    figures = {}
    for name, dim in DIMS.items():
        bank = MemoryBank(coreset_fraction=1.0, device=device)
        bank.fit(torch.randn(bank_rows, dim))
        patches = torch.randn(PATCHES, dim)

        def one_scan(bank=bank, patches=patches):
            _, grid = bank.score(patches, (28, 28))
            BLURS["published"](upsample_map(grid, 224))

        figures[name] = timed(one_scan, 5)
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--train-scans", type=int, default=250,
                        help="training scans of the category whose coreset is timed")
    parser.add_argument("--coreset-steps", type=int, default=300,
                        help="greedy selections timed (the rest is extrapolated)")
    parser.add_argument("--scans", type=int, default=4, help="RGB batch size timed")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    print(f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads")

    scan = per_scan(args.device, args.scans)
    print("\nper scan:")
    for name, seconds in scan.items():
        print(f"  {name:36s} {seconds * 1000:8.1f} ms")

    projection, per_step, selections = coreset(args.device, args.train_scans, args.coreset_steps)
    bank_rows = selections
    print(f"\ncoreset of one category ({args.train_scans} scans = "
          f"{args.train_scans * PATCHES:,} patches, WRN-50-2 width):")
    print(f"  sparse random projection            {projection:8.1f} s")
    print(f"  greedy selection                    {per_step * 1000:8.2f} ms per selection, "
          f"{per_step * selections:.0f} s for all {selections:,}")

    score = scoring(args.device, bank_rows)
    print(f"\nscoring one test scan against a {bank_rows:,}-row bank (search, reweighting, "
          "upsampling, blur):")
    for name, seconds in score.items():
        print(f"  {name:12s} (dim {DIMS[name]:4d})          {seconds * 1000:8.1f} ms")

    # Whole MVTec 3D-AD test set: every scan is read, preprocessed where point clouds are
    # used, featurised and scored; each category's bank is built once.
    categories = 10
    coreset_all = categories * (projection + per_step * selections)
    print(f"\nestimate for MVTec 3D-AD ({MVTEC_TRAIN:,} train + {MVTEC_TEST:,} test scans, one "
          "process; preprocessing and FPFH spread over worker processes in a real run):")
    scans = MVTEC_TRAIN + MVTEC_TEST
    for name in DIMS:
        work = scans * scan["read scan (800 x 800 png + tiff)"]
        if name != "dino-vitb8":
            work += scans * scan["preprocess (plane, pad, DBSCAN)"]
        if "fpfh" in name:
            work += scans * scan["FPFH (224 x 224 cloud)"]
        if "wrn50" in name or name == "rgb-fpfh":
            work += scans * scan["wrn50 forward"]
        if name == "dino-vitb8":
            work += scans * scan["dino_vitb8 forward"]
        total = work + coreset_all + MVTEC_TEST * score[name]
        print(f"  {name:12s} {total / 60:7.1f} min ({MVTEC_TEST * score[name] / 60:.1f} min "
              f"scoring, {coreset_all / 60:.1f} min coresets)")


if __name__ == "__main__":
    main()
