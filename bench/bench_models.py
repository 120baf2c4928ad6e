"""Poster embedding quality and speed on the real posters in ``../shared/data``.

On the fixed test split by id (models.data.split_by_id), reports MAP@R and
precision@10 where relevant means "same primary genre" and "shares a genre",
for random vectors, a colour-histogram baseline, the frozen backbone's pooled
features, the model after genre warm-up, and after triplet tuning with each
weak-label scheme; letterboxing is compared with squashing. Then images/s for
feature extraction, training epochs and ``Embedder.embed_images``.

ImageNet weights cannot be downloaded on the benchmark machine, so the
NASNetMobile backbone is randomly initialised (the table says which weights
were used). Its top blocks cannot be fine-tuned on every poster within the
budget on 2 CPU cores: quality rows train the head on cached frozen features,
and the speed of an unfrozen epoch is measured on a subsample.

    python bench/bench_models.py [--backbone nasnet_mobile] [--limit N]
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
from models.catalog import CatalogRow, read_catalog  # noqa: E402
from models.data import split_by_id  # noqa: E402
from models.embedder import load_embedder  # noqa: E402
from models.evaluation import retrieval_metrics  # noqa: E402
from models.labels import LABEL_SCHEMES  # noqa: E402
from models.training import TrainConfig, Trainer  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "catalog.csv"
HEADER = ["| embedding | MAP@R primary | P@10 primary | MAP@R any genre | P@10 any genre | spread |",
          "|---|---|---|---|---|---|"]
PHASES = ("warmup", "triplet")
QUALITY_COLUMNS = ("map_at_r_primary", "precision_at_10_primary", "map_at_r_any", "precision_at_10_any", "spread")
HEAD_EPOCHS = dict(warmup_epochs=8, head_only_epochs=8, triplet_epochs=12)


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


def trained(rows, config: TrainConfig, cache: Path, work: Path, name: str) -> tuple[Trainer, dict]:
    trainer = Trainer(config, rows, work / name, cache)
    manifest = trainer.train()
    return trainer, manifest


def shape_label(args: argparse.Namespace, weights: str, letterbox: bool) -> str:
    offline = ", ImageNet not downloadable here" if weights == "none" and args.weights == "imagenet" else ""
    return f"{args.backbone} (weights: {weights}{offline}), {'letterbox' if letterbox else 'squash'}"


def measure_embedding_speed(model_dir: Path, rows: list[CatalogRow], backbone: str) -> str:
    embedder = load_embedder(model_dir)
    embedder.embed_images([row.image for row in rows[:8]])  # trace the model once, outside the timing
    sample = [row.image for row in rows[8:136]]
    started = time.perf_counter()
    embedder.embed_images(sample)
    rate = len(sample) / (time.perf_counter() - started)
    return f"| Embedder.embed_images (decode, resize, {backbone}) | {rate:.1f} images/s |"


def head_epoch_speeds(history: list[dict]) -> list[str]:
    rates = {phase: np.median([h["images_per_second"] for h in history if h["phase"] == phase]) for phase in PHASES}
    return [f"| {phase} epoch, head on cached features | {rate:.0f} images/s |" for phase, rate in rates.items()]


def quality_rows(args, rows, base: TrainConfig, schemes, cache: Path, work: Path, speeds: list[str] | None) -> list[str]:
    """Frozen features, warm-up and triplet tuning on ``rows``; timings go to ``speeds`` when given."""
    test_rows = split_by_id(rows)[1]
    lines: list[str] = []
    for scheme in schemes:
        started = time.perf_counter()
        trainer, manifest = trained(rows, dataclasses.replace(base, label_scheme=scheme), cache, work, scheme)
        label = shape_label(args, manifest["weights"], base.letterbox)
        if not lines:
            frozen = retrieval_metrics(trainer.frozen_features(test_rows), [row.genres for row in test_rows])
            warm = manifest["metrics_after_warmup"]
            lines.append(quality_row(f"{label}: frozen pooled features", frozen))
            lines.append(quality_row(f"{label}: + genre warm-up ({base.warmup_epochs} head epochs)", warm))
            if speeds is not None:
                seconds = time.perf_counter() - started
                speeds.append(f"| training run incl. backbone features of {len(rows)} posters (cached after the first run) "
                              f"| {seconds:.0f} s |")
                speeds += head_epoch_speeds(manifest["training"]["history"])
                speeds.append(measure_embedding_speed(work / scheme, test_rows, args.backbone))
        epochs = f"{base.triplet_epochs} head epochs"
        lines.append(quality_row(f"{label}: + triplet on {scheme} classes ({epochs})", manifest["metrics"]))
    return lines


def unfrozen_epoch_speeds(rows: list[CatalogRow], base: TrainConfig, cache: Path, work: Path) -> list[str]:
    """Images/s of warm-up and triplet epochs that update the top two blocks (images, not cached features)."""
    config = dataclasses.replace(base, warmup_epochs=2, head_only_epochs=1, triplet_epochs=1, max_unfrozen_blocks=2,
                                 unfreeze_step=2, test_fraction=0.0)
    _, manifest = trained(rows, config, cache, work, "unfrozen")
    return [
        f"| {h['phase']} epoch, top {h['unfrozen_blocks']} blocks unfrozen, from images ({len(rows)} posters) "
        f"| {h['images_per_second']:.1f} images/s |"
        for h in manifest["training"]["history"][1:]
    ]


def baseline_rows(test_rows: list[CatalogRow]) -> list[str]:
    genres = [row.genres for row in test_rows]
    random = np.random.default_rng(0).normal(size=(len(test_rows), 128))
    return [
        quality_row("random 128-d", retrieval_metrics(random, genres)),
        quality_row("colour histogram (RGB 8x8x8)", retrieval_metrics(colour_histograms(test_rows), genres)),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="nasnet_mobile")
    parser.add_argument("--weights", default="imagenet")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N catalogue rows (0 = all)")
    parser.add_argument("--shape-sample", type=int, default=1200, help="posters for the letterbox-vs-squash comparison")
    parser.add_argument("--speed-sample", type=int, default=64, help="posters for the unfrozen-epoch timing")
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
    base = TrainConfig(backbone=args.backbone, weights=args.weights, batch_size=64, max_unfrozen_blocks=0, **HEAD_EPOCHS)
    sample = rows[: args.shape_sample]
    lines = [f"All {len(rows)} posters: {len(train_rows)} train / {len(test_rows)} test (split by id hash), "
             "metrics on the test split.", "", *HEADER, *baseline_rows(test_rows)]
    speeds = ["| speed (2 CPU cores, no GPU) | |", "|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        lines += quality_rows(args, rows, base, LABEL_SCHEMES, cache, work / "all", speeds)
        lines += ["", f"Letterbox vs squash on the first {len(sample)} posters (squashed features of every poster "
                  "do not fit the time budget):", "", *HEADER]
        for letterbox in (True, False):
            config = dataclasses.replace(base, letterbox=letterbox)
            lines += quality_rows(args, sample, config, ("primary",), cache, work / f"shape-{letterbox}", None)
        speeds += unfrozen_epoch_speeds(train_rows[: args.speed_sample], base, cache, work / "unfrozen")
    print("\n".join([*lines, "", *speeds]))
    print(f"\nTotal benchmark time {time.perf_counter() - started:.0f} s "
          "(backbone features are cached under $POSTERREC_HOME/cache, so reruns are faster).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
