"""The cell test: every number of a data file equals the number in its cell of the source, and
every number of the quoted table is in the data file.

A table's lines are read into quoted rows (a label and its cells by column header), whatever
the source's format: a Markdown pipe table, a YAML list of ``- name:`` items (the Eyecandies
leaderboard), or a sentence of prose ("97.3% image-level AUROC"). The table's layout maps each
cell to (data row, slice, metric). Markup is ignored (bold, underline, links, ``<br>``) and
numbers are compared as printed, on the table's own scale: nothing is rounded or converted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from evaluator.published.model import PublishedResults, Row, Table
from evaluator.published.source_text import (SOURCES_DIR, SourceTextError, source_lines,
                                             table_lines)

NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
ABSENT = {"", "-", "–", "—"}
LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
TAG = re.compile(r"<[^>]*>")


@dataclass
class QuotedRow:
    line: int
    label: str | None
    cells: dict[str, str] = field(default_factory=dict)   # column header -> cell text


def clean(text: str) -> str:
    """A cell or header without markup: links keep their text, <br> is a space."""
    text = LINK.sub(r"\1", text)
    text = re.sub(r"<br\s*/?>", " ", text)
    text = TAG.sub("", text)
    text = text.replace("**", "").replace("`", "")
    text = re.sub(r"(?<=\w)\*(?=\w)|^\*|\*$", "", text.strip())  # m*F*1 -> mF1
    return " ".join(text.split())


def parse_pipe_table(lines: list[tuple[int, str]], label_column: str | None = None
                     ) -> list[QuotedRow]:
    table = [(n, line.strip()) for n, line in lines if line.strip().startswith("|")]
    if len(table) < 2:
        raise SourceTextError("no Markdown table in these lines")
    header = [clean(name) for name in _pipe_cells(table[0][1])]
    if label_column is not None and label_column not in header:
        raise SourceTextError(f"no column {label_column!r} in the header {header}")
    label_at = header.index(label_column) if label_column is not None else 0
    rows = []
    for n, line in table[1:]:
        cells = _pipe_cells(line)
        if all(re.fullmatch(r":?-+:?", c.strip()) for c in cells if c.strip()):
            continue  # the |---|---| separator
        if len(cells) <= label_at:
            raise SourceTextError(f"line {n}: fewer cells than the header")
        row = QuotedRow(n, clean(cells[label_at]))
        for at, (name, cell) in enumerate(zip(header, cells)):
            if at != label_at:
                row.cells[name] = clean(cell)
        rows.append(row)
    return rows


def _pipe_cells(line: str) -> list[str]:
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") else inner
    return inner.split("|")


def parse_yaml_list(lines: list[tuple[int, str]]) -> list[QuotedRow]:
    """``- name: X`` starts a row; ``key: value`` is the cell ``key``, and the items under a
    ``key:`` line are the cells ``key[0]``, ``key[1]``, ..."""
    rows: list[QuotedRow] = []
    list_key, index = None, 0
    for n, line in lines:
        if not line.strip():
            continue
        start = re.match(r"^- name:\s*(.*)$", line)
        item = re.match(r"^\s+-\s+(.*)$", line)
        pair = re.match(r"^\s+([A-Za-z_][\w-]*):\s*(.*)$", line)
        if start:
            rows.append(QuotedRow(n, clean(start.group(1))))
            list_key = None
        elif not rows:
            raise SourceTextError(f"line {n}: expected '- name: ...' first")
        elif item and list_key:
            rows[-1].cells[f"{list_key}[{index}]"] = clean(item.group(1))
            index += 1
        elif pair and pair.group(2):
            rows[-1].cells[pair.group(1)] = clean(pair.group(2))
            list_key = None
        elif pair:
            list_key, index = pair.group(1), 0
        else:
            raise SourceTextError(f"line {n}: not a line of a '- name:' list")
    return rows


def parse_prose(lines: list[tuple[int, str]], phrases: list[str]) -> list[QuotedRow]:
    """One row: for each phrase, the number standing where its ``{}`` is ("{}% image-level
    AUROC"); a phrase must occur exactly once."""
    row = QuotedRow(lines[0][0], None)
    text = " ".join(line for _, line in lines)
    for phrase in phrases:
        if phrase.count("{}") != 1:
            raise SourceTextError(f"the phrase {phrase!r} needs one {{}} where the number is")
        before, after = (re.escape(part) for part in phrase.split("{}"))
        found = re.findall(r"(?<![\w.])" + before + r"(-?\d+(?:\.\d+)?)" + after + r"(?![\w-])",
                           text)
        if len(found) != 1:
            raise SourceTextError(f"the phrase {phrase!r} occurs {len(found)} times in these "
                                  "lines (expected once)")
        row.cells[phrase] = found[0]
    return [row]


def quoted_rows(table: Table, lines: dict[int, str]) -> list[QuotedRow]:
    assert table.lines is not None and table.layout is not None
    block = table_lines(lines, *table.lines)
    if table.format == "pipe-table":
        return parse_pipe_table(block, table.layout.label_column)
    if table.format == "yaml-list":
        return parse_yaml_list(block)
    if table.format == "prose":
        return parse_prose(block, [h for h in table.layout.column_map
                                   if h not in table.layout.skip_columns])
    raise SourceTextError(f"format {table.format!r} has no cell test here")


def check_table(table: Table, lines: dict[int, str]) -> list[str]:
    """Problems found, each naming the table, the source line and the cell."""
    layout = table.layout
    assert layout is not None
    where = f"table {table.id} ({table.label})"
    try:
        quoted = quoted_rows(table, lines)
    except SourceTextError as exc:
        return [f"{where}: {exc}"]
    problems: list[str] = []
    seen: set[tuple[int, str, str]] = set()   # (data row index, slice, metric) found in a cell
    matched_rows: set[int] = set()
    for qrow in quoted:
        at = f"{where}, source line {qrow.line}"
        if qrow.label is not None and qrow.label in layout.skip_rows:
            continue
        if layout.rows == "method":
            index = _data_row(table.rows, qrow, table.format == "prose")
            if index is None:
                problems.append(f"{at}: the row {qrow.label!r} is in the source but not in the "
                                "data (add it, or list it in skip_rows with the reason)")
                continue
            row_target = {}
        else:
            if len(table.rows) != 1:
                problems.append(f"{where}: a table whose rows are {layout.rows}s holds exactly "
                                f"one data row (found {len(table.rows)})")
                return problems
            index = 0
            if qrow.label not in layout.row_map:
                problems.append(f"{at}: the row {qrow.label!r} is neither in row_map nor in "
                                "skip_rows")
                continue
            row_target = {layout.rows: layout.row_map[qrow.label]}
        matched_rows.add(index)
        for header, text in qrow.cells.items():
            if header in layout.skip_columns:
                continue
            if header not in layout.column_map:
                if text not in ABSENT and NUMBER.fullmatch(text):
                    problems.append(f"{at}: the column {header!r} holds a number ({text}) but "
                                    "is neither in column_map nor in skip_columns")
                continue
            target = {"slice": layout.slice, "metric": layout.metric, **row_target,
                      layout.columns: layout.column_map[header]}
            slice_name, metric = target["slice"], target["metric"]
            seen.add((index, slice_name, metric))
            ours = table.rows[index].values.get(slice_name, {}).get(metric)
            cell = f"{at}, {qrow.label or 'the sentence'!s} / {header!r}"
            if text in ABSENT:
                if ours is not None:
                    problems.append(f"{cell}: the source prints no number here, the data has "
                                    f"{ours}")
            elif not NUMBER.fullmatch(text):
                problems.append(f"{cell}: {text!r} is not a number")
            elif ours is None:
                problems.append(f"{cell}: the source prints {text}, the data has no value "
                                f"for {slice_name} / {metric}")
            elif float(text) != ours:
                problems.append(f"{cell}: the source prints {text}, the data has {ours}")
    for index, row in enumerate(table.rows):
        if index not in matched_rows:
            problems.append(f"{where}: the data row {row.label!r} is not a row of source lines "
                            f"{table.lines[0]}-{table.lines[1]}")
            continue
        for slice_name, values in row.values.items():
            for metric, value in values.items():
                if value is not None and (index, slice_name, metric) not in seen:
                    problems.append(f"{where}: {row.label!r} has {slice_name} / {metric} = "
                                    f"{value}, which no cell of the source gives")
    return problems


def _data_row(rows: list[Row], qrow: QuotedRow, prose: bool) -> int | None:
    if prose:
        return 0 if len(rows) == 1 else None
    found = [i for i, row in enumerate(rows) if row.label == qrow.label]
    return found[0] if len(found) == 1 else None


def check_source(data: PublishedResults, sources_dir: Path = SOURCES_DIR) -> list[str]:
    """Every checkable table of one data file against its source text."""
    tables = [t for t in data.tables if t.format != "seed"]
    if not tables:
        return []
    lines = source_lines(data.source, sources_dir)
    problems = []
    for table in tables:
        problems += check_table(table, lines)
    return problems
