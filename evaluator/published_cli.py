"""``leaderboard published check``: a data file of published results against its source.

What CI runs on a pull request that adds or changes ``site/data/published/*.json``: the file
must fit the model, name boards, slices, metrics, settings and methods that exist, and every
number must equal its cell in the quoted lines (or the excerpt in ../shared/sources/). A
maintainer then checks the quote against the source's URL at its commit.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from evaluator.published import PUBLISHED_DIR, PublishedDataError, check_unique_keys, \
    load_published_file
from evaluator.published.cells import check_source
from evaluator.published.source_text import SOURCES_DIR, SourceTextError
from evaluator.validation.report import printable

EXIT_OK, EXIT_INVALID = 0, 1


def add_parser(sub) -> None:
    p = sub.add_parser(
        "published", help="check published-results data files against their sources",
        description="Check data files of published results (site/data/published/) against "
                    "the model, the boards, the methods list and, cell by cell, the source "
                    "text: the lines the file quotes, or its excerpt in ../shared/sources/.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  leaderboard published check site/data/published/my-method.json")
    actions = p.add_subparsers(dest="action", required=True)
    check = actions.add_parser("check", help="check data files (all of them by default)")
    check.add_argument("files", nargs="*", type=Path, metavar="FILE")
    check.add_argument("--sources", type=Path, default=SOURCES_DIR, metavar="DIR",
                       help="where excerpt files are read from (default: %(default)s)")
    check.set_defaults(func=cmd_check)


def cmd_check(args) -> int:
    files = args.files or sorted(PUBLISHED_DIR.glob("*.json"))
    problems: list[str] = []
    loaded = []
    checked = 0
    for path in files:
        try:
            data = load_published_file(path)
        except PublishedDataError as exc:
            problems.append(str(exc) if str(exc).startswith(path.name) else f"{path}: {exc}")
            continue
        loaded.append((path.name, data))
        try:
            found = check_source(data, args.sources)
        except FileNotFoundError as exc:
            print(f"{path.name}: skipped, its excerpt is not here ({exc})")
            continue
        except SourceTextError as exc:
            found = [str(exc)]
        problems += [f"{path.name}: {p}" for p in found]
        cells = sum(len(v) for t in data.tables if t.format != "seed" for r in t.rows
                    for v in r.values.values())
        checked += 1
        if not found:
            print(f"{path.name}: ok ({cells} numbers checked)" if cells else
                  f"{path.name}: ok (tables checked by their seed test)")
    try:
        check_unique_keys(loaded)
    except PublishedDataError as exc:
        problems.append(str(exc))
    for problem in problems[:200]:
        print(f"error: {printable(problem)}")
    if len(problems) > 200:
        print(f"error: ... and {len(problems) - 200} more")
    print(f"{checked} file(s) checked, {len(problems)} problem(s)")
    return EXIT_INVALID if problems else EXIT_OK
