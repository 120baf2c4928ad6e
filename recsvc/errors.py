"""Every error the API returns is JSON ``{"error": ..., "detail": ...}``, never HTML or a traceback."""

from __future__ import annotations

import json
import logging
import math
import reprlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from flask import Flask, current_app, jsonify, request
from werkzeug.exceptions import BadRequest, HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge

log = logging.getLogger(__name__)


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 80
_SHORT.maxlist = _SHORT.maxdict = 10


def echoed(value: Any) -> str:
    """``repr(value)`` for an error detail, long strings and lists shortened with ``...`` (:mod:`reprlib`): a
    detail must not send a client's 300,000-character id back whole."""
    if value is None or isinstance(value, bool):  # as JSON spells them: null, true, false
        return json.dumps(value)
    return _SHORT.repr(value)


def echoed_list(values: Sequence[Any], most: int = 10) -> str:
    """The first ``most`` of ``values``, each :func:`echoed`, and how many more there are."""
    shown = ", ".join(echoed(value) for value in values[:most])
    return shown if len(values) <= most else f"{shown} and {len(values) - most:,} more"


def retry_after(seconds: float) -> dict[str, str]:
    """The ``Retry-After`` header asking a client to wait ``seconds``, rounded up to the whole seconds HTTP
    counts in."""
    return {"Retry-After": str(math.ceil(seconds))}


RETRY_AFTER_SECONDS = 1
"""How long a ``busy`` 503 asks the client to wait before it tries again (its ``Retry-After``): the server
has already held the request for its wait before refusing it."""
BUSY_HEADERS = retry_after(RETRY_AFTER_SECONDS)


class ApiError(Exception):
    """An error a client can act on: an HTTP status, a stable code, a human-readable detail and any headers
    the response must carry."""

    def __init__(self, status: int, error: str, detail: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = dict(headers or {})


def bad_request(detail: str) -> ApiError:
    return ApiError(400, "bad_request", detail)


def not_found(detail: str) -> ApiError:
    return ApiError(404, "not_found", detail)


def busy(detail: str) -> ApiError:
    """A 503 for a request the server has no room for now, with :data:`BUSY_HEADERS`."""
    return ApiError(503, "busy", detail, BUSY_HEADERS)


class MalformedBody(BadRequest):
    """A body whose framing the server could not decode (a chunked body with a bad chunk size or no CRLF)."""


class CheckedInput:
    """The server's ``wsgi.input``, whose read errors become :class:`MalformedBody` (a 400) naming the cause.

    gunicorn decodes a chunked body as the app reads it and raises its own parse errors from ``read``,
    which werkzeug's stream wrappers (catching ``OSError`` and ``ValueError``) let through as a 500.
    """

    def __init__(self, stream) -> None:
        self._stream = stream

    def _checked(self, read: Callable, *args):
        try:
            return read(*args)
        except HTTPException:
            raise
        except Exception as err:
            raise MalformedBody(f"the request body cannot be read as sent: {err}") from err

    def read(self, *args) -> bytes:
        return self._checked(self._stream.read, *args)

    def readline(self, *args) -> bytes:
        return self._checked(self._stream.readline, *args)

    def readlines(self, *args) -> list[bytes]:
        return self._checked(self._stream.readlines, *args)

    def __iter__(self):
        return iter(self.readline, b"")


class CheckedChunkedBodies:
    """WSGI middleware giving a chunked request a :class:`CheckedInput`; a body of declared length is read as
    sent (a short one is already a 400), so those requests pay nothing."""

    def __init__(self, wsgi_app: Callable) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if "HTTP_TRANSFER_ENCODING" in environ:
            environ["wsgi.input"] = CheckedInput(environ["wsgi.input"])
        return self.wsgi_app(environ, start_response)


def error_body(error: str, detail: str) -> dict[str, str]:
    """The body of every error the API answers, by the app or by the server outside it: a stable code and
    a human-readable detail."""
    return {"error": error, "detail": detail}


def _payload(status: int, error: str, detail: str):
    response = jsonify(error_body(error, detail))
    response.status_code = status
    return response


def _http_detail(err: HTTPException, api_prefix: str) -> str:
    """Werkzeug's description of ``err``, or for the errors a client makes most, one naming what it sent (a path
    under ``api_prefix`` that names no endpoint: where the API's paths are listed)."""
    path = f"{request.script_root}{request.path}"
    if isinstance(err, NotFound) and request.url_rule is None and f"{request.path}/".startswith(f"{api_prefix}/"):
        return f"no endpoint at {echoed(path)}; {request.script_root}{api_prefix}/openapi.json lists the API's paths"
    if isinstance(err, MethodNotAllowed):
        return f"{echoed(request.method)} is not allowed here; allowed: {', '.join(sorted(err.valid_methods or ()))}"
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if isinstance(err, RequestEntityTooLarge) and (request.content_length or 0) > limit:  # werkzeug's form parser
        return body_too_large(limit).description
    return err.description or err.name


def body_too_large(limit: int) -> RequestEntityTooLarge:
    """The 413 for a request body past ``limit`` bytes, saying so (werkzeug's also stands for too many form
    parts or too large a form field)."""
    return RequestEntityTooLarge(f"the request body is larger than the {limit:,} bytes accepted")


def register_error_handlers(app: Flask, api_prefix: str) -> None:
    """JSON bodies for every error the app raises, and a 400 for a request body the server cannot decode; a 404
    under ``api_prefix`` points to the API's OpenAPI document."""
    app.wsgi_app = CheckedChunkedBodies(app.wsgi_app)

    @app.errorhandler(ApiError)
    def api_error(err: ApiError):
        if err.status >= 500 and (cause := err.__cause__ or err.__context__) is not None:
            log.warning("%s: %s", err.detail, cause)  # the cause names server paths: the log has it, the body not
        response = _payload(err.status, err.error, err.detail)
        response.headers.update(err.headers)
        return response

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException):
        """Werkzeug's error as JSON, keeping the headers HTTP requires of it (``Allow`` on a 405)."""
        code = (err.name or "error").lower().replace(" ", "_")
        response = _payload(err.code or 500, code, _http_detail(err, api_prefix))
        response.headers.extend((name, value) for name, value in err.get_headers() if name != "Content-Type")
        return response

    @app.errorhandler(Exception)
    def unexpected(err: Exception):
        log.exception("unhandled error")
        return _payload(500, "internal_error", "the server failed to answer this request; it has been logged")
