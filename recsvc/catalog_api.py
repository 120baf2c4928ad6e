"""``GET /v1/posters`` and ``GET /v1/genres``: browsing the catalogue of the served index.

The rest of ``/v1`` answers questions about one poster; a browser also needs
to list them: search by title, filter by genre and by whether a title has a
variant in a region, one page at a time. The listing is computed from the served index snapshot (originals only, variants
are reported per title as ``variant_regions``), so it always agrees with what
``/similar`` and ``/recommendations`` can return. ``GET /v1/docs`` is the
interactive API documentation (Swagger UI from the swagger-ui-bundle package,
reading ``/v1/openapi.json``). The sorted catalogue is
built once per index version and cached with its per-genre lists and variant
counts, so a request over 10k titles costs at most one scan of precomputed
lower-case titles.
"""

from __future__ import annotations

import dataclasses
import weakref

from flask import Blueprint, jsonify, render_template, send_from_directory
from swagger_ui_bundle import swagger_ui_path

from indexer.published import IndexItem, PublishedIndex

from . import params
from .errors import bad_request, echoed
from .live_index import built_frozen
from .params import DEFAULT_PER_PAGE, MAX_PAGE, MAX_PER_PAGE
from .served import image_url, known_regions, query_args, served_index

bp = Blueprint("catalog", __name__, url_prefix="/v1")

MAX_QUERY_CHARS = 200


@dataclasses.dataclass(frozen=True)
class CatalogEntry:
    item: IndexItem
    folded_title: str
    variant_regions: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class BrowseListing:
    """An index version's titles in listing order, grouped by genre and by region, built once per version."""

    entries: tuple[CatalogEntry, ...]
    by_genre: dict[str, tuple[CatalogEntry, ...]]
    """Genre -> its titles in listing order, alphabetical by genre; a genre filter is a lookup, not a scan."""
    by_region: dict[str, tuple[CatalogEntry, ...]]
    """Region -> its titles with a variant there, in listing order."""

    @property
    def variant_counts(self) -> dict[str, int]:
        """Region -> number of variants in the index (one per title at most)."""
        return {region: len(entries) for region, entries in self.by_region.items()}

    @property
    def genres(self) -> dict[str, int]:
        """Genre -> number of titles."""
        return {genre: len(entries) for genre, entries in self.by_genre.items()}


@dataclasses.dataclass(frozen=True)
class Page:
    entries: list[CatalogEntry]
    total: int
    page: int
    per_page: int
    covered: int | None = None
    """With a region: how many titles matching the title and genre filters have a variant there."""
    matching: int | None = None
    """With a region: how many titles match the title and genre filters, before ``has_variant``."""

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


_CATALOGS: weakref.WeakKeyDictionary[PublishedIndex, BrowseListing] = weakref.WeakKeyDictionary()
"""Per index snapshot; weak, so a swapped-out version (and its vectors) is freed, not kept for the listing."""


def catalog_of(index: PublishedIndex) -> BrowseListing:
    """The browsable catalogue of ``index``, built on first use (two racing builds are equal, either wins).

    Built after the index was frozen out of the cyclic collector, it is frozen the same way: left tracked, the
    entries of a 1M-title catalogue made every full collection take 150–180 ms. Built only when a listing asks,
    because a worker that serves no listing should not hold it (5.6 s and a million entries on the bench index),
    or beside the load of a version whose predecessor was listed (:func:`carry_catalog`).
    """
    catalog = _CATALOGS.get(index)
    if catalog is None:
        catalog = _CATALOGS[index] = built_frozen(lambda: build_catalog(index))
    return catalog


def carry_catalog(fresh: PublishedIndex, served: PublishedIndex | None) -> None:
    """A :data:`live_index.Preparer`: build ``fresh``'s catalogue before it is swapped in when ``served`` had one,
    so that after a rebuild the first listing of a worker where people browse does not wait for it (5.6 s on the
    1M bench index), while a worker that never listed still holds none."""
    if served is not None and served in _CATALOGS:
        catalog_of(fresh)


def build_catalog(index: PublishedIndex) -> BrowseListing:
    """Originals sorted by title then year, each with the regions it has variants for."""
    regions = {title_id: [v.region for v in index.variants_of(title_id)] for title_id in index.rows_of_title}
    originals = sorted(
        (item for item in index.items if not item.is_variant),
        key=lambda item: (item.title.casefold(), item.year or 0, item.title_id),
    )
    entries = tuple(
        CatalogEntry(item, item.title.casefold(), tuple(sorted(regions.get(item.title_id, ())))) for item in originals
    )
    by_genre: dict[str, list[CatalogEntry]] = {}
    for entry in entries:
        for genre in entry.item.genres:
            by_genre.setdefault(genre, []).append(entry)
    by_region: dict[str, list[CatalogEntry]] = {}
    for entry in entries:
        for region in entry.variant_regions:
            by_region.setdefault(region, []).append(entry)
    return BrowseListing(
        entries, {g: tuple(by_genre[g]) for g in sorted(by_genre)}, {r: tuple(e) for r, e in by_region.items()}
    )


def find_page(catalog: BrowseListing, req: ListingRequest) -> Page:
    """Titles containing every word of ``req.query`` (case-insensitive), tagged ``req.genre`` and, when
    ``req.has_variant`` is set, with (True) or without (False) a variant in ``req.region``; one page of them."""
    candidates = catalog.entries if req.genre is None else catalog.by_genre[req.genre]
    for word in req.query.casefold().split():  # each word narrows the previous matches: no per-title generator
        candidates = [entry for entry in candidates if word in entry.folded_title]
    covered = matching = None
    if req.region is not None:
        if (
            req.genre is None and not req.query.strip()
        ):  # the whole catalogue: its titles with a variant are listed already
            with_variant = catalog.by_region.get(req.region, ())
        else:
            with_variant = [entry for entry in candidates if req.region in entry.variant_regions]
        covered, matching = len(with_variant), len(candidates)
        if req.has_variant is True:
            candidates = with_variant
        elif req.has_variant is False:
            candidates = [entry for entry in candidates if req.region not in entry.variant_regions]
    start = (req.page - 1) * req.per_page
    return Page(
        list(candidates[start : start + req.per_page]), len(candidates), req.page, req.per_page, covered, matching
    )


def parse_genre(raw: str | None, catalog: BrowseListing) -> str | None:
    if raw is None or raw == "":
        return None
    if raw not in catalog.by_genre:
        raise bad_request(f"unknown genre {echoed(raw)}; known genres: {', '.join(catalog.by_genre) or 'none'}")
    return raw


def parse_query(raw: str | None) -> str:
    query = (raw or "").strip()
    if len(query) > MAX_QUERY_CHARS:
        raise bad_request(f"q must be at most {MAX_QUERY_CHARS} characters, got {len(query)}")
    return query


HAS_VARIANT_VALUES = {"true": True, "false": False}


def parse_has_variant(raw: str | None, region: str | None) -> bool | None:
    """``has_variant=true|false`` keeps the titles with or without a variant in the listing's region; empty: all."""
    if raw is None or raw == "":
        return None
    if raw not in HAS_VARIANT_VALUES:
        raise bad_request(f"has_variant must be true or false, got {echoed(raw)}")
    if region is None:
        raise bad_request("has_variant needs a region: it keeps titles with (or without) a variant in that region")
    return HAS_VARIANT_VALUES[raw]


@dataclasses.dataclass(frozen=True)
class ListingRequest:
    query: str
    genre: str | None
    page: int
    per_page: int
    region: str | None
    has_variant: bool | None = None


def parse_listing_request(args, index: PublishedIndex) -> ListingRequest:
    """``q``, ``genre``, ``page``, ``per_page``, ``region`` and ``has_variant`` of a listing, shared by the API and the page."""
    region = params.parse_region(args.get("region"))
    return ListingRequest(
        query=parse_query(args.get("q")),
        genre=parse_genre(args.get("genre"), catalog_of(index)),
        page=params.parse_int_in_range(
            args.get("page") or None, "page", MAX_PAGE, 1, text=True
        ),  # an empty field means the default
        per_page=params.parse_int_in_range(
            args.get("per_page") or None, "per_page", MAX_PER_PAGE, DEFAULT_PER_PAGE, text=True
        ),
        region=region,
        has_variant=parse_has_variant(args.get("has_variant"), region),
    )


def listing(index: PublishedIndex, req: ListingRequest) -> Page:
    return find_page(catalog_of(index), req)


def entry_json(entry: CatalogEntry, region: str | None) -> dict:
    """One title as listed; with ``region``, ``image_url`` is its variant's when it has one."""
    item = entry.item
    shown = region if region in entry.variant_regions else None
    return {
        "id": item.title_id,
        "title": item.title,
        "year": item.year,
        "genres": list(item.genres),
        "image_url": image_url(item.title_id, shown),
        "region": shown,
        "variant_regions": list(entry.variant_regions),
    }


@bp.get("/posters")
def posters():
    index = served_index()
    req = parse_listing_request(query_args(), index)
    page = listing(index, req)
    return jsonify(
        index_version=index.version,
        q=req.query,
        genre=req.genre,
        region=req.region,
        has_variant=req.has_variant,
        page=page.page,
        per_page=page.per_page,
        pages=page.pages,
        total=page.total,
        with_variant=page.covered,
        results=[entry_json(entry, req.region) for entry in page.entries],
    )


@bp.get("/genres")
def genres():
    index = served_index()
    catalog = catalog_of(index)
    return jsonify(index_version=index.version, genres=[{"genre": g, "titles": n} for g, n in catalog.genres.items()])


def regions_with_counts(index: PublishedIndex) -> list[tuple[str, int]]:
    """Every accepted region code with its number of variants (one per title at most), most variants first."""
    counts = catalog_of(index).variant_counts
    return sorted(
        ((region, counts.get(region, 0)) for region in known_regions(index)), key=lambda pair: (-pair[1], pair[0])
    )


@bp.get("/docs")
def docs():
    """Swagger UI over ``/v1/openapi.json``: every endpoint, its parameters, and a form to try it."""
    return render_template("api_docs.html")


@bp.get("/docs/<any('swagger-ui.css', 'swagger-ui-bundle.js'):name>")
def docs_asset(name: str):
    return send_from_directory(swagger_ui_path, name, max_age=86400)
