"""Prometheus metrics: requests and latency per endpoint, and what index is served.

Under gunicorn each worker is a process; when ``PROMETHEUS_MULTIPROC_DIR`` is
set (gunicorn.conf.py sets it) the counters are shared through that directory
and ``/metrics`` aggregates every worker.
"""

from __future__ import annotations

import functools
import os
import time

from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

REQUESTS = Counter("posterrec_requests_total", "HTTP requests", ["endpoint", "method", "status"])
LATENCY = Histogram(
    "posterrec_request_seconds", "HTTP request latency", ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
INDEX_ITEMS = Gauge("posterrec_index_items", "Vectors in the served index", multiprocess_mode="max")
INDEX_VERSION = Gauge(
    "posterrec_index_version_info", "Served index version (value 1)", ["version"], multiprocess_mode="max"
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


@functools.lru_cache(maxsize=4096)
def _series(endpoint: str, method: str, status: int) -> tuple[Histogram, Counter]:
    """The labelled latency and request series, looked up once per label set (``labels()`` costs a lock and a dict per call)."""
    return LATENCY.labels(endpoint), REQUESTS.labels(endpoint, method, str(status))


def instrument(app: Flask) -> None:
    @app.before_request
    def start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def observe(response):
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        latency, requests = _series(endpoint, request.method, response.status_code)
        if "started" in g:
            latency.observe(time.perf_counter() - g.started)
        requests.inc()
        return response


def metrics_response() -> Response:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
    return Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST)
