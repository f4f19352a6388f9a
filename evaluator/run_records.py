"""Reading the run record (``run.json``) that a bundled baseline writes into its entry.

The record is data: it is parsed as JSON and never executed. The evaluator uses it for one
thing: an entry produced with random weights or on generated data is a smoke test, which
`leaderboard validate` flags and the pull-request pipeline refuses, so such predictions never
reach ``submissions/``.
"""

from __future__ import annotations

from pathlib import Path

from evaluator.entries import RUN_RECORD_FILE
from evaluator.validation.parsing import load_json

MAX_RUN_RECORD_BYTES = 1024 * 1024


class RunRecordError(ValueError):
    pass


def read_run_record(entry_dir: Path) -> dict | None:
    """The entry's run record, None if it has none; RunRecordError if it is not readable."""
    path = entry_dir / RUN_RECORD_FILE
    if not path.is_file() or path.is_symlink():
        return None
    if path.stat().st_size > MAX_RUN_RECORD_BYTES:
        raise RunRecordError(f"larger than {MAX_RUN_RECORD_BYTES // 1024} KiB")
    try:
        data = load_json(path.read_bytes().decode("utf-8"))
    except ValueError as exc:  # not UTF-8, not JSON, or nested too deeply
        raise RunRecordError(f"not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise RunRecordError("must hold one JSON object")
    return data


def smoke_test_reasons(record: dict) -> list[str]:
    """Why a run cannot stand for its method on a leaderboard (empty: it can)."""
    reasons = []
    weights = record.get("weights")
    if isinstance(weights, dict) and weights.get("kind") == "random":
        reasons.append("it ran with --weights random")
    data = record.get("data")
    if isinstance(data, dict) and data.get("synthetic"):
        reasons.append("it ran on generated data, not the benchmark's images")
    return reasons
