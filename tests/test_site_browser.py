"""The site as a person uses it, in a real browser (Debian's chromium driven by playwright):
home, a board, sorting, filtering, an entry with its chart, tooltips; no console errors and no
request leaving the machine. Screenshots of each step go to build/screenshots/."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from pathlib import Path

import pytest

from evaluator.site.render import build
from tests.site_fixtures import make_submissions

playwright_api = pytest.importorskip("playwright.sync_api",
                                     reason="pip install -e '.[test]' installs playwright")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = Path(__file__).resolve().parents[1] / "build" / "screenshots"
# Flags that keep chromium from calling home (this machine has no network beyond registries).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic", "--disable-default-apps", "--disable-extensions"]

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
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def method_names(page) -> list[str]:
    return page.locator(".lb-table tbody tr td:nth-child(2) > a:not(.lb-badge)").all_inner_texts()


def test_a_visitor_browses_boards_sorts_filters_and_opens_an_entry(server):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    outside: list[str] = []
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: None if r.url.startswith(server) else outside.append(r.url))

        page.goto(f"{server}/index.html")
        assert "Open, verifiable" in page.locator("h1").inner_text()
        page.screenshot(path=SCREENSHOTS / "1-home.png", full_page=True)

        page.locator(".md-content a[href='boards/forb-v1.html']").first.click()
        page.wait_for_selector(".lb-table tbody tr")
        before = method_names(page)
        assert len(before) >= 4
        page.screenshot(path=SCREENSHOTS / "2-board.png", full_page=True)

        # Paper rows that a bundled baseline reproduces link to its command.
        assert page.locator(".lb-table tbody tr a.reproducible").count() == 5
        page.locator(".lb-table tbody tr", has_text="BoW (+ rerank)").locator(
            "a.reproducible").click()
        page.wait_for_selector("#reproduce-this-row")
        assert "leaderboard baseline run forb-bow-rerank --data FORB_ROOT" in page.content()
        page.screenshot(path=SCREENSHOTS / "2b-reproduce-this-row.png", full_page=True)
        page.go_back()
        page.wait_for_selector(".lb-table tbody tr")

        page.locator("th[data-key='method']").click()  # sort by name, A first
        after = method_names(page)
        assert after != before and after == sorted(after, key=str.lower) or after == sorted(after)
        page.screenshot(path=SCREENSHOTS / "3-sorted-by-method.png", full_page=True)

        page.locator(".lb-baselines").uncheck()  # hide the bundled baselines
        filtered = method_names(page)
        assert "Chance baseline" in after and "Chance baseline" not in filtered
        page.locator(".lb-recomputed").check()
        assert page.locator(".lb-table tbody tr.reported").count() == 0
        page.screenshot(path=SCREENSHOTS / "4-filtered.png", full_page=True)

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
        page.screenshot(path=SCREENSHOTS / "5-entry.png", full_page=True)

        page.goto(f"{server}/boards/mvtec3d-ad-v1.html")
        page.wait_for_selector(".lb-cell")
        page.locator(".lb-modality").select_option("RGB")
        modalities = page.locator(".lb-table tbody tr td:nth-child(3)").all_inner_texts()
        assert modalities and set(modalities) == {"RGB"}
        page.screenshot(path=SCREENSHOTS / "6-anomaly-board.png", full_page=True)
        browser.close()
    assert errors == [], errors
    assert outside == [], outside
