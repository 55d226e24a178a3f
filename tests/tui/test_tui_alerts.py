"""The alerts screen stays live while open: an error burst through the real proxy fires an alert
that appears without reopening the screen, and its resolution shows fired/resolved times, how long
it lasted, the peak seen and the message it fired with; Enter on it lists the errors of its window
(the six 529s sent), Enter on one of those opens that request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from tests.support.db import stack_settings
from tests.tui.screen import screen_text
from tests.tui.test_tui_live import until
from tui.app import NexusApp
from tui.screens.alert_errors import AlertErrorsScreen
from tui.screens.alerts import AlertsScreen
from tui.screens.request import RequestScreen

BODY = {"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
HDR = {"x-api-key": "sk-ant-tui-alerts-0001", "anthropic-version": "2023-06-01"}


async def test_alerts_screen_updates_while_open(db_dsn: str, tmp_path: Path, mock_upstream) -> None:
    from proxy.service import ProxyService

    settings = stack_settings(tmp_path, db_dsn, mock_upstream.url, ALERT_EVAL_INTERVAL_S="0.2",
                              ALERT_ERROR_RATE_WINDOW_S="1", ALERT_MIN_REQUESTS="5")
    service = ProxyService(settings)
    info = await service.start()
    try:
        app = NexusApp(info["dashboard_url"], info["dashboard_key"], poll_interval=0.3, tick=0.1,
                       watch_terminal=False)
        async with app.run_test(size=(120, 30)) as pilot:
            await until(pilot, lambda: app.polls > 0 and "alerts" in app.data, what="first poll")
            await pilot.press("a")
            assert isinstance(app.screen, AlertsScreen)
            await pilot.pause(0.2)
            assert "No alerts." in screen_text(app)
            async with httpx.AsyncClient(base_url=info["proxy_url"], timeout=30) as c:
                for i in range(12):
                    extra = {"x-mock-status": "529"} if i % 2 else {}
                    await c.post("/v1/messages", json=BODY, headers={**HDR, **extra})
            await until(pilot, lambda: "FIRING" in screen_text(app), timeout=15, what="firing, screen open")
            firing = next(a for a in app.alerts.values() if a.firing)
            fired_message = firing.message
            assert fired_message
            # ten minutes on for the evaluator: the burst has left its window, the alert resolves
            service.alerts.clock = lambda: datetime.now(UTC) + timedelta(minutes=10)
            await until(pilot, lambda: "resolved" in screen_text(app) and "FIRING" not in screen_text(app),
                        timeout=15, what="resolved, screen still open")
            assert isinstance(app.screen, AlertsScreen)
            a = app.alerts[firing.id]
            assert a.resolved_at is not None and a.fired_message == fired_message
            assert a.peak is not None and a.peak >= (firing.value or 0)
            text = screen_text(app)
            row = next(line for line in text.splitlines() if "resolved" in line and "error" in line)
            from tui import fmt
            assert fmt.clock(a.fired_at) in row and fmt.clock(a.resolved_at) in row
            assert fmt.duration((a.resolved_at - a.fired_at).total_seconds()) in row
            assert fired_message.split()[0] in text
            # Enter: the errors of that alert's window — exactly the six 529s the burst sent
            await pilot.press("enter")
            assert isinstance(app.screen, AlertErrorsScreen)
            errs = app.screen
            await until(pilot, lambda: errs.loads > 0, what="errors of the window")
            await pilot.pause(0.1)
            table = errs.query_one("#alert-errors")
            assert table.row_count == 6
            text = screen_text(app)
            assert "6 errors: 529 overloaded_error ×6" in text, text
            assert text.count("✖529") == 6
            await pilot.press("enter")  # the newest error's drill-down
            await until(pilot, lambda: isinstance(app.screen, RequestScreen) and app.screen.detail is not None,
                        what="drill-down")
            assert app.screen.detail.event.status == 529
            await pilot.press("q")
            assert app.screen is errs
            await pilot.press("q")
            assert isinstance(app.screen, AlertsScreen)
    finally:
        await service.stop()


async def test_an_account_alert_lists_only_that_accounts_errors(stack, tmp_path: Path) -> None:
    """A limit alert is about one account: its errors screen asks the API for that account only."""
    from tests.support.traffic import api_get, send, wait_total
    from tests.tui.test_tui_live import make_app
    from tui.api.models import Alert

    await send(stack, 2, status=529, key="sk-ant-tui-test-a")
    await send(stack, 3, status=429, key="sk-ant-tui-test-b")
    await wait_total(stack, 5)
    every = await api_get(stack, "/api/errors", since="1h", limit=50)
    accounts = {r["accountId"] for r in every["recent"]}
    assert len(accounts) == 2
    b = next(r["accountId"] for r in every["recent"] if r["status"] == 429)
    now = datetime.now(UTC)
    alert = Alert(id="6", rule="Token limit approaching", rule_id="token_window", key=f"{b}:5h", account=b,
                  state="resolved", fired_at=now - timedelta(minutes=1), resolved_at=now, value=3.0, peak=97.5,
                  threshold=80.0)
    app = make_app(stack, tmp_path)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: app.polls > 0, what="first poll")
        screen = AlertErrorsScreen(app.client, alert)
        await app.push_screen(screen)
        await until(pilot, lambda: screen.loads > 0, what="errors of the window")
        await pilot.pause(0.1)
        text = screen_text(app)
        assert f"errors of {b}" in text and "3 errors: 429 rate_limit_error ×3" in text, text
        assert screen.query_one("#alert-errors").row_count == 3 and "✖529" not in text
        await pilot.press("e")  # export = this view: the alert's errors, not the dashboard
        await until(pilot, lambda: len(app.last_export) == 2, what="export")
        import json

        doc = json.loads(app.last_export[1].read_text())
        assert doc["accountId"] == b and doc["errors"]["totalErrors"] == 3 and "totalRequests" not in doc
        assert {r["accountId"] for r in doc["errors"]["recent"]} == {b}
