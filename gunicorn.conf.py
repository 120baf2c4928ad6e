"""gunicorn settings for PosterRec (`make serve`): `gunicorn -c gunicorn.conf.py 'recsvc:create_app()'`.

Each worker loads the index itself (no --preload) so that its watcher thread
hot-swaps new versions in that process.

Sync workers, one per core: every request is CPU-bound (a ScaNN search and
JSON), so threads only queue on the GIL, and with keep-alive gthread workers
a worker keeps the connections it accepted, so on 2 workers the load often
sat on one of them (bench_service.py at 1M vectors, 32 clients: /similar
1,445 req/s and p99 32 ms with sync workers, 649-1,682 req/s and p99 66-359 ms
with 2 x 4 gthreads, varying run to run). As gunicorn advises for sync
workers, put a buffering proxy (nginx) in front when clients can be slow;
``POSTERREC_WORKER_CLASS=gthread POSTERREC_THREADS=4`` is the alternative. Prometheus counters are shared across
workers through PROMETHEUS_MULTIPROC_DIR.
"""

import multiprocessing
import os
import shutil
import tempfile

bind = os.environ.get("POSTERREC_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("POSTERREC_WORKERS", multiprocessing.cpu_count()))
worker_class = os.environ.get("POSTERREC_WORKER_CLASS", "sync")
threads = int(os.environ.get("POSTERREC_THREADS", 1))  # more than 1 makes gunicorn use gthread
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
