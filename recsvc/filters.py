"""The titles a recommendation request may get back: its genre and year filters and its ``exclude`` list.

Filters are applied before ranking (:func:`recsvc.ranking.nearest_titles_batched` searches only the titles
they allow), so ``k`` results come back whenever the catalogue holds ``k`` titles that pass.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Sequence

import numpy as np

from indexer.published import PublishedIndex

from .errors import bad_request, echoed_list


@dataclasses.dataclass(frozen=True)
class TitleFacets:
    """Per title ordinal, what the filters look at: its year (NaN when unknown) and the titles of each genre."""

    years: np.ndarray
    titles_of_genre: dict[str, np.ndarray]


_FACETS: weakref.WeakKeyDictionary[PublishedIndex, TitleFacets] = weakref.WeakKeyDictionary()
"""Per index snapshot, built on the first filtered request; weak, so a swapped-out version is freed."""


def facets_of(index: PublishedIndex) -> TitleFacets:
    facets = _FACETS.get(index)
    if facets is None:
        facets = _FACETS[index] = build_facets(index)
    return facets


def build_facets(index: PublishedIndex) -> TitleFacets:
    """Years and genres of each title's original poster (a title indexed only through variants has neither)."""
    years = np.full(len(index.title_ids), np.nan)
    titles_of_genre: dict[str, list[int]] = {}
    for title, row in enumerate(index.original_row_of_title.tolist()):
        if row < 0:
            continue
        item = index.items[row]
        if item.year is not None:
            years[title] = item.year
        for genre in item.genres:
            titles_of_genre.setdefault(genre, []).append(title)
    return TitleFacets(years, {genre: np.array(titles, np.int64) for genre, titles in titles_of_genre.items()})


def allowed_titles(
    index: PublishedIndex, genres: Sequence[str], year_min: int | None, year_max: int | None
) -> np.ndarray | None:
    """Per title ordinal, whether it has one of ``genres`` and a year within the bounds given; None without filters.

    A title of unknown year fails a year bound. Raises a 400 naming a genre the index does not have.
    """
    if not genres and year_min is None and year_max is None:
        return None
    facets = facets_of(index)
    allowed = np.ones(len(index.title_ids), bool)
    if genres:
        unknown = [genre for genre in genres if genre not in facets.titles_of_genre]
        if unknown:
            raise bad_request(
                f"genres: unknown genre(s) {echoed_list(unknown)}; "
                f"known: {', '.join(sorted(facets.titles_of_genre)) or 'none'}"
            )
        in_genres = np.zeros(len(index.title_ids), bool)
        for genre in genres:
            in_genres[facets.titles_of_genre[genre]] = True
        allowed &= in_genres
    with np.errstate(invalid="ignore"):  # NaN (unknown year) compares False
        if year_min is not None:
            allowed &= facets.years >= year_min
        if year_max is not None:
            allowed &= facets.years <= year_max
    return allowed


def title_ordinals_of(index: PublishedIndex, title_ids: Sequence[str]) -> frozenset[int]:
    """The ordinals of the titles among ``title_ids`` that ``index`` holds (others are ignored)."""
    return frozenset(
        int(index.title_of_row[index.rows_of_title[title_id][0]])
        for title_id in title_ids
        if title_id in index.rows_of_title
    )
