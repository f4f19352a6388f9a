"""The board's version switch in a real browser: going from v2 to v1 of an anomaly board and
back keeps the slice, sort and filters where the other version has them."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from tests.test_site_browser import (  # noqa: F401  (fixtures)
    CHROMIUM,
    browser,
    pytestmark,
    server,
    visit,
)


def test_the_version_switch_keeps_the_view(server, browser):
    with visit(browser, server) as page:
        page.goto(f"{server}/boards/mvtec3d-ad-v2.html")
        page.wait_for_selector(".lb-table tbody tr td.lb-c-method a.lb-name")
        page.locator(".lb-slice").select_option("bagel")
        page.locator(".lb-shots").select_option("50")
        page.locator(".lb-table th[data-key='AUPRO@0.3']").click()
        with page.expect_navigation():
            page.locator(".lb-version").select_option("mvtec3d-ad-v1.html")
        page.wait_for_selector(".lb-table tbody tr td.lb-c-method a.lb-name")
        url = urlparse(page.url)
        assert url.path.endswith("/boards/mvtec3d-ad-v1.html")
        assert parse_qs(url.query) == {"slice": ["bagel"], "shots": ["50"],
                                       "sort": ["AUPRO@0.3"]}
        assert page.locator(".lb-slice").input_value() == "bagel"
        assert page.locator(".lb-shots").input_value() == "50"
        assert page.locator(".lb-table th.lb-sorted").get_attribute("data-key") == "AUPRO@0.3"
        assert page.locator(".lb-version").input_value() == "mvtec3d-ad-v1.html"

        # v2's new metric as the sort: v1 lacks it and falls back to its rank order, the rest
        # of the view stays.
        page.goto(f"{server}/boards/mvtec3d-ad-v2.html?slice=rope&sort=AUPRO@0.01")
        page.wait_for_selector(".lb-table tbody tr td.lb-c-method a.lb-name")
        assert page.locator(".lb-table th.lb-sorted").get_attribute("data-key") == "AUPRO@0.01"
        with page.expect_navigation():
            page.locator(".lb-version").select_option("mvtec3d-ad-v1.html")
        page.wait_for_selector(".lb-table tbody tr td.lb-c-method a.lb-name")
        assert page.locator(".lb-slice").input_value() == "rope"
        assert page.locator(".lb-table th[data-key='AUPRO@0.01']").count() == 0
