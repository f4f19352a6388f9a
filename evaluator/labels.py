"""Where labels come from. A label source hands the evaluator a local folder for the duration of
an evaluation; the folder is laid out as the dataset ships its labels.

Sources are chosen by a spec string: a plain path is a folder on disk; ``scheme:rest`` picks a
registered kind: ``bundle:`` (an encrypted label bundle, :mod:`evaluator.bundles`) and ``url:``
(a private download) are built in, and others plug in with :func:`register_source_kind`
without touching the evaluator.
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from evaluator.registry import Board

ENV_PREFIX = "LEADERBOARD_LABELS"


class LabelSourceError(Exception):
    """The label source cannot be opened."""


class LabelSettingError(LabelSourceError):
    """A label setting (an environment variable) is malformed: a usage error, not bad data."""


class LabelSource(ABC):
    @abstractmethod
    def describe(self) -> str:
        """A short description that is safe to print (no secrets, no label content)."""

    @abstractmethod
    @contextmanager
    def open(self) -> Iterator[Path]:
        """Yield a local folder holding the labels; clean up whatever was made for it."""


class DirectorySource(LabelSource):
    """Labels already on disk, e.g. ``../shared/data/forb/metadata``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()

    def describe(self) -> str:
        return f"folder {self.path}"

    @contextmanager
    def open(self) -> Iterator[Path]:
        if not self.path.is_dir():
            raise LabelSourceError(f"label folder {self.path} does not exist")
        yield self.path


def _bundle_source(spec: str) -> LabelSource:
    from evaluator.bundle_sources import BundleSource  # cryptography only when used

    return BundleSource(spec)


def _url_source(spec: str) -> LabelSource:
    from evaluator.bundle_sources import UrlSource

    return UrlSource(spec)


_KINDS: dict[str, Callable[[str], LabelSource]] = {
    "dir": DirectorySource,
    "bundle": _bundle_source,   # bundle:labels/forb.bundle (key in $LEADERBOARD_LABEL_KEY)
    "url": _url_source,         # url:https://... a private download of a bundle or a .tar.gz
}
_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*):(?!\\)(.*)$")


def register_source_kind(scheme: str, factory: Callable[[str], LabelSource]) -> None:
    """Make ``scheme:...`` specs create sources with ``factory(rest)``."""
    _KINDS[scheme] = factory


def source_from_spec(spec: str) -> LabelSource:
    match = _SCHEME.match(spec)
    if match and match.group(1) in _KINDS:
        return _KINDS[match.group(1)](match.group(2))
    return DirectorySource(spec)


def env_var(benchmark: str) -> str:
    """The environment variable naming a benchmark's label source, e.g. LEADERBOARD_LABELS_FORB."""
    return f"{ENV_PREFIX}_{re.sub(r'[^A-Z0-9]', '_', benchmark.upper())}"


def resolve_source(benchmark: str, specs: list[str] | None) -> LabelSource | None:
    """Pick the source for ``benchmark``: ``--labels BENCHMARK=SPEC`` first, then a plain
    ``--labels SPEC``, then $LEADERBOARD_LABELS_<BENCHMARK>, then $LEADERBOARD_LABELS."""
    plain = None
    for spec in specs or []:
        name, sep, rest = spec.partition("=")
        if sep and name == benchmark:
            return source_from_spec(rest)
        if not sep or "/" in name or not re.fullmatch(r"[a-z0-9-]+", name):
            plain = plain or spec
    if plain:
        return source_from_spec(plain)
    for var in (env_var(benchmark), ENV_PREFIX):
        if os.environ.get(var):
            return source_from_spec(os.environ[var])
    return None


def board_directory(root: Path, board: Board) -> Path:
    """The folder holding ``board``'s files inside a label root: the board's own subfolder
    when the root holds several boards (FORB's ``FORB_subset/``), else the root itself."""
    if board.label_subdir and (root / board.label_subdir).is_dir():
        return root / board.label_subdir
    return root
