"""nexus.store.read without HTTP: slow-query logging, cursors, and rollup+edge answers equal raw SQL."""

from __future__ import annotations

import logging
import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from nexus.core.latency import LATENCY_BUCKETS_MS, bucket_index
from nexus.core.records import Record
from nexus.store.pool import create_pool
from nexus.store.read import (
    DashboardQueries,
    DatabaseUnavailable,
    Filters,
    RollupCache,
    ceil_minute,
    decode_cursor,
    encode_cursor,
    floor_to,
    timed,
)
from nexus.store.write import PartitionCache, insert_records


@pytest.fixture
async def pool(db_dsn):
    p = await create_pool(db_dsn, min_size=1, max_size=2)
    try:
        yield p
    finally:
        await p.close()


async def test_slow_query_is_logged_with_name_and_duration(pool, caplog):
    q = DashboardQueries(pool, slow_query_threshold_ms=0)
    now = datetime.now(UTC)
    with caplog.at_level(logging.WARNING, logger="nexus.store"):
        await q.stats(now - timedelta(hours=2), now, Filters(), now)
    slow = [r for r in caplog.records if r.name == "nexus.store" and "Slow SQL query" in r.getMessage()]
    names = {r.query for r in slow}
    assert {"stats.rollup", "stats.raw_edges", "stats.requests_per_minute"} <= names
    assert all(r.levelno == logging.WARNING and r.duration_ms >= 0 for r in slow)
    assert " ms" in slow[0].getMessage() and "stats." in slow[0].getMessage()


async def test_fast_queries_are_not_logged(pool, caplog):
    q = DashboardQueries(pool, slow_query_threshold_ms=60_000)
    with caplog.at_level(logging.WARNING, logger="nexus.store"):
        await q.requests(10, Filters())
    assert not [r for r in caplog.records if "Slow SQL query" in r.getMessage()]


async def test_timed_logs_a_genuinely_slow_statement(pool, caplog):
    q = DashboardQueries(pool, slow_query_threshold_ms=50)
    with caplog.at_level(logging.WARNING, logger="nexus.store"):
        async with pool.acquire() as conn:
            await q._run(conn, "sleepy", "SELECT pg_sleep(0.1)")
    (rec,) = [r for r in caplog.records if "Slow SQL query" in r.getMessage()]
    assert rec.query == "sleepy" and rec.duration_ms >= 100


async def test_timed_helper_alone(caplog):
    with caplog.at_level(logging.WARNING, logger="nexus.store"):
        async with timed("noop", -1):
            pass
    assert "Slow SQL query: noop" in caplog.text


async def test_no_pool_raises_unavailable():
    with pytest.raises(DatabaseUnavailable):
        await DashboardQueries(None).requests(5, Filters())


def test_cursor_round_trip_and_rejects_garbage():
    t = datetime(2026, 11, 27, 5, 6, 7, 890123, tzinfo=UTC)
    rid = uuid.uuid4()
    assert decode_cursor(encode_cursor(t, rid)) == (t, rid)
    for bad in ("", "x", "@@@", encode_cursor(t, rid)[:-3] + "A", "MjAyNg"):
        with pytest.raises(ValueError):
            decode_cursor(bad)


def test_time_helpers():
    t = datetime(2026, 11, 27, 5, 6, 7, tzinfo=UTC)
    assert ceil_minute(t) == datetime(2026, 11, 27, 5, 7, tzinfo=UTC)
    assert ceil_minute(t.replace(second=0)) == t.replace(second=0)
    assert floor_to(t, 300) == datetime(2026, 11, 27, 5, 5, tzinfo=UTC)
    assert floor_to(t, 86400) == datetime(2026, 11, 27, tzinfo=UTC)


def test_filters_sql_is_parameterised():
    args: list = [1]
    sql = Filters(domain="x'; DROP TABLE api_requests; --", account=None, model="m").sql(args)
    assert sql == (" AND domain = $2 AND (model = $3 OR "
                   "regexp_replace(model, '^claude-|-[0-9]{8}$', '', 'g') = $3)")  # exact name or family
    assert args == [1, "x'; DROP TABLE api_requests; --", "m"]


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_rollup_plus_edges_equal_raw_sql(pool, seed):
    """Over random traffic and ragged range ends, the fast path's counts equal a plain raw query."""
    rnd = random.Random(seed)
    now = datetime.now(UTC)
    records = []
    for _ in range(400):
        status = rnd.choice([200, 200, 200, 429, 500, 529])
        records.append(Record(
            created_at=now - timedelta(seconds=rnd.uniform(0, 4 * 3600)),
            domain=rnd.choice(["a", "b"]), account_id=rnd.choice(["x", "y", None]),
            model=rnd.choice(["claude-sonnet-4-5", "claude-haiku-4-5", "odd", None]), status_code=status,
            error_type=None if status == 200 and rnd.random() < 0.9 else "api_error",
            input_tokens=rnd.randint(0, 5000), output_tokens=rnd.randint(0, 5000),
            cache_read_input_tokens=rnd.randint(0, 100), response_time_ms=rnd.uniform(1, 20000),
            cost_usd=None if rnd.random() < 0.1 else Decimal(rnd.randint(0, 10**6)) / 10**7,
        ))
    async with pool.acquire() as conn:
        await insert_records(conn, records, PartitionCache())
    q = DashboardQueries(pool)
    since = now - timedelta(hours=3, seconds=rnd.uniform(0, 59))
    until = now - timedelta(seconds=rnd.uniform(0, 59))
    for filters in (Filters(), Filters(domain="a"), Filters(account="x", model="odd")):
        got = await q.stats(since, until, filters, now)
        assert got["latencyMs"]["method"] == "histogram"
        sel = [r for r in records if since <= r.created_at < until
               and (not filters.domain or r.domain == filters.domain)
               and (not filters.account or r.account_id == filters.account)
               and (not filters.model or r.model == filters.model)]
        assert got["totalRequests"] == len(sel)
        assert got["errorCount"] == sum(r.is_error for r in sel)
        assert got["tokens"]["total"] == sum(r.total_tokens for r in sel)
        assert got["costUsd"] == pytest.approx(float(sum((r.cost_usd or 0 for r in sel), Decimal(0))), abs=1e-9)
        assert got["unpricedRequests"] == sum(1 for r in sel if r.cost_usd is None and r.model)
        assert sum(m["requests"] for m in got["byModel"]) == len(sel)
        if sel:
            assert got["latencyMs"]["avg"] == pytest.approx(sum(r.response_time_ms for r in sel) / len(sel),
                                                             rel=1e-6)
            exact = sorted(r.response_time_ms for r in sel)[int(0.95 * (len(sel) - 1))]
            # histogram p95 lies within the bucket that holds the exact one
            i = bucket_index(exact)
            lo = 0 if i == 0 else LATENCY_BUCKETS_MS[i - 1]
            hi = LATENCY_BUCKETS_MS[i] if i < len(LATENCY_BUCKETS_MS) else float("inf")
            assert lo - 1e-6 <= got["latencyMs"]["p95"] <= hi + 1e-6 or abs(
                got["latencyMs"]["p95"] - exact) / exact < 0.5


async def test_cache_serves_closed_hours_and_expires(pool):
    """Whole past hours come from the cache; a late record in one shows up once its entry expires."""
    t = [0.0]
    cache = RollupCache(ttl_s=60, clock=lambda: t[0])
    q = DashboardQueries(pool, cache=cache)
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        await insert_records(conn, [Record(created_at=now - timedelta(hours=h, minutes=1), domain="a",
                                           model="m", status_code=200, input_tokens=1,
                                           response_time_ms=10.0 * h + 1) for h in range(1, 6)],
                             PartitionCache())
    since = now - timedelta(hours=6)
    first = await q.stats(since, now, Filters(), now)
    assert first["totalRequests"] == 5 and cache.misses >= 4
    hits = cache.hits
    again = await q.stats(since, now, Filters(), now)
    assert again == first and cache.hits > hits
    # a record replayed late into an hour that is already cached
    async with pool.acquire() as conn:
        await insert_records(conn, [Record(created_at=now - timedelta(hours=4, minutes=30), domain="a",
                                           model="m", status_code=500, input_tokens=1)], PartitionCache())
    assert (await q.stats(since, now, Filters(), now))["totalRequests"] == 5  # still cached
    t[0] = 61
    fresh = await q.stats(since, now, Filters(), now)
    assert fresh["totalRequests"] == 6 and fresh["errorCount"] == 1


@pytest.mark.parametrize("seed", [4, 5])
async def test_cached_and_uncached_answers_are_identical(pool, seed):
    rnd = random.Random(seed)
    now = datetime.now(UTC)
    records = [Record(created_at=now - timedelta(seconds=rnd.uniform(0, 30 * 3600)),
                      domain=rnd.choice(["a", "b"]), account_id=rnd.choice(["x", "y"]),
                      model=rnd.choice(["m1", "m2"]), status_code=rnd.choice([200, 200, 529]),
                      input_tokens=rnd.randint(0, 99), output_tokens=rnd.randint(0, 99),
                      response_time_ms=rnd.uniform(1, 5000), cost_usd=Decimal(rnd.randint(0, 999)) / 10**5)
               for _ in range(300)]
    async with pool.acquire() as conn:
        await insert_records(conn, records, PartitionCache())
    plain = DashboardQueries(pool)
    cached = DashboardQueries(pool, cache=RollupCache())
    since = now - timedelta(hours=26, seconds=rnd.uniform(0, 3600))
    for q_ in (cached, cached):  # second round is served from the cache
        assert await q_.stats(since, now, Filters(), now) == await plain.stats(since, now, Filters(), now)
        assert await q_.timeseries(since, now, 900, Filters(domain="a")) == await plain.timeseries(
            since, now, 900, Filters(domain="a"))
        assert await q_.token_usage_daily(3, now.date(), Filters(), False) == await plain.token_usage_daily(
            3, now.date(), Filters(), False)
        assert await q_.costs(3, now, Filters()) == await plain.costs(3, now, Filters())
        lim = lambda a: 1000  # noqa: E731
        assert await q_.token_usage_current(300, now, Filters(), lim) == await plain.token_usage_current(
            300, now, Filters(), lim)
    assert cached.cache is not None and cached.cache.hits > 0


def test_cache_is_bounded_by_rows():
    c = RollupCache(max_rows=10)
    for i in range(10):
        c.put(("k", i), [{"x": 1}] * 3)
    assert c.rows <= 10 and c.get(("k", 9)) is not None and c.get(("k", 0)) is None
    c.put(("k", 9), [])
    assert c.get(("k", 9)) == []
    c.clear()
    assert c.rows == 0


async def test_model_family_sql_is_the_python_rule(pool):
    """One rule, two spellings: the API's family match in SQL equals ``nexus.core.models.model_family``."""
    from nexus.core.models import model_family
    from nexus.store.read.base import MODEL_FAMILY_SQL

    names = ["claude-sonnet-4-5-20250929", "claude-sonnet-4-5", "claude-3-5-haiku-20241022", "my-model",
             "claude-opus-4-1-2025", "gpt-4o-20240513", "claude-", ""]
    async with pool.acquire() as conn:
        got = await conn.fetch(f"SELECT model, {MODEL_FAMILY_SQL} AS fam FROM unnest($1::text[]) AS model", names)
    assert {r["model"]: r["fam"] for r in got} == {n: model_family(n) for n in names}
