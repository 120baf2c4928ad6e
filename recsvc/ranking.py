"""Turning index neighbours into title results: collapse variants, exclude titles, fill k.

The index holds one vector per poster *and* per regional variant, so the
nearest neighbours of a poster are often its own variants or several
variants of one other title. Results are titles: each title appears once
with its best score, and the search widens until ``k`` titles are found or
the index is exhausted.
"""

from __future__ import annotations

import math
from typing import Collection, NamedTuple

import numpy as np

from indexer.published import PublishedIndex

AGGREGATIONS = ("mean", "recent", "fusion", "recent_neighbours")
"""``mean``: one query, the normalised average of the history (the classic approach).
``recent``: one query, the recency-weighted average, searched in the whole index (best of the first three on MovieLens).
``fusion``: one query per history item, recency-weighted, fused by best weighted score.
``recent_neighbours``: the ``recent`` query ranking only the titles listed as similar to the latest
:data:`NEIGHBOUR_SOURCES` history titles (the service's default: as good as ``recent`` on MovieLens,
bench_recommend, at a fraction of its cost, because it reads lists instead of searching)."""

RECENCY_DECAY = 0.85
FUSION_MAX_QUERIES = 20
NEIGHBOUR_SOURCES = 5
"""Latest history titles whose similar lists are ``recent_neighbours``' candidates (5 of them: the most
recent ones carry most of the query's weight; 10, 20 and 50 were no better on MovieLens)."""


class Hit(NamedTuple):
    """One result title and its best score (a tuple: a response builds tens of them per request)."""

    title_id: str
    score: float


def _collapse(rows: np.ndarray, scores: np.ndarray, index: PublishedIndex, exclude: Collection[str], k: int) -> dict[str, float]:
    """The first ``k`` distinct titles among ``rows`` (best first), each with its best score.

    Rows become title ordinals in one NumPy lookup and the walk runs over
    plain ints: 8 µs for 40 rows, against 27 µs with ``np.unique``.
    """
    best: dict[str, float] = {}
    if k <= 0:
        return best
    seen: set[int] = set()
    for title, score in zip(index.title_of_row[rows].tolist(), scores.tolist()):
        if title in seen:
            continue
        seen.add(title)
        title_id = index.title_ids[title]
        if title_id not in exclude:
            best[title_id] = score
            if len(best) == k:
                break
    return best


def nearest_titles_batched(
    index: PublishedIndex, queries: np.ndarray, k: int, exclude: Collection[str] = (), history: bool = False
) -> list[list[Hit]]:
    """The ``k`` best distinct titles for each query row, widening the search until filled.

    All queries go to ScaNN in one call (a fusion request has up to 20 of them, and each call has a
    fixed cost); only the queries whose neighbourhood is crowded by variants are searched again, deeper.
    """
    queries = np.atleast_2d(queries)
    exclude = set(exclude)
    want = min(k, len(index.title_ids) - len(exclude & index.rows_of_title.keys()))
    results: list[list[Hit]] = [[] for _ in queries]
    pending = list(range(len(queries)))
    depth = min(len(index), max(4 * k, k + 16))
    while pending:
        rows, scores = index.search(queries if len(pending) == len(queries) else queries[pending], depth, history)
        unfilled = []
        for query, query_rows, query_scores in zip(pending, rows, scores):
            best = _collapse(query_rows, query_scores, index, exclude, k)
            if len(best) >= want or depth >= len(index):
                results[query] = [Hit(t, s) for t, s in best.items()]
            else:
                unfilled.append(query)
        pending = unfilled
        depth = min(len(index), depth * 4)
    return results


def nearest_titles(
    index: PublishedIndex, query: np.ndarray, k: int, exclude: Collection[str] = (), history: bool = False
) -> list[Hit]:
    """The ``k`` best distinct titles for one query vector (``history``: an averaged watch history)."""
    return nearest_titles_batched(index, query, k, exclude, history)[0]


def similar_titles(index: PublishedIndex, title_id: str, k: int) -> list[Hit]:
    """The ``k`` nearest other titles of a poster: read from the list precomputed at publication when it holds them, else searched."""
    if index.similar is not None:
        listed = index.similar.top(int(index.title_of_row[index.row_of_key[title_id]]), k, len(index.title_ids))
        if listed is not None:
            return [Hit(index.title_ids[title], score) for title, score in zip(*listed)]
    return nearest_titles(index, original_vector(index, title_id), k, exclude={title_id})


def fused_titles(
    index: PublishedIndex, queries: np.ndarray, weights: np.ndarray, k: int, exclude: Collection[str] = ()
) -> list[Hit]:
    """Multi-query fusion: each title scores its best weighted similarity to any of the queries."""
    scores: dict[str, float] = {}
    for hits, weight in zip(nearest_titles_batched(index, queries, k, exclude), weights):
        for hit in hits:
            scores[hit.title_id] = max(scores.get(hit.title_id, -np.inf), float(weight) * hit.score)
    ranked = sorted(scores.items(), key=lambda item: -item[1])[:k]
    return [Hit(t, s) for t, s in ranked]


def recency_weights(n: int, decay: float = RECENCY_DECAY) -> np.ndarray:
    """Weights for a history ordered oldest first: the latest item weighs 1, older ones less."""
    return decay ** np.arange(n - 1, -1, -1, dtype=np.float32)


def original_vector(index: PublishedIndex, title_id: str) -> np.ndarray:
    return index.embeddings[index.row_of_key[title_id]]


def recency_query(index: PublishedIndex, history: list[str], decay: float) -> np.ndarray:
    """The normalised recency-weighted average of the history's vectors (the latest if they cancel out)."""
    vectors = index.embeddings[[index.row_of_key[title_id] for title_id in history]]
    query = recency_weights(len(history), decay) @ vectors
    norm = math.sqrt(float(query @ query))
    return query / norm if norm > 0 else vectors[-1]


def ranked_neighbours(index: PublishedIndex, sources: list[str], query: np.ndarray, k: int, exclude: Collection[str]) -> list[Hit] | None:
    """The ``k`` titles listed as similar to any of ``sources`` that score best against ``query``.

    None when the index has no lists or they hold fewer than ``k`` candidates; the caller searches instead.
    """
    if index.similar is None:
        return None
    candidates = np.unique(index.similar.titles[index.title_of_row[[index.row_of_key[t] for t in sources]]])
    excluded = index.title_of_row[[index.row_of_key[t] for t in exclude]] if exclude else ()
    candidates = candidates[(candidates >= 0) & ~np.isin(candidates, excluded)]
    rows = index.original_row_of_title[candidates]
    candidates, rows = candidates[rows >= 0], rows[rows >= 0]  # a title indexed only through variants is no result
    if len(candidates) < k:
        return None
    scores = index.embeddings[rows] @ query
    best = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    best = best[np.argsort(-scores[best], kind="stable")]
    return [Hit(index.title_ids[title], score) for title, score in zip(candidates[best].tolist(), scores[best].tolist())]


def recommend(index: PublishedIndex, history: list[str], k: int, aggregation: str, exclude_history: bool) -> list[Hit]:
    """Recommendations for a watch history (ids oldest first) by the chosen aggregation."""
    exclude = set(history) if exclude_history else set()
    if aggregation == "fusion":
        recent = slice(-FUSION_MAX_QUERIES, None)
        vectors = index.embeddings[[index.row_of_key[title_id] for title_id in history[recent]]]
        return fused_titles(index, vectors, recency_weights(len(history))[recent], k, exclude)
    query = recency_query(index, history, decay=1.0 if aggregation == "mean" else RECENCY_DECAY)
    if aggregation == "recent_neighbours":
        hits = ranked_neighbours(index, history[-NEIGHBOUR_SOURCES:], query, k, exclude)
        if hits is not None:
            return hits
    return nearest_titles(index, query, k, exclude, history=True)
