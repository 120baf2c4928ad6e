"""The original title's look (weight, case, alignment, colour) read from its pixels and copied."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from localize import demo
from localize.detect import BY_TEXT, Detection, TextLine, detect_title
from localize.fonts import face_for
from localize.pipeline import clean_poster, localize
from localize.render import fit_region, render_title
from localize.style import _rows
from localize.typeset import TextStyle, draw_layout, fit_text

GROUND = (25, 35, 60)
FILL = (235, 200, 60)


def _poster(text: str, weight: int, align: str = "center", max_lines: int = 1, serif: bool = False) -> Image.Image:
    """A plain poster with ``text`` as its title, a credits line at its foot."""
    image = Image.new("RGB", (400, 600), GROUND)
    style = TextStyle(fill=FILL, weight=weight)
    layout = fit_text(text, face_for("en", serif), 300, 200, style, "en", 64, max_lines=max_lines)
    draw_layout(image, layout, (40, 200, 360, 200 + layout.height), style, align)
    credits = TextStyle(fill=(200, 200, 200), weight=500)
    small = fit_text("DIRECTED BY ANNA BELL  MUSIC BY JOHN SMITH", face_for("en"), 360, 20, credits, "en", 12)
    draw_layout(image, small, (20, 560, 380, 580), credits)
    return image


@pytest.mark.parametrize(
    "text, weight, upper", [("NIGHT TRAIN", 800, True), ("Night Train", 300, False), ("Night Train", 800, False)]
)
def test_weight_and_case_are_read_from_the_glyphs(text: str, weight: int, upper: bool) -> None:
    clean = clean_poster(_poster(text, weight), "ns", "Night Train")
    assert clean.look.upper is upper
    assert abs(clean.look.weight - weight) <= 150, clean.look
    assert np.abs(np.subtract(clean.look.fill, FILL)).max() <= 25, clean.look


def test_an_all_caps_title_is_localized_in_capitals_at_its_weight() -> None:
    clean = clean_poster(_poster("NIGHT TRAIN", 800), "ns", "Night Train")
    rendered = localize(clean, "Nachtzug", "de")
    assert rendered.layout.lines == ("NACHTZUG",) and rendered.style.weight == clean.look.weight
    assert rendered.layout.size >= 0.9 * clean.line_height


def test_a_left_aligned_title_on_two_lines_stays_left_aligned() -> None:
    clean = clean_poster(
        _poster("The Secret Garden of Stars", 700, "left", max_lines=2), "ns", "The Secret Garden of Stars"
    )
    assert len(clean.detection.title_lines) == 2 and clean.look.align == "left"
    rendered = localize(clean, "Der geheime Garten der Sterne", "de")
    assert abs(rendered.ink_box[0] - clean.box[0]) <= 0.3 * clean.line_height


def test_a_centred_title_stays_centred() -> None:
    clean = clean_poster(
        _poster("The Secret Garden of Stars", 700, "center", max_lines=2), "ns", "The Secret Garden of Stars"
    )
    assert clean.look.align == "center"


def test_a_narrow_aligned_box_widens_away_from_its_edge() -> None:
    assert fit_region((40, 10, 140, 50), 400, "left") == (40, 10, 360, 50)
    assert fit_region((260, 10, 360, 50), 400, "right") == (40, 10, 360, 50)
    assert fit_region((150, 10, 250, 50), 400, "center") == (40, 10, 360, 50)


def test_upper_sets_the_title_in_capitals_and_keeps_uncased_scripts() -> None:
    ground = np.full((600, 400, 3), GROUND, np.uint8)
    assert (
        " ".join(
            render_title(ground, (30, 200, 370, 290), "Die verlorene Stadt", "de", FILL, 60, upper=True).layout.lines
        )
        == "DIE VERLORENE STADT"
    )
    assert render_title(ground, (30, 200, 370, 290), "失落之城", "zh", FILL, 60, upper=True).layout.lines == (
        "失落之城",
    )


def test_a_title_set_on_two_lines_is_localized_on_two_and_a_one_line_title_on_one() -> None:
    two = clean_poster(_poster("The Secret Garden of Stars", 700, max_lines=2), "ns", "The Secret Garden of Stars")
    assert two.look.rows == 2
    assert len(localize(two, "Nachtzug nach Lissabon", "de").layout.lines) == 2
    single = clean_poster(_poster("NIGHT TRAIN", 800), "ns", "Night Train")
    assert single.look.rows == 1
    assert len(localize(single, "Der lange Nachtzug", "de").layout.lines) == 1


def _title_of(*boxes: tuple[int, int, int, int]) -> Detection:
    lines = tuple(
        TextLine(((x0, y0), (x1, y0), (x1, y1), (x0, y1)), 0.9, y1 - y0, 0.5, 0.1, "WORD", 0.99)
        for x0, y0, x1, y1 in boxes
    )
    return Detection(lines, tuple(range(len(lines))), (182, 268), BY_TEXT, 1.0)


def test_only_rows_in_the_titles_main_size_make_its_line_structure() -> None:
    small_the, quiet, earth = (33, 195, 49, 203), (26, 201, 91, 221), (23, 218, 93, 239)
    assert _rows(_title_of(small_the, quiet, earth)) == 2  # "THE" above "QUIET" / "EARTH"
    assert _rows(_title_of(quiet, earth)) == 2
    assert _rows(_title_of((26, 180, 91, 192), quiet, earth)) == 3  # a third row of 12 px beside 20 px ones


@pytest.mark.parametrize("serif", [False, True])
@pytest.mark.parametrize("text, weight", [("NIGHT TRAIN", 800), ("Night Train", 500)])
def test_a_serif_title_is_localized_in_a_serif_face_and_a_sans_title_in_a_sans(
    text: str, weight: int, serif: bool
) -> None:
    clean = clean_poster(_poster(text, weight, serif=serif), "ns", "Night Train")
    assert clean.look.serif is serif, clean.look
    assert localize(clean, "Nachtzug", "de").layout.font.path == str(face_for("de", serif).path)


@pytest.fixture(scope="module")
def demo_truth(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[dict, np.ndarray, np.ndarray]]:
    """Demo posters with their truth rows, posters and clean backgrounds."""
    catalog = demo.write_demo_corpus(tmp_path_factory.mktemp("demo"), count=8, seed=5)
    with (catalog.parent / "truth.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [
        (
            row,
            np.asarray(Image.open(catalog.parent / "posters" / f"{row['id']}.png").convert("RGB")),
            np.asarray(Image.open(catalog.parent / row["background"]).convert("RGB")),
        )
        for row in rows
    ]


def test_the_demo_truth_names_the_fill_colour_of_the_title_glyphs(demo_truth) -> None:
    for row, poster, background in demo_truth:
        fill = tuple(int(row["fill"][i : i + 2], 16) for i in (1, 3, 5))
        changed = np.any(poster != background, axis=2)
        exact = np.all(poster == fill, axis=2) & changed
        assert exact.sum() >= 0.2 * changed.sum(), (row, exact.sum(), changed.sum())


def test_the_demo_truth_says_which_titles_are_set_in_capitals(demo_truth) -> None:
    for row, poster, _ in demo_truth:
        detection = detect_title(poster, None)
        letters = [ch for ch in detection.text if ch.isalpha()]
        assert len(letters) >= 3
        assert all(ch.isupper() for ch in letters) is (row["upper"] == "1"), (row, detection.text)
