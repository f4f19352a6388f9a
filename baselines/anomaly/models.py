"""The RGB patch-feature extractors of the anomaly baselines, built with timm.

- ``wrn50``: Back to the Feature's "RGB iNet": WideResNet-50-2, layer2 (512 channels, 28 x 28)
  and layer3 (1024, 14 x 14), each average-pooled 3 x 3 (stride 1, no padding) and then
  adaptively to 28 x 28, concatenated: 784 patches x 1536.
- ``dino_vitb8``: M3DM's RGB branch: DINO ViT-B/8 at 224 px, all 12 blocks and the final
  LayerNorm, CLS token dropped: 784 patches x 768.

Input: the image squashed to 224 x 224 (PIL bicubic, as torchvision's Resize((224, 224)) does
on a PIL image) and ImageNet-normalised. Weights: ``published`` (fetched by timm on the user's
machine), a checkpoint ``PATH``, or ``random`` (seeded; smoke tests only). ``random-tiny``
(tests only, not in --help): WideResNet with one bottleneck per stage (same channels), or a
ViT with one narrow block, so pipeline tests take seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from baselines.forb.models import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    TINY_TIMM,
    TINY_WEIGHTS,
    file_digest,
    state_digest,
    weights_kind,
)

IMAGE_SIZE = 224
GRID = 28
RANDOM_SEED = 0


@dataclass(frozen=True)
class PatchExtractor:
    key: str
    timm_name: str
    dim: int
    description: str


EXTRACTORS = {e.key: e for e in (
    # Unpinned timm's plain `wide_resnet50_2` resolves to these weights today; which ones the
    # 2022 runs got is not recorded (BASELINES.md F.6). --weights PATH loads others.
    PatchExtractor("wrn50", "wide_resnet50_2.racm_in1k", 1536,
                   "WideResNet-50-2 layers 2+3, 3x3 average, 28 x 28"),
    PatchExtractor("dino_vitb8", "vit_base_patch8_224.dino", 768,
                   "DINO ViT-B/8, last block + final norm, 28 x 28 tokens"),
)}


def resize_rgb(rgb: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 -> 224 x 224 x 3 uint8, a bicubic squash (not a crop)."""
    return np.asarray(Image.fromarray(rgb).resize((IMAGE_SIZE, IMAGE_SIZE), Image.BICUBIC))


class RgbPatchFeatures:
    """Batches of 224 x 224 uint8 images -> (N, 784, dim) float32 patch features."""

    def __init__(self, extractor: PatchExtractor, weights: str, device: str,
                 half: bool = False):
        import torch

        self.extractor = extractor
        self.device = device
        self.half = half
        self.model, self.weights = _build(extractor, weights)
        self.model.to(device).eval()
        self.mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1) * 255.0
        self.std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1) * 255.0
        self.pool3 = torch.nn.AvgPool2d(3, stride=1)
        self.to_grid = torch.nn.AdaptiveAvgPool2d((GRID, GRID))

    def __call__(self, images: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(images)).to(self.device)
        x = (x.permute(0, 3, 1, 2).float() - self.mean) / self.std
        with torch.inference_mode(), torch.autocast(
                "cuda", dtype=torch.float16, enabled=self.half and self.device.startswith("cuda")):
            if self.extractor.key == "wrn50":
                maps = [self.to_grid(self.pool3(m.float())) for m in self.model(x)]
                patches = torch.cat(maps, dim=1).flatten(2).transpose(1, 2)
            else:
                tokens = self.model.forward_features(x)
                patches = tokens[:, self.model.num_prefix_tokens:]
        return patches.float().cpu().numpy()


def _build(extractor: PatchExtractor, weights: str):
    import timm
    import torch

    kind = weights_kind(weights)
    tiny = weights == TINY_WEIGHTS
    options: dict = {}
    if kind == "file":
        options["pretrained_cfg_overlay"] = {"file": str(weights)}
    if extractor.key == "wrn50":
        options.update(features_only=True, out_indices=(2, 3))
        if tiny:
            options.update(layers=(1, 1, 1, 1))
    else:
        options.update(num_classes=0, **(TINY_TIMM if tiny else {}))
    torch.manual_seed(RANDOM_SEED)  # random weights are the same in every run (resumes)
    model = timm.create_model(extractor.timm_name, pretrained=kind != "random", **options)
    record = {"kind": kind,
              "id": f"timm:{extractor.timm_name}" + (
                  f" (random init, torch seed {RANDOM_SEED}"
                  + (", tiny test architecture)" if tiny else ")") if kind == "random" else ""),
              "state_sha256": state_digest(model)}
    if kind == "file":
        record["file"] = str(Path(weights).resolve())
        record["file_sha256"] = file_digest(Path(weights))
    return model, record
