"""``python -m indexer build --runner RUNNER``: the rebuild as an Apache Beam pipeline.

Stages: the store's titles and variants (read by the driver) -> localize each
pending (title, region) of a titles CSV when one is given -> key every poster
by its image sha256, dropping images the shared vector cache already holds ->
read, check and decode -> embed with ``RunInference`` -> write the vectors,
fresh ones to the cache as they come and all of them as this run's vector
files -> back on the driver: register made variants; with ``index_shards`` > 1 a
second pipeline builds the shards' searchers in parallel, one worker each ->
verify and publish atomically (:func:`indexer.build.publish_sources`).

``FnApiRunner`` runs it in this process (``--direct_num_workers`` and
``--direct_running_mode`` spread it over local processes); any other runner
name (``FlinkRunner``, ``SparkRunner``, ``DataflowRunner``) is handed to Beam
with the standard pipeline options given after ``--``. A poster that cannot be
read, decoded or localized is reported with its id and reason and left out; a
pipeline that fails publishes nothing and the served version stays.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from posterrec_settings import Settings

import apache_beam as beam
import numpy as np
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from . import beam_stages as stages
from .beam_runner import LOCAL_RUNNER, delete_work_folder, make_pipeline, new_work_folder, run_pipeline
from .build import Source, index_manifest, publish_sources, read_sources
from .publish import Publication
from .published import IndexVersionError, current_version
from .scann_index import IndexParams
from .shards import BuiltShard, Shard, ShardError, partition_rows
from .vector_files import (
    VECTOR_CACHE_DIR,
    model_folder,
    prune_vector_files,
    read_vector_file,
    read_vector_files,
    vector_file_pattern,
)

if TYPE_CHECKING:
    from .beam_localize import LocalizeOptions, LocalizePlan

log = logging.getLogger(__name__)

FRESH_PREFIX = "fresh-"
VECTOR_FILE_SIZE = 4096
"""Vectors per file of a run's complete set (2 MiB of 128-d float32)."""


@dataclasses.dataclass(frozen=True)
class BeamBuildSummary:
    publication: Publication
    items: int
    embedded: int
    reused: int
    seconds: float
    bad_posters: list[tuple[str, str]]
    localize_skipped: list[str]
    counters: dict[str, int]

    def __str__(self) -> str:
        lines = [
            f"published {self.publication.version}: {self.items} items ({self.embedded} embedded, "
            f"{self.reused} reused from cache) in {self.seconds:.1f} s, recall@10 {self.publication.recall:.3f}"
        ]
        lines += [f"  {name}: {value}" for name, value in sorted(self.counters.items())]
        lines += [f"bad poster {key}: {reason}" for key, reason in self.bad_posters]
        lines += [f"localize skipped {skip}" for skip in self.localize_skipped]
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class _Run:
    """Where one run reads and writes: the model's cache folder, this run's vector-file prefix, its work folder."""

    cache_root: str
    model_sha256: str
    prefix: str
    work_folder: str

    @classmethod
    def new(cls, cache_root: str, model_sha256: str, work_root: str) -> _Run:
        run_id = f"{datetime.datetime.now(datetime.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        return cls(cache_root, model_sha256, f"build-{run_id}-", new_work_folder(work_root))

    @property
    def cache_folder(self) -> str:
        return model_folder(self.cache_root, self.model_sha256)

    def output(self, name: str) -> str:
        return FileSystems.join(self.work_folder, name)


def _posters(sources: Iterable[Source], skip_keys: set[str]) -> list[tuple[str, stages.Poster]]:
    return [
        (s.image_sha256, stages.Poster(s.item.key, s.item.image_path, s.image_sha256))
        for s in sources
        if s.item.key not in skip_keys
    ]


def _poster_stage(
    pipeline: beam.Pipeline,
    sources: list[Source],
    run: _Run,
    plan: LocalizePlan | None,
    options: LocalizeOptions | None,
) -> beam.PCollection:
    """``(sha256, Poster)`` of every item to index: the store's, and the variants localized on the way."""
    if plan is None:
        return pipeline | "StorePosters" >> beam.Create(_posters(sources, set()))
    from .beam_localize import localize_stage

    made = localize_stage(pipeline, plan, options, run.output("variants"), run.output("skipped"))
    return (
        pipeline | "StorePosters" >> beam.Create(_posters(sources, plan.replaced_keys())),
        made | "VariantPosters" >> beam.Map(lambda variant: (variant.image_sha256, variant.poster())),
    ) | "AllPosters" >> beam.Flatten()


def _cached_vectors(pipeline: beam.Pipeline, run: _Run) -> beam.PCollection:
    return (
        pipeline
        | "CachePattern" >> beam.Create([vector_file_pattern(run.cache_folder)])
        | "MatchCache" >> fileio.MatchAll(fileio.EmptyMatchTreatment.ALLOW)
        | "OpenCache" >> fileio.ReadMatches()
        | "ReadCache" >> beam.FlatMap(lambda readable: read_vector_file(readable.metadata.path).items())
    )


def _embed_stages(posters: beam.PCollection, run: _Run, model_dir: str, batch_size: int) -> None:
    """Dedupe by sha256, drop cache hits, read, embed, cache; write every needed vector as this run's files."""
    split = (
        {"wanted": posters, "cached": _cached_vectors(posters.pipeline, run)}
        | "JoinCache" >> beam.CoGroupByKey()
        | "SplitHits" >> beam.FlatMap(stages.split_cache_hits).with_outputs(stages.HIT, main="missing")
    )
    read = split.missing | "ReadPoster" >> beam.ParDo(stages.ReadPoster()).with_outputs(stages.BAD, main="pixels")
    hits = split[stages.HIT] | "CheckCached" >> beam.ParDo(stages.CheckCachedPoster()).with_outputs(
        stages.BAD, main="vectors"
    )
    handler = KeyedModelHandler(stages.PosterEmbedding(model_dir, run.model_sha256, batch_size))
    fresh = (
        read.pixels
        | "Embed" >> RunInference(handler)
        | "Vector" >> beam.MapTuple(lambda sha256, result: (sha256, np.asarray(result.inference, np.float32)))
        | "CacheFresh" >> beam.ParDo(stages.CacheFreshVectors(run.cache_folder, FRESH_PREFIX))
    )
    _ = (
        (hits.vectors, fresh)
        | "AllVectors" >> beam.Flatten()
        | "VectorBatches" >> beam.BatchElements(min_batch_size=VECTOR_FILE_SIZE, max_batch_size=VECTOR_FILE_SIZE)
        | "WriteVectors" >> beam.ParDo(stages.WriteVectorFiles(run.cache_folder, run.prefix))
    )
    bad = (read[stages.BAD], hits[stages.BAD]) | "AllBad" >> beam.Flatten()
    stages.write_records(bad, run.output("bad"), "Bad")


def _indexable(sources: list[Source], run: _Run) -> tuple[list[Source], np.ndarray, list[tuple[str, str]]]:
    """The sources the run has vectors for and no bad report of, their vectors, and the bad posters (key, reason)
    left out."""
    bad = [tuple(record) for record in stages.read_records(run.output("bad"))]
    vectors = read_vector_files(vector_file_pattern(run.cache_folder, run.prefix))
    reported = {key for key, _ in bad}
    bad += [
        (s.item.key, f"{s.item.key}: no vector for poster {s.item.image_path}")
        for s in sources
        if s.image_sha256 not in vectors and s.item.key not in reported
    ]
    kept = [s for s in sources if s.image_sha256 in vectors and s.item.key not in reported]
    embeddings = np.stack([vectors[s.image_sha256] for s in kept]).astype(np.float32) if kept else np.zeros((0, 0))
    return kept, embeddings, sorted(bad)


def _build_shards(
    embeddings: np.ndarray,
    title_ids: Sequence[str],
    settings: Settings,
    runner: str,
    beam_args: Sequence[str],
    run: _Run,
) -> list[BuiltShard]:
    """The ``settings.index_shards`` searchers over the hash partition of ``title_ids``, each built by one worker
    (:class:`~indexer.beam_stages.BuildShard`) and loaded back here for the publisher's checks."""
    import scann

    try:
        partition = partition_rows(title_ids, settings.index_shards)
    except ShardError as err:
        raise IndexVersionError(f"nothing published: {err}") from None
    inputs = []
    for shard, rows in enumerate(partition):
        path = run.output(f"shard-{shard}-vectors.npy")
        stages.write_array(path, embeddings[rows])
        inputs.append((shard, path))
    pipeline = make_pipeline(runner, beam_args)
    built = (
        pipeline
        | "Shards" >> beam.Create(inputs)
        | "SpreadShards" >> beam.Reshuffle()
        | "BuildShard"
        >> beam.ParDo(stages.BuildShard(run.work_folder, settings.exact_search_max_items, settings.recall_floor))
    )
    stages.write_records(built, run.output("shard-records"), "ShardRecords")
    run_pipeline(pipeline, "shard build pipeline failed, nothing published")
    shards = []
    for record in sorted(stages.read_records(run.output("shard-records")), key=lambda r: r["shard"]):
        rows = partition[record["shard"]]
        with tempfile.TemporaryDirectory(prefix="posterrec-shard-") as local:
            for name in record["files"]:
                source = stages.shard_file(run.work_folder, record["shard"], name)
                with FileSystems.open(source) as handle, open(Path(local) / name, "wb") as target:
                    shutil.copyfileobj(handle, target)
            searcher = scann.scann_ops_pybind.load_searcher(local)
        params = IndexParams(**record["params"])
        shards.append(BuiltShard(Shard(searcher, params, len(rows), rows), record["build_seconds"]))
    if len(shards) != len(partition):
        raise IndexVersionError(
            f"{len(shards)} of {len(partition)} shards came back from the pipeline; nothing published"
        )
    return shards


def build_with_beam(
    model_dir: str | Path,
    settings: Settings,
    store_path: Path | None = None,
    index_root: Path | None = None,
    *,
    runner: str = LOCAL_RUNNER,
    beam_args: Sequence[str] = (),
    cache_root: str | None = None,
    work_root: str | None = None,
    localize: LocalizeOptions | None = None,
) -> BeamBuildSummary:
    """Run the rebuild pipeline on ``runner`` and publish its vectors as the current version.

    ``cache_root`` (default ``<index root>/embedding_cache``) and ``work_root`` (default
    ``<index root>/.beam``) are ``FileSystems`` paths every worker must reach; so are the posters and
    ``model_dir``. Raises ``IndexVersionError`` (nothing published) when the store, the model or the titles CSV
    is unusable, when a stage fails, or when the index misses the recall floor.
    """
    from models.embedder import read_manifest  # the driver reads the manifest; workers load the model

    started = time.perf_counter()
    store_path = Path(store_path or settings.store)
    index_root = Path(index_root or settings.index_root)
    sources = read_sources(store_path)
    model_dir = stages.absolute_path(str(model_dir))
    local, copy = stages.local_model_dir(model_dir)
    try:
        model_manifest, model_sha256 = read_manifest(local)
    except FileNotFoundError as err:
        raise IndexVersionError(f"cannot build with model {model_dir}: {err}") from None
    finally:
        if copy is not None:
            shutil.rmtree(copy, ignore_errors=True)
    run = _Run.new(
        cache_root or str(index_root / VECTOR_CACHE_DIR), model_sha256, work_root or str(index_root / ".beam")
    )
    plan = None
    if localize is not None:
        from .beam_localize import plan_localize  # the localizer's OCR and inpainting load only when asked for

        plan = plan_localize(store_path, localize)

    pipeline = make_pipeline(runner, beam_args)
    _embed_stages(_poster_stage(pipeline, sources, run, plan, localize), run, model_dir, settings.batch_size)
    try:
        served = current_version(index_root) if index_root.is_dir() else None
        counters = run_pipeline(
            pipeline, f"rebuild pipeline failed, nothing published ({served or 'no version'} stays served)"
        )
        skipped: list[str] = []
        if plan is not None:
            from .beam_localize import register_results

            skips = register_results(store_path, localize, plan, run.output("variants"), run.output("skipped"))
            skipped = [str(skip) for skip in skips]
            sources = read_sources(store_path)
        kept, embeddings, bad = _indexable(sources, run)
        if not kept:
            raise IndexVersionError(f"no poster of store {store_path} could be embedded; nothing published")
        manifest = index_manifest(model_dir, model_manifest, model_sha256, store_path, kept)
        built = None
        if settings.index_shards > 1:
            built = _build_shards(embeddings, [s.item.title_id for s in kept], settings, runner, beam_args, run)
            counters.update(shards_built=len(built))
        publication = publish_sources(index_root, store_path, kept, embeddings, manifest, settings, built=built)
    finally:
        delete_work_folder(run.work_folder)
    log.info(
        "pruned %d vector file(s) from the embedding cache",
        prune_vector_files(run.cache_root, model_sha256, run.prefix),
    )
    embedded = counters.get("embedded", 0)
    seconds = time.perf_counter() - started
    return BeamBuildSummary(publication, len(kept), embedded, len(kept) - embedded, seconds, bad, skipped, counters)
