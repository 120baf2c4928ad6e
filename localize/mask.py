"""The title mask: the detected title lines, dilated to take anti-aliasing and effects with them.

DBNet's boxes already extend a little past the glyphs (its "unclip" step), but
outlines, drop shadows and glows reach further and would survive inpainting as
a ghost of the old title. The dilation scales with the line height because
effects scale with the font size.
"""

from __future__ import annotations

import cv2
import numpy as np

from .detect import Detection, TextLine

DILATION = 0.25
"""Dilation radius as a fraction of the title's line height."""


def lines_mask(detection: Detection, lines: tuple[TextLine, ...], dilation: float = DILATION) -> np.ndarray:
    """A uint8 mask (255 = text) of ``lines``, dilated in proportion to their height."""
    width, height = detection.image_size
    mask = np.zeros((height, width), np.uint8)
    if not lines:
        return mask
    for line in lines:
        cv2.fillPoly(mask, [np.round(np.asarray(line.quad)).astype(np.int32)], 255)
    radius = max(2, round(dilation * float(np.median([line.height for line in lines]))))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(mask, kernel)


def title_mask(detection: Detection, dilation: float = DILATION) -> np.ndarray:
    """The title's mask; all zeros when no title was found."""
    return lines_mask(detection, detection.title_lines, dilation)


def other_text_mask(detection: Detection) -> np.ndarray:
    """Every detected line that is not the title: patch-based inpainting must not copy from
    there, or fragments of the credits reappear inside the erased title."""
    others = tuple(line for i, line in enumerate(detection.lines) if i not in detection.title)
    return lines_mask(detection, others)


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """The bounding box (right-open) of the mask's set pixels."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1
