"""Results published elsewhere (papers, method repositories, the dataset authors' leaderboard,
curated lists, third parties' re-runs), transcribed into ``site/data/published/``.

They are shown as "reported" rows, apart from recomputed entries. ``load_published`` checks
each data file against the model (``model.py``), the boards' slices and metrics, the methods
list (``methods.py``) and the benchmark's settings (``evaluator/settings.py``), so a typo cannot
slip into the site; ``cells.check_source`` checks every number against the source's text.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from evaluator.published.methods import UnknownMethod, load_methods
from evaluator.published.model import (KIND_WORDS, Layout, PublishedResults, Quote, Row, Source,
                                       Table)
from evaluator.registry import Benchmark, get_benchmark
from evaluator.settings import dimensions_of
from evaluator.validation.parsing import describe_errors

PUBLISHED_DIR = Path(__file__).resolve().parents[2] / "site" / "data" / "published"
NON_SETTING_KEYS = {"group"}

__all__ = ["KIND_WORDS", "Layout", "PUBLISHED_DIR", "PublishedDataError", "PublishedResults",
           "Quote", "Row", "Source", "Table", "check_unique_keys", "load_published",
           "load_published_file",
           "shown_on", "table_benchmark"]


class PublishedDataError(ValueError):
    pass


def load_published(directory: Path = PUBLISHED_DIR) -> list[PublishedResults]:
    """Every data file, validated against the model, the boards and the methods list."""
    loaded = [(path.name, load_published_file(path))
              for path in sorted(directory.glob("*.json"))]
    check_unique_keys(loaded)
    return [data for _, data in loaded]


def check_unique_keys(loaded: list[tuple[str, PublishedResults]]) -> None:
    """Source keys name rows in URLs and in site/data/baselines.json: one file each."""
    keys: dict[str, str] = {}
    for name, data in loaded:
        if data.source.key in keys:
            raise PublishedDataError(f"{name}: source key {data.source.key!r} is also used "
                                     f"by {keys[data.source.key]}")
        keys[data.source.key] = name


def load_published_file(path: Path) -> PublishedResults:
    try:
        data = PublishedResults.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        problems = "; ".join(describe_errors(exc)[:10])
        raise PublishedDataError(f"{path.name}: {problems}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PublishedDataError(f"{path.name}: cannot be read ({exc})") from None
    methods = load_methods()
    for table in data.tables:
        _check_table(path.name, table)
        for row in table.rows:
            try:
                methods.resolve(row.method)
            except UnknownMethod as exc:
                raise PublishedDataError(f"{path.name}: {table.label}: {exc}") from None
    for name in data.source.own_methods:
        try:
            methods.resolve(name)
        except UnknownMethod as exc:
            raise PublishedDataError(f"{path.name}: own_methods: {exc}") from None
    return data


def shown_on(table: Table, board_id: str) -> bool:
    """Whether a table's rows belong on board version ``board_id``: a table names the board
    version whose protocol its metrics match, and later versions keep those metrics' definitions
    (each version shows the values of the metrics it has)."""
    if table.board is None:
        return False
    name, _, version = table.board.rpartition("-v")
    board_name, _, board_version = board_id.rpartition("-v")
    return (name == board_name and version.isdigit() and board_version.isdigit()
            and int(version) <= int(board_version))


def table_benchmark(table: Table) -> Benchmark:
    return get_benchmark(table.board)


def _check_table(file: str, table: Table) -> None:
    if table.board is None:
        return
    try:
        benchmark = table_benchmark(table)
        board = benchmark.board(table.board)
    except (KeyError, ValueError) as exc:
        raise PublishedDataError(f"{file}: {table.label}: unknown board {table.board!r} "
                                 f"({exc})") from None
    metrics = {m.name for m in benchmark.info.metrics}
    slices = set(benchmark.slice_names())
    dimensions = {d.key: d for d in dimensions_of(benchmark.info.settings)}
    for row in table.rows:
        where = f"{file}: {table.label}, {row.label}"
        for slice_name, values in row.values.items():
            unknown = set(values) - metrics
            if unknown:
                raise PublishedDataError(f"{where}: unknown metrics {sorted(unknown)} for "
                                         f"{board.id}")
            if slice_name not in slices:
                raise PublishedDataError(f"{where}: unknown slice {slice_name!r} for {board.id}")
        for key, value in {**table.setting, **row.setting}.items():
            if key in NON_SETTING_KEYS:
                continue
            if key not in dimensions:
                raise PublishedDataError(f"{where}: unknown setting {key!r} for {board.id} "
                                         f"(known: {sorted(dimensions)})")
            if value not in dimensions[key].values:
                raise PublishedDataError(f"{where}: setting {key} = {value!r} is not one of "
                                         f"{list(dimensions[key].values)}")
