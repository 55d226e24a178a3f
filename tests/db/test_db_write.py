"""The write path against a real PostgreSQL: idempotent batches, rollups, bodies, partitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from nexus.core.records import Record
from nexus.store.partitions import drop_partitions_before, ensure_partitions_around, existing_partition_days
from nexus.store.write import PartitionCache, insert_records


def _rec(**kw) -> Record:
    base = dict(domain="a.example", account_id="acct_1", model="claude-sonnet-4-5", status_code=200,
                input_tokens=10, output_tokens=20, response_time_ms=123.0, cost_usd=Decimal("0.000330"))
    base.update(kw)
    return Record(**base)


async def test_batch_is_written_once_even_when_replayed(db_conn):
    cache = PartitionCache()
    recs = [_rec() for _ in range(50)]
    assert await insert_records(db_conn, recs, cache) == 50
    assert await insert_records(db_conn, recs, cache) == 0  # a replay writes nothing more
    assert await db_conn.fetchval("SELECT count(*) FROM api_requests") == 50
    row = await db_conn.fetchrow("SELECT sum(requests) n, sum(input_tokens) i FROM api_requests_minute")
    assert row["n"] == 50 and row["i"] == 500  # rollups counted once


async def test_partitions_are_created_for_new_days_and_pruned(db_conn):
    cache = PartitionCache()
    old = datetime.now(UTC) - timedelta(days=40)
    await insert_records(db_conn, [_rec(created_at=old), _rec()], cache)
    days = await existing_partition_days(db_conn)
    assert old.date() in days
    assert await db_conn.fetchval("SELECT count(*) FROM api_requests_default") == 0
    await ensure_partitions_around(db_conn)
    dropped = await drop_partitions_before(db_conn, (datetime.now(UTC) - timedelta(days=30)).date())
    assert f"api_requests_p{old:%Y%m%d}" in dropped
    assert await db_conn.fetchval("SELECT count(*) FROM api_requests") == 1
    # rollups survive pruning of raw rows
    assert await db_conn.fetchval("SELECT sum(requests) FROM api_requests_minute") == 2


async def test_rows_in_default_partition_move_when_day_partition_is_made(db_conn):
    day = datetime(2031, 1, 2, 12, tzinfo=UTC)
    await insert_records(db_conn, [_rec(created_at=day)])  # no cache: lands in default
    assert await db_conn.fetchval("SELECT count(*) FROM api_requests_default") == 1
    await insert_records(db_conn, [_rec(created_at=day)], PartitionCache())
    assert await db_conn.fetchval("SELECT count(*) FROM api_requests_default") == 0
    assert await db_conn.fetchval("SELECT count(*) FROM api_requests_p20310102") == 2


async def test_nul_bytes_and_bodies_are_stored_safely(db_conn):
    r = _rec(status_code=400, error_type="invalid_request_error", error_message="bad\x00thing",
             request_headers={"anthropic-version": "2023-06-01"}, response_body='{"x":"\x00"}')
    assert await insert_records(db_conn, [r], PartitionCache()) == 1
    body = await db_conn.fetchrow("SELECT * FROM api_request_bodies")
    assert body["request_headers"] == {"anthropic-version": "2023-06-01"} or "anthropic-version" in str(
        body["request_headers"])
    assert "\x00" not in await db_conn.fetchval("SELECT error_message FROM api_requests")
