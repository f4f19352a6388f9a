"""Where each dataset keeps its test masks, and how a mask path names a test sample.

The test set is what the label root holds: a sample exists because its mask file does. Listing
the files reads no label content, so validation can use it before labels are opened.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

MVTEC3D_CATEGORIES = ("bagel", "cable_gland", "carrot", "cookie", "dowel", "foam", "peach",
                      "potato", "rope", "tire")
EYECANDIES_CATEGORIES = ("CandyCane", "ChocolateCookie", "ChocolatePraline", "Confetto",
                         "GummyBear", "HazelnutTruffle", "LicoriceSandwich", "Lollipop",
                         "Marshmallow", "PeppermintCandy")


@dataclass(frozen=True)
class DatasetLayout:
    """How one dataset lays out its test masks.

    ``mask_glob`` finds mask files below the root; ``sample_pattern`` (a regex on the path
    relative to the root) captures the category and turns the path into a sample id with
    ``sample_format``. ``label_from_folder``: the label is 0 for the 'good' defect folder (MVTec
    3D-AD); otherwise a sample is anomalous iff its mask has a non-zero pixel (Eyecandies).
    """

    categories: tuple[str, ...]
    mask_globs: tuple[str, ...]
    sample_pattern: re.Pattern
    sample_format: str
    sample_id_pattern: str
    label_from_folder: bool

    def list_samples(self, root: Path) -> dict[str, tuple[str, Path]]:
        """sample id -> (category, mask path), for every mask of a known category."""
        found: dict[str, tuple[str, Path]] = {}
        for category in self.categories:
            for pattern in self.mask_globs:
                for path in sorted((root / category).glob(pattern)):
                    match = self.sample_pattern.fullmatch(path.relative_to(root).as_posix())
                    if match:
                        found[self.sample_format.format(**match.groupdict())] = (category, path)
        return found


MVTEC3D_LAYOUT = DatasetLayout(
    categories=MVTEC3D_CATEGORIES,
    mask_globs=("test/*/gt/*.png",),
    sample_pattern=re.compile(r"(?P<category>[^/]+)/test/(?P<defect>[^/]+)/gt/(?P<id>[^/]+)\.png"),
    sample_format="{category}/test/{defect}/{id}",
    sample_id_pattern=r"^[A-Za-z0-9_]+/test/[A-Za-z0-9_]+/[A-Za-z0-9_]+$",
    label_from_folder=True,
)

EYECANDIES_LAYOUT = DatasetLayout(
    categories=EYECANDIES_CATEGORIES,
    mask_globs=("test_public/data/*_mask.png", "test_private/data/*_mask.png"),
    sample_pattern=re.compile(
        r"(?P<category>[^/]+)/(?P<split>test_public|test_private)/data/(?P<id>\d+)_mask\.png"),
    sample_format="{category}/{split}/{id}",
    sample_id_pattern=r"^[A-Za-z]+/test_(public|private)/[0-9]+$",
    label_from_folder=False,
)


def folder_label(sample: str) -> int:
    """MVTec 3D-AD: 0 for samples in the 'good' defect folder, else 1."""
    return 0 if sample.split("/")[2] == "good" else 1
