"""OpenAPI 3.1 description of the dashboard API, served at ``/api/openapi.json``.

Written by hand next to ``docs/api.md`` (the prose contract) so that tools — schemathesis in
the tests, client generators, API explorers — can check the running server against it.
"""

from __future__ import annotations

import re
from typing import Any

_INT = {"type": "integer"}
_NUM = {"type": "number"}
_STR = {"type": "string"}
_NUM_OR_NULL = {"type": ["number", "null"]}
_STR_OR_NULL = {"type": ["string", "null"]}
_TIME = {"type": "string", "format": "date-time"}
_TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(props) if required is None else required}


_TIME_DOC = ("ISO-8601 time (naive = UTC, a bare date = its midnight UTC) or a relative duration back "
             "from now: <n>s|m|h|d|w, e.g. 15m, 1h, 24h, 7d. Within 400 days of now.")


def _q(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _since(default: str) -> dict[str, Any]:
    return _q("since", {"type": "string", "default": default}, "Start of the range. " + _TIME_DOC)


_UNTIL = _q("until", _STR, "End of the range (default now). " + _TIME_DOC)
# Filter values: any text without NUL (PostgreSQL text cannot hold it), at most 512 characters.
_FILTER = {"type": "string", "maxLength": 512, "pattern": "^[^\\x00]*$"}
_DOMAIN = _q("domain", _FILTER, "Only requests to this domain (Host).")
_ACCOUNT = _q("accountId", _FILTER, "Only this account (alias: account).")
_ACCOUNT_ALIAS = _q("account", _FILTER, "Alias of accountId.")
_MODEL = _q("model", _FILTER, "Only this model: its full name or its family (sonnet-4-5).")
_SESSION = _q("sessionId", {"type": "string", "pattern": "^\\s*([A-Za-z0-9][A-Za-z0-9._:@+=-]{0,127})?\\s*$"},
               "Only this session (Claude Code's session id).")
_TAG = _q("tag", {"type": "string", "pattern": "^\\s*([A-Za-z0-9_-]{1,32}\\s*[:=]\\s*\\S.{0,127})?$"},
          "Only requests carrying this tag, as name:value (e.g. project:apollo).")
_FILTERS = [_DOMAIN, _ACCOUNT, _ACCOUNT_ALIAS, _MODEL, _SESSION, _TAG]
_DAYS = _q("days", {"type": "integer", "minimum": 1, "maximum": 400, "default": 30},
           "Today (UTC) and the days - 1 days before it.")


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


_COMMON_ERRORS = {
    "400": _error_response("A query parameter is invalid; error.param names it."),
    "401": _error_response("No dashboard key was sent."),
    "403": _error_response("The dashboard key is wrong."),
    "429": _error_response("Too many failed authentication attempts from this client (Retry-After)."),
    "503": _error_response("The database is not reachable."),
}


def _get(summary: str, params: list[dict[str, Any]], schema: dict[str, Any],
         extra: dict[str, Any] | None = None, secured: bool = True) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": {"description": "OK", "content": {"application/json": {"schema": schema}}}}
    if secured:
        responses.update(_COMMON_ERRORS)
    responses.update(extra or {})
    op: dict[str, Any] = {"summary": summary, "parameters": params, "responses": responses}
    if not secured:
        op["security"] = []
    return {"get": op}


def _schemas() -> dict[str, Any]:
    tokens = _obj({"input": _INT, "output": _INT, "cacheCreation": _INT, "cacheRead": _INT, "total": _INT})
    group = {
        "requests": _INT, "errors": _INT, "errorRate": _NUM, "tokens": _ref("Tokens"), "costUsd": _NUM,
        "unpricedRequests": _INT, "avgLatencyMs": _NUM_OR_NULL, "p95LatencyMs": _NUM_OR_NULL,
        "byDimension": _ref("CostByDimension"),
    }
    dim = {"requests": _INT, "costUsd": _NUM, "shareOfCost": _NUM}
    by_dimension = _obj({
        "fast": _obj(dim), "usOnly": _obj(dim),
        "webSearch": _obj({"searches": _INT, "costUsd": _NUM, "shareOfCost": _NUM}),
        "webFetch": _obj({"fetches": _INT}), "thinkingTokens": _INT,
    })
    per_part = {k: _NUM for k in ("input", "output", "cacheWrite5m", "cacheWrite1h", "cacheRead")}
    pricing = {"type": ["object", "null"], "properties": {
        "family": _STR, "source": _STR, "ratesPerMillionTokens": _obj(per_part), "webSearchPer1000": _NUM,
        "longPromptAbove": {"type": ["integer", "null"]},
        "multipliers": {"type": "array", "items": _obj({"name": _STR, "factor": _NUM})},
        "partsUsd": _obj({**per_part, "webSearch": _NUM}), "totalUsd": _NUM, "matchesStored": {"type": "boolean"},
    }, "required": ["family", "source", "ratesPerMillionTokens", "webSearchPer1000", "longPromptAbove",
                    "multipliers", "partsUsd", "totalUsd", "matchesStored"]}
    request_row = _obj({
        "id": {"type": "string", "format": "uuid"}, "time": _TIME, "requestId": _STR_OR_NULL, "domain": _STR,
        "accountId": _STR_OR_NULL, "method": _STR, "path": _STR, "model": _STR_OR_NULL, "stream": {"type": "boolean"},
        "status": _INT, "errorType": _STR_OR_NULL, "errorMessage": _STR_OR_NULL, "latencyMs": _NUM_OR_NULL,
        "ttftMs": _NUM_OR_NULL, "tokens": _ref("Tokens"), "costUsd": _NUM_OR_NULL, "requestType": _STR,
        "countedTokens": {"type": ["integer", "null"]}, "instanceId": _STR_OR_NULL,
        "cacheWrite5mTokens": _INT, "cacheWrite1hTokens": _INT,
        "serviceTier": _STR_OR_NULL, "speed": _STR_OR_NULL, "inferenceGeo": _STR_OR_NULL,
        "webSearchRequests": _INT, "webFetchRequests": _INT, "thinkingTokens": _INT,
        "priceSource": _STR_OR_NULL, "webSearchCostUsd": _NUM_OR_NULL,
        "sessionId": _STR_OR_NULL, "agentId": _STR_OR_NULL, "parentAgentId": _STR_OR_NULL,
        "client": _STR_OR_NULL, "tags": {"type": "object", "additionalProperties": _STR},
    })
    session = _obj({
        "sessionId": _STR, "accountId": _STR_OR_NULL, "client": _STR_OR_NULL, "firstSeen": _TIME,
        "lastSeen": _TIME, "active": {"type": "boolean"}, "requests": _INT, "errors": _INT,
        "tokens": _ref("Tokens"), "costUsd": _NUM, "unpricedRequests": _INT,
        "models": {"type": "array", "items": _STR}, "agents": _INT,
        "tags": {"type": "object", "additionalProperties": _STR},
        "quotaShare": {"type": ["object", "null"], "additionalProperties": _NUM},
    })
    agent = _obj({
        "agentId": _STR_OR_NULL, "parentAgentId": _STR_OR_NULL, "depth": _INT, "requests": _INT, "errors": _INT,
        "tokens": _ref("Tokens"), "costUsd": _NUM, "models": {"type": "array", "items": _STR},
        "firstSeen": _TIME, "lastSeen": _TIME,
    })
    window = _obj({
        "accountId": _STR, "active": {"type": "boolean"}, "windowMinutes": _INT, "windowStart": _TIME,
        "windowEnd": _TIME, "now": _TIME, "totalInputTokens": _INT, "totalOutputTokens": _INT,
        "cacheCreationInputTokens": _INT, "cacheReadInputTokens": _INT, "totalTokens": _INT,
        "totalRequests": _INT, "costUsd": _NUM, "burnRatePerMinute": _NUM, "projectedTotal": _INT,
        "tokenLimit": {"type": ["integer", "null"]}, "percentOfLimit": _NUM_OR_NULL,
        "projectedPercentOfLimit": _NUM_OR_NULL, "projectedExhaustion": _TIME_OR_NULL,
        "minutesRemaining": _NUM, "elapsedMinutes": _NUM,
        "utilization": _NUM_OR_NULL, "resetsAt": _TIME_OR_NULL,
        "limitSource": {"enum": ["headers", "configured", "learned", None]},
        "limitWindow": _STR_OR_NULL, "limitStatus": _STR_OR_NULL, "measuredAt": _TIME_OR_NULL,
    })
    bucket = {"type": "object", "properties": {"limit": {"type": ["integer", "null"]},
                                               "remaining": {"type": ["integer", "null"]},
                                               "resetsAt": _TIME_OR_NULL}}
    limit_window = {"type": "object", "properties": {"utilization": _NUM_OR_NULL, "resetsAt": _TIME_OR_NULL,
                                                     "status": _STR_OR_NULL, "surpassedThreshold": _NUM},
                    "required": ["utilization", "resetsAt", "status"]}
    limits_account = _obj({
        "accountId": _STR, "kind": {"enum": ["subscription", "api_key", None]}, "observedAt": _TIME,
        "requestId": _STR_OR_NULL, "statusCode": {"type": ["integer", "null"]}, "status": _STR_OR_NULL,
        "representativeClaim": _STR_OR_NULL, "resetsAt": _TIME_OR_NULL, "fallbackPercentage": _NUM_OR_NULL,
        "windows": {"type": "object", "additionalProperties": limit_window},
        "overage": _obj({"status": _STR_OR_NULL, "resetsAt": _TIME_OR_NULL, "disabledReason": _STR_OR_NULL}),
        "rateLimits": {"type": "object", "additionalProperties": bucket},
        "priority": {"type": "object", "additionalProperties": bucket},
        "retryAfterS": _NUM_OR_NULL,
        "extra": {"type": "object", "additionalProperties": _STR},
        "headers": {"type": "object", "additionalProperties": _STR},
    }, ["accountId", "kind", "observedAt", "status", "representativeClaim", "resetsAt", "fallbackPercentage",
        "windows", "overage", "rateLimits", "retryAfterS", "headers"])
    headers = {"type": ["object", "null"], "additionalProperties": {"type": "string"}}
    return {
        "Error": _obj({"error": _obj({"type": _STR, "message": _STR, "param": _STR}, ["type", "message"])}),
        "Tokens": tokens,
        "CostByDimension": by_dimension,
        "RequestRow": request_row,
        "Session": session,
        "SessionList": _obj({"sessions": {"type": "array", "items": _ref("Session")}, "nextCursor": _STR_OR_NULL}),
        "SessionDetail": _obj({
            "session": _ref("Session"), "agents": {"type": "array", "items": agent},
            "requests": {"type": "array", "items": _ref("RequestRow")},
            "quotaShare": {"type": ["object", "null"], "additionalProperties": _NUM},
            "quotaShareNote": _STR_OR_NULL,
        }),
        "TokenWindow": window,
        "Health": _obj({"status": {"enum": ["ok", "degraded"]},
                        "database": {"enum": ["connected", "disconnected"]}}),
        "Info": _obj({"name": _STR, "version": _STR, "instanceId": _STR, "startedAt": _TIME,
                      "uptimeSeconds": _NUM, "now": _TIME, "database": {"enum": ["connected", "disconnected"]},
                      "sseSubscribers": _INT, "slowQueryThresholdMs": _NUM}),
        "Stats": _obj({
            "since": _TIME, "until": _TIME, "totalRequests": _INT, "errorCount": _INT, "errorRate": _NUM,
            "tokens": _ref("Tokens"),
            "latencyMs": _obj({"avg": _NUM_OR_NULL, "p50": _NUM_OR_NULL, "p95": _NUM_OR_NULL,
                               "p99": _NUM_OR_NULL, "method": {"enum": ["exact", "histogram"]}}),
            "costUsd": _NUM, "unpricedRequests": _INT, "requestsPerMinute": _INT,
            "byDimension": _ref("CostByDimension"),
            "byModel": {"type": "array", "items": _obj({"model": _STR, **group})},
            "byDomain": {"type": "array", "items": _obj({"domain": _STR, **group})},
        }),
        "LimitsAccount": limits_account,
        "Limits": _obj({"now": _TIME, "accounts": {"type": "array", "items": _ref("LimitsAccount")}}),
        "LimitsHistory": _obj({
            "accountId": _STR, "window": _STR, "since": _TIME, "until": _TIME,
            "samples": {"type": "array", "items": _obj({
                "window": _STR, "time": _TIME, "observedAt": _TIME, "utilization": _NUM_OR_NULL,
                "resetsAt": _TIME_OR_NULL, "status": _STR_OR_NULL})},
            "projection": _obj({"utilization": _NUM_OR_NULL, "ratePerHour": _NUM_OR_NULL, "resetsAt": _TIME_OR_NULL,
                                "projectedFullAt": _TIME_OR_NULL, "minutesBeforeReset": _NUM_OR_NULL,
                                "hitsLimitBeforeReset": {"type": "boolean"}}),
        }, ["accountId", "window", "since", "until", "samples"]),
        "TokenUsageCurrent": {"oneOf": [
            _ref("TokenWindow"),
            _obj({"windowMinutes": _INT, "now": _TIME,
                  "accounts": {"type": "array", "items": _ref("TokenWindow")}}),
        ]},
        "TokenUsageDaily": _obj({
            "days": _INT, "aggregate": {"type": "boolean"},
            "usage": {"type": "array", "items": _obj({
                "date": {"type": "string", "format": "date"}, "accountId": _STR, "domain": _STR, "model": _STR,
                "totalInputTokens": _INT, "totalOutputTokens": _INT, "cacheCreationInputTokens": _INT,
                "cacheReadInputTokens": _INT, "totalTokens": _INT, "totalRequests": _INT, "errors": _INT,
                "costUsd": _NUM, "unpricedRequests": _INT,
            }, ["date", "accountId", "domain", "totalInputTokens", "totalOutputTokens", "totalTokens",
                "totalRequests", "costUsd"])},
        }),
        "Timeseries": _obj({
            "since": _TIME, "until": _TIME, "bucketSeconds": _INT,
            "points": {"type": "array", "items": _obj({
                "time": _TIME, "requests": _INT, "errors": _INT, "errorRate": _NUM,
                "avgLatencyMs": _NUM_OR_NULL, "p50LatencyMs": _NUM_OR_NULL, "p95LatencyMs": _NUM_OR_NULL,
                "tokens": _ref("Tokens"), "costUsd": _NUM, "unpricedRequests": _INT,
            })},
        }),
        "RequestList": _obj({"requests": {"type": "array", "items": _ref("RequestRow")},
                             "nextCursor": _STR_OR_NULL}),
        "RequestDetail": _obj({
            "request": _ref("RequestRow"),
            "errorBody": {},
            "bodies": {"type": ["object", "null"], "properties": {
                "requestHeaders": headers, "responseHeaders": headers,
                "requestBody": _STR_OR_NULL, "responseBody": _STR_OR_NULL}},
            "pricing": pricing,
        }),
        "Errors": _obj({
            "since": _TIME, "until": _TIME, "totalErrors": _INT,
            "groups": {"type": "array", "items": _obj({
                "statusCode": _INT, "errorType": _STR_OR_NULL, "count": _INT,
                "affectedDomains": {"type": "array", "items": _STR}, "firstSeen": _TIME, "lastSeen": _TIME})},
            "recent": {"type": "array", "items": _ref("RequestRow")},
        }),
        "Costs": _obj({
            "days": _INT, "currency": {"const": "USD"}, "totalCostUsd": _NUM, "todayUsd": _NUM,
            "monthToDateUsd": _NUM, "monthElapsedDays": _NUM, "monthDays": _INT,
            "monthEndProjectionUsd": _NUM, "unpricedRequests": _INT,
            "daily": {"type": "array", "items": _obj({
                "date": {"type": "string", "format": "date"}, "costUsd": _NUM, "cumulativeUsd": _NUM,
                "requests": _INT,
                "byModel": {"type": "array", "items": _obj({"model": _STR, "costUsd": _NUM, "requests": _INT})},
            })},
            "byModel": {"type": "array", "items": _obj({"model": _STR, "costUsd": _NUM, "requests": _INT,
                                                        "unpricedRequests": _INT,
                                                        "byDimension": _ref("CostByDimension")})},
            "byDimension": _ref("CostByDimension"),
            "unpriced": {"type": "array", "items": _obj({"model": _STR, "requests": _INT, "tokens": _INT})},
        }),
    }


def openapi_document(version: str) -> dict[str, Any]:
    """The whole description; cheap to build, so built per call (no shared mutable state)."""
    paths: dict[str, Any] = {
        "/health": _get("Liveness and database state (open, no key).", [], _ref("Health"),
                        {"503": {"description": "Database disconnected",
                                 "content": {"application/json": {"schema": _ref("Health")}}}},
                        secured=False),
        "/api/info": _get("Process info for the monitor's header.", [], _ref("Info")),
        "/api/stats": _get("Totals, latency percentiles, cost and breakdowns for a time range.",
                           [_since("24h"), _UNTIL, *_FILTERS,
                            _q("top", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
                               "byModel / byDomain keep this many groups; the rest are summed as `other`.")],
                           _ref("Stats")),
        "/api/token-usage/current": _get(
            "Current usage window per account (or one account), with burn rate and projection.",
            [_ACCOUNT, _ACCOUNT_ALIAS, _DOMAIN,
             _q("window", {"type": "integer", "minimum": 1, "maximum": 10080, "default": 300},
                "Window length in minutes.")],
            _ref("TokenUsageCurrent")),
        "/api/token-usage/daily": _get(
            "Daily token usage and cost per account and domain (and model unless aggregate).",
            [_ACCOUNT, _ACCOUNT_ALIAS, _DOMAIN, _DAYS,
             _q("aggregate", {"type": "string", "enum": ["true", "false", "1", "0", "yes", "no", "on", "off"]},
                "Merge models into one row per date, account and domain.")],
            _ref("TokenUsageDaily")),
        "/api/timeseries": _get(
            "Per-bucket requests, errors, latency percentiles, tokens and cost (zero-filled).",
            [_since("1h"), _UNTIL, *_FILTERS,
             _q("bucket", {"type": "integer", "minimum": 60, "maximum": 86400, "multipleOf": 60, "default": 60},
                "Bucket width in seconds (multiple of 60); at most 2000 buckets per range.")],
            _ref("Timeseries")),
        "/api/requests": _get(
            "Recorded requests, newest first, cursor-paged.",
            [_q("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}, "Page size."),
             _q("before", _STR, "Cursor: nextCursor of the previous page."),
             _q("status", {"type": "string",
                           "pattern": "^\\s*([Ee][Rr][Rr][Oo][Rr][Ss]?|[Oo][Kk]|[1-5][0-9][0-9])?\\s*$"},
                "error, ok (any case), or an HTTP status code 100..599; empty = any."),
             _q("since", _STR, "Optional start. " + _TIME_DOC), _UNTIL, *_FILTERS],
            _ref("RequestList")),
        "/api/requests/{id}": _get(
            "One request with its error body and stored (redacted) headers and bodies.",
            [{"name": "id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}],
            _ref("RequestDetail"), {"404": _error_response("No request with this id.")}),
        "/api/errors": _get(
            "Errors by status code and error type with affected domains, and the newest error rows.",
            [_since("24h"), _UNTIL, *_FILTERS,
             _q("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}, "Recent rows.")],
            _ref("Errors")),
        "/api/costs": _get("Cost by day and model, cumulative, month to date and month-end projection.",
                           [_DAYS, *_FILTERS], _ref("Costs")),
        "/api/sessions": _get(
            "Sessions (Claude Code and others that name one) by most recent activity, cursor-paged.",
            [_q("since", _STR, "Only sessions active since. " + _TIME_DOC), _ACCOUNT, _ACCOUNT_ALIAS, _TAG,
             _q("active", {"type": "string", "enum": ["true", "false", "1", "0", "yes", "no", "on", "off"]},
                "true: only sessions with a request in the last SESSION_IDLE_S; false: only the others."),
             _q("client", _FILTER, "Only sessions whose client starts with this (e.g. claude-cli)."),
             _q("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}, "Page size."),
             _q("before", _STR, "Cursor: nextCursor of the previous page.")],
            _ref("SessionList")),
        "/api/sessions/{id}": _get(
            "One session: totals, its agent tree with per-agent totals, its latest requests.",
            [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
             _q("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 20}, "Latest requests.")],
            _ref("SessionDetail"), {"404": _error_response("No session with this id.")}),
        "/api/limits": _get(
            "Each account's rate limits exactly as the latest answer's headers said them (docs/limits.md).",
            [_ACCOUNT, _ACCOUNT_ALIAS], _ref("Limits")),
        "/api/limits/history": _get(
            "Utilization samples of an account's window (at most one a minute), with burn and exhaustion.",
            [{**_ACCOUNT, "description": "The account (required)."}, _ACCOUNT_ALIAS,
             _q("window", {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,32}$", "default": "5h"},
                "Window as Anthropic names it (5h, 7d, 7d_oi, ...) or all."),
             _since("24h"), _UNTIL],
            _ref("LimitsHistory")),
        "/api/sse": {"get": {
            "summary": "Live stream: request and alert events, heartbeats; honours Last-Event-ID.",
            "parameters": [
                _q("lastEventId", {"type": "string", "pattern": "^[0-9]{1,18}$"}, "Replay events after this id."),
                {"name": "Last-Event-ID", "in": "header", "required": False,
                 "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"}},
            ],
            "responses": {"200": {"description": "An endless text/event-stream",
                                  "content": {"text/event-stream": {"schema": _STR}}}, **_COMMON_ERRORS},
        }},
        "/api/alerts": {"get": {
            "summary": "Active and recent alerts (served by the alerts blueprint).",
            "parameters": [_q("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
                              "Recent alerts at most.")],
            "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {
                "type": "object"}}}}, **_COMMON_ERRORS},
        }},
        "/api/alerts/test": {"post": {
            "summary": "Send a marked test notification through the configured alert channels now.",
            "parameters": [_q("channel", {"type": "string", "enum": ["slack", "webhook", "email", "pagerduty", "all"],
                                          "default": "all"}, "One channel or all configured ones.")],
            "responses": {"200": {"description": "Per-channel outcome", "content": {"application/json": {
                "schema": {"type": "object"}}}}, **_COMMON_ERRORS},
        }},
        "/api/openapi.json": {"get": {
            "summary": "This document.",
            "responses": {"200": {"description": "OK",
                                  "content": {"application/json": {"schema": {"type": "object"}}}},
                          **{k: v for k, v in _COMMON_ERRORS.items() if k != "400" and k != "503"}},
        }},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Claude Nexus Monitor dashboard API", "version": version,
                 "description": "See docs/api.md for the prose contract."},
        "servers": [{"url": "/"}],
        "security": [{"dashboardKey": []}, {"bearer": []}],
        "components": {
            "securitySchemes": {
                "dashboardKey": {"type": "apiKey", "in": "header", "name": "X-Dashboard-Key"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
            "schemas": _schemas(),
        },
        "paths": paths,
    }


def query_params_by_route(doc: dict[str, Any]) -> dict[str, frozenset[str]]:
    """Each documented GET path (``{x}`` placeholders as ``{}``) → the query parameters it takes.

    The one place the API's allowed parameters come from: the app rejects any other (a 400 that
    names it), so the document and the server cannot drift apart.
    """
    out: dict[str, frozenset[str]] = {}
    for path, item in doc["paths"].items():
        op = item.get("get")
        if op is None:
            continue
        names = {p["name"] for p in op.get("parameters", []) if p.get("in") == "query"}
        out[re.sub(r"\{[^}]*\}", "{}", path)] = frozenset(names)
    return out
