"""Every SQL query of the Monitoring Guide, verbatim, against our schema with known data.

The strings below are copied character for character from ``seed/monitoring-guide.md``
(sections Request Latency, Error Rates, Error Categories, Budget Alerts, Database Performance,
Dashboard Performance). Expected answers are computed in Python from the inserted records.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import asyncpg
import pytest

from nexus.core.records import Record
from nexus.store.write import PartitionCache, insert_records

LATENCY_BY_HOUR = """-- Average latency by hour
SELECT
  date_trunc('hour', created_at) as hour,
  AVG(response_time_ms) as avg_latency,
  PERCENTILE_CONT(0.95) WITHIN GROUP (ORDER BY response_time_ms) as p95_latency
FROM api_requests
WHERE created_at > NOW() - INTERVAL '24 hours'
GROUP BY hour
ORDER BY hour DESC;"""

ERROR_RATE_BY_HOUR = """-- Error rate by hour
SELECT
  date_trunc('hour', created_at) as hour,
  COUNT(*) FILTER (WHERE status_code >= 400) as errors,
  COUNT(*) as total,
  ROUND(COUNT(*) FILTER (WHERE status_code >= 400)::numeric / COUNT(*) * 100, 2) as error_rate
FROM api_requests
WHERE created_at > NOW() - INTERVAL '24 hours'
GROUP BY hour
ORDER BY hour DESC;"""

ERROR_BREAKDOWN = """-- Error breakdown
SELECT
  status_code,
  error_type,
  COUNT(*) as count,
  ARRAY_AGG(DISTINCT domain) as affected_domains
FROM api_requests
WHERE status_code >= 400
  AND created_at > NOW() - INTERVAL '24 hours'
GROUP BY status_code, error_type
ORDER BY count DESC;"""

DAILY_COST = """-- Daily cost tracking
WITH daily_costs AS (
  SELECT
    date_trunc('day', created_at) as day,
    SUM(input_tokens * 0.000015 + output_tokens * 0.000075) as cost
  FROM api_requests
  WHERE model = 'claude-3-opus-20240229'
  GROUP BY day
)
SELECT
  day,
  cost,
  SUM(cost) OVER (ORDER BY day) as cumulative_cost
FROM daily_costs
ORDER BY day DESC;"""

CONNECTION_COUNT = """-- Connection count
SELECT count(*) FROM pg_stat_activity;"""

LONG_RUNNING = """-- Long-running queries
SELECT pid, now() - pg_stat_activity.query_start AS duration, query
FROM pg_stat_activity
WHERE (now() - pg_stat_activity.query_start) > interval '5 minutes';"""

TABLE_SIZES = """-- Table sizes
SELECT
  schemaname,
  tablename,
  pg_size_pretty(pg_total_relation_size(schemaname||'.'||tablename)) AS size
FROM pg_tables
WHERE schemaname = 'public'
ORDER BY pg_total_relation_size(schemaname||'.'||tablename) DESC;"""

DASHBOARD_PERFORMANCE = """-- Dashboard query performance
SELECT
  query,
  calls,
  mean_exec_time,
  total_exec_time
FROM pg_stat_statements
WHERE query LIKE '%api_requests%'
ORDER BY mean_exec_time DESC
LIMIT 10;"""

OPUS = "claude-3-opus-20240229"


def _records(now: datetime) -> list[Record]:
    """Traffic over the last ~20 hours (3 per hour, one error in every other hour) and opus over days."""
    out = []
    for h in range(0, 20, 2):
        base = now - timedelta(hours=h, minutes=10)
        out.append(Record(created_at=base, domain="a.example", model="claude-sonnet-4-5", status_code=200,
                          response_time_ms=100.0 + h, input_tokens=10, output_tokens=5))
        out.append(Record(created_at=base - timedelta(minutes=1), domain="b.example", model="claude-sonnet-4-5",
                          status_code=200, response_time_ms=300.0 + h))
        if h % 4 == 0:
            out.append(Record(created_at=base - timedelta(minutes=2), domain="b.example", status_code=529,
                              error_type="overloaded_error", response_time_ms=2000.0 + h))
        else:
            out.append(Record(created_at=base - timedelta(minutes=2), domain="a.example", status_code=429,
                              error_type="rate_limit_error", response_time_ms=50.0 + h))
    for days, i, o in ((0, 1000, 100), (1, 2000, 300), (3, 500, 50), (3, 100, 10)):
        out.append(Record(created_at=now - timedelta(days=days, minutes=30), domain="c.example", model=OPUS,
                          status_code=200, input_tokens=i, output_tokens=o, response_time_ms=1000.0))
    # one error too old for the 24-hour queries
    out.append(Record(created_at=now - timedelta(hours=30), domain="z.example", status_code=500,
                      error_type="api_error"))
    return out


def _pct_cont(values: list[float], q: float) -> float:
    v = sorted(values)
    pos = q * (len(v) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def _bucket_of(t: datetime, buckets: list[datetime], width: timedelta) -> datetime:
    (b,) = [b for b in buckets if b <= t < b + width]
    return b


@pytest.fixture
async def guide_db(db_conn: asyncpg.Connection):
    now = datetime.now(UTC)
    records = _records(now)
    await insert_records(db_conn, records, PartitionCache())
    return db_conn, records, now


async def test_latency_by_hour(guide_db):
    conn, records, now = guide_db
    rows = await conn.fetch(LATENCY_BY_HOUR)
    hours = [r["hour"] for r in rows]
    assert hours == sorted(hours, reverse=True)
    recent = [r for r in records if r.created_at > now - timedelta(hours=24)]
    groups: dict[datetime, list[float]] = defaultdict(list)
    for r in recent:
        groups[_bucket_of(r.created_at, hours, timedelta(hours=1))].append(r.response_time_ms)
    assert len(rows) == len(groups)
    for row in rows:
        vals = groups[row["hour"]]
        assert row["avg_latency"] == pytest.approx(sum(vals) / len(vals))
        assert row["p95_latency"] == pytest.approx(_pct_cont(vals, 0.95))


async def test_error_rate_by_hour(guide_db):
    conn, records, now = guide_db
    rows = await conn.fetch(ERROR_RATE_BY_HOUR)
    hours = [r["hour"] for r in rows]
    recent = [r for r in records if r.created_at > now - timedelta(hours=24)]
    groups: dict[datetime, list[Record]] = defaultdict(list)
    for r in recent:
        groups[_bucket_of(r.created_at, hours, timedelta(hours=1))].append(r)
    assert sum(r["total"] for r in rows) == len(recent)
    for row in rows:
        rs = groups[row["hour"]]
        errors = sum(1 for r in rs if r.status_code >= 400)
        assert (row["errors"], row["total"]) == (errors, len(rs))
        want = (Decimal(errors) / Decimal(len(rs)) * 100).quantize(Decimal("0.01"), ROUND_HALF_UP)
        assert row["error_rate"] == want


async def test_error_breakdown(guide_db):
    conn, _, _ = guide_db
    rows = await conn.fetch(ERROR_BREAKDOWN)
    got = {(r["status_code"], r["error_type"]): (r["count"], list(r["affected_domains"])) for r in rows}
    # hours 0,4,8,12,16 → 529 on b.example; hours 2,6,10,14,18 → 429 on a.example; the 30 h old 500 is out
    assert got == {(529, "overloaded_error"): (5, ["b.example"]), (429, "rate_limit_error"): (5, ["a.example"])}


async def test_daily_cost(guide_db):
    conn, records, _ = guide_db
    rows = await conn.fetch(DAILY_COST)
    days = [r["day"] for r in rows]
    assert days == sorted(days, reverse=True)
    per_day: dict[datetime, Decimal] = defaultdict(Decimal)
    for r in records:
        if r.model == OPUS:
            d = _bucket_of(r.created_at, days, timedelta(days=1))
            per_day[d] += r.input_tokens * Decimal("0.000015") + r.output_tokens * Decimal("0.000075")
    assert {r["day"]: r["cost"] for r in rows} == dict(per_day)
    running = Decimal(0)
    for row in reversed(rows):
        running += row["cost"]
        assert row["cumulative_cost"] == running
    assert rows[0]["cumulative_cost"] == Decimal("0.015") + Decimal("0.0075") + Decimal("0.03") + \
        Decimal("0.0225") + Decimal("0.0075") + Decimal("0.00375") + Decimal("0.0015") + Decimal("0.00075")


async def test_database_performance_queries(guide_db):
    conn, _, _ = guide_db
    assert (await conn.fetchval(CONNECTION_COUNT)) >= 1
    long_rows = await conn.fetch(LONG_RUNNING)
    assert all(r["duration"] > timedelta(minutes=5) for r in long_rows)
    sizes = await conn.fetch(TABLE_SIZES)
    names = [r["tablename"] for r in sizes]
    for t in ("api_requests_minute", "api_request_bodies_default", "nexus_meta"):
        assert t in names
    assert any(n.startswith("api_requests_p") for n in names)  # the daily partitions
    assert all(r["schemaname"] == "public" and r["size"].split()[-1] in ("bytes", "kB", "MB", "GB")
               for r in sizes)


async def test_dashboard_query_performance(guide_db):
    conn, _, _ = guide_db
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await conn.fetch(LATENCY_BY_HOUR)
        rows = await conn.fetch(DASHBOARD_PERFORMANCE)
    except asyncpg.PostgresError as exc:  # the server was started without the library preloaded
        pytest.skip(f"pg_stat_statements unavailable here: {exc}")
    assert rows, "the guide's queries over api_requests should be listed"
    assert all("api_requests" in r["query"] for r in rows)
    assert all(r["calls"] >= 1 and r["mean_exec_time"] >= 0 for r in rows)
