"""Bad submissions get clear errors that name the file, the line and the problem (never a
Python traceback), and many problems are reported at once.

Everything is built in tmp_path from a tiny FORB metadata folder: 8 object types x 2 queries,
3 database images per type (24 in 'all', 12 in 'oods')."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from evaluator.cli import main
from evaluator.forb.predictions import locate, read_predictions_file, read_results_folder
from evaluator.forb.task import OBJECT_TYPES, load_task
from evaluator.validation.lines import iter_lines
from evaluator.validation.limits import Limits
from evaluator.validation.report import ValidationReport
from tests.report_helpers import cli, problem

LOGOS_Q1, LOGOS_Q2 = "logos/query/q1.jpg", "logos/query/q2.jpg"
LOGOS_D1, LOGOS_D2 = "logos/database/d1.jpg", "logos/database/d2.jpg"
METADATA = {
    "method": "My method", "board": "forb", "authors": ["A. Author"],
    "description": "Nearest neighbours.", "license": "MIT", "backbone": "none",
    "pretraining_data": "none", "extra_training_data": "none", "hardware": "a CPU",
    "contact": "me@example.org", "date": "2024-05-01",
}


# fixtures and helpers -------------------------------------------------------------------------

@pytest.fixture
def meta(tmp_path) -> Path:
    folder = tmp_path / "metadata"
    folder.mkdir()
    database = []
    for t in OBJECT_TYPES:
        (folder / f"{t}_query.ndjson").write_text(
            "".join(json.dumps({"image": f"{t}/query/q{i}.jpg"}) + "\n" for i in (1, 2)))
        database += [f"{t}/database/d{i}.jpg" for i in (1, 2, 3)]
    (folder / "all_database_images.txt").write_text("\n".join(database) + "\n")
    (folder / "oods_database_images.txt").write_text("\n".join(database[::2]) + "\n")
    return folder


@pytest.fixture
def task(meta):
    return load_task(meta)


def canonical_records(task) -> list[dict]:
    """A valid canonical file: every query once per database, 2 candidates each."""
    return [{"database": db, "query": q, "candidates": task.databases[db][:2], "scores": [0.9, 0.5]}
            for db in ("all", "oods") for q in task.query_paths]


def _canonical_bytes(task) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in canonical_records(task)).encode()


def write_lines(path: Path, lines: list, gz: bool = False) -> Path:
    """Write dicts as JSON lines and strings as they are."""
    data = "".join((ln if isinstance(ln, str) else json.dumps(ln)) + "\n" for ln in lines).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def write_results(folder: Path, **files: list) -> Path:
    """A valid retrieval_results/ folder; keyword arguments replace files, e.g. logos_all=[...]."""
    for t in OBJECT_TYPES:
        for db in ("all", "oods"):
            lines = files.get(f"{t}_{db}", [
                {"query_id": q, "candidate_db_ids": [0, 1], "global_scores": [0.9, 0.1]}
                for q in (1, 2)])
            write_lines(folder / "retrieval_results" / f"{t}_{db}.ndjson", lines)
    return folder


def check(path: Path, task, max_errors: int = 50) -> tuple[ValidationReport, object]:
    report = ValidationReport(max_errors=max_errors)
    fmt, files = locate(path)
    reader = read_results_folder if fmt.name == "forb-retrieval-results" else read_predictions_file
    return report, reader(files, task, report)




# one bad line, in each format ------------------------------------------------------------------

def _canonical(**changes):
    line = {"database": "all", "query": LOGOS_Q2, "candidates": [LOGOS_D1, LOGOS_D2],
            "scores": [0.9, 0.5]}
    line.update(changes)
    return json.dumps({k: v for k, v in line.items() if v is not None})


D_NOPE = "logos/database/nope.jpg"
CANONICAL_CASES = {
    "malformed JSON": ('{"database": "all", "query": ', ["not valid JSON"]),
    "array not object": (json.dumps(["all", LOGOS_Q2]), ["must be one JSON object"]),
    "missing field": (_canonical(scores=None), ["missing field 'scores'"]),
    "unknown field": (_canonical(score_type="cosine"), ["unknown field 'score_type'"]),
    "NaN": (_canonical(scores=[float("nan"), 0.5]), ["scores[0]", "NaN and infinity"]),
    "Infinity": (_canonical(scores=[float("inf"), 0.5]), ["scores[0]", "infinity"]),
    "1e400": (_canonical().replace("0.9", "1e400"), ["scores[0]", "infinity"]),
    "bad database": (_canonical(database="ALL"), ["database", "'all' or 'oods'", "'ALL'"]),
    "int candidates": (_canonical(candidates=[0, 1]), ["candidates[0]", "valid string"]),
    "duplicate candidates": (_canonical(candidates=[LOGOS_D1] * 2),
                             [f"candidates: '{LOGOS_D1}' appears more than once"]),
    "101 candidates": (_canonical(candidates=[f"x{i}" for i in range(101)], scores=[0] * 101),
                       ["candidates", "at most 100"]),
    "count mismatch": (_canonical(scores=[0.9]), ["2 candidates but 1 scores"]),
    "increasing scores": (_canonical(scores=[0.1, 0.9]), ["non-increasing", "scores[1] = 0.9"]),
    "unknown query": (_canonical(query="logos/q.jpg"), ["unknown query 'logos/q.jpg'"]),
    "candidate not in database": (_canonical(candidates=[LOGOS_D1, D_NOPE]),
                                  [f"candidates[1] = '{D_NOPE}'", "all_database_images.txt"]),
    "candidate not in oods": (_canonical(database="oods", candidates=[LOGOS_D1], scores=[1]),
                              [f"candidates[0] = '{LOGOS_D1}'", "oods_database_images.txt"]),
}


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("bad, fragments", CANONICAL_CASES.values(), ids=CANONICAL_CASES.keys())
def test_canonical_bad_line(tmp_path, task, bad, fragments, gz):
    lines = canonical_records(task)
    database = "oods" if '"oods"' in bad else "all"  # replace that query's line in that database
    at = lines.index({**canonical_records(task)[0], "database": database, "query": LOGOS_Q2,
                      "candidates": task.databases[database][:2]})
    lines[at] = bad
    lines.insert(1, "")  # blank lines are skipped but still counted
    name = "predictions.ndjson.gz" if gz else "predictions.ndjson"
    report, arrays = check(write_lines(tmp_path / name, lines, gz=gz), task)
    assert arrays is None
    problem(report, name, at + 2, *fragments)
    assert {p.line for p in report.problems} == {at + 2}


def _result(**changes):
    line = {"query_id": 2, "candidate_db_ids": [0, 1], "global_scores": [0.9, 0.1]}
    line.update(changes)
    return json.dumps({k: v for k, v in line.items() if v is not None})


RESULTS_CASES = {
    "malformed JSON": ('{"query_id": 2, "candidate_db_ids": [0, 1', ["not valid JSON"]),
    "array not object": ("[2, [0, 1], [0.9, 0.1]]", ["must be one JSON object"]),
    "missing field": (_result(global_scores=None), ["missing field 'global_scores'"]),
    "NaN": (_result(global_scores=[float("nan"), 0.1]), ["global_scores[0]", "NaN"]),
    "-Infinity": (_result(global_scores=[0.9, float("-inf")]), ["global_scores[1]", "infinity"]),
    "1e400": (_result().replace("0.9", "1e400"), ["global_scores[0]", "infinity"]),
    "string id": (_result(candidate_db_ids=["0", 1]), ["candidate_db_ids[0]", "integer", "'0'"]),
    "float id": (_result(candidate_db_ids=[0, 1.0]), ["candidate_db_ids[1]", "valid integer"]),
    "float query_id": (_result(query_id=2.0), ["query_id", "valid integer", "2.0"]),
    "negative id": (_result(candidate_db_ids=[0, -1]),
                    ["candidate_db_ids[1]", "greater than or equal to 0", "-1"]),
    "duplicate candidates": (_result(candidate_db_ids=[1, 1]), ["candidate_db_ids: 1 appears"]),
    "101 candidates": (_result(candidate_db_ids=list(range(101)), global_scores=[0] * 101),
                       ["candidate_db_ids", "at most 100"]),
    "count mismatch": (_result(global_scores=[0.9]), ["2 candidate_db_ids but 1 global_scores"]),
    "increasing scores": (_result(global_scores=[0.1, 0.9]), ["non-increasing", "[1] = 0.9"]),
    "candidate id out of range": (_result(candidate_db_ids=[0, 24]), ["candidate_db_ids[1] = 24",
                                  "all_database_images.txt (24 images, ids 0 to 23)"]),
    "query_id 0": (_result(query_id=0), ["query_id", "greater than or equal to 1"]),
    "query_id 3": (_result(query_id=3), ["query_id 3 does not exist: logos has 2 queries"]),
}


@pytest.mark.parametrize("bad, fragments", RESULTS_CASES.values(), ids=RESULTS_CASES.keys())
def test_results_bad_line(tmp_path, task, bad, fragments):
    good = _result(query_id=1)
    write_results(tmp_path, logos_all=[good, "", bad])
    report, arrays = check(tmp_path, task)
    assert arrays is None
    problem(report, "retrieval_results/logos_all.ndjson", 3, *fragments)
    assert {p.line for p in report.problems} == {3} and len({p.file for p in report.problems}) == 1


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"], ids=["", "BOM"])
@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_valid_inputs_pass_and_native_format_ignores_extra_keys(tmp_path, task, gz, bom):
    data = bom + _canonical_bytes(task)
    path = tmp_path / ("predictions.ndjson.gz" if gz else "predictions.ndjson")
    path.write_bytes(gzip.compress(data) if gz else data)
    report, arrays = check(path, task)
    assert report.ok and arrays is not None, report.lines()
    extra = {"candidate_db_ids_before_reranking": [1, 0], "local_scores": [3, 2]}
    write_results(tmp_path / "native", logos_all=[{**json.loads(_result(query_id=q)), **extra}
                                                  for q in (1, 2)])
    report, arrays = check(tmp_path / "native", task)
    assert report.ok and arrays is not None, report.lines()


# whole-file consistency ------------------------------------------------------------------------

def test_query_or_file_given_twice(tmp_path, task):
    lines = canonical_records(task)
    first = next(i for i, r in enumerate(lines) if r["query"] == LOGOS_Q1) + 1
    lines.append(lines[first - 1])
    report, _ = check(write_lines(tmp_path / "predictions.ndjson", lines), task)
    problem(report, "predictions.ndjson", len(lines), "already has a line in the 'all'",
            f"(predictions.ndjson:{first})")
    write_results(tmp_path / "native", logos_all=[_result(query_id=1), _result(),
                                                  _result(query_id=1)])
    report, _ = check(tmp_path / "native", task)
    problem(report, "retrieval_results/logos_all.ndjson", 3,
            "(retrieval_results/logos_all.ndjson:1)")
    write_lines(tmp_path / "both" / "predictions.ndjson", canonical_records(task))
    write_lines(tmp_path / "both" / "predictions.ndjson.gz", canonical_records(task), gz=True)
    report, _ = check(tmp_path / "both", task)
    problem(report, "predictions.ndjson", None, "give either predictions.ndjson or", "not both")


def test_missing_queries_and_files_say_how_many(tmp_path, task):
    lines = [r for r in canonical_records(task)
             if not (r["database"] == "oods" and r["query"].startswith("logos/"))]
    report, _ = check(write_lines(tmp_path / "predictions.ndjson", lines[1:]), task)
    problem(report, "predictions.ndjson", None, "2 of 16 queries have no 'oods' line",
            LOGOS_Q1, LOGOS_Q2)
    problem(report, "predictions.ndjson", None, "1 of 16 queries have no 'all' line",
            "animated_cards/query/q1.jpg")
    write_results(tmp_path / "native", logos_oods=[_result()])
    os.remove(tmp_path / "native" / "retrieval_results" / "currency_all.ndjson")
    report, _ = check(tmp_path / "native", task)
    problem(report, "retrieval_results/logos_oods.ndjson", None,
            "1 of 2 logos queries have no line (query_id 1)")
    problem(report, "retrieval_results", None, "1 of 16 files are missing",
            "retrieval_results/currency_all.ndjson")


def test_results_file_given_plain_and_gzipped(tmp_path, task):
    write_results(tmp_path)
    write_lines(tmp_path / "retrieval_results" / "logos_all.ndjson.gz", [_result()], gz=True)
    report, _ = check(tmp_path, task)
    assert any("logos_all.ndjson" in p.file and "not both" in p.message
               for p in report.problems), report.lines()


# bytes, encodings and compression --------------------------------------------------------------

def _on_line(n: int, old: bytes, new: bytes):
    def change(data: bytes) -> bytes:
        lines = data.split(b"\n")
        lines[n - 1] = lines[n - 1].replace(old, new, 1)
        return b"\n".join(lines)
    return change


def _flip_middle_byte(data: bytes) -> bytes:
    data = bytearray(gzip.compress(data))
    data[len(data) // 2] ^= 0xFF
    return bytes(data)


# name, how the valid file's bytes are damaged, the line reported (... for any), message parts
BROKEN_BYTES = {
    "truncated gzip": (".gz", lambda d: gzip.compress(d)[:-5], ..., ["ends early", "truncated"]),
    "corrupt gzip": (".gz", _flip_middle_byte, ..., ["gzip data is corrupt", "recompress"]),
    ".gz name, plain content": (".gz", lambda d: d, None, ["not gzip-compressed"]),
    "double gzip": (".gz", lambda d: gzip.compress(gzip.compress(d)), None,
                    ["gzip data inside gzip", "compress the file once"]),
    "latin-1": ("", _on_line(3, b".jpg", "\u00e9.jpg".encode("latin-1")), 3,
                ["not valid UTF-8", "0xe9", "save the file as UTF-8"]),
    "utf-16": ("", lambda d: d.decode().encode("utf-16"), 1,
               ["not valid UTF-8", "byte 0xff at column 1", "save the file as UTF-8"]),
    "NUL byte": ("", _on_line(4, b'"all"', b'"a\x00ll"'), 4, ["NUL character"]),
}


@pytest.mark.parametrize("suffix, damage, line, fragments", BROKEN_BYTES.values(),
                         ids=BROKEN_BYTES.keys())
def test_broken_bytes(tmp_path, task, suffix, damage, line, fragments):
    path = tmp_path / f"predictions.ndjson{suffix}"
    path.write_bytes(damage(_canonical_bytes(task)))
    report, arrays = check(path, task)
    assert arrays is None
    found = problem(report, path.name, line, *fragments)
    assert found is report.problems[0]


# size limits -----------------------------------------------------------------------------------

def test_over_long_line_is_reported_and_later_lines_are_read(tmp_path):
    path = tmp_path / "p.ndjson"
    path.write_bytes(b'{"a": 1}\n' + b"x" * 500 + b'\n{"b": 2}\n' + b"y" * 101 + b"\n"
                     + b"z" * 100 + b'\n{"c": 3}')
    report = ValidationReport()
    lines = list(iter_lines(path, "p.ndjson", report, Limits(max_line_bytes=100)))
    assert [n for n, _ in lines] == [1, 3, 5, 6]
    assert lines[-1][1] == '{"c": 3}'
    problem(report, "p.ndjson", 2, "longer than 100 bytes", "one JSON object per line")
    problem(report, "p.ndjson", 4, "longer than 100 bytes")
    assert len(report.problems) == 2


def test_file_over_the_size_cap_is_not_read(tmp_path, task):
    path = tmp_path / "predictions.ndjson"
    path.write_bytes(b'{"a": 1}\n' * 100)
    report = ValidationReport()
    assert list(iter_lines(path, path.name, report, Limits(max_file_bytes=500))) == []
    problem(report, path.name, None, "900 bytes, over the limit of 500 bytes")
    with open(path, "wb") as handle:  # sparse: 2 GB that the default limit must refuse unread
        handle.truncate(2 * 1024**3)
    report, arrays = check(path, task)
    assert arrays is None and len(report.problems) == 1
    problem(report, path.name, None, "2.0 GB, over the limit of 100.0 MB", "compress it")


@pytest.mark.parametrize("payload", [b'{"a": 1}\n' * 200_000, b"0" * 2_000_000],
                         ids=["many lines", "one line"])
def test_gzip_bomb(tmp_path, payload):
    path = tmp_path / "p.ndjson.gz"
    path.write_bytes(gzip.compress(payload))
    assert path.stat().st_size < 20_000
    report = ValidationReport()
    limits = Limits(max_decompressed_bytes=100_000, max_line_bytes=1000)
    lines = list(iter_lines(path, "p.ndjson.gz", report, limits))
    assert sum(len(t) for _, t in lines) <= 100_000
    assert any(p.file == "p.ndjson.gz" and p.line is not None
               and "decompressed content exceeds" in p.message for p in report.problems)


# many errors at once ---------------------------------------------------------------------------

def test_many_different_errors_are_reported_together(tmp_path, task):
    lines = canonical_records(task)
    lines[0] = "{oops"
    lines[3] = json.dumps({**lines[3], "scores": [float("nan"), 0.5]})
    lines[5] = json.dumps({**lines[5], "query": "nope.jpg"})
    lines[7] = json.dumps({**lines[7], "scores": [0.1, 0.2], "x": 1})
    report, _ = check(write_lines(tmp_path / "predictions.ndjson", lines), task)
    problem(report, "predictions.ndjson", 1, "not valid JSON")
    problem(report, "predictions.ndjson", 4, "scores[0]", "NaN")
    problem(report, "predictions.ndjson", 6, "unknown query 'nope.jpg'")
    problem(report, "predictions.ndjson", 8, "unknown field 'x'")
    assert report.error_count == 4


def test_errors_in_several_result_files_are_reported_together(tmp_path, meta, capsys):
    write_results(tmp_path, logos_all=[_result(query_id=1), "[]"],
                  logos_oods=[_result(query_id=1), _result(candidate_db_ids=[0, 12])],
                  paintings_oods=[_result(query_id=9), _result(query_id=1)],
                  currency_all=[_result(query_id=1)])
    (tmp_path / "retrieval_results" / "bookcovers_oods.ndjson").write_bytes(b"\x1f\x8b")
    code, out = cli(capsys, "validate", "--benchmark", "forb", str(tmp_path), "--labels", str(meta))
    assert code == 1 and "5 error(s)" in out
    for expected in ("bookcovers_oods.ndjson: error: the file is gzip-compressed but its name "
                     "does not end in .gz",
                     "logos_all.ndjson:2: error: each line must be one JSON object",
                     "logos_oods.ndjson:2: error: candidate_db_ids[1] = 12 is not a line of "
                     "oods_database_images.txt (12 images, ids 0 to 11)",
                     "paintings_oods.ndjson:1: error: query_id 9 does not exist",
                     "currency_all.ndjson: error: 1 of 2 currency queries have no line"):
        assert f"  retrieval_results/{expected}" in out


def test_report_caps_stored_errors_and_counts_the_rest():
    report = ValidationReport(max_errors=50)
    for i in range(60):
        report.error("f.ndjson", i + 1, "bad")
    lines = report.lines()
    assert len(lines) == 51 and lines[49] == "f.ndjson:50: error: bad"
    assert lines[-1].startswith("... and 10 more errors (showing the first 50")


def test_capped_report_says_reading_stopped(tmp_path, task):
    path = write_lines(tmp_path / "predictions.ndjson", ["{bad"] * 20)
    report, _ = check(path, task, max_errors=5)
    assert len(report.problems) == 5
    assert report.lines()[-1].startswith("... stopped reading after 5 errors"), report.lines()


def test_json_error_position_does_not_contradict_the_file_line(tmp_path, task):
    lines = canonical_records(task)
    lines[6] = "{oops"
    report, _ = check(write_lines(tmp_path / "predictions.ndjson", lines), task)
    message = problem(report, "predictions.ndjson", 7, "not valid JSON").message
    assert "column 2" in message and "line 1" not in message


# entries and the command line ------------------------------------------------------------------

def make_entry(tmp_path, task, metadata=METADATA) -> Path:
    entry = tmp_path / "submissions" / "forb" / "my-entry"
    entry.mkdir(parents=True)
    text = metadata if isinstance(metadata, str) else json.dumps(metadata, indent=2)
    (entry / "metadata.json").write_text(text)
    write_lines(entry / "predictions.ndjson", canonical_records(task))
    return entry


def validate(capsys, meta, path, *extra) -> tuple[int, str]:
    return cli(capsys, "validate", str(path), "--labels", str(meta), *extra)


def test_entry_symlinks_and_extra_files_are_errors(tmp_path, task, meta, capsys):
    entry = make_entry(tmp_path, task)
    code, out = validate(capsys, meta, entry)
    assert code == 0 and ": ok" in out
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT\n")
    (entry / "link.json").symlink_to(secret)
    (entry / "notes.txt").write_text("hello")
    code, out = validate(capsys, meta, entry)
    assert code == 1
    assert "link.json: error: symbolic links are not allowed in an entry" in out
    assert "notes.txt: error: unexpected file" in out
    assert "TOP-SECRET" not in out


def test_symlinked_predictions_file_is_an_error_and_not_followed(tmp_path, task, meta, capsys):
    entry = make_entry(tmp_path, task)
    target = tmp_path / "real" / "predictions.ndjson"  # valid: following it would pass
    target.parent.mkdir()
    (entry / "predictions.ndjson").rename(target)
    (entry / "predictions.ndjson").symlink_to(target)
    code, out = validate(capsys, meta, entry)
    assert code == 1 and "predictions.ndjson: error: symbolic links are not allowed" in out
    code, out = validate(capsys, meta, entry / "predictions.ndjson", "--benchmark", "forb")
    assert code == 1 and "predictions.ndjson: error: symbolic links are not accepted" in out


def test_symlinked_metadata_is_not_called_missing(tmp_path, task, meta, capsys):
    entry = make_entry(tmp_path, task)
    (entry / "metadata.json").rename(tmp_path / "metadata.json")
    (entry / "metadata.json").symlink_to(tmp_path / "metadata.json")
    code, out = validate(capsys, meta, entry)
    assert code == 1 and "metadata.json: error: symbolic links" in out
    assert "missing" not in out


BAD_METADATA = {
    "missing fields": ({k: v for k, v in METADATA.items() if k not in ("method", "license")},
                       ["metadata.json: error: missing field 'method'",
                        "metadata.json: error: missing field 'license'"]),
    "unknown field": ({**METADATA, "gpu": "A100"}, ["metadata.json: error: unknown field 'gpu'"]),
    "bad date": ({**METADATA, "date": "2024-13-01"},
                 ["metadata.json: error: date:", "YYYY-MM-DD", "'2024-13-01'"]),
    "bad URL": ({**METADATA, "paper_url": "arxiv.org/abs/1"},
                ["metadata.json: error: paper_url:", "'arxiv.org/abs/1'"]),
    "bad board": ({**METADATA, "board": "forb-v2"},
                  ["metadata.json: error: board:", "'forb-subset'", "'forb-v2'"]),
    "empty authors": ({**METADATA, "authors": []}, ["metadata.json: error: authors:"]),
    "malformed JSON": ('{\n  "method": "M"\n  "board": "forb"\n}\n',
                       ["metadata.json: error: not valid JSON", "line 3"]),
}


@pytest.mark.parametrize("metadata, fragments", BAD_METADATA.values(), ids=BAD_METADATA.keys())
def test_bad_metadata(tmp_path, task, meta, capsys, metadata, fragments):
    code, out = validate(capsys, meta, make_entry(tmp_path, task, metadata))
    assert code == 1
    for fragment in fragments:
        assert fragment in out


def test_metadata_not_an_object(tmp_path, task, meta, capsys):
    code, out = validate(capsys, meta, make_entry(tmp_path, task, metadata=[METADATA]))
    assert code == 1 and "metadata.json: error:" in out and "JSON object" in out
    assert "each line" not in out


def test_badly_named_file_in_entry(tmp_path, task, meta, capsys):
    entry = make_entry(tmp_path, task)
    os.mkdir(os.fsencode(entry) + b"/bad\xffname")  # not UTF-8: must not crash the printing
    (entry / "my notes.txt").write_text("x")
    code, out = validate(capsys, meta, entry)
    assert code == 1
    assert "my notes.txt: error: file and folder names use letters" in out
    assert out.count("file and folder names use letters") == 2


CLI_BAD_FILES = {
    "malformed JSON": (b"{oops\n", "predictions.ndjson:1: error: not valid JSON"),
    "NaN": (b'{"database": "all", "query": "logos/query/q1.jpg", "candidates": ["a"], '
            b'"scores": [NaN]}\n', "predictions.ndjson:1: error: scores[0]: NaN"),
    "latin-1": ('{"query": "\u00e9"}\n'.encode("latin-1"), "predictions.ndjson:1: error: not "
                "valid UTF-8"),
    "binary": (bytes(range(256)) * 4, "predictions.ndjson:1: error:"),
    "empty": (b"", "predictions.ndjson: error: 16 of 16 queries have no 'all' line"),
}


@pytest.mark.parametrize("command", ["validate", "evaluate"])
@pytest.mark.parametrize("data, expected", CLI_BAD_FILES.values(), ids=CLI_BAD_FILES.keys())
def test_cli_reports_bad_files_without_traceback(tmp_path, meta, capsys, command, data, expected):
    path = tmp_path / "predictions.ndjson"
    path.write_bytes(data)
    where = [str(path)] if command == "validate" else ["--predictions", str(path)]
    code, out = cli(capsys, command, "--benchmark", "forb", *where, "--labels", str(meta))
    assert code == 1
    assert expected in out


@pytest.mark.parametrize("value", ["0", "-1"])
def test_non_positive_max_errors_is_a_usage_error(tmp_path, task, meta, capsys, value):
    path = write_lines(tmp_path / "predictions.ndjson", canonical_records(task))
    with pytest.raises(SystemExit) as exit_info:
        main(["validate", "--benchmark", "forb", str(path), "--labels", str(meta),
              "--max-errors", value])
    assert exit_info.value.code == 2
