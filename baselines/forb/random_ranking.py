"""Chance level for FORB: every query gets random database images with random scores.

It reads only the public lists (queries and databases), never the ground truth, and is fully
determined by the metadata and the seed, so anyone can regenerate the committed entry:

    python -m baselines.forb.random_ranking --metadata ../shared/data/forb/metadata \\
        --out submissions/forb/random-ranking

Five candidates per query are enough: FORB's metrics look at the first five ranks only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

import numpy as np

from evaluator.entries import METADATA_FILE
from evaluator.forb.task import DATABASES, ForbTask, load_task
from evaluator.forb.writers import RankedLists, write_predictions_file
from evaluator.labels import board_directory
from evaluator.registry import get_benchmark

METHOD = "Random ranking (chance level)"


def rank_randomly(task: ForbTask, n_candidates: int, seed: int) -> RankedLists:
    rng = np.random.default_rng(seed)
    ids: dict[str, list[list[int]]] = {}
    scores: dict[str, list[list[float]]] = {}
    for database in DATABASES:
        size = task.database_size(database)
        picks = [rng.choice(size, size=n_candidates, replace=False)
                 for _ in range(task.n_queries)]
        drawn = -np.sort(-rng.random((task.n_queries, n_candidates)), axis=1)
        ids[database] = [[int(i) for i in row] for row in picks]
        # Six decimals keep the file small; scores stay non-increasing after rounding.
        scores[database] = [[round(float(s), 6) for s in row] for row in drawn]
    return RankedLists(ids, scores)


def metadata(board: str, n_candidates: int, seed: int, date: str) -> dict:
    return {
        "method": METHOD,
        "board": board,
        "authors": ["cv-leaderboards maintainers"],
        "description": f"Each query gets {n_candidates} database images drawn uniformly at random "
                       f"(numpy seed {seed}) with random non-increasing scores, in both the full "
                       "and the OOD database. It marks chance level and exercises the whole "
                       "pipeline; regenerate it with `python -m baselines.forb.random_ranking`.",
        "paper_url": None,
        "code_url": None,
        "license": "MIT",
        "backbone": "none",
        "pretraining_data": "none",
        "extra_training_data": "none",
        "hardware": "any CPU",
        "contact": "leaderboard maintainers (open an issue)",
        "date": date,
        "baseline": True,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metadata", type=Path, required=True,
                        help="FORB metadata folder (the FORB_subset/ subfolder is used for "
                             "--board forb-subset)")
    parser.add_argument("--out", type=Path, required=True, help="entry folder to write")
    parser.add_argument("--board", default="forb", choices=["forb", "forb-subset"])
    parser.add_argument("--candidates", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--date", default=dt.date.today().isoformat())
    args = parser.parse_args(argv)

    board = get_benchmark("forb").board(args.board)
    task = load_task(board_directory(args.metadata, board))
    lists = rank_randomly(task, args.candidates, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    write_predictions_file(lists, task, args.out / "predictions.ndjson.gz")
    (args.out / METADATA_FILE).write_text(
        json.dumps(metadata(args.board, args.candidates, args.seed, args.date), indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
