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

import multiprocessing
import os
import shutil
import tempfile

bind = os.environ.get("POSTERREC_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("POSTERREC_WORKERS", multiprocessing.cpu_count()))
worker_class = "sync"
threads = int(os.environ.get("POSTERREC_THREADS", 1))  # more than 1: gunicorn runs gthread workers instead
timeout = 60
graceful_timeout = 20
accesslog = os.environ.get("POSTERREC_ACCESS_LOG")  # unset: no access log on the hot path
loglevel = "info"

_metrics_dir = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="posterrec-metrics-"))


def on_starting(server):
    """Start every run with empty shared metrics."""
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    os.makedirs(_metrics_dir, exist_ok=True)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
