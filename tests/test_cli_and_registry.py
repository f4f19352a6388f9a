"""The CLI teaches, the schemas agree with the validator's models, and a benchmark plugs in
by registering one class."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import jsonschema
import pytest

from evaluator import registry
from evaluator.cli import main
from evaluator.entries import EntryMetadata
from evaluator.forb.models import ForbPredictionLine, ForbResultLine
from evaluator.labels import DirectorySource, register_source_kind, resolve_source
from evaluator.registry import Benchmark, BenchmarkInfo, Board, Metric, ScoreSheet
from evaluator.schemas import all_schemas
from tests.forb_data import ENTRY_METADATA

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("command", [[], ["validate"], ["evaluate"], ["schemas"], ["boards"]])
def test_help_teaches_with_examples(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: leaderboard" in out
    if command in ([], ["validate"], ["evaluate"]):
        assert "examples:" in out


def test_boards_lists_the_registry(capsys):
    assert main(["boards"]) == 0
    out = capsys.readouterr().out
    for text in ("forb-v1", "forb-subset-v1", "mAP@1", "t-mAP@5", "[recommended]"):
        assert text in out


def test_missing_label_source_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("LEADERBOARD_LABELS_FORB", raising=False)
    monkeypatch.delenv("LEADERBOARD_LABELS", raising=False)
    code = main(["evaluate", "--benchmark", "forb", "--predictions", str(tmp_path)])
    assert code == 2
    assert "LEADERBOARD_LABELS_FORB" in capsys.readouterr().err
    code = main(["evaluate", "--benchmark", "forb", "--predictions", str(tmp_path),
                 "--labels", str(tmp_path / "nowhere")])
    assert code == 3
    assert "does not exist" in capsys.readouterr().err


def test_label_source_resolution_order(monkeypatch, tmp_path):
    monkeypatch.setenv("LEADERBOARD_LABELS_FORB", str(tmp_path / "env"))
    assert resolve_source("forb", None).path == tmp_path / "env"
    assert resolve_source("forb", [str(tmp_path / "plain")]).path == tmp_path / "plain"
    chosen = resolve_source("forb", [f"other={tmp_path}/x", f"forb={tmp_path}/mine"])
    assert chosen.path == tmp_path / "mine"
    register_source_kind("test-kind", lambda rest: DirectorySource(tmp_path / rest))
    assert resolve_source("forb", ["test-kind:sub"]).path == tmp_path / "sub"


def test_unknown_benchmark_names_the_known_ones(capsys):
    assert main(["evaluate", "--benchmark", "nope", "--predictions", "x", "--labels", "y"]) == 2
    assert "forb-subset" in capsys.readouterr().err


@pytest.mark.parametrize("model, good, bad", [
    (ForbPredictionLine,
     {"database": "all", "query": "a/query/q.jpg", "candidates": ["a/database/1.jpg"],
      "scores": [0.5]},
     [{"database": "x", "query": "q", "candidates": [], "scores": []},
      {"database": "all", "query": "q", "candidates": ["a", "a"], "scores": [1, 1]},
      {"database": "all", "query": "q", "candidates": [], "scores": [], "extra": 1},
      {"database": "all", "query": "q", "candidates": ["a"] * 101, "scores": [0] * 101}]),
    (ForbResultLine,
     {"query_id": 1, "candidate_db_ids": [3, 1], "global_scores": [0.9, 0.1], "extra": "ok"},
     [{"query_id": 0, "candidate_db_ids": [], "global_scores": []},
      {"query_id": 1, "candidate_db_ids": [-1], "global_scores": [0.1]},
      {"query_id": 1, "candidate_db_ids": [2, 2], "global_scores": [0.2, 0.1]},
      {"query_id": "1", "candidate_db_ids": [], "global_scores": []}]),
])
def test_schemas_agree_with_the_validator(model, good, bad):
    schemas = all_schemas()
    schema = next(s for s in schemas.values() if s["title"].endswith(
        "forb-predictions" if model is ForbPredictionLine else "forb-retrieval-results"))
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(good, schema)
    model.model_validate_json(json.dumps(good))
    for line in bad:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(line, schema)
        with pytest.raises(ValueError):
            model.model_validate_json(json.dumps(line))


def test_metadata_schema_accepts_the_documented_example():
    schema = all_schemas()["forb.metadata.schema.json"]
    jsonschema.validate(ENTRY_METADATA, schema)
    committed = json.loads((REPO / "submissions/forb/random-ranking/metadata.json").read_text())
    jsonschema.validate(committed, schema)


def test_schemas_command_writes_files(tmp_path):
    assert main(["schemas", "--out", str(tmp_path)]) == 0
    names = {p.name for p in tmp_path.iterdir()}
    assert {"forb-predictions.line.schema.json", "forb-retrieval-results.line.schema.json",
            "forb.metadata.schema.json", "mvtec3d-ad.metadata.schema.json",
            "eyecandies.metadata.schema.json", "anomaly-predictions.line.schema.json"} == names


def test_a_new_benchmark_is_one_registered_class(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry.benchmarks()  # discover the real ones first

    class ToyMetadata(EntryMetadata):
        board: str = "toy"

    @registry.register
    class Toy(Benchmark):
        info = BenchmarkInfo(
            name="toy", title="Toy", description="", reference="", license="",
            boards=(Board("toy", 1, "Toy", ""), Board("toy", 2, "Toy", "")),
            metrics=(Metric("acc", "accuracy"),), primary_metric="acc", slices="overall",
            label_source="", formats=())
        entry_metadata = ToyMetadata
        line_models: ClassVar[dict] = {}

        def load_task(self, board, directory): return None
        def locate_predictions(self, path): return None
        def read_predictions(self, fmt, files, task, report): return None
        def load_labels(self, board, directory, task): return None
        def labels_digest(self, labels): return ""
        def score(self, board, task, predictions, labels): return ScoreSheet({}, {}, {})
        def slice_names(self): return ["overall"]

    benchmark, board = registry.resolve_board("toy")
    assert isinstance(benchmark, Toy) and board.id == "toy-v2"  # newest version by default
    assert registry.resolve_board("toy-v1")[1].version == 1
    assert "toy" in [b.info.name for b in registry.benchmarks()]
    assert registry.resolve_board("forb-subset")[1].id == "forb-subset-v1"
