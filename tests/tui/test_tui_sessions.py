"""The Sessions screen driven by Pilot against a real proxy + dashboard API, fed by Claude-Code-like traffic.

What the screen shows is compared with what the API says (asked over HTTP here), and the drill-down
chain session → request is followed with real keys.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.traffic import api_get, claude_code, send, wait_total
from tests.tui.screen import svg_text
from tui import fmt
from tui.api.query import Query
from tui.app import NexusApp
from tui.panels.log import RequestLog
from tui.screens.request import RequestScreen
from tui.screens.sessions import (
    AgentTable,
    SessionDetailScreen,
    SessionRequestTable,
    SessionsScreen,
    SessionTable,
)

S1 = "5f1e7b2a-8c3d-4e6f-9a0b-1c2d3e4f5a6b"
S2 = "0d9c8b7a-6f5e-4d3c-2b1a-0f9e8d7c6b5a"


async def until(pilot: Any, cond: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await pilot.pause(0.05)


async def seed(stack: Any) -> None:
    await send(stack, 2, extra=claude_code(S1, project="apollo"))
    await send(stack, 2, model="claude-haiku-4-5", extra=claude_code(S1, "agent-a", project="apollo"))
    await send(stack, 1, model="claude-haiku-4-5", extra=claude_code(S1, "agent-b", "agent-a", project="apollo"))
    await send(stack, 1, extra=claude_code(S2, project="zeus"))
    await send(stack, 1)  # no session
    await wait_total(stack, 7)


def make_app(stack: Any, tmp_path: Path) -> NexusApp:
    return NexusApp(stack.dashboard_url, stack.key, poll_interval=0.2, tick=0.1, watch_terminal=False,
                    export_dir=tmp_path, query=Query(time_range="1h"))


def cell_text(table: Any, row_id: str, col: int) -> str:
    return str(table._rows[row_id][col])


async def test_sessions_screen_and_drill_down(stack: Any, tmp_path: Path) -> None:
    await seed(stack)
    want = (await api_get(stack, "/api/sessions"))["sessions"]
    app = make_app(stack, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.polls > 0, what="first poll")
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SessionsScreen) and app.screen.loads > 0, what="sessions")
        screen = app.screen
        table = screen.query_one(SessionTable)
        assert table.row_ids == [s["sessionId"] for s in want] == [S2, S1]
        s1 = next(s for s in want if s["sessionId"] == S1)
        assert cell_text(table, S1, 2) == fmt.usd(s1["costUsd"])
        assert cell_text(table, S1, 3) == "5" and cell_text(table, S1, 6) == "2"
        assert cell_text(table, S1, 5) == fmt.DASH  # an API key: no measured window, no quota share
        assert cell_text(table, S1, 8) == "claude-cli/2.1.197 (cli)"
        assert cell_text(table, S1, 9) == "project=apollo"

        # e in the list: the sessions shown, as the API gave them
        await pilot.press("e")
        await until(pilot, lambda: len(app.last_export) == 2, what="sessions export")
        listed = json.loads(app.last_export[1].read_text())
        assert [x["sessionId"] for x in listed["sessions"]] == [S2, S1] and "sessions" in app.last_export[1].name
        app.last_export = []

        # "/" filter: tag:, client:, session: (a prefix of the id)
        for text, expected in (("tag:project=zeus", [S2]), ("client:claude-cli", [S2, S1]),
                               ("session:5f1e", [S1]), ("", [S2, S1])):
            await pilot.press("slash")
            box = screen.query_one("#filter-input")
            box.value = text
            await pilot.press("enter")
            await until(pilot, lambda expected=expected: table.row_ids == expected, what=text)

        # Enter: the session's agent tree and requests
        table.focus()
        table.move_cursor(row=table.row_ids.index(S1))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SessionDetailScreen) and app.screen.detail is not None,
                    what="session detail")
        detail = app.screen
        api_detail = await api_get(stack, f"/api/sessions/{S1}")
        agents = detail.query_one(AgentTable)
        assert [str(r[0]).strip() for r in agents._rows.values()] == ["main", "└ agent-a", "└ agent-b"]
        assert [str(r[3]) for r in agents._rows.values()] == [fmt.usd(a["costUsd"]) for a in api_detail["agents"]]
        requests = detail.query_one(SessionRequestTable)
        assert requests.row_ids == [r["id"] for r in api_detail["requests"]]
        assert requests.has_focus
        # e in a session: SVG and JSON of that session (not the dashboard)
        await pilot.press("e")
        await until(pilot, lambda: len(app.last_export) == 2, what="session export")
        svg_path, json_path = app.last_export
        doc = json.loads(json_path.read_text())
        assert doc["session"]["session"]["sessionId"] == S1 and S1 in json_path.name
        assert [r["id"] for r in doc["session"]["requests"]] == [r["id"] for r in api_detail["requests"]]
        assert "totalRequests" not in doc and f"Session {S1}" in svg_text(svg_path.read_text())
        app.last_export = []

        # Enter again: the request drill-down; Esc, Esc: back to the list
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RequestScreen) and app.screen.detail is not None,
                    what="request drill-down")
        assert app.screen.request_id == api_detail["requests"][0]["id"]
        await pilot.press("escape")
        await pilot.press("escape")
        assert isinstance(app.screen, SessionsScreen)
        await pilot.press("escape")
        assert len(app.screen_stack) == 1


async def test_live_log_shows_the_session(stack: Any, tmp_path: Path) -> None:
    app = make_app(stack, tmp_path)
    async with app.run_test(size=(160, 40)) as pilot:
        await until(pilot, lambda: app.stream is not None and app.stream.state.connected, what="stream")
        await send(stack, 1, extra=claude_code(S1))
        log = app.query_one(RequestLog)
        await until(pilot, lambda: log.row_count == 1, what="log row")
        assert str(next(iter(log._rows.values()))[-1]) == S1[:8]
        assert S1[:8] in str(log.render())


async def test_main_screen_filters_by_tag_and_session(stack: Any, tmp_path: Path) -> None:
    """Tags filter every view: the main screen's "/" takes a session and a tag too."""
    from tui.panels.header import StatusBar

    await seed(stack)
    zeus = await api_get(stack, "/api/stats", since="1h", tag="project:zeus")
    assert zeus["totalRequests"] == 1
    app = make_app(stack, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.polls > 0 and "stats" in app.data, what="first poll")
        await pilot.press("slash")
        await pilot.pause(0.1)
        app.screen.query_one("#filter-input").value = "tag:project:zeus"
        await pilot.press("enter")
        await until(pilot, lambda: app.q.tag == "project:zeus", what="tag filter")
        await until(pilot, lambda: "stats" in app.data and app.data["stats"].total_requests == 1, what="stats")
        assert "tag=project:zeus" in app.query_one(StatusBar).plain
        log = app.query_one(RequestLog)
        await send(stack, 2, extra=claude_code(S1, project="apollo"))
        await send(stack, 1, extra=claude_code(S2, project="zeus"))
        await until(pilot, lambda: log.row_count >= 1, what="zeus row")
        await pilot.pause(0.3)
        assert {str(c[-1]) for c in log._rows.values()} == {S2[:8]}
        await pilot.press("t")  # the range changes, the filters stay
        assert app.q.tag == "project:zeus" and app.q.time_range == "6h"
