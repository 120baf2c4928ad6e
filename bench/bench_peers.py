"""Peer benchmark: ScaNN as the indexer builds it against the vector search a user would pick instead.

The same vectors (bench_index's clustered 128-d mixture, unit norm, dot
product), the same held-out queries and the same recall floor for every
engine: ScaNN built by :func:`indexer.scann_index.build_tuned`, faiss IVF-PQ
fast-scan (4-bit codes on 2-d blocks, as ScaNN's AH, with exact re-ranking)
and HNSW, hnswlib, usearch, Chroma (embedded), LanceDB, Milvus Lite and
Qdrant's local mode. Each peer is built once with common parameters and then
tuned like the indexer tunes ScaNN: its query-time knob is raised until
recall@10 on the indexer's own tuning probe reaches the indexer's target
(recall floor + tuning margin), so every engine meets the same bar.

Every engine lives in its own process (its memory is its own, measured as
the RSS of the process and its children after the build, input freed, less
before), and the engines are measured round by round in turn, so drift of the
shared machine hits all of them alike: single-query latency (one query per
call, one thread) and batched throughput (100 queries per call, one thread
where the engine takes a thread count). At the database size, PosterRec's
``/similar`` (precomputed lists) and ``/recommendations`` (5-title history)
logic is timed against search-by-stored-id and recommend-from-examples where
an engine has them (Qdrant, Milvus), and against get-then-query for Chroma.

Then end to end over HTTP at that size: PosterRec's API as ``python -m recsvc`` serves it (granian)
(``/v1/posters/<id>/similar`` and ``/v1/search`` by embedding) against
Chroma's own server (``chroma run``) on the same vectors, driven by wrk at 1,
8 and 32 connections, both servers up, in interleaved rounds.

    python bench/bench_peers.py                               # 100k every engine, then 1M the libraries
    python bench/bench_peers.py --sizes 100000                # 100k only
    python bench/bench_peers.py --sizes 30000 --rounds 1 --engines scann,hnswlib --no-http
    python bench/bench_peers.py --engines scann --scann leaves=632,reorder=200   # ScaNN's own knobs

Peers come from the ``peers`` extra (``make bench-peers``); a missing one is skipped and named.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import importlib
import importlib.util
import json
import multiprocessing
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from itertools import cycle
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from posterrec_settings import load_settings  # noqa: E402

from bench.support import (  # noqa: E402
    Server,
    clustered_vectors,
    free_port,
    granian_cli_server,
    percentile_ms,
    posterrec_server,
    run_wrk,
    running_server,
    timed_calls,
)

DIM = 128
K = 10
EVAL_QUERIES = 1000
BATCH = 100
BATCHES = 10
ROUND_SECONDS = 2.0
"""Each measurement of a round goes round its inputs for this long: seconds of calls, so that a pause of the
shared machine weighs little (slow engines answer fewer; at least MIN_TIMED calls, or BATCHES batches)."""
MIN_TIMED = 20
BUILD_THREADS = 2
DATABASE_MAX_N = 100_000
DEFAULT_SIZES = "100000,1000000"
"""Databases (and the by-id comparison) run up to this size; the libraries at every size."""
HISTORY_TITLES = 5
BY_ID_REQUESTS = 200
DATA_FILE = "vectors.npz"


# --- engines ---------------------------------------------------------------------------------------


def shares_of(total: int, fractions: Sequence[float]) -> list[int]:
    """The distinct whole numbers (at least 1) nearest each of ``fractions`` of ``total``, smallest first."""
    return sorted({max(1, round(total * fraction)) for fraction in fractions})


class Engine:
    """One vector search engine: built once, then searched with its query-time knob at a chosen setting.

    Subclasses set ``label``, ``modules`` (imported names; a missing one skips the engine), ``knob``
    (the query-time setting's name) and ``settings`` (its values tried, cheapest first; empty: none).
    """

    label = ""
    modules: tuple[str, ...] = ()
    database = False
    knob = ""
    settings: Sequence[int] = ()
    rebuilds_to_tune = False
    """The knob is fixed when the index is built: each setting tried is a new build (in its own process)."""
    by_id_only = False
    """Only the by-id operations are measured (PosterRec's service logic, not a search engine of its own)."""
    similar: Callable[[int, int], Sequence[int]] | None = None
    """Neighbours of the stored item with this id (the engine's own operation), when it has one."""
    recommend: Callable[[Sequence[int], int], Sequence[int]] | None = None
    """Items recommended from these stored example ids, when the engine has the operation."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.setting: int | None = None

    def build(self, vectors: np.ndarray) -> float:
        """Index ``vectors`` (row i has id i); returns the seconds the index construction took."""
        started = time.perf_counter()
        self._build(vectors)
        return time.perf_counter() - started

    def _build(self, vectors: np.ndarray) -> None:
        raise NotImplementedError

    def use(self, setting: int) -> None:
        self.setting = setting

    def search(self, query: np.ndarray, k: int) -> Sequence[int]:
        """The ``k`` nearest ids to one query (by default, a batch of one)."""
        return self.search_batched(query[None], k)[0]

    def search_batched(self, queries: np.ndarray, k: int) -> list[Sequence[int]]:
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.parameters()}, {self.knob} {self.setting}" if self.knob else self.parameters()

    def parameters(self) -> str:
        return ""


class ScannIndexer(Engine):
    """ScaNN exactly as the indexer builds and tunes it (sqrt(N) leaves, AH, re-ordering)."""

    label = "ScaNN (as the indexer builds it)"
    modules = ("scann",)

    def _build(self, vectors: np.ndarray) -> None:
        from indexer.scann_index import build_tuned

        settings = load_settings()
        self.searcher, self.params, self.build_seconds = build_tuned(
            vectors, settings.exact_search_max_items, settings.recall_floor, K
        )
        self.options = self.params.search_options()

    def build(self, vectors: np.ndarray) -> float:
        super().build(vectors)
        return self.build_seconds  # the tree and AH, not the indexer's leaf tuning (peers are tuned outside build too)

    def search(self, query: np.ndarray, k: int) -> Sequence[int]:
        return self.searcher.search(query, final_num_neighbors=k, **self.options)[0]

    def search_batched(self, queries: np.ndarray, k: int) -> list[Sequence[int]]:
        return list(self.searcher.search_batched(queries, final_num_neighbors=k, **self.options)[0])

    def parameters(self) -> str:
        p = self.params
        if p.exact:
            return "brute force"
        return f"{p.num_leaves_to_search}/{p.num_leaves} leaves, AH {p.dimensions_per_block}-d blocks, reorder {p.reorder_k}"


class ScannVariant(Engine):
    """The indexer's recipe with other build parameters (``overrides`` of :class:`IndexParams` fields), its
    leaves searched tuned as the peers' knobs are: ScaNN's own knobs tried without changing the indexer."""

    modules = ("scann",)
    knob = "leaves searched"
    overrides: dict[str, float] = {}

    def _build(self, vectors: np.ndarray) -> None:
        from indexer.scann_index import LEAF_FRACTIONS, build_searcher, choose_params

        self.params = dataclasses.replace(choose_params(len(vectors), 0, K), **self.overrides)
        self.searcher = build_searcher(vectors, self.params)
        self.settings = shares_of(self.params.num_leaves, LEAF_FRACTIONS)

    def use(self, setting: int) -> None:
        super().use(setting)
        self.options = {"leaves_to_search": setting}

    search = ScannIndexer.search
    search_batched = ScannIndexer.search_batched

    def parameters(self) -> str:
        p = self.params
        return (
            f"{p.num_leaves} leaves, AH {p.dimensions_per_block}-d blocks, threshold {p.anisotropic_quantization_threshold}, "
            f"reorder {p.reorder_k}"
        )


SCANN_KNOBS = {
    "leaves": ("num_leaves", int),
    "reorder": ("reorder_k", int),
    "threshold": ("anisotropic_quantization_threshold", float),
    "block": ("dimensions_per_block", int),
    "sample": ("training_sample_size", int),
}
"""``scann:leaves=2000,reorder=200,threshold=0.3,block=2,sample=100000`` names a :class:`ScannVariant`."""


def scann_variant(spec: str) -> type[Engine]:
    """The :class:`ScannVariant` for ``spec`` (``key=value`` pairs of :data:`SCANN_KNOBS`); ValueError names a bad pair."""
    overrides = {}
    for pair in spec.split(","):
        key, _, value = pair.partition("=")
        if key not in SCANN_KNOBS or not value:
            raise ValueError(f"ScaNN knob {pair!r} is not key=value with key one of {', '.join(SCANN_KNOBS)}")
        field, kind = SCANN_KNOBS[key]
        try:
            overrides[field] = kind(value)
        except ValueError:
            raise ValueError(f"ScaNN knob {key} is {value!r}, not a {kind.__name__}") from None
    return type("ScannVariant", (ScannVariant,), {"overrides": overrides, "label": f"ScaNN {spec}"})


class FaissEngine(Engine):
    modules = ("faiss",)

    def _build(self, vectors: np.ndarray) -> None:
        import faiss

        faiss.omp_set_num_threads(BUILD_THREADS)
        self.index = self._make(faiss, vectors)
        faiss.omp_set_num_threads(1)

    def _make(self, faiss, vectors: np.ndarray):
        raise NotImplementedError

    def search_batched(self, queries: np.ndarray, k: int) -> list[Sequence[int]]:
        return list(self.index.search(queries, k)[1])


class FaissIvfPqFastScan(FaissEngine):
    """IVF over sqrt(N) lists, PQ with 4-bit codes on 2-d blocks scanned in SIMD registers, exact re-ranking."""

    label = "faiss IVF-PQ fast-scan + re-rank"
    knob = "nprobe"
    RERANK_FACTOR = 10  # re-ranks k * 10 = 100 candidates exactly, as the indexer's reorder_k

    def _make(self, faiss, vectors: np.ndarray):
        self.lists = max(2, round(np.sqrt(len(vectors))))
        self.settings = shares_of(
            self.lists, (0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5)
        )
        index = faiss.index_factory(
            vectors.shape[1], f"IVF{self.lists},PQ{vectors.shape[1] // 2}x4fs,RFlat", faiss.METRIC_INNER_PRODUCT
        )
        index.train(vectors[:250_000])
        index.add(vectors)
        index.k_factor = self.RERANK_FACTOR
        return index

    def use(self, setting: int) -> None:
        import faiss

        super().use(setting)
        faiss.extract_index_ivf(self.index).nprobe = setting

    def parameters(self) -> str:
        return f"{self.lists} lists, PQ 2-d x 4 bit, re-rank {self.RERANK_FACTOR * K}"


HNSW_M = 16
HNSW_EF_CONSTRUCTION = 100
HNSW_EF_SEARCH = (10, 12, 16, 20, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256, 320, 400, 512)


class HnswGraph(Engine):
    """An engine on an HNSW graph built with the shared M and ef_construction, its search breadth tuned."""

    settings: Sequence[int] = HNSW_EF_SEARCH

    def parameters(self) -> str:
        return f"HNSW M {HNSW_M}, ef_construction {HNSW_EF_CONSTRUCTION}"


class FaissHnsw(HnswGraph, FaissEngine):
    label = "faiss HNSW (flat)"
    knob = "efSearch"

    def _make(self, faiss, vectors: np.ndarray):
        index = faiss.IndexHNSWFlat(vectors.shape[1], HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.add(vectors)
        return index

    def use(self, setting: int) -> None:
        super().use(setting)
        self.index.hnsw.efSearch = setting


class Hnswlib(HnswGraph):
    label = "hnswlib"
    modules = ("hnswlib",)
    knob = "ef"

    def _build(self, vectors: np.ndarray) -> None:
        import hnswlib

        self.index = hnswlib.Index(space="ip", dim=vectors.shape[1])
        self.index.init_index(max_elements=len(vectors), ef_construction=HNSW_EF_CONSTRUCTION, M=HNSW_M)
        self.index.add_items(vectors, np.arange(len(vectors)), num_threads=BUILD_THREADS)

    def use(self, setting: int) -> None:
        super().use(setting)
        self.index.set_ef(setting)

    def search_batched(self, queries: np.ndarray, k: int) -> list[Sequence[int]]:
        return list(self.index.knn_query(queries, k, num_threads=1)[0])


class Usearch(HnswGraph):
    label = "usearch"
    modules = ("usearch",)
    knob = "expansion_search"

    def _build(self, vectors: np.ndarray) -> None:
        from usearch.index import Index

        self.index = Index(
            ndim=vectors.shape[1], metric="ip", dtype="f32", connectivity=HNSW_M, expansion_add=HNSW_EF_CONSTRUCTION
        )
        self.index.add(np.arange(len(vectors)), vectors, threads=BUILD_THREADS)

    def use(self, setting: int) -> None:
        super().use(setting)
        self.index.expansion_search = setting

    def search_batched(self, queries: np.ndarray, k: int) -> list[Sequence[int]]:
        return list(self.index.search(queries, k, threads=1).keys)


def service_aggregation() -> str:
    """The aggregation ``/recommendations`` uses when a request names none: the app factory's default."""
    import inspect

    from recsvc import create_app

    return inspect.signature(create_app).parameters["aggregation"].default


def mean_unit(vectors: np.ndarray) -> np.ndarray:
    mean = vectors.mean(axis=0)
    return (mean / np.linalg.norm(mean)).astype(np.float32)


class Chroma(HnswGraph):
    """Chroma's embedded client, in memory (its HNSW, ``ip`` space).

    Its ``ef_search`` is taken when the collection is created: a later ``modify`` is stored but does not
    change the searches of the loaded index (same recall and speed at 10 and 400), so it is tuned by rebuilding.
    """

    label = "Chroma (embedded)"
    modules = ("chromadb",)
    database = True
    knob = "ef_search"
    settings = (16, 32, 64, 100)
    rebuilds_to_tune = True

    def _build(self, vectors: np.ndarray) -> None:
        import chromadb

        client = chromadb.EphemeralClient(chromadb.config.Settings(anonymized_telemetry=False))
        hnsw = {
            "space": "ip",
            "max_neighbors": HNSW_M,
            "ef_construction": HNSW_EF_CONSTRUCTION,
            "ef_search": self.setting,
            "num_threads": BUILD_THREADS,
        }
        self.collection = client.create_collection(
            f"bench-ef{self.setting}", configuration={"hnsw": hnsw}
        )  # one client per process
        add_to_chroma(client, self.collection, vectors)

    def search_batched(self, queries: np.ndarray, k: int) -> list[Sequence[int]]:
        found = self.collection.query(query_embeddings=queries, n_results=k, include=[])
        return [[int(i) for i in ids] for ids in found["ids"]]

    def _get_then_query(self, ids: Sequence[int], k: int) -> Sequence[int]:
        stored = self.collection.get(ids=[str(i) for i in ids], include=["embeddings"])["embeddings"]
        return self.search(mean_unit(np.asarray(stored, np.float32)), k)

    def similar(self, row: int, k: int) -> Sequence[int]:
        return self._get_then_query([row], k)

    def recommend(self, rows: Sequence[int], k: int) -> Sequence[int]:
        return self._get_then_query(rows, k)


def add_to_chroma(client, collection, vectors: np.ndarray) -> None:
    """``vectors`` into a Chroma ``collection`` as ids "0", "1", ..., in the ``client``'s largest batches."""
    step = client.get_max_batch_size()
    for start in range(0, len(vectors), step):
        chunk = vectors[start : start + step]
        collection.add(ids=[str(i) for i in range(start, start + len(chunk))], embeddings=chunk)


class LanceDb(Engine):
    """LanceDB on local disk: IVF-PQ over sqrt(N) partitions with exact re-ranking of 10x the candidates."""

    label = "LanceDB"
    modules = ("lancedb", "pyarrow")
    database = True
    knob = "nprobes"
    REFINE = 10

    def _build(self, vectors: np.ndarray) -> None:
        import lancedb
        import pyarrow as pa

        column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel(), pa.float32()), vectors.shape[1])
        self.table = lancedb.connect(str(self.work / "lancedb")).create_table(
            "bench", pa.table({"id": np.arange(len(vectors)), "vector": column})
        )
        self.partitions = max(2, round(np.sqrt(len(vectors))))
        self.settings = shares_of(
            self.partitions, (0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5)
        )
        self.table.create_index(
            metric="dot", num_partitions=self.partitions, num_sub_vectors=vectors.shape[1] // 8, index_type="IVF_PQ"
        )

    def _top(self, vectors, k: int):
        """The ids of the ``k`` best rows for ``vectors`` (one query, or a list of them), as an Arrow table."""
        query = self.table.search(vectors).distance_type("dot").nprobes(self.setting).refine_factor(self.REFINE)
        return query.limit(k).select(["id"]).to_arrow()

    def search(self, query: np.ndarray, k: int) -> Sequence[int]:
        return self._top(query, k)["id"].to_pylist()

    def search_batched(self, queries: np.ndarray, k: int) -> list[Sequence[int]]:
        """One multi-vector query: rows come back tagged with their query's position, best first within it."""
        table = self._top(list(queries), k)
        ids: list[list[int]] = [[] for _ in queries]
        for position, row in zip(table["query_index"].to_pylist(), table["id"].to_pylist()):
            ids[position].append(row)
        return ids

    def parameters(self) -> str:
        return f"IVF-PQ {self.partitions} partitions, 8-d x 8 bit, refine x{self.REFINE}"


class MilvusLite(HnswGraph):
    """Milvus Lite through pymilvus' MilvusClient on a local file: HNSW, IP metric."""

    label = "Milvus Lite"
    modules = ("pymilvus", "milvus_lite")
    database = True
    knob = "ef"
    INSERT_BATCH = 5000

    def _build(self, vectors: np.ndarray) -> None:
        from pymilvus import DataType, MilvusClient

        self.client = MilvusClient(str(self.work / "milvus.db"))
        schema = self.client.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=vectors.shape[1])
        index = self.client.prepare_index_params()
        index.add_index(
            "vector", index_type="HNSW", metric_type="IP", params={"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION}
        )
        self.client.create_collection("bench", schema=schema, index_params=index)
        for start in range(0, len(vectors), self.INSERT_BATCH):
            chunk = vectors[start : start + self.INSERT_BATCH]
            self.client.insert("bench", [{"id": start + i, "vector": v} for i, v in enumerate(chunk.tolist())])
        self.client.flush("bench")
        self.client.load_collection("bench")

    def _search(self, **query) -> list[Sequence[int]]:
        params = {"metric_type": "IP", "params": {"ef": self.setting}}
        return [[hit["id"] for hit in hits] for hits in self.client.search("bench", search_params=params, **query)]

    def search_batched(self, queries: np.ndarray, k: int) -> list[Sequence[int]]:
        return self._search(data=queries.tolist(), limit=k)

    def similar(self, row: int, k: int) -> Sequence[int]:
        return self._search(ids=[row], limit=k)[0]


class QdrantLocal(Engine):
    """Qdrant's local mode (``QdrantClient(":memory:")``): the client's own in-process search, dot product."""

    label = "Qdrant (local mode)"
    modules = ("qdrant_client",)
    database = True

    def _build(self, vectors: np.ndarray) -> None:
        from qdrant_client import QdrantClient, models

        self.models = models
        self.client = QdrantClient(":memory:")
        self.client.create_collection(
            "bench", vectors_config=models.VectorParams(size=vectors.shape[1], distance=models.Distance.DOT)
        )
        self.client.upload_collection("bench", vectors=vectors, ids=range(len(vectors)))

    def _query(self, query, k: int) -> Sequence[int]:
        return [
            point.id for point in self.client.query_points("bench", query=query, limit=k, with_payload=False).points
        ]

    def search(self, query: np.ndarray, k: int) -> Sequence[int]:
        return self._query(query, k)

    def search_batched(self, queries: np.ndarray, k: int) -> list[Sequence[int]]:
        requests = [self.models.QueryRequest(query=query.tolist(), limit=k) for query in queries]
        return [
            [point.id for point in answer.points]
            for answer in self.client.query_batch_points("bench", requests=requests)
        ]

    def similar(self, row: int, k: int) -> Sequence[int]:
        return self._query(row, k)

    def recommend(self, rows: Sequence[int], k: int) -> Sequence[int]:
        return self._query(self.models.RecommendQuery(recommend=self.models.RecommendInput(positive=list(rows))), k)

    def parameters(self) -> str:
        return "exact scan (local mode has no index)"


def publish_titles(root: Path, vectors: np.ndarray):
    """``vectors`` published under ``root`` as titles ``t0``, ``t1``, ... by the indexer's ``publish_index``
    (tuned ScaNN, verification, similar lists), with the service's settings; returns the publication."""
    from indexer.publish import publish_index
    from indexer.published import IndexItem

    settings = load_settings()
    items = [IndexItem(f"t{i}", f"t{i}", f"Title {i}", f"/nonexistent/{i}.jpg") for i in range(len(vectors))]
    return publish_index(
        root,
        items,
        vectors,
        {"source": "bench_peers"},
        exact_search_max_items=settings.exact_search_max_items,
        recall_floor=settings.recall_floor,
        keep_versions=1,
        similar_depth=settings.similar_list_depth,
    )


class PosterRec(Engine):
    """The published index (publish_index: ScaNN, verification, similar lists) and the service's ranking code.

    Only its by-id operations are measured: ``/similar`` reads the list published for the title
    (``ranking.similar_titles``), ``/recommendations`` ranks a history by the service's default aggregation.
    """

    label = "PosterRec (published index + recsvc.ranking)"
    modules = ("scann",)
    database = True
    by_id_only = True

    def _build(self, vectors: np.ndarray) -> None:
        from indexer.published import open_version

        root = self.work / "index"
        self.publication = publish_titles(root, vectors)
        self.index = open_version(root)

    def similar(self, row: int, k: int) -> Sequence[int]:
        from recsvc import ranking

        return ranking.similar_titles(self.index, row, k).titles

    def recommend(self, rows: Sequence[int], k: int) -> Sequence[int]:
        from recsvc import ranking

        return ranking.recommend_rows(self.index, list(rows), k, service_aggregation(), exclude_history=True).titles

    def parameters(self) -> str:
        p = self.publication.params
        return f"{p.num_leaves_to_search}/{p.num_leaves} leaves (history {p.history_leaves_to_search}), similar lists of {load_settings().similar_list_depth}"


ENGINES: dict[str, type[Engine]] = {
    "scann": ScannIndexer,
    "faiss-ivfpq": FaissIvfPqFastScan,
    "faiss-hnsw": FaissHnsw,
    "hnswlib": Hnswlib,
    "usearch": Usearch,
    "chroma": Chroma,
    "lancedb": LanceDb,
    "milvus": MilvusLite,
    "qdrant": QdrantLocal,
    "posterrec": PosterRec,
}


def engine_class(name: str) -> type[Engine]:
    """The engine named ``name``: a key of :data:`ENGINES`, or ``scann:<knobs>`` (:func:`scann_variant`)."""
    base, _, spec = name.partition(":")
    if spec and base == "scann":
        return scann_variant(spec)
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; known: {', '.join(ENGINES)}")
    return ENGINES[name]


# --- one engine per process --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Workload:
    """The vectors and queries every engine gets, written once by the parent and read by each child."""

    corpus: np.ndarray
    tune_queries: np.ndarray
    tune_truth: np.ndarray
    queries: np.ndarray
    truth: np.ndarray
    histories: np.ndarray

    @classmethod
    def make(cls, n: int) -> Workload:
        """The indexer's own tuning probe (noisy corpus vectors, seed 1); held-out mixture queries to measure."""
        from indexer.scann_index import TUNING_QUERIES, RecallProbe, exact_top_k

        data = clustered_vectors(n + EVAL_QUERIES, seed=n)  # bench_index's corpus and held-out queries for this N
        corpus, queries = data[:n], data[n:]
        probe = RecallProbe.sample(corpus, K, TUNING_QUERIES, seed=1)
        rng = np.random.default_rng(n)  # distinct titles within a history, as a watch history has
        histories = np.stack([rng.choice(n, HISTORY_TITLES, replace=False) for _ in range(BY_ID_REQUESTS)])
        return cls(corpus, probe.queries, probe.truth, queries, exact_top_k(corpus, queries, K), histories)

    def save(self, path: Path) -> None:
        np.savez(path, **dataclasses.asdict(self))

    @classmethod
    def load(cls, path: Path) -> Workload:
        with np.load(path) as stored:
            return cls(**{field.name: stored[field.name] for field in dataclasses.fields(cls)})


def recall(found: Sequence[Sequence[int]], truth: np.ndarray) -> float:
    hits = sum(len(set(map(int, f)) & set(t.tolist())) for f, t in zip(found, truth))
    return hits / truth.size


def tune(engine: Engine, queries: np.ndarray, truth: np.ndarray, target: float) -> list[tuple[int, float]]:
    """Use the first of the engine's settings whose recall on the tuning queries reaches ``target`` (else its last).

    Returns the settings tried and their recalls.
    """

    def recall_at(setting: int) -> float:
        engine.use(setting)
        return recall(engine.search_batched(queries, K), truth)

    return first_reaching(engine.settings, recall_at, target)


def first_reaching(
    settings: Sequence[int], recall_at: Callable[[int], float], target: float
) -> list[tuple[int, float]]:
    """``recall_at`` each setting in turn, cheapest first, until one reaches ``target``: the settings and recalls."""
    tried = []
    for setting in settings:
        tried.append((setting, recall_at(setting)))
        if tried[-1][1] >= target:
            break
    return tried


def process_tree_rss() -> int:
    """Resident bytes of this process and its children (Milvus Lite and Chroma may run helpers)."""
    import psutil

    me = psutil.Process()
    return sum(p.memory_info().rss for p in [me, *me.children(recursive=True)])


def measure_round(engine: Engine, work: Workload, round_no: int) -> dict[str, list[float]]:
    """One round's timings: single queries, batches, and the by-id operations the engine has."""
    offset = round_no * 97 % EVAL_QUERIES
    queries = np.roll(work.queries, -offset, axis=0)
    result = {}
    if not engine.by_id_only:
        result["single"] = timed_calls(lambda q: engine.search(q, K), cycle(queries), ROUND_SECONDS, MIN_TIMED)
        batches = [queries[i * BATCH % EVAL_QUERIES :][:BATCH] for i in range(BATCHES)]
        result["batch"] = timed_calls(lambda b: engine.search_batched(b, K), cycle(batches), ROUND_SECONDS, BATCHES)
    histories = np.roll(work.histories, -round_no, axis=0)
    if engine.similar is not None:
        result["similar"] = timed_calls(
            lambda h: engine.similar(int(h[-1]), K), cycle(histories), ROUND_SECONDS, MIN_TIMED
        )
    if engine.recommend is not None:
        result["recommend"] = timed_calls(
            lambda h: engine.recommend(h.tolist(), K), cycle(histories), ROUND_SECONDS, MIN_TIMED
        )
    return result


def drop_unsupported_by_id(engine: Engine, history: np.ndarray) -> dict[str, str]:
    """Try each by-id operation once; one this engine (or build of it) refuses is dropped. Returns why, by operation."""
    calls = {
        "similar": lambda: engine.similar(int(history[-1]), K),
        "recommend": lambda: engine.recommend(history.tolist(), K),
    }
    refused = {}
    for operation, call in calls.items():
        if getattr(engine, operation) is None:
            continue
        try:
            call()
        except Exception as err:  # noqa: BLE001  (each client raises its own kind)
            refused[operation] = f"{type(err).__name__}: {err}"
            setattr(engine, operation, None)
    return refused


def serve_engine(
    name: str, data_path: str, work_dir: str, target: float, setting: int | None, conn: Connection
) -> None:
    """Child process: build one engine (at ``setting``, else tuned after the build), report it, then answer
    ``round`` requests until ``stop``."""
    try:
        engine = engine_class(name)(Path(work_dir))
        for module in engine.modules:  # loaded before the baseline: a library's code is not its index's memory
            importlib.import_module(module)
        rss_before = process_tree_rss()
        work = Workload.load(Path(data_path))
        if setting is not None:
            engine.use(setting)
        build_seconds = engine.build(work.corpus)
        tuned = tune(engine, work.tune_queries, work.tune_truth, target) if engine.settings and setting is None else []
        held_out = None if engine.by_id_only else recall(engine.search_batched(work.queries, K), work.truth)
        unsupported = drop_unsupported_by_id(engine, work.histories[0])
        work = dataclasses.replace(work, corpus=work.corpus[:0])
        gc.collect()
        conn.send(
            {
                "build_s": build_seconds,
                "memory_mb": (process_tree_rss() - rss_before) / 2**20,
                "recall": held_out,
                "tuning": tuned,
                "describe": engine.describe(),
                "unsupported": unsupported,
            }
        )
        while (request := conn.recv()) != "stop":
            conn.send(measure_round(engine, work, request))
    except Exception as err:  # noqa: BLE001  (any peer's failure is reported to the parent, which goes on with the others)
        conn.send({"error": f"{type(err).__name__}: {err}"})


def tune_by_rebuilding(name: str, data_path: str, work_dir: str, target: float, conn: Connection) -> None:
    """Child process for an engine whose knob is fixed at build time: one build per setting, cheapest first,
    until one reaches ``target`` on the tuning queries; sends the settings tried and their recalls."""
    try:
        work = Workload.load(Path(data_path))

        def recall_of_build(setting: int) -> float:
            engine = engine_class(name)(Path(work_dir))
            engine.use(setting)
            engine.build(work.corpus)
            return recall(engine.search_batched(work.tune_queries, K), work.tune_truth)

        conn.send({"tuning": first_reaching(engine_class(name).settings, recall_of_build, target)})
    except Exception as err:  # noqa: BLE001  (as serve_engine)
        conn.send({"error": f"{type(err).__name__}: {err}"})


@dataclasses.dataclass
class Running:
    name: str
    process: multiprocessing.Process
    conn: Connection
    report: dict
    rounds: list[dict] = dataclasses.field(default_factory=list)


def start_engine(context, name: str, data_path: Path, work_dir: Path, target: float) -> Running | str:
    """Build one engine in its own process (tuned first in another where each setting is a build); its report,
    or why it could not run."""
    missing = [m for m in engine_class(name).modules if importlib.util.find_spec(m) is None]
    if missing:
        return f"not installed ({', '.join(missing)}): pip install -e '.[peers]' (make bench-peers)"
    setting, tuning = None, []
    if engine_class(name).rebuilds_to_tune:
        process, conn, reply = child(
            context, tune_by_rebuilding, name, str(data_path), str(work_dir / "tuning"), target
        )
        process.join()
        if "error" in reply:
            return f"failed while tuning: {reply['error']}"
        tuning = reply["tuning"]
        setting = tuning[-1][0]
    process, conn, report = child(context, serve_engine, name, str(data_path), str(work_dir), target, setting)
    if "error" in report:
        process.join()
        return f"failed: {report['error']}"
    return Running(name, process, conn, {**report, "tuning": tuning or report["tuning"]})


def child(context, function: Callable, *args) -> tuple[multiprocessing.Process, Connection, dict]:
    """``function(*args, conn)`` in a new process; the process, the parent's end of the pipe, and its first message."""
    parent, end = context.Pipe()
    process = context.Process(target=function, args=(*args, end), daemon=True)
    process.start()
    return process, parent, parent.recv()


def run_rounds(engines: list[Running], rounds: int) -> dict[str, str]:
    """Each round asks every engine in turn, starting one further along each time (position is not always the same),
    with the other engines' processes stopped meanwhile: idle databases keep threads (servers, runtimes) that
    would otherwise take the measured engine's cores.

    An engine that fails in a round leaves ``engines`` (its process has ended); returns why, by engine name.
    """
    failed = {}
    for round_no in range(rounds):
        for engine in engines[round_no % len(engines) :] + engines[: round_no % len(engines)]:
            with others_stopped(engine, engines):
                engine.conn.send(round_no)
                reply = engine.conn.recv()
            if "error" in reply:
                failed[engine.name] = f"failed in round {round_no + 1}: {reply['error']}"
                engines.remove(engine)
                engine.process.join()
            else:
                engine.rounds.append(reply)
        print(f"round {round_no + 1}/{rounds} done", file=sys.stderr, flush=True)
    return failed


@contextlib.contextmanager
def others_stopped(measured: Running, engines: list[Running]) -> Iterator[None]:
    """Every engine's process tree but ``measured``'s suspended (SIGSTOP) for the block, then resumed."""
    import psutil

    trees = []
    for engine in engines:
        if engine is not measured:
            root = psutil.Process(engine.process.pid)
            trees += [root, *root.children(recursive=True)]
    for process in trees:
        process.suspend()
    try:
        yield
    finally:
        for process in trees:
            process.resume()


def stop(engines: list[Running]) -> None:
    for engine in engines:
        engine.conn.send("stop")
        engine.process.join(timeout=60)
        if engine.process.is_alive():
            engine.process.kill()


# --- tables ------------------------------------------------------------------------------------------


def spread(values: list[float], fmt: str) -> str:
    """Median and range of per-round values: ``m (lo–hi)``; just ``m`` for one round."""
    middle = format(statistics.median(values), fmt)
    return middle if len(values) == 1 else f"{middle} ({format(min(values), fmt)}–{format(max(values), fmt)})"


def per_round(engine: Running, key: str, reduce: Callable[[list[float]], float]) -> list[float]:
    return [reduce(r[key]) for r in engine.rounds if key in r]


def p50_ms(times: list[float]) -> float:
    return percentile_ms(times, 50)


def p99_ms(times: list[float]) -> float:
    return percentile_ms(times, 99)


def per_second(count: int) -> Callable[[list[float]], float]:
    return lambda times: count * len(times) / sum(times)


def search_table(engines: list[Running]) -> list[str]:
    lines = [
        "| engine | setting (tuned) | build s | memory MB | recall@10 | single p50 ms | single p99 ms | single queries/s | batched queries/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for e in engines:
        if "single" not in e.rounds[0]:
            continue
        r = e.report
        lines.append(
            f"| {engine_class(e.name).label} | {r['describe']} | {r['build_s']:.1f} | {r['memory_mb']:.0f} | {r['recall']:.3f} "
            f"| {spread(per_round(e, 'single', p50_ms), '.3f')} | {spread(per_round(e, 'single', p99_ms), '.3f')} "
            f"| {spread(per_round(e, 'single', per_second(1)), ',.0f')} | {spread(per_round(e, 'batch', per_second(BATCH)), ',.0f')} |"
        )
    return lines


def by_id_table(engines: list[Running]) -> list[str]:
    lines = [
        f"| engine | similar to a stored item: p50 ms | p99 ms | recommend from {HISTORY_TITLES} stored examples: p50 ms | p99 ms |",
        "|---|---|---|---|---|",
    ]
    for e in engines:
        cells = []
        for key in ("similar", "recommend"):
            cells += (
                [spread(per_round(e, key, p50_ms), ".3f"), spread(per_round(e, key, p99_ms), ".3f")]
                if key in e.rounds[0]
                else ["—", "—"]
            )
        if cells != ["—"] * 4:
            lines.append(f"| {engine_class(e.name).label} | {' | '.join(cells)} |")
    return lines


def fastest_peer_line(engines: list[Running]) -> str:
    """ScaNN (indexer) against the fastest other engine at the recall floor, by median single queries/s."""
    rates = {
        e.name: statistics.median(per_round(e, "single", per_second(1)))
        for e in engines
        if "single" in e.rounds[0] and e.report["recall"] >= load_settings().recall_floor
    }
    if "scann" not in rates:
        return "ScaNN (indexer) did not reach the recall floor or did not run."
    peers = {name: rate for name, rate in rates.items() if not name.startswith("scann")}
    if not peers:
        return "No peer reached the recall floor."
    best = max(peers, key=peers.get)
    ratio = peers[best] / rates["scann"]
    verdict = "ahead of ScaNN by more than 10%" if ratio > 1.1 else "within 10% of ScaNN or behind it"
    return f"Fastest peer at recall@10 ≥ floor, single query: {engine_class(best).label}, {ratio:.2f}× ScaNN (indexer)'s queries/s: {verdict}."


# --- end to end over HTTP ----------------------------------------------------------------------------

HTTP_CLIENTS = (1, 8, 32)
HTTP_SECONDS = 5
HTTP_WARMUP = 1
HTTP_REQUESTS = 1000
HEALTH = "/healthz"
FLOOR = "granian RSGI, fixed answer, no app (the server's floor)"
SIMILAR = "PosterRec GET /v1/posters/<id>/similar"
FLASK_ONLY = f"{SIMILAR}, every request through Flask (no shortcut)"
CHROMA_QUERY = "/api/v2/tenants/default_tenant/databases/default_database/collections/{id}/query"


@contextlib.contextmanager
def chroma_server(path: Path) -> Iterator[Server]:
    """Chroma's own server (``chroma run``, from the chromadb package) on a free port, until the block ends."""
    port = free_port()
    chroma = Path(sys.executable).with_name("chroma")
    command = [str(chroma), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)]
    with running_server(command, port, ready_path="/api/v2/heartbeat") as server:
        yield server


def load_chroma(port: int, vectors: np.ndarray, ef_search: int):
    """The vectors in a new collection of the server on ``port`` (HNSW as the embedded run, ``ef_search``)."""
    import chromadb

    client = chromadb.HttpClient(
        host="127.0.0.1", port=port, settings=chromadb.config.Settings(anonymized_telemetry=False)
    )
    hnsw = {"space": "ip", "max_neighbors": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION, "ef_search": ef_search}
    collection = client.create_collection("bench", configuration={"hnsw": hnsw})
    add_to_chroma(client, collection, vectors)
    return collection


def chroma_recall(collection, work: Workload) -> float:
    found = []
    for start in range(0, len(work.queries), BATCH):
        answer = collection.query(query_embeddings=work.queries[start : start + BATCH], n_results=K, include=[])
        found += [[int(i) for i in ids] for ids in answer["ids"]]
    return recall(found, work.truth)


def request_files(directory: Path, work: Workload, collection_id: str) -> dict[str, Path]:
    """One file of requests (wrk_bodies.lua's format) per endpoint: ids of stored titles, held-out query vectors."""
    rows = np.random.default_rng(1).integers(0, len(work.corpus), HTTP_REQUESTS)
    queries = [q.round(6).tolist() for q in work.queries[:HTTP_REQUESTS]]
    chroma = CHROMA_QUERY.format(id=collection_id)
    similar = [f"GET\t/v1/posters/t{row}/similar?k={K}" for row in rows]
    lines = {
        SIMILAR: similar,
        FLASK_ONLY: similar,
        "PosterRec POST /v1/search (embedding)": [
            f"POST\t/v1/search\t{json.dumps({'embedding': q, 'k': K})}" for q in queries
        ],
        f"PosterRec GET {HEALTH} (no work)": [f"GET\t{HEALTH}"],
        FLOOR: [f"GET\t{HEALTH}"],
        "Chroma POST .../query (embedding)": [
            f"POST\t{chroma}\t{json.dumps({'query_embeddings': [q], 'n_results': K, 'include': ['distances']})}"
            for q in queries
        ],
    }
    files = {}
    for i, (name, requests) in enumerate(lines.items()):
        files[name] = directory / f"requests-{i}.txt"
        files[name].write_text("\n".join(requests) + "\n", encoding="utf-8")
    return files


def cpu_seconds(server: Server) -> float:
    """User and system CPU seconds the server's process and its live descendants have used so far."""
    import psutil

    root = psutil.Process(server.process.pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def finished_children_cpu_seconds() -> float:
    """CPU seconds of this process's children that have ended (here: the wrk runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wrk_cell(server: Server, requests: Path, clients: int) -> dict:
    """``clients`` connections from wrk for HTTP_SECONDS after an unmeasured HTTP_WARMUP: its report, with the
    CPU time per request that the server (``server_us``) and wrk (``client_us``) spent in the measured run."""
    env = {"BENCH_REQUESTS": str(requests)}
    run_wrk("wrk_bodies.lua", server.port, clients, HTTP_WARMUP, env)
    server_before, client_before = cpu_seconds(server), finished_children_cpu_seconds()
    report = run_wrk("wrk_bodies.lua", server.port, clients, HTTP_SECONDS, env)
    per_request = 1e6 / max(1, report["requests"])
    return {
        **report,
        "server_us": (cpu_seconds(server) - server_before) * per_request,
        "client_us": (finished_children_cpu_seconds() - client_before) * per_request,
    }


def measure_http(work: Workload, directory: Path, chroma_ef: int, rounds: int) -> list[str]:
    """PosterRec as users run it (``python -m recsvc``: granian, one worker per core) against Chroma's server on
    the same vectors, both up, cell by cell in turn, each round in a different order of endpoints; the tables' lines."""
    publication = publish_titles(directory / "index", work.corpus)
    workers = len(os.sched_getaffinity(0))
    started = time.perf_counter()
    with chroma_server(directory / "chroma") as chroma:
        collection = load_chroma(chroma.port, work.corpus, chroma_ef)
        load_seconds = time.perf_counter() - started
        chroma_found = chroma_recall(collection, work)
        files = request_files(directory, work, str(collection.id))
        with (
            posterrec_server(directory / "index", workers) as posterrec,
            granian_cli_server(
                "rsgi", "bench.support:flask_only_rsgi_app", workers, POSTERREC_INDEX_ROOT=str(directory / "index")
            ) as flask_only,
            granian_cli_server("rsgi", "bench.support:fixed_answer_app", workers, ready_path="/") as floor,
        ):
            servers = {name: posterrec for name in files} | {FLASK_ONLY: flask_only, FLOOR: floor}
            servers |= {name: chroma for name in files if name.startswith("Chroma")}
            cells: dict[tuple[str, int], list[dict]] = {}
            for round_no in range(rounds):
                for clients in HTTP_CLIENTS:
                    names = list(files)[round_no % len(files) :] + list(files)[: round_no % len(files)]
                    for name in names:
                        cells.setdefault((name, clients), []).append(wrk_cell(servers[name], files[name], clients))
                print(f"HTTP round {round_no + 1}/{rounds} done", file=sys.stderr, flush=True)
    lines = [
        f"PosterRec: `python -m recsvc` (granian, {workers} workers), index recall@10 {publication.recall:.3f} (indexer's check); "
        f"Chroma's server (`chroma run`), HNSW ef_search {chroma_ef} (the embedded run's tuning), recall@10 {chroma_found:.3f} "
        f"on the held-out queries, loaded over HTTP in {load_seconds:.0f} s. wrk, 1 thread, {HTTP_SECONDS} s per cell after "
        f"{HTTP_WARMUP} s, {rounds} rounds, median (range); requests: {HTTP_REQUESTS} stored ids or held-out query vectors, "
        f"k={K}. CPU per request: the server's process tree and wrk's, over the measured seconds (both share the "
        f"{workers} cores). `{HEALTH}` does no work: what the HTTP server and Flask cost; the floor row is granian "
        f"alone, {workers} workers answering every request with a fixed body, the ceiling of any Python app it serves; "
        "the no-shortcut row serves the same index with every request through Flask.",
        "",
        "| endpoint | clients | requests/s | p50 ms | p99 ms | errors | server CPU µs/request | wrk CPU µs/request |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (name, clients), runs in cells.items():
        lines.append(
            f"| {name} | {clients} | {spread([run['rps'] for run in runs], ',.0f')} "
            f"| {spread([run['p50_ms'] for run in runs], '.2f')} | {spread([run['p99_ms'] for run in runs], '.2f')} "
            f"| {sum(run['errors'] for run in runs)} | {spread([run['server_us'] for run in runs], ',.0f')} "
            f"| {spread([run['client_us'] for run in runs], ',.0f')} |"
        )
    return lines + ["", *ratio_table(cells)]


def ratio_table(cells: dict[tuple[str, int], list[dict]]) -> list[str]:
    """PosterRec's endpoints and the server's floor against Chroma's query, round by round (the rounds interleave
    them): requests/s over Chroma's, and Chroma's p99 over theirs (above 1: faster than Chroma)."""
    chroma = next(name for name, _ in cells if name.startswith("Chroma"))
    ours = [name for name in dict.fromkeys(name for name, _ in cells) if name != chroma and HEALTH not in name]
    lines = [
        "| endpoint | clients | requests/s ÷ Chroma's | Chroma's p99 ÷ the endpoint's |",
        "|---|---|---|---|",
    ]
    for name in ours:
        for clients in HTTP_CLIENTS:
            pairs = list(zip(cells[(name, clients)], cells[(chroma, clients)]))
            rates = [mine["rps"] / theirs["rps"] for mine, theirs in pairs]
            tails = [theirs["p99_ms"] / mine["p99_ms"] for mine, theirs in pairs]
            lines.append(f"| {name} | {clients} | {spread(rates, '.1f')}× | {spread(tails, '.1f')}× |")
    return lines


# --- driver ------------------------------------------------------------------------------------------


def measure_size(n: int, names: list[str], rounds: int, context, http: bool) -> None:
    """Every engine at ``n`` vectors, its tables printed; then the HTTP comparison at the databases' size."""
    from indexer.scann_index import TUNING_MARGIN

    target = min(1.0, load_settings().recall_floor + TUNING_MARGIN)
    names = [name for name in names if n <= DATABASE_MAX_N or not engine_class(name).database]
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        data_path = Path(tmp) / DATA_FILE
        work = Workload.make(n)
        work.save(data_path)
        running, skipped = [], {}
        for name in names:
            print(f"N={n:,}: building {name}", file=sys.stderr, flush=True)
            work_dir = Path(tmp) / name
            work_dir.mkdir()
            clock = time.perf_counter()
            started = start_engine(context, name, data_path, work_dir, target)
            if isinstance(started, str):
                skipped[name] = started
                print(f"N={n:,}: skipping {name}: {started}", file=sys.stderr, flush=True)
            else:
                running.append(started)
                print(f"N={n:,}: {name} ready in {time.perf_counter() - clock:.0f} s", file=sys.stderr, flush=True)
        try:
            skipped.update(run_rounds(running, rounds))
        finally:
            stop(running)
        print_engines(n, running, skipped, target, rounds)
        if http and n <= DATABASE_MAX_N:
            print(f"#### End to end over HTTP, {n:,} vectors\n")
            print("\n".join(over_http(work, Path(tmp), running, rounds)), end="\n\n", flush=True)


def print_engines(n: int, running: list[Running], skipped: dict[str, str], target: float, rounds: int) -> None:
    print(f"### {n:,} vectors\n")
    print(
        f"Clustered {DIM}-d unit vectors (bench_index's mixture), dot product; {EVAL_QUERIES} held-out queries; "
        f"each engine's query-time setting is the first reaching recall@10 {target:.3f} on the indexer's tuning probe "
        f"(recall below: the held-out queries). {rounds} interleaved rounds, median (range), each measurement "
        f"{ROUND_SECONDS:g} s of calls going round the queries; one query per call, "
        f"batched = {BATCH} per call, one search thread where the engine takes a count, builds on {BUILD_THREADS}. "
        "Memory: resident growth of the engine's process tree from building it, input freed.\n"
    )
    print("\n".join(search_table(running)))
    print()
    print(fastest_peer_line(running))
    by_id = by_id_table(running)
    if len(by_id) > 2:
        print(
            "\nBy stored id (PosterRec: the service's /similar and /recommendations logic in process; "
            "Chroma has no such operation: get the stored vectors, then query with their mean):\n"
        )
        print("\n".join(by_id))
    for e in running:
        for operation, why in e.report["unsupported"].items():
            print(f"\n{engine_class(e.name).label}: no {operation} by stored id ({why.splitlines()[0]})")
    print("\nTuning (setting: recall@10 on the tuning probe):\n")
    for e in running:
        if e.report["tuning"]:
            print(
                f"- {engine_class(e.name).label}: "
                + ", ".join(f"{setting}: {value:.3f}" for setting, value in e.report["tuning"])
            )
    for name, why in skipped.items():
        print(f"\n{engine_class(name).label}: skipped, {why}")
    print(flush=True)


def over_http(work: Workload, directory: Path, running: list[Running], rounds: int) -> list[str]:
    """:func:`measure_http`'s table, or a line saying why it could not run."""
    chroma = next((e for e in running if e.name == "chroma"), None)
    if chroma is None:
        return ["Skipped: the HTTP comparison takes Chroma's ef_search from the embedded run, which did not run here."]
    if shutil.which("wrk") is None:
        return ["Skipped: the HTTP comparison drives the servers with wrk (Debian: apt-get install wrk)."]
    print("HTTP: publishing the index and loading Chroma's server", file=sys.stderr, flush=True)
    try:
        return measure_http(work, directory, chroma.report["tuning"][-1][0], rounds)
    except (OSError, RuntimeError, subprocess.CalledProcessError) as err:  # a server that did not start or answer
        return [f"Failed: {type(err).__name__}: {err}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--sizes", default=DEFAULT_SIZES, help="comma-separated corpus sizes (databases only up to 100,000)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--engines", default=",".join(ENGINES), help=f"comma-separated, of: {', '.join(ENGINES)}")
    parser.add_argument(
        "--scann",
        action="append",
        default=[],
        metavar="KNOBS",
        help=f"also a ScaNN variant, e.g. leaves=2000,reorder=200 (knobs: {', '.join(SCANN_KNOBS)}); repeatable",
    )
    parser.add_argument(
        "--no-http",
        action="store_true",
        help="skip PosterRec's HTTP API against Chroma's server (at the databases' size)",
    )
    args = parser.parse_args(argv)
    names = args.engines.split(",") + [f"scann:{spec}" for spec in args.scann]
    try:
        for name in names:
            engine_class(name)
    except ValueError as err:
        parser.error(str(err))
    os.environ.setdefault("LANCE_LOG", "error")  # LanceDB would warn of a coming change once per query
    # a fresh interpreter per engine: no thread pools or allocator state shared between engines
    context = multiprocessing.get_context("spawn")
    for n in (int(size) for size in args.sizes.split(",")):
        measure_size(n, names, args.rounds, context, http=not args.no_http)
    return 0


if __name__ == "__main__":
    sys.exit(main())
