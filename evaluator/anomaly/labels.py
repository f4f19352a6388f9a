"""Ground-truth masks under protocol v1: 8-bit grey (PIL convert('L')), resized to 224 x 224
with PIL's NEAREST, anomalous where > 127. Errors name the file, never its content."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from evaluator.anomaly.datasets import folder_label
from evaluator.anomaly.task import MAP_SIZE, AnomalyTask
from evaluator.metrics.anomaly import EIGHT_CONNECTED, Regions
from evaluator.registry import BoardDataError

# A real mask is at most a few MB; refuse decompression bombs early.
MAX_MASK_PIXELS = 4096 * 4096
DECODE_WORKERS = 2


@dataclass
class RegionLabelling:
    """The connected regions (8-connectivity) of every mask, found once and shared by the
    score, its bootstrap and paired bootstraps: ``ids`` numbers the region of each anomalous
    pixel within its mask (masks in order, pixels in C order), ``per_mask`` counts regions,
    ``pixel_start[i]`` is where mask i's pixels start in ``ids``."""

    ids: np.ndarray         # int32
    per_mask: np.ndarray    # (N,) int64
    pixel_start: np.ndarray  # (N + 1,) int64

    @classmethod
    def of(cls, parts: list[tuple[np.ndarray, int]]) -> RegionLabelling:
        ids = [p[0] for p in parts]
        sizes = np.fromiter((len(i) for i in ids), dtype=np.int64, count=len(ids))
        return cls(np.concatenate(ids) if ids else np.zeros(0, dtype=np.int32),
                   np.fromiter((p[1] for p in parts), dtype=np.int64, count=len(parts)),
                   np.concatenate([[0], np.cumsum(sizes)]))

    def regions(self, members: slice, masks: np.ndarray, maps: np.ndarray) -> Regions:
        """What Regions(masks, maps) makes for the masks ``members``, without labelling."""
        per_mask = self.per_mask[members]
        local = self.ids[self.pixel_start[members.start]:self.pixel_start[members.stop]]
        pixels = np.diff(self.pixel_start[members.start:members.stop + 1])
        first = np.cumsum(per_mask) - per_mask  # each mask's first region number
        regions = Regions.__new__(Regions)
        regions.count = int(per_mask.sum())
        regions.image = np.repeat(np.arange(len(per_mask), dtype=np.int64), per_mask)
        regions.ids = local + np.repeat(first, pixels)
        regions.scores = maps[masks]
        regions.sizes = np.bincount(regions.ids, minlength=regions.count)
        return regions


def label_regions(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """The region number (from 0) of each anomalous pixel of a mask, and the region count."""
    from scipy import ndimage  # imported here: it costs 0.2 s that FORB runs never need

    labeled, n = ndimage.label(mask, structure=EIGHT_CONNECTED)
    return (labeled[mask] - 1).astype(np.int32), n


@dataclass
class AnomalyLabels:
    """Masks are kept bit-packed: as bool they would take half as much memory as float16
    maps, for one bit of information."""

    packed: np.ndarray  # (N, ceil(H * W / 8)) uint8: each mask's pixels bit-packed (C order)
    labels: np.ndarray  # (N,) int8: 1 anomalous, 0 good
    digest: str
    labelling: RegionLabelling | None = field(default=None, repr=False)
    shape: tuple[int, int] = (MAP_SIZE, MAP_SIZE)  # of a mask

    @classmethod
    def of_masks(cls, masks: np.ndarray, labels: np.ndarray, digest: str) -> AnomalyLabels:
        """From (N, H, W) bool masks."""
        packed = np.packbits(masks.reshape(len(masks), -1), axis=1)
        return cls(packed, labels, digest, shape=tuple(masks.shape[1:]))

    @property
    def masks(self) -> np.ndarray:
        """(N, H, W) bool: every mask unpacked (a new array, 8x the packed memory)."""
        return self.masks_of(slice(0, len(self.packed)))

    def masks_of(self, members: slice) -> np.ndarray:
        """The masks ``members``, unpacked to (n, H, W) bool."""
        height, width = self.shape
        bits = np.unpackbits(self.packed[members], axis=1, count=height * width)
        return bits.view(bool).reshape(len(bits), height, width)

    def regions(self, members: slice, maps: np.ndarray,
                masks: np.ndarray | None = None) -> Regions:
        """The regions of the masks ``members`` (unpacked: ``masks``) with the scores of
        ``maps`` (theirs)."""
        masks = self.masks_of(members) if masks is None else masks
        if self.labelling is None:
            return Regions(masks, maps)
        return self.labelling.regions(members, masks, maps)


def read_mask(path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError  # only anomaly-detection boards need PIL

    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_MASK_PIXELS:
                raise BoardDataError(f"{path.name}: mask of {image.width}x{image.height} is too "
                                     "large")
            # convert("L") of an "L" image would only copy it.
            grey = image if image.mode == "L" else image.convert("L")
            grey = grey.resize((MAP_SIZE, MAP_SIZE), Image.NEAREST)
            return np.asarray(grey) > 127
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise BoardDataError(f"{path}: not a readable mask image") from None


def _read_and_label(path) -> tuple[np.ndarray, tuple[np.ndarray, int]]:
    mask = read_mask(path)
    return mask, label_regions(mask)


def load_labels(task: AnomalyTask) -> AnomalyLabels:
    packed = np.zeros((task.n_samples, MAP_SIZE * MAP_SIZE // 8), dtype=np.uint8)
    parts = []
    # PIL releases the GIL while decoding PNGs, so threads use both cores; more threads
    # would only take the GIL from the predictions being read meanwhile (prefetch_labels).
    with ThreadPoolExecutor(max_workers=DECODE_WORKERS) as pool:
        for i, (mask, labelled) in enumerate(pool.map(_read_and_label, task.mask_paths)):
            packed[i] = np.packbits(mask)
            parts.append(labelled)
    if task.layout.label_from_folder:
        labels = np.asarray([folder_label(s) for s in task.samples], dtype=np.int8)
    else:
        labels = packed.any(axis=1).astype(np.int8)
    digest = hashlib.sha256(b"anomaly-labels/1\n")
    for sample, bits, label in zip(task.samples, packed, labels):
        digest.update(f"{sample}\t{int(label)}\n".encode())
        digest.update(bits.tobytes())
    return AnomalyLabels(packed, labels, "sha256:" + digest.hexdigest(),
                         RegionLabelling.of(parts))
