"""A baseline entry's scores beside the published row it reproduces: the difference, and
whether it lies within tolerance. `leaderboard baseline run-all` prints and writes the table.

The tolerance of a metric is the larger of two things:

- a floor (``FLOORS``): what reruns of the published setups may move by although nothing was
  done wrong. The papers report single runs, so the floors are our reading of where the
  differences come from, not a measured spread. FORB (1 point of mAP / t-mAP): features are
  deterministic given the weights, but FORB embedded in fp16 (CLIP) with torchvision's resizes,
  one image at a time, and BoW's codebook comes from an unseeded k-means. MVTec 3D-AD and
  Eyecandies (0.02 I-AUROC, 0.01 pixel metrics): the published coreset's random projection
  was unseeded, and an image-level AUROC over about a hundred test scans per category moves
  by points when a few scores swap (a mean over 10 categories by about 1-2 points); pixel
  metrics pool millions of pixels and move less; the two sources of the published numbers
  (the 3D-ADS README and M3DM's tables) already differ by up to 0.002 per category.
- half the width of the entry's own 95 % bootstrap interval on that metric, from the
  evaluator's record: how much the score depends on which test samples were drawn.

A difference within tolerance is a reproduction; one outside it is worth a look, not a
verdict. Entries made with random weights or generated data are marked: their scores mean
nothing, so neither does the comparison.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from baselines.catalogue import BaselineSpec
from evaluator.published import load_published, shown_on
from evaluator.registry import get_benchmark

SMOKE_NOTE = "smoke test"   # random weights or generated data: the scores mean nothing
FLOORS = {"forb": {"*": 0.01},
          "mvtec3d-ad": {"I-AUROC": 0.02, "*": 0.01},
          "eyecandies": {"I-AUROC": 0.02, "*": 0.01}}


@dataclass
class Comparison:
    baseline: str
    benchmark: str
    board: str                    # board id, e.g. forb-v1
    entry: str                    # <benchmark>/<entry folder>
    metric: str
    ours: float | None            # headline slice, as a fraction
    published: float | None       # as a fraction
    source: str | None            # e.g. "forb-2023 Table 1"
    difference: float | None      # ours - published
    tolerance: float | None
    within: bool | None           # None: nothing published, or not scored
    note: str = ""


def floor(benchmark: str, metric: str) -> float:
    floors = FLOORS[benchmark]
    return floors.get(metric, floors["*"])


def published_values(spec: BaselineSpec, board_id: str, headline: str
                     ) -> dict[str, tuple[float, str]]:
    """metric -> (value as a fraction, where it is printed) on the board's headline slice,
    from the rows the baseline reproduces (the first table that prints a metric)."""
    values: dict[str, tuple[float, str]] = {}
    for source in load_published():
        for table in source.tables:
            if not shown_on(table, board_id):
                continue
            scale = 0.01 if table.scale == "percent" else 1.0
            for row in table.rows:
                if not any(ref.matches(source.source.key, row.method, row.setting,
                                       row.citation, row.variant) for ref in spec.published):
                    continue
                for metric, value in row.values.get(headline, {}).items():
                    if value is not None and metric not in values:
                        values[metric] = (value * scale, f"{source.source.key} {table.label}")
    return values


def compare(spec: BaselineSpec, board_id: str, entry: str, evaluation: dict | None,
            smoke: bool, failure: str | None = None) -> list[Comparison]:
    """One row per metric the published row reports (every scored headline metric where
    nothing is published)."""
    benchmark = get_benchmark(spec.benchmark)
    headline = benchmark.info.headline_slice
    published = published_values(spec, board_id, headline)
    scores = (evaluation or {}).get("scores", {}).get(headline, {})
    intervals = ((evaluation or {}).get("intervals") or {}).get(headline, {})
    note = failure or (SMOKE_NOTE if smoke else "") or ("" if published else "nothing published")
    names = [m.name for m in benchmark.info.metrics
             if (m.name in published) or (not published and scores.get(m.name) is not None)]
    rows = []
    for metric in names:
        ours = scores.get(metric)
        value, where = published.get(metric, (None, None))
        difference = tolerance = within = None
        if ours is not None and value is not None:
            difference = ours - value
            half_width = (intervals[metric][1] - intervals[metric][0]) / 2 \
                if metric in intervals else 0.0
            tolerance = max(floor(spec.benchmark, metric), half_width)
            # Compared at the precision the papers print (1e-9 absorbs float noise).
            within = abs(difference) <= tolerance + 1e-9
        rows.append(Comparison(spec.name, spec.benchmark, board_id, entry, metric, ours, value,
                               where, difference, tolerance, within, note))
    return rows


LEGEND = ("Scores on each board's headline slice (FORB in %). Tolerance: the larger of a floor "
          "per metric (FORB 1 point; anomaly detection 0.02 I-AUROC, 0.01 otherwise) and half "
          "the entry's 95 % bootstrap interval; see baselines/comparison.py. \"smoke test\": "
          "random weights or generated data, whose scores mean nothing.")


def format_table(rows: list[Comparison]) -> str:
    """A Markdown table: readable in a terminal and on GitHub."""
    lines = ["| baseline | board | metric | ours | published | difference | tolerance | "
             "within | published in | note |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        percent = _is_percent(row.benchmark, row.metric)
        lines.append("| " + " | ".join([
            row.baseline, row.board, row.metric, _number(row.ours, percent),
            _number(row.published, percent), _number(row.difference, percent, signed=True),
            _number(row.tolerance, percent, plus_minus=True),
            {True: "yes", False: "NO", None: "-"}[row.within], row.source or "-",
            row.note or ""]) + " |")
    return "\n".join(lines) + "\n"


def write_table(rows: list[Comparison], folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    markdown, data = folder / "comparison.md", folder / "comparison.json"
    markdown.write_text("# Bundled baselines against the published rows\n\n"
                        + LEGEND + "\n\n"
                        + format_table(rows), encoding="utf-8")
    data.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n", encoding="utf-8")
    return markdown, data


def _is_percent(benchmark_name: str, metric: str) -> bool:
    benchmark = get_benchmark(benchmark_name)
    return any(m.name == metric and m.percent for m in benchmark.info.metrics)


def _number(value: float | None, percent: bool, signed: bool = False,
            plus_minus: bool = False) -> str:
    if value is None:
        return "-"
    text = f"{100 * value:{'+' if signed else ''}.2f}" if percent \
        else f"{value:{'+' if signed else ''}.3f}"
    return ("±" + text) if plus_minus else text
