"""The behaviour model: watch sequences -> title vectors, trained with TensorFlow Recommenders.

An item-to-item retrieval model. One tower maps a title to a unit vector from
two inputs: a learned id embedding (titles watched at least ``min_watches``
times have one; every other title shares the "no id" row) and its poster
embedding through a small MLP. A query is the normalised mean of the vectors of
the user's last ``context_length`` titles, and ``tfrs.tasks.Retrieval`` trains
it to pick the next title watched against the other titles of the batch
(sampled softmax, log-Q corrected for popularity). During training each id is
replaced by the "no id" row with probability ``id_dropout``, so the poster path
alone learns to place a title: a title nobody has watched still gets a useful
vector from its poster.

Vectors live in one space for history and candidates, so the service's ranking
(a mean of the history's vectors, then nearest neighbours) applies unchanged.

An exported behaviour model is a directory with ``model.keras`` (inputs
``id_index``, ``poster`` -> unit vector), ``vocabulary.json`` (title ids; row
``i + 1`` of the id embedding) and ``manifest.json`` (format, dimensions, the
poster model's manifest sha256, configuration, history and metrics). Training
saves a checkpoint per epoch in ``<out>.train/``; ``resume=True`` continues an
interrupted run of the same configuration and data.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import posterrec_settings  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs
from tqdm import tqdm

from models.embedder import NotAnExportedModelError, check_expectations
from models.epoch_checkpoints import DATA, checkpoint_folder, restore_epoch, save_epoch
from posterrec_atomic import replace_directory, staging_directory

log = logging.getLogger(__name__)

FORMAT = "posterrec-behaviour/1"
MODEL_FILE, VOCABULARY_FILE, MANIFEST_FILE = "model.keras", "vocabulary.json", "manifest.json"
EXPORT_FILES = {MODEL_FILE, VOCABULARY_FILE, MANIFEST_FILE}
"""What an export folder holds."""
NO_ID = 0
"""Id-embedding row of titles without their own: unwatched, rarely watched, or dropped out in training."""
PAD = -1
"""Context slot without a title (histories shorter than ``context_length``)."""


@dataclasses.dataclass(frozen=True)
class BehaviourConfig:
    """Everything that decides the trained weights; a resumed run must match it exactly."""

    embedding_dim: int = 64
    context_length: int = 10
    epochs: int = 8
    batch_size: int = 256
    learning_rate: float = 3e-3
    temperature: float = 0.05
    id_dropout: float = 0.3
    min_watches: int = 1
    logq_correction: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.embedding_dim, self.context_length, self.batch_size, self.min_watches) < 1 or self.epochs < 0:
            raise ValueError(f"behaviour model sizes must be positive (got {self})")
        if not 0 <= self.id_dropout < 1:
            raise ValueError(f"id_dropout must be in [0, 1), got {self.id_dropout}")


@dataclasses.dataclass(frozen=True)
class WatchData:
    """Every catalogue title with its poster embedding, and what users watched."""

    title_ids: list[str]
    posters: np.ndarray
    """(N, poster_dim) float32, row i is ``title_ids[i]``."""
    sequences: list[list[str]]
    """Per user, the titles watched, oldest first; titles outside ``title_ids`` are ignored."""

    def rows(self, titles: Sequence[str]) -> list[int]:
        row_of = self.row_of
        return [row_of[t] for t in titles if t in row_of]

    @property
    def row_of(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.title_ids)}

    def sha256(self) -> str:
        digest = hashlib.sha256()
        digest.update(json.dumps([self.title_ids, self.sequences]).encode())
        digest.update(np.ascontiguousarray(self.posters, np.float32).tobytes())
        return digest.hexdigest()


def vocabulary(data: WatchData, min_watches: int) -> list[str]:
    """Titles with their own id embedding: watched at least ``min_watches`` times, in catalogue order."""
    counts = Counter(t for sequence in data.sequences for t in sequence)
    return [t for t in data.title_ids if counts[t] >= min_watches]


def training_examples(sequences: Sequence[Sequence[int]], context_length: int) -> tuple[np.ndarray, np.ndarray]:
    """(context rows, left-padded with PAD; next row) for every position after the first of every sequence."""
    contexts, targets = [], []
    for rows in sequences:
        for position in range(1, len(rows)):
            context = list(rows[max(0, position - context_length) : position])
            contexts.append([PAD] * (context_length - len(context)) + context)
            targets.append(rows[position])
    shape = (len(contexts), context_length)
    return np.array(contexts, np.int32).reshape(shape), np.array(targets, np.int32)


def build_item_tower(vocabulary_size: int, poster_dim: int, dim: int, seed: int) -> tf.keras.Model:
    """(id_index, poster) -> unit vector: id embedding plus a two-layer MLP of the poster embedding."""
    id_index = tf.keras.Input((), dtype=tf.int32, name="id_index")
    poster = tf.keras.Input((poster_dim,), dtype=tf.float32, name="poster")
    init = tf.keras.initializers.GlorotUniform(seed)
    id_vector = tf.keras.layers.Embedding(
        vocabulary_size + 1,
        dim,
        embeddings_initializer=tf.keras.initializers.RandomNormal(0, 0.05, seed),
        name="id_embedding",
    )(id_index)
    hidden = tf.keras.layers.Dense(2 * dim, activation="relu", kernel_initializer=init, name="poster_hidden")(poster)
    poster_vector = tf.keras.layers.Dense(dim, kernel_initializer=init, name="poster_projection")(hidden)
    vector = tf.keras.layers.Add()([id_vector, poster_vector])
    return tf.keras.Model([id_index, poster], tf.keras.layers.UnitNormalization(name="unit")(vector), name="item_tower")


class SequenceRetrieval(tfrs.models.Model):
    """Query: mean of the context's title vectors; candidate: the next title's vector; both from one tower."""

    def __init__(
        self,
        tower: tf.keras.Model,
        posters: np.ndarray,
        id_of_row: np.ndarray,
        config: BehaviourConfig,
        sampling_probability: np.ndarray,
    ) -> None:
        super().__init__()
        self.tower = tower
        self.posters = tf.constant(posters, tf.float32)
        self.id_of_row = tf.constant(id_of_row, tf.int32)
        self.sampling_probability = tf.constant(sampling_probability, tf.float32)
        self.id_dropout = config.id_dropout
        self.use_logq = config.logq_correction
        self.random = tf.random.Generator.from_seed(config.seed)
        self.task = tfrs.tasks.Retrieval(temperature=config.temperature, remove_accidental_hits=True)

    def vectors(self, rows: tf.Tensor, training: bool) -> tf.Tensor:
        rows = tf.maximum(rows, 0)
        ids = tf.gather(self.id_of_row, rows)
        if training and self.id_dropout:
            ids = tf.where(self.random.uniform(tf.shape(ids)) < self.id_dropout, NO_ID, ids)
        return self.tower([ids, tf.gather(self.posters, rows)], training=training)

    def compute_loss(self, inputs: tuple[tf.Tensor, tf.Tensor], training: bool = False) -> tf.Tensor:
        context, target = inputs
        mask = tf.cast(context != PAD, tf.float32)[..., None]
        flat = self.vectors(tf.reshape(context, [-1]), training)
        context_vectors = tf.reshape(flat, tf.concat([tf.shape(context), [-1]], 0))
        query = tf.math.l2_normalize(tf.reduce_sum(context_vectors * mask, axis=1), axis=1)
        candidates = self.vectors(target, training)
        probability = tf.gather(self.sampling_probability, target) if self.use_logq else None
        return self.task(
            query, candidates, candidate_sampling_probability=probability, candidate_ids=target, compute_metrics=False
        )


def query_vector(history_vectors: np.ndarray, context_length: int) -> np.ndarray:
    """The unit-length mean of the last ``context_length`` history vectors (oldest first)."""
    mean = history_vectors[-context_length:].mean(axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-9)


def hit_rate_and_ndcg(
    vectors: np.ndarray, histories: Sequence[Sequence[int]], targets: Sequence[int], context_length: int, k: int = 10
) -> dict[str, float]:
    """HR@k and NDCG@k of each target among every row but its history, queried by :func:`query_vector`."""
    hits, gain = 0, 0.0
    for history, target in zip(histories, targets):
        scores = vectors @ query_vector(vectors[list(history)], context_length)
        scores[list(history)] = -np.inf
        rank = int((scores > scores[target]).sum())
        if rank < k:
            hits, gain = hits + 1, gain + 1 / np.log2(rank + 2)
    count = max(len(targets), 1)
    return {f"hit_rate@{k}": round(hits / count, 4), f"ndcg@{k}": round(float(gain) / count, 4), "users": len(targets)}


class BehaviourTrainer:
    """One training run: the retrieval model, its optimiser, checkpoints and data."""

    def __init__(self, data: WatchData, config: BehaviourConfig, out_dir: Path, extra_manifest: Mapping | None = None):
        self.data, self.config = data, config
        self.out_dir = Path(out_dir)
        self.work_dir = checkpoint_folder(self.out_dir)
        self.extra_manifest = dict(extra_manifest or {})
        self.vocabulary = vocabulary(data, config.min_watches)
        id_of_title = {t: i + 1 for i, t in enumerate(self.vocabulary)}
        id_of_row = np.array([id_of_title.get(t, NO_ID) for t in data.title_ids], np.int32)
        row_sequences = [data.rows(sequence) for sequence in data.sequences]
        self.contexts, self.targets = training_examples(row_sequences, config.context_length)
        if not len(self.targets):
            raise ValueError("no training examples: every user needs at least two watched catalogue titles")
        counts = np.bincount(self.targets, minlength=len(data.title_ids)).astype(np.float32)
        tf.keras.utils.set_random_seed(config.seed)
        self.tower = build_item_tower(len(self.vocabulary), data.posters.shape[1], config.embedding_dim, config.seed)
        self.model = SequenceRetrieval(self.tower, data.posters, id_of_row, config, counts / counts.sum())
        self.optimizer = tf.keras.optimizers.Adam(config.learning_rate)
        self.checkpoint = tf.train.Checkpoint(tower=self.tower, optimizer=self.optimizer, random=self.model.random)
        self.history: list[dict] = []
        self._step = tf.function(self._train_step)

    @property
    def run_settings(self) -> dict:
        """What decides the weights: the configuration and the watch data's digest."""
        return {**dataclasses.asdict(self.config), DATA: self.data.sha256()}

    def _train_step(self, context: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = self.model.compute_loss((context, target), training=True)
        variables = self.tower.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    def run_epoch(self, epoch: int) -> dict:
        order = np.random.default_rng(self.config.seed * 1000 + epoch).permutation(len(self.targets))
        losses = []
        batches = range(0, len(order), self.config.batch_size)
        with tqdm(
            batches, desc=f"behaviour epoch {epoch + 1}/{self.config.epochs}", unit="batch", leave=False
        ) as progress:
            for start in progress:
                chosen = order[start : start + self.config.batch_size]
                losses.append(float(self._step(tf.constant(self.contexts[chosen]), tf.constant(self.targets[chosen]))))
                progress.set_postfix(loss=f"{losses[-1]:.4f}")
        record = {"epoch": epoch + 1, "loss": round(float(np.mean(losses)), 5)}
        log.info("behaviour epoch %(epoch)d: loss %(loss).4f", record)
        return record

    def _save_state(self, completed: int) -> None:
        save_epoch(self.checkpoint, self.work_dir, completed, {"settings": self.run_settings, "history": self.history})

    def _restore(self) -> int:
        state = restore_epoch(self.checkpoint, self.work_dir, self.run_settings)
        if state is None:
            return 0
        self.history = state["history"]
        completed = int(state["completed_epochs"])
        log.info("resuming after epoch %d of %d from %s", completed, self.config.epochs, self.work_dir)
        return completed

    def item_vectors(self) -> np.ndarray:
        """Unit vectors of every catalogue title, in ``data.title_ids`` order."""
        rows = tf.range(len(self.data.title_ids))
        return self.model.vectors(rows, training=False).numpy()

    def train(
        self,
        resume: bool = False,
        evaluation: tuple[Sequence[Sequence[str]], Sequence[str]] | None = None,
        on_epoch_end: Callable[[int, dict], None] | None = None,
    ) -> dict:
        """Run (or finish) the epochs, export and return the manifest; ``evaluation`` is (histories, targets)."""
        if not resume and self.work_dir.exists():
            log.info("discarding the checkpoints of an earlier run in %s (use --resume to continue it)", self.work_dir)
            shutil.rmtree(self.work_dir)
        completed = self._restore() if resume else 0
        for epoch in range(completed, self.config.epochs):
            self.history.append(self.run_epoch(epoch))
            self._save_state(epoch + 1)
            if on_epoch_end is not None:
                on_epoch_end(epoch, self.history[-1])
        metrics = {}
        if evaluation is not None:
            histories, targets = evaluation
            row_of = self.data.row_of
            pairs = [
                (self.data.rows(h), row_of[t]) for h, t in zip(histories, targets) if t in row_of and self.data.rows(h)
            ]
            metrics = hit_rate_and_ndcg(
                self.item_vectors(), [h for h, _ in pairs], [t for _, t in pairs], self.config.context_length
            )
        manifest = {
            **self.extra_manifest,
            "embedding_dim": self.config.embedding_dim,
            "poster_dim": int(self.data.posters.shape[1]),
            "context_length": self.config.context_length,
            "vocabulary_size": len(self.vocabulary),
            "training_data_sha256": self.data.sha256(),
            "training_examples": len(self.targets),
            "training": {**dataclasses.asdict(self.config), "history": self.history},
            "metrics": metrics,
            "tensorflow": tf.__version__,
            "tensorflow_recommenders": tfrs.__version__,
        }
        export_behaviour(self.tower, self.vocabulary, manifest, self.out_dir)
        shutil.rmtree(self.work_dir, ignore_errors=True)
        log.info("exported behaviour model %s: %s", self.out_dir, json.dumps(metrics))
        return manifest


def export_behaviour(tower: tf.keras.Model, titles: Sequence[str], manifest: Mapping, out_dir: Path) -> Path:
    """Write the tower, vocabulary and manifest to a temporary sibling, then rename it into place."""
    with staging_directory(out_dir.parent, prefix=f".{out_dir.name}.") as staging:
        tower.save(staging / MODEL_FILE)
        (staging / VOCABULARY_FILE).write_text(json.dumps(list(titles)))
        (staging / MANIFEST_FILE).write_text(json.dumps({"format": FORMAT, **manifest}, indent=2, sort_keys=True))
        replace_directory(staging, out_dir)
    return out_dir


class BehaviourModel:
    """An exported behaviour model: title ids and poster embeddings -> behaviour vectors."""

    def __init__(self, tower: tf.keras.Model, titles: list[str], manifest: dict, manifest_sha256: str) -> None:
        self.tower, self.manifest, self.manifest_sha256 = tower, manifest, manifest_sha256
        self.id_of_title = {t: i + 1 for i, t in enumerate(titles)}

    def vectors(self, title_ids: Sequence[str], posters: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """(N, dim) unit vectors; titles outside the vocabulary get theirs from the poster alone."""
        ids = np.array([self.id_of_title.get(t, NO_ID) for t in title_ids], np.int32)
        chunks = [
            self.tower([ids[s : s + batch_size], posters[s : s + batch_size]], training=False).numpy()
            for s in range(0, len(ids), batch_size)
        ]
        return np.concatenate(chunks) if chunks else np.zeros((0, int(self.manifest["embedding_dim"])), np.float32)


def read_behaviour_manifest(model_dir: Path) -> tuple[dict, str]:
    """The manifest and the sha256 of its bytes, or :class:`NotAnExportedModelError` naming what is wrong."""
    missing = [name for name in (MANIFEST_FILE, MODEL_FILE, VOCABULARY_FILE) if not (model_dir / name).is_file()]
    if missing:
        raise NotAnExportedModelError(
            f"{model_dir} is not an exported behaviour model: it lacks {', '.join(missing)} "
            "(create one with `python -m models train-behaviour`)"
        )
    data = (model_dir / MANIFEST_FILE).read_bytes()
    try:
        manifest = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise NotAnExportedModelError(f"{model_dir / MANIFEST_FILE} is not valid JSON: {err}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise NotAnExportedModelError(f"{model_dir / MANIFEST_FILE}: not a {FORMAT} manifest")
    return manifest, hashlib.sha256(data).hexdigest()


def load_behaviour(model_dir: str | Path, expect: Mapping[str, object] | None = None) -> BehaviourModel:
    """Load an exported behaviour model, refusing it (:class:`ModelMismatchError`) if its manifest differs
    from ``expect`` (e.g. ``{"poster_model_manifest_sha256": ...}`` of the poster vectors it will be fed)."""
    model_dir = Path(model_dir)
    manifest, digest = read_behaviour_manifest(model_dir)
    check_expectations(manifest, expect or {}, model_dir)
    tower = tf.keras.models.load_model(model_dir / MODEL_FILE, compile=False)
    titles = json.loads((model_dir / VOCABULARY_FILE).read_text(encoding="utf-8"))
    return BehaviourModel(tower, titles, manifest, digest)


def split_last(sequences: Sequence[Sequence[str]]) -> tuple[list[list[str]], list[str]]:
    """(each user's titles but the last, the last titles) for users with at least two titles."""
    kept = [list(s) for s in sequences if len(s) >= 2]
    return [s[:-1] for s in kept], [s[-1] for s in kept]


def train_behaviour(
    data: WatchData,
    config: BehaviourConfig,
    out_dir: str | Path,
    resume: bool = False,
    extra_manifest: Mapping | None = None,
    on_epoch_end: Callable[[int, dict], None] | None = None,
) -> dict:
    """Train on every user's titles but the last, measure HR@10/NDCG@10 on those last titles, export;
    ``on_epoch_end(epoch, record)`` runs after each epoch's checkpoint."""
    histories, targets = split_last(data.sequences)
    train_data = dataclasses.replace(data, sequences=histories)
    trainer = BehaviourTrainer(train_data, config, Path(out_dir), extra_manifest)
    return trainer.train(resume, evaluation=(histories, targets), on_epoch_end=on_epoch_end)


def read_watch_data(store_path: Path, index_root: Path) -> tuple[WatchData, dict]:
    """Titles and poster vectors of the current published index, and the store's events as sequences;
    with what the manifest records about that poster space. Raises ValueError naming what is missing."""
    from indexer.published import IndexVersionError, open_version
    from indexer.store import StoreError, missing_store, open_store

    if problem := missing_store(store_path):
        raise ValueError(problem)
    try:
        index = open_version(Path(index_root))
    except IndexVersionError as err:
        raise ValueError(f"no poster vectors to train on: {err}") from None
    try:
        with open_store(store_path) as store:
            events = store.events()
    except StoreError as err:
        raise ValueError(str(err)) from None
    if not events:
        raise ValueError(f"store {store_path} has no watch events: run `python -m indexer ingest-events` first")
    sequences: dict[str, list[str]] = {}
    for event in events:  # ordered by user, then time
        sequences.setdefault(event.user_id, []).append(event.title_id)
    rows = [row for row, item in enumerate(index.items) if not item.is_variant]
    data = WatchData([index.items[row].key for row in rows], index.embeddings[rows], list(sequences.values()))
    source = {
        "poster_model_manifest_sha256": index.manifest.get("model_manifest_sha256"),
        "poster_index_version": index.version,
    }
    return data, source
