"""Benchmark the FORB neural baselines: is feature extraction bound by the model, and how fast
is the exact search at FORB's full size?

1. Model alone: forwards/s of the embedder on random crops already on the device.
2. Pipeline: images/s of the real extraction path (JPEG decode, 7 resizes and crops in worker
   processes, pinned memory, normalisation, forward, cache writes) on a generated FORB-shaped
   dataset, converted to forwards/s (x 7 scales) and compared with (1). The target is >= 70 %.
3. Search: exact cosine top-10 of 13,901 queries against 54,435 database vectors (and the
   49,850 OOD rows), as the baselines run it.

    python -m perf.bench_forb_baselines [--baseline forb-dino-vit-s8] [--device cuda]
        [--images 256] [--image-size 800] [--batch-size 32] [--workers 15]

Random weights: speed does not depend on the weights' values.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from baselines import devices
from baselines.forb.data import load_forb
from baselines.forb.models import EMBEDDERS, build_embedder, normaliser
from baselines.forb.neural import embed_list
from baselines.forb.multiscale import DATABASE_SCALES
from baselines.options import RunOptions
from baselines.run_record import RunRecord
from baselines.forb.search import exact_top_k
from baselines.forb.synthetic import make_forb_dataset

N_DATABASE, N_OODS, N_QUERIES = 54_435, 49_850, 13_901


def model_alone(forward, embedder, device: str, batch: int, precision: str, seconds: float):
    normalise = normaliser(embedder, device)
    crops = torch.randint(0, 256, (batch, embedder.crop, embedder.crop, 3), dtype=torch.uint8)
    crops = crops.pin_memory() if device.startswith("cuda") else crops
    use_fp16 = precision == "fp16"
    done, start = 0, None
    with torch.inference_mode():
        for step in range(10_000):
            if step == 2:  # after warm-up
                _sync(device)
                start = time.perf_counter()
            with torch.autocast(device.split(":")[0], torch.float16, enabled=use_fp16):
                forward(normalise(crops)).float().cpu()
            if start is not None:
                done += batch
                if time.perf_counter() - start > seconds:
                    break
    _sync(device)
    return done / (time.perf_counter() - start)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def compare_precision(fp16: np.ndarray, fp32: np.ndarray, device: str) -> None:
    """How far fp16 moves each embedding, and whether it changes who is whose neighbour."""
    cosine = np.sum(fp16 * fp32, axis=1)
    ids16, _ = exact_top_k(fp16, fp16, 11, device)
    ids32, _ = exact_top_k(fp32, fp32, 11, device)
    # Column 0 is (almost always) the image itself; compare the 10 neighbours after it.
    top1 = np.mean(ids16[:, 1] == ids32[:, 1])
    overlap = np.mean([len(set(a[1:]) & set(b[1:])) / 10 for a, b in zip(ids16, ids32)])
    print(f"fp16 vs fp32: embedding cosine min {cosine.min():.6f}, mean {cosine.mean():.6f}; "
          f"nearest neighbour agrees for {100 * top1:.2f} % of images, top-10 overlap "
          f"{100 * overlap:.2f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="forb-dino-vit-s8", choices=sorted(EMBEDDERS))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--images", type=int, default=None,
                        help="database images for the pipeline run (default 512 GPU, 8 CPU)")
    parser.add_argument("--image-size", type=int, default=800,
                        help="longer side of the generated JPEGs (FORB's photos are larger "
                             "than the crops, so decode and resize cost something)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="how long to time the model alone")
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--weights", default="random",
                        help="random (default), published or a checkpoint: the precision "
                             "comparison means something only with real weights")
    parser.add_argument("--data", type=Path, default=None,
                        help="a FORB root to read images from instead of generated ones")
    parser.add_argument("--compare-precision", action="store_true",
                        help="also embed the images in fp32 and report how much fp16 moves "
                             "the embeddings and the nearest-neighbour rankings (GPU)")
    args = parser.parse_args()

    device = devices.resolve(args.device)
    gpu = device.startswith("cuda")
    batch = args.batch_size or (32 if gpu else 4)
    n_images = args.images or (512 if gpu else 8)
    precision = "fp16" if gpu else "fp32"
    embedder = EMBEDDERS[args.baseline]
    info = devices.describe(device)
    print(f"device: {devices.hardware_text(info)}; torch {torch.__version__}; "
          f"{args.baseline} ({embedder.architecture}), {precision}, batch {batch} images")

    forward, model, weights = build_embedder(embedder, args.weights)
    model.to(device)
    alone = model_alone(forward, embedder, device, batch * len(DATABASE_SCALES), precision,
                        args.seconds)
    print(f"model alone: {alone:.1f} forwards/s at {embedder.crop} px "
          f"({alone / len(DATABASE_SCALES):.1f} database images/s at 7 scales)")

    with tempfile.TemporaryDirectory() as tmp:
        if args.data is None:
            root = make_forb_dataset(Path(tmp) / "FORB", queries_per_type=1,
                                     distractors=max(0, n_images - 8), exact_copies=0,
                                     image_size=args.image_size).root
        else:
            root = args.data
        images = load_forb(root)
        paths = images.database_paths[:n_images]
        options = RunOptions(data=root, out=Path(tmp) / "entry", device=device,
                             weights=args.weights, batch_size=batch, workers=args.workers,
                             cache=Path(tmp) / "cache")
        record = RunRecord(args.baseline, "bench", {})
        start = time.perf_counter()
        features = embed_list(images, paths, DATABASE_SCALES, "database", embedder, forward,
                              weights["state_sha256"], options, record)
        _sync(device)
        seconds = time.perf_counter() - start
        n = len(paths)
        if args.compare_precision and gpu:
            options.precision, options.cache = "fp32", Path(tmp) / "cache32"
            reference = embed_list(images, paths, DATABASE_SCALES, "database", embedder,
                                   forward, weights["state_sha256"], options, record)
            compare_precision(features, reference, device)
    rate = n / seconds
    print(f"pipeline: {n} images of {args.image_size} px in {seconds:.1f} s = {rate:.1f} "
          f"images/s = {rate * 7:.1f} forwards/s, {100 * rate * 7 / alone:.0f} % of the model "
          f"alone (workers {options.workers if options.workers is not None else 'auto'}, "
          f"{os.cpu_count()} CPUs)")

    if not args.skip_search:
        rng = np.random.default_rng(0)
        database = rng.normal(size=(N_DATABASE, embedder.dim)).astype(np.float32)
        queries = rng.normal(size=(N_QUERIES, embedder.dim)).astype(np.float32)
        oods = np.sort(rng.choice(N_DATABASE, N_OODS, replace=False))
        for name, db in (("all", database), ("oods", database[oods])):
            _sync(device)
            start = time.perf_counter()
            exact_top_k(queries, db, 10, device)
            _sync(device)
            print(f"search {name}: exact top-10 of {N_QUERIES:,} x {len(db):,} "
                  f"(dim {embedder.dim}) in {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
