"""The FORB transcription (site/data/published/forb.json) against its seed text: every table is
there, with one row per printed data row, and every number equals the one printed on that row."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from evaluator.published import PUBLISHED_DIR, load_published

SEED = Path(__file__).resolve().parents[2] / "shared" / "seeds" / "000_8f4a10d1005998e7.txt"
DATA = PUBLISHED_DIR / "forb.json"

DIFFICULTIES = ["overall", "easy", "medium", "hard"]
OBJECT_TYPES = ["animated_cards", "photorealistic_cards", "bookcovers", "paintings", "currency",
                "logos", "packaged_goods", "movie_posters"]
# Tables 1/3/4 have Overall/Easy/Medium/Hard columns; Tables 2/5/6 one column per object type.
BY_OBJECT = {"Table 2", "Table 5", "Table 6"}
BOARDS = {"Table 1": "forb-v1", "Table 2": "forb-v1", "Table 3": "forb-subset-v1",
          "Table 4": "forb-subset-v1", "Table 5": "forb-subset-v1",
          "Table 6": "forb-subset-v1", "Table 7": None}

NUMBER = re.compile(r"\d+\.\d+")
DATA_ROW = re.compile(r"^[A-Za-z][^\t]* \[\d+\]\t.*\d+\.\d+")
BLOCK_END = re.compile(r"^(Table \d+:|[A-Z]\.\d+ |References$)")



@pytest.fixture(scope="module")
def seed() -> str:
    if not SEED.exists():
        pytest.skip(f"FORB seed text not found at {SEED}; cannot compare the transcription")
    return SEED.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def tables() -> dict[str, dict]:
    data = json.loads(DATA.read_text(encoding="utf-8"))
    return {t["label"]: t for t in data["tables"]}


def block(seed: str, label: str) -> list[str]:
    """Lines from the "Table N:" caption to the next caption or section heading."""
    lines = seed.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{label}:"))
    out = [lines[start]]
    for line in lines[start + 1:]:
        if BLOCK_END.match(line):
            break
        out.append(line)
    return out


def at_k(caption_line: str) -> str:
    """The k the caption says the table reports (mAP@k and t-mAP@k)."""
    ks = set(re.findall(r"mAP@(\d)", caption_line))
    assert len(ks) == 1, caption_line
    return ks.pop()


def printed_order(label: str, row: dict, k: str) -> list[float]:
    values = row["values"]
    if label in BY_OBJECT:
        return [values[s][m] for s in OBJECT_TYPES for m in (f"mAP@{k}", f"t-mAP@{k}")]
    return [values[s][m] for m in (f"mAP@{k}", f"t-mAP@{k}") for s in DIFFICULTIES]


def table7_cells(lines: list[str]) -> list[tuple[str, float]]:
    """(method cell, size in GB) pairs: the table is printed as Method / Index file size line
    pairs."""
    cells = []
    for name_line, size_line in zip(lines, lines[1:]):
        if name_line.startswith("Method\t") and size_line.startswith("Index file size\t"):
            names = [c.strip() for c in name_line.split("\t")[1:]]
            sizes = [c.strip() for c in size_line.split("\t")[1:]]
            assert len(names) == len(sizes) and all(s.endswith(" GB") for s in sizes)
            cells += [(n, float(NUMBER.fullmatch(s[:-3]).group())) for n, s in zip(names, sizes)]
    return cells


def test_loader_accepts_the_file():
    keys = [d.source.key for d in load_published()]
    assert "forb-2023" in keys


def test_source_and_table_list(tables):
    data = json.loads(DATA.read_text(encoding="utf-8"))
    assert data["source"]["seed_file"] == SEED.name
    assert list(tables) == [f"Table {n}" for n in range(1, 8)]
    for n, (label, table) in enumerate(tables.items(), 1):
        assert table["id"] == f"T{n}" and table["board"] == BOARDS[label]
        assert table["scale"] == "percent"


@pytest.mark.parametrize("label", [f"Table {n}" for n in range(1, 7)])
def test_score_table_matches_seed(seed, tables, label):
    assert f"{label}:" in seed
    lines = block(seed, label)
    table = tables[label]
    caption = lines[0].split(":", 1)[1].strip()
    assert caption.startswith(table["caption"].rstrip("."))
    k = at_k(lines[0])
    data_rows = [line for line in lines[1:] if DATA_ROW.match(line)]
    assert len(table["rows"]) == len(data_rows)
    for row, printed in zip(table["rows"], data_rows):  # rows keep the printed order
        pattern = re.compile(rf"^{re.escape(row['method'])} (\[†\] )?"
                             rf"{re.escape(row['citation'])}\t")
        matches = [line for line in data_rows if pattern.match(line)]
        assert matches == [printed], (label, row["method"])
        dagger = pattern.match(printed).group(1) is not None
        assert row.get("flags", []) == (["upper-bound"] if dagger else [])
        numbers = [float(x) for x in NUMBER.findall(printed.split("\t", 1)[1])]
        assert printed_order(label, row, k) == numbers, (label, row["method"])
        expected_slices = OBJECT_TYPES if label in BY_OBJECT else DIFFICULTIES
        assert list(row["values"]) == expected_slices
        assert all(set(v) == {f"mAP@{k}", f"t-mAP@{k}"} for v in row["values"].values())


def test_index_size_table_matches_seed(seed, tables):
    assert "Table 7:" in seed
    cells = table7_cells(block(seed, "Table 7"))
    rows = tables["Table 7"]["rows"]
    assert len(rows) == len(cells)
    for row, (name, size) in zip(rows, cells):
        assert set(row) == {"method", "citation", "index_size_gb"}
        assert name == f"{row['method']} {row['citation']}"
        assert row["index_size_gb"] == size


def value(tables, label, method, slice_name, metric):
    (row,) = [r for r in tables[label]["rows"] if r["method"] == method]
    return row["values"][slice_name][metric]


def test_spot_checks(tables):
    assert value(tables, "Table 1", "FIRe", "overall", "mAP@1") == 86.57
    assert value(tables, "Table 1", "DiHT", "hard", "t-mAP@1") == 29.01
    # printed "85.90/71.45" without spaces
    assert value(tables, "Table 2", "BoW", "bookcovers", "mAP@1") == 85.90
    assert value(tables, "Table 2", "BoW", "bookcovers", "t-mAP@1") == 71.45
    assert value(tables, "Table 3", "DINO", "hard", "t-mAP@5") == 14.97
    assert value(tables, "Table 4", "SLIP", "easy", "mAP@1") == 60.60
    assert value(tables, "Table 5", "CLIP", "logos", "mAP@5") == 86.57
    assert value(tables, "Table 6", "DiHT", "movie_posters", "t-mAP@1") == 32.36
    assert value(tables, "Table 6", "DELG (+ rerank)", "currency", "mAP@1") == 73.88
    t7 = {r["method"]: r for r in tables["Table 7"]["rows"]}
    assert t7["BoW (+ rerank)"]["index_size_gb"] == 22.141
    assert t7["BoW (+ rerank)"]["citation"] == "[4]"  # as printed; Tables 1-6 cite [1]
    assert t7["DiHT"]["index_size_gb"] == 0.160
    flagged = {r["method"] for r in tables["Table 1"]["rows"] if r.get("flags")}
    assert flagged == {"CLIP", "BLIP", "BLIP2", "DiHT"}
    flagged = {r["method"] for r in tables["Table 4"]["rows"] if r.get("flags")}
    assert flagged == {"CLIP"}
