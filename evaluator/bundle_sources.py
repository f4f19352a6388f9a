"""Label sources for hidden labels in CI: an encrypted bundle (``bundle:PATH``) and a private
download (``url:https://...``, a bundle or a plain ``.tar.gz``). Both unpack into a private
temporary folder, under the Actions runner's temp folder when there is one, and remove it when
the evaluation ends, also after an error."""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from evaluator.bundles import MAGIC, BundleError, extract_tar_stream, parse_key, unpack
from evaluator.labels import LabelSettingError, LabelSource, LabelSourceError

KEY_VAR, KEY_FILE_VAR = "LEADERBOARD_LABEL_KEY", "LEADERBOARD_LABEL_KEY_FILE"
TOKEN_VAR, MAX_BYTES_VAR = "LEADERBOARD_LABELS_URL_TOKEN", "LEADERBOARD_LABELS_MAX_BYTES"
DEFAULT_MAX_DOWNLOAD = 4 << 30


def key_from_env() -> bytes:
    """The label key from $LEADERBOARD_LABEL_KEY, or the file named by
    $LEADERBOARD_LABEL_KEY_FILE."""
    try:
        if os.environ.get(KEY_VAR):
            return parse_key(os.environ[KEY_VAR])
        if os.environ.get(KEY_FILE_VAR):
            return parse_key(Path(os.environ[KEY_FILE_VAR]).read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise LabelSourceError(f"label key: {os.environ[KEY_FILE_VAR]} is not UTF-8 text "
                               "(not a label key)") from None
    except (BundleError, OSError) as exc:
        raise LabelSourceError(f"label key: {exc}") from None
    raise LabelSourceError(f"no label key: set {KEY_VAR} (the key text) or {KEY_FILE_VAR}")


def _max_bytes() -> int:
    text = os.environ.get(MAX_BYTES_VAR, "").strip()
    if not text:
        return DEFAULT_MAX_DOWNLOAD
    if not text.isdigit() or int(text) < 1:
        raise LabelSettingError(f"{MAX_BYTES_VAR} must be a positive whole number of bytes, "
                                f"not {text!r}")
    return int(text)


@contextmanager
def private_folder() -> Iterator[Path]:
    """A folder only this user can read, deleted on exit."""
    folder = Path(tempfile.mkdtemp(prefix="labels-", dir=os.environ.get("RUNNER_TEMP") or None))
    try:
        folder.chmod(0o700)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class BundleSource(LabelSource):
    def __init__(self, spec: str) -> None:
        self.path = Path(spec).expanduser()

    def describe(self) -> str:
        return f"encrypted bundle {self.path}"

    @contextmanager
    def open(self) -> Iterator[Path]:
        if not self.path.is_file():
            raise LabelSourceError(f"label bundle {self.path} does not exist")
        key = key_from_env()
        with private_folder() as folder:
            try:
                unpack(self.path, folder / "labels", key)
            except BundleError as exc:
                raise LabelSourceError(str(exc)) from None
            yield folder / "labels"


class UrlSource(LabelSource):
    def __init__(self, spec: str) -> None:
        self.url = spec
        try:
            parts = urlsplit(spec)
            parts.port  # noqa: B018 -- parsed lazily: a port like "abc" raises only here
        except ValueError as exc:
            # Not the URL itself: a signed URL carries its credential.
            raise LabelSourceError(f"label URL is malformed ({exc})") from None
        local = parts.hostname in ("127.0.0.1", "localhost")
        if parts.scheme != "https" and not (parts.scheme == "http" and local):
            raise LabelSourceError(f"label URL {self.describe()}: only https:// is allowed")
        self.limit = _max_bytes()

    def describe(self) -> str:
        # Signed URLs carry their credential in the query string: never show it.
        parts = urlsplit(self.url)
        return f"download {parts.scheme}://{parts.hostname or ''}{parts.path}"

    @contextmanager
    def open(self) -> Iterator[Path]:
        with private_folder() as folder:
            download = folder / "download"
            self._download(download)
            with open(download, "rb") as handle:
                is_bundle = handle.read(len(MAGIC)) == MAGIC
            try:
                if is_bundle:
                    unpack(download, folder / "labels", key_from_env())
                else:
                    (folder / "labels").mkdir()
                    with open(download, "rb") as handle:
                        extract_tar_stream(handle, folder / "labels", self.describe())
            except BundleError as exc:
                raise LabelSourceError(f"{self.describe()}: {exc}".replace(str(download),
                                                                           "download")) from None
            download.unlink()
            yield folder / "labels"

    def _download(self, target: Path) -> None:
        limit = self.limit
        request = urllib.request.Request(self.url)
        if os.environ.get(TOKEN_VAR):
            # Not copied onto redirects: a signed-storage redirect must not receive the token.
            request.add_unredirected_header("Authorization", f"Bearer {os.environ[TOKEN_VAR]}")
        read = 0
        try:
            with urllib.request.urlopen(request, timeout=300) as response, \
                    open(target, "wb") as sink:
                while chunk := response.read(1 << 20):
                    read += len(chunk)
                    if read > limit:
                        raise LabelSourceError(f"{self.describe()}: larger than {limit} bytes "
                                               f"(raise {MAX_BYTES_VAR})")
                    sink.write(chunk)
        except urllib.error.HTTPError as exc:
            raise LabelSourceError(f"{self.describe()}: HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise LabelSourceError(f"{self.describe()}: download failed ({reason})") from None

