"""The M3DM supplementary transcription (site/data/published/m3dm.json) against its seed text:
all twelve tables are there, with one row per printed data row, and every number equals the one
printed in its cell.

In this seed a table's caption comes *after* the table, so a table's block runs from its header
line (the nearest line above the caption whose last cell is "Mean") down to the caption. The OCR
merged some rows into one line ("AST [9] PatchCore + FPFH [6] Ours" with cells like
"- 0.996 0.995"); such a line stands for as many rows as its fullest cell has entries, and each
cell's numbers must be those rows' values for that column, in row order.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from evaluator.published import PUBLISHED_DIR, load_published

SEED = Path(__file__).resolve().parents[2] / "shared" / "seeds" / "003_3467b5b4664cfbb1.txt"
DATA = PUBLISHED_DIR / "m3dm.json"

LABELS = [f"Table {n}" for n in
          ["I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII"]]
EYECANDIES = {"Table X", "Table XI", "Table XII"}
NUMBER = re.compile(r"\d+\.\d+")
# group headers in the first cell; "SGB+3D" is the OCR's reading of "RGB+3D"
MODALITY = {"3D": "3D", "RGB": "RGB", "RGB+3D": "RGB+3D", "SGB+3D": "RGB+3D"}
# row labels the OCR dropped: the 10-shot row is merged into the "5-shot" line
UNLABELLED = {("Table VI", "10-shot")}


@pytest.fixture(scope="module")
def seed() -> str:
    if not SEED.exists():
        pytest.skip(f"M3DM seed text not found at {SEED}; cannot compare the transcription")
    return SEED.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def tables() -> dict[str, dict]:
    data = json.loads(DATA.read_text(encoding="utf-8"))
    return {t["label"]: t for t in data["tables"]}


def block(seed: str, label: str) -> tuple[str, str, list[str]]:
    """(caption line, header line, data lines) of a table."""
    lines = seed.splitlines()
    end = next(i for i, line in enumerate(lines) if line.startswith(f"{label}. "))
    start = max(i for i in range(end) if lines[i].split("\t")[-1] == "Mean")
    data = [line for line in lines[start + 1:end] if NUMBER.search(line)]
    return lines[end], lines[start], data


def slice_name(header_cell: str, eyecandies: bool) -> str:
    if header_cell == "Mean":
        return "mean"
    if eyecandies:  # "Licorice Sand- wich", "Marshm -allow", "Pepper- mint Candy"
        return re.sub(r"[\s-]+", "", header_cell)
    return re.sub(r"\s+", "_", header_cell.lower())  # "Cable Gland" -> cable_gland


def caption_metric(caption: str) -> str:
    first = caption.split(". ")[1]
    for key, metric in [("I-AUROC", "I-AUROC"), ("P-AUROC", "P-AUROC"), ("AUPRO", "AUPRO@0.3")]:
        if key in first:
            return metric
    raise AssertionError(caption)


def test_loader_accepts_the_file():
    assert "m3dm-2023" in [d.source.key for d in load_published()]


def test_source_and_table_list(tables):
    data = json.loads(DATA.read_text(encoding="utf-8"))
    assert data["source"]["seed_file"] == SEED.name
    assert data["source"]["key"] == "m3dm-2023"
    assert list(tables) == LABELS
    for n, (label, table) in enumerate(tables.items(), 1):
        assert table["id"] == f"T{n}" and table["scale"] == "fraction"
        board = "eyecandies-v1" if label in EYECANDIES else "mvtec3d-ad-v1"
        assert table["board"] == board, label


@pytest.mark.parametrize("label", LABELS)
def test_table_matches_seed(seed, tables, label):
    assert f"{label}. " in seed
    caption, header, lines = block(seed, label)
    table = tables[label]
    assert caption[len(label) + 2:].startswith(table["caption"])
    metric = caption_metric(caption)
    slices = [slice_name(c, label in EYECANDIES) for c in header.split("\t")[-11:]]
    grouped = header.startswith("\t")  # first column holds RGB / 3D / RGB+3D group headers
    rows = iter(table["rows"])
    count, modality = 0, None
    for line in lines:
        cells = line.split("\t")
        names, scores = cells[:-11], [c.split() for c in cells[-11:]]
        assert all(re.fullmatch(r"\d+\.\d+|-", t) for cell in scores for t in cell), line
        group = [next(rows) for _ in range(max(len(c) for c in scores))]
        count += len(group)
        for row in group:
            assert set(row["values"]) <= set(slices)
            assert all(list(v) == [metric] for v in row["values"].values()), row
        # numbers in each cell are the line's rows' values for that column, in printed order
        for name, cell in zip(slices, scores):
            printed = [float(t) for t in cell if t != "-"]
            ours = [r["values"][name][metric] for r in group if name in r["values"]]
            assert ours == printed, (label, name, line)
        if grouped:
            modality = MODALITY.get(names[0], modality) if names[0] else modality
            assert all(r["setting"].get("modality") == modality for r in group), line
        text, pos = " ".join(names[1:] if grouped else names), 0
        for row in group:
            printed = row.get("printed", row["method"])
            shots = printed.split("-")[0] if printed.endswith("-shot") else "full"
            assert row["setting"]["shots"] == shots
            if label in ("Table IV", "Table V"):  # no method column: S.G, N.G, Sampling
                assert row["setting"]["group"] == f"S.G {names[0]}, N.G {names[1]}, {names[2]}"
                continue
            if (label, printed) in UNLABELLED:
                continue
            printed_name = " ".join(filter(None, [printed, row.get("citation")]))
            found = text.find(printed_name, pos)
            assert found >= 0, (label, printed_name, line)
            pos = found + len(printed_name)
    assert count == len(table["rows"]), label
    assert next(rows, None) is None


def value(tables, label, method, slice_name, metric, setting=None):
    rows = [r for r in tables[label]["rows"] if r.get("printed", r["method"]) == method
            and all(r["setting"].get(k) == v for k, v in (setting or {}).items())]
    (row,) = rows
    return row["values"][slice_name].get(metric)


def test_spot_checks(tables):
    rgbd = {"modality": "RGB+3D"}
    # Table I: three rows merged on one OCR line; AST reports the mean only
    (ast,) = [r for r in tables["Table I"]["rows"] if r.get("printed", r["method"]) == "AST"]
    assert ast["values"] == {"mean": {"P-AUROC": 0.976}} and ast["citation"] == "[9]"
    assert value(tables, "Table I", "PatchCore + FPFH", "cable_gland", "P-AUROC") == 0.992
    assert value(tables, "Table I", "Ours", "dowel", "P-AUROC", rgbd) == 0.985
    assert value(tables, "Table I", "Ours", "foam", "P-AUROC", {"modality": "RGB"}) == 0.955
    assert value(tables, "Table II", "w/ UFF", "potato", "I-AUROC") == 0.723
    assert value(tables, "Table III", "Ours", "mean", "AUPRO@0.3") == 0.964
    four = {"group": "S.G 128, N.G 1024, 4×4 patch"}
    assert value(tables, "Table IV", "M3DM", "tire", "I-AUROC", four) == 0.765
    # Table VI: 10-shot's label and mean are lost in the OCR, 5-shot's mean is 0.796
    assert value(tables, "Table VI", "5-shot", "mean", "I-AUROC") == 0.796
    assert "mean" not in [r for r in tables["Table VI"]["rows"]
                          if r.get("printed") == "10-shot"][0]["values"]
    assert value(tables, "Table VI", "10-shot", "peach", "I-AUROC") == 0.908
    assert value(tables, "Table VII", "Full dataset", "cable_gland", "AUPRO@0.3") == 0.971
    assert value(tables, "Table IX", "Supervised ImageNet 21K", "foam", "AUPRO@0.3") == 0.62
    assert value(tables, "Table X", "RGB-D", "PeppermintCandy", "I-AUROC") == 0.75
    assert value(tables, "Table X", "Ours", "Confetto", "I-AUROC", rgbd) == 1.0
    assert value(tables, "Table XI", "Ours", "Confetto", "P-AUROC", {"modality": "3D"}) == 0.93
    assert value(tables, "Table XII", "Point Clouds + RGB", "HazelnutTruffle", "AUPRO@0.3") \
        == 0.688
    modality = {r["printed"]: r["setting"]["modality"] for r in tables["Table XII"]["rows"]}
    assert modality == {"Point Clouds": "3D", "RGB": "RGB", "Point Clouds + RGB": "RGB+3D"}
    ablation = {r["printed"]: r["setting"]["modality"] for r in tables["Table III"]["rows"]}
    assert ablation["Only PC"] == "3D" and ablation["Only RGB"] == "RGB"
    assert ablation["Ours"] == "RGB+3D"


def test_every_row_names_a_method_that_stands_alone(tables):
    """The paper's own labels ("Ours", "Full dataset", "w/ DLF", "5-shot") are kept as
    printed; the method is M3DM, and everything that is not its main setting is a variant."""
    alone = {"M3DM", "FPFH", "PatchCore", "AST", "PatchCore + FPFH", "STFPM", "PaDiM",
             "Eyecandies baseline (RGB)", "Eyecandies baseline (RGB-D)",
             "Eyecandies baseline (RGB-cD-N)"}
    for table in tables.values():
        for row in table["rows"]:
            assert row["method"] in alone, (table["label"], row)
            if row["method"] == "M3DM":
                assert "printed" in row
    main = [(t["label"], r["setting"]["modality"], r["setting"]["shots"])
            for t in tables.values() for r in t["rows"]
            if r["method"] == "M3DM" and "variant" not in r]
    assert {m for _, m, _ in main} == {"RGB+3D"}
    assert ("Table VI", "RGB+3D", "full") in main and ("Table III", "RGB+3D", "full") in main
