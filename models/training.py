"""Training: genre warm-up with progressive unfreezing, then triplet metric learning, then export.

The run is a fixed plan of epochs (:func:`epoch_plan`):

1. warm-up epochs train the head (and, from the second epoch on, more and
   more of the backbone's top blocks) to predict genres, binary cross-entropy
   from logits over the multi-hot genre vector;
2. triplet epochs train the L2-normalised embedding with the semi-hard
   triplet loss (angular distance, margin from the settings) on weak genre
   classes (:mod:`models.labels`).

Epochs that leave the backbone frozen read cached backbone features
(:mod:`models.feature_cache`); unfreezing is monotone, so every such epoch
comes before the backbone first changes and the cache is never stale.

After every epoch the weights, optimiser state and a ``state.json`` are saved
in ``<out>.train/``; ``resume=True`` continues after the last finished epoch
of an interrupted run with the same configuration. The finished model is
checked for collapse, centred, checked for crowding, evaluated on the
held-out split and exported.

Centring subtracts the mean embedding of the training posters (folded into
the ``embedding`` layer's bias): pooled features of a ReLU backbone share a
large common component, and without centring any two posters score close to
1 (a crowded space, :func:`models.evaluation.check_not_crowded`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import posterrec_settings  # (also sets TF_USE_LEGACY_KERAS before TensorFlow)

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from models.backbones import build_backbone, unfreeze_top_blocks
from models.catalog import CatalogRow
from models.data import image_dataset, split_by_id, training_data_sha256
from models.embedder import export_embedder
from models.epoch_checkpoints import DATA, checkpoint_folder, restore_epoch, save_epoch
from models.evaluation import CollapseError, check_not_collapsed, check_not_crowded, retrieval_metrics
from models.feature_cache import cached_features, fingerprint
from models.labels import LABEL_SCHEMES, genre_vocabulary, multi_hot, triplet_classes
from models.losses import triplet_semihard_loss
from models.network import build_network

log = logging.getLogger(__name__)

WARMUP, TRIPLET = "warmup", "triplet"
CENTRE_SAMPLE = 1024
"""Training posters whose mean embedding centres the space (a mean is well estimated from a thousand)."""
DEFAULT_LABEL_SCHEME = "primary"
"""Chosen by ``bench/bench_models.py`` (see the README table): the best MAP@R of the three schemes,
by a small margin over ``genre_set`` and ``sampled``."""


_SETTINGS = posterrec_settings.Settings()
"""The documented defaults, which :class:`TrainConfig` shares."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that decides the trained weights; a resumed run must match it exactly.

    The model choices shared with the rest of PosterRec (backbone, weights, letterbox, embedding size,
    batch size, margin) default to :class:`posterrec_settings.Settings`' defaults; :meth:`from_settings`
    takes them from loaded settings instead.
    """

    backbone: str = _SETTINGS.backbone
    weights: str = _SETTINGS.weights
    letterbox: bool = _SETTINGS.letterbox
    embedding_dim: int = _SETTINGS.embedding_dim
    batch_size: int = _SETTINGS.batch_size
    warmup_epochs: int = 10
    head_only_epochs: int = 8
    """Warm-up epochs on the frozen backbone (cached features, seconds each) before unfreezing starts."""
    unfreeze_step: int = 1
    """Top blocks unfrozen per warm-up epoch after the head-only ones."""
    max_unfrozen_blocks: int = 2
    triplet_epochs: int = 4
    label_scheme: str = DEFAULT_LABEL_SCHEME
    margin: float = _SETTINGS.triplet_margin
    head_learning_rate: float = 1e-3
    backbone_learning_rate: float = 1e-4
    triplet_learning_rate: float = 1e-4
    test_fraction: float = 0.2
    seed: int = 0

    @classmethod
    def from_settings(cls, settings: posterrec_settings.Settings, **overrides: object) -> TrainConfig:
        """The model choices of ``settings``, then ``overrides`` (a None override keeps the default)."""
        shared = {
            "backbone": settings.backbone,
            "weights": settings.weights,
            "letterbox": settings.letterbox,
            "embedding_dim": settings.embedding_dim,
            "batch_size": settings.batch_size,
            "margin": settings.triplet_margin,
        }
        return cls(**{**shared, **{name: value for name, value in overrides.items() if value is not None}})

    def __post_init__(self) -> None:
        if self.label_scheme not in LABEL_SCHEMES:
            raise ValueError(f"unknown label scheme {self.label_scheme!r}; expected one of {LABEL_SCHEMES}")
        counts = (self.warmup_epochs, self.head_only_epochs, self.triplet_epochs)
        if min(*counts, self.unfreeze_step, self.max_unfrozen_blocks) < 0:
            raise ValueError("epoch counts and unfreezing steps cannot be negative")
        if self.head_only_epochs > self.warmup_epochs:
            raise ValueError(
                f"{self.head_only_epochs} head-only epochs: they are the first of the {self.warmup_epochs} warm-up "
                "epochs, so at most that many"
            )


@dataclasses.dataclass(frozen=True)
class EpochPlan:
    index: int
    phase: str
    unfrozen_blocks: int


def epoch_plan(config: TrainConfig) -> list[EpochPlan]:
    """Head-only warm-up, warm-up with a growing number of unfrozen blocks, then triplets at the last count."""

    def unfrozen(epoch: int) -> int:
        return min(config.max_unfrozen_blocks, max(0, epoch - config.head_only_epochs + 1) * config.unfreeze_step)

    plan = [EpochPlan(e, WARMUP, unfrozen(e)) for e in range(config.warmup_epochs)]
    blocks = plan[-1].unfrozen_blocks if plan else 0
    plan += [EpochPlan(config.warmup_epochs + e, TRIPLET, blocks) for e in range(config.triplet_epochs)]
    return plan


@dataclasses.dataclass
class TrainingData:
    rows: list[CatalogRow]
    genres: list[str]
    targets: np.ndarray


EpochCallback = Callable[[EpochPlan, dict], None]


class Trainer:
    """One training run: the network, its optimisers, checkpoints and data."""

    def __init__(self, config: TrainConfig, rows: Sequence[CatalogRow], out_dir: Path, cache_dir: Path):
        self.config = config
        self.out_dir = Path(out_dir)
        self.work_dir = checkpoint_folder(self.out_dir)
        self.train_rows, self.test_rows = split_by_id(rows, config.test_fraction)
        if len(self.train_rows) < 2:
            found = len(self.train_rows)
            raise ValueError(f"need at least 2 training posters after holding out the test split, got {found}")
        genres = genre_vocabulary([row.genres for row in self.train_rows])
        self.data = TrainingData(self.train_rows, genres, multi_hot([row.genres for row in self.train_rows], genres))
        backbone = build_backbone(config.backbone, config.weights, config.seed)
        self.network = build_network(backbone, len(genres), config.embedding_dim)
        self.spec = backbone.spec
        cache_key = fingerprint(
            {
                "backbone": config.backbone,
                "weights": backbone.weights,
                "seed": config.seed,
                "input_size": self.spec.input_size,
                "feature_dim": int(self.network.features.output_shape[-1]),
                "letterbox": config.letterbox,
                "preprocessing": self.spec.scaling.description,
            }
        )
        self.cache_file = Path(cache_dir) / f"{config.backbone}-{cache_key}.npz"
        self.optimizers = {
            WARMUP: tf.keras.optimizers.Adam(config.head_learning_rate),
            TRIPLET: tf.keras.optimizers.Adam(config.triplet_learning_rate),
        }
        self._build_optimizers()
        self.checkpoint = tf.train.Checkpoint(trainer=self.network.trainer, **self.optimizers)
        self.history: list[dict] = []
        self.backbone_touched = False
        self._steps: dict[tuple, Callable] = {}

    def frozen_features(self, rows: Sequence[CatalogRow]) -> np.ndarray:
        """Pooled features of the untouched backbone, from the cache where it has them."""
        size, letterbox, batch_size = self.spec.input_size, self.config.letterbox, self.config.batch_size
        return cached_features(self.network.features, rows, self.cache_file, size, letterbox, batch_size)

    @functools.cached_property
    def train_features(self) -> np.ndarray:
        """Computed on first use, so a run without head-only epochs never pays for it."""
        return self.frozen_features(self.train_rows)

    def _build_optimizers(self) -> None:
        """Create optimiser slots for every variable any epoch may train, so checkpoints restore them."""
        most_blocks = max((epoch.unfrozen_blocks for epoch in self.plan), default=0)
        unfreeze_top_blocks(self.network.backbone.model, self.spec, most_blocks)
        variables = self.network.trainer.trainable_variables
        for optimizer in self.optimizers.values():
            optimizer.build(variables)

    @property
    def plan(self) -> list[EpochPlan]:
        return epoch_plan(self.config)

    # --- state on disk -------------------------------------------------------------------------

    @property
    def run_settings(self) -> dict:
        """What decides the weights: the configuration and the training data's digest."""
        return {**dataclasses.asdict(self.config), DATA: training_data_sha256(self.train_rows)}

    def _save_state(self, completed: int) -> None:
        state = {"settings": self.run_settings, "history": self.history, "backbone_touched": self.backbone_touched}
        save_epoch(self.checkpoint, self.work_dir, completed, state)

    def _restore(self) -> int:
        """The number of epochs already done by an interrupted run of this configuration."""
        state = restore_epoch(self.checkpoint, self.work_dir, self.run_settings)
        if state is None:
            return 0
        self.history = state["history"]
        self.backbone_touched = state["backbone_touched"]
        completed = int(state["completed_epochs"])
        log.info("resuming after epoch %d of %d from %s", completed, len(self.plan), self.work_dir)
        return completed

    # --- one epoch -------------------------------------------------------------------------------

    def _loss(self, phase: str, embedding: tf.Tensor, logits: tf.Tensor, targets: tf.Tensor, classes: tf.Tensor):
        """Warm-up: independent per-genre BCE (posters have several genres); triplet: on the unit sphere."""
        if phase == WARMUP:
            return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits))
        unit = tf.math.l2_normalize(embedding, axis=1)
        return triplet_semihard_loss(classes, unit, margin=self.config.margin, distance_metric="angular")

    def _step_fn(self, phase: str, model: tf.keras.Model, unfrozen_blocks: int) -> Callable:
        """A compiled training step, traced once per phase, model and set of trainable variables."""
        key = (phase, model.name, unfrozen_blocks)
        if key not in self._steps:
            self._steps[key] = self._compile_step(phase, model)
        return self._steps[key]

    def _compile_step(self, phase: str, model: tf.keras.Model) -> Callable:
        optimizer = self.optimizers[phase]
        variables = model.trainable_variables

        @tf.function
        def step(inputs, targets, classes):
            with tf.GradientTape() as tape:
                embedding, logits = model(inputs, training=True)
                loss = self._loss(phase, embedding, logits, targets, classes)
            gradients = tape.gradient(loss, variables)
            # The triplet loss never reaches the genre logits; leave those weights alone.
            optimizer.apply_gradients([(g, v) for g, v in zip(gradients, variables) if g is not None])
            return loss

        return step

    def _epoch_batches(self, epoch: EpochPlan) -> tuple[tf.data.Dataset, tf.keras.Model]:
        genre_sets = [row.genres for row in self.data.rows]
        classes = triplet_classes(genre_sets, self.config.label_scheme, epoch.index, self.config.seed)
        seed = self.config.seed * 1000 + epoch.index
        if epoch.unfrozen_blocks == 0 and not self.backbone_touched:
            slices = (self.train_features, self.data.targets, classes)
            batches = tf.data.Dataset.from_tensor_slices(slices).shuffle(len(classes), seed=seed)
            batches = batches.batch(self.config.batch_size)
            return batches.prefetch(tf.data.AUTOTUNE), self.network.head
        batches = image_dataset(
            self.data.rows,
            self.spec.input_size,
            self.config.letterbox,
            self.config.batch_size,
            targets=(self.data.targets, classes),
            shuffle_seed=seed,
        )
        return batches, self.network.trainer

    def run_epoch(self, epoch: EpochPlan) -> dict:
        unfreeze_top_blocks(self.network.backbone.model, self.spec, epoch.unfrozen_blocks)
        self.backbone_touched |= epoch.unfrozen_blocks > 0
        if epoch.phase == TRIPLET:
            learning_rate = self.config.triplet_learning_rate
        elif epoch.unfrozen_blocks:
            learning_rate = self.config.backbone_learning_rate
        else:
            learning_rate = self.config.head_learning_rate
        self.optimizers[epoch.phase].learning_rate.assign(learning_rate)
        batches, model = self._epoch_batches(epoch)
        step = self._step_fn(epoch.phase, model, epoch.unfrozen_blocks)
        losses, started = [], time.perf_counter()
        description = f"epoch {epoch.index + 1}/{len(self.plan)} {epoch.phase}"
        progress = tqdm(batches, desc=description, unit="batch", leave=False)
        for inputs, targets, classes in progress:
            losses.append(float(step(inputs, targets, classes)))
            progress.set_postfix(loss=f"{losses[-1]:.4f}")
        elapsed = time.perf_counter() - started
        record = {
            "epoch": epoch.index + 1,
            "phase": epoch.phase,
            "unfrozen_blocks": epoch.unfrozen_blocks,
            "source": "cached features" if model is self.network.head else "images",
            "loss": float(np.mean(losses)),
            "seconds": round(elapsed, 3),
            "images_per_second": round(len(self.data.rows) / elapsed, 1),
        }
        log.info(
            "epoch %(epoch)d %(phase)s (%(source)s, %(unfrozen_blocks)d blocks unfrozen): loss %(loss).4f, "
            "%(images_per_second).1f images/s",
            record,
        )
        return record

    # --- the whole run ------------------------------------------------------------------------

    def raw_embeddings(self, rows: Sequence[CatalogRow]) -> np.ndarray:
        """Outputs of the ``embedding`` layer (not normalised), from cached features while the backbone is untouched."""
        if not self.backbone_touched:
            embedding, _ = self.network.head(self.frozen_features(rows), training=False)
            return embedding.numpy()
        batches = image_dataset(rows, self.spec.input_size, self.config.letterbox, self.config.batch_size)
        return np.concatenate([self.network.trainer(images, training=False)[0].numpy() for (images,) in batches])

    def embedding_centre(self) -> np.ndarray:
        """Mean embedding of the first :data:`CENTRE_SAMPLE` training posters."""
        return self.raw_embeddings(self.train_rows[:CENTRE_SAMPLE]).mean(axis=0)

    def centre_embedding(self, centre: np.ndarray) -> None:
        """Subtract ``centre`` from every embedding by shifting the ``embedding`` layer's bias."""
        layer = self.network.trainer.get_layer("embedding")
        kernel, bias = layer.get_weights()
        layer.set_weights([kernel, bias - centre])

    def evaluate(self, centre: np.ndarray | None = None, final: bool = False) -> dict:
        """Retrieval metrics on the held-out split of the embeddings minus ``centre``.

        ``final`` refuses a collapsed model (before centring) and a crowded one (after). Only the final
        model is refused: right after a short warm-up on a randomly initialised backbone the embeddings
        are legitimately bunched together (the triplet phase spreads them).
        """
        rows, split = (self.test_rows, "test") if len(self.test_rows) >= 2 else (self.train_rows, "train")
        embeddings = self.raw_embeddings(rows)
        if final:
            check_not_collapsed(embeddings)
        if centre is not None:
            embeddings = embeddings - centre
        if final:
            check_not_crowded(embeddings)
        metrics = retrieval_metrics(embeddings, [row.genres for row in rows])
        return {"evaluated_on": f"{split} split ({len(rows)} posters)", **metrics}

    def manifest(self, metrics: dict) -> dict:
        return {
            "backbone": self.config.backbone,
            "input_size": self.spec.input_size,
            "embedding_dim": self.config.embedding_dim,
            "preprocessing": self.spec.scaling.description,
            "letterbox": self.config.letterbox,
            "weights": self.network.backbone.weights,
            "weights_requested": self.config.weights,
            "label_scheme": self.config.label_scheme,
            "genres": self.data.genres,
            "training_data_sha256": training_data_sha256(self.train_rows),
            "training_posters": len(self.train_rows),
            "training": {**dataclasses.asdict(self.config), "history": self.history},
            "metrics": metrics,
            "metrics_after_warmup": next((h["metrics"] for h in self.history if "metrics" in h), None),
            "tensorflow": tf.__version__,
        }

    def train(self, resume: bool = False, on_epoch_end: EpochCallback | None = None) -> dict:
        """Run (or finish) the plan, export the model and return its manifest.

        Raises:
            CollapseError: the trained embeddings collapsed; nothing is exported and the run's checkpoints are
                removed.
        """
        if not resume and self.work_dir.exists():
            log.info("discarding the checkpoints of an earlier run in %s (use --resume to continue it)", self.work_dir)
            shutil.rmtree(self.work_dir)
        completed = self._restore() if resume else 0
        for epoch in self.plan[completed:]:
            self.history.append(self.run_epoch(epoch))
            if epoch.index == self.config.warmup_epochs - 1 and self.config.triplet_epochs:
                self.history[-1]["metrics"] = self.evaluate(self.embedding_centre())
            self._save_state(epoch.index + 1)
            if on_epoch_end is not None:
                on_epoch_end(epoch, self.history[-1])
        centre = self.embedding_centre()
        try:
            metrics = self.evaluate(centre, final=True)
        except CollapseError:  # resuming would only export the same collapsed model
            shutil.rmtree(self.work_dir, ignore_errors=True)
            raise
        self.centre_embedding(centre)
        manifest = self.manifest(metrics)
        export_embedder(self.network.embedder, manifest, self.out_dir)
        shutil.rmtree(self.work_dir, ignore_errors=True)
        log.info("exported %s: %s", self.out_dir, json.dumps(metrics))
        return manifest


def train(
    rows: Sequence[CatalogRow],
    out_dir: Path,
    config: TrainConfig,
    cache_dir: Path,
    resume: bool = False,
    on_epoch_end: EpochCallback | None = None,
) -> dict:
    """Train on ``rows`` (minus the held-out test split) and export to ``out_dir``."""
    return Trainer(config, rows, out_dir, cache_dir).train(resume, on_epoch_end)
