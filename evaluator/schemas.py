"""JSON Schemas for entry metadata and prediction lines, generated from the pydantic models
the validator itself uses."""

from __future__ import annotations

import json
from pathlib import Path

from evaluator.registry import benchmarks

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def all_schemas() -> dict[str, dict]:
    """File name -> schema, for every registered benchmark."""
    out: dict[str, dict] = {}
    for benchmark in benchmarks():
        name = benchmark.info.name
        out[f"{name}.metadata.schema.json"] = _schema(
            benchmark.entry_metadata, f"{benchmark.info.title}: entry metadata.json")
        for fmt in benchmark.info.formats:
            model = benchmark.line_models[fmt.name]
            out[f"{fmt.name}.line.schema.json"] = _schema(
                model, f"{benchmark.info.title}: one line of {fmt.name}")
    return out


def _schema(model, title: str) -> dict:
    schema = model.model_json_schema()
    return {"$schema": SCHEMA_DIALECT, **schema, "title": title}


def write_schemas(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, schema in all_schemas().items():
        path = out_dir / file_name
        path.write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written
