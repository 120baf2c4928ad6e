"""Pooled features of a frozen backbone, cached by image content hash.

While the backbone is frozen, every epoch would push every poster through
it again just to get the same pooled vector. Computing those vectors once
and training the head on them makes head-only epochs take seconds on a CPU.

One ``.npz`` file per backbone fingerprint (backbone, weights, input size,
letterboxing, seed) maps the sha256 of each image's bytes to its vector; a
renamed or re-listed poster hits the cache, an edited image misses it.
The file also holds the features of a fixed probe image: if the backbone
at hand gives other features for it (a different random initialisation,
edited weights), the whole cache is stale and is recomputed rather than
trusted. Writes go to a temporary file renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import posterrec_settings  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from models.catalog import CatalogRow
from models.data import image_dataset
from posterrec_atomic import replacing

log = logging.getLogger(__name__)


def fingerprint(parts: Mapping[str, object]) -> str:
    return hashlib.sha256(json.dumps(dict(parts), sort_keys=True).encode()).hexdigest()[:20]


def probe_features(features_model: tf.keras.Model, input_size: int) -> np.ndarray:
    """Features of a fixed synthetic image: a fingerprint of the backbone's current weights."""
    ramp = np.linspace(0.0, 255.0, input_size, dtype=np.float32)
    rows, columns = np.meshgrid(ramp, ramp, indexing="ij")
    image = np.stack([rows, columns, rows * columns / 255.0], axis=-1)
    return features_model(image[None], training=False).numpy()[0]


def _load(path: Path, probe: np.ndarray) -> dict[str, np.ndarray]:
    if not path.is_file():
        return {}
    try:
        with np.load(path) as data:
            if not np.allclose(data["probe"], probe, rtol=1e-4, atol=1e-5):
                log.warning("feature cache %s was made by a backbone with other weights; recomputing it", path)
                return {}
            return dict(zip(data["keys"].tolist(), data["features"]))
    except (OSError, ValueError, KeyError) as err:
        log.warning("feature cache %s is unreadable (%s); recomputing it", path, err)
        return {}


def _save(path: Path, cache: Mapping[str, np.ndarray], probe: np.ndarray) -> None:
    keys = sorted(cache)
    with replacing(path) as staging:
        np.savez(staging, keys=np.array(keys), features=np.stack([cache[key] for key in keys]), probe=probe)


def cached_features(
    features_model: tf.keras.Model,
    rows: Sequence[CatalogRow],
    cache_file: Path,
    input_size: int,
    letterbox: bool,
    batch_size: int,
) -> np.ndarray:
    """``[rows, feature_dim]`` features, computing only the images the cache lacks."""
    probe = probe_features(features_model, input_size)
    cache = _load(cache_file, probe)
    missing = list({row.image_sha256: row for row in rows if row.image_sha256 not in cache}.values())
    if missing:
        started = time.perf_counter()
        batches = image_dataset(missing, input_size, letterbox, batch_size)
        computed = []
        forward = tf.function(lambda images: features_model(images, training=False))
        for (images,) in tqdm(batches, desc="backbone features", unit="batch", leave=False):
            computed.append(forward(images).numpy())
        for row, vector in zip(missing, np.concatenate(computed)):
            cache[row.image_sha256] = vector
        elapsed = time.perf_counter() - started
        rate = len(missing) / elapsed
        log.info("backbone features: %d images in %.1f s (%.1f images/s)", len(missing), elapsed, rate)
        _save(cache_file, cache, probe)
    return np.stack([cache[row.image_sha256] for row in rows]).astype(np.float32)
