"""From catalogue rows to batches: the fixed train/test split and the ``tf.data`` image pipeline."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import posterrec_settings  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)

import numpy as np
import tensorflow as tf

from models.catalog import CatalogRow
from models.preprocessing import decode_image_file, resize_to_square

TEST_FRACTION = 0.2


def is_test_id(poster_id: str, test_fraction: float = TEST_FRACTION) -> bool:
    """Whether a poster belongs to the test split, decided by a hash of its id alone.

    Hashing the id (rather than shuffling rows) keeps a poster on the same
    side when the catalogue grows or is reordered, so test posters never leak
    into a later training run.
    """
    bucket = int.from_bytes(hashlib.sha256(poster_id.encode()).digest()[:4], "big")
    return bucket < test_fraction * 2**32


def split_by_id(rows: Sequence[CatalogRow], test_fraction: float = TEST_FRACTION) -> tuple[list, list]:
    """``(train, test)`` rows by :func:`is_test_id`."""
    train = [row for row in rows if not is_test_id(row.id, test_fraction)]
    test = [row for row in rows if is_test_id(row.id, test_fraction)]
    return train, test


def training_data_sha256(rows: Sequence[CatalogRow]) -> str:
    """Fingerprint of what a model was trained on: ids, genres and image contents."""
    digest = hashlib.sha256()
    for row in sorted(rows, key=lambda row: row.id):
        digest.update(f"{row.id}\t{'|'.join(row.genres)}\t{row.image_sha256}\n".encode())
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def image_dataset(
    rows: Sequence[CatalogRow],
    input_size: int,
    letterbox: bool,
    batch_size: int,
    targets: Sequence[np.ndarray] = (),
    shuffle_seed: int | None = None,
) -> tf.data.Dataset:
    """Batches of ``(images, *targets)``: decoding and resizing in parallel, prefetched.

    ``images`` are float32 0-255 squares; the model scales them itself.
    """
    paths = [os.fspath(row.image) for row in rows]
    dataset = tf.data.Dataset.from_tensor_slices((paths, *targets))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(paths), seed=shuffle_seed, reshuffle_each_iteration=False)

    def load(path: tf.Tensor, *rest: tf.Tensor) -> tuple:
        return (resize_to_square(decode_image_file(path), input_size, letterbox), *rest)

    return dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size).prefetch(tf.data.AUTOTUNE)
