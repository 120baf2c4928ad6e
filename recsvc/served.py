"""What a request is answered from: the served index snapshot, its titles' rows and regions, and poster images.

Shared by the JSON API, the catalogue API and the browse page.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
from urllib.parse import quote, urlencode

from posterrec_settings import Settings

from flask import current_app, request
from PIL import Image
from werkzeug.http import parse_range_header

from indexer import variant_images
from indexer.published import IndexItem, PublishedIndex

from . import params
from .errors import ApiError, echoed, not_found, retry_after
from .live_index import LiveIndex

API_PREFIX = "/v1"


def live_index() -> LiveIndex:
    """The app's :class:`LiveIndex`, which holds the served version and its models."""
    return current_app.extensions["posterrec"]


def app_settings() -> Settings:
    """The :class:`Settings` the app was created with."""
    return current_app.config["POSTERREC_SETTINGS"]


def served_index() -> PublishedIndex:
    """The index snapshot this request answers from (kept for the whole request)."""
    live = live_index()
    index = live.index
    if index is None:
        raise index_not_ready(live.poll_seconds)
    return index


def index_not_ready(poll_seconds: float) -> ApiError:
    """The 503 of a service with no version loaded. When it watches the index root, a version published now is
    served within ``poll_seconds``: its ``Retry-After``; without a watcher only a restart loads one, so none."""
    headers = retry_after(poll_seconds) if poll_seconds > 0 else {}
    return ApiError(503, "index_not_ready", "no index version is loaded yet; run `python -m indexer build`", headers)


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
        raise not_found(f"no poster with id {echoed(title_id)} in index version {index.version}")
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
IMAGE_PATH_PREFIX, IMAGE_PATH_SUFFIX = f"{API_PREFIX}{IMAGE_RULE}".split("<title_id>")


def image_url(title_id: str, region: str | None, script_root: str | None = None) -> str:
    """The URL of ``title_id``'s image route (with ``?region=`` when given), as ``url_for`` spells it.

    Formatted from the same :data:`IMAGE_RULE` that declares the route; callers that build many pass
    ``script_root``, read once per request.
    """
    root = request.script_root if script_root is None else script_root
    segment = title_id if title_id.isascii() and title_id.isalnum() else quote(title_id, safe=PATH_SEGMENT_SAFE)
    path = f"{root}{IMAGE_PATH_PREFIX}{segment}{IMAGE_PATH_SUFFIX}"
    return f"{path}?{urlencode({'region': region})}" if region else path


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


def query_args() -> dict[str, str]:
    """The request's query parameters, each given once (:func:`params.single_values`)."""
    return params.single_values(request.args.items(multi=True))


def requested_image(index: PublishedIndex, title_id: str) -> RequestedImage:
    """Shared by the full image and the browse page's thumbnails, so both fall back alike."""
    original = original_item(index, title_id)
    region = params.parse_region(query_args().get("region"))
    variant = variant_item(index, title_id, region)
    return RequestedImage(variant or original, variant, region)


def ignore_range_unless_one_byte_range() -> None:
    """Leave out of this request a ``Range`` header that is not one range of bytes, so that the whole image is
    sent (200) where werkzeug would refuse it (416): HTTP has a server ignore a range unit it does not know,
    and lets it ignore several ranges or a malformed header (RFC 9110, section 14.2). A single range past the
    end stays a 416."""
    header = request.environ.get("HTTP_RANGE")
    if header is None:
        return
    parsed = parse_range_header(header)
    if parsed is None or parsed.units != "bytes" or len(parsed.ranges) != 1:
        del request.environ["HTTP_RANGE"]


def image_etag(item: IndexItem, stat: os.stat_result, form: str = "") -> str:
    """The ETag of ``item``'s image (in ``form``: the file as it is, or a thumbnail of it) from its key, its
    file's modification time and size and the name that lasts across versions: a variant's image moves into
    each new index version (:mod:`indexer.variant_images`), and an ETag of its path would have every client
    fetch it again after a build."""
    name = variant_images.lasting_name(item.image_path)
    return hashlib.sha1(f"{item.key}:{name}:{stat.st_mtime_ns}:{stat.st_size}:{form}".encode()).hexdigest()


def image_type_and_etag(item: IndexItem) -> tuple[str, str]:
    """The image type of ``item``'s file by its content, whatever its name says, and its :func:`image_etag`,
    from one ``stat``; :class:`OSError` when it is missing or its bytes are not an image's (a file overwritten
    with garbage is not served as the type its name claims)."""
    stat = os.stat(item.image_path)
    mimetype = _content_mimetype(item.image_path, stat.st_mtime_ns, stat.st_size)
    if mimetype is None:
        raise OSError(f"{item.image_path} holds no image")
    return mimetype, image_etag(item, stat)


def image_unavailable(item: IndexItem) -> ApiError:
    """The 503 for ``item``'s image file when it is missing or unreadable (its path stays out of the body)."""
    return ApiError(503, "image_unavailable", f"the image file of {item.key} is missing or unreadable on this server")


@functools.lru_cache(maxsize=4096)
def _content_mimetype(path: str, mtime_ns: int, size: int) -> str | None:
    """Read from the file's header once per version of the file (its mtime and size key the cache)."""
    try:
        with Image.open(path) as image:
            return Image.MIME.get(image.format or "")
    except (OSError, SyntaxError, ValueError):  # UnidentifiedImageError included
        return None
