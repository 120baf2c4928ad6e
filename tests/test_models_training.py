"""Training on the tiny backbone: train -> export -> load -> embed, resume, and the feature cache."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path

import posterrec_settings  # noqa: F401

import numpy as np
import pytest
from PIL import Image

from models.__main__ import main
from models.backbones import build_backbone
from models.catalog import read_catalog
from models.embedder import MANIFEST_FILE, load_embedder
from models.evaluation import MAX_RANDOM_COSINE, MIN_SPREAD, CollapseError
from models.feature_cache import cached_features
from models.network import build_network
from models.training import TrainConfig, Trainer, epoch_plan, train

TINY = dict(
    backbone="tiny",
    weights="none",
    batch_size=16,
    warmup_epochs=2,
    head_only_epochs=1,
    max_unfrozen_blocks=1,
    triplet_epochs=1,
)


@pytest.fixture(scope="module")
def demo_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic corpus from ``localize.demo``: real catalogue format, learnable genres."""
    from localize.demo import write_demo_corpus

    out = tmp_path_factory.mktemp("demo")
    write_demo_corpus(out, count=48, seed=3)
    return out / "catalog.csv"


@pytest.fixture(scope="module")
def demo_rows(demo_catalog: Path) -> list:
    report = read_catalog(demo_catalog)
    assert report.ok, report.errors
    return report.rows


@pytest.mark.slow
def test_cli_round_trip_train_export_load_embed(demo_catalog: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "model"
    argv = [
        "train",
        "--catalog",
        str(demo_catalog),
        "--out",
        str(out),
        "--backbone",
        "tiny",
        "--weights",
        "none",
        "--warmup-epochs",
        "2",
        "--head-epochs",
        "1",
        "--unfreeze-blocks",
        "1",
        "--triplet-epochs",
        "1",
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["weights"] == "none" and printed["spread"] >= MIN_SPREAD
    assert printed["cosine_random_median"] <= MAX_RANDOM_COSINE
    assert not out.with_name("model.train").exists(), "checkpoints of a finished run are removed"

    embedder = load_embedder(out, expect={"backbone": "tiny", "input_size": 64, "letterbox": True})
    manifest_bytes = (out / MANIFEST_FILE).read_bytes()
    assert embedder.manifest_sha256 == hashlib.sha256(manifest_bytes).hexdigest()
    for key in ("backbone", "input_size", "preprocessing", "label_scheme", "training_data_sha256", "metrics"):
        assert key in embedder.manifest
    assert [h["phase"] for h in embedder.manifest["training"]["history"]] == ["warmup", "warmup", "triplet"]
    assert [h["source"] for h in embedder.manifest["training"]["history"]] == ["cached features", "images", "images"]
    assert embedder.manifest["metrics_after_warmup"]["spread"] > 0

    rows = read_catalog(demo_catalog).rows[:5]
    image = rows[0].image
    vectors = embedder.embed_images([row.image for row in rows] + [image.read_bytes(), Image.open(image), str(image)])
    assert vectors.shape == (8, embedder.dim) == (8, 128) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors[5:], np.repeat(vectors[:1], 3, axis=0), atol=1e-5)
    catalogue = embedder.embed_images([row.image for row in read_catalog(demo_catalog).rows])
    assert np.median((catalogue @ catalogue.T)[~np.eye(48, dtype=bool)]) < 0.5, "the exported space is centred"
    assert np.abs(vectors[0] - vectors[1]).max() > 1e-3, "different posters get different embeddings"

    assert main(["evaluate", "--model", str(out), "--catalog", str(demo_catalog), "--split", "all"]) == 0
    evaluated = capsys.readouterr()
    assert json.loads(evaluated.out)["posters"] == 48 and "warning" not in evaluated.err
    few = demo_catalog.with_name("six posters.csv")
    few.write_text("".join(demo_catalog.read_text().splitlines(keepends=True)[:7]))
    assert main(["evaluate", "--model", str(out), "--catalog", str(few), "--split", "all"]) == 0
    evaluated = capsys.readouterr()
    assert json.loads(evaluated.out)["posters"] == 6
    assert "warning: only 6 posters in the all split: each has fewer than 10 others" in evaluated.err


def test_epoch_plan_unfreezes_progressively_then_keeps_blocks_for_triplets() -> None:
    config = TrainConfig(warmup_epochs=5, head_only_epochs=2, unfreeze_step=1, max_unfrozen_blocks=2, triplet_epochs=2)
    plan = epoch_plan(config)
    assert [(p.phase, p.unfrozen_blocks) for p in plan] == [
        ("warmup", 0),
        ("warmup", 0),
        ("warmup", 1),
        ("warmup", 2),
        ("warmup", 2),
        ("triplet", 2),
        ("triplet", 2),
    ]


@pytest.mark.slow
def test_interrupted_run_resumes_after_last_finished_epoch(demo_rows: list, tmp_path: Path) -> None:
    config = TrainConfig(**TINY)
    out = tmp_path / "model"

    def interrupt_after_first(epoch, record) -> None:
        if epoch.index == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(demo_rows, out, config, tmp_path / "cache", on_epoch_end=interrupt_after_first)
    assert not out.exists()
    state = json.loads((tmp_path / "model.train" / "state.json").read_text())
    assert state["completed_epochs"] == 1

    other_epochs = TrainConfig(**{**TINY, "triplet_epochs": config.triplet_epochs + 1})
    with pytest.raises(
        ValueError, match=f"triplet_epochs was {config.triplet_epochs}, now {config.triplet_epochs + 1}"
    ):
        train(demo_rows, out, other_epochs, tmp_path / "cache", resume=True)
    with pytest.raises(ValueError, match=r"other settings or data \(the training data\)"):
        relabelled = [dataclasses.replace(row, genres=(*row.genres, "Relabelled")) for row in demo_rows]
        train(relabelled, out, config, tmp_path / "cache", resume=True)

    seen = []

    def record_epoch(epoch, record) -> None:
        seen.append(epoch.index)

    manifest = train(demo_rows, out, config, tmp_path / "cache", resume=True, on_epoch_end=record_epoch)
    assert seen == [1, 2], "the finished epoch is not run again"
    assert [h["epoch"] for h in manifest["training"]["history"]] == [1, 2, 3]
    assert load_embedder(out).manifest["training_data_sha256"] == manifest["training_data_sha256"]


def test_feature_cache_is_keyed_by_image_content(demo_rows: list, tmp_path: Path, caplog) -> None:
    cache = tmp_path / "features.npz"
    model = build_network(build_backbone("tiny", "none", seed=1), 3, 8).features
    rows = demo_rows[:6]
    with caplog.at_level(logging.INFO, logger="models.feature_cache"):
        first = cached_features(model, rows[:4], cache, 64, True, 4)
        assert "4 images" in caplog.text
        caplog.clear()
        both = cached_features(model, rows, cache, 64, True, 4)
        assert "2 images" in caplog.text, "only the images the cache lacks are computed"
    np.testing.assert_array_equal(both[:4], first)


def test_feature_cache_of_other_weights_is_not_trusted(demo_rows: list, tmp_path: Path, caplog) -> None:
    cache = tmp_path / "features.npz"
    rows = demo_rows[:4]
    model = build_network(build_backbone("tiny", "none", seed=1), 3, 8).features
    first = cached_features(model, rows, cache, 64, True, 4)
    other = build_network(build_backbone("tiny", "none", seed=2), 3, 8).features
    with caplog.at_level(logging.WARNING, logger="models.feature_cache"):
        second = cached_features(other, rows, cache, 64, True, 4)
    assert "other weights; recomputing" in caplog.text
    assert np.abs(second - first).max() > 1e-4
    np.testing.assert_allclose(second, cached_features(other, rows, tmp_path / "fresh.npz", 64, True, 4), atol=1e-5)


@pytest.mark.slow
def test_collapsed_model_is_not_exported(demo_rows: list, tmp_path: Path) -> None:
    config = TrainConfig(**{**TINY, "max_unfrozen_blocks": 0})
    trainer = Trainer(config, demo_rows, tmp_path / "model", tmp_path / "cache")
    embedding = trainer.network.trainer.get_layer("embedding")

    def collapse(epoch, record) -> None:  # every poster maps to the same vector
        kernel, bias = embedding.get_weights()
        embedding.set_weights([np.zeros_like(kernel), np.ones_like(bias)])

    with pytest.raises(CollapseError, match="collapsed"):
        trainer.train(on_epoch_end=collapse)
    assert not (tmp_path / "model").exists()
    assert not (tmp_path / "model.train").exists(), "a collapsed run's checkpoints are not worth resuming"


def test_trainer_rejects_a_catalogue_too_small_to_train(demo_rows: list, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 2 training posters"):
        Trainer(TrainConfig(**TINY), demo_rows[:1], tmp_path / "model", tmp_path / "cache")


def test_a_training_config_takes_the_settings_model_choices_and_the_flags_given() -> None:
    from posterrec_settings import load_settings

    settings = load_settings(env={}, backbone="tiny", batch_size=7, triplet_margin=0.2, letterbox=False)
    config = TrainConfig.from_settings(settings, weights="none", batch_size=None, triplet_epochs=3)
    assert (config.backbone, config.weights, config.batch_size, config.margin, config.letterbox) == (
        "tiny",
        "none",
        7,
        0.2,
        False,
    )
    assert config.triplet_epochs == 3 and config.warmup_epochs == TrainConfig().warmup_epochs


def test_a_checkpoint_state_without_its_settings_is_not_resumed(tmp_path: Path) -> None:
    from models.epoch_checkpoints import STATE_FILE, restore_epoch

    (tmp_path / STATE_FILE).write_text(json.dumps({"config": "3f2a", "completed_epochs": 1}))
    with pytest.raises(ValueError, match="does not list the settings it was trained with .*rerun without --resume"):
        restore_epoch(None, tmp_path, {"seed": 0})
