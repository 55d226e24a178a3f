"""``GET /api/alerts``: firing alerts and recent history; ``POST /api/alerts/test``: test the channels.

A blueprint of the dashboard app, which authenticates every ``/api/*`` request before it gets
here and keeps the runtime in ``current_app.extensions["nexus_runtime"]``.
"""

from __future__ import annotations

import logging

from quart import Blueprint, Response, current_app, request

from nexus.store import alerts as q
from nexus.store.errors import DB_AWAY
from proxy.alerts.channels import CHANNEL_NAMES, Dispatcher
from proxy.api.params import BadParam, parse_int, parse_text
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
    manager = runtime.alerts
    channels = manager.dispatcher.stats() if manager is not None else {}
    try:
        if runtime.pool is None:
            raise ConnectionError("no pool")
        async with runtime.pool.acquire(timeout=5) as conn:
            active = [q.alert_json(a) for a in await q.firing_alerts(conn)]
            recent = [q.alert_json(a) for a in await q.recent_alerts(conn, limit)]
    except (ConnectionError, *DB_AWAY) as exc:
        if manager is None:
            log.warning("/api/alerts: database error: %s", exc)
            return database_unavailable()
        # The database is away: what this instance judged about itself (journal growing, ...) is
        # exactly what matters now, so serve it from memory.
        local_active, local_recent = manager.watchdog.everything()
        return json_response({"active": local_active, "recent": local_recent[:limit], "channels": channels,
                              "database": "disconnected"})
    if manager is not None:  # this instance's alerts the table does not hold yet
        local_active, local_recent = manager.watchdog.unstored()
        active = local_active + active
        recent = (local_recent + recent)[:limit]
    return json_response({"active": active, "recent": recent, "channels": channels, "database": "connected"})


@blueprint.post("/api/alerts/test")
async def test_channels() -> Response:
    """Send a marked test notification now; ``?channel=slack|webhook|email|pagerduty|all`` (default all).

    Uses the running alert manager's channels (their counters and consecutive failures count it),
    or channels built from the settings when alerts are off here. Answers once every channel has
    answered or given up (retries included): ``{"ok", "results": [{channel, delivered, attempts,
    status, error}]}``.
    """
    channel = parse_text(request.args, "channel") or "all"
    if channel not in (*CHANNEL_NAMES, "all"):
        raise BadParam("channel", f"must be one of {', '.join((*CHANNEL_NAMES, 'all'))}")
    runtime = _runtime()
    own = runtime.alerts.dispatcher if runtime.alerts is not None else None
    dispatcher = own or Dispatcher(runtime.settings)
    names = [n for n in CHANNEL_NAMES if n in dispatcher.channels] if channel == "all" else [channel]
    outcomes = await dispatcher.send_test(names, source=runtime.instance_id)
    results = [o.to_json() for o in outcomes]
    return json_response({"ok": bool(results) and all(r["delivered"] for r in results),
                          "channels": names, "results": results})
