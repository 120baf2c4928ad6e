"""The browse page on a 10k-title catalogue: listing, page rendering and thumbnails.

A synthetic index of ``--titles`` titles (every third with a DE variant; the
images are a few demo posters, reused) is published and served by the real
app through Flask's test client, so the numbers are the server's own work
without network or browser. Baseline in the same run: ``/healthz`` (the
framework's floor). Thumbnails are compared with the full image the API serves
(``/v1/posters/<id>/image``): bytes per poster, cold (made), warm (cached in
the process) and revalidated (``If-None-Match`` answered 304).

    .venv/bin/python bench/bench_browse.py [--titles 10000] [--requests 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import posterrec_settings  # noqa: E402,F401
from posterrec_settings import load_settings  # noqa: E402

from indexer.publish import publish_index  # noqa: E402
from indexer.published import IndexItem  # noqa: E402
from localize.demo import write_demo_corpus  # noqa: E402
from recsvc import create_app  # noqa: E402
from recsvc.browse import thumbnail_jpeg  # noqa: E402

WORDS = ("night", "river", "iron", "glass", "honey", "storm", "ash", "gold", "light", "shadow", "salt", "fire")
GENRES = ("Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "Thriller", "Animation")
DISTINCT_IMAGES = 12
DIM = 32


def publish_catalogue(root: Path, titles: int) -> None:
    catalog = write_demo_corpus(root / "demo", DISTINCT_IMAGES, seed=3)
    images = sorted(str(p) for p in (catalog.parent / "posters").glob("*.png"))
    rng = np.random.default_rng(0)
    items: list[IndexItem] = []
    for i in range(titles):
        title_id = f"tt{i:07d}"
        title = " ".join(rng.choice(WORDS, size=3)).title()
        genres = tuple(rng.choice(GENRES, size=2, replace=False))
        image = images[i % len(images)]
        items.append(IndexItem(title_id, title_id, title, image, year=1950 + i % 70, genres=genres))
        if i % 3 == 0:
            items.append(
                IndexItem(
                    IndexItem.variant_key(title_id, "DE"), title_id, title, image, "DE", "de", 1950 + i % 70, genres
                )
            )
    vectors = rng.normal(size=(len(items), DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    publish_index(
        root / "index",
        items,
        vectors,
        {"source": "bench_browse"},
        exact_search_max_items=100_000,
        recall_floor=0.9,
        keep_versions=1,
    )


def timed(client, path: str, requests: int, headers: dict | None = None) -> tuple[float, float, int, int]:
    """p50 and p99 in ms, the status and the body size of ``path`` over ``requests`` calls."""
    client.get(path, headers=headers)  # warm-up: builds per-index caches
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(path, headers=headers)
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.99 * (len(samples) - 1))], response.status_code, len(response.data)


def cold_thumbnail_ms(client, paths: list[str]) -> float:
    samples = []
    for path in paths:
        thumbnail_jpeg.cache_clear()
        started = time.perf_counter()
        client.get(path)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--titles", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        publish_catalogue(root, args.titles)
        client = create_app(load_settings(env={}, index_root=root / "index"), watch=False).test_client()
        rows = [("`/healthz` (baseline)", "/healthz")]
        rows += [
            ("`/v1/posters` first page (24)", "/v1/posters"),
            ("`/v1/posters?q=night gold`", "/v1/posters?q=night%20gold"),
            ("`/v1/posters?genre=Horror&page=40`", "/v1/posters?genre=Horror&page=40"),
            ("`/v1/posters?region=DE&per_page=100`", "/v1/posters?region=DE&per_page=100"),
            ("`/v1/posters?region=DE&has_variant=true`", "/v1/posters?region=DE&has_variant=true"),
            ("`/` page (24 cards, server-rendered)", "/"),
            ("`/?q=night&genre=Drama&region=DE`", "/?q=night&genre=Drama&region=DE"),
            ("`/?region=DE&has_variant=false` (coverage filter)", "/?region=DE&has_variant=false"),
            ("`/thumbs/<id>` warm (in-process cache)", "/thumbs/tt0000001"),
        ]
        print(
            f"\n### Browse page, {args.titles:,} titles ({args.requests} sequential requests each, Flask test client)\n"
        )
        print("| request | p50 ms | p99 ms | status | bytes |")
        print("|---|---:|---:|---:|---:|")
        for label, path in rows:
            p50, p99, status, size = timed(client, path, args.requests)
            print(f"| {label} | {p50:.2f} | {p99:.2f} | {status} | {size:,} |")
        etag = client.get("/thumbs/tt0000001").headers["ETag"]
        p50, p99, status, size = timed(client, "/thumbs/tt0000001", args.requests, {"If-None-Match": etag})
        print(f"| `/thumbs/<id>` revalidated (If-None-Match) | {p50:.2f} | {p99:.2f} | {status} | {size:,} |")
        p50, p99, status, size = timed(client, "/v1/posters/tt0000001/image", args.requests)
        print(
            f"| `/v1/posters/<id>/image` (full poster, for comparison) | {p50:.2f} | {p99:.2f} | {status} | {size:,} |"
        )
        cold = cold_thumbnail_ms(client, [f"/thumbs/tt{i:07d}" for i in range(DISTINCT_IMAGES)])
        print(
            f"\nCold thumbnail (decode, resize, encode a 400×600 PNG): median {cold:.1f} ms over {DISTINCT_IMAGES} posters."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
