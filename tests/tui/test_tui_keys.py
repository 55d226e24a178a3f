"""Navigation as a person meets it: q and Esc go back from every sub-screen, q on the dashboard
quits (asking once under ``nexus demo``), the footer lists the keys that work, 1-6 and z zoom.

No server at all: the API address is a closed loopback port, so this is the monitor's own
behaviour while it retries, nothing faked."""

from __future__ import annotations

from typing import Any

from tests.tui.screen import screen_text
from tests.tui.test_tui_live import until
from tui.app import NexusApp
from tui.screens.alerts import AlertsScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.filter import FilterScreen
from tui.screens.help import HelpScreen
from tui.screens.request import RequestScreen

DEAD = "http://127.0.0.1:9"  # discard port: nothing listens


def app_(**kw: Any) -> NexusApp:
    return NexusApp(DEAD, "k", watch_terminal=False, poll_interval=3600, **kw)


async def test_q_and_esc_go_back_from_every_sub_screen() -> None:
    app = app_()
    async with app.run_test(size=(80, 24)) as pilot:
        for key, screen_type in (("question_mark", HelpScreen), ("a", AlertsScreen)):
            for back in ("q", "escape"):
                await pilot.press(key)
                assert isinstance(app.screen, screen_type)
                assert "q/Esc Back" in screen_text(app).splitlines()[-1]
                await pilot.press(back)
                assert len(app.screen_stack) == 1 and app.is_running, (key, back)
        assert app.client is not None
        for back in ("q", "escape"):
            app.push_screen(RequestScreen(app.client, "00000000-0000-4000-8000-000000000001"))
            await pilot.pause()
            await pilot.press(back)
            assert len(app.screen_stack) == 1 and app.is_running
        await pilot.press("slash")
        assert isinstance(app.screen, FilterScreen)
        await pilot.press("q")  # typed into the filter line, not a quit
        assert isinstance(app.screen, FilterScreen)
        await pilot.press("escape")
        assert len(app.screen_stack) == 1 and not app.q.filtered


async def test_q_on_the_dashboard_quits_at_once_without_a_question() -> None:
    app = app_()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running


async def test_under_nexus_demo_quitting_asks_once() -> None:
    app = app_(confirm_quit="Quit the monitor and stop the demo servers?")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.pause()
        assert "stop the demo servers?   y / n" in screen_text(app)
        await pilot.press("n")
        assert len(app.screen_stack) == 1 and app.is_running
        await pilot.press("q")
        await pilot.press("y")
        await pilot.pause()
        assert not app.is_running


async def test_footer_lists_tab_and_enter_and_the_dashboard_keys_at_80_columns() -> None:
    app = app_()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        footer = screen_text(app).splitlines()[-1]
        for key in ("Enter Open", "Tab Next", "/ Filter", "t Range", "p Pause", "e Export", "a Alerts",
                    "? Help", "q Quit"):
            assert key in footer, (key, footer)
        assert "Esc" not in footer  # "Esc Clear filter" only while a filter is on
        app.set_query(app.q.with_(domain="x.example"))
        await pilot.pause()
        assert "Esc Clear filter" in screen_text(app).splitlines()[-1]


async def test_keys_1_to_6_and_z_show_one_panel_full_screen() -> None:
    app = app_()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        await until(pilot, lambda: app.screen.maximized is not None, what="zoom")
        assert app.screen.maximized is app.query_one("#windows")
        top = screen_text(app).splitlines()[0]
        assert top[:2] in ("╭─", "┏━") and "Limits" in top and top[-1] in "╮┓"  # every border kept
        await pilot.press("3")
        assert app.screen.maximized is None
        await pilot.press("5", "escape")
        assert app.screen.maximized is None and app.is_running
        app.query_one("#costs").focus()
        await pilot.press("z")
        assert app.screen.maximized is app.query_one("#costs")
        await pilot.press("z")
        assert app.screen.maximized is None
