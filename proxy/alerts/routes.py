"""``GET /api/alerts``: firing alerts and recent history, read from the ``alerts`` table.

A blueprint of the dashboard app, which authenticates every ``/api/*`` request before it gets
here and keeps the runtime in ``current_app.extensions["nexus_runtime"]``.
"""

from __future__ import annotations

import logging

from quart import Blueprint, Response, current_app, request

from nexus.store import alerts as q
from nexus.store.errors import DB_AWAY
from proxy.api.params import parse_int
from proxy.api.responses import database_unavailable, json_response
from proxy.runtime import Runtime

log = logging.getLogger("nexus.alerts.api")

blueprint = Blueprint("alerts", __name__)

MAX_LIMIT = 500


def _runtime() -> Runtime:
    return current_app.extensions["nexus_runtime"]


@blueprint.get("/api/alerts")
async def list_alerts() -> Response:
    """``{"active": [...], "recent": [...], "channels": {...}}``; ``?limit=`` bounds ``recent``."""
    limit = parse_int(request.args, "limit", 50, 1, MAX_LIMIT)
    runtime = _runtime()
    if runtime.pool is None:
        return database_unavailable()
    try:
        async with runtime.pool.acquire(timeout=5) as conn:
            active = await q.firing_alerts(conn)
            recent = await q.recent_alerts(conn, limit)
    except DB_AWAY as exc:
        log.warning("/api/alerts: database error: %s", exc)
        return database_unavailable()
    channels = runtime.alerts.dispatcher.stats() if runtime.alerts is not None else {}
    return json_response({
        "active": [q.alert_json(a) for a in active],
        "recent": [q.alert_json(a) for a in recent],
        "channels": channels,
    })
