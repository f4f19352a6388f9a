"""Benchmark anomaly-detection scoring on an MVTec-3D-AD-sized generated workload.

Writes (once, into --workdir) a label root of 10 categories x 120 test samples with 800 x 800
PNG masks, and predictions with 224 x 224 float16 maps split into one file per category
(the whole set is 160 MB, over the 100 MB a file may hold). Then times whole
`leaderboard evaluate` processes and prints wall time and peak memory, and the same for an
Eyecandies-sized workload (10 x 50 samples, 512 x 512 masks).

    python -m perf.bench_anomaly [--workdir /tmp/ad-bench] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from evaluator.anomaly import synthetic
from perf.measure import run_cli
from evaluator.anomaly.datasets import EYECANDIES_LAYOUT, MVTEC3D_LAYOUT

WORKLOADS = {
    "mvtec3d-ad": (MVTEC3D_LAYOUT, 120, 800),
    "eyecandies": (EYECANDIES_LAYOUT, 50, 512),
}


def prepare(workdir: Path, name: str) -> tuple[Path, Path]:
    layout, per_category, mask_size = WORKLOADS[name]
    root, preds = workdir / name / "labels", workdir / name / "predictions"
    if not (workdir / name / "ready").exists():
        start = time.perf_counter()
        samples = synthetic.write_label_root(root, layout, per_category, mask_size, seed=0)
        lines = list(synthetic.prediction_lines(samples, map_size=224, dtype="float16"))
        for category in layout.categories:
            synthetic.write_predictions(
                preds / f"predictions-{category}.ndjson",
                [line for line in lines if line["sample"].startswith(category + "/")])
        (workdir / name / "ready").write_text("")
        print(f"  generated {len(samples)} samples in {time.perf_counter() - start:.0f} s")
    return root, preds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ad-bench"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs")
    for name in WORKLOADS:
        print(f"{name}:")
        root, preds = prepare(args.workdir, name)
        size = sum(p.stat().st_size for p in preds.iterdir())
        print(f"  predictions: {size / 1e6:.0f} MB in {len(list(preds.iterdir()))} files")
        cli = ["evaluate", "--benchmark", name,
               "--predictions", str(preds), "--labels", str(root)]
        runs = [run_cli(cli) for _ in range(args.repeat)]
        walls = [w for w, _ in runs]
        print(f"  whole `leaderboard evaluate`: median {statistics.median(walls):.2f} s, "
              f"max {max(walls):.2f} s over {args.repeat} runs; peak RSS "
              f"{max(m for _, m in runs):.0f} MB")


if __name__ == "__main__":
    main()
