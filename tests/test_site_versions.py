"""Board versions on the site: v1 and v2 of the anomaly boards side by side, each with its
own metrics and downloads, the "what changed" page from the rescoring report, the versions
and protocol pages, and the version switch that keeps the view."""

from __future__ import annotations

import csv
import json

import pytest

from evaluator.registry import get_benchmark
from evaluator.rescore import changes_report, write_changes_report
from tests.site_fixtures import make_submissions

pytest.importorskip("mkdocs", reason="the site needs mkdocs-material (pip install -e '.[test]')")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from evaluator.site.render import build

    root = tmp_path_factory.mktemp("versions")
    submissions = make_submissions(root)
    benchmark = get_benchmark("mvtec3d-ad")
    v2 = benchmark.board("mvtec3d-ad-v2")
    write_changes_report(submissions, v2, changes_report(submissions, benchmark, v2))
    out = root / "out"
    return out, build(out, submissions, work=root / "work"), submissions


def test_each_version_has_its_metrics_and_downloads(site):
    out, views, submissions = site
    v1 = (out / "boards" / "mvtec3d-ad-v1.html").read_text()
    v2 = (out / "boards" / "mvtec3d-ad-v2.html").read_text()
    assert ">AUPRO@0.01<" in v2 and ">AUPRO@0.01<" not in v1 and ">AUPRO@0.3<" in v1
    for board_id, has_new in (("mvtec3d-ad-v1", False), ("mvtec3d-ad-v2", True)):
        header = next(csv.reader(open(out / "downloads" / f"{board_id}.csv")))
        assert ("mean/AUPRO@0.01" in header) == has_new and "mean/I-AUROC" in header
    # An entry scored under both: v1's numbers on the v1 page, v2's (a superset) on v2's.
    record = json.loads((submissions / "mvtec3d-ad/ad-entry-0/records/mvtec3d-ad-v2.json")
                        .read_text())
    page = (out / "entries/mvtec3d-ad-v2/ad-entry-0.html").read_text()
    assert f"{record['scores']['mean']['AUPRO@0.01']:.3f}" in page
    versions = (out / "versions.html").read_text()
    for link in ("changes/mvtec3d-ad-v2.html", "protocols/mvtec3d-ad-v2.html",
                 "downloads/mvtec3d-ad-v1.csv", "downloads/mvtec3d-ad-v2.json"):
        assert link in versions, link
    assert "First version." in versions and "AUPRO@0.01" in versions
    assert "changes/mvtec3d-ad-v2.html" in v2 and "changes/" not in v1


def test_the_what_changed_page_lists_ranks_under_both_versions(site):
    out, _, submissions = site
    report = json.loads((submissions / "changes" / "mvtec3d-ad-v2.json").read_text())
    page = (out / "changes" / "mvtec3d-ad-v2.html").read_text()
    assert len(report["entries"]) == 3
    for e in report["entries"]:
        assert e["entry"] in page
        assert e["previous"]["value"] == e["current"]["value"]  # I-AUROC as in v1
        value = e["added_metrics"]["AUPRO@0.01"]
        assert value is not None and f"{value:.3f}" in page
    assert "moved rank" in page and "Metrics added: AUPRO@0.01, AUPRO@0.01-exact" in page
    protocol = (out / "protocols" / "mvtec3d-ad-v2.html").read_text()
    assert "Changelog" in protocol and "new" in protocol
    # Eyecandies v2 has no rescoring yet: its page says so rather than showing nothing.
    assert "No stored entry has been rescored" in (out / "changes/eyecandies-v2.html").read_text()


def test_the_version_switch_keeps_the_query_and_hash(site):
    out, _, _ = site
    page = (out / "boards" / "mvtec3d-ad-v1.html").read_text()
    assert 'class="lb-version"' in page and 'value="mvtec3d-ad-v2.html"' in page
    assert "assets/version-switch.js" in page
    script = (out / "assets" / "version-switch.js").read_text()
    assert "select.value + window.location.search + window.location.hash" in script
