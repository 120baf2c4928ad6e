"""Finding the title: a learned scene-text detector and recognizer, then the lines that spell
the catalogue's title, or the most prominent lines when the title is unknown or unread.

The detector is PaddleOCR's PP-OCRv4 DBNet shipped as ONNX inside the
``rapidocr-onnxruntime`` wheel, so it runs offline on CPU. We call its
pre-processing, network and DB post-processing ourselves rather than
``RapidOCR()`` because the latter drops the per-box confidence we expose for
debugging. The wheel's recognizer then reads every line tall enough to be part
of a title (:mod:`localize.recognize`).

Which lines are the title? When the catalogue knows the title, the set of lines
whose text reads best as it (:mod:`localize.match`): a small "the" above a big
word, a subtitle after a colon, words the detector split, but not the tagline
beside them; and the lines near them that make them read more like the whole
title join them (a misread subtitle the matching left out for the main title
alone). When the lines do not read as it, those that read as part of it are
looked at again, each alone and enlarged, and a line is cut into its two rows
where its strokes stop between them: title words set close together are often
detected as one line. Otherwise, or when no set reads as it, the one a viewer
reads first: the tallest text, in strong contrast with its surroundings, outside
the credits block at the foot of the poster, with the lines of similar height
stacked closely under or beside it. Every line keeps its text and scores, so a
wrong choice can be seen and explained (``python -m localize compare --debug``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image
from rapidfuzz.distance import Levenshtein

from .match import match_title, normalized, part_weight, similarity, title_article, title_forms
from .recognize import VERTICAL, Crop, Reading, is_vertical, read_crops, read_lines, upright_crop

Box = tuple[int, int, int, int]
CREDITS_BAND = 0.08
"""The bottom fraction of a poster where the billing block lives; lines there are discounted."""
CREDITS_DISCOUNT = 0.4
SAME_HEIGHT = 0.78
"""Lines whose heights are closer than this ratio can belong to one title; a tagline or an
actor's name set next to the title is usually smaller than that."""
DETECTION_SIDE = 480
"""The poster's short side is scaled to this before DBNet (rapidocr's default is 736). Measured
by bench/bench_localize.py on 48 demo posters: title recall 1.000 against 0.958 at 736, in 42 %
of the time; on real posters the same choice on 19 of 24 with no net loss by eye. Thumbnails
(182 px wide) are still enlarged 2.6x."""
RETRY_SIDE = 736
"""When the catalogue title is known but the lines do not read as it (``RETRY_BELOW``), each line
is read again in every crop of ``TITLE_CROPS`` (a box that clips a letter or leaves one out,
letters too small for the recognizer's resize), and if that does not do, DBNet looks again at
this side and the lines it adds are read too: large stylised or textured titles on thumbnails
are often found only at the larger scale."""
TITLE_CROPS = (
    Crop(),
    Crop(0.1),
    Crop(0.25),
    Crop(0.1, along=0.4),
    Crop(0.1, along=1.0),
    Crop(enlarged=True),
    Crop(0.1, enlarged=True),
)
"""The crops each line is read in when the catalogue title was not read surely: grown (a clipped
edge), lengthened along the baseline (a letter outside the box), enlarged (small letters)."""
LENGTHENED_OVERLAP = 0.25
"""A read in a crop lengthened along the baseline counts only when no other detected line has more
than this fraction of its box inside the lengthened quad's box: the letters it adds must be
outside every other line (a word beside the title would be erased with it)."""
RETRY_BELOW = 0.8
"""Similarity to the catalogue title under which the lines are read again and, failing that,
detected again at ``RETRY_SIDE``."""
SAME_ROW = 0.5
"""Lines whose letters overlap vertically by more than this fraction of the smaller letter height
are one row of text (on a tuning sample of real posters 0.4 to 0.7 read the same titles)."""
NEW_LINE_OVERLAP = 0.5
"""A line of the larger pass is new when less than this fraction of its box lies in a line
already found."""
REGION_SIDE = 240
"""When the lines still do not read as the catalogue title (``RETRY_BELOW``) after the larger pass,
DBNet looks again at each line that reads as part of it, and at the most prominent line, alone: the
line's box (grown by ``REGION_MARGIN``) cut out with its short side scaled to this. At the
poster's scale DBNet takes words set close together (a title stacked over two rows with a small
word beside them, "BOY / MEETS / GIRL") as one line, which the recognizer then reads as a jumble;
at the region's scale it finds the words apart. On the tuning samples of bench/bench_localize.py
180 px found the same titles and 320 px fewer."""
REGION_MARGIN = 0.3
"""The margin, in line heights, around a line's box that is cut out for ``REGION_SIDE``."""
ROW_GAP = 0.6
"""A line's box holds two rows of letters when, at a row in the middle of its height
(``ROW_SPLIT_RANGE``), its vertical strokes (the mean horizontal gradient along the row) fall under
this fraction of the weaker of the two rows' peaks above and below it."""
ROW_SPLIT_RANGE = (0.3, 0.7)
"""Where, as fractions of a line's height from its top, the gap between two stacked rows is looked for."""
MIN_TITLE_HEIGHT = 0.025
"""A title shorter than this fraction of the poster height is not trusted (it is small print)."""
READ_FRACTION = 0.15
"""Lines at least this fraction of the tallest line's height are read by the recognizer (a
subtitle can be a fifth of the main title's height); smaller print is left unread."""
TEXT_MATCH_MIN = 0.6
"""The lines that read best as the catalogue title are taken as the title when their text is at
least this similar to it (normalized Levenshtein); below, the choice falls back to prominence."""
CLEARLY_READ = 0.9
"""A prominence choice whose lines the recognizer reads at least this surely (mean score) ..."""
OTHER_TEXT = 0.3
"""... and whose text is less similar than this to the known catalogue title is other text (a
date, a tagline): the poster is refused rather than that text replaced."""
WHOLE_TITLE_READ = 0.8
"""Title lines chosen by their text whose text is less similar than this to every whole form of
the catalogue title (subtitle included, :func:`localize.match.title_forms`) take in the detected
lines around them that complete it (:func:`_completed`)."""
NEIGHBOURHOOD = 1.0
"""A line completes the title only when most of its box lies within this many heights of the
tallest title line around the title's box (a subtitle under it, a small word between its lines)."""
ARTICLE_MIN_LETTERS = 3
"""A title's article ("the", "les", "der") is looked for beside its lines (:func:`_with_article`) when it has
at least this many letters."""
BY_TEXT, BY_PROMINENCE = "catalogue title", "prominence"


@dataclasses.dataclass(frozen=True)
class TextLine:
    """One detected text line with the evidence used to rank it."""

    quad: tuple[tuple[float, float], ...]
    """Corner points, clockwise from top-left, in image pixels."""
    confidence: float
    """The detector's mean text probability inside the box."""
    height: float
    contrast: float
    prominence: float
    text: str = ""
    """What the recognizer read (empty for lines too small to be read)."""
    text_score: float = 0.0

    @property
    def center(self) -> tuple[float, float]:
        """The mean of the quad's corners."""
        return float(np.mean([p[0] for p in self.quad])), float(np.mean([p[1] for p in self.quad]))

    @property
    def box(self) -> Box:
        xs, ys = [p[0] for p in self.quad], [p[1] for p in self.quad]
        return int(np.floor(min(xs))), int(np.floor(min(ys))), int(np.ceil(max(xs))) + 1, int(np.ceil(max(ys))) + 1


@dataclasses.dataclass(frozen=True)
class Detection:
    """Every detected line (most prominent first) and which of them form the title."""

    lines: tuple[TextLine, ...]
    title: tuple[int, ...]
    """Indices into ``lines`` of the title's lines in reading order (:func:`reading_order`), or for a
    title chosen by its text in the order that spells it when that reads more like it (:func:`choose_by_text`);
    empty when none qualifies."""
    image_size: tuple[int, int]
    how: str = ""
    """``BY_TEXT`` or ``BY_PROMINENCE``: how the title lines were chosen (empty when none were)."""
    match: float = 0.0
    """Similarity of the title lines' text to the catalogue title (0 when unknown)."""
    refusal: str = ""
    """Why no title was chosen though lines were detected (empty when one was, or none qualified)."""

    @property
    def found(self) -> bool:
        return bool(self.title)

    @property
    def text(self) -> str:
        """The title lines' recognized text, in reading order."""
        return " ".join(line.text for line in self.title_lines if line.text)

    @property
    def title_lines(self) -> tuple[TextLine, ...]:
        return tuple(self.lines[i] for i in self.title)

    @property
    def title_box(self) -> Box | None:
        if not self.title:
            return None
        boxes = [line.box for line in self.title_lines]
        width, height = self.image_size
        return (
            max(0, min(b[0] for b in boxes)),
            max(0, min(b[1] for b in boxes)),
            min(width, max(b[2] for b in boxes)),
            min(height, max(b[3] for b in boxes)),
        )

    def describe(self) -> str:
        """A table of the lines and their scores, title lines marked, for debugging."""
        rows = [
            f"{'title' if i in self.title else '':5} box={line.box} h={line.height:.0f} conf={line.confidence:.2f} "
            f"contrast={line.contrast:.2f} prominence={line.prominence:.3f} text={line.text!r} ({line.text_score:.2f})"
            for i, line in enumerate(self.lines)
        ]
        if self.found:
            rows.append(f"chosen by {self.how} (similarity to the catalogue title {self.match:.2f})")
        return "\n".join(rows) or "no text detected"


@functools.lru_cache(maxsize=1)
def db_detector():
    """PP-OCRv4 DBNet from the rapidocr wheel (loaded once per process: ~0.2 s)."""
    from rapidocr_onnxruntime.ch_ppocr_det import TextDetector
    from rapidocr_onnxruntime.main import DEFAULT_CFG_PATH
    from rapidocr_onnxruntime.utils import read_yaml, update_model_path

    config = update_model_path(read_yaml(DEFAULT_CFG_PATH))
    config["Det"]["limit_side_len"] = DETECTION_SIDE
    return TextDetector(config["Det"])


def detect_lines(image: np.ndarray, side: int | None = None) -> list[tuple[np.ndarray, float]]:
    """Text line quads (4x2, clockwise from top-left) and confidences from DBNet, with the
    poster's short side scaled to ``side`` (default: the detector's ``DETECTION_SIDE``).

    ``image`` is RGB uint8; the network was trained on BGR input.
    """
    from rapidocr_onnxruntime.ch_ppocr_det.utils import DetPreProcess

    detector = db_detector()
    bgr = np.ascontiguousarray(image[:, :, ::-1])
    prepared = DetPreProcess(side or detector.limit_side_len, detector.limit_type, detector.mean, detector.std)(bgr)
    if prepared is None:
        return []
    prediction = detector.infer(prepared)[0]
    quads, confidences = detector.postprocess_op(prediction, bgr.shape[:2])
    found = []
    for quad, confidence in zip(quads, confidences):
        quad = detector.clip_det_res(detector.order_points_clockwise(np.asarray(quad, np.float32)), *bgr.shape[:2])
        if np.linalg.norm(quad[0] - quad[1]) > 3 and np.linalg.norm(quad[0] - quad[3]) > 3:
            found.append((quad, float(confidence)))
    return found


def _contrast(gray: np.ndarray, box: Box) -> float:
    """Spread of luminance inside the box (0..1): text on a plain ground is bimodal and wide."""
    x0, y0, x1, y1 = box
    patch = gray[y0:y1, x0:x1]
    if patch.size == 0:
        return 0.0
    low, high = np.percentile(patch, (5, 95))
    return float(high - low) / 255.0


def _line_height(quad: np.ndarray) -> float:
    """The height of the letters: the quad's mean height, or its width for a vertical line."""
    across = float((np.linalg.norm(quad[0] - quad[3]) + np.linalg.norm(quad[1] - quad[2])) / 2)
    along = float((np.linalg.norm(quad[0] - quad[1]) + np.linalg.norm(quad[3] - quad[2])) / 2)
    return along if across >= VERTICAL * along else across


def _rank(image: np.ndarray, found: list[tuple[np.ndarray, float]]) -> list[TextLine]:
    height = image.shape[0]
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    lines = []
    for quad, confidence in found:
        line_height = _line_height(quad)
        box = _box_of(quad)
        contrast = _contrast(gray, box)
        in_credits = quad[:, 1].mean() > height * (1 - CREDITS_BAND)
        prominence = (line_height / height) * confidence * (0.5 + contrast) * (CREDITS_DISCOUNT if in_credits else 1.0)
        lines.append(TextLine(tuple(map(tuple, quad.tolist())), confidence, line_height, contrast, prominence))
    return sorted(lines, key=lambda line: line.prominence, reverse=True)


def _same_block(a: TextLine, b: TextLine) -> bool:
    """Two pieces of one title, both of similar height: lines stacked with a small gap and
    overlapping horizontally, or words of one line that the detector split apart."""
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = a.box, b.box
    if min(a.height, b.height) / max(a.height, b.height) < SAME_HEIGHT:
        return False
    small = min(a.height, b.height)
    vertical_gap, horizontal_gap = max(by0 - ay1, ay0 - by1), max(bx0 - ax1, ax0 - bx1)
    stacked = vertical_gap < 0.8 * small and -horizontal_gap > 0.3 * min(ax1 - ax0, bx1 - bx0)
    side_by_side = -vertical_gap > 0.6 * small and horizontal_gap < 1.0 * small
    return stacked or side_by_side


def text_rows(lines: Sequence[TextLine]) -> list[list[int]]:
    """Indices of ``lines`` grouped into rows of text, top to bottom, each row read from left to
    right. A line's letters span its letter height about its vertical centre; a line joins a row
    when its letters overlap those of one of the row's lines by more than ``SAME_ROW`` of the
    smaller letter height (a small "THE" set beside the big word on its baseline, a line the
    detector split), while slanted lines stacked one under the other, whose boxes overlap but
    whose letters do not, are separate rows."""

    def overlap(a: TextLine, b: TextLine) -> float:
        (_, ya), (_, yb) = a.center, b.center
        return min(ya + a.height / 2, yb + b.height / 2) - max(ya - a.height / 2, yb - b.height / 2)

    rows: list[list[int]] = []
    for i in sorted(range(len(lines)), key=lambda i: lines[i].center[1]):
        line = lines[i]
        if rows and any(overlap(line, lines[j]) > SAME_ROW * min(line.height, lines[j].height) for j in rows[-1]):
            rows[-1].append(i)
        else:
            rows.append([i])
    return [sorted(row, key=lambda i: lines[i].center[0]) for row in rows]


def reading_order(lines: Sequence[TextLine], chosen: Sequence[int]) -> tuple[int, ...]:
    """``chosen`` (indices of ``lines``) in reading order: rows top to bottom (:func:`text_rows`),
    left to right within a row."""
    picked = [lines[i] for i in chosen]
    return tuple(chosen[k] for row in text_rows(picked) for k in row)


def choose_title(lines: list[TextLine], image_size: tuple[int, int]) -> Detection:
    """The most prominent line plus the lines that continue it (grown transitively)."""
    if not lines or lines[0].height < MIN_TITLE_HEIGHT * image_size[1]:
        return Detection(tuple(lines), (), image_size)
    chosen = [0]
    grew = True
    while grew:
        grew = False
        for i, line in enumerate(lines):
            if i not in chosen and any(_same_block(lines[j], line) for j in chosen):
                chosen.append(i)
                grew = True
    return Detection(tuple(lines), reading_order(lines, chosen), image_size, BY_PROMINENCE)


def _readable(lines: Sequence[TextLine]) -> list[int]:
    """Indices of the lines tall enough to be read: ``READ_FRACTION`` of the tallest or more."""
    tallest = max((line.height for line in lines), default=0.0)
    return [i for i, line in enumerate(lines) if line.height >= READ_FRACTION * tallest]


def _read(image: np.ndarray, lines: list[TextLine]) -> list[TextLine]:
    """``lines`` with the text of those tall enough to be read (:func:`_readable`), each read once
    in its own box."""
    readable = _readable(lines)
    texts = read_lines(image, [np.asarray(lines[i].quad, np.float32) for i in readable], margins=(0.0,))
    read = list(lines)
    for i, (text, score) in zip(readable, texts):
        read[i] = dataclasses.replace(lines[i], text=text, text_score=score)
    return read


def _read_as_title(image: np.ndarray, lines: list[TextLine], catalogue_title: str) -> list[TextLine]:
    """``lines`` with the text of those tall enough to be read (:func:`_readable`), each read in
    every crop of ``TITLE_CROPS``: the read that reads as the largest part of ``catalogue_title``
    (:func:`localize.match.part_weight`), the surer on a tie; for a line no read of which reads as
    part of it, the surest read in a crop not lengthened. A read lengthened into another line is
    left out (``LENGTHENED_OVERLAP``); a line whose read was lengthened takes the lengthened quad
    (within the image), so the letters found there are erased with it."""
    readable = _readable(lines)
    reads = read_crops(image, [np.asarray(lines[i].quad, np.float32) for i in readable], TITLE_CROPS)
    height, width = image.shape[:2]
    read = list(lines)
    for i, candidates in zip(readable, reads):
        others = [line.box for j, line in enumerate(lines) if j != i]
        weighed = [
            (part_weight(r.text, catalogue_title), r.score, k)
            for k, r in enumerate(candidates)
            if not TITLE_CROPS[k].along or all(_covered(box, [_box_of(r.quad)]) <= LENGTHENED_OVERLAP for box in others)
        ]
        if not any(weight for weight, _, _ in weighed):
            weighed = [entry for entry in weighed if not TITLE_CROPS[entry[2]].along]
        chosen: Reading = candidates[max(weighed)[2]]
        quad = np.clip(chosen.quad, 0, (width - 1, height - 1))
        read[i] = dataclasses.replace(
            lines[i], quad=tuple(map(tuple, quad.tolist())), text=chosen.text, text_score=chosen.score
        )
    return read


def choose_by_text(lines: list[TextLine], image_size: tuple[int, int], catalogue_title: str) -> Detection | None:
    """The lines whose text reads as ``catalogue_title``, or None when no set of lines is at
    least ``TEXT_MATCH_MIN`` similar to it. They are in reading order unless the order in which
    they spell the title reads more like it (words set on a rising diagonal, where the second
    word's row is above the first's)."""
    spelled, score = match_title([line.text for line in lines], catalogue_title)
    if not spelled or score < TEXT_MATCH_MIN:
        return None
    read = reading_order(lines, spelled)
    if _likeness(_joined(lines, spelled), catalogue_title) > _likeness(_joined(lines, read), catalogue_title):
        read = spelled
    return Detection(tuple(lines), read, image_size, BY_TEXT, score)


def _joined(lines: Sequence[TextLine], order: Sequence[int]) -> str:
    return "".join(lines[i].text for i in order)


def _likeness(read: str, catalogue_title: str, subtitle_optional: bool = True) -> float:
    """Similarity of ``read`` to the closest form of ``catalogue_title`` (:func:`localize.match.title_forms`;
    ``subtitle_optional=False``: its whole forms only)."""
    forms = title_forms(catalogue_title, subtitle_optional)
    return max((similarity(read, form) for form in forms), default=0.0)


def detect_title(image: Image.Image | np.ndarray, catalogue_title: str | None = None) -> Detection:
    """Detect and read every text line of a poster and choose its title: by the catalogue's
    title text when given and read, else by prominence."""
    pixels = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    found = detect_lines(pixels)
    ranked = _rank(pixels, found)
    lines = _read(pixels, ranked)
    size = (pixels.shape[1], pixels.shape[0])
    known = bool(catalogue_title and catalogue_title.strip())
    by_text = choose_by_text(lines, size, catalogue_title) if known else None
    if known and _unsure(by_text):
        lines = _read_as_title(pixels, ranked, catalogue_title)
        by_text = _better(by_text, choose_by_text(lines, size, catalogue_title))
    if known and _unsure(by_text):
        more = _new_lines(found, detect_lines(pixels, RETRY_SIDE))
        if more:
            found, ranked = found + more, _rank(pixels, found + more)
            lines = _read_as_title(pixels, ranked, catalogue_title)
            by_text = _better(by_text, choose_by_text(lines, size, catalogue_title))
    if known and _unsure(by_text):
        split = _split_in_regions(pixels, found, _region_lines(ranked, lines, catalogue_title))
        if split is not found:
            split_lines = _read_as_title(pixels, _rank(pixels, split), catalogue_title)
            by_text = _better(by_text, choose_by_text(split_lines, size, catalogue_title))
    if by_text:
        return _with_article(_completed(by_text, catalogue_title), catalogue_title)
    by_prominence = choose_title(lines, size)
    if catalogue_title and catalogue_title.strip() and by_prominence.found:
        return _unless_other_text(by_prominence, catalogue_title)
    return by_prominence


def _region_lines(ranked: Sequence[TextLine], read: Sequence[TextLine], catalogue_title: str) -> list[np.ndarray]:
    """The detector's quads of the lines worth a closer look for ``catalogue_title``: the most
    prominent line and those whose text reads as part of it (:func:`localize.match.part_weight`).
    ``ranked`` are the detected lines most prominent first (:func:`_rank`), ``read`` the same lines
    read, one for one."""
    return [
        np.asarray(line.quad, np.float32)
        for i, (line, text) in enumerate(zip(ranked, read))
        if i == 0 or part_weight(text.text, catalogue_title) > 0
    ]


def detect_in_region(image: np.ndarray, box: Box, side: int = REGION_SIDE) -> list[tuple[np.ndarray, float]]:
    """DBNet's lines (:func:`detect_lines`) in ``box`` of the RGB ``image`` cut out with its short
    side scaled to ``side``, as quads in the image's pixels; none for an empty box."""
    height, width = image.shape[:2]
    x0, y0, x1, y1 = max(0, box[0]), max(0, box[1]), min(width, box[2]), min(height, box[3])
    if x1 <= x0 or y1 <= y0:
        return []
    region = np.ascontiguousarray(image[y0:y1, x0:x1])
    return [(quad + np.float32([x0, y0]), confidence) for quad, confidence in detect_lines(region, side)]


def _split_in_regions(
    image: np.ndarray, found: list[tuple[np.ndarray, float]], regions: Sequence[np.ndarray]
) -> list[tuple[np.ndarray, float]]:
    """``found`` with each of its lines whose quad is in ``regions`` replaced by the lines DBNet
    finds in it looking at it alone (:func:`detect_in_region`, ``REGION_MARGIN``) that lie mostly
    outside every other line of ``found`` (``NEW_LINE_OVERLAP``), when there are two or more of
    them: words the poster's scale took as one line. When DBNet finds no two, a horizontal line is
    replaced by its two rows when its strokes stop between them (:func:`_stacked_rows`: rows set
    so closely that DBNet takes them as one at any scale). Otherwise the line is kept; ``found``
    itself is returned when no line was split."""
    out = found
    for quad in regions:
        at = next((k for k, (other, _) in enumerate(out) if np.array_equal(other, quad)), None)
        if at is None:
            continue
        region = _expanded(_box_of(quad), round(REGION_MARGIN * _line_height(quad)))
        others = out[:at] + out[at + 1 :]
        parts = _new_lines(others, detect_in_region(image, region))
        if len(parts) < 2 and not is_vertical(quad):
            parts = [(row, out[at][1]) for row in _stacked_rows(image, quad)]
        if len(parts) >= 2:
            out = others + parts
    return out


def _stroke_profile(image: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """The mean absolute horizontal gradient of each row of ``quad``'s upright strip, top to bottom."""
    gray = cv2.cvtColor(upright_crop(image, quad), cv2.COLOR_RGB2GRAY).astype(np.float32)
    return np.abs(cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)).mean(axis=1)


def _stacked_rows(image: np.ndarray, quad: np.ndarray) -> list[np.ndarray]:
    """``quad`` (horizontal, 4x2 clockwise from top-left) cut along its baseline into its two rows of
    letters when the strokes fall between them (``ROW_GAP``, ``ROW_SPLIT_RANGE``): two lines set one
    on the other so closely that DBNet took them as one; else no quads."""
    profile = _stroke_profile(image, quad)
    rows = len(profile)
    low, high = int(ROW_SPLIT_RANGE[0] * rows), int(np.ceil(ROW_SPLIT_RANGE[1] * rows))
    if rows < 6 or high <= low:
        return []
    gap = low + int(np.argmin(profile[low:high]))
    if profile[gap] >= ROW_GAP * min(profile[:gap].max(), profile[gap + 1 :].max()):
        return []
    t = (gap + 0.5) / rows
    top, bottom = quad[0] + t * (quad[3] - quad[0]), quad[1] + t * (quad[2] - quad[1])
    return [np.float32([quad[0], quad[1], bottom, top]), np.float32([top, bottom, quad[2], quad[3]])]


def _lines_near_title(detection: Detection) -> list[int]:
    """Indices of the lines not in ``detection``'s title with most of their box near the title's box
    (``NEIGHBOURHOOD``)."""
    near = _expanded(detection.title_box, NEIGHBOURHOOD * max(line.height for line in detection.title_lines))
    return [
        i for i, line in enumerate(detection.lines) if i not in detection.title and _covered(line.box, [near]) >= 0.5
    ]


def _neighbours(detection: Detection, catalogue_title: str) -> list[int]:
    """The lines near the title (:func:`_lines_near_title`) that read as part of ``catalogue_title``
    (:func:`localize.match.part_weight`)."""
    return [i for i in _lines_near_title(detection) if part_weight(detection.lines[i].text, catalogue_title) > 0]


def _completed(detection: Detection, catalogue_title: str) -> Detection:
    """``detection`` (title lines chosen by their text) with the neighbouring lines
    (:func:`_neighbours`) that complete its text, when it does not read as the whole
    ``catalogue_title`` (``WHOLE_TITLE_READ``): words the matching left out, a subtitle the
    poster sets smaller. One line at a time, the line whose addition (all lines in reading order)
    reads most like the whole title is added, while that is more like it than without."""
    lines = detection.lines
    title = detection.title
    best = _likeness(_joined(lines, title), catalogue_title, subtitle_optional=False)
    if best >= WHOLE_TITLE_READ:
        return detection
    candidates = _neighbours(detection, catalogue_title)
    while candidates:
        orders = {i: reading_order(lines, (*title, i)) for i in candidates}
        likeness = {
            i: _likeness(_joined(lines, order), catalogue_title, subtitle_optional=False) for i, order in orders.items()
        }
        chosen = max(candidates, key=likeness.__getitem__)
        if likeness[chosen] <= best:
            break
        title, best = orders[chosen], likeness[chosen]
        candidates.remove(chosen)
    if title == detection.title:
        return detection
    return dataclasses.replace(detection, title=title, match=_likeness(_joined(lines, title), catalogue_title))


def _with_article(detection: Detection, catalogue_title: str) -> Detection:
    """``detection`` (title lines chosen by their text) with the line before its title that reads as the
    title's article, one letter misread at most (a small "THE" above the big words read as "THL"), when its
    lines read as the title without the article. Only articles of ``ARTICLE_MIN_LETTERS`` letters or more are
    looked for: a shorter one would match stray letters."""
    article = title_article(catalogue_title)
    lines, title = detection.lines, detection.title
    if not article or len(article) < ARTICLE_MIN_LETTERS or normalized(_joined(lines, title)).startswith(article):
        return detection
    first = lines[title[0]].center
    candidates = [
        i
        for i in _lines_near_title(detection)
        if Levenshtein.distance(normalized(lines[i].text), article) <= 1 and reading_order(lines, (*title, i))[0] == i
    ]
    if not candidates:
        return detection
    closest = min(candidates, key=lambda i: float(np.hypot(*np.subtract(lines[i].center, first))))
    title = reading_order(lines, (*title, closest))
    return dataclasses.replace(detection, title=title, match=_likeness(_joined(lines, title), catalogue_title))


def _unsure(detection: Detection | None) -> bool:
    return detection is None or detection.match < RETRY_BELOW


def _better(detection: Detection | None, retried: Detection | None) -> Detection | None:
    if retried and (detection is None or retried.match > detection.match):
        return retried
    return detection


def _box_of(quad: np.ndarray) -> Box:
    return int(quad[:, 0].min()), int(quad[:, 1].min()), int(quad[:, 0].max()) + 1, int(quad[:, 1].max()) + 1


def _new_lines(
    found: list[tuple[np.ndarray, float]], more: list[tuple[np.ndarray, float]]
) -> list[tuple[np.ndarray, float]]:
    """The lines of ``more`` that lie mostly outside every line of ``found`` (``NEW_LINE_OVERLAP``)."""
    boxes = [_box_of(quad) for quad, _ in found]
    return [(quad, confidence) for quad, confidence in more if _covered(_box_of(quad), boxes) < NEW_LINE_OVERLAP]


def _expanded(box: Box, reach: float) -> Box:
    """``box`` grown by ``reach`` pixels on every side (truncated to whole pixels)."""
    x0, y0, x1, y1 = box
    return int(x0 - reach), int(y0 - reach), int(x1 + reach), int(y1 + reach)


def _covered(box: Box, boxes: Sequence[Box]) -> float:
    """The largest fraction of ``box``'s area that lies inside one of ``boxes`` (0 when none)."""
    area = max(1, (box[2] - box[0]) * (box[3] - box[1]))
    return max(
        (
            max(0, min(box[2], b[2]) - max(box[0], b[0])) * max(0, min(box[3], b[3]) - max(box[1], b[1])) / area
            for b in boxes
        ),
        default=0.0,
    )


def _unless_other_text(detection: Detection, catalogue_title: str) -> Detection:
    """``detection`` without its title when its lines clearly read as something else than
    ``catalogue_title`` (``CLEARLY_READ``, ``OTHER_TEXT``)."""
    lines = detection.title_lines
    sure = float(np.mean([line.text_score for line in lines]))
    read = "".join(line.text for line in lines)
    if sure < CLEARLY_READ or len(normalized(read)) < 3 or _likeness(read, catalogue_title) >= OTHER_TEXT:
        return detection
    reason = f"the most prominent text reads {detection.text!r} (score {sure:.2f}), not the title {catalogue_title!r}"
    return dataclasses.replace(detection, title=(), how="", refusal=reason)
