"""Published results from the sources in ../shared/sources/ (method repositories, the Eyecandies
leaderboard, a curated list, third parties' re-runs), and the cell test that checks them.

- Every cell of every excerpt equals the data (and every number of the data is in a cell),
  read from ../shared/sources/ as the seed tests read ../shared/seeds/.
- Spot checks typed from the excerpts by hand, so the cell test's parser is not the only
  reader of the text.
- The cell test itself, on a contributor-style data file that quotes its table: a changed
  number, a missing row or an unmapped column is each reported with its source line.
- Merging: one method in one setting is one row; disagreements between sources are flagged;
  rows rank only within their setting.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

from evaluator.published import PUBLISHED_DIR, PublishedResults, load_published
from evaluator.published.cells import check_source
from evaluator.published.source_text import SOURCES_DIR
from evaluator.site.boards import collect

EXCERPTS = sorted(p.name for p in SOURCES_DIR.glob("*.txt")) if SOURCES_DIR.is_dir() else []
# docs/index.md only gives the leaderboard's column order (checked below): no numbers of its own
COMPANIONS = {"eyecan-ai__eyecandies__docs_index.md.txt"}


def needs_sources():
    if not SOURCES_DIR.is_dir():
        pytest.skip(f"the source excerpts are not at {SOURCES_DIR}; cannot check the cells")


@pytest.fixture(scope="module")
def published() -> dict[str, PublishedResults]:
    return {d.source.key: d for d in load_published()}


@pytest.fixture(scope="module")
def views():
    return {v.board.id: v for v in collect(Path("/nonexistent-submissions"))}


def test_every_excerpt_is_transcribed(published):
    needs_sources()
    used = {d.source.excerpt for d in published.values() if d.source.excerpt}
    assert set(EXCERPTS) - COMPANIONS == used


@pytest.mark.parametrize("excerpt", sorted(set(EXCERPTS) - COMPANIONS))
def test_every_cell_of_the_source_equals_the_data(published, excerpt):
    needs_sources()
    (data,) = [d for d in published.values() if d.source.excerpt == excerpt]
    assert check_source(data) == []
    header = (SOURCES_DIR / excerpt).read_text(encoding="utf-8").split("\n\n", 1)[0]
    fields = dict(line.split(": ", 1) for line in header.splitlines() if ": " in line)
    assert (data.source.url, data.source.repository, data.source.commit, data.source.path) == (
        fields["url"], fields["repository"], fields["commit"], fields["path"])


def value(published, key, table, printed, slice_name, metric):
    (t,) = [t for t in published[key].tables if t.id == table]
    (row,) = [r for r in t.rows if r.label == printed]
    return row.values.get(slice_name, {}).get(metric)


@pytest.mark.parametrize("key, table, printed, slice_name, metric, expected", [
    # typed from the excerpts by hand
    ("btf-3d-ads", "pre-i-auroc", "BTF (Ours)", "mean", "I-AUROC", 0.878),
    ("btf-3d-ads", "raw-i-auroc", "BTF (Ours)", "mean", "I-AUROC", 0.873),
    ("btf-3d-ads", "pre-p-auroc", "RGB iNet", "carrot", "P-AUROC", 0.98),
    ("btf-3d-ads", "abstract", "BTF", "mean", "P-AUROC", 99.3),
    ("cpmf", "i-auroc", "BTF (Depth iNet)", "mean", "I-AUROC", 0.6749),
    ("cpmf", "aupro", "3D-ST128", "mean", "AUPRO@0.3", 0.8328),
    ("cpmf", "eyecandies", "CPMF", "HazelnutTruffle", "I-AUROC", 58.40),
    ("g2sf", "mvtec3d", "MVTec-3D AD", "mean", "I-AUROC", 97.1),
    ("g2sf", "eyecandies", "Eyecandies", "mean", "AUPRO@0.3", 89.8),
    ("g2sf", "mvtec3d", "MVTec-3D AD", "mean", "AUPRO@0.01", 46.8),
    ("g2sf", "retrained", "G2SF", "mean", "AUPRO@0.01", 47.1),
    ("damd", "eyecandies", "Eyecandies", "mean", "I-AUROC", 0.904),
    ("cmdr-iad", "introduction", "CMDR-IAD", "mean", "AUPRO@0.3", 97.6),
    ("musc-v2", "eyecandies", "MuSc-V2", "CandyCane", "I-AUROC", 46.56),
    ("musc-v2", "mvtec3d", "MuSc-V2", "mean", "AUPRO@0.3", 96.98),
    ("ader", "mvtec3d-300e", "InvAD, arXiv'24", "mean", "I-AUROC", 86.3),
    ("ader", "mvtec3d-100e", "DesTSeg, CVPR'23", "mean", "AUPRO@0.3", 64.0),
    ("iadbe", "mvtec3d-i-auroc", "RD", "rope", "I-AUROC", None),
    ("iadbe", "mvtec3d-i-auroc", "RD", "mean", "I-AUROC", 95.06),
    ("awesome-3d-ad", "comparison", "Shape-Guided", "mean", "AUPRO@0.3", 97.6),
    ("awesome-3d-ad", "comparison", "3D-ST", "mean", "I-AUROC", None),
    ("eyecandies-leaderboard", "leaderboard", "PADIM (resnet18)", "Lollipop", "I-AUROC", 0.621),
    ("eyecandies-leaderboard", "leaderboard", "GANomaly", "mean", "I-AUROC", 0.507),
])
def test_spot_checks(published, key, table, printed, slice_name, metric, expected):
    assert value(published, key, table, printed, slice_name, metric) == expected


def test_the_leaderboard_columns_follow_the_dataset_authors_page(published):
    """leaderboard.yml lists values without names; docs/index.md gives their order."""
    needs_sources()
    page = (SOURCES_DIR / "eyecan-ai__eyecandies__docs_index.md.txt").read_text(encoding="utf-8")
    headers = re.findall(r"<td><b>([^<]+)</b></td>", page)
    assert headers == ["Method", "Can. C.", "Cho. C.", "Cho. P.", "Confet.", "Gum. B.",
                       "Haz. T.", "Lic. S.", "Lollip.", "Marsh.", "Pep. C.", "Avg."]
    (table,) = published["eyecandies-leaderboard"].tables
    assert list(table.layout.column_map.values()) == [
        "CandyCane", "ChocolateCookie", "ChocolatePraline", "Confetto", "GummyBear",
        "HazelnutTruffle", "LicoriceSandwich", "Lollipop", "Marshmallow", "PeppermintCandy",
        "mean"]


# ---------------------------------------------------------------- the cell test itself

QUOTED = {
    "source": {"key": "example", "name": "Example's README", "title": "An example method",
               "authors": "A. Author", "venue": "arXiv 0000.00000",
               "url": "https://github.com/example/example/blob/" + "0" * 40 + "/README.md",
               "kind": "method-repository", "repository": "example/example",
               "path": "README.md", "commit": "0" * 40, "own_methods": ["CPMF"],
               "quote": [{"first_line": 10, "lines": [
                   "| Method | Bagel | **Mean** | F1 |",
                   "|---|---|---|---|",
                   "| Ours | **0.912** | 0.95 | 0.5 |",
                   "| [PatchCore](https://x) | 0.8 | - | 0.4 |"]}]},
    "tables": [{"id": "t", "label": "Table", "caption": "", "board": "mvtec3d-ad-v1",
                "lines": [10, 13], "format": "pipe-table",
                "layout": {"columns": "slice", "metric": "I-AUROC", "skip_columns": ["F1"],
                           "column_map": {"Bagel": "bagel", "Mean": "mean"}},
                "rows": [{"method": "CPMF", "printed": "Ours",
                          "values": {"bagel": {"I-AUROC": 0.912}, "mean": {"I-AUROC": 0.95}}},
                         {"method": "PatchCore", "values": {"bagel": {"I-AUROC": 0.8}}}]}]}


def quoted(edit=None) -> PublishedResults:
    document = json.loads(json.dumps(QUOTED))
    if edit:
        edit(document)
    return PublishedResults.model_validate(document)


def test_a_quoted_table_passes_when_every_cell_matches():
    assert check_source(quoted()) == []


def test_a_changed_number_names_the_source_line_and_cell():
    def edit(d):
        d["tables"][0]["rows"][0]["values"]["bagel"]["I-AUROC"] = 0.921
    (problem,) = check_source(quoted(edit))
    assert "source line 12" in problem and "'Bagel'" in problem
    assert "prints 0.912" in problem and "has 0.921" in problem


def test_a_missing_row_an_extra_value_and_an_unmapped_column_are_each_reported():
    def drop_row(d):
        d["tables"][0]["rows"].pop()
    assert any("'PatchCore' is in the source but not in the data" in p
               for p in check_source(quoted(drop_row)))

    def invent(d):
        d["tables"][0]["rows"][1]["values"]["mean"] = {"I-AUROC": 0.81}
    assert any("prints no number here, the data has 0.81" in p
               for p in check_source(quoted(invent)))

    def unmap(d):
        d["tables"][0]["layout"]["skip_columns"] = []
    assert any("'F1' holds a number" in p for p in check_source(quoted(unmap)))

    def other_lines(d):
        d["tables"][0]["lines"] = [10, 20]
    assert any("not all in the source text" in p for p in check_source(quoted(other_lines)))


def test_prose_numbers_are_read_where_the_phrase_puts_them():
    def prose(d):
        d["source"]["quote"] = [{"first_line": 3, "lines": [
            "It reaches 97.3% image-level AUROC and 99.6% pixel-level AUROC; elsewhere 92.6%."]}]
        d["tables"] = [{"id": "p", "label": "Abstract", "caption": "", "board": "mvtec3d-ad-v1",
                        "lines": [3, 3], "format": "prose", "scale": "percent",
                        "layout": {"columns": "metric", "slice": "mean", "column_map": {
                            "{}% image-level AUROC": "I-AUROC",
                            "{}% pixel-level AUROC": "P-AUROC"}},
                        "rows": [{"method": "CPMF", "values": {"mean": {
                            "I-AUROC": 97.3, "P-AUROC": 99.6}}}]}]
    assert check_source(quoted(prose)) == []

    def wrong(d):
        prose(d)
        d["tables"][0]["rows"][0]["values"]["mean"]["P-AUROC"] = 99.7
    assert any("prints 99.6" in p for p in check_source(quoted(wrong)))


def test_every_repository_source_is_pinned_to_a_commit():
    with pytest.raises(ValueError, match="repository, path and commit"):
        quoted(lambda d: d["source"].pop("commit"))
    with pytest.raises(ValueError, match="exactly one of"):
        quoted(lambda d: d["source"].update(excerpt="x.txt"))


# ---------------------------------------------------------------- merged board rows

def row(view, method, variant=None, **settings):
    found = [r for r in view.rows if r.kind == "reported" and r.method == method
             and r.variant == variant
             and all(r.settings.get(k) == v for k, v in settings.items())]
    assert len(found) == 1, (method, settings, [(r.key, r.settings) for r in found])
    return found[0]


def test_one_method_one_name_one_row(views):
    mvtec = views["mvtec3d-ad-v1"]
    btf = row(mvtec, "BTF", input="preprocessed")
    assert {s["key"] for s in btf.sources} == {"btf-3d-ads", "m3dm-2023", "awesome-3d-ad"}
    assert {"BTF (Ours)", "PatchCore + FPFH"} <= set(btf.printed)
    # the method's own authors first: BTF's preprocessed tables, not M3DM's copy or the list
    assert btf.values["mean"] == {"I-AUROC": 0.878, "P-AUROC": 0.992, "AUPRO@0.3": 0.959}
    assert btf.sources[0]["primary"] and btf.sources[0]["key"] == "btf-3d-ads"
    flagged = {(d["slice"], d["metric"]) for d in btf.disagreements}
    assert {("mean", "I-AUROC"), ("mean", "AUPRO@0.3"), ("mean", "P-AUROC")} <= flagged
    fpfh = row(mvtec, "FPFH", input="preprocessed")
    assert {"cpmf", "btf-3d-ads", "m3dm-2023"} <= {s["key"] for s in fpfh.sources}
    depth = row(mvtec, "Depth iNet", input="preprocessed")
    clash = next(d for d in depth.disagreements if (d["slice"], d["metric"]) == ("mean", "I-AUROC"))
    assert sorted(v["value"] for v in clash["values"]) == [0.6749, 0.694]
    # the raw-data tables are their own setting
    assert row(mvtec, "BTF", input="raw").values["mean"]["I-AUROC"] == 0.873
    # CPMF's 0.9515 and the curated list's 95.2 agree within the printed precision
    assert not row(mvtec, "CPMF").disagreements


def test_aupro_at_one_percent_shows_on_v2_only_with_its_two_printings(views):
    """G2SF prints AUPRO@1% 46.8 (paper) and 47.1 (retrained code): a v2 metric, flagged."""
    v1, v2 = views["mvtec3d-ad-v1"], views["mvtec3d-ad-v2"]
    assert "AUPRO@0.01" not in row(v1, "G2SF").values["mean"]
    g2sf = row(v2, "G2SF")
    assert g2sf.values["mean"]["AUPRO@0.01"] == 0.468
    assert g2sf.values["mean"]["I-AUROC"] == row(v1, "G2SF").values["mean"]["I-AUROC"]
    (clash,) = [d for d in g2sf.disagreements if d["metric"] == "AUPRO@0.01"]
    assert sorted(v["value"] for v in clash["values"]) == [0.468, 0.471]
    # published rows carry over to v2 with v1's metrics (same definitions)
    assert len([r for r in v2.rows if r.kind == "reported"]) == len(
        [r for r in v1.rows if r.kind == "reported"])


def test_rows_rank_only_within_their_setting(views):
    mvtec = views["mvtec3d-ad-v1"]
    ranked = [r for r in mvtec.rows if r.rank]
    assert len({r.method for r in ranked}) >= 15
    assert all(mvtec.in_default_view(r) for r in ranked)
    assert all(r.settings["regime"] == "per-category" and r.settings["shots"] == "full"
               and r.settings["input"] == "preprocessed" for r in ranked)
    assert row(mvtec, "InvAD", regime="unified").rank is None
    assert row(mvtec, "MuSc-V2", regime="zero-shot").rank is None
    eyecandies = views["eyecandies-v1"]
    padim = row(eyecandies, "PaDiM", split="test_private")
    assert padim.rank is None and padim.sources[0]["key"] == "eyecandies-leaderboard"
    assert {s["key"] for s in padim.sources} == {"eyecandies-leaderboard", "m3dm-2023"}
    assert row(eyecandies, "M3DM", split="test_public").rank is not None


def test_every_printed_row_is_on_its_board(published, views):
    shown = {(s["key"], s["table"], s["printed"]) for v in views.values() for r in v.rows
             for s in r.sources}
    for key, data in published.items():
        for table in data.tables:
            if table.board is None:
                continue
            for printed in table.rows:
                assert (key, table.label, printed.label) in shown, (key, table.id, printed.label)


def test_reported_rows_carry_year_source_link_and_setting(views, tmp_path):
    for view in views.values():
        for r in view.rows:
            if r.kind != "reported":
                continue
            assert r.year is not None or r.year_from, r.key
            for source in r.sources:
                assert source["link"].startswith("https://"), r.key
                if "github.com" in source["link"]:
                    assert re.search(r"/blob/[0-9a-f]{40}/.*#L\d+", source["link"]), source
    mvtec = views["mvtec3d-ad-v1"]
    assert row(mvtec, "G2SF").year == 2025
    from evaluator.site.render import _write_downloads
    _write_downloads(tmp_path, mvtec)
    lines = list(csv.DictReader(io.StringIO((tmp_path / "mvtec3d-ad-v1.csv").read_text())))
    g2sf = next(line for line in lines if line["method"] == "G2SF")
    assert g2sf["year"] == "2025" and g2sf["regime"] == "per-category"
    assert g2sf["source_kind"] == "method-repository"
    assert g2sf["source_url"].startswith("https://github.com/ctaoaa/G2SF/blob/")
    document = json.loads((tmp_path / "mvtec3d-ad-v1.json").read_text())
    entry = next(r for r in document["rows"] if r["method"] == "G2SF")
    assert entry["sources"][0]["primary"] is True and entry["input"] == "preprocessed"


def test_the_data_files_hold_no_source_text():
    """The repository holds the numbers and the URLs; excerpts stay in ../shared/sources/."""
    for path in PUBLISHED_DIR.glob("*.json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        if data["source"].get("excerpt"):
            assert "quote" not in data["source"], path.name


def test_the_check_command_a_pull_request_runs(tmp_path, capsys):
    """What CI runs on a pull request that adds a data file: ok, then a typo'd number."""
    from evaluator.cli import main

    path = tmp_path / "example.json"
    path.write_text(json.dumps(QUOTED), encoding="utf-8")
    assert main(["published", "check", str(path)]) == 0
    assert "example.json: ok (3 numbers checked)" in capsys.readouterr().out
    broken = json.loads(json.dumps(QUOTED))
    broken["tables"][0]["rows"][1]["values"]["bagel"]["I-AUROC"] = 0.08
    path.write_text(json.dumps(broken), encoding="utf-8")
    assert main(["published", "check", str(path)]) == 1
    out = capsys.readouterr().out
    assert "error: example.json: table t (Table), source line 13" in out
    assert "prints 0.8, the data has 0.08" in out
    broken["tables"][0]["rows"][1]["method"] = "No Such Method"
    path.write_text(json.dumps(broken), encoding="utf-8")
    assert main(["published", "check", str(path)]) == 1
    assert "'No Such Method' is not in methods.json" in capsys.readouterr().out
