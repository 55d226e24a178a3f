"""Every query the dashboard API runs, and the JSON shapes it answers with (see ``docs/api.md``).

SQL lives here and nowhere else. Each statement goes through ``DashboardQueries._run``, which
times it and logs ``Slow SQL query`` above ``SLOW_QUERY_THRESHOLD_MS`` (the guide's grep target).

Speed on big tables comes from the per-minute rollups (``api_requests_minute``) that the writer
maintains: charts, windows, daily and cost views read only those. ``stats`` stays exact for any
range by reading whole minutes from the rollups and only the ragged edges (< 1 minute at each
end) from the raw rows; its percentiles are exact ``percentile_cont`` up to one hour and
histogram-interpolated beyond (exact percentiles over millions of rows are too slow for a live
chart).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import math
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import orjson

from nexus.db.rollup import RollupCounters
from nexus.latency import HIST_LEN, LATENCY_BUCKETS_MS, percentile_from_hist
from nexus.redact import redact_headers
from nexus.windows import current_window, window_projection

log = logging.getLogger("nexus.db")

EXACT_PERCENTILE_MAX_RANGE = timedelta(hours=1)
ERROR_SQL = "(status_code >= 400 OR error_type IS NOT NULL)"
# The same condition the writer uses for the rollup's unpriced_requests.
UNPRICED_SQL = "(cost_usd IS NULL AND request_type = 'messages' AND coalesce(model, '') <> '')"
_HIST_SUM_SQL = "ARRAY[" + ", ".join(f"sum(latency_hist[{i}])::bigint" for i in range(1, HIST_LEN + 1)) + "]"
_BOUNDS = [float(b) for b in LATENCY_BUCKETS_MS]


class DatabaseUnavailable(Exception):
    """The database cannot answer now (down, restarting, dropped, pool closed): the API says 503."""


# Errors that mean "the database is away", as opposed to a bug in a query.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InvalidCatalogNameError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
)


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


# --------------------------------------------------------------------------------------------
# Small shared shapes


@dataclass(frozen=True)
class Filters:
    """The filters several routes share. Empty strings mean "not given"."""

    domain: str | None = None
    account: str | None = None
    model: str | None = None

    def sql(self, args: list[Any]) -> str:
        """``AND …`` fragments with positional parameters appended to ``args``.

        Works on raw rows and rollups alike: the rollup stores '' where a raw row has NULL, and
        an empty filter is never applied, so equality means the same on both.
        """
        parts = []
        for column, value in (("domain", self.domain), ("account_id", self.account), ("model", self.model)):
            if value:
                args.append(value)
                parts.append(f" AND {column} = ${len(args)}")
        return "".join(parts)


def iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).isoformat()


def _f(v: Decimal | float | int | None, digits: int = 10) -> float | None:
    return None if v is None else round(float(v), digits)


def _ms(v: float | None) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), 3)


def tokens_obj(i: int, o: int, cc: int, cr: int) -> dict[str, int]:
    i, o, cc, cr = int(i or 0), int(o or 0), int(cc or 0), int(cr or 0)
    return {"input": i, "output": o, "cacheCreation": cc, "cacheRead": cr, "total": i + o + cc + cr}


def floor_minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def ceil_minute(t: datetime) -> datetime:
    f = floor_minute(t)
    return f if f == t else f + timedelta(minutes=1)


def floor_to(t: datetime, seconds: int) -> datetime:
    epoch = int(t.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


class _Agg(RollupCounters):
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

    @property
    def tokens(self) -> dict[str, int]:
        return tokens_obj(self.input, self.output, self.cache_creation, self.cache_read)

    @property
    def avg_latency(self) -> float | None:
        return self.latency_sum / self.requests if self.requests else None

    @property
    def error_rate(self) -> float:
        return round(self.errors / self.requests, 6) if self.requests else 0.0


# --------------------------------------------------------------------------------------------
# Request rows


_REQUEST_COLS = """id, created_at, request_id, domain, account_id, method, path, model, stream, status_code,
    error_type, error_message, input_tokens, output_tokens, cache_creation_input_tokens,
    cache_read_input_tokens, counted_tokens, response_time_ms, ttft_ms, cost_usd, request_type, instance_id"""


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
        "latencyMs": _ms(r["response_time_ms"]),
        "ttftMs": _ms(r["ttft_ms"]),
        "tokens": tokens_obj(r["input_tokens"], r["output_tokens"], r["cache_creation_input_tokens"],
                             r["cache_read_input_tokens"]),
        "costUsd": _f(r["cost_usd"]),
        "requestType": r["request_type"],
        "countedTokens": r["counted_tokens"],
        "instanceId": r["instance_id"],
    }


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
        return when, uuid.UUID(rid)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValueError("not a cursor returned by this API") from exc


# --------------------------------------------------------------------------------------------
# Window math lives in nexus.windows (shared with the alert rules, so the monitor and the alerts
# agree on where a window starts and how fast it burns).


def _projection(total: int, start: datetime, end: datetime, now: datetime,
                limit: int | None) -> dict[str, Any]:
    out = window_projection(total, start, end, now, limit)
    out["tokenLimit"] = limit
    return out


# --------------------------------------------------------------------------------------------
# Closed-hour cache of rollup aggregates


def floor_hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def ceil_hour(t: datetime) -> datetime:
    f = floor_hour(t)
    return f if f == t else f + timedelta(hours=1)


@dataclass
class RollupCache:
    """Aggregates of whole past hours of rollups, kept a short while in the dashboard process.

    A monitor asks for "the last 24 h" every few seconds; 23 of those hours do not change between
    polls, so each is aggregated once per ``ttl_s`` and only the open hour at each end is read
    fresh. Only hours that ended at least ``settle_s`` ago are cached (the writer flushes within
    a fraction of a second). A record that arrives much later (replayed from the journal after a
    database outage) is visible once the entry expires, within ``ttl_s``.
    """

    ttl_s: float = 60.0
    settle_s: float = 120.0
    max_rows: int = 100_000  # memory bound: cached rows in all entries (least recently used go first)
    clock: Callable[[], float] = time.monotonic
    hits: int = 0
    misses: int = 0
    rows: int = 0
    _data: OrderedDict[tuple, tuple[float, list[dict[str, Any]]]] = field(default_factory=OrderedDict)

    def get(self, key: tuple) -> list[dict[str, Any]] | None:
        item = self._data.get(key)
        if item is None or self.clock() - item[0] > self.ttl_s:
            if item is not None:
                self._drop(key)
            self.misses += 1
            return None
        self._data.move_to_end(key)
        self.hits += 1
        return item[1]

    def put(self, key: tuple, rows: list[dict[str, Any]]) -> None:
        if key in self._data:
            self._drop(key)
        self._data[key] = (self.clock(), rows)
        self.rows += len(rows) + 1
        while self.rows > self.max_rows and len(self._data) > 1:
            self._drop(next(iter(self._data)))

    def _drop(self, key: tuple) -> None:
        _, rows = self._data.pop(key)
        self.rows -= len(rows) + 1

    def clear(self) -> None:
        self._data.clear()
        self.rows = 0


def _add(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, list):
        return [x + (y or 0) for x, y in zip(a, b, strict=True)]
    return a + b


def _merge(acc: dict[tuple, dict[str, Any]], key_names: list[str], rows: list[dict[str, Any]]) -> None:
    """Sum ``rows`` into ``acc`` by their key columns (every other column is a sum or a histogram).

    Rows may be shared with the cache, so they are never modified: a collision builds a new dict.
    """
    for row in rows:
        key = tuple(row[k] for k in key_names)
        cur = acc.get(key)
        if cur is None:
            acc[key] = row
        else:
            acc[key] = {col: (v if col in key_names else _add(cur[col], v)) for col, v in row.items()}


def _plain(r: asyncpg.Record) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, list | tuple) else v) for k, v in r.items()}


# --------------------------------------------------------------------------------------------
# The queries


class DashboardQueries:
    """The dashboard's read side over one pool; every statement timed, DB outages → DatabaseUnavailable."""

    def __init__(self, pool: asyncpg.Pool | None, slow_query_threshold_ms: float = 5000,
                 acquire_timeout: float = 5.0, cache: RollupCache | None = None) -> None:
        self.pool = pool
        self.slow_query_threshold_ms = slow_query_threshold_ms
        self.acquire_timeout = acquire_timeout
        self.cache = cache

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
                      FROM api_requests_minute
                      WHERE ({" OR ".join(conds)}){filters.sql(args)}
                      GROUP BY {", ".join(str(i) for i in range(1, n_keys + 1))}"""
            return [_plain(r) for r in await self._run(conn, label, sql, *args)]

        hours: list[datetime] = []
        if self.cache is not None:
            settled = datetime.now(UTC) - timedelta(seconds=self.cache.settle_s)
            h = ceil_hour(start)
            while h + timedelta(hours=1) <= min(end, settled):
                hours.append(h)
                h += timedelta(hours=1)
        if not hours:
            _merge(acc, key_names, await fetch([(start, end)], False, name))
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
            _merge(acc, key_names, rows or [])
        edges = [(a, b) for a, b in ((start, hours[0]), (hours[-1] + timedelta(hours=1), end)) if a < b]
        if edges:
            _merge(acc, key_names, await fetch(edges, False, name + ".edges"))
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
        except _UNAVAILABLE as exc:
            raise DatabaseUnavailable(f"database is not available: {type(exc).__name__}") from exc

    async def _run(self, conn: asyncpg.Connection, name: str, sql: str, *args: Any) -> list[asyncpg.Record]:
        """The one way a dashboard query runs: timed, slow ones logged by name."""
        try:
            async with timed(name, self.slow_query_threshold_ms):
                return await conn.fetch(sql, *args)
        except _UNAVAILABLE as exc:
            raise DatabaseUnavailable(f"database is not available: {type(exc).__name__}") from exc

    # ---- stats -------------------------------------------------------------------------------

    async def stats(self, since: datetime, until: datetime, filters: Filters, now: datetime) -> dict[str, Any]:
        exact = until - since <= EXACT_PERCENTILE_MAX_RANGE
        async with self._conn() as conn:
            if exact:
                body = await self._stats_exact(conn, since, until, filters)
            else:
                body = await self._stats_hist(conn, since, until, filters)
            args: list[Any] = [now - timedelta(seconds=60), now]
            sql = ("SELECT count(*) AS n FROM api_requests WHERE created_at > $1 AND created_at <= $2"
                   + filters.sql(args))
            rpm = (await self._run(conn, "stats.requests_per_minute", sql, *args))[0]["n"]
        return {"since": iso(since), "until": iso(until), **body, "requestsPerMinute": int(rpm)}

    _AGG_RAW = f"""count(*) AS requests,
        count(*) FILTER (WHERE {ERROR_SQL}) AS errors,
        coalesce(sum(input_tokens), 0) AS input_tokens,
        coalesce(sum(output_tokens), 0) AS output_tokens,
        coalesce(sum(cache_creation_input_tokens), 0) AS cache_creation,
        coalesce(sum(cache_read_input_tokens), 0) AS cache_read,
        coalesce(sum(cost_usd), 0) AS cost,
        count(*) FILTER (WHERE {UNPRICED_SQL}) AS unpriced,
        coalesce(sum(response_time_ms), 0) AS latency_sum"""

    # Counts as bigint (sum() of bigint is numeric, which is slower to ship and to add up in Python).
    _AGG_ROLLUP = """sum(requests)::bigint AS requests, sum(errors)::bigint AS errors,
        sum(input_tokens)::bigint AS input_tokens, sum(output_tokens)::bigint AS output_tokens,
        sum(cache_creation_input_tokens)::bigint AS cache_creation,
        sum(cache_read_input_tokens)::bigint AS cache_read, sum(cost_usd) AS cost,
        sum(unpriced_requests)::bigint AS unpriced, sum(latency_sum_ms) AS latency_sum"""

    @staticmethod
    def _group_json(agg: _Agg, key: str, value: str, p95: float | None) -> dict[str, Any]:
        return {
            key: value,
            "requests": agg.requests,
            "errors": agg.errors,
            "errorRate": agg.error_rate,
            "tokens": agg.tokens,
            "costUsd": _f(agg.cost),
            "unpricedRequests": agg.unpriced,
            "avgLatencyMs": _ms(agg.avg_latency),
            "p95LatencyMs": _ms(p95),
        }

    @staticmethod
    def _totals_json(agg: _Agg, p50: float | None, p95: float | None, p99: float | None,
                     method: str) -> dict[str, Any]:
        return {
            "totalRequests": agg.requests,
            "errorCount": agg.errors,
            "errorRate": agg.error_rate,
            "tokens": agg.tokens,
            "latencyMs": {"avg": _ms(agg.avg_latency), "p50": _ms(p50), "p95": _ms(p95), "p99": _ms(p99),
                          "method": method},
            "costUsd": _f(agg.cost),
            "unpricedRequests": agg.unpriced,
        }

    async def _stats_exact(self, conn: asyncpg.Connection, since: datetime, until: datetime,
                           filters: Filters) -> dict[str, Any]:
        """Counts as for any range, plus exact total percentiles from one sort of the raw rows.

        One ``percentile_cont`` over the whole range (not per model/domain: grouping sets would
        sort the rows once per set, ten times slower on a busy hour); the per-group p95 stays
        histogram-interpolated.
        """
        body = await self._stats_hist(conn, since, until, filters)
        args: list[Any] = [since, until]
        sql = f"""SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]::float8[])
                         WITHIN GROUP (ORDER BY response_time_ms) AS pct
                  FROM api_requests WHERE created_at >= $1 AND created_at < $2{filters.sql(args)}"""
        pct = (await self._run(conn, "stats.percentiles", sql, *args))[0]["pct"]
        p50, p95, p99 = pct or (None, None, None)
        body["latencyMs"].update({"p50": _ms(p50), "p95": _ms(p95), "p99": _ms(p99), "method": "exact"})
        return body

    async def _stats_hist(self, conn: asyncpg.Connection, since: datetime, until: datetime,
                          filters: Filters) -> dict[str, Any]:
        groups = await self.range_groups(conn, since, until, filters)
        total = _Agg()
        models: dict[str, _Agg] = {}
        domains: dict[str, _Agg] = {}
        for (domain, model), agg in groups.items():
            total.merge(agg)
            models.setdefault(model, _Agg()).merge(agg)
            domains.setdefault(domain, _Agg()).merge(agg)
        body = self._totals_json(total, percentile_from_hist(total.hist, 0.5),
                                 percentile_from_hist(total.hist, 0.95),
                                 percentile_from_hist(total.hist, 0.99), "histogram")
        body["byModel"] = sorted(
            (self._group_json(a, "model", m, percentile_from_hist(a.hist, 0.95)) for m, a in models.items()),
            key=lambda g: (-g["requests"], g["model"]))
        body["byDomain"] = sorted(
            (self._group_json(a, "domain", d, percentile_from_hist(a.hist, 0.95)) for d, a in domains.items()),
            key=lambda g: (-g["requests"], g["domain"]))
        return body

    async def range_groups(self, conn: asyncpg.Connection, since: datetime, until: datetime,
                           filters: Filters) -> dict[tuple[str, str], _Agg]:
        """Exact per-(domain, model) counters and latency histograms for ``[since, until)``.

        Whole minutes come from the rollups, the partial minutes at either end from raw rows,
        so the answer is exact while the raw table is touched for at most two minutes.
        """
        m0, m1 = ceil_minute(since), floor_minute(until)
        groups: dict[tuple[str, str], _Agg] = {}
        args: list[Any]
        if m0 < m1:
            rows = await self._rollup(conn, "stats.rollup", [("domain", "domain"), ("model", "model")],
                                      f"{self._AGG_ROLLUP}, {_HIST_SUM_SQL} AS hist", m0, m1, filters)
            for r in rows:
                agg = groups.setdefault((r["domain"], r["model"]), _Agg())
                agg.add_row(r)
                agg.hist = [a + int(b or 0) for a, b in zip(agg.hist, r["hist"], strict=True)]
            edges = "(created_at >= $1 AND created_at < $2) OR (created_at >= $3 AND created_at < $4)"
            args = [since, m0, m1, until]
        else:
            edges = "created_at >= $1 AND created_at < $2"
            args = [since, until]
        args.append(_BOUNDS)
        bounds_idx = len(args)
        sql = f"""
            SELECT domain, coalesce(model, '') AS model,
                   width_bucket(response_time_ms, ${bounds_idx}::float8[]) AS b, {self._AGG_RAW}
            FROM api_requests
            WHERE ({edges}){filters.sql(args)}
            GROUP BY 1, 2, 3"""
        for r in await self._run(conn, "stats.raw_edges", sql, *args):
            agg = groups.setdefault((r["domain"], r["model"]), _Agg())
            agg.add_row(r)
            agg.hist[min(int(r["b"]), HIST_LEN - 1)] += int(r["requests"])
        return groups

    # ---- token windows -----------------------------------------------------------------------

    async def token_usage_current(self, window_min: int, now: datetime, filters: Filters,
                                  limit_for: Callable[[str], int | None]) -> list[dict[str, Any]]:
        """Current usage window of each account (or of ``filters.account``), Anthropic-style.

        A window starts at the minute of an account's first request and lasts ``window_min``;
        the first request after it ends opens the next one. Only rollup minutes are read.
        """
        window = timedelta(minutes=window_min)
        lookback = min(window * 4, timedelta(days=7))
        values = """sum(requests)::bigint AS requests, sum(input_tokens)::bigint AS input_tokens,
                   sum(output_tokens)::bigint AS output_tokens,
                   sum(cache_creation_input_tokens)::bigint AS cache_creation,
                   sum(cache_read_input_tokens)::bigint AS cache_read, sum(cost_usd) AS cost"""
        async with self._conn() as conn:
            rows = await self._rollup(conn, "token_usage.current",
                                      [("account_id", "account_id"), ("bucket", "bucket")], values,
                                      floor_minute(now - lookback), floor_minute(now) + timedelta(minutes=1),
                                      filters)
        rows.sort(key=lambda r: (r["account_id"], r["bucket"]))
        per_account: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            per_account.setdefault(r["account_id"], []).append(r)
        out: list[dict[str, Any]] = []
        for account, minutes in per_account.items():
            points = [(r["bucket"], int(r["input_tokens"] + r["output_tokens"] + r["cache_creation"]
                                        + r["cache_read"])) for r in minutes]
            win = current_window(points, now, window, floor_to_hour=False)
            if win is None:
                continue  # its last window is over: no active window
            agg = _Agg()
            for r in minutes:
                if r["bucket"] >= win.start:
                    agg.requests += int(r["requests"])
                    agg.input += int(r["input_tokens"])
                    agg.output += int(r["output_tokens"])
                    agg.cache_creation += int(r["cache_creation"])
                    agg.cache_read += int(r["cache_read"])
                    agg.cost += r["cost"] or Decimal(0)
            out.append(self._window_json(account, True, window_min, win.start, win.end, now, agg,
                                         limit_for(account)))
        if filters.account and not out:
            out.append(self._window_json(filters.account, False, window_min, now - window, now, now, _Agg(),
                                         limit_for(filters.account)))
        out.sort(key=lambda w: (-w["totalTokens"], w["accountId"]))
        return out

    @staticmethod
    def _window_json(account: str, active: bool, window_min: int, start: datetime, end: datetime,
                     now: datetime, agg: _Agg, limit: int | None) -> dict[str, Any]:
        t = agg.tokens
        body: dict[str, Any] = {
            "accountId": account,
            "active": active,
            "windowMinutes": window_min,
            "windowStart": iso(start),
            "windowEnd": iso(end),
            "now": iso(now),
            "totalInputTokens": t["input"],
            "totalOutputTokens": t["output"],
            "cacheCreationInputTokens": t["cacheCreation"],
            "cacheReadInputTokens": t["cacheRead"],
            "totalTokens": t["total"],
            "totalRequests": agg.requests,
            "costUsd": _f(agg.cost),
        }
        body.update(_projection(t["total"], start, end, now, limit))
        if not active:
            body["burnRatePerMinute"] = 0.0
            body["projectedTotal"] = 0
            body["projectedPercentOfLimit"] = body["percentOfLimit"]
            body["projectedExhaustion"] = None
        return body

    async def token_usage_daily(self, days: int, today: date, filters: Filters,
                                aggregate: bool) -> list[dict[str, Any]]:
        start = datetime.combine(today - timedelta(days=days - 1), datetime.min.time(), UTC)
        end = datetime.combine(today + timedelta(days=1), datetime.min.time(), UTC)
        keys = [("(bucket AT TIME ZONE 'UTC')::date", "day"), ("account_id", "account_id"),
                ("domain", "domain")] + ([] if aggregate else [("model", "model")])
        async with self._conn() as conn:
            rows = await self._rollup(conn, "token_usage.daily" + (".aggregate" if aggregate else ""), keys,
                                      self._AGG_ROLLUP, start, end, filters)
        rows.sort(key=lambda r: (-r["day"].toordinal(), r["account_id"], r["domain"], r.get("model", "")))
        out = []
        for r in rows:
            t = tokens_obj(r["input_tokens"], r["output_tokens"], r["cache_creation"], r["cache_read"])
            item: dict[str, Any] = {"date": r["day"].isoformat(), "accountId": r["account_id"],
                                    "domain": r["domain"]}
            if not aggregate:
                item["model"] = r["model"]
            item.update({
                "totalInputTokens": t["input"], "totalOutputTokens": t["output"],
                "cacheCreationInputTokens": t["cacheCreation"], "cacheReadInputTokens": t["cacheRead"],
                "totalTokens": t["total"], "totalRequests": int(r["requests"]), "errors": int(r["errors"]),
                "costUsd": _f(r["cost"]), "unpricedRequests": int(r["unpriced"]),
            })
            out.append(item)
        return out

    # ---- timeseries --------------------------------------------------------------------------

    async def timeseries(self, since: datetime, until: datetime, bucket_s: int,
                         filters: Filters) -> dict[str, Any]:
        start = floor_to(since, bucket_s)
        step_s = int(bucket_s)  # validated int, inlined so the cache key carries it
        t_sql = f"to_timestamp(floor(extract(epoch FROM bucket) / {step_s}) * {step_s})"
        async with self._conn() as conn:
            rows = await self._rollup(conn, "timeseries", [(t_sql, "t")],
                                      f"{self._AGG_ROLLUP}, {_HIST_SUM_SQL} AS hist", start, until, filters)
        by_t: dict[datetime, _Agg] = {}
        for r in rows:
            agg = _Agg()
            agg.add_row(r)
            agg.hist = [int(x or 0) for x in r["hist"]]
            by_t[r["t"]] = agg
        points = []
        t = start
        step = timedelta(seconds=bucket_s)
        while t < until:
            agg = by_t.get(t, _Agg())
            points.append({
                "time": iso(t),
                "requests": agg.requests,
                "errors": agg.errors,
                "errorRate": agg.error_rate,
                "avgLatencyMs": _ms(agg.avg_latency),
                "p50LatencyMs": _ms(percentile_from_hist(agg.hist, 0.5)),
                "p95LatencyMs": _ms(percentile_from_hist(agg.hist, 0.95)),
                "tokens": agg.tokens,
                "costUsd": _f(agg.cost),
                "unpricedRequests": agg.unpriced,
            })
            t += step
        return {"since": iso(since), "until": iso(until), "bucketSeconds": bucket_s, "points": points}

    # ---- requests ----------------------------------------------------------------------------

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
            if filters.model or isinstance(status, int):
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

    # ---- errors ------------------------------------------------------------------------------

    async def errors(self, since: datetime, until: datetime, filters: Filters, limit: int) -> dict[str, Any]:
        args: list[Any] = [since, until]
        sql = f"""
            SELECT status_code, error_type, COUNT(*) AS count,
                   ARRAY_AGG(DISTINCT domain) AS affected_domains,
                   min(created_at) AS first_seen, max(created_at) AS last_seen
            FROM api_requests
            WHERE {ERROR_SQL} AND created_at >= $1 AND created_at < $2{filters.sql(args)}
            GROUP BY status_code, error_type
            ORDER BY count DESC, status_code, error_type"""
        async with self._conn() as conn:
            rows = await self._run(conn, "errors.groups", sql, *args)
        groups = [{
            "statusCode": r["status_code"],
            "errorType": r["error_type"],
            "count": int(r["count"]),
            "affectedDomains": list(r["affected_domains"]),
            "firstSeen": iso(r["first_seen"]),
            "lastSeen": iso(r["last_seen"]),
        } for r in rows]
        recent = await self.requests(limit, filters, status="error", since=since, until=until,
                                     name="errors.recent")
        return {"since": iso(since), "until": iso(until), "totalErrors": sum(g["count"] for g in groups),
                "groups": groups, "recent": recent["requests"]}

    # ---- costs -------------------------------------------------------------------------------

    async def costs(self, days: int, now: datetime, filters: Filters) -> dict[str, Any]:
        today = now.astimezone(UTC).date()
        range_start = today - timedelta(days=days - 1)
        month_start = today.replace(day=1)
        first = min(range_start, month_start)
        async with self._conn() as conn:
            rows = await self._rollup(
                conn, "costs.daily", [("(bucket AT TIME ZONE 'UTC')::date", "day"), ("model", "model")],
                "sum(cost_usd) AS cost, sum(requests) AS requests, sum(unpriced_requests) AS unpriced",
                datetime.combine(first, datetime.min.time(), UTC),
                datetime.combine(today + timedelta(days=1), datetime.min.time(), UTC), filters)
        daily: dict[date, list[dict[str, Any]]] = {}
        mtd = Decimal(0)
        for r in rows:
            if r["day"] >= month_start:
                mtd += r["cost"] or Decimal(0)
            if r["day"] >= range_start:
                daily.setdefault(r["day"], []).append(r)
        by_model: dict[str, list[Any]] = {}
        days_out = []
        cumulative = Decimal(0)
        for i in range(days):
            d = range_start + timedelta(days=i)
            day_rows = sorted(daily.get(d, []), key=lambda r: (-(r["cost"] or 0), r["model"]))
            day_cost = sum((r["cost"] or Decimal(0) for r in day_rows), Decimal(0))
            cumulative += day_cost
            for r in day_rows:
                m = by_model.setdefault(r["model"], [Decimal(0), 0, 0])
                m[0] += r["cost"] or Decimal(0)
                m[1] += int(r["requests"])
                m[2] += int(r["unpriced"])
            days_out.append({
                "date": d.isoformat(),
                "costUsd": _f(day_cost),
                "cumulativeUsd": _f(cumulative),
                "requests": sum(int(r["requests"]) for r in day_rows),
                "byModel": [{"model": r["model"], "costUsd": _f(r["cost"]), "requests": int(r["requests"])}
                            for r in day_rows],
            })
        month_start_dt = datetime.combine(month_start, datetime.min.time(), UTC)
        next_month = (month_start.replace(day=28) + timedelta(days=4)).replace(day=1)
        month_days = (next_month - month_start).days
        elapsed_days = (now - month_start_dt).total_seconds() / 86400.0
        projection = mtd if elapsed_days < 1 / 24 else mtd / Decimal(repr(elapsed_days)) * month_days
        models_sorted = sorted(by_model.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))
        return {
            "days": days,
            "currency": "USD",
            "totalCostUsd": _f(cumulative),
            "todayUsd": days_out[-1]["costUsd"] if days_out else 0.0,
            "monthToDateUsd": _f(mtd),
            "monthElapsedDays": round(elapsed_days, 6),
            "monthDays": month_days,
            "monthEndProjectionUsd": _f(projection, 6),
            "unpricedRequests": sum(v[2] for v in by_model.values()),
            "daily": days_out,
            "byModel": [{"model": m, "costUsd": _f(v[0]), "requests": v[1], "unpricedRequests": v[2]}
                        for m, v in models_sorted],
            "unpriced": [{"model": m, "requests": v[2]}
                         for m, v in sorted(by_model.items(), key=lambda kv: (-kv[1][2], kv[0])) if v[2]],
        }


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

