"""Inpainting: only the mask changes, and the title is really gone."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from localize import demo
from localize.inpaint import METHODS, inpaint


@pytest.fixture(scope="module")
def poster(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A demo poster, its clean background, and a mask of its true title box grown by 3 px."""
    catalog = demo.write_demo_corpus(tmp_path_factory.mktemp("demo"), count=2, seed=11)
    with (catalog.parent / "truth.csv").open(encoding="utf-8") as handle:
        row = next(csv.DictReader(handle))
    image = np.asarray(Image.open(catalog.parent / "posters" / f"{row['id']}.png").convert("RGB"))
    clean = np.asarray(Image.open(catalog.parent / row["background"]).convert("RGB"))
    x0, y0, x1, y1 = (int(row[k]) for k in ("x0", "y0", "x1", "y1"))
    mask = np.zeros(image.shape[:2], np.uint8)
    mask[max(0, y0 - 3) : y1 + 3, max(0, x0 - 3) : x1 + 3] = 255
    return image, clean, mask


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(float) - b.astype(float)) ** 2).mean())
    return 10 * np.log10(255**2 / max(mse, 1e-9))


@pytest.mark.parametrize("method", sorted(METHODS))
def test_only_the_masked_region_changes_and_the_title_is_removed(poster, method: str) -> None:
    image, clean, mask = poster
    filled = inpaint(image, mask, method)
    hole = mask > 0
    assert filled.shape == image.shape and filled.dtype == np.uint8
    assert np.array_equal(filled[~hole], image[~hole])
    assert not np.array_equal(filled[hole], image[hole])
    assert psnr(filled[hole], clean[hole]) > psnr(image[hole], clean[hole]) + 5


def test_patchmatch_does_not_copy_from_excluded_pixels() -> None:
    """A hole on the border of a red and a grey half: without exclusion PatchMatch continues
    the red into it; with the red half excluded (as other text is) no red may appear."""
    image = np.full((120, 120, 3), 128, np.uint8)
    image[:, :60] = (255, 0, 0)
    hole = np.zeros((120, 120), np.uint8)
    hole[40:80, 40:80] = 255
    exclude = np.zeros_like(hole)
    exclude[:, :60] = 255

    def redness(filled: np.ndarray) -> int:
        return int((filled[40:80, 40:80, 0].astype(int) - filled[40:80, 40:80, 1]).max())

    assert redness(inpaint(image, hole, "patchmatch")) > 100
    assert redness(inpaint(image, hole, "patchmatch", exclude=exclude)) < 40


def test_empty_mask_returns_the_image_and_bad_input_is_refused(poster) -> None:
    image, _, mask = poster
    assert np.array_equal(inpaint(image, np.zeros_like(mask)), image)
    with pytest.raises(ValueError, match="unknown inpainting method 'magic'"):
        inpaint(image, mask, "magic")
    with pytest.raises(ValueError, match="does not match"):
        inpaint(image, mask[:10], "ns")
