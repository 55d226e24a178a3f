"""``POST /api/alerts/test`` on a running proxy: the monitor's "send a test alert" key, through the
alert manager's own channels (capture server up, webhook down)."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.capture import CaptureServer, refused_url
from tests.support.db import stack_settings


async def test_post_alerts_test_reports_each_channel(db_dsn, tmp_path: Path, mock_upstream, capture: CaptureServer):
    from proxy.service import ProxyService

    dead = refused_url()
    settings = stack_settings(tmp_path, db_dsn, mock_upstream.url, SLACK_WEBHOOK_URL=capture.url("/slack"),
                              ALERT_WEBHOOK_URL=dead, ALERT_RETRY_ATTEMPTS="2", ALERT_RETRY_BACKOFF_S="0.01",
                              INSTANCE_ID="inst-api")
    service = ProxyService(settings)
    info = await service.start()
    hdr = {"X-Dashboard-Key": info["dashboard_key"]}
    try:
        async with httpx.AsyncClient(base_url=info["dashboard_url"], timeout=30) as c:
            assert (await c.post("/api/alerts/test")).status_code == 401
            r = await c.post("/api/alerts/test", headers=hdr)
            assert r.status_code == 200
            assert r.json() == {"ok": False, "channels": ["slack", "webhook"], "results": [
                {"channel": "slack", "delivered": True, "attempts": 1, "status": "HTTP 200", "error": None},
                {"channel": "webhook", "delivered": False, "attempts": 2, "status": None,
                 "error": "connection refused"},
            ]}
            r = await c.post("/api/alerts/test?channel=slack", headers=hdr)
            assert r.json()["ok"] is True and [x["channel"] for x in r.json()["results"]] == ["slack"]
            r = await c.post("/api/alerts/test?channel=sms", headers=hdr)
            assert r.status_code == 400 and "channel" in r.text
            # the test counts on the channels' counters, like any delivery
            chans = (await c.get("/api/alerts", headers=hdr)).json()["channels"]
            assert chans["slack"]["delivered"] == 2 and chans["webhook"]["failed"] == 1
            assert chans["webhook"]["consecutiveFailures"] == 1
        got = capture.on("/slack")
        assert len(got) == 2 and all(m.json["text"].startswith("[TEST]") for m in got)
        assert "inst-api" in got[0].json["text"]
    finally:
        await service.stop()
