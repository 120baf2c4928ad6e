"""``python -m recsvc`` (``posterrec-serve``, ``make serve``): the production server, granian running the app.

granian parses HTTP in Rust on an event loop and hands the app only whole
requests, so clients that send slowly, or connect and stay idle, hold no
Python worker: two such clients took plain gunicorn's sync workers out of
service until gunicorn killed them (README, "Serving": bench_resilience).
Settings from the environment, as gunicorn.conf.py reads them:
``POSTERREC_BIND`` (``host:port``, default ``127.0.0.1:8000``),
``POSTERREC_WORKERS`` (processes, default the usable cores),
``POSTERREC_THREADS`` (request threads per worker, default granian's) and
``POSTERREC_ACCESS_LOG`` (any value: log each request). ``--dev`` runs
Flask's development server instead, for trying the API.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import sys
import tempfile
from pathlib import Path

HEADER_READ_TIMEOUT_MS = 10_000
"""How long a client may take to send a request's headers before its connection is closed."""
WORKER_KILL_TIMEOUT_S = 20
"""How long a worker may take to finish its requests on shutdown, as gunicorn's ``graceful_timeout``."""


def _count(name: str, default: int | None) -> int | None:
    """A whole number of at least 1 from the environment (empty or unset: ``default``), or exit saying what is wrong."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise SystemExit(f"{name} must be a whole number of at least 1, got {raw!r}")
    return int(raw)


def _address(bind: str) -> tuple[str, int]:
    host, _, port = bind.rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit(f"POSTERREC_BIND must be HOST:PORT, got {bind!r}")
    return host.strip("[]"), int(port)


def fresh_metrics_dir() -> Path:
    """The shared metrics directory of this server's workers, emptied of an earlier run's metric files.

    Set before prometheus_client is imported anywhere: it picks its multi-process mode when first loaded.
    """
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="posterrec-metrics-")
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)
    return directory


def _serve_metrics_apart(bind: str) -> None:
    """``metrics_bind``: every worker's metrics on their own address, served by this (the parent) process."""
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    host, port = _address(bind)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    start_http_server(port, addr=host, registry=registry)
    logging.getLogger(__name__).info("metrics on http://%s/metrics", bind)


def serve() -> int:
    from posterrec_settings import load_settings

    from granian import Granian
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings

    host, port = _address(os.environ.get("POSTERREC_BIND", "127.0.0.1:8000"))
    fresh_metrics_dir()
    # Workers start as new interpreters, which load prometheus_client in multi-process mode: this process
    # loaded it (through the recsvc package) before the metrics directory was set, and a fork would inherit that.
    multiprocessing.set_start_method("spawn", force=True)
    metrics_bind = load_settings().metrics_bind
    if metrics_bind:
        _serve_metrics_apart(metrics_bind)
    Granian(
        "recsvc:create_app",
        factory=True,
        interface=Interfaces.WSGI,
        address=host,
        port=port,
        workers=_count("POSTERREC_WORKERS", len(os.sched_getaffinity(0))),
        blocking_threads=_count("POSTERREC_THREADS", None),
        http=HTTPModes.http1,
        websockets=False,
        http1_settings=HTTP1Settings(header_read_timeout=HEADER_READ_TIMEOUT_MS),
        respawn_failed_workers=True,
        workers_kill_timeout=WORKER_KILL_TIMEOUT_S,
        log_access=bool(os.environ.get("POSTERREC_ACCESS_LOG")),
    ).serve()
    return 0


def serve_dev(host: str, port: int) -> int:
    from posterrec_settings import ConfigError

    from . import create_app

    try:
        app = create_app()
    except ConfigError as err:  # a setting that cannot work: one line naming it, not a traceback
        print(f"error: {err}", file=sys.stderr)
        return 1
    app.run(host=host, port=port, threaded=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m recsvc", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dev", action="store_true", help="Flask's development server, for trying the API")
    parser.add_argument("--host", default="127.0.0.1", help="with --dev")
    parser.add_argument("--port", type=int, default=8000, help="with --dev")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from posterrec_settings import ConfigError, load_settings

    try:
        load_settings()  # a setting that cannot work: one line naming it, before any server starts
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return serve_dev(args.host, args.port) if args.dev else serve()


if __name__ == "__main__":
    sys.exit(main())
