"""Every title's id and display name in two compact arrays, for responses that show tens of titles.

A ``/similar`` or ``/recommendations`` response names ten titles picked at
random from the whole catalogue. Read from Python objects (a list slot, then
an item, then its strings, each a cache and TLB miss on a heap of a million
items), ten ids cost ~4 µs and ten ids with names ~10 µs on the 1M bench index;
gathered from two fixed-width byte arrays (NumPy backs them with huge pages),
ten of each cost ~2 µs (README, "Service benchmarks").
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np


def utf8_column(texts: Sequence[str]) -> np.ndarray:
    """``texts`` as one fixed-width byte array of their UTF-8: as wide as the longest, so a catalogue of short
    titles stays small (NumPy's ``S`` type drops trailing NUL bytes, which no title or id ends with)."""
    return np.array([text.encode() for text in texts], dtype=np.bytes_) if texts else np.array([], dtype="S1")


@dataclasses.dataclass(frozen=True)
class TitleLabels:
    """Per title ordinal, its id and the title of its original poster (empty for a title indexed only through variants)."""

    ids: np.ndarray
    names: np.ndarray

    @classmethod
    def of(cls, ids: Sequence[str], names: Sequence[str]) -> TitleLabels:
        if len(ids) != len(names):
            raise ValueError(f"{len(ids)} title ids but {len(names)} names")
        return cls(utf8_column(ids), utf8_column(names))

    def take(self, titles: Sequence[int]) -> tuple[list[str], list[str]]:
        """The ids and names of ``titles`` (ordinals), in their order."""
        return _decoded(self.ids[titles]), _decoded(self.names[titles])


def _decoded(column: np.ndarray) -> list[str]:
    return [text.decode() for text in column.tolist()]
