"""Rendering localized titles: every script fits its box, RTL order and Arabic joining are right,
the colour and the legibility effect follow the original title."""

from __future__ import annotations

import unicodedata

import cv2
import numpy as np
import pytest
from PIL import Image

from localize.fonts import face_for, load_font
from localize.render import (
    CannotFit,
    contrast_ratio,
    fit_region,
    ground_colors,
    legible_style,
    render_title,
    title_color,
)
from localize.typeset import TextStyle, break_points, draw_layout, fit_text

GROUND = (40, 60, 90)
BOX = (30, 200, 370, 290)
TITLES = {
    "de": "Die verlorene Stadt",
    "ar": "المدينة المفقودة",
    "fa": "شهر گمشده",
    "ur": "کھویا ہوا شہر",
    "he": "העיר האבודה",
    "ja": "失われた都市",
    "ko": "잃어버린 도시",
    "zh": "失落之城",
    "hi": "खोया हुआ शहर",
    "mr": "हरवलेले शहर",
    "th": "เมืองที่สาบสูญ",
    "ru": "Потерянный город",
}


def plain(size: tuple[int, int] = (400, 600), color=GROUND) -> np.ndarray:
    return np.full((size[1], size[0], 3), color, np.uint8)


def ink_box(image: np.ndarray, ground: np.ndarray) -> tuple[int, int, int, int]:
    changed = np.any(image != ground, axis=2)
    rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


@pytest.mark.parametrize("language", sorted(TITLES))
def test_title_in_every_script_fits_its_box(language: str) -> None:
    ground = plain()
    rendered = render_title(ground, BOX, TITLES[language], language, (250, 220, 150), line_height=60)
    drawn = np.asarray(rendered.image)
    x0, y0, x1, y1 = ink_box(drawn, ground)
    assert BOX[0] <= x0 and BOX[1] <= y0 and x1 <= BOX[2] and y1 <= BOX[3]
    # a real title, not a speck: it uses a good part of the box
    assert (x1 - x0) > 0.4 * (BOX[2] - BOX[0]) or (y1 - y0) > 0.4 * (BOX[3] - BOX[1])
    # no tofu: every character has a glyph in the chosen font
    font = rendered.layout.font
    tofu = font.getmask("\uffff").getbbox()
    assert all(font.getmask(ch).getbbox() != tofu or ch.isspace() for ch in TITLES[language] if ch.isalpha())


def test_long_title_wraps_before_it_gets_tiny_and_never_overflows() -> None:
    ground = plain()
    box = (40, 100, 360, 220)
    rendered = render_title(
        ground, box, "Jenseits der Sterne und der langen Nacht", "de", (255, 255, 255), line_height=50
    )
    assert rendered.box == box and len(rendered.layout.lines) >= 2
    x0, y0, x1, y1 = ink_box(np.asarray(rendered.image), ground)
    assert box[0] <= x0 and box[1] <= y0 and x1 <= box[2] and y1 <= box[3]


def test_narrow_title_box_is_widened_about_its_centre_within_the_poster() -> None:
    assert fit_region((150, 10, 250, 50), 400) == (40, 10, 360, 50)
    assert fit_region((0, 10, 60, 50), 400) == (0, 10, 320, 50)
    assert fit_region((20, 10, 390, 50), 400) == (20, 10, 390, 50)


def test_short_title_shrinks_on_one_line_before_wrapping() -> None:
    style = TextStyle(fill=(255, 255, 255))
    layout = fit_text("Der letzte Sommer", face_for("de"), 300, 200, style, "de", start_size=44)
    assert len(layout.lines) == 1 and 0.6 * 44 <= layout.size < 44


def test_title_that_cannot_fit_is_refused() -> None:
    with pytest.raises(CannotFit, match="does not fit"):
        render_title(
            plain(),
            (100, 100, 300, 118),
            "Der tapfere kleine Fuchs und die lange Nacht " * 3,
            "de",
            (255, 255, 255),
            line_height=16,
        )


def _word_x(language: str, words: tuple[str, str]) -> tuple[int, int]:
    """Where each word lands (by template matching) when the two are set as one line."""
    style = TextStyle(fill=(255, 255, 255), weight=700)

    def draw(text: str) -> np.ndarray:
        layout = fit_text(text, face_for(language), 600, 100, style, language, 48, max_lines=1)
        image = Image.new("RGB", (640, 120))
        draw_layout(image, layout, (20, 10, 620, 110), style)
        return cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2GRAY)

    line = draw(" ".join(words))
    positions = []
    for word in words:
        alone = draw(word)
        x0, y0, x1, y1 = Image.fromarray(alone).getbbox()
        result = cv2.matchTemplate(line, alone[y0:y1, x0:x1], cv2.TM_CCOEFF_NORMED)
        _, score, _, where = cv2.minMaxLoc(result)
        assert score > 0.8, (word, score)
        positions.append(where[0])
    return positions[0], positions[1]


@pytest.mark.parametrize(
    "language, words", [("ar", ("المدينة", "المفقودة")), ("fa", ("شهر", "گمشده")), ("he", ("העיר", "האבודה"))]
)
def test_right_to_left_titles_start_on_the_right(language: str, words: tuple[str, str]) -> None:
    first, second = _word_x(language, words)
    assert first > second


def test_left_to_right_titles_start_on_the_left() -> None:
    first, second = _word_x("de", ("Verlorene", "Stadt"))
    assert first < second


def test_arabic_letters_are_joined() -> None:
    """Shaped Arabic uses the letters' joined forms, which are narrower than the isolated
    forms that zero-width non-joiners force, and draw differently."""
    font = load_font(face_for("ar"), 64)
    word, apart = "ليل", "ل\u200cي\u200cل"
    assert font.getlength(word, language="ar") < 0.9 * font.getlength(apart, language="ar")
    joined_mask, apart_mask = font.getmask(word, language="ar"), font.getmask(apart, language="ar")
    assert joined_mask.size != apart_mask.size


@pytest.mark.parametrize("effect", ["none", "outline", "shadow", "glow"])
def test_title_colour_is_the_fill_not_the_effect(effect: str) -> None:
    ground = plain(color=(200, 190, 230))
    style = TextStyle(
        fill=(250, 250, 250) if effect != "none" else (200, 30, 40),
        effect=effect,
        effect_color=(90, 40, 130),
        weight=800,
    )
    layout = fit_text("SHADOW AND LIGHT", face_for("en"), 340, 90, style, "en", 48)
    image = Image.fromarray(ground)
    draw_layout(image, layout, BOX, style)
    drawn = np.asarray(image)
    mask = np.zeros(ground.shape[:2], np.uint8)
    mask[BOX[1] : BOX[3], BOX[0] : BOX[2]] = 255
    color = title_color(drawn, ground, mask)
    assert np.abs(np.subtract(color, style.fill)).max() <= 20, color


def test_low_contrast_gets_an_outline_and_high_contrast_none() -> None:
    assert legible_style((255, 255, 255), [(0, 0, 0)]).effect == "none"
    low = legible_style((200, 200, 200), [(190, 190, 190)])
    assert low.effect == "outline" and contrast_ratio(low.effect_color, low.fill) > 3
    assert legible_style((200, 200, 200), [(110, 110, 110)]).effect == "shadow"
    # white on a ground that is half black, half white: legible on black, not on white
    assert legible_style((255, 255, 255), [(0, 0, 0), (250, 250, 250)]).effect == "outline"


def test_ground_colors_see_both_halves_of_a_split_ground() -> None:
    ground = np.zeros((100, 100, 3), np.uint8)
    ground[:, 50:] = 250
    assert sorted(ground_colors(ground, (0, 0, 100, 100))) == [(0, 0, 0), (250, 250, 250)]


def test_line_breaks_respect_each_script() -> None:
    assert break_points("Feuer und Eis", "de") == [5, 9]
    assert break_points("Feuer", "de") == []
    assert break_points("ジャッキー", "ja") == [3]  # never before ャ, ッ or the long-vowel mark ー
    assert break_points("失落之城", "zh") == [1, 2, 3]
    thai = "เมืองที่สาบสูญ"
    for i in break_points(thai, "th"):
        assert unicodedata.category(thai[i]) not in ("Mn", "Mc") and thai[i - 1] != "เ"
