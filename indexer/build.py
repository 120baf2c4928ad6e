"""``python -m indexer build``: embed the store's posters and variants, publish a new index version.

Every title and every localized variant in the store becomes one indexed
vector that knows its title id and region, so the service can collapse the
variants of one title into one result and prefer a region's variant.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import logging
import time
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from posterrec_settings import Settings, load_settings

from .embedding_cache import CACHE_FILE, EmbeddingCache
from .publish import Publication, publish_index
from .published import IndexError_, IndexItem
from .store import Store, open_store

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Source:
    """One thing to index: its item and the image (path and content hash) to embed."""

    item: IndexItem
    image_sha256: str


@dataclasses.dataclass(frozen=True)
class BuildSummary:
    publication: Publication
    items: int
    embedded: int
    reused: int
    seconds: float

    def __str__(self) -> str:
        return (
            f"published {self.publication.version}: {self.items} items ({self.embedded} embedded, "
            f"{self.reused} reused from cache) in {self.seconds:.1f} s, recall@10 {self.publication.recall:.3f}"
        )


def store_sources(store: Store) -> list[Source]:
    """Originals then variants, in a stable order."""
    titles = store.titles()
    by_id = {title.id: title for title in titles}
    sources = [
        Source(IndexItem(t.id, t.id, t.title, str(t.image_path), year=t.year, genres=t.genres), t.image_sha256)
        for t in titles
    ]
    for v in store.variants():
        parent = by_id[v.parent_id]
        item = IndexItem(
            IndexItem.variant_key(v.parent_id, v.region), v.parent_id, v.title, str(v.image_path),
            region=v.region, language=v.language, year=parent.year, genres=parent.genres,
        )
        sources.append(Source(item, v.image_sha256))
    return sources


def read_verified_image(source: Source) -> bytes:
    """The poster's bytes, refused when they are not the image the store ingested.

    A file edited in place after ingest would otherwise be embedded and cached
    under the old content hash, and every later build would reuse that wrong vector.
    """
    path = Path(source.item.image_path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise IndexError_(f"{source.item.key}: poster {path} cannot be read: {err.strerror or err}") from None
    if hashlib.sha256(data).hexdigest() != source.image_sha256:
        raise IndexError_(f"{source.item.key}: poster {path} changed since it was ingested; run `python -m indexer ingest` again")
    return data


def embed_batch(embedder, batch: Sequence[Source]) -> np.ndarray:
    try:
        return embedder.embed_images([read_verified_image(s) for s in batch])
    except ValueError as err:  # the embedder names the undecodable input by its position
        keys = ", ".join(s.item.key for s in batch)
        raise IndexError_(f"cannot embed the posters of {keys}: {err}") from None


def embed_sources(embedder, sources: Sequence[Source], cache: EmbeddingCache, batch_size: int) -> tuple[np.ndarray, int]:
    """Embeddings of ``sources`` in order, embedding only images the cache lacks; returns (vectors, embedded)."""
    model = embedder.manifest_sha256
    vectors = cache.get_many(model, (s.image_sha256 for s in sources))
    missing = list({s.image_sha256: s for s in sources if s.image_sha256 not in vectors}.values())
    with tqdm(total=len(missing), desc="embedding", unit="img", disable=not missing) as progress:
        for start in range(0, len(missing), batch_size):
            batch = missing[start : start + batch_size]
            fresh = {s.image_sha256: vector for s, vector in zip(batch, embed_batch(embedder, batch))}
            cache.put_many(model, fresh)
            vectors.update(fresh)
            progress.update(len(batch))
    return np.stack([vectors[s.image_sha256] for s in sources]).astype(np.float32), len(missing)


def build_index(model_dir: str | Path, settings: Settings, store_path: Path | None = None, index_root: Path | None = None) -> BuildSummary:
    """Embed everything in the store with the model in ``model_dir`` and publish it as the current version."""
    from models.embedder import load_embedder  # TensorFlow loads only for commands that embed

    started = time.perf_counter()
    store_path = Path(store_path or settings.store)
    index_root = Path(index_root or settings.index_root)
    if not store_path.is_file():  # checked first: opening it would create an empty store
        raise IndexError_(f"store {store_path} does not exist: run `python -m indexer ingest CATALOG.csv` first")
    try:
        embedder = load_embedder(model_dir)
    except (FileNotFoundError, ValueError) as err:  # not an exported model, or not the one expected
        raise IndexError_(f"cannot build with model {model_dir}: {err}") from None
    with open_store(store_path) as store:
        sources = store_sources(store)
    if not sources:
        raise IndexError_(f"store {store_path} has no titles: run `python -m indexer ingest CATALOG.csv` first")
    with EmbeddingCache(index_root / CACHE_FILE) as cache:
        embeddings, embedded = embed_sources(embedder, sources, cache, settings.batch_size)
        cache.prune(embedder.manifest_sha256, (s.image_sha256 for s in sources))
    manifest = {
        "model_dir": str(Path(model_dir).resolve()),
        "model_manifest_sha256": embedder.manifest_sha256,
        "model_backbone": embedder.manifest.get("backbone"),
        "store": str(store_path.resolve()),
        "variant_count": sum(1 for s in sources if s.item.is_variant),
    }
    publication = publish_index(
        index_root, [s.item for s in sources], embeddings, manifest,
        exact_search_max_items=settings.exact_search_max_items,
        recall_floor=settings.recall_floor,
        keep_versions=settings.keep_versions,
        similar_depth=settings.similar_list_depth,
    )
    with open_store(store_path) as store:
        store.record_index_version(publication.version, publication.path, len(sources), manifest)
    return BuildSummary(publication, len(sources), embedded, len(sources) - embedded, time.perf_counter() - started)


def add_command(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("build", help="embed the store and publish a new index version")
    parser.add_argument("--model", type=Path, help="exported model directory (default: settings.model_dir)")
    parser.add_argument("--store", type=Path, help="SQLite store (default: settings.store)")
    parser.add_argument("--out", type=Path, help="index root (default: settings.index_root)")
    parser.add_argument("--recall-floor", type=float, help="refuse to publish below this recall@10")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    settings = load_settings(recall_floor=args.recall_floor)
    summary = build_index(args.model or settings.model_dir, settings, args.store, args.out)
    print(summary)
    return 0
