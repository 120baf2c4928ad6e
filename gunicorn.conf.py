"""gunicorn settings for PosterRec: ``gunicorn -c gunicorn.conf.py 'recsvc:create_app()'``.

For deployments behind a buffering proxy (nginx) that standardise on gunicorn; ``make serve`` runs granian
(``python -m recsvc``), which needs no proxy against slow clients. Both read the same environment
(:func:`posterrec_settings.load_server_settings`).

Each worker loads the index itself (no ``--preload``) so that its watcher thread hot-swaps new versions in
that process. Sync workers, one per core: every request is CPU-bound (a ScaNN search and JSON), so threads
only queue on the GIL (docs/benchmarks.md compares sync and gthread workers). A sync worker is busy for the
whole of a request, uploads included, and is restarted after ``timeout``; ``POSTERREC_THREADS`` above 1
selects gthread workers.
"""

import os
import shutil
import tempfile
from pathlib import Path

from posterrec_settings import ConfigError, checked_metrics_address, load_server_settings, load_settings

try:
    _server = load_server_settings()
    _metrics_bind = load_settings().metrics_bind
    _metrics_address = checked_metrics_address(_metrics_bind, _server.address) if _metrics_bind else None
except ConfigError as err:
    raise SystemExit(f"error: {err}") from None

bind = _server.bind
workers = _server.workers
worker_class = "sync"
threads = _server.threads or 1  # more than 1: gunicorn runs gthread workers instead
timeout = 60
graceful_timeout = 20
accesslog = _server.access_log or None  # unset: no access log on the hot path
loglevel = "info"
# Headers a front-end proxy sets (SCRIPT_NAME, X-Forwarded-Proto...) are taken only from the addresses named in
# POSTERREC_FORWARDED_ALLOW_IPS: gunicorn's default trusts 127.0.0.1, so any local client could root the API's
# URLs and the browse page at another site by sending a SCRIPT_NAME header.
forwarded_allow_ips = _server.forwarded_allow_ips
# No control socket: gunicorn's default ($HOME/.gunicorn/gunicorn.ctl) is one path per user, so a second server
# took over the first one's socket and removed it on exit. Nothing here uses it.
control_socket_disable = True

_made_metrics_dir = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _made_metrics_dir:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="posterrec-metrics-")
_metrics_dir = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])


def on_starting(server):
    """Start every run with empty shared metrics: the metric files of an earlier run are removed, nothing else
    (the directory may be one the operator named, holding other files)."""
    _metrics_dir.mkdir(parents=True, exist_ok=True)
    for stale in _metrics_dir.glob("*.db"):
        stale.unlink(missing_ok=True)


def when_ready(server):
    """With ``metrics_bind`` set, the master serves every worker's metrics on that address, apart from the API: the
    registry ``python -m recsvc`` serves (``recsvc.metrics.serve_metrics_apart``), built here without importing the
    app into the master, whose workers must load it fresh."""
    if _metrics_address:
        from prometheus_client import CollectorRegistry, multiprocess, start_http_server

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        start_http_server(_metrics_address[1], addr=_metrics_address[0], registry=registry)
        server.log.info("metrics on http://%s/metrics", _metrics_bind)


def child_exit(server, worker):
    from prometheus_client import multiprocess  # not at the top: it must load after PROMETHEUS_MULTIPROC_DIR is set

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """Remove the metrics directory when this config made it (a temporary one, not the operator's)."""
    if _made_metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
