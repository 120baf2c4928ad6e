"""PosterRec recsvc: the Flask HTTP API that serves the published index.

``create_app`` is the application factory (as in the Flask tutorial): the
dev server, gunicorn (``'recsvc:create_app()'``) and the tests each build
their own app from settings, and nothing is shared through module globals
except the Prometheus metrics.
"""

from __future__ import annotations

import logging
import threading

import posterrec_settings  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from posterrec_settings import Settings, load_settings

from flask import Flask, Response, current_app, request

from . import api, browse, catalog_api, health, kernels
from .errors import register_error_handlers
from .json_provider import OrjsonProvider
from .live_index import LiveIndex
from .metrics import instrument
from .served import API_PREFIX

SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff"}
"""On every response the service sends (granian's own answer to a request it cannot parse has no body): a
browser takes each body as the type it is sent as, never one it guesses."""
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
"""On HTML pages: scripts, styles and images from this server only, and no framing by another site."""

CORS_METHODS = "GET, HEAD, POST"
"""What a page of another origin may send to the API (``cors_allow_origin``), with a JSON ``Content-Type``."""


def cors_headers(origin: str) -> dict[str, str]:
    """The headers that let pages from ``origin`` (``*``: from any) call the ``/v1`` API, a preflight's answers
    included; none when ``origin`` is empty. The same on every response, so that no ``Vary`` is needed."""
    if not origin:
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": CORS_METHODS,
        "Access-Control-Allow-Headers": "Content-Type",
        "Access-Control-Max-Age": "600",
        "Access-Control-Expose-Headers": "Retry-After, X-PosterRec-Image, X-PosterRec-Fallback",
    }


DEFAULT_REGIONS = ("DE", "FR", "JP", "KR", "SA", "IL", "RU", "IN", "TH", "CN", "ES", "IT", "BR", "GB", "US")
"""Region codes accepted even when the index holds no variant for them yet (the original is served)."""


def create_app(settings: Settings | None = None, watch: bool = True, aggregation: str = "recent_neighbours") -> Flask:
    """A PosterRec API app over ``settings.index_root``; ``watch`` hot-swaps new index versions."""
    settings = settings or load_settings()
    app = Flask(__name__)
    app.config.update(
        POSTERREC_SETTINGS=settings,
        POSTERREC_REGIONS=DEFAULT_REGIONS,
        POSTERREC_AGGREGATION=aggregation,
        MAX_CONTENT_LENGTH=settings.max_upload_bytes,
        POSTERREC_CORS_HEADERS=cors_headers(settings.cors_allow_origin),
    )
    app.json = OrjsonProvider(app)
    kernels.warm_up()  # at start-up, so that the first request does not wait for Numba
    app.url_map.merge_slashes = False  # "/v1/posters//x" is a missing title (404), not a redirect to another URL
    live = LiveIndex(
        settings.index_root, settings.index_poll_seconds if watch else 0, preparers=[catalog_api.carry_catalog]
    )
    live.start()
    if live.index is None:
        logging.getLogger(__name__).warning(
            "no index version at %s yet; /readyz stays 503 until one is published", settings.index_root
        )
    app.extensions["posterrec"] = live
    app.extensions["posterrec.upload_slots"] = threading.BoundedSemaphore(settings.max_concurrent_uploads)
    register_error_handlers(app, API_PREFIX)
    app.after_request(security_headers)
    instrument(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(catalog_api.bp)
    app.register_blueprint(browse.bp)
    return app


def security_headers(response: Response) -> Response:
    """:data:`SECURITY_HEADERS` on every response, the API's :func:`cors_headers` on its own and
    :data:`PAGE_HEADERS` on pages."""
    response.headers.update(SECURITY_HEADERS)
    if request.path.startswith(f"{API_PREFIX}/"):
        response.headers.update(current_app.config["POSTERREC_CORS_HEADERS"])
    if response.mimetype == "text/html":
        response.headers.update(PAGE_HEADERS)
    return response
