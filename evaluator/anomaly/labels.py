"""Ground-truth masks under protocol v1: 8-bit grey (PIL convert('L')), resized to 224 x 224
with PIL's NEAREST, anomalous where > 127. Errors name the file, never its content."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from evaluator.anomaly.datasets import folder_label
from evaluator.anomaly.task import MAP_SIZE, AnomalyTask
from evaluator.registry import BoardDataError

# A real mask is at most a few MB; refuse decompression bombs early.
MAX_MASK_PIXELS = 4096 * 4096


@dataclass
class AnomalyLabels:
    masks: np.ndarray   # (N, 224, 224) bool
    labels: np.ndarray  # (N,) int8: 1 anomalous, 0 good
    digest: str


def read_mask(path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError  # only anomaly-detection boards need PIL

    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_MASK_PIXELS:
                raise BoardDataError(f"{path.name}: mask of {image.width}x{image.height} is too "
                                     "large")
            grey = image.convert("L").resize((MAP_SIZE, MAP_SIZE), Image.NEAREST)
            return np.asarray(grey) > 127
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise BoardDataError(f"{path}: not a readable mask image") from None


def load_labels(task: AnomalyTask) -> AnomalyLabels:
    masks = np.zeros((task.n_samples, MAP_SIZE, MAP_SIZE), dtype=bool)
    # PIL releases the GIL while decoding PNGs, so threads use both cores.
    with ThreadPoolExecutor(max_workers=4) as pool:
        for i, mask in enumerate(pool.map(read_mask, task.mask_paths)):
            masks[i] = mask
    if task.layout.label_from_folder:
        labels = np.asarray([folder_label(s) for s in task.samples], dtype=np.int8)
    else:
        labels = masks.reshape(task.n_samples, -1).any(axis=1).astype(np.int8)
    digest = hashlib.sha256(b"anomaly-labels/1\n")
    for sample, mask, label in zip(task.samples, masks, labels):
        digest.update(f"{sample}\t{int(label)}\n".encode())
        digest.update(np.packbits(mask).tobytes())
    return AnomalyLabels(masks, labels, "sha256:" + digest.hexdigest())
