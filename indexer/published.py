"""Published index versions on disk: how they are laid out, switched and read.

An index root holds one directory per version under ``versions/`` and a
``CURRENT`` file naming the served one::

    INDEX_ROOT/
      CURRENT                      # "20261125T064500123456Z", replaced by rename
      versions/<version>/
        manifest.json              # model hash, item count, parameters, build time, recall
        items.jsonl                # one IndexItem per row, in embedding order
        embeddings.npy             # (N, dim) float32, L2-normalised
        scann/                     # the serialized ScaNN searcher (shards/<i>/ when sharded: indexer.shards)
        behaviour*.npy, behaviour_scann/   # with a behaviour model only (indexer.behaviour_index)
        variant_images/            # the variants' images, linked or copied (indexer.variant_images)

A version directory is complete before its name appears under ``versions/``
(it is written under ``.tmp-*`` and renamed), and ``CURRENT`` changes by an
atomic rename. A reader therefore always sees the previous or the next
version, never half of one, and a killed build leaves the old one served.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime
import fcntl
import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from posterrec_atomic import fsync_directory, staging_directory, write_text

from . import behaviour_index, similar_lists, variant_images
from .behaviour_index import BehaviourIndex
from .scann_index import IndexParams, QueryKind, exact_top_k
from .shards import SCANN_DIR as SCANN_DIR  # where a version of one shard keeps its searcher
from .shards import Shard, ShardSet, load_shards
from .similar_lists import SimilarLists

log = logging.getLogger(__name__)

CURRENT = "CURRENT"
VERSIONS = "versions"
MANIFEST = "manifest.json"
ITEMS = "items.jsonl"
EMBEDDINGS = "embeddings.npy"
NEVER_SERVED = "NEVER_SERVED"
"""Marker file in a version that ``CURRENT`` has not named yet: a build killed between the version's rename and
``CURRENT`` leaves it behind, and such a version takes no ``keep_versions`` slot and is no rollback target."""


class IndexVersionError(RuntimeError):
    """An index root or version that cannot be read or switched to, with the reason."""


@dataclasses.dataclass(frozen=True, slots=True)
class IndexItem:
    """What one indexed vector stands for: an original poster or one regional variant of it."""

    key: str
    """``<title_id>`` for an original, ``<title_id>@<REGION>`` for a variant."""
    title_id: str
    title: str
    image_path: str
    region: str | None = None
    language: str | None = None
    year: int | None = None
    genres: tuple[str, ...] = ()

    @property
    def is_variant(self) -> bool:
        return self.region is not None

    @staticmethod
    def variant_key(title_id: str, region: str) -> str:
        return f"{title_id}@{region}"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> IndexItem:
        data = json.loads(line)
        data["genres"] = tuple(data.get("genres") or ())
        return cls(**data)


VERSION_NAME = re.compile(r"\d{8}T\d{12}Z")
"""What :func:`new_version_name` writes."""


def new_version_name(now: datetime.datetime | None = None) -> str:
    """A version name that sorts in publication order (:data:`VERSION_NAME`)."""
    now = now or datetime.datetime.now(datetime.UTC)
    return now.strftime("%Y%m%dT%H%M%S%fZ")


def stage_version(root: Path, version: str, write: Callable[[Path], None]) -> Path:
    """Let ``write`` fill a temporary directory, then move it to ``versions/<version>``.

    The version is not served until :func:`set_current` names it; if ``write``
    raises, the temporary directory is removed and nothing else changes.
    """
    versions = Path(root) / VERSIONS
    final = versions / version
    with staging_directory(versions, prefix=f".tmp-{version}-") as staging:
        write(staging)
        (staging / NEVER_SERVED).touch()
        os.rename(staging, final)
        fsync_directory(versions)
    return final


def write_version_files(directory: Path, items: Sequence[IndexItem], embeddings: np.ndarray, manifest: dict) -> None:
    """The item, embedding and manifest files of a version (the searcher is saved by its builder)."""
    if len(items) != len(embeddings):
        raise ValueError(f"{len(items)} items but {len(embeddings)} embeddings")
    np.save(directory / EMBEDDINGS, np.asarray(embeddings, dtype=np.float32))
    (directory / ITEMS).write_text("".join(item.to_json() + "\n" for item in items), encoding="utf-8")
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")


@contextlib.contextmanager
def publisher_lock(root: Path):
    """Only one build publishes into ``root`` at a time.

    Without it a second build's pruning would delete the first one's staging
    directory; with it the second build stops at once with a clear message.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".publish.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IndexVersionError(
                f"another build is publishing into {root}; run again when it has finished"
            ) from None
        yield


def list_versions(root: Path) -> list[str]:
    """Complete versions, oldest first: the folders named as :func:`new_version_name` names them (staging
    folders, and a backup or an export an operator put there, are not versions, and are never pruned)."""
    versions = Path(root) / VERSIONS
    if not versions.is_dir():
        return []
    return sorted(p.name for p in versions.iterdir() if p.is_dir() and VERSION_NAME.fullmatch(p.name))


def served_versions(root: Path) -> list[str]:
    """Versions ``CURRENT`` has named (or names now), oldest first: those a rollback or a fallback may serve."""
    current = _current_or_none(root)
    return [v for v in list_versions(root) if v == current or not (Path(root) / VERSIONS / v / NEVER_SERVED).exists()]


def _current_or_none(root: Path) -> str | None:
    try:
        return current_version(root)
    except IndexVersionError:
        return None


def current_version(root: Path) -> str | None:
    """The served version's name, or None before the first publication; :class:`IndexVersionError` when unreadable."""
    path = Path(root) / CURRENT
    try:
        name = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        raise IndexVersionError(f"{path} cannot be read as a version name: {err}") from err
    return name or None


def unknown_version(root: Path, version: str) -> IndexVersionError:
    """The error for a ``version`` that ``root`` does not hold, naming those it does."""
    return IndexVersionError(
        f"index root {root} has no version {version!r} (have: {', '.join(list_versions(root)) or 'none'})"
    )


def set_current(root: Path, version: str) -> None:
    """Serve ``version`` from now on; an atomic rename, so readers see the old or the new name."""
    if version not in list_versions(root):
        raise unknown_version(root, version)
    outgoing = _current_or_none(root)
    if outgoing:  # served until now, whether or not a kill between CURRENT and the unlink below left its marker
        (Path(root) / VERSIONS / outgoing / NEVER_SERVED).unlink(missing_ok=True)
    write_text(Path(root) / CURRENT, version + "\n")
    (Path(root) / VERSIONS / version / NEVER_SERVED).unlink(missing_ok=True)


def prune_versions(root: Path, keep: int, protect: Iterable[str] = ()) -> list[str]:
    """Delete all but the newest ``keep`` served versions (never the current one nor those in ``protect``: the
    publisher protects the version served before its own, which may be an older one an operator rolled back to)
    and every version never served (what a build killed before ``CURRENT`` left); returns what was deleted. Run
    it under :func:`publisher_lock`."""
    keep = max(1, keep)
    protected = set(protect) | {current_version(root)}
    served = served_versions(root)
    never_served = [v for v in list_versions(root) if v not in served]
    doomed = [v for v in served[: max(0, len(served) - keep)] + never_served if v not in protected]
    for version in doomed:
        shutil.rmtree(Path(root) / VERSIONS / version)
        log.info("pruned index version %s", version)
    stale = [p for p in (Path(root) / VERSIONS).glob(".tmp-*")] if (Path(root) / VERSIONS).is_dir() else []
    for path in stale:  # staging left behind by a killed build
        shutil.rmtree(path, ignore_errors=True)
    return doomed


class PublishedIndex:
    """One loaded index version: its items, embeddings and ScaNN searcher (or its shards' searchers, merged).

    Loaded whole and then immutable, so a service can swap one instance for
    another with a single reference assignment.
    """

    def __init__(
        self,
        path: Path,
        manifest: dict,
        items: list[IndexItem],
        embeddings: np.ndarray,
        searcher,
        similar: SimilarLists | None = None,
    ) -> None:
        self.path = path
        self.version = path.name
        self.manifest = manifest
        self.items = items
        self.embeddings = embeddings
        self._searcher = searcher
        self._shards = (
            searcher
            if isinstance(searcher, ShardSet)
            else ShardSet([Shard(searcher, IndexParams.from_manifest(manifest) or IndexParams(), len(items))])
        )
        self.row_of_key = {item.key: row for row, item in enumerate(items)}
        self.title_ids, self.title_of_row = title_ordinals(items)
        """Title ids by ordinal: ``title_ids[title_of_row[row]]`` is the title of ``row``, so that a search
        result is grouped by title in NumPy, not row by row."""
        self.original_row_of_title = original_rows(items, len(self.title_ids), self.title_of_row)
        self.title_names = [items[row].title if row >= 0 else "" for row in self.original_row_of_title.tolist()]
        """The title of each ordinal's original poster ("" for a title indexed only through variants)."""
        self._is_poster_row = np.zeros(len(items), bool)
        self._is_poster_row[self.original_row_of_title[self.original_row_of_title >= 0]] = True
        self.rows_of_title: dict[str, list[int]] = {}
        for row, item in enumerate(items):
            self.rows_of_title.setdefault(item.title_id, []).append(row)
        self.regions = frozenset(item.region for item in items if item.region)
        """Regions that have at least one variant, derived once: requests validate ``region`` against it."""
        self.similar = similar
        """Each title's nearest other titles, precomputed at publication (None for versions published without)."""
        self.behaviour: BehaviourIndex | None = None
        """Each title's behaviour vector and searcher (None for versions built without a behaviour model)."""

    def __len__(self) -> int:
        return len(self.items)

    def poster_row(self, title_id: str) -> int | None:
        """The row of poster ``title_id``'s original, None for an unknown id or a variant key (``<id>@DE``)."""
        row = self.row_of_key.get(title_id)
        return row if row is not None and self._is_poster_row[row] else None

    def variants_of(self, title_id: str) -> list[IndexItem]:
        """The regional variants indexed for ``title_id`` (empty for an unknown title)."""
        return [self.items[row] for row in self.rows_of_title.get(title_id, ()) if self.items[row].is_variant]

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    def search(self, queries: np.ndarray, k: int, kind: QueryKind = "poster") -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` rows and dot-product scores for each query row (k is capped at the index size).

        Each query ``kind`` searches the leaves tuned for it.
        A search deeper than its leaves hold comes back short (one query) or padded with NaN (a
        batch); those queries are answered exactly.
        """
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if queries.shape[1] != self.dim:
            raise ValueError(f"query has dimension {queries.shape[1]}, index {self.version} has {self.dim}")
        k = max(1, min(int(k), len(self.items)))
        if len(queries) == 1:
            rows, scores = self.search_leaves(queries[0], k, kind)
            return self._exact(queries, k) if len(rows) < k else (rows[None], scores[None])
        rows, scores = self._shards.search_batched(queries, k, kind)
        if not np.isfinite(scores).all():
            short = ~np.isfinite(scores).all(axis=1)
            rows[short], scores[short] = self._exact(queries[short], k)
        return rows, scores

    def search_leaves(self, query: np.ndarray, k: int, kind: QueryKind = "poster") -> tuple[np.ndarray, np.ndarray]:
        """One query's top-``k`` as its searched leaves hold them: fewer than ``k`` rows when they hold fewer.

        ScaNN's single-query call: cheaper than a batch of one, and its answers are not always those of
        the batched call, which picks candidates a little differently; whatever must answer like a
        request (the similar lists) searches through here. A sharded version merges its shards' answers.
        """
        return self._shards.search(query, k, kind)

    def _exact(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        rows = exact_top_k(self.embeddings, queries, k)
        return rows, np.einsum("qd,qkd->qk", queries, self.embeddings[rows])


def title_ordinals(items: Sequence[IndexItem]) -> tuple[list[str], np.ndarray]:
    """Title ids in order of first appearance, and the ordinal of every row's title.

    Per-title data of a version (its similar lists) is stored by these ordinals, so they must be derived one way.
    """
    ordinal: dict[str, int] = {}
    of_row = np.fromiter((ordinal.setdefault(item.title_id, len(ordinal)) for item in items), np.int64, len(items))
    return list(ordinal), of_row


def original_rows(items: Sequence[IndexItem], title_count: int, title_of_row: np.ndarray) -> np.ndarray:
    """The row of each title's original poster by ordinal (-1 for a title indexed only through variants)."""
    rows = np.full(title_count, -1, np.int64)
    originals = np.fromiter((row for row, item in enumerate(items) if not item.is_variant), np.int64)
    rows[title_of_row[originals]] = originals
    return rows


def duplicate_keys(items: Sequence[IndexItem]) -> list[str]:
    """Keys held by more than one item: each key must name one row (a variant's ``<id>@<REGION>`` included)."""
    return sorted(key for key, count in collections.Counter(item.key for item in items).items() if count > 1)


def _version_problem(manifest: object, items: list[IndexItem], embeddings: np.ndarray) -> str | None:
    """Why the files of one version do not fit together, or None: what a service must not swap in."""
    if not isinstance(manifest, dict):
        return f"its manifest is a JSON {type(manifest).__name__}, not an object"
    if embeddings.ndim != 2 or not np.issubdtype(embeddings.dtype, np.floating):
        return f"its embeddings are a {embeddings.ndim}-d {embeddings.dtype} array, not 2-d floats"
    if manifest.get("dim", embeddings.shape[1]) != embeddings.shape[1]:
        return f"its embeddings are {embeddings.shape[1]}-d, the manifest says {manifest.get('dim')}"
    if len(items) != len(embeddings) or manifest.get("item_count", len(items)) != len(items):
        return f"{len(items)} items, {len(embeddings)} embeddings, manifest says {manifest.get('item_count')}"
    duplicates = duplicate_keys(items)
    if duplicates:
        return f"{len(duplicates)} key(s) name more than one item: {', '.join(map(repr, duplicates[:5]))}"
    return None


def open_version(root: Path, version: str | None = None) -> PublishedIndex:
    """Load ``version`` (default: the current one) completely, or raise :class:`IndexVersionError` saying why."""
    root = Path(root)
    if version and version not in list_versions(root):
        raise unknown_version(root, version)
    version = version or current_version(root)
    if version is None and list_versions(root):
        raise IndexVersionError(
            f"index root {root}: CURRENT names no version; serve one with `python -m indexer rollback VERSION` "
            "(`python -m indexer versions` lists them)"
        )
    if version is None:
        raise IndexVersionError(f"index root {root} has no published version yet (run `python -m indexer build`)")
    return open_directory(root / VERSIONS / version)


def open_directory(path: Path, with_similar_lists: bool = True) -> PublishedIndex:
    """Load the version files in ``path``: a published version, or one still being staged by the publisher."""
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        lines = (path / ITEMS).read_text(encoding="utf-8").splitlines()
        items = [variant_images.resolved(IndexItem.from_json(line), path) for line in lines if line]
        embeddings = np.load(path / EMBEDDINGS)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as err:
        raise IndexVersionError(f"index version {path} cannot be loaded: {err}") from err
    problem = _version_problem(manifest, items, embeddings)
    if problem:
        raise IndexVersionError(f"index version {path} is inconsistent: {problem}")
    try:
        index = PublishedIndex(path, manifest, items, embeddings, load_shards(path, manifest, len(items)))
    except (OSError, ValueError, RuntimeError, TypeError) as err:  # ShardError names the shard
        raise IndexVersionError(f"index version {path} cannot be loaded: {err}") from err
    try:
        index.behaviour = behaviour_index.load(path, manifest, len(index.title_ids))
    except ValueError as err:
        raise IndexVersionError(f"index version {path} cannot be loaded: {err}") from err
    if with_similar_lists:
        try:
            index.similar = similar_lists.load(path, len(index.title_ids))
        except (OSError, ValueError) as err:
            raise IndexVersionError(f"index version {path} cannot be loaded: {err}") from err
    return index
