"""The image embedders of the FORB neural baselines, built with open_clip or timm.

Each ``Embedder`` says how FORB's scripts fed its model (crop size, interpolation,
normalisation; BASELINES.md A.3) and how to build it with one of three kinds of weights:
``published`` (fetched by open_clip/timm from their hubs on the user's machine), a local
checkpoint ``PATH`` (air-gapped clusters), or ``random`` (the same architecture, randomly
initialised with a fixed seed, for tests and smoke runs only). ``random-tiny``, which --help
does not show, is for the test suite only: the same library, input pipeline and output size
with one narrow block, so tests of the pipeline (batching, caching, resuming, torchrun) take
seconds; each full architecture is tested once on its own.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from baselines.errors import BaselineUsageError


CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RANDOM_SEED = 0
TINY_WEIGHTS = "random-tiny"
# One block 32 wide (timm) or 64 wide (open_clip, whose heads are 64 wide): a stand-in for tests.
TINY_TIMM = {"depth": 1, "embed_dim": 32, "num_heads": 2}
TINY_VISION = {"layers": 1, "width": 64}
TINY_TEXT = {"layers": 1, "width": 64, "heads": 1}


@dataclass(frozen=True)
class Embedder:
    baseline: str
    library: str                 # "open_clip" or "timm"
    architecture: str            # open_clip model config or timm model name
    pretrained: str | None       # open_clip pretrained tag (the timm name carries its own)
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    dim: int
    interpolation: str = "bicubic"

    @property
    def weights_id(self) -> str:
        tag = f" pretrained={self.pretrained}" if self.pretrained else ""
        return f"{self.library}:{self.architecture}{tag}"


EMBEDDERS = {e.baseline: e for e in (
    # FORB ran OpenAI's clip.load('ViT-L/14@336px'); open_clip's quickgelu config matches it
    # (the plain ViT-L-14-336 config would silently use GELU with these weights).
    Embedder("forb-clip-vit-l14-336", "open_clip", "ViT-L-14-336-quickgelu", "openai",
             336, CLIP_MEAN, CLIP_STD, 768),
    Embedder("forb-dino-vit-s8", "timm", "vit_small_patch8_224.dino", None,
             224, IMAGENET_MEAN, IMAGENET_STD, 384),
    Embedder("forb-dinov2-vit-l14", "timm", "vit_large_patch14_dinov2.lvd142m", None,
             224, IMAGENET_MEAN, IMAGENET_STD, 1024),
)}


def build_embedder(embedder: Embedder, weights: str) -> tuple[Callable, object, dict]:
    """(forward function images -> embeddings, the nn.Module, weights record)."""
    import torch

    kind = weights_kind(weights)
    tiny = weights == TINY_WEIGHTS
    torch.manual_seed(RANDOM_SEED)  # random weights are the same in every run (resumes)
    if embedder.library == "open_clip":
        model, forward = _build_open_clip(embedder, kind, weights, tiny)
    else:
        model, forward = _build_timm(embedder, kind, weights, tiny)
    if kind == "random":
        _open_layer_scales(model)
    model.eval()
    random_id = (f"{embedder.weights_id} (random init, torch seed {RANDOM_SEED}"
                 + (", tiny test architecture: one narrow block)" if tiny else ")"))
    record = {
        "kind": kind,
        "id": embedder.weights_id if kind != "random" else random_id,
        "state_sha256": state_digest(model),
    }
    if kind == "file":
        record["file"] = str(Path(weights).resolve())
        record["file_sha256"] = file_digest(Path(weights))
    return forward, model, record


def weights_kind(weights: str) -> str:
    """--weights -> "published", "random" (random-tiny too) or "file" (a checkpoint)."""
    if weights in ("random", TINY_WEIGHTS, "published"):
        return "published" if weights == "published" else "random"
    if not Path(weights).is_file():
        raise BaselineUsageError(f"--weights {weights}: no such checkpoint file (use "
                                 "published, random or the path of a checkpoint)")
    return "file"


def _build_open_clip(embedder: Embedder, kind: str, weights: str, tiny: bool = False):
    import open_clip

    pretrained = {"published": embedder.pretrained, "file": weights, "random": None}[kind]
    overrides = {}
    if tiny:
        config = open_clip.get_model_config(embedder.architecture)
        overrides = {"vision_cfg": {**config["vision_cfg"], **TINY_VISION},
                     "text_cfg": {**config["text_cfg"], **TINY_TEXT}}
    model = open_clip.create_model(embedder.architecture, pretrained=pretrained, **overrides)
    # Only the image tower is used; dropping the text tower halves the memory.
    for name in ("transformer", "token_embedding", "ln_final"):
        if hasattr(model, name):
            setattr(model, name, None)
    return model, lambda x: model.encode_image(x)


def _build_timm(embedder: Embedder, kind: str, weights: str, tiny: bool = False):
    import timm

    options: dict = {"num_classes": 0, **(TINY_TIMM if tiny else {})}
    if kind == "file":
        options["pretrained_cfg_overlay"] = {"file": str(weights)}
    model = timm.create_model(embedder.architecture, pretrained=kind != "random", **options)
    if tuple(model.patch_embed.img_size) != (embedder.crop, embedder.crop):
        _resize_position_grid(model, embedder.crop)
    return model, lambda x: model(x)


def _open_layer_scales(model) -> None:
    """DINOv2 initialises its LayerScale factors to 1e-5, which leaves a randomly initialised
    network's output almost independent of the image. Random smoke-test weights set them to 1
    so that features, and so rankings, still depend on the input."""
    import torch

    with torch.no_grad():
        for module in model.modules():
            gamma = getattr(module, "gamma", None)
            if isinstance(gamma, torch.nn.Parameter) and type(module).__name__ == "LayerScale":
                gamma.fill_(1.0)


def _resize_position_grid(model, crop: int) -> None:
    """Run DINOv2 (trained at 518 px) at ``crop`` px the way its torch.hub model does: the
    37 x 37 position grid is resampled bicubically by the scale factor (16 + 0.1) / 37,
    without antialiasing. timm's own resampling antialiases and gives other features."""
    import torch
    import torch.nn.functional as F

    old = model.pos_embed.detach().float()
    prefix = 0 if getattr(model, "no_embed_class", False) else model.num_prefix_tokens
    old_side = int(round((old.shape[1] - prefix) ** 0.5))
    model.set_input_size(img_size=(crop, crop))
    new_side = model.patch_embed.grid_size[0]
    grid = old[:, prefix:].reshape(1, old_side, old_side, -1).permute(0, 3, 1, 2)
    factor = (new_side + 0.1) / old_side
    grid = F.interpolate(grid, scale_factor=(factor, factor), mode="bicubic",
                         align_corners=False, antialias=False)
    if tuple(grid.shape[-2:]) != (new_side, new_side):
        raise RuntimeError(f"position grid resampled to {tuple(grid.shape[-2:])}, "
                           f"expected {new_side} x {new_side}")
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_side * new_side, -1)
    resized = torch.cat([old[:, :prefix], grid], dim=1).to(model.pos_embed.dtype)
    model.pos_embed = torch.nn.Parameter(resized, requires_grad=False)


def state_digest(model) -> str:
    """sha256 over the parameter and buffer tensors, by name: identifies the weights whatever
    file or hub they came from."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        array = tensor.detach().cpu().contiguous()
        digest.update(str(array.dtype).encode())
        if array.numel():
            digest.update(array.view(-1).view(torch.uint8).numpy().tobytes())
    return "sha256:" + digest.hexdigest()


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def normaliser(embedder: Embedder, device):
    """uint8 N x H x W x 3 batch -> normalised float N x 3 x H x W on ``device``."""
    import torch

    mean = torch.tensor(embedder.mean, device=device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(embedder.std, device=device).view(1, 3, 1, 1) * 255.0

    def normalise(batch):
        x = batch.to(device, non_blocking=True).permute(0, 3, 1, 2).float()
        return (x - mean) / std

    return normalise

