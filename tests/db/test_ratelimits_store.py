"""Rate-limit snapshots in a real PostgreSQL: latest per account, per-minute history, per answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from nexus.core.records import Record
from nexus.store.partitions import drop_partitions_before
from nexus.store.pool import create_pool
from nexus.store.read import DashboardQueries
from nexus.store.write import PartitionCache, insert_records

T0 = datetime(2026, 12, 2, 1, 0, 10, tzinfo=UTC)
RESET = 1764651600  # 2025-12-02T05:00:00Z


def _unified(util5: str, util7: str, status: str = "allowed") -> dict[str, str]:
    return {
        "anthropic-ratelimit-unified-status": status,
        "anthropic-ratelimit-unified-reset": str(RESET),
        "anthropic-ratelimit-unified-representative-claim": "five_hour",
        "anthropic-ratelimit-unified-5h-utilization": util5,
        "anthropic-ratelimit-unified-5h-reset": str(RESET),
        "anthropic-ratelimit-unified-5h-status": status,
        "anthropic-ratelimit-unified-7d-utilization": util7,
        "anthropic-ratelimit-unified-7d-reset": str(RESET + 86400),
        "anthropic-ratelimit-unified-7d-status": "allowed",
    }


def _rec(at: datetime, headers: dict[str, str] | None, account: str = "acct_sub", **kw) -> Record:
    base = dict(domain="a.example", account_id=account, model="claude-sonnet-4-5", status_code=200,
                created_at=at, ratelimit_headers=headers, ratelimit_observed_at=at)
    return Record(**(base | kw))


async def test_latest_history_and_answers(db_conn, db_dsn):
    pool = await create_pool(db_dsn, max_size=2)
    q = DashboardQueries(pool)
    recs = [
        _rec(T0, _unified("0.10", "0.01")),
        _rec(T0 + timedelta(seconds=20), _unified("0.12", "0.02")),  # same minute: replaces the sample
        _rec(T0 + timedelta(seconds=70), _unified("1.04", "0.03", "rejected"), status_code=429),
        _rec(T0, None, account="acct_none"),
        _rec(T0, {"anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "49",
                  "anthropic-ratelimit-requests-reset": "2026-12-02T01:01:00Z"}, account="acct_key"),
    ]
    # out of order in the batch: the latest answer still wins
    assert await insert_records(db_conn, [recs[2], recs[0], recs[1], recs[3], recs[4]], PartitionCache()) == 5
    limits = {a["accountId"]: a for a in await q.limits(None)}
    assert set(limits) == {"acct_sub", "acct_key"}
    sub = limits["acct_sub"]
    assert sub["kind"] == "subscription" and sub["status"] == "rejected" and sub["statusCode"] == 429
    assert sub["windows"]["5h"] == {"utilization": 1.04, "resetsAt": "2025-12-02T05:00:00+00:00",
                                    "status": "rejected"}
    assert sub["observedAt"] == (T0 + timedelta(seconds=70)).isoformat()
    assert sub["headers"]["anthropic-ratelimit-unified-5h-utilization"] == "1.04"
    key = limits["acct_key"]
    assert key["kind"] == "api_key"
    assert key["rateLimits"]["requests"] == {"limit": 50, "remaining": 49, "resetsAt": "2026-12-02T01:01:00+00:00"}

    hist = await q.limits_history("acct_sub", "5h", T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    assert [(h["time"], h["utilization"]) for h in hist] == [
        ("2026-12-02T01:00:00+00:00", 0.12), ("2026-12-02T01:01:00+00:00", 1.04)]
    assert len(await q.limits_history("acct_sub", None, T0 - timedelta(hours=1), T0 + timedelta(hours=1))) == 4

    answers = await db_conn.fetch("SELECT request_uuid, utilization::text AS u FROM ratelimit_answers ORDER BY observed_at")
    assert [a["request_uuid"] for a in answers] == [recs[0].id, recs[1].id, recs[2].id]
    assert '"5h": 1.04' in answers[2]["u"]

    # an older answer arriving later (another instance, a journal replay) does not win
    await insert_records(db_conn, [_rec(T0 - timedelta(minutes=5), _unified("0.99", "0.5"))], PartitionCache())
    assert (await q.limits("acct_sub"))[0]["windows"]["5h"]["utilization"] == 1.04

    # replaying the same batch changes nothing
    await insert_records(db_conn, recs, PartitionCache())
    assert await db_conn.fetchval("SELECT count(*) FROM ratelimit_answers") == 4
    await pool.close()


async def test_history_is_pruned_with_retention(db_conn):
    old = datetime.now(UTC) - timedelta(days=40)
    await insert_records(db_conn, [_rec(old, _unified("0.5", "0.5")), _rec(datetime.now(UTC), _unified("0.6", "0.5"))],
                         PartitionCache())
    await drop_partitions_before(db_conn, (datetime.now(UTC) - timedelta(days=30)).date())
    assert await db_conn.fetchval("SELECT count(*) FROM ratelimit_samples") == 2
    assert await db_conn.fetchval("SELECT count(*) FROM ratelimit_answers") == 1
    assert await db_conn.fetchval("SELECT count(*) FROM ratelimit_latest") == 1
