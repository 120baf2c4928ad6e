"""The API's hottest requests, similar posters and recommendations, answered without Flask's request cycle.

Under ``python -m recsvc`` Flask's request and response objects, routing and hooks cost more CPU than the
search itself (docs/benchmarks.md, "Over HTTP"). The RSGI server (:mod:`recsvc.rsgi`) offers each request
whose whole body it holds to :class:`ApiShortcut` first. ``GET /v1/posters/<id>/similar`` and a JSON
``POST /v1/recommendations`` that the view would answer 200 are answered here by the views' own functions
(:func:`recsvc.api.similar_results`, :func:`recsvc.api.recommendation_results`, the app's JSON provider, its
security and CORS headers, :func:`recsvc.metrics.record_request`), so that the response is the view's, byte for byte.
Any other request (another path or method, an unknown id, a bad parameter or body, no index yet, an error)
is declined, and the Flask app answers it as it answers every request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from urllib.parse import parse_qsl

from flask import Flask

from indexer.published import PublishedIndex

from . import SECURITY_HEADERS, params, security_headers
from .api import RECOMMENDATIONS_RULE, SIMILAR_RULE, parse_json_object, recommendation_results, similar_results
from .errors import ApiError
from .metrics import record_request
from .rsgi import Answer, media_type
from .served import API_PREFIX

log = logging.getLogger(__name__)

JSON_MEDIA_TYPE = "application/json"
"""The media type of the recommendation bodies answered here; others that Flask takes as JSON (``+json``
types) are left to it."""


class ApiShortcut:
    """Answers ``GET /v1/posters/<id>/similar`` and ``POST /v1/recommendations`` for ``app`` (a
    :func:`recsvc.create_app` app) when they succeed.

    Call it with a request's method, percent-decoded path, raw query string, ``Content-Type`` and whole body:
    the :data:`recsvc.rsgi.Answer`, or None for the app to answer.

    Raises:
        RuntimeError: ``app`` has request hooks besides its security headers, which the shortcut would skip.
    """

    def __init__(self, app: Flask) -> None:
        hooks = [*app.before_request_funcs.values(), *app.teardown_request_funcs.values()]
        if any(hooks) or app.after_request_funcs != {None: [security_headers]}:
            raise RuntimeError(
                "ApiShortcut skips Flask's request hooks, but the app has more than its security headers"
            )
        self.similar_rule = f"{API_PREFIX}{SIMILAR_RULE}"  # the metrics' labels, as Flask's matched rules spell them
        self.recommendations_rule = f"{API_PREFIX}{RECOMMENDATIONS_RULE}"
        self.similar_prefix, self.similar_suffix = self.similar_rule.split("<title_id>")
        self.live = app.extensions["posterrec"]
        self.config = app.config  # read on each request, as the views read it
        self.json = app.json
        cors = app.config["POSTERREC_CORS_HEADERS"].items()
        self.headers = [("Content-Type", app.json.mimetype), *SECURITY_HEADERS.items(), *cors]

    def __call__(self, method: str, path: str, query: str, content_type: str, body: bytes) -> Answer | None:
        index = self.live.index
        if index is None:
            return None
        if method == "GET" and (title_id := self.title_id(path)):
            rule, results = self.similar_rule, partial(self.similar, index, title_id, query)
        elif method == "POST" and path == self.recommendations_rule and media_type(content_type) == JSON_MEDIA_TYPE:
            rule, results = self.recommendations_rule, partial(self.recommendations, index, body)
        else:
            return None
        return self.answer(method, path, rule, results)

    def similar(self, index: PublishedIndex, title_id: str, query: str) -> dict:
        """The similar-poster view's body for ``title_id`` and the raw ``query``; raises its ApiErrors."""
        settings = self.config["POSTERREC_SETTINGS"]
        args = params.single_values(parse_qsl(query, keep_blank_values=True, errors="werkzeug.url_quote"))
        return similar_results(index, title_id, args, settings.max_k, script_root="")

    def recommendations(self, index: PublishedIndex, body: bytes) -> dict:
        """The recommendation view's body for the raw JSON ``body``; raises its ApiErrors."""
        fields = parse_json_object(body, self.json.loads)
        settings, aggregation = self.config["POSTERREC_SETTINGS"], self.config["POSTERREC_AGGREGATION"]
        return recommendation_results(index, fields, settings, aggregation, script_root="")

    def answer(self, method: str, path: str, rule: str, results: Callable[[], dict]) -> Answer | None:
        """The 200 answer whose body is ``results()``, counted under ``rule``; None when ``results`` raises."""
        started = time.perf_counter()
        try:
            body = self.json.response_body(results())
        except ApiError:  # a 4xx: the app answers it
            return None
        except Exception:  # the app runs the request again, and answers 500 if it fails there too
            log.exception("the API shortcut failed on %s %s", method, path)
            return None
        record_request(rule, method, 200, time.perf_counter() - started)
        return 200, self.headers, body

    def title_id(self, path: str) -> str:
        """The ``<title_id>`` of ``path`` when it is the similar route's (one non-empty segment), else ``""``."""
        if not (path.startswith(self.similar_prefix) and path.endswith(self.similar_suffix)):
            return ""
        title_id = path[len(self.similar_prefix) : len(path) - len(self.similar_suffix)]
        return "" if "/" in title_id else title_id
