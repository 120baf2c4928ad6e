"""The inner loops of a ``/recommendations`` request, compiled by Numba.

A default request builds its query from a few history vectors and ranks the ~50 titles listed as similar
to them. In NumPy that is about twenty calls on tiny arrays, each paying NumPy's fixed cost per call and
taking the GIL; compiled, it is one call that runs without the GIL. Side by side on the service this
is worth a large share of ``/recommendations``' throughput (docs/benchmarks.md, "What the request path
keeps"). Compiled code is cached beside the module; :func:`warm_up` compiles or loads it at start-up so
that no request waits for it.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def unit_weighted_sum(embeddings: np.ndarray, rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The L2-normalised ``weights``-weighted sum of ``embeddings[rows]``, summed in float64.

    Returns:
        A float32 unit vector, or a copy of the last row's vector when the sum is zero (vectors that cancel
        out give no direction).
    """
    query = np.zeros(embeddings.shape[1], np.float64)
    for i in range(len(rows)):
        query += weights[i] * embeddings[rows[i]].astype(np.float64)
    norm = np.sqrt(np.sum(query * query))
    if norm == 0.0:
        return embeddings[rows[-1]].copy()
    return (query / norm).astype(np.float32)


@numba.njit(cache=True, nogil=True, fastmath=True)
def _dot(a: np.ndarray, b: np.ndarray) -> np.float32:
    """``a @ b`` in float32, summed in any order so that it vectorises (Numba's ``np.dot`` needs SciPy)."""
    total = np.float32(0.0)
    for i in range(len(a)):
        total += a[i] * b[i]
    return total


@numba.njit(cache=True, nogil=True)
def best_listed(
    listed_titles: np.ndarray,
    embeddings: np.ndarray,
    original_rows: np.ndarray,
    history: np.ndarray,
    query: np.ndarray,
    sources: int,
    depth: int,
    k: int,
    exclude_history: bool,
) -> tuple[np.ndarray, np.ndarray, int]:
    """The ``k`` listed candidates that score best against ``query``.

    Args:
        listed_titles: each title's similar titles (ordinals, best first, -1 padded).
        embeddings: the index's vectors; ``original_rows`` maps a title ordinal to its poster's row.
        history: watched title ordinals, oldest first.
        sources, depth: candidates are the first ``depth`` titles listed for each of the latest ``sources``
            history titles, plus the history itself unless ``exclude_history`` (then the history is left out).
    Returns:
        The best titles and their scores, best first (equal scores: lower ordinal first, so an answer does not
        depend on the order candidates were found in), and how many distinct candidates there were.
    """
    latest = history[max(0, len(history) - sources) :]
    found = np.empty(len(latest) * depth + (0 if exclude_history else len(history)), np.int64)
    count = 0
    for source in latest:
        for title in listed_titles[source, :depth]:
            if title >= 0:
                found[count] = title
                count += 1
    if not exclude_history:
        found[count : count + len(history)] = history
        count += len(history)
    found = np.sort(found[:count])
    watched = np.sort(history)
    candidates = np.empty(count, np.int64)
    unique = 0
    for i in range(count):
        title = found[i]
        if i > 0 and title == found[i - 1]:
            continue
        if exclude_history:
            at = np.searchsorted(watched, title)
            if at < len(watched) and watched[at] == title:
                continue
        candidates[unique] = title
        unique += 1
    candidates = candidates[:unique]
    rows = original_rows[candidates]  # lists and histories hold only titles with an original
    scores = np.empty(unique, np.float32)
    for i in range(unique):
        scores[i] = _dot(embeddings[rows[i]], query)
    best = np.argsort(-scores, kind="mergesort")[:k]
    return candidates[best], scores[best], unique


@numba.njit(cache=True, nogil=True)
def recommend_listed(
    listed_titles: np.ndarray,
    embeddings: np.ndarray,
    title_of_row: np.ndarray,
    original_rows: np.ndarray,
    history_rows: np.ndarray,
    weights: np.ndarray,
    sources: int,
    depth: int,
    k: int,
    exclude_history: bool,
) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """:func:`best_listed` for a history of poster rows ranked by their :func:`unit_weighted_sum`, in one call.

    Returns:
        The best titles, their scores, how many candidates there were, and the query (the caller searches
        with it when there were fewer than ``k``).
    """
    query = unit_weighted_sum(embeddings, history_rows, weights)
    titles, scores, candidates = best_listed(
        listed_titles, embeddings, original_rows, title_of_row[history_rows], query, sources, depth, k, exclude_history
    )
    return titles, scores, candidates, query


def warm_up() -> None:
    """Compile (or load from the cache) the kernels with every argument type a request passes: Numba compiles
    again for each new type, and a read-only array (the cached recency weights) is a type of its own."""
    embeddings = np.eye(2, 4, dtype=np.float32)
    rows = np.array([0, 1], np.int64)
    read_only = np.ones(2, np.float32)
    read_only.flags.writeable = False
    for weights in (np.ones(2, np.float32), read_only, np.ones(2, np.float64)):  # given weights are float64
        unit_weighted_sum(embeddings, rows, weights)
    listed = np.array([[1], [0]], np.int32)
    recommend_listed(listed, embeddings, rows, rows, rows, read_only, 5, 1, 1, True)
    best_listed(listed, embeddings, rows, rows, embeddings[0], 5, 1, 1, True)  # a request with preferences
