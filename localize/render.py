"""Setting the localized title where the old one was, in its colour, legible on the new ground.

The colour is the original title's dominant ink colour: the pixels that the
inpainting changed most are the glyphs (and their outline or shadow), and the
larger of two colour clusters among them is the fill. Legibility is judged by
the WCAG contrast ratio between that colour and the inpainted background under
the box: below ``OUTLINE_BELOW`` the title gets an outline, below
``SHADOW_BELOW`` a soft shadow, in black or white, whichever stands out more.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
from PIL import Image

from .fonts import face_for
from .typeset import RGB, Box, Layout, TextStyle, draw_layout, fit_text

OUTLINE_BELOW = 3.0
SHADOW_BELOW = 4.5
TITLE_WEIGHT = 800
MIN_SIZE_FRACTION = 0.35
"""A localized title smaller than this fraction of the original line height is refused as
unreadable: the poster is skipped with "does not fit" instead."""
MIN_SIZE = 9


class CannotFit(ValueError):
    """The localized title does not fit the original title box at a readable size."""


@dataclasses.dataclass(frozen=True)
class Rendered:
    image: Image.Image
    layout: Layout
    style: TextStyle
    ink_box: Box


def relative_luminance(color: RGB) -> float:
    channels = np.asarray(color, float) / 255.0
    linear = np.where(channels <= 0.03928, channels / 12.92, ((channels + 0.055) / 1.055) ** 2.4)
    return float(linear @ np.array([0.2126, 0.7152, 0.0722]))


def contrast_ratio(a: RGB, b: RGB) -> float:
    """WCAG 2 contrast ratio, 1 (none) to 21 (black on white)."""
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def title_color(original: np.ndarray, background: np.ndarray, mask: np.ndarray) -> RGB:
    """The fill colour of the glyphs that inpainting removed from under ``mask``.

    Ink is where the original and the inpainted background differ. Its pixels
    fall into two colour clusters, fill and effect (outline, shadow or glow
    rim); the fill is the cluster with the thicker strokes, measured as the
    mean distance transform of the cluster's own mask, since effects are drawn
    as thin rims around the glyphs.
    """
    hole = mask > 0
    difference = np.abs(original.astype(int) - background.astype(int)).sum(axis=2)
    ink = hole & (difference > max(30, np.percentile(difference[hole], 50)))
    if ink.sum() < 16:
        return tuple(int(c) for c in np.median(original[hole], axis=0))
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 1.0)
    cv2.setRNGSeed(0)
    _, labels, centers = cv2.kmeans(original[ink].astype(np.float32), 2, None, criteria, 3, cv2.KMEANS_PP_CENTERS)
    thickness = []
    for cluster in range(2):
        cluster_mask = np.zeros(mask.shape, np.uint8)
        cluster_mask[ink] = (labels.ravel() == cluster)
        depth = cv2.distanceTransform(cluster_mask, cv2.DIST_L2, 3)
        thickness.append(depth[cluster_mask > 0].mean() if cluster_mask.any() else 0.0)
    return tuple(int(round(c)) for c in centers[int(np.argmax(thickness))])


def legible_style(fill: RGB, ground: RGB) -> TextStyle:
    """The title style with an outline or shadow only where the contrast needs it."""
    ratio = contrast_ratio(fill, ground)
    if ratio >= SHADOW_BELOW:
        return TextStyle(fill=fill, weight=TITLE_WEIGHT)
    effect_color = max(((0, 0, 0), (255, 255, 255)), key=lambda c: contrast_ratio(c, fill))
    return TextStyle(fill=fill, effect="outline" if ratio < OUTLINE_BELOW else "shadow", effect_color=effect_color, weight=TITLE_WEIGHT)


def render_title(background: np.ndarray, box: Box, title: str, language: str, fill: RGB, line_height: float) -> Rendered:
    """Draw ``title`` into ``box`` of the inpainted ``background``; raises CannotFit.

    ``line_height`` (the original title's line height) sets the start size, so a
    translation comes out as large as the original where it fits.
    """
    x0, y0, x1, y1 = box
    ground = tuple(int(c) for c in np.median(background[y0:y1, x0:x1].reshape(-1, 3), axis=0))
    style = legible_style(fill, ground)
    face = face_for(language)
    start = max(MIN_SIZE, int(round(line_height)))
    minimum = max(MIN_SIZE, int(round(line_height * MIN_SIZE_FRACTION)))
    layout = fit_text(title, face, x1 - x0, y1 - y0, style, language, start, min_size=minimum)
    if layout is None:
        raise CannotFit(f"{title!r} does not fit the {x1 - x0}x{y1 - y0} px title box at {minimum} px or larger")
    image = Image.fromarray(background)
    ink = draw_layout(image, layout, box, style)
    return Rendered(image, layout, style, ink)
