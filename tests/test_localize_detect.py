"""Title detection on synthetic posters whose true title box is known."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from localize import demo
from localize.detect import CREDITS_BAND, detect_title
from localize.mask import title_mask


def iou(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return inter / (area - inter)


@pytest.fixture(scope="module")
def posters(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[np.ndarray, np.ndarray, tuple[int, ...]]]:
    """(poster, clean background, true title box) for 12 demo posters."""
    catalog = demo.write_demo_corpus(tmp_path_factory.mktemp("demo"), count=12, seed=7)
    with (catalog.parent / "truth.csv").open(encoding="utf-8") as handle:
        truth = list(csv.DictReader(handle))
    return [
        (np.asarray(Image.open(catalog.parent / "posters" / f"{row['id']}.png").convert("RGB")),
         np.asarray(Image.open(catalog.parent / row["background"]).convert("RGB")),
         tuple(int(row[k]) for k in ("x0", "y0", "x1", "y1")))
        for row in truth
    ]


@pytest.fixture(scope="module")
def detections(posters):
    return [detect_title(poster) for poster, _, _ in posters]


def test_chosen_title_matches_the_true_box(posters, detections) -> None:
    hits = [d.found and iou(d.title_box, box) >= 0.5 for (_, _, box), d in zip(posters, detections)]
    assert sum(hits) >= len(hits) - 1, [d.describe() for d, hit in zip(detections, hits) if not hit]


def test_tagline_and_credits_are_detected_but_not_chosen(posters, detections) -> None:
    for (poster, _, box), detection in zip(posters, detections):
        assert len(detection.lines) >= 3  # title + at least two credits lines
        others = [line for i, line in enumerate(detection.lines) if i not in detection.title]
        assert any(line.box[1] > poster.shape[0] * (1 - CREDITS_BAND) for line in others)
        assert all(iou(line.box, box) < 0.5 for line in others)


def test_boxes_and_scores_are_exposed_most_prominent_first(detections) -> None:
    for detection in detections:
        prominences = [line.prominence for line in detection.lines]
        assert prominences == sorted(prominences, reverse=True)
        assert all(0 < line.confidence <= 1 and line.height > 0 for line in detection.lines)
        assert detection.describe().count("title") == len(detection.title)


def test_a_poster_without_text_has_no_title() -> None:
    gradient = np.linspace(0, 255, 600, dtype=np.uint8)[:, None, None].repeat(400, axis=1).repeat(3, axis=2)
    detection = detect_title(gradient)
    assert not detection.found and detection.title_box is None
    assert not title_mask(detection).any()


def test_mask_covers_every_pixel_the_title_changed(posters, detections) -> None:
    for (poster, background, box), detection in zip(posters, detections):
        if not (detection.found and iou(detection.title_box, box) >= 0.5):
            continue
        changed = np.any(poster != background, axis=2)
        mask = title_mask(detection) > 0
        assert mask[changed].mean() >= 0.99
        assert mask.sum() < 3 * changed.sum() + 4 * (box[2] - box[0]) * (box[3] - box[1])  # dilated, not flooded
