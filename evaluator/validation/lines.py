"""Streaming reader for ndjson files, plain or gzip, that turns every way a file can be broken
into a reported problem instead of a traceback, with memory bounded by one line."""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from pathlib import Path

from evaluator import progress
from evaluator.validation.limits import DEFAULT_LIMITS, Limits, human_size
from evaluator.validation.report import ValidationReport

GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"
_SKIP_CHUNK = 64 * 1024


def iter_lines(
    path: Path,
    name: str,
    report: ValidationReport,
    limits: Limits = DEFAULT_LIMITS,
) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` for each non-blank line of ``path``.

    ``name`` is how the file is called in messages (a path relative to the entry). Problems
    are added to ``report``; lines that cannot be decoded are skipped, and reading stops on a
    fatal problem (over a size cap, broken compression) or once the report is full.
    """
    try:
        size = path.stat().st_size
    except OSError as exc:
        report.error(name, None, f"cannot read the file: {exc.strerror}")
        return
    if size > limits.max_file_bytes:
        report.error(name, None, f"the file is {human_size(size)}, over the limit of "
                     f"{human_size(limits.max_file_bytes)} per file; compress it (.ndjson.gz) "
                     "or make it smaller (see the submission guide)")
        return
    if not path.is_file():
        report.error(name, None, "not a regular file")
        return
    try:
        raw = open(path, "rb")
    except OSError as exc:
        report.error(name, None, f"cannot read the file: {exc.strerror}")
        return
    with raw:
        compressed = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        if name.endswith(".gz") and not compressed:
            report.error(name, None, "the name ends in .gz but the file is not gzip-compressed")
            return
        if compressed and not name.endswith(".gz"):
            # The name is what reviewers and the size rules go by: a plain-looking name must
            # hold plain text.
            report.error(name, None, "the file is gzip-compressed but its name does not end "
                         "in .gz; rename it to " + name + ".gz")
            return
        stream: io.BufferedIOBase = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
        yield from _iter_stream_lines(stream, name, report, limits, compressed)


def _iter_stream_lines(stream, name, report, limits, compressed):
    line_no = 0
    total = 0
    while True:
        try:
            raw = stream.readline(limits.max_line_bytes + 1)
        except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
            report.error(name, line_no + 1 if line_no else None, _compression_problem(exc))
            return
        if not raw:
            return
        line_no += 1
        total += len(raw)
        if line_no % 4096 == 0:
            progress.status(f"reading {name}: line {line_no:,}")
        if total > limits.max_decompressed_bytes:
            report.error(name, line_no, "the decompressed content exceeds "
                         f"{human_size(limits.max_decompressed_bytes)}; stopped reading")
            return
        if len(raw) > limits.max_line_bytes and not raw.endswith(b"\n"):
            report.error(name, line_no, f"the line is longer than "
                         f"{human_size(limits.max_line_bytes)}; is the file one JSON object "
                         "per line?")
            skipped = _skip_rest_of_line(stream, name, line_no, report,
                                         limits.max_decompressed_bytes - total)
            if skipped is None:
                return
            total += skipped
            continue
        if line_no == 1 and raw.startswith(UTF8_BOM):
            raw = raw[len(UTF8_BOM):]
        if line_no == 1 and raw.startswith(GZIP_MAGIC):
            report.error(name, None, "the content is gzip data inside gzip: compress the "
                         "file once" if compressed else "the file is gzip-compressed but its "
                         "name does not end in .gz")
            return
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            report.error(name, line_no, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column "
                         f"{exc.start + 1}); save the file as UTF-8")
            if report.full or line_no == 1:  # a broken first line: not a UTF-8 text file
                return
            continue
        if "\x00" in text:
            report.error(name, line_no, "the line holds a NUL character; is this a binary or "
                         "UTF-16 file? Save it as UTF-8")
            if report.full or line_no == 1:
                return
            continue
        if text.strip():
            yield line_no, text
        else:
            newlines, skipped = _skip_blank_run(stream, limits.max_decompressed_bytes - total)
            line_no += newlines
            total += skipped
            if total > limits.max_decompressed_bytes:
                report.error(name, line_no, "the decompressed content exceeds "
                             f"{human_size(limits.max_decompressed_bytes)}; stopped reading")
                return
        if report.full:
            return


def _skip_blank_run(stream, budget: int) -> tuple[int, int]:
    """After a blank line, consume the blank lines that follow in bulk (a file of a billion
    newlines must not take a billion readline calls): returns (newlines, bytes) consumed. Stops
    at the first other byte, so the next line is read as usual, or once ``budget`` bytes are
    consumed, so the caller's size limit still applies."""
    newlines = consumed = 0
    while consumed <= budget:
        try:
            ahead = stream.peek(_SKIP_CHUNK)[:_SKIP_CHUNK]
        except (EOFError, gzip.BadGzipFile, zlib.error, OSError):
            break  # the next readline reports it
        blank = len(ahead) - len(ahead.lstrip(b"\r\n"))
        if not blank:
            break
        newlines += ahead.count(b"\n", 0, blank)
        consumed += len(stream.read(blank))
        if blank < len(ahead):
            break
    return newlines, consumed


def _skip_rest_of_line(stream, name, line_no, report, budget: int) -> int | None:
    """Read past the end of an over-long line in fixed chunks, within the decompression budget;
    None if reading has to stop."""
    skipped = 0
    while True:
        try:
            chunk = stream.readline(_SKIP_CHUNK)
        except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
            report.error(name, line_no, _compression_problem(exc))
            return None
        skipped += len(chunk)
        if skipped > budget:
            report.error(name, line_no, "the decompressed content exceeds the size limit; "
                         "stopped reading")
            return None
        if not chunk or chunk.endswith(b"\n"):
            return skipped


def _compression_problem(exc: Exception) -> str:
    if isinstance(exc, EOFError):
        return "the gzip stream ends early: the file is truncated (upload it again)"
    return f"the gzip data is corrupt ({exc}); recompress the file"
