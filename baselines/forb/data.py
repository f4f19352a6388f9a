"""FORB's images as its downloader lays them out, for the bundled baselines.

``ROOT/metadata/`` holds the lists (``<type>_query.ndjson``, ``all_database_images.txt``,
``oods_database_images.txt``, ``images_for_building_codebook.txt``; the subset board reads
``ROOT/metadata/FORB_subset/``), and image paths in them are relative to ``ROOT``. Only the
public lists are read: a baseline never sees the ground truth.

The ``oods`` database is a subset of ``all`` in the same order, so baselines compute features
once for ``all`` and take the ``oods`` rows out of them (``oods_rows``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from baselines.errors import BaselineDataError
from evaluator.forb.task import ForbTask, TaskError, load_task
from evaluator.labels import board_directory
from evaluator.registry import get_benchmark

CODEBOOK_LIST = "images_for_building_codebook.txt"
SYNTHETIC_MARKER = "SYNTHETIC"


@dataclass
class ForbImages:
    root: Path
    board: str
    task: ForbTask

    @property
    def metadata_dir(self) -> Path:
        return self.task.directory

    @property
    def database_paths(self) -> list[str]:
        return self.task.databases["all"]

    @property
    def query_paths(self) -> list[str]:
        return self.task.query_paths

    @cached_property
    def oods_rows(self) -> np.ndarray:
        """Row of each ``oods`` image in the ``all`` list, in ``oods`` order."""
        index = self.task.database_index["all"]
        missing = [p for p in self.task.databases["oods"] if p not in index]
        if missing:
            raise BaselineDataError(
                f"{self.metadata_dir / 'oods_database_images.txt'}: {missing[0]!r} is not in "
                "all_database_images.txt (the OOD database must be a subset of the full one)")
        return np.asarray([index[p] for p in self.task.databases["oods"]], dtype=np.int64)

    @cached_property
    def codebook_paths(self) -> list[str]:
        """FORB's published list of images for building the BoW codebook."""
        path = self.metadata_dir / CODEBOOK_LIST
        if not path.is_file():
            path = self.root / "metadata" / CODEBOOK_LIST  # the subset folder may lack it
        if not path.is_file():
            raise BaselineDataError(f"{path} is missing: the BoW codebook is built from it")
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip()]

    @property
    def synthetic(self) -> bool:
        """Generated test data (baselines.forb.synthetic) rather than FORB's images."""
        return (self.root / SYNTHETIC_MARKER).is_file()

    def path(self, relative: str) -> Path:
        return self.root / relative

    def fingerprint(self) -> str:
        """sha256 of the lists that define the run's inputs (not of the images)."""
        digest = hashlib.sha256()
        for name in ("query", "all", "oods"):
            paths = self.query_paths if name == "query" else self.task.databases[name]
            digest.update(f"{name}:{len(paths)}\n".encode())
            digest.update("\n".join(paths).encode())
        return "sha256:" + digest.hexdigest()

    def check_files(self, paths: list[str]) -> None:
        """Fail early, naming the first image that is missing."""
        for relative in paths:
            if not (self.root / relative).is_file():
                raise BaselineDataError(
                    f"{self.root / relative}: missing (listed in the FORB metadata under "
                    f"{self.metadata_dir}); is --data the folder that holds metadata/ and the "
                    "image folders?")


def load_forb(root: Path, board: str = "forb") -> ForbImages:
    """Open a FORB root for ``board`` ('forb' or 'forb-subset')."""
    root = Path(root)
    if not (root / "metadata").is_dir():
        raise BaselineDataError(f"{root}: no metadata/ folder; --data must be the FORB root "
                                "(holding metadata/ and the per-type image folders)")
    board_spec = get_benchmark("forb").board(board)
    try:
        task = load_task(board_directory(root / "metadata", board_spec))
    except TaskError as exc:
        raise BaselineDataError(str(exc)) from None
    return ForbImages(root, board, task)


def list_digest(paths: list[str]) -> str:
    """Short stable key of an image list, for cache folder names."""
    return hashlib.sha256("\n".join(paths).encode()).hexdigest()[:16]


def read_image(path: Path, mode: str = "RGB"):
    """Open an image with PIL, or raise BaselineDataError naming the file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            return image.convert(mode) if image.mode != mode else image.copy()
    except FileNotFoundError:
        raise BaselineDataError(f"{path}: missing") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise BaselineDataError(f"{path}: not a readable image ({exc})") from None
