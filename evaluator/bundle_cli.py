"""``leaderboard labels``: make and maintain encrypted label bundles (see evaluator.bundles and
the maintainer guide)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_OK, EXIT_USAGE, EXIT_DATA = 0, 2, 3

EPILOG = """\
examples:
  leaderboard labels keygen --out label.key
  leaderboard labels pack --benchmark forb --source /data/forb/metadata --key-file label.key
  leaderboard labels info labels/*.bundle
  leaderboard labels unpack labels/forb.bundle --out /tmp/forb-labels --key-file label.key
  leaderboard labels rotate labels/*.bundle --old-key-file old.key --new-key-file new.key

The key comes from --key-file, else $LEADERBOARD_LABEL_KEY (the key text), else the file named
by $LEADERBOARD_LABEL_KEY_FILE. Keys are never printed; their ids are.
"""


def add_parser(sub) -> None:
    parser = sub.add_parser(
        "labels", help="encrypted label bundles: keygen, pack, unpack, info, rotate",
        description="Hidden labels live in the repository only as encrypted bundles "
                    "(labels/<benchmark>.bundle), decrypted by CI with a key held in a secret.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    steps = parser.add_subparsers(dest="labels_command", required=True, metavar="COMMAND")

    p = steps.add_parser("keygen", help="write a new random key to a file (mode 600)",
                         description="Write a new key; store it as the LEADERBOARD_LABEL_KEY "
                                     "secret of the 'labels' environment.")
    p.add_argument("--out", type=Path, required=True, metavar="FILE")
    p.set_defaults(func=cmd_keygen)

    p = steps.add_parser("pack", help="encrypt a benchmark's label folder into a bundle",
                         description="Encrypt a label folder (as the dataset ships it).")
    p.add_argument("--benchmark", required=True, help="benchmark name (leaderboard boards)")
    p.add_argument("--source", type=Path, required=True, metavar="DIR")
    p.add_argument("--out", type=Path, metavar="BUNDLE",
                   help="default: labels/<benchmark>.bundle")
    p.add_argument("--key-file", type=Path, metavar="FILE")
    p.set_defaults(func=cmd_pack)

    p = steps.add_parser("unpack", help="decrypt a bundle into a new folder")
    p.add_argument("bundle", type=Path)
    p.add_argument("--out", type=Path, required=True, metavar="DIR")
    p.add_argument("--key-file", type=Path, metavar="FILE")
    p.set_defaults(func=cmd_unpack)

    p = steps.add_parser("info", help="show bundle headers (no key needed)")
    p.add_argument("bundles", type=Path, nargs="+", metavar="BUNDLE")
    p.set_defaults(func=cmd_info)

    p = steps.add_parser("rotate", help="re-encrypt bundles for a new key",
                         description="Re-encrypt each bundle for the new key; a bundle is "
                                     "replaced only once its new version decrypts.")
    p.add_argument("bundles", type=Path, nargs="+", metavar="BUNDLE")
    p.add_argument("--old-key-file", type=Path, required=True, metavar="FILE")
    p.add_argument("--new-key-file", type=Path, required=True, metavar="FILE")
    p.set_defaults(func=cmd_rotate)


def _guarded(command):
    def run(args) -> int:
        from evaluator.bundles import BundleError
        from evaluator.labels import LabelSourceError

        try:
            return command(args)
        except (BundleError, LabelSourceError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_DATA
    return run


def _key(path: Path | None) -> bytes:
    from evaluator.bundle_sources import key_from_env
    from evaluator.bundles import parse_key

    from evaluator.bundles import BundleError

    if not path:
        return key_from_env()
    try:
        return parse_key(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise BundleError(f"{path}: not a label key (not UTF-8 text)") from None


@_guarded
def cmd_keygen(args) -> int:
    from evaluator.bundles import generate_key, key_id, parse_key

    if args.out.exists():
        print(f"error: {args.out} exists; not overwriting a key", file=sys.stderr)
        return EXIT_USAGE
    key = generate_key()
    descriptor = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(key + "\n")
    print(f"wrote key {key_id(parse_key(key))} to {args.out}")
    print(f"store it as a secret: gh secret set LEADERBOARD_LABEL_KEY --env labels < {args.out}")
    return EXIT_OK


@_guarded
def cmd_pack(args) -> int:
    from evaluator.bundles import pack
    from evaluator.registry import get_benchmark

    try:
        name = get_benchmark(args.benchmark).info.name
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return EXIT_USAGE
    out = args.out or Path("labels") / f"{name}.bundle"
    header = pack(args.source, out, _key(args.key_file), name)
    print(f"packed {header['files']} files ({header['bytes']} bytes) of {name} into {out} "
          f"({out.stat().st_size} bytes), key {header['key_id']}")
    return EXIT_OK


@_guarded
def cmd_unpack(args) -> int:
    from evaluator.bundles import unpack

    header = unpack(args.bundle, args.out, _key(args.key_file))
    print(f"unpacked {header['files']} files of {header['benchmark']} into {args.out}")
    return EXIT_OK


@_guarded
def cmd_info(args) -> int:
    from evaluator.bundles import read_header

    for path in args.bundles:
        h = read_header(path)
        print(f"{path}: benchmark {h['benchmark']}, key {h['key_id']}, {h['files']} files, "
              f"{h['bytes']} bytes, created {h['created']}, format {h['format']}")
    return EXIT_OK


@_guarded
def cmd_rotate(args) -> int:
    from evaluator.bundles import key_id, rotate

    old, new = _key(args.old_key_file), _key(args.new_key_file)
    for path in args.bundles:
        rotate(path, old, new)
        print(f"{path}: key {key_id(old)} -> {key_id(new)}")
    return EXIT_OK
