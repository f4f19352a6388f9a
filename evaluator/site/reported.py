"""Reported rows of a board: every published table row of the board's benchmark, merged so that
one method in one setting is one row, whatever source and table printed it.

Which values a merged row shows, cell by cell: those of the method's own authors (primary
sources) first, then by the kind of source (the dataset authors' leaderboard, which scores
the results it lists, a paper, a method's repository, a third party's re-run, a curated list), then the row whose setting the
source states over one where it is assumed, then the order of the data files. Every source's
values stay on the row (its page lists them), and cells where sources differ by more than
their printed precision are flagged as disagreements.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from evaluator.published import KIND_WORDS, PublishedResults, Row, Table, shown_on
from evaluator.published.methods import Methods, load_methods
from evaluator.registry import Board
from evaluator.settings import SettingDimension, resolve

KIND_ORDER = ["dataset-leaderboard", "paper", "method-repository", "third-party-rerun",
              "curated-list"]


@dataclass
class SourceRow:
    """One printed row of one source's table, values on the fraction scale."""

    source: dict                       # the data file's source block
    table: Table
    row: Row
    method: str                        # the method's one name (site/data/methods.json)
    kind: str
    primary: bool
    values: dict[str, dict[str, float | None]]
    precision: int                     # decimals of the table on the fraction scale
    settings: dict[str, str | None]
    assumed: list[str]
    order: int

    @property
    def precedence(self) -> tuple:
        return (not self.primary, KIND_ORDER.index(self.kind), len(self.assumed), self.order)

    @property
    def link(self) -> str:
        """The source at the table's lines, where the source is a repository file."""
        url = self.source["url"]
        if self.table.lines and self.source.get("commit") and "github.com" in url:
            first, last = self.table.lines
            return f"{url}#L{first}" + (f"-L{last}" if last != first else "")
        return url

    def describe(self) -> dict:
        return {"key": self.source["key"], "title": self.source["title"],
                "name": self.source.get("name") or self.source["title"],
                "authors": self.source.get("authors"), "venue": self.source["venue"],
                "kind": self.kind, "kind_words": KIND_WORDS[self.kind], "primary": self.primary,
                "url": self.source["url"], "link": self.link,
                "paper_url": self.source.get("paper_url"),
                "table": self.table.label, "caption": self.table.caption,
                "lines": list(self.table.lines) if self.table.lines else None,
                "printed": self.row.label, "values": self.values,
                "aupro_thresholds": self.table.aupro_thresholds,
                "notes": [n for n in (self.table.note, self.row.note) if n],
                "assumed": list(self.assumed)}


@dataclass
class MergedRow:
    method: str
    variant: str | None
    settings: dict[str, str | None]
    members: list[SourceRow] = field(default_factory=list)

    def shown(self) -> tuple[dict, dict]:
        """values[slice][metric] shown on the board, and which member each came from."""
        values: dict[str, dict[str, float | None]] = {}
        origin: dict[tuple[str, str], SourceRow] = {}
        for member in sorted(self.members, key=lambda m: m.precedence):
            for slice_name, cells in member.values.items():
                for metric, value in cells.items():
                    if value is not None and metric not in values.get(slice_name, {}):
                        values.setdefault(slice_name, {})[metric] = value
                        origin[(slice_name, metric)] = member
        return values, origin

    def disagreements(self) -> list[dict]:
        """Cells that two sources print differently, beyond the coarser one's precision."""
        out = []
        cells = sorted({(s, m) for member in self.members for s, v in member.values.items()
                        for m in v})
        for slice_name, metric in cells:
            found = [(member, member.values[slice_name][metric]) for member in self.members
                     if member.values.get(slice_name, {}).get(metric) is not None]
            clash = any(abs(a - b) > 0.5 * 10 ** -min(ma.precision, mb.precision) + 1e-9
                        for i, (ma, a) in enumerate(found) for mb, b in found[i + 1:])
            if clash:
                out.append({"slice": slice_name, "metric": metric,
                            "values": [{"source": m.source["key"], "table": m.table.label,
                                        "printed": m.row.label, "value": v}
                                       for m, v in found]})
        return out


def reported_rows(published: list[PublishedResults], board: Board,
                  dimensions: tuple[SettingDimension, ...],
                  metrics: set[str], methods: Methods | None = None) -> list[MergedRow]:
    """The merged reported rows of ``board``: tables of this board name and a protocol version
    up to the board's, each value kept only where the board has its metric."""
    methods = methods or load_methods()
    members = []
    for source in published:
        src = source.source.model_dump()
        own = {methods.resolve(m).name for m in source.source.own_methods}
        for table in source.tables:
            if not shown_on(table, board.id):
                continue
            scale = 0.01 if table.scale == "percent" else 1.0
            kind = table.kind or source.source.kind
            precision = _precision(table) + (2 if table.scale == "percent" else 0)
            for row in table.rows:
                method = methods.resolve(row.method).name
                stated = {k: v for k, v in {**table.setting, **row.setting}.items()
                          if k != "group"}
                settings, assumed = resolve(dimensions, stated)
                values = {s: {m: (None if v is None else round(v * scale, 12))
                                  for m, v in cells.items()
                              if m in metrics}
                          for s, cells in row.values.items()}
                values = {s: cells for s, cells in values.items() if cells}
                members.append(SourceRow(
                    source=src, table=table, row=row, method=method, kind=kind,
                    primary=method in own and kind != "third-party-rerun", values=values,
                    precision=precision, settings=settings, assumed=assumed,
                    order=len(members)))
    return _merge(members, dimensions)


def _precision(table: Table) -> int:
    """Decimals the table prints, as far as its values show (trailing zeros are lost in JSON,
    so the most decimals any value has)."""
    most = 0
    for row in table.rows:
        for cells in row.values.values():
            for value in cells.values():
                if value is not None:
                    text = repr(float(value))
                    most = max(most, len(text.split(".")[1]) if "." in text else 0)
    return most


def _merge(members: list[SourceRow], dimensions: tuple[SettingDimension, ...]
           ) -> list[MergedRow]:
    """One row per method, variant and setting. A source that does not state the modality
    joins the method's rows of the one modality the other sources state, where there is one."""
    ranking = [d.key for d in dimensions if d.ranks]
    groups: dict[tuple, list[SourceRow]] = {}
    for member in members:
        key = (member.method, member.row.variant,
               tuple(member.settings.get(k) for k in ranking))
        groups.setdefault(key, []).append(member)
    merged = []
    for (method, variant, _), group in groups.items():
        modalities = []
        for member in group:
            modality = member.settings.get("modality")
            if modality is not None and modality not in modalities:
                modalities.append(modality)
        by_modality: dict[str | None, MergedRow] = {}
        for member in group:
            modality = member.settings.get("modality")
            if modality is None and len(modalities) == 1:
                modality = modalities[0]
            if modality not in by_modality:
                by_modality[modality] = MergedRow(method, variant,
                                                  {**member.settings, "modality": modality})
            by_modality[modality].members.append(member)
        merged += by_modality.values()
    return merged
