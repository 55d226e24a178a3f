"""Watching the watcher: each new rule fires and resolves on a real stack, with a controllable clock.

- recording stalled: the writer is paused for real (another session holds an exclusive lock on
  ``api_requests``, so the COPY waits), the clock moves past ``ALERT_RECORDING_STALL_S``;
- journal growing: the PostgreSQL server is stopped mid-load, records spill to the journal;
- alert channel failing: a webhook answering 500; its alert goes out through Slack only;
- clock skew: this instance's wall clock set 30 s ahead of the database server's.

The evaluator's own timer is set to an hour, so only the rounds the test runs happen.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx

from tests.support.capture import CaptureServer
from tests.support.db import stack_settings

BODY = {"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
HDR = {"x-api-key": "sk-ant-watchdog-0001", "anthropic-version": "2023-06-01"}
QUIET = {"ALERT_EVAL_INTERVAL_S": "3600", "ALERT_RETRY_BACKOFF_S": "0.01", "ALERT_RETRY_ATTEMPTS": "1"}


class FakeClock:
    def __init__(self) -> None:
        self.base = datetime.now(UTC)
        self.offset = 0.0

    def __call__(self) -> datetime:
        return self.base + timedelta(seconds=self.offset)


async def _start(tmp_path: Path, dsn: str, upstream: str, **env: str):
    from proxy.service import ProxyService

    service = ProxyService(stack_settings(tmp_path, dsn, upstream, **{**QUIET, **env}))
    info = await service.start()
    # The timer's first round (at start) must be over: from here on only the test's rounds run.
    await _until(lambda: service.alerts.evaluations >= 1)
    clock = FakeClock()
    service.runtime.clock = clock
    service.alerts.clock = clock
    return service, info, clock


async def _send(info: dict, n: int) -> None:
    async with httpx.AsyncClient(base_url=info["proxy_url"], timeout=30) as c:
        for _ in range(n):
            r = await c.post("/v1/messages", json=BODY, headers=HDR)
            assert r.status_code == 200  # proxying never waits on recording


async def _until(pred, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def _alerts(info: dict) -> dict:
    async with httpx.AsyncClient(base_url=info["dashboard_url"], timeout=10) as c:
        r = await c.get("/api/alerts", headers={"X-Dashboard-Key": info["dashboard_key"]})
        assert r.status_code == 200, r.text
        return r.json()


def _kinds(events: list[dict]) -> list[tuple[str, str]]:
    return [(e["rule"], e["event"]) for e in events]


async def test_recording_stalled_fires_when_the_writer_is_stuck_and_resolves(db_dsn, tmp_path, mock_upstream,
                                                                              capture: CaptureServer):
    service, info, clock = await _start(tmp_path, db_dsn, mock_upstream.url, ALERT_WEBHOOK_URL=capture.url("/hook"))
    wd, iid = service.alerts.watchdog, service.runtime.instance_id
    locker = await asyncpg.connect(db_dsn)
    try:
        tr = locker.transaction()
        await tr.start()
        await locker.execute("LOCK TABLE api_requests IN ACCESS EXCLUSIVE MODE")
        await _send(info, 3)
        rec = service.runtime.recorder
        await _until(lambda: rec.waiting_since is not None)
        clock.offset = 119.0
        assert await wd.evaluate_once() == []  # not yet: 119 s < ALERT_RECORDING_STALL_S (120)
        clock.offset = 121.0
        events = await wd.evaluate_once()
        assert _kinds(events) == [("recording_stalled", "firing")]
        assert events[0]["key"] == iid and events[0]["value"] == 121.0 and events[0]["severity"] == "critical"
        assert events[0]["summary"].startswith(f"No record written for 121s on {iid} while ")
        got = await capture.wait_for(1, "/hook")
        assert [(m.json["event"], m.json["alert"]["rule"]) for m in got] == [("firing", "recording_stalled")]
        active = (await _alerts(info))["active"]
        assert [(a["rule"], a["key"], a["status"]) for a in active] == [("recording_stalled", iid, "firing")]
        clock.offset = 125.0  # still stuck, worse: no new event, but the peak moves
        assert await wd.evaluate_once() == []  # fires once
        await tr.rollback()  # the writer gets its lock and finishes
        await _until(lambda: rec.waiting_since is None)
        clock.offset = 130.0
        assert _kinds(await wd.evaluate_once()) == [("recording_stalled", "resolved")]
        await capture.wait_for(2, "/hook")
        assert [m.json["event"] for m in capture.on("/hook")] == ["firing", "resolved"]
        doc = await _alerts(info)
        assert doc["active"] == [] and [(a["rule"], a["status"]) for a in doc["recent"]] == [
            ("recording_stalled", "resolved")]
        assert isinstance(doc["recent"][0]["id"], int)  # stored in the alerts table
        # what it was at its worst and what it fired with, stored too (not only the calm resolve)
        assert doc["recent"][0]["peakValue"] == 125.0
        assert doc["recent"][0]["firedSummary"].startswith(f"No record written for 121s on {iid} while ")
    finally:
        await locker.close()
        await service.stop()


async def test_journal_growing_fires_while_postgres_is_down_and_resolves(own_pg, tmp_path, mock_upstream,
                                                                       capture: CaptureServer):
    service, info, clock = await _start(tmp_path, own_pg.dsn(), mock_upstream.url,
                                        ALERT_WEBHOOK_URL=capture.url("/hook"))
    wd, iid, rec = service.alerts.watchdog, service.runtime.instance_id, service.runtime.recorder
    try:
        await _send(info, 3)
        await _until(lambda: rec.written == 3)
        own_pg.stop()  # mid-load
        await _send(info, 5)
        await _until(lambda: rec.journal.pending == 5)
        assert not service.runtime.db_connected
        clock.offset = 299.0
        assert await wd.evaluate_once() == []
        clock.offset = 301.0
        events = await wd.evaluate_once()
        assert _kinds(events) == [("journal_growing", "firing")]
        assert events[0]["labels"]["pending"] == 5 and events[0]["id"].startswith(f"local-{iid}-")
        got = await capture.wait_for(1, "/hook")
        assert got[0].json["alert"]["rule"] == "journal_growing"
        doc = await _alerts(info)  # the database is away: served from memory, not a 503
        assert doc["database"] == "disconnected"
        assert [(a["rule"], a["status"]) for a in doc["active"]] == [("journal_growing", "firing")]
        own_pg.start()
        await _until(lambda: rec.journal.pending == 0 and rec.written == 8, timeout=30)
        clock.offset = 320.0
        assert _kinds(await wd.evaluate_once()) == [("journal_growing", "resolved")]
        await capture.wait_for(2, "/hook")
        assert [m.json["event"] for m in capture.on("/hook")] == ["firing", "resolved"]
        doc = await _alerts(info)  # and the incident is in the table now
        assert doc["database"] == "connected" and doc["active"] == []
        stored = [a for a in doc["recent"] if a["rule"] == "journal_growing"]
        assert len(stored) == 1 and isinstance(stored[0]["id"], int) and stored[0]["status"] == "resolved"
    finally:
        await service.stop()


async def test_failing_channel_alert_goes_through_the_other_channels(db_dsn, tmp_path, mock_upstream):
    hook = await CaptureServer(fail_first=1000).start()
    slack = await CaptureServer().start()
    service, info, clock = await _start(tmp_path, db_dsn, mock_upstream.url, ALERT_WEBHOOK_URL=hook.url("/hook"),
                                        SLACK_WEBHOOK_URL=slack.url("/slack"), ALERT_CHANNEL_FAILURES="2")
    mgr, iid = service.alerts, service.runtime.instance_id
    try:
        await mgr.dispatcher.send_test(["webhook"], source=iid)
        assert await mgr.watchdog.evaluate_once() == []  # one failure is not yet "failing"
        await mgr.dispatcher.send_test(["webhook"], source=iid)
        events = await mgr.watchdog.evaluate_once()
        assert _kinds(events) == [("channel_failing", "firing")] and events[0]["key"] == f"{iid}:webhook"
        got = await slack.wait_for(1, "/slack")
        assert got[0].json["text"].startswith("[FIRING] Alert channel failing: Alert channel webhook on ")
        assert "HTTP 500" in got[0].json["text"]
        assert hook.attempts == 2 and mgr.dispatcher.channels["webhook"].queue.qsize() == 0  # not sent there
        hook.fail_first = 0
        assert (await mgr.dispatcher.send_test(["webhook"], source=iid))[0].delivered
        clock.offset = 30.0
        assert _kinds(await mgr.watchdog.evaluate_once()) == [("channel_failing", "resolved")]
        got = await slack.wait_for(2, "/slack")
        assert got[1].json["text"].startswith("[RESOLVED] Alert channel failing")
        assert [m.json["event"] for m in hook.on("/hook")] == ["test"]  # only the test, never its own alert
    finally:
        await service.stop()
        await hook.stop()
        await slack.stop()


async def test_clock_skew_fires_and_resolves(db_dsn, tmp_path, mock_upstream, capture: CaptureServer):
    service, info, clock = await _start(tmp_path, db_dsn, mock_upstream.url, ALERT_WEBHOOK_URL=capture.url("/hook"))
    mgr, iid = service.alerts, service.runtime.instance_id
    try:
        mgr.wall_clock = lambda: datetime.now(UTC) + timedelta(seconds=30)
        clock.offset = 3600.0  # the evaluator runs at most once per interval: move its clock on
        events = await mgr.evaluate_once()
        assert _kinds(events) == [("clock_skew", "firing")]
        assert events[0]["key"] == f"instance:{iid}" and 29.0 < events[0]["value"] < 31.0
        assert events[0]["summary"].startswith(f"Clock of instance {iid} is +")
        async with httpx.AsyncClient(base_url=info["proxy_url"], timeout=10) as c:
            scrape = (await c.get("/metrics")).text
        offset = [line for line in scrape.splitlines() if line.startswith("claude_proxy_clock_offset_seconds ")]
        assert len(offset) == 1 and 29.0 < float(offset[0].split()[1]) < 31.0
        mgr.wall_clock = lambda: datetime.now(UTC)
        clock.offset = 7200.0
        assert _kinds(await mgr.evaluate_once()) == [("clock_skew", "resolved")]
        await capture.wait_for(2, "/hook")
        assert [(m.json["event"], m.json["alert"]["rule"]) for m in capture.on("/hook")] == [
            ("firing", "clock_skew"), ("resolved", "clock_skew")]
    finally:
        await service.stop()
