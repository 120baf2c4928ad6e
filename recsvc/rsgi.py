"""The WSGI app served over granian's RSGI interface: bodies are read on the event loop, the app runs on it.

granian's WSGI interface hands each request to a thread of a pool once its headers are in and streams the
body to that thread, so a worker needs many threads to outlast slow clients, and those threads contend for
the GIL. Here the worker's one Python thread awaits each request's whole body without blocking, then calls
the app directly: a slow client holds a connection, never the worker, and no other thread takes the GIL
from a request. Requests that upload a file (search by image: decoding and the model) run in a small thread
pool instead, so that they do not stall the requests queued behind them. Bodies over 64 KiB are held by a
few requests a worker at a time (:class:`RsgiApp`'s ``large_bodies``), so that slow senders cannot fill
memory; a client that sends a large body slowly holds one of these turns until it finishes or leaves.

Usage: ``Granian("recsvc.rsgi:create_rsgi_app", factory=True, interface=Interfaces.RSGI, ...)``.
"""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from posterrec_settings import load_server_settings

import orjson
from flask import Flask
from granian.rsgi import HTTPProtocol, ProtocolClosed, Scope
from werkzeug.http import parse_options_header

from . import SECURITY_HEADERS
from .errors import BUSY_HEADERS, error_body
from .served import API_PREFIX

WsgiApp = Callable[[dict, Callable], Iterable[bytes]]
Answer = tuple[int, list[tuple[str, str]], bytes]
"""A response: status code, headers and whole body."""
Shortcut = Callable[[str, str, str, str, bytes], Answer | None]
"""(method, percent-decoded path, query string, Content-Type, whole body) -> the answer, or None for the app
to answer."""

UPLOAD_THREADS = 8
"""Threads a worker runs file uploads in when ``POSTERREC_THREADS`` is unset."""
LARGE_BODY_BYTES = 64 * 1024
"""Bodies declared longer than this, and bodies of unknown length, are held by at most ``large_bodies``
requests a worker at a time, so that clients cannot fill memory with bodies they send slowly."""
LARGE_BODY_WAIT_SECONDS = 10.0
"""How long a request with a large body waits for its turn before a 503."""


def error_answer(status: int, error: str, detail: str, headers: Iterable[tuple[str, str]] = ()) -> Answer:
    """An answer the server sends itself, outside the app: the API's JSON error shape, the security headers
    every response carries, and ``headers``; the body written as the app writes its own (compact, one line)."""
    body = orjson.dumps(error_body(error, detail), option=orjson.OPT_APPEND_NEWLINE)
    return status, [("Content-Type", "application/json"), *SECURITY_HEADERS.items(), *headers], body


BUSY = error_answer(
    503,
    "busy",
    "this server is receiving as many large request bodies as it may; try again shortly",
    BUSY_HEADERS.items(),
)
"""The answer to a request whose large body waited for its turn in vain."""
CUT_SHORT = error_answer(
    400, "bad_request", "the request body ended before the length its Content-Length header declares"
)
"""The answer to a request whose client stopped sending before the end of its declared body."""

UPLOAD_CONTENT_TYPE = "multipart/form-data"
"""The media type (compared as werkzeug does: case-insensitive, parameters dropped) of requests that run in
the upload threads."""


def wsgi_environ(scope: Scope, body: bytes) -> dict[str, Any]:
    """The PEP 3333 environ of the request ``scope`` whose whole body is ``body``.

    granian hands the path percent-decoded, and the query string as sent, as text; WSGI wants their UTF-8 bytes
    spelled as Latin-1. A header sent more than once is joined with ", ", as HTTP allows; a header name with an
    underscore is dropped, so that ``X_Forwarded_For`` cannot pose as ``X-Forwarded-For`` (as gunicorn does).
    ``REMOTE_PORT`` and ``wsgi.file_wrapper`` are left out.
    """
    host, _, port = scope.server.rpartition(":")
    environ = {
        "REQUEST_METHOD": scope.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": scope.path.encode("utf-8").decode("latin-1"),
        "QUERY_STRING": scope.query_string.encode("utf-8").decode("latin-1"),
        "SERVER_NAME": host,
        "SERVER_PORT": port,
        "SERVER_PROTOCOL": "HTTP/1.0" if scope.http_version == "1" else f"HTTP/{scope.http_version}",
        "REMOTE_ADDR": scope.client.rpartition(":")[0],
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.scheme,
        "wsgi.input": io.BytesIO(body),
        "wsgi.input_terminated": True,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for name, value in scope.headers.items():
        if "_" in name:
            continue
        key = {"content-type": "CONTENT_TYPE", "content-length": "CONTENT_LENGTH"}.get(name)
        key = key or "HTTP_" + name.upper().replace("-", "_")
        environ[key] = f"{environ[key]}, {value}" if key in environ else value
    return environ


def body_length(scope: Scope) -> int | None:
    """The length the request declares for its body: 0 when it has neither ``Content-Length`` nor
    ``Transfer-Encoding`` (no body, RFC 9112 §6.3), None when the length is unknown (chunked). granian answers
    400 itself to a ``Content-Length`` that is not a number."""
    declared = scope.headers.get("content-length")
    if declared is None:
        return None if "transfer-encoding" in scope.headers else 0
    return int(declared) if declared.isdigit() else None


async def read_body(protocol: HTTPProtocol, length: int | None, max_bytes: int) -> bytes:
    """The request's body of :func:`body_length` ``length``, or as much of it as shows it is too large for
    the app to accept.

    No body: ``b""`` at once, without a round trip to granian. A declared length over ``max_bytes`` is not
    read at all: ``b""``, and the app answers 413 from the header. A body of unknown length is read to one
    byte past ``max_bytes``; one that the client cuts short comes back as far as it was sent (granian ends the
    stream without an error), and the app judges it as any malformed body.

    Raises:
        ProtocolClosed: the client left before sending a declared ``Content-Length``.
    """
    if length is not None:
        return b"" if length == 0 or length > max_bytes else await protocol()
    body = bytearray()
    async for chunk in protocol:
        body += chunk
        if len(body) > max_bytes:
            return bytes(body[: max_bytes + 1])
    return bytes(body)


def call_wsgi(app: WsgiApp, environ: dict[str, Any]) -> Answer:
    """Run ``app`` on ``environ`` to the end: its status code, headers and whole body."""
    started: list = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info=None) -> Callable:
        if started and exc_info is None:
            raise RuntimeError("start_response called a second time without exc_info (PEP 3333)")
        started[:] = [int(status[:3]), headers]
        return legacy_write

    chunks = app(environ, start_response)
    try:
        body = b"".join(chunks)
    finally:
        if hasattr(chunks, "close"):
            chunks.close()
    if not started:
        raise RuntimeError("the WSGI app returned without calling start_response")
    return started[0], started[1], body


def legacy_write(data: bytes) -> None:
    """PEP 3333's ``write()`` callable, which Flask never uses; refused rather than dropping the data."""
    raise NotImplementedError("recsvc.rsgi takes the response body from the app's iterable only")


class RsgiApp:
    """``wsgi_app`` as an RSGI application: each body is awaited in full, then the app runs on the loop.

    Args:
        wsgi_app: the WSGI callable (a Flask app).
        max_body_bytes: bodies longer than this are not read (the app refuses them).
        upload_threads: threads that run requests carrying a file upload.
        large_bodies: requests with a large body (:data:`LARGE_BODY_BYTES`) read or answered at a time;
            default ``upload_threads``. Others wait up to ``large_body_wait_seconds``, then get a 503.
        large_body_bytes, large_body_wait_seconds: see :data:`LARGE_BODY_BYTES`, :data:`LARGE_BODY_WAIT_SECONDS`.
        shortcut: offered each request whose whole body was read first (:data:`Shortcut`); what it answers is
            sent, and the app answers what it declines (:class:`recsvc.shortcut.ApiShortcut`).
        api_headers: added to the server's own answers (:data:`BUSY`, :data:`CUT_SHORT`) to requests under
            ``/v1/``, as the app adds them to its own (its CORS headers).
    """

    def __init__(
        self,
        wsgi_app: WsgiApp,
        max_body_bytes: int,
        upload_threads: int,
        large_bodies: int | None = None,
        large_body_bytes: int = LARGE_BODY_BYTES,
        large_body_wait_seconds: float = LARGE_BODY_WAIT_SECONDS,
        shortcut: Shortcut | None = None,
        api_headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.wsgi_app = wsgi_app
        self.shortcut = shortcut
        self.api_headers = list(api_headers)
        self.max_body_bytes = max_body_bytes
        self.uploads = ThreadPoolExecutor(upload_threads, thread_name_prefix="posterrec-upload")
        self.large_body_turns = asyncio.Semaphore(large_bodies or upload_threads)
        self.large_body_bytes = large_body_bytes
        self.large_body_wait_seconds = large_body_wait_seconds

    async def __rsgi__(self, scope: Scope, protocol: HTTPProtocol) -> None:
        if scope.proto != "http":
            return
        length = body_length(scope)
        if not self.holds_large_body(length):
            await self.answer(scope, protocol, length)
            return
        try:
            async with asyncio.timeout(self.large_body_wait_seconds):
                await self.large_body_turns.acquire()
        except TimeoutError:
            protocol.response_bytes(*self.own_answer(scope, BUSY))
            return
        try:
            await self.answer(scope, protocol, length)
        finally:
            self.large_body_turns.release()

    def own_answer(self, scope: Scope, answer: Answer) -> Answer:
        """``answer``, one the server sends itself, with :attr:`api_headers` when the request is the API's."""
        if not self.api_headers or not scope.path.startswith(f"{API_PREFIX}/"):
            return answer
        status, headers, body = answer
        return status, [*headers, *self.api_headers], body

    def holds_large_body(self, length: int | None) -> bool:
        """Whether a request whose body has :func:`body_length` ``length`` will hold a large body in memory:
        one of unknown length, or one declared over ``large_body_bytes`` and within ``max_body_bytes`` (a
        longer one is refused unread)."""
        return length is None or self.large_body_bytes < length <= self.max_body_bytes

    async def answer(self, scope: Scope, protocol: HTTPProtocol, length: int | None) -> None:
        """Read the request's body (of :func:`body_length` ``length``), run the app (uploads in the upload
        threads) and send its response."""
        try:
            body = await read_body(protocol, length, self.max_body_bytes)
        except ProtocolClosed:  # the client stopped sending before its whole body; it may still read an answer
            protocol.response_bytes(*self.own_answer(scope, CUT_SHORT))
            return
        if self.shortcut and length == len(body) and (answer := self.offer_shortcut(scope, body)):
            protocol.response_bytes(*answer)
            return
        environ = wsgi_environ(scope, body)
        if is_upload(environ):
            loop = asyncio.get_running_loop()
            status, headers, payload = await loop.run_in_executor(self.uploads, call_wsgi, self.wsgi_app, environ)
        else:
            status, headers, payload = call_wsgi(self.wsgi_app, environ)
        protocol.response_bytes(status, headers, payload)

    def offer_shortcut(self, scope: Scope, body: bytes) -> Answer | None:
        """The shortcut's answer to the request ``scope`` with the whole body ``body``, or None. A header sent
        twice reaches it joined, as it reaches the app (:func:`wsgi_environ`)."""
        content_type = ", ".join(value for name, value in scope.headers.items() if name == "content-type")
        return self.shortcut(scope.method, scope.path, scope.query_string, content_type, body)

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.uploads.shutdown(wait=False, cancel_futures=True)  # the loop has stopped: no answer can be sent


def is_upload(environ: dict[str, Any]) -> bool:
    """Whether the request carries a file upload (its media type is ``multipart/form-data``, in any case)."""
    return media_type(environ.get("CONTENT_TYPE", "")) == UPLOAD_CONTENT_TYPE


def media_type(content_type: str) -> str:
    """The media type of a ``Content-Type`` value, lower-cased and without its parameters, parsed by werkzeug
    as Flask's ``request.mimetype`` is."""
    return parse_options_header(content_type)[0].lower()


def rsgi_app_for(flask_app: Flask, shortcut: Shortcut | None = None) -> RsgiApp:
    """``flask_app`` as an RSGI app: its ``MAX_CONTENT_LENGTH`` as the body limit, its CORS headers on the
    server's own answers, the environment's upload threads (``POSTERREC_THREADS``, else
    :data:`UPLOAD_THREADS`), ``shortcut`` offered each request first."""
    threads = load_server_settings().threads or UPLOAD_THREADS
    api_headers = flask_app.config.get("POSTERREC_CORS_HEADERS", {}).items()  # a bare app (bench) has none
    return RsgiApp(
        flask_app, flask_app.config["MAX_CONTENT_LENGTH"], threads, shortcut=shortcut, api_headers=api_headers
    )


def create_rsgi_app() -> RsgiApp:
    """The service (:func:`recsvc.create_app`) as an RSGI app (:func:`rsgi_app_for`), its similar-poster and
    recommendation requests answered by :class:`recsvc.shortcut.ApiShortcut`."""
    from . import create_app
    from .shortcut import ApiShortcut

    app = create_app()
    return rsgi_app_for(app, ApiShortcut(app))
