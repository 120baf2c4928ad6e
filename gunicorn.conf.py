"""gunicorn settings for PosterRec (`make serve`): `gunicorn -c gunicorn.conf.py 'recsvc:create_app()'`.

Each worker loads the index itself (no --preload) so that its watcher thread
hot-swaps new versions in that process.

Sync workers, one per core: every request is CPU-bound (a ScaNN search and
JSON), so threads only queue on the GIL, and keep-alive gthread workers keep
the connections they accepted, so on 2 workers the load often sat on one of
them (README, "Service benchmarks": gthread runs swung by 2.6x, sync runs
were steadier and faster). A sync worker is busy for the whole of a request,
uploads included, and is restarted after ``timeout``: as gunicorn advises, put
a buffering proxy (nginx) in front when clients can be slow, or set
``POSTERREC_THREADS=4`` for gthread workers.
"""

import os
import tempfile
from pathlib import Path


def _count(name: str, default: int) -> int:
    """A whole number of at least 1 from the environment (empty or unset: ``default``), or exit saying what is wrong."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise SystemExit(f"{name} must be a whole number of at least 1, got {raw!r}")
    return int(raw)


def _usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, as a container's cpuset sets it), not the host's count."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


bind = os.environ.get("POSTERREC_BIND", "127.0.0.1:8000")
workers = _count("POSTERREC_WORKERS", _usable_cores())
worker_class = "sync"
threads = _count("POSTERREC_THREADS", 1)  # more than 1: gunicorn runs gthread workers instead
timeout = 60
graceful_timeout = 20
accesslog = os.environ.get("POSTERREC_ACCESS_LOG")  # unset: no access log on the hot path
loglevel = "info"
# Headers a front-end proxy sets (SCRIPT_NAME, X-Forwarded-Proto...) are taken only from the addresses named in
# POSTERREC_FORWARDED_ALLOW_IPS: gunicorn's default trusts 127.0.0.1, so any local client could root the API's
# URLs and the browse page at another site by sending a SCRIPT_NAME header.
forwarded_allow_ips = os.environ.get("POSTERREC_FORWARDED_ALLOW_IPS", "")
# No control socket: gunicorn's default ($HOME/.gunicorn/gunicorn.ctl) is one path per user, so a second server
# took over the first one's socket and removed it on exit. Nothing here uses it.
control_socket_disable = True

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="posterrec-metrics-")
_metrics_dir = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])


def on_starting(server):
    """Start every run with empty shared metrics: the metric files of an earlier run are removed, nothing else
    (the directory may be one the operator named, holding other files)."""
    _metrics_dir.mkdir(parents=True, exist_ok=True)
    for stale in _metrics_dir.glob("*.db"):
        stale.unlink(missing_ok=True)


def when_ready(server):
    """With ``metrics_bind`` set, the master serves every worker's metrics on that address, apart from the API."""
    from posterrec_settings import load_settings

    bind = load_settings().metrics_bind
    if bind:
        from prometheus_client import CollectorRegistry, multiprocess, start_http_server

        host, _, port = bind.rpartition(":")
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        start_http_server(int(port), addr=host or "127.0.0.1", registry=registry)
        server.log.info("metrics on http://%s/metrics", bind)


def child_exit(server, worker):
    from prometheus_client import multiprocess  # not at the top: it must load after PROMETHEUS_MULTIPROC_DIR is set

    multiprocess.mark_process_dead(worker.pid)
