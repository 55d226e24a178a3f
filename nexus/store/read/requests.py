"""``/api/requests`` (newest first, cursor paging) and ``/api/requests/{id}`` (the record and its bodies).
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson

from nexus.core.redact import redact_headers
from nexus.core.timebuckets import floor_minute, iso
from nexus.store.read.base import ERROR_SQL, Filters, QueryBase, ms, num, tokens_obj

_REQUEST_COLS = """id, created_at, request_id, domain, account_id, method, path, model, stream, status_code,
    error_type, error_message, input_tokens, output_tokens, cache_creation_input_tokens,
    cache_read_input_tokens, counted_tokens, response_time_ms, ttft_ms, cost_usd, request_type, instance_id,
    cache_creation_5m_tokens, cache_creation_1h_tokens, service_tier, speed, inference_geo, web_search_requests,
    web_fetch_requests, thinking_tokens, price_source, web_search_cost_usd, session_id, agent_id,
    parent_agent_id, client, tags"""


def request_row(r: asyncpg.Record) -> dict[str, Any]:
    """A stored request in the API's shape: the SSE ``request`` event plus error message and count."""
    return {
        "id": str(r["id"]),
        "time": iso(r["created_at"]),
        "requestId": r["request_id"],
        "domain": r["domain"],
        "accountId": r["account_id"],
        "method": r["method"],
        "path": r["path"],
        "model": r["model"],
        "stream": r["stream"],
        "status": r["status_code"],
        "errorType": r["error_type"],
        "errorMessage": r["error_message"],
        "latencyMs": ms(r["response_time_ms"]),
        "ttftMs": ms(r["ttft_ms"]),
        "tokens": tokens_obj(r["input_tokens"], r["output_tokens"], r["cache_creation_input_tokens"],
                             r["cache_read_input_tokens"]),
        "cacheWrite5mTokens": r["cache_creation_5m_tokens"],
        "cacheWrite1hTokens": r["cache_creation_1h_tokens"],
        "costUsd": num(r["cost_usd"]),
        "requestType": r["request_type"],
        "countedTokens": r["counted_tokens"],
        "instanceId": r["instance_id"],
        "serviceTier": r["service_tier"],
        "speed": r["speed"],
        "inferenceGeo": r["inference_geo"],
        "webSearchRequests": r["web_search_requests"],
        "webFetchRequests": r["web_fetch_requests"],
        "thinkingTokens": r["thinking_tokens"],
        "priceSource": r["price_source"],
        "webSearchCostUsd": num(r["web_search_cost_usd"]),
        "sessionId": r["session_id"],
        "agentId": r["agent_id"],
        "parentAgentId": r["parent_agent_id"],
        "client": r["client"],
        "tags": _tags(r["tags"]),
    }


CURSOR_MIN = datetime(1970, 1, 1, tzinfo=UTC)
CURSOR_MAX = datetime(9000, 1, 1, tzinfo=UTC)


def _tags(value: Any) -> dict[str, str]:
    if isinstance(value, str):  # a connection without the pool's jsonb codec
        value = orjson.loads(value)
    return value if isinstance(value, dict) else {}


def encode_cursor(created_at: datetime, rid: uuid.UUID) -> str:
    raw = f"{created_at.astimezone(UTC).isoformat()}|{rid}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """Inverse of ``encode_cursor``; ``ValueError`` for anything that is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        t, _, rid = raw.partition("|")
        when = datetime.fromisoformat(t)
        if when.tzinfo is None:
            raise ValueError("naive time")
        # a crafted offset can push the instant out of datetime's range (year 1 at +01:00, 9999
        # at -01:00), and the database refuses what the driver cannot encode: keep a sane range
        when = when.astimezone(UTC)
        if not CURSOR_MIN <= when <= CURSOR_MAX:
            raise ValueError("cursor time out of range")
        return when, uuid.UUID(rid)
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError) as exc:
        raise ValueError("not a cursor returned by this API") from exc




class RequestQueries(QueryBase):

    async def requests(self, limit: int, filters: Filters, status: str | int | None = None,
                       before: tuple[datetime, uuid.UUID] | None = None,
                       since: datetime | None = None, until: datetime | None = None,
                       name: str = "requests.list") -> dict[str, Any]:
        args: list[Any] = []
        where = ["TRUE"]
        if status == "error":
            where.append(ERROR_SQL)
        elif status == "ok":
            where.append(f"NOT {ERROR_SQL}")
        elif isinstance(status, int):
            args.append(status)
            where.append(f"status_code = ${len(args)}")
        if since is not None:
            args.append(since)
            where.append(f"created_at >= ${len(args)}")
        if until is not None:
            args.append(until)
            where.append(f"created_at < ${len(args)}")
        if before is not None:
            args.extend(before)
            a, b = len(args) - 1, len(args)
            where.append(f"created_at <= ${a} AND (created_at < ${a} OR id < ${b})")
        async with self._conn() as conn:
            if (filters.model or isinstance(status, int)) and not filters.raw_only:
                # No index serves these filters: a rare or unknown value would walk the whole
                # table. The rollups say in which minutes matching rows can be (or that none exist).
                span = await self._rollup_span(conn, filters, status, since, until,
                                               before[0] if before else None)
                if span is None:
                    return {"requests": [], "nextCursor": None}
                args += [span[0], span[1] + timedelta(minutes=1)]
                where.append(f"created_at >= ${len(args) - 1} AND created_at < ${len(args)}")
            args.append(limit + 1)
            lim = len(args)
            cond = " AND ".join(where) + filters.sql(args)
            # $lim was appended before the filters; keep it bound by number, not position.
            sql = f"""SELECT {_REQUEST_COLS} FROM api_requests WHERE {cond}
                      ORDER BY created_at DESC, id DESC LIMIT ${lim}"""
            rows = await self._run(conn, name, sql, *args)
        more = len(rows) > limit
        rows = rows[:limit]
        cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more and rows else None
        return {"requests": [request_row(r) for r in rows], "nextCursor": cursor}

    async def _rollup_span(self, conn: asyncpg.Connection, filters: Filters, status: str | int | None,
                           since: datetime | None, until: datetime | None,
                           before: datetime | None) -> tuple[datetime, datetime] | None:
        """First and last rollup minute that can hold matching rows; ``None`` when none can."""
        args: list[Any] = []
        where = ["TRUE"]
        if status == "error" or (isinstance(status, int) and status >= 400):
            where.append("errors > 0")
        for value, cond in ((since and floor_minute(since), ">="), (until, "<"), (before, "<=")):
            if value is not None:
                args.append(value)
                where.append(f"bucket {cond} ${len(args)}")
        sql = (f"SELECT min(bucket) AS lo, max(bucket) AS hi FROM api_requests_minute WHERE {' AND '.join(where)}"
               + filters.sql(args))
        row = (await self._run(conn, "requests.span", sql, *args))[0]
        return None if row["lo"] is None else (row["lo"], row["hi"])

    async def request_detail(self, rid: uuid.UUID) -> dict[str, Any] | None:
        async with self._conn() as conn:
            rows = await self._run(conn, "requests.detail",
                                   f"SELECT {_REQUEST_COLS} FROM api_requests WHERE id = $1 LIMIT 1", rid)
            if not rows:
                return None
            row = rows[0]
            bodies = await self._run(
                conn, "requests.bodies",
                """SELECT request_headers, response_headers, request_body, response_body
                   FROM api_request_bodies WHERE request_uuid = $1 AND created_at = $2""",
                rid, row["created_at"])
        req = request_row(row)
        body_json: dict[str, Any] | None = None
        error_body: Any = None
        if bodies:
            b = bodies[0]
            body_json = {
                "requestHeaders": _headers(b["request_headers"]),
                "responseHeaders": _headers(b["response_headers"]),
                "requestBody": b["request_body"],
                "responseBody": b["response_body"],
            }
            is_error = row["status_code"] >= 400 or row["error_type"] is not None
            if is_error and b["response_body"] is not None:
                try:
                    error_body = orjson.loads(b["response_body"])
                except orjson.JSONDecodeError:
                    error_body = b["response_body"]
        return {"request": req, "errorBody": error_body, "bodies": body_json}


def _headers(value: Any) -> dict[str, str] | None:
    """Stored headers, redacted again on the way out (defence in depth: old rows, other writers)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
    if not isinstance(value, dict):
        return None
    return redact_headers({str(k): str(v) for k, v in value.items()})
