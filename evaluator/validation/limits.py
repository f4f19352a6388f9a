"""Size limits that keep validation bounded in time and memory, whatever a submission holds."""

from __future__ import annotations

from dataclasses import dataclass

MB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    # A file as stored in git: GitHub refuses files over 100 MB.
    max_file_bytes: int = 100 * MB
    # What a compressed file may expand to; guards against gzip bombs.
    max_decompressed_bytes: int = 1024 * MB
    # One JSON line; a FORB line with 100 path candidates is about 10 kB.
    max_line_bytes: int = 1 * MB
    # Files an entry folder may hold, and their total size.
    max_entry_files: int = 64
    max_entry_bytes: int = 400 * MB
    # Distinct queries or samples one submission may name. The largest test set (FORB's 13,901
    # queries) is far below; without labels every id is kept to find repeats, so this is what
    # bounds that memory (about 200 bytes an id).
    max_distinct_ids: int = 100_000


DEFAULT_LIMITS = Limits()


def human_size(n: int) -> str:
    for unit, size in (("GB", 1024**3), ("MB", MB), ("kB", 1024)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"
