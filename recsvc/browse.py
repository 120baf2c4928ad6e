"""The browse page at ``/``: look at posters, their neighbours and their regional variants.

The grid is rendered on the server (search, genre filter and pagination work
without JavaScript); ``static/browse.js`` adds the details dialog with similar
posters, the region switch, the watch history with live recommendations and
the before/after comparison, all through the public ``/v1`` API. Nothing here
ranks or looks anything up that ``/v1`` does not: the page is a client.

Grids show many posters at once, so they load ``/thumbs/<id>``: a small JPEG
made once per source file (kept in a bounded in-process cache) and served
with an ETag and ``Cache-Control``, so a browser revisiting a page of 10k
titles sends conditional requests that cost a 304.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os

from flask import Blueprint, current_app, make_response, render_template, request, url_for
from PIL import Image, ImageOps, UnidentifiedImageError

from .api import requested_image, served_index
from .catalog_api import DEFAULT_PER_PAGE, ListingRequest, catalog_of, listing, parse_listing_request, regions_with_counts
from .errors import ApiError

bp = Blueprint("browse", __name__, template_folder="templates", static_folder="static", static_url_path="/static/browse")

THUMB_WIDTH = 240
"""Twice the grid's CSS column width (sharp on high-density screens); posters are about 2:3."""
THUMB_QUALITY = 80
THUMB_MAX_AGE = 86400
THUMB_CACHE_ENTRIES = 2048
"""About 15 KB each, so at most ~30 MB per worker; evicted thumbnails are simply made again."""
HISTORY_LIMIT = 50
RESULTS_K = 12


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
        raise ApiError(503, "image_unavailable", f"the image file of {chosen.key} cannot be read on this server: {err}")
    response = make_response(data)
    response.mimetype = "image/jpeg"
    response.set_etag(hashlib.sha1(f"{chosen.key}:{stat.st_mtime_ns}:{stat.st_size}:{THUMB_WIDTH}".encode()).hexdigest())
    response.cache_control.public = True
    response.cache_control.max_age = THUMB_MAX_AGE
    return wanted.label(response).make_conditional(request)


def page_url(req: ListingRequest, page: int) -> str:
    """The page's own URL for another page of the same listing (empty parameters left out)."""
    query = {
        "q": req.query, "genre": req.genre, "region": req.region,
        "per_page": req.per_page if req.per_page != DEFAULT_PER_PAGE else None, "page": page if page > 1 else None,
    }
    return url_for("browse.page", **{name: value for name, value in query.items() if value})


def client_config() -> dict:
    """What browse.js needs: the roots of its URLs (so the page also works mounted under a prefix) and its limits."""
    root = request.script_root
    return {"apiRoot": f"{root}/v1", "thumbRoot": f"{root}/thumbs", "historyLimit": HISTORY_LIMIT, "k": RESULTS_K}


@bp.get("/")
def page():
    live = current_app.extensions["posterrec"]
    index = live.index
    if index is None:
        return render_template("browse_unavailable.html"), 503
    error = None
    try:
        req = parse_listing_request(request.args, index)
    except ApiError as err:  # a stale or hand-edited URL: show the first page and say what was wrong
        error = err.detail
        req = parse_listing_request({}, index)
    found = listing(index, req)
    response = make_response(render_template(
        "browse.html",
        index=index,
        req=req,
        found=found,
        error=error,
        genres=catalog_of(index).genres,
        regions=regions_with_counts(index),
        prev_url=page_url(req, found.page - 1) if found.page > 1 else None,
        next_url=page_url(req, found.page + 1) if found.page < found.pages else None,
        default_per_page=DEFAULT_PER_PAGE,
        config=client_config(),
    ), 400 if error else 200)
    response.cache_control.no_cache = True
    return response
