"""What `leaderboard baseline run` passes to every baseline family."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

PUBLISHED_TOP_K = 10
MAX_TOP_K = 100  # the evaluator accepts at most 100 candidates per query


FORB_ONLY = ("top_k", "chunk_images", "codebook_size", "kmeans_iterations")
ANOMALY_ONLY = ("categories", "preprocess", "blur", "max_train_samples", "eyecandies_light",
                "eyecandies_background", "coreset_fraction", "seed")


@dataclass
class RunOptions:
    data: Path
    out: Path
    board: str | None = None      # None: the baseline's first board
    device: str = "auto"          # resolved to "cpu" or "cuda[:N]" before a family runs
    weights: str = "published"    # "published", "random" or a checkpoint path
    batch_size: int | None = None  # images per forward batch; None: the family's default
    workers: int | None = None    # data-loading / SIFT processes; None: all CPU cores
    top_k: int = PUBLISHED_TOP_K
    precision: str = "auto"       # "fp16" or "fp32"; auto: fp16 on GPU, fp32 on CPU
    cache: Path | None = None     # resumable feature cache; default beside --out
    chunk_images: int = 512       # images per cache chunk: a kill loses at most one chunk
    codebook_size: int | None = None   # BoW: None means 1M words on GPU, 65,536 on CPU
    kmeans_iterations: int = 20
    # Anomaly-detection baselines (MVTec 3D-AD, Eyecandies)
    categories: list[str] | None = None    # None: every category the dataset root holds
    preprocess: bool | None = None         # None: the dataset's published default
    blur: str = "published"                # "published" (8-bit PIL) or "float"
    max_train_samples: int | None = None   # None: the baseline's published default
    eyecandies_light: str = "image_4"      # M3DM's code read image_4 (left spotlight)
    eyecandies_background: str = "published"   # or "zero" (see baselines.anomaly.eyecandies_cloud)
    coreset_fraction: float = 0.1
    seed: int = 0                          # the random projection's seed

    @property
    def cache_dir(self) -> Path:
        if self.cache is not None:
            return self.cache
        # One cache beside the entries, shared by every run there (forb-bow and
        # forb-bow-rerank reuse the same SIFT, codebook and words); its subfolders are keyed
        # by everything their contents depend on.
        return self.out.parent / ".baseline-cache"

    def as_settings(self, benchmark: str = "forb") -> dict:
        """The options that apply to a benchmark's baselines, for the run record."""
        settings = asdict(self)
        for key in (ANOMALY_ONLY if benchmark == "forb" else FORB_ONLY):
            settings.pop(key)
        for key in ("data", "out", "cache"):
            settings[key] = None if settings[key] is None else str(settings[key])
        settings["cache"] = str(self.cache_dir)
        return settings
