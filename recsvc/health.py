"""Liveness, readiness and metrics, outside ``/v1`` where load balancers and Prometheus expect them."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from .metrics import metrics_response

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    index = current_app.extensions["posterrec"].index
    if index is None:
        return jsonify(status="not_ready", detail="no index version is loaded yet"), 503
    return jsonify(status="ready", version=index.version, items=len(index))


@bp.get("/metrics")
def metrics():
    return metrics_response()
