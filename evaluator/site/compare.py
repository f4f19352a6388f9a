"""The data behind a board's compare page: every row (recomputed and reported) with its values,
its bootstrap intervals and, for recomputed rows, the paired intervals its record holds."""

from __future__ import annotations

from evaluator.site.boards import BoardView, Row


def row_id(view: BoardView, row: Row) -> str:
    """A row's key without the board id: what the compare page's ``?a=`` and ``?b=`` hold."""
    prefix = f"{view.board.id}/"
    return row.key[len(prefix):] if row.key.startswith(prefix) else row.key


def page_url(view: BoardView, path_to_root: str, row: Row | None = None) -> str:
    """The compare page of the board (with ``row`` chosen as A, if given)."""
    url = f"{path_to_root}compare/{view.board.id}.html"
    return f"{url}?a={row_id(view, row)}" if row is not None else url


def compare_data(view: BoardView) -> dict:
    info = view.benchmark.info
    rows = []
    for row in view.rows:
        record = row.record or {}
        settings = record.get("bootstrap") or {}
        rows.append({
            "id": row_id(view, row),
            "method": row.method,
            "variant": row.variant or row.group,
            "kind": row.kind,
            "baseline": row.baseline,
            "rank": row.rank,
            "modality": row.modality,
            "shots": row.shots,
            "citation": row.citation,
            "url": f"../{row.page[:-3]}.html",
            "entry": row.source.rsplit("/", 1)[-1] if row.source else None,
            "values": row.values,
            "intervals": record.get("intervals") or {},
            "paired": record.get("paired") or {},
            "bootstrap": {k: settings.get(k) for k in ("resamples", "seed", "level", "method",
                                                       "unit")} if settings else None,
        })
    return {
        "board": view.board.id,
        "metrics": [{"name": m.name, "percent": m.percent, "decimals": m.decimals,
                     "higherIsBetter": m.higher_is_better} for m in view.metrics],
        "slices": view.benchmark.slice_names(),
        "headline": info.headline_slice,
        "primary": info.primary_metric,
        "rows": rows,
    }
