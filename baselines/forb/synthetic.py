"""Small FORB-shaped image datasets, for testing the bundled baselines end to end.

``make_forb_dataset(ROOT)`` writes what FORB's downloader writes, in FORB's exact metadata format:

    ROOT/metadata/<type>_query.ndjson, <type>_database.ndjson (none for movie_posters, as in the
        published metadata), <type>_gt.ndjson, all_database_images.txt,
        oods_database_images.txt, images_for_building_codebook.txt
    ROOT/<type>/database/<name>.jpg, ROOT/<type>/query/<name>.jpg
    ROOT/SYNTHETIC (marks the data as generated; baselines record it in their runs)

Every *object* is a flat, richly textured picture of its own (shapes, stripes, mosaic patches,
text-like strokes), so local features (SIFT) find many distinctive keypoints and global
embeddings see different objects as different. A database image is the object seen frontally;
a query "photographs" it: a perspective warp over a cluttered background, a lighting change,
blur and JPEG compression, stronger as the difficulty grows (hard queries are also partly
occluded or cropped). Exact-copy queries and two-answer logos queries cover FORB's special cases.

Only numpy and PIL are used. Every picture has its own random stream, derived from the seed and
the object's identity, so the same arguments give byte-identical files.

    python -m baselines.forb.synthetic OUT_DIR [--queries 2] [--distractors 8] [--seed 0]
"""

from __future__ import annotations

import argparse
import io
import json
import math
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from baselines.forb.data import CODEBOOK_LIST, SYNTHETIC_MARKER
from evaluator.forb.task import OBJECT_TYPES

# uuid5 names, like FORB's, derived from the seed and the image's role.
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "cv-leaderboards/synthetic-forb")
_URL = "https://example.invalid/synthetic-forb/{}.jpg"  # .invalid: a placeholder by definition

# Random-stream keys, so that each picture's stream depends only on what the picture is (a
# query object's picture does not change when distractors are added, for instance).
_QUERY_OBJECT, _DISTRACTOR = 0, 1      # kinds of object
_PAINT, _VARIANT, _PHOTO = 0, 1, 2     # what is drawn from an object's stream
_ORDER, _CODEBOOK = 0, 1               # the other random choices

# Difficulty by query position (cycled over all queries): mostly medium, as in FORB.
_LEVEL_CYCLE = ("medium", "easy", "medium", "hard")


@dataclass(frozen=True)
class _Look:
    """How a query photograph is taken at one difficulty."""

    cover: float      # object's extent as a fraction of the frame (before the warp)
    jitter: float     # perspective: corner displacement, as a fraction of the object's size
    rotation: float   # in-plane rotation, degrees (at most)
    light: float      # strength of the brightness gradient
    blur: tuple[float, float]  # Gaussian blur radius range, pixels
    quality: int      # JPEG quality


_LOOKS = {
    "easy": _Look(cover=0.85, jitter=0.03, rotation=4, light=0.15, blur=(0.3, 0.5), quality=90),
    "medium": _Look(cover=0.75, jitter=0.08, rotation=12, light=0.3, blur=(0.4, 0.7), quality=85),
    "hard": _Look(cover=0.6, jitter=0.17, rotation=35, light=0.5, blur=(0.8, 1.1), quality=70),
}


@dataclass
class SyntheticForb:
    root: Path                      # ROOT (ROOT/metadata/..., ROOT/<type>/{database,query}/)
    metadata: Path                  # ROOT/metadata
    exact_copy_queries: list[str]   # query paths whose JPEG bytes equal a database image's
    two_answer_queries: list[str]   # logos queries with two correct database images


def make_forb_dataset(root: Path, *, queries_per_type: dict[str, int] | int = 2,
                      distractors: int = 8, image_size: int = 192, seed: int = 0,
                      exact_copies: int = 1, two_answer_queries: int = 1,
                      codebook_images: int | None = None) -> SyntheticForb:
    """Write a FORB-shaped dataset under ``root`` and say where its special queries are.

    ``queries_per_type``: an int for every type, or a dict (missing types get no queries; their
    query and gt files exist but are empty). ``distractors`` database images without a query
    are dealt over the types in FORB's order, starting with the first. ``exact_copies`` queries
    (first queries of the first types with queries, never logos) are byte copies of their
    database image; ``two_answer_queries`` logos queries have two database images (the second a
    rescaled, recoloured variant). Both are capped at the queries available.
    ``codebook_images``: how many database images to list for building a codebook (a seeded
    sample, in database order; all of them when None). Files already under ``root`` that the
    new dataset does not name are left alone: give an empty or new folder.
    """
    root = Path(root)
    counts = _query_counts(queries_per_type)
    if min(distractors, exact_copies, two_answer_queries, codebook_images or 0) < 0:
        raise ValueError("counts must be >= 0")
    if image_size < 32:
        raise ValueError("image_size must be at least 32 pixels")

    # Special queries, as (type, 0-based index within the type).
    copy_slots = [(t, k) for k in range(max(counts.values(), default=0))
                  for t in OBJECT_TYPES if t != "logos" and k < counts[t]][:exact_copies]
    two_answer = set(range(min(two_answer_queries, counts["logos"])))

    metadata = root / "metadata"
    metadata.mkdir(parents=True, exist_ok=True)
    all_database: list[str] = []
    gt_images: set[str] = set()
    exact_copy_paths: list[str] = []
    two_answer_paths: list[str] = []
    global_query = 0
    for t_index, object_type in enumerate(OBJECT_TYPES):
        for role in ("database", "query"):
            (root / object_type / role).mkdir(parents=True, exist_ok=True)
        n_queries = counts[object_type]
        n_distractors = len(range(t_index, distractors, len(OBJECT_TYPES)))

        # Objects of this type: (stream kind, index, number of database images). The database
        # order is shuffled so ground-truth ids are not simply 1..n; variants stay together.
        objects = [(_QUERY_OBJECT, k, 2 if object_type == "logos" and k in two_answer else 1)
                   for k in range(n_queries)]
        objects += [(_DISTRACTOR, k, 1) for k in range(n_distractors)]
        order = _rng(seed, _ORDER, t_index).permutation(len(objects))

        database: list[str] = []          # this type's database paths, in order
        images_of: dict[int, list[int]] = {}  # query index -> 0-based positions in `database`
        fine_of: dict[int, Image.Image] = {}  # query index -> its object drawn at 2x
        jpeg_of: dict[str, bytes] = {}
        for i in order:
            kind, k, n_images = objects[i]
            fine = _paint_object(_rng(seed, t_index, kind, k, _PAINT), image_size)
            picture = fine.reduce(2)  # antialiased: PIL draws without it
            positions = []
            for variant in range(n_images):
                image = picture if variant == 0 else _variant(
                    picture, _rng(seed, t_index, kind, k, _VARIANT))
                path = _path(seed, object_type, "database", kind, k, variant)
                jpeg_of[path] = _jpeg(image, quality=92)
                (root / path).write_bytes(jpeg_of[path])
                positions.append(len(database))
                database.append(path)
            if kind == _QUERY_OBJECT:
                images_of[k], fine_of[k] = positions, fine
        all_database += database
        if object_type != "movie_posters":  # the published metadata lacks this file
            _write_ndjson(metadata / f"{object_type}_database.ndjson",
                          [{"image": p, "image_url": _url(p)} for p in database])

        query_records, gt_records = [], []
        for k in range(n_queries):
            path = _path(seed, object_type, "query", _QUERY_OBJECT, k, 0)
            answers = [database[i] for i in images_of[k]]
            if (object_type, k) in copy_slots:
                level = "easy"
                (root / path).write_bytes(jpeg_of[answers[0]])
                exact_copy_paths.append(path)
            else:
                level = _LEVEL_CYCLE[global_query % len(_LEVEL_CYCLE)]
                photo = _photograph(fine_of[k], level,
                                    _rng(seed, t_index, _QUERY_OBJECT, k, _PHOTO))
                (root / path).write_bytes(_jpeg(photo, quality=_LOOKS[level].quality))
            if len(answers) > 1:
                two_answer_paths.append(path)
            gt_images.update(answers)
            query_records.append({"image": path, "image_url": _url(path)})
            gt_records.append({
                "query_id": k + 1, "query_image": path, "query_url": _url(path),
                "groundtruth_ids": [i + 1 for i in images_of[k]],
                "groundtruth_images": answers,
                "groundtruth_urls": [_url(p) for p in answers],
                "difficulty": level,
            })
            global_query += 1
        _write_ndjson(metadata / f"{object_type}_query.ndjson", query_records)
        _write_ndjson(metadata / f"{object_type}_gt.ndjson", gt_records)

    _write_lines(metadata / "all_database_images.txt", all_database)
    _write_lines(metadata / "oods_database_images.txt",
                 [p for p in all_database if p not in gt_images])
    if codebook_images is None or codebook_images >= len(all_database):
        codebook = all_database
    else:
        picks = _rng(seed, _CODEBOOK).choice(len(all_database), codebook_images, replace=False)
        codebook = [all_database[i] for i in sorted(picks)]
    _write_lines(metadata / CODEBOOK_LIST, codebook)
    arguments = {"queries_per_type": counts, "distractors": distractors,
                 "image_size": image_size, "seed": seed, "exact_copies": exact_copies,
                 "two_answer_queries": two_answer_queries, "codebook_images": codebook_images}
    (root / SYNTHETIC_MARKER).write_text(
        "Generated test data, not FORB's images: baselines.forb.synthetic.make_forb_dataset "
        f"with {json.dumps(arguments, sort_keys=True)}\n", encoding="utf-8")
    return SyntheticForb(root, metadata, exact_copy_paths, two_answer_paths)


def _query_counts(queries_per_type: dict[str, int] | int) -> dict[str, int]:
    if isinstance(queries_per_type, int):
        counts = {t: queries_per_type for t in OBJECT_TYPES}
    else:
        unknown = set(queries_per_type) - set(OBJECT_TYPES)
        if unknown:
            raise ValueError(f"unknown object types: {sorted(unknown)}")
        counts = {t: int(queries_per_type.get(t, 0)) for t in OBJECT_TYPES}
    if min(counts.values()) < 0:
        raise ValueError("query counts must be >= 0")
    return counts


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(list(key))


def _path(seed: int, object_type: str, role: str, kind: int, k: int, variant: int) -> str:
    name = uuid.uuid5(_NAMESPACE, f"{seed}/{object_type}/{role}/{kind}/{k}/{variant}")
    return f"{object_type}/{role}/{name}.jpg"


def _url(path: str) -> str:
    return _URL.format(path.rsplit("/", 1)[-1].removesuffix(".jpg"))


def _write_ndjson(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def _write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


# --- pictures -------------------------------------------------------------------------------

def _colour(rng: np.random.Generator, muted: bool = False) -> tuple[int, int, int]:
    if muted:  # clutter: greyish, so it does not look like an object's saturated print
        grey = rng.integers(60, 200)
        return tuple(int(np.clip(grey + d, 0, 255)) for d in rng.integers(-25, 26, 3))
    return tuple(int(c) for c in rng.integers(0, 256, 3))


def _paint_object(rng: np.random.Generator, image_size: int) -> Image.Image:
    """A flat printed object (colour fields, shapes, stripes, checkers, text and a border),
    drawn at twice ``image_size``: reduced, it is the database image; queries warp it."""
    aspect = rng.uniform(0.75, 4 / 3)  # width / height, between card-like and landscape
    width, height = ((image_size, round(image_size / aspect)) if aspect >= 1
                     else (round(image_size * aspect), image_size))
    w, h = 2 * width, 2 * height
    image = Image.new("RGB", (w, h), _colour(rng))
    draw = ImageDraw.Draw(image)
    unit = min(w, h)

    def box(lo: float, hi: float) -> list[int]:
        bw, bh = (rng.uniform(lo, hi, 2) * unit).astype(int)
        x, y = rng.integers(-bw // 4, w - bw // 2), rng.integers(-bh // 4, h - bh // 2)
        return [int(x), int(y), int(x + bw), int(y + bh)]

    for _ in range(rng.integers(3, 6)):  # large colour fields: the object's overall look
        draw.polygon([tuple(p) for p in rng.uniform(-0.2, 1.2, (rng.integers(3, 6), 2)) * (w, h)],
                     fill=_colour(rng))
    def size(lo: float, hi: float) -> int:  # a length, as a fraction of the shorter side
        return max(2, int(rng.uniform(lo, hi) * unit))

    # Strokes and cells stay at least ~1% of the side (2 px in a 192-px image): thinner detail
    # gives tiny generic SIFT blobs that match anything.
    for _ in range(rng.integers(20, 28)):
        kind = rng.integers(0, 6)
        x0, y0, x1, y1 = box(0.08, 0.3)
        if kind == 0:
            draw.ellipse([x0, y0, x1, y1], fill=_colour(rng), outline=_colour(rng),
                         width=size(0.015, 0.025) if rng.random() < 0.6 else 0)
        elif kind == 1:
            draw.polygon([(int(x), int(y)) for x, y in zip(rng.integers(x0, x1 + 1, 5),
                                                           rng.integers(y0, y1 + 1, 5))],
                         fill=_colour(rng))
        elif kind == 2:  # stripes
            pitch = size(0.02, 0.04)
            a, b = _colour(rng), _colour(rng)
            for i, y in enumerate(range(y0, y1, pitch)):
                draw.rectangle([x0, y, x1, y + pitch - 1], fill=a if i % 2 else b)
        elif kind == 3:  # mosaic patch: a regular checkerboard's identical cells would be
            # identical keypoints, matching those of any other checkerboard
            cell = size(0.025, 0.05)
            palette = [_colour(rng) for _ in range(3)]
            for y in range(y0, y1, cell):
                for x in range(x0, x1, cell):
                    draw.rectangle([x, y, x + cell - 1, y + cell - 1],
                                   fill=palette[rng.integers(0, 3)])
        elif kind == 4:  # thick lines
            for _ in range(3):
                draw.line([(int(rng.integers(x0, x1 + 1)), int(rng.integers(y0, y1 + 1)))
                           for _ in range(2)], fill=_colour(rng), width=size(0.015, 0.03))
        else:
            draw.rectangle([x0, y0, x1, y1], fill=_colour(rng))
    for _ in range(rng.integers(2, 5)):  # lines of text-like glyphs
        colour, glyph = _colour(rng), size(0.05, 0.08)
        stroke = max(2, glyph // 5)
        x, y = int(rng.integers(0, w // 2)), int(rng.integers(0, h - glyph))
        for _ in range(rng.integers(4, 9)):
            for (ax, ay), (bx, by) in rng.integers(0, glyph + 1, (int(rng.integers(2, 4)), 2, 2)):
                draw.line([(x + int(ax) * 2 // 3, y + int(ay)),
                           (x + int(bx) * 2 // 3, y + int(by))], fill=colour, width=stroke)
            x += glyph
    border = max(2, unit // 30)
    draw.rectangle([0, 0, w - 1, h - 1], outline=_colour(rng), width=border)
    return image


def _variant(picture: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The same logo as published elsewhere: smaller on a wider margin, colours a bit off."""
    w, h = picture.size
    scale = rng.uniform(0.8, 0.9)
    small = picture.resize((round(w * scale), round(h * scale)), Image.LANCZOS)
    canvas = Image.new("RGB", (w, h), _colour(rng, muted=True))
    canvas.paste(small, ((w - small.width) // 2, (h - small.height) // 2))
    shifted = np.asarray(canvas, dtype=np.int16) + rng.integers(-12, 13, 3)
    return Image.fromarray(np.clip(shifted, 0, 255).astype(np.uint8))


def _clutter(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A desk or shelf: smooth muted colour blobs with some outlines and lines on it."""
    small = rng.integers(40, 220, (4, 5, 3)).astype(np.uint8)
    image = Image.fromarray(small).resize(size, Image.BICUBIC)
    draw = ImageDraw.Draw(image)
    w, h = size
    for _ in range(rng.integers(6, 12)):
        x0, y0 = rng.integers(-w // 4, w), rng.integers(-h // 4, h)
        x1, y1 = x0 + rng.integers(w // 8, w // 2), y0 + rng.integers(h // 8, h // 2)
        if rng.random() < 0.5:
            draw.ellipse([int(x0), int(y0), int(x1), int(y1)], outline=_colour(rng, muted=True),
                         width=int(rng.integers(1, 4)))
        else:
            draw.line([(int(x0), int(y0)), (int(x1), int(y1))], fill=_colour(rng, muted=True),
                      width=int(rng.integers(1, 5)))
    return image


def _perspective_coefficients(frame_points: np.ndarray, object_points: np.ndarray) -> list[float]:
    """PIL's PERSPECTIVE data: the 8 coefficients mapping frame (output) to object (input)."""
    rows, rhs = [], []
    for (u, v), (x, y) in zip(frame_points, object_points):
        rows.append([u, v, 1, 0, 0, 0, -u * x, -v * x])
        rows.append([0, 0, 0, u, v, 1, -u * y, -v * y])
        rhs += [x, y]
    return np.linalg.solve(np.asarray(rows, float), np.asarray(rhs, float)).tolist()


def _photograph(fine: Image.Image, level: str, rng: np.random.Generator) -> Image.Image:
    """A photo of the printed object: warped, on clutter, relit, blurred (JPEG comes later).

    ``fine`` is the object drawn at twice the database resolution. The scene is composed at
    that resolution too and reduced at the end: PIL warps without antialiasing, and the jagged
    outline of a directly warped object is a chain of tiny SIFT blobs that match anything.
    """
    look = _LOOKS[level]
    # The frame is a bit larger than the database image, like a phone photo of the object,
    # and held the way the object is (landscape for a landscape object).
    longer = max(fine.size)
    frame = (longer * 5 // 8 * 2, longer * 15 // 32 * 2)  # even, so that reduce(2) is exact
    if fine.width < fine.height:
        frame = frame[::-1]
    photo = _clutter(rng, frame)

    # Scale first with an antialiasing filter; the perspective warp then stays close to 1:1.
    scale = look.cover * min(frame[0] / fine.width, frame[1] / fine.height)
    obj = fine.resize((round(fine.width * scale), round(fine.height * scale)), Image.LANCZOS)
    w, h = obj.size
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], float)
    angle = math.radians(rng.uniform(-look.rotation, look.rotation))
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    placed = (corners - (w / 2, h / 2)) @ rotation.T
    placed += rng.uniform(-look.jitter, look.jitter, (4, 2)) * max(w, h)
    centre = np.array(frame) / 2 + rng.uniform(-0.05, 0.05, 2) * frame
    crop = level == "hard" and rng.random() < 0.5
    if crop:  # push the object over one side of the frame: 10-25% of it is cut off
        axis = int(rng.integers(0, 2))
        extent = (w, h)[axis]
        overhang = rng.uniform(0.1, 0.25) * extent
        centre[axis] = (extent / 2 - overhang if rng.random() < 0.5
                        else frame[axis] - extent / 2 + overhang)
    placed += centre
    coefficients = _perspective_coefficients(placed, corners)
    warped = obj.transform(frame, Image.PERSPECTIVE, coefficients, Image.BICUBIC)
    mask = Image.new("L", obj.size, 255).transform(frame, Image.PERSPECTIVE, coefficients,
                                                   Image.BILINEAR)
    photo.paste(warped, (0, 0), mask)
    if level == "hard" and not crop:  # something lies on the object: a hand, another item
        corner = placed[rng.integers(0, 4)]
        reach = rng.uniform(0.25, 0.4) * max(w, h)
        ImageDraw.Draw(photo).ellipse(
            [int(corner[0] - reach), int(corner[1] - reach), int(corner[0] + reach),
             int(corner[1] + reach)], fill=_colour(rng, muted=True))
    photo = photo.reduce(2)

    # Lighting: gain, offset, a slight colour cast and a brightness gradient across the frame.
    width, height = photo.size
    pixels = np.asarray(photo, dtype=np.float32)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    direction = rng.uniform(0, 2 * math.pi)
    ramp = (xx / width - 0.5) * math.cos(direction) + (yy / height - 0.5) * math.sin(direction)
    gain = rng.uniform(0.8, 1.15) * (1 + look.light * ramp)
    pixels = pixels * gain[..., None] * rng.uniform(0.95, 1.05, 3) + rng.uniform(-20, 20)
    pixels += rng.normal(0, 1.5, pixels.shape)  # sensor noise
    photo = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    return photo.filter(ImageFilter.GaussianBlur(rng.uniform(*look.blur)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="dataset root to write")
    parser.add_argument("--queries", type=int, default=2, help="queries per object type")
    parser.add_argument("--distractors", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=192)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    made = make_forb_dataset(args.root, queries_per_type=args.queries,
                             distractors=args.distractors, image_size=args.image_size,
                             seed=args.seed)
    print(f"wrote {made.root}")


if __name__ == "__main__":
    main()
