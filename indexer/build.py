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
import os
import time
from collections.abc import Sequence
from pathlib import Path

from posterrec_settings import Settings, load_settings

import numpy as np
from tqdm import tqdm

from . import behaviour_index, variant_images
from .embedding_cache import CACHE_FILE, EmbeddingCache
from .publish import Publication, RecallBelowFloor, publish_index
from .published import IndexItem, IndexVersionError, original_rows, title_ordinals
from .regions import region_list
from .scann_index import build_tuned, measure_recall
from .shards import BuiltShard
from .store import Store, load_catalogue_first, missing_store, open_store

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
            IndexItem.variant_key(v.parent_id, v.region),
            v.parent_id,
            v.title,
            str(v.image_path),
            region=v.region,
            language=v.language,
            year=parent.year,
            genres=parent.genres,
        )
        sources.append(Source(item, v.image_sha256))
    return sources


def check_image_bytes(key: str, path: str | Path, expected_sha256: str, data: bytes) -> bytes:
    """``data`` when it is the image the store ingested for ``key``, else an error naming it.

    A file edited in place after ingest would otherwise be embedded and cached
    under the old content hash, and every later build would reuse that wrong vector.
    """
    if hashlib.sha256(data).hexdigest() != expected_sha256:
        raise IndexVersionError(f"{key}: poster {path} changed since it was ingested; {_remedy(key)}")
    return data


def unreadable_poster(key: str, path: str | Path, err: OSError) -> IndexVersionError:
    """The error for the poster of ``key`` that cannot be read at ``path``, with what fixes it."""
    return IndexVersionError(f"{key}: poster {path} cannot be read: {err.strerror or err}; {_remedy(key, gone=True)}")


def _remedy(key: str, gone: bool = False) -> str:
    """What brings the poster of ``key`` back in line with the store: for an original, ingest the catalogue again
    (after restoring a ``gone`` file, or without its row); for a variant (``ID@REGION``), make it again or
    withdraw it."""
    if "@" not in key:
        restore = "restore the file, or leave its row out of the catalogue and " if gone else ""
        return f"{restore}run `python -m indexer ingest` again"
    title_id, region = key.rsplit("@", 1)
    return f"make it again (python -m localize run) or withdraw it (python -m localize remove {title_id} {region})"


def read_verified_image(source: Source) -> bytes:
    """The poster's bytes, refused when they cannot be read or are not the image the store ingested."""
    path, key = Path(source.item.image_path), source.item.key
    try:
        data = path.read_bytes()
    except OSError as err:
        raise unreadable_poster(key, path, err) from None
    return check_image_bytes(key, path, source.image_sha256, data)


def embed_sources(
    embedder, sources: Sequence[Source], cache: EmbeddingCache, batch_size: int
) -> tuple[np.ndarray, int]:
    """Embeddings of ``sources`` in order, embedding only images the cache lacks; returns (vectors, embedded).

    Each batch is cached as soon as it is embedded, so an interrupted build keeps what it finished; the
    embedder reads, checks and embeds the next batches meanwhile. A cached vector is reused only while its poster is
    still the image the store ingested: a poster removed or replaced since is refused, as it is when embedded
    (hashing the cached ones costs about a second per 100 MB of posters).
    """
    from models.preprocessing import UnreadableImage  # the models package loads only for commands that embed

    model = embedder.manifest_sha256
    vectors = cache.get_many(model, (s.image_sha256 for s in sources))
    for source in {s.item.image_path: s for s in sources if s.image_sha256 in vectors}.values():
        read_verified_image(source)
    missing = list({s.image_sha256: s for s in sources if s.image_sha256 not in vectors}.values())
    batches = [missing[start : start + batch_size] for start in range(0, len(missing), batch_size)]
    with tqdm(total=len(missing), desc="embedding", unit="img", disable=not missing) as progress:
        try:
            for batch, embedded in zip(batches, embedder.embed_batches(batches, read=read_verified_image)):
                fresh = {s.image_sha256: vector for s, vector in zip(batch, embedded)}
                cache.put_many(model, fresh)
                vectors.update(fresh)
                progress.update(len(batch))
        except UnreadableImage as err:  # the embedder numbers the inputs from the first
            item = missing[err.index].item
            raise IndexVersionError(f"{item.key}: poster {item.image_path} cannot be embedded: {err}") from None
    return np.stack([vectors[s.image_sha256] for s in sources]).astype(np.float32), len(missing)


def read_sources(store_path: Path) -> list[Source]:
    """The store's sources (:func:`store_sources`), or an error when the store is missing or empty."""
    if problem := missing_store(store_path):
        raise IndexVersionError(problem)
    with open_store(store_path) as store:
        sources = store_sources(store)
    if not sources:
        raise IndexVersionError(f"store {store_path} has no titles: {load_catalogue_first(store_path)}")
    return sources


def index_manifest(
    model_dir: str | Path, model_manifest: dict, model_sha256: str, store_path: Path, sources: Sequence[Source]
) -> dict:
    """What a published version records about the model and the store it was built from."""
    return {
        "model_dir": str(Path(model_dir).resolve()),
        "model_manifest_sha256": model_sha256,
        "model_backbone": model_manifest.get("backbone"),
        "store": str(store_path.resolve()),
        "variant_count": sum(1 for s in sources if s.item.is_variant),
    }


def publish_sources(
    index_root: Path,
    store_path: Path,
    sources: Sequence[Source],
    embeddings: np.ndarray,
    manifest: dict,
    settings: Settings,
    built: Sequence[BuiltShard] | None = None,
) -> Publication:
    """Publish ``sources`` with their ``embeddings`` as the current version and record it in the store.

    The version holds ``settings.index_shards`` searchers, built here unless ``built`` brings them.

    The version holds its own copy of every variant image (:mod:`indexer.variant_images`). With a behaviour
    model (``settings.behaviour_model_dir``, when it exists) every title's behaviour vector is published in the
    same version (:func:`stage_behaviour`).
    """
    behaviour = stage_behaviour(sources, embeddings, manifest, settings)
    if behaviour is not None:
        manifest = {**manifest, behaviour_index.MANIFEST_KEY: behaviour.manifest}

    def write_extra_files(directory: Path) -> None:
        hold_variant_images(directory, sources)
        if behaviour is not None:
            behaviour.write(directory)

    publication = publish_index(
        index_root,
        [variant_images.held_item(s.item, s.image_sha256) for s in sources],
        embeddings,
        manifest,
        exact_search_max_items=settings.exact_search_max_items,
        recall_floor=settings.recall_floor,
        keep_versions=settings.keep_versions,
        similar_depth=settings.similar_list_depth,
        shards=settings.index_shards,
        built=built,
        extra_files=write_extra_files,
    )
    with open_store(store_path) as store:
        store.record_index_version(publication.version, publication.path, len(sources), manifest)
    return publication


def hold_variant_images(directory: Path, sources: Sequence[Source]) -> None:
    """Put each variant's image in the version staged in ``directory`` (:func:`variant_images.hold`).

    Raises:
      IndexVersionError: an image cannot be read, or is not the one embedded (made again while this build ran).
      OSError: the version cannot be written (a full disk, no permission), naming the file.
    """
    for source in sources:
        if source.item.is_variant:
            key, path = source.item.key, source.item.image_path
            try:
                held = variant_images.hold(directory, source.item, source.image_sha256)
            except OSError as err:
                if os.access(path, os.R_OK):
                    raise
                raise unreadable_poster(key, path, err) from None
            if hashlib.sha256(held.read_bytes()).hexdigest() != source.image_sha256:
                raise IndexVersionError(
                    f"{key}: variant image {path} changed while this build ran (made again by localize run?); "
                    "build again to index the new image"
                )


def behaviour_model_dir(settings: Settings) -> Path | None:
    """The behaviour model a build publishes vectors of: ``settings.behaviour_model_dir`` when it exists, unless
    ``settings.publish_behaviour`` is off."""
    if not settings.publish_behaviour:
        return None
    model_dir = settings.behaviour_model_dir
    return model_dir if model_dir is not None and model_dir.exists() else None


def stage_behaviour(
    sources: Sequence[Source], embeddings: np.ndarray, manifest: dict, settings: Settings, k: int = 10
) -> behaviour_index.StagedBehaviour | None:
    """Every title's behaviour vector from the behaviour model and its poster vector, with a ScaNN searcher
    tuned and checked like the posters'; None without a behaviour model.

    Raises IndexVersionError when the model cannot be loaded, was trained on another poster model, or its
    searcher misses the recall floor.
    """
    model_dir = behaviour_model_dir(settings)
    if model_dir is None:
        return None
    from models.behaviour import load_behaviour  # TensorFlow loads only for builds with a behaviour model
    from models.embedder import ModelMismatchError

    expect = {"poster_model_manifest_sha256": manifest["model_manifest_sha256"], "poster_dim": embeddings.shape[1]}
    try:
        model = load_behaviour(model_dir, expect=expect)
    except ModelMismatchError as err:  # trained on the vectors of another poster model
        raise IndexVersionError(
            f"cannot build with behaviour model {model_dir}: {err}. It learnt from another poster model's "
            "vectors: build without it (--no-behaviour-model), train it again on the new version "
            "(python -m models train-behaviour), then build again"
        ) from None
    except (FileNotFoundError, ValueError) as err:  # not an exported behaviour model (the error says how to make one)
        raise IndexVersionError(f"cannot build with behaviour model {model_dir}: {err}") from None
    items = [s.item for s in sources]
    title_ids, title_of_row = title_ordinals(items)
    rows = original_rows(items, len(title_ids), title_of_row)
    if (rows < 0).any():
        raise IndexVersionError(f"title {title_ids[int(np.argmax(rows < 0))]} has no original poster to embed")
    vectors = model.vectors(title_ids, embeddings[rows]).astype(np.float32)
    warm = np.array([t in model.id_of_title for t in title_ids], bool)
    return staged_vectors(vectors, warm, model_dir, model.manifest, model.manifest_sha256, settings, k)


def staged_vectors(
    vectors: np.ndarray,
    warm: np.ndarray,
    model_dir: Path,
    model_manifest: dict,
    model_sha256: str,
    settings: Settings,
    k: int = 10,
) -> behaviour_index.StagedBehaviour:
    """Behaviour ``vectors`` (row = title ordinal) with a ScaNN searcher whose recall@k was measured, ready to
    be written into a staged version; :class:`RecallBelowFloor` when the searcher misses the floor."""
    searcher, params, _ = build_tuned(vectors, settings.exact_search_max_items, settings.recall_floor, k)
    recall = measure_recall(searcher, vectors, k=k, params=params)
    history_recall = measure_recall(searcher, vectors, k=k, params=params, kind="history")
    if recall < settings.recall_floor:
        raise RecallBelowFloor(
            f"behaviour vectors of {len(vectors)} titles have recall@{k} {recall:.3f} below the floor "
            f"{settings.recall_floor:.3f}; not published"
        )
    entry = behaviour_index.manifest_entry(
        model_dir,
        model_manifest,
        model_sha256,
        warm,
        params,
        **{f"recall_at_{k}": recall, f"history_recall_at_{k}": history_recall},
    )
    log.info("behaviour vectors: %d titles (%d warm), recall@%d %.3f", len(vectors), entry["warm_count"], k, recall)
    return behaviour_index.StagedBehaviour(vectors, warm, searcher, entry)


def build_index(
    model_dir: str | Path, settings: Settings, store_path: Path | None = None, index_root: Path | None = None
) -> BuildSummary:
    """Embed everything in the store with the model in ``model_dir`` and publish it as the current version."""
    from models.embedder import load_embedder  # the models package loads only for commands that embed

    started = time.perf_counter()
    store_path = Path(store_path or settings.store)
    index_root = Path(index_root or settings.index_root)
    sources = read_sources(store_path)  # checked before the (slow) model load
    try:
        embedder = load_embedder(model_dir)
    except (FileNotFoundError, ValueError) as err:  # not an exported model, or not the one expected
        raise IndexVersionError(f"cannot build with model {model_dir}: {err}") from None
    with EmbeddingCache(index_root / CACHE_FILE) as cache:
        embeddings, embedded = embed_sources(embedder, sources, cache, settings.batch_size)
        cache.prune(embedder.manifest_sha256, (s.image_sha256 for s in sources))
    manifest = index_manifest(model_dir, embedder.manifest, embedder.manifest_sha256, store_path, sources)
    publication = publish_sources(index_root, store_path, sources, embeddings, manifest, settings)
    return BuildSummary(publication, len(sources), embedded, len(sources) - embedded, time.perf_counter() - started)


def add_command(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "build",
        help="embed the store and publish a new index version",
        description="Embed the store and publish a new index version: in this process, or with --runner as an "
        "Apache Beam pipeline (standard Beam pipeline options go after --).",
    )
    parser.add_argument("--model", type=Path, help="exported model directory (default: settings.model_dir)")
    parser.add_argument("--store", type=Path, help="SQLite store (default: settings.store)")
    parser.add_argument("--out", type=Path, help="index root (default: settings.index_root)")
    parser.add_argument("--recall-floor", type=float, help="refuse to publish below this recall@10")
    parser.add_argument(
        "--shards", type=int, help="ScaNN shards over a hash partition of the titles (default: settings.index_shards)"
    )
    behaviour = parser.add_mutually_exclusive_group()
    behaviour.add_argument(
        "--behaviour-model",
        type=Path,
        help="exported behaviour model whose title vectors the version publishes "
        "(default: settings.behaviour_model_dir, when it exists)",
    )
    behaviour.add_argument(
        "--no-behaviour-model", action="store_true", help="publish poster vectors only, even beside a behaviour model"
    )
    beam = parser.add_argument_group("Apache Beam pipeline")
    beam.add_argument(
        "--runner",
        help="run the rebuild as a Beam pipeline on this runner: FnApiRunner (in this process; add -- "
        "--direct_num_workers=N --direct_running_mode=multi_processing for N local workers), FlinkRunner, "
        "SparkRunner, DataflowRunner, ...",
    )
    beam.add_argument("--cache", help="embedding cache folder every worker reaches (default: <out>/embedding_cache)")
    beam.add_argument("--work-dir", help="folder for the pipeline's hand-back files (default: <out>/.beam)")
    beam.add_argument("--titles", type=Path, help="localized-titles CSV (id,region,language,title): localize first")
    beam.add_argument("--regions", help="comma-separated regions to localize (default: every region in the CSV)")
    beam.add_argument("--variants-out", type=Path, help="folder for the variant images (<out>/<REGION>/<id>.png)")
    beam.add_argument("--inpaint", help="inpainting method of the localizer (default: its default)")
    beam.add_argument("beam_options", nargs="*", metavar="-- BEAM_OPTION", help="standard Beam pipeline options")
    parser.set_defaults(run=_run, interrupted="no new index version was published; the one served is unchanged")


def _run(args: argparse.Namespace) -> int:
    if args.behaviour_model is not None and not args.behaviour_model.is_dir():
        problem = "is a file, not a folder" if args.behaviour_model.exists() else "does not exist"
        args.parser.error(f"--behaviour-model {args.behaviour_model} {problem}")
    # --behaviour-model DIR publishes its vectors whatever the settings say, --no-behaviour-model none
    publish_behaviour = False if args.no_behaviour_model else (True if args.behaviour_model else None)
    settings = load_settings(
        recall_floor=args.recall_floor,
        behaviour_model_dir=args.behaviour_model,
        publish_behaviour=publish_behaviour,
        index_shards=args.shards,
    )
    model = args.model or settings.model_dir
    given = {"--regions": args.regions, "--variants-out": args.variants_out, "--inpaint": args.inpaint}
    localize_options = {name: value for name, value in given.items() if value is not None}
    if args.runner is None:
        if args.titles or args.beam_options or args.cache or args.work_dir or localize_options:
            args.parser.error(f"--titles, {', '.join(given)}, --cache, --work-dir and Beam options need --runner")
        print(build_index(model, settings, args.store, args.out))
        return 0
    from .beam_pipeline import build_with_beam  # Beam loads only for pipeline builds
    from .beam_runner import runner_problem

    if problem := runner_problem(args.runner):
        args.parser.error(f"--runner {args.runner}: {problem}")
    if not args.titles and localize_options:
        args.parser.error(f"{', '.join(localize_options)}: only with --titles, which adds the localize stage")
    localize = None
    if args.titles:
        if not args.variants_out:
            args.parser.error("--titles needs --variants-out")
        from .beam_localize import LocalizeOptions

        try:
            regions = region_list(args.regions) if args.regions is not None else None
        except ValueError as err:
            args.parser.error(f"--regions: {err}")
        localize = LocalizeOptions(
            args.titles, args.variants_out, regions, **({"method": args.inpaint} if args.inpaint else {})
        )
    summary = build_with_beam(
        model,
        settings,
        args.store,
        args.out,
        runner=args.runner,
        beam_args=args.beam_options,
        cache_root=args.cache,
        work_root=args.work_dir,
        localize=localize,
    )
    print(summary)
    return 0
