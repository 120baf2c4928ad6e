"""``GET /v1/posters/<id>/similar``, the API's hottest request, answered without Flask's request cycle.

Under ``python -m recsvc`` Flask's request and response objects, routing and hooks cost more CPU than the
search itself (docs/benchmarks.md, "Over HTTP"). The RSGI server (:mod:`recsvc.rsgi`) offers each request
without a body to :class:`SimilarShortcut` first. One that the view would answer 200 is answered here by the
view's own functions (:func:`recsvc.api.similar_results`, the app's JSON encoder, its security headers,
:func:`recsvc.metrics.record_request`), so that the response is the view's, byte for byte. Any other (another
path or method, an unknown id, a bad parameter, no index yet, an error) is declined, and the Flask app answers
it as it answers every request.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import parse_qsl

from flask import Flask

from . import SECURITY_HEADERS, security_headers
from .api import SIMILAR_RULE, similar_results
from .errors import ApiError
from .metrics import record_request
from .rsgi import Answer
from .served import API_PREFIX

log = logging.getLogger(__name__)


class SimilarShortcut:
    """Answers ``GET /v1/posters/<id>/similar`` for ``app`` (a :func:`recsvc.create_app` app) when it succeeds.

    Call it with a request's method, percent-decoded path and raw query string: the :data:`Answer`, or None
    for the app to answer.

    Raises:
        RuntimeError: ``app`` has request hooks besides its security headers, which the shortcut would skip.
    """

    def __init__(self, app: Flask) -> None:
        hooks = [*app.before_request_funcs.values(), *app.teardown_request_funcs.values()]
        if any(hooks) or app.after_request_funcs != {None: [security_headers]}:
            raise RuntimeError(
                "SimilarShortcut skips Flask's request hooks, but the app has more than its security headers"
            )
        self.rule = f"{API_PREFIX}{SIMILAR_RULE}"  # the metrics' label, as Flask's matched rule spells it
        self.prefix, self.suffix = self.rule.split("<title_id>")
        self.live = app.extensions["posterrec"]
        self.max_k = app.config["POSTERREC_SETTINGS"].max_k
        self.encode = app.json.response_body
        self.headers = [("Content-Type", app.json.mimetype), *SECURITY_HEADERS.items()]

    def __call__(self, method: str, path: str, query: str) -> Answer | None:
        title_id = self.title_id(path) if method == "GET" else ""
        index = self.live.index
        if not title_id or index is None:
            return None
        started = time.perf_counter()
        try:
            body = self.encode(similar_results(index, title_id, first_values(query), self.max_k, script_root=""))
        except ApiError:  # a 4xx: the app answers it
            return None
        except Exception:  # the app runs the request again, and answers 500 if it fails there too
            log.exception("the similar-poster shortcut failed on %s?%s", path, query)
            return None
        record_request(self.rule, method, 200, time.perf_counter() - started)
        return 200, self.headers, body

    def title_id(self, path: str) -> str:
        """The ``<title_id>`` of ``path`` when it is this route's (one non-empty path segment), else ``""``."""
        if not (path.startswith(self.prefix) and path.endswith(self.suffix)):
            return ""
        title_id = path[len(self.prefix) : len(path) - len(self.suffix)]
        return "" if "/" in title_id else title_id


def first_values(query: str) -> dict[str, str]:
    """Each name's first value in the query string, as Flask's ``request.args.get`` reads it (an invalid
    percent escape aside, which no parameter of this route accepts either way)."""
    values: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        values.setdefault(name, value)
    return values
