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
from models.training import TrainConfig, Trainer  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "catalog.csv"
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


def quality_rows(args, rows, base: TrainConfig, schemes, cache: Path, work: Path, speeds: list[str] | None) -> list[str]:
    """Frozen features, warm-up and triplet tuning on ``rows``; timings go to ``speeds`` when given."""
    test_rows = split_by_id(rows)[1]
    lines: list[str] = []
    for scheme in schemes:
        t0 = time.perf_counter()
        trainer, manifest = trained(rows, dataclasses.replace(base, label_scheme=scheme), cache, work, scheme)
        label = shape_label(args, manifest["weights"], base.letterbox)
        if not lines:
            frozen = retrieval_metrics(trainer.frozen_features(test_rows), [row.genres for row in test_rows])
            lines.append(quality_row(f"{label}: frozen pooled features", frozen))
            lines.append(quality_row(f"{label}: + genre warm-up ({base.warmup_epochs} head epochs)", manifest["metrics_after_warmup"]))
        lines.append(quality_row(f"{label}: + triplet on {scheme} classes ({base.triplet_epochs} head epochs)", manifest["metrics"]))
        if speeds is not None and len(lines) == 3:
            history = manifest["training"]["history"]
            speeds.append(f"| first training run: backbone features for {len(rows)} posters (cached afterwards) + all epochs | {time.perf_counter() - t0:.0f} s |")
            for phase in ("warmup", "triplet"):
                speed = np.median([h["images_per_second"] for h in history if h["phase"] == phase])
                speeds.append(f"| {phase} epoch, head on cached features | {speed:.0f} images/s |")
            embedder = load_embedder(work / scheme)
            sample = [row.image for row in test_rows[:128]]
            t0 = time.perf_counter()
            embedder.embed_images(sample)
            speeds.append(f"| Embedder.embed_images (decode, resize, {args.backbone}) | {len(sample) / (time.perf_counter() - t0):.1f} images/s |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="nasnet_mobile")
    parser.add_argument("--weights", default="imagenet")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N catalogue rows (0 = all)")
    parser.add_argument("--shape-sample", type=int, default=1500, help="posters for the letterbox-vs-squash comparison")
    parser.add_argument("--speed-sample", type=int, default=96, help="posters for the unfrozen-epoch timing")
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
    genres = [row.genres for row in test_rows]
    base = TrainConfig(backbone=args.backbone, weights=args.weights, batch_size=64, max_unfrozen_blocks=0, **HEAD_EPOCHS)
    header = ["| embedding | MAP@R primary | P@10 primary | MAP@R any genre | P@10 any genre | spread |", "|---|---|---|---|---|---|"]
    lines = [
        f"All {len(rows)} posters: {len(train_rows)} train / {len(test_rows)} test (split by id hash), metrics on the test split.",
        "",
        *header,
        quality_row("random 128-d", retrieval_metrics(np.random.default_rng(0).normal(size=(len(test_rows), 128)), genres)),
        quality_row("colour histogram (RGB 8x8x8)", retrieval_metrics(colour_histograms(test_rows), genres)),
    ]
    speeds: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        lines += quality_rows(args, rows, base, ("primary", "genre_set", "sampled"), cache, work / "all", speeds)
        sample = rows[: args.shape_sample]
        lines += ["", f"Letterbox vs squash on the first {len(sample)} posters (squashed features for all posters do not fit the time budget):", "", *header]
        for letterbox in (True, False):
            config = dataclasses.replace(base, letterbox=letterbox)
            lines += quality_rows(args, sample, config, ("primary",), cache, work / f"shape-{letterbox}", None)

        few = train_rows[: args.speed_sample]
        unfrozen = dataclasses.replace(base, warmup_epochs=2, head_only_epochs=1, triplet_epochs=1,
                                       max_unfrozen_blocks=2, unfreeze_step=2, test_fraction=0.0)
        _, manifest = trained(few, unfrozen, cache, work / "unfrozen", "model")
        for record in manifest["training"]["history"][1:]:
            speeds.append(f"| {record['phase']} epoch, top {record['unfrozen_blocks']} blocks unfrozen, from images ({len(few)} posters) | {record['images_per_second']:.1f} images/s |")

    print("\n".join(lines))
    print("\n| speed (2 CPU cores, no GPU) | |\n|---|---|")
    print("\n".join(speeds))
    print(f"\nTotal benchmark time {time.perf_counter() - started:.0f} s (the feature cache in $POSTERREC_HOME/cache makes reruns faster).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
