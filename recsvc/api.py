"""The ``/v1`` JSON API: similar posters, recommendations, image search, metadata, variants, images."""

from __future__ import annotations

import dataclasses
import functools
import io
import os
from urllib.parse import quote, urlencode

import numpy as np
from flask import Blueprint, current_app, jsonify, request, send_file
from PIL import Image, UnidentifiedImageError
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge
from werkzeug.wsgi import LimitedStream

from indexer.published import IndexItem, PublishedIndex

from . import params, ranking
from .errors import ApiError, bad_request, not_found
from .openapi import openapi_document

bp = Blueprint("v1", __name__, url_prefix="/v1")


def _live():
    return current_app.extensions["posterrec"]


def _settings():
    return current_app.config["POSTERREC_SETTINGS"]


def served_index() -> PublishedIndex:
    """The index snapshot this request answers from (kept for the whole request)."""
    index = _live().index
    if index is None:
        raise ApiError(503, "index_not_ready", "no index version is loaded yet; run `python -m indexer build`")
    return index


def known_regions(index: PublishedIndex) -> frozenset[str]:
    """Regions a request may name: those with variants in ``index`` and the app's configured ones."""
    return _region_union(index.regions, tuple(current_app.config["POSTERREC_REGIONS"]))


@functools.lru_cache(maxsize=64)
def _region_union(variant_regions: frozenset[str], configured: tuple[str, ...]) -> frozenset[str]:
    """Built once per index version rather than per request."""
    return variant_regions | frozenset(configured)


def poster_row(index: PublishedIndex, title_id: str) -> int:
    """The row of poster ``title_id``, or a 404 naming it."""
    row = index.poster_row(title_id)
    if row is None:
        raise not_found(f"no poster with id {title_id!r} in index version {index.version}")
    return row


def original_item(index: PublishedIndex, title_id: str) -> IndexItem:
    return index.items[poster_row(index, title_id)]


def variant_item(index: PublishedIndex, title_id: str, region: str | None) -> IndexItem | None:
    if region is None:
        return None
    row = index.row_of_key.get(IndexItem.variant_key(title_id, region))
    return None if row is None else index.items[row]


IMAGE_RULE = "/posters/<title_id>/image"
PATH_SEGMENT_SAFE = "!$&'()*+,/:;=@"
"""What werkzeug's default converter leaves unquoted in a path segment (the URL standard's path-segment set)."""
IMAGE_PATH_PREFIX, IMAGE_PATH_SUFFIX = f"{bp.url_prefix}{IMAGE_RULE}".split("<title_id>")


def image_url(title_id: str, region: str | None, script_root: str | None = None) -> str:
    """The URL of ``title_id``'s image route, by string formatting.

    A response carries an image URL per result, and ``url_for`` (~40 µs each)
    was a third of ``/similar``'s own time; the route is declared from the
    same :data:`IMAGE_RULE` and the tests check both spell the same URL.
    Callers that build many pass ``script_root``, read once per request.
    """
    root = request.script_root if script_root is None else script_root
    segment = title_id if title_id.isascii() and title_id.isalnum() else quote(title_id, safe=PATH_SEGMENT_SAFE)
    path = f"{root}{IMAGE_PATH_PREFIX}{segment}{IMAGE_PATH_SUFFIX}"
    return f"{path}?{urlencode({'region': region})}" if region else path


def _results(index: PublishedIndex, ranked: ranking.Ranked, region: str | None, **extra) -> dict:
    """The response body for ``ranked``: each result's id, title, score (rounded to 6 decimals) and image URL,
    and its variant for ``region``."""
    script_root = request.script_root
    results = []
    for title, score in zip(ranked.titles, ranked.scores):
        title_id, name = index.title_ids[title], index.title_names[title]
        variant = variant_item(index, title_id, region) if region else None
        results.append(
            {
                "id": title_id,
                "title": name,
                "score": round(score, 6),
                "image_url": image_url(title_id, variant and variant.region, script_root),
                "region": variant and variant.region,
                "localized_title": variant and variant.title,
            }
        )
    return {"index_version": index.version, **extra, "results": results}


def request_body() -> bytes:
    """The body, refused with 413 past the request's ``max_content_length`` whether or not the client declared its length.

    A declared length is read as exactly that many bytes from the server's stream, and a shorter body is a
    client that went away (400), as werkzeug has it. werkzeug's ``get_data`` reads a body that the server
    terminates (gunicorn does) through a ``LimitedStream`` that reads in 64 KiB buffers: two of them
    allocated and zeroed for a 90-byte body, ~20 µs of a ~200 µs ``/recommendations`` request in process,
    and a cache flushed of what the request had warmed (README, "Service benchmarks"). A body of unknown
    length (chunked, which gunicorn passes on as a terminated stream) werkzeug would read up to the limit
    and stop without a word, so the view would parse the first megabytes of a larger body as if they were
    all of it: it is read to one byte past the limit and refused if it gets there.
    """
    limit = request.max_content_length  # the limit werkzeug applies to multipart uploads: MAX_CONTENT_LENGTH
    stream = request.environ["wsgi.input"]
    length = request.content_length
    if length is not None:
        if length > limit:
            raise RequestEntityTooLarge()
        data = stream.read(length)
        if len(data) < length:
            raise ClientDisconnected()
        return data
    if "wsgi.input_terminated" not in request.environ:
        return b""  # werkzeug's safe fallback: a body of unknown length that the server does not end is not read
    data = LimitedStream(stream, limit + 1, is_max=True).read()  # one byte past: too large
    if len(data) > limit:
        raise RequestEntityTooLarge()
    return data


def json_object() -> dict:
    """The request body as a JSON object, or a 400 saying what is wrong with it."""
    body = _parsed_json(request_body()) if request.is_json else None
    if body is None:
        raise bad_request("body must be well-formed JSON sent as Content-Type: application/json")
    if not isinstance(body, dict):
        raise bad_request(f"body must be a JSON object, got {type(body).__name__}")
    return body


def _parsed_json(data: bytes):
    """``data`` parsed by the app's JSON provider, None when it is not JSON (as ``get_json(silent=True)``)."""
    try:
        return current_app.json.loads(data)
    except ValueError:  # JSONDecodeError, UnicodeDecodeError and the provider's "nested too deeply" are ValueErrors
        return None


@bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_document(_settings()))


@bp.get("/posters/<title_id>/similar")
def similar(title_id: str):
    index = served_index()
    k = params.parse_k(request.args.get("k"), _settings().max_k)
    region = params.parse_region(request.args.get("region"))
    return jsonify(_results(index, ranking.similar_titles(index, poster_row(index, title_id), k), region, id=title_id))


@bp.post("/recommendations")
def recommendations():
    index = served_index()
    req = params.parse_recommendation_request(json_object(), _settings().max_k, ranking.AGGREGATIONS)
    rows = [index.poster_row(title_id) for title_id in req.history]
    if None in rows:
        missing = [title_id for title_id, row in zip(req.history, rows) if row is None]
        raise not_found(f"unknown poster id(s) in history: {', '.join(map(repr, missing[:10]))}")
    aggregation = req.aggregation or current_app.config["POSTERREC_AGGREGATION"]
    ranked = ranking.recommend_rows(index, rows, req.k, aggregation, req.exclude_history)
    return jsonify(_results(index, ranked, req.region, aggregation=aggregation))


UPLOAD_WAIT_SECONDS = 10.0
"""How long an upload waits for one of the worker's decoding slots (``max_concurrent_uploads``) before a 503."""


def _uploaded_file() -> tuple[bytes, str]:
    """The bytes and file name of the multipart ``image`` field."""
    upload = request.files.get("image")
    if upload is None:
        raise bad_request("multipart upload needs a file field named 'image'")
    data = upload.read()
    if not data and not upload.filename:  # what a form sends for a file input left empty
        raise bad_request("multipart field 'image' holds no file")
    return data, upload.filename or ""


def reduced_rgb(image: Image.Image, side: int, max_pixels: int) -> Image.Image:
    """``image`` decoded to RGB at the smallest scale whose longer side is still at least ``side``.

    A JPEG is decoded at a reduced scale (``draft``: 1/2 to 1/8 of each side); anything else is decoded,
    converted to RGB (Pillow reduces only 8-bit modes) and reduced by an integer box filter. The pixels that
    decoding would hold are checked against ``max_pixels`` before it starts (:class:`PIL.Image.DecompressionBombError`).
    """
    image.draft("RGB", (side, side))  # JPEG only; a no-op for other formats
    width, height = image.size
    if width * height > max_pixels:
        raise Image.DecompressionBombError(f"{width} x {height} pixels")
    factor = max(1, max(width, height) // side)
    rgb = image.convert("RGB")
    return rgb.reduce(factor) if factor > 1 else rgb


def _uploaded_image_vector(index: PublishedIndex) -> np.ndarray:
    """The embedding of the uploaded image, decoded at twice the model's input size in one of the worker's upload slots.

    Its size is read from the header and refused before anything is decoded, because a few kilobytes of
    PNG can declare billions of pixels; the slots bound what concurrent uploads hold.
    """
    data, name = _uploaded_file()
    max_pixels = _settings().max_upload_pixels
    try:
        with Image.open(io.BytesIO(data)) as image:
            embedder = _live().embedder_for(index)
            if embedder is None:
                raise ApiError(503, "model_unavailable", f"the model that built index {index.version} cannot be loaded")
            slots = current_app.extensions["posterrec.upload_slots"]
            if not slots.acquire(timeout=UPLOAD_WAIT_SECONDS):
                raise ApiError(503, "busy", "this server is decoding as many uploads as it may; try again shortly")
            try:
                return embedder.embed_images([reduced_rgb(image, 2 * embedder.input_size, max_pixels)])[0]
            finally:
                slots.release()
    except Image.DecompressionBombError:  # also raised by PIL itself, past twice its own limit
        raise ApiError(
            413, "image_too_large", f"upload {name!r} has more than the {max_pixels:,} pixels this service decodes"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise ApiError(
            415, "unsupported_media_type", f"upload {name!r} is not an image this service can decode"
        ) from None


@bp.post("/search")
def search():
    index = served_index()
    if request.mimetype == "multipart/form-data":
        k = params.parse_k(request.form.get("k"), _settings().max_k)
        region = params.parse_region(request.form.get("region"))
        vector = _uploaded_image_vector(index)
    else:
        if not request.is_json:
            raise ApiError(
                415,
                "unsupported_media_type",
                "send multipart/form-data with an 'image' file, or JSON {\"embedding\": [...]}",
            )
        body = json_object()
        k = params.parse_k(body.get("k"), _settings().max_k, text=False)
        region = params.parse_region(body.get("region"))
        vector = params.parse_embedding(body.get("embedding"), index.dim)
    return jsonify(_results(index, ranking.nearest_titles(index, vector, k), region))


@bp.get("/posters/<title_id>")
def poster(title_id: str):
    index = served_index()
    item = original_item(index, title_id)
    regions = sorted(variant.region for variant in index.variants_of(title_id))
    return jsonify(
        id=item.title_id,
        title=item.title,
        year=item.year,
        genres=list(item.genres),
        image_url=image_url(title_id, None),
        variant_regions=regions,
        index_version=index.version,
    )


@bp.get("/posters/<title_id>/variants")
def variants(title_id: str):
    index = served_index()
    original_item(index, title_id)
    region = params.parse_region(request.args.get("region"))
    found = index.variants_of(title_id)
    if region:
        found = [item for item in found if item.region == region]
    return jsonify(
        id=title_id,
        variants=[
            {"region": v.region, "language": v.language, "title": v.title, "image_url": image_url(title_id, v.region)}
            for v in found
        ],
    )


@dataclasses.dataclass(frozen=True)
class RequestedImage:
    """The poster image a request asks for: the ``?region=`` variant if there is one, else the original."""

    chosen: IndexItem
    variant: IndexItem | None
    region: str | None

    def label(self, response):
        """Say in headers which image was served, and when the region had to fall back to the original.

        A fallback is cached only until its next look (``no-cache``, answered 304 by its ETag while it
        stands): once the region's variant is published, the same URL must show it, not the original
        for the rest of a day.
        """
        response.headers["X-PosterRec-Image"] = f"variant:{self.variant.region}" if self.variant else "original"
        if self.region and not self.variant:
            response.headers["X-PosterRec-Fallback"] = f"no {self.region} variant; original served"
            response.cache_control.max_age = None
            response.cache_control.no_cache = True
            response.headers.pop("Expires", None)  # send_file's day-long Expires, which an HTTP/1.0 cache would follow
        return response


def requested_image(index: PublishedIndex, title_id: str) -> RequestedImage:
    """Shared by the full image and the browse page's thumbnails, so both fall back alike."""
    original = original_item(index, title_id)
    region = params.parse_region(request.args.get("region"))
    variant = variant_item(index, title_id, region)
    return RequestedImage(variant or original, variant, region)


def image_mimetype(path: str) -> str:
    """The image type of the file's content, whatever its name says; :class:`OSError` when it is missing or its
    bytes are not an image's (a file overwritten with garbage is not served as the type its name claims)."""
    stat = os.stat(path)
    mimetype = _content_mimetype(path, stat.st_mtime_ns, stat.st_size)
    if mimetype is None:
        raise OSError(f"{path} holds no image")
    return mimetype


@functools.lru_cache(maxsize=4096)
def _content_mimetype(path: str, mtime_ns: int, size: int) -> str | None:
    """Read from the file's header once per version of the file (its mtime and size key the cache)."""
    try:
        with Image.open(path) as image:
            return Image.MIME.get(image.format or "")
    except (OSError, SyntaxError, ValueError):  # UnidentifiedImageError included
        return None


@bp.get(IMAGE_RULE)
def image(title_id: str):
    wanted = requested_image(served_index(), title_id)
    path = wanted.chosen.image_path
    try:
        response = send_file(path, mimetype=image_mimetype(path), conditional=True, max_age=86400)
    except OSError:  # UnidentifiedImageError included
        raise ApiError(
            503, "image_unavailable", f"the image file of {wanted.chosen.key} is missing or unreadable on this server"
        ) from None
    return wanted.label(response)
