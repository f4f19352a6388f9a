"""The bundled baselines: what each one is, what it needs and which published row it reproduces.

Pure data, importable without torch: `leaderboard baseline list`, the README and run-all read
it. Running a baseline imports its family's module (``baselines.forb.neural``,
``baselines.forb.bow`` or ``baselines.anomaly.pipeline``) only then. Which published rows a
baseline reproduces, its weights and its GPU time are in site/data/baselines.json, which the
site reads too (evaluator/reproductions.py); this module adds the rest. The published numbers
are never typed here: they come from the transcribed tables in site/data/published. Numbers
from sources that are not on the site (the 3D-ADS README) are quoted once, in ``reference``,
with their source.
"""

from __future__ import annotations

from dataclasses import dataclass

from evaluator.published import load_published, shown_on
from evaluator.reproductions import PublishedRef, Reproduction, load_reproductions


@dataclass(frozen=True)
class BaselineSpec:
    reproduction: Reproduction  # its entry in site/data/baselines.json
    family: str                 # module that runs it: forb.neural, forb.bow or anomaly.pipeline
    method: str                 # leaderboard method name of the entries it writes
    modality: str
    backbone: str
    pretraining_data: str
    cpu_note: str               # what a CPU-only machine can do
    notes: str                  # published behaviour reproduced, and any deviation
    paper_url: str | None = None
    code_url: str | None = None
    # Numbers from a source whose tables are not on the site (e.g. a repository's README),
    # with the source named: what a reproduction should also match.
    reference: str | None = None

    @property
    def name(self) -> str:
        return self.reproduction.name

    @property
    def benchmark(self) -> str:
        return self.reproduction.benchmark

    @property
    def boards(self) -> tuple[str, ...]:
        return self.reproduction.boards

    @property
    def published(self) -> tuple[PublishedRef, ...]:
        """The paper rows it reproduces (may be none)."""
        return self.reproduction.reproduces

    @property
    def published_label(self) -> str:
        return self.reproduction.published_label

    @property
    def weights(self) -> str:
        return self.reproduction.weights

    @property
    def gpu_time(self) -> str:
        return self.reproduction.gpu_time

    @property
    def published_source(self) -> str | None:
        return self.published[0].source if self.published else None

    def command(self, board: str | None = None) -> str:
        return self.reproduction.command(board)

    @property
    def labels_hint(self) -> str:
        return self.reproduction.labels_hint


def _spec(name: str, **fields) -> BaselineSpec:
    return BaselineSpec(reproduction=load_reproductions()[name], **fields)


_FORB_PAPER = "https://arxiv.org/abs/2309.16249"
_FORB_CODE = "https://github.com/pxiangwu/FORB"

_M3DM_PAPER = "https://arxiv.org/abs/2303.00601"
_M3DM_CODE = "https://github.com/nomewang/M3DM"
_BTF_PAPER = "https://arxiv.org/abs/2203.05550"
_BTF_CODE = "https://github.com/eliahuhorwitz/3D-ADS"
_WRN = dict(backbone="WideResNet-50-2, layers 2+3 (28 x 28 patches)",
            pretraining_data="ImageNet-1k (supervised)")
_DINO_B8 = dict(backbone="DINO ViT-B/8 at 224 px (28 x 28 patch tokens)",
                pretraining_data="ImageNet-1k (self-supervised, DINO)")
_NO_NET = dict(backbone="none (FPFH, 33-d, from open3d)", pretraining_data="none")
_PATCHCORE = ("PatchCore as Back to the Feature ran it: one memory bank of all training "
              "patches, greedy k-center coreset of 10 % after a sparse random projection "
              "(eps 0.9), exact nearest-neighbour distances, the reweighted image score (not "
              "the map maximum), 28 x 28 distance maps upsampled bilinearly to 224 and "
              "blurred as published (sigma 4 on an 8-bit copy; --blur float for an "
              "unquantised blur).")
_PREPROCESS = (" MVTec 3D-AD scans are preprocessed as published (background plane fitted "
               "to the image border and removed, zero-padded to a square, largest DBSCAN "
               "cluster kept), into a cache: the dataset is never modified.")
_FPFH = (" FPFH on the 224 x 224 organised cloud (normals r = 0.1, 30 neighbours; features "
         "r = 0.25, 100 neighbours; no voxel downsampling), 3 x 3 average then 28 x 28.")
_EYECANDIES = (" Eyecandies: RGB is image_4 (the left spotlight, what M3DM's conversion "
               "copied; --eyecandies-light image_5 for the global light its text names), the "
               "point cloud comes from the 16-bit depth, info_depth.yaml and pose as M3DM "
               "converted it, and at most 401 training scans per category are used, as "
               "M3DM's loop did.")


def _anomaly_specs():
    for dataset, benchmark, extra in (("mvtec3d", "mvtec3d-ad", _PREPROCESS),
                                      ("eyecandies", "eyecandies", _EYECANDIES)):
        mvtec = benchmark == "mvtec3d-ad"
        yield _spec(
            f"{dataset}-rgb-wrn50-patchcore",
            family="anomaly.pipeline", method="PatchCore (RGB, WRN-50-2)", modality="RGB",
            notes="RGB squashed to 224 x 224 (bicubic), ImageNet normalisation; layer2 and "
                  "layer3 each 3 x 3 average-pooled and pooled to 28 x 28 (1536-d). "
                  + _PATCHCORE + extra + (
                      " The RGB is the preprocessed one (background blanked), as BTF's "
                      "script rewrote it." if mvtec else ""),
            reference="3D-ADS README, preprocessed data: I-AUROC 0.777, AUPRO 0.876, "
                      "P-AUROC 0.967" if mvtec else None,
            cpu_note=_cpu_note("rgb"), paper_url=_BTF_PAPER,
            code_url=_BTF_CODE, **_WRN)
        yield _spec(
            f"{dataset}-fpfh-patchcore",
            family="anomaly.pipeline", method="PatchCore (FPFH)", modality="3D",
            notes="Point features only." + _FPFH + " " + _PATCHCORE + extra,
            reference="3D-ADS README, preprocessed data: I-AUROC 0.779, AUPRO 0.924, "
                      "P-AUROC 0.978" if mvtec else None,
            cpu_note=_cpu_note("fpfh"), paper_url=_BTF_PAPER,
            code_url=_BTF_CODE, **_NO_NET)
        yield _spec(
            f"{dataset}-rgb-fpfh-patchcore",
            family="anomaly.pipeline", method="PatchCore + FPFH (BTF)", modality="RGB+3D",
            notes="Each patch is [1536 RGB | 33 FPFH] in one bank, without per-modality "
                  "normalisation, as BTF did." + _FPFH + " " + _PATCHCORE + extra,
            reference="3D-ADS README, preprocessed data: I-AUROC 0.878, AUPRO 0.959, "
                      "P-AUROC 0.992" if mvtec else None,
            cpu_note=_cpu_note("rgb"), paper_url=_BTF_PAPER,
            code_url=_BTF_CODE, **_WRN)
        yield _spec(
            f"{dataset}-dino-vitb8-patchcore",
            family="anomaly.pipeline", method="M3DM RGB branch (DINO ViT-B/8 PatchCore)",
            modality="RGB",
            notes="M3DM's single RGB memory bank: DINO ViT-B/8 patch tokens (28 x 28 x 768) of "
                  "the original RGB squashed to 224, the bank normalised by its scalar mean "
                  "and std, then " + _PATCHCORE[0].lower() + _PATCHCORE[1:]
                  + (" No point-cloud preprocessing is needed: M3DM's script left the RGB "
                     "images untouched." if mvtec else _EYECANDIES),
            cpu_note=_cpu_note("dino"), paper_url=_M3DM_PAPER,
            code_url=_M3DM_CODE, **_DINO_B8)


def _cpu_note(kind: str) -> str:
    # Measured with perf/bench_anomaly_baselines.py on 2 cores; see the README.
    return {"rgb": "slow: WRN-50-2 0.17 s per scan, but the greedy coreset takes about 30 min "
                   "per category on 2 cores",
            "fpfh": "slow: the greedy coreset dominates (preprocessing 0.3-0.5 s and FPFH 0.2 s "
                    "per scan)",
            "dino": "slow: ViT-B/8 1 s per scan plus about 30 min of coreset per category on "
                    "2 cores"}[kind]


BASELINES: dict[str, BaselineSpec] = {spec.name: spec for spec in (
    _spec(
        "forb-clip-vit-l14-336",
        family="forb.neural", method="CLIP ViT-L/14@336px", modality="RGB",
        backbone="ViT-L/14 at 336 px (OpenAI CLIP image tower)",
        pretraining_data="OpenAI WIT-400M (image-text pairs)",
        notes="Multi-scale test-time averaging as FORB ran it: database images at 7 scales "
              "(2 to 0.25), queries at 3 (1.414 to 0.707); the shorter side is resized "
              "(bicubic) to int(336 x scale) and centre-cropped to 336, with a black border "
              "where the image is smaller; each scale's embedding is L2-normalised, averaged "
              "and normalised again. Exact cosine top-10. FORB embedded one image at a time; "
              "here images are batched, in fp16 on GPU (FORB's OpenAI CLIP also ran fp16 on "
              "GPU), and the OOD database reuses the full database's features.",
        cpu_note="not practical (about 3 s per forward on 2 cores)",
        paper_url=_FORB_PAPER, code_url=_FORB_CODE),
    _spec(
        "forb-dino-vit-s8",
        family="forb.neural", method="DINO ViT-S/8", modality="RGB",
        backbone="ViT-S/8 at 224 px (DINO)", pretraining_data="ImageNet-1k (self-supervised)",
        notes="Multi-scale test-time averaging as FORB ran it (7 database scales, 3 query "
              "scales, bicubic resize of the shorter side to int(224 x scale), centre crop "
              "224 with a black border at small scales, ImageNet normalisation); the CLS "
              "token after the final norm. Exact cosine top-10; batched, fp16 on GPU.",
        cpu_note="about 1-2 days on 2 cores",
        paper_url=_FORB_PAPER, code_url=_FORB_CODE),
    _spec(
        "forb-dinov2-vit-l14",
        family="forb.neural", method="DINOv2 ViT-L/14", modality="RGB",
        backbone="ViT-L/14 at 224 px (DINOv2, no registers)",
        pretraining_data="LVD-142M (self-supervised)",
        notes="Multi-scale test-time averaging as FORB ran it (as for DINO, crop 224). The "
              "position grid is resampled from 37 x 37 to 16 x 16 as the torch.hub model "
              "FORB used does it (bicubic by the factor 16.1/37, no antialiasing), not with "
              "timm's antialiased resampling. CLS token after the final norm; exact cosine "
              "top-10; batched, fp16 on GPU.",
        cpu_note="not practical",
        paper_url=_FORB_PAPER, code_url=_FORB_CODE),
    _spec(
        "forb-bow",
        family="forb.bow", method="BoW (RootSIFT, tf-idf)", modality="RGB",
        backbone="none (RootSIFT + visual-word codebook)", pretraining_data="none",
        notes="RootSIFT (711 keypoints, shorter side 480), a k-means codebook on FORB's "
              "images_for_building_codebook.txt, hard assignment with an HNSW index, tf-idf "
              "with document frequencies from the codebook images, cosine top-10, "
              "candidates sharing fewer than 2 words dropped.",
        cpu_note="runs with a smaller codebook (--codebook-size, default 65,536 on CPU); "
                 "hours on a many-core machine",
        paper_url=_FORB_PAPER, code_url=_FORB_CODE),
    _spec(
        "forb-bow-rerank",
        family="forb.bow", method="BoW + RANSAC re-ranking", modality="RGB",
        backbone="none (RootSIFT + visual-word codebook)", pretraining_data="none",
        notes="As forb-bow, then RANSAC homography verification of the 10 candidates "
              "(mutual ratio test 0.8, reprojection 10 px, FORB's homography and box checks), "
              "survivors sorted by inlier count. FORB kept the tf-idf cosine as the score, "
              "which is not monotone after re-ranking; the evaluator needs non-increasing "
              "scores, so each score is the running minimum of the tf-idf cosines down the "
              "re-ranked list (mAP is unchanged; t-mAP can differ slightly).",
        cpu_note="as forb-bow, plus 10-45 min of RANSAC per CPU core",
        paper_url=_FORB_PAPER, code_url=_FORB_CODE),
)}
BASELINES.update({spec.name: spec for spec in _anomaly_specs()})


def get_baseline(name: str) -> BaselineSpec:
    try:
        return BASELINES[name]
    except KeyError:
        raise KeyError(f"unknown baseline {name!r}; `leaderboard baseline list` shows "
                       f"{', '.join(BASELINES)}") from None


def published_rows(spec: BaselineSpec, board_id: str) -> list[tuple[str, str, dict]]:
    """(table label, the row's printed label, values) of every published row this baseline
    reproduces on a board id such as 'forb-v1'."""
    out = []
    for source in load_published():
        for table in source.tables:
            if not shown_on(table, board_id):
                continue
            for row in table.rows:
                if any(ref.matches(source.source.key, row.method, row.setting, row.citation,
                                   row.variant) for ref in spec.published):
                    out.append((table.label, row.label, row.values))
    return out


def published_mean(spec: BaselineSpec, board_id: str, headline: str) -> dict[str, float]:
    """metric -> value over every reproduced row of a board, for the headline slice."""
    values: dict[str, float] = {}
    for _, _, row_values in published_rows(spec, board_id):
        for metric, value in row_values.get(headline, {}).items():
            if value is not None:
                values.setdefault(metric, value)
    return values

