"""The catalogue CSV: reading it and validating every row before anything uses it.

A catalogue is a CSV with columns ``id,title,year,genres,image`` (extra
columns are kept as metadata, ``genres`` is pipe-separated and ``image`` is
relative to the CSV) — the format of ``shared/data/catalog.csv``. It lives in
``models`` because training is the first stage that reads it; the indexer's
ingest reuses the same validation so that both stages agree on what a good
row is.

Validation collects every problem of every row instead of stopping at the
first: whoever fixes a 6,000-row catalogue wants the whole list at once.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import hashlib
import io
import os
import stat
import unicodedata
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image, UnidentifiedImageError

REQUIRED_COLUMNS = ("id", "title", "year", "genres", "image")
RESERVED_ID_CHARACTERS = "/@"
"""An id is one path segment of the API's URLs (``/v1/posters/<id>``), and ``<id>@<REGION>`` keys a variant."""
DOT_SEGMENTS = (".", "..")
"""Ids no URL can carry: clients resolve ``/v1/posters/../image`` to ``/v1/image`` before sending it."""
GENRE_SEPARATOR = "|"
OTHER_SEPARATORS = (";", ",")
"""Separators other formats use between genres; a genre holding one is refused rather than learnt as one label."""
EARLIEST_YEAR = 1870
MAX_IMAGE_BYTES = 200 * 1024 * 1024
"""Largest image file read (a poster is a few MB): a path like ``/dev/zero`` or a huge file is refused unread."""
_LATEST_YEAR = datetime.date.today().year + 5


class CatalogError(ValueError):
    """The catalogue as a whole cannot be read (missing file, header or encoding)."""


@dataclasses.dataclass(frozen=True)
class RowError:
    """One reason one row is unusable; ``line`` is the 1-based line in the CSV."""

    line: int
    id: str
    reason: str

    def __str__(self) -> str:
        name = f" (id {self.id!r})" if self.id else ""
        return f"line {self.line}{name}: {self.reason}"


@dataclasses.dataclass(frozen=True)
class CatalogRow:
    """A validated catalogue row with its image already hashed."""

    line: int
    id: str
    title: str
    year: int | None
    genres: tuple[str, ...]
    image: Path
    image_sha256: str
    width: int
    height: int
    metadata: dict[str, str]


@dataclasses.dataclass(frozen=True)
class CatalogReport:
    """The outcome of reading a catalogue: the good rows and every bad one."""

    path: Path
    rows: list[CatalogRow]
    errors: list[RowError]

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def genres(self) -> list[str]:
        """Sorted genre vocabulary of the good rows."""
        return sorted({genre for row in self.rows for genre in row.genres})


@dataclasses.dataclass(frozen=True)
class _ImageCheck:
    sha256: str = ""
    width: int = 0
    height: int = 0
    problem: str = ""


def check_image(path: Path) -> _ImageCheck:
    """Hash and fully decode an image, so truncated files are caught here and not at training.

    Only a regular file of at most :data:`MAX_IMAGE_BYTES` is read: a device (``/dev/zero``) would be read
    until memory runs out, and opening a FIFO would wait for a writer forever.
    """
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError
        if not stat.S_ISREG(info.st_mode):
            return _ImageCheck(problem=f"image {path} is not a regular file (a device, FIFO or socket)")
        if info.st_size > MAX_IMAGE_BYTES:
            return _ImageCheck(
                problem=f"image {path} has {info.st_size:,} bytes, more than the {MAX_IMAGE_BYTES:,} read"
            )
        data = path.read_bytes()
    except FileNotFoundError:
        return _ImageCheck(problem=f"image {path} does not exist")
    except IsADirectoryError:
        return _ImageCheck(problem=f"image {path} is a directory, not a file")
    except OSError as err:
        return _ImageCheck(problem=f"image {path} cannot be read: {err.strerror or err}")
    if not data:
        return _ImageCheck(problem=f"image {path} is empty (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            width, height = image.size
    except UnidentifiedImageError:
        return _ImageCheck(problem=f"image {path} is not an image Pillow can decode")
    except Image.DecompressionBombError as err:
        return _ImageCheck(problem=f"image {path} is too large to decode: {err}")
    except (OSError, SyntaxError, ValueError) as err:
        return _ImageCheck(problem=f"image {path} is truncated or corrupt: {err}")
    return _ImageCheck(hashlib.sha256(data).hexdigest(), width, height)


def non_utf8_columns(record: dict[str, str]) -> list[str]:
    """Columns holding bytes that were not UTF-8 (decoded with surrogateescape)."""
    return [key for key, value in record.items() if value and any("\udc80" <= ch <= "\udcff" for ch in value)]


def _parse_year(raw: str) -> int | None:
    if not raw.strip():
        return None
    if not raw.strip().isdigit():
        raise ValueError("not a year in digits")
    year = int(raw.strip())
    if not EARLIEST_YEAR <= year <= _LATEST_YEAR:
        raise ValueError(f"outside {EARLIEST_YEAR}-{_LATEST_YEAR}")
    return year


def _control_characters(text: str) -> list[str]:
    """The control characters in ``text`` (NUL, escapes, line breaks...), as their escaped spelling."""
    return sorted({repr(ch)[1:-1] for ch in text if unicodedata.category(ch) == "Cc"})


def _row_problems(record: dict[str, str], seen: dict[str, int]) -> list[str]:
    """Every problem with a row's text fields (the image is checked separately)."""
    problems = [f"column {key!r} is not valid UTF-8" for key in non_utf8_columns(record)]
    for column in ("id", "title"):
        controls = _control_characters(record[column])
        if controls:
            problems.append(f"{column} holds control character(s) {', '.join(controls)}")
    row_id = record["id"].strip()
    if not row_id:
        problems.append("empty id")
    elif row_id in seen:
        problems.append(f"duplicate id {row_id!r}, first on line {seen[row_id]}")
    reserved = [ch for ch in RESERVED_ID_CHARACTERS if ch in row_id]
    if reserved:
        problems.append(
            f"id {row_id!r} contains {' and '.join(map(repr, reserved))}, reserved in the API's URLs and variant keys"
        )
    if row_id in DOT_SEGMENTS:
        problems.append(f"id {row_id!r} is a dot segment, which URLs drop")
    if not [g for g in record["genres"].split(GENRE_SEPARATOR) if g.strip()]:
        problems.append("empty genres")
    separators = [separator for separator in OTHER_SEPARATORS if separator in record["genres"]]
    if separators:
        problems.append(
            f"genres {record['genres']!r} hold {' and '.join(map(repr, separators))}: "
            f"separate genres with {GENRE_SEPARATOR!r}"
        )
    try:
        _parse_year(record["year"])
    except ValueError as err:
        problems.append(f"bad year {record['year']!r}: {err}")
    if not record["image"].strip():
        problems.append("empty image path")
    return problems


def _open_records(path: Path) -> tuple[csv.DictReader, io.TextIOBase]:
    try:
        handle = path.open(
            encoding="utf-8-sig", errors="surrogateescape", newline=""
        )  # -sig: a byte-order mark is skipped
    except OSError as err:
        raise CatalogError(f"catalogue {path} cannot be opened: {err.strerror or err}") from None
    reader = csv.DictReader(handle)
    header = reader.fieldnames or []
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    if missing:
        handle.close()
        raise CatalogError(f"catalogue {path}: header lacks column(s) {', '.join(missing)} (found {header})")
    return reader, handle


def _records(reader: csv.DictReader, errors: list[RowError]) -> Iterable[tuple[int, dict[str, str]]]:
    """Each parsed record with its line; a line the CSV parser refuses (a field past its size limit) is an error,
    numbered as the line after the last record (the parser's own count stops partway through a long line)."""
    last = reader.line_num
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            last += 1
            errors.append(RowError(last, "", f"cannot be parsed as CSV: {err}"))
            continue
        last = reader.line_num
        yield last, record


def _outside(image: Path, folder: Path) -> bool:
    """Whether ``image`` (absolute, through ``..`` or a symbolic link) resolves outside ``folder``."""
    return not image.resolve().is_relative_to(folder)


ALLOW_OUTSIDE_HELP = "read image paths that lead outside the catalogue's folder (absolute, .., symbolic links)"
"""The ``--allow-outside-images`` flag's help, in every command that reads a catalogue."""


def read_catalog(path: str | os.PathLike, workers: int | None = None, allow_outside: bool = False) -> CatalogReport:
    """Read and validate a catalogue; never raises for a bad row, only for a bad file.

    Image paths must lead inside the catalogue's folder (after ``..`` and symbolic links) unless
    ``allow_outside``: a catalogue from elsewhere cannot make the indexer read any file on the machine.
    """
    path = Path(path).resolve()
    reader, handle = _open_records(path)
    pending: list[tuple[int, dict[str, str]]] = []
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    with handle:
        for line, record in _records(reader, errors):
            if None in record or any(record[column] is None for column in REQUIRED_COLUMNS):
                errors.append(RowError(line, (record.get("id") or "").strip(), "wrong number of columns"))
                continue
            problems = _row_problems(record, seen)
            row_id = record["id"].strip()
            image = record["image"].strip()
            if image and not allow_outside and _outside(path.parent / image, path.parent):
                problems.append(
                    f"image {image!r} leads outside the catalogue's folder {path.parent}, to "
                    f"{(path.parent / image).resolve()} (allow it with --allow-outside-images)"
                )
            seen.setdefault(row_id, line)
            if problems:
                errors.extend(RowError(line, row_id, reason) for reason in problems)
            else:
                pending.append((line, record))

    images = [path.parent / record["image"].strip() for _, record in pending]
    with ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 1) * 2)) as pool:
        checks = list(pool.map(check_image, images))

    rows: list[CatalogRow] = []
    for (line, record), image, check in zip(pending, images, checks):
        if check.problem:
            errors.append(RowError(line, record["id"].strip(), check.problem))
            continue
        rows.append(_to_row(line, record, image, check))
    errors.sort(key=lambda error: error.line)
    return CatalogReport(path, rows, errors)


def _to_row(line: int, record: dict[str, str], image: Path, check: _ImageCheck) -> CatalogRow:
    genres = tuple(dict.fromkeys(g.strip() for g in record["genres"].split(GENRE_SEPARATOR) if g.strip()))
    metadata = {key: value for key, value in record.items() if key not in REQUIRED_COLUMNS}
    return CatalogRow(
        line=line,
        id=record["id"].strip(),
        title=record["title"].strip(),
        year=_parse_year(record["year"]),
        genres=genres,
        image=image,
        image_sha256=check.sha256,
        width=check.width,
        height=check.height,
        metadata=metadata,
    )


def format_errors(errors: Iterable[RowError]) -> str:
    """One line per bad row reason, ready for a CLI to print."""
    return "\n".join(str(error) for error in errors)
