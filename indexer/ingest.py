"""``python -m indexer ingest CATALOG.csv``: validate a catalogue and sync it into the store.

Validation happens before the first write, so a catalogue with bad rows either
changes nothing (the default, exit status 1) or, with ``--skip-invalid``,
writes the good rows and lists every skipped one. Nothing is dropped silently.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from posterrec_settings import load_settings

from models.catalog import ALLOW_OUTSIDE_HELP, CatalogError, CatalogReport, RowError, format_errors, read_catalog

from .store import SyncSummary, open_store

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class IngestResult:
    report: CatalogReport
    summary: SyncSummary | None
    """None when nothing was written because of bad rows."""
    seconds: float


def ingest_catalog(
    catalog: str | Path, store_path: str | Path, skip_invalid: bool = False, allow_outside: bool = False
) -> IngestResult:
    """Validate ``catalog`` and, when it is clean or ``skip_invalid`` and one of its rows is valid, sync the store
    to it (titles it lacks are removed); ``allow_outside`` lets image paths lead outside the catalogue's folder.

    Raises:
        CatalogError: the catalogue cannot be read, or has no rows (which would empty the store).
    """
    started = time.perf_counter()
    report = read_catalog(catalog, allow_outside=allow_outside)
    if not report.rows and not report.errors:
        raise CatalogError(f"{catalog} has a header but no rows: syncing it would remove every title from the store")
    summary = None
    if report.ok or (skip_invalid and report.rows):
        with open_store(store_path) as store:
            summary = store.sync_catalog(report.rows, keep_ids={error.id for error in report.errors if error.id})
    return IngestResult(report, summary, time.perf_counter() - started)


def add_command(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "ingest",
        help="validate a catalogue CSV and sync the store to it (titles not in it are removed)",
        description="Validate a catalogue CSV (id,title,year,genres,image: genres separated by |, image paths "
        "relative to the CSV) and sync the store to it: its titles are added or updated, and titles not in it "
        "are removed. A catalogue with a bad row changes nothing unless --skip-invalid; one with no rows is "
        "refused.",
    )
    parser.add_argument("catalog", type=Path, help="CSV with columns id,title,year,genres,image")
    parser.add_argument("--store", type=Path, help="SQLite store (default: settings.store)")
    parser.add_argument("--skip-invalid", action="store_true", help="ingest the good rows and list the bad ones")
    parser.add_argument(
        "--allow-outside-images",
        action="store_true",
        help=ALLOW_OUTSIDE_HELP,
    )
    parser.set_defaults(run=_run)


FIX_OR_SKIP = "fix the rows above or pass --skip-invalid"
NO_VALID_ROW = "no row is valid (syncing would remove every title but theirs)"


def print_invalid_rows(source: Path, errors: Sequence[RowError], ingested: bool, why_not: str = FIX_OR_SKIP) -> bool:
    """Print a CSV's invalid rows, if any, and when nothing was ``ingested`` ``why_not``; returns ``ingested``."""
    if errors:
        verb = "skipped" if ingested else "found"
        print(
            f"{source}: {verb} {len({error.line for error in errors})} invalid row(s):\n{format_errors(errors)}",
            file=sys.stderr,
        )
    if not ingested:
        print(f"{source}: nothing ingested; {why_not}", file=sys.stderr)
    return ingested


def _run(args: argparse.Namespace) -> int:
    store_path = args.store or load_settings().store
    result = ingest_catalog(args.catalog, store_path, args.skip_invalid, args.allow_outside_images)
    report = result.report
    why_not = NO_VALID_ROW if args.skip_invalid else FIX_OR_SKIP
    if not print_invalid_rows(args.catalog, report.errors, result.summary is not None, why_not):
        return 1
    print(
        f"{args.catalog}: {len(report.rows)} valid rows into {store_path}: {result.summary} in {result.seconds:.1f} s"
    )
    return 0
