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

from tests.conftest import stack_settings
from tests.test_channels import CaptureServer

BODY = {"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
HDR = {"x-api-key": "sk-ant-e2e-alerts-0001", "anthropic-version": "2023-06-01"}


async def test_error_burst_fires_and_resolves_through_the_whole_stack(db_dsn, tmp_path: Path, mock_upstream):
    from proxy.server import ProxyService

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
