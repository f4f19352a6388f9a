"""Render board views into MkDocs sources (Markdown with HTML blocks) and build the site.

Generated sources go to ``build/docs`` with a generated ``build/mkdocs.yml`` that inherits the
repository's ``mkdocs.yml`` and adds the navigation; ``site/`` only holds the sources
(templates, static pages, assets, published-results data).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from evaluator import __version__
from evaluator.registry import BoardDataError, benchmarks
from evaluator.rescore import changes_path
from evaluator.schemas import write_schemas
from evaluator.site.boards import BoardView, Row, collect
from evaluator.site.compare import compare_data
from evaluator.site.compare import page_url as compare_url
from evaluator.site.formatting import escape, format_value, plain_title, safe_url
from evaluator.validation.parsing import load_json

REPO = Path(__file__).resolve().parents[2]
SITE_SOURCES = REPO / "site"
CURVE_ROWS = 10  # how many top recomputed entries a board page plots


def render_sources(work: Path, submissions: Path) -> list[BoardView]:
    """Write every page, asset and download into ``work/docs`` and ``work/mkdocs.yml``."""
    docs = work / "docs"
    if docs.exists():
        shutil.rmtree(docs)
    shutil.copytree(SITE_SOURCES / "docs", docs)
    shutil.copytree(SITE_SOURCES / "assets", docs / "assets")
    views = collect(submissions)
    env = Environment(loader=FileSystemLoader(SITE_SOURCES / "templates"),
                      undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.filters.update(e=escape, url=safe_url, fmt=format_value, tojson=_script_json,
                       title=plain_title)
    pages = _Pages(docs, env)
    by_benchmark = {b.info.name: [v for v in views if v.benchmark is b] for b in benchmarks()}
    pages.write("index.md", "home.md.j2", views=views, by_benchmark=by_benchmark,
                version=__version__)
    for view in views:
        pages.write(f"boards/{view.board.id}.md", "board.md.j2", view=view,
                    data=_board_data(view), path_to_root="../",
                    compare_page=compare_url(view, "../"))
        for row in view.rows:
            pages.write(row.page, "entry.md.j2", view=view, row=row,
                        path_to_root="../" * row.page.count("/"),
                        curves_file=_write_entry_curves(docs, view, row),
                        compare_page=compare_url(view, "../" * row.page.count("/"), row))
        # Two entries side by side (compare/<board id>.html?a=<row>&b=<row>); not in the nav.
        pages.write(f"compare/{view.board.id}.md", "compare.md.j2", view=view,
                    data=compare_data(view), path_to_root="../")
        _write_downloads(docs / "downloads", view)
        if view.previous is not None:
            # What the version changed: its rescoring's report, rank moves included.
            pages.write(changes_page(view.board), "changes.md.j2", view=view,
                        report=_changes_report(submissions, view), path_to_root="../")
    for benchmark in benchmarks():
        pages.write(f"protocols/{benchmark.info.name}.md", "protocol.md.j2", benchmark=benchmark)
        for board in benchmark.info.boards:
            if benchmark.previous(board) is not None:
                pages.write(f"protocols/{board.id}.md", "protocol_version.md.j2",
                            benchmark=benchmark, board=board,
                            previous=benchmark.previous(board))
    write_schemas(docs / "downloads" / "schemas")
    pages.write("downloads.md", "downloads.md.j2", views=views,
                schemas=sorted(p.name for p in (docs / "downloads" / "schemas").iterdir()))
    pages.write("versions.md", "versions.md.j2", views=views, by_benchmark=by_benchmark)
    (work / "mkdocs.yml").write_text(_mkdocs_config(views), encoding="utf-8")
    return views


def changes_page(board) -> str:
    """The "what changed" page of a board version that has a previous one."""
    return f"changes/{board.id}.md"


def _changes_report(submissions: Path, view: BoardView) -> dict | None:
    """The version's changes report as `leaderboard rescore` wrote it (None before any
    rescoring). Written by the evaluator, but a hand edit must not crash the build."""
    path = changes_path(submissions, view.board)
    if not path.is_file():
        return None
    try:
        report = load_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BoardDataError(f"{path}: cannot be read as JSON ({exc})") from None
    if not isinstance(report, dict) or report.get("board") != view.board.id \
            or not isinstance(report.get("entries"), list):
        raise BoardDataError(f"{path}: not a changes report of {view.board.id}")
    return report


def build(out: Path, submissions: Path, work: Path = REPO / "build") -> list[BoardView]:
    """Render the sources and run ``mkdocs build --strict`` into ``out``."""
    views = render_sources(work, submissions)
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
               "-f", str(work / "mkdocs.yml"), "-d", str(out.resolve())]
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # the theme's banner is not our news
    subprocess.run(command, check=True, env=env)
    return views


class _Pages:
    def __init__(self, docs: Path, env: Environment) -> None:
        self.docs, self.env = docs, env

    def write(self, relative: str, template: str, **context) -> None:
        path = self.docs / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.env.get_template(template).render(**context), encoding="utf-8")


def _script_json(value) -> str:
    """JSON safe inside <script type="application/json">: no '</' or '<!--' can end it.
    Floats are shortened to 6 decimals: the site shows at most 3, and pages stay small."""
    return json.dumps(_rounded(value), separators=(",", ":")).replace("<", "\\u003c")


def _rounded(value):
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if value and all(type(v) is float for v in value):  # curves: round them at once
            return np.round(np.asarray(value), 6).tolist()
        return [_rounded(v) for v in value]
    return value


def _row_data(view: BoardView, row: Row, path_to_root: str) -> dict:
    return {
        "rank": row.rank, "method": row.method, "kind": row.kind, "baseline": row.baseline,
        "url": f"{path_to_root}{row.page[:-3]}.html", "modality": row.modality,
        "shots": row.shots, "group": row.group, "date": row.date,
        "paper": safe_url(row.paper_url), "code": safe_url(row.code_url),
        "citation": row.citation, "flags": row.flags, "values": row.values,
        "reproduce": row.reproduce["baseline"] if row.reproduce else None,
        "variant": row.variant, "printed": row.printed, "key": row.key,
        "year": row.year, "settings": row.settings, "assumed": row.assumed,
        "sources": [{"key": s["key"], "kind": s["kind"], "primary": s["primary"],
                     "title": s["title"], "name": s["name"]} for s in row.sources],
        "disagree": len(row.disagreements),
        # Recomputed rows: the entry folder's name (what records' "paired" blocks name) and
        # the 95 % bootstrap intervals, intervals[slice][metric] = [low, high] (fractions).
        "entry": row.source.rsplit("/", 1)[-1] if row.source else None,
        "intervals": (row.record or {}).get("intervals"),
        "compare_url": compare_url(view, path_to_root, row),
    }


def _board_data(view: BoardView) -> dict:
    """What a board page's script needs: the rows, metrics and slices, the filters the board
    starts with, the settings its rows take (a filter with one value is not shown) and the
    t-mAP curves of the top recomputed entries (keyed by row, so charts follow the filters)."""
    info = view.benchmark.info
    # Board pages plot t-mAP curves; per-category ROC/PRO curves live on entry pages only.
    curves = []
    for row in [r for r in view.rows if r.record and "t-mAP" in r.record["curves"]][:CURVE_ROWS]:
        curves.append({"key": row.key, "method": row.method, "curves": _plot_curves(row.record)})
    return {
        "board": view.board.id,
        "title": f"{view.board.title} v{view.board.version}",
        "evaluatorVersion": __version__,
        "primary": info.primary_metric,
        "headline": info.headline_slice,
        "metrics": [{"name": m.name, "percent": m.percent, "decimals": m.decimals}
                    for m in view.metrics],
        "slices": view.benchmark.slice_names(),
        "settings": bool(view.dimensions),
        "dimensions": [{"key": d.key, "label": d.label, "ranks": d.ranks,
                        "standard": d.standard, "description": d.description,
                        "names": dict(d.names)} for d in view.dimensions],
        "defaults": view.default_filters,
        "choices": _setting_choices(view),
        "rows": [_row_data(view, row, "../") for row in view.rows],
        "curves": curves,
        **_comparison(info.settings),
    }


def _setting_choices(view: BoardView) -> dict[str, list[str]]:
    """The values of each setting dimension the board's rows take, in the dimension's order."""
    out = {}
    for dim in view.dimensions:
        present = {r.settings.get(dim.key) for r in view.rows} - {None}
        out[dim.key] = [v for v in dim.values if v in present] + sorted(present - set(dim.values))
    return out


def _comparison(settings: dict) -> dict:
    """Which slices the board's comparison chart shows: FORB's object types as bars, anomaly
    categories as a heat map."""
    if settings.get("object_types"):
        return {"compare": list(settings["object_types"]), "compareStyle": "bars",
                "compareName": "object type"}
    if settings.get("categories"):
        return {"compare": list(settings["categories"]), "compareStyle": "heatmap",
                "compareName": "category"}
    return {}


def _plot_curves(record: dict) -> dict:
    """The curves a record holds, in the shape the site's charts take."""
    curves = record.get("curves", {})
    if "t-mAP" in curves:
        tmap = curves["t-mAP"]
        return {"kind": "t-mAP", "fpr": tmap["fpr"], "slices": tmap["slices"]}
    return {"kind": "anomaly", "roc": curves.get("roc", {}), "pro": curves.get("pro", {})}


def _write_entry_curves(docs: Path, view: BoardView, row: Row) -> str | None:
    """Curves go into a JSON file beside the entry page, fetched by the page's script: inline,
    a few hundred points per category would make MkDocs parse every page far longer."""
    if not row.record:
        return None
    path = docs / f"{row.page[:-3]}.curves.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "board": view.board.id,
        "metrics": [{"name": m.name, "percent": m.percent, "decimals": m.decimals}
                    for m in view.metrics],
        "method": row.method,
        "curves": _plot_curves(row.record),
    }
    path.write_text(json.dumps(_rounded(data), separators=(",", ":")), encoding="utf-8")
    return path.name


def _write_downloads(folder: Path, view: BoardView) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    metrics = [m.name for m in view.metrics]
    slices = view.benchmark.slice_names()
    dims = [d.key for d in view.dimensions]
    fields = ["rank", "method", "variant", "printed_as", "kind", "baseline", *dims,
              "settings_assumed", "group", "year", "date", "paper_url", "code_url", "citation",
              "source_url", "source_kind", "source_primary", "sources", "sources_disagree"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(fields + [f"{s}/{m}" for s in slices for m in metrics])
    rows_json = []
    for row in view.rows:
        shown = row.sources[0] if row.sources else {}
        base = [row.rank, row.method, row.variant, "; ".join(row.printed) or None, row.kind,
                row.baseline, *(row.settings.get(k) for k in dims),
                "; ".join(row.assumed) or None, row.group, row.year, row.date, row.paper_url,
                row.code_url, row.citation, shown.get("link"), shown.get("kind"),
                shown.get("primary"), " ".join(s["link"] for s in row.sources) or None,
                "; ".join(f"{d['slice']} {d['metric']}" for d in row.disagreements) or None]
        values = [row.values.get(s, {}).get(m) for s in slices for m in metrics]
        writer.writerow(["" if v is None else v for v in base + values])
        rows_json.append({**dict(zip(fields[:-2], base[:-2])), "scores": row.values,
                          "sources": [{k: s[k] for k in ("key", "title", "kind", "primary",
                                                         "url", "link", "table", "printed",
                                                         "values", "aupro_thresholds")}
                                      for s in row.sources],
                          "disagreements": row.disagreements,
                          "intervals": (row.record or {}).get("intervals"),
                          "provenance": (row.record or {}).get("provenance")})
    (folder / f"{view.board.id}.csv").write_text(buffer.getvalue(), encoding="utf-8")
    (folder / f"{view.board.id}.json").write_text(json.dumps(
        {"board": view.board.id, "primary_metric": view.primary,
         "headline_slice": view.headline, "rows": rows_json}, indent=1), encoding="utf-8")


def _protocol_pages(benchmark) -> list[dict]:
    """A benchmark's protocol page, then one per later version of its boards."""
    pages = [{benchmark.info.title: f"protocols/{benchmark.info.name}.md"}]
    pages += [{f"{b.title} v{b.version}": f"protocols/{b.id}.md" for b in benchmark.info.boards
               if benchmark.previous(b) is not None}]
    return [p for p in pages if p]


def _mkdocs_config(views: list[BoardView]) -> str:
    boards = []
    for view in views:
        suffix = "" if view.current else " (older version)"
        boards.append({f"{view.board.title} v{view.board.version}{suffix}":
                       f"boards/{view.board.id}.md"})
    nav = [
        {"Home": "index.md"},
        {"Boards": boards},
        {"How to submit": "submit.md"},
        {"Protocols": [page for b in benchmarks() for page in _protocol_pages(b)]},
        {"Downloads": "downloads.md"},
        {"Versions": "versions.md"},
    ]  # the maintainer guide is linked from "How to submit" (not_in_nav in mkdocs.yml)
    config = {"INHERIT": str(REPO / "mkdocs.yml"), "docs_dir": "docs", "nav": nav}
    return json.dumps(config, indent=1)  # JSON is valid YAML
