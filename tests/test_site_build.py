"""The site as files: built from records, metadata and published tables; numbers as the papers
print them; downloads; no page over 1 MB; text from submissions escaped."""

from __future__ import annotations

import csv
import html
import json

import pytest

from evaluator.published import load_published
from tests.site_fixtures import build_site

pytest.importorskip("mkdocs", reason="the site needs mkdocs-material (pip install -e '.[test]')")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return build_site(tmp_path_factory.mktemp("site"))


def test_every_board_version_has_a_page_and_downloads(site):
    out, views, _ = site
    for view in views:
        assert (out / "boards" / f"{view.board.id}.html").is_file()
        rows = list(csv.DictReader(open(out / "downloads" / f"{view.board.id}.csv")))
        assert len(rows) == len(view.rows)
        if view.board.id == "mvtec3d-ad-v1":  # a method's variants are labelled as such
            dlf = [r for r in rows if r["variant"] == "point and RGB banks, with DLF"]
            assert [(r["method"], r["printed_as"], r["rank"]) for r in dlf] == \
                [("M3DM", "w/ DLF", "")]
        doc = json.loads((out / "downloads" / f"{view.board.id}.json").read_text())
        assert doc["board"] == view.board.id and len(doc["rows"]) == len(view.rows)
    schemas = list((out / "downloads" / "schemas").glob("*.schema.json"))
    assert len(schemas) >= 6
    for name in ("index.html", "submit.html", "downloads.html", "versions.html",
                 "protocols/forb.html", "protocols/mvtec3d-ad.html"):
        assert (out / name).is_file(), name


def test_recomputed_numbers_are_printed_as_the_papers_do(site):
    out, views, submissions = site
    record = json.loads((submissions / "forb/forb-entry-0/records/forb-v1.json").read_text())
    page = (out / "entries/forb-v1/forb-entry-0.html").read_text()
    assert f"{100 * record['scores']['overall']['mAP@1']:.2f}" in page   # percent, 2 decimals
    assert record["provenance"]["predictions"]["sha256"] in page
    ad = json.loads((submissions / "mvtec3d-ad/ad-entry-0/records/mvtec3d-ad-v1.json").read_text())
    ad_page = (out / "entries/mvtec3d-ad-v1/ad-entry-0.html").read_text()
    shown = [v for values in ad["scores"].values() for v in values.values() if v is not None]
    assert shown and all(f"{v:.3f}" in ad_page for v in shown)         # fraction, 3 decimals


def test_published_tables_appear_as_reported_rows(site):
    out, views, _ = site
    published = load_published()
    assert {"forb-2023", "m3dm-2023", "btf-3d-ads", "cpmf", "eyecandies-leaderboard"} <= {
        p.source.key for p in published}
    reported = [r for v in views for r in v.rows if r.kind == "reported"]
    assert reported
    for board_id in ("forb-v1", "forb-subset-v1", "mvtec3d-ad-v1", "eyecandies-v1"):
        assert 'class="lb-badge reported"' in (out / f"boards/{board_id}.html").read_text(), \
            board_id
    # Values a row does not report stay absent, never zero.
    for row in reported:
        for values in row.values.values():
            assert all(v is None or v >= 0 for v in values.values())


def test_rows_a_bundled_baseline_reproduces_show_its_command(site):
    from baselines.catalogue import BASELINES

    out, views, _ = site
    forb = next(v for v in views if v.board.id == "forb-v1")
    linked = {r.method: r for r in forb.rows if r.reproduce}
    forb_specs = [s for s in BASELINES.values() if s.benchmark == "forb"]
    assert set(linked) == {spec.published_label for spec in forb_specs}
    assert not any(r.reproduce for v in views for r in v.rows if r.kind == "recomputed")
    board_page = (out / "boards/forb-v1.html").read_text()
    # One badge per row (the server-rendered table) plus the board's legend of badges.
    assert board_page.count('class="lb-badge reproducible" href=') == len(forb_specs)
    for spec in forb_specs:
        page = (out / (linked[spec.published_label].page[:-3] + ".html")).read_text()
        assert "Reproduce this row" in page
        assert f"leaderboard baseline run {spec.name} --data FORB_ROOT" in page
    subset = next(v for v in views if v.board.id == "forb-subset-v1")
    commands = [r.reproduce["command"] for r in subset.rows if r.reproduce]
    assert commands and all("--board forb-subset" in c for c in commands)


def test_every_row_has_its_own_page(site):
    out, views, _ = site
    pages = [row.page for view in views for row in view.rows]
    assert len(pages) == len(set(pages))
    assert all((out / (page[:-3] + ".html")).is_file() for page in pages)


def test_no_page_is_over_one_megabyte(site):
    out, _, _ = site
    sizes = {p: p.stat().st_size for p in out.rglob("*.html")}
    assert max(sizes.values()) < 1024 * 1024, max(sizes.items(), key=lambda kv: kv[1])


def test_text_from_submissions_is_escaped(site):
    out, _, _ = site
    for page in [out / "entries/forb-v1/forb-entry-3.html", out / "boards/forb-v1.html",
                 out / "index.html"]:
        text = page.read_text()
        assert '<script>alert("x")' not in text
        assert "<img src=x" not in text and 'href="javascript:' not in text
        assert "<b>bold</b>" not in text
    entry = (out / "entries/forb-v1/forb-entry-3.html").read_text()
    title = entry.split("<title>")[1].split("</title>")[0]
    assert "<" not in title and title.startswith("Evil /titlescriptalert")


def test_anomaly_rows_a_bundled_baseline_reproduces_show_its_command(site):
    """M3DM's RGB-only row (printed "Ours", "Only RGB", "DINO ViT-B/8" or "RGB" in its tables)
    links to the DINO ViT-B/8 PatchCore baseline; the cited "RGB [2]" row does not."""
    out, views, _ = site
    rgb_only = "RGB only (DINO ViT-B/8 bank)"
    for board_id, expected in (("mvtec3d-ad-v1", {
            ("PatchCore", None): "mvtec3d-rgb-wrn50-patchcore",
            ("FPFH", None): "mvtec3d-fpfh-patchcore",
            ("BTF", None): "mvtec3d-rgb-fpfh-patchcore",  # M3DM prints it "PatchCore + FPFH"
            ("M3DM", rgb_only): "mvtec3d-dino-vitb8-patchcore"}),
            ("eyecandies-v1", {("M3DM", rgb_only): "eyecandies-dino-vitb8-patchcore"})):
        view = next(v for v in views if v.board.id == board_id)
        linked = [r for r in view.rows if r.reproduce]
        assert {(r.method, r.variant): r.reproduce["baseline"] for r in linked} == expected
        for row in linked:
            page = (out / (row.page[:-3] + ".html")).read_text()
            assert f"--labels {row.reproduce['labels']}" in page
            assert "ROOT/metadata" not in page


def test_rows_are_methods_not_the_papers_labels(site):
    """One row per method and setting: M3DM's main result, split over "Full dataset" (I-AUROC)
    and "Ours" (AUPRO, P-AUROC) in the paper, is one ranked row; ablations are variants."""
    _, views, _ = site
    mvtec = next(v for v in views if v.board.id == "mvtec3d-ad-v1")
    main = [r for r in mvtec.rows if mvtec.in_default_view(r)]
    assert not {"Ours", "Full dataset", "w/ DLF", "Only PC"} & {r.method for r in mvtec.rows}
    (m3dm,) = [r for r in main if r.method == "M3DM"]
    assert m3dm.rank is not None and m3dm.values["mean"] == {
        "I-AUROC": 0.945, "AUPRO@0.3": 0.964, "P-AUROC": 0.992}
    assert {"Ours", "Full dataset"} <= set(m3dm.printed)
    variants = [r for r in mvtec.rows if r.variant]
    assert all(r.rank is None for r in variants) and len(variants) >= 10
    eyecandies = next(v for v in views if v.board.id == "eyecandies-v1")
    assert sum(r.method == "M3DM" for r in eyecandies.rows if r.rank) == 1


def test_rows_a_paper_quotes_from_a_reference_say_so_when_cited(site):
    out, views, _ = site
    mvtec = next(v for v in views if v.board.id == "mvtec3d-ad-v1")
    (ast,) = [r for r in mvtec.rows if r.method == "AST"]
    page = html.unescape((out / (ast.page[:-3] + ".html")).read_text())
    assert "quotes these numbers from its reference [9]" in page
    (m3dm,) = [r for r in mvtec.rows if r.method == "M3DM" and r.rank]
    page = html.unescape((out / (m3dm.page[:-3] + ".html")).read_text())
    assert "The numbers on this page are the paper's own" in page
    assert "Yue Wang and Jinlong Peng" in page  # the BibTeX names the paper's authors
