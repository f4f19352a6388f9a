"""FORB's multi-scale test-time inputs (BASELINES.md A.2), without torchvision.

For a scale s the shorter side is resized to ``int(crop * s)`` (bicubic, as torchvision's
``Resize`` does on a PIL image) and the result is centre-cropped to ``crop`` x ``crop``. When the
resized image is smaller than the crop, it is padded with black first, as torchvision's
``CenterCrop`` does: the small scales are a zoomed-out image on a black border.
"""

from __future__ import annotations

import numpy as np

DATABASE_SCALES = (2.0, 1.414, 1.0, 0.707, 0.5, 0.353, 0.25)
QUERY_SCALES = (1.414, 1.0, 0.707)


def resize_short_side(width: int, height: int, short: int) -> tuple[int, int]:
    """(new width, new height) with the shorter side ``short`` and the longer side scaled
    and truncated to an int, as torchvision computes it."""
    if width <= height:
        return short, int(short * height / width)
    return int(short * width / height), short


def scaled_crop(image, crop: int, scale: float, resample: int) -> np.ndarray:
    """One scale of one image: an H x W x 3 uint8 array of side ``crop``."""
    new_w, new_h = resize_short_side(image.width, image.height, int(crop * scale))
    array = np.asarray(image.resize((new_w, new_h), resample))
    return center_crop(array, crop)


def center_crop(array: np.ndarray, crop: int) -> np.ndarray:
    height, width = array.shape[:2]
    if crop > width or crop > height:
        # Pad the missing part with zeros, the extra pixel (odd difference) after the image.
        pad_w = max(crop - width, 0)
        pad_h = max(crop - height, 0)
        padded = np.zeros((max(height, crop), max(width, crop), array.shape[2]), array.dtype)
        top, left = pad_h // 2, pad_w // 2
        padded[top:top + height, left:left + width] = array
        array = padded
        height, width = array.shape[:2]
    top = int(round((height - crop) / 2.0))
    left = int(round((width - crop) / 2.0))
    return np.ascontiguousarray(array[top:top + crop, left:left + crop])


def crop_sizes(crop: int, scales: tuple[float, ...]) -> list[int]:
    """Shorter-side sizes before cropping, e.g. 672, 475, 336, 237, 168, 118, 84 for 336."""
    return [int(crop * s) for s in scales]
