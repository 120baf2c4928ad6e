"""Shared pieces of the hardening tests (no tests here): raw HTTP against a real server on localhost.

The servers themselves start through ``bench.support`` (``running_server``), as the benchmarks start them.
"""

from __future__ import annotations

import http.client
import socket
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = REPO / ".venv" / "bin"


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


def raw_exchange(
    port: int, request: bytes, timeout: float = 10, half_close: bool = True
) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` as is, close the sending side (unless not ``half_close``: granian takes that as the
    client leaving; send ``Connection: close`` instead), and parse the one response: status, headers, body."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        if half_close:
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
