"""Title detection on synthetic posters whose true title box is known."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image, ImageDraw

from localize import demo
from localize.detect import (
    BY_PROMINENCE,
    BY_TEXT,
    CREDITS_BAND,
    TITLE_CROPS,
    Detection,
    TextLine,
    _completed,
    _read_as_title,
    _split_in_regions,
    _stacked_rows,
    _with_article,
    choose_by_text,
    detect_lines,
    detect_title,
    reading_order,
    text_rows,
)
from localize.fonts import face_for, load_font
from localize.mask import title_mask
from localize.match import normalized
from localize.pipeline import NoTitle, clean_poster
from localize.recognize import INPUT_HEIGHT, Crop, lengthened, read_crops, read_lines, upright_crop
from localize.typeset import TextStyle, draw_layout, fit_text


def iou(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return inter / (area - inter)


@pytest.fixture(scope="module")
def posters(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[np.ndarray, np.ndarray, tuple[int, ...]]]:
    """(poster, clean background, true title box) for 12 demo posters."""
    catalog = demo.write_demo_corpus(tmp_path_factory.mktemp("demo"), count=12, seed=7)
    with (catalog.parent / "truth.csv").open(encoding="utf-8") as handle:
        truth = list(csv.DictReader(handle))
    return [
        (
            np.asarray(Image.open(catalog.parent / "posters" / f"{row['id']}.png").convert("RGB")),
            np.asarray(Image.open(catalog.parent / row["background"]).convert("RGB")),
            tuple(int(row[k]) for k in ("x0", "y0", "x1", "y1")),
        )
        for row in truth
    ]


@pytest.fixture(scope="module")
def detections(posters):
    return [detect_title(poster) for poster, _, _ in posters]


def test_chosen_title_matches_the_true_box(posters, detections) -> None:
    hits = [d.found and iou(d.title_box, box) >= 0.5 for (_, _, box), d in zip(posters, detections)]
    assert sum(hits) >= len(hits) - 1, [d.describe() for d, hit in zip(detections, hits) if not hit]


def test_tagline_and_credits_are_detected_but_not_chosen(posters, detections) -> None:
    for (poster, _, box), detection in zip(posters, detections):
        assert len(detection.lines) >= 3  # title + at least two credits lines
        others = [line for i, line in enumerate(detection.lines) if i not in detection.title]
        assert any(line.box[1] > poster.shape[0] * (1 - CREDITS_BAND) for line in others)
        assert all(iou(line.box, box) < 0.5 for line in others)


def test_boxes_and_scores_are_exposed_most_prominent_first(detections) -> None:
    for detection in detections:
        prominences = [line.prominence for line in detection.lines]
        assert prominences == sorted(prominences, reverse=True)
        assert all(0 < line.confidence <= 1 and line.height > 0 for line in detection.lines)
        assert sum(row.startswith("title ") for row in detection.describe().splitlines()) == len(detection.title)


def test_a_poster_without_text_has_no_title() -> None:
    gradient = np.linspace(0, 255, 600, dtype=np.uint8)[:, None, None].repeat(400, axis=1).repeat(3, axis=2)
    detection = detect_title(gradient)
    assert not detection.found and detection.title_box is None
    assert not title_mask(detection).any()


def test_glyph_mask_covers_every_pixel_the_title_changed_within_less_than_the_box(posters, detections) -> None:
    for (poster, background, box), detection in zip(posters, detections):
        if not (detection.found and iou(detection.title_box, box) >= 0.5):
            continue
        changed = np.abs(poster.astype(int) - background).sum(axis=2) > 30
        mask = title_mask(detection, poster) > 0
        assert mask[changed].mean() >= 0.99
        assert mask.sum() <= (title_mask(detection) > 0).sum()


def _poster_with(
    lines: list[tuple[str, int, int, tuple[int, int, int]]],
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """A 400x600 gradient poster with each (text, size, top, colour) line drawn centred; returns
    the poster, its background, and each line's own ink mask."""
    ground = np.linspace((30, 40, 70), (90, 50, 40), 600).astype(np.uint8)[:, None, :].repeat(400, axis=1)
    poster, inks = Image.fromarray(ground), []
    for text, size, top, colour in lines:
        style = TextStyle(fill=colour, weight=800)
        layout = fit_text(text, face_for("en"), 380, 200, style, "en", size, max_lines=1)
        before = np.asarray(poster).copy()
        draw_layout(poster, layout, (10, top, 390, top + layout.height), style)
        inks.append(np.any(np.asarray(poster) != before, axis=2))
    return np.asarray(poster), ground, inks


STACKED = [
    ("BROTHER", 46, 150, (250, 230, 120)),
    ("BEAR", 64, 205, (250, 230, 120)),
    ("IN CINEMAS SOON", 40, 285, (250, 230, 120)),
    ("JOHN SMITH  ANNA BELL", 16, 40, (230, 230, 230)),
]


def test_the_catalogue_title_picks_every_title_line_and_not_the_tagline_beside_them() -> None:
    poster, _, _ = _poster_with(STACKED)
    by_text = detect_title(poster, "Brother Bear")
    assert by_text.how == BY_TEXT and by_text.match == 1.0
    assert normalized(by_text.text) == "brotherbear"
    by_prominence = detect_title(poster)
    assert (
        by_prominence.how == BY_PROMINENCE and normalized(by_prominence.text) != "brotherbear"
    )  # the tagline joins by geometry


def test_a_poster_whose_prominent_text_clearly_reads_as_another_title_is_refused() -> None:
    poster, _, _ = _poster_with(STACKED)
    detection = detect_title(poster, "Graceland")
    assert not detection.found and "not the title 'Graceland'" in detection.refusal and "BEAR" in detection.refusal
    with pytest.raises(NoTitle, match="not the title 'Graceland'"):
        clean_poster(Image.fromarray(poster), "ns", "Graceland")
    assert detect_title(poster, "Brother Bears").found  # a misspelt catalogue title still reads as it


def test_glyph_mask_takes_the_title_strokes_and_leaves_a_neighbouring_line_intact() -> None:
    poster, _, inks = _poster_with(
        [("NIGHT TRAIN", 60, 200, (250, 240, 200)), ("A JOURNEY WITH NO RETURN", 18, 248, (250, 240, 200))]
    )
    detection = detect_title(poster, "Night Train")
    assert detection.how == BY_TEXT
    glyphs, boxes = title_mask(detection, poster) > 0, title_mask(detection) > 0
    title_ink, tagline_ink = inks
    assert glyphs[title_ink].mean() >= 0.99
    assert not glyphs[tagline_ink].any()
    assert boxes[tagline_ink].any()  # the dilated box would have eaten into it
    assert glyphs.sum() < 0.8 * boxes.sum()


def _with_vertical_credits(poster: np.ndarray, text: str, left: int) -> np.ndarray:
    """``poster`` with ``text`` set in light letters along a vertical line reading bottom to top."""
    style = TextStyle(fill=(235, 235, 235), weight=600)
    layout = fit_text(text, face_for("en"), 540, 28, style, "en", 22, max_lines=1)
    strip = Image.new("RGB", (560, 32), (0, 0, 0))
    draw_layout(strip, layout, (5, 2, 555, 30), style)
    ink = Image.fromarray(((np.asarray(strip).sum(axis=2) > 60) * 255).astype(np.uint8))
    image = Image.fromarray(poster)
    image.paste(strip.rotate(90, expand=True), (left, 20), ink.rotate(90, expand=True))
    return np.asarray(image)


def test_a_long_vertical_line_of_credits_is_measured_by_its_letters_and_read_turned() -> None:
    poster, _, _ = _poster_with([("NIGHT TRAIN", 48, 250, (250, 240, 200))])
    poster = _with_vertical_credits(poster, "ANNA BELL  JOHN SMITH  MARK LEE", left=362)
    detection = detect_title(poster, "Night Train")
    assert detection.how == BY_TEXT and normalized(detection.text) == "nighttrain"
    (credits,) = [line for i, line in enumerate(detection.lines) if i not in detection.title]
    assert credits.height < 40  # the strip's width, not its 380 px length
    assert normalized(credits.text) == "annabelljohnsmithmarklee"


def test_a_box_that_clips_the_first_letter_is_read_with_a_margin() -> None:
    poster, _, inks = _poster_with([("LUCY", 60, 250, (250, 240, 200))])
    ys, xs = np.nonzero(inks[0])
    left, right, top, bottom = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    cut = left + 0.4 * (bottom - top)  # into the L's stem
    clipped = np.float32([[cut, top], [right, top], [right, bottom], [cut, bottom]])
    assert read_lines(poster, [clipped], margins=(0.0,))[0][0] != "LUCY"
    assert read_lines(poster, [clipped])[0][0] == "LUCY"


def test_a_tagline_tucked_under_the_title_keeps_every_pixel_while_the_title_is_erased() -> None:
    poster, _, inks = _poster_with(
        [("NIGHT TRAIN", 60, 200, (250, 240, 200)), ("A JOURNEY WITH NO RETURN", 18, 244, (250, 240, 200))]
    )
    detection = detect_title(poster, "Night Train")
    assert detection.how == BY_TEXT and len(detection.lines) == 2
    glyphs = title_mask(detection, poster) > 0
    title_ink, tagline_ink = inks
    assert glyphs[title_ink].mean() >= 0.99
    assert not glyphs[tagline_ink].any()


def _line(box: tuple[int, int, int, int], text: str, height: float | None = None) -> TextLine:
    x0, y0, x1, y1 = box
    return TextLine(((x0, y0), (x1, y0), (x1, y1), (x0, y1)), 0.9, height or y1 - y0, 0.5, 0.1, text, 0.99)


def test_title_lines_are_read_in_rows_top_to_bottom_and_left_to_right_within_a_row() -> None:
    lines = [
        _line((40, 100, 180, 150), "CORE"),  # the big word
        _line((10, 118, 38, 132), "THE"),  # a small article beside it, lower than its top
        _line((20, 160, 170, 180), "RETURNS"),  # the next row
        _line((120, 30, 160, 95), "DAY"),  # a word higher up, right of ...
        _line((10, 50, 110, 98), "SNOW"),  # ... this one that starts lower
    ]
    assert reading_order(lines, range(len(lines))) == (4, 3, 1, 0, 2)
    detection = Detection(tuple(lines), reading_order(lines, [0, 1]), (200, 300), BY_TEXT, 1.0)
    assert detection.text == "THE CORE"
    assert [len(row) for row in text_rows(lines)] == [2, 2, 1]
    stacked = [  # two slanted lines one under the other: their boxes overlap, their letters do not
        _line((35, 188, 133, 230), "DAYCAMP", height=19),
        _line((44, 176, 127, 209), "DADDY", height=17),
    ]
    assert text_rows(stacked) == [[1], [0]]


def test_a_small_article_set_beside_the_title_reads_first() -> None:
    image = Image.new("RGB", (400, 600), (20, 30, 50))
    draw = ImageDraw.Draw(image)
    draw.text((30, 290), "THE", font=load_font(face_for("en"), 24, 800), fill=(240, 220, 90), anchor="ls")
    draw.text((95, 290), "CORE", font=load_font(face_for("en"), 90, 800), fill=(240, 220, 90), anchor="ls")
    detection = detect_title(np.asarray(image), "Core, The")
    assert detection.how == BY_TEXT and len(detection.title) == 2
    assert normalized(detection.text) == "thecore"


def test_words_set_on_a_rising_diagonal_read_in_the_order_that_spells_the_title() -> None:
    image = Image.new("RGB", (400, 600), (20, 30, 50))
    draw = ImageDraw.Draw(image)
    font = load_font(face_for("en"), 80, 800)
    draw.text((20, 330), "SNOW", font=font, fill=(240, 220, 90), anchor="ls")
    draw.text((250, 270), "DAY", font=font, fill=(240, 220, 90), anchor="ls")  # the second word's row is higher
    lines = detect_title(np.asarray(image), "Snow Day")
    assert [normalized(lines.lines[i].text) for i in reading_order(lines.lines, lines.title)] == ["day", "snow"]
    assert lines.how == BY_TEXT and normalized(lines.text) == "snowday"


def test_a_quad_is_lengthened_along_its_baseline_by_its_letter_height() -> None:
    horizontal = np.float32([[10, 20], [110, 20], [110, 40], [10, 40]])
    assert lengthened(horizontal, 0.5).tolist() == [[0, 20], [120, 20], [120, 40], [0, 40]]
    vertical = np.float32([[10, 20], [30, 20], [30, 120], [10, 120]])  # letters 20 px high, read downwards
    assert lengthened(vertical, 1.0).tolist() == [[10, 0], [30, 0], [30, 140], [10, 140]]
    assert upright_crop(np.zeros((100, 200, 3), np.uint8), horizontal / 4, enlarged=True).shape[0] == INPUT_HEIGHT


def _clipped_lucy() -> tuple[np.ndarray, TextLine, int]:
    """A poster reading LUCY, its line with a box that leaves the whole L out, and the ink's left edge."""
    poster, _, inks = _poster_with([("LUCY", 60, 250, (250, 240, 200))])
    ys, xs = np.nonzero(inks[0])
    left, right, top, bottom = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    cut = left + 0.75 * (bottom - top)  # past the L's foot
    line = _line((int(cut), int(top), int(right), int(bottom)), "")
    return poster, line, int(left)


def test_a_letter_outside_the_box_is_read_in_a_crop_lengthened_along_the_baseline() -> None:
    poster, line, _ = _clipped_lucy()
    quad = np.asarray(line.quad, np.float32)
    tight, long = read_crops(poster, [quad], [Crop(0.1), Crop(0.1, along=1.0)])[0]
    assert normalized(tight.text) != "lucy" and normalized(long.text) == "lucy"
    assert long.quad[0][0] < quad[0][0]


def test_the_read_most_like_the_catalogue_title_is_kept_and_its_box_grows_to_take_the_letter() -> None:
    poster, line, left = _clipped_lucy()
    (as_title,) = _read_as_title(poster, [line], "Lucy")
    assert normalized(as_title.text) == "lucy"
    assert as_title.box[0] <= left  # the L is inside the line's box, so it is erased with it
    (unrelated,) = _read_as_title(poster, [line], "Graceland")
    assert unrelated.quad == line.quad  # no read is like the title: the box stays the detector's
    assert len(TITLE_CROPS) == len(set(TITLE_CROPS))


def test_a_read_lengthened_into_another_detected_line_is_left_out() -> None:
    poster, line, left = _clipped_lucy()
    x0, y0, _, y1 = line.box
    neighbour = _line((left, y0, x0 - 1, y1), "L")  # the L found as a line of its own
    as_title, _ = _read_as_title(poster, [line, neighbour], "Lucy")
    assert as_title.quad == line.quad and normalized(as_title.text) != "lucy"


def test_a_subtitle_read_poorly_completes_the_title_and_the_lines_beyond_it_do_not() -> None:
    title = "Neon Genesis Evangelion: The End of Evangelion"
    lines = [
        _line((20, 100, 180, 130), "NEONGENESIS"),
        _line((30, 132, 170, 160), "EVANGELION"),
        _line((40, 165, 160, 178), "HE aNO OF EVANGELION"),  # the subtitle under the title, misread
        _line((40, 182, 160, 192), "IN CINEMAS SOON"),  # a tagline under the subtitle
        _line((30, 250, 170, 270), "EVANGELION"),  # a title word far from the title (the billing block)
    ]
    matched = choose_by_text(lines, (200, 300), title)
    assert matched is not None and matched.title == (0, 1)  # the main title alone reads best
    completed = _completed(matched, title)
    assert completed.title == (0, 1, 2)
    assert completed.text == "NEONGENESIS EVANGELION HE aNO OF EVANGELION"


def test_a_small_article_above_the_title_read_with_one_letter_wrong_joins_it() -> None:
    title = "Quiet Earth, The"
    lines = [
        _line((33, 195, 49, 203), "THL"),  # the small "THE" above, misread
        _line((26, 201, 91, 221), "QUIET"),
        _line((23, 218, 93, 239), "EARTH"),
        _line((60, 245, 76, 252), "THC"),  # after the title: not its article
        _line((100, 20, 116, 28), "TH3"),  # far above it
    ]
    matched = choose_by_text(lines, (182, 268), title)
    assert matched is not None and matched.title == (1, 2)  # "Quiet Earth" reads as a whole form
    assert _with_article(matched, title).title == (0, 1, 2)
    assert _with_article(matched, "Quiet Earth").title == (1, 2)  # no article in the title: nothing added
    misread_twice = [_line((33, 195, 49, 203), "TIL"), *lines[1:3]]
    assert _with_article(choose_by_text(misread_twice, (182, 268), title), title).title == (1, 2)


def test_words_the_poster_scale_takes_for_one_line_are_found_apart_in_their_region() -> None:
    image = Image.new("RGB", (182, 268), (235, 225, 210))  # a thumbnail, as the catalogue's posters are
    draw = ImageDraw.Draw(image)
    for text, x, baseline, size in (("BOY", 4, 45, 40), ("GIRL", 75, 58, 40), ("MEETS", 30, 56, 14)):
        draw.text((x, baseline), text, font=load_font(face_for("en"), size, 800), fill=(110, 30, 20), anchor="ls")
    poster = np.asarray(image)
    merged = [quad for quad, _ in detect_lines(poster) if quad[:, 0].min() < 10 and quad[:, 0].max() > 160]
    assert merged  # at the poster's scale BOY and GIRL are one line
    detection = detect_title(poster, "Boy Meets Girl")
    assert detection.how == BY_TEXT and normalized(detection.text) == "boymeetsgirl"
    assert len(detection.title) == 3 and all(line.box[2] - line.box[0] < 110 for line in detection.title_lines)


def test_two_rows_set_one_on_the_other_in_one_box_are_cut_apart_where_their_strokes_stop() -> None:
    image = Image.new("RGB", (182, 268), (150, 30, 30))
    draw = ImageDraw.Draw(image)
    font = load_font(face_for("en"), 26, 800)
    draw.text((91, 200), "MONTE", font=font, fill=(250, 245, 235), anchor="ms")
    draw.text((91, 221), "CARLO", font=font, fill=(250, 245, 235), anchor="ms")
    poster = np.asarray(image)
    both = np.float32([[40, 178], [142, 178], [142, 223], [40, 223]])  # one box over both rows
    top, bottom = _stacked_rows(poster, both)
    assert 200 <= top[3][1] == bottom[0][1] <= 203  # cut between the rows (ink rows 181-199, 202-220)
    assert [normalized(text) for text, _ in read_lines(poster, [top, bottom])] == ["monte", "carlo"]
    (one_row,) = [quad for quad, _ in detect_lines(poster) if quad[:, 1].mean() < 200]
    assert _stacked_rows(poster, one_row) == []  # a single row's strokes do not stop in its middle
    split = sorted(quad[:, 1].mean() for quad, _ in _split_in_regions(poster, [(both, 0.9)], [both]))
    assert len(split) == 2 and split[0] < 201 < split[1]  # the box is replaced by a line in each row
