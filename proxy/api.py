"""The dashboard API (port 3001): stats, token windows, timeseries, requests, errors, costs, SSE.

Routes and JSON shapes are the contract in ``docs/api.md``; the SQL behind them is in
``nexus.db.queries``. Three rules hold for every route: the key is checked before anything else
(``proxy.auth``), every query parameter is validated here so a bad one is a 400 naming it (never a
500 from deep inside), and a database that is away is a 503 — the API process itself stays up.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from quart import Quart, Response, request
from werkzeug.exceptions import HTTPException

from nexus.db.queries import (
    DashboardQueries,
    DatabaseUnavailable,
    Filters,
    RollupCache,
    decode_cursor,
    iso,
    ping,
)
from proxy.auth import FailureLimiter, check_request
from proxy.context import Runtime

log = logging.getLogger("nexus.api")

MAX_FILTER_LEN = 512
MAX_LOOKBACK = timedelta(days=400)
MAX_TIMESERIES_POINTS = 2000
DEFAULT_HEARTBEAT_S = 15.0
SSE_BATCH_MAX = 500  # events written to one subscriber in a single chunk
_RELATIVE = re.compile(r"^\s*([0-9]{1,7})\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("claude-nexus-monitor")
    except Exception:  # not installed as a distribution (e.g. run from a checkout)
        return "0.0.0"


VERSION = _version()


# --------------------------------------------------------------------------------------------
# Responses


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """orjson-encoded JSON (fast, and handles what our dicts hold)."""
    return Response(orjson.dumps(body), status=status, headers=dict(headers or {}),
                    content_type="application/json")


def error_response(status: int, kind: str, message: str, param: str | None = None,
                   headers: Mapping[str, str] | None = None) -> Response:
    err: dict[str, Any] = {"type": kind, "message": message}
    if param is not None:
        err["param"] = param
    return json_response({"error": err}, status, headers)


# --------------------------------------------------------------------------------------------
# Parameter parsing: each parser raises BadParam naming the parameter


class BadParam(ValueError):
    """A query parameter that cannot be used; becomes a 400 naming it."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param


def _raw(args: Mapping[str, str], name: str) -> str | None:
    value = args.get(name)
    if value is None or value.strip() == "":
        return None
    if "\x00" in value:
        raise BadParam(name, "must not contain NUL characters")
    return value.strip()


def parse_time(args: Mapping[str, str], name: str, now: datetime, default: str | None) -> datetime | None:
    """ISO-8601 (naive = UTC, a bare date = its midnight) or a relative duration back from now."""
    raw = _raw(args, name) or default
    if raw is None:
        return None
    msg = "expected ISO-8601 time or relative duration like 15m, 1h, 24h, 7d"
    m = _RELATIVE.match(raw)
    try:
        if m:
            value = now - timedelta(**{_UNITS[m.group(2).lower()]: int(m.group(1))})
        else:
            text = raw[:-1] + "+00:00" if raw.endswith(("z", "Z")) else raw
            value = datetime.fromisoformat(text)
            if value.tzinfo is None:
                value = value.replace(tzinfo=UTC)
            value = value.astimezone(UTC)
    except (ValueError, OverflowError):
        raise BadParam(name, msg) from None
    try:
        too_old = value < now - MAX_LOOKBACK
        too_new = value > now + MAX_LOOKBACK
    except OverflowError:  # pragma: no cover - datetimes near year 1/9999
        too_old = too_new = True
    if too_old:
        raise BadParam(name, "must be within the last 400 days")
    if too_new:
        raise BadParam(name, "must not be more than 400 days in the future")
    return value


def parse_range(args: Mapping[str, str], now: datetime, default_since: str) -> tuple[datetime, datetime]:
    since = parse_time(args, "since", now, default_since)
    until = parse_time(args, "until", now, None) or now
    assert since is not None
    if since >= until:
        raise BadParam("since", "must be before until")
    return since, until


def parse_int(args: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = _raw(args, name)
    if raw is None:
        return default
    if not re.fullmatch(r"[+-]?[0-9]{1,12}", raw):
        raise BadParam(name, f"expected an integer from {lo} to {hi}")
    value = int(raw)
    if not lo <= value <= hi:
        raise BadParam(name, f"must be from {lo} to {hi}")
    return value


def parse_bool(args: Mapping[str, str], name: str, default: bool) -> bool:
    raw = _raw(args, name)
    if raw is None:
        return default
    low = raw.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise BadParam(name, "expected true or false")


def parse_text(args: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        raw = _raw(args, name)
        if raw is not None:
            if len(raw) > MAX_FILTER_LEN:
                raise BadParam(name, f"at most {MAX_FILTER_LEN} characters")
            return raw
    return None


def parse_filters(args: Mapping[str, str], model: bool = True) -> Filters:
    return Filters(domain=parse_text(args, "domain"),
                   account=parse_text(args, "accountId", "account"),
                   model=parse_text(args, "model") if model else None)


def parse_status(args: Mapping[str, str]) -> str | int | None:
    raw = _raw(args, "status")
    if raw is None:
        return None
    low = raw.lower()
    if low in ("error", "errors"):
        return "error"
    if low == "ok":
        return "ok"
    if re.fullmatch(r"[0-9]{3}", raw) and 100 <= int(raw) <= 599:
        return int(raw)
    raise BadParam("status", "expected error, ok or an HTTP status code 100..599")


def parse_event_id(value: str | None, name: str) -> int | None:
    if value is None or value.strip() == "":
        return None
    if not re.fullmatch(r"[0-9]{1,18}", value.strip()):
        raise BadParam(name, "expected a non-negative integer event id")
    return int(value.strip())


# --------------------------------------------------------------------------------------------
# The app


def _token_limit_lookup(runtime: Runtime) -> Callable[[str], int | None]:
    """An account's window limit, the same one the token-window alert uses.

    In order: ``extras['token_limit_for'](account)`` (e.g. the alert manager's learned limits),
    ``extras['token_limits']``, ``ALERT_TOKEN_LIMITS`` (``acct=limit,…``), then ``TOKEN_WINDOW_LIMIT``.
    """
    custom = runtime.extras.get("token_limit_for")
    limits = dict(runtime.extras.get("token_limits") or {})
    configured = getattr(runtime.settings, "alert_token_limits", None)
    if configured:
        try:
            from nexus.alert_rules import parse_key_values

            limits = {**parse_key_values("ALERT_TOKEN_LIMITS", configured), **limits}
        except (ImportError, ValueError):  # malformed setting: reported by the alert config itself
            pass
    default = runtime.settings.token_window_limit or None

    def lookup(account: str) -> int | None:
        value = custom(account) if callable(custom) else None
        if not value:
            value = limits.get(account)
        return int(value) if value else default

    return lookup


def create_dashboard_app(runtime: Runtime) -> Quart:
    """The dashboard app for ``runtime``; serve it with Hypercorn (``proxy.serve.start_server``)."""
    app = Quart("nexus-dashboard")
    # A stream is as long as the client wants it: no Quart timeout may cut /api/sse.
    app.config["RESPONSE_TIMEOUT"] = None
    app.config["BODY_TIMEOUT"] = 60
    limiter = FailureLimiter(max_failures=int(runtime.extras.get("auth_max_failures", 20)))
    app.extensions["nexus_auth_limiter"] = limiter
    # Blueprints (e.g. proxy.alerts_api) find the runtime here: current_app.extensions["nexus_runtime"].
    app.extensions["nexus_runtime"] = runtime

    # Whole past hours of rollups, reused across polls (see RollupCache); 0 disables it.
    cache_ttl = float(runtime.extras.get("rollup_cache_ttl_s", 60.0))
    cache = RollupCache(ttl_s=cache_ttl) if cache_ttl > 0 else None
    app.extensions["nexus_rollup_cache"] = cache

    def queries() -> DashboardQueries:
        # Built per request: the runtime's pool may be replaced while the database comes back.
        return DashboardQueries(runtime.pool, runtime.settings.slow_query_threshold_ms, cache=cache)

    def now() -> datetime:
        clock = runtime.extras.get("clock")
        return clock() if callable(clock) else datetime.now(UTC)

    @app.before_request
    async def _authenticate() -> Response | None:
        if not request.path.startswith("/api"):
            return None
        client = request.remote_addr or "unknown"
        failure = check_request(request.headers, client, runtime.dashboard_key, limiter)
        if failure is None:
            return None
        if failure.status == 403 or failure.status == 401:
            log.info("dashboard auth failed (%s) from %s for %s", failure.status, client, request.path)
        return json_response(failure.body, failure.status, failure.headers)

    @app.errorhandler(BadParam)
    async def _bad_param(exc: BadParam) -> Response:
        return error_response(400, "invalid_request_error", str(exc), exc.param)

    @app.errorhandler(DatabaseUnavailable)
    async def _db_away(exc: DatabaseUnavailable) -> Response:
        return error_response(503, "database_unavailable", "database is not connected",
                              headers={"Retry-After": "5"})

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
            "now": iso(datetime.now(UTC)),
            "database": "connected" if connected else "disconnected",
            "sseSubscribers": runtime.broker.subscriber_count,
            "slowQueryThresholdMs": runtime.settings.slow_query_threshold_ms,
        })

    @app.get("/api/stats")
    async def stats() -> Response:
        t = now()
        since, until = parse_range(request.args, t, "24h")
        filters = parse_filters(request.args)
        return json_response(await queries().stats(since, until, filters, t))

    @app.get("/api/token-usage/current")
    async def token_usage_current() -> Response:
        t = now()
        window = parse_int(request.args, "window", 300, 1, 10080)
        filters = parse_filters(request.args, model=False)
        rows = await queries().token_usage_current(window, t, filters, _token_limit_lookup(runtime))
        if filters.account:
            return json_response(rows[0])
        return json_response({"windowMinutes": window, "now": iso(t), "accounts": rows})

    @app.get("/api/token-usage/daily")
    async def token_usage_daily() -> Response:
        days = parse_int(request.args, "days", 30, 1, 400)
        aggregate = parse_bool(request.args, "aggregate", False)
        filters = parse_filters(request.args, model=False)
        usage = await queries().token_usage_daily(days, now().date(), filters, aggregate)
        return json_response({"days": days, "aggregate": aggregate, "usage": usage})

    @app.get("/api/timeseries")
    async def timeseries() -> Response:
        t = now()
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
        t = now()
        limit = parse_int(request.args, "limit", 50, 1, 500)
        before_raw = _raw(request.args, "before")
        before = None
        if before_raw is not None:
            try:
                before = decode_cursor(before_raw)
            except ValueError:
                raise BadParam("before", "not a cursor returned by this API (use nextCursor)") from None
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
        return json_response(detail)

    @app.get("/api/errors")
    async def errors() -> Response:
        t = now()
        since, until = parse_range(request.args, t, "24h")
        limit = parse_int(request.args, "limit", 50, 1, 500)
        return json_response(await queries().errors(since, until, parse_filters(request.args), limit))

    @app.get("/api/costs")
    async def costs() -> Response:
        days = parse_int(request.args, "days", 30, 1, 400)
        return json_response(await queries().costs(days, now(), parse_filters(request.args, model=False)))

    @app.get("/api/openapi.json")
    async def openapi() -> Response:
        from proxy.openapi import openapi_document

        return json_response(openapi_document(VERSION))

    @app.get("/api/sse")
    async def sse() -> Response:
        last = parse_event_id(request.args.get("lastEventId"), "lastEventId")
        if last is None:
            last = parse_event_id(request.headers.get("Last-Event-ID"), "Last-Event-ID")
        heartbeat_s = float(runtime.extras.get("sse_heartbeat_s", DEFAULT_HEARTBEAT_S))
        sub = runtime.broker.subscribe(last)

        def heartbeat() -> bytes:
            data = orjson.dumps({"time": iso(datetime.now(UTC)), "lastEventId": runtime.broker.last_id})
            return b"event: heartbeat\ndata: " + data + b"\n\n"

        async def stream() -> AsyncIterator[bytes]:
            try:
                # retry in the same block as the first heartbeat: some clients (httpx-sse) would
                # report a lone retry block as an empty "message" event.
                yield b"retry: 2000\n" + heartbeat()
                while True:
                    try:
                        event = await sub.get(heartbeat_s)
                    except StopAsyncIteration:
                        return  # closed by the broker (too slow, or shutting down)
                    if event is None:
                        yield heartbeat()
                        continue
                    # Whatever else is already queued goes out in the same write: at 1,000
                    # events/s one send per event per subscriber is what makes fan-out fall behind.
                    more, closed = sub.drain(SSE_BATCH_MAX)
                    yield event.frame + b"".join(e.frame for e in more)
                    if closed:
                        return
            except asyncio.CancelledError:
                raise
            finally:
                sub.close()

        response = Response(stream(), status=200, content_type="text/event-stream; charset=utf-8",
                            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        response.timeout = None
        return response

    try:
        from proxy.alerts_api import blueprint as alerts_blueprint
    except ImportError:
        alerts_blueprint = None
    if alerts_blueprint is not None:
        app.register_blueprint(alerts_blueprint)

    return app
