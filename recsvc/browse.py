"""The browse page at ``/``: look at posters, their neighbours and their regional variants.

The grid is rendered on the server (title search, genre, region and variant
filters and pagination work without JavaScript); ``static/browse.js`` adds the
details dialog (similar posters, original beside each variant, all regions side
by side, downloads) with its own URL, the watch history with live
recommendations and search by an uploaded image, all through the public ``/v1``
API. Nothing here
ranks or looks anything up that ``/v1`` does not: the page is a client.

Grids show many posters at once, so they load ``/thumbs/<id>``: a small JPEG
made once per source file (kept in a bounded in-process cache) and served
with an ETag and ``Cache-Control``, so a browser revisiting a page of 10k
titles sends conditional requests that cost a 304.
"""

from __future__ import annotations

import functools
import io
import mimetypes
import os
from urllib.parse import urlencode

from flask import Blueprint, current_app, make_response, render_template, request, send_file, url_for
from PIL import Image, ImageOps, UnidentifiedImageError

from .catalog_api import (
    DEFAULT_PER_PAGE,
    ListingRequest,
    catalog_of,
    listing,
    parse_listing_request,
    regions_with_counts,
)
from .errors import ApiError, echoed, not_found
from .served import (
    ignore_range_unless_one_byte_range,
    image_etag,
    image_type_and_etag,
    image_unavailable,
    query_args,
    requested_image,
    served_index,
)

bp = Blueprint(
    "browse", __name__, template_folder="templates", static_folder="static", static_url_path="/static/browse"
)

THUMB_WIDTH = 240
"""Twice the grid's CSS column width (sharp on high-density screens); posters are about 2:3."""
THUMB_QUALITY = 80
THUMB_MAX_AGE = 86400
THUMB_CACHE_ENTRIES = 2048
"""About 15 KB each, so at most ~30 MB per worker; evicted thumbnails are simply made again."""
HISTORY_LIMIT = 50
RESULTS_K = 12
API_DOCS_RULE = "/v1/docs"


@functools.lru_cache(maxsize=THUMB_CACHE_ENTRIES)
def thumbnail_jpeg(path: str, mtime_ns: int, size: int) -> bytes:
    """A JPEG at most ``THUMB_WIDTH`` wide (never enlarged); the file's mtime and size key the cache."""
    with Image.open(path) as image:
        image.draft("RGB", (THUMB_WIDTH, THUMB_WIDTH * 2))  # JPEG sources decode at a reduced scale
        small = ImageOps.exif_transpose(image).convert("RGB")
    small.thumbnail((THUMB_WIDTH, THUMB_WIDTH * 3), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=THUMB_QUALITY, optimize=True, progressive=True)
    return buffer.getvalue()


@bp.get("/thumbs/<title_id>")
def thumbnail(title_id: str):
    """Like ``/v1/posters/<id>/image`` (same region fallback and headers), but small and cacheable."""
    wanted = requested_image(served_index(), title_id)
    chosen = wanted.chosen
    try:
        stat = os.stat(chosen.image_path)
        data = thumbnail_jpeg(chosen.image_path, stat.st_mtime_ns, stat.st_size)
    except (OSError, UnidentifiedImageError) as err:
        raise image_unavailable(chosen) from err
    response = make_response(data)
    response.mimetype = "image/jpeg"
    response.set_etag(image_etag(chosen, stat, f"thumbnail {THUMB_WIDTH}"))
    response.cache_control.public = True
    response.cache_control.max_age = THUMB_MAX_AGE
    return wanted.label(response).make_conditional(request)


@bp.get("/download/<title_id>")
def download(title_id: str):
    """The full image of a poster (``?region=``: its variant there, 404 if it has none) as an attachment named
    ``<id>-<region or "original">.<extension>``, so the files saved from one poster do not overwrite each other."""
    wanted = requested_image(served_index(), title_id)
    if wanted.region and not wanted.variant:
        raise not_found(f"poster {echoed(title_id)} has no {wanted.region} variant")
    path = wanted.chosen.image_path
    ignore_range_unless_one_byte_range()
    try:
        mimetype, etag = image_type_and_etag(wanted.chosen)
        name = f"{title_id}-{wanted.region or 'original'}{mimetypes.guess_extension(mimetype) or ''}"
        return send_file(
            path,
            mimetype=mimetype,
            as_attachment=True,
            download_name=name,
            conditional=True,
            etag=etag,
            max_age=THUMB_MAX_AGE,
        )
    except OSError:  # UnidentifiedImageError included
        raise image_unavailable(wanted.chosen) from None


def page_url(req: ListingRequest, page: int) -> str:
    """The page's own URL for another page of the same listing (empty parameters left out)."""
    query = {
        "q": req.query,
        "genre": req.genre,
        "region": req.region,
        "has_variant": None if req.has_variant is None else str(req.has_variant).lower(),
        "per_page": req.per_page if req.per_page != DEFAULT_PER_PAGE else None,
        "page": page if page > 1 else None,
    }
    return url_for("browse.page", **{name: value for name, value in query.items() if value})


VIEW_PARAMETERS = ("poster", "compare", "view")
"""The details dialog's state in the page's URL; browse.js reads and writes them, the server ignores them."""


def poster_link_prefix() -> str:
    """This page's URL with ``poster=`` last, for a card's link to its details (the poster's id is appended)."""
    kept = [(name, value) for name, value in request.args.items(multi=True) if name not in VIEW_PARAMETERS]
    return "?" + urlencode([*kept, ("poster", "")])


def client_config() -> dict:
    """What browse.js needs: the roots of its URLs (so the page also works mounted under a prefix) and its limits."""
    root = request.script_root
    return {
        "apiRoot": f"{root}/v1",
        "thumbRoot": f"{root}/thumbs",
        "downloadRoot": f"{root}/download",
        "historyLimit": HISTORY_LIMIT,
        "k": RESULTS_K,
    }


def api_docs_url() -> str | None:
    """The interactive API documentation's URL when this app serves one."""
    return (
        f"{request.script_root}{API_DOCS_RULE}"
        if any(r.rule == API_DOCS_RULE for r in current_app.url_map.iter_rules())
        else None
    )


@bp.get("/")
def page():
    live = current_app.extensions["posterrec"]
    index = live.index
    if index is None:
        return render_template("browse_unavailable.html"), 503
    error = None
    try:
        req = parse_listing_request(query_args(), index)
    except ApiError as err:  # a stale or hand-edited URL: show the first page and say what was wrong
        error = err.detail
        req = parse_listing_request({}, index)
    found = listing(index, req)
    past_end = found.page > found.pages
    catalog = catalog_of(index)
    response = make_response(
        render_template(
            "browse.html",
            index=index,
            req=req,
            found=found,
            error=error,
            past_end=past_end,
            titles=len(catalog.entries),
            genres=catalog.genres,
            regions=regions_with_counts(index),
            aggregation=current_app.config["POSTERREC_AGGREGATION"],
            api_docs_url=api_docs_url(),
            prev_url=page_url(req, min(found.page - 1, found.pages)) if found.page > 1 else None,
            next_url=page_url(req, found.page + 1) if found.page < found.pages else None,
            default_per_page=DEFAULT_PER_PAGE,
            config=client_config(),
            poster_link=poster_link_prefix(),
        ),
        400 if error else 404 if past_end else 200,
    )
    response.cache_control.no_cache = True
    return response
