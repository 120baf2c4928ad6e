"""Turning index neighbours into title results: collapse variants, exclude titles, fill k.

The index holds one vector per poster *and* per regional variant, so the
nearest neighbours of a poster are often its own variants or several
variants of one other title. Results are titles: each title appears once
with its best score, and the search widens until ``k`` titles are found or
the index is exhausted.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Collection
from typing import NamedTuple, Protocol

import numpy as np

from indexer.published import PublishedIndex
from indexer.scann_index import QueryKind
from indexer.similar_lists import first_distinct_titles

from . import kernels

AGGREGATIONS = ("mean", "recent", "fusion", "recent_neighbours")
"""``mean``: one query, the normalised average of the history (the classic approach).
``recent``: one query, the recency-weighted average, searched in the whole index.
``fusion`` (experimental: it ranks worse than the others; docs/benchmarks.md, "Recommendations"): one query
per history item, recency-weighted, fused by best weighted score.
``recent_neighbours``: the ``recent`` query ranking only the titles listed first as similar to the latest
:data:`NEIGHBOUR_SOURCES` history titles (the default: as good as ``recent`` at a fraction of its cost,
because it reads lists instead of searching; docs/benchmarks.md, "Recommendations"); when fewer than ``k``
of them can be returned, it searches like ``recent``."""

RECENCY_DECAY = 0.85
FUSION_MAX_QUERIES = 20
NEIGHBOUR_SOURCES = 5
"""Latest history titles whose similar lists are ``recent_neighbours``' candidates (the latest carry most
of the query's weight)."""
NEIGHBOUR_DEPTH = 10
"""Titles taken from the head of each of those lists (deeper lists added candidates, not hits)."""
NEGATIVE_WEIGHT = 0.5
"""How far a query moves away from the mean of the request's negative examples: ``unit(q - 0.5 n)``, which
is vector databases' average-vector strategy (``2 q - n``) up to scale."""
FILTERED_EXACT_MAX_ROWS = 20_000
"""A filter that leaves at most this many rows is answered by scoring them exactly (about a millisecond);
past it the search widens until enough of the rows found pass the filter."""


class TitleSpace(Protocol):
    """Vectors searched for titles: a version's posters (one row per poster or variant) or its behaviour
    vectors (one row per title)."""

    embeddings: np.ndarray
    title_of_row: np.ndarray
    original_row_of_title: np.ndarray

    def __len__(self) -> int: ...

    def search(self, queries: np.ndarray, k: int, kind: QueryKind = "poster") -> tuple[np.ndarray, np.ndarray]: ...


@dataclasses.dataclass(frozen=True)
class Preferences:
    """What a request adds to its history: per-item weights, examples to move away from, titles to leave out
    and the titles it may return."""

    weights: np.ndarray | None = None
    """Per history item (largest 1); None: all alike."""
    negative_rows: tuple[int, ...] = ()
    """Poster rows of the negative examples (never returned)."""
    exclude: frozenset[int] = frozenset()
    """Title ordinals never returned."""
    allowed: np.ndarray | None = None
    """Per title ordinal, whether it may be returned; None: every title."""


class Ranked(NamedTuple):
    """Result titles, best first: their ordinals and scores."""

    titles: list[int]
    scores: list[float]

    def title_ids(self, index: PublishedIndex) -> list[str]:
        return [index.title_ids[title] for title in self.titles]


def nearest_titles_batched(
    index: TitleSpace,
    queries: np.ndarray,
    k: int,
    exclude: Collection[int] = (),
    kind: QueryKind = "poster",
    allowed: np.ndarray | None = None,
) -> list[Ranked]:
    """The ``k`` best distinct titles for each query row, less the ``exclude`` ordinals and, with ``allowed``,
    only titles it marks; widening the search until filled.

    All queries go to ScaNN in one call (a fusion request has up to 20 of them, and each call has a
    fixed cost); only the queries whose neighbourhood is crowded by variants (or whose filter leaves few
    of the rows found) are searched again, deeper. A filter that leaves few rows is scored exactly.
    """
    queries = np.atleast_2d(queries)
    exclude = set(exclude)
    if allowed is None:
        want = min(k, len(index.original_row_of_title) - len(exclude))
    else:
        allowed_count = int(np.count_nonzero(allowed))
        want = min(k, allowed_count - sum(1 for title in exclude if allowed[title]))
        rows = np.flatnonzero(allowed[index.title_of_row]) if allowed_count <= FILTERED_EXACT_MAX_ROWS else None
        if rows is not None and len(rows) <= FILTERED_EXACT_MAX_ROWS:
            return [exact_titles(index, query, rows, k, exclude) for query in queries]
    results = [Ranked([], []) for _ in queries]
    pending = list(range(len(queries)))
    depth = min(len(index), max(4 * k, k + 16))
    while pending:
        rows, scores = index.search(queries if len(pending) == len(queries) else queries[pending], depth, kind)
        unfilled = []
        for query, query_rows, query_scores in zip(pending, rows, scores):
            titles = index.title_of_row[query_rows]
            if allowed is not None:
                passed = allowed[titles]
                titles, query_scores = titles[passed], query_scores[passed]
            best = Ranked(*first_distinct_titles(titles, query_scores, index.original_row_of_title, k, exclude))
            if len(best.titles) >= want or depth >= len(index):
                results[query] = best
            else:
                unfilled.append(query)
        pending = unfilled
        depth = min(len(index), depth * 4)
    return results


def exact_titles(index: TitleSpace, query: np.ndarray, rows: np.ndarray, k: int, exclude: Collection[int]) -> Ranked:
    """The ``k`` best distinct titles of ``rows`` (those a filter leaves) for ``query``, scored exactly."""
    scores = index.embeddings[rows] @ np.asarray(query, np.float32)
    order = np.argsort(-scores, kind="stable")
    return Ranked(
        *first_distinct_titles(index.title_of_row[rows[order]], scores[order], index.original_row_of_title, k, exclude)
    )


def nearest_titles(
    index: TitleSpace,
    query: np.ndarray,
    k: int,
    exclude: Collection[int] = (),
    kind: QueryKind = "poster",
    allowed: np.ndarray | None = None,
) -> Ranked:
    """The ``k`` best distinct titles for one query vector of the given ``kind``."""
    return nearest_titles_batched(index, query, k, exclude, kind, allowed)[0]


def similar_titles(index: PublishedIndex, poster_row: int, k: int) -> Ranked:
    """The ``k`` nearest other titles of the poster at ``poster_row`` (the service has looked it up to validate it):
    read from the list precomputed at publication when it holds them (lists hold only titles with an
    original poster), else searched."""
    title = int(index.title_of_row[poster_row])
    if index.similar is not None:
        listed = index.similar.top(title, k, len(index.title_ids))
        if listed is not None:
            return Ranked(*listed)
    return nearest_titles(index, index.embeddings[poster_row], k, exclude={title})


def fused_titles(
    index: PublishedIndex,
    queries: np.ndarray,
    weights: np.ndarray,
    k: int,
    exclude: Collection[int] = (),
    allowed: np.ndarray | None = None,
) -> Ranked:
    """Multi-query fusion: each title scores its best weighted similarity to any of the queries."""
    best: dict[int, float] = {}
    for ranked, weight in zip(nearest_titles_batched(index, queries, k, exclude, allowed=allowed), weights.tolist()):
        for title, score in zip(*ranked):
            if title not in best or weight * score > best[title]:
                best[title] = weight * score
    fused = sorted(best.items(), key=lambda entry: -entry[1])[:k]
    return Ranked([title for title, _ in fused], [score for _, score in fused])


@functools.lru_cache(maxsize=4096)
def recency_weights(n: int, decay: float = RECENCY_DECAY) -> np.ndarray:
    """Weights for a history ordered oldest first: the latest item weighs 1, older ones less (read-only, cached)."""
    weights = decay ** np.arange(n - 1, -1, -1, dtype=np.float32)
    weights.flags.writeable = False
    return weights


def recency_query(index: PublishedIndex, history_rows: list[int], decay: float) -> np.ndarray:
    """The normalised recency-weighted average of the history's vectors (the latest if they cancel out)."""
    return kernels.unit_weighted_sum(
        index.embeddings, np.asarray(history_rows, np.int64), recency_weights(len(history_rows), decay)
    )


def ranked_neighbours(
    index: PublishedIndex, rows: list[int], k: int, exclude_history: bool
) -> tuple[Ranked | None, np.ndarray]:
    """The ``k`` titles that score best against the recency query of the history at poster ``rows`` (oldest
    first) among those listed first as similar to its latest titles, and the history itself unless it is
    excluded; and the query.

    No titles when the lists hold fewer than ``k`` candidates; the caller searches with the query instead.
    """
    titles, scores, candidates, query = kernels.recommend_listed(
        index.similar.titles,
        index.embeddings,
        index.title_of_row,
        index.original_row_of_title,
        np.asarray(rows, np.int64),
        recency_weights(len(rows)),
        NEIGHBOUR_SOURCES,
        NEIGHBOUR_DEPTH,
        k,
        exclude_history,
    )
    return (Ranked(titles.tolist(), scores.tolist()) if candidates >= k else None), query


def recommend(index: PublishedIndex, history: list[str], k: int, aggregation: str, exclude_history: bool) -> Ranked:
    """Recommendations for a watch history of poster ids, oldest first, by the chosen aggregation."""
    return recommend_rows(index, [index.row_of_key[title_id] for title_id in history], k, aggregation, exclude_history)


def recommend_rows(
    index: PublishedIndex,
    rows: list[int],
    k: int,
    aggregation: str,
    exclude_history: bool,
    preferences: Preferences | None = None,
) -> Ranked:
    """:func:`recommend` for a history given as poster rows (the service has looked them up to validate them);
    with ``preferences``, by :func:`recommend_preferring`."""
    if preferences is not None:
        return recommend_preferring(index, rows, k, aggregation, exclude_history, preferences)
    if aggregation == "fusion":
        recent = slice(-FUSION_MAX_QUERIES, None)
        weights = recency_weights(len(rows))[recent]
        return fused_titles(index, index.embeddings[rows[recent]], weights, k, _excluded(index, rows, exclude_history))
    if aggregation == "recent_neighbours" and index.similar is not None:
        listed, query = ranked_neighbours(index, rows, k, exclude_history)
        if listed is not None:
            return listed
    else:
        query = recency_query(index, rows, decay=1.0 if aggregation == "mean" else RECENCY_DECAY)
    return nearest_titles(index, query, k, _excluded(index, rows, exclude_history), kind="history")


def recommend_preferring(
    index: PublishedIndex, rows: list[int], k: int, aggregation: str, exclude_history: bool, preferences: Preferences
) -> Ranked:
    """Poster recommendations with per-item weights, negative examples and filters.

    Each history item weighs its weight times its recency weight (``mean``: its weight alone); the query
    moves away from the negatives' mean (:data:`NEGATIVE_WEIGHT`); only allowed titles are returned.
    ``fusion`` fuses one such query per item; ``recent_neighbours`` ranks listed titles as without
    preferences (:func:`listed_passing`: weights of 1, or a filter that passes every listed title, change
    nothing) and searches like ``recent`` otherwise.
    """
    exclude = excluded_titles(index, rows, exclude_history, preferences)
    weights = history_weights(len(rows), aggregation, preferences.weights)
    negative = negative_query(index.embeddings, preferences.negative_rows)
    if aggregation == "fusion":
        recent = slice(-FUSION_MAX_QUERIES, None)
        queries = np.stack([steered(query, negative) for query in index.embeddings[rows[recent]]])
        return fused_titles(index, queries, weights[recent], k, exclude, preferences.allowed)
    query = steered(kernels.unit_weighted_sum(index.embeddings, np.asarray(rows, np.int64), weights), negative)
    if aggregation == "recent_neighbours" and index.similar is not None:
        listed = listed_passing(index, rows, weights, query, k, exclude_history, exclude, preferences.allowed)
        if listed is not None:
            return listed
    return nearest_titles(index, query, k, exclude, kind="history", allowed=preferences.allowed)


def listed_passing(
    index: PublishedIndex,
    rows: list[int],
    weights: np.ndarray,
    query: np.ndarray,
    k: int,
    exclude_history: bool,
    exclude: set[int],
    allowed: np.ndarray | None,
) -> Ranked | None:
    """The ``k`` titles listed as similar to the history items that weigh most in ``query`` (as many as
    :data:`NEIGHBOUR_SOURCES` of those weighing above 0: without preferences, the latest) that score best
    against it and are not in ``exclude``.

    None, for the caller to search, when fewer than ``k`` are left, or when ``allowed`` rules out any of them:
    a filter that passes every candidate leaves the ranking as it is, and one that does not is answered by a
    filtered search, which finds the allowed titles beyond the lists.
    """
    by_weight = np.argsort(weights, kind="stable")  # equal weights keep history order: the latest last
    sources = min(NEIGHBOUR_SOURCES, int(np.count_nonzero(weights > 0)))
    most = NEIGHBOUR_SOURCES * NEIGHBOUR_DEPTH + len(rows)  # every candidate, best first
    titles, scores, _ = kernels.best_listed(
        index.similar.titles,
        index.embeddings,
        index.original_row_of_title,
        index.title_of_row[np.asarray(rows, np.int64)[by_weight]],
        query,
        sources,
        NEIGHBOUR_DEPTH,
        most,
        exclude_history,
    )
    if allowed is not None and not allowed[titles].all():
        return None
    passing = [(int(title), float(score)) for title, score in zip(titles, scores) if title not in exclude][:k]
    if len(passing) < k:
        return None
    return Ranked([title for title, _ in passing], [score for _, score in passing])


def history_weights(count: int, aggregation: str, weights: np.ndarray | None) -> np.ndarray:
    """Each history item's weight in the query: its recency weight (1 for ``mean``) times its given weight."""
    base = np.ones(count, np.float32) if aggregation == "mean" else recency_weights(count)
    return base if weights is None else base * weights


def negative_query(embeddings: np.ndarray, rows: Collection[int]) -> np.ndarray | None:
    """The unit mean of the negative examples' vectors, None without any."""
    if not rows:
        return None
    rows = np.asarray(list(rows), np.int64)
    return kernels.unit_weighted_sum(embeddings, rows, np.ones(len(rows), np.float32))


def steered(query: np.ndarray, negative: np.ndarray | None) -> np.ndarray:
    """``query`` moved away from ``negative`` (:data:`NEGATIVE_WEIGHT`), unit length; unchanged without one."""
    if negative is None:
        return query
    moved = query.astype(np.float64) - NEGATIVE_WEIGHT * negative
    norm = np.linalg.norm(moved)
    return query if norm == 0.0 else (moved / norm).astype(np.float32)


def excluded_titles(
    index: PublishedIndex, rows: list[int], exclude_history: bool, preferences: Preferences
) -> set[int]:
    """Title ordinals a request never gets back: its history (unless wanted), negatives and ``exclude``."""
    negatives = index.title_of_row[list(preferences.negative_rows)].tolist()
    return _excluded(index, rows, exclude_history) | preferences.exclude | set(negatives)


def _excluded(index: PublishedIndex, rows: list[int], exclude_history: bool) -> set[int]:
    """The title ordinals of the history at poster ``rows`` for a search to leave out (none when the history is wanted)."""
    return set(index.title_of_row[rows].tolist()) if exclude_history else set()
