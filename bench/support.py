"""What the benchmarks and the live-server tests share: synthetic vectors, timing, servers on localhost, wrk.

Servers run as users run them: ``python -m recsvc`` (granian, :func:`granian_command`) or gunicorn with the
project's config (:func:`gunicorn_command`), each in its own process group on a free port until the block
ends (:func:`running_server`). Load comes from wrk with one of this folder's Lua scripts (:func:`run_wrk`).
Bench scripts import this as ``bench.support`` after putting the repository on ``sys.path``; tests, run
from the repository root with ``python -m pytest``, import it the same way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
GUNICORN = Path(sys.executable).with_name("gunicorn")


# --- data and timing ---------------------------------------------------------------------------------


def clustered_vectors(
    n: int, dim: int = 128, seed: int = 0, clusters: int | None = None, spread: float = 1.0
) -> np.ndarray:
    """``n`` unit float32 vectors from a Gaussian mixture: unit centres plus isotropic noise of norm about ``spread``.

    With spread 1 a vector's cosine to its own centre is about 0.7, so clusters overlap the way genres do;
    the default of about 4 * sqrt(n) clusters keeps the structure finer than an index's sqrt(n) leaves.
    """
    rng = np.random.default_rng(seed)
    clusters = clusters or max(8, int(4 * np.sqrt(n)))
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):  # chunks keep the float64 noise small at 1M
        size = min(100_000, n - start)
        chunk = centres[rng.integers(clusters, size=size)] + rng.normal(
            scale=spread / np.sqrt(dim), size=(size, dim)
        ).astype(np.float32)
        out[start : start + size] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
    return out


def timed_calls(call: Callable, inputs: Iterable, budget: float = float("inf"), minimum: int = 20) -> list[float]:
    """Seconds of each ``call(item)`` over ``inputs`` in turn, stopping once ``budget`` seconds have passed
    and at least ``minimum`` calls were timed."""
    times: list[float] = []
    deadline = time.perf_counter() + budget
    for item in inputs:
        started = time.perf_counter()
        call(item)
        times.append(time.perf_counter() - started)
        if started > deadline and len(times) >= minimum:
            break
    return times


def percentile_ms(seconds: Sequence[float], q: float) -> float:
    return float(np.percentile(seconds, q) * 1e3)


# --- servers on localhost ----------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def granian_command() -> list[str]:
    """The service as ``make serve`` runs it: ``python -m recsvc`` (granian; bind and workers from the environment)."""
    return [sys.executable, "-m", "recsvc"]


def granian_cli_command(interface: str, target: str, port: int, workers: int, *options: str) -> list[str]:
    """granian's own command line serving the factory ``target`` over ``interface`` (``wsgi`` or ``rsgi``) on
    ``port``, with the HTTP version, loop and header timeout that ``python -m recsvc`` gives it, plus ``options``."""
    from recsvc.__main__ import EVENT_LOOP, HEADER_READ_TIMEOUT_MS

    command = [sys.executable, "-m", "granian", "--interface", interface, "--factory", "--workers", str(workers)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--http", "1", "--no-ws", "--loop", EVENT_LOOP]
    command += ["--http1-header-read-timeout", str(HEADER_READ_TIMEOUT_MS)]
    return [*command, *options, target]


def gunicorn_command(app: str = "recsvc:create_app()", chdir: Path = REPO) -> list[str]:
    """gunicorn with the project's ``gunicorn.conf.py`` serving ``app`` (imported from ``chdir``)."""
    return [str(GUNICORN), "-c", str(REPO / "gunicorn.conf.py"), "--chdir", str(chdir), app]


def service_env(port: int, workers: int, **settings: str) -> dict[str, str]:
    """The ``POSTERREC_*`` variables that bind the service to ``port`` with ``workers`` workers, plus ``settings``."""
    return {"POSTERREC_BIND": f"127.0.0.1:{port}", "POSTERREC_WORKERS": str(workers), **settings}


@dataclasses.dataclass
class Server:
    """A server started by :func:`running_server`: its process (group leader), port and captured output."""

    process: subprocess.Popen
    port: int
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _answers(port: int, path: str) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", path)
        status = connection.getresponse().status
        connection.close()
        return status == 200
    except OSError:
        return False


def wait_until_ready(server: Server, path: str, answers: int, timeout: float) -> None:
    """Ask ``path`` until ``answers`` 200s come in a row (each worker of a pool loads the index itself).

    Raises RuntimeError with the end of the server's output if it exits or ``timeout`` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    streak = 0
    while streak < answers:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited with {server.process.returncode}: {server.output()[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"server on port {server.port} did not answer {path} with 200 in {timeout:.0f} s")
        streak = streak + 1 if _answers(server.port, path) else 0
        if streak < answers:
            time.sleep(0.2)


@contextlib.contextmanager
def running_server(
    command: Sequence[str],
    port: int,
    env: dict[str, str] | None = None,
    ready_path: str = "/readyz",
    ready_answers: int = 1,
    timeout: float = 600,
) -> Iterator[Server]:
    """``command`` run from the repository in its own process group, with ``env`` over this environment
    (less ``PROMETHEUS_MULTIPROC_DIR``), yielded once ``ready_path`` on ``port`` answers as
    :func:`wait_until_ready` asks; the whole group is stopped when the block ends (SIGTERM, then SIGKILL
    after 30 s). Output goes to a file, not a pipe: an undrained pipe fills up and stalls the server.
    """
    full_env = {**os.environ, **(env or {})}
    full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with tempfile.TemporaryDirectory(prefix="posterrec-server-") as scratch:
        log = Path(scratch) / "output.log"
        with log.open("w") as sink:
            process = subprocess.Popen(
                list(command), cwd=REPO, env=full_env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
            )
        server = Server(process, port, log)
        try:
            wait_until_ready(server, ready_path, ready_answers, timeout)
            yield server
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@contextlib.contextmanager
def posterrec_server(index_root: Path, workers: int, server: str = "granian", **settings: str) -> Iterator[Server]:
    """PosterRec serving ``index_root`` on a free port with ``workers`` workers, under granian
    (``python -m recsvc``) or gunicorn, ready once every worker answers ``/readyz``."""
    command = {"granian": granian_command, "gunicorn": gunicorn_command}[server]()
    port = free_port()
    env = service_env(port, workers, POSTERREC_INDEX_ROOT=str(index_root), **settings)
    with running_server(command, port, env, ready_answers=4 * workers) as running:
        yield running


@contextlib.contextmanager
def granian_cli_server(
    interface: str, target: str, workers: int, *options: str, ready_path: str = "/readyz", **settings: str
) -> Iterator[Server]:
    """:func:`granian_cli_command` serving ``target`` with ``workers`` workers and ``options`` on a free port, with
    the ``POSTERREC_*`` ``settings``; ready once every worker answers ``ready_path``."""
    port = free_port()
    command = granian_cli_command(interface, target, port, workers, *options)
    env = service_env(port, workers, **settings)
    with running_server(command, port, env, ready_path, ready_answers=4 * workers) as running:
        yield running


FIXED_ANSWER = b'{"status":"ok"}\n'


async def _fixed_answer(scope, protocol) -> None:
    protocol.response_bytes(200, [("content-type", "application/json")], FIXED_ANSWER)


def fixed_answer_app() -> Callable:
    """granian's factory for an RSGI app that answers every request at once with :data:`FIXED_ANSWER`: what the
    shipped HTTP server costs with no Flask and no work behind it."""
    return _fixed_answer


def flask_only_rsgi_app() -> Callable:
    """granian's factory for the service as ``python -m recsvc`` serves it but without
    :class:`recsvc.shortcut.ApiShortcut`: every request through Flask, what the shortcut saves measured."""
    from recsvc import create_app
    from recsvc.rsgi import rsgi_app_for

    return rsgi_app_for(create_app())


# --- load from wrk -----------------------------------------------------------------------------------


def run_wrk(script: str, port: int, clients: int, seconds: int, env: dict[str, str]) -> dict:
    """wrk (one thread, ``clients`` connections, ``seconds``) against ``port`` with ``bench/<script>``, its
    requests configured by ``env``; the report of ``wrk_report.lua``'s ``done()`` plus ``rps``.

    Raises RuntimeError when wrk is not installed.
    """
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("the load comes from wrk: install it (Debian: apt-get install wrk)")
    command = [wrk, "-t1", f"-c{clients}", f"-d{seconds}s", "-s", str(BENCH / script), f"http://127.0.0.1:{port}"]
    finished = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, check=True)
    report = json.loads(finished.stdout.strip().splitlines()[-1])
    return {**report, "rps": report["requests"] / report["seconds"]}
