"""``nexus db reprice``: recompute stored costs with the price table in force now, rollups included.

Records are priced when they are made, with the table of that moment. When the table learns
something (a new model, a corrected rate, a ``PRICING_FILE`` entry, a ``nexus prices update``),
history can be repriced: rows are read in keyset-ordered batches, priced again with the rate that
was valid at their own ``created_at`` (prices are dated, so an unchanged table gives an unchanged
answer), and only rows whose cost, web-search cost or price source changed are written. In the same
transaction the cost columns of the per-minute rollups those rows belong to are set to a fresh
aggregation of the raw rows, so charts and ``/api/costs`` agree with ``/api/requests`` afterwards; so
are the costs of the sessions (and their agents) those rows belong to.

Concurrency with a live writer: the rollup rows of a batch are locked (``FOR UPDATE``) before the
fresh aggregate is read, so a record the writer commits meanwhile is either in the aggregate or
added by the writer after our update, never lost or counted twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from nexus.core.records import REQUEST_TYPE_MESSAGES
from nexus.core.usage import Usage
from nexus.pricing import PriceTable
from nexus.store.read.base import DIM_RAW_SQL, UNPRICED_SQL

STORED = Decimal("1e-10")  # numeric(18, 10)
_RETRIES = 3

_SELECT = """SELECT id, created_at, model, input_tokens, output_tokens, cache_creation_input_tokens,
    cache_creation_5m_tokens, cache_creation_1h_tokens, cache_read_input_tokens, service_tier, speed,
    inference_geo, web_search_requests, cost_usd, web_search_cost_usd, price_source
FROM api_requests
WHERE request_type = $1 AND created_at >= $2 AND (created_at, id) > ($3, $4) {model}
ORDER BY created_at, id LIMIT {limit}"""

_UPDATE = """UPDATE api_requests AS a SET cost_usd = v.cost, web_search_cost_usd = v.ws, price_source = v.src
FROM unnest($1::uuid[], $2::timestamptz[], $3::numeric[], $4::numeric[], $5::text[]) AS v(id, created_at, cost, ws, src)
WHERE a.id = v.id AND a.created_at = v.created_at"""

_LOCK = """SELECT 1 FROM api_requests_minute WHERE bucket = ANY($1::timestamptz[])
ORDER BY bucket, domain, account_id, model FOR UPDATE"""

_REFRESH = f"""WITH fresh AS (
    SELECT date_trunc('minute', created_at, 'UTC') AS bucket, domain, coalesce(account_id, '') AS account_id,
           coalesce(model, '') AS model, coalesce(sum(cost_usd), 0) AS cost,
           count(*) FILTER (WHERE {UNPRICED_SQL}) AS unpriced, {DIM_RAW_SQL}
    FROM api_requests
    WHERE created_at >= $2 AND created_at < $3 AND date_trunc('minute', created_at, 'UTC') = ANY($1::timestamptz[])
    GROUP BY 1, 2, 3, 4)
UPDATE api_requests_minute AS m SET cost_usd = f.cost, unpriced_requests = f.unpriced,
    fast_requests = f.fast, fast_cost_usd = f.fast_cost, geo_us_requests = f.geo_us,
    geo_us_cost_usd = f.geo_us_cost, web_search_cost_usd = f.web_search_cost, unpriced_tokens = f.unpriced_tokens
FROM fresh AS f
WHERE m.bucket = f.bucket AND m.domain = f.domain AND m.account_id = f.account_id AND m.model = f.model"""


# Sessions (migration 0006) hold costs too: those the batch touched get theirs from the raw rows,
# locked after the minute rollups (the writer's order: minutes, then sessions, then agents).
_SESSIONS_OF = """SELECT DISTINCT session_id FROM unnest($1::uuid[], $2::timestamptz[]) AS v(id, created_at)
JOIN api_requests AS a USING (id, created_at) WHERE a.session_id IS NOT NULL ORDER BY 1"""

_SESSION_LOCK = "SELECT 1 FROM api_sessions WHERE session_id = ANY($1::text[]) ORDER BY session_id FOR UPDATE"

_SESSION_REFRESH = f"""WITH fresh AS (
    SELECT session_id, coalesce(sum(cost_usd), 0) AS cost, count(*) FILTER (WHERE {UNPRICED_SQL}) AS unpriced
    FROM api_requests WHERE session_id = ANY($1::text[]) GROUP BY 1)
UPDATE api_sessions AS s SET cost_usd = f.cost, unpriced_requests = f.unpriced
FROM fresh AS f WHERE s.session_id = f.session_id"""

_AGENT_REFRESH = """WITH fresh AS (
    SELECT session_id, coalesce(agent_id, '') AS agent_id, coalesce(sum(cost_usd), 0) AS cost
    FROM api_requests WHERE session_id = ANY($1::text[]) GROUP BY 1, 2)
UPDATE api_session_agents AS a SET cost_usd = f.cost
FROM fresh AS f WHERE a.session_id = f.session_id AND a.agent_id = f.agent_id"""


@dataclass
class RepriceSummary:
    scanned: int = 0
    changed: int = 0  # cost_usd changed
    annotated: int = 0  # same cost; only the price source / web-search part filled in or corrected
    newly_priced: int = 0
    newly_unpriced: int = 0
    old_total: Decimal = Decimal(0)
    new_total: Decimal = Decimal(0)
    minutes_refreshed: int = 0
    sessions_refreshed: int = 0
    changed_by_model: dict[str, int] = field(default_factory=dict)


def _stored(v: Decimal | None) -> Decimal | None:
    return None if v is None else v.quantize(STORED)


def _usage(r: Any) -> Usage:
    return Usage(
        input_tokens=r["input_tokens"], output_tokens=r["output_tokens"],
        cache_creation_input_tokens=r["cache_creation_input_tokens"],
        cache_creation_5m_tokens=r["cache_creation_5m_tokens"],
        cache_creation_1h_tokens=r["cache_creation_1h_tokens"],
        cache_read_input_tokens=r["cache_read_input_tokens"], service_tier=r["service_tier"], speed=r["speed"],
        inference_geo=r["inference_geo"], web_search_requests=r["web_search_requests"],
    )


async def count_candidates(conn: asyncpg.Connection, since: datetime, model: str | None) -> int:
    args: list[Any] = [REQUEST_TYPE_MESSAGES, since]
    extra = ""
    if model:
        args.append(model)
        extra = " AND model = $3"
    return int(await conn.fetchval(
        f"SELECT count(*) FROM api_requests WHERE request_type = $1 AND created_at >= $2{extra}", *args))


async def reprice(conn: asyncpg.Connection, table: PriceTable, *, since: datetime, model: str | None = None,
                  dry_run: bool = False, batch_size: int = 2000,
                  progress: Callable[[int], None] | None = None) -> RepriceSummary:
    """Reprice Messages records created at or after ``since`` (of ``model`` only, when given)."""
    summary = RepriceSummary()
    cursor: tuple[datetime, Any] = (datetime(1970, 1, 1, tzinfo=UTC), uuid.UUID(int=0))
    model_sql = "AND model = $5" if model else ""
    sql = _SELECT.format(model=model_sql, limit=int(batch_size))
    while True:
        args: list[Any] = [REQUEST_TYPE_MESSAGES, since, cursor[0], cursor[1]] + ([model] if model else [])
        rows = await conn.fetch(sql, *args)
        if not rows:
            return summary
        cursor = (rows[-1]["created_at"], rows[-1]["id"])
        changes = _price_batch(table, rows, summary)
        if changes and not dry_run:
            await _write_batch(conn, changes, summary)
        if progress is not None:
            progress(len(rows))


def _price_batch(table: PriceTable, rows: list[Any], summary: RepriceSummary) -> list[tuple]:
    changes: list[tuple] = []
    for r in rows:
        summary.scanned += 1
        old = r["cost_usd"]
        price = table.price(r["model"], _usage(r), r["created_at"])
        new = _stored(price.cost) if price is not None else None
        ws = _stored(price.web_search_cost) if price is not None else None
        src = price.source if price is not None else None
        summary.old_total += old or 0
        summary.new_total += new or 0
        if new == old:
            if ws != r["web_search_cost_usd"] or src != r["price_source"]:
                summary.annotated += 1  # e.g. rows recorded before the source was stored
                changes.append((r["id"], r["created_at"], new, ws, src))
            continue
        summary.changed += 1
        if old is None and new is not None:
            summary.newly_priced += 1
        elif old is not None and new is None:
            summary.newly_unpriced += 1
        key = r["model"] or ""
        summary.changed_by_model[key] = summary.changed_by_model.get(key, 0) + 1
        changes.append((r["id"], r["created_at"], new, ws, src))
    return changes


async def _write_batch(conn: asyncpg.Connection, changes: list[tuple], summary: RepriceSummary) -> None:
    minutes = sorted({c[1].astimezone(UTC).replace(second=0, microsecond=0) for c in changes})
    cols = list(zip(*changes, strict=True))
    for attempt in range(_RETRIES):
        try:
            async with conn.transaction():
                await conn.execute(_UPDATE, *[list(c) for c in cols])
                await conn.execute(_LOCK, minutes)
                await conn.execute(_REFRESH, minutes, minutes[0], minutes[-1] + timedelta(minutes=1))
                sessions = [r["session_id"] for r in await conn.fetch(_SESSIONS_OF, list(cols[0]), list(cols[1]))]
                if sessions:
                    await conn.execute(_SESSION_LOCK, sessions)
                    await conn.execute(_SESSION_REFRESH, sessions)
                    await conn.execute(_AGENT_REFRESH, sessions)
            summary.minutes_refreshed += len(minutes)
            summary.sessions_refreshed += len(sessions)
            return
        except asyncpg.DeadlockDetectedError:  # the live writer locked the same rollup rows first
            if attempt == _RETRIES - 1:
                raise
