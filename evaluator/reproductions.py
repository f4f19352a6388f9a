"""Which bundled baseline reproduces which published row: ``site/data/baselines.json``.

Both sides read this one file: the site, to show "reproduce this row" with its command, and
the baselines (``baselines/catalogue.py``), to find the paper rows they are compared with.
The site never imports ``baselines`` (torch, timm, ...). A row is named by its data file's
source key, its ``method`` and, where a method has several rows, its ``variant`` and
``setting.modality``: fields of ``site/data/published`` that stay stable.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evaluator.registry import benchmarks

REPRODUCTIONS_FILE = Path(__file__).resolve().parents[1] / "site" / "data" / "baselines.json"

# What the commands shown to users name the dataset roots, and where their labels are.
DATA_PLACEHOLDERS = {"forb": "FORB_ROOT", "mvtec3d-ad": "MVTEC3D_ROOT",
                     "eyecandies": "EYECANDIES_ROOT"}
LABEL_HINTS = {"forb": "FORB_ROOT/metadata", "mvtec3d-ad": "MVTEC3D_ROOT",
               "eyecandies": "EYECANDIES_ROOT"}


class PublishedRef(BaseModel):
    """A row of a transcribed paper table that a baseline reproduces."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(description="Key of the paper in site/data/published.")
    method: str = Field(description="The row's method name.")
    variant: str | None = Field(None, description="The row's variant; None: the main setting.")
    modality: str | None = Field(None, description="The row's setting.modality, where the "
                                 "method has rows of several modalities.")
    cited: bool | None = Field(None, description="False: only the paper's own rows (no "
                               "citation mark); True: only cited rows; None: either.")

    def matches(self, source_key: str, method: str, setting: dict, citation: str | None,
                variant: str | None = None) -> bool:
        return (source_key == self.source and method == self.method
                and variant == self.variant
                and (self.modality is None or setting.get("modality") == self.modality)
                and (self.cited is None or self.cited == (citation is not None)))


class Reproduction(BaseModel):
    """One bundled baseline as the site shows it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    benchmark: str
    boards: tuple[str, ...] = Field(min_length=1)
    reproduces: tuple[PublishedRef, ...] = ()
    published_label: str = Field(description="The reproduced rows in words, e.g. 'CLIP'.")
    weights: str = Field(description="What --weights published loads, in words.")
    gpu_time: str = Field(description="Measured or estimated wall time on one GPU.")

    def entry(self, board: str | None = None) -> str:
        """Its entry's folder under submissions/: <benchmark>/<name>, suffixed for a board
        other than its first (forb-clip-vit-l14-336-subset)."""
        board = board or self.boards[0]
        suffix = "" if board == self.boards[0] else "-" + board.split("-", 1)[-1]
        return f"{self.benchmark}/{self.name}{suffix}"

    def command(self, board: str | None = None) -> str:
        """The `leaderboard baseline run` command that writes this baseline's entry."""
        board = board or self.boards[0]
        board_flag = "" if board == self.boards[0] else f" --board {board}"
        return (f"leaderboard baseline run {self.name} --data "
                f"{DATA_PLACEHOLDERS[self.benchmark]}{board_flag} "
                f"--out submissions/{self.entry(board)}")

    @property
    def labels_hint(self) -> str:
        return LABEL_HINTS[self.benchmark]


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    about: str = ""
    baselines: list[Reproduction]


class ReproductionDataError(ValueError):
    pass


@lru_cache(maxsize=4)
def load_reproductions(path: Path = REPRODUCTIONS_FILE) -> dict[str, Reproduction]:
    """name -> Reproduction, checked: known benchmarks and boards, no name twice."""
    try:
        data = _File.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError, ValidationError) as exc:
        raise ReproductionDataError(f"{path}: {exc}") from None
    known = {b.info.name: {board.name for board in b.info.boards} for b in benchmarks()}
    out: dict[str, Reproduction] = {}
    for position, item in enumerate(data.baselines, start=1):
        where = f"{path}: baseline {position} ({item.name})"
        if item.name in out:
            raise ReproductionDataError(f"{where}: the name is listed twice")
        if item.benchmark not in known or item.benchmark not in DATA_PLACEHOLDERS:
            raise ReproductionDataError(f"{where}: unknown benchmark {item.benchmark!r}")
        unknown = [b for b in item.boards if b not in known[item.benchmark]]
        if unknown:
            raise ReproductionDataError(f"{where}: {item.benchmark} has no board "
                                        f"{', '.join(unknown)}")
        out[item.name] = item
    return out


def reproducing(source_key: str, method: str, benchmark: str, setting: dict | None = None,
                citation: str | None = None, variant: str | None = None
                ) -> Reproduction | None:
    """The bundled baseline that reproduces a published row, if any."""
    for item in load_reproductions().values():
        if item.benchmark == benchmark and any(
                ref.matches(source_key, method, setting or {}, citation, variant)
                for ref in item.reproduces):
            return item
    return None
