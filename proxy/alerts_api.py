"""``GET /api/alerts``: firing alerts and recent history, read from the ``alerts`` table.

The dashboard app registers ``blueprint`` and authenticates every ``/api/*`` request itself; it
also puts the runtime in ``current_app.extensions["nexus_runtime"]``. When the blueprint is
mounted on some other app (which did not install the dashboard's auth), it checks the key
itself, so these routes are never open.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import orjson
from quart import Blueprint, Response, current_app, request

from nexus.db import alerts_sql as q

log = logging.getLogger("nexus.alerts.api")

blueprint = Blueprint("alerts", __name__)

MAX_LIMIT = 500


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body, default=str), status=status, headers=headers or {},
                    content_type="application/json")


def _error(status: int, kind: str, message: str, param: str | None = None,
           headers: dict[str, str] | None = None) -> Response:
    err: dict[str, Any] = {"type": kind, "message": message}
    if param:
        err["param"] = param
    return _json({"error": err}, status, headers)


def _runtime() -> Any:
    return current_app.extensions.get("nexus_runtime")


@blueprint.before_request
async def _authenticate() -> Response | None:
    """Only for apps without the dashboard's own check (which marks itself with its limiter)."""
    if "nexus_auth_limiter" in current_app.extensions:
        return None
    from proxy.auth import FailureLimiter, check_request

    runtime = _runtime()
    limiter = current_app.extensions.setdefault("nexus_alerts_auth_limiter", FailureLimiter())
    expected = getattr(runtime, "dashboard_key", "") if runtime is not None else ""
    failure = check_request(request.headers, request.remote_addr or "unknown", expected, limiter)
    if failure is None:
        return None
    return _json(failure.body, failure.status, failure.headers)


@blueprint.get("/api/alerts")
async def list_alerts() -> Response:
    """``{"active": [...], "recent": [...], "channels": {...}}``; ``?limit=`` bounds ``recent``."""
    raw = request.args.get("limit", "50").strip()
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        return _error(400, "invalid_request_error", f"limit must be an integer 1..{MAX_LIMIT}", "limit")
    limit = int(raw)
    runtime = _runtime()
    pool = getattr(runtime, "pool", None)
    if pool is None:
        return _error(503, "database_unavailable", "database is not connected", headers={"Retry-After": "5"})
    try:
        async with pool.acquire(timeout=5) as conn:
            active = await q.firing_alerts(conn)
            recent = await q.recent_alerts(conn, limit)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        log.warning("/api/alerts: database error: %s", exc)
        return _error(503, "database_unavailable", "database is not connected", headers={"Retry-After": "5"})
    manager = runtime.extras.get("alerts") if runtime is not None else None
    channels = manager.dispatcher.stats() if manager is not None else {}
    return _json({
        "active": [q.alert_json(a) for a in active],
        "recent": [q.alert_json(a) for a in recent],
        "channels": channels,
    })
