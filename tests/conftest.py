"""Shared fixtures: where ../shared is, and small catalogues made on the fly."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path

import posterrec_settings  # noqa: F401  (TF_USE_LEGACY_KERAS before any TensorFlow import)

import pytest
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
CATALOG_COLUMNS = ["id", "title", "year", "genres", "image"]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real posters and MovieLens data in ../shared/data, or a skip saying why."""
    data = SHARED / "data"
    if not (data / "catalog.csv").is_file():
        pytest.skip(f"real poster data not found at {data} (it sits beside the repository as ../shared/data)")
    return data


def write_poster(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (40, 60)) -> Path:
    """A small solid-colour JPEG poster."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, "JPEG", quality=90)
    return path


@pytest.fixture
def make_catalog(tmp_path: Path) -> Callable[..., Path]:
    """Write a catalogue CSV whose rows are dicts; rows without an ``image`` get a fresh poster."""

    def make(rows: Sequence[dict[str, str]], name: str = "catalog.csv", extra: Sequence[str] = ()) -> Path:
        path = tmp_path / name
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=CATALOG_COLUMNS + list(extra))
            writer.writeheader()
            for i, row in enumerate(rows):
                row = dict(row)
                if "image" not in row:
                    row["image"] = f"posters/{row.get('id') or i}.jpg"
                    write_poster(tmp_path / row["image"], ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256))
                writer.writerow(row)
        return path

    return make


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory):
    """The recsvc tests' synthetic corpus (test_recsvc_support), one per test module."""
    from test_recsvc_support import synthetic_corpus

    return synthetic_corpus(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="module")
def index_root(corpus, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``corpus`` published as the current (brute-force) version of a fresh index root."""
    from test_recsvc_support import publish

    root = tmp_path_factory.mktemp("index")
    publish(root, corpus)
    return root
