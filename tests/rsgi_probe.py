"""A Flask app that reports what it was handed, served by :mod:`recsvc.rsgi` for its tests over a real server."""

from __future__ import annotations

import threading

from flask import Flask, jsonify, request

from recsvc.rsgi import RsgiApp

PROBE_MAX_BODY = 1024
PROBE_LARGE_BODY = 100
"""Bodies over this many bytes take the probe's one large-body turn."""
PROBE_LARGE_BODY_WAIT_SECONDS = 1.0
PROBE_API_HEADERS = {"Access-Control-Allow-Origin": "*"}
"""Added to the server's own answers to ``/v1/probe``, as the service adds its CORS headers."""


def probe_app() -> RsgiApp:
    """``POST``/``GET /probe``: the thread that ran the request, its ``SERVER_PROTOCOL``, ``HTTP_*`` keys and
    body length; one large body (over :data:`PROBE_LARGE_BODY` bytes) at a time."""
    app = Flask("probe")
    app.config["MAX_CONTENT_LENGTH"] = PROBE_MAX_BODY

    @app.route("/probe", methods=["GET", "POST"])
    @app.route("/v1/probe", methods=["GET", "POST"])
    def probe():
        environ = request.environ
        return jsonify(
            thread=threading.current_thread().name,
            protocol=environ["SERVER_PROTOCOL"],
            headers={key: value for key, value in environ.items() if key.startswith("HTTP_")},
            body=len(request.get_data()),
        )

    return RsgiApp(
        app,
        PROBE_MAX_BODY,
        upload_threads=2,
        large_bodies=1,
        large_body_bytes=PROBE_LARGE_BODY,
        large_body_wait_seconds=PROBE_LARGE_BODY_WAIT_SECONDS,
        api_headers=PROBE_API_HEADERS.items(),
    )
