"""The dashboard API (port 3001): stats, token windows, timeseries, requests, errors, costs, SSE.

Routes and JSON shapes are the contract in ``docs/api.md``; the SQL behind them is in
``nexus.store.read``. Three rules hold for every route: the key is checked before anything else
(``proxy.api.auth``), every query parameter is validated here so a bad one is a 400 naming it (never a
500 from deep inside), and a database that is away is a 503 — the API process itself stays up.
"""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from quart import Quart, Response, request
from werkzeug.exceptions import HTTPException

from nexus.core.ratelimits import utilization_burn
from nexus.core.timebuckets import iso
from nexus.core.version import VERSION
from nexus.store.read import (
    DashboardQueries,
    DatabaseUnavailable,
    RollupCache,
    decode_cursor,
    decode_session_cursor,
    ping,
)
from proxy.alerts.routes import blueprint as alerts_blueprint
from proxy.alerts.rules import parse_key_values
from proxy.api.auth import FailureLimiter, check_request
from proxy.api.openapi import openapi_document, query_params_by_route
from proxy.api.params import (
    BadParam,
    check_known,
    parse_bool,
    parse_cursor,
    parse_event_id,
    parse_filters,
    parse_int,
    parse_range,
    parse_session_id,
    parse_status,
    parse_tag,
    parse_text,
    parse_time,
    parse_window_name,
    raw_param,
)
from proxy.api.pricing_view import pricing_json
from proxy.api.responses import database_unavailable, error_response, json_response
from proxy.api.sse import DEFAULT_HEARTBEAT_S, sse_response
from proxy.runtime import Runtime

log = logging.getLogger("nexus.api")

MAX_TIMESERIES_POINTS = 2000
STATS_TOP_DEFAULT = 50  # byModel / byDomain groups in /api/stats before `other` (?top=)


def window_burn(samples: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    """Burn rate and projected exhaustion of one window's history (``nexus.core.ratelimits``)."""
    points = [(datetime.fromisoformat(x["observedAt"]), x["utilization"],
               datetime.fromisoformat(x["resetsAt"]) if x["resetsAt"] else None) for x in samples]
    return utilization_burn(points, now)


def _limit_source(runtime: Runtime) -> Callable[[str, int | None], str | None]:
    """Where an estimated window's limit came from: ``configured`` (ALERT_TOKEN_LIMITS or
    TOKEN_WINDOW_LIMIT) or ``learned`` (the p90 of past windows); None without a limit."""
    configured: dict[str, float] = {}
    with contextlib.suppress(ValueError):
        configured = parse_key_values("ALERT_TOKEN_LIMITS", runtime.settings.alerts.token_limits)
    default = runtime.settings.limits.token_window_limit or None

    def source(account: str, limit: int | None) -> str | None:
        if not limit:
            return None
        if account in configured or (default is not None and limit == int(default)):
            return "configured"
        return "learned"

    return source


def _token_limit_lookup(runtime: Runtime) -> Callable[[str], int | None]:
    """An account's window limit, the same one the token-window alert uses.

    In order: ``runtime.token_limit_for(account)`` (the alert manager's, with learned limits),
    ``ALERT_TOKEN_LIMITS`` (``acct=limit,…``), then ``TOKEN_WINDOW_LIMIT``.
    """
    custom = runtime.token_limit_for
    limits: dict[str, float] = {}
    configured = runtime.settings.alerts.token_limits
    if configured:
        try:
            limits = parse_key_values("ALERT_TOKEN_LIMITS", configured)
        except ValueError:  # malformed setting: reported by the alert config itself
            pass
    default = runtime.settings.limits.token_window_limit or None

    def lookup(account: str) -> int | None:
        value = custom(account) if custom is not None else None
        if not value:
            value = limits.get(account)
        return int(value) if value else default

    return lookup


def create_dashboard_app(runtime: Runtime, *, auth_max_failures: int = 20, rollup_cache_ttl_s: float = 60.0,
                         sse_heartbeat_s: float = DEFAULT_HEARTBEAT_S) -> Quart:
    """The dashboard app for ``runtime``; serve it with Hypercorn (``proxy.serve.start_server``).

    The keyword arguments are knobs for tests and benchmarks: failed-auth attempts per IP and
    minute before 429, how long whole past hours of rollups are reused (0 = never), the SSE
    heartbeat.
    """
    app = Quart("nexus-dashboard")
    app.url_map.merge_slashes = False  # `//` is a 404, never a redirect built from the Host header
    # A stream is as long as the client wants it: no Quart timeout may cut /api/sse.
    app.config["RESPONSE_TIMEOUT"] = None
    app.config["BODY_TIMEOUT"] = 60
    limiter = FailureLimiter(max_failures=auth_max_failures)
    app.extensions["nexus_auth_limiter"] = limiter
    # Blueprints (e.g. proxy.alerts.routes) find the runtime here: current_app.extensions["nexus_runtime"].
    app.extensions["nexus_runtime"] = runtime

    # Whole past hours of rollups, reused across polls (see RollupCache); 0 disables it.
    cache = RollupCache(ttl_s=rollup_cache_ttl_s) if rollup_cache_ttl_s > 0 else None
    app.extensions["nexus_rollup_cache"] = cache

    def queries() -> DashboardQueries:
        # Built per request: the runtime's pool may be replaced while the database comes back.
        return DashboardQueries(runtime.pool, runtime.settings.database.slow_query_threshold_ms, cache=cache)

    @app.before_request
    async def _authenticate() -> Response | None:
        if "//" in request.scope.get("path", request.path):
            # never routed: the router would merge the slashes (so `//api/x` would skip the
            # key check below) or answer a redirect whose Location comes from the Host header
            return error_response(404, "not_found_error", "Not found")
        if not request.path.startswith("/api"):
            return None
        client = request.remote_addr or "unknown"
        failure = check_request(request.headers, client, runtime.dashboard_key, limiter)
        if failure is None:
            return None
        if failure.status == 403 or failure.status == 401:
            log.info("dashboard auth failed (%s) from %s for %s", failure.status, client, request.path)
        return json_response(failure.body, failure.status, failure.headers)

    # The query parameters each route takes, from the OpenAPI document (the one list of them).
    allowed_params = query_params_by_route(openapi_document(VERSION))

    @app.before_request
    async def _known_params() -> None:
        rule = request.url_rule
        if rule is None or not request.args or request.method not in ("GET", "HEAD"):
            return
        allowed = allowed_params.get(re.sub(r"<[^>]*>", "{}", rule.rule))
        if allowed is not None:
            check_known(request.args, allowed)

    @app.errorhandler(BadParam)
    async def _bad_param(exc: BadParam) -> Response:
        return error_response(400, "invalid_request_error", str(exc), exc.param)

    @app.errorhandler(DatabaseUnavailable)
    async def _db_away(exc: DatabaseUnavailable) -> Response:
        return database_unavailable()

    @app.errorhandler(HTTPException)
    async def _http_error(exc: HTTPException) -> Response:
        kind = {404: "not_found_error", 405: "invalid_request_error"}.get(exc.code or 500, "api_error")
        # Keep werkzeug's own headers (405 must say Allow: …, RFC 9110).
        extra = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
        return error_response(exc.code or 500, kind, exc.description or exc.name, headers=extra)

    @app.errorhandler(Exception)
    async def _unexpected(exc: Exception) -> Response:
        log.exception("dashboard API error on %s", request.path)
        return error_response(500, "api_error", "internal error")

    # ---- open --------------------------------------------------------------------------------

    @app.get("/health")
    async def health() -> Response:
        if await ping(runtime.pool):
            return json_response({"status": "ok", "database": "connected"})
        return json_response({"status": "degraded", "database": "disconnected"}, 503)

    # ---- /api --------------------------------------------------------------------------------

    @app.get("/api/info")
    async def info() -> Response:
        connected = await ping(runtime.pool)
        return json_response({
            "name": "claude-nexus-monitor",
            "version": VERSION,
            "instanceId": runtime.instance_id,
            "startedAt": iso(runtime.started_at),
            "uptimeSeconds": round(runtime.uptime_s, 3),
            "now": iso(runtime.now()),
            "database": "connected" if connected else "disconnected",
            "sseSubscribers": runtime.broker.subscriber_count,
            "slowQueryThresholdMs": runtime.settings.database.slow_query_threshold_ms,
        })

    @app.get("/api/stats")
    async def stats() -> Response:
        t = runtime.now()
        since, until = parse_range(request.args, t, "24h")
        filters = parse_filters(request.args)
        top = parse_int(request.args, "top", STATS_TOP_DEFAULT, 1, 1000)
        return json_response(await queries().stats(since, until, filters, t, top=top))

    @app.get("/api/token-usage/current")
    async def token_usage_current() -> Response:
        t = runtime.now()
        window = parse_int(request.args, "window", 300, 1, 10080)
        filters = parse_filters(request.args, model=False)
        q = queries()
        measured = await q.latest_windows()
        rows = await q.token_usage_current(window, t, filters, _token_limit_lookup(runtime), measured,
                                           _limit_source(runtime))
        if filters.account:
            return json_response(rows[0])
        return json_response({"windowMinutes": window, "now": iso(t), "accounts": rows})

    @app.get("/api/token-usage/daily")
    async def token_usage_daily() -> Response:
        days = parse_int(request.args, "days", 30, 1, 400)
        aggregate = parse_bool(request.args, "aggregate", False)
        filters = parse_filters(request.args, model=False)
        usage = await queries().token_usage_daily(days, runtime.now().date(), filters, aggregate)
        return json_response({"days": days, "aggregate": aggregate, "usage": usage})

    @app.get("/api/timeseries")
    async def timeseries() -> Response:
        t = runtime.now()
        since, until = parse_range(request.args, t, "1h")
        bucket = parse_int(request.args, "bucket", 60, 60, 86400)
        if bucket % 60:
            raise BadParam("bucket", "must be a multiple of 60 seconds")
        points = (until - since).total_seconds() / bucket
        if points > MAX_TIMESERIES_POINTS:
            raise BadParam("bucket", f"the range would need {int(points)} buckets; at most "
                                     f"{MAX_TIMESERIES_POINTS} (use a larger bucket)")
        return json_response(await queries().timeseries(since, until, bucket, parse_filters(request.args)))

    @app.get("/api/requests")
    async def requests_list() -> Response:
        t = runtime.now()
        limit = parse_int(request.args, "limit", 50, 1, 500)
        before = parse_cursor(request.args, decode_cursor)
        status = parse_status(request.args)
        since = parse_time(request.args, "since", t, None)
        until = parse_time(request.args, "until", t, None)
        if since is not None and until is not None and since >= until:
            raise BadParam("since", "must be before until")
        return json_response(await queries().requests(limit, parse_filters(request.args), status, before,
                                                      since, until))

    @app.get("/api/requests/<rid>")
    async def request_detail(rid: str) -> Response:
        try:
            request_uuid = uuid.UUID(rid)
        except ValueError:
            raise BadParam("id", "expected a request UUID") from None
        detail = await queries().request_detail(request_uuid)
        if detail is None:
            return error_response(404, "not_found_error", f"no request with id {request_uuid}")
        detail["pricing"] = pricing_json(runtime.pricing, detail["request"])
        return json_response(detail)

    @app.get("/api/errors")
    async def errors() -> Response:
        t = runtime.now()
        since, until = parse_range(request.args, t, "24h")
        limit = parse_int(request.args, "limit", 50, 1, 500)
        return json_response(await queries().errors(since, until, parse_filters(request.args), limit))

    @app.get("/api/costs")
    async def costs() -> Response:
        days = parse_int(request.args, "days", 30, 1, 400)
        return json_response(await queries().costs(days, runtime.now(), parse_filters(request.args)))

    @app.get("/api/sessions")
    async def sessions_list() -> Response:
        t = runtime.now()
        limit = parse_int(request.args, "limit", 50, 1, 500)
        before = parse_cursor(request.args, decode_session_cursor)
        raw_active = raw_param(request.args, "active")
        active = None if raw_active is None else parse_bool(request.args, "active", True)
        filters = parse_filters(request.args, model=False, session=False)
        return json_response(await queries().sessions(
            now=t, idle_s=runtime.settings.proxy.session_idle_s, limit=limit,
            since=parse_time(request.args, "since", t, None), account=filters.account,
            tag=parse_tag(request.args), active=active, before=before,
            client=parse_text(request.args, "client")))

    @app.get("/api/sessions/<sid>")
    async def session_detail(sid: str) -> Response:
        session_id = parse_session_id({"id": sid}, "id")
        limit = parse_int(request.args, "limit", 20, 1, 500)
        detail = await queries().session_detail(session_id or "", now=runtime.now(),
                                                idle_s=runtime.settings.proxy.session_idle_s,
                                                request_limit=limit)
        if detail is None:
            return error_response(404, "not_found_error", f"no session with id {session_id}")
        return json_response(detail)
    @app.get("/api/limits")
    async def limits() -> Response:
        account = parse_text(request.args, "accountId", "account")
        return json_response({"now": iso(runtime.now()), "accounts": await queries().limits(account)})

    @app.get("/api/limits/history")
    async def limits_history() -> Response:
        t = runtime.now()
        account = parse_text(request.args, "accountId", "account")
        if account is None:
            raise BadParam("accountId", "required: the account whose history to show")
        window = parse_window_name(request.args, "window", "5h")
        since, until = parse_range(request.args, t, "24h")
        samples = await queries().limits_history(account, window, since, until)
        body: dict[str, Any] = {"accountId": account, "window": window or "all", "since": iso(since),
                                "until": iso(until), "samples": samples}
        if window is not None:
            body["projection"] = window_burn(samples, t)
        return json_response(body)

    @app.get("/api/openapi.json")
    async def openapi() -> Response:
        return json_response(openapi_document(VERSION))

    @app.get("/api/sse")
    async def sse() -> Response:
        last = parse_event_id(request.args.get("lastEventId"), "lastEventId")
        if last is None:
            last = parse_event_id(request.headers.get("Last-Event-ID"), "Last-Event-ID")
        return sse_response(runtime.broker, last, sse_heartbeat_s)

    app.register_blueprint(alerts_blueprint)
    return app
