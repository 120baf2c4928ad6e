"""``python -m indexer``: the offline side of PosterRec (ingest, build, versions, rollback)."""

from __future__ import annotations

import argparse

from posterrec_settings import ConfigError

import posterrec_cli
from models.catalog import CatalogError

from . import build, events, ingest, savedmodel, versions
from .published import IndexVersionError
from .store import StoreError


def build_parser() -> argparse.ArgumentParser:
    parser, commands = posterrec_cli.command_parser("python -m indexer", __doc__)
    for module in (ingest, events, build, versions, savedmodel):
        module.add_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    return posterrec_cli.main(build_parser(), argv, (CatalogError, ConfigError, IndexVersionError, StoreError))


if __name__ == "__main__":
    posterrec_cli.exit_with(main())
