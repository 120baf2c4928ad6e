"""Index benchmark: ScaNN as the indexer builds it against exact NumPy search, in the same run.

Per corpus size N (synthetic clustered 128-d vectors: a normalised Gaussian
mixture, because real embeddings cluster by look and genre and structureless
vectors would make any partition look bad): build seconds (including the
measured leaf tuning), index bytes on disk, peak memory, recall@10 on held-out
queries, single-query p50/p99 and batched latency, and the speed-up over exact
search. Each size runs in its own process so that peak memory is that size's.

Then the end-to-end rebuild of the real catalogue (``../shared/data``): ingest
and build with a tiny model, and the incremental rebuild after changing 1% of
its posters (in a temporary copy; the shared data is never written).

    python bench/bench_index.py [--sizes 10000,100000,1000000] [--no-catalog]
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from posterrec_settings import load_settings  # noqa: E402  (sets TF_USE_LEGACY_KERAS before TensorFlow)

from bench.support import clustered_vectors, percentile_ms, timed_calls  # noqa: E402

TINY_TRAINING = (
    "--backbone tiny --weights none --warmup-epochs 1 --head-epochs 1 --unfreeze-blocks 0 --triplet-epochs 0"
)
"""The quickest training: the tiny backbone, one warm-up and one head epoch, no unfreezing or triplet epochs."""
DIM = 128
QUERIES = 1000
SINGLE_QUERIES = 300
EXACT_SINGLE_QUERIES = 50
BATCH = 100
BATCH_REPEATS = 10
CHANGED_FRACTION = 0.01


def percentiles_ms(seconds: list[float]) -> tuple[float, float]:
    return percentile_ms(seconds, 50), percentile_ms(seconds, 99)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def directory_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def measure_size(n: int) -> dict:
    """Everything for one N, in this process (run by the parent as a child per size)."""
    import scann  # noqa: F401  (loaded before the clock starts: it is start-up, not build time)

    from indexer.scann_index import RecallProbe, build_tuned, exact_top_k

    settings = load_settings()
    data = clustered_vectors(n + QUERIES, DIM, seed=n)
    embeddings, queries = data[:n], data[n:]  # held-out queries from the same mixture
    rss_before = peak_rss_mb()

    started = time.perf_counter()
    searcher, params, _ = build_tuned(embeddings, settings.exact_search_max_items, settings.recall_floor)
    build_seconds = time.perf_counter() - started
    rss_peak = peak_rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        searcher.serialize(tmp)
        index_bytes = directory_bytes(Path(tmp))
    options = params.search_options()

    recall = RecallProbe.of(embeddings, queries, 10).recall(searcher, **options)
    # the indexer's own history probe, on another seed than tuning used: a check, not a replay
    histories = RecallProbe.histories(embeddings, 10, QUERIES, seed=n)
    history_options = params.search_options("history")
    history_recall = histories.recall(searcher, **history_options)
    history_single = timed_calls(
        lambda q: searcher.search(q, final_num_neighbors=10, **history_options), histories.queries[:SINGLE_QUERIES]
    )

    scann_single = timed_calls(
        lambda q: searcher.search(q, final_num_neighbors=10, **options), queries[:SINGLE_QUERIES]
    )
    exact_single = timed_calls(lambda q: exact_top_k(embeddings, q[None], 10), queries[:EXACT_SINGLE_QUERIES])
    batches = [queries[i * BATCH % QUERIES : i * BATCH % QUERIES + BATCH] for i in range(BATCH_REPEATS)]
    scann_batched = timed_calls(lambda b: searcher.search_batched(b, final_num_neighbors=10, **options), batches)
    exact_batched = timed_calls(lambda b: exact_top_k(embeddings, b, 10), batches[:5])
    return {
        "n": n,
        "params": "brute force"
        if params.exact
        else f"{params.num_leaves_to_search}/{params.num_leaves} leaves (history {params.history_leaves_to_search}), AH, reorder {params.reorder_k}",
        "build_s": build_seconds,
        "index_mb": index_bytes / 2**20,
        "rss_data_mb": rss_before,
        "rss_peak_mb": rss_peak,
        "recall": recall,
        "history_recall": history_recall,
        "single": percentiles_ms(scann_single),
        "history_single": percentiles_ms(history_single),
        "exact_single": percentiles_ms(exact_single),
        "batched": percentiles_ms(scann_batched),
        "exact_batched": percentiles_ms(exact_batched),
    }


def size_table(rows: list[dict]) -> str:
    lines = [
        f"Synthetic clustered {DIM}-d vectors (Gaussian mixture, unit norm), {QUERIES} held-out queries "
        f"(history: {QUERIES} means of 5 random titles); "
        f"latency in ms; batched = {BATCH} queries per call; exact = NumPy matmul + argpartition in the same process.",
        "",
        "| N | ScaNN params | build s | index MB | peak RSS MB (before build) | recall@10 | history recall@10 | single p50 / p99 | history single p50 / p99 | exact single p50 / p99 | single speed-up (p50) | batched p50 / p99 | exact batched p50 / p99 | batched speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']:,} | {r['params']} | {r['build_s']:.1f} | {r['index_mb']:.1f} | {r['rss_peak_mb']:.0f} ({r['rss_data_mb']:.0f}) "
            f"| {r['recall']:.3f} | {r['history_recall']:.3f} | {r['single'][0]:.3f} / {r['single'][1]:.3f} | {r['history_single'][0]:.3f} / {r['history_single'][1]:.3f} | {r['exact_single'][0]:.2f} / {r['exact_single'][1]:.2f} "
            f"| {r['exact_single'][0] / r['single'][0]:.0f}× | {r['batched'][0]:.2f} / {r['batched'][1]:.2f} "
            f"| {r['exact_batched'][0]:.1f} / {r['exact_batched'][1]:.1f} | {r['exact_batched'][0] / r['batched'][0]:.1f}× |"
        )
    return "\n".join(lines)


def train_tiny_model(work: Path) -> Path:
    """The tiny backbone (64 px, random init), one warm-up epoch on 48 demo posters: enough to time the pipeline."""
    from localize.demo import write_demo_corpus

    catalog = write_demo_corpus(work / "demo", count=48, seed=0)
    model = work / "model"
    trained = subprocess.run(
        [
            sys.executable,
            "-m",
            "models",
            "train",
            "--catalog",
            str(catalog),
            "--out",
            str(model),
            *TINY_TRAINING.split(),
            "--cache-dir",
            str(work / "cache"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if trained.returncode:
        raise RuntimeError(f"training the tiny model failed:\n{trained.stderr[-3000:]}")
    return model


def changed_catalog(source: Path, work: Path, fraction: float) -> tuple[Path, int]:
    """A copy of ``source`` (absolute image paths) in which ``fraction`` of the posters are edited copies."""
    from PIL import Image, ImageDraw

    with source.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    step = max(1, round(1 / fraction))
    (work / "changed").mkdir(exist_ok=True)
    for i, row in enumerate(rows):
        image = (source.parent / row["image"]).resolve()
        if i % step == 0:
            edited = work / "changed" / image.name
            with Image.open(image) as poster:
                poster = poster.convert("RGB")
                ImageDraw.Draw(poster).rectangle((0, 0, poster.width // 4, poster.height // 8), fill=(255, 0, 0))
                poster.save(edited, "JPEG", quality=90)
            image = edited
        row["image"] = str(image)
    out = work / "catalog_changed.csv"
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out, len(range(0, len(rows), step))


def measure_catalog(catalog: Path) -> str:
    from indexer.build import build_index
    from indexer.ingest import ingest_catalog

    work = Path(tempfile.mkdtemp(prefix="bench-index-"))
    try:
        model = train_tiny_model(work)
        settings = load_settings(home=work, model_dir=model, batch_size=64)
        rows = []
        for label, source in (("full rebuild", catalog), ("after changing 1% of the posters", None)):
            if source is None:
                source, changed = changed_catalog(catalog, work, CHANGED_FRACTION)
                label = f"{label} ({changed} edited)"
            ingest = ingest_catalog(source, settings.store, allow_outside=True)  # the edited copies live in work/
            if ingest.summary is None:
                raise RuntimeError(f"ingesting {source} failed: {ingest.report.errors[:3]}")
            summary = build_index(model, settings)
            rows.append(
                f"| {label} | {summary.items} | {ingest.seconds:.1f} | {summary.seconds:.1f} | {summary.embedded} | {summary.reused} "
                f"| {summary.publication.recall:.3f} |"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return "\n".join(
        [
            f"Real catalogue {catalog} with the tiny backbone (64 px input, random init, one warm-up epoch on 48 demo posters; "
            "it times the pipeline, it is not a useful model). Build = embed + ScaNN build + recall check + publish.",
            "",
            "| run | items | ingest s | build s | embedded | reused from cache | recall@10 |",
            "|---|---|---|---|---|---|---|",
            *rows,
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated corpus sizes")
    parser.add_argument("--no-catalog", action="store_true", help="skip the real-catalogue rebuild")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child mode: measure one size, print JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_size(args.one)))
        return 0
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        child = subprocess.run([sys.executable, __file__, "--one", str(n)], check=True, capture_output=True, text=True)
        rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
        print(f"measured N={n:,}", file=sys.stderr, flush=True)
    print("### Index: ScaNN vs exact search\n")
    print(size_table(rows))
    catalog = REPO.parent / "shared" / "data" / "catalog.csv"
    if args.no_catalog:
        return 0
    print("\n### Index: rebuilding the real catalogue\n")
    if not catalog.is_file():
        print(f"skipped: real catalogue not found at {catalog}")
        return 0
    print(measure_catalog(catalog))
    return 0


if __name__ == "__main__":
    sys.exit(main())
