"""Sharded index versions: the titles split by a stable hash, one ScaNN searcher per shard, top-k merged exactly.

A shard holds every row of its titles (an original and its regional
variants), so a shard is a complete index of those titles. A query searches
every shard for its top-k and the results are merged by score: after ScaNN's
re-ordering (and in brute force) the scores are exact dot products, so the
merged top-k is the best k of all the shards found: the exact top-k when every
shard answers exactly (brute-force shards), and otherwise missing only what a
shard's own search missed. A version of one shard is laid out and searched as
an unsharded version always was::

    versions/<version>/
      scann/                       # one shard: the serialized searcher over every row
      shards/<i>/rows.npy          # several: the version's rows the shard holds, ascending
      shards/<i>/scann/            #          and the searcher over them, in that order
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .scann_index import TUNING_QUERIES, IndexParams, QueryKind, RecallProbe, build_tuned, measure_recall

SCANN_DIR = "scann"
SHARDS_DIR = "shards"
ROWS_FILE = "rows.npy"


class ShardError(ValueError):
    """A shard of a version that is missing, unreadable or does not fit the version, with the reason."""


def shard_of_title(title_id: str, shards: int) -> int:
    """The shard of ``title_id`` among ``shards``: a hash of the id, the same on every machine and Python run."""
    digest = hashlib.blake2b(title_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def partition_rows(title_ids: Sequence[str], shards: int) -> list[np.ndarray]:
    """Per shard, the rows (ascending) whose title it holds; ``title_ids[row]`` is the title of each row.

    Raises:
        ShardError: for fewer than 1 shard, or a shard that none of the titles falls into.
    """
    if shards < 1:
        raise ShardError(f"an index needs at least 1 shard, got {shards}")
    shard_of = {title_id: shard_of_title(title_id, shards) for title_id in dict.fromkeys(title_ids)}
    of_row = np.fromiter((shard_of[title_id] for title_id in title_ids), np.int64, len(title_ids))
    partition = [np.flatnonzero(of_row == shard) for shard in range(shards)]
    empty = [number for number, rows in enumerate(partition) if not len(rows)]
    if empty:
        raise ShardError(f"{len(shard_of)} titles leave shard {empty[0]} of {shards} empty: use fewer shards")
    return partition


class Shard:
    """One searcher, the parameters it searches with, and the version's rows it holds (``rows`` None: all, in order)."""

    def __init__(self, searcher: Any, params: IndexParams, size: int, rows: np.ndarray | None = None) -> None:
        self.searcher, self.params, self.size, self.rows = searcher, params, size, rows
        self._leaves = {kind: params.search_options(kind).get("leaves_to_search", -1) for kind in ("poster", "history")}
        """Per query kind, as ScaNN's positional argument (-1: the searcher's own setting)."""
        self._reorder_k = 0 if params.exact else params.reorder_k

    def search(self, query: np.ndarray, k: int, kind: QueryKind = "poster") -> tuple[np.ndarray, np.ndarray]:
        """One query's top-``k`` rows of the version and their scores, as this shard's searched leaves hold them."""
        k = min(k, self.size)
        rows, scores = self.searcher.search(query, k, self._pre_reorder(k), self._leaves[kind])
        rows = np.asarray(rows, dtype=np.int64)
        return (rows if self.rows is None else self.rows[rows]), np.asarray(scores, dtype=np.float32)

    def search_batched(self, queries: np.ndarray, k: int, kind: QueryKind = "poster") -> tuple[np.ndarray, np.ndarray]:
        """Each query's top-``k`` rows and scores; a query whose searched leaves hold fewer is padded with NaN."""
        k = min(k, self.size)
        rows, scores = self.searcher.search_batched(queries, k, self._pre_reorder(k), self._leaves[kind])
        rows, scores = np.asarray(rows, dtype=np.int64), np.asarray(scores, dtype=np.float32)
        return (rows if self.rows is None else self.rows[rows]), scores

    def _pre_reorder(self, k: int) -> int:
        """ScaNN re-orders only ``reorder_k`` candidates and pads past them with NaN: a deeper search re-orders ``k``."""
        return k if k > self._reorder_k > 0 else -1

    @property
    def reorder_limit(self) -> int | None:
        """Rows a search re-orders as a request's does (None: any number)."""
        return self._reorder_k or None


class ShardSet:
    """The shards of one version searched as one index: each query's top-k is merged from every shard's."""

    def __init__(self, shards: Sequence[Shard]) -> None:
        if not shards:
            raise ValueError("a version needs at least one shard")
        self.shards = tuple(shards)
        self._only = self.shards[0] if len(self.shards) == 1 else None

    def __len__(self) -> int:
        return len(self.shards)

    def search(self, query: np.ndarray, k: int, kind: QueryKind = "poster") -> tuple[np.ndarray, np.ndarray]:
        """One query's top-``k`` among the rows every shard's searched leaves hold: fewer when they hold fewer."""
        if self._only is not None:
            return self._only.search(query, k, kind)
        found = [shard.search(query, k, kind) for shard in self.shards]
        rows, scores = np.concatenate([r for r, _ in found]), np.concatenate([s for _, s in found])
        best = np.argsort(-scores, kind="stable")[:k]
        return rows[best], scores[best]

    def search_batched(
        self, queries: np.ndarray, final_num_neighbors: int, kind: QueryKind = "poster"
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each query's top-``final_num_neighbors``; a query whose shards found fewer is padded with NaN."""
        k = final_num_neighbors
        if self._only is not None:
            return self._only.search_batched(queries, k, kind)
        found = [shard.search_batched(queries, k, kind) for shard in self.shards]
        rows = np.concatenate([r for r, _ in found], axis=1)
        scores = np.concatenate([s for _, s in found], axis=1)
        ranked = np.where(np.isfinite(scores), scores, -np.inf)
        best = np.argsort(-ranked, axis=1, kind="stable")[:, :k]
        rows, scores = np.take_along_axis(rows, best, axis=1), np.take_along_axis(scores, best, axis=1)
        return rows, np.where(np.isfinite(np.take_along_axis(ranked, best, axis=1)), scores, np.nan)

    @property
    def reorder_limit(self) -> int | None:
        """Rows a search re-orders in every shard as a request's does (None: any number)."""
        limits = [shard.reorder_limit for shard in self.shards if shard.reorder_limit]
        return min(limits) if limits else None


@dataclasses.dataclass(frozen=True)
class BuiltShard:
    """A shard's searcher as built, before it is checked and published."""

    shard: Shard
    build_seconds: float


def build_shard(
    embeddings: np.ndarray, rows: np.ndarray | None, exact_search_max_items: int, recall_floor: float, k: int = 10
) -> BuiltShard:
    """A searcher over ``embeddings[rows]`` (all of them for None) tuned to clear ``recall_floor``."""
    vectors = embeddings if rows is None else embeddings[rows]
    searcher, params, seconds = build_tuned(vectors, exact_search_max_items, recall_floor, k)
    return BuiltShard(Shard(searcher, params, len(vectors), rows), seconds)


def build_shards(
    embeddings: np.ndarray,
    partition: Sequence[np.ndarray] | None,
    exact_search_max_items: int,
    recall_floor: float,
    k: int = 10,
) -> list[BuiltShard]:
    """A shard over each part of ``partition`` (:func:`partition_rows`; None: one over every row), one after another."""
    if partition is None:
        return [build_shard(embeddings, None, exact_search_max_items, recall_floor, k)]
    return [build_shard(embeddings, rows, exact_search_max_items, recall_floor, k) for rows in partition]


def shard_directory(version_dir: Path, shard: int) -> Path:
    return Path(version_dir) / SHARDS_DIR / str(shard)


def save_shards(version_dir: Path, shards: ShardSet) -> None:
    """Serialize every shard's searcher (and, when several, the rows each holds) into a staged version."""
    if len(shards) == 1:
        _serialize(shards.shards[0].searcher, Path(version_dir) / SCANN_DIR)
        return
    for number, shard in enumerate(shards.shards):
        directory = shard_directory(version_dir, number)
        directory.mkdir(parents=True)
        np.save(directory / ROWS_FILE, shard.rows)
        _serialize(shard.searcher, directory / SCANN_DIR)


def _serialize(searcher, directory: Path) -> None:
    directory.mkdir()
    searcher.serialize(str(directory), relative_path=True)  # the version directory is renamed after writing


def shard_manifests(manifest: dict) -> list[dict] | None:
    """The per-shard entries a manifest records, or None for a version of one shard."""
    entries = manifest.get("shards")
    if entries is None:
        return None
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise ShardError(f"its manifest's shards are {json.dumps(entries)[:80]}, not a list of shard records")
    return entries


def load_shards(version_dir: Path, manifest: dict, item_count: int) -> ShardSet:
    """The searchers of a version; raises :class:`ShardError` naming a shard that is missing or does not fit."""
    import scann  # deferred: loading the ScaNN ops costs start-up time that listing versions does not need

    entries = shard_manifests(manifest)
    if entries is None:
        searcher = scann.scann_ops_pybind.load_searcher(str(Path(version_dir) / SCANN_DIR))
        return ShardSet([Shard(searcher, IndexParams.from_manifest(manifest) or IndexParams(), item_count)])
    shards = []
    for number, entry in enumerate(entries):
        directory = shard_directory(version_dir, number)
        try:
            rows = np.load(directory / ROWS_FILE)
            params = IndexParams.from_manifest(entry)
            if params is None:
                raise ValueError("its manifest record has no parameters")
            if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer) or len(rows) != entry.get("rows"):
                raise ValueError(
                    f"its rows file holds {rows.shape} {rows.dtype}, the manifest says {entry.get('rows')} rows"
                )
            searcher = scann.scann_ops_pybind.load_searcher(str(directory / SCANN_DIR))
        except (OSError, ValueError, RuntimeError, TypeError) as err:
            raise ShardError(f"shard {number} of {len(entries)} ({directory}) cannot be loaded: {err}") from err
        shards.append(Shard(searcher, params, len(rows), rows.astype(np.int64)))
    every = np.sort(np.concatenate([shard.rows for shard in shards]))
    if not np.array_equal(every, np.arange(item_count)):
        raise ShardError(f"its {len(shards)} shards do not hold each of its {item_count} rows exactly once")
    return ShardSet(shards)


def merged_recall(shards: ShardSet, embeddings: np.ndarray, k: int = 10, kind: QueryKind = "poster") -> float:
    """Recall@k of the merged search over all of a version's ``embeddings`` against exact search (seed 0, as
    :func:`~indexer.scann_index.measure_recall`)."""
    probe = (RecallProbe.histories if kind == "history" else RecallProbe.sample)(embeddings, k, TUNING_QUERIES, seed=0)
    return probe.recall(shards, kind=kind)


def shard_record(built: BuiltShard, embeddings: np.ndarray, k: int = 10) -> dict:
    """What a manifest records of one of several shards: its rows, parameters, build time and its own recall
    (on its own rows, poster and history queries)."""
    shard = built.shard
    vectors = embeddings[shard.rows]
    return {
        "rows": int(shard.size),
        "params": dataclasses.asdict(shard.params),
        f"recall_at_{k}": round(measure_recall(shard.searcher, vectors, k=k, params=shard.params), 4),
        f"history_recall_at_{k}": round(
            measure_recall(shard.searcher, vectors, k=k, params=shard.params, kind="history"), 4
        ),
        "build_seconds": round(built.build_seconds, 3),
    }
