"""One command for every bundled baseline: resolve the device, open the data, run the
baseline's family module, write the entry. `leaderboard baseline run` calls ``run_baseline``.

Each benchmark declares, in ``DATASETS``, how its data is opened, what the run record says
about it and how a family's output becomes prediction files; the families only compute.
"""

from __future__ import annotations

import importlib
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from baselines import devices, distributed
from baselines.catalogue import get_baseline
from baselines.distributed import Ranks
from baselines.entry import CategoryFiles, RankedPredictions, check_output, write_entry
from baselines.errors import BaselineUsageError
from baselines.options import MAX_TOP_K, RunOptions
from baselines.run_record import RunRecord


@dataclass(frozen=True)
class DatasetKind:
    open: Callable[[RunOptions, object], object]        # (options, spec) -> the data
    describe: Callable[[object], dict]                   # data -> run record's "data"
    wrap: Callable[[object, object], object]             # (family output, data) -> writer


def _open_forb(options: RunOptions, spec):
    from baselines.forb.data import load_forb

    if not 1 <= options.top_k <= MAX_TOP_K:
        raise BaselineUsageError(f"--top-k must be between 1 and {MAX_TOP_K}, not "
                                 f"{options.top_k}")
    return load_forb(options.data, options.board)


def _describe_forb(images) -> dict:
    return {"root": str(Path(images.root).resolve()), "board": images.board,
            "synthetic": images.synthetic, "lists_sha256": images.fingerprint(),
            "queries": images.task.n_queries,
            "database": {db: len(paths) for db, paths in images.task.databases.items()}}


def _open_anomaly(loader_name: str):
    def open_dataset(options: RunOptions, spec):
        from baselines.anomaly import data as anomaly_data
        from baselines.anomaly.pipeline import train_cap

        cap = train_cap(spec, options)
        loader = getattr(anomaly_data, loader_name)
        extra = {"light": options.eyecandies_light} if loader_name == "load_eyecandies" else {}
        return loader(options.data, options.categories, max_train=cap, **extra)
    return open_dataset


DATASETS = {
    "forb": DatasetKind(_open_forb, _describe_forb,
                        lambda lists, images: RankedPredictions(lists, images.task)),
    "mvtec3d-ad": DatasetKind(_open_anomaly("load_mvtec3d"), lambda d: d.describe(),
                              lambda files, _: CategoryFiles(files)),
    "eyecandies": DatasetKind(_open_anomaly("load_eyecandies"), lambda d: d.describe(),
                              lambda files, _: CategoryFiles(files)),
}


def run_baseline(name: str, options: RunOptions, argv: list[str] | None = None,
                 ranks: Ranks | None = None) -> Path | None:
    """Run a baseline and write its entry; returns the entry folder (None on the ranks other
    than 0 under torchrun, which only compute)."""
    spec = get_baseline(name)
    ranks = ranks or distributed.from_environment()
    options.board = options.board or spec.boards[0]
    if options.board not in spec.boards:
        raise BaselineUsageError(f"{name} runs on the boards {', '.join(spec.boards)}, "
                                 f"not {options.board!r}")
    check_output(options.out)
    kind = DATASETS[spec.benchmark]
    data = kind.open(options, spec)
    options.device = distributed.start(ranks, devices.resolve(options.device))
    family = importlib.import_module(f"baselines.{spec.family}")
    splits = getattr(family, "SPLITS_WORK", False)
    if ranks.active and splits and options.workers is None:
        # Each process loads its data with its share of the CPU cores.
        options.workers = min(16, max(1, (os.cpu_count() or 2) // ranks.world_size - 1))
    command = "leaderboard " + shlex.join(argv) if argv else f"leaderboard baseline run {name}"
    record = RunRecord(baseline=name, command=command, settings=options.as_settings(spec.benchmark),
                       data=kind.describe(data), device=devices.describe(options.device))
    record.weights = {"kind": "none", "id": spec.weights}  # neural families replace it
    record.device["processes"] = ranks.world_size
    if splits:
        output = family.run(spec, data, options, record, ranks=ranks)
    else:
        # Work that does not split runs on rank 0; the others wait for it.
        output = family.run(spec, data, options, record) if ranks.is_main else None
        ranks.barrier()
    if not ranks.is_main:
        return None
    return write_entry(options.out, spec, options.board, data.synthetic,
                       kind.wrap(output, data), record)
