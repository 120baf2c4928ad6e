"""Publishing a set of embeddings as a new served index version.

The order is the safety argument: build the searcher, measure its recall
against exact search, refuse below the floor, write everything under a
temporary name, reload what was written and check it answers like the
in-memory searcher, and only then switch ``CURRENT``. A failure or a kill at
any step leaves the previously served version untouched.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import time
from collections.abc import Sequence
from pathlib import Path

from posterrec_settings import Settings

import numpy as np

from . import published, similar_lists
from .published import IndexItem, IndexVersionError
from .scann_index import IndexParams, build_tuned, measure_recall, timed_build

log = logging.getLogger(__name__)


class RecallBelowFloor(IndexVersionError):
    """The built index finds too few of the true neighbours to be served."""


@dataclasses.dataclass(frozen=True)
class Publication:
    version: str
    path: Path
    recall: float
    params: IndexParams
    build_seconds: float
    pruned: list[str]


def _finish_staged(directory: Path, searcher, params: IndexParams, embeddings: np.ndarray, k: int, depth: int) -> None:
    """Reload the staged files once: they must answer a sample of queries like the searcher that was built;
    then add every title's ``depth`` nearest other titles, searched in them exactly as the service will search.

    Both searchers are asked the same raw single-query question: the service's own ``search`` answers
    exactly where the leaves searched hold fewer than ``k`` rows, which a sparse tree's raw answer does
    not, so comparing the two failed such builds at random (ScaNN's trees are not seeded).
    """
    staged = published.open_directory(directory, with_similar_lists=False)
    k = min(k, len(embeddings))
    for query in embeddings[: min(32, len(embeddings))]:
        expected, _ = searcher.search(query, final_num_neighbors=k, **params.search_options())
        got, _ = staged.search_leaves(query, k)
        if not np.array_equal(np.asarray(expected), got):
            raise IndexVersionError(
                f"index version staged in {directory} answers differently after reloading; not published"
            )
    started = time.perf_counter()
    lists = similar_lists.compute(
        staged.search_leaves,
        staged.embeddings,
        staged.title_of_row,
        staged.original_row_of_title,
        depth,
        params.reorder_k or None,
    )
    similar_lists.save(directory, lists)
    try:
        similar_lists.load(directory, len(staged.title_ids))
    except (OSError, ValueError) as err:
        raise IndexVersionError(
            f"similar lists staged in {directory} cannot be read back ({err}); not published"
        ) from err
    log.info("similar lists: %d titles x %d in %.1f s", len(lists.titles), depth, time.perf_counter() - started)


def publish_index(
    root: str | Path,
    items: Sequence[IndexItem],
    embeddings: np.ndarray,
    manifest: dict,
    *,
    exact_search_max_items: int,
    recall_floor: float,
    keep_versions: int,
    params: IndexParams | None = None,
    k: int = 10,
    similar_depth: int = Settings.similar_list_depth,
) -> Publication:
    """Build, verify and atomically publish ``items``/``embeddings`` as the new current version.

    Without ``params`` the leaves searched are tuned by measurement to clear
    ``recall_floor`` (:func:`~indexer.scann_index.build_tuned`); explicit
    ``params`` are used as given, so a bad choice meets the floor. Each title's
    ``similar_depth`` nearest titles are stored with the version (:mod:`~indexer.similar_lists`).
    """
    root = Path(root)
    with published.publisher_lock(root):  # one build publishes at a time
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if len(items) == 0:
            raise IndexVersionError(f"nothing to index: no items for {root}")
        duplicates = published.duplicate_keys(items)
        if duplicates:
            raise IndexVersionError(
                f"not published to {root}: more than one item for key(s) {', '.join(map(repr, duplicates[:5]))}"
            )
        if params is None:
            searcher, params, build_seconds = build_tuned(embeddings, exact_search_max_items, recall_floor, k)
        else:
            searcher, build_seconds = timed_build(embeddings, params)
        recall = measure_recall(searcher, embeddings, k=k, params=params)
        history_recall = measure_recall(searcher, embeddings, k=k, params=params, kind="history")
        if history_recall < recall_floor:
            log.warning(
                "history queries (/recommendations) reach recall@%d %.3f, under the floor %.3f",
                k,
                history_recall,
                recall_floor,
            )
        previous = published.current_version(root)
        if recall < recall_floor:
            raise RecallBelowFloor(
                f"index over {len(items)} items has recall@{k} {recall:.3f} below the floor {recall_floor:.3f}; "
                f"not published, {previous or 'no version'} stays served (raise num_leaves_to_search or reorder_k)"
            )
        version = published.new_version_name()
        full_manifest = {
            **manifest,
            "version": version,
            "item_count": len(items),
            "dim": int(embeddings.shape[1]),
            "params": dataclasses.asdict(params),
            f"recall_at_{k}": round(recall, 4),
            f"history_recall_at_{k}": round(history_recall, 4),
            "build_seconds": round(build_seconds, 3),
            "similar_list_depth": similar_depth,
            "built_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "previous_version": previous,
        }

        def write(directory: Path) -> None:
            published.write_version_files(directory, items, embeddings, full_manifest)
            scann_dir = directory / published.SCANN_DIR
            scann_dir.mkdir()
            searcher.serialize(str(scann_dir), relative_path=True)  # the directory is renamed after writing
            _finish_staged(directory, searcher, params, embeddings, k, similar_depth)

        path = published.stage_version(root, version, write)
        published.set_current(root, version)
        pruned = published.prune_versions(root, keep_versions)
        log.info("published index version %s: %d items, recall@%d %.3f", version, len(items), k, recall)
        return Publication(version, path, recall, params, build_seconds, pruned)
