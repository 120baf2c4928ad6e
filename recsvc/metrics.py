"""Prometheus metrics: requests and latency per endpoint, and what index is served.

Under gunicorn each worker is a process; when ``PROMETHEUS_MULTIPROC_DIR`` is
set (gunicorn.conf.py sets it) the counters are shared through that directory
and ``/metrics`` aggregates every worker.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable

from flask import Flask, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)

REQUESTS = Counter("posterrec_requests_total", "HTTP requests", ["endpoint", "method", "status"])
LATENCY = Histogram(
    "posterrec_request_seconds",
    "HTTP request latency",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
# The index gauges are "livemax": the maximum over live workers only. With "max", a worker that died kept
# reporting the version and size it served, beside its replacement's, for as long as the master ran.
INDEX_ITEMS = Gauge("posterrec_index_items", "Vectors in the served index", multiprocess_mode="livemax")
INDEX_VERSION = Gauge(
    "posterrec_index_version_info", "Served index version (value 1)", ["version"], multiprocess_mode="livemax"
)


def record_index(version: str, items: int, previous: str | None = None) -> None:
    """Mark ``version`` served and ``previous`` no longer served.

    The old label is set to 0 rather than cleared: in gunicorn's multi-process mode ``clear()`` is not
    implemented (it only warns), so the swapped-out version kept reporting 1 beside the new one.
    """
    if previous is not None:
        INDEX_VERSION.labels(version=previous).set(0)
    INDEX_VERSION.labels(version=version).set(1)
    INDEX_ITEMS.set(items)


def record_request(endpoint: str, method: str, status: int, seconds: float) -> None:
    """Count one request and observe its latency under its endpoint's series."""
    REQUESTS.labels(endpoint, method, str(status)).inc()
    LATENCY.labels(endpoint).observe(seconds)


REQUEST_KEY = "posterrec.request"
STANDARD_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"})
"""Methods counted under their own name; any other a client sends is counted as ``OTHER``, so that made-up
methods cannot add a series each to every worker's metrics files."""


def method_label(method: str) -> str:
    return method if method in STANDARD_METHODS else "OTHER"


class RecordedRequest(Request):
    """Flask's request, left in the environ under :data:`REQUEST_KEY` for :class:`RequestMetrics` to read its URL rule."""

    def __init__(self, environ: dict, *args, **kwargs) -> None:
        super().__init__(environ, *args, **kwargs)
        environ[REQUEST_KEY] = self


class RequestMetrics:
    """WSGI middleware that counts and times every request by the URL rule Flask matched.

    The rule is read off the request, which :class:`RecordedRequest` leaves in the environ (Flask clears
    werkzeug's own ``werkzeug.request`` when it pops the request context). The time is that of producing
    the response, not of sending a streamed body.
    """

    def __init__(self, wsgi_app: Callable) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        started = time.perf_counter()
        statuses: list[str] = []

        def start_and_record(status: str, headers: list, exc_info=None):
            statuses.append(status)
            return start_response(status, headers, exc_info)

        try:
            return self.wsgi_app(environ, start_and_record)
        finally:
            rule = getattr(environ.pop(REQUEST_KEY, None), "url_rule", None)
            status = int(statuses[-1][:3]) if statuses else 500
            record_request(
                rule.rule if rule else "unmatched",
                method_label(environ.get("REQUEST_METHOD", "")),
                status,
                time.perf_counter() - started,
            )


def instrument(app: Flask) -> None:
    app.request_class = RecordedRequest
    app.wsgi_app = RequestMetrics(app.wsgi_app)


def every_worker_registry() -> CollectorRegistry:
    """A registry that reads every worker's metrics from ``PROMETHEUS_MULTIPROC_DIR``."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def metrics_response() -> Response:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return Response(generate_latest(every_worker_registry()), content_type=CONTENT_TYPE_LATEST)
    return Response(generate_latest(), content_type=CONTENT_TYPE_LATEST)


def serve_metrics_apart(address: tuple[str, int]) -> None:
    """Every worker's metrics (the multi-process registry) on ``address`` (from
    :func:`posterrec_settings.checked_metrics_address`), served by this process, the workers' parent, from a
    daemon thread."""
    start_http_server(address[1], addr=address[0], registry=every_worker_registry())
