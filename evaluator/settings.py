"""Settings that make results comparable: the experimental conditions a row was produced under.

A benchmark declares its dimensions (``BenchmarkInfo.settings["dimensions"]``). Every row of a
board, recomputed or reported, has one value per dimension. Dimensions that ``rank`` split the
ranking: a row is only ever ranked against rows with the same values of all of them (few-shot
results never outrank full-data ones, a zero-shot method is ranked among zero-shot methods).
Dimensions that do not rank (the input modality) are filters over one ranking.

A source that does not state a dimension is taken to follow the benchmark's standard protocol,
as the field's comparison tables take it; the row then lists that dimension as assumed, and its
page says so.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SettingDimension:
    key: str                          # the field name in data files and URLs
    label: str                        # the control's label on the board
    values: tuple[str, ...]           # known values, in display order
    standard: str | None              # the standard protocol's value; None: no standard
    ranks: bool                       # True: rows are ranked only among rows of one value
    description: str
    names: tuple[tuple[str, str], ...] = ()   # value -> words, where a value needs them

    def name(self, value: str | None) -> str:
        return dict(self.names).get(value, value) if value is not None else "–"


MODALITY = SettingDimension(
    "modality", "Modality", ("RGB", "3D", "RGB+3D"), None, False,
    "The input the method uses: colour images, 3D (point clouds or depth), or both.")
REGIME = SettingDimension(
    "regime", "Training", ("per-category", "unified", "zero-shot"), "per-category", True,
    "How models are trained: one model per category (the standard protocol), one model for "
    "all categories (the 'multi-class' or unified setting), or no training images at all "
    "(zero-shot).",
    names=(("per-category", "one model per category"),
           ("unified", "one model for all categories"),
           ("zero-shot", "zero-shot (no training images)")))
SHOTS = SettingDimension(
    "shots", "Shots", ("full", "50", "10", "5"), "full", True,
    "How many training images per category: the full training set, or a few-shot subset.")
INPUT = SettingDimension(
    "input", "Input data", ("preprocessed", "raw"), "preprocessed", True,
    "Whether the method reads the dataset after the published preprocessing (BTF's background "
    "plane removal, outlier clustering and padding to squares, used by nearly every method "
    "since) or the raw scans.",
    names=(("preprocessed", "preprocessed (BTF)"), ("raw", "raw scans")))
EYECANDIES_SPLIT = SettingDimension(
    "split", "Test split", ("test_public", "test_private"), "test_public", True,
    "Which Eyecandies test split the numbers come from: test_public (50 samples per "
    "category, with masks; what M3DM and most papers score) or test_private (400 per "
    "category, scored by the dataset's authors on their leaderboard).")
EXTRA_DATA = SettingDimension(
    "extra_data", "Extra training data", ("none",), "none", True,
    "Training data beyond the benchmark's own training split (for example synthetic "
    "anomalies or another dataset); 'none' for the standard protocol.")

ANOMALY_DIMENSIONS = (MODALITY, REGIME, SHOTS, INPUT, EXTRA_DATA)
EYECANDIES_DIMENSIONS = (MODALITY, REGIME, SHOTS, INPUT, EYECANDIES_SPLIT, EXTRA_DATA)


def dimensions_of(settings: dict) -> tuple[SettingDimension, ...]:
    return tuple(settings.get("dimensions", ()))


def resolve(dimensions: tuple[SettingDimension, ...], stated: dict[str, str]
            ) -> tuple[dict[str, str | None], list[str]]:
    """Every dimension's value for a row that states ``stated``, and the dimensions assumed
    to be standard because the row did not state them."""
    values: dict[str, str | None] = {}
    assumed = []
    for dim in dimensions:
        if stated.get(dim.key) is not None:
            values[dim.key] = stated[dim.key]
        else:
            values[dim.key] = dim.standard
            if dim.standard is not None:
                assumed.append(dim.key)
    return values, assumed


def ranking_key(dimensions: tuple[SettingDimension, ...], values: dict[str, str | None]
                ) -> tuple:
    """Rows rank against each other only when these are equal."""
    return tuple(values.get(d.key) for d in dimensions if d.ranks)


def is_standard(dimensions: tuple[SettingDimension, ...], values: dict[str, str | None]) -> bool:
    return all(values.get(d.key) == d.standard for d in dimensions if d.ranks)
