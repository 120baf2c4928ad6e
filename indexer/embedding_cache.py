"""Embeddings cached by (model, image content), so a rebuild embeds only what changed.

The key is the pair (model manifest sha256, image sha256): a retrained model
or an edited poster misses the cache, a renamed file or an unchanged poster
hits it. Vectors are committed batch by batch, so a build killed half-way
keeps the work it finished and the next build picks up from there.

Two stores hold them: :class:`EmbeddingCache`, one SQLite file for the
single-process build, and vector files (``<root>/<model sha256>/*.npz``,
each a complete set of ``sha256`` and ``vectors`` arrays written under a
temporary name and renamed) under any path Beam's ``FileSystems`` reaches
(a local folder, ``gs://``, ``s3://``, HDFS), so that pipeline workers on
separate machines share one cache. A file written twice by a retried bundle
only repeats vectors, which readers merge.
"""

from __future__ import annotations

import io
import os
import sqlite3
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from apache_beam.io.filesystems import FileSystems

CACHE_FILE = "embedding_cache.sqlite3"
VECTOR_CACHE_DIR = "embedding_cache"
VECTOR_FILE_SUFFIX = ".npz"


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


def model_folder(root: str, model_sha256: str) -> str:
    """The folder of one model's vector files under the cache ``root``."""
    return FileSystems.join(root, model_sha256)


def vector_file_pattern(folder: str, prefix: str = "") -> str:
    """The ``FileSystems`` glob of the complete vector files in ``folder`` whose names start with ``prefix``."""
    return FileSystems.join(folder, f"{prefix}*{VECTOR_FILE_SUFFIX}")


def _make_folder(folder: str) -> None:
    try:
        FileSystems.mkdirs(folder)
    except OSError:  # it exists (object stores have no folders and never raise)
        pass


def write_vector_file(folder: str, prefix: str, vectors: Mapping[str, np.ndarray]) -> str:
    """Write ``vectors`` (image sha256 -> vector) as a new file in ``folder``; returns its path.

    The file appears only complete: it is written under a temporary name and renamed.
    """
    shas = list(vectors)
    buffer = io.BytesIO()
    np.savez(
        buffer,
        sha256=np.array(shas, dtype="S64"),
        vectors=np.stack([np.asarray(vectors[s], np.float32) for s in shas]) if shas else np.zeros((0, 0), np.float32),
    )
    name = f"{prefix}{uuid.uuid4().hex}{VECTOR_FILE_SUFFIX}"
    final, temporary = FileSystems.join(folder, name), FileSystems.join(folder, f".{name}.tmp")
    _make_folder(folder)
    with FileSystems.create(temporary) as handle:
        handle.write(buffer.getvalue())
    FileSystems.rename([temporary], [final])
    return final


def read_vector_file(path: str) -> dict[str, np.ndarray]:
    """The vectors of one file written by :func:`write_vector_file`, by image sha256."""
    with FileSystems.open(path) as handle:
        data = np.load(io.BytesIO(handle.read()), allow_pickle=False)
        shas, vectors = data["sha256"], data["vectors"]
    return {sha.decode("ascii"): vector for sha, vector in zip(shas, vectors)}


def vector_files(pattern: str) -> list[str]:
    """Paths matching a :func:`vector_file_pattern`, sorted (none when the folder does not exist)."""
    return sorted(meta.path for meta in FileSystems.match([pattern])[0].metadata_list)


def read_vector_files(pattern: str) -> dict[str, np.ndarray]:
    """Every vector of the files matching ``pattern``, by image sha256."""
    vectors: dict[str, np.ndarray] = {}
    for path in vector_files(pattern):
        vectors.update(read_vector_file(path))
    return vectors


def prune_vector_files(root: str, model_sha256: str, keep_prefix: str) -> int:
    """Delete the vector files of other models, and this model's files not named ``keep_prefix*``;
    returns how many were deleted. Run after a build that wrote everything it needs under ``keep_prefix``."""
    stale = [
        path
        for path in vector_files(FileSystems.join(root, "*", f"*{VECTOR_FILE_SUFFIX}"))
        if not path.startswith(FileSystems.join(model_folder(root, model_sha256), keep_prefix))
    ]
    if stale:
        FileSystems.delete(stale)
    return len(stale)
