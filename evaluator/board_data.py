"""Opens label sources on demand and caches each board's task for one CLI run, so scoring many
entries reads every board's public lists once."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

from evaluator import progress
from evaluator.labels import LabelSource, board_directory, env_var, resolve_source
from evaluator.registry import Benchmark, Board


class BoardData:
    def __init__(self, label_specs: list[str] | None, stack: ExitStack) -> None:
        self._specs = label_specs
        self._stack = stack
        self._roots: dict[str, Path | None] = {}
        self._tasks: dict[str, Any] = {}

    def source(self, benchmark: Benchmark) -> LabelSource | None:
        return resolve_source(benchmark.info.name, self._specs)

    def missing_source_hint(self, benchmark: Benchmark) -> str:
        return (f"no label source for {benchmark.info.name}: pass --labels PATH or set "
                f"{env_var(benchmark.info.name)}")

    def directory(self, benchmark: Benchmark, board: Board) -> Path | None:
        """The board's folder inside its opened label source, or None without a source."""
        name = benchmark.info.name
        if name not in self._roots:
            source = self.source(benchmark)
            self._roots[name] = self._stack.enter_context(source.open()) if source else None
        root = self._roots[name]
        return board_directory(root, board) if root is not None else None

    def task(self, benchmark: Benchmark, board: Board) -> Any:
        """The board's public task (None without a label source), read once per run."""
        if board.id not in self._tasks:
            directory = self.directory(benchmark, board)
            if directory is None:
                self._tasks[board.id] = None
            else:
                progress.status(f"reading {board.id} metadata", force=True)
                self._tasks[board.id] = benchmark.load_task(board, directory)
                progress.clear()
        return self._tasks[board.id]
