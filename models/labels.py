"""Genre targets: the multi-hot vector for warm-up and the weak triplet class for metric learning.

A triplet loss needs one class per poster, but a poster has several genres.
The schemes below are the candidates; ``bench/bench_models.py`` measures them
and the training default is the one that measured best:

* ``primary`` - the first listed genre. Simple, but "Action|Comedy" and
  "Action|Horror" become positives of each other and "Comedy|Drama" a
  negative of "Drama".
* ``genre_set`` - the exact set of genres. Precise, but most sets are rare, so
  many batch members have no positive and the loss sees few pairs.
* ``sampled`` - each epoch, one genre drawn at random from the poster's set.
  Over epochs a poster is pulled towards every one of its genres, and within
  a batch the classes are as coarse as ``primary``.

Measured on the real posters (README table), ``primary`` came out best, but
by less than 0.001 MAP@R over the other two: with genres this weak, the
choice matters little, and the simplest scheme is the default.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

LABEL_SCHEMES = ("primary", "genre_set", "sampled")


def genre_vocabulary(genre_sets: Sequence[Sequence[str]]) -> list[str]:
    return sorted({genre for genres in genre_sets for genre in genres})


def multi_hot(genre_sets: Sequence[Sequence[str]], vocabulary: Sequence[str]) -> np.ndarray:
    """``[posters, genres]`` float32 targets; genres outside the vocabulary are ignored."""
    index = {genre: i for i, genre in enumerate(vocabulary)}
    targets = np.zeros((len(genre_sets), len(vocabulary)), np.float32)
    for row, genres in enumerate(genre_sets):
        for genre in genres:
            if genre in index:
                targets[row, index[genre]] = 1.0
    return targets


def _stable_id(text: str) -> int:
    """A class id that does not depend on Python's per-process string hashing."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "little") & 0x7FFFFFFF


def triplet_classes(genre_sets: Sequence[Sequence[str]], scheme: str, epoch: int = 0, seed: int = 0) -> np.ndarray:
    """One int32 class per poster under ``scheme``; ``sampled`` draws anew for every epoch."""
    if scheme == "primary":
        return np.array([_stable_id(genres[0]) for genres in genre_sets], np.int32)
    if scheme == "genre_set":
        return np.array([_stable_id("|".join(sorted(genres))) for genres in genre_sets], np.int32)
    if scheme == "sampled":
        rng = np.random.default_rng([seed, epoch])
        return np.array([_stable_id(genres[rng.integers(len(genres))]) for genres in genre_sets], np.int32)
    raise ValueError(f"unknown label scheme {scheme!r}; expected one of {LABEL_SCHEMES}")
