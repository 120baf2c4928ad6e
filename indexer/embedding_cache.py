"""Embeddings cached by (model, image content), so a rebuild embeds only what changed.

The key is the pair (model manifest sha256, image sha256): a retrained model
or an edited poster misses the cache, a renamed file or an unchanged poster
hits it. Vectors are committed batch by batch, so a build killed half-way
keeps the work it finished and the next build picks up from there.

:class:`EmbeddingCache` is one SQLite file, for the single-process build; the Beam pipeline's workers share
vector files instead (:mod:`indexer.vector_files`).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

CACHE_FILE = "embedding_cache.sqlite3"


class EmbeddingCache:
    def __init__(self, path: str | os.PathLike) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode = WAL")
        # Commits survive the process being killed, not the machine losing power: enough for a cache, and a
        # commit per batch costs 1 ms instead of 4 (fsync of the WAL).
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.execute(
            """CREATE TABLE IF NOT EXISTS embeddings (
                   model_sha256 TEXT NOT NULL,
                   image_sha256 TEXT NOT NULL,
                   vector       BLOB NOT NULL,
                   PRIMARY KEY (model_sha256, image_sha256))"""
        )

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def get_many(self, model_sha256: str, image_sha256s: Iterable[str]) -> dict[str, np.ndarray]:
        """The cached vectors of those images that have one under this model."""
        wanted = list(dict.fromkeys(image_sha256s))
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(wanted), 500):  # stay under SQLite's bound-parameter limit
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT image_sha256, vector FROM embeddings WHERE model_sha256 = ? AND image_sha256 IN ({marks})",
                [model_sha256, *chunk],
            )
            found.update((sha, np.frombuffer(blob, dtype=np.float32)) for sha, blob in rows)
        return found

    def put_many(self, model_sha256: str, vectors: Mapping[str, np.ndarray]) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)",
                [(model_sha256, sha, np.asarray(v, dtype=np.float32).tobytes()) for sha, v in vectors.items()],
            )

    def prune(self, model_sha256: str, keep_image_sha256s: Iterable[str]) -> int:
        """Forget vectors of other models and of images no longer in the catalogue."""
        with self._db:
            self._db.execute("CREATE TEMP TABLE IF NOT EXISTS keep (sha TEXT PRIMARY KEY)")
            self._db.execute("DELETE FROM keep")
            self._db.executemany("INSERT OR IGNORE INTO keep VALUES (?)", [(s,) for s in keep_image_sha256s])
            cursor = self._db.execute(
                "DELETE FROM embeddings WHERE model_sha256 != ? OR image_sha256 NOT IN (SELECT sha FROM keep)",
                (model_sha256,),
            )
        return cursor.rowcount
