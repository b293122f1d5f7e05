"""/healthz: is the database reachable and current, and is Redis there; /readyz: may this
process take traffic (`outbound.status.readiness`); /livez: does it answer at all."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from sqlalchemy.exc import SQLAlchemyError

from core.schema import current_revision, head_revision
from outbound.status import readiness
from web.context import runtime

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """200 when every dependency answers, 503 with the failing part otherwise."""
    rt = runtime()
    checks: dict[str, str] = {}
    try:
        revision = current_revision(rt.engine)
        checks["database"] = "ok" if revision == head_revision() else f"schema {revision}"
    except SQLAlchemyError:
        checks["database"] = "unreachable"
    if rt.redis is None:
        checks["redis"] = "not configured"
    else:
        try:
            rt.redis.ping()
            checks["redis"] = "ok"
        except Exception:  # any client error means the same to a health check
            checks["redis"] = "unreachable"
    healthy = checks["database"] == "ok" and checks["redis"] in {"ok", "not configured"}
    return jsonify(status="ok" if healthy else "degraded", checks=checks), 200 if healthy else 503


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """200 when the database and Redis answer and a worker reported within a minute; 503
    with the reason otherwise (a load balancer sends this process no traffic meanwhile)."""
    reason, checks = readiness(runtime())
    if reason is not None:
        return jsonify(status="not ready", reason=reason, checks=checks), 503
    return jsonify(status="ready", checks=checks), 200


@bp.get("/livez")
def livez() -> Response:
    """Liveness: the process answers, nothing else is asked (the baseline of benchmarks)."""
    return Response("ok\n", mimetype="text/plain")
