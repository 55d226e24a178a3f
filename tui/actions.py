"""The dashboard's keys and commands: filter, navigation and zoom, pause, export, drill-down.

A mixin of ``NexusApp`` (``tui.app``), kept apart so the app module stays about polling and the
stream. Everything here runs on the UI's event loop and touches the network only in workers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from textual.app import SystemCommand
from textual.screen import Screen

from tui.api.models import Alert
from tui.api.query import Query, next_range
from tui.filtering import known_names
from tui.panels.windows import TokenWindowsPanel
from tui.screens.alerts import AlertsScreen
from tui.screens.filter import FilterScreen
from tui.screens.help import HelpScreen
from tui.screens.limits import LimitsScreen
from tui.screens.request import RequestScreen
from tui.screens.sessions import SessionsScreen
from tui.widgets.vlist import VirtualTable


class DashboardActions:
    """Actions of the dashboard app (``self`` is the ``NexusApp``)."""

    # Dashboard-only keys: hidden from a sub-screen's footer (which lists its own).
    MAIN_ONLY = frozenset({"focus_next", "focus_previous", "filter", "clear_filter", "cycle_range",
                           "toggle_pause", "zoom", "panel"})
    PANEL_ORDER = ("rate", "latency", "windows", "costs", "log", "errors")  # keys 1 … 6

    def action_cycle_range(self) -> None:
        q = self.q
        self.auto_range = False  # a range the user chose stays
        self.set_query(q.with_(time_range=next_range(q.time_range)))
        self.notify(f"time range: {self.q.time_range}", timeout=2)

    def _remember_names(self, data: dict[str, Any]) -> None:
        stats = data.get("stats")
        if stats is not None and not self.q.server_filtered:
            for kind, rows in (("model", stats.by_model), ("domain", stats.by_domain)):
                for b in rows:
                    if b.key:
                        self.seen[kind][b.key] = max(self.seen[kind].get(b.key, 0), b.requests)
        for w in data.get("windows") or []:
            if w.account_id:
                self.seen["account"][w.account_id] = max(self.seen["account"].get(w.account_id, 0), w.requests)

    def filter_known(self) -> dict[str, list[tuple[str, int]]]:
        """What the filter matches against: names from the polls, topped up from the live log."""
        seen = {k: dict(v) for k, v in self.seen.items()}
        for ev in self.w_log.events.values():
            for kind, name in (("model", ev.model), ("domain", ev.domain), ("account", ev.account_id)):
                if name and name not in seen[kind]:
                    seen[kind][name] = 1
        return known_names(seen["model"], seen["domain"], seen["account"])

    def action_filter(self) -> None:
        log = self.w_log

        def preview(q: Query) -> tuple[int, int]:
            log.narrow(q.matches if q.filtered else None)  # live narrowing as you type
            return log.count_matching(q.matches)

        def done(result: Query | None) -> None:
            if result is None:
                log.narrow(self.q.matches if self.q.filtered else None)
            else:
                self.set_query(result)
                log.narrow(result.matches if result.filtered else None)

        self.push_screen(FilterScreen(self.q, self.filter_known(), preview), done)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self.MAIN_ONLY and len(self.screen_stack) > 1:
            return False
        if action == "clear_filter":
            return self.q.filtered  # in the footer only while a filter is on (Esc un-zooms first: Textual)
        if action == "back_or_quit" and len(self.screen_stack) > 1:
            return False  # the screen's own "q Back" shows instead
        return True

    def action_back_or_quit(self) -> None:
        """``q``: back from any sub-screen; on the dashboard, quit (asking first under ``nexus demo``)."""
        if len(self.screen_stack) > 1:
            self.pop_screen()
            return
        if self.confirm_quit is None:
            self.exit(0)
            return
        from tui.screens.confirm import ConfirmScreen

        def answered(yes: bool | None) -> None:
            if yes:
                self.exit(0)

        self.push_screen(ConfirmScreen(self.confirm_quit), answered)

    def action_zoom(self) -> None:
        """``z``: the focused panel full-screen; again (or Esc): back to the dashboard."""
        screen = self.screen
        if screen.maximized is not None:
            screen.minimize()
        elif self.focused is not None:
            screen.maximize(self.focused)
        self.refresh_bindings()

    def action_panel(self, n: int) -> None:
        """``1``…``6``: that panel full-screen; the same key again: back."""
        screen = self.screen
        widget = self.main_screen.query_one(f"#{self.PANEL_ORDER[n - 1]}")
        if screen.maximized is widget:
            screen.minimize()
        else:
            screen.minimize()
            if n <= 2:  # a chart: shown even where the charts are collapsed into sparklines
                screen.add_class("-charts-zoomed")
            screen.maximize(widget)
            widget.focus()
        self.refresh_bindings()

    def action_clear_filter(self) -> None:
        if self.q.filtered:
            self.set_query(self.q.cleared())
            self.notify("filter cleared", timeout=2)

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        if not self.paused:
            self._tick()
            self._show_panels()
        self._header_tick()

    def action_refresh(self) -> None:
        if self.stream is not None:
            self.stream.retry_now()
        self._start_poll(force=True)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def alerts_now(self) -> tuple[list[Alert], bool]:
        """The alerts as known now, and whether the API has answered about them at all."""
        return list(self.alerts.values()), "alerts" in self.data and self.connected

    def action_alerts(self) -> None:
        self.push_screen(AlertsScreen(self.alerts_now, self.now))

    def action_sessions(self) -> None:
        assert self.client is not None
        if not isinstance(self.screen, SessionsScreen):
            self.push_screen(SessionsScreen(self.client, max(self.poll_interval, 0.2), self.now))

    def action_export(self) -> None:
        self._export()

    def _export(self) -> list[Path]:
        """SVG of the screen as it is now, plus JSON of the very data it shows (no new fetch):
        the dashboard's snapshot, or in a drill-down that request's record."""
        from tui.export import snapshot_document, write_json

        stamp = self.now().astimezone().strftime("%Y%m%d-%H%M%S")
        svg = self._save_svg(stamp)
        screen = self.screen
        # A sub-screen exports what it shows (a request, a session, an account's limits, an alert's
        # errors): ``export_document()`` gives a file stem and the API's JSON behind the view.
        document_of = getattr(screen, "export_document", None)
        if callable(document_of):
            got = document_of()
            if got is None:
                self.last_export = [svg]
                self.notify(f"saved {svg} (JSON skipped: this view has not loaded)", title="Export",
                            severity="warning", timeout=8)
                return self.last_export
            stem, body = got
            doc: dict[str, Any] = {"exportedAt": self.now().isoformat(), "source": self.url, **body}
            name = f"nexus-{_safe_stem(stem)}-{stamp}.json"
        else:
            shown = self.shown or {}
            doc = snapshot_document(self.url, shown.get("query", self.q), shown.get("window"),
                                    shown.get("raw", {}), exported_at=self.now())
            name = f"nexus-{stamp}.json"
        json_path = write_json(self.export_dir / name, doc)
        self.last_export = [svg, json_path]
        self.notify(f"{svg}\n{json_path}", title="Exported", timeout=8)
        return self.last_export

    def _save_svg(self, stamp: str) -> Path:
        self.export_dir.mkdir(parents=True, exist_ok=True)
        return Path(self.save_screenshot(filename=f"nexus-{stamp}.svg", path=str(self.export_dir))).resolve()

    def on_virtual_table_selected(self, event: VirtualTable.Selected) -> None:
        """Enter in the live log or the errors table: drill into that request. Enter on the limits
        panel: open that account (windows, history, latest headers)."""
        if isinstance(event.table, TokenWindowsPanel):
            if event.request_id != "-" and self.client is not None:
                account = next((a for a in self.data.get("limits") or [] if a.account_id == event.request_id),
                               None)
                self.push_screen(LimitsScreen(self.client, event.request_id, account, self.now()))
            return
        assert self.client is not None
        self.push_screen(RequestScreen(self.client, event.request_id))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Filter", "Filter by domain, account or model (/)", self.action_filter)
        yield SystemCommand("Time range", "Cycle 15m / 1h / 6h / 24h / 7d (t)", self.action_cycle_range)
        yield SystemCommand("Pause / resume", "Freeze the view; the stream keeps buffering (p)",
                            self.action_toggle_pause)
        yield SystemCommand("Export", "SVG + JSON snapshot into the current directory (e)",
                            self.action_export)
        yield SystemCommand("Alerts", "Firing and recent alerts (a)", self.action_alerts)
        yield SystemCommand("Sessions", "Live sessions, their agents and cost (s)", self.action_sessions)
        yield SystemCommand("Refresh", "Poll now and reconnect the stream (r)", self.action_refresh)
        yield SystemCommand("Help", "Every key (?)", self.action_help)
        yield SystemCommand("Open selected request", "Drill into the request under the cursor (Enter)",
                            self._open_selected)
        yield SystemCommand("Clear filter", "Show every domain, account and model",
                            lambda: self.set_query(self.q.cleared()))

    def _open_selected(self) -> None:
        for table in (self.w_errors, self.w_log):
            rid = table.current_id
            if rid and self.client is not None:
                self.push_screen(RequestScreen(self.client, rid))
                return
        self.notify("no request selected", severity="warning")


def _safe_stem(stem: str) -> str:
    """A file-name part from ids the API sent (a session id may hold any printable character)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem)[:80]
