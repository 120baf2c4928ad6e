"""Prometheus metrics: requests and latency per endpoint, and what index is served.

Under gunicorn each worker is a process; when ``PROMETHEUS_MULTIPROC_DIR`` is
set (gunicorn.conf.py sets it) the counters are shared through that directory
and ``/metrics`` aggregates every worker.
"""

from __future__ import annotations

import atexit
import bisect
import functools
import os
import threading
import time
from typing import Callable, Iterable

from flask import Flask, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

REQUESTS = Counter("posterrec_requests_total", "HTTP requests", ["endpoint", "method", "status"])
LATENCY = Histogram(
    "posterrec_request_seconds", "HTTP request latency", ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
LATENCY_BUCKETS = LATENCY._upper_bounds
"""Upper bounds of the latency buckets, ``+Inf`` last, as the histogram keeps them."""
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


@functools.lru_cache(maxsize=4096)
def _series(endpoint: str, method: str, status: int) -> tuple[Histogram, Counter]:
    """The labelled latency and request series, looked up once per label set (``labels()`` costs a lock and a dict per call)."""
    return LATENCY.labels(endpoint), REQUESTS.labels(endpoint, method, str(status))


FLUSH_SECONDS = 5.0
"""How stale a worker's request counts may be in ``/metrics`` (Prometheus scrapes every 15 s or more); each
wake-up of the flushing thread can make the worker's request thread wait for it to be scheduled."""


class PendingRequests:
    """Requests timed in this process and not yet written to the metrics, tallied per series and written in batches.

    In multi-process mode every write to a metric goes to an mmap'd file
    under a lock, and a request made three (its count, and its latency's sum
    and bucket): 12.5 µs of a ~135 µs ``/recommendations`` request in process
    (A/B on the 1M bench index). A request now adds to its series' tally in
    memory, and :meth:`flush` writes each tally once: every
    :data:`FLUSH_SECONDS` from a daemon thread, before ``/metrics`` answers,
    and when the process exits. Tallied as they come, so that a flush holds
    the GIL for a few writes, not for a second's worth of requests (folding
    a queue of them at flush time stalled the worker ~2 ms a second and
    raised the p99 at 32 clients from ~16 to 21-31 ms). A worker killed
    outright loses at most its last :data:`FLUSH_SECONDS` of counts.
    """

    def __init__(self) -> None:
        self._tallies: dict[tuple[str, str, int], list] = {}
        """Per (endpoint, method, status): the request count, the latency sum, and the count per bucket."""
        self._tallying = threading.Lock()
        self._flushing = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        bucket = bisect.bisect_left(LATENCY_BUCKETS, seconds)  # the first bound >= seconds, as Histogram.observe picks
        with self._tallying:
            tally = self._tallies.get((endpoint, method, status))
            if tally is None:
                tally = self._tallies[endpoint, method, status] = [0, 0.0, [0] * len(LATENCY_BUCKETS)]
            tally[0] += 1
            tally[1] += seconds
            tally[2][bucket] += 1
        if self._thread is None:
            self._start()

    def flush(self) -> None:
        """Write every tally: per series, one count, one latency sum and one count per bucket observed."""
        with self._flushing:
            with self._tallying:
                tallies, self._tallies = self._tallies, {}
            for labels, (count, total, buckets) in tallies.items():
                latency, requests = _series(*labels)
                requests.inc(count)
                # Histogram.observe() adds one observation; a batch adds to its sum and buckets directly
                # (the attributes observe() itself updates; the metrics tests read them back through /metrics).
                latency._sum.inc(total)
                for bucket, observed in enumerate(buckets):
                    if observed:
                        latency._buckets[bucket].inc(observed)

    def _start(self) -> None:
        with self._flushing:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._flush_every, args=(FLUSH_SECONDS,), name="metrics-flush", daemon=True)
            self._thread.start()

    def _flush_every(self, seconds: float) -> None:
        while True:
            time.sleep(seconds)
            self.flush()

    def _forget(self) -> None:
        """In a forked child: the tallies are the parent's requests (it writes them) and no thread runs here yet."""
        self._tallies = {}
        self._tallying = threading.Lock()
        self._flushing = threading.Lock()
        self._thread = None


PENDING = PendingRequests()
os.register_at_fork(after_in_child=PENDING._forget)
atexit.register(PENDING.flush)

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

    A middleware, not Flask's ``before_request``/``after_request`` hooks: with those hooks, ``g`` and the
    request proxies, instrumenting cost as much again as the metric updates (A/B in one process on the 1M
    bench index, gunicorn's multi-process metrics: ``/similar`` 189.5 µs instrumented by hooks, 157.5 µs
    without metrics). The rule is read off the request, which :class:`RecordedRequest` leaves in the
    environ (Flask clears werkzeug's own ``werkzeug.request`` when it pops the request context). The time
    is that of producing the response, not of sending a streamed body.
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
            PENDING.add(rule.rule if rule else "unmatched", method_label(environ.get("REQUEST_METHOD", "")), status, time.perf_counter() - started)


def instrument(app: Flask) -> None:
    app.request_class = RecordedRequest
    app.wsgi_app = RequestMetrics(app.wsgi_app)


def metrics_response() -> Response:
    PENDING.flush()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
    return Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST)
