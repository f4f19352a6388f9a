"""The benchmark registry: every benchmark is declared once, in its own module.

A benchmark module under ``evaluator/benchmarks/`` defines a :class:`Benchmark` subclass and
decorates it with :func:`register`. Everything else (CLI, validation, records, site) asks the
registry, so adding a benchmark means adding one module.
"""

from __future__ import annotations

import importlib
import pkgutil
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from evaluator.validation.limits import DEFAULT_LIMITS, Limits

if TYPE_CHECKING:  # imported for annotations only, to keep start-up light
    from evaluator.entries import EntryMetadata
    from evaluator.validation.report import ValidationReport


@dataclass(frozen=True)
class Metric:
    """One reported number. ``decimals`` and ``percent`` say how the papers print it."""

    name: str
    description: str
    percent: bool = False
    decimals: int = 3
    higher_is_better: bool = True


@dataclass(frozen=True)
class Board:
    """A leaderboard: a benchmark scored under one version of its protocol.

    ``name`` identifies the board across versions (what entries target); ``id`` names one
    version (what records are stored for). ``label_subdir`` is where this board's files live
    inside a label root that holds several boards (FORB's ``FORB_subset/``). ``metrics``: the
    names of the benchmark's metrics this version reports, in order (empty: all of them).
    ``changelog``: what this version changed from the previous one.
    """

    name: str
    version: int
    title: str
    description: str
    label_subdir: str | None = None
    changelog: str = "First version."
    metrics: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return f"{self.name}-v{self.version}"


@dataclass(frozen=True)
class PredictionFormat:
    """A way predictions may be laid out; the benchmark decides which one a path holds."""

    name: str
    description: str
    recommended: bool = False


@dataclass(frozen=True)
class PredictionFile:
    """One file of a submission's predictions; ``name`` is how messages call it (relative to
    the entry or predictions folder)."""

    path: Path
    name: str


class BoardDataError(Exception):
    """A board's task or label files are missing or inconsistent: a maintainer problem, not a
    submission problem. Messages name files and lines, never label values."""


@dataclass(frozen=True)
class BenchmarkInfo:
    """Declarative facts about a benchmark (what MTEB calls task metadata)."""

    name: str
    title: str
    description: str
    reference: str
    license: str
    boards: tuple[Board, ...]
    metrics: tuple[Metric, ...]
    primary_metric: str
    slices: str
    label_source: str
    formats: tuple[PredictionFormat, ...]
    # The slice that ranks a board (FORB: 'overall'; anomaly detection: the category 'mean').
    headline_slice: str = "overall"
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class ScoreSheet:
    """What scoring returns: ``scores[slice][metric]`` (None where undefined), per-slice counts
    and curves for plots. Everything in it is aggregate: safe to print and publish."""

    scores: dict[str, dict[str, float | None]]
    counts: dict[str, int]
    curves: dict[str, Any]


class Benchmark(ABC):
    """Behaviour of one benchmark. Subclasses set ``info`` and implement the five steps.

    The evaluator always calls them in this order, so labels are used only after the
    predictions passed validation: load_task -> locate_predictions -> read_predictions ->
    load_labels -> score (with bootstrap). A benchmark with ``prefetch_labels`` has
    load_labels start in the background while its predictions are read; its result, or
    error, is looked at only once they passed.
    """

    info: ClassVar[BenchmarkInfo]
    entry_metadata: ClassVar[type[EntryMetadata]]
    # The pydantic model of one line of each prediction format, by format name: the
    # validator parses with it and the published JSON Schema is generated from it.
    line_models: ClassVar[dict[str, type]]
    # Size caps for reading predictions; a benchmark whose lines are large overrides them.
    limits: ClassVar[Limits] = DEFAULT_LIMITS
    # Read labels while the predictions are read: worth it where decoding labels is slow and
    # leaves the GIL (anomaly masks).
    prefetch_labels: ClassVar[bool] = False

    @abstractmethod
    def load_task(self, board: Board, directory: Path) -> Any:
        """Read the public part of the board (queries, databases, sample lists): no labels."""

    @abstractmethod
    def locate_predictions(
        self, path: Path
    ) -> tuple[PredictionFormat, list[PredictionFile]] | None:
        """Which of ``info.formats`` the file or folder at ``path`` holds, and its files."""

    @abstractmethod
    def read_predictions(self, fmt: PredictionFormat, files: list[PredictionFile], task: Any,
                         report: ValidationReport) -> Any:
        """Stream and validate predictions; report every problem; return arrays or None.

        ``task`` may be None: then only the checks that need no task are made."""

    @abstractmethod
    def load_labels(self, board: Board, directory: Path, task: Any) -> Any:
        """Read the hidden labels for ``board`` from a local directory."""

    @abstractmethod
    def labels_digest(self, labels: Any) -> str:
        """A digest of the label content that does not depend on how it was stored."""

    @abstractmethod
    def score(self, board: Board, task: Any, predictions: Any, labels: Any) -> ScoreSheet:
        """Compute every metric for every slice."""

    @abstractmethod
    def slice_names(self) -> list[str]:
        """Every slice a score sheet of this benchmark holds, in report order."""

    def bootstrap(self, board: Board, task: Any, predictions: Any, labels: Any) -> Any:
        """Bootstrap replicates of the metrics that get intervals (an
        :class:`evaluator.metrics.bootstrap.Bootstrap`), or None where there are none.
        Replicates stay in memory: only interval ends are stored."""
        return None

    def score_with_bootstrap(self, board: Board, task: Any, predictions: Any,
                             labels: Any) -> tuple[ScoreSheet, Any]:
        """:meth:`score` and :meth:`bootstrap` together; a benchmark whose two share work
        overrides this."""
        return (self.score(board, task, predictions, labels),
                self.bootstrap(board, task, predictions, labels))

    # Shared helpers -------------------------------------------------------------------------

    def metrics_of(self, board: Board) -> tuple[Metric, ...]:
        """The metrics ``board`` reports, in its order."""
        if not board.metrics:
            return self.info.metrics
        by_name = {m.name: m for m in self.info.metrics}
        return tuple(by_name[name] for name in board.metrics)

    def versions(self, name: str) -> list[Board]:
        """Every version of the board called ``name`` (a board name), oldest first. Each is
        current: an entry is scored under every one of them."""
        return sorted((b for b in self.info.boards if b.name == name), key=lambda b: b.version)

    def previous(self, board: Board) -> Board | None:
        """The version before ``board`` of the same board, if any."""
        older = [b for b in self.versions(board.name) if b.version < board.version]
        return older[-1] if older else None

    def board(self, name: str) -> Board:
        """The board called ``name``: a board id (``forb-v1``) or a board name for its newest
        version (``forb``)."""
        for board in self.info.boards:
            if board.id == name:
                return board
        versions = [b for b in self.info.boards if b.name == name]
        if not versions:
            raise KeyError(name)
        return max(versions, key=lambda b: b.version)


_REGISTRY: dict[str, Benchmark] = {}
_DISCOVERED = False


def register(cls: type[Benchmark]) -> type[Benchmark]:
    """Class decorator: make a benchmark known to the evaluator under ``cls.info.name``."""
    name = cls.info.name
    if name in _REGISTRY and type(_REGISTRY[name]) is not cls:
        raise ValueError(f"benchmark {name!r} is registered twice")
    _REGISTRY[name] = cls()
    return cls


def _discover() -> None:
    # Import every module of evaluator.benchmarks once; each registers itself.
    global _DISCOVERED
    if _DISCOVERED:
        return
    from evaluator import benchmarks

    for module in pkgutil.iter_modules(benchmarks.__path__):
        importlib.import_module(f"{benchmarks.__name__}.{module.name}")
    _DISCOVERED = True


def benchmarks() -> list[Benchmark]:
    """Every registered benchmark, in name order."""
    _discover()
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def get_benchmark(name: str) -> Benchmark:
    """The benchmark called ``name``, or the one owning the board called ``name``."""
    _discover()
    if name in _REGISTRY:
        return _REGISTRY[name]
    for benchmark in _REGISTRY.values():
        try:
            benchmark.board(name)
        except KeyError:
            continue
        return benchmark
    known = ", ".join(all_board_names())
    raise KeyError(f"unknown benchmark or board {name!r}; known: {known}")


def resolve_board(name: str) -> tuple[Benchmark, Board]:
    """Map a CLI name (benchmark, board name or board id) to its benchmark and board."""
    benchmark = get_benchmark(name)
    if name == benchmark.info.name:
        return benchmark, benchmark.board(benchmark.info.boards[0].name)
    return benchmark, benchmark.board(name)


def all_board_names() -> list[str]:
    _discover()
    names: list[str] = []
    for benchmark in benchmarks():
        for board in benchmark.info.boards:
            names.extend(n for n in (board.name, board.id) if n not in names)
    return names
