"""The `/` filter as a person uses it: type the name the screen shows, watch the log narrow, Enter,
every panel follows (or says it cannot), Esc clears. Real proxy, API and traffic (the ``stack``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.traffic import api_get, send, wait_total
from tests.tui.test_tui_live import make_app, until
from tui.api.query import Query
from tui.filtering import known_names, resolve
from tui.panels.costs import CostsPanel
from tui.panels.errors import ErrorsPanel
from tui.panels.header import StatusBar
from tui.panels.log import RequestLog
from tui.panels.rate import RateChart
from tui.panels.windows import TokenWindowsPanel
from tui.screens.filter import FilterScreen

DATED = "claude-sonnet-4-5-20250929"


def test_resolve_matches_shown_names_and_status_classes() -> None:
    known = known_names({"claude-sonnet-4-5": 5, DATED: 3, "claude-haiku-4-5": 2, "claude-sonnet-4": 1},
                        {"team-a.example": 6, "team-b.example": 2}, {"acct_77aa": 4})
    assert known["model"][0] == ("sonnet-4-5", 8)  # snapshots fold into their family
    assert resolve("sonnet-4-5", Query(), known).query == Query(model="sonnet-4-5")
    r = resolve("sonnet", Query(time_range="6h"), known)
    assert r.query == Query(time_range="6h", model="sonnet-4-5")  # the busiest match
    assert "also: sonnet-4" in r.notes[0]
    assert resolve("team-b 5xx", Query(), known).query == Query(domain="team-b.example", status="5xx")
    assert resolve("acct_77", Query(), known).query == Query(account="acct_77aa")
    assert resolve("d:nowhere.example", Query(), known).query == Query(domain="nowhere.example")
    assert resolve("", Query(model="x"), known).query == Query()


async def test_filter_by_the_shown_model_name_narrows_every_panel_and_esc_clears(stack: Any,
                                                                                tmp_path: Path) -> None:
    await send(stack, 3, domain="team-a.example", model="claude-sonnet-4-5")
    await send(stack, 2, domain="team-a.example", model=DATED)
    await send(stack, 2, domain="team-b.example", model="claude-haiku-4-5", key="sk-ant-tui-test-b")
    await send(stack, 1, domain="team-b.example", model="claude-haiku-4-5", status=529, key="sk-ant-tui-test-b")
    await send(stack, 1, domain="team-a.example", model="claude-sonnet-4-5", status=429)
    await wait_total(stack, 9)
    sonnet = await api_get(stack, "/api/stats", since="1h", model="sonnet-4-5")
    assert sonnet["totalRequests"] == 6  # both snapshots of the family, from the API itself
    app = make_app(stack, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        log = app.query_one(RequestLog)
        await until(pilot, lambda: app.polls > 0 and "costs" in app.data, what="first poll")
        await send(stack, 2, domain="team-a.example", model=DATED)
        await send(stack, 2, domain="team-b.example", model="claude-haiku-4-5", key="sk-ant-tui-test-b")
        await until(pilot, lambda: log.row_count >= 4, what="live rows")
        await pilot.press("slash")
        assert isinstance(app.screen, FilterScreen)
        await pilot.press(*"sonnet-4-5")
        await pilot.pause(0.1)
        # live narrowing while typing: only sonnet rows left in the log, and the count says so
        assert log.row_count == 2 and {c[2] for c in log._rows.values()} == {"sonnet-4-5"}
        preview = str(app.screen.query_one("#filter-preview").render())
        assert "model=sonnet-4-5" in preview and "2 of 4 live rows match" in preview
        await pilot.press("enter")
        await until(pilot, lambda: app.q.model == "sonnet-4-5", what="filter applied")
        await until(pilot, lambda: app.data.get("stats") is not None
                    and app.data["stats"].total_requests == sonnet["totalRequests"] + 2, what="filtered stats")
        await until(pilot, lambda: "costs" in app.data and "timeseries" in app.data, what="filtered costs")
        await pilot.pause(0.3)
        status = app.query_one(StatusBar).plain
        assert "filter model=sonnet-4-5" in status and "Esc clears" in status
        costs = app.query_one(CostsPanel).plain
        assert "haiku" not in costs and "sonnet-4-5" in costs
        errors = app.query_one(ErrorsPanel)
        assert [e.status for e in errors._events.values()] == [429]
        assert sum(b.requests for b in app.data["timeseries"].buckets) == sonnet["totalRequests"] + 2
        assert "model filter n/a" in str(app.query_one(TokenWindowsPanel).border_title)
        assert "filter n/a" not in str(app.query_one(RateChart).border_title)
        # Esc clears it: everything back, the log restored from what it had seen
        await pilot.press("escape")
        await until(pilot, lambda: not app.q.filtered, what="filter cleared")
        assert log.row_count == 4
        await until(pilot, lambda: "filter" not in app.query_one(StatusBar).plain, what="header clear")


async def test_status_class_filter_narrows_log_and_errors_and_says_where_it_does_not_apply(
        stack: Any, tmp_path: Path) -> None:
    app = make_app(stack, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.stream is not None and app.stream.state.connected, what="stream")
        await send(stack, 2)
        await send(stack, 1, status=529)
        log = app.query_one(RequestLog)
        await until(pilot, lambda: len(log.events) >= 3, what="rows")
        await pilot.press("slash", *"5xx", "enter")
        await until(pilot, lambda: app.q.status == "5xx", what="status filter")
        assert [c[1].plain for c in log._rows.values()] == ["✖529"]
        await until(pilot, lambda: "status filter n/a" in str(app.query_one(RateChart).border_title),
                    what="chart says n/a")
