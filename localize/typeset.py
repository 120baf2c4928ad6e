"""Typesetting a title into a box: fit (shrink, then wrap), and draw with an effect.

Shared by the demo corpus (which sets the original English titles) and the
localizer (which sets the translated ones), so both agree on what "fits" means.
Text is shaped by Pillow's raqm layout (HarfBuzz + FriBiDi): Arabic letters
join and runs go right to left, Devanagari conjuncts and Thai marks stack, so
this module never reorders characters itself.
"""

from __future__ import annotations

import dataclasses
import unicodedata

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from .fonts import FontFace, base_language, load_font

RGB = tuple[int, int, int]
Box = tuple[int, int, int, int]
EFFECTS = ("none", "shadow", "outline", "glow")
LINE_PITCH = 1.18
"""Baseline-to-baseline distance as a multiple of the font size."""
SHRINK_FLOOR = 0.6
"""Shrink a one-line title down to this fraction of its start size before wrapping it."""
_NO_SPACE_SCRIPTS = ("ja", "zh", "th")


@dataclasses.dataclass(frozen=True)
class TextStyle:
    """How a title looks: colour, weight/width axes, and the effect that keeps it legible."""

    fill: RGB
    effect: str = "none"
    effect_color: RGB = (0, 0, 0)
    weight: int = 700
    width: int = 100

    def __post_init__(self) -> None:
        if self.effect not in EFFECTS:
            raise ValueError(f"unknown text effect {self.effect!r}; expected one of {EFFECTS}")


@dataclasses.dataclass(frozen=True)
class Layout:
    """Lines of a title set in one font, with the ink size the block will cover."""

    lines: tuple[str, ...]
    font: ImageFont.FreeTypeFont
    language: str
    bold_stroke: int
    effect_pad: int
    width: int
    height: int

    @property
    def size(self) -> int:
        return int(self.font.size)


def effect_pad(size: int, effect: str) -> int:
    """Pixels an effect adds around the ink (outline width, shadow offset plus blur, glow radius)."""
    if effect == "outline":
        return max(1, round(size / 16))
    if effect in ("shadow", "glow"):
        return max(2, round(size / 10))
    return 0


def _bold_stroke(face: FontFace, size: int, weight: int) -> int:
    """A single-weight face (CJK) is emboldened with a stroke of its own colour."""
    return 0 if face.variable or weight < 600 else max(1, round(size / 28))


def _line_bbox(font: ImageFont.FreeTypeFont, line: str, language: str, stroke: int) -> Box:
    return font.getbbox(line, anchor="ls", language=language, stroke_width=stroke)


def _block_extent(
    font: ImageFont.FreeTypeFont, lines: tuple[str, ...], language: str, stroke: int
) -> tuple[int, int, list[Box]]:
    boxes = [_line_bbox(font, line, language, stroke) for line in lines]
    pitch = round(font.size * LINE_PITCH)
    width = max(box[2] - box[0] for box in boxes)
    top = boxes[0][1]
    bottom = (len(lines) - 1) * pitch + boxes[-1][3]
    return width, bottom - top, boxes


_NO_LINE_START = set("、。，．・ー」』）！？ぁぃぅぇぉっゃゅょゎァィゥェォッャュョヮ々")
"""Japanese/Chinese characters that may not begin a line (kinsoku shori)."""
_THAI_LEADING_VOWELS = set("เแโใไ")
"""Thai vowels written before their consonant: a line may not break right after one."""


def break_points(text: str, language: str) -> list[int]:
    """Indices where a line may break: spaces, or between characters for scripts written
    without spaces, never before a combining mark (Thai vowels and tone marks stay on their
    consonant), after a Thai leading vowel, or before a character kinsoku forbids at a line start."""
    if " " in text.strip():
        return [i for i, ch in enumerate(text) if ch == " "]
    if base_language(language) not in _NO_SPACE_SCRIPTS:
        return []
    return [
        i
        for i in range(1, len(text))
        if unicodedata.category(text[i]) not in ("Mn", "Mc")
        and text[i] not in _NO_LINE_START
        and text[i - 1] not in _THAI_LEADING_VOWELS
    ]


def _width(font: ImageFont.FreeTypeFont, line: str, language: str, stroke: int) -> int:
    box = _line_bbox(font, line, language, stroke)
    return box[2] - box[0]


def _greedy(font: ImageFont.FreeTypeFont, text: str, language: str, stroke: int, max_width: int) -> list[str] | None:
    """Fill lines up to ``max_width``, breaking at the last allowed point that fits; None when
    a single unbreakable piece is already too wide."""
    points = break_points(text, language) + [len(text)]
    lines, start = [], 0
    while start < len(text):
        end = None
        for point in points:
            if point <= start:
                continue
            if _width(font, text[start:point].strip(), language, stroke) > max_width:
                break
            end = point
        if end is None:
            return None
        lines.append(text[start:end].strip())
        start = end
    return [line for line in lines if line]


def _wrapped(
    font: ImageFont.FreeTypeFont, text: str, language: str, stroke: int, max_width: int, max_lines: int
) -> tuple[str, ...] | None:
    """The fewest lines (at most ``max_lines``) that fit ``max_width``, balanced."""
    lines = _greedy(font, text, language, stroke, max_width)
    if lines is None or len(lines) > max_lines:
        return None
    return _wrapped_into(font, text, language, stroke, max_width, len(lines))


def _wrapped_into(
    font: ImageFont.FreeTypeFont, text: str, language: str, stroke: int, max_width: int, count: int
) -> tuple[str, ...] | None:
    """``text`` on as close to ``count`` lines as its break points allow, never more, balanced:
    the narrowest width limit (by bisection) at which it still takes at most ``count`` lines."""
    lines = _greedy(font, text, language, stroke, max_width)
    if lines is None or len(lines) > count:
        return None
    low, high = 1, max_width
    while high - low > 2 and count > 1:
        middle = (low + high) // 2
        candidate = _greedy(font, text, language, stroke, middle)
        if candidate is not None and len(candidate) <= count:
            high, lines = middle, candidate
        else:
            low = middle
    return tuple(lines)


def _layout(
    face: FontFace,
    text: str,
    language: str,
    style: TextStyle,
    size: int,
    max_width: int,
    max_lines: int,
    exact: bool = False,
) -> Layout | None:
    """``text`` at ``size`` within ``max_width``: on the fewest lines up to ``max_lines``, or with
    ``exact`` on as close to ``max_lines`` as its break points allow; None when it cannot fit."""
    font = load_font(face, size, style.weight, style.width)
    bold = _bold_stroke(face, size, style.weight)
    pad = effect_pad(size, style.effect)
    wrap = _wrapped_into if exact else _wrapped
    lines = wrap(font, text, language, bold, max_width - 2 * pad, max_lines)
    if lines is None:
        return None
    width, height, _ = _block_extent(font, lines, language, bold)
    return Layout(lines, font, language, bold, pad, width + 2 * pad, height + 2 * pad)


def fit_text(
    text: str,
    face: FontFace,
    box_width: int,
    box_height: int,
    style: TextStyle,
    language: str,
    start_size: int,
    min_size: int = 10,
    max_lines: int = 3,
    rows: int = 1,
) -> Layout | None:
    """The largest layout of ``text`` that fits ``box_width`` x ``box_height``, or None.

    Order, as a designer would: keep the original's ``rows`` (a title set on two
    lines stays on two, as far as its words allow) and shrink it down to
    ``SHRINK_FLOOR`` of ``start_size``; only then wrap it onto up to
    ``max_lines`` balanced lines, again from ``start_size`` down to
    ``min_size``. A returned layout never overflows the box, effect included.
    """
    text = " ".join(text.split())
    if not text:
        return None
    sizes = _sizes(start_size, min_size)
    floor = max(min_size, int(start_size * SHRINK_FLOOR))
    rows = max(1, min(rows, max_lines))
    attempts = [(size, rows, rows > 1) for size in sizes if size >= floor] + [
        (size, max_lines, False) for size in sizes
    ]
    for size, lines, exact in attempts:
        layout = _layout(face, text, language, style, size, box_width, lines, exact)
        if layout is not None and layout.width <= box_width and layout.height <= box_height:
            return layout
    return None


def _sizes(start: int, minimum: int) -> list[int]:
    """Font sizes from ``start`` down to ``minimum`` in ~5 % steps."""
    sizes, size = [], float(start)
    while size >= minimum:
        if not sizes or int(size) != sizes[-1]:
            sizes.append(int(size))
        size *= 0.95
    return sizes or [minimum]


def draw_layout(image: Image.Image, layout: Layout, box: Box, style: TextStyle, align: str = "center") -> Box:
    """Draw ``layout`` centred vertically in ``box`` (horizontally per ``align``); returns the ink box.

    The effect goes under the text: a blurred offset shadow, a stroke outline,
    or a blurred halo in the text colour.
    """
    font, language, bold, pad = layout.font, layout.language, layout.bold_stroke, layout.effect_pad
    width, height, boxes = _block_extent(font, layout.lines, language, bold)
    x0, y0, x1, y1 = box
    top = y0 + (y1 - y0 - height) // 2 - boxes[0][1]
    pitch = round(font.size * LINE_PITCH)
    origins = []
    for i, line_box in enumerate(boxes):
        line_width = line_box[2] - line_box[0]
        if align == "left":
            left = x0 + pad
        elif align == "right":
            left = x1 - pad - line_width
        else:
            left = x0 + (x1 - x0 - line_width) // 2
        origins.append((left - line_box[0], top + i * pitch))

    left = min(x + b[0] for (x, _), b in zip(origins, boxes)) - pad
    right = max(x + b[2] for (x, _), b in zip(origins, boxes)) + pad
    ink = (left, top + boxes[0][1] - pad, right, top + (len(boxes) - 1) * pitch + boxes[-1][3] + pad)

    def text_mask(stroke: int) -> Image.Image:
        mask = Image.new("L", image.size, 0)
        draw = ImageDraw.Draw(mask)
        for (x, y), line in zip(origins, layout.lines):
            draw.text(
                (x, y), line, font=font, fill=255, anchor="ls", language=language, stroke_width=stroke, stroke_fill=255
            )
        return mask

    def within_ink(mask: Image.Image) -> Image.Image:
        """A blur's tail is clipped to the padded ink box, which fitting promised to respect."""
        clipped = Image.new("L", image.size, 0)
        clipped.paste(mask.crop(ink), ink[:2])
        return clipped

    if style.effect == "shadow":
        offset = max(1, pad // 2)
        shadow = text_mask(bold).transform(image.size, Image.Transform.AFFINE, (1, 0, -offset, 0, 1, -offset))
        image.paste(
            style.effect_color, (0, 0), within_ink(shadow.filter(ImageFilter.GaussianBlur(max(1, pad - offset) / 2)))
        )
    elif style.effect == "outline":
        image.paste(style.effect_color, (0, 0), text_mask(bold + pad))
    elif style.effect == "glow":
        halo = text_mask(bold + pad // 2).filter(ImageFilter.GaussianBlur(pad / 2))
        image.paste(style.fill, (0, 0), within_ink(halo.point(lambda v: v * 0.6)))
    image.paste(style.fill, (0, 0), text_mask(bold))
    return ink
