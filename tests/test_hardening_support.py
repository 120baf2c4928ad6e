"""Shared pieces of the hardening tests (no tests here): a real server on localhost and raw HTTP against it."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = REPO / ".venv" / "bin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(
    port: int, path: str, headers: dict[str, str] | None = None, timeout: float = 10
) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-cased names) and body of one GET on a fresh connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, {name.lower(): value for name, value in response.getheaders()}, response.read()
    finally:
        connection.close()


def raw_exchange(port: int, request: bytes, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` as is, close the sending side, and parse the one response: status, headers, body."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split(" ", 2)[1]), headers, body


def _wait_ready(port: int, process: subprocess.Popen, log, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            log.seek(0)
            raise AssertionError(f"server exited with {process.returncode}: {log.read()[-3000:]}")
        try:
            if get(port, "/readyz", timeout=2)[0] == 200:
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"server did not become ready in {timeout:.0f} s"
        time.sleep(0.3)


@contextlib.contextmanager
def running_server(
    command: Sequence[str], port: int, env: dict[str, str], ready_timeout: float = 120
) -> Iterator[subprocess.Popen]:
    """``command`` started from the repository in its own process group, once ``/readyz`` answers 200 on ``port``;
    the whole group is stopped when the block ends. Its output goes to a file, read back when it fails to start."""
    full_env = {**os.environ, **env}
    full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with tempfile.TemporaryFile(mode="w+") as log:
        process = subprocess.Popen(
            list(command),
            cwd=REPO,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            _wait_ready(port, process, log, ready_timeout)
            process.log = log  # type: ignore[attr-defined]
            yield process
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def gunicorn_command() -> list[str]:
    """Plain gunicorn with the project's config (bind and workers from ``POSTERREC_BIND``/``POSTERREC_WORKERS``)."""
    return [str(VENV_BIN / "gunicorn"), "-c", "gunicorn.conf.py", "recsvc:create_app()"]


def server_log(process: subprocess.Popen) -> str:
    log = process.log  # type: ignore[attr-defined]
    log.seek(0)
    return log.read()
