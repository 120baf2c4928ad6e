"""The shipped server (``python -m recsvc``: the app over granian's RSGI, :mod:`recsvc.rsgi`) on localhost:
what the app receives of paths, headers and bodies, and uploads run in the worker's upload threads."""

from __future__ import annotations

import http.client
import io
import json
import re
import socket
import time

import pytest
from PIL import Image
from rsgi_probe import PROBE_LARGE_BODY, PROBE_LARGE_BODY_WAIT_SECONDS, PROBE_MAX_BODY
from test_hardening_support import get, raw_exchange
from test_recsvc_search import publish_with_model, tiny_model  # noqa: F401  (the fixture)

from bench.support import free_port, granian_cli_command, granian_command, running_server, service_env

pytestmark = pytest.mark.slow

MAX_BODY = 64 * 1024
"""The server's ``max_upload_bytes`` here: small enough to send past."""


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory) -> tuple[int, list]:  # noqa: F811
    """A port the service answers on (one worker over an index of the tiny model) and the index's items."""
    model_dir, catalog = tiny_model
    root = tmp_path_factory.mktemp("index")
    items = publish_with_model(root, model_dir, catalog)
    port = free_port()
    env = service_env(
        port,
        1,
        POSTERREC_INDEX_ROOT=str(root),
        POSTERREC_INDEX_POLL_SECONDS="0",
        POSTERREC_MAX_UPLOAD_BYTES=str(MAX_BODY),
    )
    with running_server(granian_command(), port, env, timeout=120):
        yield port, items


def post(port: int, path: str, body: bytes, content_type: str) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", path, body=body, headers={"Content-Type": content_type})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def exchange(port: int, request: str | bytes) -> tuple[int, dict[str, str], bytes]:
    """One raw request (ending in ``Connection: close``) and its response, the sending side left open."""
    return raw_exchange(port, request.encode() if isinstance(request, str) else request, half_close=False)


def test_a_percent_encoded_path_and_query_reach_the_app_decoded(server) -> None:
    port, items = server
    title_id = items[0].title_id
    encoded = "".join(f"%{byte:02X}" for byte in title_id.encode())
    status, _, body = get(port, f"/v1/posters/{encoded}/similar?k=%32")
    assert status == 200 and len(json.loads(body)["results"]) == 2
    status, _, body = get(port, "/v1/posters/caf%C3%A9")
    assert status == 404 and "'café'" in json.loads(body)["detail"]


def test_a_query_string_sent_as_raw_utf8_reaches_the_app_decoded(server) -> None:
    port, items = server
    similar = f"/v1/posters/{items[0].title_id}/similar"
    status, _, body = exchange(
        port, f"GET {similar}?region=é HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    )
    assert status == 400 and "'é'" in json.loads(body)["detail"]
    status, _, body = exchange(
        port, f"GET {similar}?x=日本&k=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    )
    assert status == 200 and len(json.loads(body)["results"]) == 1


def test_similar_posters_answered_without_flask_carry_the_apps_headers_and_are_counted(server) -> None:
    port, items = server
    status, headers, body = get(port, f"/v1/posters/{items[0].title_id}/similar?k=1")
    assert status == 200 and json.loads(body)["id"] == items[0].title_id
    assert headers["content-type"] == "application/json" and headers["x-content-type-options"] == "nosniff"
    assert int(headers["content-length"]) == len(body)
    _, _, metrics = get(port, "/metrics")
    counted = 'posterrec_requests_total{endpoint="/v1/posters/<title_id>/similar",method="GET",status="200"}'
    assert any(line.startswith(counted) and float(line.split()[-1]) >= 1 for line in metrics.decode().splitlines())


def recommendation_request(history: list[str], *content_types: str) -> bytes:
    body = json.dumps({"history": history, "k": 2}).encode()
    headers = "".join(f"Content-Type: {content_type}\r\n" for content_type in content_types)
    head = f"POST /v1/recommendations HTTP/1.1\r\nHost: x\r\n{headers}Content-Length: {len(body)}\r\n"
    return f"{head}Connection: close\r\n\r\n".encode() + body


def test_recommendations_answered_without_flask_carry_the_apps_headers_and_are_counted(server) -> None:
    port, items = server
    status, headers, body = exchange(port, recommendation_request([items[0].title_id], "application/json"))
    assert status == 200 and len(json.loads(body)["results"]) == 2
    assert headers["content-type"] == "application/json" and headers["x-content-type-options"] == "nosniff"
    _, _, metrics = get(port, "/metrics")
    counted = 'posterrec_requests_total{endpoint="/v1/recommendations",method="POST",status="200"}'
    assert any(line.startswith(counted) and float(line.split()[-1]) >= 1 for line in metrics.decode().splitlines())


def test_a_content_type_sent_twice_reaches_the_recommendations_as_one_list(server) -> None:
    port, items = server
    request = recommendation_request([items[0].title_id], "application/json", "text/plain")
    status, _, body = exchange(port, request)
    assert status == 415 and "(Content-Type 'application/json, text/plain')" in json.loads(body)["detail"]


def test_a_header_sent_twice_reaches_the_app_as_one_list(server) -> None:
    port, items = server
    image = f"/v1/posters/{items[0].title_id}/image"
    _, headers, _ = get(port, image)
    request = (
        f'GET {image} HTTP/1.1\r\nHost: localhost\r\nIf-None-Match: "another"\r\n'
        f"If-None-Match: {headers['etag']}\r\nConnection: close\r\n\r\n"
    )
    assert exchange(port, request)[0] == 304


def test_a_body_declared_past_the_limit_is_413_without_being_sent(server) -> None:
    port, _ = server
    request = (
        "POST /v1/search HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"Content-Length: {100 * MAX_BODY}\r\nConnection: close\r\n\r\n"
    )
    started = time.monotonic()
    status, _, body = exchange(port, request)
    assert status == 413 and json.loads(body)["error"] == "request_entity_too_large"
    assert time.monotonic() - started < 5


def test_a_chunked_body_past_the_limit_is_413_and_one_within_it_is_read(server) -> None:
    port, _ = server

    def chunked(payload: bytes) -> bytes:
        head = b"POST /v1/recommendations HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        head += b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        return head + b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload)

    too_large = json.dumps({"history": ["x" * MAX_BODY]}).encode()
    assert exchange(port, chunked(too_large))[0] == 413
    unterminated = chunked(too_large).removesuffix(b"0\r\n\r\n")  # answered without waiting for the end
    assert exchange(port, unterminated)[0] == 413
    status, _, body = exchange(port, chunked(b'{"history": []}'))
    assert status == 400 and "history" in json.loads(body)["detail"]  # read whole: the app judged its content


def test_a_post_without_a_body_is_answered_400_and_the_request_after_it_is_answered_too(server) -> None:
    port, _ = server
    bodiless = b"POST /v1/recommendations HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\r\n"
    follow_up = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    status, _, rest = exchange(port, bodiless + follow_up)  # rest: the 400's body, then the next response
    later_statuses = re.findall(rb"^HTTP/1\.1 (\d{3}) ", rest, re.MULTILINE)
    assert status == 400 and later_statuses == [b"200"], rest[:300]


def test_a_search_by_image_upload_is_answered_from_the_upload_threads(server) -> None:
    port, items = server
    image = io.BytesIO()
    Image.open(items[0].image_path).save(image, "PNG")
    boundary = "posterrec-test"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="k"\r\n\r\n3\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="p.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + image.getvalue()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    status, answer = post(port, "/v1/search", body, f"multipart/form-data; boundary={boundary}")
    assert status == 200 and answer["results"][0]["id"] == items[0].title_id


@pytest.fixture(scope="module")
def probe() -> int:
    """A port :mod:`rsgi_probe`'s app answers on, served over RSGI by :mod:`recsvc.rsgi` in one granian worker."""
    port = free_port()
    command = granian_cli_command("rsgi", "rsgi_probe:probe_app", port, 1, "--working-dir", "tests")
    with running_server(command, port, ready_path="/probe", timeout=120):
        yield port


def probed(port: int, request: str) -> dict:
    status, _, body = exchange(port, request)
    assert status == 200, body
    return json.loads(body)


def test_an_upload_in_any_letter_case_runs_in_the_upload_threads_and_other_requests_on_the_loop(probe) -> None:
    upload = "Multipart/Form-Data; boundary=x"
    posted = (
        f"POST /probe HTTP/1.1\r\nHost: localhost\r\nContent-Type: {upload}\r\nContent-Length: 6\r\n"
        "Connection: close\r\n\r\n--x--\n"
    )
    answer = probed(probe, posted)
    assert answer["thread"].startswith("posterrec-upload") and answer["body"] == 6
    plain = probed(probe, "GET /probe HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    assert not plain["thread"].startswith("posterrec-upload")


def test_a_header_name_with_an_underscore_cannot_pose_as_one_with_a_hyphen(probe) -> None:
    request = (
        "GET /probe HTTP/1.1\r\nHost: localhost\r\nX_Forwarded_For: 6.6.6.6\r\n"
        "X-Forwarded-For: 192.0.2.1\r\nConnection: close\r\n\r\n"
    )
    assert probed(probe, request)["headers"]["HTTP_X_FORWARDED_FOR"] == "192.0.2.1"


def test_an_http_1_0_request_is_named_so_to_the_app(probe) -> None:
    answer = probed(probe, "GET /probe HTTP/1.0\r\nHost: localhost\r\n\r\n")
    assert answer["protocol"] == "HTTP/1.0"


def test_a_body_past_the_probe_limit_is_refused_413(probe) -> None:
    body = "x" * (PROBE_MAX_BODY + 1)
    request = (
        f"POST /probe HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}"
    )
    assert exchange(probe, request)[0] == 413


def test_a_body_cut_short_of_its_content_length_is_answered_400_in_the_apis_error_shape(probe) -> None:
    request = b"POST /probe HTTP/1.1\r\nHost: localhost\r\nContent-Length: 50\r\nConnection: close\r\n\r\nabc"
    status, headers, body = raw_exchange(probe, request)  # the client stops sending after 3 of 50 bytes
    assert (
        status == 400 and json.loads(body)["error"] == "bad_request" and "Content-Length" in json.loads(body)["detail"]
    )
    assert headers["content-type"] == "application/json" and headers["x-content-type-options"] == "nosniff"
    assert "access-control-allow-origin" not in headers
    assert probed(probe, "GET /probe HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")["body"] == 0
    api = raw_exchange(probe, request.replace(b"POST /probe", b"POST /v1/probe"))
    assert api[0] == 400 and api[1]["access-control-allow-origin"] == "*", "the API's CORS headers on its answers"


def test_large_bodies_take_turns_and_small_requests_are_answered_meanwhile(probe) -> None:
    size = PROBE_LARGE_BODY * 5

    def large_post(body: str) -> str:
        return f"POST /probe HTTP/1.1\r\nHost: localhost\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n{body}"

    with socket.create_connection(("127.0.0.1", probe), timeout=10) as holder:
        holder.sendall(large_post("x" * 10).encode())  # holds the one turn while its body trickles
        time.sleep(0.3)
        started = time.monotonic()
        status, headers, body = exchange(probe, large_post("x" * size).replace("/probe", "/v1/probe"))
        assert status == 503 and json.loads(body)["error"] == "busy"
        assert headers["retry-after"] == "1" and headers["x-content-type-options"] == "nosniff"
        assert headers["access-control-allow-origin"] == "*", "the API's CORS headers on the server's 503"
        assert time.monotonic() - started >= PROBE_LARGE_BODY_WAIT_SECONDS * 0.9
        assert probed(probe, "GET /probe HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")["body"] == 0
    time.sleep(0.3)  # the holder left: its turn is free again
    assert probed(probe, large_post("x" * size))["body"] == size
