"""Benchmark FORB scoring on the real metadata with generated predictions.

Prints: the time of scoring alone (validated arrays -> every metric for every slice), and the
wall time and peak memory of whole `leaderboard evaluate` processes (bootstrap intervals
included) for both formats and for 10 and 100 candidates per query: minimum and median.

    python -m perf.bench_forb [--labels ../shared/data/forb/metadata] [--repeat 5]
        [--candidates 10] [--format canonical] [--before SOURCE]

--before SOURCE times another checkout of the evaluator (e.g. `git archive` of an older
commit unpacked in /tmp/before) interleaved with this one, run for run, so both see the same
load on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from evaluator.forb import synthetic, writers
from perf.measure import run_cli
from evaluator.forb.labels import load_labels
from evaluator.forb.predictions import locate, read_predictions_file, read_results_folder
from evaluator.forb.scoring import score
from evaluator.forb.task import load_task
from evaluator.validation.report import ValidationReport

DEFAULT_LABELS = Path(__file__).resolve().parents[1].parent / "shared/data/forb/metadata"


def timed(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return result, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", type=Path, default=DEFAULT_LABELS)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--candidates", type=int, choices=(10, 100), action="append",
                        help="only this many candidates per query (repeatable)")
    parser.add_argument("--format", choices=("native", "canonical"), action="append",
                        help="only this prediction format (repeatable)")
    parser.add_argument("--before", metavar="SOURCE",
                        help="also time the evaluator in SOURCE, interleaved")
    args = parser.parse_args()
    if not args.labels.is_dir():
        sys.exit(f"FORB metadata not found at {args.labels}; pass --labels")

    task = load_task(args.labels)
    labels = load_labels(args.labels, task)
    print(f"FORB: {task.n_queries} queries, {task.database_size('all')} database images, "
          f"{os.cpu_count()} CPUs")
    cli = ["evaluate", "--benchmark", "forb",
           "--labels", str(args.labels)]
    with tempfile.TemporaryDirectory() as tmp:
        for n_candidates in args.candidates or (10, 100):
            run = synthetic.generate(task, labels, n_candidates=n_candidates, seed=1)
            folder = writers.write_results_folder(run, task, Path(tmp) / f"native{n_candidates}")
            canonical = writers.write_predictions_file(
                run, task, Path(tmp) / f"canonical{n_candidates}" / "predictions.ndjson.gz")
            report = ValidationReport()
            fmt, files = locate(folder)
            predictions = read_results_folder(files, task, report)
            assert report.ok, report.lines()
            _, times = timed(lambda p=predictions: score(task, p, labels), args.repeat)
            print(f"\n{n_candidates} candidates per query and database")
            print(f"  scoring only, all {len(score(task, predictions, labels).scores)} slices: "
                  f"median {statistics.median(times) * 1000:.0f} ms, "
                  f"max {max(times) * 1000:.0f} ms over {args.repeat} runs")
            _, times = timed(lambda f=files: read_results_folder(f, task, ValidationReport()),
                             args.repeat)
            print(f"  streaming validation of retrieval_results/: median "
                  f"{statistics.median(times) * 1000:.0f} ms")
            fmt2, files2 = locate(canonical)
            _, times = timed(lambda f=files2: read_predictions_file(f, task, ValidationReport()),
                             args.repeat)
            print(f"  streaming validation of predictions.ndjson.gz: median "
                  f"{statistics.median(times) * 1000:.0f} ms")
            formats = {"native": ("retrieval_results/", folder),
                       "canonical": ("predictions.ndjson.gz", canonical)}
            for label, path in (formats[f] for f in args.format or ("native", "canonical")):
                versions = {"this checkout": None}
                if args.before:
                    versions = {"before": args.before, **versions}
                walls: dict[str, list[float]] = {name: [] for name in versions}
                peaks: dict[str, float] = {}
                for _ in range(args.repeat):
                    for name, source in versions.items():
                        wall, peaks[name] = run_cli(cli + ["--predictions", str(path)], source)
                        walls[name].append(wall)
                for name, times in walls.items():
                    print(f"  whole `leaderboard evaluate` on {label} ({name}): min "
                          f"{min(times):.2f} s, median {statistics.median(times):.2f} s, max "
                          f"{max(times):.2f} s over {args.repeat} runs, peak RSS "
                          f"{peaks[name]:.0f} MB")


if __name__ == "__main__":
    main()
