"""The monitor driven by Pilot against a real proxy + dashboard API on loopback, fed by real traffic.

Every number the tests compare comes from the API itself (asked over HTTP in the test), so these
tests pin "the panels show what the API says", not our own arithmetic.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.traffic import api_get, send, wait_total
from tests.tui.screen import screen_text, svg_text
from tui import fmt
from tui.api.client import DashboardClient
from tui.api.query import Query
from tui.app import NexusApp
from tui.cli import render_svg
from tui.export import write_csv
from tui.panels.costs import CostsPanel
from tui.panels.errors import ErrorsPanel
from tui.panels.header import StatsStrip, StatusBar
from tui.panels.log import RequestLog
from tui.panels.windows import TokenWindowsPanel
from tui.screens.request import RequestScreen


async def until(pilot: Any, cond: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await pilot.pause(0.05)


def resolved(p: Path) -> Path:
    return p.resolve()


def make_app(stack: Any, tmp_path: Path, **kw: Any) -> NexusApp:
    kw.setdefault("query", Query(time_range="1h"))  # a chosen range (the automatic one has its own tests)
    return NexusApp(stack.dashboard_url, stack.key, poll_interval=0.2, tick=0.1, watch_terminal=False,
                    export_dir=tmp_path, **kw)


def plain(widget: Any) -> str:
    return str(widget.render()) if not hasattr(widget, "_shown") else (widget.plain)


async def seed(stack: Any) -> None:
    await send(stack, 4, domain="team-a.example", model="claude-sonnet-4-5")
    await send(stack, 2, domain="team-b.example", model="claude-haiku-4-5", key="sk-ant-tui-test-b")
    await send(stack, 1, domain="team-a.example", status=529)
    await send(stack, 1, domain="team-b.example", status=429, key="sk-ant-tui-test-b")
    await wait_total(stack, 8)


async def test_panels_show_the_api_numbers(stack: Any, tmp_path: Path) -> None:
    await seed(stack)
    stats = await api_get(stack, "/api/stats", since="1h")
    windows = await api_get(stack, "/api/token-usage/current", window=300)
    errors = await api_get(stack, "/api/errors", since="1h", limit=50)
    costs = await api_get(stack, "/api/costs", days=31)
    app = make_app(stack, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.polls > 0 and "timeseries" in app.data and "costs" in app.data,
                    what="first poll")
        await pilot.pause(0.2)
        strip = app.query_one(StatsStrip).plain
        assert strip.startswith(" last 1h ")
        assert f"req {stats['totalRequests']:,}" in strip
        assert f"({stats['errorCount']:,})" in strip
        status = app.query_one(StatusBar).plain
        assert "live" in status and "range 1h" in status
        # token windows: one row per account the API lists
        table = app.query_one(TokenWindowsPanel)
        assert sorted(table.row_ids) == sorted(a["accountId"] or "-" for a in windows["accounts"])
        # errors: the API's recent error rows, newest first
        assert app.query_one(ErrorsPanel).row_ids[: len(errors["recent"])] == [r["id"] for r in errors["recent"]]
        assert len(errors["recent"]) == 2
        # costs: today's figure as the API reports it
        from tui import fmt

        assert fmt.usd(costs["todayUsd"]) in app.query_one(CostsPanel).plain
        # charts: the series the API returned
        ts = app.data["timeseries"]
        assert sum(b.requests for b in ts.buckets) == stats["totalRequests"]
        # live log: new traffic arrives over SSE while we watch
        log = app.query_one(RequestLog)
        before = log.shown
        await send(stack, 3, domain="team-c.example")
        await until(pilot, lambda: log.shown >= before + 3, what="3 live rows")
        assert any(c[7] == "team-c.example" for c in log._rows.values())


async def test_header_charts_costs_and_errors_come_from_one_snapshot(stack: Any, tmp_path: Path) -> None:
    """Every source of a poll is asked for the same [since, until); the numbers that appear twice
    on screen (the range's cost, the error count) are the same string in both places."""
    await seed(stack)
    app = make_app(stack, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.updated_at is not None, what="a whole snapshot")
        await pilot.pause(0.1)
        raw = app.shown["raw"]
        w = app.shown["window"]
        for source in ("stats", "timeseries", "errors"):
            assert raw[source]["until"].startswith(w.until.strftime("%Y-%m-%dT%H:%M:%S")), source
            assert raw[source]["since"].startswith(w.since.strftime("%Y-%m-%dT%H:%M:%S")), source
        stats = app.data["stats"]
        strip = app.query_one(StatsStrip).plain
        costs = app.query_one(CostsPanel).plain
        assert f"cost {fmt.usd(stats.cost_usd)}" in strip
        assert any(line.split()[:2] == ["last", "1h"] and fmt.usd(stats.cost_usd) in line
                   for line in costs.splitlines())
        assert f"Errors · {raw['errors']['totalErrors']} in 1h" in str(app.query_one(ErrorsPanel).border_title)
        assert raw["errors"]["totalErrors"] == raw["stats"]["errorCount"]
        # the charts say their window is per bucket, the header says its window
        assert "per 1 min" in str(app.query_one("#latency").border_title)
        assert strip.startswith(" last 1h ")
        assert "updated" in app.query_one(StatusBar).plain


async def test_enter_opens_the_selected_error(stack: Any, tmp_path: Path) -> None:
    await seed(stack)
    errors = await api_get(stack, "/api/errors", since="1h")
    newest = errors["recent"][0]
    app = make_app(stack, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.query_one(ErrorsPanel)
        await until(pilot, lambda: len(table.row_ids) >= 2, what="error rows")
        table.focus()
        table.move_cursor(row=0)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RequestScreen), what="drill-down")
        screen = app.screen
        assert isinstance(screen, RequestScreen)
        assert screen.request_id == newest["id"]
        await until(pilot, lambda: screen.detail is not None, what="detail loaded")
        assert screen.detail is not None
        assert screen.detail.event.status == newest["status"]
        assert screen.detail.event.error_type == newest["errorType"]
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, RequestScreen), what="back")
        # j/k move in the table
        await pilot.press("j")
        assert table.cursor_row == 1
        await pilot.press("k")
        assert table.cursor_row == 0


async def test_filter_and_time_range_change_what_is_shown(stack: Any, tmp_path: Path) -> None:
    await seed(stack)
    team_b = await api_get(stack, "/api/stats", since="1h", domain="team-b.example")
    app = make_app(stack, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.polls > 0 and "stats" in app.data, what="first poll")
        await pilot.press("slash")
        await pilot.pause(0.1)
        await pilot.press(*"team-b.example")
        await pilot.press("enter")
        await until(pilot, lambda: app.q.domain == "team-b.example", what="filter applied")
        await until(pilot, lambda: "stats" in app.data and app.data["stats"].total_requests ==
                    team_b["totalRequests"], what="filtered stats")
        assert "domain=team-b.example" in (app.query_one(StatusBar).plain)
        assert all(e.domain == "team-b.example" for e in app.query_one(ErrorsPanel)._events.values())
        # live log follows the filter too
        log = app.query_one(RequestLog)
        await send(stack, 2, domain="team-a.example")
        await send(stack, 1, domain="team-b.example", key="sk-ant-tui-test-b")
        await until(pilot, lambda: any(c[7] == "team-b.example" for c in log._rows.values()), what="b row")
        await pilot.pause(0.3)
        assert {c[7] for c in log._rows.values()} == {"team-b.example"}
        # time range: 1h -> 6h uses 5-minute buckets
        await pilot.press("t")
        assert app.q.time_range == "6h"
        await until(pilot, lambda: "timeseries" in app.data and app.data["timeseries"].bucket_seconds == 300,
                    what="6h series")
        assert "range 6h" in (app.query_one(StatusBar).plain)


async def test_pause_freezes_the_view_while_the_stream_buffers(stack: Any, tmp_path: Path) -> None:
    app = make_app(stack, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.stream is not None and app.stream.state.connected, what="stream")
        await send(stack, 2)
        log = app.query_one(RequestLog)
        await until(pilot, lambda: log.row_count >= 2, what="rows before pause")
        await pilot.press("p")
        assert app.paused
        rows, strip = log.row_count, app.query_one(StatsStrip).plain
        await send(stack, 5, domain="team-p.example")
        assert app.stream is not None
        await until(pilot, lambda: len(app.stream.requests) >= 5, what="buffered while paused")
        await pilot.pause(0.6)  # several polls and ticks
        assert log.row_count == rows
        assert app.query_one(StatsStrip).plain == strip
        assert "PAUSED" in (app.query_one(StatusBar).plain)
        await pilot.press("p")
        await until(pilot, lambda: log.row_count >= rows + 5, what="rows after resume")


async def test_export_writes_what_the_api_says(stack: Any, tmp_path: Path) -> None:
    await seed(stack)
    app = make_app(stack, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.polls > 0, what="first poll")
        await pilot.press("e")
        await until(pilot, lambda: len(app.last_export) == 2, what="export")
    svg_path, json_path = app.last_export
    assert svg_path.suffix == ".svg" and svg_path.parent == resolved(tmp_path)
    assert "<svg" in svg_path.read_text()
    shown = svg_text(svg_path.read_text())
    snap = json.loads(json_path.read_text())
    # the two files describe one snapshot: the numbers the SVG shows are the JSON's
    assert f"req {snap['stats']['totalRequests']:,}" in shown
    assert f"({snap['stats']['errorCount']:,})" in shown
    assert snap["timeRange"]["until"] and snap["stats"]["until"].startswith(snap["timeRange"]["until"][:19])
    stats = await api_get(stack, "/api/stats", since="1h")
    assert snap["timeRange"]["name"] == "1h"
    assert snap["stats"]["totalRequests"] == stats["totalRequests"]
    assert snap["stats"]["errorCount"] == stats["errorCount"]
    assert {a["accountId"] for a in snap["tokenWindows"]["accounts"]} == {
        a["accountId"] for a in (await api_get(stack, "/api/token-usage/current"))["accounts"]}
    assert [r["id"] for r in snap["errors"]["recent"]] == [
        r["id"] for r in (await api_get(stack, "/api/errors", since="1h", limit=100))["recent"]]
    assert "todayUsd" in snap["costs"]

    # CSV: every request of the range, through the cursor pages
    out = tmp_path / "req.csv"
    async with DashboardClient(stack.dashboard_url, stack.key) as c:
        n = await write_csv(c, Query(time_range="1h"), out, page=3)
    rows = list(csv.DictReader(out.open()))
    assert n == len(rows) == stats["totalRequests"]
    assert len({r["id"] for r in rows}) == n
    # SVG via the headless app against the live API
    svg = await render_svg(stack.dashboard_url, stack.key, Query(), tmp_path / "x.svg", settle=0.3)
    assert "Requests" in svg.read_text()


async def test_export_in_a_drill_down_writes_that_request(stack: Any, tmp_path: Path) -> None:
    await seed(stack)
    app = make_app(stack, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.query_one(ErrorsPanel)
        await until(pilot, lambda: len(table.row_ids) >= 2, what="error rows")
        table.focus()
        table.move_cursor(row=0)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RequestScreen) and app.screen.detail is not None,
                    what="detail")
        rid = app.screen.request_id
        await pilot.press("e")
        await until(pilot, lambda: len(app.last_export) == 2, what="export")
        svg_path, json_path = app.last_export
        doc = json.loads(json_path.read_text())
        assert doc["request"]["request"]["id"] == rid == table.row_ids[0]
        assert rid in json_path.name
        assert f"Request {rid}" in svg_text(svg_path.read_text())


async def test_wrong_key_is_a_clear_message(stack: Any, tmp_path: Path) -> None:
    app = NexusApp(stack.dashboard_url, "wrong-key", poll_interval=0.2, tick=0.1, watch_terminal=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.auth_error is not None, what="auth error")
        await pilot.pause(0.1)
        assert "403" in (app.query_one(StatusBar).plain)
        assert app.is_running


@pytest.mark.timeout(60)
async def test_api_going_away_and_coming_back_is_survived(db_dsn: str, tmp_path: Path) -> None:
    """Stop the dashboard API under the monitor, start it again on the same port: it reconnects."""
    from nexus.core.records import Record
    from nexus.core.settings import Settings
    from nexus.store.pool import create_pool
    from nexus.store.write import PartitionCache, insert_records
    from proxy.api.app import create_dashboard_app
    from proxy.runtime import Runtime
    from proxy.serve import start_server

    key = "tui-test-key"
    pool = await create_pool(db_dsn, min_size=1, max_size=4)
    runtime = Runtime(settings=Settings.of(dashboard_api_key=key), pool=pool, dashboard_key=key, db_connected=True)
    server = await start_server(create_dashboard_app(runtime, auth_max_failures=10_000), "127.0.0.1", 0)
    port = server.port
    url = server.url

    async def publish(n: int, domain: str) -> list[Record]:
        recs = [Record(domain=domain, account_id="acct_t", model="claude-sonnet-4-5", status_code=200,
                       input_tokens=10, output_tokens=5, response_time_ms=100.0) for _ in range(n)]
        async with pool.acquire() as conn:
            await insert_records(conn, recs, PartitionCache())
        for r in recs:
            runtime.broker.publish("request", r.to_event())
        return recs

    app = NexusApp(url, key, poll_interval=0.2, tick=0.1, watch_terminal=False)
    app_stream_backoff = 0.2
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            assert app.stream is not None
            app.stream.min_backoff = app.stream.max_backoff = app_stream_backoff
            await until(pilot, lambda: app.stream.state.connected and app.polls > 0, what="connected")
            first = await publish(2, "before.example")
            log = app.query_one(RequestLog)
            await until(pilot, lambda: all(str(r.id) in log._rows for r in first),
                        what="first events")
            runtime.broker.close_all()
            await server.stop(timeout=3)
            await until(pilot, lambda: not app.connected, what="disconnected")
            await until(pilot, lambda: "disconnected" in (app.query_one(StatusBar).plain),
                        what="disconnected banner")
            assert app.is_running
            # the last snapshot stays on screen, dimmed, and says since when it is stale
            assert app.updated_wall is not None
            assert f"STALE since {fmt.clock(app.updated_wall)}" in app.query_one(StatusBar).plain
            assert app.main_screen.has_class("-stale")
            await pilot.press("a")
            assert "unknown" in screen_text(app) and "No alerts" not in screen_text(app)
            await pilot.press("q")
            # events published while the API is down are replayed from the broker's history
            missed = await publish(2, "during.example")
            server = await start_server(create_dashboard_app(runtime), "127.0.0.1", port)
            await until(pilot, lambda: app.connected and app.stream.state.connected, timeout=20,
                        what="reconnected")
            await until(pilot, lambda: all(str(r.id) in log._rows for r in missed), what="replayed events")
            after = await publish(1, "after.example")
            await until(pilot, lambda: str(after[0].id) in log._rows, what="live again")
            assert app.stream.state.reconnects >= 1
            assert "live" in (app.query_one(StatusBar).plain)
            await until(pilot, lambda: not app.main_screen.has_class("-stale"), what="not stale")
            assert "STALE" not in app.query_one(StatusBar).plain
    finally:
        await server.stop(timeout=3)
        await pool.close()
