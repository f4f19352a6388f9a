"""Encrypted label bundles: how hidden labels live in the repository (or at a private URL).

A bundle is a deterministic gzip tar of a label folder, encrypted with AES-256-GCM in the STREAM
construction, so packing and unpacking run in constant memory however large the labels are:

    LEADERBOARD-LABEL-BUNDLE 1\\n
    {"format": 1, "benchmark": ..., "key_id": ..., "salt": ..., "chunk_size": ..., ...}\\n
    [4-byte big-endian length][AES-GCM ciphertext of chunk i] ...

Each bundle gets a fresh 16-byte salt; its encryption key is HKDF-SHA256(master key, salt). The
nonce of chunk i is i (11 bytes) plus a flag byte that is 1 only on the final chunk, and every
chunk authenticates the header line, so reordering, dropping, truncating or appending chunks and
editing the header are all detected. The master key is 32 random bytes written as ``lbk1:...``;
its id (an HMAC of a constant) tells which key a bundle needs without revealing the key.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import hmac
import io
import json
import os
import secrets
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

MAGIC = b"LEADERBOARD-LABEL-BUNDLE 1\n"
KEY_PREFIX = "lbk1:"
FORMAT = 1
CHUNK_SIZE = 1 << 20
MAX_HEADER_BYTES = 64 * 1024
SALT_BYTES = 16  # per bundle, for HKDF
_HKDF_INFO = b"leaderboard label bundle v1"


class BundleError(Exception):
    """A bundle or key problem; messages name the file, never key material or label content."""


# Keys ------------------------------------------------------------------------------------------

def generate_key() -> str:
    return KEY_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def parse_key(text: str) -> bytes:
    text = text.strip()
    if not text.startswith(KEY_PREFIX):
        raise BundleError(f"not a label key (keys start with {KEY_PREFIX!r}; make one with "
                          "`leaderboard labels keygen`)")
    body = text[len(KEY_PREFIX):]
    try:
        key = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except ValueError:
        key = b""
    if len(key) != 32:
        raise BundleError("malformed label key (expected 32 bytes after the prefix)")
    return key


def key_id(key: bytes) -> str:
    return hmac.new(key, b"leaderboard label key id", hashlib.sha256).hexdigest()[:16]


# Stream encryption -----------------------------------------------------------------------------

def _aead(key: bytes, salt: bytes):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    subkey = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_HKDF_INFO).derive(key)
    return AESGCM(subkey)


def _nonce(index: int, last: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class _Sealer(io.RawIOBase):
    """A write-only stream that seals what it is given in fixed-size chunks."""

    def __init__(self, sink, aead, aad: bytes, chunk_size: int) -> None:
        self.sink, self.aead, self.aad, self.chunk_size = sink, aead, aad, chunk_size
        self.buffer = bytearray()
        self.index = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.buffer += data
        while len(self.buffer) > self.chunk_size:   # keep at least one byte for the last chunk
            self._seal(bytes(self.buffer[: self.chunk_size]), last=False)
            del self.buffer[: self.chunk_size]
        return len(data)

    def finish(self) -> None:
        self._seal(bytes(self.buffer), last=True)
        self.buffer.clear()

    def _seal(self, data: bytes, last: bool) -> None:
        sealed = self.aead.encrypt(_nonce(self.index, last), data, self.aad)
        self.sink.write(len(sealed).to_bytes(4, "big") + sealed)
        self.index += 1


def _open_chunks(handle, aead, aad: bytes, chunk_size: int, name: str) -> Iterator[bytes]:
    """Decrypt chunk after chunk; raise on any tampering, truncation or trailing data."""
    from cryptography.exceptions import InvalidTag

    index = 0
    while True:
        size_bytes = handle.read(4)
        if len(size_bytes) < 4:
            raise BundleError(f"{name}: truncated before chunk {index} (the final chunk is "
                              "missing)")
        size = int.from_bytes(size_bytes, "big")
        if size > chunk_size + 16:
            raise BundleError(f"{name}: chunk {index} has an impossible length")
        sealed = handle.read(size)
        if len(sealed) < size:
            raise BundleError(f"{name}: truncated inside chunk {index}")
        for last in (False, True):
            try:
                data = aead.decrypt(_nonce(index, last), sealed, aad)
                break
            except InvalidTag:
                continue
        else:
            raise BundleError(f"{name}: chunk {index} fails authentication (wrong key, or the "
                              "bundle was modified)")
        yield data
        if last:
            if handle.read(1):
                raise BundleError(f"{name}: data after the final chunk {index}")
            return
        index += 1


class _Opener(io.RawIOBase):
    """A read-only stream of the decrypted plaintext, for tarfile's streaming mode."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks, self.pending = chunks, b""

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        while not self.pending:
            try:
                self.pending = next(self.chunks)
            except StopIteration:
                return 0
        count = min(len(target), len(self.pending))
        target[:count] = self.pending[:count]
        self.pending = self.pending[count:]
        return count

    def drain(self) -> None:
        """Read to the end, so the final chunk and the end of file are verified."""
        for _ in self.chunks:
            pass


# Header ----------------------------------------------------------------------------------------

def _header_line(header: dict) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode() + b"\n"


def _read_header(handle, name: str) -> tuple[dict, bytes]:
    if handle.read(len(MAGIC)) != MAGIC:
        raise BundleError(f"{name}: not a label bundle (bad first line)")
    line = handle.readline(MAX_HEADER_BYTES)
    if not line.endswith(b"\n"):
        raise BundleError(f"{name}: the header line is missing or too long")
    try:
        header = json.loads(line)
    except ValueError:
        raise BundleError(f"{name}: the header line is not JSON") from None
    required = {"format": int, "benchmark": str, "key_id": str, "salt": str, "chunk_size": int,
                "created": str, "files": int, "bytes": int}
    for field, kind in required.items():
        if not isinstance(header, dict) or not isinstance(header.get(field), kind):
            raise BundleError(f"{name}: the header lacks {field!r}")
    if header["format"] != FORMAT:
        raise BundleError(f"{name}: bundle format {header['format']} is not supported")
    if not 1024 <= header["chunk_size"] <= 64 << 20:
        raise BundleError(f"{name}: impossible chunk size in the header")
    # The header is not authenticated until decryption: `labels info` prints it without a key,
    # so a forged one must not smuggle terminal escapes or impossible values into the output.
    for field in ("benchmark", "key_id", "created"):
        if not header[field].isprintable() or len(header[field]) > 200:
            raise BundleError(f"{name}: the header's {field!r} is not plain printable text")
    for field in ("files", "bytes"):
        if header[field] < 0:
            raise BundleError(f"{name}: the header's {field!r} is negative")
    try:
        salt = base64.b64decode(header["salt"], validate=True)
    except ValueError:
        salt = b""
    if len(salt) != SALT_BYTES:
        raise BundleError(f"{name}: the header's 'salt' is not {SALT_BYTES} bytes of base64")
    return header, line


def read_header(path: Path) -> dict:
    with open(path, "rb") as handle:
        return _read_header(handle, str(path))[0]


def _check_key(header: dict, key: bytes, name: str) -> None:
    if key_id(key) != header["key_id"]:
        raise BundleError(f"{name}: packed with key {header['key_id']}, the key given has id "
                          f"{key_id(key)}")


# Pack / unpack / rotate ------------------------------------------------------------------------

def _label_files(source: Path) -> list[Path]:
    if not source.is_dir():
        raise BundleError(f"{source}: not a folder")
    files = []
    for path in sorted(source.rglob("*")):
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            raise BundleError(f"{path}: symbolic links are not packed (copy the file instead)")
        if stat.S_ISREG(mode):
            files.append(path)
        elif not stat.S_ISDIR(mode):
            raise BundleError(f"{path}: not a regular file")
    return files


def _write_tar(sink, source: Path, files: list[Path]) -> None:
    """A tar that depends on the files' names and bytes only."""
    with gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=6, mtime=0) as zipped, \
            tarfile.open(fileobj=zipped, mode="w|", format=tarfile.PAX_FORMAT) as archive:
        for path in files:
            info = tarfile.TarInfo(path.relative_to(source).as_posix())
            info.size, info.mode, info.mtime = path.stat().st_size, 0o644, 0
            with open(path, "rb") as handle:
                archive.addfile(info, handle)


def _atomic_target(target: Path):
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{target.name}-", suffix=".tmp", dir=target.parent)
    return os.fdopen(handle, "wb"), Path(tmp)


def _seal_into(out, header: dict, key: bytes, write_plaintext) -> None:
    line = _header_line(header)
    out.write(MAGIC + line)
    sealer = _Sealer(out, _aead(key, base64.b64decode(header["salt"])), line,
                     header["chunk_size"])
    write_plaintext(sealer)
    sealer.finish()


def pack(source: Path, out_path: Path, key: bytes, benchmark: str) -> dict:
    """Encrypt the label folder ``source`` into ``out_path`` (replaced atomically)."""
    files = _label_files(source)
    header = {"format": FORMAT, "benchmark": benchmark, "key_id": key_id(key),
              "salt": base64.b64encode(secrets.token_bytes(SALT_BYTES)).decode(),
              "chunk_size": CHUNK_SIZE, "created": dt.date.today().isoformat(),
              "files": len(files), "bytes": sum(p.stat().st_size for p in files)}
    out, tmp = _atomic_target(out_path)
    try:
        with out:
            _seal_into(out, header, key, lambda sink: _write_tar(sink, source, files))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    return header


def _plaintext(handle, header: dict, line: bytes, key: bytes, name: str) -> _Opener:
    aead = _aead(key, base64.b64decode(header["salt"]))
    return _Opener(_open_chunks(handle, aead, line, header["chunk_size"], name))


def unpack(bundle: Path, dest: Path, key: bytes) -> dict:
    """Decrypt ``bundle`` into the new folder ``dest``; on any error ``dest`` is removed."""
    name = str(bundle)
    if dest.exists() and any(dest.iterdir()):
        raise BundleError(f"{dest}: the destination must be new or empty")
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with open(bundle, "rb") as handle:
            header, line = _read_header(handle, name)
            _check_key(header, key, name)
            plaintext = _plaintext(handle, header, line, key, name)
            extract_tar_stream(io.BufferedReader(plaintext, CHUNK_SIZE), dest, name)
            plaintext.drain()
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return header


def extract_tar_stream(stream, dest: Path, name: str) -> None:
    """Extract a gzip tar read as a stream: regular files and folders only, and nothing may
    land outside ``dest`` (tarfile's 'data' filter refuses absolute paths, '..' and links)."""
    try:
        with tarfile.open(fileobj=stream, mode="r|gz") as archive:
            for member in archive:
                if not (member.isfile() or member.isdir()):
                    raise BundleError(f"{name}: member {member.name!r} is not a regular file")
                parts = Path(member.name).parts
                if member.name.startswith("/") or ".." in parts:
                    raise BundleError(f"{name}: member {member.name!r} would leave the folder")
                archive.extract(member, dest, filter="data")
    except (tarfile.TarError, OSError, EOFError, gzip.BadGzipFile) as exc:
        raise BundleError(f"{name}: the label archive cannot be extracted ({exc})") from None


def rotate(bundle: Path, old_key: bytes, new_key: bytes) -> dict:
    """Re-encrypt ``bundle`` for ``new_key``; the original stays until the new file is
    verified."""
    name = str(bundle)
    out, tmp = _atomic_target(bundle)
    try:
        with open(bundle, "rb") as handle, out:
            header, line = _read_header(handle, name)
            _check_key(header, old_key, name)
            plaintext = _plaintext(handle, header, line, old_key, name)
            new_header = {**header, "key_id": key_id(new_key),
                          "salt": base64.b64encode(secrets.token_bytes(SALT_BYTES)).decode()}
            _seal_into(out, new_header, new_key,
                       lambda sink: shutil.copyfileobj(plaintext, sink, CHUNK_SIZE))
            out.flush()
            os.fsync(out.fileno())
        verify(tmp, new_key)
        os.replace(tmp, bundle)
    finally:
        tmp.unlink(missing_ok=True)
    return new_header


def verify(bundle: Path, key: bytes) -> dict:
    """Decrypt every chunk without writing anything."""
    name = str(bundle)
    with open(bundle, "rb") as handle:
        header, line = _read_header(handle, name)
        _check_key(header, key, name)
        _plaintext(handle, header, line, key, name).drain()
    return header
