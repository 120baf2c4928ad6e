"""Watch events: ``python -m indexer ingest-events EVENTS.csv`` and the MovieLens converter.

An events file is a CSV with columns ``user_id,title_id,timestamp`` and an
optional ``weight`` (extra columns are ignored). ``timestamp`` is Unix seconds
or ISO 8601 (UTC when it names no zone); ``weight`` is a positive number,
1 when absent. Every row is checked before the first write: an unknown title,
a bad timestamp or weight, a repeated (user, title, timestamp) or bytes that
are not UTF-8 are each reported with their line, and nothing is written
unless ``--skip-invalid``. Ingesting the same file again changes nothing.

``python -m indexer movielens-events ratings.csv links.csv --catalog CSV --out
EVENTS.csv`` writes MovieLens ratings of the catalogue's titles (joined by
IMDb id) as an events file, the rating as the weight.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import math
import os
import sys
import tempfile
import time
from pathlib import Path

from posterrec_settings import load_settings

from models.catalog import CatalogError, RowError, non_utf8_columns

from .ingest import print_invalid_rows
from .store import Event, EventSummary, StoreError, missing_store, open_store

REQUIRED_COLUMNS = ("user_id", "title_id", "timestamp")
OUTPUT_COLUMNS = (*REQUIRED_COLUMNS, "weight")


class EventsError(CatalogError):
    """An events or MovieLens file as a whole cannot be read (missing file or columns)."""


@dataclasses.dataclass(frozen=True)
class EventsReport:
    path: Path
    events: list[Event]
    errors: list[RowError]


@dataclasses.dataclass(frozen=True)
class EventsIngest:
    report: EventsReport
    summary: EventSummary | None
    """None when nothing was written because of bad rows."""
    seconds: float


def parse_timestamp(raw: str) -> int:
    """Unix seconds or an ISO 8601 date-time (UTC unless it names a zone) -> Unix seconds; a moment before 1970
    or more than a day from now is refused (a watch event cannot be in the future)."""
    text = raw.strip()
    if text.lstrip("-").isdigit():
        seconds = int(text)
    else:
        try:
            moment = datetime.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError("neither Unix seconds nor an ISO 8601 date-time") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
        seconds = int(moment.timestamp())
    if not 0 <= seconds <= time.time() + 86_400:
        raise ValueError("before 1970 or in the future")
    return seconds


def parse_weight(raw: str | None) -> float:
    if raw is None or not raw.strip():
        return 1.0
    try:
        weight = float(raw)
    except ValueError:
        raise ValueError("not a number") from None
    if not math.isfinite(weight) or weight <= 0:
        raise ValueError("not a finite positive number")
    return weight


def _open_csv(path: Path, required: tuple[str, ...], what: str):
    try:
        handle = path.open(encoding="utf-8-sig", errors="surrogateescape", newline="")  # -sig: Excel's BOM
    except OSError as err:
        raise EventsError(f"{what} {path} cannot be opened: {err.strerror or err}") from None
    reader = csv.DictReader(handle)
    found = reader.fieldnames
    missing = [column for column in required if column not in (found or [])]
    if missing:
        handle.close()
        if found is None:
            raise EventsError(f"{what} {path} is empty: it needs a header line with {', '.join(required)}")
        raise EventsError(f"{what} {path}: header lacks column(s) {', '.join(missing)} (found {found})")
    return reader, handle


def _event_problems(record: dict[str, str | None], known_titles: set[str]) -> list[str]:
    if any(record.get(column) is None for column in REQUIRED_COLUMNS) or None in record:  # too few or too many
        return ["wrong number of columns"]
    problems = [f"column {key!r} is not valid UTF-8" for key in non_utf8_columns(record)]
    if problems:
        return problems
    if not record["user_id"].strip():
        problems.append("empty user_id")
    title_id = record["title_id"].strip()
    if not title_id:
        problems.append("empty title_id")
    elif title_id not in known_titles:
        problems.append(f"unknown title {title_id!r} (not in the store's catalogue)")
    try:
        parse_timestamp(record["timestamp"])
    except ValueError as err:
        problems.append(f"bad timestamp {record['timestamp']!r}: {err}")
    try:
        parse_weight(record.get("weight"))
    except ValueError as err:
        problems.append(f"bad weight {record.get('weight')!r}: {err}")
    return problems


def read_events(path: str | os.PathLike, known_titles: set[str]) -> EventsReport:
    """Read and validate an events file; raises :class:`EventsError` only for an unreadable file."""
    path = Path(path).resolve()
    reader, handle = _open_csv(path, REQUIRED_COLUMNS, "events file")
    events: list[Event] = []
    errors: list[RowError] = []
    first_line: dict[tuple[str, str, int], int] = {}
    with handle:
        for record in reader:
            line, title_id = reader.line_num, (record.get("title_id") or "").strip()
            problems = _event_problems(record, known_titles)
            if problems:
                errors.extend(RowError(line, title_id, reason) for reason in problems)
                continue
            event = Event(
                record["user_id"].strip(),
                title_id,
                parse_timestamp(record["timestamp"]),
                parse_weight(record.get("weight")),
            )
            key = (event.user_id, event.title_id, event.timestamp)
            if key in first_line:
                errors.append(
                    RowError(
                        line,
                        title_id,
                        f"duplicate event (user {event.user_id!r}, same title and "
                        f"timestamp), first on line {first_line[key]}",
                    )
                )
                continue
            first_line[key] = line
            events.append(event)
    return EventsReport(path, events, errors)


def ingest_events(
    events_csv: str | os.PathLike, store_path: str | os.PathLike, skip_invalid: bool = False
) -> EventsIngest:
    """Validate ``events_csv`` against the store's titles and, when clean or ``skip_invalid``, write it."""
    if problem := missing_store(store_path):  # opening it would make a new, empty store whose titles no row names
        raise StoreError(problem)
    started = time.perf_counter()
    with open_store(store_path) as store:
        report = read_events(events_csv, {title.id for title in store.titles()})
        summary = store.write_events(report.events) if skip_invalid or not report.errors else None
    return EventsIngest(report, summary, time.perf_counter() - started)


def imdb_number(identifier: str) -> int | None:
    """``0114709``, ``114709`` or ``tt0114709`` -> 114709; None for an id that is not an IMDb number."""
    digits = identifier.strip().removeprefix("tt")
    return int(digits) if digits.isdigit() else None


@dataclasses.dataclass(frozen=True)
class MovieLensEvents:
    rows: list[dict[str, str]]
    """The events file's rows: the ratings of catalogue titles."""
    unjoined: int
    """Ratings of films the catalogue lacks, left out."""
    errors: list[str]
    """Bad rows of links.csv (a movieId mapped twice) and ratings.csv (an empty user, a bad timestamp or rating),
    each as ``<file> line <n>: <reason>``."""


def movielens_events(ratings: Path, links: Path, catalog: Path) -> MovieLensEvents:
    """The events of the MovieLens ``ratings`` of catalogue titles, joined through ``links``, and the bad rows of
    either file."""
    title_of_imdb: dict[int, str] = {}
    reader, handle = _open_csv(catalog, ("id",), "catalogue")
    with handle:
        for record in reader:
            number = imdb_number(record["id"] or "")
            if number is not None:
                title_of_imdb.setdefault(number, record["id"].strip())
    title_of_movie: dict[str, str] = {}
    line_of_movie: dict[str, int] = {}
    errors: list[str] = []
    reader, handle = _open_csv(links, ("movieId", "imdbId"), "MovieLens links")
    with handle:
        for record in reader:
            movie = record["movieId"]
            if movie in line_of_movie:
                errors.append(
                    f"{links} line {reader.line_num}: movieId {movie!r} is also on line {line_of_movie[movie]}"
                )
                continue
            line_of_movie[movie] = reader.line_num
            title = title_of_imdb.get(imdb_number(record["imdbId"] or "") or -1)
            if title:
                title_of_movie[movie] = title
    rows, unjoined = [], 0
    reader, handle = _open_csv(ratings, ("userId", "movieId", "rating", "timestamp"), "MovieLens ratings")
    with handle:
        for record in reader:
            problems = _rating_problems(record)
            if problems:
                errors += [f"{ratings} line {reader.line_num}: {problem}" for problem in problems]
                continue
            title = title_of_movie.get(record["movieId"])
            if title is None:
                unjoined += 1
                continue
            rows.append(
                {
                    "user_id": record["userId"],
                    "title_id": title,
                    "timestamp": record["timestamp"],
                    "weight": record["rating"],
                }
            )
    return MovieLensEvents(rows, unjoined, errors)


def _rating_problems(record: dict[str, str | None]) -> list[str]:
    """What makes a MovieLens ratings row no watch event."""
    if any(value is None for value in record.values()) or None in record:
        return ["wrong number of columns"]
    problems = [] if record["userId"].strip() else ["empty userId"]
    for column, parse in (("timestamp", parse_timestamp), ("rating", parse_weight)):
        try:
            parse(record[column] or "")
        except ValueError as err:
            problems.append(f"bad {column} {record[column]!r}: {err}")
    return problems


def write_events_csv(rows: list[dict[str, str]], out: Path) -> None:
    """Write under a temporary name beside ``out`` and rename it into place."""
    out.parent.mkdir(parents=True, exist_ok=True)
    descriptor, staging = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(descriptor, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=OUTPUT_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(staging, out)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise


def add_command(commands: argparse._SubParsersAction) -> None:
    ingest = commands.add_parser(
        "ingest-events",
        help="validate a watch-events CSV and add it to the store",
        description="Validate a watch-events CSV (user_id,title_id,timestamp[,weight]) against the store's titles "
        "and add it: every bad row is listed by line, and nothing is written unless all are good or "
        "--skip-invalid. Events already stored are kept; one with a new weight is updated.",
    )
    ingest.add_argument("events", type=Path, help="CSV with columns user_id,title_id,timestamp[,weight]")
    ingest.add_argument("--store", type=Path, help="SQLite store (default: settings.store)")
    ingest.add_argument("--skip-invalid", action="store_true", help="ingest the good rows and list the bad ones")
    ingest.set_defaults(run=_run_ingest)
    convert = commands.add_parser(
        "movielens-events",
        help="MovieLens ratings.csv + links.csv -> an events CSV",
        description="Turn MovieLens ratings into an events CSV for ingest-events: each rating of a film whose IMDb "
        "id (links.csv) is a catalogue id becomes an event weighted by the rating; the others are counted and left out.",
    )
    convert.add_argument("ratings", type=Path, help="MovieLens ratings.csv (userId,movieId,rating,timestamp)")
    convert.add_argument("links", type=Path, help="MovieLens links.csv (movieId,imdbId,...)")
    convert.add_argument("--catalog", type=Path, required=True, help="catalogue CSV whose ids are IMDb numbers")
    convert.add_argument("--out", type=Path, required=True, help="events CSV to write")
    convert.set_defaults(run=_run_convert)


def _run_ingest(args: argparse.Namespace) -> int:
    store_path = args.store or load_settings().store
    result = ingest_events(args.events, store_path, args.skip_invalid)
    if not print_invalid_rows(args.events, result.report.errors, ingested=result.summary is not None):
        return 1
    print(
        f"{args.events}: {len(result.report.events)} valid events into {store_path}: {result.summary} "
        f"in {result.seconds:.1f} s"
    )
    return 0


def _run_convert(args: argparse.Namespace) -> int:
    for option, source in (("ratings", args.ratings), ("links", args.links), ("--catalog", args.catalog)):
        if args.out.exists() and source.exists() and args.out.samefile(source):
            args.parser.error(f"--out {args.out} is the {option} file it reads: name a new file")
    converted = movielens_events(args.ratings, args.links, args.catalog)
    if converted.errors:
        print("\n".join(converted.errors), file=sys.stderr)
        print(f"{args.out}: not written; fix the rows above", file=sys.stderr)
        return 1
    rows = converted.rows
    write_events_csv(rows, args.out)
    print(
        f"{args.out}: {len(rows)} events of {len({row['title_id'] for row in rows})} catalogue titles; "
        f"{converted.unjoined} ratings of films not in the catalogue left out"
    )
    return 0
