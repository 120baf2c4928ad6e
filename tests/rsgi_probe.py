"""A Flask app that reports what it was handed, served by :mod:`recsvc.rsgi` for its tests over a real server."""

from __future__ import annotations

import threading

from flask import Flask, jsonify, request

from recsvc.rsgi import RsgiApp, rsgi_app_for

PROBE_MAX_BODY = 1024


def probe_app() -> RsgiApp:
    """``POST``/``GET /probe``: the thread that ran the request, its ``SERVER_PROTOCOL``, ``HTTP_*`` keys and
    body length."""
    app = Flask("probe")
    app.config["MAX_CONTENT_LENGTH"] = PROBE_MAX_BODY

    @app.route("/probe", methods=["GET", "POST"])
    def probe():
        environ = request.environ
        return jsonify(
            thread=threading.current_thread().name,
            protocol=environ["SERVER_PROTOCOL"],
            headers={key: value for key, value in environ.items() if key.startswith("HTTP_")},
            body=len(request.get_data()),
        )

    return rsgi_app_for(app)
