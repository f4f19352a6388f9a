"""The public part of a FORB board: queries and the two databases. Reading it reads no labels:
participants need exactly these lists to run retrieval."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from evaluator.registry import BoardDataError

# FORB's fixed order; database ids and the global query order follow it.
OBJECT_TYPES = (
    "animated_cards", "photorealistic_cards", "bookcovers", "paintings",
    "currency", "logos", "packaged_goods", "movie_posters",
)
DATABASES = ("all", "oods")
DATABASE_FILES = {"all": "all_database_images.txt", "oods": "oods_database_images.txt"}


class TaskError(BoardDataError):
    """FORB metadata is missing or inconsistent."""


@dataclass
class ForbTask:
    """Queries in global order (types in FORB's order, then query_id order) and the databases.

    ``query_start[t]`` is the global index of type t's first query, so FORB's per-type 1-based
    ``query_id`` maps to ``query_start[t] + query_id - 1``.
    """

    directory: Path
    query_paths: list[str]
    query_type: np.ndarray
    query_start: dict[str, int]
    query_count: dict[str, int]
    databases: dict[str, list[str]] = field(repr=False)

    @property
    def n_queries(self) -> int:
        return len(self.query_paths)

    @cached_property
    def query_index(self) -> dict[str, int]:
        return {path: i for i, path in enumerate(self.query_paths)}

    @cached_property
    def database_index(self) -> dict[str, dict[str, int]]:
        return {db: {path: i for i, path in enumerate(paths)}
                for db, paths in self.databases.items()}

    def database_size(self, database: str) -> int:
        return len(self.databases[database])


def load_task(directory: Path) -> ForbTask:
    """Read ``<type>_query.ndjson`` and the two database lists from a FORB metadata folder."""
    if not directory.is_dir():
        raise TaskError(f"{directory} is not a folder of FORB metadata")
    query_paths: list[str] = []
    query_type: list[int] = []
    query_start: dict[str, int] = {}
    query_count: dict[str, int] = {}
    for t_index, object_type in enumerate(OBJECT_TYPES):
        path = directory / f"{object_type}_query.ndjson"
        query_start[object_type] = len(query_paths)
        for line_no, record in json_records(path, str(directory)):
            image = record.get("image")
            if not isinstance(image, str):
                raise TaskError(f"{path.name}:{line_no}: expected an object with an 'image' path")
            query_paths.append(image)
        query_count[object_type] = len(query_paths) - query_start[object_type]
        query_type.extend([t_index] * query_count[object_type])
    if len(set(query_paths)) != len(query_paths):
        raise TaskError("the query lists name the same image twice")
    databases = {db: _read_list(directory / name) for db, name in DATABASE_FILES.items()}
    return ForbTask(directory, query_paths, np.asarray(query_type, dtype=np.int8),
                    query_start, query_count, databases)


def text_lines(path: Path, missing_from: str):
    """(line number, line) of a UTF-8 text file, blank lines skipped; every way the file can
    be unreadable (missing, a folder, not UTF-8) is a TaskError naming it, never a traceback."""
    try:
        handle = open(path, encoding="utf-8")
    except FileNotFoundError:
        raise TaskError(f"{path.name} is missing from {missing_from}") from None
    except OSError as exc:  # e.g. a folder of that name
        raise TaskError(f"{path.name} cannot be read ({exc.strerror})") from None
    with handle:
        try:
            for line_no, line in enumerate(handle, start=1):
                if line.strip():
                    yield line_no, line
        except UnicodeDecodeError:
            # Decoding runs ahead of the lines, so no line number; the bytes are never shown.
            raise TaskError(f"{path.name}: not UTF-8 text") from None


def json_records(path: Path, missing_from: str):
    """(line number, object) of an ndjson file, with the errors of :func:`text_lines`."""
    for line_no, line in text_lines(path, missing_from):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TaskError(f"{path.name}:{line_no}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise TaskError(f"{path.name}:{line_no}: expected a JSON object")
        yield line_no, record


def _read_list(path: Path) -> list[str]:
    items = [line.rstrip("\r\n") for _, line in text_lines(path, str(path.parent))]
    if len(set(items)) != len(items):
        raise TaskError(f"{path.name} lists the same image twice")
    return items
