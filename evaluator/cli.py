"""The ``leaderboard`` command: validate submissions, score them, export schemas."""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from pathlib import Path

from evaluator import __version__, progress
from evaluator.board_data import BoardData
from baselines.cli import add_parser as add_baseline_parser
from evaluator.bundle_cli import add_parser as add_labels_parser
from evaluator.ci.cli import add_parser as add_ci_parser
from evaluator.published_cli import add_parser as add_published_parser
from evaluator.entries import find_entries
from evaluator.evaluation import (
    EntryError,
    benchmark_of_entry,
    check_entry,
    check_predictions,
    evaluate_entry,
    in_benchmark_folder,
    score_predictions,
)
from evaluator.labels import LabelSettingError, LabelSourceError
from evaluator.records import RecordConflict, dumps, store_record
from evaluator.registry import Benchmark, BoardDataError, benchmarks, resolve_board
from evaluator.validation.report import DEFAULT_MAX_ERRORS, ValidationReport, printable

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_DATA, EXIT_CONFLICT = 0, 1, 2, 3, 4

DESCRIPTION = """\
Validate and score leaderboard submissions: FORB retrieval, MVTec 3D-AD and Eyecandies
anomaly detection (`leaderboard boards` lists them).

An entry is a folder submissions/<benchmark>/<entry-id>/ with a metadata.json and its
predictions. Labels are never in the repository: point --labels at them (or set
LEADERBOARD_LABELS_<BENCHMARK>). Only aggregate scores are ever printed.
"""

EPILOG = """\
examples:
  leaderboard boards
  leaderboard validate submissions/ --labels ../shared/data/forb/metadata
  leaderboard evaluate --benchmark forb --predictions my_method/retrieval_results \\
      --labels ../shared/data/forb/metadata --json scores.json
  leaderboard evaluate --all --labels ../shared/data/forb/metadata
  leaderboard evaluate --benchmark mvtec3d-ad --predictions preds/ \
      --labels /data/mvtec_3d_anomaly_detection --json scores.json
  leaderboard rescore --board mvtec3d-ad-v2 --labels /data/mvtec_3d_anomaly_detection
  leaderboard schemas --out schemas/

exit status: 0 ok, 1 invalid submission, 2 usage error, 3 label or metadata problem,
4 a stored record disagrees with a new evaluation.
"""


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leaderboard", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    labels_help = ("label source: a folder as the dataset ships it (FORB: its metadata folder; "
                   "the subset board uses its FORB_subset/ subfolder). Repeat as "
                   "BENCHMARK=PATH for several benchmarks. Default: $LEADERBOARD_LABELS_<NAME>")

    p = sub.add_parser(
        "boards", help="list benchmarks, boards, metrics and accepted formats",
        description="List every registered benchmark with its boards, metrics and formats.")
    p.set_defaults(func=cmd_boards)

    p = sub.add_parser(
        "validate", help="check entries or prediction files without reading any label",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Check entries (metadata, folder rules, predictions) or a predictions "
                    "file/folder. Every problem is reported with its file and line.\n\n"
                    "With a label source, predictions are also checked against the board's "
                    "public lists (every query once per database, no unknown image); the "
                    "ground truth itself is never opened.",
        epilog="examples:\n  leaderboard validate submissions/\n"
               "  leaderboard validate submissions/forb/my-entry --labels META\n"
               "  leaderboard validate --benchmark forb-subset predictions.ndjson.gz --labels META")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                   help="entry folder, folder of entries (e.g. submissions/), or predictions")
    p.add_argument("--benchmark", help="board or benchmark, needed for bare prediction files "
                   "(e.g. forb, forb-subset, forb-v1)")
    p.add_argument("--labels", action="append", metavar="SOURCE", help=labels_help)
    p.add_argument("--max-errors", type=positive_int, default=DEFAULT_MAX_ERRORS, metavar="N",
                   help=f"problems to list per entry (default {DEFAULT_MAX_ERRORS})")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser(
        "evaluate", help="validate, then score against the labels",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Validate predictions, then compute every metric for every slice.\n\n"
                    "--predictions scores a file or folder and prints/writes the result.\n"
                    "--entry and --all score entry folders and store an immutable record in "
                    "each entry's records/<board>.json (an existing record is recomputed and "
                    "must agree).",
        epilog="examples:\n"
               "  leaderboard evaluate --benchmark forb --predictions run/retrieval_results \\\n"
               "      --labels ../shared/data/forb/metadata --json scores.json\n"
               "  leaderboard evaluate --entry submissions/forb/random-ranking --labels META\n"
               "  leaderboard evaluate --all --labels META")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--predictions", type=Path, metavar="PATH",
                      help="predictions file or folder (needs --benchmark)")
    what.add_argument("--entry", type=Path, action="append", metavar="DIR",
                      help="an entry folder (repeatable)")
    what.add_argument("--all", action="store_true", help="every entry under --submissions")
    p.add_argument("--benchmark", help="board or benchmark: forb, forb-subset, forb-v1, ...")
    p.add_argument("--labels", action="append", metavar="SOURCE", help=labels_help)
    p.add_argument("--json", type=Path, metavar="OUT",
                   help="write the evaluation (scores, curves, provenance) to OUT")
    p.add_argument("--submissions", type=Path, default=Path("submissions"), metavar="DIR",
                   help="where --all looks for entries (default: submissions)")
    p.add_argument("--no-record", action="store_true",
                   help="with --entry/--all: do not write or verify records")
    p.add_argument("--max-errors", type=positive_int, default=DEFAULT_MAX_ERRORS, metavar="N",
                   help=f"problems to list (default {DEFAULT_MAX_ERRORS})")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "rescore", help="score every stored entry of a board under one version",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Validate every stored entry of a board again and score it under the "
                    "given board version: writes records/<board-id>.json beside the older "
                    "records (never touching them; an existing record of that version is "
                    "recomputed and must agree) and the changes report "
                    "<submissions>/changes/<board-id>.json: each entry's rank and primary "
                    "metric under the previous version and this one. The site shows it as "
                    "the version's \"what changed\" page.",
        epilog="example:\n  leaderboard rescore --board mvtec3d-ad-v2 --labels MVTEC3D_ROOT")
    p.add_argument("--board", required=True, metavar="BOARD",
                   help="board version (mvtec3d-ad-v2) or board name (its newest version)")
    p.add_argument("--labels", action="append", metavar="SOURCE", help=labels_help)
    p.add_argument("--submissions", type=Path, default=Path("submissions"), metavar="DIR",
                   help="where the stored entries are (default: submissions)")
    p.set_defaults(func=cmd_rescore)

    p = sub.add_parser(
        "build", help="build the leaderboard website",
        description="Render every board from evaluation records, entry metadata and the "
                    "published tables in site/data/published, then run `mkdocs build "
                    "--strict`. Generated sources go to build/docs; labels are never needed.",
        epilog="example:\n  leaderboard build --out build/site",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("build/site"), metavar="DIR",
                   help="where the built site goes (default: build/site)")
    p.add_argument("--submissions", type=Path, default=Path("submissions"), metavar="DIR")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("serve", help="build the site and preview it on localhost",
                       description="Build the site, then serve it at http://127.0.0.1:PORT/.")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--out", type=Path, default=Path("build/site"), metavar="DIR")
    p.add_argument("--submissions", type=Path, default=Path("submissions"), metavar="DIR")
    p.set_defaults(func=cmd_serve)

    add_ci_parser(sub)
    add_labels_parser(sub)
    add_baseline_parser(sub)
    add_published_parser(sub)

    p = sub.add_parser("schemas", help="write the JSON Schemas of metadata and prediction lines",
                       description="Write JSON Schemas generated from the validator's models.")
    p.add_argument("--out", type=Path, default=Path("schemas"), metavar="DIR")
    p.set_defaults(func=cmd_schemas)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # `baseline run` records the exact command in the entry
    try:
        return args.func(args)
    except LabelSettingError as exc:
        progress.clear()
        print(f"error: {printable(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except (LabelSourceError, BoardDataError) as exc:
        progress.clear()
        print(f"error: {printable(str(exc))}", file=sys.stderr)
        return EXIT_DATA
    except EntryError as exc:
        progress.clear()
        print(f"error: {printable(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        progress.clear()
        return 130


# boards ---------------------------------------------------------------------------------------

def cmd_boards(args) -> int:
    for benchmark in benchmarks():
        info = benchmark.info
        print(f"{info.name}: {info.title}")
        print(f"  reference: {info.reference}")
        for board in info.boards:
            # A board name stands for its newest version.
            names = (f"{board.name} or {board.id}, current" if board == benchmark.board(board.name)
                     else board.id)
            print(f"  board {board.id} (--benchmark {names}): {board.description}")
            print("    metrics: " + ", ".join(m.name for m in benchmark.metrics_of(board)))
        print(f"  primary metric: {info.primary_metric}")
        print(f"  slices: {info.slices}")
        for fmt in info.formats:
            tag = " [recommended]" if fmt.recommended else ""
            print(f"  format {fmt.name}{tag}: {fmt.description}")
        print(f"  labels: {info.label_source}")
    return EXIT_OK


# validate -------------------------------------------------------------------------------------

def cmd_validate(args) -> int:
    failed = 0
    checked = 0
    with ExitStack() as stack:
        data = BoardData(args.labels, stack)
        for path in args.paths:
            if not path.exists():
                print(f"{printable(str(path))}: error: no such file or folder")
                failed += 1
                continue
            entries = find_entries(path) if path.is_dir() else []
            if not entries:  # not an entry nor a folder of entries: bare predictions
                if not args.benchmark:
                    print(f"{printable(str(path))}: error: no entry folders (with "
                          "metadata.json) found; to "
                          "check bare predictions, pass --benchmark")
                    failed += 1
                    continue
                entries = [path]
            is_entry = [(e / "metadata.json").is_file() for e in entries]
            for entry, entry_like in zip(entries, is_entry):
                checked += 1
                report = ValidationReport(max_errors=args.max_errors)
                if entry_like:
                    title = _validate_entry(entry, args.benchmark, data, report)
                else:
                    title = _validate_predictions(entry, args.benchmark, data, report)
                failed += _print_report(title, report)
    print(f"{checked} checked, {failed} with errors")
    return EXIT_INVALID if failed else EXIT_OK


def _validate_entry(entry: Path, benchmark_name: str | None, data: BoardData,
                    report: ValidationReport) -> str:
    benchmark = benchmark_of_entry(entry, benchmark_name)
    board, checked = check_entry(entry, benchmark, lambda b: data.task(benchmark, b), report)
    if board and data.source(benchmark) is None:
        report.warning(entry.name, None, "not checked against the board's test set: "
                       + data.missing_source_hint(benchmark))
    fmt = checked.fmt.name if checked.fmt else "no predictions"
    return f"{entry} ({board.id if board else benchmark.info.name}, {fmt})"


def _validate_predictions(path: Path, benchmark_name: str | None, data: BoardData,
                          report: ValidationReport) -> str:
    benchmark, board = _resolve(benchmark_name)
    task = data.task(benchmark, board)
    if task is None:
        report.warning(path.name, None, "not checked against the board's test set: "
                       + data.missing_source_hint(benchmark))
    checked = check_predictions(benchmark, path, task, report)
    return f"{path} ({board.id}, {checked.fmt.name if checked.fmt else 'unknown format'})"


def _print_report(title: str, report: ValidationReport) -> int:
    progress.clear()
    status = "ok" if report.ok else f"{report.error_count} error(s)"
    print(f"{printable(title)}: {status}")
    for line in report.lines():
        print(f"  {line}")
    return 0 if report.ok else 1


# evaluate -------------------------------------------------------------------------------------

def cmd_evaluate(args) -> int:
    _check_output(args.json, "--json")  # before the labels are opened and anything is scored
    with ExitStack() as stack:
        data = BoardData(args.labels, stack)
        if args.predictions is not None:
            return _evaluate_predictions(args, data)
        entries = args.entry or find_entries(args.submissions)
        entries = [e for e in entries if (e / "metadata.json").is_file() or args.entry]
        if not entries:
            print(f"no entries found under {args.submissions}")
            return EXIT_OK
        if args.json and len(entries) > 1:
            print("error: --json needs a single entry", file=sys.stderr)
            return EXIT_USAGE
        worst = EXIT_OK
        for entry in entries:
            worst = max(worst, _evaluate_entry(entry, args, data))
        return worst


def _evaluate_predictions(args, data: BoardData) -> int:
    if not args.benchmark:
        print("error: --predictions needs --benchmark (e.g. forb or forb-subset)",
              file=sys.stderr)
        return EXIT_USAGE
    benchmark, board = _resolve(args.benchmark)
    directory = _require_labels(benchmark, board, data)
    if directory is None:
        return EXIT_USAGE
    report = ValidationReport(max_errors=args.max_errors)
    task = data.task(benchmark, board)
    checked = check_predictions(benchmark, args.predictions, task, report,
                                labels_for=(board, directory))
    if not report.ok:
        _print_report(f"{args.predictions} ({board.id})", report)
        return EXIT_INVALID
    evaluation = score_predictions(benchmark, board, task, checked, directory)
    _print_scores(benchmark, evaluation)
    _write_json(args.json, evaluation)
    return EXIT_OK


def _evaluate_entry(entry: Path, args, data: BoardData) -> int:
    benchmark = benchmark_of_entry(entry, args.benchmark)
    if not args.no_record and not in_benchmark_folder(entry, benchmark):
        print(f"error: {printable(str(entry))}: records are kept for entries in submissions/"
              f"{benchmark.info.name}/<entry-id>/ only, and this entry is in "
              f"{printable(entry.resolve().parent.name)}/; move it there, or pass --no-record "
              "to score it without a record", file=sys.stderr)
        return EXIT_USAGE
    report = ValidationReport(max_errors=args.max_errors)
    outcome = evaluate_entry(entry, benchmark, data, report,
                             versions=_versions_asked(benchmark, args.benchmark))
    if outcome.labels_missing:
        print(f"error: {data.missing_source_hint(benchmark)}", file=sys.stderr)
        return EXIT_USAGE
    if outcome.evaluation is None:
        _print_report(f"{entry}", report)
        return EXIT_INVALID
    worst = EXIT_OK
    for board, evaluation in outcome.scored:
        print(f"{evaluation['entry']} on {board.id}:")
        _print_scores(benchmark, evaluation)
        if args.no_record:
            continue
        try:
            stored = store_record(entry, board, evaluation)
        except RecordConflict as exc:
            print(f"error: {printable(str(exc))}", file=sys.stderr)
            worst = EXIT_CONFLICT
            continue
        print(f"  record {stored}: {entry / 'records' / (board.id + '.json')}")
    # --json holds one evaluation: the version the metadata's board name stands for (its
    # newest), or the one --benchmark named.
    _write_json(args.json, outcome.evaluation)
    return worst


def _versions_asked(benchmark: Benchmark, name: str | None):
    """--benchmark with a board id (mvtec3d-ad-v1) scores that version alone; otherwise an
    entry is scored under every version of its board."""
    for board in benchmark.info.boards:
        if name == board.id:
            return board
    return "all"


def _require_labels(benchmark: Benchmark, board, data: BoardData) -> Path | None:
    directory = data.directory(benchmark, board)
    if directory is None:
        print(f"error: {data.missing_source_hint(benchmark)}", file=sys.stderr)
    return directory


def _resolve(name: str | None):
    if not name:
        raise EntryError("pass --benchmark (see `leaderboard boards`)")
    try:
        return resolve_board(name)
    except KeyError as exc:
        raise EntryError(str(exc.args[0])) from None


def _print_scores(benchmark: Benchmark, evaluation: dict) -> None:
    """Aggregate scores of the top-level slices, at the precision the papers print."""
    metrics = _metrics_of_evaluation(benchmark, evaluation)
    slices = [s for s in evaluation["scores"] if "/" not in s]
    width = max(len(s) for s in slices)
    cols = [max(9, len(m.name)) + 2 for m in metrics]
    print("  " + " " * width + "".join(f"{m.name:>{c}}" for m, c in zip(metrics, cols)))
    for name in slices:
        cells = []
        for metric, col in zip(metrics, cols):
            value = evaluation["scores"][name][metric.name]
            if value is None:
                cells.append(f"{'-':>{col}}")
            else:
                shown = 100 * value if metric.percent else value
                cells.append(f"{shown:>{col}.{metric.decimals}f}")
        print(f"  {name:<{width}}" + "".join(cells))
    _print_intervals(benchmark, evaluation)
    provenance = evaluation["provenance"]
    print(f"  predictions sha256 {provenance['predictions']['sha256']}, labels "
          f"{provenance['labels_digest'][:19]}..., evaluator {provenance['evaluator_version']}")


def _metrics_of_evaluation(benchmark: Benchmark, evaluation: dict):
    """The metrics of the board version an evaluation was made for."""
    return benchmark.metrics_of(benchmark.board(evaluation["board"]))


def _print_intervals(benchmark: Benchmark, evaluation: dict) -> None:
    """The headline slice's bootstrap intervals (aggregates; every slice's are in --json)."""
    settings = evaluation.get("bootstrap")
    headline = benchmark.info.headline_slice
    found = (evaluation.get("intervals") or {}).get(headline)
    if not settings or not found:
        return
    cells = []
    for metric in _metrics_of_evaluation(benchmark, evaluation):
        if metric.name in found:
            low, high = (100 * v if metric.percent else v for v in found[metric.name])
            cells.append(f"{metric.name} [{low:.{metric.decimals}f}, {high:.{metric.decimals}f}]")
    print(f"  {headline}, {100 * settings['level']:g} % bootstrap intervals "
          f"({settings['resamples']} resamples by {settings['unit']}, seed {settings['seed']}): "
          + ", ".join(cells))


def _check_output(path: Path | None, option: str, folder: bool = False) -> None:
    """Refuse an output path that cannot be written (a folder where a file goes, or a file
    where a folder goes) as a usage error, before any work is done."""
    if path is None:
        return
    if path.exists() and path.is_dir() != folder:
        raise EntryError(f"{option} {path}: is a {'file' if folder else 'folder'}, expected "
                         f"{'a folder' if folder else 'a file name'}")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise EntryError(f"{option} {path}: {parent} is a file, not a folder")
            break


def _write_json(path: Path | None, evaluation: dict) -> None:
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dumps(evaluation), encoding="utf-8")
    except OSError as exc:
        raise EntryError(f"--json {path}: cannot be written ({exc.strerror})") from None
    print(f"  wrote {path}")


# rescore --------------------------------------------------------------------------------------

def cmd_rescore(args) -> int:
    from evaluator.rescore import format_report, rescore

    benchmark, board = _resolve(args.board)
    if not args.submissions.is_dir():
        raise EntryError(f"--submissions {args.submissions}: no such folder")
    with ExitStack() as stack:
        data = BoardData(args.labels, stack)
        result = rescore(benchmark, board, data, args.submissions)
    if result.labels_missing:
        print(f"error: {data.missing_source_hint(benchmark)}", file=sys.stderr)
        return EXIT_USAGE
    for name in result.written:
        print(f"recorded {name} on {board.id}")
    for name in result.verified:
        print(f"verified {name} on {board.id} (its record already existed)")
    for name, why in result.failed:
        print(f"not rescored {name}: {printable(why)}")
    for line in format_report(result.report):
        print(printable(line))
    print(f"wrote {result.report_path}")
    return EXIT_INVALID if result.failed else EXIT_OK


# site -----------------------------------------------------------------------------------------

def cmd_build(args) -> int:
    import time

    from evaluator.site.render import build

    start = time.perf_counter()
    views = build(args.out, args.submissions)
    rows = sum(len(v.rows) for v in views)
    print(f"built {args.out} ({len(views)} boards, {rows} rows) in "
          f"{time.perf_counter() - start:.1f} s")
    return EXIT_OK


def cmd_serve(args) -> int:
    import functools
    import http.server

    cmd_build(args)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(args.out))
    with http.server.ThreadingHTTPServer(("127.0.0.1", args.port), handler) as server:
        print(f"serving http://127.0.0.1:{args.port}/ (Ctrl-C stops)")
        server.serve_forever()
    return EXIT_OK


# schemas --------------------------------------------------------------------------------------

def cmd_schemas(args) -> int:
    from evaluator.schemas import write_schemas

    _check_output(args.out, "--out", folder=True)
    for path in write_schemas(args.out):
        print(path)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
