"""The alert evaluator against a real PostgreSQL, a fake clock and local capture servers.

Each scenario writes traffic with ``insert_records`` at fake-clock times (so the rollups are
the real ones), steps the clock, calls ``evaluate_once`` and checks what reached the webhook.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from nexus.core.records import Record
from nexus.core.settings import Settings
from nexus.store import alerts as q
from nexus.store.pool import create_pool
from nexus.store.write import PartitionCache, insert_records
from proxy.alerts.manager import AlertManager
from proxy.runtime import Runtime
from tests.support.capture import CaptureServer, HangingServer, refused_url

T0 = datetime(2030, 1, 1, 10, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
async def capture():
    srv = await CaptureServer().start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def make_manager(db_dsn, capture):
    made: list[AlertManager] = []

    async def make(clock: FakeClock, pool_size: int = 5, **overrides: Any) -> AlertManager:
        base: dict[str, Any] = dict(database_url=db_dsn, alert_webhook_url=capture.url("/hook"),
                                    alert_channel_timeout_s=1.0, alert_retry_backoff_s=0.05)
        base.update(overrides)
        rt = Runtime(settings=Settings.of(**base))
        rt.pool = await create_pool(db_dsn, min_size=0, max_size=pool_size)
        m = AlertManager(rt, clock=clock)
        m.dispatcher.start()
        made.append(m)
        return m

    yield make
    for m in made:
        await m.stop()
        await m.runtime.pool.close()


@pytest.fixture
async def writer(db_dsn):
    conn = await asyncpg.connect(db_dsn)
    cache = PartitionCache()

    async def put(at: datetime, n: int = 1, errors: int = 0, latency_ms: float = 100.0,
                  account: str = "acct_a", tokens: tuple[int, int] = (10, 10), cost: str = "0.0001") -> None:
        recs = [Record(created_at=at, domain="d.example", account_id=account, model="claude-sonnet-4-5",
                       status_code=529 if i < errors else 200, error_type="overloaded_error" if i < errors else None,
                       input_tokens=tokens[0], output_tokens=tokens[1], response_time_ms=latency_ms,
                       cost_usd=Decimal(cost)) for i in range(n)]
        await insert_records(conn, recs, cache)

    try:
        yield put
    finally:
        await conn.close()


def _events(capture: CaptureServer) -> list[tuple[str, str, str]]:
    return [(r.json["event"], r.json["alert"]["rule"], r.json["alert"]["key"]) for r in capture.on("/hook")]


async def _settle(capture: CaptureServer, n: int) -> None:
    await capture.wait_for(n, "/hook", timeout=3)
    await asyncio.sleep(0.1)  # anything extra would arrive now


async def test_error_rate_fires_once_after_5_minutes_and_resolves_once(make_manager, writer, capture):
    clock = FakeClock()
    m = await make_manager(clock)
    produced: list[tuple[int, str]] = []
    for step in range(41):
        if 4 <= step <= 24:
            await writer(clock.now, n=20, errors=5)  # 25 % errors
        else:
            await writer(clock.now, n=20)
        for e in await m.evaluate_once():
            produced.append((step, e["event"]))
        clock.advance(30)
    # errors from step 4 (10:02:00); held 5 minutes -> fires at step 14 (10:07:00); clears once the
    # last error minute leaves the lookback
    assert [p for p in produced if p[1] == "firing"] == [(14, "firing")]
    assert [p[1] for p in produced] == ["firing", "resolved"]
    await _settle(capture, 2)
    assert _events(capture) == [("firing", "error_rate", "global"), ("resolved", "error_rate", "global")]
    fired = capture.on("/hook")[0].json["alert"]
    assert fired["startedAt"] == (T0 + timedelta(minutes=7)).isoformat()
    assert fired["summary"].startswith("Error rate 25.0%") and fired["severity"] == "critical"
    # stored, and on this instance's stream
    async with m.runtime.pool.acquire() as conn:
        assert await q.firing_alerts(conn) == []
        rows = await q.recent_alerts(conn)
    assert len(rows) == 1 and rows[0]["status"] == "resolved" and rows[0]["resolved_at"] is not None
    assert [e.data["event"] for e in m.runtime.broker.recent() if e.type == "alert"] == ["firing", "resolved"]


async def test_repeat_interval_is_respected(make_manager, writer, capture):
    clock = FakeClock()
    m = await make_manager(clock, alert_error_rate_window_s=0, alert_repeat_interval_s=600)
    kinds = []
    for _ in range(30):  # 29 minutes of errors, one evaluation a minute
        await writer(clock.now, n=20, errors=10)
        kinds += [e["event"] for e in await m.evaluate_once()]
        clock.advance(60)
    assert kinds == ["firing", "repeat", "repeat"]
    await _settle(capture, 3)
    assert [r.json["alert"]["notifyCount"] for r in capture.on("/hook")] == [1, 2, 3]
    assert len({r.json["dedupKey"] for r in capture.on("/hook")}) == 1


async def test_p95_latency_fires_after_10_minutes_and_resolves(make_manager, writer, capture):
    clock = FakeClock()
    m = await make_manager(clock)
    kinds: list[tuple[int, str, str]] = []
    for step in range(40):  # one evaluation a minute
        slow = 2 <= step <= 20
        await writer(clock.now, n=20, latency_ms=15_000 if slow else 300)
        kinds += [(step, e["event"], e["rule"]) for e in await m.evaluate_once()]
        clock.advance(60)
    assert kinds == [(12, "firing", "p95_latency"), (22, "resolved", "p95_latency")]
    await _settle(capture, 2)
    assert "p95 latency" in capture.on("/hook")[0].json["alert"]["summary"]


async def test_token_window_fixed_and_per_account_limits(make_manager, writer, capture):
    clock = FakeClock()
    m = await make_manager(clock, token_window_limit=1000, alert_token_limits="acct_big=100000")
    await writer(clock.now, account="acct_a", tokens=(450, 450))  # 90 % of the default limit
    await writer(clock.now, account="acct_big", tokens=(450, 450))  # 0.9 % of its own
    got = await m.evaluate_once()
    assert [(e["event"], e["rule"], e["key"]) for e in got] == [("firing", "token_window", "acct_a")]
    assert got[0]["summary"].startswith("Token usage at 90% for account acct_a")
    clock.advance(60)
    assert await m.evaluate_once() == []
    clock.advance(5 * 3600)  # the usage slides out of the 5-hour window
    got = await m.evaluate_once()
    assert [(e["event"], e["key"]) for e in got] == [("resolved", "acct_a")]


async def test_token_window_learned_limit(make_manager, writer, capture):
    clock = FakeClock()
    m = await make_manager(clock, alert_token_limit_mode="learned")
    # six days of history: a window every 5 hours, each used 1000 tokens
    t = T0 - timedelta(days=6)
    while t < T0 - timedelta(hours=5):
        await writer(t, account="acct_a", tokens=(500, 500))
        t += timedelta(hours=5)
    await writer(T0, account="acct_a", tokens=(300, 300))  # 60 % of the learned 1000
    assert await m.evaluate_once() == []
    clock.advance(60)
    await writer(clock.now, account="acct_a", tokens=(150, 150))  # 900 = 90 %
    got = await m.evaluate_once()
    assert [(e["event"], e["key"]) for e in got] == [("firing", "acct_a")]
    assert got[0]["labels"]["limit"] == pytest.approx(1000.0)
    assert m.limit_for("acct_a") == 1000 and m.limit_for("acct_unknown") is None


async def test_token_window_counts_cache_tokens_like_the_monitor(make_manager, writer, db_dsn):
    clock = FakeClock()
    m = await make_manager(clock, token_window_limit=10_000)
    conn = await asyncpg.connect(db_dsn)
    try:
        await insert_records(conn, [Record(created_at=T0, account_id="acct_c", status_code=200, input_tokens=100,
                                           output_tokens=100, cache_read_input_tokens=8_500)])
    finally:
        await conn.close()
    got = await m.evaluate_once()
    assert [(e["key"], e["value"]) for e in got] == [("acct_c", pytest.approx(87.0))]


async def test_daily_cost_budget_global_and_per_account(make_manager, writer, capture):
    clock = FakeClock()
    m = await make_manager(clock, alert_daily_budget_usd=1.0, alert_account_budgets_usd="acct_a=0.5")
    await writer(clock.now, account="acct_a", cost="0.6")
    got = await m.evaluate_once()
    assert [(e["event"], e["key"]) for e in got] == [("firing", "account:acct_a")]
    clock.advance(60)
    await writer(clock.now, account="acct_b", cost="0.5")
    got = await m.evaluate_once()
    assert [(e["event"], e["key"]) for e in got] == [("firing", "global")]
    clock.now = datetime(2030, 1, 2, 0, 0, 30, tzinfo=UTC)  # a new day: spend starts at zero
    got = await m.evaluate_once()
    assert sorted((e["event"], e["key"]) for e in got) == [("resolved", "account:acct_a"), ("resolved", "global")]


async def test_db_pool_rule_counts_connections_in_use(make_manager, capture):
    clock = FakeClock()
    m = await make_manager(clock, pool_size=5, alert_db_pool_percent=70, alert_db_pool_window_s=60)
    pool = m.runtime.pool
    held = [await pool.acquire() for _ in range(4)]  # 80 % of 5
    try:
        kinds = []
        for _ in range(3):
            kinds += [(e["event"], e["key"]) for e in await m.evaluate_once()]
            clock.advance(30)
        assert kinds == [("firing", f"pool:{m.instance_id}")]
    finally:
        for c in held:
            await pool.release(c)
    got = await m.evaluate_once()
    assert [(e["event"], e["rule"]) for e in got] == [("resolved", "db_pool")]


async def test_two_instances_on_one_database_notify_once(make_manager, writer, capture):
    clock = FakeClock()
    a = await make_manager(clock, alert_error_rate_window_s=60)
    b = await make_manager(clock, alert_error_rate_window_s=60)
    a._listener_task = asyncio.create_task(a._listen())
    b._listener_task = asyncio.create_task(b._listen())
    await asyncio.wait_for(asyncio.gather(a.listening.wait(), b.listening.wait()), 10)
    for step in range(12):
        await writer(clock.now, n=20, errors=10 if step < 5 else 0)
        await asyncio.gather(a.evaluate_once(), b.evaluate_once())
        clock.advance(30)
    await _settle(capture, 2)
    assert _events(capture) == [("firing", "error_rate", "global"), ("resolved", "error_rate", "global")]
    assert a.evaluations + b.evaluations == 12  # one evaluation per round, not two
    # both instances' streams carry both events (one directly, the other through NOTIFY)
    for m in (a, b):
        for _ in range(100):
            if len([e for e in m.runtime.broker.recent() if e.type == "alert"]) >= 2:
                break
            await asyncio.sleep(0.02)
        assert [e.data["event"] for e in m.runtime.broker.recent() if e.type == "alert"] == ["firing", "resolved"]


async def test_a_second_firing_row_for_the_same_alert_is_refused(db_conn):
    kw = dict(rule="error_rate", key="global", title="t", severity="critical", summary="s", value=1.0,
              threshold=0.05, labels={}, started_at=T0, instance_id="i")
    first = await q.insert_firing(db_conn, **kw)
    assert first is not None
    assert await q.insert_firing(db_conn, **{**kw, "instance_id": "other"}) is None
    assert await q.mark_resolved(db_conn, first["id"], T0, "done", 0.0) is not None
    assert await q.mark_resolved(db_conn, first["id"], T0, "done", 0.0) is None  # resolves once


async def test_dead_channels_do_not_slow_the_evaluator(make_manager, writer, capture):
    hanging = await HangingServer().start()
    clock = FakeClock()
    m = await make_manager(clock, alert_error_rate_window_s=0, slack_webhook_url=refused_url(),
                           alert_webhook_url=f"http://127.0.0.1:{hanging.port}/hang",
                           pagerduty_routing_key="k" * 20, pagerduty_url=capture.url("/pd"),
                           alert_channel_timeout_s=5.0, alert_retry_attempts=5, alert_retry_backoff_s=1.0)
    try:
        await writer(clock.now, n=20, errors=20)
        t0 = time.monotonic()
        got = await m.evaluate_once()
        took = time.monotonic() - t0
        assert [e["event"] for e in got] == ["firing"]
        assert took < 0.5
        pd = await capture.wait_for(1, "/pd", timeout=3)
        assert pd and pd[0].json["event_action"] == "trigger"
        # the next rounds are not held up either, while slack/webhook keep failing in the background
        for _ in range(3):
            clock.advance(30)
            t0 = time.monotonic()
            await m.evaluate_once()
            assert time.monotonic() - t0 < 0.5
    finally:
        t0 = time.monotonic()
        await m.stop()
        assert time.monotonic() - t0 < 4
        await hanging.stop()


async def test_api_alerts_lists_active_and_recent(make_manager, writer, capture):
    from proxy.api.app import create_dashboard_app

    clock = FakeClock()
    m = await make_manager(clock, alert_error_rate_window_s=0, token_window_limit=100)
    m.runtime.dashboard_key = "alerts-test-key-0123456789"
    m.runtime.alerts = m
    await writer(clock.now, n=20, errors=20, tokens=(100, 100))
    await m.evaluate_once()  # error rate + token window fire
    clock.advance(6 * 3600)
    await writer(clock.now, n=20, tokens=(0, 0))
    await m.evaluate_once()  # token window resolves (usage left the window); error rate clears too
    clock.advance(60)
    await writer(clock.now, n=20, errors=20, tokens=(0, 0))
    await m.evaluate_once()  # error rate fires again

    app = create_dashboard_app(m.runtime)
    client = app.test_client()
    r = await client.get("/api/alerts")
    assert r.status_code == 401
    r = await client.get("/api/alerts", headers={"X-Dashboard-Key": "wrong"})
    assert r.status_code == 403
    hdr = {"Authorization": "Bearer alerts-test-key-0123456789"}
    r = await client.get("/api/alerts?limit=abc", headers=hdr)
    assert r.status_code == 400 and (await r.get_json())["error"]["param"] == "limit"
    r = await client.get("/api/alerts", headers=hdr)
    assert r.status_code == 200
    body = await r.get_json()
    assert [(a["rule"], a["status"]) for a in body["active"]] == [("error_rate", "firing")]
    assert sorted((a["rule"], a["status"]) for a in body["recent"]) == [
        ("error_rate", "firing"), ("error_rate", "resolved"), ("token_window", "resolved")]
    assert body["recent"][0]["status"] == "firing"  # newest change first
    assert set(body["channels"]) == {"webhook"}
    r = await client.get("/api/alerts?limit=1", headers=hdr)
    assert len((await r.get_json())["recent"]) == 1


async def test_evaluator_survives_the_database_going_away(make_manager, capture):
    clock = FakeClock()
    m = await make_manager(clock, alert_eval_interval_s=0.05)
    await m.runtime.pool.close()
    m._task = asyncio.create_task(m._loop())
    await asyncio.sleep(0.3)
    assert not m._task.done() and m.last_error is not None
    m._task.cancel()
    m.runtime.pool = await create_pool(m.settings.database.url, min_size=0, max_size=2)


def _unified_record(at: datetime, util: str, reset: datetime, status: str = "allowed_warning",
                    account: str = "acct_sub") -> Record:
    """An answer whose headers say the account's 5h window is at ``util`` and resets at ``reset``."""
    epoch = str(int(reset.timestamp()))
    headers = {"anthropic-ratelimit-unified-status": status, "anthropic-ratelimit-unified-reset": epoch,
               "anthropic-ratelimit-unified-representative-claim": "five_hour",
               "anthropic-ratelimit-unified-5h-utilization": util, "anthropic-ratelimit-unified-5h-reset": epoch,
               "anthropic-ratelimit-unified-5h-status": status,
               "anthropic-ratelimit-unified-7d-utilization": "0.2",
               "anthropic-ratelimit-unified-7d-reset": str(int((reset + timedelta(days=3)).timestamp())),
               "anthropic-ratelimit-unified-7d-status": "allowed"}
    return Record(created_at=at, domain="d.example", account_id=account, model="claude-sonnet-4-5",
                  status_code=429 if status == "rejected" else 200, input_tokens=10, output_tokens=10,
                  ratelimit_headers=headers, ratelimit_observed_at=at)


async def test_token_window_fires_on_measured_utilization_and_resolves_after_reset(make_manager, db_dsn, capture):
    clock = FakeClock()
    m = await make_manager(clock)  # no limit configured: the measured utilization is enough
    reset = T0 + timedelta(hours=4)
    conn = await asyncpg.connect(db_dsn)
    try:
        await insert_records(conn, [_unified_record(T0, "0.5", reset, "allowed")])
        assert await m.evaluate_once() == []
        clock.advance(60)
        await insert_records(conn, [_unified_record(clock.now, "0.85", reset)])
        got = await m.evaluate_once()
        assert [(e["event"], e["rule"], e["key"]) for e in got] == [("firing", "token_window", "acct_sub:5h")]
        assert got[0]["summary"] == "Token limit approaching for acct_sub : 5h window at 85 %, resets 14:00 UTC"
        assert got[0]["value"] == pytest.approx(85.0)
        clock.advance(60)
        assert await m.evaluate_once() == []  # still firing: no second notification
        clock.advance(4 * 3600)  # past the reset: the window is new, the alert resolves
        got = await m.evaluate_once()
        assert [(e["event"], e["key"]) for e in got] == [("resolved", "acct_sub:5h")]

        # a rejection fires at once, whatever the percentage
        clock.advance(60)
        reset2 = clock.now + timedelta(hours=5)
        await insert_records(conn, [_unified_record(clock.now, "0.4", reset2, "rejected", account="acct_rej")])
        got = await m.evaluate_once()
        assert [(e["event"], e["key"]) for e in got] == [("firing", "acct_rej:5h")]
        assert "(rejected)" in got[0]["summary"]
    finally:
        await conn.close()
    await _settle(capture, 3)


async def test_the_peak_and_the_firing_summary_survive_the_resolve(make_manager, writer, capture):
    """25 % errors fire; 50 % two minutes later is the peak; 20 % (still firing) does not lower it;
    a clean minute resolves with value 0 — the stored peak is 0.5 and the firing summary is kept."""
    clock = FakeClock()
    m = await make_manager(clock, alert_error_rate_window_s=0)
    kinds = []
    for errors in (5, 10, 4, 0):
        await writer(clock.now, n=20, errors=errors)
        kinds += [e["event"] for e in await m.evaluate_once()]
        async with m.runtime.pool.acquire() as conn:
            rows = [q.alert_json(r) for r in await q.recent_alerts(conn)]
        assert len(rows) == 1
        peak = max(x / 20 for x in (5, 10, 4, 0)[: (5, 10, 4, 0).index(errors) + 1])
        assert rows[0]["peakValue"] == pytest.approx(peak), errors
        clock.advance(120)  # the last minute alone in the 60 s lookback
    assert kinds == ["firing", "resolved"]
    a = rows[0]
    assert a["status"] == "resolved" and a["value"] == 0.0 and a["peakValue"] == pytest.approx(0.5)
    assert a["firedSummary"].startswith("Error rate 25.0% over the last 60s (5/20 requests")
    assert a["summary"] != a["firedSummary"]
    await _settle(capture, 2)
    resolved = capture.on("/hook")[1].json["alert"]
    assert resolved["peakValue"] == pytest.approx(0.5) and resolved["firedSummary"] == a["firedSummary"]
