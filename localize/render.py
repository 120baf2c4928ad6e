"""Setting the localized title where the old one was, in its colour, legible on the new ground.

The colour is the original title's fill colour: the pixels that inpainting
changed are the glyphs with their outline, shadow or glow, and of two colour
clusters among them the fill is the one with the thicker strokes. Legibility is judged by
the WCAG contrast ratio between that colour and the inpainted background under
the box (its darkest and lightest typical colours, so a title spanning both stays
legible on each): below ``OUTLINE_BELOW`` the title gets an outline, below
``SHADOW_BELOW`` a soft shadow, in black or white, whichever stands out more.
"""

from __future__ import annotations

import dataclasses
import unicodedata

import cv2
import numpy as np
from PIL import Image

from .fonts import face_for, missing_characters
from .typeset import RGB, Box, Layout, TextStyle, draw_layout, fit_text

OUTLINE_BELOW = 3.0
SHADOW_BELOW = 4.5
TITLE_WEIGHT = 800
MIN_SIZE_FRACTION = 0.35
"""A localized title smaller than this fraction of the original line height is refused as
unreadable: the poster is skipped with "does not fit" instead."""
MIN_SIZE_OF_POSTER = 0.02
"""Nor smaller than this fraction of the poster height (12 px on a 600 px poster)."""
MIN_WIDTH_OF_POSTER = 0.8
"""A title box narrower than this fraction of the poster is widened (about its centre) before
fitting: translations run longer than the original, and a designer resetting a title would
use the poster's width rather than shrink the text to a thumbnail."""


class CannotFit(ValueError):
    """The localized title does not fit the original title box at a readable size."""


class MissingGlyphs(ValueError):
    """The font for the title's language cannot draw some of its characters (drawn, they would be empty boxes)."""


def _likely_cause(missing: str, language: str) -> str:
    """Why a title has characters its language's font lacks: letters of another script (a mistyped language
    code), or symbols no title font has (emoji)."""
    if any(unicodedata.category(ch)[0] in "LM" for ch in missing):
        return (
            f"is the title written in {language!r}, and is that its BCP-47 code (Latin, Greek and Cyrillic languages, "
            "ar, fa, ur, he, hi, mr, ne, th, ja, ko, zh)?"
        )
    return "symbols such as emoji cannot be set in a title; leave them out"


@dataclasses.dataclass(frozen=True)
class Rendered:
    image: Image.Image
    layout: Layout
    style: TextStyle
    box: Box
    """The region the title was fitted into: the title box, widened if it was narrow."""
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
        cluster_mask[ink] = labels.ravel() == cluster
        depth = cv2.distanceTransform(cluster_mask, cv2.DIST_L2, 3)
        thickness.append(depth[cluster_mask > 0].mean() if cluster_mask.any() else 0.0)
    return tuple(int(round(c)) for c in centers[int(np.argmax(thickness))])


def legible_style(fill: RGB, grounds: list[RGB], weight: int = TITLE_WEIGHT) -> TextStyle:
    """The title style with an outline or shadow only where the contrast against the least
    contrasting of ``grounds`` needs it."""
    ratio = min(contrast_ratio(fill, ground) for ground in grounds)
    if ratio >= SHADOW_BELOW:
        return TextStyle(fill=fill, weight=weight)
    effect_color = max(((0, 0, 0), (255, 255, 255)), key=lambda c: contrast_ratio(c, fill))
    return TextStyle(
        fill=fill, effect="outline" if ratio < OUTLINE_BELOW else "shadow", effect_color=effect_color, weight=weight
    )


def ground_colors(background: np.ndarray, region: Box) -> list[RGB]:
    """The darkest and lightest typical colours under the region (10th and 90th luminance
    percentile): a title crossing both a dark and a light area must be legible on each."""
    x0, y0, x1, y1 = region
    pixels = background[y0:y1, x0:x1].reshape(-1, 3)
    order = np.argsort(pixels @ np.array([0.299, 0.587, 0.114]))
    return [tuple(int(c) for c in pixels[order[int(q * (len(order) - 1))]]) for q in (0.1, 0.9)]


def fit_region(box: Box, image_width: int, align: str = "center") -> Box:
    """The title box, widened to ``MIN_WIDTH_OF_POSTER`` of the poster if narrower: about its
    centre, or away from the edge a left or right aligned title keeps."""
    x0, y0, x1, y1 = box
    width = max(x1 - x0, min(image_width, round(MIN_WIDTH_OF_POSTER * image_width)))
    start = {"left": x0, "right": x1 - width}.get(align, (x0 + x1 - width) // 2)
    left = min(max(0, start), image_width - width)
    return left, y0, left + width, y1


def render_title(
    background: np.ndarray,
    box: Box,
    title: str,
    language: str,
    fill: RGB,
    line_height: float,
    weight: int = TITLE_WEIGHT,
    upper: bool = False,
    align: str = "center",
    rows: int = 1,
    serif: bool = False,
) -> Rendered:
    """Draw ``title`` into the fit region of ``box`` on the inpainted ``background``.

    ``line_height`` (the original title's line height) sets the start size, so a
    translation comes out as large as the original where it fits; ``weight``,
    ``upper`` (all capitals), ``align``, ``rows`` (lines of text) and ``serif``
    (Noto Serif where the script has it) copy the original's setting.

    Raises:
        CannotFit: the title does not fit the region at a readable size.
        MissingGlyphs: the font for ``language`` has no glyphs for some of the title's characters (a title
            in another script than its language code says, an emoji).
    """
    if upper:
        title = title.upper()
    face = face_for(language, serif)
    missing = missing_characters(face, title)
    if missing:
        raise MissingGlyphs(
            f"the font for language {language!r} ({face.path.name}) has no glyphs for {missing!r}: {_likely_cause(missing, language)}"
        )
    region = fit_region(box, background.shape[1], align)
    x0, y0, x1, y1 = region
    style = legible_style(fill, ground_colors(background, region), weight)
    minimum = max(1, round(max(line_height * MIN_SIZE_FRACTION, background.shape[0] * MIN_SIZE_OF_POSTER)))
    start = max(minimum, round(line_height))
    layout = fit_text(title, face, x1 - x0, y1 - y0, style, language, start, min_size=minimum, rows=rows)
    if layout is None:
        raise CannotFit(f"{title!r} does not fit the {x1 - x0}x{y1 - y0} px title region at {minimum} px or larger")
    image = Image.fromarray(background)
    ink = draw_layout(image, layout, region, style, align)
    return Rendered(image, layout, style, region, ink)
