"""Every error the API returns is JSON ``{"error": ..., "detail": ...}``, never HTML or a traceback."""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error a client can act on: an HTTP status, a stable code and a human-readable detail."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail


def bad_request(detail: str) -> ApiError:
    return ApiError(400, "bad_request", detail)


def not_found(detail: str) -> ApiError:
    return ApiError(404, "not_found", detail)


def _payload(status: int, error: str, detail: str):
    response = jsonify(error=error, detail=detail)
    response.status_code = status
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(err: ApiError):
        return _payload(err.status, err.error, err.detail)

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException):
        """Werkzeug's error as JSON, keeping the headers HTTP requires of it (``Allow`` on a 405)."""
        code = (err.name or "error").lower().replace(" ", "_")
        response = _payload(err.code or 500, code, err.description or err.name)
        response.headers.extend((name, value) for name, value in err.get_headers() if name != "Content-Type")
        return response

    @app.errorhandler(Exception)
    def unexpected(err: Exception):
        log.exception("unhandled error")
        return _payload(500, "internal_error", "the server failed to answer this request; it has been logged")
