"""The synthetic demo corpus: posters whose genres can be learned and whose title is known.

``python -m localize.demo [--out DIR] [--count N] [--seed S]`` renders N 400x600
posters deterministically from the seed and writes, under DIR:

- ``catalog.csv`` — ``id,title,year,genres,image`` exactly like the real
  catalogue (pipe-separated genres from the real 15-genre vocabulary, image
  paths relative to the CSV), so every stage runs on it unchanged;
- ``posters/<id>.png`` — the posters;
- ``truth.csv`` — ``id,x0,y0,x1,y1,background,fill,serif,weight,upper,effect``:
  the title's ink box (effect included, right-open pixel bounds),
  ``backgrounds/<id>.png``, the same poster without its title, which
  localization is measured against, and how the title was set: its glyph fill
  colour (``#rrggbb``), family class (``serif`` 1 or 0), weight axis value, all
  capitals (``upper`` 1 or 0) and effect;
- ``localized_titles.csv`` — ``id,region,language,title`` for DE, FR, JP, KR,
  SA, IL, RU, IN, TH and CN (real translations, see :mod:`localize.vocab`).

Why synthetic: the real posters come without title boxes or clean
backgrounds, and tests need a corpus that is small, fast and offline. Genre
drives the palette, the background motif and the typography (font, weight,
width, case, title position, effect); with probability ``STYLE_NOISE`` a
poster borrows another genre's look, and secondary genres add a faint motif,
so a model can learn genres from pixels but not perfectly. Each poster also
carries a tagline or top billing and a credits block, so that choosing the
title among the text lines is not trivial.
"""

from __future__ import annotations

import argparse
import colorsys
import dataclasses
import logging
import math
import sys
from collections.abc import Callable
from pathlib import Path

from posterrec_settings import load_settings

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm import tqdm

import posterrec_cli
from posterrec_atomic import save_image, write_csv

from . import vocab
from .fonts import face_for
from .typeset import TextStyle, draw_layout, fit_text

WIDTH, HEIGHT = 400, 600
STYLE_NOISE = 0.2
"""Probability that a poster is drawn in a random genre's style instead of its own."""
SECONDARY_OPACITY = 0.4
CATALOG_HEADER = ("id", "title", "year", "genres", "image")
TRUTH_HEADER = ("id", "x0", "y0", "x1", "y1", "background", "fill", "serif", "weight", "upper", "effect")
LOCALIZED_HEADER = ("id", "region", "language", "title")
RGB = tuple[int, int, int]
Rng = np.random.Generator


@dataclasses.dataclass(frozen=True)
class GenreStyle:
    """The look of a genre: background gradient, accent, motif and title typography."""

    top: RGB
    bottom: RGB
    accent: RGB
    title: RGB
    motif: str
    serif: bool
    weight: int
    width: int
    upper: bool
    zone: str
    """Where the title sits: ``top``, ``middle`` or ``bottom``."""
    effect: str
    effect_color: RGB = (0, 0, 0)


STYLES: dict[str, GenreStyle] = {
    "Action": GenreStyle(
        (20, 20, 30),
        (200, 80, 20),
        (255, 150, 40),
        (240, 240, 240),
        "slashes",
        False,
        900,
        62,
        True,
        "bottom",
        "shadow",
    ),
    "Adventure": GenreStyle(
        (30, 70, 60), (220, 170, 90), (240, 200, 120), (250, 220, 150), "horizon", True, 800, 100, True, "top", "shadow"
    ),
    "Animation": GenreStyle(
        (40, 140, 230),
        (120, 220, 255),
        (255, 200, 0),
        (255, 230, 40),
        "bubbles",
        False,
        800,
        100,
        False,
        "top",
        "outline",
        (20, 40, 120),
    ),
    "Biography": GenreStyle(
        (60, 50, 40),
        (190, 170, 140),
        (230, 215, 190),
        (245, 240, 230),
        "portrait",
        True,
        400,
        100,
        False,
        "bottom",
        "none",
    ),
    "Comedy": GenreStyle(
        (250, 250, 245), (255, 230, 120), (230, 40, 40), (220, 30, 40), "confetti", False, 800, 90, False, "top", "none"
    ),
    "Crime": GenreStyle(
        (10, 10, 10), (60, 60, 60), (250, 210, 0), (250, 210, 0), "tape", False, 700, 62, True, "middle", "none"
    ),
    "Drama": GenreStyle(
        (40, 60, 90),
        (150, 160, 175),
        (220, 220, 210),
        (235, 235, 235),
        "window",
        True,
        300,
        100,
        False,
        "middle",
        "none",
    ),
    "Family": GenreStyle(
        (255, 220, 230),
        (180, 230, 255),
        (120, 200, 120),
        (255, 255, 255),
        "arcs",
        False,
        800,
        100,
        False,
        "top",
        "outline",
        (110, 60, 150),
    ),
    "Fantasy": GenreStyle(
        (30, 10, 60), (120, 60, 160), (255, 210, 120), (255, 215, 130), "sparkles", True, 700, 100, True, "top", "glow"
    ),
    "Horror": GenreStyle(
        (0, 0, 0), (70, 0, 0), (200, 0, 0), (205, 15, 15), "drips", True, 900, 100, True, "top", "shadow"
    ),
    "Mystery": GenreStyle(
        (10, 30, 40), (60, 100, 110), (180, 220, 220), (210, 235, 235), "fog", True, 500, 100, True, "middle", "glow"
    ),
    "Romance": GenreStyle(
        (250, 170, 150),
        (255, 220, 200),
        (255, 120, 150),
        (255, 255, 255),
        "bokeh",
        True,
        400,
        100,
        False,
        "bottom",
        "shadow",
        (120, 40, 60),
    ),
    "Sci-Fi": GenreStyle(
        (0, 5, 25), (10, 60, 110), (80, 220, 255), (170, 240, 255), "starfield", False, 300, 100, True, "bottom", "glow"
    ),
    "Sport": GenreStyle(
        (20, 90, 40),
        (60, 160, 70),
        (255, 255, 255),
        (255, 255, 255),
        "field",
        False,
        900,
        75,
        True,
        "bottom",
        "outline",
        (10, 40, 20),
    ),
    "Thriller": GenreStyle(
        (10, 15, 25),
        (90, 100, 115),
        (230, 230, 230),
        (240, 240, 240),
        "shards",
        False,
        700,
        62,
        True,
        "middle",
        "shadow",
    ),
}
GENRES = tuple(STYLES)
"""The real catalogue's genre vocabulary (``shared/data/catalog.csv`` has these 15)."""

_TAGLINES = (
    "Some secrets never sleep",
    "This summer, nothing is safe",
    "One last chance",
    "Every legend has a beginning",
    "The truth is out there",
    "Run. Hide. Survive.",
    "Love finds a way",
    "Based on a true story",
    "No one gets out alive",
    "The game has changed",
    "Trust no one",
    "A journey beyond imagination",
)
_FIRST = (
    "Anna",
    "Marco",
    "Lena",
    "David",
    "Sofia",
    "Omar",
    "Yuki",
    "Priya",
    "Tom",
    "Clara",
    "Ivan",
    "Maya",
    "Leo",
    "Nora",
)
_LAST = ("Berger", "Rossi", "Kim", "Novak", "Haddad", "Tanaka", "Silva", "Meyer", "Okafor", "Larsen", "Petrov", "Shah")


def _jitter(color: RGB, rng: Rng, hue: float = 0.04, value: float = 0.12) -> RGB:
    """The colour with its hue and brightness nudged, so no two posters share a palette."""
    h, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in color))
    h = (h + rng.uniform(-hue, hue)) % 1.0
    v = min(1.0, max(0.0, v * (1 + rng.uniform(-value, value))))
    return tuple(int(round(c * 255)) for c in colorsys.hsv_to_rgb(h, s, v))


def _gradient(top: RGB, bottom: RGB) -> Image.Image:
    t = np.linspace(0.0, 1.0, HEIGHT)[:, None, None]
    rows = (1 - t) * np.array(top, float) + t * np.array(bottom, float)
    return Image.fromarray(np.broadcast_to(rows, (HEIGHT, WIDTH, 3)).round().astype(np.uint8))


def _rgba(color: RGB, alpha: float) -> tuple[int, int, int, int]:
    return (*color, int(255 * alpha))


# -- motifs: each draws a genre's shapes on a transparent layer -----------------------------


def _slashes(draw: ImageDraw.ImageDraw, style: GenreStyle, rng: Rng) -> None:
    for _ in range(rng.integers(5, 9)):
        x, w = rng.uniform(-200, WIDTH), rng.uniform(6, 30)
        draw.polygon(
            [(x, HEIGHT), (x + w, HEIGHT), (x + w + 300, 0), (x + 300, 0)],
            fill=_rgba(style.accent, rng.uniform(0.2, 0.6)),
        )
    cx = rng.uniform(100, 300)
    draw.ellipse([cx - 160, 380, cx + 160, 700], fill=_rgba((255, 200, 80), 0.45))


def _horizon(draw: ImageDraw.ImageDraw, style: GenreStyle, rng: Rng) -> None:
    sun_x, sun_r = rng.uniform(80, 320), rng.uniform(40, 80)
    draw.ellipse([sun_x - sun_r, 300 - sun_r, sun_x + sun_r, 300 + sun_r], fill=_rgba(style.accent, 0.9))
    peaks = [(0, HEIGHT)] + [(x, rng.uniform(280, 420)) for x in np.linspace(0, WIDTH, 7)] + [(WIDTH, HEIGHT)]
    draw.polygon(peaks, fill=_rgba((25, 50, 40), 0.95))


def _bubbles(draw: ImageDraw.ImageDraw, style: GenreStyle, rng: Rng) -> None:
    for _ in range(rng.integers(10, 18)):
        x, y, r = rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT), rng.uniform(15, 70)
        color = (int(rng.integers(120, 256)), int(rng.integers(60, 256)), int(rng.integers(0, 200)))
        draw.ellipse([x - r, y - r, x + r, y + r], fill=_rgba(color, 0.85), outline=_rgba((20, 40, 120), 1.0), width=3)


def _portrait(draw: ImageDraw.ImageDraw, style: GenreStyle, rng: Rng) -> None:
    cx = rng.uniform(150, 250)
    shade = _rgba((40, 30, 25), 0.85)
    draw.ellipse([cx - 70, 150, cx + 70, 330], fill=shade)
    draw.chord([cx - 170, 300, cx + 170, 640], 180, 360, fill=shade)
    draw.rectangle([14, 14, WIDTH - 14, HEIGHT - 14], outline=_rgba(style.accent, 0.8), width=3)


def _confetti(draw: ImageDraw.ImageDraw, style: GenreStyle, rng: Rng) -> None:
    for _ in range(rng.integers(40, 70)):
        x, y, s = rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT), rng.uniform(4, 12)
        color = ((230, 40, 40), (40, 120, 230), (40, 180, 80), (250, 180, 0))[rng.integers(0, 4)]
        draw.rectangle([x, y, x + s, y + s * 0.5], fill=_rgba(color, 0.9))


def _tape(draw: ImageDraw.ImageDraw, style: GenreStyle, rng: Rng) -> None:
    y = rng.uniform(120, 480)
    draw.polygon([(0, y), (WIDTH, y - 120), (WIDTH, y - 80), (0, y + 40)], fill=_rgba(style.accent, 0.95))
    for k in range(-2, 12):
        x = k * 40 + rng.uniform(0, 10)
        draw.polygon(
            [
                (x, y + 40 - x * 0.3),
                (x + 18, y + 40 - (x + 18) * 0.3),
                (x + 30, y - (x + 30) * 0.3),
                (x + 12, y - (x + 12) * 0.3),
            ],
            fill=_rgba((15, 15, 15), 0.95),
        )


def _window(draw: ImageDraw.ImageDraw, style: GenreStyle, rng: Rng) -> None:
    x, y = rng.uniform(60, 200), rng.uniform(120, 220)
    draw.rectangle([x, y, x + 140, y + 200], fill=_rgba(style.accent, 0.55))
    draw.line([(x + 70, y), (x + 70, y + 200)], fill=_rgba((40, 50, 70), 0.9), width=6)
    draw.line([(x, y + 100), (x + 140, y + 100)], fill=_rgba((40, 50, 70), 0.9), width=6)
    draw.rectangle([0, 470, WIDTH, HEIGHT], fill=_rgba((30, 35, 50), 0.6))


def _arcs(draw: ImageDraw.ImageDraw, style: GenreStyle, rng: Rng) -> None:
    cx, cy = rng.uniform(100, 300), rng.uniform(420, 520)
    for k, color in enumerate(
        ((240, 80, 80), (250, 170, 60), (250, 230, 80), (110, 200, 110), (90, 150, 240), (160, 100, 220))
    ):
        r = 230 - k * 22
        draw.arc([cx - r, cy - r, cx + r, cy + r], 180, 360, fill=_rgba(color, 0.9), width=20)


def _sparkles(draw: ImageDraw.ImageDraw, style: GenreStyle, rng: Rng) -> None:
    cx, cy = rng.uniform(120, 280), rng.uniform(250, 400)
    for r, a in ((170, 0.15), (110, 0.25), (60, 0.45)):
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=_rgba(style.accent, a))
    for _ in range(rng.integers(15, 30)):
        x, y, s = rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT), rng.uniform(3, 9)
        draw.polygon([(x, y - s), (x + s / 4, y), (x, y + s), (x - s / 4, y)], fill=_rgba((255, 245, 200), 0.95))
        draw.polygon([(x - s, y), (x, y + s / 4), (x + s, y), (x, y - s / 4)], fill=_rgba((255, 245, 200), 0.95))


def _drips(draw: ImageDraw.ImageDraw, style: GenreStyle, rng: Rng) -> None:
    for _ in range(rng.integers(6, 12)):
        x, length, w = rng.uniform(0, WIDTH), rng.uniform(60, 260), rng.uniform(6, 16)
        draw.rectangle([x, 0, x + w, length], fill=_rgba(style.accent, 0.85))
        draw.ellipse([x - 2, length - w / 2, x + w + 2, length + w], fill=_rgba(style.accent, 0.85))
    draw.ellipse([120, 260, 280, 420], fill=_rgba((230, 230, 220), 0.25))


def _fog(draw: ImageDraw.ImageDraw, style: GenreStyle, rng: Rng) -> None:
    cx = rng.uniform(120, 280)
    draw.polygon([(cx - 20, 0), (cx + 20, 0), (cx + 160, HEIGHT), (cx - 160, HEIGHT)], fill=_rgba(style.accent, 0.2))
    for _ in range(5):
        y = rng.uniform(300, 560)
        draw.rectangle([0, y, WIDTH, y + rng.uniform(10, 30)], fill=_rgba((200, 220, 220), 0.18))
    draw.rectangle([cx - 12, 360, cx + 12, 470], fill=_rgba((5, 10, 15), 0.9))
    draw.ellipse([cx - 14, 330, cx + 14, 362], fill=_rgba((5, 10, 15), 0.9))


def _bokeh(draw: ImageDraw.ImageDraw, style: GenreStyle, rng: Rng) -> None:
    for _ in range(rng.integers(12, 22)):
        x, y, r = rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT), rng.uniform(12, 45)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=_rgba((255, 240, 220), rng.uniform(0.2, 0.5)))
    cx = rng.uniform(140, 260)
    draw.ellipse([cx - 60, 200, cx + 10, 280], fill=_rgba((90, 40, 50), 0.8))
    draw.ellipse([cx - 10, 190, cx + 60, 270], fill=_rgba((90, 40, 50), 0.8))


def _starfield(draw: ImageDraw.ImageDraw, style: GenreStyle, rng: Rng) -> None:
    for _ in range(rng.integers(120, 200)):
        x, y, r = rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT), rng.uniform(0.5, 2.0)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=_rgba((255, 255, 255), rng.uniform(0.5, 1.0)))
    px, py, pr = rng.uniform(80, 320), rng.uniform(150, 350), rng.uniform(60, 110)
    draw.ellipse([px - pr, py - pr, px + pr, py + pr], fill=_rgba(style.accent, 0.75))
    draw.arc(
        [px - pr * 1.6, py - pr * 0.4, px + pr * 1.6, py + pr * 0.4], 0, 360, fill=_rgba((220, 240, 255), 0.8), width=4
    )


def _field(draw: ImageDraw.ImageDraw, style: GenreStyle, rng: Rng) -> None:
    for k in range(8):
        draw.rectangle([0, 200 + k * 50, WIDTH, 225 + k * 50], fill=_rgba((0, 0, 0), 0.08))
    for y in (260, 420):
        draw.line([(0, y), (WIDTH, y + rng.uniform(-20, 20))], fill=_rgba(style.accent, 0.9), width=4)
    cx = rng.uniform(100, 300)
    draw.ellipse([cx - 40, 300, cx + 40, 380], outline=_rgba(style.accent, 0.9), width=4)
    for x in (40, WIDTH - 40):
        draw.ellipse([x - 30, 20, x + 30, 80], fill=_rgba((255, 255, 230), 0.7))


def _shards(draw: ImageDraw.ImageDraw, style: GenreStyle, rng: Rng) -> None:
    cx, cy = rng.uniform(120, 280), rng.uniform(200, 400)
    angles = np.sort(rng.uniform(0, 2 * math.pi, 9))
    for a in angles:
        draw.line([(cx, cy), (cx + 500 * math.cos(a), cy + 500 * math.sin(a))], fill=_rgba(style.accent, 0.8), width=2)
    for _ in range(6):
        pts = [(cx + rng.uniform(-180, 180), cy + rng.uniform(-180, 180)) for _ in range(3)]
        draw.polygon(pts, fill=_rgba((200, 210, 225), rng.uniform(0.15, 0.35)))


MOTIFS: dict[str, Callable[[ImageDraw.ImageDraw, GenreStyle, Rng], None]] = {
    "slashes": _slashes,
    "horizon": _horizon,
    "bubbles": _bubbles,
    "portrait": _portrait,
    "confetti": _confetti,
    "tape": _tape,
    "window": _window,
    "arcs": _arcs,
    "sparkles": _sparkles,
    "drips": _drips,
    "fog": _fog,
    "bokeh": _bokeh,
    "starfield": _starfield,
    "field": _field,
    "shards": _shards,
}
_SOFT_MOTIFS = {"bokeh", "fog", "sparkles"}


def _motif_layer(style: GenreStyle, rng: Rng, opacity: float) -> Image.Image:
    layer = Image.new("RGBA", (WIDTH, HEIGHT), (0, 0, 0, 0))
    MOTIFS[style.motif](ImageDraw.Draw(layer), style, rng)
    if style.motif in _SOFT_MOTIFS:
        layer = layer.filter(ImageFilter.GaussianBlur(6))
    if opacity < 1:
        layer.putalpha(layer.getchannel("A").point(lambda a: int(a * opacity)))
    return layer


# -- the poster -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DemoPoster:
    id: str
    title: str
    year: int
    genres: tuple[str, ...]
    poster: Image.Image
    background: Image.Image
    title_box: tuple[int, int, int, int]
    title_style: TextStyle
    title_serif: bool
    title_upper: bool


def _zones(title_zone: str) -> dict[str, tuple[int, int]]:
    """Vertical bands (y0, y1) for the title and the other text blocks."""
    bands = {"top": (30, 190), "middle": (220, 380), "bottom": (330, 500)}
    others = [zone for zone in ("top", "middle", "bottom") if zone != title_zone]
    return {
        "title": bands[title_zone],
        "tagline": bands[others[-1]],
        "billing": (12, 40) if title_zone != "top" else (200, 228),
    }


def _draw_small_text(
    image: Image.Image, text: str, band: tuple[int, int], size: int, color: RGB, weight: int, width: int, rng: Rng
) -> None:
    face = face_for("en")
    style = TextStyle(fill=color, weight=weight, width=width)
    layout = fit_text(text, face, WIDTH - 40, band[1] - band[0], style, "en", size, min_size=7, max_lines=1)
    if layout is not None:
        y = int(rng.uniform(band[0], max(band[0] + 1, band[1] - layout.height)))
        draw_layout(image, layout, (20, y, WIDTH - 20, y + layout.height), style)


def _credits(image: Image.Image, rng: Rng, color: RGB) -> None:
    """The billing block at the foot of the poster, as real posters have it."""

    def names(n: int) -> str:
        return "  ".join(
            f"{_FIRST[rng.integers(len(_FIRST))]} {_LAST[rng.integers(len(_LAST))]}".upper() for _ in range(n)
        )

    lines = [
        f"DIRECTED BY {names(1)}  PRODUCED BY {names(2)}",
        f"MUSIC BY {names(1)}  EDITED BY {names(1)}  STARRING {names(2)}",
        f"IN CINEMAS {int(rng.integers(1, 13)):02d}.{int(rng.integers(1, 29)):02d}",
    ]
    for i, line in enumerate(lines):
        y = 528 + i * 20
        _draw_small_text(image, line, (y, y + 16), 11 if i < 2 else 14, color, 500 if i < 2 else 800, 62, rng)


def render_poster(index: int, seed: int, title_number: int) -> DemoPoster:
    """Poster ``index`` of the corpus drawn from ``seed`` (independent of every other poster)."""
    rng = np.random.default_rng([seed, index])
    genres = (GENRES[rng.integers(len(GENRES))],)
    for _ in range(rng.choice(3, p=(0.45, 0.4, 0.15))):
        extra = GENRES[rng.integers(len(GENRES))]
        if extra not in genres:
            genres += (extra,)
    look = STYLES[GENRES[rng.integers(len(GENRES))] if rng.random() < STYLE_NOISE else genres[0]]
    palette = dataclasses.replace(
        look, top=_jitter(look.top, rng), bottom=_jitter(look.bottom, rng), accent=_jitter(look.accent, rng)
    )

    image = _gradient(palette.top, palette.bottom).convert("RGBA")
    for extra in genres[1:]:
        image.alpha_composite(_motif_layer(STYLES[extra], rng, SECONDARY_OPACITY))
    image.alpha_composite(_motif_layer(palette, rng, 1.0))
    image = image.convert("RGB")

    zones = _zones(palette.zone)
    small_color = palette.title if palette.effect != "none" or palette.zone == "top" else palette.accent
    if rng.random() < 0.7:
        _draw_small_text(
            image,
            _TAGLINES[rng.integers(len(_TAGLINES))],
            zones["tagline"],
            int(rng.integers(16, 23)),
            small_color,
            600,
            100,
            rng,
        )
    if rng.random() < 0.6:
        _draw_small_text(
            image,
            "   ".join(
                f"{_FIRST[rng.integers(len(_FIRST))]} {_LAST[rng.integers(len(_LAST))]}".upper() for _ in range(2)
            ),
            zones["billing"],
            15,
            small_color,
            700,
            80,
            rng,
        )
    _credits(image, rng, small_color)
    background = image.copy()

    title = vocab.title_in(title_number, "en")
    text = title.upper() if palette.upper else title
    style = TextStyle(
        fill=_jitter(palette.title, rng, 0.02, 0.05),
        effect=palette.effect,
        effect_color=palette.effect_color,
        weight=palette.weight,
        width=palette.width,
    )
    face = face_for("en", serif=palette.serif)
    y0, y1 = zones["title"]
    layout = fit_text(text, face, WIDTH - 40, y1 - y0, style, "en", int(rng.integers(54, 80)), min_size=20, max_lines=2)
    if layout is None:  # the vocabulary's titles all fit; this guards a future longer one
        raise ValueError(f"demo title {title!r} does not fit the {palette.zone} band")
    top = int(rng.uniform(y0, y1 - layout.height))
    inset = int(rng.uniform(0, WIDTH - 40 - layout.width)) if rng.random() < 0.3 else (WIDTH - 40 - layout.width) // 2
    draw_layout(image, layout, (20 + inset, top, 20 + inset + layout.width, top + layout.height), style)
    return DemoPoster(
        id=f"demo{index:05d}",
        title=title,
        year=int(rng.integers(1960, 2025)),
        genres=genres,
        poster=image,
        background=background,
        title_box=_ink_box(image, background),
        title_style=style,
        title_serif=palette.serif,
        title_upper=palette.upper,
    )


def _ink_box(poster: Image.Image, background: Image.Image) -> tuple[int, int, int, int]:
    """The exact box of every pixel the title changed (right-open bounds)."""
    changed = np.any(np.asarray(poster) != np.asarray(background), axis=2)
    rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _title_numbers(count: int, seed: int) -> list[int]:
    """Distinct titles while the vocabulary lasts, then repeats (a real catalogue has remakes too)."""
    order = np.random.default_rng([seed, 0, 1]).permutation(vocab.title_count())
    return [int(order[i % len(order)]) for i in range(count)]


def write_demo_corpus(out_dir: str | Path, count: int = 240, seed: int = 0, progress: bool = False) -> Path:
    """Render the corpus into ``out_dir`` and return the path of its ``catalog.csv``.

    Images are written first and the CSVs last (each atomically), so a
    catalogue on disk always points at complete images.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    out = Path(out_dir)
    catalog, truth, localized = [], [], []
    for index, number in tqdm(
        list(enumerate(_title_numbers(count, seed))), desc="demo posters", unit="poster", disable=not progress
    ):
        poster = render_poster(index, seed, number)
        save_image(poster.poster, out / "posters" / f"{poster.id}.png", optimize=False)
        save_image(poster.background, out / "backgrounds" / f"{poster.id}.png", optimize=False)
        catalog.append((poster.id, poster.title, poster.year, "|".join(poster.genres), f"posters/{poster.id}.png"))
        style = poster.title_style
        truth.append(
            (
                poster.id,
                *poster.title_box,
                f"backgrounds/{poster.id}.png",
                "#{:02x}{:02x}{:02x}".format(*style.fill),
                int(poster.title_serif),
                style.weight,
                int(poster.title_upper),
                style.effect,
            )
        )
        localized += [
            (poster.id, region, language, vocab.title_in(number, language))
            for region, language in vocab.REGION_LANGUAGES.items()
        ]
    write_csv(out / "truth.csv", TRUTH_HEADER, truth)
    write_csv(out / "localized_titles.csv", LOCALIZED_HEADER, localized)
    return write_csv(out / "catalog.csv", CATALOG_HEADER, catalog)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m localize.demo", description="Render the synthetic demo poster corpus."
    )
    parser.add_argument("--out", type=Path, help="output folder, created if needed (default: settings.demo_dir)")
    parser.add_argument(
        "--count", type=posterrec_cli.whole_number(1), default=240, help="number of posters (default 240)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same corpus")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    catalog = write_demo_corpus(args.out or load_settings().demo_dir, args.count, args.seed, progress=True)
    print(f"wrote {args.count} demo posters: {catalog}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
