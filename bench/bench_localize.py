"""Poster localization, measured on the demo corpus where the truth is known and on real posters
whose titles the catalogue knows.

- Title detection: recall and precision at IoU >= 0.5 of the chosen title box
  against the true ink box, for the catalogue-text match, the prominence
  ranking with line grouping, and the baseline "tallest detected line".
- Erasing: the box mask (lines dilated) and the glyph mask, each with Telea,
  Navier-Stokes, OpenCV xphoto FSR and PatchMatch, scored over both masks'
  union against the true clean background (PSNR, SSIM), "no inpainting" as the
  floor, and the time per poster.
- Rendering: every demo title in all 10 demo languages set into the detected
  box; overflow = any pixel drawn outside the box; "cannot fit" = skipped.
- Style match: the demo title re-set in English and in the 10 languages on
  the PatchMatch background; ink height and width over the true title box,
  CIEDE2000 between the generator's glyph fill and the rendered fill, and
  whether the style reader picks the generator's family class (serif or sans),
  case and boldness, against a fixed look.
- End-to-end posters/s (detect, mask, inpaint, render 4 regions).
- Real posters (``--real N``, a seeded sample of the catalogue rows with a
  title): title found (the chosen lines read as the whole title, normalized
  edit similarity >= 0.8, article optional), erased (OCR of the title region
  after inpainting reads less than half of it), other text damaged (the
  non-title lines OCR reads differently after erasing), new title readable
  (OCR reads the German title set in its place), size of the new title over the
  original line height; the baseline pipeline (prominence, box mask,
  PatchMatch, fixed look) in the same run.

``--contact-sheet docs/contact_sheet.png`` also renders 24 real posters from
``../shared/data`` (a seeded random sample of titled posters outside the first
120 held-out ones and every tuning sample, not hand-picked): the original with
its chosen title box, the erase mask, and DE, JA, AR and HI variants.
The variants carry demo-vocabulary titles (real translations of placeholder
titles), since no translations of the real films' titles are at hand.

    .venv/bin/python bench/bench_localize.py [--count 48] [--real 300] [--real-methods patchmatch]
        [--real-seed 1] [--misses] [--contact-sheet docs/contact_sheet.png]

``--real-seed 0`` (the default) measures the held-out sample; any other seed draws a tuning
sample outside it and outside the contact sheet's posters, for adjusting the finder.
"""

from __future__ import annotations

import argparse
import collections
import csv
import dataclasses
import random
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw
from skimage.color import deltaE_ciede2000, rgb2lab

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from localize import demo, vocab  # noqa: E402
from localize.detect import DETECTION_SIDE, Detection, choose_title, db_detector, detect_lines, detect_title  # noqa: E402
from localize.inpaint import METHODS, inpaint  # noqa: E402
from localize.mask import other_text_mask, title_mask  # noqa: E402
from localize.match import match_title, normalized, similarity, title_forms  # noqa: E402
from localize.pipeline import CleanPoster, NoTitle, clean_poster, localize  # noqa: E402
from localize.recognize import read_lines  # noqa: E402
from localize.render import CannotFit, title_color  # noqa: E402
from localize.style import TitleLook, read_look  # noqa: E402

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
    with catalog.open(encoding="utf-8") as handle:
        originals = {row["id"]: row["title"] for row in csv.DictReader(handle)}
    with (catalog.parent / "localized_titles.csv").open(encoding="utf-8") as handle:
        titles: dict[str, list[dict]] = {}
        for row in csv.DictReader(handle):
            titles.setdefault(row["id"], []).append(row)
    return [
        {
            "poster": np.asarray(Image.open(catalog.parent / "posters" / f"{row['id']}.png").convert("RGB")),
            "clean": np.asarray(Image.open(catalog.parent / row["background"]).convert("RGB")),
            "box": tuple(int(row[k]) for k in ("x0", "y0", "x1", "y1")),
            "fill": tuple(int(row["fill"][i : i + 2], 16) for i in (1, 3, 5)),
            "serif": row["serif"] == "1",
            "weight": int(row["weight"]),
            "upper": row["upper"] == "1",
            "title": originals[row["id"]],
            "titles": titles[row["id"]],
        }
        for row in truth
    ]


def _detect_all(items: list[dict], side: int, by_text: bool = False) -> tuple[list, float]:
    """Detections of every demo poster with DBNet at ``side`` (by the catalogue title when
    ``by_text``), and the seconds per poster."""
    detector = db_detector()
    default, detector.limit_side_len = detector.limit_side_len, side
    try:
        started = time.perf_counter()
        detections = [detect_title(item["poster"], item["title"] if by_text else None) for item in items]
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
    by_text, text_seconds = _detect_all(items, DETECTION_SIDE, by_text=True)
    for item, detection in zip(items, by_text):
        item["detection"] = detection
    tallest = [max(d.lines, key=lambda line: line.height).box if d.lines else None for d in chosen]
    rows = [
        ("tallest detected line (baseline)", DETECTION_SIDE, _scores(items, tallest), seconds),
        (
            "prominence + line grouping",
            "736 (rapidocr default)",
            _scores(items, [d.title_box for d in default]),
            default_seconds,
        ),
        ("prominence + line grouping", DETECTION_SIDE, _scores(items, [d.title_box for d in chosen]), seconds),
        (
            "catalogue title text, else prominence",
            DETECTION_SIDE,
            _scores(items, [d.title_box for d in by_text]),
            text_seconds,
        ),
    ]
    return "\n".join(
        [
            f"Title detection at IoU >= 0.5 ({len(items)} demo posters)",
            "",
            "| choice | DBNet short side px | recall | precision | detect ms/poster |",
            "|---|---|---:|---:|---:|",
            *(
                f"| {name} | {side} | {recall:.3f} | {precision:.3f} | {sec * 1000:.0f} |"
                for name, side, (recall, precision), sec in rows
            ),
            "",
        ]
    )


def inpainting_table(items: list[dict]) -> str:
    """Box mask (lines dilated) against glyph mask, each with every inpainter, scored over the
    union of both masks (pixels a mask leaves keep the poster's, title residue included) against
    the true clean background; keeps the glyph mask and its fills on ``items``."""
    found = [item for item in items if item["detection"].found]
    for item in found:
        item["masks"] = {"box": title_mask(item["detection"]), "glyph": title_mask(item["detection"], item["poster"])}
        item["mask"] = item["masks"]["glyph"]
        item["exclude"] = other_text_mask(item["detection"])
    rows = []
    for mask_name in ("box", "glyph"):
        area = np.mean([(item["masks"][mask_name] > 0).sum() / (item["masks"]["box"] > 0).sum() for item in found])
        cover = np.mean(
            [
                (item["masks"][mask_name] > 0)[
                    np.abs(item["poster"].astype(int) - item["clean"]).sum(axis=2) > 30
                ].mean()
                for item in found
            ]
        )
        for method in ("none (poster as is)", *METHODS):
            psnrs, ssims, seconds = [], [], 0.0
            for item in found:
                mask = item["masks"][mask_name]
                region = (item["masks"]["box"] > 0) | (item["masks"]["glyph"] > 0)
                started = time.perf_counter()
                filled = (
                    item["poster"]
                    if method.startswith("none")
                    else inpaint(item["poster"], mask, method, item["exclude"])
                )
                seconds += time.perf_counter() - started
                if mask_name == "glyph":
                    item.setdefault("filled", {})[method] = filled
                psnrs.append(psnr(filled[region], item["clean"][region]))
                ssims.append(float(ssim_map(filled, item["clean"])[region].mean()))
            rows.append(
                f"| {mask_name} | {area:.2f} | {cover:.3f} | {method} | {np.mean(psnrs):.2f} | {np.mean(ssims):.4f} | "
                f"{seconds / len(found) * 1000:.0f} |"
            )
    return "\n".join(
        [
            f"Erasing the detected title vs the true clean background ({len(found)} demo posters; pixels outside the mask are "
            "left as they are by every method)",
            "",
            "| mask | area / box mask | covers changed px | inpainting | PSNR dB | SSIM | ms/poster |",
            "|---|---:|---:|---|---:|---:|---:|",
            *rows,
            "",
        ]
    )


def rendering_table(items: list[dict], method: str) -> str:
    per_language: dict[str, list[int]] = {}
    render_seconds, renders = 0.0, 0
    for item in items:
        if not item["detection"].found:
            continue
        background = item["filled"][method]
        clean = CleanPoster(
            item["poster"],
            item["detection"],
            item["mask"],
            background,
            read_look(item["poster"], background, item["mask"], item["detection"]),
        )
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
    rows = [
        f"| {language} | {made} | {overflow} | {unfit} |" for language, (made, overflow, unfit) in per_language.items()
    ]
    return "\n".join(
        [
            f"Rendering the 10 demo languages into the detected title region ({render_seconds / max(1, renders) * 1000:.0f} ms/title)",
            "",
            "| language | rendered | overflowing the box | skipped: cannot fit |",
            "|---|---:|---:|---:|",
            *rows,
            "",
        ]
    )


def _changed_box(image: np.ndarray, background: np.ndarray) -> tuple[int, int, int, int] | None:
    """The box of every pixel ``image`` changed on ``background`` (right-open), as the demo's truth
    box is measured; None when nothing changed."""
    changed = np.any(image != background, axis=2)
    rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
    if not len(rows):
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def delta_e(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    """CIEDE2000 colour difference of two sRGB colours (scikit-image's Lab conversion, D65)."""
    lab = rgb2lab(np.array([[a, b]], np.uint8))
    return float(deltaE_ciede2000(lab[0, 0], lab[0, 1]))


def _spread(values: list[float], digits: int = 2) -> str:
    """Median, 10th-90th percentile and min-max of ``values``."""
    if not values:
        return "-"
    p10, median, p90 = np.percentile(values, (10, 50, 90))
    return f"{median:.{digits}f} ({p10:.{digits}f}-{p90:.{digits}f}; {min(values):.{digits}f}-{max(values):.{digits}f})"


def _style_rows(items: list[dict], method: str, fixed: bool) -> dict[str, list]:
    """Per rendered title: ink height and width over the true title's, and per poster: colour
    difference and class agreement, with the read look or (``fixed``) the fixed look."""
    out: dict[str, list] = collections.defaultdict(list)
    for item in items:
        if not item["detection"].found:
            continue
        background = item["filled"][method]
        look = read_look(item["poster"], background, item["mask"], item["detection"])
        if fixed:
            look = TitleLook(look.fill)
        clean = CleanPoster(item["poster"], item["detection"], item["mask"], background, look)
        true_w, true_h = item["box"][2] - item["box"][0], item["box"][3] - item["box"][1]
        for row in [{"language": "en", "title": item["title"]}, *item["titles"]]:
            try:
                rendered = localize(clean, row["title"], row["language"])
            except CannotFit:
                out["unfit"].append(row["language"])
                continue
            box = _changed_box(np.asarray(rendered.image), background)
            key = "same" if row["language"] == "en" else "all"
            out[f"h_{key}"].append((box[3] - box[1]) / true_h)
            out[f"w_{key}"].append((box[2] - box[0]) / true_w)
            if key == "same":
                out["delta_e"].append(delta_e(item["fill"], rendered.style.fill))
        out["serif"].append(look.serif == item["serif"])
        if item["serif"]:
            out["serif_of_serif"].append(look.serif)
        out["case"].append(look.upper == item["upper"])
        out["bold"].append((look.weight >= BOLD) == (item["weight"] >= BOLD))
        out["weight_error"].append(abs(look.weight - item["weight"]))
    return out


BOLD = 600
"""Weight axis value from which a face counts as bold in the class agreement."""


def style_table(items: list[dict], method: str) -> str:
    """The localized title's style against the original's, which the demo generator knows: ink
    size over the true title box, CIEDE2000 between the true and the rendered glyph fill, and the
    family class, case and boldness the style reader picked."""
    found = [item for item in items if item["detection"].found]
    table = [
        f"Style match on {len(found)} demo posters (title found, {method} background; ink boxes measured as changed "
        "pixels, effect included, as the true box is; median (p10-p90; min-max))",
        "",
        "| look | height ratio, same text | width ratio, same text | height ratio, 10 languages | "
        "ΔE2000 fill | serif/sans agrees | serif found of serif | case agrees | bold agrees | "
        "median weight error | cannot fit |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, fixed in (("fixed look: sans 800, mixed case (colour read)", True), ("read from the glyphs", False)):
        c = _style_rows(found, method, fixed)
        serifs = c["serif_of_serif"]
        table.append(
            f"| {name} | {_spread(c['h_same'])} | {_spread(c['w_same'])} | {_spread(c['h_all'])} | "
            f"{np.median(c['delta_e']):.1f} (p90 {np.percentile(c['delta_e'], 90):.1f}) | "
            f"{np.mean(c['serif']):.1%} | {sum(serifs)}/{len(serifs)} | {np.mean(c['case']):.1%} | "
            f"{np.mean(c['bold']):.1%} | {np.median(c['weight_error']):.0f} | {len(c['unfit'])} |"
        )
    return "\n".join(table + [""])


def throughput_table(items: list[dict]) -> str:
    sample = items[: min(12, len(items))]
    rows = []
    for method in ("ns", "patchmatch"):
        started = time.perf_counter()
        for item in sample:
            try:
                clean = clean_poster(Image.fromarray(item["poster"]), method, item["title"])
            except NoTitle:
                continue
            for row in item["titles"][:4]:
                try:
                    localize(clean, row["title"], row["language"])
                except CannotFit:
                    pass
        seconds = time.perf_counter() - started
        rows.append(f"| {method} | {len(sample) / seconds:.2f} | {seconds / len(sample) * 1000:.0f} |")
    return "\n".join(
        [
            f"End to end: detect, mask, inpaint once, render 4 regions ({len(sample)} demo posters, 400x600)",
            "",
            "| inpainting | posters/s | ms/poster |",
            "|---|---:|---:|",
            *rows,
            "",
        ]
    )


# --- Real posters: the whole localizer against the catalogue's known titles ------------------

GHOST_SIMILARITY = 0.5
"""An erased title still reads as a ghost when OCR of its region reads half of it or more."""
FOUND_SIMILARITY = 0.8


@dataclasses.dataclass(frozen=True)
class Config:
    """One way through the localizer, for the real-poster table."""

    name: str
    by_text: bool
    glyphs: bool
    method: str


REAL_CONFIGS = (
    Config("prominence, box mask, patchmatch (baseline)", False, False, "patchmatch"),
    *(Config(f"catalogue text, glyph mask, {method}", True, True, method) for method in ("ns", "fsr", "patchmatch")),
)


HELD_OUT = 300
"""Seed 0 draws the held-out rows; other seeds draw from outside its first ``HELD_OUT`` rows."""
SHEET_POSTERS, SHEET_MEASURED = 24, 120
"""The contact sheet's posters, drawn outside the first 120 held-out rows whatever ``--real`` measures;
tuning seeds avoid them."""


def _titled_rows() -> list[dict]:
    with (SHARED / "catalog.csv").open(encoding="utf-8") as handle:
        return [row for row in csv.DictReader(handle) if row["title"].strip()]


def real_sample(count: int, seed: int = 0) -> list[dict]:
    """``count`` catalogue rows with a title, the same every run: seed 0 is the held-out sample;
    any other seed draws a tuning sample from the rows outside the held-out ``HELD_OUT`` and the
    contact sheet's posters."""
    titled = _titled_rows()
    if seed:
        taken = {row["id"] for row in real_sample(HELD_OUT) + sheet_sample(SHEET_POSTERS, SHEET_MEASURED)}
        titled = [row for row in titled if row["id"] not in taken]
    return random.Random(seed).sample(titled, min(count, len(titled)))


def _found(detection: Detection, title: str) -> bool:
    """The chosen lines read as the whole title (subtitle included, article optional)."""
    return (
        detection.found
        and max(similarity(detection.text, form) for form in title_forms(title, subtitle_optional=False))
        >= FOUND_SIMILARITY
    )


def _lines_in(image: np.ndarray, box: tuple[int, int, int, int]) -> list[str]:
    """Texts OCR reads in ``image`` on lines that overlap ``box``."""
    lines = detect_lines(image)
    x0, y0, x1, y1 = box
    inside = [
        quad
        for quad, _ in lines
        if min(x1, quad[:, 0].max()) > max(x0, quad[:, 0].min())
        and min(y1, quad[:, 1].max()) > max(y0, quad[:, 1].min())
    ]
    return [text for text, _ in read_lines(image, inside)]


def _damaged(original: np.ndarray, erased: np.ndarray, detection: Detection) -> tuple[int, int]:
    """(non-title lines read, of them read differently after erasing) on one poster."""
    others = [
        line
        for i, line in enumerate(detection.lines)
        if i not in detection.title and len(normalized(line.text)) >= 2 and line.text_score >= 0.5
    ]
    if not others:
        return 0, 0
    quads = [np.asarray(line.quad, np.float32) for line in others]
    before, after = (
        read_lines(original, quads, margins=(0.0,)),
        read_lines(erased, quads, margins=(0.0,)),
    )  # one batch each: the recognizer pads per batch; each line's own box, nothing around it
    return len(others), sum(normalized(a) != normalized(b) for (a, _), (b, _) in zip(before, after))


def _prominence_choice(detection: Detection) -> Detection:
    """The baseline's choice on the same detected lines: the most prominent text."""
    return choose_title(list(detection.lines), detection.image_size)


def real_table(count: int, methods: tuple[str, ...] = tuple(METHODS), seed: int = 0, misses: bool = False) -> str:
    """Title found, erased (no readable ghost), other text undamaged and the new title readable,
    per configuration inpainting with one of ``methods``, on ``count`` real posters with known
    titles."""
    if not (SHARED / "catalog.csv").is_file():
        return f"real-poster table skipped: {SHARED / 'catalog.csv'} not found (the Kaggle 'Movie Genre from its Poster' set)"
    rows = real_sample(count, seed)
    missed: dict[str, str] = {}
    configs = [config for config in REAL_CONFIGS if config.method in methods]
    stats = {config.name: collections.Counter() for config in configs}
    for number, row in enumerate(rows):
        with Image.open(SHARED / row["image"]) as image:
            original = np.asarray(image.convert("RGB"))
        by_text = detect_title(original, row["title"])
        by_prominence = _prominence_choice(by_text)
        german = vocab.title_in(number % vocab.title_count(), "de")
        for config in configs:
            count_ = stats[config.name]
            detection = by_text if config.by_text else by_prominence
            count_["posters"] += 1
            found = _found(detection, row["title"])
            if not found and config.by_text:
                missed[row["id"]] = (
                    f"| {row['id']} | {row['title']} | {detection.text} | {detection.how or 'refused'} |"
                )
            if not detection.found:
                continue
            count_["chosen"] += 1
            count_["found"] += found
            mask = title_mask(detection, original if config.glyphs else None)
            started = time.perf_counter()
            erased = inpaint(original, mask, config.method, exclude=other_text_mask(detection))
            count_["inpaint_ms"] += (time.perf_counter() - started) * 1000
            read, changed = _damaged(original, erased, detection)
            count_["other_lines"] += read
            count_["damaged"] += changed
            if found:
                ghost = match_title(_lines_in(erased, detection.title_box), row["title"])[1] >= GHOST_SIMILARITY
                count_["erased"] += not ghost
            look = (
                read_look(original, erased, mask, detection)
                if config.glyphs
                else TitleLook(title_color(original, erased, mask))
            )
            clean = CleanPoster(original, detection, mask, erased, look)
            try:
                rendered = localize(clean, german, "de")
            except CannotFit:
                count_["cannot_fit"] += 1
                continue
            count_["rendered"] += 1
            count_["size_ratio"] += rendered.layout.size / clean.line_height
            count_["readable"] += (
                match_title(_lines_in(np.asarray(rendered.image), rendered.box), german)[1] >= FOUND_SIMILARITY
            )
    table = [
        f"Real posters with known titles ({len(rows)}, sample seed {seed} of the catalogue rows with a title, "
        "182x268 px)",
        "",
        "| pipeline | title chosen | title found | erased (no ghost) of found | other text damaged | new title readable | "
        "new size / original line height | inpaint ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for config in configs:
        c = stats[config.name]
        table.append(
            f"| {config.name} | {c['chosen'] / c['posters']:.1%} | {c['found'] / c['posters']:.1%} | "
            f"{c['erased'] / max(1, c['found']):.1%} | {c['damaged'] / max(1, c['other_lines']):.1%} ({c['damaged']}/{c['other_lines']}) | "
            f"{c['readable'] / max(1, c['rendered']):.1%} | {c['size_ratio'] / max(1, c['rendered']):.2f} | "
            f"{c['inpaint_ms'] / max(1, c['chosen']):.0f} |"
        )
    if misses and missed:
        table += [
            "",
            "Titles not found (catalogue title text, else prominence)",
            "",
            "| id | catalogue title | chosen lines read | chosen by |",
            "|---|---|---|---|",
            *missed.values(),
        ]
    return "\n".join(table + [""])


def sheet_sample(count: int, measured: int) -> list[dict]:
    """Titled catalogue rows outside the ``measured`` real-poster sample, seeded."""
    taken = {row["id"] for row in real_sample(measured)}
    with (SHARED / "catalog.csv").open(encoding="utf-8") as handle:
        rest = [row for row in csv.DictReader(handle) if row["title"].strip() and row["id"] not in taken]
    return random.Random(2).sample(rest, count)


def _mask_tile(original: Image.Image, mask: np.ndarray) -> Image.Image:
    dimmed = (np.asarray(original) * 0.45).astype(np.uint8)
    dimmed[mask > 0] = (255, 0, 200)
    return Image.fromarray(dimmed)


def contact_sheet(path: Path, method: str, count: int = SHEET_POSTERS, per_row: int = 2) -> str:
    """Originals (chosen title box in green), the erase mask, and DE, JA, AR, HI variants, as one
    PNG, for the contact sheet's real posters (:data:`SHEET_MEASURED`)."""
    if not (SHARED / "catalog.csv").is_file():
        return f"contact sheet skipped: {SHARED / 'catalog.csv'} not found"
    tile_w, tile_h, gap = 137, 202, 6
    group_w = tile_w * (2 + len(SHEET_REGIONS)) + gap
    rows_needed = (count + per_row - 1) // per_row
    sheet = Image.new("RGB", (group_w * per_row, rows_needed * (tile_h + gap)), (255, 255, 255))
    found = 0
    for i, row in enumerate(sheet_sample(count, SHEET_MEASURED)):
        with Image.open(SHARED / row["image"]) as image:
            original = image.convert("RGB")
        tiles = [original.copy()]
        try:
            clean = clean_poster(original, method, row["title"])
            found += 1
            ImageDraw.Draw(tiles[0]).rectangle(
                [clean.box[0], clean.box[1], clean.box[2] - 1, clean.box[3] - 1], outline=(0, 255, 0), width=2
            )
            tiles.append(_mask_tile(original, clean.mask))
            number = i % vocab.title_count()
            for _, language in SHEET_REGIONS:
                try:
                    tiles.append(localize(clean, vocab.title_in(number, language), language).image)
                except CannotFit:
                    tiles.append(_note(original.size, "cannot fit"))
        except NoTitle:
            tiles += [_note(original.size, "refused: no title")] * (1 + len(SHEET_REGIONS))
        x, y = (i % per_row) * group_w, (i // per_row) * (tile_h + gap)
        for k, tile in enumerate(tiles):
            sheet.paste(tile.resize((tile_w, tile_h), Image.Resampling.LANCZOS), (x + k * tile_w, y))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG).save(
        path, optimize=True
    )
    return f"contact sheet: {path} ({path.stat().st_size / 1e6:.2f} MB); a title box was chosen on {found}/{count} real posters"


def _note(size: tuple[int, int], text: str) -> Image.Image:
    tile = Image.new("RGB", size, (235, 235, 235))
    ImageDraw.Draw(tile).text((8, size[1] // 2), text, fill=(120, 0, 0))
    return tile


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--count", type=int, default=48, help="demo posters to measure on (0: no demo tables; default 48)"
    )
    parser.add_argument(
        "--real", type=int, default=300, help="real posters with known titles to measure on (0: none; default 300)"
    )
    parser.add_argument(
        "--real-methods",
        default=",".join(METHODS),
        help="inpainters of the real-poster table, comma-separated (default: all)",
    )
    parser.add_argument(
        "--real-seed",
        type=int,
        default=0,
        help="0: the held-out sample; another seed: a tuning sample outside it and the contact sheet (default 0)",
    )
    parser.add_argument("--misses", action="store_true", help="also list the real posters whose title was not found")
    parser.add_argument("--contact-sheet", type=Path, help="also write the real-poster contact sheet here")
    parser.add_argument("--sheet-method", choices=sorted(METHODS), default="patchmatch")
    args = parser.parse_args(argv)
    unknown = set(args.real_methods.split(",")) - set(METHODS)
    if unknown:
        parser.error(f"--real-methods: unknown {sorted(unknown)}; expected some of {sorted(METHODS)}")
    if args.count:
        with tempfile.TemporaryDirectory() as folder:
            items = load_demo(args.count, Path(folder))
        print(detection_table(items))
        print(inpainting_table(items))
        print(rendering_table(items, "patchmatch"))
        print(style_table(items, "patchmatch"))
        print(throughput_table(items))
    if args.real:
        print(real_table(args.real, tuple(args.real_methods.split(",")), args.real_seed, args.misses))
    if args.contact_sheet:
        print(contact_sheet(args.contact_sheet, args.sheet_method))
    return 0


if __name__ == "__main__":
    sys.exit(main())
