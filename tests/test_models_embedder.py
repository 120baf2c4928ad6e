"""The exported-model contract: manifest checks, clear errors, atomic export, preprocessing."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import posterrec_settings

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from models.backbones import BACKBONES, backbone_spec, build_backbone, unfreeze_top_blocks
from models.embedder import (
    LITERT_FILE,
    LITERT_SHA256,
    MANIFEST_FILE,
    MAX_EMBEDDING_WORKERS,
    LiteRtForward,
    ModelMismatchError,
    NotAnExportedModelError,
    export_embedder,
    load_embedder,
    map_in_order,
)
from models.network import build_network
from models.preprocessing import EFFICIENTNET_LITE_SCALING, NASNET_SCALING, resize_image_to_square, resize_to_square

REPO = Path(__file__).resolve().parents[1]
MANIFEST = {"backbone": "tiny", "input_size": 64, "embedding_dim": 128, "letterbox": True, "label_scheme": "sampled"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny model exported with a hand-written manifest: enough for the contract."""
    network = build_network(build_backbone("tiny", "none"), num_genres=4, embedding_dim=128)
    return export_embedder(network.embedder, MANIFEST, tmp_path_factory.mktemp("export") / "model")


def test_mismatch_names_key_expected_and_found(exported: Path) -> None:
    with pytest.raises(ModelMismatchError, match=r"'input_size' is 64, expected 224"):
        load_embedder(exported, expect={"backbone": "tiny", "input_size": 224})
    with pytest.raises(ModelMismatchError, match=r"no key 'colour_space'"):
        load_embedder(exported, expect={"colour_space": "srgb"})


def test_refuses_directories_that_are_not_exported_models(exported: Path, tmp_path: Path) -> None:
    with pytest.raises(NotAnExportedModelError, match="does not exist"):
        load_embedder(tmp_path / "nowhere")
    with pytest.raises(NotAnExportedModelError, match="not an exported PosterRec model"):
        load_embedder(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.keras").write_bytes((exported / "model.keras").read_bytes())
    (broken / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(NotAnExportedModelError, match="not valid JSON"):
        load_embedder(broken)
    (broken / MANIFEST_FILE).write_text(json.dumps({"format": "something-else/9"}))
    with pytest.raises(NotAnExportedModelError, match="something-else/9"):
        load_embedder(broken)
    (broken / MANIFEST_FILE).write_text(json.dumps({"format": "posterrec-embedder/1", "input_size": 64}))
    with pytest.raises(NotAnExportedModelError, match="lacks embedding_dim, letterbox: export the model again"):
        load_embedder(broken)


def test_undecodable_image_is_named(exported: Path, tmp_path: Path) -> None:
    embedder = load_embedder(exported)
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a poster")
    good = Image.new("RGB", (40, 60), (200, 10, 10))
    with pytest.raises(ValueError, match=r"notes\.jpg is not an image"):
        embedder.embed_images([good, bad])
    with pytest.raises(ValueError, match=r"missing\.png cannot be read"):
        embedder.embed_images([tmp_path / "missing.png"])
    assert embedder.embed_images([]).shape == (0, 128)
    batched = load_embedder(exported, batch_size=2)  # a later batch, embedded on a worker thread
    with pytest.raises(ValueError, match=r"image #4 \(4 bytes\) is not an image"):
        batched.embed_images([good] * 4 + [b"junk", good])


def test_embeds_in_batches_the_same_as_one_by_one(exported: Path) -> None:
    embedder = load_embedder(exported, batch_size=3)
    images = [Image.new("RGB", (40, 60), (i * 30, 255 - i * 20, 90)) for i in range(7)]
    together = embedder.embed_images(images)
    alone = np.concatenate([embedder.embed_images([image]) for image in images])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def pixels(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 64, 64, 3), dtype=np.uint8)


def test_an_export_embeds_with_litert_as_tensorflow_does(exported: Path) -> None:
    embedder = load_embedder(exported, batch_size=3)
    assert (exported / LITERT_FILE).is_file() and isinstance(embedder.forward, LiteRtForward)
    batch = pixels(5)
    expected = embedder.model(batch.astype(np.float32), training=False).numpy()
    np.testing.assert_allclose(embedder.forward(batch), expected, atol=1e-4)
    np.testing.assert_allclose(embedder.forward(batch[:1]), expected[:1], atol=1e-4)  # another batch size


def test_an_export_without_its_litert_model_embeds_with_tensorflow(exported: Path, tmp_path: Path) -> None:
    older = shutil.copytree(exported, tmp_path / "model")
    (older / LITERT_FILE).unlink()
    with_litert, without = load_embedder(exported), load_embedder(older)
    assert not isinstance(without.forward, LiteRtForward)
    images = [Image.new("RGB", (40, 60), (i * 30, 255 - i * 20, 90)) for i in range(4)]
    np.testing.assert_allclose(without.embed_images(images), with_litert.embed_images(images), atol=1e-4)


def test_embedding_with_litert_loads_neither_tensorflow_nor_the_keras_model(exported: Path) -> None:
    """The service's uploads: a fresh process loads the export and embeds an image without TensorFlow."""
    script = (
        "import sys; from PIL import Image; from models.embedder import load_embedder; "
        f"embedder = load_embedder({str(exported)!r}); "
        "vector = embedder.embed_images([Image.new('RGB', (40, 60), 'red')])[0]; "
        "print(vector.shape, 'tensorflow' in sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.stdout.split("\n")[0] == "(128,) False", run.stderr[-2000:]


def test_a_litert_file_that_is_damaged_or_no_model_is_refused_naming_it(exported: Path, tmp_path: Path) -> None:
    broken = shutil.copytree(exported, tmp_path / "model")
    content = bytearray((exported / LITERT_FILE).read_bytes())
    content[len(content) // 2] ^= 0xFF  # still a flatbuffer that parses: only the manifest's sha256 tells
    (broken / LITERT_FILE).write_bytes(bytes(content))
    with pytest.raises(NotAnExportedModelError, match=f"{LITERT_FILE} is not the file its manifest records"):
        load_embedder(broken)
    manifest = json.loads((broken / MANIFEST_FILE).read_text())
    del manifest[LITERT_SHA256]  # an export that records no sha256
    (broken / MANIFEST_FILE).write_text(json.dumps(manifest))
    (broken / LITERT_FILE).write_bytes(bytes(content[:1000]))
    with pytest.raises(NotAnExportedModelError, match=f"{LITERT_FILE} is not a LiteRT model"):
        load_embedder(broken)


def test_calls_at_once_each_borrow_an_interpreter_and_give_it_back(exported: Path) -> None:
    forward = load_embedder(exported).forward
    batches = [pixels(size, seed) for seed, size in enumerate([1, 4, 2, 4, 1, 3] * 4)]
    expected = [forward(batch) for batch in batches]
    assert forward.idle.qsize() == 1, "calls one after another reuse one interpreter"
    with ThreadPoolExecutor(4) as pool:
        for got, want in zip(pool.map(forward, batches), expected):
            np.testing.assert_array_equal(got, want)
    assert 1 <= forward.idle.qsize() <= 4


def test_many_batches_run_a_batch_per_worker_as_one_batch_runs_on_all(exported: Path, monkeypatch) -> None:
    for cores, workers, threads in [(2, 2, 1), (4, 4, 1), (6, 3, 2), (16, 4, 4)]:  # machines larger than this
        monkeypatch.setattr(posterrec_settings, "usable_cores", lambda cores=cores: cores)
        larger = load_embedder(exported)
        assert (larger.workers, larger.worker_forward.threads, larger.forward.threads) == (workers, threads, cores)
    assert MAX_EMBEDDING_WORKERS == 4
    monkeypatch.undo()
    embedder = load_embedder(exported, batch_size=4)
    images = [Image.new("RGB", (40 + i, 60), (i * 20, 255 - i * 9, 90)) for i in range(13)]
    whole = embedder.forward(embedder.prepare_batch(images))
    np.testing.assert_allclose(embedder.embed_images(images), whole, atol=1e-5)


def test_map_in_order_keeps_the_order_reads_few_ahead_and_stops_at_an_error() -> None:
    taken: list[int] = []

    def items() -> Iterator[int]:
        for item in range(100):
            taken.append(item)
            yield item

    def square_slowly(item: int) -> int:
        time.sleep(0.01 * (3 - item % 3))  # later items finish first
        return item * item if item != 6 else 1 // 0

    results = map_in_order(square_slowly, items(), workers=2)
    assert [next(results) for _ in range(4)] == [0, 1, 4, 9]
    assert len(taken) <= 4 + 3, "at most workers + 1 items ahead of the results"
    with pytest.raises(ZeroDivisionError):
        list(results)
    assert len(taken) <= 7 + 3

    taken.clear()
    results = map_in_order(square_slowly, items(), workers=2)
    assert next(results) == 0
    results.close()  # a consumer that stops: nothing more is taken
    assert len(taken) <= 1 + 3


def test_map_in_order_yields_the_items_before_an_error_of_the_items_themselves() -> None:
    def items() -> Iterator[int]:
        yield from range(3)
        raise OSError("the fourth item cannot be read")

    results = map_in_order(lambda item: item * 10, items(), workers=2)
    assert [next(results) for _ in range(3)] == [0, 10, 20]
    with pytest.raises(OSError, match="fourth item"):
        next(results)


def test_failed_export_keeps_the_previous_model(exported: Path) -> None:
    before = (exported / MANIFEST_FILE).read_bytes()
    network = build_network(build_backbone("tiny", "none"), num_genres=4, embedding_dim=128)
    with pytest.raises(TypeError):
        export_embedder(network.embedder, {**MANIFEST, "metrics": object()}, exported)
    assert (exported / MANIFEST_FILE).read_bytes() == before
    assert [p.name for p in exported.parent.iterdir()] == [exported.name], "no staging directory is left behind"


def test_preprocessing_layers_scale_pixels_as_each_backbone_was_trained() -> None:
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype(np.float32)
    expected = tf.keras.applications.nasnet.preprocess_input(pixels.copy())
    np.testing.assert_allclose(NASNET_SCALING.layer()(pixels).numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(EFFICIENTNET_LITE_SCALING.layer()(pixels).numpy(), (pixels - 127) / 128, atol=1e-6)
    for name in ("nasnet_mobile", "nasnet_large", "tiny"):
        assert backbone_spec(name).scaling == NASNET_SCALING
    assert backbone_spec("efficientnet_lite0").scaling == EFFICIENTNET_LITE_SCALING


def test_letterbox_pads_a_tall_poster_and_squash_fills_the_square() -> None:
    poster = np.full((90, 60, 3), 255, np.uint8)
    boxed = resize_to_square(poster, 30, letterbox=True).numpy()
    squashed = resize_to_square(poster, 30, letterbox=False).numpy()
    assert boxed.shape == squashed.shape == (30, 30, 3)
    assert boxed[:, :4].max() == 0 and boxed[:, -4:].max() == 0 and boxed[:, 15].min() > 250
    assert squashed.min() > 250


@pytest.mark.parametrize("letterbox", [True, False])
def test_the_embedding_time_resize_gives_the_pixels_of_the_training_resize(letterbox: bool) -> None:
    """Shrunk, enlarged and odd-sized posters, where the letterbox's float32 rounding decides a row or a column."""
    rng = np.random.default_rng(3)
    for height, width in [(268, 182), (182, 268), (600, 400), (224, 224), (1000, 37), (99, 301), (7, 5)]:
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        expected = resize_to_square(image, 224, letterbox).numpy()
        resized = resize_image_to_square(Image.fromarray(image), 224, letterbox)
        assert resized.dtype == np.uint8
        np.testing.assert_allclose(resized, expected, rtol=0, atol=1.001, err_msg=f"{height}x{width}")


def test_an_image_far_longer_than_wide_keeps_a_line_of_pixels() -> None:
    for height, width in [(2, 1000), (1000, 2), (1, 448)]:
        resized = resize_image_to_square(Image.new("RGB", (width, height), "white"), 224, letterbox=True)
        assert resized.shape == (224, 224, 3) and 0 < np.count_nonzero(resized.max(axis=2)) <= 224, (height, width)


def test_unfreezing_tiny_backbone_keeps_batch_norm_frozen() -> None:
    backbone = build_backbone("tiny", "none").model
    spec = backbone_spec("tiny")
    assert unfreeze_top_blocks(backbone, spec, 1) == 1  # block2_conv; its BatchNormalization stays frozen
    assert [layer.name for layer in backbone.layers if layer.trainable and layer.weights] == ["block2_conv"]
    assert unfreeze_top_blocks(backbone, spec, 0) == 0 and not backbone.trainable_weights
    with pytest.raises(ValueError, match="has 2 unfreezable blocks"):
        unfreeze_top_blocks(backbone, spec, 3)


def test_unknown_backbone_and_missing_weights_file_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown backbone 'resnet'"):
        build_backbone("resnet", "none")
    with pytest.raises(FileNotFoundError, match="weights file .*absent.h5 does not exist"):
        build_backbone("tiny", str(tmp_path / "absent.h5"))


def test_weights_file_is_loaded_and_fingerprinted(tmp_path: Path) -> None:
    source = build_backbone("tiny", "none", seed=5).model
    path = tmp_path / "tiny.weights.h5"
    source.save_weights(path)
    loaded = build_backbone("tiny", str(path), seed=9)
    assert loaded.weights.startswith("file:")
    for mine, theirs in zip(loaded.model.get_weights(), source.get_weights()):
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.slow
def test_nasnet_mobile_imagenet_loads_or_falls_back_with_a_message(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="models.backbones"):
        loaded = build_backbone("nasnet_mobile", "imagenet")
    assert loaded.model.output_shape == (None, 1056)
    if loaded.weights == "none":  # offline: Keras could not download the weights
        assert "ImageNet weights for nasnet_mobile could not be loaded" in caplog.text
        assert "efficientnet_lite0" in caplog.text, "the log names the pretrained backbone that loads offline"
    else:
        assert loaded.weights == "imagenet"
    assert unfreeze_top_blocks(loaded.model, loaded.spec, 2) > 0
    assert not any(
        layer.trainable for layer in loaded.model.layers if isinstance(layer, tf.keras.layers.BatchNormalization)
    )


def test_the_backbone_setting_takes_exactly_the_backbones_built() -> None:
    assert set(posterrec_settings.BACKBONE_NAMES) == set(BACKBONES)
