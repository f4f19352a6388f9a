"""Benchmark the site build with many entries: N generated entries per board (default 200),
each scored by the evaluator on generated data, then `leaderboard build`. Prints the build time
and the largest HTML page.

    python -m perf.bench_site [--entries 200] [--workdir /tmp/site-bench]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

from evaluator.anomaly import synthetic as ad_synthetic
from evaluator.anomaly.labels import load_labels as load_masks
from evaluator.anomaly.predictions import AnomalyPredictions
from evaluator.anomaly.task import load_task as load_ad_task
from evaluator.evaluation import evaluation_document
from evaluator.forb import synthetic as forb_synthetic
from evaluator.forb.labels import load_labels
from evaluator.forb.predictions import RetrievalPredictions
from evaluator.forb.task import load_task
from evaluator.records import dumps
from evaluator.registry import get_benchmark
from evaluator.site.render import build
from tests.forb_data import ENTRY_METADATA, write_tiny_forb


def forb_arrays(run) -> RetrievalPredictions:
    n = len(run.ids["all"])
    width = max(1, max(len(x) for x in run.ids["all"]))
    cands = np.full((n, width), -1, dtype=np.int64)
    scores = np.full((n, width), -np.inf)
    for q, (ids, sc) in enumerate(zip(run.ids["all"], run.scores["all"])):
        cands[q, :len(ids)] = ids
        scores[q, :len(sc)] = sc
    tops = np.array([max(s) if s else -1.0 for s in run.scores["oods"]])
    return RetrievalPredictions(cands, scores, tops)


def write_entry(submissions: Path, benchmark, target, i: int, sheet, **metadata) -> None:
    board = target
    entry = submissions / benchmark.info.name / f"{board.name}-{i:03d}"
    (entry / "records").mkdir(parents=True)
    (entry / "metadata.json").write_text(json.dumps({**ENTRY_METADATA, **metadata}))
    provenance = {"format": "generated", "sha256": f"{i:064x}", "files": []}
    document = evaluation_document(benchmark, board, sheet, provenance, "sha256:generated",
                                   f"{benchmark.info.name}/{entry.name}")
    (entry / "records" / f"{board.id}.json").write_text(dumps(document))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=200)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/site-bench"))
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    submissions = args.workdir / "submissions"
    rng = np.random.default_rng(0)

    meta = write_tiny_forb(args.workdir / "forb-meta", queries_per_type=30)
    task, labels = load_task(meta), load_labels(meta, load_task(meta))
    forb = get_benchmark("forb")
    ad_root = args.workdir / "ad-labels"
    for name in ("mvtec3d-ad", "eyecandies"):
        bench = get_benchmark(name)
        ad_synthetic.write_label_root(ad_root / name, bench.layout, per_category=6,
                                      mask_size=48, seed=1)
    start = time.perf_counter()
    for board in forb.info.boards:
        for i in range(args.entries):
            run = forb_synthetic.generate(task, labels, seed=i, hit_rate=float(rng.random()))
            sheet = forb.score(board, task, forb_arrays(run), labels)
            write_entry(submissions, forb, board, i, sheet, method=f"Method {i}",
                        board=board.name, baseline=i % 50 == 0)
    for name in ("mvtec3d-ad", "eyecandies"):
        bench = get_benchmark(name)
        board = bench.info.boards[0]
        ad_task = load_ad_task(bench.layout, ad_root / name)
        masks = load_masks(ad_task)
        for i in range(args.entries):
            quality = float(rng.random())
            maps = (rng.random(masks.masks.shape) + masks.masks * quality).astype(np.float32)
            scores = maps.reshape(len(maps), -1).max(axis=1) + rng.normal(0, 0.2, len(maps))
            sheet = bench.score(board, ad_task, AnomalyPredictions(scores, maps), masks)
            write_entry(submissions, bench, board, i, sheet, method=f"Detector {i}",
                        board=name, modality=["RGB", "3D", "RGB+3D"][i % 3],
                        shots=["full", "50", "10", "5"][i % 4])
    print(f"generated {args.entries} scored entries for each of 4 boards in "
          f"{time.perf_counter() - start:.0f} s")
    start = time.perf_counter()
    out = args.workdir / "site"
    build(out, submissions, work=args.workdir / "work")
    elapsed = time.perf_counter() - start
    pages = sorted(out.rglob("*.html"), key=lambda p: p.stat().st_size)
    print(f"`leaderboard build`: {elapsed:.1f} s for {len(pages)} HTML pages; largest "
          f"{pages[-1].relative_to(out)} at {pages[-1].stat().st_size / 1024:.0f} kB")


if __name__ == "__main__":
    main()
