"""Hostile or broken inputs end with the documented exit status and a one-line error that names
the file and what is wrong, never a Python traceback (exit status: 2 usage, 3 label or metadata
problem, 4 a stored record disagrees)."""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evaluator.cli import main
from evaluator.forb import synthetic, writers
from evaluator.forb.labels import load_labels
from evaluator.forb.task import load_task
from tests.forb_data import ENTRY_METADATA, write_tiny_forb

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def forb(tmp_path_factory):
    """Tiny FORB metadata and an entry whose record was written by a real evaluation."""
    root = tmp_path_factory.mktemp("hostile")
    meta = write_tiny_forb(root / "meta", seed=2)
    task = load_task(meta)
    run = synthetic.generate(task, load_labels(meta, task), n_candidates=6, seed=1,
                             hit_rate=0.5)
    entry = root / "submissions" / "forb" / "an-entry"
    writers.write_predictions_file(run, task, entry / "predictions.ndjson")
    (entry / "metadata.json").write_text(json.dumps(ENTRY_METADATA))
    assert main(["evaluate", "--entry", str(entry), "--labels", str(meta)]) == 0
    return meta, entry


def _copy_entry(forb, tmp_path) -> tuple[Path, Path, Path]:
    meta, entry = forb
    copy = tmp_path / "submissions" / "forb" / entry.name
    shutil.copytree(entry, copy)
    return meta, copy, copy / "records" / "forb-v1.json"


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The real command in a child process, to see everything it writes to stderr."""
    return subprocess.run([sys.executable, "-m", "evaluator.cli", *args], cwd=REPO,
                          capture_output=True, text=True, env={**os.environ, **(env or {})},
                          timeout=120)


def _one_clear_line(err: str, *needles: str) -> None:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip() and "%" not in line]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], err


# 1. tampered records -----------------------------------------------------------------------

def _score_as_text(doc):
    doc["scores"]["overall"]["mAP@1"] = str(doc["scores"]["overall"]["mAP@1"])
    return doc


@pytest.mark.parametrize("tamper", [
    lambda doc: [],
    lambda doc: {**doc, "provenance": "x"},
    lambda doc: {**doc, "provenance": {"predictions": []}},
    _score_as_text,
], ids=["list", "provenance-text", "predictions-list", "score-text"])
def test_tampered_record_is_a_conflict_naming_the_record(forb, tmp_path, capsys, tamper):
    meta, entry, record = _copy_entry(forb, tmp_path)
    record.write_text(json.dumps(tamper(json.loads(record.read_text()))))
    before = record.read_bytes()
    assert main(["evaluate", "--entry", str(entry), "--labels", str(meta)]) == 4
    err = capsys.readouterr().err
    assert str(record) in err and "record" in err
    assert record.read_bytes() == before


# 2. unreadable FORB files: hidden ground truth, public query and database lists ------------

@pytest.mark.parametrize("name", ["logos_gt.ndjson", "logos_query.ndjson",
                                  "all_database_images.txt"])
@pytest.mark.parametrize("breakage", ["folder", "not-utf8"])
def test_unreadable_forb_file_is_a_data_error_naming_it(forb, tmp_path, name, breakage):
    meta = shutil.copytree(forb[0], tmp_path / "meta")
    target = meta / name
    if breakage == "folder":
        target.unlink()
        target.mkdir()
    else:
        target.write_bytes(target.read_bytes() + b"\xff\xfe\n")
    _, entry, _ = _copy_entry(forb, tmp_path)
    result = _cli("evaluate", "--entry", str(entry), "--labels", str(meta), "--no-record")
    assert result.returncode == 3, result.stderr
    _one_clear_line(result.stderr, name)


# 3. output paths ---------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["folder", "under-a-file"])
def test_json_output_that_cannot_be_written_is_a_usage_error(forb, tmp_path, capsys, where):
    meta, entry, _ = _copy_entry(forb, tmp_path)
    (tmp_path / "file.txt").write_text("x")
    out = tmp_path if where == "folder" else tmp_path / "file.txt" / "out.json"
    assert main(["evaluate", "--entry", str(entry), "--labels", str(meta), "--no-record",
                 "--json", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--json" in err and str(out) in err


def test_schemas_out_naming_a_file_is_a_usage_error(tmp_path, capsys):
    target = tmp_path / "schemas"
    target.write_text("x")
    assert main(["schemas", "--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert str(target) in err and "--out" in err
    assert target.read_text() == "x"


# 4. environment values that are not numbers ------------------------------------------------

def test_label_download_limit_that_is_not_a_number(tmp_path):
    result = _cli("evaluate", "--benchmark", "forb", "--predictions", str(tmp_path),
                  "--labels", "url:https://127.0.0.1:9/labels.tar.gz",
                  env={"LEADERBOARD_LABELS_MAX_BYTES": "lots"})
    assert result.returncode == 2, result.stderr
    _one_clear_line(result.stderr, "LEADERBOARD_LABELS_MAX_BYTES", "lots")


@pytest.mark.parametrize("var, value", [("LEADERBOARD_QUOTA", "three"),
                                        ("LEADERBOARD_QUOTA_HOURS", "soon")])
def test_quota_that_is_not_a_number(tmp_path, var, value):
    result = _cli("ci", "score", "--repo", str(tmp_path), env={var: value})
    assert result.returncode == 2, result.stderr
    _one_clear_line(result.stderr, var, value)


# 5. malformed label URLs -------------------------------------------------------------------

@pytest.mark.parametrize("url", ["url:https://[x/labels.tar.gz",
                                 "url:http://localhost:abc/labels.tar.gz"])
def test_malformed_label_url_is_a_label_source_error(tmp_path, url):
    result = _cli("evaluate", "--benchmark", "forb", "--predictions", str(tmp_path),
                  "--labels", url)
    assert result.returncode == 3, result.stderr
    _one_clear_line(result.stderr, "label URL")


# 6. broken entries on the site -------------------------------------------------------------

@pytest.mark.parametrize("breakage", ["scores", "metadata"])
def test_build_names_a_broken_entry_file(forb, tmp_path, capsys, breakage):
    _, entry, record = _copy_entry(forb, tmp_path)
    if breakage == "scores":
        doc = json.loads(record.read_text())
        record.write_text(json.dumps({**doc, "scores": "not a table"}))
        broken = record
    else:
        broken = entry / "metadata.json"
        broken.write_text("{")
    code = main(["build", "--out", str(tmp_path / "site"),
                 "--submissions", str(tmp_path / "submissions")])
    assert code == 3
    err = capsys.readouterr().err
    assert str(broken) in err
    assert not (tmp_path / "site").exists()


# 7. forged bundles and keys ----------------------------------------------------------------

def _forged_bundle(path: Path, **fields) -> Path:
    from evaluator.bundles import MAGIC

    header = {"format": 1, "benchmark": "forb", "key_id": "k-123", "chunk_size": 65536,
              "salt": base64.b64encode(b"0" * 16).decode(), "created": "2026-01-01",
              "files": 1, "bytes": 10, **fields}
    path.write_bytes(MAGIC + json.dumps(header).encode() + b"\n")
    return path


def test_bundle_salt_that_is_not_base64(tmp_path, capsys):
    from evaluator.bundles import generate_key, key_id, parse_key

    key = tmp_path / "label.key"
    key.write_text(generate_key())
    bundle = _forged_bundle(tmp_path / "forb.bundle", salt="not base64!!",
                            key_id=key_id(parse_key(key.read_text())))
    assert main(["labels", "unpack", str(bundle), "--out", str(tmp_path / "out"),
                 "--key-file", str(key)]) == 3
    err = capsys.readouterr().err
    assert str(bundle) in err and "salt" in err


def test_key_file_that_is_not_utf8(tmp_path, capsys):
    bundle = _forged_bundle(tmp_path / "forb.bundle")
    key = tmp_path / "label.key"
    key.write_bytes(b"\xff\xfe key")
    assert main(["labels", "unpack", str(bundle), "--out", str(tmp_path / "out"),
                 "--key-file", str(key)]) == 3
    err = capsys.readouterr().err
    assert str(key) in err and "Traceback" not in err


def test_key_file_from_the_environment_that_is_not_utf8(tmp_path, capsys, monkeypatch):
    bundle = _forged_bundle(tmp_path / "forb.bundle")
    key = tmp_path / "label.key"
    key.write_bytes(b"\xff\xfe key")
    monkeypatch.delenv("LEADERBOARD_LABEL_KEY", raising=False)
    monkeypatch.setenv("LEADERBOARD_LABEL_KEY_FILE", str(key))
    assert main(["labels", "unpack", str(bundle), "--out", str(tmp_path / "out")]) == 3
    assert str(key) in capsys.readouterr().err


@pytest.mark.parametrize("fields, message", [
    ({"benchmark": "forb\x1b[2J\x1b]0;pwned\x07"}, "benchmark"),
    ({"created": "\x1b[31mred"}, "created"),
    ({"files": -5}, "files"),
    ({"bytes": -1}, "bytes"),
])
def test_info_refuses_forged_header_fields(tmp_path, capsys, fields, message):
    bundle = _forged_bundle(tmp_path / "forb.bundle", **fields)
    assert main(["labels", "info", str(bundle)]) == 3
    captured = capsys.readouterr()
    assert "\x1b" not in captured.out + captured.err
    assert str(bundle) in captured.err and message in captured.err


def test_gzip_content_under_a_plain_name_is_refused(tmp_path):
    """The name is what reviewers and the size rules go by: predictions.ndjson must be plain
    text, and gzip bytes under that name are an error naming the file."""
    import gzip as gzip_module

    from evaluator.validation.lines import iter_lines
    from evaluator.validation.report import ValidationReport

    path = tmp_path / "predictions.ndjson"
    path.write_bytes(gzip_module.compress(b'{"a": 1}\n'))
    report = ValidationReport()
    assert list(iter_lines(path, "predictions.ndjson", report)) == []
    assert not report.ok
    assert "gzip-compressed but its name does not end in .gz" in "\n".join(report.lines())
    renamed = tmp_path / "predictions.ndjson.gz"
    path.rename(renamed)
    report = ValidationReport()
    assert [(n, t.strip()) for n, t in iter_lines(renamed, "predictions.ndjson.gz", report)] \
        == [(1, '{"a": 1}')]
    assert report.ok


def test_a_hostile_entry_folder_name_is_escaped_everywhere_on_the_site(tmp_path):
    """The pull-request rules refuse such names, but the site must not trust them either: the
    name never appears raw in any page, and the board's link still reaches the entry page."""
    import re
    from urllib.parse import unquote

    from evaluator.site.render import build

    name = 'x"><img src=x onerror=alert(1)>'
    shutil.copytree(REPO / "submissions" / "forb" / "random-ranking",
                    tmp_path / "submissions" / "forb" / name)
    out = tmp_path / "site"
    build(out, tmp_path / "submissions", work=tmp_path / "work")
    pages = list(out.rglob("*.html"))
    assert pages and not [p for p in pages if '"><img src=x' in p.read_text(encoding="utf-8")]
    board = (out / "boards" / "forb-v1.html").read_text(encoding="utf-8")
    (href,) = re.findall(r'href="(\.\./entries/forb-v1/x[^"]*)"', board)
    assert (out / "boards" / unquote(href)).resolve().is_file()


def test_a_symlinked_entry_folder_is_not_rendered(tmp_path):
    """`leaderboard validate` skips symbolic links; the site must not show what it skipped."""
    from evaluator.site.render import build

    real = tmp_path / "elsewhere" / "random-ranking"
    shutil.copytree(REPO / "submissions" / "forb" / "random-ranking", real)
    (tmp_path / "submissions" / "forb").mkdir(parents=True)
    (tmp_path / "submissions" / "forb" / "linked").symlink_to(real, target_is_directory=True)
    views = build(tmp_path / "site", tmp_path / "submissions", work=tmp_path / "work")
    assert not [r for v in views for r in v.rows if r.kind == "recomputed"]
    assert not (tmp_path / "site" / "entries" / "forb-v1" / "linked.html").exists()


def test_a_record_write_killed_midway_leaves_the_entry_valid(tmp_path, monkeypatch):
    """A kill between writing the temporary record and removing it (simulated: the removal
    never happens) must leave nothing inside the entry that fails validation."""
    from evaluator.records import store_record
    from evaluator.registry import get_benchmark

    entry = tmp_path / "forb" / "random-ranking"
    shutil.copytree(REPO / "submissions" / "forb" / "random-ranking", entry)
    stored = entry / "records" / "forb-v1.json"
    evaluation = json.loads(stored.read_text(encoding="utf-8"))
    stored.unlink()
    board = get_benchmark("forb").board("forb")
    monkeypatch.setattr(os, "unlink", lambda path: None)  # the process died before cleanup
    assert store_record(entry, board, evaluation) == "written"
    monkeypatch.undo()
    assert sorted(p.name for p in (entry / "records").iterdir()) == ["forb-v1.json"]
    assert main(["validate", str(entry)]) == 0


@pytest.mark.parametrize("max_errors", [0, -3])
def test_a_zero_error_budget_never_passes_a_broken_file(tmp_path, max_errors):
    """`--max-errors 0` once meant "stop before the first error", so a broken line passed
    validation (and `ci validate` staged it for scoring); reading now stops after the first
    error at the earliest."""
    from evaluator.validation.lines import iter_lines
    from evaluator.validation.parsing import parse_json_line
    from evaluator.validation.report import ValidationReport
    from evaluator.anomaly.models import AnomalyPredictionLine

    path = tmp_path / "predictions.ndjson"
    path.write_text('{"sample": "a", "score": 1.0}\nnot json\n', encoding="utf-8")
    report = ValidationReport(max_errors=max_errors)
    for line_no, text in iter_lines(path, path.name, report):
        parse_json_line(AnomalyPredictionLine, text, path.name, line_no, report)
        if report.full:
            break
    assert not report.ok and report.error_count == 1


def test_runs_of_blank_lines_are_skipped_in_bulk(tmp_path):
    """99 MiB of newlines (inside every documented limit) were read one line at a time, over a
    minute; blank runs are now skipped in bulk, line numbers still count them, and the
    decompression limit still stops a newline bomb. The subprocess timeout bounds a hang."""
    plain = tmp_path / "logos_all.ndjson"
    plain.write_bytes(b'{"a": 1}\n' + b"\n" * (99 << 20) + b'{"b": 2}\n')
    code = ("import sys; from pathlib import Path; "
            "from evaluator.validation.lines import iter_lines; "
            "from evaluator.validation.report import ValidationReport; "
            "r = ValidationReport(); p = Path(sys.argv[1]); "
            "print([n for n, _ in iter_lines(p, p.name, r)], r.ok)")
    result = subprocess.run([sys.executable, "-c", code, str(plain)], cwd=REPO,
                            capture_output=True, text=True, timeout=45)
    assert result.stdout.strip() == f"[1, {(99 << 20) + 2}] True", result.stderr


# 11. memory of validation without labels ---------------------------------------------------

_PEAK = ("import atexit, sys\n"
         "def _peak():\n"
         "    with open('/proc/self/status') as status:\n"
         "        kb = next(l.split()[1] for l in status if l.startswith('VmHWM:'))\n"
         "    sys.stderr.write(f'PEAK_KB {kb}\\n')\n"
         "atexit.register(_peak)\n"
         "from evaluator.cli import main\n"
         "sys.exit(main(sys.argv[1:]))\n")


def _validate_with_peak(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    """`leaderboard validate ARGS` in a child process; its peak resident memory in MB."""
    result = subprocess.run([sys.executable, "-c", _PEAK, "validate", *args], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    kb = int(result.stderr.rsplit("PEAK_KB ", 1)[1].split()[0])
    return result, kb / 1024


def _write_gz_lines(path: Path, lines) -> None:
    import gzip as gzip_module
    lines = iter(lines)
    with gzip_module.open(path, "wt", compresslevel=1) as sink:
        while chunk := "".join(itertools.islice(lines, 100_000)):
            sink.write(chunk)


def test_millions_of_anomaly_ids_without_labels_stay_in_bounded_memory(tmp_path):
    """2.2 M detection-only lines in 2 files kept every id (1.66 GB, exit 0); reading now
    stops at the documented number of distinct samples, naming the file and line."""
    folder = tmp_path / "predictions"
    folder.mkdir()
    for part in range(2):
        _write_gz_lines(folder / f"predictions-{part}.ndjson.gz",
                        (f'{{"sample": "s{part}/test/good/{i:07d}", "score": 0.5}}\n'
                         for i in range(1_100_000)))
    result, peak_mb = _validate_with_peak("--benchmark", "mvtec3d-ad", str(folder))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "predictions-0.ndjson.gz:100001" in result.stdout + result.stderr
    assert "more than 100,000 distinct samples" in result.stdout + result.stderr
    assert peak_mb < 400, peak_mb


def test_millions_of_forb_query_ids_without_labels_stay_in_bounded_memory(tmp_path):
    """A retrieval_results/ file with 3 M query ids kept every id; now bounded the same way."""
    folder = tmp_path / "retrieval_results"
    folder.mkdir()
    _write_gz_lines(folder / "logos_all.ndjson.gz",
                    (f'{{"query_id": {i}, "candidate_db_ids": [1], "global_scores": [0.5]}}\n'
                     for i in range(1, 3_000_001)))
    result, peak_mb = _validate_with_peak("--benchmark", "forb", str(folder))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "logos_all.ndjson.gz:100001" in result.stdout + result.stderr
    assert peak_mb < 400, peak_mb


# 12. names that would act on a terminal or a log ---------------------------------------------

@pytest.mark.parametrize("name", ["\x1b[31mpredictions.ndjson", "pred\nictions.ndjson",
                                  "pred\u202eictions.ndjson", "::error::x.ndjson\r"],
                         ids=["escape", "newline", "bidi-override", "carriage-return"])
def test_hostile_file_names_are_printed_escaped_on_one_line(forb, tmp_path, name):
    meta, entry = forb
    path = tmp_path / name
    shutil.copy(entry / "predictions.ndjson", path)
    for args in (["validate", "--benchmark", "forb", str(path)],
                 ["validate", "--benchmark", "forb", str(tmp_path / ("missing" + name))],
                 ["evaluate", "--benchmark", "forb", "--predictions", str(path),
                  "--labels", str(meta / name)]):
        result = _cli(*args)
        assert "Traceback" not in result.stderr
        output = result.stdout + result.stderr
        for char in "\x1b\u202e\r":
            assert char not in output, (args, output)
        # Every line that names the file names all of it: no line break came from the name.
        assert not any(line.startswith(("ictions", "::error::")) for line in
                       output.splitlines()), output


# 13. families of hostile predictions, each rejected with exit 1 and its file and line ---------

def _line_cases(first: dict) -> dict[str, str]:
    def line(**changes) -> str:
        return json.dumps({**first, **changes})
    scores = first["scores"]
    return {
        "deep-array": "[" * 200_000 + "]" * 200_000,
        "deep-object": '{"a":' * 100_000 + "1" + "}" * 100_000,
        "infinite-score": line(scores=[1e999] + scores[1:]).replace("Infinity", "1e999"),
        "nan-literal": line().replace(json.dumps(scores[0]), "NaN", 1),
        "huge-integer-score": line(scores=[10**400] + scores[1:]),
        "boolean-score": line(scores=[True] + scores[1:]),
        "text-score": line(scores=["0.5"] + scores[1:]),
        "lone-surrogate": line(query="\ud800x"),
        "escape-sequence": line(query="\x1b[31mred\x1b[0m\x07"),
        "nul-in-string": line(query="a\x00b"),
        "huge-string": line(query="q" * 900_000),
        "candidates-over-the-cap": line(candidates=first["candidates"] * 20_000,
                                        scores=scores * 20_000),
        "repeated-candidate": line(candidates=[first["candidates"][0]] * 2,
                                   scores=scores[:2]),
        "unknown-database": line(database="ALL"),
        "unknown-field": line(extra={"x": [1] * 100}),
        "null": "null",
        "bare-number": "12345678901234567890123456789",
        "whitespace-only-object": "   {   ",
    }


def _file_cases(body: bytes) -> dict[str, bytes]:
    return {
        "utf-16": body.decode().encode("utf-16"),
        "utf-32": body.decode().encode("utf-32"),
        "latin-1": body.replace(b"logos", "lögös".encode("latin-1"), 1),
        "nul-bytes": body[:100] + b"\x00" * 1000 + body[100:],
        "only-nul": b"\x00" * (8 << 20),
        "one-line-over-the-cap": b"x" * (8 << 20),
        "cr-line-ends": body.replace(b"\n", b"\r"),
        "empty-with-labels": b"",
        "zstd-content": b"\x28\xb5\x2f\xfd" + body,
    }


def _hostile_case(forb, tmp_path, kind: str, name: str) -> tuple[Path, int | None]:
    """Write the case; return its file and the line the error must name (None: the file)."""
    _, entry = forb
    body = (entry / "predictions.ndjson").read_bytes()
    lines = body.decode().splitlines()
    path = tmp_path / "predictions.ndjson"
    if kind == "line":
        text = _line_cases(json.loads(lines[0]))[name]
        path.write_bytes(("\n".join(lines[:2] + [text] + lines[3:]) + "\n")
                         .encode("utf-8", "surrogatepass"))
        return path, 3
    if kind == "file":
        path.write_bytes(_file_cases(body)[name])
        return path, None
    if name == "fifo":
        os.mkfifo(path)
    elif name == "dev-zero":
        path.symlink_to("/dev/zero")
    elif name == "folder":
        path.mkdir()
    return path, None


HOSTILE_CASES = ([("line", n) for n in _line_cases({"scores": [0.5], "candidates": ["a"]})]
                 + [("file", n) for n in _file_cases(b"{}\n")]
                 + [("special", n) for n in ("fifo", "dev-zero", "folder")])


@pytest.mark.parametrize("kind,name", HOSTILE_CASES, ids=[n for _, n in HOSTILE_CASES])
def test_hostile_predictions_are_rejected_naming_file_and_line(forb, tmp_path, capsys, kind,
                                                               name):
    meta, _ = forb
    path, line = _hostile_case(forb, tmp_path, kind, name)
    for args in (["validate", "--benchmark", "forb", str(path), "--labels", str(meta)],
                 ["evaluate", "--benchmark", "forb", "--predictions", str(path),
                  "--labels", str(meta), "--no-record"]):
        assert main(args) == 1, args
        out = capsys.readouterr()
        shown = out.out + out.err
        assert f"predictions.ndjson{'' if line is None else f':{line}'}" in shown, shown
        assert "\x1b" not in shown and "\x00" not in shown


# 14. concurrent evaluations of one entry ---------------------------------------------------

def test_concurrent_evaluations_of_one_entry_agree_on_one_record(forb, tmp_path):
    meta, entry, record = _copy_entry(forb, tmp_path)
    record.unlink()
    procs = [subprocess.Popen([sys.executable, "-m", "evaluator.cli", "evaluate", "--entry",
                               str(entry), "--labels", str(meta)], cwd=REPO, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(4)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    assert all(code == 0 for code, _ in results), results
    assert all("Traceback" not in err for _, err in results)
    assert sorted(p.name for p in record.parent.iterdir()) == ["forb-v1.json"]
    assert main(["validate", str(entry)]) == 0
