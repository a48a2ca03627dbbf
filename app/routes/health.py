"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from quart import Blueprint, Response
from quart.typing import ResponseReturnValue
from quart_schema import document_response

from app.openapi import text_response
from app.routes.common import services
from app.schemas import HealthOut, ReadyOut
from storage import StorageError

bp = Blueprint("health", __name__)

RECOVERY_WAIT = 1.0
"""How long a probe that finds the database back waits for restarted workers to report."""


@bp.get("/healthz")
@document_response(HealthOut)
async def healthz() -> ResponseReturnValue:
    """The process is up."""
    return {"status": "ok"}


@bp.get("/readyz")
@document_response(ReadyOut)
@document_response(ReadyOut, 503)
async def readyz() -> ResponseReturnValue:
    """200 when the database answers and background services run; 503 otherwise.

    Workers backing off after a storage failure are restarted as soon as a probe finds the
    database answering, so readiness follows the database within moments of its return.
    """
    svc = services()
    checks: dict[str, Any] = {}
    ready = True
    try:
        await svc.db.ping()
        checks["database"] = "ok"
        await svc.database_answered(within=RECOVERY_WAIT)
    except StorageError as exc:
        checks["database"] = f"unavailable: {type(exc).__name__}"
        ready = False
    health = svc.health()
    checks.update(health.checks)
    ready = ready and health.ok and not svc.shutting_down.is_set()
    if svc.shutting_down.is_set():
        checks["server"] = "shutting_down"
    # Redis lost: the process still serves (limits per process, events followed locally), so
    # it stays in the load balancer, but says it is degraded.
    status = "unavailable" if not ready else "degraded" if health.degraded else "ready"
    body = {"status": status, "checks": checks}
    return body, 200 if ready else 503


@bp.get("/metrics")
@text_response(CONTENT_TYPE_LATEST, "Prometheus text exposition format.")
async def metrics() -> Response:
    """Prometheus text exposition."""
    return Response(generate_latest(services().registry), content_type=CONTENT_TYPE_LATEST)
