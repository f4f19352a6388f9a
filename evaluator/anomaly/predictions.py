"""Reading anomaly-detection predictions: one or more ndjson files (plain or .gz), a line per
test sample. Several files (e.g. one per category) keep each under the git host's 100 MB."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluator.anomaly.maps import MapError, decode_map
from evaluator.anomaly.models import AnomalyPredictionLine
from evaluator.anomaly.task import MAP_SIZE, AnomalyTask
from evaluator.registry import PredictionFile, PredictionFormat
from evaluator.validation.ids import FirstSeen
from evaluator.validation.limits import MB, Limits
from evaluator.validation.lines import iter_lines
from evaluator.validation.parsing import parse_json_line
from evaluator.validation.report import ValidationReport

FILE_NAME = re.compile(r"^predictions([-_.][A-Za-z0-9_-]+)?\.ndjson(\.gz)?$")

# A line holds one map: up to 1024 x 1024 float32 is 5.6 MB of base64.
LIMITS = Limits(max_line_bytes=6 * MB)

FORMAT = PredictionFormat(
    name="anomaly-predictions",
    description="predictions.ndjson[.gz], or several predictions-<part>.ndjson[.gz] files read "
                "as one: a line per test sample, {sample, score, map: {shape, dtype, data, "
                "compression?}}; map optional (detection only).",
    recommended=True,
)


@dataclass
class AnomalyPredictions:
    """scores: (N,) image scores in task order; maps: (N, 224, 224) float16 or float32, or
    None when the submission is detection-only."""

    scores: np.ndarray
    maps: np.ndarray | None


def locate(path: Path) -> tuple[PredictionFormat, list[PredictionFile]] | None:
    if path.is_file():
        return FORMAT, [PredictionFile(path, path.name)]
    files = sorted(p for p in path.iterdir() if p.is_file() and FILE_NAME.match(p.name)) \
        if path.is_dir() else []
    if not files:
        return None
    return FORMAT, [PredictionFile(p, p.name) for p in files]


def _room_for(maps: np.ndarray | None, n: int, payload) -> np.ndarray:
    """The array that holds every map. float16 maps already at 224 x 224 are kept as float16
    (exactly the submitted values, half the memory); anything else needs float32."""
    native = payload.dtype == "float16" and tuple(payload.shape) == (MAP_SIZE, MAP_SIZE)
    dtype = np.float16 if native else np.float32
    if maps is None:
        return np.zeros((n, MAP_SIZE, MAP_SIZE), dtype=dtype)
    if maps.dtype == np.float16 and dtype == np.float32:
        return maps.astype(np.float32)  # exact: every float16 is a float32
    return maps


def read_predictions(files: list[PredictionFile], task: AnomalyTask | None,
                     report: ValidationReport,
                     limits: Limits = LIMITS) -> AnomalyPredictions | None:
    n = task.n_samples if task else 0
    scores = np.full(n, np.nan)
    maps: np.ndarray | None = None
    seen = FirstSeen(limits.max_distinct_ids, "sample")
    with_map = without_map = 0
    first_with: tuple[str, int] | None = None
    first_without: tuple[str, int] | None = None
    sample_id = re.compile(task.layout.sample_id_pattern) if task else None
    for file in files:
        for line_no, text in iter_lines(file.path, file.name, report, limits):
            line = parse_json_line(AnomalyPredictionLine, text, file.name, line_no, report)
            if line is None:
                continue
            earlier = seen.earlier(line.sample, file.name, line_no, report)
            if earlier is not None:
                report.error(file.name, line_no, f"sample {line.sample!r} already has a line "
                             f"({earlier[0]}:{earlier[1]}); give each sample once")
                continue
            row = -1
            if task is not None:
                row = task.index.get(line.sample, -1)
                if row < 0:
                    hint = "" if sample_id.match(line.sample) else " (ids look like " \
                        f"{task.samples[0]!r})"
                    report.error(file.name, line_no, f"unknown sample {line.sample!r}: not in "
                                 f"the test set{hint}")
                    continue
            if line.map is not None:
                with_map += 1
                first_with = first_with or (file.name, line_no)
                if task is not None:
                    maps = _room_for(maps, n, line.map)
                try:
                    decode_map(tuple(line.map.shape), line.map.dtype, line.map.data,
                               line.map.compression, out=maps[row] if maps is not None else None)
                except MapError as exc:
                    report.error(file.name, line_no, str(exc))
                    continue
            else:
                without_map += 1
                first_without = first_without or (file.name, line_no)
            if task is not None:
                scores[row] = line.score
            if report.full:
                return None
    if with_map and without_map:
        # Point at the first line of the minority kind: that is most likely the mistake.
        odd = first_without if without_map <= with_map else first_with
        report.error(odd[0], odd[1], f"{with_map} lines have a map and {without_map} do not "
                     f"(first with a map: {first_with[0]}:{first_with[1]}, first without: "
                     f"{first_without[0]}:{first_without[1]}): give a map for every sample, "
                     "or for none (detection only)")
    if task is None or not report.ok:
        return None
    missing = [s for s in task.samples if s not in seen]
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        report.error(files[0].name if len(files) == 1 else ".", None,
                     f"{len(missing)} of {task.n_samples} test samples have no line: {shown}")
        return None
    return AnomalyPredictions(scores, maps)
