"""The poster network: backbone, a linear ``embedding`` layer and a genre ``logit`` layer.

Three Keras models share the same layers (and so the same weights):

* ``trainer``: image -> (embedding, logits), for epochs that update the backbone;
* ``head``: pooled backbone features -> (embedding, logits), for epochs with a
  frozen backbone that read cached features instead of images (seconds per
  epoch on a CPU instead of minutes);
* ``embedder``: image -> L2-normalised embedding, the exported model.

The genre logits sit on top of the embedding so that the warm-up already
shapes the embedding space by genre before the triplet phase refines it.
"""

from __future__ import annotations

import dataclasses

import posterrec_settings  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)

import tensorflow as tf

from models.backbones import LoadedBackbone


@dataclasses.dataclass(frozen=True)
class PosterNetwork:
    backbone: LoadedBackbone
    features: tf.keras.Model
    trainer: tf.keras.Model
    head: tf.keras.Model
    embedder: tf.keras.Model

    @property
    def input_size(self) -> int:
        return self.backbone.spec.input_size


def build_network(backbone: LoadedBackbone, num_genres: int, embedding_dim: int) -> PosterNetwork:
    size = backbone.spec.input_size
    image = tf.keras.Input((size, size, 3), name="image")
    pooled = backbone.model(backbone.spec.scaling.layer()(image))
    features = tf.keras.Model(image, pooled, name="features")

    embedding_layer = tf.keras.layers.Dense(embedding_dim, name="embedding")
    logit_layer = tf.keras.layers.Dense(num_genres, name="logit")
    normalise = tf.keras.layers.UnitNormalization(name="l2_normalize")

    embedding = embedding_layer(pooled)
    trainer = tf.keras.Model(image, [embedding, logit_layer(embedding)], name="trainer")
    embedder = tf.keras.Model(image, normalise(embedding), name="embedder")

    cached = tf.keras.Input(pooled.shape[1:], name="features")
    cached_embedding = embedding_layer(cached)
    head = tf.keras.Model(cached, [cached_embedding, logit_layer(cached_embedding)], name="head")
    return PosterNetwork(backbone, features, trainer, head, embedder)
