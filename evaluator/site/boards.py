"""Board views: every row a board shows (recomputed entries and results reported in papers),
with values on one scale (fractions), ranked by the board's primary metric."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from evaluator.entries import METADATA_FILE, RECORDS_DIR
from evaluator.published import PublishedResults, load_published
from evaluator.registry import Benchmark, Board, BoardDataError, benchmarks
from evaluator.reproductions import reproducing


@dataclass
class Row:
    key: str                      # unique within the site (board id first), used in URLs
    method: str
    kind: str                     # "recomputed" or "reported"
    values: dict[str, dict[str, float | None]]
    baseline: bool = False
    modality: str | None = None
    shots: str | None = None
    group: str | None = None
    date: str | None = None
    paper_url: str | None = None
    code_url: str | None = None
    citation: str | None = None   # for reported rows: where in which paper
    flags: list[str] = field(default_factory=list)
    index_size_gb: float | None = None
    metadata: dict | None = None  # recomputed rows: the entry's metadata.json
    record: dict | None = None    # recomputed rows: the evaluation record
    rank: int | None = None
    source: str | None = None     # recomputed rows: the entry folder, e.g. submissions/forb/x
    reproduce: dict | None = None  # reported rows a bundled baseline reproduces: its command
    variant: str | None = None    # None: the method's main setting; else what the row changes
    printed: list[str] = field(default_factory=list)  # the paper's own labels ("Ours", ...)
    publication: dict | None = None  # reported rows: the paper (title, authors, venue, url)
    cited_as: str | None = None   # reported rows the paper quotes from a reference, e.g. "[9]"

    @property
    def main(self) -> bool:
        return self.variant is None

    @property
    def page(self) -> str:
        return f"entries/{self.key}.md"


@dataclass
class BoardView:
    benchmark: Benchmark
    board: Board
    rows: list[Row]
    versions: list[Board]

    @property
    def current(self) -> bool:
        return self.board == self.benchmark.board(self.board.name)

    @property
    def primary(self) -> str:
        return self.benchmark.info.primary_metric

    @property
    def headline(self) -> str:
        return self.benchmark.info.headline_slice

    @property
    def default_filters(self) -> dict[str, str]:
        """What the board shows before a reader picks anything: anomaly boards compare
        methods trained on the full training set (few-shot rows are one filter away)."""
        return {"shots": "full"} if self.benchmark.info.settings.get("shots") else {}

    def in_default_view(self, row: Row) -> bool:
        return row.main and all(getattr(row, key) in (None, value)
                                for key, value in self.default_filters.items())

    def leader(self) -> Row | None:
        return self.rows[0] if self.rows and self.rows[0].rank == 1 else None

    def count(self, kind: str) -> int:
        return sum(1 for r in self.rows if r.kind == kind)

    @property
    def last_update(self) -> str | None:
        dates = [r.date for r in self.rows if r.date]
        return max(dates) if dates else None

    def metric(self, name: str):
        return next(m for m in self.benchmark.info.metrics if m.name == name)


def collect(submissions: Path, published: list[PublishedResults] | None = None) -> list[BoardView]:
    """Every board version of every benchmark, with its rows ranked."""
    published = load_published() if published is None else published
    views = []
    for benchmark in benchmarks():
        for board in benchmark.info.boards:
            rows = _recomputed_rows(submissions / benchmark.info.name, board)
            rows += _reported_rows(published, board, benchmark.info.name)
            versions = [b for b in benchmark.info.boards if b.name == board.name]
            view = BoardView(benchmark, board, rows, versions)
            _rank(view)
            views.append(view)
    _attach_index_sizes(views, published)
    return views


def _recomputed_rows(folder: Path, board: Board) -> list[Row]:
    rows = []
    if not folder.is_dir():
        return rows
    # Symbolic links are skipped, as `leaderboard validate` skips them: the site shows only
    # entries that were validated where they are.
    for entry in sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()):
        record_path = entry / RECORDS_DIR / f"{board.id}.json"
        if not record_path.is_file():
            continue
        record = _json_object(record_path)
        metadata = _json_object(entry / METADATA_FILE)
        # Merged files were checked by CI, but the build must not crash on a hand edit.
        scores = record.get("scores")
        if not isinstance(scores, dict) or not all(isinstance(v, dict) for v in scores.values()):
            raise BoardDataError(f"{record_path}: 'scores' is not a table of slices and metrics")
        if not isinstance(metadata.get("method"), str):
            raise BoardDataError(f"{entry / METADATA_FILE}: 'method' is missing or not text")
        rows.append(Row(
            key=f"{board.id}/{entry.name}",
            source=f"submissions/{folder.name}/{entry.name}",
            method=metadata["method"],
            kind="recomputed",
            values=record["scores"],
            baseline=bool(metadata.get("baseline")),
            modality=metadata.get("modality"),
            shots=metadata.get("shots"),
            date=str(metadata.get("date")),
            paper_url=metadata.get("paper_url"),
            code_url=metadata.get("code_url"),
            metadata=metadata,
            record=record,
        ))
    return rows


def _json_object(path: Path) -> dict:
    """A JSON object from ``path``; BoardDataError (exit status 3) names the file otherwise."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BoardDataError(f"{path}: cannot be read as JSON ({exc})") from None
    if not isinstance(document, dict):
        raise BoardDataError(f"{path}: expected a JSON object")
    return document


def _reported_rows(published: list[PublishedResults], board: Board,
                   benchmark: str) -> list[Row]:
    """One row per method, setting and variant of a paper on this board: rows of several
    tables (difficulty columns in one, object types in another; a method's I-AUROC in one
    table and its AUPRO in another) become one row, whatever the paper printed as their
    labels ("Ours", "Full dataset")."""
    merged: dict[tuple, Row] = {}
    for source in published:
        for table in source.tables:
            if table.board != board.id:
                continue
            scale = 0.01 if table.scale == "percent" else 1.0
            for row in table.rows:
                setting = dict(row.setting)
                group = setting.pop("group", None)
                key = (source.source.key, row.method, row.citation, row.variant,
                       tuple(sorted(setting.items())))
                if key not in merged:
                    merged[key] = Row(
                        key=f"{board.id}/reported/{source.source.key}/"
                            f"{_slug(row.method, {**setting, 'variant': row.variant or ''})}",
                        method=row.method, kind="reported", values={},
                        modality=setting.pop("modality", None),
                        shots=setting.pop("shots", None),
                        group=row.variant or group or _describe(setting),
                        variant=row.variant,
                        publication=source.source.model_dump(),
                        cited_as=row.citation,
                        paper_url=source.source.url,
                        citation=f"{source.source.title}, {table.label}",
                        flags=list(row.flags),
                        reproduce=_reproduction(source.source.key, row, benchmark, board))
                else:
                    merged[key].citation += f", {table.label}"
                target = merged[key]
                if row.label != row.method and row.label not in target.printed:
                    target.printed.append(row.label)
                for slice_name, values in row.values.items():
                    for metric, value in values.items():
                        target.values.setdefault(slice_name, {}).setdefault(
                            metric, None if value is None else value * scale)
    return list(merged.values())


def _reproduction(source_key: str, row, benchmark: str, board: Board) -> dict | None:
    """How to reproduce a published row with a bundled baseline (site/data/baselines.json)."""
    spec = reproducing(source_key, row.method, benchmark, row.setting, row.citation,
                       row.variant)
    if spec is None or board.name not in spec.boards:
        return None
    return {"baseline": spec.name, "command": spec.command(board.name),
            "entry": spec.command(board.name).rsplit(" --out ", 1)[1],
            "labels": spec.labels_hint, "gpu_time": spec.gpu_time, "weights": spec.weights}


def _describe(setting: dict[str, str]) -> str | None:
    return ", ".join(f"{k}: {v}" for k, v in sorted(setting.items())) or None


def _slug(method: str, setting: dict[str, str]) -> str:
    text = "-".join([method, *(f"{v}" for _, v in sorted(setting.items()))]).lower()
    slug = "".join(c if c.isalnum() else "-" for c in text)
    while "--" in slug:
        slug = slug.replace("--", "-")
    return slug.strip("-")


def _rank(view: BoardView) -> None:
    """The default view's ranking: the main setting of each method (variants and other shot
    counts are not ranked) by the primary metric on the headline slice, best first; equal
    values share a rank. Rows without the metric come next, unranked, then the rest. The
    board's script re-ranks the same way for whatever slice, sort and filters a reader picks."""
    def value(row: Row) -> float | None:
        return row.values.get(view.headline, {}).get(view.primary)

    def order(row: Row):
        shown = view.in_default_view(row)
        return (not shown, value(row) is None, -(value(row) or 0.0), row.method,
                row.variant or "")

    view.rows.sort(key=order)
    previous, rank = None, 0
    for position, row in enumerate(view.rows, start=1):
        current = value(row)
        if current is None or not view.in_default_view(row):
            row.rank = None
            continue
        if current != previous:
            rank, previous = position, current
        row.rank = rank
    _dedupe_keys(view.rows)


def would_rank(view: BoardView | None, scores: dict) -> tuple[int | None, int]:
    """The rank a new entry with ``scores`` would take in ``view``'s default ranking (as
    :func:`_rank` ranks, equal values sharing a rank) and the number of ranked rows then."""
    rows = [r for r in view.rows if view.in_default_view(r)] if view else []
    headline = view.headline if view else None
    value = scores.get(headline, {}).get(view.primary) if view else None
    if value is None:
        return None, len(rows) + 1
    better = sum(1 for r in rows
                 if (other := r.values.get(headline, {}).get(view.primary)) is not None
                 and other > value)
    return better + 1, len(rows) + 1


def _dedupe_keys(rows: list[Row]) -> None:
    seen: dict[str, int] = {}
    for row in rows:
        count = seen.get(row.key, 0)
        seen[row.key] = count + 1
        if count:
            row.key = f"{row.key}-{count + 1}"


def _attach_index_sizes(views: list[BoardView], published: list[PublishedResults]) -> None:
    """Tables without a board (FORB's index sizes) annotate that paper's rows by method."""
    for source in published:
        sizes = {(r.method, r.citation): r.index_size_gb for t in source.tables
                 if t.board is None for r in t.rows if r.index_size_gb is not None}
        names = {m: size for (m, _), size in sizes.items()}
        for view in views:
            for row in view.rows:
                if row.kind == "reported" and row.paper_url == source.source.url:
                    row.index_size_gb = names.get(row.method, row.index_size_gb)
