"""Three bad inputs that ended in tracebacks or wrong records: JSON nested too deeply for
Python's parser, `leaderboard ci` without the ci extra, and an entry outside
submissions/<benchmark>/ given to `evaluate --entry`."""

from __future__ import annotations

import json
import shutil
import sys

import pytest

from evaluator.cli import main
from tests.test_hostile_input import forb  # noqa: F401  (the fixture)

DEEP = "[" * 30_000 + "]" * 30_000  # under metadata.json's 64 kB cap, too deep for json


def _no_traceback(capsys) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    return captured.out + captured.err


@pytest.mark.parametrize("where", ["metadata.json", "run.json"])
def test_json_nested_too_deeply_is_an_error_naming_the_file(forb, tmp_path, capsys, where):
    _, entry = forb
    copy = tmp_path / "submissions" / "forb" / entry.name
    shutil.copytree(entry, copy)
    shutil.rmtree(copy / "records")
    text = '{"a": ' + DEEP + "}" if where == "metadata.json" else DEEP
    (copy / where).write_text(text)
    assert main(["validate", str(copy)]) == 1
    out = _no_traceback(capsys)
    assert f"{where}: error: not valid JSON" in out
    assert main(["evaluate", "--entry", str(copy), "--labels", str(forb[0])]) == 1
    _no_traceback(capsys)
    assert not (copy / "records").exists()


def test_the_site_names_a_deeply_nested_metadata_file(forb, tmp_path, capsys):
    _, entry = forb
    copy = tmp_path / "submissions" / "forb" / entry.name
    shutil.copytree(entry, copy)
    (copy / "metadata.json").write_text('{"a": ' + DEEP + "}")
    assert main(["build", "--submissions", str(tmp_path / "submissions"),
                 "--out", str(tmp_path / "site")]) == 3
    out = _no_traceback(capsys)
    assert "metadata.json" in out and "nested too deeply" in out


def test_ci_without_the_ci_extra_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "github_action_toolkit", None)  # not installed
    for name in [m for m in sys.modules if m.startswith("evaluator.ci.")
                 and m != "evaluator.ci.cli"]:
        monkeypatch.delitem(sys.modules, name)
    assert main(["ci", "publish", "--repo", str(tmp_path)]) == 2
    out = _no_traceback(capsys)
    assert "github_action_toolkit" in out and ".[ci]" in out


def test_an_entry_outside_its_benchmark_folder_gets_no_record(forb, tmp_path, capsys):
    _, entry = forb
    stray = tmp_path / "submissions" / "not-a-benchmark" / "x"
    shutil.copytree(entry, stray)
    shutil.rmtree(stray / "records")
    assert main(["evaluate", "--entry", str(stray), "--labels", str(forb[0])]) == 2
    out = _no_traceback(capsys)
    assert "submissions/forb/<entry-id>/" in out and "--no-record" in out
    assert not (stray / "records").exists()
    # Scoring it without a record is fine (a baseline's output folder, say).
    assert main(["evaluate", "--entry", str(stray), "--labels", str(forb[0]),
                 "--no-record", "--json", str(tmp_path / "s.json")]) == 0
    assert json.loads((tmp_path / "s.json").read_text())["board"] == "forb-v1"
    assert not (stray / "records").exists()
