"""The real ``python -m indexer ingest`` against catalogues with every kind of bad row."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from indexer.__main__ import main as indexer_main
from indexer.store import open_store
from tests.conftest import REPO_ROOT, write_poster

GOOD = [
    {"id": "t1", "title": "Alpha", "year": "1999", "genres": "Drama|Romance"},
    {"id": "t2", "title": "Beta", "year": "", "genres": "Horror"},
]


def store_state(path):
    with open_store(path) as store:
        return [(t.id, t.title, t.genres, t.image_sha256) for t in store.titles()], store.counts()


def bad_catalog(make_catalog, tmp_path):
    """A catalogue whose line N holds the bad row named in EXPECTED[N]."""
    truncated = write_poster(tmp_path / "posters/trunc.jpg", (200, 10, 10), (200, 300))
    truncated.write_bytes(truncated.read_bytes()[:300])
    (tmp_path / "posters/notimage.jpg").write_text("this is text, not a JPEG")
    (tmp_path / "posters/adir.jpg").mkdir(parents=True)
    write_poster(tmp_path / "posters/shared.jpg", (1, 2, 3))
    rows = GOOD + [
        {"id": "t3", "title": "Missing", "year": "2001", "genres": "Drama", "image": "posters/nope.jpg"},
        {"id": "t4", "title": "Truncated", "year": "2001", "genres": "Drama", "image": "posters/trunc.jpg"},
        {"id": "t5", "title": "Text", "year": "2001", "genres": "Drama", "image": "posters/notimage.jpg"},
        {"id": "t6", "title": "Dir", "year": "2001", "genres": "Drama", "image": "posters/adir.jpg"},
        {"id": "t1", "title": "Again", "year": "2001", "genres": "Drama", "image": "posters/shared.jpg"},
        {"id": "", "title": "No id", "year": "2001", "genres": "Drama", "image": "posters/shared.jpg"},
        {"id": "t9", "title": "No genres", "year": "2001", "genres": " | ", "image": "posters/shared.jpg"},
        {"id": "t10", "title": "Year", "year": "nineteen", "genres": "Drama", "image": "posters/shared.jpg"},
        {"id": "t11", "title": "Future", "year": "3024", "genres": "Drama", "image": "posters/shared.jpg"},
        {"id": "tt/0042", "title": "Slash", "year": "2001", "genres": "Drama", "image": "posters/shared.jpg"},
        {"id": "x@DE", "title": "At", "year": "2001", "genres": "Drama", "image": "posters/shared.jpg"},
        {"id": "..", "title": "Dots", "year": "2001", "genres": "Drama", "image": "posters/shared.jpg"},
        {"id": ".", "title": "Dot", "year": "2001", "genres": "Drama", "image": "posters/shared.jpg"},
        {"id": "t13", "title": "Semicolons", "year": "2001", "genres": "Drama;Comedy", "image": "posters/shared.jpg"},
    ]
    path = make_catalog(rows)
    # Line 18: a title that is not UTF-8 (Latin-1 bytes), written raw.
    with path.open("ab") as handle:
        handle.write(b"t12,Caf\xe9,2001,Drama,posters/shared.jpg\r\n")
    return path


EXPECTED = {
    4: "does not exist",
    5: "truncated or corrupt",
    6: "not an image",
    7: "is a directory",
    8: "duplicate id 't1', first on line 2",
    9: "empty id",
    10: "empty genres",
    11: "bad year 'nineteen': not a year in digits",
    12: "bad year '3024'",
    13: "id 'tt/0042' contains '/', reserved",
    14: "id 'x@DE' contains '@', reserved",
    15: "id '..' is a dot segment, which URLs drop",
    16: "id '.' is a dot segment, which URLs drop",
    17: "genres 'Drama;Comedy' hold ';': separate genres with '|'",
    18: "column 'title' is not valid UTF-8",
}


def test_every_bad_row_is_reported_with_its_line_and_the_store_is_unchanged(make_catalog, tmp_path, capsys):
    store = tmp_path / "store.sqlite3"
    assert indexer_main(["ingest", str(make_catalog(GOOD, name="good.csv")), "--store", str(store)]) == 0
    before = store_state(store)

    assert indexer_main(["ingest", str(bad_catalog(make_catalog, tmp_path)), "--store", str(store)]) == 1
    out = capsys.readouterr().err
    reported = {int(line.split()[1].rstrip(":")): line for line in out.splitlines() if line.startswith("line ")}
    assert sorted(reported) == sorted(EXPECTED)
    for line, reason in EXPECTED.items():
        assert reason in reported[line], reported[line]
    assert "nothing ingested" in out
    assert store_state(store) == before


def test_skip_invalid_ingests_good_rows_and_lists_the_skipped(make_catalog, tmp_path, capsys):
    store = tmp_path / "store.sqlite3"
    assert (
        indexer_main(["ingest", str(bad_catalog(make_catalog, tmp_path)), "--store", str(store), "--skip-invalid"]) == 0
    )
    out = capsys.readouterr().err
    assert f"skipped {len(EXPECTED)} invalid row(s)" in out
    titles, counts = store_state(store)
    assert [t[0] for t in titles] == ["t1", "t2"]
    assert counts["title_genres"] == 3


def test_reingest_is_idempotent_and_detects_changed_images_and_removals(make_catalog, tmp_path, capsys):
    store = tmp_path / "store.sqlite3"
    catalog = make_catalog(GOOD + [{"id": "t3", "title": "Gamma", "year": "2010", "genres": "Comedy"}])
    assert indexer_main(["ingest", str(catalog), "--store", str(store)]) == 0
    assert indexer_main(["ingest", str(catalog), "--store", str(store)]) == 0
    assert "0 added, 0 updated, 3 unchanged, 0 removed" in capsys.readouterr().out

    write_poster(tmp_path / "posters/t2.jpg", (255, 255, 0))
    catalog = make_catalog(GOOD[:1] + [dict(GOOD[1], image="posters/t2.jpg")])
    assert indexer_main(["ingest", str(catalog), "--store", str(store)]) == 0
    assert "0 added, 1 updated, 1 unchanged, 1 removed" in capsys.readouterr().out
    titles, _ = store_state(store)
    assert titles[1][3] == hashlib.sha256((tmp_path / "posters/t2.jpg").read_bytes()).hexdigest()


def test_a_catalogue_without_required_columns_is_refused(tmp_path):
    path = tmp_path / "catalog.csv"
    path.write_text("id,name\n1,x\n")
    from models.catalog import CatalogError, read_catalog

    with pytest.raises(CatalogError, match="lacks column.*title, year, genres, image"):
        read_catalog(path)


def test_ingests_the_real_catalogue_from_the_command_line(shared_data, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "indexer",
            "ingest",
            str(shared_data / "catalog.csv"),
            "--store",
            str(tmp_path / "s.db"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6604 valid rows" in result.stdout and "6604 added" in result.stdout


def test_a_catalogue_with_a_header_and_no_rows_is_refused_and_the_store_kept(make_catalog, tmp_path, capsys):
    store = tmp_path / "store.sqlite3"
    assert indexer_main(["ingest", str(make_catalog(GOOD, name="good.csv")), "--store", str(store)]) == 0
    before = store_state(store)
    assert indexer_main(["ingest", str(make_catalog([], name="header_only.csv")), "--store", str(store)]) == 1
    assert "has a header but no rows: syncing it would remove every title" in capsys.readouterr().err
    assert store_state(store) == before


def test_skip_invalid_with_no_valid_row_changes_nothing(make_catalog, tmp_path, capsys):
    store = tmp_path / "store.sqlite3"
    assert indexer_main(["ingest", str(make_catalog(GOOD, name="good.csv")), "--store", str(store)]) == 0
    before = store_state(store)
    all_bad = make_catalog([{**GOOD[0], "id": "t9", "year": "nineteen"}], name="all_bad.csv")
    assert indexer_main(["ingest", str(all_bad), "--store", str(store), "--skip-invalid"]) == 1
    assert "nothing ingested; no row is valid" in capsys.readouterr().err
    assert store_state(store) == before


def test_an_image_with_more_pixels_than_pillow_decodes_is_a_bad_row(make_catalog, tmp_path, monkeypatch, capsys):
    from PIL import Image

    catalog = make_catalog(GOOD)  # posters of 40 x 60 = 2,400 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow refuses past twice this
    assert indexer_main(["ingest", str(catalog), "--store", str(tmp_path / "store.sqlite3")]) == 1
    reported = [line for line in capsys.readouterr().err.splitlines() if line.startswith("line ")]
    assert len(reported) == 2 and all("is too large to decode: Image size (2400 pixels)" in line for line in reported)
