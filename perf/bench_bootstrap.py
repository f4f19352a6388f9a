"""What the bootstrap intervals cost: FORB at full size (the real metadata, generated
predictions) and MVTec-3D-AD- and Eyecandies-sized generated anomaly workloads (the ones
perf.bench_anomaly writes).

Prints, per benchmark: scoring alone, the replicates of one entry (what every evaluation adds),
a paired interval set from two entries' replicates, and whole `leaderboard evaluate --entry`
processes for a first entry (no sibling to pair with) and for entries with 1 and 2 recorded
siblings (each sibling's predictions are read, validated and resampled again).

    python -m perf.bench_bootstrap [--labels ../shared/data/forb/metadata] [--repeat 3]
        [--anomaly-workdir /tmp/ad-bench] [--skip-anomaly]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from evaluator.evaluation import check_predictions
from evaluator.metrics.bootstrap import RESAMPLES, paired_intervals
from evaluator.registry import get_benchmark
from evaluator.validation.report import ValidationReport
from perf.measure import run_cli

DEFAULT_LABELS = Path(__file__).resolve().parents[1].parent / "shared/data/forb/metadata"
METADATA = {"method": "Benchmark entry", "authors": ["perf"], "description": "generated",
            "paper_url": None, "code_url": None, "license": "MIT", "backbone": "none",
            "pretraining_data": "none", "extra_training_data": "none", "hardware": "CPU",
            "contact": "@perf", "date": "2026-11-23", "baseline": False}


def timed(fn, repeat):
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return result, statistics.median(times)


def in_process(name: str, labels_dir: Path, predictions: list[Path], repeat: int) -> None:
    benchmark = get_benchmark(name)
    board = benchmark.board(name)
    task = benchmark.load_task(board, labels_dir)
    arrays = []
    for path in predictions:
        report = ValidationReport()
        arrays.append(check_predictions(benchmark, path, task, report).arrays)
        assert report.ok, report.lines()
    labels = benchmark.load_labels(board, labels_dir, task)
    _, scoring = timed(lambda: benchmark.score(board, task, arrays[0], labels), repeat)
    first, resampling = timed(lambda: benchmark.bootstrap(board, task, arrays[0], labels),
                              repeat)
    second = benchmark.bootstrap(board, task, arrays[1], labels)
    _, pairing = timed(lambda: paired_intervals(first, second), repeat)
    print(f"  scoring alone {scoring:.2f} s; replicates of one entry ({RESAMPLES} resamples, "
          f"{len(first.intervals())} slices with intervals) {resampling:.2f} s; paired "
          f"intervals from two entries' replicates {pairing:.3f} s (medians of {repeat})")


def whole_processes(name: str, labels_dir: Path, predictions: list[Path], tmp: Path) -> None:
    folder = tmp / "submissions" / name
    extra = {"board": name} if name == "forb" else {"board": name, "modality": "RGB",
                                                      "shots": "full"}
    for i, path in enumerate(predictions):
        entry = folder / f"entry-{i}"
        entry.mkdir(parents=True)
        (entry / "metadata.json").write_text(json.dumps({**METADATA, **extra}))
        if path.is_dir():
            for part in path.glob("predictions*"):
                (entry / part.name).write_bytes(part.read_bytes())
        else:
            (entry / path.name).write_bytes(path.read_bytes())
        wall, peak = run_cli(["evaluate", "--entry", str(entry), "--labels", str(labels_dir)])
        print(f"  `leaderboard evaluate --entry` with {i} recorded sibling(s): {wall:.1f} s, "
              f"peak RSS {peak:.0f} MB")
    wall, peak = run_cli(["evaluate", "--entry", str(folder / "entry-0"),
                          "--labels", str(labels_dir)])
    print(f"  re-verifying an entry's record (no pairing): {wall:.1f} s, peak RSS {peak:.0f} MB")


def forb(labels_dir: Path, repeat: int) -> None:
    from evaluator.forb import synthetic, writers
    from evaluator.forb.labels import load_labels
    from evaluator.forb.task import load_task

    task = load_task(labels_dir)
    labels = load_labels(labels_dir, task)
    print(f"FORB: {task.n_queries} queries, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(3):
            run = synthetic.generate(task, labels, n_candidates=10, seed=i + 1,
                                     hit_rate=0.5 + 0.1 * i)
            paths.append(writers.write_predictions_file(
                run, task, Path(tmp) / f"p{i}" / "predictions.ndjson.gz"))
        in_process("forb", labels_dir, paths[:2], repeat)
        whole_processes("forb", labels_dir, paths, Path(tmp))


def anomaly(workdir: Path, repeat: int) -> None:
    from perf.bench_anomaly import prepare

    for name in ("mvtec3d-ad", "eyecandies"):
        print(f"{name}:")
        root, first = prepare(workdir, name)
        # A second and third entry: the same maps with other image scores would pair
        # trivially; regenerate with other seeds instead.
        others = [_other_predictions(workdir, name, seed) for seed in (1, 2)]
        in_process(name, root, [first, others[0]], repeat)
        with tempfile.TemporaryDirectory() as tmp:
            whole_processes(name, root, [first, *others], Path(tmp))


def _other_predictions(workdir: Path, name: str, seed: int) -> Path:
    from evaluator.anomaly import synthetic
    from evaluator.anomaly.labels import read_mask
    from perf.bench_anomaly import WORKLOADS

    layout = WORKLOADS[name][0]
    out = workdir / name / f"predictions-seed{seed}"
    if (out / "ready").exists():
        return out
    root = workdir / name / "labels"
    samples = {sample: read_mask(mask) for sample, (_, mask) in
               sorted(layout.list_samples(root).items())}
    lines = list(synthetic.prediction_lines(samples, map_size=224, dtype="float16",
                                            seed=seed))
    for category in layout.categories:
        synthetic.write_predictions(
            out / f"predictions-{category}.ndjson",
            [line for line in lines if line["sample"].startswith(category + "/")])
    (out / "ready").write_text("")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", type=Path, default=DEFAULT_LABELS)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--anomaly-workdir", type=Path, default=Path("/tmp/ad-bench"))
    parser.add_argument("--skip-anomaly", action="store_true")
    args = parser.parse_args()
    if not args.labels.is_dir():
        sys.exit(f"FORB metadata not found at {args.labels}; pass --labels")
    forb(args.labels, args.repeat)
    if not args.skip_anomaly:
        anomaly(args.anomaly_workdir, args.repeat)


if __name__ == "__main__":
    main()
