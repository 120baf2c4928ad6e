"""The ``/v1`` JSON API: similar posters, recommendations, image search, metadata, variants, images."""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from typing import Any

from posterrec_settings import Settings

import numpy as np
from flask import Blueprint, current_app, jsonify, request, send_file
from PIL import Image, UnidentifiedImageError
from werkzeug.exceptions import ClientDisconnected
from werkzeug.wsgi import LimitedStream

from indexer.published import PublishedIndex

from . import params, ranking, signals
from .errors import ApiError, bad_request, body_too_large, busy, echoed
from .openapi import openapi_document
from .served import (
    API_PREFIX,
    IMAGE_RULE,
    app_settings,
    ignore_range_unless_one_byte_range,
    image_type_and_etag,
    image_unavailable,
    image_url,
    live_index,
    original_item,
    poster_row,
    query_args,
    requested_image,
    served_index,
    variant_item,
)

bp = Blueprint("v1", __name__, url_prefix=API_PREFIX)


def _results(index: PublishedIndex, ranked: ranking.Ranked, region: str | None, script_root: str, **extra) -> dict:
    """The response body for ``ranked``: each result's id, title, score (rounded to 6 decimals) and image URL
    (under ``script_root``), and its variant for ``region``."""
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
    """The request body, read once; raises 413 past ``max_content_length`` and 400 for a body cut short.

    A declared length is read as exactly that many bytes. A body of unknown length (chunked) is read to one
    byte past the limit, so that a larger body is refused rather than silently truncated as werkzeug's
    ``get_data`` would; one the server does not terminate is not read, werkzeug's safe fallback. Reading the
    stream directly avoids werkzeug's 64 KiB buffers for the small JSON bodies this API takes.
    """
    limit = request.max_content_length  # the limit werkzeug applies to multipart uploads: MAX_CONTENT_LENGTH
    stream = request.environ["wsgi.input"]
    length = request.content_length
    if length is not None:
        if length > limit:
            raise body_too_large(limit)
        data = stream.read(length)
        if len(data) < length:
            raise ClientDisconnected()
        return data
    if "wsgi.input_terminated" not in request.environ:
        return b""  # werkzeug's safe fallback: a body of unknown length that the server does not end is not read
    data = LimitedStream(stream, limit + 1, is_max=True).read()  # one byte past: too large
    if len(data) > limit:
        raise body_too_large(limit)
    return data


def json_object() -> dict:
    """The request body as a JSON object; a 415 for another media type, a 400 saying what is wrong with it."""
    if not request.is_json:
        sent = f"Content-Type {echoed(request.mimetype)}" if request.mimetype else "no Content-Type"
        raise ApiError(415, "unsupported_media_type", f"send the body as JSON, Content-Type: application/json ({sent})")
    return parse_json_object(request_body(), current_app.json.loads)


def parse_json_object(data: bytes, loads: Callable[[bytes], Any]) -> dict:
    """``data`` parsed by ``loads`` (the app's JSON provider's) as a JSON object.

    Raises:
        ApiError: 400 when ``data`` is not JSON (saying where the parser stopped) or not an object.
    """
    try:
        body = loads(data)
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError and the provider's "nested too deeply"
        problem = "is empty: send a JSON object" if not data.strip() else f"is not well-formed JSON: {err}"
        raise bad_request(f"body {problem}") from None
    if not isinstance(body, dict):
        raise bad_request(f"body must be a JSON object, got {params.json_kind(body)}")
    return body


EXAMPLE_TITLES = 3
"""Titles of the served index that the OpenAPI document's examples name."""


@bp.get("/openapi.json")
def openapi():
    index = live_index().index
    return jsonify(openapi_document(app_settings(), example_titles(index) if index is not None else ()))


def example_titles(index: PublishedIndex) -> list[str]:
    """The first :data:`EXAMPLE_TITLES` titles of ``index`` that have an original poster (one indexed only through
    its variants has no poster of its own to find similar ones to)."""
    with_poster = np.flatnonzero(index.original_row_of_title >= 0)[:EXAMPLE_TITLES]
    return [index.title_ids[ordinal] for ordinal in with_poster.tolist()]


SIMILAR_RULE = "/posters/<title_id>/similar"


def similar_results(
    index: PublishedIndex, title_id: str, args: Mapping[str, str], max_k: int, script_root: str
) -> dict:
    """The body of ``GET /v1/posters/<title_id>/similar`` with the query ``args``, answered from ``index``.

    Raises:
        ApiError: 404 for an id not in ``index``, 400 for a bad ``k`` or ``region``.
    """
    k = params.parse_k(args.get("k"), max_k)
    region = params.parse_region(args.get("region"))
    ranked = ranking.similar_titles(index, poster_row(index, title_id), k)
    return _results(index, ranked, region, script_root, id=title_id)


@bp.get(SIMILAR_RULE)
def similar(title_id: str):
    """Also answered without Flask by :mod:`recsvc.shortcut` under ``python -m recsvc``."""
    return jsonify(similar_results(served_index(), title_id, query_args(), app_settings().max_k, request.script_root))


RECOMMENDATIONS_RULE = "/recommendations"


def recommendation_results(
    index: PublishedIndex, body: dict, settings: Settings, default_aggregation: str, script_root: str
) -> dict:
    """The body of ``POST /v1/recommendations`` for the JSON object ``body``, answered from ``index``.

    Raises:
        ApiError: 400 for a bad field or a signal the index lacks, 404 naming history ids not in ``index``.
    """
    req = params.parse_recommendation_request(body, settings.max_k, ranking.AGGREGATIONS)
    signal = signals.check_signal(index, req.signal)
    rows = signals.poster_rows(index, req.history, "history")
    aggregation = req.aggregation or default_aggregation
    ranked, signal = signals.recommend(
        index,
        rows,
        req.k,
        aggregation,
        req.exclude_history,
        signal,
        signals.preferences_of(index, req),
        settings.hybrid_poster_weight,
    )
    return _results(index, ranked, req.region, script_root, aggregation=aggregation, signal=signal)


@bp.post(RECOMMENDATIONS_RULE)
def recommendations():
    """Also answered without Flask by :mod:`recsvc.shortcut` under ``python -m recsvc``."""
    index = served_index()
    aggregation = current_app.config["POSTERREC_AGGREGATION"]
    return jsonify(recommendation_results(index, json_object(), app_settings(), aggregation, request.script_root))


UPLOAD_WAIT_SECONDS = 10.0
"""How long an upload waits for one of the worker's decoding slots (``max_concurrent_uploads``) before a 503."""


def _uploaded_file() -> tuple[bytes, str]:
    """The bytes and file name of the multipart ``image`` field."""
    uploads = request.files.getlist("image")
    if not uploads:
        raise bad_request("multipart upload needs a file field named 'image'")
    if len(uploads) > 1:
        raise bad_request(f"multipart upload holds {len(uploads)} files named 'image'; send one")
    upload = uploads[0]
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
    max_pixels = app_settings().max_upload_pixels
    try:
        with Image.open(io.BytesIO(data)) as image:
            embedder = live_index().embedder_for(index)
            if embedder is None:
                raise ApiError(503, "model_unavailable", f"the model that built index {index.version} cannot be loaded")
            slots = current_app.extensions["posterrec.upload_slots"]
            if not slots.acquire(timeout=UPLOAD_WAIT_SECONDS):
                raise busy("this server is decoding as many uploads as it may; try again shortly")
            try:
                return embedder.embed_images([reduced_rgb(image, 2 * embedder.input_size, max_pixels)])[0]
            finally:
                slots.release()
    except Image.DecompressionBombError:  # also raised by PIL itself, past twice its own limit
        raise ApiError(
            413,
            "image_too_large",
            f"upload {echoed(name)} has more than the {max_pixels:,} pixels this service decodes",
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise ApiError(
            415, "unsupported_media_type", f"upload {echoed(name)} is not an image this service can decode"
        ) from None


@bp.post("/search")
def search():
    index = served_index()
    if request.mimetype == "multipart/form-data":
        form = params.single_values(request.form.items(multi=True))
        k = params.parse_k(form.get("k"), app_settings().max_k)
        region = params.parse_region(form.get("region"))
        vector = _uploaded_image_vector(index)
    else:
        if not request.is_json:
            raise ApiError(
                415,
                "unsupported_media_type",
                "send multipart/form-data with an 'image' file, or JSON {\"embedding\": [...]}",
            )
        body = json_object()
        params.refuse_unknown_fields(body, params.SEARCH_FIELDS)
        k = params.parse_k(body.get("k"), app_settings().max_k, text=False)
        region = params.parse_region(body.get("region"))
        vector = params.parse_embedding(body.get("embedding"), index.dim)
    return jsonify(_results(index, ranking.nearest_titles(index, vector, k), region, request.script_root))


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


@bp.get("/posters/<title_id>/embedding")
def embedding(title_id: str):
    """The poster's vector in the served version's space, which ``POST /v1/search`` takes as ``embedding``."""
    index = served_index()
    return jsonify(
        id=title_id,
        index_version=index.version,
        model=index.manifest.get("model_manifest_sha256"),
        embedding=index.embeddings[poster_row(index, title_id)].tolist(),
    )


@bp.get("/posters/<title_id>/variants")
def variants(title_id: str):
    index = served_index()
    original_item(index, title_id)
    region = params.parse_region(query_args().get("region"))
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


@bp.get(IMAGE_RULE)
def image(title_id: str):
    wanted = requested_image(served_index(), title_id)
    path = wanted.chosen.image_path
    ignore_range_unless_one_byte_range()
    try:
        mimetype, etag = image_type_and_etag(wanted.chosen)
        response = send_file(path, mimetype=mimetype, conditional=True, etag=etag, max_age=86400)
    except OSError:  # UnidentifiedImageError included
        raise image_unavailable(wanted.chosen) from None
    return wanted.label(response)
