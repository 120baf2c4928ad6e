"""Resilience of the served configuration to slow and idle clients, beside its throughput, against its peers.

Each server configuration runs in turn over the same index (bench_service's
synthetic clustered vectors, built once under ``var/bench``):

* plain gunicorn with the project's config (sync workers, one per core);
* gunicorn with gthread workers (4 threads each);
* gunicorn's sync workers behind nginx (Debian's package), which buffers requests and answers;
* granian, as ``python -m recsvc`` (``make serve``) runs it: the shipped configuration, the app over
  granian's RSGI interface (each worker's one Python thread awaits whole bodies, then runs the app);
* the same RSGI app on asyncio's own event loop instead of the shipped uvloop;
* granian's WSGI interface, its pool of request threads a worker (granian's default);
* granian's WSGI interface with one request thread a worker.

For each: throughput and latency of ``/v1/posters/<id>/similar`` under wrk
at 1, 8, 32 and 256 connections, then, for each N, N hostile clients held open beside one
normal client: a third send request headers a byte a second, a third send a
body a byte a second after its headers, a third connect and send nothing
(each reconnects as soon as the server drops it, as an attacker would). The
normal client sends one request after another for the cell's seconds, each
on a new connection with a 5 s timeout, and the table gives its p50, p99,
completed requests and errors (refused, timed out, or not 200).

    .venv/bin/python bench/bench_resilience.py
    .venv/bin/python bench/bench_resilience.py --hostile 0 2 64 --seconds 10 --only gunicorn-sync granian
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_service import build_index, run_load  # noqa: E402

from bench.support import free_port, granian_cli_server, posterrec_server, running_server  # noqa: E402

NORMAL_TIMEOUT_S = 5.0
NGINX_CONF = """
worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/error.log warn;
{user}
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {run}/body; proxy_temp_path {run}/proxy;
  fastcgi_temp_path {run}/fastcgi; uwsgi_temp_path {run}/uwsgi; scgi_temp_path {run}/scgi;
  client_header_timeout 10s; client_body_timeout 10s; send_timeout 10s; keepalive_timeout 15s;
  client_max_body_size 9m;
  upstream app {{ server 127.0.0.1:{upstream}; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{ proxy_pass http://app; proxy_set_header Host $host; proxy_http_version 1.1; }}
  }}
}}
"""


def gunicorn_server(threads: int) -> Callable:
    """The service under gunicorn with the project's config, ``threads`` threads a worker (more than one: gthread)."""

    @contextlib.contextmanager
    def run(root: Path, workers: int) -> Iterator[int]:
        with posterrec_server(root, workers, "gunicorn", POSTERREC_THREADS=str(threads)) as server:
            yield server.port

    return run


@contextlib.contextmanager
def nginx_gunicorn(root: Path, workers: int) -> Iterator[int]:
    """nginx (Debian's package) in front of gunicorn's sync workers; raises RuntimeError when it is not installed."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise RuntimeError("nginx is not installed (Debian: apt-get install nginx)")
    with gunicorn_server(1)(root, workers) as upstream, tempfile.TemporaryDirectory(prefix="bench-nginx-") as run:
        port = free_port()
        config = Path(run) / "nginx.conf"
        config.write_text(
            NGINX_CONF.format(run=run, upstream=upstream, port=port, user="user root;" if os.geteuid() == 0 else "")
        )
        with running_server([nginx, "-c", str(config), "-g", "daemon off;"], port, ready_answers=4 * workers):
            yield port


@contextlib.contextmanager
def shipped_server(root: Path, workers: int) -> Iterator[int]:
    """``python -m recsvc``: granian running the app over RSGI."""
    with posterrec_server(root, workers) as server:
        yield server.port


@contextlib.contextmanager
def asyncio_loop_server(root: Path, workers: int) -> Iterator[int]:
    """The shipped RSGI app under granian on asyncio's own event loop."""
    with granian_cli_server(
        "rsgi", "recsvc.rsgi:create_rsgi_app", workers, "--loop", "asyncio", POSTERREC_INDEX_ROOT=str(root)
    ) as server:
        yield server.port


def granian_wsgi(threads: int | None) -> Callable:
    """The app under granian's WSGI interface, ``threads`` request threads a worker (None: granian's pool)."""

    @contextlib.contextmanager
    def run(root: Path, workers: int) -> Iterator[int]:
        options = [] if threads is None else ["--blocking-threads", str(threads)]
        with granian_cli_server(
            "wsgi", "recsvc:create_app", workers, *options, POSTERREC_INDEX_ROOT=str(root)
        ) as server:
            yield server.port

    return run


CONFIGS = {
    "gunicorn-sync": ("gunicorn sync (plain)", gunicorn_server(1)),
    "gunicorn-gthread": ("gunicorn gthread x4", gunicorn_server(4)),
    "nginx-gunicorn": ("nginx -> gunicorn sync", nginx_gunicorn),
    "granian": ("granian RSGI, python -m recsvc (shipped)", shipped_server),
    "granian-asyncio": ("granian RSGI on asyncio's loop", asyncio_loop_server),
    "granian-wsgi": ("granian WSGI, its thread pool", granian_wsgi(None)),
    "granian-wsgi-1-thread": ("granian WSGI, 1 request thread a worker", granian_wsgi(1)),
}


class HostileClients:
    """``count`` connections that hold the server: slow headers, slow bodies and idle ones, reconnecting when dropped."""

    KINDS = (
        b"GET /healthz HTTP/1.1\r\nHost: bench\r\nX-Slow: ",
        b"POST /v1/recommendations HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{",
        b"",
    )

    def __init__(self, port: int, count: int) -> None:
        self.port = port
        self.kinds = [self.KINDS[i % 3] for i in range(count)]
        self.sockets: list[socket.socket | None] = [None] * count
        self.reconnects = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _open(self, i: int) -> None:
        with contextlib.suppress(OSError):
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=2)
            sock.setblocking(False)
            if self.kinds[i]:
                sock.send(self.kinds[i])
            self.sockets[i] = sock

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            for i, sock in enumerate(self.sockets):
                if sock is None:
                    self.reconnects += 1
                    self._open(i)
                    continue
                try:
                    if sock.recv(65536, socket.MSG_PEEK) == b"":  # dropped by the server
                        raise ConnectionResetError
                except BlockingIOError:
                    pass
                except OSError:
                    sock.close()
                    self.sockets[i] = None
                    continue
                if self.kinds[i]:
                    with contextlib.suppress(OSError):
                        sock.send(b"a")

    def __enter__(self) -> HostileClients:
        for i in range(len(self.sockets)):
            self._open(i)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        for sock in self.sockets:
            if sock is not None:
                sock.close()


def normal_client(port: int, seconds: float, titles: int) -> dict:
    """One request after another on fresh connections: latency percentiles, completed requests and errors."""
    rng = np.random.default_rng(0)
    latencies, errors = [], 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=NORMAL_TIMEOUT_S)
            connection.request("GET", f"/v1/posters/b{int(rng.integers(titles)):07d}/similar?k=10")
            response = connection.getresponse()
            response.read()
            connection.close()
            if response.status == 200:
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1
        except OSError:
            errors += 1
            time.sleep(0.05)
    ms = np.asarray(latencies) * 1000
    return {
        "ok": len(latencies),
        "errors": errors,
        "p50_ms": float(np.percentile(ms, 50)) if len(ms) else float("nan"),
        "p99_ms": float(np.percentile(ms, 99)) if len(ms) else float("nan"),
    }


def measure(name: str, server: Callable, args: argparse.Namespace, root: Path) -> dict:
    with server(root, args.workers) as port:
        load = {c: run_load(port, "similar", args.n, c, args.load_seconds, warmup=1) for c in args.clients}
        attacks = {}
        for count in args.hostile:
            with HostileClients(port, count) as hostile:
                attacks[count] = normal_client(port, args.seconds, args.n)
                attacks[count]["reconnects"] = hostile.reconnects
            print(f"  {name}: {count} hostile -> {attacks[count]}", file=sys.stderr)
    return {"load": load, "attacks": attacks}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000, help="titles in the index")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--hostile", type=int, nargs="+", default=[0, 2, 64, 512], help="hostile client counts")
    parser.add_argument("--seconds", type=float, default=10, help="normal client's seconds per hostile count")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32, 256], help="wrk's connection counts")
    parser.add_argument("--load-seconds", type=int, default=5, help="wrk's seconds for each throughput cell")
    parser.add_argument("--only", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    args = parser.parse_args(argv)
    root = REPO / "var" / "bench" / f"resilience-{args.n}x{args.dim}"
    build_index(root, args.n, args.dim)
    results = {}
    for key in args.only:
        label, server = CONFIGS[key]
        try:
            results[label] = measure(key, server, args, root)
        except RuntimeError as err:
            print(f"{label}: not measured: {err}", file=sys.stderr)
    print_table(results, args)
    return 0


def throughput_cell(load: dict) -> str:
    """``req/s / p99 ms``, with wrk's error count where it has any."""
    errors = f" ({load['errors']:,} errors)" if load["errors"] else ""
    return f"{load['rps']:,.0f} / {load['p99_ms']:.1f}{errors}"


def print_table(results: dict, args: argparse.Namespace) -> None:
    print(
        f"Resilience: {args.workers} workers, index of {args.n:,} x {args.dim}-d vectors; throughput: wrk, "
        f"{args.load_seconds} s on /similar at each connection count; attack: N hostile clients (slow headers, slow "
        f"bodies, idle; a third each) beside one normal client making sequential /similar requests for "
        f"{args.seconds:g} s (5 s timeout)\n"
    )
    print(
        "| server | "
        + " | ".join(f"{c} conns: req/s / p99 ms" for c in args.clients)
        + " | "
        + " | ".join(f"N={n}: ok / errors / p50 / p99 ms" for n in args.hostile)
        + " |"
    )
    print("|---|" + "---:|" * (len(args.clients) + len(args.hostile)))
    for label, result in results.items():
        loads = [throughput_cell(result["load"][c]) for c in args.clients]
        attacks = [
            f"{a['ok']} / {a['errors']} / {a['p50_ms']:.1f} / {a['p99_ms']:.1f}"
            for a in (result["attacks"][n] for n in args.hostile)
        ]
        print(f"| {label} | " + " | ".join(loads + attacks) + " |")


if __name__ == "__main__":
    sys.exit(main())
