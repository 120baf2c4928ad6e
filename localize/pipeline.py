"""One poster through the whole localizer: detect, mask, inpaint once, then render per language.

Cleaning (detection, mask, inpainting) depends only on the poster, so the batch
job does it once and renders every region's title onto the same clean
background.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .detect import Detection, detect_title
from .inpaint import DEFAULT_METHOD, inpaint
from .mask import other_text_mask, title_mask
from .render import Rendered, render_title
from .style import TitleLook, read_look
from .typeset import Box

MIN_POSTER_SIDE = 32
MAX_POSTER_ASPECT = 4.0
"""The detector scales the short side to hundreds of pixels: a sliver of an image (2x900 px) would
become hundreds of thousands of pixels long, so such images are refused before detection."""


class NoTitle(ValueError):
    """No detected text line qualifies as the poster's title."""


class NotAPoster(ValueError):
    """The image is too small or too elongated to be a poster."""


def check_poster_shape(width: int, height: int) -> None:
    """Raises NotAPoster when a side is under ``MIN_POSTER_SIDE`` px or the aspect ratio is over
    ``MAX_POSTER_ASPECT``."""
    short, long = sorted((width, height))
    if short < MIN_POSTER_SIDE:
        raise NotAPoster(f"{width}x{height} px: a side is under {MIN_POSTER_SIDE} px")
    if long > MAX_POSTER_ASPECT * short:
        raise NotAPoster(f"{width}x{height} px: more elongated than {MAX_POSTER_ASPECT:g}:1")


@dataclasses.dataclass(frozen=True)
class CleanPoster:
    """A poster with its title found and removed: everything rendering needs."""

    original: np.ndarray
    detection: Detection
    mask: np.ndarray
    background: np.ndarray
    look: TitleLook

    @property
    def box(self) -> Box:
        return self.detection.title_box

    @property
    def line_height(self) -> float:
        return max(line.height for line in self.detection.title_lines)


def clean_poster(image: Image.Image, method: str = DEFAULT_METHOD, catalogue_title: str | None = None) -> CleanPoster:
    """Detect (by ``catalogue_title`` when given), mask and inpaint the title of ``image``.

    Raises:
      NotAPoster: the image is too small or too elongated (:func:`check_poster_shape`).
      NoTitle: no title was found, with the detector's view.
    """
    check_poster_shape(*image.size)
    original = np.asarray(image.convert("RGB"))
    detection = detect_title(original, catalogue_title)
    if not detection.found:
        raise NoTitle(detection.refusal or f"no title found among {len(detection.lines)} detected text line(s)")
    mask = title_mask(detection, original)
    if not mask.any():
        raise NoTitle(f"no glyph pixels to erase in the title box {detection.title_box}")
    background = inpaint(original, mask, method, exclude=other_text_mask(detection))
    return CleanPoster(original, detection, mask, background, read_look(original, background, mask, detection))


def localize(clean: CleanPoster, title: str, language: str) -> Rendered:
    """The regional variant: ``title`` in ``language`` set into the cleaned poster's title box."""
    look = clean.look
    return render_title(
        clean.background,
        clean.box,
        title,
        language,
        look.fill,
        clean.line_height,
        look.weight,
        look.upper,
        look.align,
        look.rows,
        look.serif,
    )


def before_after(clean: CleanPoster, rendered: Rendered, show_boxes: bool = True) -> Image.Image:
    """Original (with every detected line boxed, the title in green) beside the variant."""
    before = Image.fromarray(clean.original)
    if show_boxes:
        draw = ImageDraw.Draw(before)
        for i, line in enumerate(clean.detection.lines):
            chosen = i in clean.detection.title
            draw.polygon(
                [tuple(p) for p in line.quad],
                outline=(0, 230, 0) if chosen else (255, 60, 200),
                width=2 if chosen else 1,
            )
    width, height = before.size
    sheet = Image.new("RGB", (2 * width + 8, height), (255, 255, 255))
    sheet.paste(before, (0, 0))
    sheet.paste(rendered.image, (width + 8, 0))
    return sheet


CAPTION_FRACTION = 0.06
"""The height of a review sheet's caption band, as a fraction of the poster's height."""


def review_sheet(clean: CleanPoster, variants: list[tuple[str, Image.Image]]) -> Image.Image:
    """Original (title lines boxed), the erase mask over the dimmed original, then each variant, side by
    side, each captioned (a variant by its label, e.g. ``"DE de"``): what a content team checks before
    publishing."""
    before = Image.fromarray(clean.original)
    draw = ImageDraw.Draw(before)
    for line in clean.detection.title_lines:
        draw.polygon([tuple(p) for p in line.quad], outline=(0, 230, 0), width=2)
    mask = (clean.original * 0.45).astype(np.uint8)
    mask[clean.mask > 0] = (255, 0, 200)
    tiles = [("original", before), ("erase mask", Image.fromarray(mask)), *variants]
    width, height = before.size
    caption = max(12, round(height * CAPTION_FRACTION))
    sheet = Image.new("RGB", (len(tiles) * (width + 8) - 8, height + caption), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=round(caption * 0.7))
    for i, (label, tile) in enumerate(tiles):
        sheet.paste(tile.convert("RGB"), (i * (width + 8), 0))
        draw.text((i * (width + 8) + 2, height + caption // 2), label, fill=(0, 0, 0), font=font, anchor="lm")
    return sheet
