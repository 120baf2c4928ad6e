"""Triplet loss with semi-hard negative mining, with tensorflow-addons' semantics.

tensorflow-addons is end-of-life and no longer imports, but the poster model's
metric-learning phase was specified against ``tfa.losses.triplet_semihard_loss``
(FaceNet, https://arxiv.org/abs/1503.03832). This module reimplements it so
that a model trained here optimises the same objective; a test checks it
against reference values recorded from tensorflow-addons 0.23.0.

For every anchor ``a`` and every positive ``p`` (same label, ``p != a``) the
negative is the *semi-hard* one: the closest negative that is still farther
from ``a`` than ``p`` is. When no negative is farther than ``p``, the farthest
negative of ``a`` is used instead. The loss is the mean over all
anchor-positive pairs of ``max(margin + d(a, p) - d(a, n), 0)``.

Two details are kept on purpose because they change values:

* masked minima and maxima are taken by shifting by the row extreme and
  multiplying by the mask (as tensorflow-addons does), so an anchor with no
  negative at all falls back to the smallest distance in its row;
* the angular distance is ``1 - cosine`` clamped to at least ``1e-16`` and its
  diagonal is not zeroed, unlike the L2 distances.

One deliberate difference: a batch without any positive pair returns 0 where
tensorflow-addons divides 0 by 0 and returns NaN, which would poison the
weights of a model being trained.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import posterrec_settings  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)

import tensorflow as tf

DistanceFn = Callable[[tf.Tensor], tf.Tensor]
DistanceMetric = str | DistanceFn


def pairwise_l2_distance(embeddings: tf.Tensor, squared: bool = False) -> tf.Tensor:
    """Euclidean (or squared Euclidean) distance between every pair of rows.

    Uses ``|x|^2 + |y|^2 - 2 x.y``; rounding can make that slightly negative, so
    it is clamped at 0, and exact zeros stay zero after the square root (whose
    gradient at 0 is infinite) by adding and removing a tiny epsilon there.
    """
    norms = tf.reduce_sum(tf.square(embeddings), axis=1, keepdims=True)
    squared_distances = norms + tf.transpose(norms) - 2.0 * tf.matmul(embeddings, embeddings, transpose_b=True)
    squared_distances = tf.maximum(squared_distances, 0.0)
    is_zero = tf.cast(squared_distances <= 0.0, embeddings.dtype)
    if squared:
        distances = squared_distances
    else:
        distances = tf.sqrt(squared_distances + is_zero * 1e-16) * (1.0 - is_zero)
    off_diagonal = 1.0 - tf.eye(tf.shape(embeddings)[0], dtype=embeddings.dtype)
    return distances * off_diagonal


def pairwise_angular_distance(embeddings: tf.Tensor) -> tf.Tensor:
    """``1 - cosine similarity`` between every pair of rows, at least 1e-16."""
    unit = tf.math.l2_normalize(embeddings, axis=1)
    return tf.maximum(1.0 - tf.matmul(unit, unit, transpose_b=True), 1e-16)


DISTANCE_METRICS: dict[str, DistanceFn] = {
    "L2": pairwise_l2_distance,
    "squared-L2": functools.partial(pairwise_l2_distance, squared=True),
    "angular": pairwise_angular_distance,
}


def _distance_fn(distance_metric: DistanceMetric) -> DistanceFn:
    if callable(distance_metric):
        return distance_metric
    try:
        return DISTANCE_METRICS[distance_metric]
    except KeyError:
        raise ValueError(
            f"unknown distance_metric {distance_metric!r}; expected one of {sorted(DISTANCE_METRICS)} or a callable"
        ) from None


def _masked_min(data: tf.Tensor, mask: tf.Tensor, axis: int) -> tf.Tensor:
    """Minimum of ``data`` where ``mask`` is 1; the maximum of ``data`` where nothing is masked in."""
    top = tf.reduce_max(data, axis=axis, keepdims=True)
    return tf.reduce_min((data - top) * mask, axis=axis, keepdims=True) + top


def _masked_max(data: tf.Tensor, mask: tf.Tensor, axis: int) -> tf.Tensor:
    """Maximum of ``data`` where ``mask`` is 1; the minimum of ``data`` where nothing is masked in."""
    bottom = tf.reduce_min(data, axis=axis, keepdims=True)
    return tf.reduce_max((data - bottom) * mask, axis=axis, keepdims=True) + bottom


def semihard_negative_distances(distances: tf.Tensor, same_label: tf.Tensor) -> tf.Tensor:
    """``[anchor, positive]`` -> distance from the anchor to its semi-hard negative.

    Built as an ``[anchor, positive, negative]`` cube, so memory grows with the
    cube of the batch size (2 M floats at 128, fine for training batches).
    """
    dtype = distances.dtype
    is_negative = tf.logical_not(same_label)
    anchor_to_negative = distances[:, tf.newaxis, :]  # [a, 1, n]
    anchor_to_positive = distances[:, :, tf.newaxis]  # [a, p, 1]
    farther_negative = tf.logical_and(is_negative[:, tf.newaxis, :], anchor_to_negative > anchor_to_positive)
    nearest_farther = _masked_min(
        tf.broadcast_to(anchor_to_negative, tf.shape(farther_negative)), tf.cast(farther_negative, dtype), axis=2
    )[:, :, 0]
    farthest_negative = _masked_max(distances, tf.cast(is_negative, dtype), axis=1)  # [a, 1]
    has_farther = tf.reduce_any(farther_negative, axis=2)
    return tf.where(has_farther, nearest_farther, tf.broadcast_to(farthest_negative, tf.shape(distances)))


def triplet_semihard_loss(
    y_true: tf.Tensor,
    y_pred: tf.Tensor,
    margin: float = 1.0,
    distance_metric: DistanceMetric = "L2",
) -> tf.Tensor:
    """Mean semi-hard triplet loss of a batch.

    Args:
      y_true: integer class labels, shape ``[batch]`` (or ``[batch, 1]``).
      y_pred: embeddings, shape ``[batch, dim]``; float16/bfloat16 are computed in float32.
      margin: the margin of the hinge.
      distance_metric: ``"L2"``, ``"squared-L2"``, ``"angular"`` or a function from
        embeddings to a ``[batch, batch]`` distance matrix.

    Returns:
      A scalar with the dtype of ``y_pred``.
    """
    embeddings = tf.convert_to_tensor(y_pred)
    low_precision = embeddings.dtype in (tf.float16, tf.bfloat16)
    precise = tf.cast(embeddings, tf.float32) if low_precision else embeddings
    labels = tf.reshape(tf.convert_to_tensor(y_true), [-1])

    distances = _distance_fn(distance_metric)(precise)
    same_label = tf.equal(labels[:, tf.newaxis], labels[tf.newaxis, :])
    negatives = semihard_negative_distances(distances, same_label)

    is_positive_pair = tf.cast(same_label, precise.dtype) - tf.eye(tf.shape(labels)[0], dtype=precise.dtype)
    hinge = tf.maximum((margin + distances - negatives) * is_positive_pair, 0.0)
    loss = tf.math.divide_no_nan(tf.reduce_sum(hinge), tf.reduce_sum(is_positive_pair))
    return tf.cast(loss, embeddings.dtype) if low_precision else loss


@tf.keras.utils.register_keras_serializable(package="PosterRec")
class TripletSemiHardLoss(tf.keras.losses.Loss):
    """Keras ``Loss`` wrapper of :func:`triplet_semihard_loss`.

    The loss is already a batch mean, so no further reduction is applied (as in
    tensorflow-addons); sample weights are therefore not supported.
    """

    def __init__(self, margin: float = 1.0, distance_metric: str = "L2", name: str = "triplet_semihard_loss", **kwargs):
        if not isinstance(distance_metric, str):
            raise TypeError("TripletSemiHardLoss takes a metric name; call triplet_semihard_loss for a custom function")
        _distance_fn(distance_metric)  # fail at construction on a typo, not at the first batch
        kwargs.setdefault("reduction", tf.keras.losses.Reduction.NONE)
        super().__init__(name=name, **kwargs)
        self.margin = margin
        self.distance_metric = distance_metric

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        return triplet_semihard_loss(y_true, y_pred, margin=self.margin, distance_metric=self.distance_metric)

    def get_config(self) -> dict:
        return {**super().get_config(), "margin": self.margin, "distance_metric": self.distance_metric}
