"""``nexus report``: a period (week or month) against the one before, from the rollups.

Everything that can come from the per-minute rollups (``api_requests_minute``) does: traffic,
tokens, cost by model and account, latency percentiles (merged histograms), busiest hours, peak
requests per minute, unpriced models. That is a few hundred thousand rollup rows for a month of
10 M requests, whatever the traffic. Three things are not in the rollups and are read from raw
rows through partial indexes: error types (the errors-only index), cost by session and by tag
(when the schema has ``session_id`` / ``tags``; those scan the period's rows), and limit pressure
(the ``ratelimit_samples`` history, when the schema has it). The numbers are plain aggregates, so
a test on a seeded database can check each one by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from nexus.core.latency import HIST_LEN, empty_hist, percentile_from_hist
from nexus.store.partitions import partition_name

PERIOD_DAYS = {"week": 7, "month": 30}
TOP = 10
PRESSURE = 0.8


@dataclass(frozen=True)
class Span:
    start: datetime
    end: datetime  # exclusive

    def json(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


def spans(period: str, until: datetime) -> tuple[Span, Span]:
    """(current, previous) periods ending at ``until`` (floored to the minute, as the rollups are)."""
    end = until.astimezone(UTC).replace(second=0, microsecond=0)
    length = timedelta(days=PERIOD_DAYS[period])
    return Span(end - length, end), Span(end - 2 * length, end - length)


def change_pct(cur: float, prev: float) -> float | None:
    """The change in percent; ``None`` when there was nothing before (no honest percentage)."""
    if not prev:
        return None
    return round((cur - prev) / prev * 100.0, 1)


def usd(v: Decimal | float | int | None) -> float:
    return float(round(Decimal(v or 0), 6))


async def _has_column(conn: asyncpg.Connection, table: str, column: str) -> bool:
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'public' "
        "AND table_name = $1 AND column_name = $2)", table, column))


async def _has_table(conn: asyncpg.Connection, table: str) -> bool:
    return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"public.{table}"))


@dataclass
class Hourly:
    """A span's rollups summed per (hour, model, account): a few thousand rows for a month, so
    traffic, cost by model and account, busiest hours, hour of day, days and unpriced models all
    come from one scan of the rollups, added up here (Decimal: exact)."""

    rows: list[asyncpg.Record]

    def total(self, field: str) -> Any:
        return sum((r[field] for r in self.rows), Decimal(0) if field in ("cost", "unpriced_tokens") else 0)

    def by(self, key: Any, field: str) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for r in self.rows:
            k = key(r)
            out[k] = out.get(k, 0) + r[field]
        return out


async def _hourly(conn: asyncpg.Connection, s: Span) -> Hourly:
    return Hourly(await conn.fetch(
        """SELECT date_trunc('hour', bucket) AS h, model, account_id,
                  sum(requests)::bigint AS requests, sum(errors)::bigint AS errors,
                  sum(input_tokens)::bigint AS input, sum(output_tokens)::bigint AS output,
                  sum(cache_creation_input_tokens)::bigint AS cache_creation,
                  sum(cache_read_input_tokens)::bigint AS cache_read, sum(cost_usd) AS cost,
                  sum(unpriced_requests)::bigint AS unpriced, sum(unpriced_tokens)::bigint AS unpriced_tokens
           FROM api_requests_minute WHERE bucket >= $1 AND bucket < $2 GROUP BY 1, 2, 3""", s.start, s.end))


def _traffic_of(hs: Hourly) -> dict[str, Any]:
    req, err = int(hs.total("requests")), int(hs.total("errors"))
    tok = {"input": int(hs.total("input")), "output": int(hs.total("output")),
           "cacheCreation": int(hs.total("cache_creation")), "cacheRead": int(hs.total("cache_read"))}
    tok["total"] = sum(tok.values())
    return {"requests": req, "errors": err, "errorRate": round(err / req, 6) if req else 0.0, "tokens": tok,
            "costUsd": usd(hs.total("cost")), "unpricedRequests": int(hs.total("unpriced"))}


def _compare(cur: dict[str, Decimal], prev: dict[str, Decimal], top: int = TOP) -> list[dict[str, Any]]:
    keys = sorted(set(cur) | set(prev), key=lambda k: (-(cur.get(k) or 0), -(prev.get(k) or 0), k))[:top]
    return [{"key": k, "currentUsd": usd(cur.get(k)), "previousUsd": usd(prev.get(k)),
             "changePct": change_pct(float(cur.get(k) or 0), float(prev.get(k) or 0))} for k in keys]


async def _errors(conn: asyncpg.Connection, s: Span) -> tuple[dict[str, int], int]:
    rows = await conn.fetch(
        """SELECT coalesce(error_type, 'http_' || status_code) AS t, count(*) AS n,
                  count(*) FILTER (WHERE status_code = 429) AS rejected
           FROM api_requests WHERE created_at >= $1 AND created_at < $2
             AND (status_code >= 400 OR error_type IS NOT NULL)
           GROUP BY 1""", s.start, s.end)
    return {r["t"]: int(r["n"]) for r in rows}, sum(int(r["rejected"]) for r in rows)


async def _latency(conn: asyncpg.Connection, s: Span) -> dict[str, dict[str, Any]]:
    # One plain sum per histogram bucket: nexus_hist_sum (a SQL function per row) costs ~10 us a row,
    # seconds over a month of rollups; array subscripts inside sum() are the planner's own speed.
    buckets = ", ".join(f"coalesce(sum(latency_hist[{i + 1}]), 0)::bigint" for i in range(HIST_LEN))
    rows = await conn.fetch(
        f"""SELECT model, sum(requests)::bigint AS n, sum(latency_sum_ms) AS total, ARRAY[{buckets}] AS h
            FROM api_requests_minute WHERE bucket >= $1 AND bucket < $2 GROUP BY model""", s.start, s.end)
    out = {}
    for r in rows:
        hist = list(r["h"]) if r["h"] is not None else empty_hist()
        p50, p95 = percentile_from_hist(hist, 0.5), percentile_from_hist(hist, 0.95)
        out[r["model"]] = {"requests": int(r["n"]), "avgMs": round(r["total"] / r["n"], 1) if r["n"] else None,
                           "p50Ms": None if p50 is None else round(p50, 1),
                           "p95Ms": None if p95 is None else round(p95, 1)}
    return out


async def _raw_cost(conn: asyncpg.Connection, expr: str, s: Span, where: str) -> dict[str, Decimal]:
    rows = await conn.fetch(
        f"""SELECT {expr} AS k, sum(cost_usd) AS cost FROM api_requests
            WHERE created_at >= $1 AND created_at < $2 AND {where} GROUP BY 1""", s.start, s.end)
    return {r["k"]: r["cost"] or Decimal(0) for r in rows}


async def _tags_cost(conn: asyncpg.Connection, s: Span) -> dict[str, Decimal]:
    rows = await conn.fetch(
        """SELECT t.key || ':' || t.value AS k, sum(r.cost_usd) AS cost
           FROM api_requests r, jsonb_each_text(r.tags) AS t
           WHERE r.created_at >= $1 AND r.created_at < $2 AND r.tags IS NOT NULL AND jsonb_typeof(r.tags) = 'object'
           GROUP BY 1""", s.start, s.end)
    return {r["k"]: r["cost"] or Decimal(0) for r in rows}


async def _pressure(conn: asyncpg.Connection, s: Span) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT account_id, window_name, count(DISTINCT date_trunc('hour', bucket)) AS hours,
                  max(utilization) AS peak
           FROM ratelimit_samples WHERE bucket >= $1 AND bucket < $2 AND utilization >= $3
           GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2""", s.start, s.end, PRESSURE)
    return [{"accountId": r["account_id"], "window": r["window_name"], "hoursAbove80": int(r["hours"]),
             "peakUtilization": float(r["peak"])} for r in rows]


async def _peak(conn: asyncpg.Connection, s: Span) -> dict[str, Any]:
    r = await conn.fetchrow(
        """SELECT bucket, sum(requests)::bigint AS n FROM api_requests_minute WHERE bucket >= $1 AND bucket < $2
           GROUP BY bucket ORDER BY n DESC, bucket LIMIT 1""", s.start, s.end)
    return {"requests": int(r["n"]), "at": r["bucket"].isoformat()} if r else {"requests": 0, "at": None}


async def _capacity(conn: asyncpg.Connection, cur: Span, prev: Span, retention_days: int, today: date
                    ) -> dict[str, Any]:
    db_bytes = int(await conn.fetchval("SELECT pg_database_size(current_database())"))
    days = [(cur.start + timedelta(days=i)).date() for i in range((cur.end - cur.start).days)]
    names = [partition_name(t, d) for d in days for t in ("api_requests", "api_request_bodies")]
    period_bytes = int(await conn.fetchval(
        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relname = ANY($1::text[])",
        names))
    oldest = await conn.fetchval("SELECT min(created_at) FROM api_requests")
    prune_in = None
    if retention_days > 0 and oldest is not None:
        prune_in = max(0, (oldest.astimezone(UTC).date() + timedelta(days=retention_days + 1) - today).days)
    peak, peak_prev = await _peak(conn, cur), await _peak(conn, prev)
    return {"peakRequestsPerMinute": {**peak, "previous": peak_prev["requests"],
                                      "changePct": change_pct(peak["requests"], peak_prev["requests"])},
            "databaseBytes": db_bytes, "periodBytes": period_bytes,
            "growthBytesPerDay": round(period_bytes / len(days)) if days else 0,
            "oldestRecord": oldest.isoformat() if oldest else None, "retentionDays": retention_days,
            "daysUntilPrune": prune_in}


async def build_report(conn: asyncpg.Connection, period: str, until: datetime, retention_days: int = 0
                       ) -> dict[str, Any]:
    """The whole report as plain JSON-able data."""
    cur, prev = spans(period, until)
    h_cur, h_prev = await _hourly(conn, cur), await _hourly(conn, prev)
    t_cur, t_prev = _traffic_of(h_cur), _traffic_of(h_prev)
    e_cur, rej_cur = await _errors(conn, cur)
    e_prev, rej_prev = await _errors(conn, prev)
    err_keys = sorted(set(e_cur) | set(e_prev), key=lambda k: (-e_cur.get(k, 0), -e_prev.get(k, 0), k))[:TOP]
    l_cur, l_prev = await _latency(conn, cur), await _latency(conn, prev)

    def model(r: asyncpg.Record) -> str:
        return r["model"]

    def account(r: asyncpg.Record) -> str:
        return r["account_id"]

    cost: dict[str, Any] = {
        "byModel": _compare(h_cur.by(model, "cost"), h_prev.by(model, "cost")),
        "byAccount": _compare(h_cur.by(account, "cost"), h_prev.by(account, "cost")),
        "bySession": None, "byTag": None,
    }
    if await _has_column(conn, "api_requests", "session_id"):
        where = "session_id IS NOT NULL"
        cost["bySession"] = _compare(await _raw_cost(conn, "session_id", cur, where),
                                     await _raw_cost(conn, "session_id", prev, where))
    if await _has_column(conn, "api_requests", "tags"):
        cost["byTag"] = _compare(await _tags_cost(conn, cur), await _tags_cost(conn, prev))
    per_hour = h_cur.by(lambda r: r["h"], "requests")
    hours = sorted(per_hour.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    by_hour: dict[int, int] = {}
    for h, n in per_hour.items():
        by_hour[h.astimezone(UTC).hour] = by_hour.get(h.astimezone(UTC).hour, 0) + n

    def day(r: asyncpg.Record) -> date:
        return r["h"].astimezone(UTC).date()

    d_req, d_err, d_cost = h_cur.by(day, "requests"), h_cur.by(day, "errors"), h_cur.by(day, "cost")
    u_req, u_tok = h_cur.by(model, "unpriced"), h_cur.by(model, "unpriced_tokens")
    unpriced = sorted(((m, n) for m, n in u_req.items() if n > 0), key=lambda kv: (-kv[1], kv[0]))
    has_limits = await _has_table(conn, "ratelimit_samples")
    return {
        "period": period, "current": cur.json(), "previous": prev.json(),
        "traffic": {"current": t_cur, "previous": t_prev, "change": {
            "requests": change_pct(t_cur["requests"], t_prev["requests"]),
            "errors": change_pct(t_cur["errors"], t_prev["errors"]),
            "costUsd": change_pct(t_cur["costUsd"], t_prev["costUsd"]),
            "tokens": change_pct(t_cur["tokens"]["total"], t_prev["tokens"]["total"]),
            "errorRatePoints": round((t_cur["errorRate"] - t_prev["errorRate"]) * 100, 2)}},
        "errorTypes": [{"errorType": k, "current": e_cur.get(k, 0), "previous": e_prev.get(k, 0),
                        "changePct": change_pct(e_cur.get(k, 0), e_prev.get(k, 0))} for k in err_keys],
        "latency": [{"model": m, **v, "previous": {k: l_prev.get(m, {}).get(k) for k in ("requests", "p50Ms", "p95Ms")}}
                    for m, v in sorted(l_cur.items(), key=lambda kv: (-kv[1]["requests"], kv[0]))],
        "cost": cost,
        "busiestHours": [{"hour": h.isoformat(), "requests": int(n)} for h, n in hours],
        "hourOfDay": [by_hour.get(h, 0) for h in range(24)],
        "daily": [{"date": d.isoformat(), "requests": int(d_req[d]), "errors": int(d_err[d]), "costUsd": usd(d_cost[d])}
                  for d in sorted(d_req)],
        "limits": {"rejections": {"current": rej_cur, "previous": rej_prev, "changePct": change_pct(rej_cur, rej_prev)},
                   "pressure": await _pressure(conn, cur) if has_limits else None},
        "unpriced": [{"model": m, "requests": int(n), "tokens": int(u_tok.get(m, 0))} for m, n in unpriced],
        "capacity": await _capacity(conn, cur, prev, retention_days, until.astimezone(UTC).date()),
    }
