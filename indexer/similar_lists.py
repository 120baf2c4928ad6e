"""Every title's nearest other titles, computed once when a version is published.

``/similar`` asks the same question of the same index version every time a
poster is shown, so the answers are computed once at publication (one search
per title, on every core) and stored with the version: a request then reads
one row instead of searching.

The lists are the live search's answers, not an approximation of them: the
same searcher with the same query-time options re-orders the same candidates,
and a list keeps the first distinct titles of that order, leaving out the
poster's own title (the service's tests compare both for every title and k on
a brute-force index, every third title on a tree). The service still searches
live when a request wants more titles than a list holds, and for titles whose
lists variants left partly empty.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

TITLES_FILE = "similar_titles.npy"
SCORES_FILE = "similar_scores.npy"
ROWS_SEARCHED_PER_TITLE = 4
"""Index rows searched per title listed: a title's regional variants crowd the neighbourhood of its original."""

SearchOne = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]
"""``search(query, k) -> (rows, scores)`` of one query, best first, as the version's searcher answers a request;
fewer than ``k`` rows when the leaves searched hold fewer."""


@dataclasses.dataclass(frozen=True)
class SimilarLists:
    """Per title ordinal, the ordinals and scores of its nearest other titles, best first (-1 past the end)."""

    titles: np.ndarray
    scores: np.ndarray

    @property
    def depth(self) -> int:
        return int(self.titles.shape[1])

    def top(self, title: int, k: int, title_count: int) -> tuple[list[int], list[float]] | None:
        """The ``k`` nearest other titles of ``title``, or None when its list cannot answer.

        A full list answers any ``k`` up to its depth, and one that holds every
        other title answers any ``k``. A partly filled list (variants crowded the
        rows searched for it) answers nothing: the live search would look deeper
        than those rows and could rank past them differently.
        """
        titles = self.titles[title]
        full = titles[-1] >= 0
        found = self.depth if full else int(np.count_nonzero(titles >= 0))
        if found < title_count - 1 and (not full or k > found):
            return None
        count = min(k, found)
        return titles[:count].tolist(), self.scores[title, :count].tolist()


def first_distinct_titles(
    ordinals: np.ndarray, scores: np.ndarray, original_rows: np.ndarray, k: int, exclude: Collection[int] = ()
) -> tuple[list[int], list[float]]:
    """The first ``k`` distinct titles among one query's search results, each with its first (best) score.

    Args:
        ordinals: the title ordinals of the rows found, best first.
        scores: their scores; a non-finite score (ScaNN pads a search deeper than its leaves with NaN)
            ends what the results can say.
        original_rows: per title ordinal, the row of its original poster, -1 for a title indexed only
            through variants (it has no poster to show, so it is not listed).
        exclude: title ordinals to leave out (the query's own title, a watch history).
    Returns:
        Up to ``k`` title ordinals and their scores, best first.
    """
    titles: list[int] = []
    best: list[float] = []
    seen = set(exclude)
    for title, score, original in zip(ordinals.tolist(), scores.tolist(), original_rows[ordinals].tolist()):
        if len(titles) == k or not math.isfinite(score):
            break
        if title in seen:
            continue
        seen.add(title)
        if original >= 0:
            titles.append(title)
            best.append(score)
    return titles, best


def compute(
    search: SearchOne,
    embeddings: np.ndarray,
    title_of_row: np.ndarray,
    original_rows: np.ndarray,
    depth: int,
    max_rows: int | None = None,
    threads: int | None = None,
) -> SimilarLists:
    """The lists of every title with an original poster (``original_rows[t]``, -1 for none), from ``search``.

    Each title is searched on its own, as a request would search it (ScaNN's
    batched call answers a little differently), on ``threads`` threads: ScaNN
    releases the GIL while it searches. ``max_rows`` caps the rows searched per
    title: a tree re-orders only that many candidates, and past them its answers
    would no longer be the live search's. A title whose leaves hold fewer rows
    than searched gets no list: the service answers such a search exactly.
    """
    if depth < 1:
        raise ValueError(f"similar lists need a depth of at least 1 title, got {depth}")
    rows_searched = min(len(embeddings), depth * ROWS_SEARCHED_PER_TITLE, max_rows or len(embeddings))
    titles = np.full((len(original_rows), depth), -1, np.int32)
    scores = np.full((len(original_rows), depth), np.nan, np.float32)

    def one(title: int) -> tuple[list[int], list[float]]:
        rows, found = search(embeddings[original_rows[title]], rows_searched)
        if len(rows) < rows_searched:
            return [], []  # nothing to list
        return first_distinct_titles(title_of_row[rows], found, original_rows, depth, exclude=(title,))

    with_original = np.flatnonzero(original_rows >= 0)
    with ThreadPoolExecutor(threads or os.cpu_count() or 1) as pool:
        for title, (listed, listed_scores) in zip(with_original, pool.map(one, with_original, chunksize=256)):
            titles[title, : len(listed)], scores[title, : len(listed)] = listed, listed_scores
    return SimilarLists(titles, scores)


def save(directory: Path, lists: SimilarLists) -> None:
    np.save(directory / TITLES_FILE, lists.titles)
    np.save(directory / SCORES_FILE, lists.scores)


def load(directory: Path, title_count: int) -> SimilarLists | None:
    """The lists stored in a version directory, None for a version published without them.

    Raises ValueError for lists that do not fit the version (so it is refused, not served wrongly).
    """
    if not (directory / TITLES_FILE).exists():
        return None
    lists = SimilarLists(np.load(directory / TITLES_FILE), np.load(directory / SCORES_FILE))
    if lists.titles.shape != lists.scores.shape or lists.titles.ndim != 2 or len(lists.titles) != title_count:
        raise ValueError(
            f"similar lists of shape {lists.titles.shape} / {lists.scores.shape} do not fit {title_count} titles"
        )
    if lists.titles.size and (lists.titles.min() < -1 or lists.titles.max() >= title_count):
        raise ValueError("similar lists name title ordinals outside the version")
    return lists
