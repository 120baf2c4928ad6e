"""The batch job: every (poster, region) of a localized-titles CSV made, saved and registered.

Guarantees, because it runs over thousands of posters and gets interrupted:

- idempotent: a variant whose stored title, language and source image hash
  match, and whose image file still has the stored hash, is "up to date" and
  not redone;
- resumable: each variant is written to a temporary name, renamed, then
  registered in the store in its own transaction, so after a kill the next
  run redoes only what was missing and deletes the temporary files the
  killed run left;
- never silent: every row that is not made is listed with its reason (not in
  the store, no title found, title cannot fit, unreadable image, localization
  failed, bad CSV row), in the summary and in ``<out>/skipped.csv``.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import hashlib
import logging
from collections.abc import Iterable
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from indexer.regions import is_region_code
from indexer.store import Store, Title, Variant
from posterrec_atomic import remove_stale_temporaries, save_image, write_csv

from .inpaint import DEFAULT_METHOD
from .pipeline import CleanPoster, NotAPoster, NoTitle, clean_poster, localize, review_sheet
from .render import CannotFit, Rendered

log = logging.getLogger(__name__)

TITLES_COLUMNS = ("id", "region", "language", "title")


class TitlesFileError(ValueError):
    """The localized-titles CSV as a whole cannot be read."""


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

    def __str__(self) -> str:
        reasons = collections.Counter(skip.reason.split(":")[0] for skip in self.skipped)
        lines = [f"{self.made} variant(s) made, {self.up_to_date} up to date, {len(self.skipped)} skipped"]
        lines += [f"  skipped {count}x: {reason}" for reason, count in reasons.most_common()]
        return "\n".join(lines)


def read_requests(path: Path, regions: set[str] | None) -> tuple[list[Request], list[Skip]]:
    """Rows of the titles CSV for ``regions`` (all when None); bad rows come back as skips."""
    try:
        handle = path.open(encoding="utf-8", newline="")
    except OSError as err:
        raise TitlesFileError(f"titles file {path} cannot be opened: {err.strerror or err}") from None
    requests, skips = [], []
    with handle:
        reader = csv.DictReader(handle)
        missing = [column for column in TITLES_COLUMNS if column not in (reader.fieldnames or [])]
        if missing:
            raise TitlesFileError(
                f"titles file {path}: header lacks column(s) {', '.join(missing)} (found {reader.fieldnames})"
            )
        try:
            for record in reader:
                values = {key: (record.get(key) or "").strip() for key in TITLES_COLUMNS}
                region = values["region"].upper()
                if regions is not None and region not in regions:
                    continue
                empty = [key for key, value in values.items() if not value]
                if empty:
                    skips.append(
                        Skip(values["id"], region, f"bad row: line {reader.line_num} has empty {', '.join(empty)}")
                    )
                    continue
                if not is_region_code(region):
                    skips.append(
                        Skip(
                            values["id"],
                            region,
                            f"bad row: line {reader.line_num} has region {region!r}, not a two-letter region code",
                        )
                    )
                    continue
                requests.append(Request(reader.line_num, values["id"], region, values["language"], values["title"]))
        except UnicodeDecodeError as err:
            raise TitlesFileError(f"titles file {path} is not UTF-8: {err}") from None
    return requests, skips


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def is_up_to_date(variant: Variant | None, parent: Title, request: Request) -> bool:
    return (
        variant is not None
        and variant.title == request.title
        and variant.language == request.language
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
    except Exception as err:
        log.exception("rendering %r (%s) failed", title, language)
        raise PosterSkipped(f"localization failed: {type(err).__name__}: {err}") from err


def variant_path(out_dir: Path, region: str, parent_id: str) -> Path:
    return out_dir / region / f"{parent_id}.png"


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
    pending region onto it; with ``review``, also save ``<out>/review/<id>.png`` (original,
    mask, variants)."""
    try:
        clean = clean_poster_file(parent.image_path, method, parent.title)
    except PosterSkipped as skip:
        summary.skipped += [Skip(parent.id, r.region, skip.reason) for r in requests]
        return
    made = []
    for request in requests:
        try:
            rendered = render_variant(clean, request.title, request.language)
        except PosterSkipped as skip:
            summary.skipped.append(Skip(parent.id, request.region, skip.reason))
            continue
        made.append(rendered.image)
        path = save_image(rendered.image, variant_path(out_dir, request.region, parent.id))
        store.upsert_variant(
            parent.id, request.region, request.language, request.title, path, source_sha256=parent.image_sha256
        )
        log.debug("made %s (%d px, %d line(s))", path, rendered.layout.size, len(rendered.layout.lines))
        summary.made += 1
    if review and made:
        save_image(review_sheet(clean, made), out_dir / "review" / f"{parent.id}.png")


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
    ``review`` also writes a contact sheet per poster made under ``<out>/review/``."""
    wanted = {region.strip().upper() for region in regions} if regions else None
    requests, skips = read_requests(Path(titles_csv), wanted)
    if Path(out_dir).is_dir():
        remove_stale_temporaries(out_dir)
    summary = BatchSummary(skipped=skips)
    parents = {title.id: title for title in store.titles()}
    existing = {(v.parent_id, v.region): v for v in store.variants()}
    pending: dict[str, list[Request]] = collections.defaultdict(list)
    for request in requests:
        parent = parents.get(request.id)
        if parent is None:
            summary.skipped.append(
                Skip(request.id, request.region, f"not in the store: line {request.line} names an id the store lacks")
            )
        elif is_up_to_date(existing.get((request.id, request.region)), parent, request):
            summary.up_to_date += 1
        else:
            pending[request.id].append(request)
    for parent_id, parent_requests in tqdm(pending.items(), desc="localizing", unit="poster", disable=not progress):
        _make_variants(store, parents[parent_id], parent_requests, Path(out_dir), method, summary, review)
        summary.posters += 1
    write_csv(
        Path(out_dir) / "skipped.csv", ("id", "region", "reason"), [(s.id, s.region, s.reason) for s in summary.skipped]
    )
    return summary
