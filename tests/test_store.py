"""The SQLite catalogue store: variants, schema migrations and removal cascades."""

from __future__ import annotations

import sqlite3

import pytest

from indexer.ingest import ingest_catalog
from indexer.store import SCHEMA_VERSION, StoreError, open_store
from tests.conftest import write_poster

ROWS = [
    {"id": "a", "title": "Alpha", "year": "1999", "genres": "Drama"},
    {"id": "b", "title": "Beta", "year": "2003", "genres": "Comedy|Drama"},
]


@pytest.fixture
def store(make_catalog, tmp_path):
    ingest_catalog(make_catalog(ROWS), tmp_path / "store.sqlite3")
    with open_store(tmp_path / "store.sqlite3") as store:
        yield store


def test_variants_are_registered_by_region_and_replaced_in_place(store, tmp_path):
    de = write_poster(tmp_path / "variants/a_de.jpg", (10, 200, 10))
    jp = write_poster(tmp_path / "variants/a_jp.jpg", (10, 10, 200))
    store.upsert_variant("a", "de", "de", "Alpha (DE)", de)
    store.upsert_variant("a", "JP", "ja", "アルファ", jp)
    assert [(v.region, v.language, v.title) for v in store.variants("a")] == [
        ("DE", "de", "Alpha (DE)"),
        ("JP", "ja", "アルファ"),
    ]
    assert [v.parent_id for v in store.variants(region="jp")] == ["a"]
    assert store.variants("a", "DE")[0].source_sha256 == store.title("a").image_sha256

    store.upsert_variant("a", "DE", "de", "Alpha neu", jp)
    assert [v.title for v in store.variants("a", "DE")] == ["Alpha neu"]
    assert store.counts()["variants"] == 2


def test_a_variant_with_a_broken_image_unknown_parent_or_bad_region_is_refused_and_nothing_changes(store, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    before = store.counts()
    with pytest.raises(StoreError, match="variant a/DE: image .*broken.jpg"):
        store.upsert_variant("a", "DE", "de", "Alpha", broken)
    for region in ("ZH-HANT", "D", "", "1A"):  # only regions the API's ?region= can name
        with pytest.raises(StoreError, match="two-letter region code"):
            store.upsert_variant("a", region, "de", "Alpha", write_poster(tmp_path / "ok.jpg", (1, 1, 1)))
    with pytest.raises(StoreError, match="no title with id 'zz'"):
        store.upsert_variant("zz", "DE", "de", "Zed", write_poster(tmp_path / "ok.jpg", (1, 1, 1)))
    assert store.counts() == before


def test_removing_a_title_removes_its_variants(store, make_catalog, tmp_path):
    store.upsert_variant("b", "FR", "fr", "Bêta", write_poster(tmp_path / "b_fr.jpg", (5, 5, 5)))
    summary = ingest_catalog(make_catalog(ROWS[:1], name="smaller.csv"), store.path).summary
    assert summary.removed == 1
    assert store.variants() == [] and [t.id for t in store.titles()] == ["a"]


def test_a_store_from_a_newer_posterrec_is_refused(tmp_path):
    path = tmp_path / "future.sqlite3"
    connection = sqlite3.connect(path)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.close()
    with pytest.raises(StoreError, match="newer than this PosterRec"):
        open_store(path)


def test_a_new_store_is_migrated_to_the_current_schema(tmp_path):
    with open_store(tmp_path / "new.sqlite3") as store:
        assert store.counts() == {"titles": 0, "title_genres": 0, "images": 0, "variants": 0, "index_versions": 0}
    assert sqlite3.connect(tmp_path / "new.sqlite3").execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_path_that_is_no_store_is_one_clear_error(tmp_path) -> None:
    not_a_database = tmp_path / "catalog.csv"
    not_a_database.write_text("id,title\nt1,Alpha\n" * 100)
    with pytest.raises(StoreError, match=r"catalog.csv cannot be opened: file is not a database"):
        open_store(not_a_database)
    assert not_a_database.read_text().startswith("id,title"), "left as it was"
    (tmp_path / "folder").mkdir()
    with pytest.raises(StoreError, match=r"folder cannot be opened: a folder, not a store"):
        open_store(tmp_path / "folder")
    with pytest.raises(StoreError, match=r"x.sqlite3 cannot be opened: \S*catalog.csv is a file, not a folder"):
        open_store(not_a_database / "x.sqlite3")


def test_an_sqlite_database_of_something_else_is_refused_and_left_as_it_was(tmp_path):
    path = tmp_path / "other.sqlite3"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE vectors (key TEXT PRIMARY KEY, vector BLOB)")
    connection.commit()
    connection.close()
    with pytest.raises(StoreError, match=r"other.sqlite3 is an SQLite database of something else \(tables vectors\)"):
        open_store(path)
    connection = sqlite3.connect(path)
    assert connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall() == [("vectors",)]
    assert connection.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    connection.execute("PRAGMA user_version = 1")  # another application's own schema version
    connection.close()
    with pytest.raises(StoreError, match=r"is an SQLite database of something else \(tables vectors\)"):
        open_store(path)
