"""The limits panel and the account view, driven by Pilot against a real proxy + API + mock upstream.

Ground truth is the mock's headers for the credential (what Anthropic would have sent), compared
with what the panel draws and what Enter opens.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx

from nexus.core.accounts import anonymous_account
from tests.support.traffic import api_get, wait_total
from tests.tui.test_tui_live import make_app, until
from tui.panels.windows import TokenWindowsPanel
from tui.screens.limits import LimitsScreen

OAUTH = "sk-ant-oat01-tui-limits-test"
U = "anthropic-ratelimit-unified-"


async def _use_subscription(stack: Any, n: int) -> dict[str, str]:
    """``n`` answers of 1,000,100 tokens each on a subscription credential; the last one's headers."""
    headers = {"authorization": f"Bearer {OAUTH}", "anthropic-version": "2023-06-01",
               "x-mock-input-tokens": "1000000", "x-mock-output-tokens": "100"}
    body = {"model": "claude-sonnet-4-5", "max_tokens": 200, "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient(base_url=stack.proxy_url, timeout=30) as c:
        for _ in range(n):
            r = await c.post("/v1/messages", json=body, headers=headers)
            assert r.status_code == 200, r.text
    # the writer stores records and snapshots off the request path: wait until this answer is in
    deadline = time.monotonic() + 10
    while True:
        got = await api_get(stack, "/api/limits", accountId=anonymous_account(OAUTH))
        if got["accounts"] and got["accounts"][0]["requestId"] == r.headers["request-id"]:
            break
        assert time.monotonic() < deadline, got
        await asyncio.sleep(0.05)
    await wait_total(stack, n)
    return {k: v for k, v in r.headers.items() if k.startswith("anthropic-ratelimit-")}


async def test_limits_panel_and_account_view(stack: Any, tmp_path: Path) -> None:
    sent = await _use_subscription(stack, 4)  # 4,000,400 of the mock's 5,000,000 five-hour tokens
    assert sent[U + "5h-utilization"] == "0.8001" and sent[U + "5h-status"] == "allowed_warning"
    acct = anonymous_account(OAUTH)
    app = make_app(stack, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        panel = app.query_one(TokenWindowsPanel)
        await until(pilot, lambda: acct in panel.row_ids, what="the subscription's row")
        cells = panel._rows[acct]
        assert cells[1].plain.endswith("80%")  # the 5h utilization the mock sent, as a percentage
        assert cells[4].plain == "warn" and "yellow" in str(cells[1].style)
        assert panel.border_title.startswith("Limits · 1 measured")
        # keys: Shift+Tab from the log back to the panel, cursor onto the row, Enter opens the account
        for _ in range(8):
            if panel.has_focus:
                break
            await pilot.press("shift+tab")
        assert panel.has_focus
        panel.move_cursor(panel.row_ids.index(acct))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, LimitsScreen) and app.screen.history is not None,
                    what="account view with history")
        screen = app.screen
        assert isinstance(screen, LimitsScreen) and screen.account_id == acct
        assert screen.account is not None and screen.account.headers == sent  # the raw headers, exactly
        assert [s.utilization for s in screen.history if s.window == "5h"][-1] == 0.8001
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, LimitsScreen), what="back to the dashboard")
