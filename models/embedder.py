"""The exported embedding model: its on-disk contract, export and loading.

An exported model is a directory with

* ``model.keras`` - image (0-255 pixels, ``input_size`` square) -> L2-normalised embedding;
* ``model.tflite`` - the same model converted for LiteRT, which embeds with it (faster than TensorFlow's
  forward pass on every host measured, docs/benchmarks.md) without loading the Keras model or, unless
  something else imports it, TensorFlow (a server worker's first upload waits hundredths of a second, not
  seconds); an export without it embeds with TensorFlow;
* ``manifest.json`` - what the model is: backbone, input size, preprocessing,
  letterboxing, weights, label scheme, training data hash, genres and metrics.

Consumers (the indexer, the service) pass what they expect to
:func:`load_embedder`; a model built differently is refused with
:class:`ModelMismatchError` instead of silently producing vectors that do not
match an index built with another model. :attr:`Embedder.manifest_sha256`
identifies the exact model, so embedding caches can key on it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import queue
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import posterrec_settings  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from models.preprocessing import ImageInput, load_image, resize_image_to_square
from posterrec_atomic import replace_directory, staging_directory

if TYPE_CHECKING:
    import tensorflow as tf

log = logging.getLogger(__name__)

MODEL_FILE = "model.keras"
LITERT_FILE = "model.tflite"
MANIFEST_FILE = "manifest.json"
FORMAT = "posterrec-embedder/1"
LITERT_SHA256 = "litert_sha256"
"""The manifest key that holds ``model.tflite``'s sha256, checked when it is loaded (a torn copy parses)."""
MAX_EMBEDDING_WORKERS = 4
"""Batches embedded at once at most: each worker holds its own copy of the model's packed weights and a
batch's activations, so a machine with more cores runs at most this many, each on several cores."""
REQUIRED_KEYS = ("input_size", "embedding_dim", "letterbox")
"""What the embedder reads from a manifest."""
EXPORT_FILES = {MODEL_FILE, LITERT_FILE, MANIFEST_FILE}
"""What an export folder holds."""
_MISSING = object()
T = TypeVar("T")
R = TypeVar("R")


class ModelMismatchError(ValueError):
    """The model on disk is not the one the caller expects."""


class NotAnExportedModelError(FileNotFoundError):
    """The directory does not hold an exported PosterRec model."""


def export_embedder(model: tf.keras.Model, manifest: Mapping[str, Any], out_dir: str | os.PathLike) -> Path:
    """Write model and manifest to a temporary sibling directory, then rename it into place.

    A crash while writing leaves the previous export untouched; the old
    directory is moved aside only once the new one is complete.
    """
    out_dir = Path(out_dir)
    with staging_directory(out_dir.parent, prefix=f".{out_dir.name}.") as staging:
        model.save(staging / MODEL_FILE)
        written = {"format": FORMAT, **manifest}
        try:
            litert = litert_model(model, int(manifest["input_size"]))
        except Exception:  # the converter's errors have no common type; TensorFlow still embeds with the export
            log.warning("%s could not be converted for LiteRT; it will embed with TensorFlow", out_dir, exc_info=True)
        else:
            (staging / LITERT_FILE).write_bytes(litert)
            written[LITERT_SHA256] = hashlib.sha256(litert).hexdigest()
        (staging / MANIFEST_FILE).write_text(json.dumps(written, indent=2, sort_keys=True))
        replace_directory(staging, out_dir)
    return out_dir


def pixel_forward(
    model: tf.keras.Model, input_size: int, jit_compile: bool = False
) -> tf.types.experimental.GenericFunction:
    """``model`` on a batch of ``input_size`` square uint8 images, cast to float inside the graph (compiled
    by XLA when ``jit_compile``)."""
    import tensorflow as tf

    signature = tf.TensorSpec([None, input_size, input_size, 3], tf.uint8)
    return tf.function(
        lambda images: model(tf.cast(images, tf.float32), training=False),
        input_signature=[signature],
        jit_compile=jit_compile,
    )


def litert_model(model: tf.keras.Model, input_size: int) -> bytes:
    """:func:`pixel_forward` of ``model`` as a LiteRT (TFLite) flatbuffer, any batch size."""
    import tensorflow as tf

    concrete = pixel_forward(model, input_size).get_concrete_function()
    return tf.lite.TFLiteConverter.from_concrete_functions([concrete], model).convert()


class LiteRtForward:
    """A LiteRT flatbuffer run on uint8 batches: ``(N, size, size, 3)`` -> ``(N, dim)`` float32, each batch on
    ``threads`` threads (all cores by default).

    An interpreter is not thread-safe, so each call borrows an idle one, loading another when all are busy
    (its first allocation packs the weights), and resizes it when the batch size changes (under a millisecond).
    """

    def __init__(self, content: bytes, threads: int | None = None) -> None:
        self.content = content
        self.threads = threads or posterrec_settings.usable_cores()
        self.idle: queue.SimpleQueue[SizedInterpreter] = queue.SimpleQueue()

    def __call__(self, images: np.ndarray) -> np.ndarray:
        try:
            interpreter = self.idle.get_nowait()
        except queue.Empty:
            interpreter = SizedInterpreter(Interpreter(model_content=self.content, num_threads=self.threads))
        try:
            return interpreter.run(images)
        finally:
            self.idle.put(interpreter)


class SizedInterpreter:
    """A LiteRT interpreter with one input and one output, its tensors allocated for the last batch's shape."""

    def __init__(self, interpreter: Interpreter) -> None:
        self.interpreter = interpreter
        self.source = interpreter.get_input_details()[0]["index"]
        self.target = interpreter.get_output_details()[0]["index"]
        self.shape: tuple[int, ...] | None = None

    def run(self, images: np.ndarray) -> np.ndarray:
        """The model's output for ``images``, a copy the interpreter will not overwrite."""
        if self.shape != images.shape:
            self.shape = None  # until allocated: a resize that fails leaves no shape to trust
            self.interpreter.resize_tensor_input(self.source, images.shape)
            self.interpreter.allocate_tensors()
            self.shape = images.shape
        self.interpreter.set_tensor(self.source, images)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.target).copy()


def map_in_order(function: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """``function`` of each item on ``workers`` threads, the results in the items' order.

    Items are taken from ``items`` (in the caller's thread) at most ``workers + 1`` ahead of the results,
    where ``Executor.map`` would take them all at once. An item's exception is raised in its result's place,
    and one raised by ``items`` after the results of the items before it; items not yet started are dropped.
    """
    upcoming = iter(items)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="map-in-order") as pool:
        running: deque[Future[R]] = deque()
        try:
            while True:
                try:
                    item = next(upcoming)
                except StopIteration:
                    break
                except Exception:  # ``items`` failed: the results of the items before it come first
                    while running:
                        yield running.popleft().result()
                    raise
                running.append(pool.submit(function, item))
                if len(running) > workers:
                    yield running.popleft().result()
            while running:
                yield running.popleft().result()
        finally:
            for future in running:
                future.cancel()


class Embedder:
    """Embeds posters with the model exported to ``model_dir``; rows are L2-normalised float32.

    ``litert`` (the export's ``model.tflite``) runs the model when given, and the Keras model is loaded
    only when :attr:`model` is asked for; otherwise TensorFlow runs the Keras model, loaded now.
    """

    def __init__(
        self,
        model_dir: Path,
        manifest: dict,
        manifest_sha256: str,
        batch_size: int = 32,
        litert: bytes | None = None,
    ):
        self.model_dir = model_dir
        self.manifest = manifest
        self.manifest_sha256 = manifest_sha256
        self.input_size = int(manifest["input_size"])
        self.dim = int(manifest["embedding_dim"])
        self.letterbox = bool(manifest["letterbox"])
        self.batch_size = batch_size
        cores = posterrec_settings.usable_cores()
        threads_per_worker = math.ceil(cores / MAX_EMBEDDING_WORKERS)  # 1 up to that many cores
        self.workers = cores // threads_per_worker
        if litert is None:
            forward = pixel_forward(self.model, self.input_size)
            self.forward: Callable[[np.ndarray], np.ndarray] = lambda images: forward(images).numpy()
            self.worker_forward = self.forward  # TensorFlow's calls share one thread pool
        else:
            self.forward = LiteRtForward(litert, threads=cores)
            self.worker_forward = LiteRtForward(litert, threads=threads_per_worker)

    @functools.cached_property
    def model(self) -> tf.keras.Model:
        """The exported Keras model (``model.keras``), loaded with TensorFlow on first use.

        Raises :class:`NotAnExportedModelError` when Keras cannot read it.
        """
        import tensorflow as tf  # seconds and about 600 MB: not for embedding with LiteRT

        path = self.model_dir / MODEL_FILE
        try:
            return tf.keras.models.load_model(path, compile=False)
        except (OSError, ValueError) as err:  # h5py and Keras's words for a file that is not a Keras model
            raise NotAnExportedModelError(f"{path} cannot be loaded as a Keras model: {err}") from None

    @property
    def runtime(self) -> str:
        """What runs the model: ``"LiteRT"`` or ``"TensorFlow"``."""
        return "LiteRT" if isinstance(self.forward, LiteRtForward) else "TensorFlow"

    def prepare(self, item: ImageInput, index: int = 0) -> np.ndarray:
        """One input -> the square uint8 image the model takes; raises ``UnreadableImage`` naming a bad input."""
        return resize_image_to_square(load_image(item, index), self.input_size, self.letterbox)

    def prepare_batch(self, images: Sequence[ImageInput], first_index: int = 0) -> np.ndarray:
        """``(N, size, size, 3)`` uint8 model inputs; ``first_index`` numbers the inputs in errors."""
        return np.stack([self.prepare(item, first_index + i) for i, item in enumerate(images)])

    def embed_images(self, images: Sequence[ImageInput]) -> np.ndarray:
        """``(N, dim)`` embeddings of bytes, paths or PIL images, in batches of ``batch_size``.

        Up to one batch runs on all cores at once (a single upload answers soonest); more run as
        :meth:`embed_batches` does. Raises :class:`~models.preprocessing.UnreadableImage` naming the first
        input that cannot be decoded.
        """
        if len(images) <= self.batch_size:
            embedded = [self.forward(self.prepare_batch(images))] if images else []
        else:
            batches = (images[start : start + self.batch_size] for start in range(0, len(images), self.batch_size))
            embedded = self.embed_batches(batches)
        return np.concatenate([np.zeros((0, self.dim), np.float32), *embedded])

    def embed_batches(
        self, batches: Iterable[Sequence[T]], read: Callable[[T], ImageInput] = lambda item: item
    ) -> Iterator[np.ndarray]:
        """The ``(len(batch), dim)`` embeddings of each batch in turn.

        Batches run side by side, one per core (on more than :data:`MAX_EMBEDDING_WORKERS` cores, that many
        batches, each on several cores): a worker thread reads its batch (``read`` turns an item into bytes, a
        path or a PIL image), decodes and resizes it and runs the model on it on its own cores (Pillow, LiteRT
        and TensorFlow release the GIL), so no core waits for another's batch (docs/benchmarks.md measures this
        against preparing the next batch during a forward pass on all cores), and a slow read holds back no
        finished batch. ``batches`` is iterated in this thread, a few batches ahead of the results. Raises
        :class:`~models.preprocessing.UnreadableImage` whose ``index`` counts inputs from the first batch's
        first, and what ``read`` raises.
        """

        def numbered() -> Iterator[tuple[Sequence[T], int]]:
            taken = 0
            for batch in batches:
                yield batch, taken
                taken += len(batch)

        def embed(job: tuple[Sequence[T], int]) -> np.ndarray:
            batch, first_index = job
            return self.worker_forward(self.prepare_batch([read(item) for item in batch], first_index))

        yield from map_in_order(embed, numbered(), self.workers)


def read_manifest(model_dir: Path) -> tuple[dict, str]:
    """The manifest and the sha256 of its bytes, or a clear error."""
    path = model_dir / MANIFEST_FILE
    if not model_dir.is_dir():
        problem = "is a file, not a model folder" if model_dir.exists() else "does not exist"
        raise NotAnExportedModelError(f"model directory {model_dir} {problem}")
    if not path.is_file() or not (model_dir / MODEL_FILE).is_file():
        raise NotAnExportedModelError(
            f"{model_dir} is not an exported PosterRec model: it lacks {MANIFEST_FILE} or {MODEL_FILE} "
            "(create one with `python -m models train`)"
        )
    data = path.read_bytes()
    try:
        manifest = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise NotAnExportedModelError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise NotAnExportedModelError(f"{path}: format is {found!r}, expected {FORMAT!r}")
    if missing := [key for key in REQUIRED_KEYS if key not in manifest]:
        raise NotAnExportedModelError(f"{path} lacks {', '.join(missing)}: export the model again")
    return manifest, hashlib.sha256(data).hexdigest()


def check_expectations(manifest: Mapping[str, Any], expect: Mapping[str, object], model_dir: Path) -> None:
    """Raise :class:`ModelMismatchError` on the first manifest key whose value differs."""
    for key, expected in expect.items():
        found = manifest.get(key, _MISSING)
        if found is _MISSING:
            raise ModelMismatchError(f"model {model_dir}: manifest has no key {key!r} (expected {expected!r})")
        if found != expected:
            raise ModelMismatchError(f"model {model_dir}: manifest key {key!r} is {found!r}, expected {expected!r}")


def load_embedder(
    model_dir: str | os.PathLike, expect: Mapping[str, object] | None = None, batch_size: int | None = None
) -> Embedder:
    """Load an exported model, refusing it if its manifest differs from ``expect``.

    The manifest is checked first, so a mismatch costs milliseconds. An export with ``model.tflite`` then
    loads in a fraction of a second without TensorFlow; one without it loads its Keras model, in seconds.
    Raises :class:`NotAnExportedModelError` or :class:`ModelMismatchError`.
    """
    model_dir = Path(model_dir)
    manifest, digest = read_manifest(model_dir)
    check_expectations(manifest, expect or {}, model_dir)
    litert = read_litert_model(model_dir / LITERT_FILE, manifest.get(LITERT_SHA256))
    batch_size = batch_size or posterrec_settings.load_settings().batch_size
    embedder = Embedder(model_dir, manifest, digest, batch_size, litert)
    log.info(
        "loaded embedder %s (%s, manifest %s, %s)", model_dir, manifest.get("backbone"), digest[:12], embedder.runtime
    )
    return embedder


def read_litert_model(path: Path, sha256: str | None = None) -> bytes | None:
    """The LiteRT model at ``path``, None when the export has none.

    Raises:
        NotAnExportedModelError: the file is not a LiteRT model, or not the one whose ``sha256`` the manifest
            records (checked now, not on the first batch).
    """
    if not path.is_file():
        return None
    content = path.read_bytes()
    again = "export the model again, or delete the file to embed with TensorFlow"
    if sha256 and hashlib.sha256(content).hexdigest() != sha256:
        raise NotAnExportedModelError(f"{path} is not the file its manifest records (another sha256): {again}")
    try:
        Interpreter(model_content=content)  # parses the flatbuffer (a millisecond), allocates nothing
    except ValueError as err:
        raise NotAnExportedModelError(f"{path} is not a LiteRT model ({err}): {again}") from None
    return content
