"""The shipped server (``python -m recsvc``, as ``make serve`` runs it) on localhost beside slow and idle clients."""

from __future__ import annotations

import contextlib
import socket
import time
from pathlib import Path

import pytest
from test_hardening_support import get

from bench.support import free_port, granian_command, running_server, service_env

pytestmark = pytest.mark.slow

HOSTILE_EACH = 16
"""Connections of each hostile kind: together 24 times what took both of plain gunicorn's sync workers out."""
OPENINGS = (
    b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",  # headers never ended
    b"POST /v1/recommendations HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 50000\r\n\r\n{",
    b"",  # connected, nothing sent
)


@contextlib.contextmanager
def hostile_connections(port: int) -> list[socket.socket]:
    sockets = []
    try:
        for opening in OPENINGS:
            for _ in range(HOSTILE_EACH):
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                sock.sendall(opening)
                sockets.append(sock)
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def test_slow_and_idle_clients_do_not_keep_other_clients_waiting(index_root: Path) -> None:
    port = free_port()
    env = service_env(port, 2, POSTERREC_INDEX_ROOT=str(index_root), POSTERREC_INDEX_POLL_SECONDS="0")
    with running_server(granian_command(), port, env, timeout=120), hostile_connections(port):
        time.sleep(0.5)  # every hostile connection accepted and waiting
        for _ in range(20):
            started = time.monotonic()
            status, _, _ = get(port, "/v1/posters/t001/similar?k=5", timeout=3)
            assert status == 200 and time.monotonic() - started < 2, "a normal request is answered at once"
        assert get(port, "/healthz", timeout=3)[0] == 200
