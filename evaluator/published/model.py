"""What a data file of published results in ``site/data/published/`` holds.

One file per source: a paper's tables (transcribed from the seed texts), a method's repository,
the dataset authors' leaderboard, a curated list or a third party's re-runs. Each table says
which lines of the source it comes from and how its cells map to (row, slice, metric), so that
every number can be checked against the source's text (``evaluator.published.cells``): the
text is either an excerpt kept beside the repository (``../shared/sources/``, never copied in)
or, for results added by pull request, the table's lines quoted in the data file itself.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SourceKind = Literal["paper", "method-repository", "dataset-leaderboard", "curated-list",
                     "third-party-rerun"]

KIND_WORDS = {
    "paper": "a paper's table",
    "method-repository": "a method's repository",
    "dataset-leaderboard": "the dataset authors' leaderboard",
    "curated-list": "a curated list",
    "third-party-rerun": "a third party's re-run",
}


class Quote(BaseModel):
    """Lines of the source as they stand, starting at line ``first_line`` of the file."""

    model_config = ConfigDict(extra="forbid")

    first_line: int = Field(ge=1)
    lines: list[str] = Field(min_length=1)


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]*$", description="Short id, e.g. 'btf-3d-ads'.")
    name: str | None = Field(None, description="A short name for badges ('CPMF's README'); "
                             "the title where not given.")
    title: str = Field(description="The paper's (or the source's) title.")
    authors: str | None = Field(None, description="None where the source does not name them.")
    venue: str = Field(description="Where it appeared, e.g. 'CVPR 2023' or 'arXiv 2203.05550'.")
    url: str = Field(description="The source: for a repository file, its URL at a commit.")
    kind: SourceKind = "paper"
    paper_url: str | None = Field(None, description="The method's paper, where url is not it.")
    repository: str | None = Field(None, description="owner/name, for a repository file.")
    path: str | None = None
    commit: str | None = Field(None, pattern=r"^[0-9a-f]{40}$")
    own_methods: list[str] = Field(
        default_factory=list, description="Methods whose authors wrote this source: their rows "
        "are primary; every other row is as reported by this source (secondary).")
    note: str | None = None
    # Where the source's text is read from, to check every number (exactly one of these):
    seed_file: str | None = Field(None, description="A seed text (../shared/seeds/), checked "
                                  "by its own test.")
    excerpt: str | None = Field(None, description="A verbatim excerpt file in "
                                "../shared/sources/anomaly/.")
    quote: list[Quote] | None = Field(None, description="The tables' lines as they stand in "
                                      "the source (results added by pull request).")

    @model_validator(mode="after")
    def _one_text(self):
        given = [name for name in ("seed_file", "excerpt", "quote") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError("a source needs exactly one of seed_file, excerpt or quote "
                             f"(found {given or 'none'})")
        if self.kind != "paper" and not (self.repository and self.commit and self.path):
            raise ValueError(f"a {self.kind} source needs repository, path and commit: the "
                             "numbers are checked against that file at that commit")
        return self


class Layout(BaseModel):
    """How a table's cells map to (row, slice, metric).

    ``rows`` and ``columns`` say what the table's rows and columns are; the third axis is fixed
    for the whole table (``slice``, ``metric``, or the one data row when rows are not methods).
    ``column_map`` maps each column header, as printed with markup removed, to a slice or a
    metric; ``row_map`` does the same for row labels when rows are slices or metrics. Headers and
    labels in ``skip_columns``/``skip_rows`` hold numbers this board does not show (other metrics,
    another dataset); every other cell with a number must be in the data. In prose, a
    ``column_map`` key is the words around a number, with ``{}`` where the number stands
    ("{}% image-level AUROC").
    """

    model_config = ConfigDict(extra="forbid")

    rows: Literal["method", "slice", "metric"] = "method"
    label_column: str | None = Field(None, description="The header of the column that holds "
                                     "the row labels, where it is not the first column.")
    columns: Literal["slice", "metric"] = "slice"
    column_map: dict[str, str]
    row_map: dict[str, str] = Field(default_factory=dict)
    skip_columns: list[str] = Field(default_factory=list)
    skip_rows: list[str] = Field(default_factory=list)
    slice: str | None = None
    metric: str | None = None

    @model_validator(mode="after")
    def _axes(self):
        axes = {self.rows, self.columns}
        if len(axes) != 2:
            raise ValueError("rows and columns must be different axes")
        fixed = ({"method", "slice", "metric"} - axes).pop()
        if fixed == "slice" and not self.slice:
            raise ValueError("the table's slice must be given (its rows and columns are not slices)")
        if fixed == "metric" and not self.metric:
            raise ValueError("the table's metric must be given (its rows and columns are not "
                             "metrics)")
        return self


class Row(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @property
    def label(self) -> str:
        """The row's label as printed in the source."""
        return self.printed or self.method

    method: str = Field(description="The method's name as it stands alone on a board: 'M3DM', "
                        "never the paper's 'Ours' or 'Full dataset' (see printed). Names are "
                        "resolved through site/data/methods.json (one method, one name).")
    printed: str | None = Field(None, description="The row's label as the source prints it, "
                                "without citation marks or markup, where it is not the "
                                "method's name ('Ours', 'BTF (Ours)', 'RGB iNet').")
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
        "RGB+3D), shots (full, 50, 10, 5), regime, input, split, extra_data (see "
        "evaluator/settings.py), group (a sub-heading such as an ablation or backbone).")
    note: str | None = Field(None, description="Why a setting was read as it was, where the "
                             "source does not print it on the row.")
    values: dict[str, dict[str, float | None]] = Field(
        default_factory=dict, description="values[slice][metric] as printed (see the table's "
        "scale); metrics a row does not report are left out, never zero.")
    index_size_gb: float | None = Field(None, description="Index file size (FORB Table 7).")


class Table(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    label: str = Field(description="As the source names it, e.g. 'Table 1' or 'Image ROCAUC "
                       "Results (preprocessed)'.")
    caption: str
    board: str | None = Field(description="The board version whose protocol the table's "
                              "metrics match (its rows show on that version and every later "
                              "one, for the metrics each has); None for tables that report no "
                              "scores (index sizes).")
    scale: Literal["percent", "fraction"] = "fraction"
    kind: SourceKind | None = Field(None, description="Where it differs from the source's kind "
                                    "(a repository quoting a third party's run).")
    lines: tuple[int, int] | None = Field(None, description="First and last line of the table "
                                          "in the source file (links point there).")
    format: Literal["seed", "pipe-table", "yaml-list", "prose"] = "seed"
    layout: Layout | None = None
    setting: dict[str, str] = Field(default_factory=dict, description="Settings every row of "
                                    "the table shares (a row's own setting wins).")
    note: str | None = Field(None, description="What the source leaves unsaid and how it was "
                             "read (modality, integration limit, split).")
    aupro_thresholds: int | Literal["exact"] | None = Field(
        None, description="How the source's code computed the PRO curve for AUPRO: 'exact' "
        "(every distinct score), or the number of thresholds (M3DM's code 100, CFM's 99), "
        "where it is known.")
    rows: list[Row]

    @model_validator(mode="after")
    def _checkable(self):
        if self.format != "seed" and (self.layout is None or self.lines is None):
            raise ValueError(f"table {self.id}: a {self.format} table needs its lines and layout")
        return self


class PublishedResults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: Source
    tables: list[Table]
