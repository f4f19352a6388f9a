"""The bundled baselines: what each one is, what it needs and which published row it reproduces.

Pure data, importable without torch: `leaderboard baseline list`, the README and the website
read it. Running a baseline imports its family's module (``baselines.forb_neural`` or
``baselines.bow``) only then. The published numbers are never typed here: they come from the
transcribed tables in site/data/published, matched by ``published_source`` and
``published_method``.
"""

from __future__ import annotations

from dataclasses import dataclass

from evaluator.published import load_published


@dataclass(frozen=True)
class BaselineSpec:
    name: str
    benchmark: str
    boards: tuple[str, ...]
    family: str                 # module that runs it: "forb_neural" or "bow"
    method: str                 # leaderboard method name of the entries it writes
    modality: str
    backbone: str
    pretraining_data: str
    weights: str                # what --weights published loads, in words
    published_source: str       # key of the paper in site/data/published
    published_method: str       # the paper's row name
    gpu_time: str               # measured or estimated wall time on one GPU, full FORB
    cpu_note: str               # what a CPU-only machine can do
    notes: str                  # published behaviour reproduced, and any deviation
    paper_url: str | None = None
    code_url: str | None = None

    def command(self, board: str = "forb") -> str:
        board_flag = "" if board == "forb" else f" --board {board}"
        return (f"leaderboard baseline run {self.name} --data FORB_ROOT{board_flag} "
                f"--out submissions/forb/{self.name}{'' if board == 'forb' else '-subset'}")


_FORB_PAPER = "https://arxiv.org/abs/2309.16249"
_FORB_CODE = "https://github.com/pxiangwu/FORB"

BASELINES: dict[str, BaselineSpec] = {spec.name: spec for spec in (
    BaselineSpec(
        name="forb-clip-vit-l14-336", benchmark="forb", boards=("forb", "forb-subset"),
        family="forb_neural", method="CLIP ViT-L/14@336px", modality="RGB",
        backbone="ViT-L/14 at 336 px (OpenAI CLIP image tower)",
        pretraining_data="OpenAI WIT-400M (image-text pairs)",
        weights="open_clip ViT-L-14-336-quickgelu, pretrained='openai'",
        published_source="forb-2023", published_method="CLIP",
        notes="Multi-scale test-time averaging as FORB ran it: database images at 7 scales "
              "(2 to 0.25), queries at 3 (1.414 to 0.707); the shorter side is resized "
              "(bicubic) to int(336 x scale) and centre-cropped to 336, with a black border "
              "where the image is smaller; each scale's embedding is L2-normalised, averaged "
              "and normalised again. Exact cosine top-10. FORB embedded one image at a time; "
              "here images are batched, in fp16 on GPU (FORB's OpenAI CLIP also ran fp16 on "
              "GPU), and the OOD database reuses the full database's features.",
        gpu_time="estimate 20-40 min (423k forwards, fp16, batched)",
        cpu_note="not practical (about 3 s per forward on 2 cores)",
        paper_url=_FORB_PAPER, code_url=_FORB_CODE),
    BaselineSpec(
        name="forb-dino-vit-s8", benchmark="forb", boards=("forb", "forb-subset"),
        family="forb_neural", method="DINO ViT-S/8", modality="RGB",
        backbone="ViT-S/8 at 224 px (DINO)", pretraining_data="ImageNet-1k (self-supervised)",
        weights="timm vit_small_patch8_224.dino",
        published_source="forb-2023", published_method="DINO",
        notes="Multi-scale test-time averaging as FORB ran it (7 database scales, 3 query "
              "scales, bicubic resize of the shorter side to int(224 x scale), centre crop "
              "224 with a black border at small scales, ImageNet normalisation); the CLS "
              "token after the final norm. Exact cosine top-10; batched, fp16 on GPU.",
        gpu_time="estimate 15-25 min", cpu_note="about 1-2 days on 2 cores",
        paper_url=_FORB_PAPER, code_url=_FORB_CODE),
    BaselineSpec(
        name="forb-dinov2-vit-l14", benchmark="forb", boards=("forb", "forb-subset"),
        family="forb_neural", method="DINOv2 ViT-L/14", modality="RGB",
        backbone="ViT-L/14 at 224 px (DINOv2, no registers)",
        pretraining_data="LVD-142M (self-supervised)",
        weights="timm vit_large_patch14_dinov2.lvd142m",
        published_source="forb-2023", published_method="DINOv2",
        notes="Multi-scale test-time averaging as FORB ran it (as for DINO, crop 224). The "
              "position grid is resampled from 37 x 37 to 16 x 16 as the torch.hub model "
              "FORB used does it (bicubic by the factor 16.1/37, no antialiasing), not with "
              "timm's antialiased resampling. CLS token after the final norm; exact cosine "
              "top-10; batched, fp16 on GPU.",
        gpu_time="estimate 15-30 min", cpu_note="not practical",
        paper_url=_FORB_PAPER, code_url=_FORB_CODE),
    BaselineSpec(
        name="forb-bow", benchmark="forb", boards=("forb", "forb-subset"),
        family="bow", method="BoW (RootSIFT, tf-idf)", modality="RGB",
        backbone="none (RootSIFT + visual-word codebook)", pretraining_data="none",
        weights="none (the codebook is built from FORB's images_for_building_codebook.txt)",
        published_source="forb-2023", published_method="BoW",
        notes="RootSIFT (711 keypoints, shorter side 480), a k-means codebook on FORB's "
              "images_for_building_codebook.txt, hard assignment with an HNSW index, tf-idf "
              "with document frequencies from the codebook images, cosine top-10, "
              "candidates sharing fewer than 2 words dropped.",
        gpu_time="estimate 1-2 h (1M-word k-means on GPU; SIFT on all CPU cores)",
        cpu_note="runs with a smaller codebook (--codebook-size, default 65,536 on CPU); "
                 "hours on a many-core machine",
        paper_url=_FORB_PAPER, code_url=_FORB_CODE),
    BaselineSpec(
        name="forb-bow-rerank", benchmark="forb", boards=("forb", "forb-subset"),
        family="bow", method="BoW + RANSAC re-ranking", modality="RGB",
        backbone="none (RootSIFT + visual-word codebook)", pretraining_data="none",
        weights="none (the codebook is built from FORB's images_for_building_codebook.txt)",
        published_source="forb-2023", published_method="BoW (+ rerank)",
        notes="As forb-bow, then RANSAC homography verification of the 10 candidates "
              "(mutual ratio test 0.8, reprojection 10 px, FORB's homography and box checks), "
              "survivors sorted by inlier count. FORB kept the tf-idf cosine as the score, "
              "which is not monotone after re-ranking; the evaluator needs non-increasing "
              "scores, so each score is the running minimum of the tf-idf cosines down the "
              "re-ranked list (mAP is unchanged; t-mAP can differ slightly).",
        gpu_time="estimate 1.5-3 h (as forb-bow, plus RANSAC on the CPU cores)",
        cpu_note="as forb-bow, plus 10-45 min of RANSAC per CPU core",
        paper_url=_FORB_PAPER, code_url=_FORB_CODE),
)}


def get_baseline(name: str) -> BaselineSpec:
    try:
        return BASELINES[name]
    except KeyError:
        raise KeyError(f"unknown baseline {name!r}; `leaderboard baseline list` shows "
                       f"{', '.join(BASELINES)}") from None


def published_rows(spec: BaselineSpec, board_id: str) -> list[tuple[str, dict]]:
    """(table label, values) of every published row this baseline reproduces on a board id
    such as 'forb-v1'."""
    out = []
    for source in load_published():
        if source.source.key != spec.published_source:
            continue
        for table in source.tables:
            if table.board != board_id:
                continue
            for row in table.rows:
                if row.method == spec.published_method:
                    out.append((table.label, row.values))
    return out


def reproducing(source_key: str, method: str, benchmark: str) -> BaselineSpec | None:
    """The bundled baseline that reproduces a published row, if any."""
    for spec in BASELINES.values():
        if (spec.benchmark == benchmark and spec.published_source == source_key
                and spec.published_method == method):
            return spec
    return None
