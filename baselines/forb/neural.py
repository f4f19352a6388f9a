"""FORB's "top-only" neural baselines (CLIP, DINO, DINOv2): multi-scale embeddings, then exact
cosine search (BASELINES.md A.2).

Every database image is embedded at 7 scales and every query at 3; each scale's embedding is
L2-normalised, the scales are averaged and the mean normalised again. Unlike FORB's scripts
(batch 1, the ``oods`` database embedded a second time), images are decoded and cropped in
parallel worker processes, batched, and the ``oods`` features are the ``all`` rows they are.
Per-scale embeddings are cached in chunks, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import numpy as np

from baselines import devices
from baselines.distributed import SINGLE, Ranks
from baselines.errors import BaselineDataError, BaselineUsageError
from baselines.feature_cache import ChunkedArrays
from baselines.forb.data import ForbImages, list_digest, read_image
from baselines.forb.models import EMBEDDERS, Embedder, build_embedder, normaliser
from baselines.forb.multiscale import DATABASE_SCALES, QUERY_SCALES, scaled_crop
from baselines.forb.search import exact_top_k
from baselines.options import RunOptions
from baselines.progress import progress_bar
from baselines.run_record import RunRecord
from evaluator.forb.writers import RankedLists

DEFAULT_BATCH = {"cuda": 32, "cpu": 4}


class MultiScaleCrops:
    """Dataset: image i -> (i, S x crop x crop x 3 uint8, error message or "")."""

    def __init__(self, images: ForbImages, paths: list[str], indices: list[int],
                 embedder: Embedder, scales: tuple[float, ...]):
        self.images, self.paths, self.indices = images, paths, indices
        self.crop, self.scales = embedder.crop, scales
        self.resample = _pil_resample(embedder.interpolation)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int):
        index = self.indices[position]
        try:
            image = read_image(self.images.path(self.paths[index]))
        except BaselineDataError as exc:
            # Errors travel back as data: the main process raises them with a clean message.
            return index, np.zeros((len(self.scales), self.crop, self.crop, 3), np.uint8), str(exc)
        crops = np.stack([scaled_crop(image, self.crop, s, self.resample) for s in self.scales])
        return index, crops, ""


def _pil_resample(name: str) -> int:
    from PIL import Image

    return {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}[name]


def embed_list(images: ForbImages, paths: list[str], scales: tuple[float, ...], label: str,
               embedder: Embedder, forward, weights_digest: str, options: RunOptions,
               record: RunRecord, ranks: Ranks = SINGLE) -> np.ndarray | None:
    """Final (scale-averaged, L2-normalised) embeddings of ``paths``, N x dim float32. Under
    torchrun each rank computes its share of the missing chunks; rank 0 returns them all, the
    others None."""
    import torch

    cache = ChunkedArrays(
        options.cache_dir / embedder.baseline / weights_digest.split(":")[-1][:16]
        / f"{label}-{list_digest(paths)}-{len(scales)}scales",
        len(paths), options.chunk_images,
        {"baseline": embedder.baseline, "weights": weights_digest, "scales": list(scales),
         "crop": embedder.crop, "list": label, "precision": _precision(options),
         "device_kind": options.device.split(":")[0]})
    missing = cache.missing()
    ranks.barrier()  # every rank lists the same missing chunks before any is written
    missing = ranks.share(missing)
    todo = [i for c in missing for i in range(*cache.bounds(c))]
    with record.stage(f"features: {label} ({len(scales)} scales)", len(todo), "images") as st:
        st.cached = not todo
        if todo:
            images.check_files([paths[i] for i in todo])
            _compute_chunks(MultiScaleCrops(images, paths, todo, embedder, scales), cache,
                            missing, embedder, forward, options, f"{label} features")
    ranks.barrier()  # every rank's chunks are on disk
    if not ranks.is_main:
        return None
    if cache.missing():
        raise BaselineDataError(f"{cache.folder}: chunks {cache.missing()} are missing after "
                                "every process finished: under torchrun, --cache must be a "
                                "folder all processes share")
    per_scale = torch.from_numpy(cache.load())          # N x S x D, each scale normalised
    mean = per_scale.mean(dim=1)
    return (mean / torch.linalg.vector_norm(mean, dim=1, keepdim=True).clamp_min(1e-12)).numpy()


def _compute_chunks(dataset: MultiScaleCrops, cache: ChunkedArrays, missing: list[int],
                    embedder: Embedder, forward, options: RunOptions, desc: str) -> None:
    import torch

    device = options.device
    batch = options.batch_size or DEFAULT_BATCH["cuda" if device.startswith("cuda") else "cpu"]
    workers = _workers(options)
    # Batches never cross a chunk, so a chunk's features are the same bytes whichever process
    # computes it and whatever else was computed with it (resumed and torchrun runs).
    batches, position = [], 0
    for chunk in missing:
        start, stop = cache.bounds(chunk)
        batches += [list(range(position + b, position + min(b + batch, stop - start)))
                    for b in range(0, stop - start, batch)]
        position += stop - start
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=batches, num_workers=workers,
        pin_memory=device.startswith("cuda"), persistent_workers=False,
        prefetch_factor=4 if workers else None)
    normalise = normaliser(embedder, device)
    use_fp16 = _precision(options) == "fp16"
    pending: dict[int, np.ndarray] = {}
    filled: dict[int, int] = {}
    with progress_bar(len(dataset), desc, "img") as bar, torch.inference_mode():
        for indices, crops, errors in loader:
            for message in errors:
                if message:
                    raise BaselineDataError(message)
            n, s = crops.shape[:2]
            x = normalise(crops.reshape(n * s, *crops.shape[2:]))
            with torch.autocast(device_type=device.split(":")[0], dtype=torch.float16,
                                enabled=use_fp16):
                out = forward(x)
            out = out.float()
            out = out / torch.linalg.vector_norm(out, dim=1, keepdim=True).clamp_min(1e-12)
            out = out.reshape(n, s, -1).cpu().numpy()
            for row, index in zip(out, indices.tolist()):
                chunk = index // cache.chunk_size
                if chunk not in pending:
                    start, stop = cache.bounds(chunk)
                    pending[chunk] = np.zeros((stop - start, s, out.shape[-1]), np.float32)
                    filled[chunk] = 0
                pending[chunk][index - chunk * cache.chunk_size] = row
                filled[chunk] += 1
                if filled[chunk] == len(pending[chunk]):
                    cache.save(chunk, pending.pop(chunk))
            bar.update(n)
    if pending:
        raise RuntimeError(f"chunks {sorted(pending)} were not completed")


def _workers(options: RunOptions) -> int:
    import os

    if options.workers is not None:
        return options.workers
    return max(1, min(16, (os.cpu_count() or 2) - 1))


def _precision(options: RunOptions) -> str:
    if options.precision != "auto":
        return options.precision
    return "fp16" if options.device.startswith("cuda") else "fp32"


SPLITS_WORK = True  # under torchrun, each rank embeds a share of the images


def run(spec, images: ForbImages, options: RunOptions, record: RunRecord,
        ranks: Ranks = SINGLE) -> RankedLists | None:
    import torch

    embedder = EMBEDDERS[spec.name]
    if options.precision == "fp16" and not options.device.startswith("cuda"):
        raise BaselineUsageError("--precision fp16 needs a GPU; on CPU the baselines run in fp32")
    with record.stage("load model"):
        forward, model, weights = build_embedder(embedder, options.weights)
        model.to(options.device)
    record.weights = weights
    record.settings["precision"] = _precision(options)
    devices.reset_peak(options.device)
    database = embed_list(images, images.database_paths, DATABASE_SCALES, "database",
                          embedder, forward, weights["state_sha256"], options, record, ranks)
    queries = embed_list(images, images.query_paths, QUERY_SCALES, "query",
                         embedder, forward, weights["state_sha256"], options, record, ranks)
    del model
    if options.device.startswith("cuda"):
        torch.cuda.empty_cache()
    if not ranks.is_main:
        return None  # rank 0 searches
    return search_both(queries, database, images, options, record)


def search_both(queries: np.ndarray, database: np.ndarray, images: ForbImages,
                options: RunOptions, record: RunRecord) -> RankedLists:
    """Search the ``all`` database and its ``oods`` rows; ids index each database's list."""
    ids: dict[str, list[list[int]]] = {}
    scores: dict[str, list[list[float]]] = {}
    for name, rows in (("all", None), ("oods", images.oods_rows)):
        db = database if rows is None else database[rows]
        with record.stage(f"search: {name}", len(queries), "queries"), \
                progress_bar(len(queries), f"search {name}", "query") as bar:
            top_ids, top_scores = exact_top_k(queries, db, options.top_k, options.device,
                                              progress=bar)
        ids[name] = top_ids.tolist()
        # Six decimals keep the file small; rounding never breaks the descending order.
        scores[name] = np.round(top_scores.astype(np.float64), 6).tolist()
    record.peak_gpu_bytes = devices.peak_bytes(options.device)
    return RankedLists(ids, scores)
