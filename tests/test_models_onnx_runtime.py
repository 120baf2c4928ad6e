"""The Embedder's ONNX Runtime forward pass: same embeddings as TensorFlow, refused when it disagrees."""

from __future__ import annotations

import logging
from pathlib import Path

import posterrec_settings  # noqa: F401

import numpy as np
import pytest
from PIL import Image

from models.backbones import build_backbone
from models.embedder import export_embedder, load_embedder
from models.network import build_network
from models.onnx_runtime import TOLERANCE, matching_onnx_forward, onnx_forward

MANIFEST = {"backbone": "tiny", "input_size": 64, "embedding_dim": 128, "letterbox": True}


def posters(count: int) -> list[Image.Image]:
    rng = np.random.default_rng(3)
    return [Image.fromarray(rng.integers(0, 256, (90, 60, 3), dtype=np.uint8)) for _ in range(count)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    network = build_network(build_backbone("tiny", "none", seed=4), num_genres=3, embedding_dim=128)
    return export_embedder(network.embedder, MANIFEST, tmp_path_factory.mktemp("onnx") / "model")


def test_default_embedder_runs_onnx_runtime_with_tensorflows_embeddings(exported: Path) -> None:
    onnx = load_embedder(exported, batch_size=4)
    tensorflow = load_embedder(exported, batch_size=4, runtime="tensorflow")
    assert (onnx.runtime, tensorflow.runtime) == ("onnxruntime", "tensorflow")
    images = posters(6)
    ours, reference = onnx.embed_images(images), tensorflow.embed_images(images)
    assert ours.shape == (6, 128)
    np.testing.assert_allclose(ours, reference, atol=TOLERANCE)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_disagreeing_onnx_model_is_refused_and_tensorflow_kept(
    exported: Path, caplog: pytest.LogCaptureFixture
) -> None:
    embedder = load_embedder(exported, runtime="tensorflow")
    shifted = lambda images: embedder._forward(images) + 10 * TOLERANCE  # noqa: E731
    with caplog.at_level(logging.WARNING, logger="models.onnx_runtime"):
        assert matching_onnx_forward(embedder.model, 64, shifted) is None
    assert "differ from TensorFlow's by 1.00e-03" in caplog.text
    assert matching_onnx_forward(embedder.model, 64, embedder._forward) is not None


def test_onnx_forward_takes_any_batch_size(exported: Path) -> None:
    embedder = load_embedder(exported, runtime="tensorflow")
    forward = onnx_forward(embedder.model, 64, threads=1)
    pixels = np.random.default_rng(0).uniform(0, 255, (5, 64, 64, 3)).astype(np.float32)
    for size in (1, 5):
        np.testing.assert_allclose(forward(pixels[:size]), embedder._forward(pixels[:size]), atol=TOLERANCE)


def test_unknown_runtime_is_named(exported: Path) -> None:
    with pytest.raises(ValueError, match="runtime 'openvino' is not one of onnxruntime, tensorflow"):
        load_embedder(exported, runtime="openvino")
