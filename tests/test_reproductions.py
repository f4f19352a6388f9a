"""site/data/baselines.json: which bundled baseline reproduces which published row, read by
the site (without importing baselines/) and by the baselines' catalogue."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evaluator.published import load_published
from evaluator.reproductions import (
    REPRODUCTIONS_FILE,
    ReproductionDataError,
    load_reproductions,
    reproducing,
)

ROOT = Path(__file__).resolve().parents[1]


def test_the_site_never_imports_baselines():
    code = ("import sys\n"
            "import evaluator.site.boards, evaluator.site.render, evaluator.site.compare\n"
            "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('baselines', 'torch'))\n"
            "print(loaded)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_catalogue_and_the_data_file_name_the_same_baselines():
    from baselines.catalogue import BASELINES

    assert set(BASELINES) == set(load_reproductions())
    for name, spec in BASELINES.items():
        assert spec.reproduction is load_reproductions()[name]


def test_every_reference_names_a_published_row():
    """A renamed method or variant in site/data/published would silently drop a baseline's
    comparison; each reference must match a row on one of the baseline's boards."""
    rows = [(source.source.key, row, table.board) for source in load_published()
            for table in source.tables for row in table.rows]
    for item in load_reproductions().values():
        for ref in item.reproduces:
            boards = {f"{board}-v1" for board in item.boards}
            assert any(ref.matches(key, row.method, row.setting, row.citation, row.variant)
                       and board in boards for key, row, board in rows), (item.name, ref)
        if item.reproduces:
            found = reproducing(item.reproduces[0].source, item.reproduces[0].method,
                                item.benchmark, {"modality": item.reproduces[0].modality}
                                if item.reproduces[0].modality else {}, None,
                                item.reproduces[0].variant)
            assert found is not None and found.benchmark == item.benchmark


def test_commands_name_the_board_and_the_entry_folder():
    clip = load_reproductions()["forb-clip-vit-l14-336"]
    assert clip.command() == ("leaderboard baseline run forb-clip-vit-l14-336 --data FORB_ROOT "
                              "--out submissions/forb/forb-clip-vit-l14-336")
    assert clip.command("forb-subset").endswith(
        "--board forb-subset --out submissions/forb/forb-clip-vit-l14-336-subset")
    assert clip.labels_hint == "FORB_ROOT/metadata"


@pytest.mark.parametrize("damage, message", [
    (lambda d: d["baselines"].append(dict(d["baselines"][0])), "listed twice"),
    (lambda d: d["baselines"][0].update(benchmark="imagenet"), "unknown benchmark 'imagenet'"),
    (lambda d: d["baselines"][0].update(boards=["forb", "forb-tiny"]), "no board forb-tiny"),
    (lambda d: d["baselines"][0].update(colour="red"), "colour"),
])
def test_a_broken_data_file_is_named(damage, message, tmp_path):
    data = json.loads(REPRODUCTIONS_FILE.read_text())
    damage(data)
    path = tmp_path / "baselines.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ReproductionDataError) as error:
        load_reproductions(path)
    assert str(path) in str(error.value) and message in str(error.value)
