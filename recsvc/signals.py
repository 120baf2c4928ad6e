"""Recommendations by signal: poster similarity, the behaviour model's vectors, or a hybrid of both.

- ``poster``: :func:`recsvc.ranking.recommend_rows` over the posters (the only signal of a version built
  without a behaviour model).
- ``behaviour``: the nearest titles, in the behaviour model's space, to the weighted mean of the behaviour
  vectors of the history's latest ``context_length`` titles (the query the model was trained with). A cold
  title's vector comes from its poster through the model's item tower.
- ``hybrid``: behaviour similarity to the history's *warm* titles plus ``poster_weight`` x poster
  similarity to the whole history. Cold history titles (no watches in the model's training) count through
  their posters only, and a history of cold titles only is answered by ``poster`` alone.
"""

from __future__ import annotations

import numpy as np

from indexer.behaviour_index import BehaviourIndex
from indexer.published import PublishedIndex

from .errors import bad_request, echoed_list, not_found
from .filters import allowed_titles, title_ordinals_of
from .kernels import unit_weighted_sum
from .params import RecommendationRequest
from .ranking import (
    Preferences,
    Ranked,
    excluded_titles,
    history_weights,
    nearest_titles,
    negative_query,
    recommend_rows,
    steered,
)

HYBRID_CANDIDATES = 100
"""Titles taken from each signal's own nearest neighbours before the hybrid score ranks their union."""


def default_signal(index: PublishedIndex) -> str:
    """``hybrid`` for a version with behaviour vectors, else ``poster``."""
    return "poster" if index.behaviour is None else "hybrid"


def check_signal(index: PublishedIndex, signal: str | None) -> str:
    """The signal a request asks for (default: :func:`default_signal`), or a 400 when the version lacks it."""
    if signal is None:
        return default_signal(index)
    if signal != "poster" and index.behaviour is None:
        raise bad_request(
            f"signal {signal!r} needs behaviour vectors, and index version {index.version} was built without a "
            "behaviour model; use signal 'poster'"
        )
    return signal


def poster_rows(index: PublishedIndex, title_ids: list[str], field: str) -> list[int]:
    """The poster rows of ``title_ids``, or a 404 naming the unknown ones and the request ``field``."""
    rows = [index.poster_row(title_id) for title_id in title_ids]
    if None in rows:
        missing = [title_id for title_id, row in zip(title_ids, rows) if row is None]
        raise not_found(f"unknown poster id(s) in {field}: {echoed_list(missing)}")
    return rows


def preferences_of(index: PublishedIndex, req: RecommendationRequest) -> Preferences | None:
    """The request's weights, negative examples and filters resolved against ``index``; None when it has none."""
    if not req.has_preferences:
        return None
    return Preferences(
        weights=req.weights,
        negative_rows=tuple(poster_rows(index, req.negative, "negative")),
        exclude=title_ordinals_of(index, req.exclude),
        allowed=allowed_titles(index, req.genres, req.year_min, req.year_max),
    )


def recommend(
    index: PublishedIndex,
    rows: list[int],
    k: int,
    aggregation: str,
    exclude_history: bool,
    signal: str,
    preferences: Preferences | None,
    poster_weight: float,
) -> tuple[Ranked, str]:
    """The ``k`` recommendations for the history at poster ``rows`` (oldest first) by ``signal``, and the
    signal that ranked them (``poster`` where ``hybrid`` falls back to it). ``behaviour`` and ``hybrid``
    need ``index.behaviour`` (:func:`check_signal`)."""
    if signal == "poster":
        return recommend_rows(index, rows, k, aggregation, exclude_history, preferences), "poster"
    behaviour = index.behaviour
    asked, preferences = preferences, preferences or Preferences()
    titles = index.title_of_row[rows]
    exclude = excluded_titles(index, rows, exclude_history, preferences)
    weights = np.ones(len(rows), np.float32) if preferences.weights is None else preferences.weights
    negative = negative_query(behaviour.embeddings, index.title_of_row[list(preferences.negative_rows)].tolist())
    if signal == "behaviour":
        query = steered(behaviour_query(behaviour, titles, weights), negative)
        return nearest_titles(behaviour, query, k, exclude, "history", preferences.allowed), "behaviour"
    warm = behaviour.warm[titles]
    if not warm.any():
        return recommend_rows(index, rows, k, aggregation, exclude_history, asked), "poster"
    query = steered(behaviour_query(behaviour, titles[warm], weights[warm]), negative)
    if poster_weight == 0:
        return nearest_titles(behaviour, query, k, exclude, "history", preferences.allowed), "hybrid"
    poster_query = steered(
        unit_weighted_sum(
            index.embeddings, np.asarray(rows, np.int64), history_weights(len(rows), aggregation, weights)
        ),
        negative_query(index.embeddings, preferences.negative_rows),
    )
    return blended(index, query, poster_query, k, exclude, preferences.allowed, poster_weight), "hybrid"


def behaviour_query(behaviour: BehaviourIndex, titles: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The unit weighted mean of the behaviour vectors of the latest ``context_length`` of ``titles``."""
    latest = slice(-behaviour.context_length, None)
    return unit_weighted_sum(behaviour.embeddings, np.asarray(titles[latest], np.int64), weights[latest])


def blended(
    index: PublishedIndex,
    query: np.ndarray,
    poster_query: np.ndarray,
    k: int,
    exclude: set[int],
    allowed: np.ndarray | None,
    poster_weight: float,
) -> Ranked:
    """The ``k`` titles of best behaviour score + ``poster_weight`` x poster score among the
    :data:`HYBRID_CANDIDATES` nearest titles of each signal."""
    depth = max(HYBRID_CANDIDATES, k)
    behaviour = index.behaviour
    near_behaviour = nearest_titles(behaviour, query, depth, exclude, "history", allowed)
    near_posters = nearest_titles(index, poster_query, depth, exclude, "history", allowed)
    candidates = np.array(sorted(set(near_behaviour.titles) | set(near_posters.titles)), np.int64)
    if not len(candidates):
        return Ranked([], [])
    scores = behaviour.embeddings[candidates] @ query
    scores += poster_weight * (index.embeddings[index.original_row_of_title[candidates]] @ poster_query)
    best = np.argsort(-scores, kind="stable")[:k]
    return Ranked(candidates[best].tolist(), scores[best].tolist())
