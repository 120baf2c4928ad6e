"""The synthetic demo corpus: format, determinism, ground truth and translations."""

from __future__ import annotations

import csv
import hashlib
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from localize import demo, vocab
from models.catalog import read_catalog

COUNT = 12
REAL_CATALOG = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "catalog.csv"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo.write_demo_corpus(tmp_path_factory.mktemp("demo"), count=COUNT, seed=7)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_catalog_has_the_real_catalogue_format_and_validates(corpus: Path) -> None:
    with corpus.open(encoding="utf-8") as handle:
        assert handle.readline().strip() == "id,title,year,genres,image"
    report = read_catalog(corpus)
    assert report.errors == []
    assert len(report.rows) == COUNT
    assert len({row.title for row in report.rows}) == COUNT
    for row in report.rows:
        assert set(row.genres) <= set(demo.GENRES)
        assert (row.width, row.height) == (demo.WIDTH, demo.HEIGHT)
        assert row.image == corpus.parent / "posters" / f"{row.id}.png"


def test_genre_vocabulary_is_the_real_catalogues() -> None:
    if not REAL_CATALOG.is_file():
        pytest.skip(f"real catalogue not found at {REAL_CATALOG} (shared/data is outside the repo)")
    real = {genre for row in _rows(REAL_CATALOG) for genre in row["genres"].split("|")}
    assert real == set(demo.GENRES)


def test_same_seed_gives_identical_files_and_another_seed_does_not(corpus: Path, tmp_path: Path) -> None:
    again = demo.write_demo_corpus(tmp_path / "again", count=COUNT, seed=7)
    assert _digest(again.parent) == _digest(corpus.parent)
    other = demo.write_demo_corpus(tmp_path / "other", count=COUNT, seed=8)
    assert _digest(other.parent) != _digest(corpus.parent)


def test_title_box_is_exactly_where_poster_and_background_differ(corpus: Path) -> None:
    for truth in _rows(corpus.parent / "truth.csv"):
        poster = np.asarray(Image.open(corpus.parent / "posters" / f"{truth['id']}.png"), dtype=int)
        background = np.asarray(Image.open(corpus.parent / truth["background"]), dtype=int)
        x0, y0, x1, y1 = (int(truth[k]) for k in ("x0", "y0", "x1", "y1"))
        changed = np.any(poster != background, axis=2)
        assert 0 <= x0 < x1 <= demo.WIDTH and 0 <= y0 < y1 <= demo.HEIGHT
        assert changed[y0:y1, x0:x1].sum() == changed.sum() > 0
        # tight: every edge of the box touches a changed pixel
        assert changed[y0, x0:x1].any() and changed[y1 - 1, x0:x1].any()
        assert changed[y0:y1, x0].any() and changed[y0:y1, x1 - 1].any()
        # the title is the biggest text: taller than the credits lines (16 px bands)
        assert y1 - y0 > 20


_SCRIPT_OF = {
    "ar": "ARABIC",
    "he": "HEBREW",
    "ru": "CYRILLIC",
    "hi": "DEVANAGARI",
    "th": "THAI",
    "ko": "HANGUL",
    "de": "LATIN",
    "fr": "LATIN",
}


def test_localized_titles_cover_every_region_in_its_script(corpus: Path) -> None:
    rows = _rows(corpus.parent / "localized_titles.csv")
    ids = {row["id"] for row in _rows(corpus)}
    assert {(row["id"], row["region"]) for row in rows} == {(i, r) for i in ids for r in vocab.REGION_LANGUAGES}
    for row in rows:
        assert row["language"] == vocab.REGION_LANGUAGES[row["region"]]
        letters = [ch for ch in row["title"] if ch.isalpha()]
        assert letters, row
        script = _SCRIPT_OF.get(row["language"])
        if script:
            assert all(script in unicodedata.name(ch) for ch in letters), row
        else:  # ja and zh: CJK ideographs (ja also kana)
            assert all(any(s in unicodedata.name(ch) for s in ("CJK", "HIRAGANA", "KATAKANA")) for ch in letters), row


def test_korean_and_follows_the_final_consonant() -> None:
    assert vocab._join_and("불", "얼음", "ko") == "불과 얼음"
    assert vocab._join_and("바다", "바람", "ko") == "바다와 바람"
    assert vocab._join_and("نار", "جليد", "ar") == "النار والجليد"


def test_bad_count_is_refused(tmp_path: Path, capsys) -> None:
    with pytest.raises(ValueError, match="count"):
        demo.write_demo_corpus(tmp_path, count=0, seed=0)
    assert not (tmp_path / "catalog.csv").exists()
    with pytest.raises(SystemExit) as stopped:
        demo.main(["--out", str(tmp_path), "--count", "0"])
    assert stopped.value.code == 2
    assert "argument --count: 0 is below 1" in capsys.readouterr().err
