"""Encrypted label bundles and the two CI label sources (bundle:, url:), with real crypto: round
trips, every kind of tampering, unsafe archives, key rotation, temp-folder clean-up, a local
HTTP server for downloads, and a canary that must never reach any output."""

from __future__ import annotations

import base64
import gzip
import http.server
import io
import json
import os
import tarfile
import threading
from pathlib import Path

import pytest

from evaluator import bundles
from evaluator.bundles import BundleError, generate_key, pack, parse_key, rotate, unpack
from evaluator.cli import main
from evaluator.labels import LabelSourceError, resolve_source
from tests.forb_data import ENTRY_METADATA, write_tiny_forb

CANARY = "CANARYb7e2"


@pytest.fixture
def labels(tmp_path) -> Path:
    root = tmp_path / "src-labels"
    (root / "nested/deeper").mkdir(parents=True)
    (root / "gt.ndjson").write_text(f'{{"answer": "{CANARY}"}}\n')
    (root / "nested/deeper/mask.bin").write_bytes(os.urandom(3000) + bytes(range(256)))
    (root / "empty.txt").write_bytes(b"")
    return root


@pytest.fixture
def key() -> bytes:
    return parse_key(generate_key())


def same_tree(a: Path, b: Path) -> bool:
    files = lambda root: {p.relative_to(root): p.read_bytes()  # noqa: E731
                          for p in root.rglob("*") if p.is_file()}
    return files(a) == files(b)


def test_round_trip_and_fresh_ciphertext(labels, key, tmp_path, monkeypatch):
    monkeypatch.setattr(bundles, "CHUNK_SIZE", 1024)   # many chunks from small files
    first, second = tmp_path / "a.bundle", tmp_path / "b.bundle"
    header = pack(labels, first, key, "forb")
    pack(labels, second, key, "forb")
    assert header["files"] == 3 and header["benchmark"] == "forb"
    assert first.read_bytes() != second.read_bytes()        # fresh salt each time
    assert CANARY.encode() not in first.read_bytes()
    unpack(first, tmp_path / "out1", key)
    unpack(second, tmp_path / "out2", key)
    assert same_tree(labels, tmp_path / "out1") and same_tree(labels, tmp_path / "out2")


def test_wrong_key_names_both_key_ids(labels, key, tmp_path):
    pack(labels, tmp_path / "x.bundle", key, "forb")
    other = parse_key(generate_key())
    with pytest.raises(BundleError, match=f"packed with key {bundles.key_id(key)}, the key "
                                          f"given has id {bundles.key_id(other)}"):
        unpack(tmp_path / "x.bundle", tmp_path / "out", other)
    assert not (tmp_path / "out").exists()


def _chunks(data: bytes) -> tuple[bytes, list[bytes]]:
    """Split a bundle into its preamble (magic + header) and its length-prefixed chunks."""
    start = data.index(b"\n", len(bundles.MAGIC)) + 1
    head, chunks, at = data[:start], [], start
    while at < len(data):
        size = int.from_bytes(data[at:at + 4], "big")
        chunks.append(data[at:at + 4 + size])
        at += 4 + size
    return head, chunks


@pytest.mark.parametrize("tamper, message", [
    (lambda h, c: h + b"".join(c[:1]) + bytes([c[1][0]]) + c[1][1:20] + bytes([c[1][20] ^ 1])
     + c[1][21:] + b"".join(c[2:]), "chunk 1 fails authentication"),
    (lambda h, c: h + b"".join(c[:-1]), "final chunk is missing"),
    (lambda h, c: h + b"".join(c) + b"extra", "data after the final chunk"),
    (lambda h, c: h + c[1] + c[0] + b"".join(c[2:]), "chunk 0 fails authentication"),
    (lambda h, c: h.replace(b'"benchmark":"forb"', b'"benchmark":"fORB"') + b"".join(c),
     "chunk 0 fails authentication"),
    (lambda h, c: b"NOT A BUNDLE\n" + h + b"".join(c), "not a label bundle"),
    (lambda h, c: h[:40], "header line is missing"),
])
def test_tampering_is_detected_and_nothing_is_left(labels, key, tmp_path, monkeypatch, tamper,
                                                   message):
    monkeypatch.setattr(bundles, "CHUNK_SIZE", 1024)
    path = tmp_path / "x.bundle"
    pack(labels, path, key, "forb")
    head, chunks = _chunks(path.read_bytes())
    assert len(chunks) >= 3
    path.write_bytes(tamper(head, chunks))
    with pytest.raises(BundleError, match=message):
        unpack(path, tmp_path / "out", key)
    assert not (tmp_path / "out").exists()


def _bundle_of_tar(path: Path, key: bytes, build) -> None:
    """Encrypt a hand-made tar.gz with the module's own writer (what an attacker with the key,
    or a bug, could produce)."""
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb") as zipped, \
            tarfile.open(fileobj=zipped, mode="w") as archive:
        build(archive)
    header = {"format": 1, "benchmark": "forb", "key_id": bundles.key_id(key),
              "salt": base64.b64encode(b"s" * 16).decode(), "chunk_size": 1 << 20,
              "created": "2026-11-23", "files": 1, "bytes": 1}
    with open(path, "wb") as out:
        bundles._seal_into(out, header, key, lambda sink: sink.write(raw.getvalue()))


def _member(name, kind=tarfile.REGTYPE, data=b"x", link=""):
    def add(archive):
        info = tarfile.TarInfo(name)
        regular = kind == tarfile.REGTYPE
        info.type, info.size, info.linkname = kind, len(data) if regular else 0, link
        archive.addfile(info, io.BytesIO(data) if regular else None)
    return add


@pytest.mark.parametrize("build, message", [
    (_member("../escape.txt"), "would leave the folder"),
    (_member("/abs.txt"), "would leave the folder"),
    (_member("link", tarfile.SYMTYPE, link="/etc/passwd"), "not a regular file"),
    (_member("dev", tarfile.CHRTYPE), "not a regular file"),
])
def test_unsafe_archive_members_are_refused(key, tmp_path, build, message):
    path = tmp_path / "evil.bundle"
    _bundle_of_tar(path, key, build)
    with pytest.raises(BundleError, match=message):
        unpack(path, tmp_path / "sub" / "out", key)
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "sub" / "out").exists()


def test_pack_refuses_symbolic_links(labels, key, tmp_path):
    (labels / "link").symlink_to(labels / "gt.ndjson")
    with pytest.raises(BundleError, match="symbolic links are not packed"):
        pack(labels, tmp_path / "x.bundle", key, "forb")
    assert not (tmp_path / "x.bundle").exists()


def test_rotate(labels, key, tmp_path):
    path = tmp_path / "x.bundle"
    pack(labels, path, key, "forb")
    new = parse_key(generate_key())
    before = path.read_bytes()
    with pytest.raises(BundleError, match="packed with key"):
        rotate(path, new, key)                       # wrong old key: untouched
    assert path.read_bytes() == before
    rotate(path, key, new)
    with pytest.raises(BundleError):
        unpack(path, tmp_path / "old", key)
    unpack(path, tmp_path / "new", new)
    assert same_tree(labels, tmp_path / "new")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# Label sources ------------------------------------------------------------------------------

def test_bundle_source_lives_in_runner_temp_and_is_removed(labels, key, tmp_path, monkeypatch):
    pack(labels, tmp_path / "x.bundle", key, "forb")
    runner = tmp_path / "runner-temp"
    runner.mkdir()
    monkeypatch.setenv("RUNNER_TEMP", str(runner))
    monkeypatch.setenv("LEADERBOARD_LABEL_KEY", bundles.KEY_PREFIX +
                       base64.urlsafe_b64encode(key).decode().rstrip("="))
    source = resolve_source("forb", [f"bundle:{tmp_path / 'x.bundle'}"])
    with source.open() as folder:
        assert folder.is_relative_to(runner) and same_tree(labels, folder)
        assert (folder.parent.stat().st_mode & 0o777) == 0o700
    assert list(runner.iterdir()) == []
    with pytest.raises(RuntimeError), source.open():
        raise RuntimeError("scoring failed")
    assert list(runner.iterdir()) == []


def test_bundle_source_without_key_is_a_clear_error(labels, key, tmp_path, monkeypatch):
    pack(labels, tmp_path / "x.bundle", key, "forb")
    monkeypatch.delenv("LEADERBOARD_LABEL_KEY", raising=False)
    monkeypatch.delenv("LEADERBOARD_LABEL_KEY_FILE", raising=False)
    with pytest.raises(LabelSourceError, match="no label key"):
        with resolve_source("forb", [f"bundle:{tmp_path / 'x.bundle'}"]).open():
            pass


class _Server:
    """Serves files from a dict on 127.0.0.1, demanding a bearer token."""

    def __init__(self, files: dict[str, bytes], token: str) -> None:
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                path = self.path.split("?")[0]
                if self.headers.get("Authorization") != f"Bearer {token}":
                    self.send_response(403)
                    self.end_headers()
                    return
                if path not in files:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(files[path])))
                self.end_headers()
                self.wfile.write(files[path])

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        outer.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def test_url_source(labels, key, tmp_path, monkeypatch):
    pack(labels, tmp_path / "x.bundle", key, "forb")
    plain = io.BytesIO()
    with tarfile.open(fileobj=plain, mode="w:gz") as archive:
        archive.add(labels, arcname=".")
    server = _Server({"/x.bundle": (tmp_path / "x.bundle").read_bytes(),
                      "/plain.tar.gz": plain.getvalue(), "/junk": b"hello"}, token="tok")
    try:
        monkeypatch.setenv("LEADERBOARD_LABELS_URL_TOKEN", "tok")
        monkeypatch.setenv("LEADERBOARD_LABEL_KEY", bundles.KEY_PREFIX +
                           base64.urlsafe_b64encode(key).decode().rstrip("="))
        monkeypatch.setenv("RUNNER_TEMP", str(tmp_path))
        for name in ("x.bundle", "plain.tar.gz"):
            with resolve_source("forb", [f"url:{server.url}/{name}?sig=SECRET"]).open() as got:
                assert same_tree(labels, got)
        source = resolve_source("forb", [f"url:{server.url}/x.bundle?sig=SECRET"])
        assert "SECRET" not in source.describe()
        for spec, message in ((f"url:{server.url}/missing?sig=SECRET", "HTTP 404"),
                              (f"url:{server.url}/junk?sig=SECRET", "cannot be extracted")):
            with pytest.raises(LabelSourceError, match=message) as info:
                with resolve_source("forb", [spec]).open():
                    pass
            assert "SECRET" not in str(info.value)
        monkeypatch.setenv("LEADERBOARD_LABELS_MAX_BYTES", "100")
        with pytest.raises(LabelSourceError, match="larger than 100 bytes"):
            with resolve_source("forb", [f"url:{server.url}/x.bundle"]).open():
                pass
        monkeypatch.setenv("LEADERBOARD_LABELS_URL_TOKEN", "wrong")
        monkeypatch.delenv("LEADERBOARD_LABELS_MAX_BYTES")
        with pytest.raises(LabelSourceError, match="HTTP 403"):
            with resolve_source("forb", [f"url:{server.url}/x.bundle"]).open():
                pass
    finally:
        server.httpd.shutdown()
    assert [p for p in tmp_path.iterdir() if p.name.startswith("labels-")] == []
    with pytest.raises(LabelSourceError, match="only https"):
        resolve_source("forb", ["url:http://example.org/x.bundle"])


# The CLI ------------------------------------------------------------------------------------

def test_cli_round_trip_never_prints_keys_or_labels(labels, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("LEADERBOARD_LABEL_KEY", raising=False)
    k1, k2 = tmp_path / "k1.key", tmp_path / "k2.key"
    assert main(["labels", "keygen", "--out", str(k1)]) == 0
    assert main(["labels", "keygen", "--out", str(k1)]) == 2        # never overwrites
    assert (k1.stat().st_mode & 0o777) == 0o600
    assert main(["labels", "keygen", "--out", str(k2)]) == 0
    bundle = tmp_path / "labels" / "forb.bundle"
    assert main(["labels", "pack", "--benchmark", "forb", "--source", str(labels),
                 "--out", str(bundle), "--key-file", str(k1)]) == 0
    assert main(["labels", "info", str(bundle)]) == 0
    assert main(["labels", "unpack", str(bundle), "--out", str(tmp_path / "u"),
                 "--key-file", str(k2)]) == 3                       # wrong key
    assert main(["labels", "rotate", str(bundle), "--old-key-file", str(k1),
                 "--new-key-file", str(k2)]) == 0
    assert main(["labels", "unpack", str(bundle), "--out", str(tmp_path / "u"),
                 "--key-file", str(k2)]) == 0
    assert main(["labels", "pack", "--benchmark", "nope", "--source", str(labels),
                 "--key-file", str(k1)]) == 2
    out = capsys.readouterr()
    text = out.out + out.err
    assert "Traceback" not in text and CANARY not in text
    for key_file in (k1, k2):
        assert key_file.read_text().strip() not in text
    assert f"key {bundles.key_id(parse_key(k1.read_text()))}" in text
    assert same_tree(labels, tmp_path / "u")


def test_forb_scores_the_same_from_a_bundle(tmp_path, monkeypatch, capsys):
    from evaluator.forb import synthetic, writers
    from evaluator.forb.labels import load_labels
    from evaluator.forb.task import load_task

    meta = write_tiny_forb(tmp_path / "meta", seed=2, gt_marker=CANARY)
    task = load_task(meta)
    run = synthetic.generate(task, load_labels(meta, task), n_candidates=5, seed=1)
    entry = tmp_path / "submissions" / "forb" / "e"
    writers.write_predictions_file(run, task, entry / "predictions.ndjson")
    (entry / "metadata.json").write_text(json.dumps(ENTRY_METADATA))
    key = generate_key()
    monkeypatch.setenv("LEADERBOARD_LABEL_KEY", key)
    pack(meta, tmp_path / "forb.bundle", parse_key(key), "forb")
    results = []
    for spec in (str(meta), f"bundle:{tmp_path / 'forb.bundle'}"):
        out = tmp_path / f"{len(results)}.json"
        assert main(["evaluate", "--entry", str(entry), "--labels", spec, "--no-record",
                     "--json", str(out)]) == 0
        results.append(json.loads(out.read_text()))
    assert results[0]["scores"] == results[1]["scores"]
    assert results[0]["provenance"]["labels_digest"] == results[1]["provenance"]["labels_digest"]
    text = capsys.readouterr()
    assert CANARY not in text.out + text.err and key not in text.out + text.err
