"""A real server on localhost against malformed and hostile HTTP: every answer the app gives is JSON, none a 500."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_hardening_support import get, raw_exchange

from bench.support import free_port, gunicorn_command, running_server, service_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gunicorn_port(index_root: Path):
    port = free_port()
    env = service_env(port, 2, POSTERREC_INDEX_ROOT=str(index_root), POSTERREC_INDEX_POLL_SECONDS="0")
    with running_server(gunicorn_command(), port, env, timeout=120) as server:
        yield port
        assert "Traceback" not in server.output(), "no request made the app log an unhandled error"


BAD_CHUNKINGS = {
    "chunk size not hex": b"zz\r\n{}\r\n0\r\n\r\n",
    "negative chunk size": b"-1\r\n{}\r\n0\r\n\r\n",
    "chunk without its CRLF": b"2\r\n{}XX0\r\n\r\n",
}


def chunked_post(path: str, content_type: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body


@pytest.mark.parametrize("chunking", BAD_CHUNKINGS)
@pytest.mark.parametrize(
    "path, content_type",
    [
        ("/v1/recommendations", "application/json"),
        ("/v1/search", "application/json"),
        ("/v1/search", "multipart/form-data; boundary=xyz"),
    ],
)
def test_a_malformed_chunked_body_is_a_json_400(
    gunicorn_port: int, chunking: str, path: str, content_type: str
) -> None:
    status, headers, body = raw_exchange(gunicorn_port, chunked_post(path, content_type, BAD_CHUNKINGS[chunking]))
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"] == "bad_request"


def test_a_well_formed_chunked_body_is_read_whole(gunicorn_port: int) -> None:
    payload = json.dumps({"history": ["t001", "t002"], "k": 3}).encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (payload[:7], payload[7:])) + b"0\r\n\r\n"
    status, _, body = raw_exchange(gunicorn_port, chunked_post("/v1/recommendations", "application/json", chunks))
    assert status == 200 and len(json.loads(body)["results"]) == 3


def test_a_script_name_header_from_a_local_client_roots_no_url(gunicorn_port: int) -> None:
    status, _, body = raw_exchange(
        gunicorn_port,
        b"GET /v1/posters/t001 HTTP/1.1\r\nHost: localhost\r\nSCRIPT_NAME: //evil.example\r\nConnection: close\r\n\r\n",
    )
    assert status == 200 and json.loads(body)["image_url"].startswith("/v1/posters/t001/image")
    status, _, body = raw_exchange(
        gunicorn_port, b"GET / HTTP/1.1\r\nHost: localhost\r\nSCRIPT_NAME: //evil.example\r\nConnection: close\r\n\r\n"
    )
    assert status == 200 and b"evil.example" not in body


def test_a_configured_server_takes_a_prefix_from_its_proxy_serves_metrics_apart_and_makes_no_control_socket(
    index_root: Path, tmp_path: Path
) -> None:
    """POSTERREC_FORWARDED_ALLOW_IPS names the proxy whose SCRIPT_NAME roots the URLs; POSTERREC_METRICS_BIND the metrics' own address."""
    port, metrics_port = free_port(), free_port()
    env = service_env(
        port,
        1,
        POSTERREC_INDEX_ROOT=str(index_root),
        POSTERREC_INDEX_POLL_SECONDS="0",
        POSTERREC_FORWARDED_ALLOW_IPS="127.0.0.1",
        HOME=str(tmp_path),
        POSTERREC_METRICS_BIND=f"127.0.0.1:{metrics_port}",
        XDG_RUNTIME_DIR="",
    )
    with running_server(gunicorn_command(), port, env, timeout=120):
        assert get(port, "/metrics")[0] == 404
        status, _, body = get(metrics_port, "/metrics")
        assert status == 200 and b"posterrec_index_items" in body
        status, _, body = raw_exchange(
            port,
            b"GET /posterrec/v1/posters/t001 HTTP/1.1\r\nHost: localhost\r\nSCRIPT_NAME: /posterrec\r\n"
            b"Connection: close\r\n\r\n",
        )
        assert status == 200 and json.loads(body)["image_url"].startswith("/posterrec/v1/posters/t001/image")
        assert not list(tmp_path.rglob("*.ctl")), "no gunicorn control socket under $HOME"
