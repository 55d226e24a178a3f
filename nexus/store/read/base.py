"""The common part of every dashboard read: one pool, timed statements, rollup reads, shared shapes.

SQL of the dashboard API lives in ``nexus.store.read`` (one module per read model); every
statement goes through ``QueryBase._run``, which times it and logs ``Slow SQL query`` above
``SLOW_QUERY_THRESHOLD_MS`` (the Monitoring Guide's grep target), and turns "the database is away"
(``nexus.store.errors.DB_AWAY``) into ``DatabaseUnavailable``.

Speed on big tables comes from the per-minute rollups (``api_requests_minute``) that the writer
maintains: charts, windows, daily and cost views read only those (docs/architecture.md,
"Percentiles over rollups").
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import orjson

from nexus.core.latency import HIST_LEN, LATENCY_BUCKETS_MS
from nexus.core.timebuckets import ceil_hour
from nexus.store.errors import DB_AWAY, DatabaseUnavailable
from nexus.store.read.cache import RollupCache, merge_rows, plain
from nexus.store.rollup import RollupCounters

log = logging.getLogger("nexus.store")

EXACT_PERCENTILE_MAX_RANGE = timedelta(hours=1)
ERROR_SQL = "(status_code >= 400 OR error_type IS NOT NULL)"
# The same condition the writer uses for the rollup's unpriced_requests.
UNPRICED_SQL = "(cost_usd IS NULL AND request_type = 'messages' AND coalesce(model, '') <> '')"
# The cost breakdown by billing dimension (docs/api.md, "byDimension"), over rollups and raw rows.
DIM_ROLLUP_SQL = """sum(fast_requests)::bigint AS fast, sum(fast_cost_usd) AS fast_cost,
    sum(geo_us_requests)::bigint AS geo_us, sum(geo_us_cost_usd) AS geo_us_cost,
    sum(web_search_requests)::bigint AS web_search, sum(web_search_cost_usd) AS web_search_cost,
    sum(web_fetch_requests)::bigint AS web_fetch, sum(thinking_tokens)::bigint AS thinking,
    sum(unpriced_tokens)::bigint AS unpriced_tokens"""
DIM_RAW_SQL = f"""count(*) FILTER (WHERE speed = 'fast' AND cost_usd IS NOT NULL) AS fast,
    coalesce(sum(cost_usd) FILTER (WHERE speed = 'fast'), 0) AS fast_cost,
    count(*) FILTER (WHERE inference_geo = 'us' AND cost_usd IS NOT NULL) AS geo_us,
    coalesce(sum(cost_usd) FILTER (WHERE inference_geo = 'us'), 0) AS geo_us_cost,
    coalesce(sum(web_search_requests), 0)::bigint AS web_search,
    coalesce(sum(web_search_cost_usd), 0) AS web_search_cost,
    coalesce(sum(web_fetch_requests), 0)::bigint AS web_fetch,
    coalesce(sum(thinking_tokens), 0)::bigint AS thinking,
    coalesce(sum(total_tokens) FILTER (WHERE {UNPRICED_SQL}), 0)::bigint AS unpriced_tokens"""
# ``nexus.core.models.model_family`` in SQL: strip ``claude-`` and a trailing ``-YYYYMMDD``.
MODEL_FAMILY_SQL = "regexp_replace(model, '^claude-|-[0-9]{8}$', '', 'g')"
HIST_SUM_SQL = "ARRAY[" + ", ".join(f"sum(latency_hist[{i}])::bigint" for i in range(1, HIST_LEN + 1)) + "]"
BOUNDS = [float(b) for b in LATENCY_BUCKETS_MS]


@asynccontextmanager
async def timed(name: str, threshold_ms: float) -> AsyncIterator[None]:
    """Time a block; above ``threshold_ms`` log one WARNING that ops can grep for."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        ms = (time.perf_counter() - t0) * 1000.0
        if ms > threshold_ms:
            log.warning("Slow SQL query: %s took %.1f ms (threshold %s ms)", name, ms, threshold_ms,
                        extra={"query": name, "duration_ms": round(ms, 1)})


async def ping(pool: asyncpg.Pool | None, limit_s: float = 1.0) -> bool:
    """A cheap round trip, bounded in time: ``/health`` must answer even when the DB hangs."""
    if pool is None:
        return False
    try:
        async with asyncio.timeout(limit_s), pool.acquire() as conn:
            return await conn.fetchval("SELECT 1") == 1
    except Exception:  # any failure is "disconnected" for a health check
        return False


def _one_hot_hist() -> str:
    bounds = "'{" + ",".join(repr(b) for b in BOUNDS) + "}'::float8[]"
    return "ARRAY[" + ", ".join(
        f"(width_bucket(response_time_ms, {bounds}) {'>=' if i == HIST_LEN - 1 else '='} {i})::int::bigint"
        for i in range(HIST_LEN)) + "]"


# Raw rows shaped like api_requests_minute rows (one request each), plus the columns only raw rows
# have (session_id, tags). Filters the minute rollups cannot answer (a session, a tag) read this
# instead, with the very same SELECT; PostgreSQL flattens the subquery, so the session index and
# the GIN index on tags still serve the filter.
RAW_AS_ROLLUP = f"""(SELECT date_trunc('minute', created_at, 'UTC') AS bucket, domain,
    coalesce(account_id, '') AS account_id, coalesce(model, '') AS model, session_id, tags,
    1::bigint AS requests, ({ERROR_SQL})::int::bigint AS errors, input_tokens, output_tokens,
    cache_creation_input_tokens, cache_read_input_tokens, coalesce(cost_usd, 0) AS cost_usd,
    ({UNPRICED_SQL})::int::bigint AS unpriced_requests, response_time_ms AS latency_sum_ms,
    {_one_hot_hist()} AS latency_hist,
    (speed IS NOT DISTINCT FROM 'fast' AND cost_usd IS NOT NULL)::int::bigint AS fast_requests,
    CASE WHEN speed = 'fast' THEN coalesce(cost_usd, 0) ELSE 0 END AS fast_cost_usd,
    (inference_geo IS NOT DISTINCT FROM 'us' AND cost_usd IS NOT NULL)::int::bigint AS geo_us_requests,
    CASE WHEN inference_geo = 'us' THEN coalesce(cost_usd, 0) ELSE 0 END AS geo_us_cost_usd,
    web_search_requests, coalesce(web_search_cost_usd, 0) AS web_search_cost_usd, web_fetch_requests,
    thinking_tokens, CASE WHEN {UNPRICED_SQL} THEN total_tokens ELSE 0 END AS unpriced_tokens
FROM api_requests) AS api_requests_minute"""


@dataclass(frozen=True)
class Filters:
    """The filters several routes share. Empty strings mean "not given".

    ``session`` and ``tag`` (``(name, value)``) exist only on raw rows: with either set, rollup
    reads go to ``RAW_AS_ROLLUP`` (see ``source``) — exact, and fast because both are indexed.
    """

    domain: str | None = None
    account: str | None = None
    model: str | None = None
    session: str | None = None
    tag: tuple[str, str] | None = None

    @property
    def raw_only(self) -> bool:
        return bool(self.session or self.tag)

    @property
    def source(self) -> str:
        """What to read per-minute counters from: the rollup table, or raw rows shaped like it."""
        return RAW_AS_ROLLUP if self.raw_only else "api_requests_minute"

    def sql(self, args: list[Any]) -> str:
        """``AND …`` fragments with positional parameters appended to ``args``.

        Works on raw rows and rollups alike: the rollup stores '' where a raw row has NULL, and
        an empty filter is never applied, so equality means the same on both.
        """
        parts = []
        for column, value in (("domain", self.domain), ("account_id", self.account), ("session_id", self.session)):
            if value:
                args.append(value)
                parts.append(f" AND {column} = ${len(args)}")
        if self.model:  # the full name, or its family as the monitor shows it (sonnet-4-5)
            args.append(self.model)
            n = len(args)
            parts.append(f" AND (model = ${n} OR {MODEL_FAMILY_SQL} = ${n})")
        if self.tag:
            args.append(orjson.dumps({self.tag[0]: self.tag[1]}).decode())
            parts.append(f" AND tags @> ${len(args)}::text::jsonb")
        return "".join(parts)



def num(v: Decimal | float | int | None, digits: int = 10) -> float | None:
    return None if v is None else round(float(v), digits)


def ms(v: float | None) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), 3)


def tokens_obj(i: int, o: int, cc: int, cr: int) -> dict[str, int]:
    i, o, cc, cr = int(i or 0), int(o or 0), int(cc or 0), int(cr or 0)
    return {"input": i, "output": o, "cacheCreation": cc, "cacheRead": cr, "total": i + o + cc + cr}



def dimensions_json(c: RollupCounters) -> dict[str, Any]:
    """The cost of each billing dimension (docs/api.md, "byDimension"); shares are of the priced cost."""
    def share(part: Decimal) -> float:
        return round(float(part / c.cost), 6) if c.cost else 0.0

    return {
        "fast": {"requests": c.fast, "costUsd": num(c.fast_cost), "shareOfCost": share(c.fast_cost)},
        "usOnly": {"requests": c.geo_us, "costUsd": num(c.geo_us_cost), "shareOfCost": share(c.geo_us_cost)},
        "webSearch": {"searches": c.web_search, "costUsd": num(c.web_search_cost),
                      "shareOfCost": share(c.web_search_cost)},
        "webFetch": {"fetches": c.web_fetch},
        "thinkingTokens": c.thinking,
    }


class Agg(RollupCounters):
    """Counters of one group, mergeable from rollup rows and raw edge rows alike."""

    def add_row(self, r: asyncpg.Record) -> None:
        self.requests += int(r["requests"] or 0)
        self.errors += int(r["errors"] or 0)
        self.input += int(r["input_tokens"] or 0)
        self.output += int(r["output_tokens"] or 0)
        self.cache_creation += int(r["cache_creation"] or 0)
        self.cache_read += int(r["cache_read"] or 0)
        self.cost += r["cost"] or Decimal(0)
        self.unpriced += int(r["unpriced"] or 0)
        self.latency_sum += float(r["latency_sum"] or 0.0)
        if r.get("fast") is not None:  # rows that carry the breakdown by dimension
            self.add_dimensions(r)

    def add_dimensions(self, r: Any) -> None:
        self.fast += int(r["fast"] or 0)
        self.fast_cost += r["fast_cost"] or Decimal(0)
        self.geo_us += int(r["geo_us"] or 0)
        self.geo_us_cost += r["geo_us_cost"] or Decimal(0)
        self.web_search += int(r["web_search"] or 0)
        self.web_search_cost += r["web_search_cost"] or Decimal(0)
        self.web_fetch += int(r["web_fetch"] or 0)
        self.thinking += int(r["thinking"] or 0)
        self.unpriced_tokens += int(r["unpriced_tokens"] or 0)

    @property
    def tokens(self) -> dict[str, int]:
        return tokens_obj(self.input, self.output, self.cache_creation, self.cache_read)

    @property
    def avg_latency(self) -> float | None:
        return self.latency_sum / self.requests if self.requests else None

    @property
    def error_rate(self) -> float:
        return round(self.errors / self.requests, 6) if self.requests else 0.0



class QueryBase:
    """The dashboard's read side over one pool; every statement timed, DB outages → DatabaseUnavailable."""

    def __init__(self, pool: asyncpg.Pool | None, slow_query_threshold_ms: float = 5000,
                 acquire_timeout: float = 5.0, cache: RollupCache | None = None) -> None:
        self.pool = pool
        self.slow_query_threshold_ms = slow_query_threshold_ms
        self.acquire_timeout = acquire_timeout
        self.cache = cache

    _AGG_ROLLUP = """sum(requests)::bigint AS requests, sum(errors)::bigint AS errors,
        sum(input_tokens)::bigint AS input_tokens, sum(output_tokens)::bigint AS output_tokens,
        sum(cache_creation_input_tokens)::bigint AS cache_creation,
        sum(cache_read_input_tokens)::bigint AS cache_read, sum(cost_usd) AS cost,
        sum(unpriced_requests)::bigint AS unpriced, sum(latency_sum_ms) AS latency_sum"""

    async def _rollup(self, conn: asyncpg.Connection, name: str, keys: list[tuple[str, str]], values: str,
                      start: datetime, end: datetime, filters: Filters) -> list[dict[str, Any]]:
        """``SELECT keys, values FROM api_requests_minute`` over ``[start, end)``, grouped by ``keys``.

        Every rollup read goes through here. With a cache, whole hours that are over are served
        from it (one query fills the missing ones) and only the ragged ends are read each time.
        """
        key_names = [alias for _, alias in keys]
        key_sql = ", ".join(f"{expr} AS {alias}" for expr, alias in keys)
        acc: dict[tuple, dict[str, Any]] = {}

        async def fetch(ranges: list[tuple[datetime, datetime]], by_hour: bool, label: str) -> list[dict]:
            args: list[Any] = []
            conds = []
            for a, b in ranges:
                args += [a, b]
                conds.append(f"(bucket >= ${len(args) - 1} AND bucket < ${len(args)})")
            hour = "date_trunc('hour', bucket, 'UTC') AS _hour, " if by_hour else ""
            n_keys = len(keys) + (1 if by_hour else 0)
            sql = f"""SELECT {hour}{key_sql}, {values}
                      FROM {filters.source}
                      WHERE ({" OR ".join(conds)}){filters.sql(args)}
                      GROUP BY {", ".join(str(i) for i in range(1, n_keys + 1))}"""
            return [plain(r) for r in await self._run(conn, label, sql, *args)]

        hours: list[datetime] = []
        if self.cache is not None:
            settled = datetime.now(UTC) - timedelta(seconds=self.cache.settle_s)
            h = ceil_hour(start)
            while h + timedelta(hours=1) <= min(end, settled):
                hours.append(h)
                h += timedelta(hours=1)
        if not hours:
            merge_rows(acc, key_names, await fetch([(start, end)], False, name))
            return list(acc.values())
        assert self.cache is not None
        base = (id(self.pool), name, key_sql, values, filters)
        cached = {h: self.cache.get(base + (h,)) for h in hours}
        missing = [h for h, rows in cached.items() if rows is None]
        if missing:
            lo, hi = missing[0], missing[-1] + timedelta(hours=1)
            per_hour: dict[datetime, list[dict[str, Any]]] = {h: [] for h in hours if lo <= h < hi}
            for row in await fetch([(lo, hi)], True, name + ".hours"):
                per_hour.setdefault(row.pop("_hour"), []).append(row)
            for h, rows in per_hour.items():
                self.cache.put(base + (h,), rows)
                cached[h] = rows
        for rows in cached.values():
            merge_rows(acc, key_names, rows or [])
        edges = [(a, b) for a, b in ((start, hours[0]), (hours[-1] + timedelta(hours=1), end)) if a < b]
        if edges:
            merge_rows(acc, key_names, await fetch(edges, False, name + ".edges"))
        return list(acc.values())

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[asyncpg.Connection]:
        if self.pool is None:
            raise DatabaseUnavailable("database is not connected")
        try:
            async with self.pool.acquire(timeout=self.acquire_timeout) as conn:
                yield conn
        except DatabaseUnavailable:
            raise
        except DB_AWAY as exc:
            raise DatabaseUnavailable(f"database is not available: {type(exc).__name__}") from exc

    async def _run(self, conn: asyncpg.Connection, name: str, sql: str, *args: Any) -> list[asyncpg.Record]:
        """The one way a dashboard query runs: timed, slow ones logged by name."""
        try:
            async with timed(name, self.slow_query_threshold_ms):
                return await conn.fetch(sql, *args)
        except DB_AWAY as exc:
            raise DatabaseUnavailable(f"database is not available: {type(exc).__name__}") from exc
