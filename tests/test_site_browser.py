"""The site as a person uses it, in a real browser (Debian's chromium driven by playwright):
home, boards (default ranking, variants, slices, sorting, filters, linked views), an entry with
its chart, tooltips, search, dark mode; pages that never scroll sideways with every table link
clickable; no console errors and no request leaving the machine. Screenshots of each step go to
build/screenshots/."""

from __future__ import annotations

import contextlib
import functools
import json
import http.server
import shutil
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from evaluator.site.render import build
from tests.site_fixtures import CHROMIUM_ARGS, make_submissions

playwright_api = pytest.importorskip("playwright.sync_api",
                                     reason="pip install -e '.[test]' installs playwright")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = Path(__file__).resolve().parents[1] / "build" / "screenshots"
BOARDS = ["forb-v1", "forb-subset-v1", "mvtec3d-ad-v1", "eyecandies-v1"]

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                "(.ci/run installs it with apt-get)")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    out = root / "site"
    build(out, make_submissions(root), work=root / "work")
    handler = functools.partial(_QuietHandler, directory=str(out))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@contextlib.contextmanager
def visit(browser, server, width=1280, **options):
    """A fresh page; on leaving, no console error and no request to another host."""
    context = browser.new_context(viewport={"width": width, "height": 900}, **options)
    page = context.new_page()
    errors: list[str] = []
    outside: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: None if r.url.startswith(server) else outside.append(r.url))
    try:
        yield page
    finally:
        context.close()
    assert errors == [], errors
    assert outside == [], outside


def method_names(page) -> list[str]:
    return page.locator(".lb-table tbody tr td.lb-c-method > a.lb-name").all_inner_texts()


def cell(page, row, column: str) -> str:
    """The text of ``row``'s cell in the column headed ``column``."""
    index = page.locator(".lb-table thead th").all_inner_texts().index(column)
    return row.locator("td").nth(index).inner_text().strip()


def shot(page, name: str) -> None:
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


def test_a_visitor_browses_boards_sorts_filters_and_opens_an_entry(server, browser):
    with visit(browser, server) as page:
        page.goto(f"{server}/index.html")
        assert "Open, verifiable" in page.locator("h1").inner_text()
        # The home page's leader is the default ranking's first method, never a paper's label.
        leaders = page.locator(".md-content table tbody tr td:nth-child(3)").all_inner_texts()
        assert any(text.startswith("CMDR-IAD") for text in leaders), leaders
        assert not any(text.startswith(("Ours", "Full dataset")) for text in leaders)
        shot(page, "1-home")

        page.locator(".md-content a[href='boards/forb-v1.html']").first.click()
        page.wait_for_selector(".lb-table tbody tr td.lb-c-method a.lb-name")
        before = method_names(page)
        assert len(before) >= 4
        shot(page, "2-board")

        # Paper rows that a bundled baseline reproduces link to its command.
        assert page.locator(".lb-table tbody tr a.reproducible").count() == 5
        page.locator(".lb-table tbody tr", has_text="BoW (+ rerank)").locator(
            "a.reproducible").click()
        page.wait_for_selector("#reproduce-this-row")
        assert "leaderboard baseline run forb-bow-rerank --data FORB_ROOT" in page.content()
        shot(page, "2b-reproduce-this-row")
        page.go_back()
        page.wait_for_selector(".lb-table tbody tr td.lb-c-method a.lb-name")

        page.locator("th[data-key='method']").click()  # sort by name, A first
        after = method_names(page)
        assert after != before and after == sorted(after, key=str.lower)
        # Sorting by another column keeps # as the rank by the primary metric.
        ranks = {name: cell(page, page.locator(".lb-table tbody tr", has=page.locator(
            "a.lb-name", has_text=name)).first, "#") for name in ("FIRe", "CLIP")}
        assert ranks == {"FIRe": "1", "CLIP": "2"}, ranks
        shot(page, "3-sorted-by-method")

        page.locator(".lb-baselines").uncheck()  # hide the bundled baselines
        filtered = method_names(page)
        assert "Chance baseline" in after and "Chance baseline" not in filtered
        page.locator(".lb-recomputed").check()
        assert page.locator(".lb-table tbody tr.reported").count() == 0
        shot(page, "4-filtered")

        page.locator(".lb-slice").select_option("logos")
        assert page.locator(".lb-chart svg").count() >= 2
        bar = page.locator(".lb-bar").first
        bar.hover()
        assert page.locator(".lb-tooltip").is_visible()
        assert "–" in page.locator(".lb-tooltip").inner_text()

        page.locator(".lb-table tbody tr a", has_text="Strong retriever").click()
        page.wait_for_selector(".lb-entry svg polyline")
        assert page.locator(".lb-entry svg polyline").count() >= 2
        assert "sha256" in page.content()
        shot(page, "5-entry")

        page.goto(f"{server}/boards/mvtec3d-ad-v1.html")
        page.wait_for_selector(".lb-cell")
        page.locator(".lb-modality").select_option("RGB")
        rows = page.locator(".lb-table tbody tr[data-key]")
        modalities = {rows.nth(i).get_attribute("data-modality") for i in range(rows.count())}
        assert modalities == {"RGB"}
        shot(page, "6-anomaly-board")


def test_the_default_anomaly_view_ranks_methods_not_paper_labels(server, browser):
    with visit(browser, server) as page:
        page.goto(f"{server}/boards/mvtec3d-ad-v1.html")
        page.wait_for_selector(".lb-table tbody tr td.lb-c-method a.lb-name")
        assert page.locator(".lb-shots").input_value() == "full"
        assert page.locator(".lb-modality").input_value() == ""  # all
        names = method_names(page)
        labels = {"Ours", "Full dataset", "w/ DLF", "w/o DLF", "w/ UFF", "Only PC", "Only RGB",
                  "5-shot", "50-shot", "Point-MAE"}
        assert not any(label in name for name in names for label in labels), names
        assert names.count("M3DM") == 1, names
        m3dm = page.locator(".lb-table tbody tr", has=page.locator("a.lb-name", has_text="M3DM"))
        assert cell(page, m3dm, "I-AUROC") == "0.945"
        assert cell(page, m3dm, "#").isdigit()
        first = page.locator(".lb-table tbody tr[data-key]").first
        assert cell(page, first, "#") == "1" and names[0] == "CMDR-IAD"
        # Other settings are not in the default ranking: ADer's unified models, zero-shot.
        assert "InvAD" not in names and "MuSc-V2" not in names
        # Rows without the ranking metric are listed apart, unranked.
        assert "Not ranked: no I-AUROC reported for mean" in page.locator(
            ".lb-table tr.lb-section").all_inner_texts()
        ranks = [cell(page, page.locator(".lb-table tbody tr", has=page.locator(
            "a.lb-name", has_text=name)).first, "#") for name in ("3D-ST", "CDO")]
        assert ranks == ["–", "–"]
        # The legend explains the badges on the page itself, not only on hover.
        legend = page.locator(".lb-keys").inner_text()
        assert "reported" in legend and "reproduce this row" in legend
        assert "sources differ" in legend
        shot(page, "7-default-anomaly-view")
        # Columns no shown row fills are left out: Eyecandies has paper rows only.
        page.goto(f"{server}/boards/eyecandies-v1.html")
        page.wait_for_selector(".lb-table tbody tr td.lb-c-method a.lb-name")
        headers = page.locator(".lb-table thead th").all_inner_texts()
        assert "AUPRO@0.3-exact" not in headers and "Date" not in headers
        assert page.locator(".lb-recomputed").count() == 0  # no recomputed rows to keep


def test_variants_are_listed_under_their_method_and_never_ranked(server, browser):
    with visit(browser, server) as page:
        page.goto(f"{server}/boards/mvtec3d-ad-v1.html")
        page.wait_for_selector(".lb-table tbody tr td.lb-c-method a.lb-name")
        page.locator(".lb-variants").check()
        dlf = page.locator(".lb-table tbody tr.lb-variant", has_text="w/ DLF")
        assert dlf.count() == 1
        assert "M3DM — point and RGB banks, with DLF" in dlf.inner_text()
        assert cell(page, dlf, "#") == "–"
        variants = page.locator(".lb-table tbody tr.lb-variant")
        assert variants.count() >= 10
        assert {cell(page, variants.nth(i), "#") for i in range(variants.count())} == {"–"}
        # Grouped under their method: right after M3DM's own row.
        keys = page.locator(".lb-table tbody tr").evaluate_all(
            "rows => rows.map(r => r.className)")
        first_variant = next(i for i, k in enumerate(keys) if "lb-variant" in k)
        main = page.locator(".lb-table tbody tr").nth(first_variant - 1)
        assert main.locator("a.lb-name").inner_text() == "M3DM"
        assert "variants=1" in page.url
        # The heat map shows every row shown, with a colour scale, names not clipped.
        assert page.locator(".lb-scale-bar").count() == 1
        heat_rows = page.locator(".lb-chart svg text[text-anchor='end']").count()
        assert heat_rows >= variants.count()
        shot(page, "8-variants")
        page.goto(f"{server}/boards/eyecandies-v1.html")
        label = page.locator(".lb-chart svg text", has_text="PeppermintCandy").bounding_box()
        frame = page.locator(".lb-chart svg").first.bounding_box()
        assert frame["x"] <= label["x"] and label["x"] + label["width"] <= frame["x"] + \
            frame["width"] and frame["y"] <= label["y"], (label, frame)  # not clipped


def test_choosing_the_hard_slice_reranks_forb(server, browser):
    with visit(browser, server) as page:
        page.goto(f"{server}/boards/forb-v1.html")
        page.wait_for_selector(".lb-table tbody tr td.lb-c-method a.lb-name")
        page.locator(".lb-slice").select_option("hard")
        reported = page.locator(".lb-table tbody tr.reported")
        assert reported.first.locator("a.lb-name").inner_text() == "CLIP"
        assert cell(page, reported.first, "mAP@1") == "65.64"
        rows = page.locator(".lb-table tbody tr[data-key]")
        ranks = [cell(page, rows.nth(i), "#") for i in range(rows.count())]
        values = [float(cell(page, rows.nth(i), "mAP@1").split("±")[0])  # "±": an interval
                  for i in range(rows.count())
                  if ranks[i] != "–"]
        ranks = [r for r in ranks if r != "–"]
        assert len(ranks) >= 10
        assert values == sorted(values, reverse=True)
        for i in range(1, len(ranks)):  # 1, 1, 3: ties share a rank
            expected = ranks[i - 1] if values[i] == values[i - 1] else str(i + 1)
            assert ranks[i] == expected, (ranks, values)
        names = method_names(page)
        assert names.index("CLIP") < names.index("FIRe")
        assert parse_qs(urlparse(page.url).query)["slice"] == ["hard"]
        shot(page, "9-forb-hard")


def test_rows_within_the_leaders_interval_are_marked(server, browser):
    """Among recomputed entries (all with intervals), a row whose 95 % interval of the ranking
    metric reaches the leader's is marked with a '≈'; the leader and rows clearly behind are
    not."""
    with visit(browser, server) as page:
        page.goto(f"{server}/boards/forb-v1.html?recomputed=1")
        page.wait_for_selector(".lb-table tbody tr td.lb-c-method a.lb-name")
        data = json.loads(page.locator("script.lb-data").first.text_content())
        rows = {r["key"]: r for r in data["rows"] if r["kind"] == "recomputed"}
        ranked = sorted((r for r in rows.values() if r["values"]["overall"].get("mAP@1")
                         is not None), key=lambda r: -r["values"]["overall"]["mAP@1"])
        low = ranked[0]["intervals"]["overall"]["mAP@1"][0]
        expected = {r["key"] for r in ranked[1:]
                    if r["intervals"]["overall"]["mAP@1"][1] >= low}
        marked = set(page.locator(".lb-table tbody tr:has(.lb-overlap)").evaluate_all(
            "rows => rows.map(r => r.dataset.key)"))
        assert marked == expected and ranked[0]["key"] not in marked
        assert 0 < len(expected) < len(ranked) - 1  # some overlap, some are clearly behind


def test_a_linked_view_is_restored_on_load(server, browser):
    with visit(browser, server) as page:
        page.goto(f"{server}/boards/forb-v1.html?slice=hard&sort=mAP@5&order=reversed"
                  "&baselines=0")
        page.wait_for_selector(".lb-table tbody tr td.lb-c-method a.lb-name")
        assert page.locator(".lb-slice").input_value() == "hard"
        sorted_th = page.locator(".lb-table th.lb-sorted")
        assert sorted_th.get_attribute("data-key") == "mAP@5"
        assert sorted_th.get_attribute("aria-sort") == "ascending"
        assert not page.locator(".lb-baselines").is_checked()
        assert "Chance baseline" not in method_names(page)
        assert "sorted by mAP@5" in page.locator(".lb-status").inner_text()
        page.goto(f"{server}/boards/mvtec3d-ad-v1.html?shots=50&modality=RGB%2B3D&variants=1")
        page.wait_for_selector(".lb-table tbody tr td.lb-c-method a.lb-name")
        assert page.locator(".lb-shots").input_value() == "50"
        assert page.locator(".lb-modality").input_value() == "RGB+3D"
        assert page.locator(".lb-variants").is_checked()
        shot(page, "10-linked-view")


@pytest.mark.parametrize("width", [390, 1280, 1920])
def test_boards_never_scroll_sideways_and_every_table_link_is_clickable(server, browser,
                                                                          width):
    with visit(browser, server, width=width) as page:
        for board in BOARDS:
            views = [""]
            if not board.startswith("forb"):
                views.append("?variants=1&input=raw")
            for query in views:
                page.goto(f"{server}/boards/{board}.html{query}")
                page.wait_for_selector(".lb-table tbody tr td.lb-c-method a.lb-name")
                scroll, inner = page.evaluate(
                    "[document.documentElement.scrollWidth, window.innerWidth]")
                assert scroll <= inner, (board, query, width, scroll, inner)
                covered = page.evaluate("""() => {
                  const out = [];
                  for (const a of document.querySelectorAll('.lb-table a')) {
                    a.scrollIntoView({block: 'center', inline: 'center'});
                    const r = a.getClientRects()[0];
                    const hit = document.elementFromPoint(r.left + r.width / 2,
                                                          r.top + r.height / 2);
                    if (!hit || !(hit === a || a.contains(hit)))
                      out.push(a.textContent + ' under ' + (hit ? hit.className : 'nothing'));
                  }
                  return out;
                }""")
                assert covered == [], (board, query, width, covered[:5])
            shot(page, f"11-{board}-{width}px")


def test_search_finds_a_methods_entry_page(server, browser):
    with visit(browser, server) as page:
        page.goto(f"{server}/index.html")
        page.locator(".md-search__input").click()
        page.locator(".md-search__input").type("DINOv2")
        entry = page.locator(".md-search-result__item a[href$='forb-v1/reported/forb-2023/"
                             "dinov2.html']")
        entry.first.wait_for(timeout=15000)
        shot(page, "12-search")
        entry.first.click()
        page.wait_for_selector("h1")
        assert page.locator("h1").inner_text().startswith("DINOv2")


def test_dark_mode_toggles_and_pages_carry_their_citation(server, browser):
    with visit(browser, server) as page:
        page.goto(f"{server}/boards/eyecandies-v1.html")
        page.wait_for_selector(".lb-table tbody tr td.lb-c-method a.lb-name")
        scheme = "document.body.getAttribute('data-md-color-scheme')"
        assert page.evaluate(scheme) == "default"
        page.locator("label.md-header__button[for^='__palette']:visible").first.click()
        page.wait_for_function(f"{scheme} === 'slate'")
        background = page.locator(".lb-table thead th").first.evaluate(
            "th => getComputedStyle(th).backgroundColor")
        assert background not in ("rgb(255, 255, 255)", "rgba(0, 0, 0, 0)"), background
        shot(page, "13-dark-board")
        # Permalink and BibTeX name the page's address; Material adds copy buttons.
        assert page.locator(".lb-url").inner_text() == f"{server}/boards/eyecandies-v1.html"
        bibtex = page.locator("pre.lb-cite code").first.inner_text()
        assert "@misc{cvlb-eyecandies-v1" in bibtex and f"{server}/boards/" in bibtex
        assert "evaluator version" in bibtex
        assert page.locator("pre.lb-cite button[data-md-type='copy']").count() == 2
        page.context.grant_permissions(["clipboard-read", "clipboard-write"])
        page.locator("button.lb-copy.md-button").click()
        page.wait_for_function("document.querySelector('button.lb-copy.md-button')"
                               ".textContent === 'Copied'")
        assert page.evaluate("navigator.clipboard.readText()") == \
            f"{server}/boards/eyecandies-v1.html"
        page.goto(f"{server}/entries/forb-v1/reported/forb-2023/dinov2.html")
        assert page.evaluate(scheme) == "slate"  # the choice is kept across pages
        text = page.locator("pre.lb-cite-text code").inner_text()
        assert "FORB: A Flat Object Retrieval Benchmark" in text
        assert f"{server}/entries/forb-v1/reported/forb-2023/dinov2.html" in text
        shot(page, "14-dark-entry")


@pytest.mark.parametrize("width", [390, 1280, 1920])
def test_each_anomaly_board_charts_the_state_of_the_art_over_time(server, browser, width):
    """A step line of the best I-AUROC by year among the ranked methods shown, with labelled
    record points; it follows the setting (zero-shot rows chart apart)."""
    with visit(browser, server, width=width) as page:
        for board in ("mvtec3d-ad-v1", "eyecandies-v1"):
            page.goto(f"{server}/boards/{board}.html")
            chart = page.locator(".lb-timeline")
            chart.wait_for()
            assert "State of the art over time" in chart.locator("figcaption").inner_text()
            assert chart.locator("polyline.lb-step").count() == 1
            records = chart.locator("circle.lb-record")
            assert records.count() >= 2
            labels = chart.locator("text.lb-point-label").evaluate_all(
                "nodes => nodes.map(n => n.textContent)")
            assert len(labels) == records.count() and all(labels), labels
            box = chart.locator("svg").bounding_box()
            assert box["width"] <= width and box["height"] > 100
            scroll, inner = page.evaluate(
                "[document.documentElement.scrollWidth, window.innerWidth]")
            assert scroll <= inner, (board, width)
            shot(page, f"12-{board}-timeline-{width}px")
        # MVTec 3D-AD's record at the latest year is CMDR-IAD's 0.973 (2026).
        page.goto(f"{server}/boards/mvtec3d-ad-v1.html")
        page.locator(".lb-timeline").wait_for()
        assert any(text.startswith("CMDR-IAD 0.973") for text in page.locator(
            ".lb-timeline text.lb-point-label").evaluate_all("ns => ns.map(n => n.textContent)"))
