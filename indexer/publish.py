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
from collections.abc import Callable, Sequence
from pathlib import Path

from posterrec_settings import Settings

import numpy as np

from . import published, similar_lists
from .published import IndexItem, IndexVersionError
from .scann_index import IndexParams, timed_build
from .shards import (
    BuiltShard,
    Shard,
    ShardError,
    ShardSet,
    build_shards,
    merged_recall,
    partition_rows,
    save_shards,
    shard_record,
)

log = logging.getLogger(__name__)


class RecallBelowFloor(IndexVersionError):
    """The built index finds too few of the true neighbours to be served."""


@dataclasses.dataclass(frozen=True)
class Publication:
    version: str
    path: Path
    recall: float
    params: IndexParams
    """The searcher's parameters (the first shard's when there are several)."""
    build_seconds: float
    pruned: list[str]
    shards: int = 1


def _finish_staged(directory: Path, searchers: ShardSet, embeddings: np.ndarray, k: int, depth: int) -> None:
    """Reload the staged files once: they must answer a sample of queries like the searcher that was built;
    then add every title's ``depth`` nearest other titles, searched in them exactly as the service will search.

    Both are asked the same raw single-query question: the service's own ``search`` answers
    exactly where the leaves searched hold fewer than ``k`` rows, which a sparse tree's raw answer does
    not, so comparing the two failed such builds at random (ScaNN's trees are not seeded).
    """
    staged = published.open_directory(directory, with_similar_lists=False)
    k = min(k, len(embeddings))
    for query in embeddings[: min(32, len(embeddings))]:
        expected, _ = searchers.search(query, k)
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
        searchers.reorder_limit,
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
    extra_files: Callable[[Path], None] | None = None,
    shards: int = 1,
    built: Sequence[BuiltShard] | None = None,
) -> Publication:
    """Build, verify and atomically publish ``items``/``embeddings`` as the new current version.

    Without ``params`` the leaves searched are tuned by measurement to clear
    ``recall_floor`` (:func:`~indexer.scann_index.build_tuned`); explicit
    ``params`` are used as given, so a bad choice meets the floor. Each title's
    ``similar_depth`` nearest titles are stored with the version (:mod:`~indexer.similar_lists`).
    ``extra_files(directory)`` writes further files of the version (its behaviour vectors) into the staging
    directory, before the version is reloaded and checked.
    ``shards`` > 1 splits the titles into that many searchers (:mod:`~indexer.shards`), each of which must
    clear the floor on its own rows as the merged search must on all; ``built`` passes shards built
    elsewhere (the Beam pipeline's), which must be over the same partition.
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
        partition = _partition(root, items, len(built) if built is not None else shards)
        if built is not None:
            _check_partition(built, partition, len(items))
        elif params is None:
            built = build_shards(embeddings, partition, exact_search_max_items, recall_floor, k)
        else:
            searcher, seconds = timed_build(embeddings, params)
            built = [BuiltShard(Shard(searcher, params, len(embeddings)), seconds)]
        searchers = ShardSet([b.shard for b in built])
        build_seconds = sum(b.build_seconds for b in built)
        recall = merged_recall(searchers, embeddings, k)
        history_recall = merged_recall(searchers, embeddings, k, "history")
        if history_recall < recall_floor:
            log.warning(
                "history queries (/recommendations) reach recall@%d %.3f, under the floor %.3f",
                k,
                history_recall,
                recall_floor,
            )
        previous = published.current_version(root)
        records = [shard_record(b, embeddings, k) for b in built] if len(built) > 1 else []
        for what, reached in [(f"index over {len(items)} items", recall)] + [
            (f"shard {number} of {len(records)} ({record['rows']} items)", record[f"recall_at_{k}"])
            for number, record in enumerate(records)
        ]:
            if reached < recall_floor:
                raise RecallBelowFloor(
                    f"{what} has recall@{k} {reached:.3f} below the floor {recall_floor:.3f}; not published, "
                    f"{previous or 'no version'} stays served (lower the floor with --recall-floor, or search "
                    "more titles exactly: setting exact_search_max_items)"
                )
        version = published.new_version_name()
        full_manifest = {
            **manifest,
            "version": version,
            "item_count": len(items),
            "dim": int(embeddings.shape[1]),
            **({"shards": records} if records else {"params": dataclasses.asdict(built[0].shard.params)}),
            f"recall_at_{k}": round(recall, 4),
            f"history_recall_at_{k}": round(history_recall, 4),
            "build_seconds": round(build_seconds, 3),
            "similar_list_depth": similar_depth,
            "built_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "previous_version": previous,
        }

        def write(directory: Path) -> None:
            published.write_version_files(directory, items, embeddings, full_manifest)
            save_shards(directory, searchers)
            if extra_files is not None:
                extra_files(directory)
            _finish_staged(directory, searchers, embeddings, k, similar_depth)

        path = published.stage_version(root, version, write)
        published.set_current(root, version)
        pruned = published.prune_versions(root, keep_versions, protect=[previous] if previous else [])
        log.info(
            "published index version %s: %d items in %d shard(s), recall@%d %.3f",
            version,
            len(items),
            len(built),
            k,
            recall,
        )
        return Publication(version, path, recall, built[0].shard.params, build_seconds, pruned, len(built))


def _partition(root: Path, items: Sequence[IndexItem], shards: int) -> list[np.ndarray] | None:
    """The rows of each of ``shards`` shards (None for one), or an error when the titles cannot fill them."""
    if shards == 1:
        return None
    try:
        return partition_rows([item.title_id for item in items], shards)
    except ShardError as err:
        raise IndexVersionError(f"not published to {root}: {err}") from None


def _check_partition(built: Sequence[BuiltShard], partition: list[np.ndarray] | None, count: int) -> None:
    """Shards built elsewhere must hold the rows the hash partition of these items gives them."""
    for number, (shard, rows) in enumerate(zip(built, partition or [None])):
        same = shard.shard.rows is None if rows is None else np.array_equal(shard.shard.rows, rows)
        if not same or shard.shard.size != (count if rows is None else len(rows)):
            raise IndexVersionError(f"shard {number} of {len(built)} was built over other rows than its titles'")
