"""The triplet semi-hard loss against tensorflow-addons' recorded outputs and its edge cases."""

from __future__ import annotations

import json
from pathlib import Path

import posterrec_settings  # noqa: F401

import numpy as np
import pytest
import tensorflow as tf

from models.losses import TripletSemiHardLoss, triplet_semihard_loss

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "triplet_semihard_reference.json"


def _reference_cases() -> list[dict]:
    if not REFERENCE.is_file():
        return []
    return json.loads(REFERENCE.read_text())["cases"]


CASES = _reference_cases()


@pytest.mark.skipif(not CASES, reason=f"tensorflow-addons reference values not found at {REFERENCE}")
@pytest.mark.parametrize("index", range(len(CASES)) if CASES else [0])
def test_matches_tensorflow_addons_reference(index: int) -> None:
    case = CASES[index]
    loss = triplet_semihard_loss(
        tf.constant(case["labels"]),
        tf.constant(case["embeddings"], dtype=tf.float32),
        margin=case["margin"],
        distance_metric=case["distance_metric"],
    )
    assert float(loss) == pytest.approx(case["loss"], abs=1e-5)


def test_reference_covers_every_metric() -> None:
    if not CASES:
        pytest.skip(f"tensorflow-addons reference values not found at {REFERENCE}")
    assert {case["distance_metric"] for case in CASES} == {"L2", "squared-L2", "angular"}


def _brute_force(labels: np.ndarray, distances: np.ndarray, margin: float) -> float:
    """The definition spelled out with loops, for cases where every anchor has a negative."""
    total, pairs = 0.0, 0
    for a in range(len(labels)):
        negatives = [distances[a, n] for n in range(len(labels)) if labels[n] != labels[a]]
        for p in range(len(labels)):
            if p == a or labels[p] != labels[a]:
                continue
            farther = [d for d in negatives if d > distances[a, p]]
            negative = min(farther) if farther else max(negatives)
            total += max(margin + distances[a, p] - negative, 0.0)
            pairs += 1
    return total / pairs


def test_agrees_with_loop_definition_and_singleton_classes() -> None:
    rng = np.random.default_rng(3)
    labels = np.array([0, 0, 0, 1, 1, 2, 3, 4])  # classes 2, 3, 4 have a single member
    embeddings = rng.normal(size=(8, 5)).astype(np.float32)
    diff = embeddings[:, None, :] - embeddings[None, :, :]
    distances = np.sqrt((diff**2).sum(-1))
    expected = _brute_force(labels, distances, margin=0.5)
    loss = triplet_semihard_loss(tf.constant(labels), tf.constant(embeddings), margin=0.5, distance_metric="L2")
    assert np.isfinite(float(loss))
    assert float(loss) == pytest.approx(expected, abs=1e-5)


def test_runs_inside_tf_function_with_unknown_batch_size() -> None:
    loss_fn = TripletSemiHardLoss(margin=0.1, distance_metric="angular")

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32), tf.TensorSpec([None, 4], tf.float32)])
    def compute(labels, embeddings):
        with tf.GradientTape() as tape:
            tape.watch(embeddings)
            loss = loss_fn(labels, embeddings)
        return loss, tape.gradient(loss, embeddings)

    embeddings = tf.math.l2_normalize(tf.random.stateless_normal([6, 4], seed=[1, 2]), axis=1)
    loss, gradient = compute(tf.constant([0, 0, 1, 1, 2, 3]), embeddings)
    eager = triplet_semihard_loss(tf.constant([0, 0, 1, 1, 2, 3]), embeddings, 0.1, "angular")
    assert float(loss) == pytest.approx(float(eager), abs=1e-6)
    assert np.all(np.isfinite(gradient.numpy()))
    assert float(tf.reduce_sum(tf.abs(gradient))) > 0


def test_batch_without_positive_pairs_is_zero_not_nan() -> None:
    loss = triplet_semihard_loss(tf.constant([0, 1, 2]), tf.eye(3), margin=0.1, distance_metric="angular")
    assert float(loss) == 0.0


def test_keras_loss_round_trips_its_config_and_rejects_unknown_metric() -> None:
    loss = TripletSemiHardLoss(margin=0.1, distance_metric="angular")
    clone = TripletSemiHardLoss.from_config(loss.get_config())
    assert (clone.margin, clone.distance_metric) == (0.1, "angular")
    with pytest.raises(ValueError, match="cosine"):
        TripletSemiHardLoss(distance_metric="cosine")
