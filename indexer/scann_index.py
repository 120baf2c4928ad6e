"""Building a ScaNN searcher with parameters chosen by corpus size, and measuring its recall.

Small corpora are searched brute force: exact, and faster to build than a
tree. Above ``exact_search_max_items`` the searcher partitions into about
2 sqrt(N) leaves by spherical k-means, scores with asymmetric hashing and re-orders the best
candidates exactly — ScaNN's recommended recipe.

How many leaves a query must visit depends on the data, not only on N
(clustered embeddings need a few percent, structureless vectors most of them),
so :func:`build_tuned` builds once, then raises the number of leaves searched
(a query-time setting, no rebuild) until the measured recall reaches the
floor, and falls back to brute force when that would mean visiting most of the
index anyway.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import Any, Literal

import numpy as np

log = logging.getLogger(__name__)

QueryKind = Literal["poster", "history"]
"""What a query vector is: one poster's embedding, or the average of a watch history, which falls between
clusters and needs more leaves for the same recall (:class:`RecallProbe`); each kind searches its own number."""

LEAF_FRACTIONS = (0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.275, 0.35, 0.5)
"""Fractions of the leaves tried, in order, when tuning; past the last one brute force is as fast.

From 0.3% (clustered data need no more, and every leaf searched costs query time) in steps of about
1.4x, so the chosen setting overshoots the need by little."""
LEAVES_PER_SQRT_N = 2
"""Leaves per sqrt(N): finer leaves that follow the data's clusters let a query visit fewer rows."""
EXACT_BLOCK_SCORES = 32 * 2**20
"""Scores computed at once by :func:`exact_top_k` (128 MB of float32)."""
TUNING_MARGIN = 0.025
"""Tune to this much above the floor, so the independent final measurement does not fall under it by noise.

Two 1000-query samples of one searcher's recall@10 differ by a standard deviation of about 0.007; the
margin is 3.5 of those."""
TUNING_QUERIES = 1000
"""Queries in the tuner's sample and in the publisher's independent check."""
HISTORY_QUERY_TITLES = 5
"""Titles averaged into one history probe query (a short watch history of unrelated titles: the hard case)."""


@dataclasses.dataclass(frozen=True)
class IndexParams:
    """ScaNN parameters; ``num_leaves == 0`` means brute force."""

    num_neighbors: int = 10
    num_leaves: int = 0
    num_leaves_to_search: int = 0
    history_leaves_to_search: int = 0
    """Leaves searched for history queries (a watch history's averaged vector); 0: as for poster queries."""
    training_sample_size: int = 0
    spherical: bool = False
    """Partition by spherical k-means (centroids on the unit sphere), as suits unit vectors scored by dot product."""
    dimensions_per_block: int = 2
    anisotropic_quantization_threshold: float = 0.2
    reorder_k: int = 0

    @property
    def exact(self) -> bool:
        return self.num_leaves == 0

    def search_options(self, kind: QueryKind = "poster") -> dict[str, Any]:
        """Keyword arguments for ``search``/``search_batched`` that apply these parameters at query time.

        The number of leaves searched is passed on every query rather than
        trusted from the serialized searcher, because tuning changes it after
        the build. Each :data:`QueryKind` gets its own setting.
        """
        if self.exact:
            return {}
        leaves = (
            self.history_leaves_to_search
            if kind == "history" and self.history_leaves_to_search
            else self.num_leaves_to_search
        )
        return {"leaves_to_search": leaves}

    @classmethod
    def from_manifest(cls, manifest: dict) -> IndexParams | None:
        """The parameters a version was published with, or None for manifests that predate them."""
        stored = manifest.get("params")
        if not isinstance(stored, dict):
            return None
        defaults = {field.name: field.default for field in dataclasses.fields(cls)}
        given = {key: value for key, value in stored.items() if key in defaults}
        for key, value in given.items():
            if not _is_like(value, defaults[key]):
                raise ValueError(f"index parameter {key} is {value!r}, not a {type(defaults[key]).__name__}")
        return cls(**given)


def _is_like(value: Any, default: bool | int | float) -> bool:
    """A bool where the default is one; an int where the default is one (a bool is not); an int or float
    where it is a float."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    return isinstance(value, int) if isinstance(default, int) else isinstance(value, (int, float))


def choose_params(n: int, exact_search_max_items: int, num_neighbors: int = 10) -> IndexParams:
    """Brute force up to ``exact_search_max_items``; tree + AH + re-ordering above it.

    The leaves searched start at the first tuning step; :func:`build_tuned` raises them if recall needs it.
    2 sqrt(N) leaves partitioned by spherical k-means, and 100 re-ordered candidates (docs/benchmarks.md,
    "Index").
    """
    if n <= exact_search_max_items:
        return IndexParams(num_neighbors=num_neighbors)
    leaves = max(2, int(round(LEAVES_PER_SQRT_N * math.sqrt(n))))
    return IndexParams(
        num_neighbors=num_neighbors,
        num_leaves=leaves,
        num_leaves_to_search=max(1, int(leaves * LEAF_FRACTIONS[0])),
        training_sample_size=min(n, 250_000),
        spherical=True,
        reorder_k=max(100, 10 * num_neighbors),
    )


def build_searcher(embeddings: np.ndarray, params: IndexParams):
    """A ScaNN searcher over L2-normalised ``embeddings`` scored by dot product (= cosine)."""
    import scann

    builder = scann.scann_ops_pybind.builder(
        np.asarray(embeddings, dtype=np.float32), params.num_neighbors, "dot_product"
    )
    if params.exact:
        return builder.score_brute_force().build()
    return (
        builder.tree(
            num_leaves=params.num_leaves,
            num_leaves_to_search=params.num_leaves_to_search,
            training_sample_size=params.training_sample_size,
            spherical=params.spherical,
        )
        .score_ah(
            params.dimensions_per_block, anisotropic_quantization_threshold=params.anisotropic_quantization_threshold
        )
        .reorder(params.reorder_k)
        .build()
    )


def exact_top_k(embeddings: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact top-``k`` rows by dot product, in NumPy: the reference recall is measured against.

    Queries are scored in blocks of about 32M scores, so 1000 queries against
    1M vectors need 128 MB at a time instead of 4 GB.
    """
    k = min(k, embeddings.shape[0])
    block = max(1, EXACT_BLOCK_SCORES // max(1, embeddings.shape[0]))
    out = np.empty((len(queries), k), np.int64)
    for start in range(0, len(queries), block):
        scores = queries[start : start + block] @ embeddings.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        out[start : start + block] = np.take_along_axis(top, order, axis=1)
    return out


TIE_TOLERANCE = 1e-5
"""A found row whose exact score is within this of a query's k-th best counts as a true neighbour."""


@dataclasses.dataclass(frozen=True)
class RecallProbe:
    """Sample queries and their exact top-k, computed once and reused for every setting tried."""

    embeddings: np.ndarray
    queries: np.ndarray
    truth: np.ndarray
    """Each query's exact top-k rows, best first."""

    @classmethod
    def of(cls, embeddings: np.ndarray, queries: np.ndarray, k: int) -> RecallProbe:
        """``queries`` against ``embeddings``, with their exact top-``k`` (capped at the corpus size)."""
        return cls(embeddings, queries, exact_top_k(embeddings, queries, min(k, embeddings.shape[0])))

    @classmethod
    def sample(cls, embeddings: np.ndarray, k: int = 10, sample: int = 500, seed: int = 0) -> RecallProbe:
        """Poster queries (``/similar``): corpus vectors with a little noise, so a query is not trivially its own nearest neighbour."""
        rng = np.random.default_rng(seed)
        n = embeddings.shape[0]
        rows = rng.choice(n, size=min(sample, n), replace=False)
        queries = embeddings[rows] + rng.normal(scale=0.05, size=(len(rows), embeddings.shape[1])).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        return cls.of(embeddings, queries.astype(np.float32), k)

    @classmethod
    def histories(cls, embeddings: np.ndarray, k: int = 10, sample: int = 500, seed: int = 0) -> RecallProbe:
        """History queries (``/recommendations``): the normalised mean of :data:`HISTORY_QUERY_TITLES` random corpus vectors.

        Such a mean falls between clusters, where a tree finds fewer true neighbours than for a poster's
        own vector, so history queries are tuned on their own.
        """
        rng = np.random.default_rng(seed)
        n = embeddings.shape[0]
        means = embeddings[rng.integers(0, n, size=(min(sample, n), HISTORY_QUERY_TITLES))].mean(axis=1)
        queries = (means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)).astype(np.float32)
        return cls.of(embeddings, queries, k)

    def recall(self, searcher, **search_options: Any) -> float:
        """The share of the exact top-k that ``searcher`` finds. A found row that scores as well as a query's
        k-th best (``TIE_TOLERANCE``) counts, so that duplicated vectors, which tie for a place, do not lower it."""
        k = self.truth.shape[1]
        found, _ = searcher.search_batched(self.queries, final_num_neighbors=k, **search_options)
        kth_scores = np.einsum("qd,qd->q", self.embeddings[self.truth[:, -1]], self.queries)
        hits = 0
        for query, rows, kth in zip(self.queries, found, kth_scores):
            rows = np.unique(np.asarray(rows, np.int64))
            hits += int(np.count_nonzero(self.embeddings[rows] @ query >= kth - TIE_TOLERANCE))
        return hits / self.truth.size


def measure_recall(
    searcher,
    embeddings: np.ndarray,
    k: int = 10,
    sample: int = TUNING_QUERIES,
    seed: int = 0,
    params: IndexParams | None = None,
    kind: QueryKind = "poster",
) -> float:
    """Recall@k of ``searcher`` (searched with ``params``' query-time options) against exact search, on poster or history queries."""
    probe = (RecallProbe.histories if kind == "history" else RecallProbe.sample)(embeddings, k, sample, seed)
    return probe.recall(searcher, **(params.search_options(kind) if params else {}))


def first_leaves_reaching(
    searcher, probe: RecallProbe, params: IndexParams, target: float, at_least: int
) -> int | None:
    """The leaves of the first of :data:`LEAF_FRACTIONS` (not under ``at_least``) whose recall on ``probe`` reaches ``target``."""
    tried = 0
    for fraction in LEAF_FRACTIONS:
        leaves = max(at_least, int(round(params.num_leaves * fraction)))
        if leaves <= tried:  # small fractions of few leaves round to the same count
            continue
        tried = leaves
        recall = probe.recall(searcher, leaves_to_search=leaves)
        log.info(
            "tuning: %d of %d leaves -> recall@%d %.3f (target %.3f)",
            leaves,
            params.num_leaves,
            probe.truth.shape[1],
            recall,
            target,
        )
        if recall >= target:
            return leaves
    return None


def tune_leaves_to_search(
    searcher, embeddings: np.ndarray, params: IndexParams, target: float, k: int = 10
) -> IndexParams | None:
    """Leaves searched for poster queries, then for history queries, each the least that reaches ``target``; None when posters cannot.

    Tuned on its own query samples (seed 1), so the recall the publisher
    measures afterwards (seed 0) is an independent check, not a replay. When
    history queries do not reach the target within the last fraction they
    search that many leaves and the shortfall is logged (and recorded by the
    publisher): brute force would cost every recommendation a full scan.
    """
    posters = first_leaves_reaching(
        searcher, RecallProbe.sample(embeddings, k, TUNING_QUERIES, seed=1), params, target, params.num_leaves_to_search
    )
    if posters is None:
        return None
    histories = first_leaves_reaching(
        searcher, RecallProbe.histories(embeddings, k, TUNING_QUERIES, seed=1), params, target, posters
    )
    if histories is None:
        histories = max(posters, int(round(params.num_leaves * LEAF_FRACTIONS[-1])))
        log.warning(
            "history queries do not reach recall@%d %.3f within %d of %d leaves; searching that many",
            k,
            target,
            histories,
            params.num_leaves,
        )
    return dataclasses.replace(params, num_leaves_to_search=posters, history_leaves_to_search=histories)


def build_tuned(
    embeddings: np.ndarray, exact_search_max_items: int, recall_floor: float, k: int = 10
) -> tuple[object, IndexParams, float]:
    """A searcher whose leaves searched are raised until recall@k clears the floor; (searcher, params, build seconds).

    Brute force when the corpus is small or when the partition would have to be
    searched over half-way to reach the floor (no faster than brute force then).
    """
    params = choose_params(len(embeddings), exact_search_max_items, num_neighbors=k)
    searcher, seconds = timed_build(embeddings, params)
    if params.exact:
        return searcher, params, seconds
    target = min(1.0, recall_floor + TUNING_MARGIN)
    tuned = tune_leaves_to_search(searcher, embeddings, params, target, k)
    if tuned is not None:
        return searcher, tuned, seconds
    log.warning(
        "tree + AH needs over %.0f%% of %d leaves for recall@%d %.3f on these vectors; searching brute force instead",
        100 * LEAF_FRACTIONS[-1],
        params.num_leaves,
        k,
        target,
    )
    exact = IndexParams(num_neighbors=k)
    searcher, exact_seconds = timed_build(embeddings, exact)
    return searcher, exact, seconds + exact_seconds


def timed_build(embeddings: np.ndarray, params: IndexParams) -> tuple[object, float]:
    started = time.perf_counter()
    searcher = build_searcher(embeddings, params)
    return searcher, time.perf_counter() - started
