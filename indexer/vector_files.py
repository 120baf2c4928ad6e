"""The Beam pipeline's embedding cache: vector files that workers on separate machines share.

Embeddings are cached by (model, image content), as in :mod:`indexer.embedding_cache`, in vector files
(``<root>/<model sha256>/*.npz``, each a complete set of ``sha256`` and ``vectors`` arrays written under a
temporary name and renamed) under any path Beam's ``FileSystems`` reaches (a local folder, ``gs://``,
``s3://``, HDFS). A file written twice by a retried bundle only repeats vectors, which readers merge.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Mapping

import numpy as np
from apache_beam.io.filesystems import FileSystems

VECTOR_CACHE_DIR = "embedding_cache"
VECTOR_FILE_SUFFIX = ".npz"


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
