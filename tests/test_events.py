"""``python -m indexer ingest-events`` and ``movielens-events`` against a real SQLite store."""

from __future__ import annotations

import csv
import sqlite3

import pytest

from indexer.__main__ import main as indexer_main
from indexer.events import movielens_events, parse_timestamp, parse_weight
from indexer.ingest import ingest_catalog
from indexer.store import SCHEMA_VERSION, Event, open_store

TITLES = [{"id": f"{n:07d}", "title": f"Film {n}", "year": "1999", "genres": "Drama"} for n in (114709, 113497, 133093)]
GOOD = [
    "user_id,title_id,timestamp,weight,device",
    "u1,0114709,964982703,4.0,tv",
    "u1,0113497,2000-07-30T18:45:03,,phone",
    "u2,0133093,2000-07-30T18:45:03+02:00,1,tv",
]


@pytest.fixture
def store_path(make_catalog, tmp_path):
    path = tmp_path / "store.sqlite3"
    assert ingest_catalog(make_catalog(TITLES), path).summary is not None
    return path


def write_lines(path, lines, raw_tail: bytes = b""):
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    if raw_tail:
        with path.open("ab") as handle:
            handle.write(raw_tail)
    return path


def stored_events(store_path):
    with open_store(store_path) as store:
        return store.events()


def test_good_file_is_ingested_and_reingest_changes_nothing(store_path, tmp_path, capsys):
    events_csv = write_lines(tmp_path / "events.csv", GOOD)
    assert indexer_main(["ingest-events", str(events_csv), "--store", str(store_path)]) == 0
    assert "3 added, 0 updated (weight), 0 unchanged" in capsys.readouterr().out
    assert stored_events(store_path) == [
        Event("u1", "0113497", 964982703, 1.0),  # naive ISO time is UTC; same-time events by title id
        Event("u1", "0114709", 964982703, 4.0),
        Event("u2", "0133093", 964982703 - 7200, 1.0),
    ]
    assert indexer_main(["ingest-events", str(events_csv), "--store", str(store_path)]) == 0
    assert "0 added, 0 updated (weight), 3 unchanged" in capsys.readouterr().out
    assert len(stored_events(store_path)) == 3


def test_a_changed_weight_updates_the_stored_event(store_path, tmp_path, capsys):
    indexer_main(["ingest-events", str(write_lines(tmp_path / "a.csv", GOOD)), "--store", str(store_path)])
    changed = GOOD[:1] + ["u1,0114709,964982703,2.5,tv"]
    assert (
        indexer_main(["ingest-events", str(write_lines(tmp_path / "b.csv", changed)), "--store", str(store_path)]) == 0
    )
    assert "0 added, 1 updated (weight), 0 unchanged" in capsys.readouterr().out
    assert Event("u1", "0114709", 964982703, 2.5) in stored_events(store_path)


BAD = GOOD + [
    "u3,9999999,964982703,1,tv",  # line 5: unknown title
    "u3,0114709,yesterday,1,tv",  # line 6: bad timestamp
    "u1,0114709,964982703,5,tv",  # line 7: duplicate of line 2
    "u3,0114709,964982703,-1,tv",  # line 8: bad weight
    ",0114709,964982703,1,tv",  # line 9: empty user
    "u3,0114709",  # line 10: short row
    "u3,,964982703,1,tv",  # line 11: empty title
    "u4,0114709,964982703,1,tv,5",  # line 12: long row
]
EXPECTED = {
    5: "unknown title '9999999'",
    6: "bad timestamp 'yesterday'",
    7: "duplicate event (user 'u1', same title and timestamp), first on line 2",
    8: "bad weight '-1'",
    9: "empty user_id",
    10: "wrong number of columns",
    11: "empty title_id",
    12: "wrong number of columns",
    13: "column 'user_id' is not valid UTF-8",
}


def test_every_bad_row_is_reported_by_line_and_nothing_is_written(store_path, tmp_path, capsys):
    events_csv = write_lines(tmp_path / "bad.csv", BAD, raw_tail=b"caf\xe9,0114709,964982999,1,tv\r\n")
    assert indexer_main(["ingest-events", str(events_csv), "--store", str(store_path)]) == 1
    out = capsys.readouterr().err
    for line, reason in EXPECTED.items():
        assert any(text.startswith(f"line {line}") and reason in text for text in out.splitlines()), (line, out)
    assert "found 9 invalid row(s)" in out and "nothing ingested" in out
    assert stored_events(store_path) == []


def test_skip_invalid_writes_the_good_rows_only(store_path, tmp_path, capsys):
    events_csv = write_lines(tmp_path / "bad.csv", BAD)
    assert indexer_main(["ingest-events", str(events_csv), "--store", str(store_path), "--skip-invalid"]) == 0
    assert "skipped 8 invalid row(s)" in capsys.readouterr().err
    assert {(e.user_id, e.title_id, e.weight) for e in stored_events(store_path)} == {
        ("u1", "0114709", 4.0),
        ("u1", "0113497", 1.0),
        ("u2", "0133093", 1.0),
    }


def test_missing_columns_and_missing_file_are_one_clear_error(store_path, tmp_path, capsys):
    no_timestamp = write_lines(tmp_path / "cols.csv", ["user_id,title_id", "u1,0114709"])
    assert indexer_main(["ingest-events", str(no_timestamp), "--store", str(store_path)]) == 1
    assert "header lacks column(s) timestamp" in capsys.readouterr().err
    assert indexer_main(["ingest-events", str(tmp_path / "absent.csv"), "--store", str(store_path)]) == 1
    assert "cannot be opened" in capsys.readouterr().err


def test_a_mistyped_store_is_named_and_not_made(store_path, tmp_path, capsys):
    events_csv = write_lines(tmp_path / "events.csv", GOOD)
    mistyped = tmp_path / "typo.sqlite3"
    for extra in ([], ["--skip-invalid"]):
        assert indexer_main(["ingest-events", str(events_csv), "--store", str(mistyped), *extra]) == 1
        assert f"error: store {mistyped} does not exist: load the catalogue into it first" in capsys.readouterr().err
    assert not mistyped.exists()


def test_a_store_of_the_previous_schema_is_migrated_keeping_its_titles(store_path):
    with sqlite3.connect(store_path) as db:
        db.execute("DROP TABLE events")
        db.execute("PRAGMA user_version = 1")
    with open_store(store_path) as store:
        assert len(store.titles()) == 3 and store.event_count() == 0
    with sqlite3.connect(store_path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_timestamps():
    assert parse_timestamp("964982703") == 964982703
    assert parse_timestamp("2000-07-30") == 964915200
    with pytest.raises(ValueError):
        parse_timestamp("30/07/2000")
    for impossible in ("-5", "99999999999999", "2999-01-01"):  # before 1970, year 3 million, the future
        with pytest.raises(ValueError, match="before 1970 or in the future"):
            parse_timestamp(impossible)
    with pytest.raises(ValueError, match="not a number"):
        parse_weight("abc")


def test_movielens_ratings_become_events_of_catalogue_titles(store_path, tmp_path, make_catalog, capsys):
    ratings = write_lines(
        tmp_path / "ratings.csv",
        [
            "userId,movieId,rating,timestamp",
            "1,1,4.0,964982703",
            "1,2,3.5,964982800",
            "2,3,5.0,964982900",
            "2,4,1.0,964983000",
        ],
    )
    links = write_lines(
        tmp_path / "links.csv",
        ["movieId,imdbId,tmdbId", "1,0114709,862", "2,113497,8844", "3,0133093,603", "4,0000001,1"],
    )
    catalog = tmp_path / "catalog.csv"
    out = tmp_path / "out" / "events.csv"
    args = ["movielens-events", str(ratings), str(links), "--catalog", str(catalog), "--out", str(out)]
    assert indexer_main(args) == 0
    assert "3 events of 3 catalogue titles; 1 ratings of films not in the catalogue left out" in capsys.readouterr().out
    with out.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0] == {"user_id": "1", "title_id": "0114709", "timestamp": "964982703", "weight": "4.0"}
    assert rows == movielens_events(ratings, links, catalog).rows
    assert indexer_main(["ingest-events", str(out), "--store", str(store_path)]) == 0
    assert len(stored_events(store_path)) == 3

    kept = {path: path.read_bytes() for path in (ratings, links, catalog)}
    for option, source in (("ratings", ratings), ("links", links), ("--catalog", catalog)):
        with pytest.raises(SystemExit) as stopped:
            indexer_main([*args[:-1], str(source)])
        assert stopped.value.code == 2
        assert f"--out {source} is the {option} file it reads: name a new file" in capsys.readouterr().err
    assert {path: path.read_bytes() for path in kept} == kept


def test_movielens_rows_that_make_no_event_are_listed_and_nothing_is_written(store_path, tmp_path, capsys):
    ratings = write_lines(
        tmp_path / "ratings.csv",
        [
            "userId,movieId,rating,timestamp",
            "1,1,4.0,964982703",
            "1,2,abc,964982800",  # line 3
            ",3,5.0,964982900",  # line 4
            "2,4,1.0,yesterday",  # line 5
        ],
    )
    links = write_lines(
        tmp_path / "links.csv", ["movieId,imdbId,tmdbId", "1,0114709,862", "2,113497,8844", "1,0133093,603"]
    )
    out = tmp_path / "events.csv"
    argv = ["movielens-events", str(ratings), str(links), "--catalog", str(tmp_path / "catalog.csv"), "--out", str(out)]
    assert indexer_main(argv) == 1
    reported = capsys.readouterr().err.splitlines()
    assert reported == [
        f"{links} line 4: movieId '1' is also on line 2",
        f"{ratings} line 3: bad rating 'abc': not a number",
        f"{ratings} line 4: empty userId",
        f"{ratings} line 5: bad timestamp 'yesterday': neither Unix seconds nor an ISO 8601 date-time",
        f"{out}: not written; fix the rows above",
    ]
    assert not out.exists()


def test_an_events_file_saved_with_a_byte_order_mark_is_read(store_path, tmp_path):
    events_csv = tmp_path / "excel.csv"
    events_csv.write_text("\ufeff" + "\r\n".join(GOOD) + "\r\n", encoding="utf-8")
    assert indexer_main(["ingest-events", str(events_csv), "--store", str(store_path)]) == 0
    assert len(stored_events(store_path)) == len(GOOD) - 1


def test_an_empty_events_file_is_one_error_naming_the_header_it_needs(store_path, tmp_path, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert indexer_main(["ingest-events", str(empty), "--store", str(store_path)]) == 1
    assert "is empty: it needs a header line with user_id, title_id, timestamp" in capsys.readouterr().err
