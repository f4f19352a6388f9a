"""The compare page: one per board version, embedding every row with its intervals and paired
intervals; in a real browser, choosing two entries shows their difference with a paired
interval (two recomputed entries) or the plain difference (a reported row), and the choice
survives in the address. The screenshot goes to build/screenshots/compare.png."""

from __future__ import annotations

import functools
import html
import http.server
import json
import re
import shutil
import threading
from pathlib import Path

import pytest

from tests.site_fixtures import CHROMIUM_ARGS, HOSTILE_NAME, build_site

pytest.importorskip("mkdocs", reason="the site needs mkdocs-material (pip install -e '.[test]')")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = Path(__file__).resolve().parents[1] / "build" / "screenshots"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return build_site(tmp_path_factory.mktemp("compare"))


def embedded(page: str) -> dict:
    found = re.search(r'<script type="application/json" class="lb-compare-data">(.*?)</script>',
                      page, re.S)
    assert found
    return json.loads(found.group(1))


def test_every_board_has_a_compare_page_with_its_rows(site):
    out, views, _ = site
    for view in views:
        page = (out / "compare" / f"{view.board.id}.html").read_text()
        assert "Compare two entries" in page
        assert f'href="../boards/{view.board.id}.html"' in page
        assert '<script src="../assets/compare.js"></script>' in page
        data = embedded(page)
        assert data["board"] == view.board.id
        assert [r["method"] for r in data["rows"]] == [r.method for r in view.rows]
        assert len({r["id"] for r in data["rows"]}) == len(view.rows)
        assert {r["kind"] for r in data["rows"]} == {r.kind for r in view.rows}
        # Submitted text only inside the JSON, where no tag can start.
        assert "<script>alert" not in page and "<img src=x" not in page
    forb = embedded((out / "compare" / "forb-v1.html").read_text())
    rows = {r["id"]: r for r in forb["rows"]}
    assert rows["forb-entry-0"]["intervals"]["overall"]["mAP@1"]
    assert rows["forb-entry-0"]["paired"] == {}  # evaluated first: nothing to pair with
    assert set(rows["forb-entry-3"]["paired"]) == {"forb-entry-0", "forb-entry-1",
                                                   "forb-entry-2"}
    assert any(r["kind"] == "reported" and r["values"] for r in forb["rows"])
    assert HOSTILE_NAME in {r["method"] for r in forb["rows"]}


def test_entry_pages_show_intervals_and_link_the_compare_page(site):
    out, _, submissions = site
    record = json.loads((submissions / "forb/forb-entry-0/records/forb-v1.json").read_text())
    page = (out / "entries/forb-v1/forb-entry-0.html").read_text()
    low, high = record["intervals"]["overall"]["mAP@1"]
    value = record["scores"]["overall"]["mAP@1"]
    assert f'{100 * value:.2f} <span class="lb-ci">[{100 * low:.2f}, {100 * high:.2f}]</span>' \
        in page
    assert ("In brackets: 95 % percentile bootstrap intervals from 1000 resamples of the "
            f"queries of each slice, seed {record['bootstrap']['seed']}") in page
    assert 'href="../../compare/forb-v1.html?a=forb-entry-0"' in html.unescape(page)


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                    "(.ci/run installs it with apt-get)")
def test_a_reader_compares_two_entries_in_a_browser(site):
    playwright_api = pytest.importorskip("playwright.sync_api")
    out, views, _ = site
    handler = functools.partial(_QuietHandler, directory=str(out))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    server = f"http://127.0.0.1:{httpd.server_address[1]}"
    forb = next(v for v in views if v.board.id == "forb-v1")
    reported = next(r for r in forb.rows if r.kind == "reported"
                    and r.values.get("overall", {}).get("mAP@1") is not None)
    reported_id = reported.key[len("forb-v1/"):]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    outside: list[str] = []
    try:
        with playwright_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request",
                    lambda r: None if r.url.startswith(server) else outside.append(r.url))

            page.goto(f"{server}/compare/forb-v1.html")
            page.wait_for_selector(".lb-compare-table tbody tr")
            page.select_option(".lb-compare-a", "forb-entry-0")   # the strong retriever
            page.select_option(".lb-compare-b", "forb-entry-1")   # the weak one
            headline = page.locator(".lb-compare-table tbody tr").first
            cells = headline.locator("td").all_inner_texts()
            assert cells[:2] == ["overall", "mAP@1"]  # by default the primary metric only,
            assert headline.locator("td").nth(1).is_hidden()  # so its column is hidden
            assert cells[4].startswith("+") and float(cells[4][1:]) > 0  # A - B, in points
            low, high = (float(v.replace("−", "-"))
                         for v in cells[5].strip("[]").split(", "))
            assert low <= float(cells[4][1:]) <= high   # the pair's interval, from B's record
            assert cells[6] in ("A ahead", "within noise")
            assert "paired 95 % intervals exclude 0" in page.inner_text(".lb-compare-summary")
            assert "a=forb-entry-0" in page.url and "b=forb-entry-1" in page.url
            # Every slice of the primary metric (one row each) by default.
            rows = [t.replace("\u200b", "") for t in page.locator(
                ".lb-compare-table tbody tr td:nth-child(1)").all_inner_texts()]
            chosen = [r for r in forb.rows if r.key in ("forb-v1/forb-entry-0",
                                                         "forb-v1/forb-entry-1")]
            assert rows == [s for s in forb.benchmark.slice_names()
                            if any(r.values[s]["mAP@1"] is not None for r in chosen)]
            page.screenshot(path=SCREENSHOTS / "compare.png")

            # Swapping flips the difference and the interval (looked up in B's record).
            page.click(".lb-compare-swap")
            swapped = page.locator(".lb-compare-table tbody tr").first.locator("td")
            assert swapped.nth(4).inner_text().startswith("−")
            assert swapped.nth(5).inner_text() == \
                f"[{_negate(cells[5].strip('[]').split(', ')[1])}, " \
                f"{_negate(cells[5].strip('[]').split(', ')[0])}]"

            # A reported row: the plain difference, no interval.
            page.select_option(".lb-compare-b", reported_id)
            page.select_option(".lb-compare-a", "forb-entry-0")
            row = page.locator(".lb-compare-table tbody tr").first.locator("td")
            assert row.nth(5).inner_text() == "–"
            assert row.nth(6).inner_text() == "plain difference"
            assert "reported in a paper" in page.inner_text(".lb-compare-summary")
            assert float(row.nth(4).inner_text().replace("−", "-").replace("+", "")) != 0
            linked = page.url

            # The address restores the choice.
            fresh = browser.new_page()
            fresh.goto(linked)
            fresh.wait_for_selector(".lb-compare-table tbody tr")
            assert fresh.input_value(".lb-compare-a") == "forb-entry-0"
            assert fresh.input_value(".lb-compare-b") == reported_id
            fresh.goto(f"{server}/compare/forb-v1.html?a=forb-entry-3&b=forb-entry-2"
                       "&metric=t-mAP@1")
            fresh.wait_for_selector(".lb-compare-table tbody tr")
            metrics = fresh.locator(".lb-compare-table tbody tr td:nth-child(2)")
            assert set(metrics.all_text_contents()) == {"t-mAP@1"}
            fresh.select_option(".lb-compare-metric", "all")
            assert metrics.first.is_visible()
            assert set(metrics.all_inner_texts()) == {"mAP@1", "mAP@5", "t-mAP@1", "t-mAP@5"}
            assert "metric=all" in fresh.url
            assert fresh.locator(".lb-compare-table tbody tr").first.locator(
                "td").nth(5).inner_text() != "–"   # from A's own record this time
            browser.close()
    finally:
        httpd.shutdown()
    assert errors == []
    assert outside == []


def _negate(text: str) -> str:
    if text[0] not in "+−":
        return text
    return ("−" if text.startswith("+") else "+") + text[1:]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass
