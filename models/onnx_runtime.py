"""The exported model's forward pass run by ONNX Runtime.

tf2onnx converts the loaded Keras model in memory; ONNX Runtime runs it. On
EfficientNet-Lite0 this embeds about 1.6x as many images per second as
TensorFlow's own forward pass on 2 CPU cores, with embeddings within 1e-6 of
TensorFlow's (bench/bench_embed.py). :func:`matching_onnx_forward` checks the
agreement on every load and returns None (TensorFlow stays in use, and the
log says why) when the conversion fails or the outputs differ by more than
:data:`TOLERANCE`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import posterrec_settings  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)

import numpy as np
import tensorflow as tf

log = logging.getLogger(__name__)

Forward = Callable[[np.ndarray], np.ndarray]
"""``(N, size, size, 3)`` float32 0-255 pixels -> ``(N, dim)`` float32 embeddings."""
TOLERANCE = 1e-4
"""Largest absolute difference from TensorFlow's embeddings that ONNX Runtime may show."""
OPSET = 17
PROBE_IMAGES = 4


def onnx_forward(model: tf.keras.Model, input_size: int, threads: int | None = None) -> Forward:
    """``model`` converted by tf2onnx and run by ONNX Runtime on ``threads`` intra-op threads (None: its default).

    Raises ImportError when tf2onnx or onnxruntime is not installed, and tf2onnx's own errors when the
    model holds an operation it cannot convert.
    """
    import onnxruntime
    import tf2onnx

    signature = [tf.TensorSpec([None, input_size, input_size, 3], tf.float32)]
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=OPSET)
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda images: session.run(None, {name: np.asarray(images, np.float32)})[0]


def matching_onnx_forward(model: tf.keras.Model, input_size: int, reference: Forward) -> Forward | None:
    """ONNX Runtime's forward pass if it agrees with ``reference`` to :data:`TOLERANCE` on random images, else None."""
    try:
        forward = onnx_forward(model, input_size)
    except Exception as err:  # any failure to convert or to open the session leaves TensorFlow in use
        log.warning("ONNX Runtime unavailable for model %s, embedding with TensorFlow: %s", model.name, err)
        return None
    probe = np.random.default_rng(0).uniform(0, 255, (PROBE_IMAGES, input_size, input_size, 3)).astype(np.float32)
    difference = float(np.abs(forward(probe) - reference(probe)).max())
    if difference > TOLERANCE:
        log.warning(
            "ONNX Runtime's embeddings differ from TensorFlow's by %.2e (> %.0e) for model %s; embedding with TensorFlow",
            difference,
            TOLERANCE,
            model.name,
        )
        return None
    return forward
