"""The steps of the Beam rebuild that run on workers: read posters, split cache hits, embed, cache.

Every element of the embedding half is keyed by the image's sha256, so one
image shared by several items (an unchanged variant, a re-used poster) is read
and embedded once. A poster that cannot be read, has changed since ingest or
does not decode leaves through the ``bad`` output as ``(key, reason)`` and the
pipeline goes on without it.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import ModelHandler, PredictionResult
from PIL import Image

from .build import check_image_bytes, unreadable_poster
from .published import IndexVersionError
from .shards import build_shard
from .vector_files import write_vector_file

log = logging.getLogger(__name__)

METRICS_NAMESPACE = "posterrec"
BAD = "bad"
HIT = "hit"


class Poster(NamedTuple):
    """One image to embed: the key of an item that shows it, where it is, and its content hash."""

    key: str
    path: str
    sha256: str


def counter(name: str):
    """A Beam counter of the rebuild, reported at the end of the run."""
    return Metrics.counter(METRICS_NAMESPACE, name)


def write_records(records: beam.PCollection, path: str, label: str) -> None:
    """Write JSON-able ``records`` as text files ``<path>*`` for the driver to read back."""
    _ = records | f"Encode{label}" >> beam.Map(json.dumps) | f"Write{label}" >> beam.io.WriteToText(path)


def read_records(path: str) -> list:
    """The records :func:`write_records` wrote under ``path``."""
    records = []
    for meta in FileSystems.match([f"{path}*"])[0].metadata_list:
        with FileSystems.open(meta.path) as handle:
            records += [json.loads(line) for line in handle.read().decode("utf-8").splitlines() if line]
    return records


def read_unchanged(sha256: str, poster: Poster) -> bytes:
    """The poster's bytes, when they are still the image the store ingested (``sha256``).

    Raises:
        IndexVersionError: the poster cannot be read, or changed since it was ingested (the message names it).
    """
    try:
        with FileSystems.open(poster.path) as handle:
            data = handle.read()
    except OSError as err:
        raise unreadable_poster(poster.key, poster.path, err) from None
    return check_image_bytes(poster.key, poster.path, sha256, data)


class ReadPoster(beam.DoFn):
    """``(sha256, Poster)`` -> ``(sha256, HxWx3 uint8 pixels)``; unreadable, changed or undecodable
    posters go to the ``bad`` output as ``(key, reason)``."""

    def setup(self) -> None:
        self._decoded, self._bad = counter("posters_decoded"), counter("posters_bad")

    def process(self, element: tuple[str, Poster]) -> Iterator:
        from models.preprocessing import load_rgb  # the models package loads on the workers that decode

        sha256, poster = element
        try:
            pixels = load_rgb(read_unchanged(sha256, poster))
        except IndexVersionError as err:
            yield reject(self._bad, poster, str(err))
        except ValueError as err:  # load_rgb names what it could not decode
            yield reject(self._bad, poster, f"{poster.key}: poster {poster.path} cannot be decoded: {err}")
        else:
            self._decoded.inc()
            yield sha256, pixels


class CheckCachedPoster(beam.DoFn):
    """``(sha256, (cached vector, [Poster]))`` -> ``(sha256, cached vector)`` while one of the posters is still
    the image the store ingested; each removed or replaced since goes to the ``bad`` output as ``(key, reason)``."""

    def setup(self) -> None:
        self._bad = counter("posters_bad")

    def process(self, element: tuple[str, tuple[np.ndarray, list[Poster]]]) -> Iterator:
        sha256, (vector, posters) = element
        unchanged = 0
        for poster in posters:
            try:
                read_unchanged(sha256, poster)
            except IndexVersionError as err:
                yield reject(self._bad, poster, str(err))
            else:
                unchanged += 1
        if unchanged:
            yield sha256, vector


def reject(bad: Metrics.DelegatingCounter, poster: Poster, reason: str) -> beam.pvalue.TaggedOutput:
    """``poster`` to the ``bad`` output with ``reason``, counted."""
    bad.inc()
    return beam.pvalue.TaggedOutput(BAD, (poster.key, reason))


def split_cache_hits(element: tuple[str, dict[str, Iterable]]) -> Iterator:
    """After ``CoGroupByKey`` of ``wanted`` posters and ``cached`` vectors by sha256: a cached vector goes to
    the ``hit`` output with every poster that shows its image, an image without one is emitted once (with the
    first such poster)."""
    sha256, groups = element
    posters = list(groups["wanted"])
    cached = next(iter(groups["cached"]), None)
    if posters:  # else a cached vector nothing in this catalogue needs
        counter("images").inc()
        counter("items_sharing_an_image").inc(len(posters) - 1)
        counter("cache_hits" if cached is not None else "cache_misses").inc()
        yield (
            beam.pvalue.TaggedOutput(HIT, (sha256, (cached, posters))) if cached is not None else (sha256, posters[0])
        )


class CacheFreshVectors(beam.DoFn):
    """Passes ``(sha256, vector)`` through and writes them to the shared vector cache every
    ``flush_every`` vectors and at the end of each bundle, so a failed run keeps its finished work."""

    def __init__(self, folder: str, prefix: str, flush_every: int = 256) -> None:
        self._folder, self._prefix, self._flush_every = folder, prefix, flush_every

    def setup(self) -> None:
        self._embedded = counter("embedded")

    def start_bundle(self) -> None:
        self._fresh: dict[str, np.ndarray] = {}

    def process(self, element: tuple[str, np.ndarray]) -> Iterator[tuple[str, np.ndarray]]:
        sha256, vector = element
        self._fresh[sha256] = vector
        self._embedded.inc()
        if len(self._fresh) >= self._flush_every:
            self._flush()
        yield element

    def finish_bundle(self) -> None:
        self._flush()

    def _flush(self) -> None:
        if self._fresh:
            write_vector_file(self._folder, self._prefix, self._fresh)
            self._fresh = {}


class WriteVectorFiles(beam.DoFn):
    """Each batch of ``(sha256, vector)`` becomes one vector file named ``<prefix>*.npz``."""

    def __init__(self, folder: str, prefix: str) -> None:
        self._folder, self._prefix = folder, prefix

    def process(self, batch: Sequence[tuple[str, np.ndarray]]) -> Iterator[str]:
        yield write_vector_file(self._folder, self._prefix, dict(batch))


def absolute_path(path: str) -> str:
    """``path`` as workers in other directories read it: local paths made absolute, URLs as given."""
    return (
        path
        if FileSystems.get_scheme(path) not in (None, "file")
        else str(Path(path.removeprefix("file://")).resolve())
    )


def local_model_dir(model_dir: str) -> tuple[Path, Path | None]:
    """``model_dir`` as a local folder: itself when local, else a temporary copy of its model files
    (returned second, for the caller to delete) fetched through ``FileSystems`` (``gs://`` and the like)."""
    from models.embedder import LITERT_FILE, MANIFEST_FILE, MODEL_FILE

    if FileSystems.get_scheme(model_dir) in (None, "file"):
        return Path(model_dir.removeprefix("file://")), None
    copy = Path(tempfile.mkdtemp(prefix="posterrec-model-"))
    litert = [LITERT_FILE] if FileSystems.exists(FileSystems.join(model_dir, LITERT_FILE)) else []
    try:
        for name in (MODEL_FILE, MANIFEST_FILE, *litert):
            with FileSystems.open(FileSystems.join(model_dir, name)) as source, (copy / name).open("wb") as target:
                shutil.copyfileobj(source, target)
    except OSError as err:
        shutil.rmtree(copy, ignore_errors=True)
        raise FileNotFoundError(f"model {model_dir} cannot be fetched: {err}") from None
    return copy, copy


class PosterEmbedding(ModelHandler[np.ndarray, np.ndarray, Any]):
    """RunInference's handle on the exported embedding model: loaded once per worker process
    (refused unless it is the model the pipeline was planned with), applied to batches of pixels."""

    def __init__(self, model_dir: str, model_sha256: str, batch_size: int) -> None:
        super().__init__(min_batch_size=batch_size, max_batch_size=batch_size)  # a bundle's last batch may be smaller
        self._model_dir, self._model_sha256, self._batch_size = model_dir, model_sha256, batch_size

    def load_model(self):
        from models.embedder import load_embedder  # the models package loads on the workers that embed

        local, copy = local_model_dir(self._model_dir)
        try:
            embedder = load_embedder(local, batch_size=self._batch_size)
        finally:
            if copy is not None:
                shutil.rmtree(copy, ignore_errors=True)
        if embedder.manifest_sha256 != self._model_sha256:
            raise IndexVersionError(
                f"model {self._model_dir} changed while the rebuild ran (manifest {embedder.manifest_sha256[:12]}, "
                f"planned with {self._model_sha256[:12]})"
            )
        return embedder

    def run_inference(
        self, batch: Sequence[np.ndarray], model, inference_args: dict | None = None
    ) -> list[PredictionResult]:
        vectors = model.embed_images([Image.fromarray(pixels) for pixels in batch])
        return [PredictionResult(pixels.shape, vector) for pixels, vector in zip(batch, vectors)]

    def get_num_bytes(self, batch: Sequence[np.ndarray]) -> int:
        return sum(pixels.nbytes for pixels in batch)

    def get_metrics_namespace(self) -> str:
        return f"{METRICS_NAMESPACE}_embedding"


def shard_file(folder: str, shard: int, name: str) -> str:
    """Where a shard built by :class:`BuildShard` keeps file ``name`` of its serialized searcher."""
    return FileSystems.join(folder, f"shard-{shard}.{name}")


def write_array(path: str, array: np.ndarray) -> None:
    """``array`` as an ``.npy`` file at a ``FileSystems`` path."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    with FileSystems.create(path) as handle:
        handle.write(buffer.getvalue())


class BuildShard(beam.DoFn):
    """``(shard, path of its vectors .npy)`` -> the shard's ScaNN searcher, tuned to the recall floor and
    serialized to ``<folder>/shard-<shard>.*``; yields ``{"shard", "params", "build_seconds", "files"}``."""

    def __init__(self, folder: str, exact_search_max_items: int, recall_floor: float) -> None:
        self._folder, self._exact_max, self._floor = folder, exact_search_max_items, recall_floor

    def setup(self) -> None:
        self._built = counter("shards_built")

    def process(self, element: tuple[int, str]) -> Iterator[dict]:
        shard, vectors_path = element
        with FileSystems.open(vectors_path) as handle:
            vectors = np.load(io.BytesIO(handle.read()))
        built = build_shard(vectors, None, self._exact_max, self._floor)
        with tempfile.TemporaryDirectory(prefix="posterrec-shard-") as local:
            built.shard.searcher.serialize(local, relative_path=True)
            names = sorted(os.listdir(local))
            for name in names:
                with (
                    open(os.path.join(local, name), "rb") as source,
                    FileSystems.create(shard_file(self._folder, shard, name)) as target,
                ):
                    shutil.copyfileobj(source, target)
        self._built.inc()
        yield {
            "shard": shard,
            "params": dataclasses.asdict(built.shard.params),
            "build_seconds": built.build_seconds,
            "files": names,
        }
