"""The batch job against a real store: variants registered, skips listed, reruns idempotent,
and a killed run resumes."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indexer.ingest import ingest_catalog
from indexer.store import open_store
from localize import demo
from localize.__main__ import main
from localize.batch import TitlesFileError, run_batch

REPO = Path(__file__).resolve().parents[1]
REGIONS = ("DE", "JP", "SA", "IN")


def _corpus_with_blank_poster(folder: Path, count: int) -> tuple[Path, Path]:
    """A demo corpus plus one poster without any text, ingested into a fresh store."""
    catalog = demo.write_demo_corpus(folder / "demo", count=count, seed=5)
    Image.new("RGB", (400, 600), (30, 60, 90)).save(catalog.parent / "posters" / "blank.png")
    with catalog.open("a", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerow(("blank", "Nothing", 2001, "Drama", "posters/blank.png"))
    store = folder / "store.sqlite3"
    assert ingest_catalog(catalog, store).summary is not None
    return catalog, store


def _titles(catalog: Path, extra: list[tuple[str, str, str, str]]) -> Path:
    with (catalog.parent / "localized_titles.csv").open(encoding="utf-8") as handle:
        rows = [tuple(r.values()) for r in csv.DictReader(handle) if r["region"] in REGIONS]
    path = catalog.parent / "titles_for_test.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("id", "region", "language", "title"))
        writer.writerows(rows + extra)
    return path


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    catalog, store = _corpus_with_blank_poster(tmp_path, count=3)
    titles = _titles(
        catalog,
        [
            ("blank", "DE", "de", "Nichts"),
            ("ghost", "DE", "de", "Gespenst"),
            (
                "demo00000",
                "AT",
                "de",
                "Der tapfere kleine Fuchs und die lange Nacht im verlorenen Garten der Sterne " * 3,
            ),
            ("demo00001", "FR", "fr", ""),
            ("demo00002", "zh-Hant", "zh", "勇敢的小狐狸"),
        ],
    )
    return titles, store, tmp_path / "variants"


def test_variants_are_registered_and_every_skip_has_its_reason(setup) -> None:
    titles, store_path, out = setup
    with open_store(store_path) as store:
        summary = run_batch(store, titles, out, method="ns", progress=False)
        variants = store.variants()
    assert summary.made == 3 * len(REGIONS)
    reasons = {(s.id, s.region): s.reason for s in summary.skipped}
    assert reasons[("blank", "DE")].startswith("no title found")
    assert reasons[("ghost", "DE")].startswith("not in the store")
    assert reasons[("demo00000", "AT")].startswith("title cannot fit")
    assert reasons[("demo00001", "FR")].startswith("bad row") and "empty title" in reasons[("demo00001", "FR")]
    assert (
        reasons[("demo00002", "ZH-HANT")].startswith("bad row")
        and "not a two-letter region code" in reasons[("demo00002", "ZH-HANT")]
    )
    assert len(reasons) == 5
    with (out / "skipped.csv").open(encoding="utf-8") as handle:
        assert {(r["id"], r["region"]) for r in csv.DictReader(handle)} == set(reasons)

    by_key = {(v.parent_id, v.region): v for v in variants}
    assert len(by_key) == 3 * len(REGIONS)
    jp = by_key[("demo00002", "JP")]
    assert jp.language == "ja" and any("\u3040" <= ch <= "\u9fff" for ch in jp.title)
    assert by_key[("demo00000", "SA")].language == "ar"
    for variant in variants:
        with Image.open(variant.image_path) as image:
            assert image.size == (400, 600)
            image.load()


def test_rerun_is_idempotent_and_a_changed_title_is_remade(setup) -> None:
    titles, store_path, out = setup
    with open_store(store_path) as store:
        run_batch(store, titles, out, regions=["DE", "JP"], method="ns", progress=False)
        again = run_batch(store, titles, out, regions=["DE", "JP"], method="ns", progress=False)
        assert (again.made, again.up_to_date) == (0, 6)
        rows = list(csv.reader(titles.open(encoding="utf-8")))
        for row in rows:
            if row[:2] == ["demo00000", "JP"]:
                row[3] += "２"
        changed = titles.with_name("changed.csv")
        with changed.open("w", encoding="utf-8", newline="") as handle:
            csv.writer(handle).writerows(rows)
        remade = run_batch(store, changed, out, regions=["JP"], method="ns", progress=False)
        assert (remade.made, remade.up_to_date) == (1, 2)
        assert store.variants(parent_id="demo00000", region="JP")[0].title.endswith("２")


def test_review_sheets_show_original_mask_and_each_variant(setup) -> None:
    titles, store_path, out = setup
    assert (
        main(
            [
                "run",
                "--titles",
                str(titles),
                "--regions",
                "de,jp",
                "--out",
                str(out),
                "--store",
                str(store_path),
                "--inpaint",
                "ns",
                "--review",
            ]
        )
        == 0
    )
    sheets = sorted(path.name for path in (out / "review").iterdir())
    assert sheets == ["demo00000.png", "demo00001.png", "demo00002.png"]
    with Image.open(out / "review" / "demo00001.png") as image:
        assert image.size == (4 * 408 - 8, 600)
        mask_tile = np.asarray(image.convert("RGB"))[:, 408:808]
    assert ((mask_tile == (255, 0, 200)).all(axis=2)).sum() > 500  # the erased glyphs are shown


def test_missing_variant_image_is_remade(setup) -> None:
    titles, store_path, out = setup
    with open_store(store_path) as store:
        run_batch(store, titles, out, regions=["DE"], method="ns", progress=False)
        (out / "DE" / "demo00001.png").unlink()
        again = run_batch(store, titles, out, regions=["DE"], method="ns", progress=False)
    assert (again.made, again.up_to_date) == (1, 2)


def test_a_poster_broken_on_disk_is_skipped_with_its_reason_and_the_rest_are_made(setup) -> None:
    """A poster replaced after ingest by a sliver (2x900 px, which the detector would scale to
    hundreds of thousands of pixels) or by bytes that are not an image is listed, not fatal."""
    titles, store_path, out = setup
    posters = store_path.parent / "demo" / "posters"
    sliver, garbage = sorted(posters.glob("demo0000[01].*"))
    Image.new("RGB", (2, 900), (200, 10, 10)).save(sliver, format="PNG")
    garbage.write_bytes(b"\x89PNG not really")
    with open_store(store_path) as store:
        summary = run_batch(store, titles, out, regions=["DE"], method="ns", progress=False)
    reasons = {s.id: s.reason for s in summary.skipped}
    assert reasons[sliver.stem].startswith("not a poster: 2x900 px"), reasons
    assert reasons[garbage.stem].startswith("unreadable poster image"), reasons
    assert summary.made == 1 and (out / "DE" / "demo00002.png").is_file()


def test_unreadable_titles_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("id,region,title\nx,DE,y\n", encoding="utf-8")
    with open_store(tmp_path / "s.sqlite3") as store:
        with pytest.raises(TitlesFileError, match="lacks column.*language"):
            run_batch(store, bad, tmp_path / "out", progress=False)
        with pytest.raises(TitlesFileError, match="cannot be opened"):
            run_batch(store, tmp_path / "absent.csv", tmp_path / "out", progress=False)


def test_cli_run_prints_summary_and_compare_writes_before_after(setup, capsys: pytest.CaptureFixture[str]) -> None:
    titles, store_path, out = setup
    code = main(
        [
            "run",
            "--titles",
            str(titles),
            "--regions",
            "de,ja",
            "--out",
            str(out),
            "--store",
            str(store_path),
            "--inpaint",
            "ns",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert "skipped blank DE: no title found" in printed and "3 variant(s) made" in printed
    poster = titles.parent / "posters" / "demo00000.png"
    sheet = out / "compare.png"
    assert (
        main(
            [
                "compare",
                str(poster),
                "--title",
                "Feuer und Eis",
                "--language",
                "de",
                "--out",
                str(sheet),
                "--inpaint",
                "ns",
            ]
        )
        == 0
    )
    with Image.open(sheet) as image:
        assert image.size == (2 * 400 + 8, 600)
    assert (
        main(
            [
                "compare",
                str(titles.parent / "posters" / "blank.png"),
                "--title",
                "x",
                "--language",
                "de",
                "--out",
                str(sheet),
            ]
        )
        == 1
    )
    assert "no title found" in capsys.readouterr().err


@pytest.mark.slow
def test_killed_run_resumes_without_redoing_or_breaking_anything(tmp_path: Path) -> None:
    catalog, store_path = _corpus_with_blank_poster(tmp_path, count=6)
    titles, out = _titles(catalog, []), tmp_path / "variants"
    command = [
        sys.executable,
        "-m",
        "localize",
        "run",
        "--titles",
        str(titles),
        "--out",
        str(out),
        "--store",
        str(store_path),
        "--inpaint",
        "patchmatch",
    ]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    with open_store(store_path) as store:
        while not store.variants() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    with open_store(store_path) as store:
        done_before = len(store.variants())
        assert 0 < done_before < 6 * len(REGIONS), "the run should be interrupted part-way"
        resumed = run_batch(store, titles, out, method="ns", progress=False)
        assert resumed.up_to_date == done_before
        assert resumed.made == 6 * len(REGIONS) - done_before
        for variant in store.variants():
            with Image.open(variant.image_path) as image:
                image.load()
                assert np.asarray(image).std() > 0


def test_a_run_removes_temporary_files_that_a_killed_run_left(setup) -> None:
    """A writer killed between saving and renaming leaves .<name>.<pid>.tmp; the next run deletes
    those of dead processes and keeps a live writer's and every other file."""
    titles, store_path, out = setup
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / "DE").mkdir(parents=True)
        stale = [out / "DE" / f".demo00001.png.{dead.pid}.tmp", out / f".skipped.csv.{dead.pid}.tmp"]
        kept = [
            out / "DE" / f".demo00002.png.{live.pid}.tmp",
            out / "DE" / ".notes.tmp",
            out / "DE" / "keep.png.123.tmp",
        ]
        for path in stale + kept:
            path.write_bytes(b"partial")
        with open_store(store_path) as store:
            run_batch(store, titles, out, regions=["DE"], method="ns", progress=False)
        assert [path for path in stale if path.exists()] == []
        assert all(path.exists() for path in kept)
    finally:
        live.kill()
        live.wait()
