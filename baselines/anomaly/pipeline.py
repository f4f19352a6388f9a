"""The PatchCore family of anomaly baselines: Back to the Feature's RGB iNet, FPFH and
RGB + FPFH, and M3DM's RGB branch (DINO ViT-B/8), on MVTec 3D-AD and Eyecandies.

Per category: read and (optionally) preprocess every scan, compute patch features on a
28 x 28 grid, fit one memory bank on the training patches (greedy coreset of 10 %), then
score each test scan (nearest-neighbour distances, reweighted image score, bilinear upsampling
to 224, the published blur). Each finished category is kept in the cache, so a killed run
resumes at the first unfinished category; preprocessed scans are cached too.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from baselines import devices
from baselines.anomaly.data import AnomalyDataset, AnomalySample, read_scan
from baselines.distributed import SINGLE, Ranks
from baselines.errors import BaselineDataError, BaselineUsageError
from baselines.feature_cache import atomic_write, claim_cache_folder
from baselines.options import RunOptions
from baselines.progress import progress_bar
from baselines.run_record import RunRecord
from evaluator.anomaly.maps import MapError, encode_map

MAP_SIZE = 224
GRID = 28
PREPROCESS_VERSION = 1
PREPROCESSED_MARKER = "PREPROCESSED.json"  # baselines.anomaly.preprocess.MARKER


@dataclass(frozen=True)
class PatchCoreSetup:
    """What one baseline feeds its memory bank."""

    rgb: str | None                 # RGB extractor (baselines.anomaly.models) or None
    fpfh: bool                      # FPFH point features
    rgb_from_preprocessed: bool     # BTF's preprocessing also blanked and padded the RGB
    normalise_bank: bool            # M3DM's RGB bank: scalar mean / std of the full bank
    denominator_epsilon: float      # M3DM's RGB class adds 1e-5 in the reweighting
    max_train_samples: dict         # benchmark -> published cap on training scans (or None)


# Eyecandies' published runs (M3DM) used at most 401 training scans per category (the loop
# stops after max_sample = 400 + 1); the BTF baselines get the same training set there.
_BTF = dict(rgb_from_preprocessed=True, normalise_bank=False, denominator_epsilon=0.0,
            max_train_samples={"mvtec3d-ad": None, "eyecandies": 401})
SETUPS = {
    "rgb-wrn50": PatchCoreSetup(rgb="wrn50", fpfh=False, **_BTF),
    "fpfh": PatchCoreSetup(rgb=None, fpfh=True, **_BTF),
    "rgb-fpfh": PatchCoreSetup(rgb="wrn50", fpfh=True, **_BTF),
    "dino-vitb8": PatchCoreSetup(rgb="dino_vitb8", fpfh=False, rgb_from_preprocessed=False,
                                 normalise_bank=True, denominator_epsilon=1e-5,
                                 max_train_samples={"mvtec3d-ad": 401, "eyecandies": 401}),
}
# Preprocessing is part of the published MVTec 3D-AD runs; M3DM's Eyecandies conversion
# already drops the background, and its runs did not preprocess further.
PREPROCESS_DEFAULT = {"mvtec3d-ad": True, "eyecandies": False}


def setup_of(spec) -> PatchCoreSetup:
    """Baselines are named <dataset>-<setup>-patchcore, e.g. mvtec3d-rgb-fpfh-patchcore."""
    return SETUPS[spec.name.split("-", 1)[1].removesuffix("-patchcore")]


# ------------------------------------------------------------------------ per-scan inputs

@dataclass
class ScanConfig:
    """Everything a worker needs to turn one scan into model inputs (picklable)."""

    need_xyz: bool
    preprocess: bool
    rgb_from_preprocessed: bool
    fpfh: bool
    eyecandies_background: str
    cache: str | None             # folder of preprocessed scans, None: no cache


@dataclass
class PreparedScan:
    rgb224: np.ndarray            # 224 x 224 x 3 uint8, what the RGB network sees
    fpfh: np.ndarray | None       # 784 x 33 float32
    frame: tuple[int, int, int, int, int] | None   # padded side, top, left, height, width
    n_valid_points: int | None


def prepare_scan(sample: AnomalySample, config: ScanConfig) -> PreparedScan:
    from baselines.anomaly.models import resize_rgb

    rgb, xyz = read_scan(sample, config.eyecandies_background, with_xyz=config.need_xyz)
    frame = None
    if config.need_xyz and config.preprocess:
        xyz, processed_rgb, frame = _preprocessed(sample, rgb, xyz, config)
        if config.rgb_from_preprocessed:
            rgb = processed_rgb
    rgb224 = resize_rgb(rgb)
    fpfh = n_valid = None
    if config.need_xyz:
        from baselines.anomaly.pointcloud import resize_organised

        xyz224 = resize_organised(xyz, MAP_SIZE)
        n_valid = int(np.all(xyz224 != 0, axis=2).sum())
        if config.fpfh:
            from baselines.anomaly.fpfh import fpfh_patches

            fpfh = fpfh_patches(xyz224) if n_valid else np.zeros((GRID * GRID, 33), np.float32)
    return PreparedScan(rgb224, fpfh, frame, n_valid)


def _preprocessed(sample: AnomalySample, rgb: np.ndarray, xyz: np.ndarray,
                  config: ScanConfig):
    """Plane removal, square padding and largest cluster, read from the cache when a scan was
    done before (the dataset itself is never written)."""
    from baselines.anomaly.pointcloud import preprocess

    source = "|".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
                      for p in sample.files)
    path = None
    if config.cache:
        path = Path(config.cache) / (sample.id.replace("/", "__") + ".npz")
        if path.is_file():
            with np.load(path, allow_pickle=False) as stored:
                if str(stored["source"]) == source:
                    return stored["xyz"], stored["rgb"], tuple(int(v) for v in stored["frame"])
    try:
        done = preprocess(xyz, rgb)
    except ValueError as exc:
        raise BaselineDataError(f"{sample.xyz or sample.depth}: preprocessing failed: {exc}"
                                ) from None
    frame = (done.xyz.shape[0], *done.offset, *done.original_shape)
    if path is not None:
        tmp = path.with_name(path.stem + f".{os.getpid()}.tmp.npz")
        np.savez(tmp, xyz=done.xyz, rgb=done.rgb, frame=np.asarray(frame), source=source)
        os.replace(tmp, path)
    return done.xyz, done.rgb, frame


def unpad_map(amap: np.ndarray, frame) -> np.ndarray:
    """A 224 x 224 map of the padded square back to the scan's own frame, at 224 x 224 (the
    protocol compares maps with the original masks). Identity when nothing was padded."""
    if frame is None:
        return amap
    side, top, left, height, width = frame
    if (side, side) == (height, width):
        return amap
    import torch
    import torch.nn.functional as F

    full = F.interpolate(torch.from_numpy(amap)[None, None], size=(side, side),
                         mode="bilinear", align_corners=False)
    crop = full[..., top:top + height, left:left + width]
    return F.interpolate(crop, size=(MAP_SIZE, MAP_SIZE), mode="bilinear",
                         align_corners=False)[0, 0].numpy()


# --------------------------------------------------------------------------------- the run

SPLITS_WORK = True  # under torchrun, each rank runs a share of the categories


def run(spec, dataset: AnomalyDataset, options: RunOptions, record: RunRecord,
        ranks: Ranks = SINGLE) -> list[Path] | None:
    """Run every category; return the per-category prediction files (in the cache)."""
    import torch

    setup = setup_of(spec)
    if options.blur not in ("published", "float"):
        raise BaselineUsageError("--blur must be 'published' or 'float'")
    if options.precision == "fp16" and not options.device.startswith("cuda"):
        raise BaselineUsageError("--precision fp16 needs a GPU")
    preprocess = PREPROCESS_DEFAULT[dataset.benchmark] if options.preprocess is None \
        else options.preprocess
    need_xyz = setup.fpfh or (preprocess and setup.rgb_from_preprocessed)
    if need_xyz and preprocess and (dataset.root / PREPROCESSED_MARKER).is_file():
        raise BaselineUsageError(f"{dataset.root} is already preprocessed (`leaderboard "
                                 "baseline preprocess` wrote it); give the original dataset "
                                 "root: the baselines preprocess into their cache with the "
                                 "same code")
    extractor = None
    record.weights = {"kind": "none", "id": "none (FPFH has no learned weights)"}
    if setup.rgb:
        from baselines.anomaly.models import EXTRACTORS, RgbPatchFeatures

        with record.stage("load model"):
            extractor = RgbPatchFeatures(EXTRACTORS[setup.rgb], options.weights, options.device,
                                         half=options.precision == "fp16")
        record.weights = extractor.weights
    elif options.weights not in ("published", "none"):
        raise BaselineUsageError(f"{spec.name} has no network: --weights does not apply")
    settings = {
        "preprocess": preprocess if need_xyz else None,
        "blur": options.blur, "coreset_fraction": options.coreset_fraction,
        "projection": {"eps": 0.9, "seed": options.seed},
        "greedy_coreset_fp16": options.device.startswith("cuda"),
        "bank_normalisation": "scalar mean/std" if setup.normalise_bank else None,
        "reweighting_epsilon": setup.denominator_epsilon,
        "rgb_input": ("preprocessed (background zeroed, padded)" if preprocess and
                      setup.rgb_from_preprocessed else "original") if setup.rgb else None,
        "eyecandies_light": dataset.light,
        "eyecandies_background": options.eyecandies_background
        if dataset.benchmark == "eyecandies" and need_xyz else None,
        "max_train_samples": train_cap(spec, options),
        "precision": "fp16" if options.precision == "fp16" else "fp32",
    }
    record.settings["patchcore"] = settings
    scan_config = ScanConfig(
        need_xyz=need_xyz, preprocess=preprocess, fpfh=setup.fpfh,
        rgb_from_preprocessed=setup.rgb_from_preprocessed,
        eyecandies_background=options.eyecandies_background,
        cache=str(_preprocess_cache(options, dataset)) if need_xyz and preprocess else None)
    devices.reset_peak(options.device)
    files = []
    workers = _workers(options)
    pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn")) if workers else None
    try:
        if ranks.active:
            # Each rank finishes its share of the categories into the cache; rank 0 then
            # collects all of them below (read back, or computed if a share went missing).
            for category in ranks.share(dataset.categories):
                _run_category(spec, setup, dataset, category, options, settings,
                              scan_config, extractor, pool, record)
            ranks.barrier()
            if not ranks.is_main:
                return None
        for category in dataset.categories:
            files.append(_run_category(spec, setup, dataset, category, options, settings,
                                       scan_config, extractor, pool, record))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    record.peak_gpu_bytes = devices.peak_bytes(options.device)
    del extractor
    if options.device.startswith("cuda"):
        torch.cuda.empty_cache()
    return files


def train_cap(spec, options: RunOptions) -> int | None:
    """Training scans per category: --max-train-samples, else the published cap."""
    return options.max_train_samples or setup_of(spec).max_train_samples[spec.benchmark]


def _workers(options: RunOptions) -> int:
    if options.workers is not None:
        return options.workers
    return max(0, min(16, (os.cpu_count() or 1) - 1))


def _preprocess_cache(options: RunOptions, dataset: AnomalyDataset) -> Path:
    """One folder per dataset root and point-cloud setting, shared by every baseline run
    that preprocesses (each scan's file also records its sources' sizes and times)."""
    key = hashlib.sha256(json.dumps([PREPROCESS_VERSION, dataset.benchmark,
                                     str(dataset.root.resolve()),
                                     options.eyecandies_background]).encode()).hexdigest()[:12]
    folder = options.cache_dir / f"preprocessed-{dataset.benchmark}-{key}"
    claim_cache_folder(folder, {"what": "preprocessed scans (plane removed, padded, largest "
                                "cluster)", "version": PREPROCESS_VERSION,
                                "benchmark": dataset.benchmark,
                                "root": str(dataset.root.resolve()),
                                "eyecandies_background": options.eyecandies_background})
    return folder


def _category_folder(spec, dataset: AnomalyDataset, category: str, options: RunOptions,
                     settings: dict, weights: dict) -> Path:
    inputs = {"baseline": spec.name, "category": category, "settings": settings,
              "weights": weights.get("state_sha256", weights.get("id")),
              "files": dataset.fingerprint(category)}
    key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:12]
    folder = options.cache_dir / f"{spec.name}-{key}"
    claim_cache_folder(folder, {"baseline": spec.name, "settings": settings,
                                "weights": inputs["weights"],
                                "root": str(dataset.root.resolve())})
    return folder


def _run_category(spec, setup, dataset, category, options, settings, scan_config,
                  extractor, pool, record) -> Path:
    folder = _category_folder(spec, dataset, category, options, settings, record.weights)
    done = folder / f"{category}.ndjson.gz"
    if done.is_file():
        with record.stage(f"{category}: all stages") as stage:
            stage.cached = True
        stats = json.loads((folder / f"{category}.json").read_text(encoding="utf-8"))
        record.settings.setdefault("banks", {})[category] = stats["bank"]
        return done
    train = dataset.train[category]  # already capped by the loader
    test = dataset.test[category]
    train_patches = _patches(train, f"{category}: train features", setup, scan_config,
                             extractor, options, pool, record)[0]
    bank = _fit_bank(train_patches, category, setup, options, record)
    del train_patches
    test_patches, frames = _patches(test, f"{category}: test features", setup, scan_config,
                                    extractor, options, pool, record)
    lines = []
    blur = _blur(options.blur)
    from baselines.anomaly.patchcore import upsample_map

    with record.stage(f"{category}: scoring", len(test), "scans"), \
            progress_bar(len(test), f"{category} scoring", "scan") as bar:
        for sample, patches, frame in zip(test, test_patches, frames):
            import torch

            score, grid = bank.score(torch.from_numpy(patches), (GRID, GRID))
            amap = unpad_map(blur(upsample_map(grid, MAP_SIZE)), frame)
            lines.append({"sample": sample.id, "score": float(score),
                          "map": _encoded(amap, sample)})
            bar.update(1)
    stats = {"category": category, "train_scans": len(train), "test_scans": len(test),
             "bank": bank.describe()}
    body = "".join(json.dumps(line) + "\n" for line in lines).encode()
    # The stats first: a finished predictions file always has its stats beside it.
    atomic_write(folder / f"{category}.json", (json.dumps(stats, indent=2) + "\n").encode())
    atomic_write(done, gzip.compress(body, compresslevel=6, mtime=0))
    record.settings.setdefault("banks", {})[category] = stats["bank"]
    return done


def _encoded(amap: np.ndarray, sample: AnomalySample) -> dict:
    try:
        return encode_map(amap, "float16")
    except MapError:  # distances beyond float16's range: keep float32 rather than clip
        return encode_map(amap, "float32")


def _blur(name: str):
    from baselines.anomaly.patchcore import BLURS

    return BLURS[name]


def _patches(samples, label, setup, scan_config, extractor, options, pool, record):
    """(list of 784 x D float32 patch arrays, list of frames) for a list of scans."""
    prepared: list[PreparedScan] = []
    with record.stage(label, len(samples), "scans"), \
            progress_bar(len(samples), label, "scan") as bar:
        if pool is None:
            scans = (prepare_scan(s, scan_config) for s in samples)
        else:
            scans = pool.map(prepare_scan, samples, [scan_config] * len(samples),
                             chunksize=max(1, len(samples) // (8 * _workers(options))))
        batch = options.batch_size or (32 if options.device.startswith("cuda") else 4)
        rgb_features: list[np.ndarray] = []
        pending: list[np.ndarray] = []
        for scan in scans:
            prepared.append(scan)
            if extractor is not None:
                pending.append(scan.rgb224)
                if len(pending) == batch:
                    rgb_features.extend(extractor(np.stack(pending)))
                    pending = []
            bar.update(1)
        if extractor is not None and pending:
            rgb_features.extend(extractor(np.stack(pending)))
    patches = []
    for i, scan in enumerate(prepared):
        parts = ([rgb_features[i]] if extractor is not None else []) + \
            ([scan.fpfh] if setup.fpfh else [])
        patches.append(np.concatenate(parts, axis=1).astype(np.float32, copy=False))
    return patches, [scan.frame for scan in prepared]


def _fit_bank(train_patches, category, setup, options, record):
    import torch

    from baselines.anomaly.patchcore import MemoryBank

    bank = MemoryBank(coreset_fraction=options.coreset_fraction, projection_eps=0.9,
                      seed=options.seed, half=options.device.startswith("cuda"),
                      device=options.device, normalise=setup.normalise_bank,
                      denominator_epsilon=setup.denominator_epsilon)
    patches = torch.from_numpy(np.concatenate(train_patches))
    n_select = max(1, int(options.coreset_fraction * len(patches)))
    with record.stage(f"{category}: memory bank + coreset", n_select, "selections"), \
            progress_bar(n_select, f"{category} coreset", "patch") as bar:
        bank.fit(patches, progress=bar.update)
    return bank


def describe_setup(spec) -> dict:
    return asdict(setup_of(spec))
