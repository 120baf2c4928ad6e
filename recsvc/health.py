"""Liveness, readiness and metrics, outside ``/v1`` where load balancers and Prometheus expect them."""

from __future__ import annotations

import hmac

from flask import Blueprint, current_app, jsonify, request

from .metrics import metrics_response

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    live = current_app.extensions["posterrec"]
    index = live.index
    problem = live.pointer_problem
    if index is None:
        return jsonify(status="not_ready", detail=problem or "no index version is loaded yet"), 503
    if problem:  # serving, but not what CURRENT names: say which and why
        return jsonify(
            status="ready", version=index.version, items=len(index), detail=f"{problem}; serving {index.version}"
        )
    return jsonify(status="ready", version=index.version, items=len(index))


@bp.get("/metrics")
def metrics():
    """The metrics, unless they are served on their own address (``metrics_bind``) or ask for a token (``metrics_token``)."""
    settings = current_app.config["POSTERREC_SETTINGS"]
    if settings.metrics_bind:
        return jsonify(error="not_found", detail="metrics are served on their own address, not here"), 404
    if settings.metrics_token and not _bearer_token_is(settings.metrics_token):
        response = jsonify(
            error="unauthorized", detail="/metrics needs the header Authorization: Bearer <metrics token>"
        )
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response, 401
    return metrics_response()


def _bearer_token_is(token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
