"""Reading detected text lines with PP-OCRv4's recognizer, the one the ``rapidocr-onnxruntime``
wheel ships beside DBNet (CTC over Chinese and Latin characters, ONNX on CPU).

Each line's quad is warped to an upright strip first, as rapidocr does, so a
slanted title is read along its baseline, and a strip much taller than wide (a
vertical line of credits) is read turned both ways, the surer read kept. DBNet's boxes on
a small poster often clip the first or last letter's edge ("OANTA" for "SANTA"),
so a line not read surely (``SURE_READ``) is read again with its quad grown by a
few margins (``READ_MARGINS``) and the most surely read text is kept.
"""

from __future__ import annotations

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


def upright_crop(image: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """The pixels inside ``quad`` (4x2, clockwise from top-left) warped to an axis-aligned strip."""
    quad = np.asarray(quad, np.float32)
    width = max(1, round(max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[3] - quad[2]))))
    height = max(1, round(max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2]))))
    target = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    warp = cv2.getPerspectiveTransform(quad, target)
    return cv2.warpPerspective(image, warp, (width, height), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC)


def _readings(strip: np.ndarray) -> list[np.ndarray]:
    """``strip`` as the recognizer should see it: as is, or a vertical line turned both ways."""
    if strip.shape[0] < VERTICAL * strip.shape[1]:
        return [strip]
    return [np.ascontiguousarray(np.rot90(strip, 1)), np.ascontiguousarray(np.rot90(strip, -1))]


def read_lines(
    image: np.ndarray, quads: Sequence[np.ndarray], margins: Sequence[float] = READ_MARGINS
) -> list[tuple[str, float]]:
    """The text and recognition score (0..1) of each quad of the RGB ``image``, in order: the
    best-scoring read over the quad grown by each of ``margins`` in turn, until it is sure."""
    if not quads:
        return []
    bgr = np.ascontiguousarray(image[:, :, ::-1])
    best = [("", -1.0)] * len(quads)
    for margin in margins:
        owners, crops = [], []
        for i, quad in enumerate(quads):
            if best[i][1] >= SURE_READ:
                continue
            for crop in _readings(upright_crop(bgr, grown(quad, margin))):
                owners.append(i)
                crops.append(crop)
        if not crops:
            break
        for i, (text, score) in zip(owners, text_recognizer()(crops)[0]):
            if float(score) > best[i][1]:
                best[i] = (str(text), float(score))
    return [(text, max(score, 0.0)) for text, score in best]
