"""Catalogues that try to make ingest read what it must not, or keep what it must not: each a line-numbered error,
nothing written."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest
from conftest import write_poster

from indexer.ingest import ingest_catalog

GOOD = {"id": "ok1", "title": "A Good Film", "year": "1999", "genres": "Drama"}


def ingest_refuses(catalog: Path, tmp_path: Path, line: int, reason: str, **options) -> None:
    store = tmp_path / "store.sqlite3"
    result = ingest_catalog(catalog, store, **options)
    assert result.summary is None and not store.exists(), "nothing is written"
    assert any(error.line == line and reason in error.reason for error in result.report.errors), result.report.errors


def test_a_field_past_the_csv_size_limit_is_a_line_numbered_error(make_catalog, tmp_path: Path) -> None:
    catalog = make_catalog(
        [GOOD, {"id": "big", "title": "x" * (csv.field_size_limit() + 1), "year": "", "genres": "Drama"}]
    )
    ingest_refuses(catalog, tmp_path, 3, "cannot be parsed as CSV")


@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
def test_an_image_that_is_not_a_regular_file_is_refused_unread(make_catalog, tmp_path: Path, special: str) -> None:
    if special == "fifo":
        os.mkfifo(tmp_path / "poster.fifo")
        special = "poster.fifo"
    catalog = make_catalog([GOOD, {"id": "dev", "title": "Device", "year": "", "genres": "Drama", "image": special}])
    ingest_refuses(catalog, tmp_path, 3, "not a regular file", allow_outside=True)


@pytest.mark.parametrize("where", ["absolute", "dot-dot", "symlink"])
def test_an_image_outside_the_catalogues_folder_is_refused_unless_allowed(
    make_catalog, tmp_path: Path, where: str
) -> None:
    outside = write_poster(tmp_path.parent / f"{tmp_path.name}-elsewhere" / "poster.jpg", (10, 20, 30))
    (tmp_path / "link.jpg").symlink_to(outside)
    image = {"absolute": str(outside), "dot-dot": f"../{outside.parent.name}/poster.jpg", "symlink": "link.jpg"}[where]
    catalog = make_catalog([GOOD, {"id": "out", "title": "Outside", "year": "", "genres": "Drama", "image": image}])
    ingest_refuses(catalog, tmp_path, 3, f"outside the catalogue's folder {tmp_path}, to {outside}")
    allowed = ingest_catalog(catalog, tmp_path / "allowed.sqlite3", allow_outside=True)
    assert allowed.summary is not None and not allowed.report.errors


def test_a_utf8_byte_order_mark_is_accepted(make_catalog, tmp_path: Path) -> None:
    catalog = make_catalog([GOOD])
    catalog.write_bytes(b"\xef\xbb\xbf" + catalog.read_bytes())
    result = ingest_catalog(catalog, tmp_path / "store.sqlite3")
    assert not result.report.errors and [row.id for row in result.report.rows] == ["ok1"]


@pytest.mark.parametrize("title", ["Nul\x00here", "Bell\x07", "Escape\x1b[31m", "C1\x85control"])
def test_control_characters_in_a_title_are_refused(make_catalog, tmp_path: Path, title: str) -> None:
    catalog = make_catalog([GOOD, {"id": "ctl", "title": title, "year": "", "genres": "Drama"}])
    ingest_refuses(catalog, tmp_path, 3, "control character")
