"""The text a data file's numbers are checked against, by the source file's own line numbers.

Two places hold it: a verbatim excerpt beside the repository (``../shared/sources/anomaly/``:
a header of ``key: value`` lines, a blank line, then excerpts each introduced by a marker
``[verbatim excerpt, lines A-B of <path>]``, or, without any marker, the file from its first
line), or the data file's own ``quote`` (results added by pull request).
"""

from __future__ import annotations

import re
from pathlib import Path

from evaluator.published.model import Source

SOURCES_DIR = Path(__file__).resolve().parents[3] / "shared" / "sources" / "anomaly"
MARKER = re.compile(r"^\[verbatim excerpt, lines (\d+)-(\d+) of (.+)\]$")


class SourceTextError(ValueError):
    pass


def source_lines(source: Source, sources_dir: Path = SOURCES_DIR) -> dict[int, str]:
    """Line number in the source file -> that line, for every line the text holds."""
    if source.quote:
        lines: dict[int, str] = {}
        for block in source.quote:
            for offset, text in enumerate(block.lines):
                lines[block.first_line + offset] = text
        return lines
    if source.excerpt:
        path = sources_dir / source.excerpt
        if not path.is_file():
            raise FileNotFoundError(path)
        return excerpt_lines(path, source.url)
    raise SourceTextError(f"source {source.key}: its text is a seed, checked by its own test")


def excerpt_lines(path: Path, url: str | None = None) -> dict[int, str]:
    text = path.read_text(encoding="utf-8").split("\n")
    try:
        blank = text.index("")
    except ValueError:
        raise SourceTextError(f"{path.name}: no blank line after the header") from None
    header = dict(line.split(": ", 1) for line in text[:blank] if ": " in line)
    if url is not None and header.get("url") != url:
        raise SourceTextError(f"{path.name}: its url is {header.get('url')!r}, the data file "
                              f"says {url!r}")
    body = text[blank + 1:]
    lines: dict[int, str] = {}
    if not any(MARKER.match(line) for line in body):
        # the file from its first line (a trailing newline adds no line)
        while body and body[-1] == "":
            body.pop()
        return {n: line for n, line in enumerate(body, start=1)}
    current = None
    for line in body:
        match = MARKER.match(line)
        if match:
            current, last = int(match.group(1)), int(match.group(2))
            continue
        if current is None or current > last:
            continue  # the blank separator after an excerpt
        lines[current] = line
        current += 1
    return lines


def table_lines(lines: dict[int, str], first: int, last: int) -> list[tuple[int, str]]:
    missing = [n for n in range(first, last + 1) if n not in lines]
    if missing:
        raise SourceTextError(f"lines {first}-{last} are not all in the source text "
                              f"(missing: {missing[:5]}{'...' if len(missing) > 5 else ''})")
    return [(n, lines[n]) for n in range(first, last + 1)]
