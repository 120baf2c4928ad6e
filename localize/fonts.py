"""Fonts per language: which installed font file covers a script, at which weight.

Every font comes from a PyPI package (``fontpkg-noto-*``, ``fontpkg-heebo`` and
``noto-cjk-sans-otc``), so rendering needs nothing from the operating system
and looks the same on every machine. Variable fonts are set through their
``wght``/``wdth`` axes, which gives the demo corpus its genre typography and the
localizer a bold title weight from a single file per script.
"""

from __future__ import annotations

import dataclasses
import functools
import unicodedata
from pathlib import Path

import fontpkg
import pycountry
from fontTools.ttLib import TTFont
from PIL import ImageFont


class FontError(LookupError):
    """No installed font covers the asked language."""


@dataclasses.dataclass(frozen=True)
class FontFace:
    """A font file (and face index within a collection) that covers a script."""

    path: Path
    index: int = 0
    variable: bool = True
    """Variable fonts take weight and width; the CJK collection has one weight, so
    bold is simulated with a stroke of the text colour by the renderer."""


def _fontpkg_face(family: str) -> FontFace:
    try:
        return FontFace(Path(fontpkg.path(family)))
    except fontpkg.FontpkgError as err:
        raise FontError(f"font family {family!r} is not installed (pip package fontpkg-{family}): {err}") from None


def _cjk_face(index: int) -> FontFace:
    try:
        import noto_cjk_sans_otc
    except ImportError:
        raise FontError("CJK titles need the pip package noto-cjk-sans-otc") from None
    return FontFace(Path(str(noto_cjk_sans_otc.FONT_PATH)), index=index, variable=False)


# Face index inside NotoSansCJK-Regular.ttc: JP, KR, SC (Han glyph shapes differ per locale).
_CJK_INDEX = {"ja": 0, "ko": 1, "zh": 2}
_ARABIC_SCRIPT = ("ar", "fa", "ur", "ps", "ug", "sd")
_DEVANAGARI_SCRIPT = ("hi", "mr", "ne", "sa")
_FAMILY_BY_LANGUAGE = {
    **dict.fromkeys(_ARABIC_SCRIPT, "noto-sans-arabic"),
    **dict.fromkeys(_DEVANAGARI_SCRIPT, "noto-sans-devanagari"),
    "he": "heebo",
    "th": "noto-sans-thai",
}
LATIN_SANS = "noto-sans"
LATIN_SERIF = "noto-serif"
"""Latin, Greek and Cyrillic: Noto Sans and Noto Serif cover all three."""


def base_language(language: str) -> str:
    """``zh-Hans`` -> ``zh``: the font only depends on the primary subtag."""
    return language.split("-")[0].split("_")[0].lower()


def canonical_language(language: str) -> str:
    """``language`` written as BCP-47 writes tags: ``PT_br`` -> ``pt-BR``, ``zh-hant`` -> ``zh-Hant`` (the
    language in lower case, a 4-letter script capitalised, a 2-letter region in upper case)."""
    primary, *rest = language.replace("_", "-").split("-")
    cased = {4: str.capitalize, 2: str.upper}
    return "-".join([primary.lower(), *(cased.get(len(subtag), str.lower)(subtag) for subtag in rest)])


def is_language_code(language: str) -> bool:
    """Whether ``language``'s primary subtag is an ISO 639 language code (``ja``, ``jpn``; not ``jp``), as
    a BCP-47 tag's must be."""
    primary = base_language(language)
    field = {2: "alpha_2", 3: "alpha_3"}.get(len(primary))
    return field is not None and pycountry.languages.get(**{field: primary}) is not None


@functools.cache
def face_for(language: str, serif: bool = False) -> FontFace:
    """The font face for ``language`` (a BCP-47 tag); serif only changes Latin/Cyrillic."""
    language = base_language(language)
    if language in _CJK_INDEX:
        return _cjk_face(_CJK_INDEX[language])
    if language in _FAMILY_BY_LANGUAGE:
        return _fontpkg_face(_FAMILY_BY_LANGUAGE[language])
    return _fontpkg_face(LATIN_SERIF if serif else LATIN_SANS)


INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})
"""Unicode categories that need no glyph of their own: spaces, controls and format characters (joiners,
direction marks)."""


@functools.cache
def _characters(face: FontFace) -> frozenset[int]:
    """The code points ``face`` maps to glyphs (its best cmap)."""
    with TTFont(face.path, fontNumber=face.index, lazy=True) as font:
        return frozenset(font.getBestCmap())


def missing_characters(face: FontFace, text: str) -> str:
    """The distinct characters of ``text`` that ``face`` has no glyph for, in order of appearance
    (spaces and invisible format characters aside); ``""`` when it can set all of them."""
    covered = _characters(face)
    missing = (ch for ch in text if ord(ch) not in covered and unicodedata.category(ch) not in INVISIBLE_CATEGORIES)
    return "".join(dict.fromkeys(missing))


@functools.lru_cache(maxsize=512)
def load_font(face: FontFace, size: int, weight: int = 700, width: int = 100) -> ImageFont.FreeTypeFont:
    """A sized font with its variation axes set (cached: loading a face costs milliseconds)."""
    font = ImageFont.truetype(
        str(face.path), size=max(1, int(size)), index=face.index, layout_engine=ImageFont.Layout.RAQM
    )
    if face.variable:
        wanted = {b"Weight": weight, b"Width": width}
        font.set_variation_by_axes(
            [
                min(max(wanted.get(axis["name"], axis["default"]), axis["minimum"]), axis["maximum"])
                for axis in font.get_variation_axes()
            ]
        )
    return font
