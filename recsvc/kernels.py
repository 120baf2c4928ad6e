"""The inner loops of a ``/recommendations`` request, compiled by Numba.

A default request builds its query from five history vectors and ranks the
~50 titles listed as similar to them: each step is one small NumPy call of
1-2 µs, and the ~25 of them (34 µs) were a quarter of the request's own time,
which decides how close the service gets to a bare Flask endpoint's
throughput (README, "Service benchmarks"). Compiled, the same work is one
call (:func:`recommend_listed`), most of whose time goes to reading the ~55
embedding rows it scores. Compiled code is cached beside the module, so a worker
loads it (0.5 s with the import) rather than compiling it (5.8 s) again; :func:`warm_up` compiles or
loads it at start-up, before the first request waits for it.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def unit_weighted_sum(embeddings: np.ndarray, rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The normalised ``weights``-weighted sum of ``embeddings[rows]`` (float64 sums), or the last row's
    vector when the sum is zero (vectors that cancel out give no direction)."""
    query = np.zeros(embeddings.shape[1], np.float64)
    for i in range(len(rows)):
        query += weights[i] * embeddings[rows[i]].astype(np.float64)
    norm = np.sqrt(np.sum(query * query))
    if norm == 0.0:
        return embeddings[rows[-1]].copy()
    return (query / norm).astype(np.float32)


@numba.njit(cache=True, nogil=True, fastmath=True)
def _dot(a: np.ndarray, b: np.ndarray) -> np.float32:
    """``a @ b`` in float32 with the sum in any order, so that it runs in SIMD lanes (Numba's ``np.dot`` needs
    SciPy's BLAS, and a sum in order is one long chain of dependent additions)."""
    total = np.float32(0.0)
    for i in range(len(a)):
        total += a[i] * b[i]
    return total


@numba.njit(cache=True, nogil=True)
def best_listed(listed_titles: np.ndarray, embeddings: np.ndarray, original_rows: np.ndarray, history: np.ndarray,
                query: np.ndarray, sources: int, depth: int, k: int, exclude_history: bool):
    """The ``k`` candidates scoring best against ``query`` (title ordinals and scores, best first) and how many
    candidates there were.

    Candidates are the first ``depth`` titles of the lists of the latest ``sources`` history titles
    (ordinals, oldest first), without the history when ``exclude_history``, with it otherwise. Ties keep the
    lower ordinal first, so a request's answer does not depend on the order candidates were found in.
    """
    latest = history[max(0, len(history) - sources):]
    found = np.empty(len(latest) * depth + (0 if exclude_history else len(history)), np.int64)
    count = 0
    for source in latest:
        for title in listed_titles[source, :depth]:
            if title >= 0:
                found[count] = title
                count += 1
    if not exclude_history:
        found[count : count + len(history)] = history  # lists' -1 padding leaves ``found`` longer than this
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
def recommend_listed(listed_titles: np.ndarray, embeddings: np.ndarray, title_of_row: np.ndarray, original_rows: np.ndarray,
                     history_rows: np.ndarray, weights: np.ndarray, sources: int, depth: int, k: int, exclude_history: bool):
    """:func:`best_listed` for a history of poster rows ranked by their :func:`unit_weighted_sum`, in one call
    (each call from Python costs a few µs of argument checks): the best titles, their scores, how many
    candidates there were, and the query, which the caller searches with when there were fewer than ``k``."""
    query = unit_weighted_sum(embeddings, history_rows, weights)
    titles, scores, candidates = best_listed(listed_titles, embeddings, original_rows, title_of_row[history_rows],
                                             query, sources, depth, k, exclude_history)
    return titles, scores, candidates, query


def warm_up() -> None:
    """Compile (or load from the cache) the kernels a request calls, with the types it passes: Numba
    compiles again for each new type, and the recency weights a request passes are read-only arrays."""
    embeddings = np.eye(2, 4, dtype=np.float32)
    rows = np.array([0, 1], np.int64)
    weights = np.ones(2, np.float32)
    weights.flags.writeable = False
    unit_weighted_sum(embeddings, rows, weights)
    recommend_listed(np.array([[1], [0]], np.int32), embeddings, rows, rows, rows, weights, 5, 1, 1, True)
