"""Retrieval quality of an embedding and a guard against representation collapse.

Quality is measured as in "A Metric Learning Reality Check" (Musgrave et al.
2020): MAP@R, where R is the number of posters relevant to the query, and
precision@10, with cosine similarity. Genres are weak labels, so two notions
of relevance are reported: sharing the primary (first listed) genre, and
sharing at least one genre.

A triplet loss can be satisfied trivially by mapping everything to nearly
one point. :func:`check_not_collapsed` fails a model whose embeddings are
that close together, and :func:`embedding_spread` is reported with every run.

A space can also be *crowded* without being collapsed: every vector shares
one large component, so any two posters score near 1.000 and the scores say
nothing although their order still ranks. :func:`score_distribution` reports
the median cosine of a poster to its 10th neighbour and to any other poster;
:func:`check_not_crowded` fails a space where unrelated posters score high.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from models.labels import genre_vocabulary, multi_hot

MIN_SPREAD = 1e-3
"""Smallest acceptable mean pairwise cosine distance (1e-3: pairs about 2.5 degrees apart on average).

Measured spreads: pooled features of a randomly initialised NASNetMobile 0.03, after its genre
warm-up 0.09, after triplet tuning 0.7-0.9 (real posters); the tiny backbone on the demo corpus 0.005
after warm-up and 0.015 after triplet tuning, while still ranking well (MAP@R 0.49). Bunched but
ordered embeddings are not collapsed, so the threshold sits well below those; a collapsed model is
near 0.
"""


MAX_RANDOM_COSINE = 0.9
"""Largest acceptable median cosine between two posters taken at random: above it, every similarity score
reads 0.9-1.0. Centred embeddings of trained models sit near 0 on hundreds of posters (a tiny model
trained for a few epochs on a split of 4 posters measured 0.66)."""


class CollapseError(RuntimeError):
    """All embeddings sit (nearly) on one point, or so close together that their scores say nothing."""


def _unit_rows(embeddings: np.ndarray) -> np.ndarray:
    embeddings = np.asarray(embeddings, np.float32)
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    return embeddings / np.maximum(norms, 1e-12)


def embedding_spread(embeddings: np.ndarray) -> float:
    """Mean cosine distance between distinct embeddings (0 = collapsed, about 1 = spread out)."""
    unit = _unit_rows(embeddings)
    n = len(unit)
    if n < 2:
        return 0.0
    mean_vector = unit.sum(axis=0)
    mean_similarity = (float(mean_vector @ mean_vector) - n) / (n * (n - 1))
    return 1.0 - mean_similarity


def check_not_collapsed(embeddings: np.ndarray, min_spread: float = MIN_SPREAD) -> float:
    """The spread, or :class:`CollapseError` when it is below ``min_spread``."""
    spread = embedding_spread(embeddings)
    norms = np.linalg.norm(np.asarray(embeddings, np.float32), axis=1)
    if not norms.min(initial=np.inf) > 1e-6:  # also catches NaN; a zero vector has no direction
        raise CollapseError(f"embeddings collapsed: {int((~(norms > 1e-6)).sum())} of {len(norms)} have no direction")
    if not spread >= min_spread:  # also catches NaN
        raise CollapseError(
            f"embeddings collapsed: mean pairwise cosine distance {spread:.4f} < {min_spread} "
            f"over {len(embeddings)} posters"
        )
    return spread


def score_distribution(embeddings: np.ndarray, k: int = 10) -> dict[str, float]:
    """Median cosine of a poster to its ``k``-th nearest neighbour and to every other poster.

    Their gap is what makes similarity scores readable: close to 1 both, and every list reads 1.000.
    """
    unit = _unit_rows(embeddings)
    similarity = unit @ unit.T
    n = len(unit)
    off_diagonal = similarity[~np.eye(n, dtype=bool)]
    np.fill_diagonal(similarity, -np.inf)
    kth = min(k, n - 1)
    neighbour = -np.partition(-similarity, kth - 1, axis=1)[:, kth - 1] if kth >= 1 else np.array([np.nan])
    return {
        f"cosine_neighbour_{k}_median": float(np.median(neighbour)),
        "cosine_random_median": float(np.median(off_diagonal)) if n > 1 else float("nan"),
    }


def check_not_crowded(embeddings: np.ndarray, max_random_cosine: float = MAX_RANDOM_COSINE) -> float:
    """The median cosine between any two posters, or :class:`CollapseError` when it exceeds ``max_random_cosine``."""
    median = score_distribution(embeddings)["cosine_random_median"]
    if not median <= max_random_cosine:  # also catches NaN
        raise CollapseError(
            f"embeddings crowded: two posters taken at random have median cosine {median:.4f} > {max_random_cosine} "
            f"over {len(embeddings)} posters, so every similarity score reads close to 1"
        )
    return median


def _ranked_relevance(embeddings: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """For each query, relevance of the other items in order of decreasing similarity."""
    unit = _unit_rows(embeddings)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    order = np.argsort(-similarity, axis=1, kind="stable")[:, :-1]  # the query itself sorts last
    return np.take_along_axis(relevant, order, axis=1)


def map_at_r_and_precision(
    embeddings: np.ndarray, relevant: np.ndarray, k: int = 10
) -> tuple[float | None, float | None]:
    """Mean MAP@R and precision@k over queries that have at least one relevant item.

    None, None when no query has one (a split whose posters share no genre):
    the metrics are undefined there, and None is what a JSON manifest can hold.
    """
    relevant = relevant.astype(bool).copy()
    np.fill_diagonal(relevant, False)
    r = relevant.sum(axis=1)
    queries = r > 0
    if not queries.any():
        return None, None
    ranked = _ranked_relevance(embeddings, relevant).astype(np.float32)
    ranked, r = ranked[queries], r[queries]
    positions = np.arange(1, ranked.shape[1] + 1)
    precision_at_i = np.cumsum(ranked, axis=1) / positions
    within_r = positions[None, :] <= r[:, None]
    map_at_r = (precision_at_i * ranked * within_r).sum(axis=1) / r
    return float(map_at_r.mean()), float(ranked[:, :k].mean())


def retrieval_metrics(
    embeddings: np.ndarray, genre_sets: Sequence[Sequence[str]], k: int = 10
) -> dict[str, float | None]:
    """MAP@R and precision@k for "same primary genre" and "shares a genre"."""
    primary = np.array([genres[0] for genres in genre_sets])
    targets = multi_hot(genre_sets, genre_vocabulary(genre_sets))
    same_primary = primary[:, None] == primary[None, :]
    share_any = (targets @ targets.T) > 0
    map_primary, p_primary = map_at_r_and_precision(embeddings, same_primary, k)
    map_any, p_any = map_at_r_and_precision(embeddings, share_any, k)
    return {
        "map_at_r_primary": map_primary,
        f"precision_at_{k}_primary": p_primary,
        "map_at_r_any": map_any,
        f"precision_at_{k}_any": p_any,
        "spread": embedding_spread(embeddings),
        **score_distribution(embeddings, k),
    }
