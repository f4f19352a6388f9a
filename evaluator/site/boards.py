"""Board views: every row a board shows (recomputed entries and results reported in papers),
with values on one scale (fractions), ranked by the board's primary metric."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from evaluator.entries import METADATA_FILE, RECORDS_DIR
from evaluator.published import PublishedResults, load_published
from evaluator.published.methods import Methods, UnknownMethod, load_methods
from evaluator.registry import Benchmark, Board, BoardDataError, benchmarks
from evaluator.reproductions import reproducing
from evaluator.settings import SettingDimension, dimensions_of, resolve
from evaluator.site.reported import MergedRow, reported_rows
from evaluator.validation.parsing import load_json


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
    year: int | None = None       # the method's publication year (site/data/methods.json)
    year_from: str | None = None
    settings: dict[str, str | None] = field(default_factory=dict)  # every setting dimension
    assumed: list[str] = field(default_factory=list)  # dimensions the source does not state
    sources: list[dict] = field(default_factory=list)  # reported rows: every source's values
    disagreements: list[dict] = field(default_factory=list)  # cells the sources print apart

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
    def dimensions(self) -> tuple[SettingDimension, ...]:
        return dimensions_of(self.benchmark.info.settings)

    @property
    def default_filters(self) -> dict[str, str]:
        """What the board shows before a reader picks anything: the standard setting (one
        model per category, the full training set, ...); every other setting is one filter
        away and ranked among its own rows."""
        return {d.key: d.standard for d in self.dimensions if d.ranks and d.standard}

    def in_default_view(self, row: Row) -> bool:
        return row.main and all(row.settings.get(key, value) == value
                                for key, value in self.default_filters.items())

    def leader(self) -> Row | None:
        return self.rows[0] if self.rows and self.rows[0].rank == 1 else None

    def count(self, kind: str) -> int:
        return sum(1 for r in self.rows if r.kind == kind)

    @property
    def last_update(self) -> str | None:
        dates = [r.date for r in self.rows if r.date]
        return max(dates) if dates else None

    @property
    def metrics(self):
        """The metrics this board version reports (a later version may add some)."""
        return self.benchmark.metrics_of(self.board)

    @property
    def previous(self) -> Board | None:
        return self.benchmark.previous(self.board)

    def metric(self, name: str):
        return next(m for m in self.metrics if m.name == name)


def collect(submissions: Path, published: list[PublishedResults] | None = None) -> list[BoardView]:
    """Every board version of every benchmark, with its rows ranked."""
    published = load_published() if published is None else published
    methods = load_methods()
    views = []
    for benchmark in benchmarks():
        for board in benchmark.info.boards:
            dimensions = dimensions_of(benchmark.info.settings)
            rows = _recomputed_rows(submissions / benchmark.info.name, board, dimensions,
                                    methods)
            rows += _reported_rows(published, board, benchmark, methods)
            versions = [b for b in benchmark.info.boards if b.name == board.name]
            view = BoardView(benchmark, board, rows, versions)
            _rank(view)
            views.append(view)
    _attach_index_sizes(views, published)
    return views


def _recomputed_rows(folder: Path, board: Board, dimensions: tuple[SettingDimension, ...],
                     methods: Methods) -> list[Row]:
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
            **_entry_settings(metadata, dimensions),
            **_year(methods, metadata["method"], metadata.get("date")),
        ))
    return rows


def _entry_settings(metadata: dict, dimensions: tuple[SettingDimension, ...]) -> dict:
    """A recomputed entry states its modality and shots in its metadata; the evaluator's
    protocol fixes the test split; the rest is taken as the standard protocol."""
    stated = {d.key: metadata.get(d.key) for d in dimensions if metadata.get(d.key)}
    if "split" in {d.key for d in dimensions}:
        stated["split"] = "test_public"
    settings, assumed = resolve(dimensions, stated)
    return {"settings": settings, "assumed": assumed}


def _year(methods: Methods, method: str, date: str | None) -> dict:
    """A method's publication year where the methods list has it; else, for an entry, the
    year it was submitted."""
    try:
        known = methods.resolve(method)
    except UnknownMethod:
        known = None
    if known is not None and known.year is not None:
        return {"year": known.year, "year_from": known.year_from}
    if date and str(date)[:4].isdigit():
        return {"year": int(str(date)[:4]), "year_from": "the entry's date"}
    return {}


def _json_object(path: Path) -> dict:
    """A JSON object from ``path``; BoardDataError (exit status 3) names the file otherwise."""
    try:
        document = load_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BoardDataError(f"{path}: cannot be read as JSON ({exc})") from None
    if not isinstance(document, dict):
        raise BoardDataError(f"{path}: expected a JSON object")
    return document


def _reported_rows(published: list[PublishedResults], board: Board, benchmark: Benchmark,
                   methods: Methods) -> list[Row]:
    """One row per method, variant and setting (evaluator/site/reported.py): rows of several
    tables and sources (a method's I-AUROC in one table and its AUPRO in another; its own
    repository and another paper's copy) become one row, whatever they printed as labels."""
    metrics = {m.name for m in benchmark.metrics_of(board)}
    dimensions = dimensions_of(benchmark.info.settings)
    rows = []
    for merged in reported_rows(published, board, dimensions, metrics, methods):
        rows.append(_board_row(merged, board, benchmark, dimensions, methods))
    return rows


def _board_row(merged: MergedRow, board: Board, benchmark: Benchmark,
               dimensions: tuple[SettingDimension, ...], methods: Methods) -> Row:
    values, origin = merged.shown()
    members = sorted(merged.members, key=lambda m: m.precedence)
    shown = members[0]
    method = methods.resolve(merged.method)
    ranking = {d.key: d.standard for d in dimensions if d.ranks}
    slug_setting = {"modality": merged.settings.get("modality") or "",
                    "shots": merged.settings.get("shots") or "",
                    "variant": merged.variant or ""}
    for key, standard in ranking.items():
        if key != "shots" and merged.settings.get(key) not in (None, standard):
            slug_setting[key] = merged.settings[key]
    tables = [m.table.label for m in members if m.source["key"] == shown.source["key"]]
    group = next((m.row.setting["group"] for m in members if m.row.setting.get("group")), None)
    printed = []
    for member in members:
        label = member.row.label
        if label != merged.method and label not in printed:
            printed.append(label)
    flags = sorted({flag for member in members for flag in member.row.flags})
    assumed = [k for k in shown.assumed if all(k in m.assumed for m in members)]
    return Row(
        key=f"{board.id}/reported/{shown.source['key']}/"
            f"{_slug(merged.method, slug_setting)}",
        method=merged.method, kind="reported", values=values,
        modality=merged.settings.get("modality"), shots=merged.settings.get("shots"),
        group=merged.variant or group,
        variant=merged.variant,
        publication=shown.source,
        cited_as=shown.row.citation,
        paper_url=method.paper_url or shown.source.get("paper_url") or shown.source["url"],
        citation=", ".join([shown.source["title"], *dict.fromkeys(tables)]),
        flags=flags,
        printed=printed,
        year=method.year, year_from=method.year_from,
        settings=dict(merged.settings), assumed=assumed,
        sources=[{**m.describe(), "shown": sorted(f"{s}/{k}" for (s, k), o in origin.items()
                                                  if o is m)} for m in members],
        disagreements=merged.disagreements(),
        reproduce=next(filter(None, (_reproduction(m.source["key"], m.row,
                                                   benchmark.info.name, board)
                                     for m in members)), None))


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
                if row.kind == "reported" and row.publication \
                        and row.publication["key"] == source.source.key:
                    row.index_size_gb = names.get(row.method, row.index_size_gb)


def recomputed_view(submissions: Path, benchmark: Benchmark, board: Board) -> BoardView:
    """The board's recomputed entries alone, ranked as the board ranks them: what a
    rescoring's changes report compares across versions."""
    view = BoardView(benchmark, board,
                     _recomputed_rows(submissions / benchmark.info.name, board,
                                      dimensions_of(benchmark.info.settings), load_methods()),
                     benchmark.versions(board.name))
    _rank(view)
    return view
