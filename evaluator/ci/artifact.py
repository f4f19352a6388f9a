"""The artifact that carries a pull request's entries from the untrusted validate workflow to
the trusted score workflow.

The validate job runs with the PR's own workflow file and code, so the artifact it uploads may
hold anything. The score job therefore treats it strictly as data: the zip is opened with size,
count and name checks before anything is written, symbolic links and paths leaving the folder
are refused, and every file is then checked again against the pull request itself
(:mod:`evaluator.ci.score`) and validated by the default branch's evaluator.
"""

from __future__ import annotations

import json
import shutil
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from evaluator.entries import ENTRY_ID, SAFE_NAME

MANIFEST = "submission.json"
MANIFEST_SCHEMA = "leaderboard-submission/1"
ARTIFACT_NAME = "submission"
# A manifest lists a handful of entry folders and three hints: a few kB. The cap leaves room.
MAX_MANIFEST_BYTES = 256 * 1024


@dataclass(frozen=True)
class ArtifactLimits:
    max_zip_bytes: int = 1 << 30          # what may be downloaded at all
    max_total_bytes: int = 2 << 30        # uncompressed, all files
    max_file_bytes: int = 1 << 30
    max_files: int = 2000
    max_ratio: int = 200                  # uncompressed / compressed, per file (zip bombs)


DEFAULT_ARTIFACT_LIMITS = ArtifactLimits()


class ArtifactError(Exception):
    """The artifact is not a well-formed submission; the message names the member."""


# Writing (validate job) --------------------------------------------------------------------------

def stage_entries(repo: Path, entries: list[str], out: Path, manifest: dict) -> None:
    """Copy entry folders (repository-relative 'submissions/<benchmark>/<id>') into ``out``
    with a manifest. Only regular files are copied; validation has refused anything else."""
    out.mkdir(parents=True, exist_ok=True)
    for entry in entries:
        source = repo / entry
        for path in sorted(source.rglob("*")):
            if path.is_symlink() or not path.is_file():
                continue
            target = out / entry / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    document = {"schema": MANIFEST_SCHEMA, **manifest, "entries": entries}
    (out / MANIFEST).write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")


# Reading (score job) -----------------------------------------------------------------------------

def _member_path(info: zipfile.ZipInfo) -> PurePosixPath:
    name = info.filename
    if "\\" in name or name.startswith("/") or "\0" in name:
        raise ArtifactError(f"artifact member {name!r}: not a relative path")
    path = PurePosixPath(name)
    if any(part in ("", ".", "..") for part in path.parts):
        raise ArtifactError(f"artifact member {name!r}: path leaves the artifact folder")
    if not all(SAFE_NAME.match(part) for part in path.parts):
        raise ArtifactError(f"artifact member {name!r}: unexpected characters in the name")
    if path.parts[0] != "submissions" and name != MANIFEST:
        raise ArtifactError(f"artifact member {name!r}: only {MANIFEST} and submissions/ "
                            "belong in the artifact")
    return path


def _check_member(info: zipfile.ZipInfo, limits: ArtifactLimits) -> None:
    kind = stat.S_IFMT(info.external_attr >> 16)   # 0 when the zip records no file type
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise ArtifactError(f"artifact member {info.filename!r}: not a regular file "
                            "(symbolic links and special files are refused)")
    if info.file_size > limits.max_file_bytes:
        raise ArtifactError(f"artifact member {info.filename!r}: larger than allowed")
    if info.compress_size and info.file_size / info.compress_size > limits.max_ratio:
        raise ArtifactError(f"artifact member {info.filename!r}: compression ratio too high")
    if info.flag_bits & 0x1:
        raise ArtifactError(f"artifact member {info.filename!r}: encrypted")


def safe_extract(zip_path: Path, dest: Path,
                 limits: ArtifactLimits = DEFAULT_ARTIFACT_LIMITS) -> Path:
    """Extract the artifact zip into ``dest`` (which must not exist) after checking every
    member; sizes are enforced on the bytes actually written, not only the declared ones."""
    if zip_path.stat().st_size > limits.max_zip_bytes:
        raise ArtifactError("the artifact is larger than allowed")
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArtifactError(f"the artifact is not a readable zip ({exc})") from None
    dest.mkdir(parents=True)
    try:
        with archive:
            members = archive.infolist()
            files = [m for m in members if not m.is_dir()]
            if len(files) > limits.max_files:
                raise ArtifactError(f"the artifact holds {len(files)} files, more than "
                                    f"{limits.max_files}")
            checked = [(info, _member_path(info)) for info in files]
            for info, _ in checked:
                _check_member(info, limits)
            _check_file_and_folder_names([path for _, path in checked])
            if sum(info.file_size for info in files) > limits.max_total_bytes:
                raise ArtifactError("the artifact's files are larger than allowed in all")
            written = 0
            for info, path in checked:
                written += _copy_member(archive, info, dest.joinpath(*path.parts), limits,
                                        limits.max_total_bytes - written)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return dest


def _check_file_and_folder_names(paths: list[PurePosixPath]) -> None:
    """A name cannot be a file and a folder at once (``x`` and ``x/y``); writing both would
    fail half-way."""
    folders = {parent for path in paths for parent in path.parents}
    both = sorted(str(path) for path in paths if path in folders)
    if both:
        raise ArtifactError(f"artifact member {both[0]!r}: both a file and a folder")


def _copy_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path,
                 limits: ArtifactLimits, budget: int) -> int:
    copied = 0
    try:
        # Inside the try: any file-system error on hostile names is the artifact's problem.
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            raise ArtifactError(f"artifact member {info.filename!r}: appears twice")
        with archive.open(info) as source, open(target, "xb") as sink:
            while chunk := source.read(1 << 20):
                copied += len(chunk)
                if copied > min(info.file_size, limits.max_file_bytes, budget):
                    raise ArtifactError(f"artifact member {info.filename!r}: more data than "
                                        "its declared size")
                sink.write(chunk)
    except (zipfile.BadZipFile, EOFError) as exc:
        raise ArtifactError(f"artifact member {info.filename!r}: unreadable ({exc})") from None
    except OSError as exc:   # the class only: the message names the runner's paths
        raise ArtifactError(f"artifact member {info.filename!r}: could not be written "
                            f"({type(exc).__name__})") from None
    return copied


def read_manifest(root: Path) -> dict:
    """The artifact's manifest, checked for shape. Its claims (PR number, head) are only
    hints: the score job verifies them against the workflow run and the pull request."""
    path = root / MANIFEST
    try:
        # The size is checked before reading: the artifact may hold a manifest of a gigabyte.
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise ArtifactError(f"{MANIFEST}: larger than {MAX_MANIFEST_BYTES} bytes")
        with open(path, "rb") as handle:
            data = handle.read(MAX_MANIFEST_BYTES + 1)
        if len(data) > MAX_MANIFEST_BYTES:
            raise ArtifactError(f"{MANIFEST}: larger than {MAX_MANIFEST_BYTES} bytes")
        document = json.loads(data.decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{MANIFEST}: unreadable ({exc})") from None
    if not isinstance(document, dict) or document.get("schema") != MANIFEST_SCHEMA:
        raise ArtifactError(f"{MANIFEST}: not a {MANIFEST_SCHEMA} manifest")
    entries = document.get("entries")
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise ArtifactError(f"{MANIFEST}: 'entries' must be a list of entry folders")
    for entry in entries:
        parts = entry.split("/")
        if len(parts) != 3 or parts[0] != "submissions" or not ENTRY_ID.match(parts[2]) \
                or not SAFE_NAME.match(parts[1]):
            raise ArtifactError(f"{MANIFEST}: {entry!r} is not submissions/<benchmark>/<id>")
    return document


def artifact_files(root: Path) -> dict[str, Path]:
    """Every file of the extracted artifact under submissions/, by repository path."""
    found = {}
    for path in sorted((root / "submissions").rglob("*")):
        if path.is_symlink():
            raise ArtifactError(f"{path.relative_to(root)}: symbolic link")
        if path.is_file():
            found[path.relative_to(root).as_posix()] = path
    return found
