"""Behaviour vectors published beside the poster vectors: one per title, with their own ScaNN searcher.

A version built with a behaviour model (``models.behaviour``) holds, besides its poster files::

    behaviour.npy          # (T, d) float32 unit vectors, row t = title ordinal t (published.title_ordinals)
    behaviour_warm.npy     # (T,) bool: the title had watches in the model's training (its vocabulary)
    behaviour_scann/       # the serialized ScaNN searcher over behaviour.npy

and a ``"behaviour"`` entry in its manifest (the model's manifest sha256, ``dim``, ``count``, ``warm_count``,
``context_length``, the searcher's ``params`` and its measured recall). A version without that entry has no
behaviour files and is served from its posters alone.

A title that is not warm is *cold*: its vector comes from its poster through the model's item tower only.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from .scann_index import IndexParams, QueryKind, exact_top_k

MANIFEST_KEY = "behaviour"
VECTORS = "behaviour.npy"
WARM = "behaviour_warm.npy"
SCANN_DIR = "behaviour_scann"


@dataclasses.dataclass(frozen=True)
class StagedBehaviour:
    """Behaviour vectors with their searcher and manifest entry, ready to be written into a staged version."""

    vectors: np.ndarray
    warm: np.ndarray
    searcher: object
    manifest: dict

    def write(self, directory: Path) -> None:
        """Write the behaviour files into the (staging) version ``directory``."""
        np.save(directory / VECTORS, np.asarray(self.vectors, np.float32))
        np.save(directory / WARM, np.asarray(self.warm, bool))
        (directory / SCANN_DIR).mkdir()
        self.searcher.serialize(str(directory / SCANN_DIR), relative_path=True)


class BehaviourIndex:
    """The behaviour vectors of one loaded version, searchable like its posters.

    Rows are title ordinals, so ``title_of_row`` and ``original_row_of_title`` are the identity: the ranking
    functions that collapse poster variants into titles apply unchanged.
    """

    def __init__(self, vectors: np.ndarray, warm: np.ndarray, searcher, manifest: dict) -> None:
        self.embeddings = vectors
        self.warm = warm
        self.manifest = manifest
        self.context_length = int(manifest.get("context_length") or len(vectors))
        self._searcher = searcher
        params = IndexParams.from_manifest(manifest)
        self._params = params or IndexParams()
        self.title_of_row = self.original_row_of_title = np.arange(len(vectors), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.embeddings)

    def search(self, queries: np.ndarray, k: int, kind: QueryKind = "history") -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` title ordinals and scores per query row; a query whose leaves hold fewer is answered exactly."""
        queries = np.atleast_2d(np.asarray(queries, np.float32))
        k = max(1, min(int(k), len(self.embeddings)))
        options = self._params.search_options(kind)
        reorder = self._params.reorder_k if not self._params.exact else 0
        pre_reorder = k if k > reorder > 0 else -1
        found = []
        for query in queries:
            rows, scores = self._searcher.search(query, k, pre_reorder, options.get("leaves_to_search", -1))
            if len(rows) < k or not np.isfinite(scores).all():
                rows = exact_top_k(self.embeddings, query[None], k)[0]
                scores = self.embeddings[rows] @ query
            found.append((np.asarray(rows, np.int64), np.asarray(scores, np.float32)))
        return np.stack([r for r, _ in found]), np.stack([s for _, s in found])


def load(directory: Path, manifest: dict, title_count: int) -> BehaviourIndex | None:
    """The behaviour vectors of the version in ``directory``, None when its manifest has none.

    Raises ValueError naming the file that is missing, unreadable or does not fit the version.
    """
    entry = manifest.get(MANIFEST_KEY)
    if entry is None:
        return None
    if not isinstance(entry, dict):
        raise ValueError(f"manifest entry {MANIFEST_KEY!r} is a JSON {type(entry).__name__}, not an object")
    vectors, warm = _load_array(directory / VECTORS), _load_array(directory / WARM)
    expected = (title_count, entry.get("dim"))
    if vectors.ndim != 2 or vectors.dtype != np.float32 or vectors.shape != expected:
        raise ValueError(
            f"{directory / VECTORS} holds a {vectors.dtype} array of shape {vectors.shape}, "
            f"not float32 {expected} ({title_count} titles, manifest dim {entry.get('dim')})"
        )
    if entry.get("count") != title_count or not np.isfinite(vectors).all():
        raise ValueError(f"{directory / VECTORS} does not fit the version: manifest count {entry.get('count')}")
    if warm.dtype != bool or warm.shape != (title_count,) or int(warm.sum()) != entry.get("warm_count"):
        raise ValueError(
            f"{directory / WARM} holds a {warm.dtype} array of shape {warm.shape}, not {title_count} booleans "
            f"with {entry.get('warm_count')} set"
        )
    import scann

    try:
        searcher = scann.scann_ops_pybind.load_searcher(str(directory / SCANN_DIR))
        return BehaviourIndex(vectors, warm, searcher, entry)
    except (OSError, RuntimeError, ValueError, TypeError) as err:
        raise ValueError(f"{directory / SCANN_DIR} cannot be loaded: {err}") from err


def _load_array(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"{path} cannot be read: {err}") from err


def manifest_entry(
    model_dir: Path, model_manifest: dict, model_sha256: str, warm: np.ndarray, params: IndexParams, **recall: float
) -> dict:
    """The version manifest's record of the behaviour vectors and the model that made them."""
    return {
        "model_dir": str(Path(model_dir).resolve()),
        "model_manifest_sha256": model_sha256,
        "dim": int(model_manifest["embedding_dim"]),
        "count": len(warm),
        "warm_count": int(np.count_nonzero(warm)),
        "context_length": int(model_manifest["context_length"]),
        "params": dataclasses.asdict(params),
        **{key: round(value, 4) for key, value in recall.items()},
    }
