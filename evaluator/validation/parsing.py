"""Turns a JSON line into a validated model, or into readable problems for the report."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from evaluator.validation.report import ValidationReport

M = TypeVar("M", bound=BaseModel)
_MAX_SHOWN_INPUT = 60


def load_json(text: str | bytes) -> Any:
    """json.loads for files people write: a document nested too deeply for Python's parser
    (a RecursionError, e.g. 30,000 '[' in a 64 kB metadata.json) is refused with the
    ValueError that malformed JSON gets, so every caller's error path names the file."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply to be read as JSON") from None


def parse_json_line(
    model: type[M], text: str, name: str, line_no: int | None, report: ValidationReport
) -> M | None:
    """Validate ``text`` against ``model``; on failure report each problem and return None."""
    try:
        return model.model_validate_json(text)
    except ValidationError as exc:
        for message in describe_errors(exc):
            report.error(name, line_no, message)
        return None


def describe_errors(exc: ValidationError) -> list[str]:
    """One message per pydantic error, naming the field the way a JSON user writes it."""
    messages = []
    for err in exc.errors(include_url=False):
        field = _json_path(err["loc"])
        kind = err["type"]
        if kind == "json_invalid":
            # The text is one line, so pydantic's "line 1" would contradict the file's line.
            detail = str(err["ctx"]["error"]).replace(" at line 1 column ", " at column ")
            messages.append(f"not valid JSON: {detail}")
        elif kind in ("model_type", "dict_type"):
            messages.append(f"{field}: must be a JSON object" if field
                            else "each line must be one JSON object")
        elif kind == "missing":
            messages.append(f"missing field '{field}'")
        elif kind == "extra_forbidden":
            messages.append(f"unknown field '{field}'")
        elif kind == "finite_number":
            messages.append(f"{field}: NaN and infinity are not allowed")
        elif kind == "value_error" and not field:
            messages.append(str(err["msg"]).removeprefix("Value error, "))
        else:
            msg = str(err["msg"]).removeprefix("Value error, ")
            shown = _short(err.get("input"))
            suffix = f" (got {shown})" if shown is not None else ""
            messages.append(f"{field or 'line'}: {msg}{suffix}")
    return messages


def _json_path(loc: tuple) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _short(value) -> str | None:
    if isinstance(value, (dict, list)) or value is None:
        return None
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN_INPUT else text[:_MAX_SHOWN_INPUT] + "..."
