"""The bundled baselines: what each one is, what it needs and which published row it reproduces.

Pure data, importable without torch: `leaderboard baseline list`, the README and the website
read it. Running a baseline imports its family's module (``baselines.forb_neural``,
``baselines.bow`` or ``baselines.anomaly_patchcore``) only then. The published numbers are
never typed here: they come from the transcribed tables in site/data/published, matched by
each spec's ``published`` rows. Numbers from sources that are not on the site (the 3D-ADS
README) are quoted once, in ``reference``, with their source.
"""

from __future__ import annotations

from dataclasses import dataclass

from evaluator.published import load_published


@dataclass(frozen=True)
class PublishedRef:
    """A row of a transcribed paper table that a baseline reproduces."""

    source: str                 # key of the paper in site/data/published
    method: str                 # the row's method name as printed
    variant: str | None = None  # the row's variant (None: the method's main setting)
    modality: str | None = None
    cited: bool | None = None   # False: only the paper's own rows (no citation mark)

    def matches(self, source_key: str, method: str, setting: dict, citation: str | None,
                variant: str | None = None) -> bool:
        return (source_key == self.source and method == self.method
                and variant == self.variant
                and (self.modality is None or setting.get("modality") == self.modality)
                and (self.cited is None or self.cited == (citation is not None)))


# What --data names in the commands shown to users, and where their labels are.
DATA_PLACEHOLDERS = {"forb": "FORB_ROOT", "mvtec3d-ad": "MVTEC3D_ROOT",
                     "eyecandies": "EYECANDIES_ROOT"}
LABEL_HINTS = {"forb": "FORB_ROOT/metadata", "mvtec3d-ad": "MVTEC3D_ROOT",
               "eyecandies": "EYECANDIES_ROOT"}


@dataclass(frozen=True)
class BaselineSpec:
    name: str
    benchmark: str
    boards: tuple[str, ...]
    family: str                 # module that runs it: forb_neural, bow or anomaly_patchcore
    method: str                 # leaderboard method name of the entries it writes
    modality: str
    backbone: str
    pretraining_data: str
    weights: str                # what --weights published loads, in words
    published: tuple[PublishedRef, ...]   # the paper rows it reproduces (may be none)
    published_label: str        # those rows in words, e.g. "CLIP" or "M3DM, RGB only"
    gpu_time: str               # measured or estimated wall time on one GPU, whole test set
    cpu_note: str               # what a CPU-only machine can do
    notes: str                  # published behaviour reproduced, and any deviation
    paper_url: str | None = None
    code_url: str | None = None
    # Numbers from a source whose tables are not on the site (e.g. a repository's README),
    # with the source named: what a reproduction should also match.
    reference: str | None = None

    @property
    def published_source(self) -> str | None:
        return self.published[0].source if self.published else None

    def command(self, board: str | None = None) -> str:
        board = board or self.boards[0]
        board_flag = "" if board == self.boards[0] else f" --board {board}"
        suffix = "" if board == self.boards[0] else "-" + board.split("-", 1)[-1]
        return (f"leaderboard baseline run {self.name} --data "
                f"{DATA_PLACEHOLDERS[self.benchmark]}{board_flag} "
                f"--out submissions/{self.benchmark}/{self.name}{suffix}")

    @property
    def labels_hint(self) -> str:
        return LABEL_HINTS[self.benchmark]


_FORB_PAPER = "https://arxiv.org/abs/2309.16249"
_FORB_CODE = "https://github.com/pxiangwu/FORB"

_M3DM_PAPER = "https://arxiv.org/abs/2303.00601"
_M3DM_CODE = "https://github.com/nomewang/M3DM"
_BTF_PAPER = "https://arxiv.org/abs/2203.05550"
_BTF_CODE = "https://github.com/eliahuhorwitz/3D-ADS"
_WRN = dict(backbone="WideResNet-50-2, layers 2+3 (28 x 28 patches)",
            pretraining_data="ImageNet-1k (supervised)",
            weights="timm wide_resnet50_2.racm_in1k (what unpinned timm's wide_resnet50_2 "
                    "loads today; the 2022 runs' weights are not recorded)")
_DINO_B8 = dict(backbone="DINO ViT-B/8 at 224 px (28 x 28 patch tokens)",
                pretraining_data="ImageNet-1k (self-supervised, DINO)",
                weights="timm vit_base_patch8_224.dino")
_NO_NET = dict(backbone="none (FPFH, 33-d, from open3d)", pretraining_data="none",
               weights="none")
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
_BTF_TIME = ("estimate: minutes for all 10 categories once the scans are preprocessed (a "
             "one-time 1.5-2 h on 16 cores, cached); not measured on a GPU")
_DINO_TIME = "estimate: minutes for all 10 categories (no preprocessing); not measured on a GPU"


def _anomaly_specs():
    for dataset, benchmark, extra in (("mvtec3d", "mvtec3d-ad", _PREPROCESS),
                                      ("eyecandies", "eyecandies", _EYECANDIES)):
        mvtec = benchmark == "mvtec3d-ad"
        yield BaselineSpec(
            name=f"{dataset}-rgb-wrn50-patchcore", benchmark=benchmark, boards=(benchmark,),
            family="anomaly_patchcore", method="PatchCore (RGB, WRN-50-2)", modality="RGB",
            published=(PublishedRef("m3dm-2023", "PatchCore", modality="RGB"),) if mvtec
            else (), published_label="PatchCore (BTF's RGB iNet), as M3DM quotes it" if mvtec
            else "none (no published Eyecandies row)",
            notes="RGB squashed to 224 x 224 (bicubic), ImageNet normalisation; layer2 and "
                  "layer3 each 3 x 3 average-pooled and pooled to 28 x 28 (1536-d). "
                  + _PATCHCORE + extra + (
                      " The RGB is the preprocessed one (background blanked), as BTF's "
                      "script rewrote it." if mvtec else ""),
            reference="3D-ADS README, preprocessed data: I-AUROC 0.777, AUPRO 0.876, "
                      "P-AUROC 0.967" if mvtec else None,
            gpu_time=_BTF_TIME, cpu_note=_cpu_note("rgb"), paper_url=_BTF_PAPER,
            code_url=_BTF_CODE, **_WRN)
        yield BaselineSpec(
            name=f"{dataset}-fpfh-patchcore", benchmark=benchmark, boards=(benchmark,),
            family="anomaly_patchcore", method="PatchCore (FPFH)", modality="3D",
            published=(PublishedRef("m3dm-2023", "FPFH"),) if mvtec else (),
            published_label="FPFH (BTF), as M3DM quotes it" if mvtec
            else "none (no published Eyecandies row)",
            notes="Point features only." + _FPFH + " " + _PATCHCORE + extra,
            reference="3D-ADS README, preprocessed data: I-AUROC 0.779, AUPRO 0.924, "
                      "P-AUROC 0.978" if mvtec else None,
            gpu_time=_BTF_TIME, cpu_note=_cpu_note("fpfh"), paper_url=_BTF_PAPER,
            code_url=_BTF_CODE, **_NO_NET)
        yield BaselineSpec(
            name=f"{dataset}-rgb-fpfh-patchcore", benchmark=benchmark, boards=(benchmark,),
            family="anomaly_patchcore", method="PatchCore + FPFH (BTF)", modality="RGB+3D",
            published=(PublishedRef("m3dm-2023", "PatchCore + FPFH"),) if mvtec else (),
            published_label="PatchCore + FPFH (BTF), as M3DM quotes it" if mvtec
            else "none (no published Eyecandies row)",
            notes="Each patch is [1536 RGB | 33 FPFH] in one bank, without per-modality "
                  "normalisation, as BTF did." + _FPFH + " " + _PATCHCORE + extra,
            reference="3D-ADS README, preprocessed data: I-AUROC 0.878, AUPRO 0.959, "
                      "P-AUROC 0.992" if mvtec else None,
            gpu_time=_BTF_TIME, cpu_note=_cpu_note("rgb"), paper_url=_BTF_PAPER,
            code_url=_BTF_CODE, **_WRN)
        yield BaselineSpec(
            name=f"{dataset}-dino-vitb8-patchcore", benchmark=benchmark, boards=(benchmark,),
            family="anomaly_patchcore", method="M3DM RGB branch (DINO ViT-B/8 PatchCore)",
            modality="RGB",
            published=(PublishedRef("m3dm-2023", "M3DM",
                                    variant="RGB only (DINO ViT-B/8 bank)"),),
            published_label="M3DM, RGB only (DINO ViT-B/8)",
            notes="M3DM's single RGB memory bank: DINO ViT-B/8 patch tokens (28 x 28 x 768) of "
                  "the original RGB squashed to 224, the bank normalised by its scalar mean "
                  "and std, then " + _PATCHCORE[0].lower() + _PATCHCORE[1:]
                  + (" No point-cloud preprocessing is needed: M3DM's script left the RGB "
                     "images untouched." if mvtec else _EYECANDIES),
            gpu_time=_DINO_TIME, cpu_note=_cpu_note("dino"), paper_url=_M3DM_PAPER,
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
    BaselineSpec(
        name="forb-clip-vit-l14-336", benchmark="forb", boards=("forb", "forb-subset"),
        family="forb_neural", method="CLIP ViT-L/14@336px", modality="RGB",
        backbone="ViT-L/14 at 336 px (OpenAI CLIP image tower)",
        pretraining_data="OpenAI WIT-400M (image-text pairs)",
        weights="open_clip ViT-L-14-336-quickgelu, pretrained='openai'",
        published=(PublishedRef("forb-2023", "CLIP"),), published_label="CLIP",
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
        published=(PublishedRef("forb-2023", "DINO"),), published_label="DINO",
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
        published=(PublishedRef("forb-2023", "DINOv2"),), published_label="DINOv2",
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
        published=(PublishedRef("forb-2023", "BoW"),), published_label="BoW",
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
        published=(PublishedRef("forb-2023", "BoW (+ rerank)"),),
        published_label="BoW (+ rerank)",
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
            if table.board != board_id:
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


def reproducing(source_key: str, method: str, benchmark: str, setting: dict | None = None,
                citation: str | None = None, variant: str | None = None
                ) -> BaselineSpec | None:
    """The bundled baseline that reproduces a published row, if any."""
    for spec in BASELINES.values():
        if spec.benchmark == benchmark and any(
                ref.matches(source_key, method, setting or {}, citation, variant)
                for ref in spec.published):
            return spec
    return None
