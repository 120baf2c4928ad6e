"""Building a ScaNN searcher with parameters chosen by corpus size, and measuring its recall.

Small corpora are searched brute force: exact, and faster to build than a
tree. Above ``exact_search_max_items`` the searcher partitions into about
sqrt(N) leaves, scores with asymmetric hashing and re-orders the best
candidates exactly — ScaNN's recommended recipe. Whatever is built, its
recall@k against exact search is measured before anyone is allowed to serve it.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np


@dataclasses.dataclass(frozen=True)
class IndexParams:
    """ScaNN parameters; ``num_leaves == 0`` means brute force."""

    num_neighbors: int = 10
    num_leaves: int = 0
    num_leaves_to_search: int = 0
    training_sample_size: int = 0
    dimensions_per_block: int = 2
    anisotropic_quantization_threshold: float = 0.2
    reorder_k: int = 0

    @property
    def exact(self) -> bool:
        return self.num_leaves == 0


def choose_params(n: int, exact_search_max_items: int, num_neighbors: int = 10) -> IndexParams:
    """Brute force up to ``exact_search_max_items``; tree + AH + re-ordering above it."""
    if n <= exact_search_max_items:
        return IndexParams(num_neighbors=num_neighbors)
    leaves = max(2, int(round(math.sqrt(n))))
    return IndexParams(
        num_neighbors=num_neighbors,
        num_leaves=leaves,
        num_leaves_to_search=max(1, leaves // 20),
        training_sample_size=min(n, 250_000),
        reorder_k=max(100, 10 * num_neighbors),
    )


def build_searcher(embeddings: np.ndarray, params: IndexParams):
    """A ScaNN searcher over L2-normalised ``embeddings`` scored by dot product (= cosine)."""
    import scann

    builder = scann.scann_ops_pybind.builder(np.asarray(embeddings, dtype=np.float32), params.num_neighbors, "dot_product")
    if params.exact:
        return builder.score_brute_force().build()
    return (
        builder.tree(
            num_leaves=params.num_leaves,
            num_leaves_to_search=params.num_leaves_to_search,
            training_sample_size=params.training_sample_size,
        )
        .score_ah(params.dimensions_per_block, anisotropic_quantization_threshold=params.anisotropic_quantization_threshold)
        .reorder(params.reorder_k)
        .build()
    )


def exact_top_k(embeddings: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact top-``k`` rows by dot product, in NumPy: the reference recall is measured against."""
    scores = queries @ embeddings.T
    k = min(k, embeddings.shape[0])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
    return np.take_along_axis(top, order, axis=1)


def measure_recall(searcher, embeddings: np.ndarray, k: int = 10, sample: int = 500, seed: int = 0) -> float:
    """Recall@k of ``searcher`` against exact search, on a sample of the corpus as queries.

    Queries are corpus vectors with a little noise so that a query is not
    trivially its own nearest neighbour.
    """
    rng = np.random.default_rng(seed)
    n = embeddings.shape[0]
    k = min(k, n)
    rows = rng.choice(n, size=min(sample, n), replace=False)
    queries = embeddings[rows] + rng.normal(scale=0.05, size=(len(rows), embeddings.shape[1])).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    truth = exact_top_k(embeddings, queries, k)
    found, _ = searcher.search_batched(queries, final_num_neighbors=k)
    hits = sum(len(set(map(int, f)) & set(map(int, t))) for f, t in zip(found, truth))
    return hits / (len(rows) * k)


def timed_build(embeddings: np.ndarray, params: IndexParams) -> tuple[object, float]:
    started = time.perf_counter()
    searcher = build_searcher(embeddings, params)
    return searcher, time.perf_counter() - started
