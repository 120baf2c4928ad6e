"""Shared pieces of the recsvc tests (no tests here): a real ScaNN index over synthetic vectors.

The corpus is built so that the hard cases of ``/similar`` actually occur:
titles with regional variants whose vectors sit beside the original, and a
*crowded* neighbourhood where five titles with twelve variants each fill the
first 65 neighbours of ``crowd-q`` — more than the first search depth of a
``k=10`` query, so filling k needs the search to widen.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from posterrec_settings import Settings, load_settings

import numpy as np
from PIL import Image

from indexer.publish import publish_index
from indexer.published import IndexItem

DIM = 32
PLAIN_TITLES = 40
CROWDERS = ("crowd-a", "crowd-b", "crowd-c", "crowd-d", "crowd-e")
CROWD_REGIONS = ("DE", "FR", "JP", "KR", "SA", "IL", "RU", "IN", "TH", "CN", "ES", "IT")
DE_TITLES = tuple(f"t{i:03d}" for i in range(10))
"""Plain titles that have a DE variant (the first five also an FR one)."""
LANGUAGE = {"DE": "de", "FR": "fr"}


@dataclasses.dataclass
class Corpus:
    items: list[IndexItem]
    embeddings: np.ndarray


def _unit(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)).astype(np.float32)


def _poster(image_dir: Path, key: str, colour: tuple[int, int, int]) -> str:
    path = image_dir / f"{key.replace('@', '_')}.jpg"
    if not path.exists():
        image_dir.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (20, 30), colour).save(path, "JPEG", quality=90)
    return str(path)


def synthetic_corpus(image_dir: Path, seed: int = 0, extra_titles: int = 0) -> Corpus:
    """Plain titles (some with DE/FR variants) plus the crowded neighbourhood; ``extra_titles`` grows it."""
    rng = np.random.default_rng(seed)
    items: list[IndexItem] = []
    vectors: list[np.ndarray] = []

    def add(title_id: str, vector: np.ndarray, region: str | None = None) -> None:
        key = IndexItem.variant_key(title_id, region) if region else title_id
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        items.append(
            IndexItem(
                key,
                title_id,
                f"{title_id} ({region})" if region else f"Title {title_id}",
                _poster(image_dir, key, colour),
                region=region,
                language=LANGUAGE.get(region, region.lower()) if region else None,
                year=2000 + len(items) % 20 if not region else None,
                genres=("Drama",) if not region else (),
            )
        )
        vectors.append(vector)

    for i in range(PLAIN_TITLES + extra_titles):
        title_id = f"t{i:03d}"
        base = _unit(rng.normal(size=DIM))
        add(title_id, base)
        if title_id in DE_TITLES:
            add(title_id, _unit(base + rng.normal(scale=0.05, size=DIM)), "DE")
            if i < 5:
                add(title_id, _unit(base + rng.normal(scale=0.05, size=DIM)), "FR")

    centre = _unit(rng.normal(size=DIM))
    add("crowd-q", centre)
    for title_id in CROWDERS:
        add(title_id, _unit(centre + rng.normal(scale=0.02, size=DIM)))
        for region in CROWD_REGIONS:
            add(title_id, _unit(centre + rng.normal(scale=0.02, size=DIM)), region)
    return Corpus(items, np.stack(vectors).astype(np.float32))


def publish(root: Path, corpus: Corpus, manifest: dict | None = None, keep_versions: int = 20) -> str:
    """Publish ``corpus`` as the new current version of ``root`` (brute force: exact and quick), keeping
    ``keep_versions``."""
    publication = publish_index(
        root,
        corpus.items,
        corpus.embeddings,
        manifest or {"source": "synthetic test corpus"},
        exact_search_max_items=100_000,
        recall_floor=0.9,
        keep_versions=keep_versions,
    )
    return publication.version


def settings_for(index_root: Path, poll_seconds: float = 0.05) -> Settings:
    """Settings that ignore the environment, so a developer's POSTERREC_* cannot change a test."""
    return load_settings(env={}, index_root=index_root, index_poll_seconds=poll_seconds)
