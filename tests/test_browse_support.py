"""Shared pieces of the browse tests (no tests here): demo posters with variants in a real index, served on localhost.

The posters come from :func:`localize.demo.write_demo_corpus` (real files, real
genres); some titles get regional variants (the poster with a region band, so
a test can tell the images apart). Embeddings are a fixed random projection of
the downscaled pixels: no model is needed, and posters drawn in one genre's
palette still end up near each other. The index is published with
:func:`indexer.publish.publish_index` and served by the real app factory.
"""

from __future__ import annotations

import csv
import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path

from posterrec_settings import load_settings

import numpy as np
from PIL import Image, ImageDraw
from werkzeug.serving import make_server

from indexer.publish import publish_index
from indexer.published import IndexItem
from localize.demo import write_demo_corpus
from recsvc import create_app

TITLES = 30
SEED = 11
DIM = 24
VARIANT_REGIONS = {"DE": "de", "JP": "ja"}
DE_EVERY = 2
"""Every other title has a DE variant; every fourth also a JP one."""


@dataclasses.dataclass(frozen=True)
class BrowseCorpus:
    index_root: Path
    items: list[IndexItem]
    embeddings: np.ndarray

    @property
    def originals(self) -> list[IndexItem]:
        return [item for item in self.items if not item.is_variant]

    def variant_regions(self, title_id: str) -> set[str]:
        return {item.region for item in self.items if item.title_id == title_id and item.region}


def _variant_poster(original: Path, out: Path, region: str) -> Path:
    """The original with a coloured band naming the region: a different image of the same poster."""
    with Image.open(original) as image:
        poster = image.convert("RGB")
    draw = ImageDraw.Draw(poster)
    draw.rectangle((0, 0, poster.width, poster.height // 8), fill=(40, 170, 130))
    draw.text((10, 10), f"{region} EDITION", fill=(255, 255, 255))
    out.parent.mkdir(parents=True, exist_ok=True)
    poster.save(out)
    return out


def _pixel_embedding(path: str, projection: np.ndarray) -> np.ndarray:
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB").resize((8, 12)), dtype=np.float32).ravel() / 255.0
    vector = (pixels - 0.5) @ projection
    return vector / np.linalg.norm(vector)


def build_browse_corpus(root: Path, titles: int = TITLES) -> BrowseCorpus:
    """Demo posters, their variants and a published index under ``root``."""
    catalog = write_demo_corpus(root / "demo", titles, SEED)
    items: list[IndexItem] = []
    with catalog.open(encoding="utf-8") as handle:
        for i, row in enumerate(csv.DictReader(handle)):
            poster = catalog.parent / row["image"]
            genres = tuple(row["genres"].split("|"))
            items.append(
                IndexItem(row["id"], row["id"], row["title"], str(poster), year=int(row["year"]), genres=genres)
            )
            for n, (region, language) in enumerate(VARIANT_REGIONS.items()):
                if i % (DE_EVERY * (n + 1)) == 0:
                    image = _variant_poster(poster, root / "variants" / region / f"{row['id']}.png", region)
                    items.append(
                        IndexItem(
                            IndexItem.variant_key(row["id"], region),
                            row["id"],
                            f"{row['title']} [{region}]",
                            str(image),
                            region=region,
                            language=language,
                            year=int(row["year"]),
                            genres=genres,
                        )
                    )
    projection = np.random.default_rng(SEED).normal(size=(8 * 12 * 3, DIM)).astype(np.float32)
    embeddings = np.stack([_pixel_embedding(item.image_path, projection) for item in items])
    corpus = BrowseCorpus(root / "index", items, embeddings)
    publish(corpus)
    return corpus


def publish(corpus: BrowseCorpus) -> str:
    """Publish the corpus as the current index version (brute force: exact and quick)."""
    return publish_index(
        corpus.index_root,
        corpus.items,
        corpus.embeddings,
        {"source": "browse test corpus"},
        exact_search_max_items=100_000,
        recall_floor=0.9,
        keep_versions=3,
    ).version


def browse_app(index_root: Path):
    """The real app over ``index_root``, ignoring the developer's POSTERREC_* environment."""
    return create_app(load_settings(env={}, index_root=index_root), watch=False)


@dataclasses.dataclass(frozen=True)
class LiveServer:
    url: str


def serve(app) -> Iterator[LiveServer]:
    """Serve ``app`` on a free localhost port in a thread (werkzeug's threaded server) until closed."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="browse-test-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        thread.join(timeout=10)
