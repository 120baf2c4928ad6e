"""Sharded serving benchmark: S ScaNN shards merged against the unsharded index, in the same run.

One corpus of synthetic clustered 128-d vectors (``bench.support.clustered_vectors``, as
``bench_index.py`` makes them) and held-out queries from the same mixture. Per S the
vectors are split by the indexer's title hash (``indexer.shards.partition_rows``, one
title per vector), each shard built and tuned as the publisher builds it, and the
shards searched as ``PublishedIndex`` searches them (``indexer.shards.ShardSet``):
recall@10 of the merged top-10 against exact search, and single-query p50/p99 of
poster and history queries, beside S = 1 (the unsharded index). The shards are
searched one after another in one process, as a service worker does. Every
configuration is built first; the latencies are then timed in ``--rounds`` rounds
that take the configurations in turn (so a busy moment of the machine falls on all
of them), and the table gives each percentile's median over the rounds.

    python bench/bench_shards.py [--n 1000000] [--shards 1,2,4] [--queries 1000]
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from posterrec_settings import load_settings  # noqa: E402  (sets TF_USE_LEGACY_KERAS before TensorFlow)

import numpy as np  # noqa: E402

from bench.support import clustered_vectors, percentile_ms, timed_calls  # noqa: E402

DIM = 128
SINGLE_QUERIES = 300


def recall_at_10(found: np.ndarray, truth: np.ndarray) -> float:
    return sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth)) / truth.size


def build(shards: int, embeddings: np.ndarray, probes: dict, settings) -> tuple[dict, object]:
    """``shards`` shards over ``embeddings`` built as the publisher builds them, their merged recall, and the
    searchers (an ``indexer.shards.ShardSet``)."""
    import scann  # noqa: F401  (loaded before the clock starts: it is start-up, not build time)

    from indexer.shards import ShardSet, build_shards, partition_rows

    partition = partition_rows([f"t{row}" for row in range(len(embeddings))], shards) if shards > 1 else None
    started = time.perf_counter()
    built = build_shards(embeddings, partition, settings.exact_search_max_items, settings.recall_floor)
    build_seconds = time.perf_counter() - started
    searchers = ShardSet([b.shard for b in built])
    row = {"shards": shards, "build_s": build_seconds, "params": [_describe(b.shard.params) for b in built]}
    for kind, (queries, truth) in probes.items():
        row[f"{kind}_recall"] = recall_at_10(searchers.search_batched(queries, 10, kind)[0], truth)
    return row, searchers


def time_rounds(configurations: list[tuple[dict, object]], probes: dict, rounds: int) -> None:
    """Single-query p50/p99 of each configuration and query kind: the median over ``rounds`` interleaved rounds."""
    samples: dict[tuple[int, str], list[tuple[float, float]]] = {}
    for _ in range(rounds):
        for row, searchers in configurations:
            for kind, (queries, _) in probes.items():
                single = timed_calls(partial(searchers.search, k=10, kind=kind), queries[:SINGLE_QUERIES])
                samples.setdefault((row["shards"], kind), []).append(
                    (percentile_ms(single, 50), percentile_ms(single, 99))
                )
    for row, _ in configurations:
        for kind in probes:
            runs = samples[(row["shards"], kind)]
            row[f"{kind}_single"] = tuple(float(np.median([run[i] for run in runs])) for i in (0, 1))


def _describe(params) -> str:
    if params.exact:
        return "brute force"
    return f"{params.num_leaves_to_search}/{params.num_leaves} (history {params.history_leaves_to_search})"


def table(rows: list[dict], n: int, queries: int, rounds: int) -> str:
    base = rows[0]
    lines = [
        f"{n:,} synthetic clustered {DIM}-d vectors, {queries} held-out poster queries and {queries} history "
        f"queries (means of 5 random vectors); recall@10 of the merged top-10 against exact search; single-query "
        f"latency over {min(SINGLE_QUERIES, queries)} queries in ms (median of {rounds} interleaved rounds); shards "
        "searched one after another in one process.",
        "",
        "| shards | leaves searched per shard (history) | build s | recall@10 | history recall@10 | single p50 / p99 | "
        "history single p50 / p99 | p50 vs unsharded |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['shards']} | {', '.join(sorted(set(row['params'])))} | {row['build_s']:.1f} | "
            f"{row['poster_recall']:.3f} | {row['history_recall']:.3f} | "
            f"{row['poster_single'][0]:.3f} / {row['poster_single'][1]:.3f} | "
            f"{row['history_single'][0]:.3f} / {row['history_single'][1]:.3f} | "
            f"{row['poster_single'][0] / base['poster_single'][0]:.2f}x |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="vectors (default 1,000,000)")
    parser.add_argument("--shards", default="1,2,4", help="shard counts; the first is the baseline (default 1,2,4)")
    parser.add_argument("--queries", type=int, default=1000, help="held-out queries per kind (default 1000)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved latency rounds (default 5)")
    args = parser.parse_args(argv)
    from indexer.scann_index import RecallProbe, exact_top_k

    settings = load_settings()
    data = clustered_vectors(args.n + args.queries, DIM, seed=args.n)
    embeddings, queries = data[: args.n], data[args.n :]  # held-out queries from the same mixture
    histories = RecallProbe.histories(embeddings, 10, args.queries, seed=args.n)
    probes = {
        "poster": (queries, exact_top_k(embeddings, queries, 10)),
        "history": (histories.queries, histories.truth),
    }
    configurations = []
    for shards in (int(s) for s in args.shards.split(",")):
        configurations.append(build(shards, embeddings, probes, settings))
        print(f"built {shards} shard(s)", file=sys.stderr, flush=True)
    time_rounds(configurations, probes, args.rounds)
    print(table([row for row, _ in configurations], args.n, args.queries, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
