"""Results reported in papers, transcribed from the seed texts into ``site/data/published/``.

They are shown as "reported in paper" rows, apart from recomputed entries. The model below is
what every data file must follow; ``load_published`` also checks that each value names a slice
and a metric its board really has, so a typo cannot slip into the site.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from evaluator.registry import get_benchmark

PUBLISHED_DIR = Path(__file__).resolve().parents[1] / "site" / "data" / "published"


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(description="Short id, e.g. 'forb-2023'.")
    title: str
    authors: str
    venue: str
    url: str
    seed_file: str = Field(description="The seed text the tables were transcribed from.")


class Row(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @property
    def label(self) -> str:
        """The row's label as printed in the paper."""
        return self.printed or self.method

    method: str = Field(description="The method's name as it stands alone on a board: 'M3DM', "
                        "never the paper's 'Ours' or 'Full dataset' (see printed).")
    printed: str | None = Field(None, description="The row's label as the paper prints it, "
                                "without citation marks, where it is not the method's name "
                                "('Ours', 'w/ DLF', '5-shot').")
    variant: str | None = Field(None, description="None for the method's main setting; "
                                "otherwise what this row changes (an ablation, another "
                                "backbone, a single modality). Variants are shown apart from "
                                "the ranking, and rows of one method, setting and variant "
                                "from several tables are one row on a board.")
    citation: str | None = Field(None, description="Citation as printed, e.g. '[1]'.")
    flags: list[Literal["upper-bound"]] = Field(
        default_factory=list, description="'upper-bound': the paper marks (†) that the "
        "method's training data may overlap with the benchmark.")
    setting: dict[str, str] = Field(
        default_factory=dict, description="What distinguishes the row: modality (RGB, 3D, "
        "RGB+3D), shots (full, 50, 10, 5), group (a sub-heading such as an ablation or "
        "backbone), ...")
    values: dict[str, dict[str, float | None]] = Field(
        default_factory=dict, description="values[slice][metric] as printed (see the table's "
        "scale); metrics a row does not report are left out, never zero.")
    index_size_gb: float | None = Field(None, description="Index file size (FORB Table 7).")


class Table(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    label: str = Field(description="As the paper names it, e.g. 'Table 1' or 'Table X'.")
    caption: str
    board: str | None = Field(description="Board id whose protocol the table matches; None "
                              "for tables that report no scores (index sizes).")
    scale: Literal["percent", "fraction"] = "fraction"
    rows: list[Row]


class PublishedResults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: Source
    tables: list[Table]


class PublishedDataError(ValueError):
    pass


def load_published(directory: Path = PUBLISHED_DIR) -> list[PublishedResults]:
    """Every data file, validated against the model and the boards' slices and metrics."""
    out = []
    for path in sorted(directory.glob("*.json")):
        data = PublishedResults.model_validate_json(path.read_text(encoding="utf-8"))
        for table in data.tables:
            _check_table(path.name, table)
        out.append(data)
    return out


def _check_table(file: str, table: Table) -> None:
    if table.board is None:
        return
    benchmark = get_benchmark(table.board)
    board = benchmark.board(table.board)
    metrics = {m.name for m in benchmark.info.metrics}
    slices = set(benchmark.slice_names())
    for row in table.rows:
        for slice_name, values in row.values.items():
            unknown = set(values) - metrics
            if unknown:
                raise PublishedDataError(f"{file}: {table.label}, {row.method}: unknown metrics "
                                         f"{sorted(unknown)} for {board.id}")
            if slice_name not in slices:
                raise PublishedDataError(f"{file}: {table.label}, {row.method}: unknown slice "
                                         f"{slice_name!r} for {board.id}")
