"""``nexus db reprice`` on a populated database: exactly the affected rows change, and afterwards the
per-minute rollups agree with a fresh aggregation of the raw rows.

The stored costs are made wrong the way an old table would have made them (fast mode priced at the
standard rate, a model the table did not know recorded as unpriced); the right costs are worked out
by hand from the published rates.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg

from nexus.core.records import REQUEST_TYPE_COUNT_TOKENS, Record
from nexus.pricing import PriceTable
from nexus.store.reprice import reprice
from nexus.store.write import PartitionCache, insert_records

NOW = datetime.now(UTC).replace(microsecond=0)

# Fresh aggregation of the raw rows, written independently of the writer and of reprice's SQL.
FRESH = """
SELECT date_trunc('minute', created_at, 'UTC') AS bucket, domain, coalesce(account_id, '') AS account_id,
       coalesce(model, '') AS model, count(*) AS requests, coalesce(sum(cost_usd), 0) AS cost,
       count(*) FILTER (WHERE cost_usd IS NULL AND request_type = 'messages' AND coalesce(model, '') <> '') AS unpriced,
       coalesce(sum(input_tokens + output_tokens + cache_creation_input_tokens + cache_read_input_tokens)
                FILTER (WHERE cost_usd IS NULL AND request_type = 'messages' AND coalesce(model, '') <> ''), 0)
           AS unpriced_tokens,
       count(*) FILTER (WHERE speed = 'fast' AND cost_usd IS NOT NULL) AS fast,
       coalesce(sum(cost_usd) FILTER (WHERE speed = 'fast'), 0) AS fast_cost,
       count(*) FILTER (WHERE inference_geo = 'us' AND cost_usd IS NOT NULL) AS geo_us,
       coalesce(sum(cost_usd) FILTER (WHERE inference_geo = 'us'), 0) AS geo_us_cost,
       coalesce(sum(web_search_requests), 0) AS web_search, coalesce(sum(web_search_cost_usd), 0) AS web_search_cost
FROM api_requests GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"""
ROLLUP = """
SELECT bucket, domain, account_id, model, requests, cost_usd AS cost, unpriced_requests AS unpriced, unpriced_tokens,
       fast_requests AS fast, fast_cost_usd AS fast_cost, geo_us_requests AS geo_us, geo_us_cost_usd AS geo_us_cost,
       web_search_requests AS web_search, web_search_cost_usd AS web_search_cost
FROM api_requests_minute ORDER BY 1, 2, 3, 4"""


def rec(minutes_ago: float, model: str, cost: str | None, **kw) -> Record:
    base = dict(created_at=NOW - timedelta(minutes=minutes_ago), domain="a.example", account_id="acct_1",
                model=model, status_code=200, input_tokens=1000, output_tokens=1000, response_time_ms=100.0,
                cost_usd=None if cost is None else Decimal(cost),
                web_search_cost_usd=None if cost is None else Decimal(0))
    base.update(kw)
    return Record(**base)


async def rollups_agree(conn: asyncpg.Connection) -> None:
    fresh = [dict(r) for r in await conn.fetch(FRESH)]
    stored = [dict(r) for r in await conn.fetch(ROLLUP)]
    assert stored == fresh


async def test_reprice_changes_exactly_the_affected_rows_and_rollups_agree(db_conn: asyncpg.Connection,
                                                                           tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"models": {"claude-foo-1": {"input": 1, "output": 5}}}))
    table = PriceTable.load(prices)
    right = [  # already right: Sonnet 4.5 3/15 -> 0.018; Opus 5.5 fast 8/40 -> 0.048
        rec(90, "claude-sonnet-4-5", "0.018", price_source=table.dataset.label),
        rec(89.5, "claude-sonnet-4-5", "0.018", price_source=table.dataset.label),
        rec(30, "claude-opus-5-5", "0.048", speed="fast", price_source=table.dataset.label),
        rec(29, "claude-haiku-5-5", "0", request_type=REQUEST_TYPE_COUNT_TOKENS, input_tokens=0, output_tokens=0),
        rec(28, "claude-haiku-4-5", "0.006", web_search_cost_usd=None),  # recorded before sources were kept
        rec(10, "claude-unknown-9", None),  # still unknown afterwards
    ]
    wrong = [
        # fast mode priced at the standard rate (4/20 -> 0.024); right: 0.048
        rec(30.2, "claude-opus-5-5", "0.024", speed="fast", price_source=table.dataset.label),
        # US-only without the 1.1x (Sonnet 5.5: 2/10 -> 0.012); right: 0.0132
        rec(20, "claude-sonnet-5-5", "0.012", inference_geo="us", price_source=table.dataset.label),
        # 5 web searches left out (0.018 + 0.05 = 0.068)
        rec(20.1, "claude-sonnet-4-5", "0.018", web_search_requests=5, price_source=table.dataset.label),
        # a model the old table did not know: unpriced until PRICING_FILE priced it (1/5 -> 0.006)
        rec(10.5, "claude-foo-1", None),
        rec(10.6, "claude-foo-1", None, domain="b.example"),
    ]
    old = rec(60 * 24 * 40, "claude-opus-5-5", "0.024", speed="fast")  # outside --since: untouched
    await insert_records(db_conn, [*right, *wrong, old], PartitionCache())
    before = {r["id"]: dict(r) for r in await db_conn.fetch("SELECT * FROM api_requests")}

    dry = await reprice(db_conn, table, since=NOW - timedelta(days=30), dry_run=True, batch_size=3)
    assert dry.changed == len(wrong) and dry.newly_priced == 2 and dry.annotated == 1
    assert {r["id"]: dict(r) for r in await db_conn.fetch("SELECT * FROM api_requests")} == before

    summary = await reprice(db_conn, table, since=NOW - timedelta(days=30), batch_size=3)
    assert summary.scanned == len(right) - 1 + len(wrong)  # count_tokens is not repriced
    assert summary.changed == len(wrong) and summary.newly_priced == 2 and summary.newly_unpriced == 0
    assert summary.annotated == 1
    assert summary.old_total == (Decimal("0.018") * 3 + Decimal("0.048") + Decimal("0.024") + Decimal("0.012")
                                 + Decimal("0.006"))
    assert summary.new_total == (Decimal("0.018") * 2 + Decimal("0.048") * 2 + Decimal("0.0132")
                                 + Decimal("0.068") + Decimal("0.006") * 3)
    after = {r["id"]: dict(r) for r in await db_conn.fetch("SELECT * FROM api_requests")}
    for r in [*right, old]:
        if r.model == "claude-haiku-4-5":  # Haiku 4.5: 1 / 5 -> 0.006, same cost, source filled in
            assert after[r.id]["cost_usd"] == before[r.id]["cost_usd"]
            assert after[r.id]["price_source"] == table.dataset.label
            assert after[r.id]["web_search_cost_usd"] == 0
        else:
            assert after[r.id] == before[r.id]
    expected = {wrong[0].id: "0.048", wrong[1].id: "0.0132", wrong[2].id: "0.068",
                wrong[3].id: "0.006", wrong[4].id: "0.006"}
    for rid, cost in expected.items():
        assert after[rid]["cost_usd"] == Decimal(cost)
    assert after[wrong[2].id]["web_search_cost_usd"] == Decimal("0.05")
    assert after[wrong[1].id]["price_source"] == table.dataset.label + "+overlay"
    assert after[wrong[3].id]["price_source"] == "file"
    await rollups_agree(db_conn)

    again = await reprice(db_conn, table, since=NOW - timedelta(days=30))
    assert again.changed == 0 and again.old_total == again.new_total == summary.new_total


async def test_reprice_of_one_model_and_a_live_writer(db_conn: asyncpg.Connection, db_dsn: str) -> None:
    table = PriceTable.builtin()
    src = table.dataset.label
    recs = [rec(5 + i / 10, "claude-opus-5-5", "0.024", speed="fast", price_source=src) for i in range(40)]
    recs += [rec(5 + i / 10, "claude-sonnet-4-5", "0.5", price_source=src) for i in range(10)]  # another model
    await insert_records(db_conn, recs, PartitionCache())
    other = await asyncpg.connect(db_dsn)
    try:
        # The writer adds records to the same minutes while the reprice runs in small batches.
        late = [rec(5 + i / 10, "claude-opus-5-5", "0.048", speed="fast", price_source=src) for i in range(40)]
        summary, _ = await asyncio.gather(
            reprice(db_conn, table, since=NOW - timedelta(hours=1), model="claude-opus-5-5", batch_size=7,
                    progress=lambda n: None),
            insert_records(other, late, PartitionCache()))
    finally:
        await other.close()
    assert summary.changed == 40 and summary.changed_by_model == {"claude-opus-5-5": 40}
    assert await db_conn.fetchval("SELECT count(*) FROM api_requests WHERE model = 'claude-sonnet-4-5' "
                                  "AND cost_usd = 0.5") == 10
    assert await db_conn.fetchval("SELECT sum(cost_usd) FROM api_requests WHERE model = 'claude-opus-5-5'") \
        == Decimal("0.048") * 80
    await rollups_agree(db_conn)


async def test_reprice_refreshes_the_sessions_of_the_changed_rows(db_conn: asyncpg.Connection,
                                                                  tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"models": {"claude-foo-1": {"input": 1, "output": 5}}}))
    table = PriceTable.load(prices)
    records = [
        rec(30, "claude-foo-1", None, session_id="s1"),  # unknown then: 1000 * 1 + 1000 * 5 per MTok -> 0.006
        rec(29, "claude-foo-1", None, session_id="s1", agent_id="agent-a"),
        rec(28, "claude-sonnet-4-5", "0.018", session_id="s1", price_source=table.dataset.label),
        rec(27, "claude-sonnet-4-5", "0.018", session_id="s2", price_source=table.dataset.label),
    ]
    await insert_records(db_conn, records, PartitionCache())
    before = await db_conn.fetchrow("SELECT cost_usd, unpriced_requests FROM api_sessions WHERE session_id = 's1'")
    assert (before["cost_usd"], before["unpriced_requests"]) == (Decimal("0.018"), 2)
    summary = await reprice(db_conn, table, since=NOW - timedelta(hours=1))
    assert summary.changed == 2 and summary.sessions_refreshed == 1
    s1 = await db_conn.fetchrow("SELECT cost_usd, unpriced_requests FROM api_sessions WHERE session_id = 's1'")
    assert (s1["cost_usd"], s1["unpriced_requests"]) == (Decimal("0.030"), 0)
    agents = {r["agent_id"]: r["cost_usd"] for r in await db_conn.fetch(
        "SELECT agent_id, cost_usd FROM api_session_agents WHERE session_id = 's1'")}
    assert agents == {"": Decimal("0.024"), "agent-a": Decimal("0.006")}
    assert await db_conn.fetchval("SELECT cost_usd FROM api_sessions WHERE session_id = 's2'") == Decimal("0.018")
