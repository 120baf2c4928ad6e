"""The title mask: the title's glyph strokes, found by colour against the local background.

Inside each title line's box the glyphs (fill, outline, shadow) are the pixels
whose colour is unlike the background around the box: the ring of pixels just
outside the line, other text excluded, is clustered into a few colours, and a
pixel inside the box is ink when it is farther (CIELAB) from all of them than
the ring's own pixels are from their cluster. The ink is then grown by a
fraction of the line height, which takes anti-aliasing and thin effects with it,
so no ghost of the old title survives, while a shape outside the strokes keeps
its pixels. Every other detected line (a tagline, a name, a date) is protected:
no pixel inside its box, or a small margin around it, is in the mask, unless it
lies mostly inside a title line's box (a small "of the" set between title words). Where the colours cannot separate ink
from ground (almost everything or almost nothing in the box differs from the
ring), that line falls back to its box, dilated.
"""

from __future__ import annotations

import cv2
import numpy as np

from .detect import Detection, TextLine

DILATION = 0.25
"""Box-mask dilation radius as a fraction of the line height (fallback, other text)."""
GROWTH = 0.12
"""Ink-mask growth radius as a fraction of the line height (anti-aliasing, outline, shadow)."""
RING = 0.3
"""Width of the background ring around a line, as a fraction of its height."""
BACKGROUND_COLOURS = 3
"""Colour clusters of the ring (a gradient, a texture, a second tone)."""
INK_MIN, INK_MAX = 0.04, 0.9
"""Ink fractions of a line's box outside which the colours are not trusted to separate."""
MIN_DISTANCE = 12.0
"""Smallest CIELAB distance from the ground colours that counts as ink."""
PROTECT_MARGIN = 0.15
"""Margin around another text line kept out of the mask, as a fraction of that line's height."""
INSIDE_TITLE = 0.5
"""A line with more than this fraction of its box inside the title lines' boxes is erased with them."""


def _polygon(shape: tuple[int, int], line: TextLine) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(np.asarray(line.quad)).astype(np.int32)], 255)
    return mask


def _disc(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def lines_mask(detection: Detection, lines: tuple[TextLine, ...], dilation: float = DILATION) -> np.ndarray:
    """A uint8 mask (255 = text) of the boxes of ``lines``, dilated in proportion to their height."""
    width, height = detection.image_size
    mask = np.zeros((height, width), np.uint8)
    if not lines:
        return mask
    for line in lines:
        mask |= _polygon(mask.shape, line)
    radius = max(2, round(dilation * float(np.median([line.height for line in lines]))))
    return cv2.dilate(mask, _disc(radius))


def _ink(lab: np.ndarray, core: np.ndarray, ring: np.ndarray) -> np.ndarray | None:
    """Pixels of ``core`` unlike every ground colour of ``ring``; None when they cannot be told apart."""
    ground = lab[ring > 0].astype(np.float32)
    inside = core > 0
    if len(ground) < 8 or not inside.any():
        return None
    count = min(BACKGROUND_COLOURS, len(ground))
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    cv2.setRNGSeed(0)
    _, labels, centres = cv2.kmeans(ground, count, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
    spread = np.linalg.norm(ground - centres[labels.ravel()], axis=1)
    threshold = max(MIN_DISTANCE, 2.0 * float(np.percentile(spread, 90)))
    pixels = lab[inside].astype(np.float32)
    distance = np.min(np.linalg.norm(pixels[:, None, :] - centres[None, :, :], axis=2), axis=1)
    ink = np.zeros(core.shape, bool)
    ink[inside] = distance > threshold
    fraction = ink.sum() / inside.sum()
    return ink if INK_MIN <= fraction <= INK_MAX else None


def glyph_mask(image: np.ndarray, detection: Detection, lines: tuple[TextLine, ...]) -> np.ndarray:
    """A uint8 mask (255 = ink) of the glyphs of ``lines`` in the RGB ``image``, grown by
    ``GROWTH`` of the line height; a line whose ink cannot be told from its ground is its box."""
    shape = image.shape[:2]
    mask = np.zeros(shape, np.uint8)
    if not lines:
        return mask
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)
    every_line = lines_mask(detection, detection.lines, dilation=0.1)
    other_lines = np.zeros(shape, np.uint8)
    for line in detection.lines:
        if line not in lines:
            other_lines |= _polygon(shape, line)
    for line in lines:
        box = _polygon(shape, line)
        core = cv2.dilate(box, _disc(max(1, round(0.1 * line.height))))
        outer = cv2.dilate(core, _disc(max(2, round(RING * line.height))))
        ring = outer & ~core & ~every_line
        ink = _ink(lab, core, ring)
        if ink is None:
            mask |= cv2.dilate(box, _disc(max(2, round(DILATION * line.height))))
            continue
        grown = cv2.dilate(ink.astype(np.uint8) * 255, _disc(max(1, round(GROWTH * line.height))))
        mask |= grown & outer & (core | ~other_lines)  # growth stops at a neighbouring line
    return mask & ~protected_text(detection, lines)


def protected_text(detection: Detection, lines: tuple[TextLine, ...]) -> np.ndarray:
    """A uint8 mask (255 = keep) of the detected lines other than ``lines``, each grown by
    ``PROTECT_MARGIN`` of its height, leaving out those mostly inside ``lines``' own boxes."""
    width, height = detection.image_size
    keep = np.zeros((height, width), np.uint8)
    title = np.zeros_like(keep)
    for line in lines:
        title |= _polygon(keep.shape, line)
    for line in detection.lines:
        if line in lines:
            continue
        own = _polygon(keep.shape, line)
        if own.any() and (title[own > 0] > 0).mean() > INSIDE_TITLE:
            continue
        keep |= cv2.dilate(own, _disc(max(1, round(PROTECT_MARGIN * line.height))))
    return keep


def title_mask(detection: Detection, image: np.ndarray | None = None) -> np.ndarray:
    """The title's mask: its glyphs when ``image`` is given, else its boxes dilated; all zeros
    when no title was found."""
    if image is None:
        return lines_mask(detection, detection.title_lines)
    return glyph_mask(image, detection, detection.title_lines)


def other_text_mask(detection: Detection) -> np.ndarray:
    """Every detected line that is not the title: patch-based inpainting must not copy from
    there, or fragments of the credits reappear inside the erased title."""
    others = tuple(line for i, line in enumerate(detection.lines) if i not in detection.title)
    return lines_mask(detection, others)
