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
        and "not an ISO 3166-1 country code" in reasons[("demo00002", "ZH-HANT")]
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


def _run_review(titles: Path, store_path: Path, out: Path, regions: str) -> int:
    arguments = ["run", "--titles", str(titles), "--regions", regions, "--out", str(out), "--store", str(store_path)]
    return main([*arguments, "--inpaint", "ns", "--review"])


def _sheet_tiles(path: Path, tile_width: int = 408) -> int:
    with Image.open(path) as image:
        return (image.width + 8) // tile_width


def test_review_sheets_show_original_mask_and_each_variant(setup) -> None:
    titles, store_path, out = setup
    assert _run_review(titles, store_path, out, "de,jp") == 0
    sheets = sorted(path.name for path in (out / "review").iterdir())
    assert sheets == ["demo00000.png", "demo00001.png", "demo00002.png"]
    with Image.open(out / "review" / "demo00001.png") as image:
        assert image.width == 4 * 408 - 8 and image.height > 600  # original, mask, DE, JP; captions below
        pixels = np.asarray(image.convert("RGB"))
    mask_tile = pixels[:600, 408:808]
    assert ((mask_tile == (255, 0, 200)).all(axis=2)).sum() > 500  # the erased glyphs are shown
    assert (pixels[600:, :400] < 128).any()  # a caption is written under the original


def test_review_sheets_show_every_variant_in_the_folder_and_a_deleted_one_is_made_again(setup) -> None:
    titles, store_path, out = setup
    assert _run_review(titles, store_path, out, "de") == 0
    assert _sheet_tiles(out / "review" / "demo00001.png") == 3
    assert _run_review(titles, store_path, out, "jp") == 0  # only JP made now; the sheet keeps DE beside it
    assert _sheet_tiles(out / "review" / "demo00001.png") == 4
    (out / "review" / "demo00001.png").unlink()
    assert _run_review(titles, store_path, out, "de,jp") == 0  # every variant up to date, the sheet missing
    assert _sheet_tiles(out / "review" / "demo00001.png") == 4


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
        latin1 = tmp_path / "latin1.csv"  # what a spreadsheet saves in Western Europe: short, so read in one go
        latin1.write_bytes("id,region,language,title\nx,FR,fr,Été\n".encode("cp1252"))
        with pytest.raises(TitlesFileError, match=r"latin1\.csv is not UTF-8 \(.*\): save it as UTF-8"):
            run_batch(store, latin1, tmp_path / "out", progress=False)


def test_titles_with_a_byte_order_mark_are_read_and_a_repeated_row_is_skipped(setup) -> None:
    titles, store_path, out = setup
    marked = titles.with_name("marked.csv")  # a spreadsheet's "CSV UTF-8" starts with a byte-order mark
    rows = "id,region,language,title\ndemo00000,DE,de,Eins\ndemo00000,DE,de,Zwei\n"
    marked.write_text(rows, encoding="utf-8-sig")
    with open_store(store_path) as store:
        summary = run_batch(store, marked, out, method="ns", progress=False)
        assert summary.made == 1 and store.variants()[0].title == "Eins"
    assert [str(skip) for skip in summary.skipped] == [
        "demo00000 DE: bad row: line 3 repeats the id and region of line 2"
    ]


def test_regions_and_languages_are_checked_against_iso_codes(setup) -> None:
    titles, store_path, out = setup
    mistyped = titles.with_name("codes.csv")
    rows = "demo00000,UK,en,One\ndemo00000,JP,jp,Two\ndemo00000,BR,PT-br,Um\ndemo00000,TW,zh_hant_tw,Yi\n"
    mistyped.write_text(f"id,region,language,title\n{rows}")
    with open_store(store_path) as store:
        summary = run_batch(store, mistyped, out, method="ns", progress=False)
        stored = [(v.region, v.language) for v in store.variants()]
        assert stored == [("BR", "pt-BR"), ("TW", "zh-Hant-TW")], "stored with BCP-47's conventional case"
        brazil = store.variants()[0]
        store.upsert_variant(brazil.parent_id, "BR", "pt-br", brazil.title, brazil.image_path)  # as stored before
        again = run_batch(store, mistyped, out, method="ns", progress=False)
        assert (again.made, again.up_to_date) == (0, 2), "the same language in another case is up to date"
    assert [str(skip) for skip in summary.skipped] == [
        "demo00000 UK: bad row: line 2 has region 'UK', not an ISO 3166-1 country code (such as DE, JP, GB)",
        "demo00000 JP: bad row: line 3 has language 'jp', not a BCP-47 language code (such as de, ja, zh-Hant)",
    ]


def test_a_title_the_language_font_cannot_draw_is_skipped_not_drawn_as_boxes(setup) -> None:
    titles, store_path, out = setup
    mistyped = titles.with_name("mistyped.csv")  # sa is Sanskrit (SA the country), whose font is the Latin fallback
    mistyped.write_text("id,region,language,title\ndemo00000,SA,sa,ضائعون\ndemo00000,DE,de,Blutmond 🩸\n")
    with open_store(store_path) as store:
        summary = run_batch(store, mistyped, out, method="ns", progress=False)
        assert summary.made == 0 and store.variants() == []
    reasons = {skip.region: skip.reason for skip in summary.skipped}
    assert reasons["SA"].startswith("title cannot be drawn") and "no glyphs for 'ضائعون'" in reasons["SA"]
    assert reasons["DE"].endswith(
        "has no glyphs for '🩸': symbols such as emoji cannot be set in a title; leave them out"
    )
    assert "is the title written in 'sa', and is that its BCP-47 code" in reasons["SA"]


def test_remove_withdraws_a_variant_and_names_one_that_is_not_registered(
    setup, capsys: pytest.CaptureFixture[str]
) -> None:
    titles, store_path, out = setup
    with open_store(store_path) as store:
        run_batch(store, titles, out, regions=["DE"], method="ns", progress=False)
    assert main(["run", "--titles", str(titles), "--out", str(out), "--store", str(store_path), "--review"]) == 0
    assert main(["remove", "demo00000", "de,FR", "--store", str(store_path)]) == 1
    printed = capsys.readouterr()
    assert "withdrew demo00000 DE" in printed.out and "no FR variant of 'demo00000' is registered" in printed.err
    assert not (out / "review" / "demo00000.png").exists()  # it showed the withdrawn variant
    with pytest.raises(SystemExit):
        main(["remove", "demo00000", "", "--store", str(store_path)])
    assert main(["remove", "nosuch", "DE", "--store", str(store_path)]) == 1
    assert f"no title 'nosuch' in the store {store_path}" in capsys.readouterr().err
    with open_store(store_path) as store:
        assert [v.parent_id for v in store.variants(region="DE")] == ["demo00001", "demo00002"]
        assert (out / "DE" / "demo00000.png").is_file()  # the image is left to its owner
        assert run_batch(store, titles, out, regions=["DE"], method="ns", progress=False).made == 1


def _skip_list(out: Path) -> list[tuple[str, str]]:
    with (out / "skipped.csv").open(encoding="utf-8") as handle:
        return sorted((row["id"], row["region"]) for row in csv.DictReader(handle))


def test_a_run_for_some_regions_keeps_the_skip_list_of_the_others(setup) -> None:
    titles, store_path, out = setup
    with open_store(store_path) as store:
        run_batch(store, titles, out, regions=["DE"], method="ns", progress=False)
        assert _skip_list(out) == [("blank", "DE"), ("ghost", "DE")]
        run_batch(store, titles, out, regions=["JP", "AT"], method="ns", progress=False)
        assert _skip_list(out) == [("blank", "DE"), ("demo00000", "AT"), ("ghost", "DE")]
        run_batch(store, titles, out, regions=["DE"], method="ns", progress=False)  # DE's list is its last run's
        assert _skip_list(out) == [("blank", "DE"), ("demo00000", "AT"), ("ghost", "DE")]


def test_a_skipped_row_says_that_the_variant_registered_before_stays(setup) -> None:
    titles, store_path, out = setup
    changed = titles.with_name("changed.csv")
    changed.write_text("id,region,language,title\ndemo00000,DE,de,Eisen 🔩\n", encoding="utf-8")
    with open_store(store_path) as store:
        run_batch(store, titles, out, regions=["DE"], method="ns", progress=False)
        summary = run_batch(store, changed, out, method="ns", progress=False)
        assert store.variants("demo00000", "DE")[0].title != "Eisen 🔩"
    assert summary.skipped[0].reason.endswith("leave them out; the variant registered before stays")


def test_variants_are_made_again_for_another_out_folder(setup) -> None:
    titles, store_path, out = setup
    with open_store(store_path) as store:
        first = run_batch(store, titles, out, regions=["DE"], method="ns", progress=False)
        again = run_batch(store, titles, out.with_name("elsewhere"), regions=["DE"], method="ns", progress=False)
        assert again.made == first.made > 0 and again.up_to_date == 0
        assert all(Path(v.image_path).parent == out.with_name("elsewhere").resolve() / "DE" for v in store.variants())


def test_cli_run_names_a_bad_out_folder_a_missing_store_and_regions_without_rows(
    setup, capsys: pytest.CaptureFixture[str]
) -> None:
    titles, store_path, out = setup
    not_a_folder = out.with_name("a_file")
    not_a_folder.write_text("x")
    base = ["run", "--titles", str(titles), "--inpaint", "ns"]
    assert main([*base, "--out", str(not_a_folder), "--store", str(store_path)]) == 2
    assert f"error: output folder {not_a_folder} cannot be made: it is a file" in capsys.readouterr().err
    assert main([*base, "--out", str(not_a_folder / "inside"), "--store", str(store_path)]) == 2
    assert f"cannot be made: {not_a_folder} is a file" in capsys.readouterr().err
    mistyped_store = store_path.with_name("typo") / "store.sqlite3"
    assert main([*base, "--out", str(out), "--store", str(mistyped_store)]) == 2
    assert f"error: store {mistyped_store} does not exist" in capsys.readouterr().err
    assert main([*base, "--out", str(out), "--store", str(store_path.parent)]) == 2
    assert f"error: store {store_path.parent} is a folder, not a store" in capsys.readouterr().err
    assert not mistyped_store.parent.exists()
    assert main([*base, "--out", str(out), "--store", str(store_path), "--regions", "IT"]) == 1
    printed = capsys.readouterr()
    assert "no row of the titles file is for region(s) IT" in printed.out
    assert "error: no variant made or up to date: the titles file has no row for the regions asked" in printed.err
    with pytest.raises(SystemExit):
        main([*base, "--out", str(out), "--store", str(store_path), "--regions", "Germany,DE,UK"])
    assert "regions: GERMANY, UK are not ISO 3166-1 country codes, such as DE,JP" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # an empty shell variable: not every region
        main([*base, "--out", str(out), "--store", str(store_path), "--regions", ""])
    assert "regions: name at least one ISO 3166-1 country code, such as DE,JP (got '')" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # regions given without --regions: named, not taken for Beam options
        main([*base, "--out", str(out), "--store", str(store_path), "DE,JP"])
    assert "unexpected argument(s) DE,JP" in capsys.readouterr().err


def test_cli_run_prints_summary_and_compare_writes_before_after(setup, capsys: pytest.CaptureFixture[str]) -> None:
    titles, store_path, out = setup
    code = main(
        [
            "run",
            "--titles",
            str(titles),
            "--regions",
            "de,in",
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
    assert "skipped blank DE: no title found" in printed and "6 variant(s) made" in printed
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
    compare = ["compare", str(poster), "--inpaint", "ns", "--title"]
    assert main([*compare, "x", "--language", "de", "--out", str(out / "before_after")]) == 1  # no image extension
    assert "error: --out" in capsys.readouterr().err and not (out / "before_after").exists()
    assert main([*compare, "鉄と夜", "--language", "jp", "--out", str(sheet)]) == 1  # the country, not the language
    assert "error: --language 'jp' is not a BCP-47 language code" in capsys.readouterr().err
    assert main([*compare, "鉄と夜", "--language", "de", "--out", str(sheet)]) == 1
    assert "has no glyphs for '鉄と夜'" in capsys.readouterr().err
    assert main([*compare, " ", "--language", "de", "--out", str(sheet)]) == 1
    assert "error: --title is empty" in capsys.readouterr().err
    kept = poster.read_bytes()
    assert main([*compare, "Feuer", "--language", "de", "--out", str(poster)]) == 1
    assert f"error: --out {poster} is the poster it reads" in capsys.readouterr().err
    assert poster.read_bytes() == kept


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_run_says_so_keeps_what_it_made_and_lists_its_skips(tmp_path: Path, stop: int) -> None:
    catalog, store_path = _corpus_with_blank_poster(tmp_path, count=30)  # seconds of work left when stopped
    titles, out = _titles(catalog, []), tmp_path / "variants"
    command = [sys.executable, "-m", "localize", "run", "--titles", str(titles), "--out", str(out)]
    process = subprocess.Popen(
        [*command, "--store", str(store_path), "--inpaint", "ns"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    with open_store(store_path) as store:
        while not store.variants() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)
    process.send_signal(stop)
    printed, errors = process.communicate(timeout=60)
    assert process.returncode == 128 + stop, errors[-3000:]
    assert "interrupted: the variants made so far are registered" in printed
    assert (out / "skipped.csv").is_file()
    with open_store(store_path) as store:
        made = len(store.variants())
    assert f"{made} variant(s) made" in printed and made < 30 * len(REGIONS)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_beam_run_says_so_in_one_line_and_registers_nothing(tmp_path: Path, stop: int) -> None:
    catalog, store_path = _corpus_with_blank_poster(tmp_path, count=30)
    titles, out = _titles(catalog, []), tmp_path / "variants"
    command = [sys.executable, "-m", "localize", "run", "--titles", str(titles), "--out", str(out)]
    process = subprocess.Popen(
        [*command, "--store", str(store_path), "--inpaint", "ns", "--runner", "FnApiRunner"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not list(out.glob("*/*.png")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
    process.send_signal(stop)
    _, errors = process.communicate(timeout=60)
    assert process.returncode == 128 + stop, errors[-3000:]
    assert "interrupted: a Beam run registers its variants when its pipeline ends" in errors
    assert "Traceback" not in errors
    with open_store(store_path) as store:
        assert store.variants() == []


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
