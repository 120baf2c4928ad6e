"""The batch job: every (poster, region) of a localized-titles CSV made, saved and registered.

Guarantees, because it runs over thousands of posters and gets interrupted:

- idempotent: a variant whose stored title, language and source image hash
  match, and whose image file in the output folder still has the stored hash,
  is "up to date" and not redone;
- resumable: each variant is written to a temporary name, renamed, then
  registered in the store in its own transaction, so after a kill the next
  run redoes only what was missing and deletes the temporary files the
  killed run left;
- never silent: every row that is not made is listed with its reason (not in
  the store, no title found, title cannot fit, title cannot be drawn in its
  language's font, unreadable image, localization failed, bad CSV row), in the
  summary and in ``<out>/skipped.csv``.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import hashlib
import logging
import os
from collections.abc import Collection, Iterable
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from indexer.regions import is_assigned_region
from indexer.store import Store, Title, Variant
from posterrec_atomic import not_a_folder, remove_stale_temporaries, save_image, write_csv

from .fonts import canonical_language, is_language_code
from .inpaint import DEFAULT_METHOD
from .pipeline import CleanPoster, NotAPoster, NoTitle, clean_poster, localize, review_sheet
from .render import CannotFit, MissingGlyphs, Rendered

log = logging.getLogger(__name__)

TITLES_COLUMNS = ("id", "region", "language", "title")


class TitlesFileError(ValueError):
    """The localized-titles CSV as a whole cannot be read."""


class OutputDirError(ValueError):
    """The folder the variants go to cannot be made or written."""


@dataclasses.dataclass(frozen=True)
class Request:
    line: int
    id: str
    region: str
    language: str
    title: str


@dataclasses.dataclass(frozen=True)
class Skip:
    id: str
    region: str
    reason: str

    def __str__(self) -> str:
        return f"{self.id or '?'} {self.region or '?'}: {self.reason}"


class PosterSkipped(Exception):
    """A poster or one of its regions is not localized; ``reason`` is what ``skipped.csv`` lists."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass
class BatchSummary:
    made: int = 0
    up_to_date: int = 0
    skipped: list[Skip] = dataclasses.field(default_factory=list)
    posters: int = 0
    regions_without_rows: list[str] = dataclasses.field(default_factory=list)
    """Regions asked for (``regions``) that no row of the titles CSV names."""
    interrupted: bool = False
    """The run was interrupted; the variants made before it are registered, the rest are not counted."""

    def __str__(self) -> str:
        reasons = collections.Counter(skip.reason.split(":")[0] for skip in self.skipped)
        lines = [f"{self.made} variant(s) made, {self.up_to_date} up to date, {len(self.skipped)} skipped"]
        lines += [f"  skipped {count}x: {reason}" for reason, count in reasons.most_common()]
        if self.regions_without_rows:
            lines.append(f"  no row of the titles file is for region(s) {', '.join(self.regions_without_rows)}")
        if self.interrupted:
            lines.append("  interrupted: the variants made so far are registered; run the same command to finish")
        return "\n".join(lines)


def read_requests(path: Path, regions: set[str] | None) -> tuple[list[Request], list[Skip]]:
    """Rows of the titles CSV (UTF-8, with or without a byte-order mark) for ``regions`` (all when None);
    bad rows, and rows repeating an earlier row's id and region, come back as skips.

    Raises:
        TitlesFileError: the file cannot be opened, is not UTF-8, or its header lacks a column.
    """
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as err:
        raise TitlesFileError(f"titles file {path} cannot be opened: {err.strerror or err}") from None
    requests, skips = [], []
    first_line: dict[tuple[str, str], int] = {}
    with handle:
        try:
            reader = csv.DictReader(handle)
            missing = [column for column in TITLES_COLUMNS if column not in (reader.fieldnames or [])]
            if missing:
                found = ", ".join(reader.fieldnames) if reader.fieldnames else "an empty file"
                raise TitlesFileError(
                    f"titles file {path}: header lacks column(s) {', '.join(missing)} (found {found}; the header is "
                    f"{','.join(TITLES_COLUMNS)})"
                )
            for record in reader:
                values = {key: (record.get(key) or "").strip() for key in TITLES_COLUMNS}
                region = values["region"].upper()
                if regions is not None and region not in regions:
                    continue
                problem = _row_problem(values, region, first_line)
                if problem:
                    skips.append(Skip(values["id"], region, f"bad row: line {reader.line_num} {problem}"))
                    continue
                first_line[values["id"], region] = reader.line_num
                language = canonical_language(values["language"])
                requests.append(Request(reader.line_num, values["id"], region, language, values["title"]))
        except UnicodeDecodeError as err:
            raise TitlesFileError(
                f"titles file {path} is not UTF-8 ({err}): save it as UTF-8 (in Excel, as CSV UTF-8)"
            ) from None
    return requests, skips


def _row_problem(values: dict[str, str], region: str, first_line: dict[tuple[str, str], int]) -> str:
    """What is wrong with a titles row (``""`` when nothing): an empty field, a region ISO 3166-1 does not
    assign, a language that is not a language code, or an id and region an earlier row (its line in
    ``first_line``) already asked for."""
    empty = [key for key, value in values.items() if not value]
    if empty:
        return f"has empty {', '.join(empty)}"
    if not is_assigned_region(region):
        return f"has region {region!r}, not an ISO 3166-1 country code (such as DE, JP, GB)"
    if not is_language_code(values["language"]):
        return f"has language {values['language']!r}, not a BCP-47 language code (such as de, ja, zh-Hant)"
    if (values["id"], region) in first_line:
        return f"repeats the id and region of line {first_line[values['id'], region]}"
    return ""


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def is_up_to_date(variant: Variant | None, parent: Title, request: Request, path: Path) -> bool:
    """Whether ``variant`` (the stored one, if any) is what ``request`` asks for, made from ``parent``'s
    current image and saved at ``path`` with its stored hash."""
    return (
        variant is not None
        and Path(variant.image_path) == path.resolve()
        and variant.title == request.title
        and canonical_language(variant.language) == request.language
        and variant.source_sha256 == parent.image_sha256
        and _sha256(Path(variant.image_path)) == variant.image_sha256
    )


def clean_poster_file(path: Path | str, method: str, catalogue_title: str | None) -> CleanPoster:
    """:func:`clean_poster` on an image file.

    Raises:
      PosterSkipped: no title was found, the image is not poster-shaped, the file cannot be
        read or decoded, or cleaning failed on this poster (logged with its traceback): one poster never stops a batch.
    """
    try:
        with Image.open(path) as image:
            return clean_poster(image, method, catalogue_title)
    except NoTitle as err:
        raise PosterSkipped(f"no title found: {err}") from err
    except NotAPoster as err:
        raise PosterSkipped(f"not a poster: {err}") from err
    except OSError as err:
        raise PosterSkipped(f"unreadable poster image: {err}") from err
    except Exception as err:
        log.exception("cleaning the poster %s failed", path)
        raise PosterSkipped(f"localization failed: {type(err).__name__}: {err}") from err


def render_variant(clean: CleanPoster, title: str, language: str) -> Rendered:
    """:func:`localize` ``title`` onto ``clean``.

    Raises:
      PosterSkipped: the title cannot fit the poster, or rendering it failed (logged).
    """
    try:
        return localize(clean, title, language)
    except CannotFit as err:
        raise PosterSkipped(f"title cannot fit: {err}") from err
    except MissingGlyphs as err:
        raise PosterSkipped(f"title cannot be drawn: {err}") from err
    except Exception as err:
        log.exception("rendering %r (%s) failed", title, language)
        raise PosterSkipped(f"localization failed: {type(err).__name__}: {err}") from err


def variant_path(out_dir: Path, region: str, parent_id: str) -> Path:
    return out_dir / region / f"{parent_id}.png"


def review_path(out_dir: Path, parent_id: str) -> Path:
    return out_dir / "review" / f"{parent_id}.png"


def _make_variants(
    store: Store,
    parent: Title,
    requests: list[Request],
    out_dir: Path,
    method: str,
    summary: BatchSummary,
    review: bool = False,
) -> None:
    """Clean the poster once (its title found by the catalogue's title text) and render every
    pending region onto it; with ``review``, also save its :func:`save_review_sheet`."""
    try:
        clean = clean_poster_file(parent.image_path, method, parent.title)
    except PosterSkipped as skip:
        summary.skipped += [Skip(parent.id, r.region, skip.reason) for r in requests]
        return
    for request in requests:
        try:
            rendered = render_variant(clean, request.title, request.language)
        except PosterSkipped as skip:
            summary.skipped.append(Skip(parent.id, request.region, skip.reason))
            continue
        path = save_image(rendered.image, variant_path(out_dir, request.region, parent.id))
        store.upsert_variant(
            parent.id, request.region, request.language, request.title, path, source_sha256=parent.image_sha256
        )
        log.debug("made %s (%d px, %d line(s))", path, rendered.layout.size, len(rendered.layout.lines))
        summary.made += 1
    if review:
        save_review_sheet(store, parent, clean, out_dir)


def save_review_sheet(store: Store, parent: Title, clean: CleanPoster, out_dir: Path) -> Path:
    """``<out>/review/<id>.png``: the original, its erase mask and every variant of it registered in
    ``out_dir``, each captioned with its region and language."""
    variants = []
    for variant in store.variants(parent.id):
        if Path(variant.image_path) == variant_path(out_dir, variant.region, parent.id).resolve():
            with Image.open(variant.image_path) as image:
                variants.append((f"{variant.region} {variant.language}", image.convert("RGB")))
    return save_image(review_sheet(clean, variants), review_path(out_dir, parent.id))


def pending_requests(
    requests: list[Request], parents: dict[str, Title], existing: dict[tuple[str, str], Variant], out_dir: Path
) -> tuple[dict[str, list[Request]], int, list[Skip]]:
    """The requests still to make, grouped by poster id; how many are up to date (:func:`is_up_to_date`
    at their path under ``out_dir``); and skips for ids not among the store's ``parents``."""
    pending: dict[str, list[Request]] = collections.defaultdict(list)
    up_to_date, skips = 0, []
    for request in requests:
        parent = parents.get(request.id)
        if parent is None:
            skips.append(
                Skip(request.id, request.region, f"not in the store: line {request.line} names an id the store lacks")
            )
        elif is_up_to_date(
            existing.get((request.id, request.region)),
            parent,
            request,
            variant_path(out_dir, request.region, request.id),
        ):
            up_to_date += 1
        else:
            pending[request.id].append(request)
    return pending, up_to_date, skips


def prepare_out_dir(out_dir: Path) -> None:
    """Make ``out_dir`` if needed and remove the temporary files a killed run left in it.

    Raises:
        OutputDirError: it cannot be made or written (a file of that name, no permission, a read-only disk).
    """
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        reason = not_a_folder(out_dir) or err.strerror or err
        raise OutputDirError(f"output folder {out_dir} cannot be made: {reason}") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise OutputDirError(f"output folder {out_dir} cannot be written to (permissions or a read-only disk)")
    remove_stale_temporaries(out_dir)


def wanted_regions(regions: Iterable[str] | None) -> set[str] | None:
    """The regions a run is limited to, upper-case; None (every region) when none are given."""
    return {region.strip().upper() for region in regions} if regions else None


def noting_earlier_variants(skips: list[Skip], registered: Collection[tuple[str, str]]) -> list[Skip]:
    """``skips``, where the (id, region) already has a variant in ``registered``, saying that it stays
    registered (and served) until a run replaces it."""
    return [
        dataclasses.replace(skip, reason=f"{skip.reason}; the variant registered before stays")
        if (skip.id, skip.region) in registered
        else skip
        for skip in skips
    ]


def regions_without_rows(wanted: set[str] | None, requests: list[Request], skips: list[Skip]) -> list[str]:
    """The regions of ``wanted`` that no row of the titles CSV (made into ``requests`` or ``skips``) names."""
    named = {request.region for request in requests} | {skip.region for skip in skips}
    return sorted((wanted or set()) - named)


def run_batch(
    store: Store,
    titles_csv: Path,
    out_dir: Path,
    regions: Iterable[str] | None = None,
    method: str = DEFAULT_METHOD,
    progress: bool = True,
    review: bool = False,
) -> BatchSummary:
    """Make every missing or outdated variant the titles CSV asks for; see the module doc.
    ``review`` also writes a contact sheet under ``<out>/review/`` per poster made or without one. An interrupt (Ctrl-C)
    stops after the variants made so far, which stay registered, and the summary says so.

    Raises:
        TitlesFileError: the titles CSV cannot be read.
        OutputDirError: ``out_dir`` cannot be made or written.
    """
    out_dir = Path(out_dir)
    wanted = wanted_regions(regions)
    requests, skips = read_requests(Path(titles_csv), wanted)
    prepare_out_dir(out_dir)
    parents = {title.id: title for title in store.titles()}
    existing = {(v.parent_id, v.region): v for v in store.variants()}
    pending, up_to_date, unknown = pending_requests(requests, parents, existing, out_dir)
    if review:  # a poster whose variants are up to date but whose sheet is missing is cleaned again for it
        for request in requests:
            if request.id in parents and not review_path(out_dir, request.id).is_file():
                pending.setdefault(request.id, [])
    summary = BatchSummary(
        up_to_date=up_to_date,
        skipped=skips + unknown,
        regions_without_rows=regions_without_rows(wanted, requests, skips),
    )
    try:
        for parent_id, parent_requests in tqdm(pending.items(), desc="localizing", unit="poster", disable=not progress):
            _make_variants(store, parents[parent_id], parent_requests, out_dir, method, summary, review)
            summary.posters += 1
    except KeyboardInterrupt:
        summary.interrupted = True
    summary.skipped = noting_earlier_variants(summary.skipped, existing)
    write_skip_list(out_dir, summary.skipped, wanted)
    return summary


SKIP_LIST_COLUMNS = ("id", "region", "reason")


def write_skip_list(out_dir: Path, skips: list[Skip], regions: set[str] | None) -> Path:
    """``<out>/skipped.csv``: ``skips``, after what the file listed for regions a run limited to ``regions``
    (upper-case; None: every region) left alone, so that it holds each region's last run."""
    path = out_dir / "skipped.csv"
    kept: list[tuple[str, str, str]] = []
    if regions is not None and path.is_file():
        try:
            with path.open(encoding="utf-8", newline="") as handle:
                kept = [tuple(row[c] for c in SKIP_LIST_COLUMNS) for row in csv.DictReader(handle)]
        except (OSError, UnicodeDecodeError, KeyError, csv.Error) as err:
            log.warning("the earlier skip list %s is not read (%s); it is replaced", path, err)
        kept = [row for row in kept if row[1] not in regions]
    return write_csv(path, SKIP_LIST_COLUMNS, kept + [(s.id, s.region, s.reason) for s in skips])
