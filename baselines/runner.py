"""One command for every bundled baseline: resolve the device, open the data, run the
baseline's family module, write the entry. `leaderboard baseline run` calls ``run_baseline``."""

from __future__ import annotations

import importlib
import shlex
from pathlib import Path

from baselines import devices
from baselines.catalogue import get_baseline
from baselines.entry import check_output, write_entry
from baselines.errors import BaselineUsageError
from baselines.forb_data import load_forb
from baselines.options import MAX_TOP_K, RunOptions
from baselines.run_record import RunRecord


def run_baseline(name: str, options: RunOptions, argv: list[str] | None = None) -> Path:
    spec = get_baseline(name)
    if options.board not in spec.boards:
        raise BaselineUsageError(f"{name} runs on the boards {', '.join(spec.boards)}, "
                         f"not {options.board!r}")
    if not 1 <= options.top_k <= MAX_TOP_K:
        raise BaselineUsageError(f"--top-k must be between 1 and {MAX_TOP_K}, not {options.top_k}")
    check_output(options.out)
    images = load_forb(options.data, options.board)
    options.device = devices.resolve(options.device)
    command = "leaderboard " + shlex.join(argv) if argv else f"leaderboard baseline run {name}"
    record = RunRecord(
        baseline=name, command=command, settings=options.as_settings(),
        data={"root": str(Path(options.data).resolve()), "board": options.board,
              "synthetic": images.synthetic, "lists_sha256": images.fingerprint(),
              "queries": images.task.n_queries,
              "database": {db: len(paths) for db, paths in images.task.databases.items()}},
        device=devices.describe(options.device))
    record.weights = {"kind": "none", "id": spec.weights}  # neural families replace it
    family = importlib.import_module(f"baselines.{spec.family}")
    lists = family.run(spec, images, options, record)
    return write_entry(options.out, spec, images, lists, record)
