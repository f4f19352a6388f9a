"""Bad anomaly-detection submissions (MVTec 3D-AD and Eyecandies) get clear errors that name the
file, the line and the problem (never a Python traceback), and many problems are reported at
once; broken label roots are a maintainer problem (exit 3) whose messages name files, never
their content.

Everything is built in tmp_path: two categories x 2 test samples with 32 x 32 masks (seed 5 gives
each category one good and one anomalous sample), and predictions with 32 x 32 float16 maps."""

from __future__ import annotations

import base64
import gzip
import json
import tracemalloc
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from evaluator.anomaly.benchmark import V2_METRICS
from evaluator.anomaly.datasets import EYECANDIES_LAYOUT, MVTEC3D_LAYOUT, DatasetLayout
from evaluator.anomaly.predictions import locate, read_predictions
from evaluator.anomaly.synthetic import prediction_lines, write_label_root, write_predictions
from evaluator.anomaly.task import load_task
from evaluator.validation.report import ValidationReport
from tests.report_helpers import cli, problem

BOARDS = {"mvtec3d-ad": (MVTEC3D_LAYOUT, ("bagel", "carrot")),
          "eyecandies": (EYECANDIES_LAYOUT, ("CandyCane", "GummyBear"))}
METRICS = V2_METRICS  # `--benchmark <name>` scores the current version, v2


# fixtures and helpers -------------------------------------------------------------------------

@dataclass
class Board:
    name: str
    layout: DatasetLayout
    categories: tuple[str, ...]
    labels: Path
    samples: dict  # sample id -> mask, in task order

    @property
    def task(self):
        return load_task(self.layout, self.labels)

    def lines(self, **kwargs) -> list[dict]:
        return list(prediction_lines(self.samples, map_size=32, **kwargs))


@pytest.fixture(params=list(BOARDS))
def board(request, tmp_path) -> Board:
    layout, categories = BOARDS[request.param]
    samples = write_label_root(tmp_path / "labels", layout, per_category=2, mask_size=32, seed=5,
                               categories=categories)
    labels = [int(m.any()) for m in samples.values()]
    assert labels[0:2] != [1, 1] and labels[2:4] != [1, 1] and sum(labels) == 2
    return Board(request.param, layout, categories, tmp_path / "labels", samples)


def write_lines(path: Path, lines: list, gz: bool = False) -> Path:
    """Write dicts as JSON lines and strings as they are."""
    data = "".join((ln if isinstance(ln, str) else json.dumps(ln)) + "\n" for ln in lines).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def check(path: Path, task) -> tuple[ValidationReport, object]:
    report = ValidationReport()
    _, files = locate(path)
    return report, read_predictions(files, task, report)




def enc(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def with_map(line: dict, **changes) -> dict:
    """A copy of ``line`` with its map changed; a None value removes that key."""
    new_map = {k: v for k, v in {**line["map"], **changes}.items() if v is not None}
    return {**line, "map": new_map}


def _map_array(line: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(line["map"]["data"]), "<f2").reshape(32, 32).copy()


def _nan_map(line):
    values = _map_array(line)
    values[5, 7] = np.nan
    return with_map(line, data=enc(values.tobytes()))


def _inf_map_zlib(line):
    values = _map_array(line).astype("<f4")
    values[0, 31] = -np.inf
    return with_map(line, dtype="float32", data=enc(zlib.compress(values.tobytes())),
                    compression="zlib")


def _zlib(line, transform):
    return with_map(line, data=enc(transform(base64.b64decode(line["map"]["data"]))),
                    compression="zlib")


def _score_text(line, text):
    return json.dumps({**line, "score": 0.123456}).replace("0.123456", text)


# one bad line -----------------------------------------------------------------------------------

# name: (how the valid line (32x32 float16 map) is damaged, fragments of the one message)
BAD_LINES = {
    "base64 does not decode": (lambda ln: with_map(ln, data="!" + ln["map"]["data"][1:]),
                               ["map.data is not valid base64"]),
    "data shorter than shape": (lambda ln: with_map(ln, data=ln["map"]["data"][:-4]),
                                ["map.data holds 2728 base64 characters",
                                 "32x32 float16 map needs 2732 (2048 bytes)"]),
    "data does not fit dtype": (lambda ln: with_map(ln, dtype="float32"),
                                ["map.data holds 2732 base64 characters",
                                 "32x32 float32 map needs 5464 (4096 bytes)"]),
    "zlib data too short": (lambda ln: _zlib(ln, lambda raw: zlib.compress(raw[:-2])),
                            ["decodes to 2046 bytes", "32x32 float16 map is 2048 bytes"]),
    "zlib data too long": (lambda ln: _zlib(ln, lambda raw: zlib.compress(raw * 2)),
                           ["decompresses to more than the 2048 bytes"]),
    "truncated zlib": (lambda ln: _zlib(ln, lambda raw: zlib.compress(raw)[:-10]),
                       ["ends before the end of its zlib stream", "truncated"]),
    "not zlib at all": (lambda ln: _zlib(ln, lambda raw: raw),
                        ["map.data is not a valid zlib stream"]),
    "NaN in float16 map": (_nan_map, ["the map holds NaN or infinite values"]),
    "-inf in zlib float32 map": (_inf_map_zlib, ["the map holds NaN or infinite values"]),
    "NaN score": (lambda ln: {**ln, "score": float("nan")},
                  ["score: NaN and infinity are not allowed"]),
    "Infinity score": (lambda ln: {**ln, "score": float("inf")},
                       ["score: NaN and infinity are not allowed"]),
    "1e400 score": (lambda ln: _score_text(ln, "1e400"), ["score: NaN and infinity"]),
    "string score": (lambda ln: {**ln, "score": "0.5"},
                     ["score: Input should be a valid number", "'0.5'"]),
    "missing score": (lambda ln: {k: v for k, v in ln.items() if k != "score"},
                      ["missing field 'score'"]),
    "malformed JSON": (lambda ln: json.dumps(ln)[:60], ["not valid JSON"]),
    "shape 1-D": (lambda ln: with_map(ln, shape=[224]), ["map.shape[1]"]),
    "shape 3-D": (lambda ln: with_map(ln, shape=[2, 2, 2]), ["map.shape", "at most 2 items"]),
    "shape 0": (lambda ln: with_map(ln, shape=[32, 0]),
                ["map.shape[1]", "greater than or equal to 1", "(got 0)"]),
    "shape 1025": (lambda ln: with_map(ln, shape=[1025, 32]),
                   ["map.shape[0]", "less than or equal to 1024", "(got 1025)"]),
    "negative shape": (lambda ln: with_map(ln, shape=[-32, 32]),
                       ["map.shape[0]", "greater than or equal to 1", "(got -32)"]),
    "dtype float64": (lambda ln: with_map(ln, dtype="float64"),
                      ["map.dtype", "'float16' or 'float32'", "(got 'float64')"]),
    "dtype uint8": (lambda ln: with_map(ln, dtype="uint8"), ["map.dtype", "(got 'uint8')"]),
    "unknown compression": (lambda ln: with_map(ln, compression="gzip"),
                            ["map.compression", "'zlib'", "(got 'gzip')"]),
    "extra field": (lambda ln: {**ln, "confidence": 0.5}, ["unknown field 'confidence'"]),
    "extra map field": (lambda ln: with_map(ln, scale=2), ["unknown field 'map.scale'"]),
    "unknown sample": (lambda ln: {**ln, "sample": ln["sample"][:-2] + "99"},
                       ["unknown sample", "99'", "not in the test set"]),
    "malformed sample id": (lambda ln: {**ln, "sample": "bagel_000.png"},
                            ["unknown sample 'bagel_000.png'", "ids look like"]),
}
BAD_LINE_PARAMS = [pytest.param(*case, id=name) for name, case in BAD_LINES.items()] + [
    pytest.param(lambda ln: {**ln, "map": "abc"}, ["map", "object"], id="map is a string",
                 ),
]


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("damage, fragments", BAD_LINE_PARAMS)
def test_bad_line(tmp_path, board, damage, fragments, gz):
    lines = board.lines()
    lines[2] = damage(lines[2])
    lines.insert(1, "")  # blank lines are skipped but still counted: the bad line is line 4
    name = "predictions.ndjson.gz" if gz else "predictions.ndjson"
    report, predictions = check(write_lines(tmp_path / name, lines, gz=gz), board.task)
    assert predictions is None
    problem(report, name, 4, *fragments)
    assert report.error_count == 1, report.lines()


def test_zlib_bomb_is_rejected_without_inflating_it(tmp_path, board):
    packer = zlib.compressobj(9)
    chunk = bytes(1 << 20)
    bomb = b"".join(packer.compress(chunk) for _ in range(64)) + packer.flush()  # 64 MB of zeros
    assert len(bomb) < 100_000
    lines = board.lines()
    lines[1] = with_map(lines[1], data=enc(bomb), compression="zlib")
    path = write_lines(tmp_path / "predictions.ndjson", lines)
    tracemalloc.start()
    try:
        report, predictions = check(path, board.task)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert predictions is None
    problem(report, "predictions.ndjson", 2, "decompresses to more than the 2048 bytes")
    assert peak < 8 * 1024**2, f"peak {peak} bytes: the bomb was inflated"


def test_map_at_the_largest_allowed_shape_is_accepted(tmp_path, board):
    values = np.random.default_rng(0).random((1024, 1024)).astype("<f2")
    lines = board.lines()
    lines[0] = with_map(lines[0], shape=[1024, 1024], data=enc(values.tobytes()))
    report, predictions = check(write_lines(tmp_path / "predictions.ndjson", lines), board.task)
    assert report.ok and predictions is not None, report.lines()


# whole-submission consistency ------------------------------------------------------------------

def test_duplicate_sample_points_to_the_first_line(tmp_path, board):
    lines = board.lines()
    report, _ = check(write_lines(tmp_path / "predictions.ndjson", lines + [lines[1]]),
                      board.task)
    problem(report, "predictions.ndjson", 5, f"sample {lines[1]['sample']!r} already has a line "
            "(predictions.ndjson:2)", "give each sample once")
    assert report.error_count == 1
    folder = tmp_path / "split"
    write_lines(folder / "predictions-a.ndjson", lines[:2])
    write_lines(folder / "predictions-b.ndjson.gz", lines[2:] + [lines[0]], gz=True)
    report, _ = check(folder, board.task)
    problem(report, "predictions-b.ndjson.gz", 3, "(predictions-a.ndjson:1)")
    assert report.error_count == 1


def test_missing_samples_say_how_many(tmp_path, board):
    lines = board.lines()
    report, predictions = check(write_lines(tmp_path / "predictions.ndjson", lines[:3]),
                                board.task)
    assert predictions is None
    problem(report, "predictions.ndjson", None, "1 of 4 test samples have no line",
            lines[3]["sample"])
    assert report.error_count == 1


def test_maps_for_some_lines_only_is_an_error(tmp_path, board):
    lines = board.lines()
    lines[2] = {k: v for k, v in lines[2].items() if k != "map"}
    report, predictions = check(write_lines(tmp_path / "predictions.ndjson", lines), board.task)
    assert predictions is None
    problem(report, "predictions.ndjson", 3, "3 lines have a map and 1 do not",
            "for every sample, or for none")
    assert report.error_count == 1


def test_maps_missing_in_one_of_several_files_names_that_file(tmp_path, board):
    folder = tmp_path / "split"
    write_lines(folder / "predictions-a.ndjson", board.lines()[:2])
    write_lines(folder / "predictions-b.ndjson.gz", board.lines(with_maps=False)[2:], gz=True)
    report, _ = check(folder, board.task)
    assert report.error_count == 1
    assert "predictions-b.ndjson.gz" in str(report.problems[0]), report.lines()


def test_detection_only_is_valid_and_scores_only_image_level(tmp_path, board, capsys):
    path = write_lines(tmp_path / "predictions.ndjson", board.lines(with_maps=False))
    report, predictions = check(path, board.task)
    assert report.ok and predictions.maps is None, report.lines()
    labels = ("--labels", str(board.labels))
    code, out = cli(capsys, "validate", "--benchmark", board.name, str(path), *labels)
    assert code == 0 and "1 checked, 0 with errors" in out
    out_json = tmp_path / "scores.json"
    code, out = cli(capsys, "evaluate", "--benchmark", board.name, "--predictions", str(path),
                    *labels, "--json", str(out_json))
    assert code == 0, out
    scores = json.loads(out_json.read_text())["scores"]
    assert set(scores) == {*board.categories, "mean"}
    for name, values in scores.items():
        assert isinstance(values["I-AUROC"], float), (name, values)
        assert values["P-AUROC"] is None and values["AUPRO@0.3"] is None
        assert values["AUPRO@0.3-exact"] is None


def test_predictions_split_over_several_files_are_read_as_one(tmp_path, board, capsys):
    lines = board.lines()
    folder = tmp_path / "split"
    write_predictions(folder / "predictions-a.ndjson", lines[:2])
    write_predictions(folder / "predictions-b.ndjson.gz", lines[2:])
    report, predictions = check(folder, board.task)
    assert report.ok, report.lines()
    assert np.isfinite(predictions.scores).all() and predictions.maps.shape == (4, 224, 224)
    assert predictions.scores.tolist() == [ln["score"] for ln in lines]
    code, out = cli(capsys, "evaluate", "--benchmark", board.name, "--predictions", str(folder),
                    "--labels", str(board.labels))
    assert code == 0 and "mean" in out, out


def test_map_at_another_size_is_accepted_and_resized(tmp_path, board):
    lines = [{**ln, "map": {"shape": [100, 80], "dtype": "float32",
                            "data": enc(np.full((100, 80), i + 0.5, dtype="<f4").tobytes())}}
             for i, ln in enumerate(board.lines())]
    lines[3]["map"] = with_map(lines[3], data=enc(zlib.compress(base64.b64decode(
        lines[3]["map"]["data"]))), compression="zlib")["map"]
    report, predictions = check(write_lines(tmp_path / "predictions.ndjson", lines), board.task)
    assert report.ok, report.lines()
    assert predictions.maps.shape == (4, 224, 224)
    for i in range(4):
        assert np.allclose(predictions.maps[i], i + 0.5)


# many errors at once, through the command line -------------------------------------------------

@pytest.mark.parametrize("command", ["validate", "evaluate"])
def test_many_errors_are_reported_together(tmp_path, board, capsys, command):
    lines = board.lines()
    bad = ["{oops", {**lines[1], "score": float("nan")},
           with_map(lines[2], shape=[32, 0]), with_map(lines[3], data="@" * 2732), lines[3],
           {**lines[0], "sample": lines[0]["sample"][:-2] + "99"}]
    path = write_lines(tmp_path / "predictions.ndjson", bad)
    where = [str(path)] if command == "validate" else ["--predictions", str(path)]
    code, out = cli(capsys, command, "--benchmark", board.name, *where,
                    "--labels", str(board.labels))
    assert code == 1 and "6 error(s)" in out, out
    for expected in ("1: error: not valid JSON",
                     "2: error: score: NaN and infinity are not allowed",
                     "3: error: map.shape[1]: Input should be greater than or equal to 1 (got 0)",
                     "4: error: map.data is not valid base64",
                     f"5: error: sample {lines[3]['sample']!r} already has a line "
                     "(predictions.ndjson:4)",
                     f"6: error: unknown sample {lines[0]['sample'][:-2] + '99'!r}"):
        assert f"  predictions.ndjson:{expected}" in out, out
    assert "I-AUROC" not in out  # nothing was scored


def test_validate_without_labels_warns_in_the_boards_terms(tmp_path, board, capsys,
                                                           monkeypatch):
    for var in ("LEADERBOARD_LABELS", "LEADERBOARD_LABELS_MVTEC3D_AD",
                "LEADERBOARD_LABELS_EYECANDIES"):
        monkeypatch.delenv(var, raising=False)
    path = write_lines(tmp_path / "predictions.ndjson", board.lines())
    code, out = cli(capsys, "validate", "--benchmark", board.name, str(path))
    assert code == 0 and "predictions.ndjson: warning:" in out
    assert "queries" not in out and "database images" not in out, out


# broken label roots ----------------------------------------------------------------------------

def test_unreadable_mask_names_the_file_without_its_content(tmp_path, board, capsys):
    path = write_lines(tmp_path / "predictions.ndjson", board.lines())
    mask = board.task.mask_paths[2]
    mask.write_bytes(b"SECRET-MASK-BYTES " * 20)
    code, out = cli(capsys, "evaluate", "--benchmark", board.name, "--predictions", str(path),
                    "--labels", str(board.labels))
    assert code == 3
    assert f"error: {mask}: not a readable mask image" in out
    assert "SECRET" not in out and "I-AUROC" not in out


@pytest.mark.parametrize("command", ["validate", "evaluate"])
def test_label_root_without_masks(tmp_path, board, capsys, command):
    path = write_lines(tmp_path / "predictions.ndjson", board.lines())
    empty = tmp_path / "empty"
    (empty / board.categories[0]).mkdir(parents=True)
    where = [str(path)] if command == "validate" else ["--predictions", str(path)]
    code, out = cli(capsys, command, "--benchmark", board.name, *where, "--labels", str(empty))
    assert code == 3
    assert f"error: no test masks found under {empty} (expected e.g. " in out


def test_category_with_only_good_samples_scores_null(tmp_path, board, capsys):
    first, second = board.categories
    labels = tmp_path / "all-good"
    samples = write_label_root(labels, board.layout, per_category=2, mask_size=32, seed=5,
                               categories=(first,))
    samples.update(write_label_root(labels, board.layout, per_category=2, mask_size=32,
                                    good_fraction=1.0, categories=(second,)))
    path = write_predictions(tmp_path / "predictions.ndjson",
                             prediction_lines(samples, map_size=32))
    out_json = tmp_path / "scores.json"
    code, out = cli(capsys, "evaluate", "--benchmark", board.name, "--predictions", str(path),
                    "--labels", str(labels), "--json", str(out_json))
    assert code == 0, out
    scores = json.loads(out_json.read_text())["scores"]
    assert all(isinstance(scores[first][m], float) for m in METRICS), scores[first]
    assert scores[second] == dict.fromkeys(METRICS)
    assert scores["mean"] == dict.fromkeys(METRICS)
    assert out.count(" -") >= 2 * len(METRICS)  # printed as '-', not 'nan' or 'None'
    assert "nan" not in out.lower() and "None" not in out
