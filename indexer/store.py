"""The catalogue store: titles, genres, images, localized variants and index versions in SQLite.

SQLite (standard library) is the embedded default: one file, transactional,
readable while a rebuild writes. The schema evolves by numbered migrations
recorded in ``PRAGMA user_version``, so an old store is upgraded in place the
first time a newer PosterRec opens it, and a store newer than the code is
refused rather than misread.

Every write that spans rows runs in one transaction: a failed or interrupted
ingest leaves the store exactly as it was.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

from models.catalog import CatalogRow, check_image
from posterrec_atomic import file_in_the_way

from .regions import is_region_code

log = logging.getLogger(__name__)

MIGRATIONS: tuple[str, ...] = (
    # 1: the initial schema.
    """
    CREATE TABLE images (
        sha256 TEXT PRIMARY KEY,
        width  INTEGER NOT NULL,
        height INTEGER NOT NULL
    );
    CREATE TABLE titles (
        id           TEXT PRIMARY KEY,
        title        TEXT NOT NULL,
        year         INTEGER,
        image_path   TEXT NOT NULL,
        image_sha256 TEXT NOT NULL REFERENCES images(sha256),
        metadata     TEXT NOT NULL DEFAULT '{}',
        updated_at   TEXT NOT NULL
    );
    CREATE TABLE title_genres (
        title_id TEXT NOT NULL REFERENCES titles(id) ON DELETE CASCADE,
        genre    TEXT NOT NULL,
        position INTEGER NOT NULL,
        PRIMARY KEY (title_id, genre)
    );
    CREATE INDEX title_genres_by_genre ON title_genres(genre);
    CREATE TABLE variants (
        parent_id     TEXT NOT NULL REFERENCES titles(id) ON DELETE CASCADE,
        region        TEXT NOT NULL,
        language      TEXT NOT NULL,
        title         TEXT NOT NULL,
        image_path    TEXT NOT NULL,
        image_sha256  TEXT NOT NULL REFERENCES images(sha256),
        source_sha256 TEXT NOT NULL,
        created_at    TEXT NOT NULL,
        PRIMARY KEY (parent_id, region)
    );
    CREATE INDEX variants_by_region ON variants(region);
    CREATE TABLE index_versions (
        version      TEXT PRIMARY KEY,
        path         TEXT NOT NULL,
        published_at TEXT NOT NULL,
        item_count   INTEGER NOT NULL,
        manifest     TEXT NOT NULL
    );
    """,
    # 2: watch events. No foreign key on title_id: a title leaving the catalogue keeps its watch history.
    """
    CREATE TABLE events (
        user_id   TEXT NOT NULL,
        title_id  TEXT NOT NULL,
        timestamp INTEGER NOT NULL,
        weight    REAL NOT NULL DEFAULT 1,
        PRIMARY KEY (user_id, timestamp, title_id)
    ) WITHOUT ROWID;
    CREATE INDEX events_by_title ON events(title_id);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(RuntimeError):
    """The store cannot be used as asked (newer schema, unknown title, bad variant image)."""


@dataclasses.dataclass(frozen=True)
class Title:
    id: str
    title: str
    year: int | None
    genres: tuple[str, ...]
    image_path: Path
    image_sha256: str
    metadata: dict[str, str]


@dataclasses.dataclass(frozen=True)
class Variant:
    """A localized poster of ``parent_id`` for ``region``; ``source_sha256`` is the parent
    image it was made from, so a variant made from an outdated poster can be spotted."""

    parent_id: str
    region: str
    language: str
    title: str
    image_path: Path
    image_sha256: str
    source_sha256: str


@dataclasses.dataclass(frozen=True)
class Event:
    """``user_id`` watched ``title_id`` at ``timestamp`` (Unix seconds, UTC); ``weight`` defaults to 1."""

    user_id: str
    title_id: str
    timestamp: int
    weight: float = 1.0


@dataclasses.dataclass(frozen=True)
class EventSummary:
    added: int
    updated: int
    unchanged: int

    def __str__(self) -> str:
        return f"{self.added} added, {self.updated} updated (weight), {self.unchanged} unchanged"


@dataclasses.dataclass(frozen=True)
class SyncSummary:
    added: int
    updated: int
    unchanged: int
    removed: int

    def __str__(self) -> str:
        return f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged, {self.removed} removed"


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _refuse_other_databases(connection: sqlite3.Connection, path: Path) -> None:
    """Raise StoreError, before anything is written, when ``path`` holds another application's tables: tables
    without a schema version (a store records one from its first migration on), or a version this PosterRec
    knows without the store's ``titles`` table."""
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    tables = sorted(name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
    if (tables and not version) or (0 < version <= SCHEMA_VERSION and "titles" not in tables):
        connection.close()
        raise StoreError(
            f"store {path} is an SQLite database of something else (tables {', '.join(tables[:5]) or 'none'}): "
            "name a new file for the store"
        )


def _migrate(connection: sqlite3.Connection, path: Path) -> None:
    current = connection.execute("PRAGMA user_version").fetchone()[0]
    if current > SCHEMA_VERSION:
        raise StoreError(
            f"store {path} has schema version {current}, newer than this PosterRec ({SCHEMA_VERSION}); upgrade PosterRec"
        )
    for version in range(current, SCHEMA_VERSION):
        log.info("migrating store %s to schema version %d", path, version + 1)
        # executescript commits first; the BEGIN makes each migration all-or-nothing.
        connection.executescript(f"BEGIN; {MIGRATIONS[version]}; PRAGMA user_version = {version + 1}; COMMIT;")


def missing_store(path: str | os.PathLike) -> str | None:
    """Why there is no store at ``path`` to read and what to do, as one sentence naming it, or None when a file
    is there. Commands that only read a store check this first: opening it would create one."""
    path = Path(path)
    if path.is_file():
        return None
    if path.is_dir():
        return f"store {path} is a folder, not a store: pass the store's file with --store"
    return f"store {path} does not exist: {load_catalogue_first(path)}"


def load_catalogue_first(path: str | os.PathLike) -> str:
    """The advice for a store at ``path`` that has no titles yet: the command that loads them into it."""
    return f"load the catalogue into it first (python -m indexer ingest CATALOG.csv --store {path})"


def open_store(path: str | os.PathLike) -> Store:
    """Open (creating and migrating as needed) the store at ``path``.

    Raises:
        StoreError: ``path`` is a folder, not an SQLite database, another application's database, or cannot be
            opened for writing (with the reason), or holds a newer schema.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        connection.row_factory = sqlite3.Row
        _refuse_other_databases(connection, path)
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA busy_timeout = 10000")
        _migrate(connection, path)
    except (OSError, sqlite3.Error) as err:
        in_the_way = file_in_the_way(path.parent)
        what = (
            "a folder, not a store"
            if path.is_dir()
            else f"{in_the_way} is a file, not a folder"
            if in_the_way
            else getattr(err, "strerror", None) or err
        )
        raise StoreError(f"store {path} cannot be opened: {what}") from err
    return Store(connection, path)


class Store:
    """Typed access to the catalogue store; callers never write SQL themselves."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- titles -----------------------------------------------------------------

    def titles(self) -> list[Title]:
        """All titles, ordered by id, with genres in catalogue order."""
        genres: dict[str, list[str]] = {}
        for row in self._db.execute("SELECT title_id, genre FROM title_genres ORDER BY title_id, position"):
            genres.setdefault(row["title_id"], []).append(row["genre"])
        return [
            self._title(row, genres.get(row["id"], [])) for row in self._db.execute("SELECT * FROM titles ORDER BY id")
        ]

    def title(self, title_id: str) -> Title | None:
        row = self._db.execute("SELECT * FROM titles WHERE id = ?", (title_id,)).fetchone()
        if row is None:
            return None
        genres = [
            g
            for (g,) in self._db.execute(
                "SELECT genre FROM title_genres WHERE title_id = ? ORDER BY position", (title_id,)
            )
        ]
        return self._title(row, genres)

    @staticmethod
    def _title(row: sqlite3.Row, genres: Sequence[str]) -> Title:
        return Title(
            id=row["id"],
            title=row["title"],
            year=row["year"],
            genres=tuple(genres),
            image_path=Path(row["image_path"]),
            image_sha256=row["image_sha256"],
            metadata=json.loads(row["metadata"]),
        )

    def sync_catalog(self, rows: Sequence[CatalogRow], keep_ids: Iterable[str] = ()) -> SyncSummary:
        """Make the store's titles match ``rows`` in one transaction.

        Titles absent from ``rows`` are removed (with their variants), except
        ``keep_ids``: rows that exist in the catalogue but were skipped as
        invalid keep their last good state instead of vanishing.
        """
        existing = {
            row["id"]: (row["image_sha256"], row["title"], row["year"], row["metadata"], row["image_path"])
            for row in self._db.execute("SELECT * FROM titles")
        }
        existing_genres: dict[str, tuple[str, ...]] = {}
        for row in self._db.execute("SELECT title_id, genre FROM title_genres ORDER BY title_id, position"):
            existing_genres[row["title_id"]] = existing_genres.get(row["title_id"], ()) + (row["genre"],)
        keep = set(keep_ids) | {row.id for row in rows}
        added = updated = unchanged = 0
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for row in rows:
                state = (
                    row.image_sha256,
                    row.title,
                    row.year,
                    json.dumps(row.metadata, sort_keys=True),
                    str(row.image),
                )
                if row.id not in existing:
                    added += 1
                elif existing[row.id] == state and existing_genres.get(row.id) == row.genres:
                    unchanged += 1
                    continue
                else:
                    updated += 1
                self._write_title(row, state)
            removed = [title_id for title_id in existing if title_id not in keep]
            self._db.executemany("DELETE FROM titles WHERE id = ?", [(title_id,) for title_id in removed])
            self._delete_orphan_images()
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return SyncSummary(added, updated, unchanged, len(removed))

    def _write_title(self, row: CatalogRow, state: tuple) -> None:
        sha256, title, year, metadata, image_path = state
        self._db.execute("INSERT OR IGNORE INTO images VALUES (?, ?, ?)", (sha256, row.width, row.height))
        self._db.execute(
            """INSERT INTO titles (id, title, year, image_path, image_sha256, metadata, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(id) DO UPDATE SET title = excluded.title, year = excluded.year,
                   image_path = excluded.image_path, image_sha256 = excluded.image_sha256,
                   metadata = excluded.metadata, updated_at = excluded.updated_at""",
            (row.id, title, year, image_path, sha256, metadata, _now()),
        )
        self._db.execute("DELETE FROM title_genres WHERE title_id = ?", (row.id,))
        self._db.executemany(
            "INSERT INTO title_genres VALUES (?, ?, ?)", [(row.id, genre, i) for i, genre in enumerate(row.genres)]
        )

    def _delete_orphan_images(self) -> None:
        self._db.execute(
            """DELETE FROM images WHERE sha256 NOT IN (SELECT image_sha256 FROM titles)
                                    AND sha256 NOT IN (SELECT image_sha256 FROM variants)"""
        )

    # -- variants ---------------------------------------------------------------

    def upsert_variant(
        self,
        parent_id: str,
        region: str,
        language: str,
        title: str,
        image_path: str | os.PathLike,
        source_sha256: str | None = None,
    ) -> Variant:
        """Register (or replace) the ``region`` variant of ``parent_id``.

        The image is decoded and hashed here, so a broken file never enters the
        store. ``source_sha256`` defaults to the parent's current image hash.
        """
        parent = self.title(parent_id)
        if parent is None:
            raise StoreError(f"cannot add a {region} variant: no title with id {parent_id!r} in {self.path}")
        if not is_region_code(region) or not language.strip():
            raise StoreError(
                f"variant of {parent_id!r} needs a two-letter region code and a language (got {region!r}, {language!r})"
            )
        image_path = Path(image_path).resolve()
        check = check_image(image_path)
        if check.problem:
            raise StoreError(f"variant {parent_id}/{region}: {check.problem}")
        variant = Variant(
            parent_id, region.upper(), language, title, image_path, check.sha256, source_sha256 or parent.image_sha256
        )
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("INSERT OR IGNORE INTO images VALUES (?, ?, ?)", (check.sha256, check.width, check.height))
            self._db.execute(
                """INSERT INTO variants VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT(parent_id, region) DO UPDATE SET language = excluded.language,
                       title = excluded.title, image_path = excluded.image_path,
                       image_sha256 = excluded.image_sha256, source_sha256 = excluded.source_sha256,
                       created_at = excluded.created_at""",
                (
                    variant.parent_id,
                    variant.region,
                    variant.language,
                    variant.title,
                    str(variant.image_path),
                    variant.image_sha256,
                    variant.source_sha256,
                    _now(),
                ),
            )
            self._delete_orphan_images()
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return variant

    def remove_variant(self, parent_id: str, region: str) -> Variant | None:
        """Withdraw the ``region`` variant of ``parent_id``, so that the next build does not index it; its
        image file stays where it is. Returns the variant removed, or None when there was none."""
        found = self.variants(parent_id, region)
        if not found:
            return None
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("DELETE FROM variants WHERE parent_id = ? AND region = ?", (parent_id, region.upper()))
            self._delete_orphan_images()
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return found[0]

    def variants(self, parent_id: str | None = None, region: str | None = None) -> list[Variant]:
        """Variants, optionally of one title and/or one region, ordered by parent then region."""
        query, params = "SELECT * FROM variants WHERE 1 = 1", []
        if parent_id is not None:
            query, params = query + " AND parent_id = ?", params + [parent_id]
        if region is not None:
            query, params = query + " AND region = ?", params + [region.upper()]
        return [
            Variant(
                r["parent_id"],
                r["region"],
                r["language"],
                r["title"],
                Path(r["image_path"]),
                r["image_sha256"],
                r["source_sha256"],
            )
            for r in self._db.execute(query + " ORDER BY parent_id, region", params)
        ]

    # -- watch events -----------------------------------------------------------

    def write_events(self, events: Iterable[Event]) -> EventSummary:
        """Add ``events`` in one transaction; an event already stored keeps its row and takes the new weight,
        so ingesting the same file again changes nothing."""
        added = updated = unchanged = 0
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for event in events:
                key = (event.user_id, event.timestamp, event.title_id)
                if self._db.execute(
                    "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?)",
                    (event.user_id, event.title_id, event.timestamp, event.weight),
                ).rowcount:
                    added += 1
                elif self._db.execute(
                    "UPDATE events SET weight = ? WHERE user_id = ? AND timestamp = ? AND title_id = ? AND weight != ?",
                    (event.weight, *key, event.weight),
                ).rowcount:
                    updated += 1
                else:
                    unchanged += 1
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return EventSummary(added, updated, unchanged)

    def events(self) -> list[Event]:
        """Every watch event, ordered by user, then time (ties by title id)."""
        return [
            Event(r["user_id"], r["title_id"], r["timestamp"], r["weight"])
            for r in self._db.execute("SELECT * FROM events ORDER BY user_id, timestamp, title_id")
        ]

    def event_count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0]

    # -- index versions ---------------------------------------------------------

    def record_index_version(self, version: str, path: str | os.PathLike, item_count: int, manifest: dict) -> None:
        """Remember a published index version (the index directory itself is the source of truth)."""
        self._db.execute(
            "INSERT OR REPLACE INTO index_versions VALUES (?, ?, ?, ?, ?)",
            (version, str(path), _now(), item_count, json.dumps(manifest, sort_keys=True)),
        )

    def index_versions(self) -> list[dict]:
        return [
            {**dict(row), "manifest": json.loads(row["manifest"])}
            for row in self._db.execute("SELECT * FROM index_versions ORDER BY version")
        ]

    def counts(self) -> dict[str, int]:
        """Row counts per table, for summaries and health checks."""
        return {
            table: self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("titles", "title_genres", "images", "variants", "index_versions")
        }
