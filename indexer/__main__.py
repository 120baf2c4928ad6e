"""``python -m indexer``: the offline side of PosterRec (ingest, build, versions, rollback)."""

from __future__ import annotations

import argparse
import logging
import sys

from models.catalog import CatalogError
from posterrec_settings import ConfigError

from . import build, events, ingest, savedmodel, versions
from .published import IndexVersionError
from .store import StoreError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m indexer", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True)
    for module in (ingest, events, build, versions, savedmodel):
        module.add_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.run(args)
    except (CatalogError, ConfigError, IndexVersionError, StoreError) as err:  # expected failures: a message, not a traceback
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
