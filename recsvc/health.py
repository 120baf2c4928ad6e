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
    live = current_app.extensions["posterrec"]
    index = live.index
    problem = live.pointer_problem
    if index is None:
        return jsonify(status="not_ready", detail=problem or "no index version is loaded yet"), 503
    if problem:  # serving, but not what CURRENT names: say which and why
        return jsonify(status="ready", version=index.version, items=len(index), detail=f"{problem}; serving {index.version}")
    return jsonify(status="ready", version=index.version, items=len(index))


@bp.get("/metrics")
def metrics():
    return metrics_response()
