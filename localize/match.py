"""Which detected lines spell the catalogue's title: fuzzy matching of recognized text.

Posters set titles over several lines, drop or shrink the article, and OCR
merges words ("GREENINFERNO"), so texts are compared without case, spaces or
punctuation. Each line is aligned to the place in the title it reads best as;
a set of lines, put in title order, is scored by normalized Levenshtein
similarity against the whole title, and the best-scoring set is the title.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Sequence

from rapidfuzz import fuzz
from rapidfuzz.distance import Levenshtein

MAX_CANDIDATES = 10
"""Lines considered as pieces of the title (best partial matches first)."""
MAX_PIECES = 5
"""Most lines one title is set on."""
PIECE_MIN_SCORE = 70
"""A line reads as part of the title when its best alignment scores this (0..100) or more."""
_TRAILING_ARTICLE = re.compile(
    r"^(?P<rest>.+), (?P<article>the|a|an|les|la|le|l'|il|das|der|die|el|los|las|det|den)$", re.IGNORECASE
)
_LEADING_ARTICLE = re.compile(r"^(the|a|an)\s+(?=\S)", re.IGNORECASE)
_PARENTHESIS = re.compile(r"\(([^()]*)\)")
_ALSO_KNOWN = re.compile(r"^(a\.k\.a\.|aka)\s+", re.IGNORECASE)


def normalized(text: str) -> str:
    """Casefolded letters and digits only (any script), accents kept."""
    return "".join(ch for ch in unicodedata.normalize("NFC", text).casefold() if ch.isalnum())


def _article_first(title: str) -> str:
    match = _TRAILING_ARTICLE.match(title.strip())
    if not match:
        return title.strip()
    article = match["article"]
    return f"{article}{'' if article.endswith(chr(39)) else ' '}{match['rest']}"


def title_article(catalogue_title: str) -> str | None:
    """The article the displayed ``catalogue_title`` starts with, normalized: ``"Quiet Earth, The"`` and
    ``"The Quiet Earth"`` -> ``"the"``; None without one."""
    name = _PARENTHESIS.sub("", catalogue_title).strip()
    trailing = _TRAILING_ARTICLE.match(name)
    if trailing:
        return normalized(trailing["article"])
    leading = _LEADING_ARTICLE.match(name)
    return normalized(leading[1]) if leading else None


def title_forms(catalogue_title: str, subtitle_optional: bool = True) -> list[str]:
    """The ways a catalogue title can appear on its poster, as displayed text.

    ``"Quiet Earth, The"`` -> ``["The Quiet Earth", "Quiet Earth"]`` (posters often
    drop or shrink the article); a parenthesised original or a.k.a. title is a form
    of its own: ``"Troll Hunter, The (Trolljegeren)"`` -> ``["The Troll Hunter",
    "Troll Hunter", "Trolljegeren"]``, and so is the main title before a subtitle:
    ``"Avengers: Age of Ultron"`` -> ``[..., "Avengers"]`` (after the full forms, so a
    subtitle that was read is kept) unless ``subtitle_optional`` is False.
    """
    names = [_PARENTHESIS.sub("", catalogue_title)] + [
        _ALSO_KNOWN.sub("", inner) for inner in _PARENTHESIS.findall(catalogue_title)
    ]
    if subtitle_optional:
        names += [name.split(": ")[0] for name in names if ": " in name]
    forms = []
    for name in names:
        displayed = _article_first(name)
        forms += [displayed, _LEADING_ARTICLE.sub("", displayed)]
    return [form for form in dict.fromkeys(forms) if normalized(form)]


def similarity(read: str, title: str) -> float:
    """Normalized Levenshtein similarity (0..1) of two texts after ``normalized``."""
    return float(Levenshtein.normalized_similarity(normalized(read), normalized(title)))


def _alignment(read: str, form: str) -> fuzz.ScoreAlignment | None:
    """Where the normalized ``read`` aligns in the normalized ``form`` when it reads as part of it
    (``PIECE_MIN_SCORE``); a single character counts only when it is a word of ``form`` (the "2"
    of a sequel)."""
    target = normalized(form)
    if not read or (len(read) < 2 and len(target) > 2 and read not in {normalized(word) for word in form.split()}):
        return None
    alignment = fuzz.partial_ratio_alignment(read, target)
    return alignment if alignment is not None and alignment.score >= PIECE_MIN_SCORE else None


def _pieces(texts: Sequence[str], form: str) -> list[tuple[int, int, float]]:
    """(line index, where it aligns in the normalized ``form``, score) of lines that read as part
    of it (:func:`_alignment`)."""
    target = normalized(form)
    pieces = []
    for i, text in enumerate(texts):
        read = normalized(text)
        alignment = _alignment(read, form)
        if alignment is not None:
            pieces.append((i, alignment.dest_start, alignment.score * min(len(read), len(target))))
    pieces.sort(key=lambda piece: piece[2], reverse=True)
    return pieces[:MAX_CANDIDATES]


def part_weight(text: str, catalogue_title: str) -> float:
    """How much of ``catalogue_title`` ``text`` reads as: over its forms, the most characters of
    the form it reads in the place it aligns (:func:`_alignment`) less its characters that read
    as none; 0 when it reads as no part of it. A read that adds a stray letter to a whole word
    weighs less than the word; one that adds a letter the other missed weighs more."""
    read = normalized(text)
    best = 0.0
    for form in title_forms(catalogue_title):
        alignment = _alignment(read, form)
        if alignment is not None:
            spans = (alignment.src_end - alignment.src_start) + (alignment.dest_end - alignment.dest_start)
            matched = alignment.score / 100 * spans / 2
            best = max(best, 2 * matched - len(read))
    return best


def match_title(texts: Sequence[str], catalogue_title: str) -> tuple[tuple[int, ...], float]:
    """The indices of ``texts`` that together read best as ``catalogue_title``, in the order they
    spell it (where each reads in the title), and their similarity to it (0..1); ``((), 0.0)``
    when no line reads as any part of it."""
    best: tuple[tuple[int, ...], float] = ((), 0.0)
    for form in title_forms(catalogue_title):
        target = normalized(form)
        pieces = _pieces(texts, form)
        for count in range(1, min(MAX_PIECES, len(pieces)) + 1):
            for subset in itertools.combinations(pieces, count):
                ordered = sorted(subset, key=lambda piece: piece[1])
                score = float(
                    Levenshtein.normalized_similarity("".join(normalized(texts[i]) for i, _, _ in ordered), target)
                )
                if score > best[1] + 1e-9:
                    best = (tuple(i for i, _, _ in ordered), score)
    return best
