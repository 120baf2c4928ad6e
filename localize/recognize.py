"""Reading detected text lines with PP-OCRv4's recognizer, the one the ``rapidocr-onnxruntime``
wheel ships beside DBNet (CTC over Chinese and Latin characters, ONNX on CPU).

Each line's quad is warped to an upright strip first, as rapidocr does, so a
slanted title is read along its baseline, and a strip much taller than wide (a
vertical line of credits) is read turned both ways, the surer read kept. DBNet's boxes on
a small poster often clip the first or last letter's edge ("OANTA" for "SANTA"),
so a line not read surely (``SURE_READ``) is read again with its quad grown by a
few margins (``READ_MARGINS``) and the most surely read text is kept.

A line can also be read in several crops at once (:func:`read_crops`), each read
kept with the region it was read in: lengthened along its baseline (a whole
letter the box left out: the large "G" of "GENERATION"), or its letters enlarged
to the recognizer's input height with cubic interpolation (small or thin letters,
which the recognizer's own linear resize blurs). The recognizer's score does not
tell a read that misses a letter from a complete one, so choosing among them is
left to the caller (:func:`localize.detect.detect_title` picks the read most like
the catalogue title).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import cv2
import numpy as np

READ_MARGINS = (0.0, 0.1, 0.25)
"""Margins (fractions of the line height) a line's quad is grown by before it is read; each
line keeps the read with the highest recognizer score. Measured by bench/bench_localize.py on
real posters."""
SURE_READ = 0.95
"""A line read at least this surely is not read again at the next margin."""
VERTICAL = 1.5
"""A strip at least this much taller than wide is a vertical line, turned before it is read."""
INPUT_HEIGHT = 48
"""The recognizer's input height (PP-OCRv4 ``rec_img_shape``): an enlarged crop is warped to it."""


@dataclasses.dataclass(frozen=True)
class Crop:
    """How a line's quad is cut out for the recognizer."""

    margin: float = 0.0
    """Grown on every edge by this fraction of the line's height (:func:`grown`)."""
    along: float = 0.0
    """First lengthened at both ends of its baseline by this fraction of the line's height (:func:`lengthened`)."""
    enlarged: bool = False
    """Warped straight to ``INPUT_HEIGHT`` with cubic interpolation, not at its own size."""


@dataclasses.dataclass(frozen=True)
class Reading:
    """One read of a line in one crop."""

    text: str
    score: float
    quad: np.ndarray
    """The line's quad lengthened as the crop was (its ``margin`` left out): where the text was read."""


@functools.lru_cache(maxsize=1)
def text_recognizer():
    """The PP-OCRv4 recognizer from the rapidocr wheel (loaded once per process)."""
    from rapidocr_onnxruntime.ch_ppocr_rec import TextRecognizer
    from rapidocr_onnxruntime.main import DEFAULT_CFG_PATH
    from rapidocr_onnxruntime.utils import read_yaml, update_model_path

    return TextRecognizer(update_model_path(read_yaml(DEFAULT_CFG_PATH))["Rec"])


def grown(quad: np.ndarray, margin: float) -> np.ndarray:
    """``quad`` (4x2, clockwise from top-left) pushed out along its own axes by ``margin`` times
    its shorter side on every edge."""
    quad = np.asarray(quad, np.float32)
    across = quad[1] - quad[0], quad[3] - quad[0]
    units = [axis / max(float(np.linalg.norm(axis)), 1e-6) for axis in across]
    side = min(float(np.linalg.norm(quad[0] - quad[1])), float(np.linalg.norm(quad[0] - quad[3])))
    signs = ((-1, -1), (1, -1), (1, 1), (-1, 1))
    return np.float32(
        [corner + margin * side * (sx * units[0] + sy * units[1]) for corner, (sx, sy) in zip(quad, signs)]
    )


def is_vertical(quad: np.ndarray) -> bool:
    """A quad at least ``VERTICAL`` times taller (0->3) than wide (0->1): a vertical line."""
    return float(np.linalg.norm(quad[0] - quad[3])) >= VERTICAL * float(np.linalg.norm(quad[0] - quad[1]))


def lengthened(quad: np.ndarray, along: float) -> np.ndarray:
    """``quad`` (4x2, clockwise from top-left) pushed out at both ends of its baseline (the 0->1
    side, or 0->3 for a vertical line) by ``along`` times the letter height (its other side)."""
    quad = np.asarray(quad, np.float32)
    if not along:
        return quad
    start, end = ((0, 3), (1, 2)) if not is_vertical(quad) else ((0, 1), (3, 2))
    axis = quad[end[0]] - quad[start[0]]
    length = max(float(np.linalg.norm(axis)), 1e-6)
    height = float(np.linalg.norm(quad[start[1]] - quad[start[0]]))
    shift = along * height * axis / length
    out = quad.copy()
    out[list(start)] -= shift
    out[list(end)] += shift
    return out


def upright_crop(image: np.ndarray, quad: np.ndarray, enlarged: bool = False) -> np.ndarray:
    """The pixels inside ``quad`` (4x2, clockwise from top-left) warped to an axis-aligned strip, at
    its own size or (``enlarged``) with its shorter side scaled up to ``INPUT_HEIGHT``."""
    quad = np.asarray(quad, np.float32)
    width = max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[3] - quad[2]))
    height = max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2]))
    scale = max(1.0, INPUT_HEIGHT / max(min(width, height), 1.0)) if enlarged else 1.0
    width, height = max(1, round(width * scale)), max(1, round(height * scale))
    target = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    warp = cv2.getPerspectiveTransform(quad, target)
    return cv2.warpPerspective(image, warp, (width, height), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC)


def _readings(strip: np.ndarray) -> list[np.ndarray]:
    """``strip`` as the recognizer should see it: as is, or a vertical line turned both ways."""
    if strip.shape[0] < VERTICAL * strip.shape[1]:
        return [strip]
    return [np.ascontiguousarray(np.rot90(strip, 1)), np.ascontiguousarray(np.rot90(strip, -1))]


def _strips(bgr: np.ndarray, quad: np.ndarray, crop: Crop) -> list[np.ndarray]:
    """``quad`` of ``bgr`` cut out as ``crop`` says, ready for the recognizer (:func:`_readings`)."""
    return _readings(upright_crop(bgr, grown(lengthened(quad, crop.along), crop.margin), crop.enlarged))


def _surest_reads(bgr: np.ndarray, quads: Sequence[tuple[int, np.ndarray]], crop: Crop) -> dict[int, tuple[str, float]]:
    """The surest read of each ``(index, quad)`` of ``bgr`` cut out as ``crop`` says, by index; the
    strips of all the quads are read as one batch."""
    owners, strips = [], []
    for i, quad in quads:
        for strip in _strips(bgr, quad, crop):
            owners.append(i)
            strips.append(strip)
    best: dict[int, tuple[str, float]] = {}
    if strips:
        for i, (text, score) in zip(owners, text_recognizer()(strips)[0]):
            if i not in best or float(score) > best[i][1]:
                best[i] = (str(text), float(score))
    return best


def read_crops(image: np.ndarray, quads: Sequence[np.ndarray], crops: Sequence[Crop]) -> list[list[Reading]]:
    """Every read of each quad of the RGB ``image``: one per crop of ``crops``, in that order
    (each crop's strips read as one batch)."""
    bgr = np.ascontiguousarray(image[:, :, ::-1])
    reads: list[list[Reading]] = [[] for _ in quads]
    for crop in crops:
        for i, (text, score) in _surest_reads(bgr, list(enumerate(quads)), crop).items():
            reads[i].append(Reading(text, max(score, 0.0), lengthened(quads[i], crop.along)))
    return reads


def read_lines(
    image: np.ndarray, quads: Sequence[np.ndarray], margins: Sequence[float] = READ_MARGINS
) -> list[tuple[str, float]]:
    """The text and recognition score (0..1) of each quad of the RGB ``image``, in order: the
    best-scoring read over the quad grown by each of ``margins`` in turn, until it is sure."""
    bgr = np.ascontiguousarray(image[:, :, ::-1])
    best = [("", -1.0)] * len(quads)
    for margin in margins:
        unsure = [(i, quad) for i, quad in enumerate(quads) if best[i][1] < SURE_READ]
        if not unsure:
            break
        for i, (text, score) in _surest_reads(bgr, unsure, Crop(margin)).items():
            if score > best[i][1]:
                best[i] = (text, score)
    return [(text, max(score, 0.0)) for text, score in best]
