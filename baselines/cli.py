"""`leaderboard baseline list|run|run-all|preprocess`: the bundled baselines behind one command.

Importing this module imports neither torch nor OpenCV, so the evaluator's CLI stays light;
they are imported when a baseline runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from baselines.catalogue import BASELINES, get_baseline, published_mean, published_rows
from baselines.errors import BaselineDataError, BaselineUsageError
from baselines.options import MAX_TOP_K, PUBLISHED_TOP_K, RunOptions

EXIT_OK, EXIT_USAGE, EXIT_DATA, EXIT_INTERRUPTED = 0, 2, 3, 130
INSTALL_HINT = ("pip install -e '.[baselines]' (torch, timm, open_clip_torch, OpenCV, faiss, "
                "open3d, tifffile)")

RUN_EPILOG = """\
examples:
  leaderboard baseline run forb-bow-rerank --data /data/FORB --out submissions/forb/forb-bow-rerank
  leaderboard baseline run forb-clip-vit-l14-336 --data /data/FORB --out runs/clip --device cuda
  leaderboard baseline run forb-dino-vit-s8 --data /data/FORB --board forb-subset \\
      --out runs/dino-subset --weights /models/dino_vits8.pth
  leaderboard evaluate --entry runs/clip --labels /data/FORB/metadata
  leaderboard baseline run mvtec3d-rgb-fpfh-patchcore --data /data/mvtec_3d_anomaly_detection \
      --out submissions/mvtec3d-ad/mvtec3d-rgb-fpfh-patchcore
  leaderboard baseline run eyecandies-dino-vitb8-patchcore --data /data/Eyecandies \
      --out runs/dino-eyecandies --categories CandyCane,Lollipop

A killed run resumes where it stopped when the same command is run again: features,
descriptors, the codebook, preprocessed scans and finished anomaly categories are cached
(default: .baseline-cache/ beside --out, shared by the runs written there). The dataset
itself is never modified.
--weights random builds the same architecture with random weights: for tests and smoke runs
only, and the entry says so loudly (the submission pipeline refuses it).
"""

RUN_ALL_EPILOG = """\
examples:
  leaderboard baseline run-all --forb /data/FORB --mvtec3d /data/mvtec_3d_anomaly_detection \\
      --eyecandies /data/Eyecandies --out submissions/
  torchrun --nproc-per-node 4 -m evaluator.cli baseline run-all --forb /data/FORB \\
      --out submissions/

Runs every bundled baseline of the datasets given into <out>/<benchmark>/<baseline>, one cache
for all (<out>/.baseline-cache), evaluates each entry with the dataset's labels (no records/
are written into the entries) and writes the table of scores against the published rows to
baseline-report/comparison.md and .json. Run the same command again after a kill: finished
entries are kept, a run in progress resumes from the cache. The run options below apply to
every run where they make sense.
"""


def add_parser(sub) -> None:
    parser = sub.add_parser("baseline", help="list or run the bundled baselines",
                            description="The bundled baselines: each writes a ready entry "
                                        "that `leaderboard evaluate --entry` scores.")
    commands = parser.add_subparsers(dest="baseline_command", required=True, metavar="ACTION")

    p = commands.add_parser("list", help="list the bundled baselines",
                            description="Name, benchmark, modality, weights, and the published "
                                        "row each baseline reproduces.")
    p.set_defaults(func=cmd_list)

    p = commands.add_parser("run", help="run a baseline and write an entry folder",
                            description="Run a bundled baseline on a dataset as its downloader "
                                        "lays it out and write a complete entry folder.",
                            epilog=RUN_EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=sorted(BASELINES), metavar="NAME",
                   help="baseline name (see `leaderboard baseline list`)")
    p.add_argument("--data", type=Path, required=True, metavar="ROOT",
                   help="dataset root as its downloader lays it out (FORB: the folder holding "
                        "metadata/ and the image folders; MVTec 3D-AD / Eyecandies: the folder "
                        "holding the category folders)")
    p.add_argument("--out", type=Path, required=True, metavar="ENTRY_DIR",
                   help="entry folder to write (metadata.json, predictions, run.json)")
    p.add_argument("--board", help="board (default: the baseline's first; FORB baselines "
                   "also run on forb-subset)")
    add_run_options(p)
    p.set_defaults(func=cmd_run)

    p = commands.add_parser("run-all", help="run every baseline for the datasets given, "
                            "evaluate each entry and compare it with its published row",
                            description="Run every bundled baseline of the datasets given "
                                        "(in an order that shares cached work), evaluate each "
                                        "entry with the dataset's labels, and print and write "
                                        "a table of each entry's scores against the published "
                                        "row it reproduces.",
                            epilog=RUN_ALL_EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--forb", type=Path, metavar="ROOT", help="FORB root (metadata/ and the "
                   "image folders); runs every FORB baseline on forb, and on forb-subset "
                   "where ROOT/metadata/FORB_subset exists")
    p.add_argument("--mvtec3d", type=Path, metavar="ROOT", help="MVTec 3D-AD root")
    p.add_argument("--eyecandies", type=Path, metavar="ROOT", help="Eyecandies root")
    p.add_argument("--out", type=Path, required=True, metavar="SUBMISSIONS",
                   help="where entries go: <SUBMISSIONS>/<benchmark>/<baseline>[-subset]")
    p.add_argument("--baselines", type=_names, metavar="A,B",
                   help="only these baselines (default: all of the datasets given)")
    p.add_argument("--report", type=Path, metavar="DIR",
                   help="scores and the comparison table (comparison.md, comparison.json; "
                        "default: baseline-report/ beside --out)")
    add_run_options(p)
    p.set_defaults(func=cmd_run_all)

    p = commands.add_parser("preprocess", help="MVTec 3D-AD with the published point-cloud "
                            "preprocessing, written as a new dataset root",
                            description="Write MVTEC3D_ROOT's scans with BTF's published "
                                        "preprocessing applied (border plane removed, padded "
                                        "to squares, largest DBSCAN cluster kept) into "
                                        "PREPROCESSED_ROOT, in the dataset's own layout; gt "
                                        "and other files are copied unchanged. The dataset is "
                                        "only read; a killed run resumes when run again.")
    p.add_argument("--data", type=Path, required=True, metavar="MVTEC3D_ROOT",
                   help="MVTec 3D-AD's root folder (holding the category folders)")
    p.add_argument("--out", type=Path, required=True, metavar="PREPROCESSED_ROOT",
                   help="new folder to write (outside --data)")
    p.add_argument("--workers", type=_positive, metavar="N",
                   help="processes (default: every CPU core, at most 16)")
    p.set_defaults(func=_cmd_preprocess)


def add_run_options(p) -> None:
    """The options of `run` that `run-all` passes on to every run."""
    first = len(p._actions)
    p.add_argument("--device", default="auto", help="cpu, cuda or cuda:N (default: cuda "
                   "when torch sees a GPU, else cpu)")
    p.add_argument("--weights", default="published", metavar="published|random|PATH",
                   help="published (default; fetched by timm/open_clip), a local checkpoint "
                        "file, or random (smoke tests only); FPFH has no weights")
    p.add_argument("--batch-size", type=_positive, metavar="N",
                   help="images per batch (default 32 on GPU, 4 on CPU)")
    p.add_argument("--workers", type=_non_negative, metavar="N",
                   help="worker processes: image loading for the neural baselines (default: "
                        "CPU cores - 1, at most 16), SIFT and RANSAC for BoW (default: every "
                        "core)")
    p.add_argument("--top-k", type=_positive, default=PUBLISHED_TOP_K, metavar="K",
                   help=f"candidates per query (default {PUBLISHED_TOP_K} as published, "
                        f"at most {MAX_TOP_K})")
    p.add_argument("--precision", choices=["auto", "fp16", "fp32"], default="auto",
                   help="neural baselines: auto = fp16 on GPU, fp32 on CPU")
    p.add_argument("--cache", type=Path, metavar="DIR",
                   help="resumable cache folder (default: .baseline-cache/ beside --out, "
                        "shared by the runs written there)")
    p.add_argument("--chunk-images", type=_positive, default=512, metavar="N",
                   help="images per cache chunk (default 512); a killed run loses at most "
                        "the chunk in progress")
    p.add_argument("--codebook-size", type=_positive, metavar="K",
                   help="BoW: visual words (default 1,000,000 on GPU as published; 65,536 on "
                        "CPU)")
    p.add_argument("--kmeans-iterations", type=_positive, default=20, metavar="N",
                   help="BoW: k-means iterations (default 20 as published)")
    anomaly = p.add_argument_group("anomaly-detection baselines (MVTec 3D-AD, Eyecandies)")
    anomaly.add_argument("--categories", type=_names, metavar="A,B",
                         help="categories to run (default: every one the dataset root holds)")
    anomaly.add_argument("--preprocess", action=argparse.BooleanOptionalAction,
                         help="plane removal, square padding and largest-cluster cleaning of "
                              "the point clouds, into the cache (default: on for MVTec 3D-AD "
                              "as published, off for Eyecandies)")
    anomaly.add_argument("--blur", choices=["published", "float"], default="published",
                         help="map blur: published = sigma 4 on an 8-bit copy (maps quantised "
                              "to 256 levels, as published); float = unquantised")
    anomaly.add_argument("--max-train-samples", type=_positive, metavar="N",
                         help="training scans per category (default: all on MVTec 3D-AD, 401 "
                              "on Eyecandies and for M3DM's baseline, as their code ran)")
    anomaly.add_argument("--eyecandies-light", default="image_4",
                         choices=[f"image_{i}" for i in range(6)],
                         help="Eyecandies RGB image: image_4 (left spotlight, what M3DM's code "
                              "read; default) or image_5 (global light, what its text says)")
    anomaly.add_argument("--eyecandies-background", choices=["published", "zero"],
                         default="published",
                         help="Eyecandies point clouds: published = background points collapse "
                              "onto one point, as M3DM's conversion left them; zero = removed")
    anomaly.add_argument("--coreset-fraction", type=_fraction, default=0.1, metavar="F",
                         help="memory-bank coreset size as a fraction (default 0.1 as "
                              "published; 1 keeps every patch)")
    anomaly.add_argument("--seed", type=int, default=0,
                         help="seed of the coreset's random projection (default 0; the "
                              "published code left it unseeded)")
    # run-all records, in each entry, the `baseline run` flags that differ from these.
    p.set_defaults(run_option_defaults={a.dest: a.default for a in p._actions[first:]})


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one name")
    return names


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], not {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, not {value}")
    return value


def _cmd_preprocess(args) -> int:
    from baselines.anomaly.preprocess import cmd_preprocess

    return cmd_preprocess(args)


def cmd_list(args) -> int:
    for spec in BASELINES.values():
        print(f"{spec.name}  ({spec.benchmark}: {', '.join(spec.boards)}; {spec.modality})")
        print(f"  method:   {spec.method}")
        print(f"  weights:  {spec.weights}")
        print(f"  reproduces: {_reproduces(spec)}")
        if spec.reference:
            print(f"  also expected: {spec.reference}")
        print(f"  time:     {spec.gpu_time}; CPU: {spec.cpu_note}")
    return EXIT_OK


def _reproduces(spec) -> str:
    if not spec.published:
        return spec.published_label
    board_id = f"{spec.boards[0]}-v1"
    headline = "overall" if spec.benchmark == "forb" else "mean"
    tables = list(dict.fromkeys(label for label, _, _ in published_rows(spec, board_id)))
    values = published_mean(spec, board_id, headline)
    shown = ", ".join(f"{m} {v:.2f}" if spec.benchmark == "forb" else f"{m} {v:.3f}"
                      for m, v in values.items())
    return f"\"{spec.published_label}\", {', '.join(tables)} ({headline}: {shown})"


def options_from(args, data: Path | None, out: Path | None, board: str | None) -> RunOptions:
    return RunOptions(
        data=data, out=out, board=board, device=args.device,
        weights=args.weights, batch_size=args.batch_size, workers=args.workers,
        top_k=args.top_k, precision=args.precision, cache=args.cache,
        chunk_images=args.chunk_images,
        codebook_size=args.codebook_size, kmeans_iterations=args.kmeans_iterations,
        categories=args.categories, preprocess=args.preprocess, blur=args.blur,
        max_train_samples=args.max_train_samples, eyecandies_light=args.eyecandies_light,
        eyecandies_background=args.eyecandies_background,
        coreset_fraction=args.coreset_fraction, seed=args.seed)


def cmd_run(args) -> int:
    spec = get_baseline(args.name)
    options = options_from(args, args.data, args.out, args.board)
    code, out = _guarded(spec.name, lambda: _run(spec.name, options, args))
    if code != EXIT_OK or out is None:  # out is None on torchrun's ranks other than 0
        return code
    print(f"wrote {out}")
    labels = Path(args.data) / "metadata" if spec.benchmark == "forb" else Path(args.data)
    print(f"score it with: leaderboard evaluate --entry {out} --labels {labels}")
    return EXIT_OK


def _run(name: str, options: RunOptions, args):
    from baselines.runner import run_baseline

    return run_baseline(name, options, argv=getattr(args, "argv", None))


def cmd_run_all(args) -> int:
    from baselines.run_all import DATASET_OPTIONS

    roots = {benchmark: getattr(args, option.lstrip("-"))
             for benchmark, option in DATASET_OPTIONS.items()
             if getattr(args, option.lstrip("-")) is not None}
    if not roots:
        print("error: give at least one dataset: --forb, --mvtec3d or --eyecandies",
              file=sys.stderr)
        return EXIT_USAGE
    template = options_from(args, None, None, None)
    template.cache = args.cache or args.out / ".baseline-cache"
    report = args.report or args.out.resolve().parent / "baseline-report"
    code, result = _guarded("run-all", lambda: _run_all(roots, template, report, args))
    if code != EXIT_OK or result is None:
        return code
    return EXIT_DATA if result else EXIT_OK


def _run_all(roots, template: RunOptions, report: Path, args):
    """The failures (empty: every run and evaluation succeeded); None on ranks other than 0."""
    from baselines import distributed
    from baselines.run_all import finish, plan, run_all

    jobs, skipped = plan(roots, args.out, args.baselines)
    ranks = distributed.from_environment()
    for reason in skipped:
        if ranks.is_main:
            print(f"skipped {reason}")
    rows, failures = run_all(jobs, template, report, _run_flags(args), ranks)
    if not ranks.is_main:
        return None
    finish(rows, report)
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    return failures


def _run_flags(args) -> list[tuple[str, list[str]]]:
    """The run options given to run-all that differ from their defaults, as (option name,
    `baseline run` flag tokens): each entry records the run command that makes it."""
    flags = []
    for dest, default in args.run_option_defaults.items():
        value = getattr(args, dest)
        if value == default or dest == "cache":
            continue
        flag = "--" + dest.replace("_", "-")
        if isinstance(value, bool):
            flags.append((dest, [flag if value else "--no-" + flag[2:]]))
        else:
            flags.append((dest, [flag, ",".join(value) if isinstance(value, list)
                                 else str(value)]))
    return flags


def _guarded(name: str, work):
    """(exit code, result): errors become one line on stderr, never a traceback."""
    from baselines import distributed

    try:
        return EXIT_OK, work()
    except ModuleNotFoundError as exc:
        print(f"error: {name} needs the '{exc.name}' package: {INSTALL_HINT}",
              file=sys.stderr)
        return EXIT_USAGE, None
    except BaselineDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_DATA, None
    except BaselineUsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE, None
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to resume from the cache",
              file=sys.stderr)
        return EXIT_INTERRUPTED, None
    finally:
        distributed.stop()
