"""Decoding submitted anomaly maps and bringing them to the protocol's 224 x 224.

A map arrives as base64 of a C-order little-endian float16/float32 array, optionally
zlib-compressed. Decoding never trusts the payload: sizes are checked before anything is
allocated and decompression stops at the expected size, so a zlib bomb costs nothing.
"""

from __future__ import annotations

import base64
import binascii
import zlib

import numpy as np

from evaluator.anomaly.task import MAP_SIZE

MAX_SIDE = 1024
DTYPES = {"float16": np.dtype("<f2"), "float32": np.dtype("<f4")}


class MapError(ValueError):
    """The map payload cannot be used; the message says why."""


def decode_map(shape: tuple[int, int], dtype: str, data: str, compression: str | None,
               out: np.ndarray | None = None) -> np.ndarray:
    """Return the map at MAP_SIZE x MAP_SIZE (written into ``out`` when given, to avoid a
    temporary copy; float32 otherwise), or raise MapError."""
    height, width = shape
    expected = height * width * DTYPES[dtype].itemsize
    # base64 is 4 characters per 3 bytes; compressed data may be smaller, never much larger.
    if compression is None and len(data) != 4 * ((expected + 2) // 3):
        raise MapError(f"map.data holds {len(data)} base64 characters, but a {height}x{width} "
                       f"{dtype} map needs {4 * ((expected + 2) // 3)} ({expected} bytes)")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MapError(f"map.data is not valid base64 ({exc})") from None
    if compression == "zlib":
        raw = _inflate(raw, expected)
    if len(raw) != expected:
        raise MapError(f"map.data decodes to {len(raw)} bytes, but a {height}x{width} {dtype} "
                       f"map is {expected} bytes")
    values = np.frombuffer(raw, dtype=DTYPES[dtype]).reshape(height, width)
    if not _all_finite(values):
        raise MapError("the map holds NaN or infinite values")
    if out is None:
        out = np.empty((MAP_SIZE, MAP_SIZE), dtype=np.float32)
    if values.shape == (MAP_SIZE, MAP_SIZE):
        np.copyto(out, values)
    else:
        out[...] = resize_bilinear(values.astype(np.float32), MAP_SIZE)
    return out


# A float is NaN or infinite exactly when its exponent bits are all ones.
_EXPONENT_BITS = {np.dtype("<f2"): (np.dtype("<u2"), 0x7C00),
                  np.dtype("<f4"): (np.dtype("<u4"), 0x7F800000)}


def _all_finite(values: np.ndarray) -> bool:
    """np.isfinite(values).all() as an integer test: NumPy emulates float16 arithmetic,
    which made the check a sixth of the time spent decoding a float16 map."""
    bits, exponent = _EXPONENT_BITS[values.dtype]
    return not ((values.view(bits) & exponent) == exponent).any()


def _inflate(raw: bytes, expected: int) -> bytes:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(raw, expected + 1)
    except zlib.error as exc:
        raise MapError(f"map.data is not a valid zlib stream ({exc})") from None
    if len(out) > expected or inflater.unconsumed_tail:
        raise MapError(f"map.data decompresses to more than the {expected} bytes its shape "
                       "and dtype allow")
    if not inflater.eof:
        raise MapError("map.data ends before the end of its zlib stream (truncated)")
    if inflater.unused_data:
        raise MapError("map.data has bytes after the end of its zlib stream")
    return out


def _axis_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Half-pixel-centre bilinear sampling positions, as torch's interpolate with
    align_corners=False computes them for float32 maps on the CPU: scale = n_in / n_out in
    float32, src = scale * (dst + 0.5) - 0.5 rounded once (torch's kernel uses a fused
    multiply-add; the float64 product here is exact, so one rounding to float32 matches it),
    clamped at 0."""
    scale = np.float64(np.float32(n_in) / np.float32(n_out))
    src = (scale * (np.arange(n_out) + 0.5) - 0.5).astype(np.float32)
    src = np.maximum(src, np.float32(0.0))
    lower = np.floor(src).astype(np.int64)
    upper = np.where(lower < n_in - 1, lower + 1, lower)
    weight = np.clip(src - lower.astype(np.float32), 0, 1).astype(np.float32)
    return lower, upper, weight


def resize_bilinear(values: np.ndarray, size: int) -> np.ndarray:
    """Resize a 2-D float32 map to size x size (unchanged if it already is)."""
    if values.shape == (size, size):
        return values
    y0, y1, wy = _axis_weights(values.shape[0], size)
    x0, x1, wx = _axis_weights(values.shape[1], size)
    # Interpolate along x first, then y, as torch's separable CPU kernel does.
    cols = values[:, x0] * (1 - wx)[None, :] + values[:, x1] * wx[None, :]
    return cols[y0] * (1 - wy)[:, None] + cols[y1] * wy[:, None]


def encode_map(values: np.ndarray, dtype: str = "float16", compression: str | None = "zlib"
               ) -> dict:
    """The ``map`` object of a prediction line for a 2-D array: the inverse of decode_map.
    Values that do not fit the dtype raise MapError rather than turning into infinities."""
    if values.ndim != 2 or not 1 <= min(values.shape) <= max(values.shape) <= MAX_SIDE:
        raise MapError(f"a map must be 2-D with sides 1 to {MAX_SIDE}, not {values.shape}")
    array = np.ascontiguousarray(values, dtype=DTYPES[dtype])
    if not np.isfinite(array).all():
        raise MapError(f"the map does not fit {dtype} (largest magnitude "
                       f"{float(np.abs(values).max()):.6g}) or holds NaN")
    raw = array.tobytes()
    if compression == "zlib":
        raw = zlib.compress(raw, 6)
    out = {"shape": list(array.shape), "dtype": dtype,
           "data": base64.b64encode(raw).decode("ascii")}
    if compression:
        out["compression"] = compression
    return out
