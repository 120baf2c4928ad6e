"""``POST /v1/search`` with an uploaded image, embedded by the real (tiny) model that built the index."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image
from test_recsvc_support import settings_for
from werkzeug.test import TestResponse

from indexer.publish import publish_index
from indexer.published import IndexItem
from models.embedder import LITERT_FILE
from recsvc import create_app


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny model trained for a few quick epochs on a small demo corpus: (model dir, catalogue)."""
    from localize.demo import write_demo_corpus
    from models.catalog import read_catalog
    from models.training import TrainConfig, train

    demo = tmp_path_factory.mktemp("demo")
    catalog = write_demo_corpus(demo, count=24, seed=5)
    report = read_catalog(catalog)
    assert report.ok, report.errors
    out = tmp_path_factory.mktemp("models") / "tiny"
    config = TrainConfig(
        backbone="tiny",
        weights="none",
        batch_size=16,
        warmup_epochs=1,
        head_only_epochs=1,
        max_unfrozen_blocks=0,
        triplet_epochs=1,
    )
    train(report.rows, out, config, tmp_path_factory.mktemp("cache"))
    return out, catalog


def publish_with_model(root: Path, model_dir: Path, catalog: Path) -> list[IndexItem]:
    """Embed the demo posters with the model and publish them, recording the model as ``indexer build`` does."""
    from models.catalog import read_catalog
    from models.embedder import load_embedder

    embedder = load_embedder(model_dir)
    rows = read_catalog(catalog).rows
    items = [IndexItem(row.id, row.id, row.title, str(row.image)) for row in rows]
    embeddings = embedder.embed_images([item.image_path for item in items])
    publish_index(
        root,
        items,
        embeddings,
        {"model_dir": str(model_dir), "model_manifest_sha256": embedder.manifest_sha256},
        exact_search_max_items=10_000,
        recall_floor=0.9,
        keep_versions=3,
    )
    return items


@pytest.mark.slow
def test_uploaded_poster_finds_itself_first(tiny_model, tmp_path: Path) -> None:
    model_dir, catalog = tiny_model
    items = publish_with_model(tmp_path / "index", model_dir, catalog)
    client = create_app(settings_for(tmp_path / "index"), watch=False).test_client()
    for item in items[:3]:
        as_jpeg = io.BytesIO()
        Image.open(item.image_path).convert("RGB").save(
            as_jpeg, "JPEG", quality=95
        )  # a re-encoded upload, not the file
        as_jpeg.seek(0)
        response = client.post("/v1/search", data={"image": (as_jpeg, "upload.jpg"), "k": "4"})
        assert response.status_code == 200, response.data[:300]
        results = response.json["results"]
        assert len(results) == 4 and results[0]["id"] == item.title_id and results[0]["score"] > 0.95
    for mode, image_format in (
        ("CMYK", "JPEG"),
        ("I;16", "PNG"),
        ("P", "GIF"),
        ("LA", "PNG"),
    ):  # decoded to RGB for the model
        other = io.BytesIO()
        Image.open(items[0].image_path).convert("L" if mode in ("I;16", "LA") else "RGB").convert(mode).save(
            other, image_format
        )
        other.seek(0)
        response = client.post("/v1/search", data={"image": (other, f"upload.{image_format.lower()}"), "k": "4"})
        assert response.status_code == 200 and len(response.json["results"]) == 4, (mode, response.data[:300])
    sliver = io.BytesIO()
    Image.open(items[0].image_path).convert("RGB").resize((1000, 2)).save(sliver, "PNG")
    sliver.seek(0)
    long_and_thin = client.post("/v1/search", data={"image": (sliver, "sliver.png"), "k": "4"})
    assert long_and_thin.status_code == 200 and len(long_and_thin.json["results"]) == 4, long_and_thin.data[:300]
    not_an_image = client.post("/v1/search", data={"image": (io.BytesIO(b"GIF89a truncated"), "x.gif")})
    assert not_an_image.status_code == 415 and set(not_an_image.json) == {"error", "detail"}
    bad_k = client.post("/v1/search", data={"image": (io.BytesIO(b"irrelevant"), "x.jpg"), "k": "0"})
    assert bad_k.status_code == 400 and "k must" in bad_k.json["detail"]


def upload_after_spoiling_the_model(tiny_model, tmp_path: Path, spoil) -> TestResponse:
    """An upload to an index built with a copy of the tiny model, after ``spoil(copy)`` changed the copy."""
    model_dir, catalog = tiny_model
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    items = publish_with_model(tmp_path / "index", copy, catalog)
    spoil(copy)
    client = create_app(settings_for(tmp_path / "index"), watch=False).test_client()
    with open(items[0].image_path, "rb") as handle:
        return client.post("/v1/search", data={"image": (handle, "p.png")})


def retrain(model_dir: Path) -> None:
    manifest = json.loads((model_dir / "manifest.json").read_text())
    (model_dir / "manifest.json").write_text(json.dumps({**manifest, "retrained": True}))


def flip_a_byte_of_the_model_file(model_dir: Path) -> None:
    """What a torn copy or a bad disk leaves: the manifest intact, the LiteRT model that embeds still parsing."""
    model_file = model_dir / LITERT_FILE
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_file.write_bytes(bytes(data))


def truncate_the_model_file(model_dir: Path) -> None:
    """A partial copy: the first kilobyte of the LiteRT model."""
    model_file = model_dir / LITERT_FILE
    model_file.write_bytes(model_file.read_bytes()[:1024])


@pytest.mark.slow
@pytest.mark.parametrize(
    "spoil",
    [retrain, shutil.rmtree, flip_a_byte_of_the_model_file, truncate_the_model_file],
    ids=["model changed since the build", "model directory gone", "model file damaged", "model file truncated"],
)
def test_upload_is_503_when_the_model_that_built_the_index_is_not_there(tiny_model, tmp_path: Path, spoil) -> None:
    response = upload_after_spoiling_the_model(tiny_model, tmp_path, spoil)
    assert response.status_code == 503 and response.json["error"] == "model_unavailable"
