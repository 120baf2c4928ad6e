"""The original title's style, read from its pixels: what the localized title copies.

- weight: the glyphs' stroke width (twice the 90th percentile of the ink's
  distance transform) over the line height, mapped linearly onto the variable
  fonts' weight axis; calibrated on Noto Sans set at weights 300 to 900 and
  detected by DBNet (an all-caps line's box is its cap height, a mixed-case
  line's about 1.5 times that, so the latter is scaled back);
- family class: serif when the stroke width along the glyphs' skeleton varies as
  much as a serif face's thick and thin strokes do (coefficient of variation of
  the distance transform on the skeleton, calibrated on Noto Sans and Noto
  Serif at weights 400 to 900), else sans; strokes too thin to measure are sans;
- case: all capitals when every letter the recognizer read is a capital;
- alignment: the edge the title's lines share (left, right) when they are set
  on several lines with ragged other edges, else centred;
- rows: how many lines of text the title is set on (pieces side by side on
  one baseline, as the detector may split a line, count once).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from .detect import Detection, text_rows
from .render import title_color
from .typeset import RGB

WEIGHT_AT = (0.087, 300)
WEIGHT_PER_STROKE = 3620
"""Weight axis units per unit of stroke width / cap height (300 at 0.087, 800 at 0.225)."""
MIXED_CASE_HEIGHT = 1.5
"""A mixed-case line's box height over its cap height (ascenders and descenders)."""
SERIF_CONTRAST = 0.2
"""Coefficient of variation of the stroke width along the skeleton from which a title is serif
(on glyphs 4 px or more thick: Noto Sans 0.08-0.19, Noto Serif 0.21-0.44 at weights 400-900)."""
MIN_STROKE_FOR_CLASS = 3.0
"""Median stroke width (px) below which the family class cannot be told and sans is kept."""
EDGE_TOLERANCE = 0.15
"""Line edges within this fraction of the line height count as aligned."""
MAIN_ROW_HEIGHT = 0.5
"""A row of the title counts in its line structure when its tallest line is at least this fraction of the
title's tallest: a small "THE" above the big words does not set the new title on one more line."""


@dataclasses.dataclass(frozen=True)
class TitleLook:
    """How the original title is set."""

    fill: RGB
    weight: int = 800
    upper: bool = False
    align: str = "center"
    rows: int = 1
    serif: bool = False


def _all_caps(text: str) -> bool:
    letters = [ch for ch in text if ch.isalpha() and ch.upper() != ch.lower()]
    return len(letters) >= 2 and all(ch.isupper() for ch in letters)


def _ink(original: np.ndarray, background: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The glyph pixels: under ``mask`` and clearly changed by inpainting."""
    return (mask > 0) & (np.abs(original.astype(int) - background.astype(int)).sum(axis=2) > 60)


def _serif(ink: np.ndarray) -> bool:
    if ink.sum() < 16:
        return False
    skeleton = cv2.ximgproc.thinning(ink.astype(np.uint8) * 255) > 0
    depth = cv2.distanceTransform(ink.astype(np.uint8), cv2.DIST_L2, 5)[skeleton]
    depth = depth[depth > 0]
    if len(depth) < 16 or 2 * float(np.median(depth)) < MIN_STROKE_FOR_CLASS:
        return False
    return float(np.std(depth) / np.mean(depth)) >= SERIF_CONTRAST


def _weight(original: np.ndarray, background: np.ndarray, mask: np.ndarray, line_height: float, upper: bool) -> int:
    ink = _ink(original, background, mask)
    if ink.sum() < 16:
        return 800
    depth = cv2.distanceTransform(ink.astype(np.uint8), cv2.DIST_L2, 3)
    stroke = 2 * float(np.percentile(depth[ink], 90)) / line_height * (1.0 if upper else MIXED_CASE_HEIGHT)
    return int(np.clip(round((WEIGHT_AT[1] + WEIGHT_PER_STROKE * (stroke - WEIGHT_AT[0])) / 50) * 50, 300, 900))


def _alignment(detection: Detection) -> str:
    boxes = [line.box for line in detection.title_lines]
    if len(boxes) < 2:
        return "center"
    height = float(np.median([line.height for line in detection.title_lines]))
    spread = {
        side: np.ptp([edge(box) for box in boxes]) / height
        for side, edge in (("left", lambda b: b[0]), ("right", lambda b: b[2]), ("center", lambda b: (b[0] + b[2]) / 2))
    }
    aligned = min(spread, key=spread.get)
    return aligned if spread[aligned] <= EDGE_TOLERANCE else "center"


def _rows(detection: Detection) -> int:
    """The number of text rows among the title lines (:func:`localize.detect.text_rows`) set in the title's
    main size (``MAIN_ROW_HEIGHT``)."""
    lines = detection.title_lines
    tallest = max(line.height for line in lines)
    main_rows = [row for row in text_rows(lines) if max(lines[i].height for i in row) >= MAIN_ROW_HEIGHT * tallest]
    return max(1, len(main_rows))


def read_look(original: np.ndarray, background: np.ndarray, mask: np.ndarray, detection: Detection) -> TitleLook:
    """The look of ``detection``'s title in ``original``, whose glyphs under ``mask`` were
    replaced by ``background``."""
    upper = _all_caps(detection.text)
    height = float(np.median([line.height for line in detection.title_lines]))
    return TitleLook(
        title_color(original, background, mask),
        _weight(original, background, mask, height, upper),
        upper,
        _alignment(detection),
        _rows(detection),
        _serif(_ink(original, background, mask)),
    )
