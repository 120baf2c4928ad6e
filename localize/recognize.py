"""Reading detected text lines with PP-OCRv4's recognizer, the one the ``rapidocr-onnxruntime``
wheel ships beside DBNet (CTC over Chinese and Latin characters, ONNX on CPU).

Each line's quad is warped to an upright strip first, as rapidocr does, so a
slanted title is read along its baseline.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import cv2
import numpy as np


@functools.lru_cache(maxsize=1)
def text_recognizer():
    """The PP-OCRv4 recognizer from the rapidocr wheel (loaded once per process)."""
    from rapidocr_onnxruntime.ch_ppocr_rec import TextRecognizer
    from rapidocr_onnxruntime.main import DEFAULT_CFG_PATH
    from rapidocr_onnxruntime.utils import read_yaml, update_model_path

    return TextRecognizer(update_model_path(read_yaml(DEFAULT_CFG_PATH))["Rec"])


def upright_crop(image: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """The pixels inside ``quad`` (4x2, clockwise from top-left) warped to an axis-aligned strip."""
    quad = np.asarray(quad, np.float32)
    width = max(1, round(max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[3] - quad[2]))))
    height = max(1, round(max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2]))))
    target = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    warp = cv2.getPerspectiveTransform(quad, target)
    return cv2.warpPerspective(image, warp, (width, height), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC)


def read_lines(image: np.ndarray, quads: Sequence[np.ndarray]) -> list[tuple[str, float]]:
    """The text and recognition score (0..1) of each quad of the RGB ``image``, in order."""
    if not quads:
        return []
    bgr = np.ascontiguousarray(image[:, :, ::-1])
    results = text_recognizer()([upright_crop(bgr, quad) for quad in quads])[0]
    return [(str(text), float(score)) for text, score in results]
