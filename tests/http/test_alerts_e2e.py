"""An error burst through the real proxy raises an alert on the webhook, /api/alerts and /api/sse,
and it resolves once the burst is over (time moved on with the evaluator's injectable clock)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from httpx_sse import aconnect_sse

from tests.support.capture import CaptureServer
from tests.support.db import stack_settings

BODY = {"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
HDR = {"x-api-key": "sk-ant-e2e-alerts-0001", "anthropic-version": "2023-06-01"}


async def test_error_burst_fires_and_resolves_through_the_whole_stack(db_dsn, tmp_path: Path, mock_upstream):
    from proxy.service import ProxyService

    capture = await CaptureServer().start()
    settings = stack_settings(tmp_path, db_dsn, mock_upstream.url, ALERT_WEBHOOK_URL=capture.url("/hook"),
                              ALERT_EVAL_INTERVAL_S="0.2", ALERT_ERROR_RATE_WINDOW_S="1",
                              ALERT_MIN_REQUESTS="5", ALERT_RETRY_BACKOFF_S="0.05")
    service = ProxyService(settings)
    info = await service.start()
    sse_alerts: list[dict] = []

    async def follow_sse() -> None:
        async with httpx.AsyncClient(base_url=info["dashboard_url"], timeout=None) as c:
            async with aconnect_sse(c, "GET", "/api/sse", headers={"X-Dashboard-Key": info["dashboard_key"]}) as es:
                async for ev in es.aiter_sse():
                    if ev.event == "alert":
                        sse_alerts.append(json.loads(ev.data))

    sse_task = asyncio.create_task(follow_sse())
    try:
        async with httpx.AsyncClient(base_url=info["proxy_url"], timeout=30) as c:
            for i in range(12):
                extra = {"x-mock-status": "529"} if i % 2 else {}
                await c.post("/v1/messages", json=BODY, headers={**HDR, **extra})
        fired = await capture.wait_for(1, "/hook", timeout=10)
        assert [r.json["event"] for r in fired] == ["firing"]
        assert fired[0].json["alert"]["rule"] == "error_rate"
        async with httpx.AsyncClient(base_url=info["dashboard_url"], timeout=10) as c:
            r = await c.get("/api/alerts", headers={"X-Dashboard-Key": info["dashboard_key"]})
            assert r.status_code == 200
            assert [a["rule"] for a in r.json()["active"]] == ["error_rate"]
            assert (await c.get("/api/alerts")).status_code == 401
        # ten minutes later (for the evaluator): the burst has left the lookback window
        service.alerts.clock = lambda: datetime.now(UTC) + timedelta(minutes=10)
        got = await capture.wait_for(2, "/hook", timeout=10)
        await asyncio.sleep(0.6)  # a few more evaluation rounds: nothing else may arrive
        assert [r.json["event"] for r in capture.on("/hook")] == ["firing", "resolved"]
        assert got[1].json["alert"]["id"] == got[0].json["alert"]["id"]
        for _ in range(50):
            if len(sse_alerts) >= 2:
                break
            await asyncio.sleep(0.05)
        assert [a["event"] for a in sse_alerts] == ["firing", "resolved"]
    finally:
        sse_task.cancel()
        with contextlib.suppress(BaseException):
            await sse_task
        await service.stop()
        await capture.stop()


async def test_dead_channels_do_not_slow_the_proxy(db_dsn, tmp_path: Path, mock_upstream):
    """Slack refused, webhook hanging: the proxy answers as fast while alerts fire and retry."""
    import statistics
    import time

    from proxy.service import ProxyService
    from tests.support.capture import HangingServer, refused_url

    hanging = await HangingServer().start()
    pd = await CaptureServer().start()
    settings = stack_settings(tmp_path, db_dsn, mock_upstream.url, SLACK_WEBHOOK_URL=refused_url(),
                              ALERT_WEBHOOK_URL=f"http://127.0.0.1:{hanging.port}/hang",
                              PAGERDUTY_ROUTING_KEY="k" * 32, PAGERDUTY_URL=pd.url("/pd"),
                              ALERT_EVAL_INTERVAL_S="0.1", ALERT_ERROR_RATE_WINDOW_S="0",
                              ALERT_MIN_REQUESTS="5", ALERT_REPEAT_INTERVAL_S="0.2",
                              ALERT_CHANNEL_TIMEOUT_S="30", ALERT_RETRY_BACKOFF_S="0.01")
    service = ProxyService(settings)
    info = await service.start()
    try:
        async with httpx.AsyncClient(base_url=info["proxy_url"], timeout=30) as c:
            async def timed(n: int, **hdr: str) -> list[float]:
                out = []
                for _ in range(n):
                    t0 = time.monotonic()
                    r = await c.post("/v1/messages", json=BODY, headers={**HDR, **hdr})
                    out.append(time.monotonic() - t0)
                    assert r.status_code in (200, 529)
                return out

            baseline = await timed(20)
            await timed(10, **{"x-mock-status": "529"})  # error burst: the alert fires and repeats
            assert await pd.wait_for(2, "/pd", timeout=10)  # PagerDuty still gets through
            during = await timed(40)
        assert statistics.median(during) < statistics.median(baseline) + 0.02
        assert max(during) < 0.5
        alerts = service.alerts.dispatcher.stats()
        assert alerts["webhook"]["delivered"] == 0 and alerts["slack"]["delivered"] == 0
        assert alerts["webhook"]["queued"] >= 1  # stuck behind the hanging receiver, not in our way
    finally:
        t0 = time.monotonic()
        await service.stop()
        assert time.monotonic() - t0 < 10  # shutdown does not wait for the dead receivers
        await hanging.stop()
        await pd.stop()
