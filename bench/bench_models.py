"""Poster embedding quality and speed on the real posters in ``../shared/data``.

On the fixed test split by id (models.data.split_by_id), reports MAP@R and
precision@10 where relevant means "same primary genre" and "shares a genre",
the spread and the score distribution (median cosine to the 10th neighbour and
to a random poster), for random vectors, a colour-histogram baseline, the
pooled features of a randomly initialised NASNetMobile (Keras cannot download
its ImageNet weights offline), and EfficientNet-Lite0 with ImageNet weights:
frozen pooled features, + genre warm-up, + triplet tuning with each weak-label
scheme (head trained on cached features), and + progressive unfreezing of its
top blocks followed by triplet tuning, from images. Letterboxing is compared
with squashing on a sample. Then images/s: the raw forward pass on random
tensors, ``Embedder.embed_images`` (decode, resize, forward) and training
epochs, cached-feature and unfrozen.

The model trained with the default label scheme on cached features is kept in
``--export`` (default ``var/bench/model-efficientnet_lite0``) for
``bench/bench_recommend.py``.

    python bench/bench_models.py [--limit N] [--export DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import posterrec_settings  # noqa: E402  (TF_USE_LEGACY_KERAS before TensorFlow)

import tensorflow as tf  # noqa: E402

from models.backbones import build_backbone  # noqa: E402
from models.catalog import CatalogRow, read_catalog  # noqa: E402
from models.data import split_by_id  # noqa: E402
from models.embedder import load_embedder  # noqa: E402
from models.evaluation import retrieval_metrics  # noqa: E402
from models.labels import LABEL_SCHEMES  # noqa: E402
from models.training import DEFAULT_LABEL_SCHEME, TrainConfig, Trainer  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "catalog.csv"
PRETRAINED = "efficientnet_lite0"
HEADER = [
    "| embedding | MAP@R primary | P@10 primary | MAP@R any genre | P@10 any genre | spread "
    "| cos 10th neighbour | cos random |",
    "|---|---|---|---|---|---|---|---|",
]
QUALITY_COLUMNS = (
    "map_at_r_primary",
    "precision_at_10_primary",
    "map_at_r_any",
    "precision_at_10_any",
    "spread",
    "cosine_neighbour_10_median",
    "cosine_random_median",
)
SPEED_HEADER = "| speed (2 CPU cores, no GPU) | |"
HEAD_EPOCHS = dict(warmup_epochs=8, head_only_epochs=8, triplet_epochs=12, max_unfrozen_blocks=0)
UNFREEZING = dict(warmup_epochs=10, head_only_epochs=8, unfreeze_step=1, max_unfrozen_blocks=2, triplet_epochs=1)
"""Two warm-up epochs from images with the top 1, then 2 blocks unfrozen, then one triplet epoch: each epoch
pushes every training poster through the whole backbone, minutes on 2 CPU cores."""


def emit(*lines: str) -> None:
    """Print table lines as they are measured, so a long run shows its rows early."""
    print("\n".join(lines), flush=True)


def colour_histograms(rows: list[CatalogRow], bins: int = 8) -> np.ndarray:
    """Joint RGB histogram (bins^3), square-rooted so cosine similarity is the Hellinger affinity."""
    out = np.zeros((len(rows), bins**3), np.float32)
    for i, row in enumerate(rows):
        with Image.open(row.image) as image:
            pixels = np.asarray(image.convert("RGB").resize((64, 96))).reshape(-1, 3) // (256 // bins)
        codes = pixels[:, 0] * bins * bins + pixels[:, 1] * bins + pixels[:, 2]
        out[i] = np.sqrt(np.bincount(codes, minlength=bins**3) / len(codes))
    return out


def quality_row(name: str, metrics: dict) -> str:
    return f"| {name} | " + " | ".join(f"{metrics[key]:.4f}" for key in QUALITY_COLUMNS) + " |"


def baseline_rows(test_rows: list[CatalogRow]) -> list[str]:
    genres = [row.genres for row in test_rows]
    random = np.random.default_rng(0).normal(size=(len(test_rows), 128))
    return [
        quality_row("random 128-d", retrieval_metrics(random, genres)),
        quality_row("colour histogram (RGB 8x8x8)", retrieval_metrics(colour_histograms(test_rows), genres)),
    ]


def frozen_row(rows: list[CatalogRow], config: TrainConfig, cache: Path, work: Path) -> str:
    """Metrics of a backbone's pooled features on the test split, with the weights it really loaded."""
    trainer = Trainer(config, rows, work / f"frozen-{config.backbone}", cache)
    test_rows = trainer.test_rows
    metrics = retrieval_metrics(trainer.frozen_features(test_rows), [row.genres for row in test_rows])
    weights = trainer.network.backbone.weights
    return quality_row(f"{config.backbone} (weights: {weights}): frozen pooled features", metrics)


def label(manifest: dict, letterbox: bool = True) -> str:
    return f"{manifest['backbone']} (weights: {manifest['weights']}, {'letterbox' if letterbox else 'squash'})"


def head_rows(
    rows, base: TrainConfig, cache: Path, work: Path, export: Path | None, speeds: list[str] | None
) -> list[str]:
    """Frozen features, warm-up and triplet tuning (each label scheme) of a head on cached features."""
    test_rows = split_by_id(rows)[1]
    lines: list[str] = []
    schemes = LABEL_SCHEMES if speeds is not None else (DEFAULT_LABEL_SCHEME,)
    for scheme in schemes:
        started = time.perf_counter()
        out = export if export and scheme == DEFAULT_LABEL_SCHEME else work / scheme
        trainer = Trainer(dataclasses.replace(base, label_scheme=scheme), rows, out, cache)
        manifest = trainer.train()
        name = label(manifest, base.letterbox)
        if not lines:
            genres = [row.genres for row in test_rows]
            frozen = trainer.frozen_features(test_rows)
            centre = trainer.frozen_features(trainer.train_rows).mean(axis=0)
            lines.append(quality_row(f"{name}: frozen pooled features", retrieval_metrics(frozen, genres)))
            lines.append(
                quality_row(
                    f"{name}: frozen pooled features, centred on the training mean",
                    retrieval_metrics(frozen - centre, genres),
                )
            )
            lines.append(
                quality_row(
                    f"{name}: + genre warm-up ({base.warmup_epochs} head epochs)", manifest["metrics_after_warmup"]
                )
            )
        if speeds is not None and scheme == DEFAULT_LABEL_SCHEME:
            seconds = time.perf_counter() - started
            speeds.append(
                f"| {PRETRAINED}: training run on cached features, {len(rows)} posters "
                f"(features computed on first use) | {seconds:.0f} s |"
            )
            speeds += epoch_speeds(manifest["training"]["history"], "head on cached features")
            speeds.append(embedding_speed(out, test_rows))
        lines.append(
            quality_row(
                f"{name}: + triplet on {scheme} classes ({base.triplet_epochs} head epochs)", manifest["metrics"]
            )
        )
    return lines


def unfreezing_rows(rows, base: TrainConfig, cache: Path, work: Path, speeds: list[str]) -> list[str]:
    config = dataclasses.replace(base, **UNFREEZING)
    manifest = Trainer(config, rows, work / "unfrozen", cache).train()
    history = manifest["training"]["history"]
    speeds += epoch_speeds([h for h in history if h["unfrozen_blocks"]], "from images")
    name = label(manifest)
    return [
        quality_row(
            f"{name}: + genre warm-up, then progressive unfreezing (top 1, then 2 blocks; "
            f"{config.head_only_epochs} head + 2 epochs from images)",
            manifest["metrics_after_warmup"],
        ),
        quality_row(
            f"{name}: + unfreezing, then triplet on {config.label_scheme} classes "
            f"({config.triplet_epochs} epoch from images, top 2 blocks)",
            manifest["metrics"],
        ),
    ]


def epoch_speeds(history: list[dict], source: str) -> list[str]:
    """Median images/s of the epochs of each phase and number of unfrozen blocks."""
    groups: dict[tuple, list[float]] = {}
    for h in history:
        groups.setdefault((h["phase"], h["unfrozen_blocks"]), []).append(h["images_per_second"])
    return [
        f"| {PRETRAINED}: {phase} epoch, {blocks} blocks unfrozen, {source} | {np.median(rates):.1f} images/s |"
        for (phase, blocks), rates in groups.items()
    ]


def embedding_speed(model_dir: Path, rows: list[CatalogRow]) -> str:
    embedder = load_embedder(model_dir)
    embedder.embed_images([row.image for row in rows[:8]])  # trace the model once, outside the timing
    sample = [row.image for row in rows[8:136]]
    started = time.perf_counter()
    embedder.embed_images(sample)
    rate = len(sample) / (time.perf_counter() - started)
    return f"| {PRETRAINED}: Embedder.embed_images (decode, resize, forward; {len(sample)} posters) | {rate:.1f} images/s |"


def forward_speed(backbone: str, batch: int = 32, rounds: int = 4) -> str:
    """Images/s of the backbone alone on random tensors: the ceiling for embedding and frozen features."""
    model = build_backbone(backbone, "none").model
    size = model.input_shape[1]
    forward = tf.function(lambda images: model(images, training=False))
    images = tf.random.uniform((batch, size, size, 3), -1.0, 1.0, seed=0)
    forward(images)
    started = time.perf_counter()
    for _ in range(rounds):
        forward(images).numpy()
    rate = batch * rounds / (time.perf_counter() - started)
    return f"| {backbone}: raw forward pass, random {size}px tensors, batch {batch} | {rate:.1f} images/s |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=0, help="use only the first N catalogue rows (0 = all)")
    parser.add_argument("--shape-sample", type=int, default=1200, help="posters for the letterbox-vs-squash comparison")
    parser.add_argument(
        "--export",
        type=Path,
        default=REPO / "var" / "bench" / f"model-{PRETRAINED}",
        help="where the default-scheme model trained on cached features is kept",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not DATA.is_file():
        print(f"skipped: real poster data not found at {DATA}")
        return 0
    started = time.perf_counter()
    cache = posterrec_settings.load_settings().home / "cache" / "features"
    rows = read_catalog(DATA).rows
    rows = rows[: args.limit] if args.limit else rows
    train_rows, test_rows = split_by_id(rows)
    base = TrainConfig(backbone=PRETRAINED, weights="imagenet", batch_size=64, **HEAD_EPOCHS)
    sample = rows[: args.shape_sample]
    emit(
        f"All {len(rows)} posters: {len(train_rows)} train / {len(test_rows)} test (split by id hash), "
        "metrics on the test split.",
        "",
        *HEADER,
        *baseline_rows(test_rows),
    )
    speeds = [forward_speed(PRETRAINED), forward_speed("nasnet_mobile")]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        nasnet = TrainConfig(backbone="nasnet_mobile", weights="imagenet", batch_size=64, **HEAD_EPOCHS)
        emit(frozen_row(rows, nasnet, cache, work))
        emit(*head_rows(rows, base, cache, work / "all", args.export, speeds))
        shape_lines = []
        for letterbox in (True, False):
            config = dataclasses.replace(base, letterbox=letterbox)
            shape_lines += head_rows(sample, config, cache, work / f"shape-{letterbox}", None, None)
        emit(
            "",
            f"Letterbox vs squash on the first {len(sample)} posters ({PRETRAINED}, head on cached features):",
            "",
            *HEADER,
            *shape_lines,
            "",
            SPEED_HEADER,
            "|---|---|",
            *speeds,
        )
        unfrozen_speeds: list[str] = []
        emit(
            "",
            f"Fine-tuning {PRETRAINED} from images (all {len(rows)} posters, continuing the first table):",
            "",
            *HEADER,
            *unfreezing_rows(rows, base, cache, work, unfrozen_speeds),
            "",
            SPEED_HEADER,
            "|---|---|",
            *unfrozen_speeds,
        )
    print(
        f"\nTotal benchmark time {time.perf_counter() - started:.0f} s "
        "(backbone features are cached under $POSTERREC_HOME/cache, so reruns are faster)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
