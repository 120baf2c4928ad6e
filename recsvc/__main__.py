"""``python -m recsvc`` (``posterrec-serve``, ``make serve``): the production server, granian running the app.

granian parses requests in Rust; each worker's one Python thread awaits a request's whole body without
blocking and then runs the app (:mod:`recsvc.rsgi`), so clients that send slowly, or connect and stay idle,
hold no Python worker, and no pool of threads contends for the GIL (docs/benchmarks.md, "Serving").
Requests that upload an image run in ``POSTERREC_THREADS`` threads a worker (default 8). It reads
``POSTERREC_BIND``, ``POSTERREC_WORKERS``, ``POSTERREC_THREADS`` and ``POSTERREC_ACCESS_LOG``
(:class:`posterrec_settings.ServerSettings`). ``--dev`` runs Flask's development server instead, for
trying the API.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import multiprocessing
import os
import shutil
import tempfile
from pathlib import Path

from posterrec_settings import check_can_listen, checked_metrics_address, load_server_settings, load_settings

import posterrec_cli

from .metrics import serve_metrics_apart

HEADER_READ_TIMEOUT_MS = 10_000
"""How long a client may take to send a request's headers before its connection is closed."""
WORKER_KILL_TIMEOUT_S = 20
"""How long a worker may take to finish its requests on shutdown, as gunicorn's ``graceful_timeout``."""
EVENT_LOOP = "uvloop"
"""The workers' event loop (granian's ``--loop``): uvloop served 1.3-1.5x the requests of asyncio's own loop
at one connection, with a lower p99, and about as many at more (docs/benchmarks.md, "Which event loop")."""


def fresh_metrics_dir() -> Path:
    """The shared metrics directory of this server's workers, emptied of an earlier run's metric files.

    Set before prometheus_client is imported anywhere: it picks its multi-process mode when first loaded. A
    directory made here (``PROMETHEUS_MULTIPROC_DIR`` unset) is removed when this process exits.
    """
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        made = tempfile.mkdtemp(prefix="posterrec-metrics-")
        atexit.register(shutil.rmtree, made, ignore_errors=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = made
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)
    return directory


def serve(args: argparse.Namespace) -> int:
    """Run granian with the environment's :class:`ServerSettings` until it is stopped."""
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.http import HTTP1Settings

    server = load_server_settings()
    host, port = server.address
    check_can_listen(host, port, "POSTERREC_BIND")
    metrics_bind = load_settings().metrics_bind
    metrics_address = checked_metrics_address(metrics_bind, (host, port)) if metrics_bind else None
    fresh_metrics_dir()
    # Workers start as new interpreters, which load prometheus_client in multi-process mode: this process
    # loaded it (through the recsvc package) before the metrics directory was set, and a fork would inherit that.
    multiprocessing.set_start_method("spawn", force=True)
    if metrics_address:
        serve_metrics_apart(metrics_address)
        logging.getLogger(__name__).info("metrics on http://%s/metrics", metrics_bind)
    Granian(
        "recsvc.rsgi:create_rsgi_app",
        factory=True,
        interface=Interfaces.RSGI,
        address=host,
        port=port,
        workers=server.workers,
        http=HTTPModes.http1,
        websockets=False,
        http1_settings=HTTP1Settings(header_read_timeout=HEADER_READ_TIMEOUT_MS),
        respawn_failed_workers=True,
        workers_kill_timeout=WORKER_KILL_TIMEOUT_S,
        log_access=bool(server.access_log),
        loop=Loops(EVENT_LOOP),
    ).serve()
    return 0


def serve_dev(args: argparse.Namespace) -> int:
    """Flask's development server on ``--host``/``--port``."""
    from . import create_app

    host = "127.0.0.1" if args.host is None else args.host
    create_app().run(host=host, port=8000 if args.port is None else args.port, threaded=True)
    return 0


HELP = """\
Serve the PosterRec API and browse page with granian, a Rust HTTP server: slow or idle clients hold no
worker. Set by the environment: POSTERREC_BIND (HOST:PORT, default 127.0.0.1:8000), POSTERREC_WORKERS
(processes, default one per core), POSTERREC_THREADS (upload threads per worker, default 8) and
POSTERREC_ACCESS_LOG (set: log each request); the index and the other settings as the README says.
--dev runs Flask's development server instead, for trying the API."""
"""``--help``'s description: the module docstring above, in words for the command line."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m recsvc", description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dev", action="store_true", help="Flask's development server, for trying the API")
    parser.add_argument("--host", help="with --dev (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="with --dev (default 8000)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    args = parser.parse_args(argv)
    if not args.dev and (args.host is not None or args.port is not None):
        parser.error("--host and --port set --dev's address; the server's is POSTERREC_BIND=HOST:PORT")
    return posterrec_cli.run(args, serve_dev if args.dev else serve)


if __name__ == "__main__":
    posterrec_cli.exit_with(main())
