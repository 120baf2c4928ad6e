"""Poster localization, measured on the demo corpus where the truth is known.

- Title detection: recall and precision at IoU >= 0.5 of the chosen title box
  against the true ink box, for the prominence ranking with line grouping and
  for the baseline "tallest detected line".
- Inpainting inside the (detected, dilated) title mask against the true clean
  background: PSNR and SSIM for Telea, Navier-Stokes and PatchMatch, with "no
  inpainting" (the poster itself) as the floor, and the time per poster.
- Rendering: every demo title in all 10 demo languages set into the detected
  box; overflow = any pixel drawn outside the box; "cannot fit" = skipped.
- End-to-end posters/s (detect, mask, inpaint, render 4 regions).

``--contact-sheet docs/contact_sheet.png`` also renders 24 real posters from
``../shared/data`` (a seeded random sample of titled posters, not hand-picked)
with DE, JA, AR and HI variants, the chosen title box outlined on the original.
The variants carry demo-vocabulary titles (real translations of placeholder
titles), since no translations of the real films' titles are at hand.

    .venv/bin/python bench/bench_localize.py [--count 48] [--contact-sheet docs/contact_sheet.png]
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from localize import demo, vocab  # noqa: E402
from localize.detect import DETECTION_SIDE, db_detector, detect_title  # noqa: E402
from localize.inpaint import METHODS, inpaint  # noqa: E402
from localize.mask import other_text_mask, title_mask  # noqa: E402
from localize.pipeline import CleanPoster, NoTitle, clean_poster, localize  # noqa: E402
from localize.render import CannotFit, title_color  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
SHEET_REGIONS = (("DE", "de"), ("JP", "ja"), ("SA", "ar"), ("IN", "hi"))


def iou(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(float) - b.astype(float)) ** 2).mean())
    return 10 * np.log10(255**2 / max(mse, 1e-10))


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Wang et al. (2004) SSIM on luminance, 11x11 Gaussian window (sigma 1.5), per pixel."""
    a = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).astype(float)
    b = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY).astype(float)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x, (11, 11), 1.5)

    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b, cov = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2, blur(a * b) - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))


def load_demo(count: int, folder: Path) -> list[dict]:
    catalog = demo.write_demo_corpus(folder, count=count, seed=0)
    with (catalog.parent / "truth.csv").open(encoding="utf-8") as handle:
        truth = list(csv.DictReader(handle))
    with (catalog.parent / "localized_titles.csv").open(encoding="utf-8") as handle:
        titles: dict[str, list[dict]] = {}
        for row in csv.DictReader(handle):
            titles.setdefault(row["id"], []).append(row)
    return [
        {
            "poster": np.asarray(Image.open(catalog.parent / "posters" / f"{row['id']}.png").convert("RGB")),
            "clean": np.asarray(Image.open(catalog.parent / row["background"]).convert("RGB")),
            "box": tuple(int(row[k]) for k in ("x0", "y0", "x1", "y1")),
            "titles": titles[row["id"]],
        }
        for row in truth
    ]


def _detect_all(items: list[dict], side: int) -> tuple[list, float]:
    """Detections of every demo poster with DBNet at ``side``, and the seconds per poster."""
    detector = db_detector()
    default, detector.limit_side_len = detector.limit_side_len, side
    try:
        started = time.perf_counter()
        detections = [detect_title(item["poster"]) for item in items]
        return detections, (time.perf_counter() - started) / len(items)
    finally:
        detector.limit_side_len = default


def _scores(items: list[dict], boxes: list) -> tuple[float, float]:
    made = [(box, item["box"]) for box, item in zip(boxes, items) if box is not None]
    correct = sum(iou(box, truth) >= 0.5 for box, truth in made)
    return correct / len(items), correct / max(1, len(made))


def detection_table(items: list[dict]) -> str:
    """Recall/precision of the title choice, against the tallest-line baseline and DBNet at
    rapidocr's default 736 px side; keeps the detections at ``DETECTION_SIDE`` on ``items``."""
    default, default_seconds = _detect_all(items, 736)
    chosen, seconds = _detect_all(items, DETECTION_SIDE)
    for item, detection in zip(items, chosen):
        item["detection"] = detection
    tallest = [max(d.lines, key=lambda line: line.height).box if d.lines else None for d in chosen]
    rows = [
        ("tallest detected line (baseline)", DETECTION_SIDE, _scores(items, tallest), seconds),
        ("prominence + line grouping", "736 (rapidocr default)", _scores(items, [d.title_box for d in default]), default_seconds),
        ("prominence + line grouping", DETECTION_SIDE, _scores(items, [d.title_box for d in chosen]), seconds),
    ]
    return "\n".join([
        f"Title detection at IoU >= 0.5 ({len(items)} demo posters)",
        "", "| choice | DBNet short side px | recall | precision | detect ms/poster |", "|---|---|---:|---:|---:|",
        *(f"| {name} | {side} | {recall:.3f} | {precision:.3f} | {sec * 1000:.0f} |" for name, side, (recall, precision), sec in rows), ""])


def inpainting_table(items: list[dict]) -> str:
    found = [item for item in items if item["detection"].found]
    for item in found:
        item["mask"] = title_mask(item["detection"])
        item["exclude"] = other_text_mask(item["detection"])
    rows = []
    for method in ("none (poster as is)", *METHODS):
        psnrs, ssims, seconds = [], [], 0.0
        for item in found:
            hole = item["mask"] > 0
            started = time.perf_counter()
            filled = item["poster"] if method.startswith("none") else inpaint(item["poster"], item["mask"], method, item["exclude"])
            seconds += time.perf_counter() - started
            item.setdefault("filled", {})[method] = filled
            psnrs.append(psnr(filled[hole], item["clean"][hole]))
            ssims.append(float(ssim_map(filled, item["clean"])[hole].mean()))
        rows.append(f"| {method} | {np.mean(psnrs):.2f} | {np.mean(ssims):.4f} | {seconds / len(found) * 1000:.0f} |")
    return "\n".join([
        f"Inpainting inside the detected title mask vs the true clean background ({len(found)} posters)",
        "", "| method | PSNR dB | SSIM | ms/poster |", "|---|---:|---:|---:|", *rows, ""])


def rendering_table(items: list[dict], method: str) -> str:
    per_language: dict[str, list[int]] = {}
    render_seconds, renders = 0.0, 0
    for item in items:
        if not item["detection"].found:
            continue
        background = item["filled"][method]
        clean = CleanPoster(item["poster"], item["detection"], item["mask"], background,
                            title_color(item["poster"], background, item["mask"]))
        for row in item["titles"]:
            counts = per_language.setdefault(row["language"], [0, 0, 0])
            started = time.perf_counter()
            try:
                rendered = localize(clean, row["title"], row["language"])
            except CannotFit:
                counts[2] += 1
                continue
            render_seconds += time.perf_counter() - started
            renders += 1
            x0, y0, x1, y1 = rendered.box
            outside = np.any(np.asarray(rendered.image) != background, axis=2)
            outside[y0:y1, x0:x1] = False
            counts[0] += 1
            counts[1] += int(outside.any())
    rows = [f"| {language} | {made} | {overflow} | {unfit} |" for language, (made, overflow, unfit) in per_language.items()]
    return "\n".join([
        f"Rendering the 10 demo languages into the detected title region ({render_seconds / max(1, renders) * 1000:.0f} ms/title)",
        "", "| language | rendered | overflowing the box | skipped: cannot fit |", "|---|---:|---:|---:|", *rows, ""])


def throughput_table(items: list[dict]) -> str:
    sample = items[: min(12, len(items))]
    rows = []
    for method in ("ns", "patchmatch"):
        started = time.perf_counter()
        for item in sample:
            try:
                clean = clean_poster(Image.fromarray(item["poster"]), method)
            except NoTitle:
                continue
            for row in item["titles"][:4]:
                try:
                    localize(clean, row["title"], row["language"])
                except CannotFit:
                    pass
        seconds = time.perf_counter() - started
        rows.append(f"| {method} | {len(sample) / seconds:.2f} | {seconds / len(sample) * 1000:.0f} |")
    return "\n".join([
        f"End to end: detect, mask, inpaint once, render 4 regions ({len(sample)} demo posters, 400x600)",
        "", "| inpainting | posters/s | ms/poster |", "|---|---:|---:|", *rows, ""])


def real_sample(count: int) -> list[dict]:
    with (SHARED / "catalog.csv").open(encoding="utf-8") as handle:
        titled = [row for row in csv.DictReader(handle) if row["title"].strip()]
    return random.Random(0).sample(titled, count)


def contact_sheet(path: Path, method: str, count: int = 24, per_row: int = 2) -> str:
    """Originals (chosen title box in green) and their DE, JA, AR, HI variants, as one PNG."""
    if not (SHARED / "catalog.csv").is_file():
        return f"contact sheet skipped: {SHARED / 'catalog.csv'} not found"
    tile_w, tile_h, gap = 137, 202, 6
    group_w = tile_w * (1 + len(SHEET_REGIONS)) + gap
    rows_needed = (count + per_row - 1) // per_row
    sheet = Image.new("RGB", (group_w * per_row, rows_needed * (tile_h + gap)), (255, 255, 255))
    found = 0
    for i, row in enumerate(real_sample(count)):
        with Image.open(SHARED / row["image"]) as image:
            original = image.convert("RGB")
        tiles = [original.copy()]
        try:
            clean = clean_poster(original, method)
            found += 1
            ImageDraw.Draw(tiles[0]).rectangle([clean.box[0], clean.box[1], clean.box[2] - 1, clean.box[3] - 1], outline=(0, 255, 0), width=2)
            number = i % vocab.title_count()
            for _, language in SHEET_REGIONS:
                try:
                    tiles.append(localize(clean, vocab.title_in(number, language), language).image)
                except CannotFit:
                    tiles.append(_note(original.size, "cannot fit"))
        except NoTitle:
            tiles += [_note(original.size, "no title found")] * len(SHEET_REGIONS)
        x, y = (i % per_row) * group_w, (i // per_row) * (tile_h + gap)
        for k, tile in enumerate(tiles):
            sheet.paste(tile.resize((tile_w, tile_h), Image.Resampling.LANCZOS), (x + k * tile_w, y))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG).save(path, optimize=True)
    return f"contact sheet: {path} ({path.stat().st_size / 1e6:.2f} MB); a title box was chosen on {found}/{count} real posters"


def _note(size: tuple[int, int], text: str) -> Image.Image:
    tile = Image.new("RGB", size, (235, 235, 235))
    ImageDraw.Draw(tile).text((8, size[1] // 2), text, fill=(120, 0, 0))
    return tile


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=48, help="demo posters to measure on (default 48)")
    parser.add_argument("--contact-sheet", type=Path, help="also write the real-poster contact sheet here")
    parser.add_argument("--sheet-method", choices=sorted(METHODS), default="patchmatch")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        items = load_demo(args.count, Path(folder))
    print(detection_table(items))
    print(inpainting_table(items))
    print(rendering_table(items, "patchmatch"))
    print(throughput_table(items))
    if args.contact_sheet:
        print(contact_sheet(args.contact_sheet, args.sheet_method))
    return 0


if __name__ == "__main__":
    sys.exit(main())
