"""``t`` on the alerts screen sends a test alert through the server's channels (``POST /api/alerts/test``)
and shows each channel's outcome; a real proxy, a capture server for Slack, a dead webhook."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Static

from tests.support.capture import CaptureServer, refused_url
from tests.support.db import stack_settings
from tests.tui.test_tui_live import until
from tui.app import NexusApp
from tui.screens.alerts import AlertsScreen


async def test_t_on_the_alerts_screen_sends_a_test_alert(db_dsn, tmp_path: Path, mock_upstream,
                                                         capture: CaptureServer) -> None:
    from proxy.service import ProxyService

    service = ProxyService(stack_settings(tmp_path, db_dsn, mock_upstream.url, SLACK_WEBHOOK_URL=capture.url("/slack"),
                                          ALERT_WEBHOOK_URL=refused_url(), ALERT_RETRY_ATTEMPTS="1"))
    info = await service.start()
    try:
        app = NexusApp(info["dashboard_url"], info["dashboard_key"], poll_interval=0.2, tick=0.1,
                       watch_terminal=False, export_dir=tmp_path)
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: app.polls > 0, what="first poll")
            await pilot.press("a")
            await until(pilot, lambda: isinstance(app.screen, AlertsScreen), what="alerts screen")
            line = app.screen.query_one("#alerts-test", Static)
            assert "t: send a test notification" in str(line.render())
            await pilot.press("t")
            await until(pilot, lambda: "webhook FAILED" in str(line.render()), what="outcome")
            assert str(line.render()) == ("Test alert: slack delivered (HTTP 200)  "
                                          "webhook FAILED (connection refused)")
        got = capture.on("/slack")
        assert len(got) == 1 and got[0].json["text"].startswith("[TEST] Test notification")
    finally:
        await service.stop()
