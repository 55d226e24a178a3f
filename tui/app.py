"""``nexus tui``: the live monitor.

Shape (after dolphie): one poll loop, re-armed with ``set_timer`` only after the previous poll
finished, so polls never pile up behind a slow API; each poll fetches only the data sources of
panels that are on screen, each at its own cadence; the SSE stream runs in its own task and
fills a bounded buffer that a short UI tick drains in batches. All widget updates happen on the
UI's event loop; nothing here ever awaits the network on the UI's behalf outside a worker.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer

from tui.api.client import DEFAULT_URL, DashboardClient
from tui.api.errors import ApiError
from tui.api.models import Alert
from tui.api.query import Query, next_range
from tui.api.stream import EventStream, StreamState
from tui.panels import Panel
from tui.panels.costs import CostsPanel
from tui.panels.errors import ErrorsPanel
from tui.panels.header import AlertBanner, StatsStrip, StatusBar, status_text
from tui.panels.latency import LatencyChart
from tui.panels.log import RequestLog
from tui.panels.rate import RateChart
from tui.panels.windows import TokenWindowsPanel
from tui.poller import Poller
from tui.screens.alerts import AlertsScreen
from tui.screens.filter import FilterScreen
from tui.screens.help import HelpScreen
from tui.screens.limits import LimitsScreen
from tui.screens.request import RequestScreen
from tui.screens.sessions import SessionsScreen
from tui.system import release_freed_memory, watch_terminal
from tui.widgets.vlist import VirtualTable


class NexusApp(App[int]):
    """The dashboard. ``client_factory`` lets tests swap the transport; nothing else is faked."""

    CSS_PATH = "nexus.tcss"
    TITLE = "Claude Nexus Monitor"
    ENABLE_COMMAND_PALETTE = True
    # Textual sets these classes on the screen as the terminal resizes; nexus.tcss reflows on them.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-tiny"), (20, "-short"), (32, "-tall")]
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("t", "cycle_range", "Range"),
        Binding("p", "toggle_pause", "Pause"),
        Binding("e", "export", "Export"),
        Binding("a", "alerts", "Alerts"),
        Binding("s", "sessions", "Sessions", show=False),
        Binding("r", "refresh", "Refresh", show=False),
        Binding("tab", "focus_next", "Next panel", show=False),
        Binding("shift+tab", "focus_previous", "Prev panel", show=False),
    ]

    def __init__(self, url: str = DEFAULT_URL, key: str | None = None, *, query: Query | None = None,
                 poll_interval: float = 2.0, tick: float = 0.5, stream: bool = True,
                 transport: httpx.AsyncBaseTransport | None = None,
                 now: Callable[[], datetime] | None = None, export_dir: Path | None = None,
                 watch_terminal: bool = True, exit_after: float | None = None) -> None:
        super().__init__()
        self.exit_after = exit_after
        self.url = url
        self.key = key
        self.q = query or Query()
        self.poll_interval = poll_interval
        self.tick_interval = tick
        self.use_stream = stream
        self.transport = transport
        self.now = now or (lambda: datetime.now(UTC))
        self.export_dir = export_dir or Path.cwd()
        self.watch_terminal = watch_terminal
        self.client: DashboardClient | None = None
        self.stream: EventStream | None = None
        self.data: dict[str, Any] = {"query": self.q}
        self.poller = Poller()
        self.alerts: dict[str, Alert] = {}
        self.paused = False
        self.api_down = False
        self.api_message = "connecting…"
        self.auth_error: str | None = None
        self.next_poll_at: float | None = None
        self.polls = 0
        self.last_export: list[Path] = []
        self._polling = False
        self._force_next = False
        self._poll_timer: Any = None
        self._info_at: float | None = None
        self._panels: list[Panel] | None = None

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        yield AlertBanner(id="alert-banner")
        yield StatsStrip(id="stats")
        with Horizontal(id="charts"):
            yield RateChart(id="rate")
            yield LatencyChart(id="latency")
        with Horizontal(id="middle"):
            yield TokenWindowsPanel(id="windows")
            yield CostsPanel(id="costs")
        with Horizontal(id="bottom"):
            yield RequestLog(id="log")
            yield ErrorsPanel(id="errors")
        yield Footer()

    def on_mount(self) -> None:
        self.client = DashboardClient(self.url, self.key, transport=self.transport)
        # Found once: ``query_one`` searches the active screen, which may be a drill-down.
        self.main_screen = self.screen
        self.w_log = self.query_one("#log", RequestLog)
        self.w_errors = self.query_one("#errors", ErrorsPanel)
        self.w_status = self.query_one("#status", StatusBar)
        self.w_banner = self.query_one("#alert-banner", AlertBanner)
        self.w_banner.display = False
        self.query_one(TokenWindowsPanel).now = self.now
        if self.use_stream:
            self.stream = self.client.stream(on_change=self._on_stream_change, on_alert=self._on_alert)
            self.stream.start()
        self.set_interval(self.tick_interval, self._tick, name="ui-tick")
        self.set_interval(1.0, self._header_tick, name="header-tick")
        # After the first layout, so the panels know they are on screen and get their data.
        self.call_after_refresh(self._start_poll, True)
        self.w_log.focus()
        if self.watch_terminal and not self.is_headless:
            watch_terminal(self)
        self.set_interval(60.0, release_freed_memory, name="malloc-trim")
        if self.exit_after is not None:
            self.set_timer(self.exit_after, lambda: self.exit(0), name="exit-after")

    async def on_unmount(self) -> None:
        if self.stream is not None:
            await self.stream.stop()
        if self.client is not None:
            await self.client.aclose()

    @property
    def panels(self) -> list[Panel]:
        if not self._main_active():
            return []
        if self._panels is None:
            self._panels = [w for w in self.main_screen.query("*") if isinstance(w, Panel)]
        return self._panels

    def _main_active(self) -> bool:
        return len(self.screen_stack) == 1

    # ------------------------------------------------------------------ polling

    def _start_poll(self, force: bool = False) -> None:
        """Run one poll now, unless one is in flight: then ask it to go again when done."""
        if self._polling:
            self._force_next = self._force_next or force
            return
        if self._poll_timer is not None:
            self._poll_timer.stop()
            self._poll_timer = None
        self._polling = True
        self.run_worker(self._poll(force), group="poll", exit_on_error=False)

    def _due_sources(self, force: bool) -> list[str]:
        wanted = {src for panel in self.panels if panel.panel_visible() for src in panel.SOURCES}
        return self.poller.due(wanted, force, time.monotonic())

    async def _poll(self, force: bool) -> None:
        ok = True
        try:
            q = self.q
            sources = self._due_sources(force)
            assert self.client is not None
            results = await self.poller.fetch(self.client, q, sources)
            if q != self.q:  # the user changed range/filter meanwhile: these answers are stale
                self._force_next = True
            else:
                self.polls += 1
                self._absorb(sources, results)
                ok = not self.api_down and self.auth_error is None
        except Exception as exc:  # a bug in a panel must not kill the poll loop
            self.api_message = f"poll error: {exc}"
            ok = False
        finally:
            self._polling = False
            if self._force_next:
                self._force_next = False
                self._start_poll(force=True)
            else:
                self._arm_poll(ok)

    def _arm_poll(self, ok: bool) -> None:
        delay = self.poller.next_delay(ok, self.poll_interval)
        self.next_poll_at = time.monotonic() + delay
        self._poll_timer = self.set_timer(delay, lambda: self._start_poll(force=not ok), name="poll")

    def _absorb(self, sources: list[str], results: list[Any]) -> None:
        now = time.monotonic()
        outcome = self.poller.sort(sources, results, now)
        for warning in outcome.warnings:
            self.log.warning(warning)
        self.data.update(outcome.data)
        if "info" in outcome.data:
            self._info_at = now
        if "alerts" in outcome.data:
            # The server's list is the truth (an alert first seen by a local id while the database was
            # away comes back with its stored id); SSE events fill in between polls.
            self.alerts = {a.id: a for a in outcome.data["alerts"]}
        while len(self.alerts) > 200:  # bounded, like everything long-lived here
            self.alerts.pop(next(iter(self.alerts)))
        auth, down = outcome.auth, outcome.down
        self.auth_error = auth
        self.api_down = down is not None
        self.api_message = down or "ok"
        if not self.paused:
            self._show_panels()
        self.w_banner.show_alerts(list(self.alerts.values()))
        self._header_tick()

    def _show_panels(self) -> None:
        self.data["query"] = self.q
        self.data["now"] = self.now()
        for panel in self.panels:
            if panel.panel_visible():
                try:
                    panel.show(self.data)
                except Exception as exc:  # one broken panel must not blank the others
                    self.log.error(f"{type(panel).__name__}.show: {exc!r}")

    # ------------------------------------------------------------------ the stream

    def _on_stream_change(self, state: StreamState) -> None:
        # Called from the stream task (same loop): just redraw the header.
        with contextlib.suppress(Exception):
            self._header_tick()

    def _on_alert(self, alert: Alert) -> None:
        self.alerts[alert.id] = alert
        self.w_banner.show_alerts(list(self.alerts.values()))
        if alert.firing:
            self.notify(f"{alert.rule}: {alert.message}", title="Alert", severity="error", timeout=10)

    def _tick(self) -> None:
        """Drain what the stream buffered since the last tick, unless paused."""
        if self.paused:
            return
        log = self.w_log
        if self.stream is None or not self.stream.requests:
            return
        events = [e for e in self.stream.drain() if self.q.matches(e)]
        if not events:
            return
        log.append(events)
        errors = [e for e in events if e.is_error]
        if errors:
            panel = self.w_errors
            panel.merge(errors, self.q)
            if self._main_active():
                panel.show({"query": self.q, "now": self.now()})

    def _header_tick(self) -> None:
        st = self.stream.state if self.stream is not None else None
        info = self.data.get("info")
        uptime = None
        if info is not None and info.uptime_s is not None and self._info_at is not None and not self.api_down:
            uptime = info.uptime_s + (time.monotonic() - self._info_at)
        if self.auth_error or (st is not None and st.auth_failed):
            text = status_text(connected=False, message=self.auth_error or (st.message if st else ""),
                               retry_in=None, auth_failed=True, uptime_s=uptime, time_range=self.q.time_range,
                               filter_text=self.q.filter_text, paused=self.paused,
                               buffered=self._buffered(), url=self.url)
        else:
            stream_ok = st is None or st.connected
            connected = stream_ok and not self.api_down and self.polls > 0
            if not connected:
                retry_at = None
                if self.api_down and self.next_poll_at is not None:
                    retry_at = self.next_poll_at
                elif st is not None and st.retry_at is not None:
                    retry_at = st.retry_at
                retry_in = None if retry_at is None else retry_at - time.monotonic()
                msg = "connecting…" if self.polls == 0 and not self.api_down else "disconnected"
                if self.api_down and "database" in self.api_message:
                    msg = self.api_message
                text = status_text(connected=False, message=msg, retry_in=retry_in, auth_failed=False,
                                   uptime_s=uptime, time_range=self.q.time_range,
                                   filter_text=self.q.filter_text, paused=self.paused,
                                   buffered=self._buffered(), url=self.url)
            else:
                text = status_text(connected=True, message="live", retry_in=None, auth_failed=False,
                                   uptime_s=uptime, time_range=self.q.time_range,
                                   filter_text=self.q.filter_text, paused=self.paused,
                                   buffered=self._buffered(), url=self.url)
        self.w_status.set_text(text)

    def _buffered(self) -> int:
        return len(self.stream.requests) if self.stream is not None else 0

    @property
    def connected(self) -> bool:
        st = self.stream.state if self.stream is not None else None
        return (st is None or st.connected) and not self.api_down and self.auth_error is None

    # ------------------------------------------------------------------ actions

    def set_query(self, q: Query) -> None:
        """New range or filter: forget what no longer applies and poll at once."""
        if q == self.q:
            return
        filters_changed = (q.domain, q.account, q.model, q.session, q.tag) != (
            self.q.domain, self.q.account, self.q.model, self.q.session, self.q.tag)
        self.q = q
        self.data = {"query": q, "info": self.data.get("info"), "alerts": self.data.get("alerts")}
        self.poller.fetched_at.clear()
        errors = self.w_errors
        errors.reset()
        if filters_changed:
            self.w_log.reset()
        self._header_tick()
        self._start_poll(force=True)

    def action_cycle_range(self) -> None:
        q = self.q
        self.set_query(q.replace(time_range=next_range(q.time_range)))
        self.notify(f"time range: {self.q.time_range}", timeout=2)

    def action_filter(self) -> None:
        stats = self.data.get("stats")
        suggestions: dict[str, list[str]] = {}
        if stats is not None:
            suggestions["domain"] = [b.key for b in stats.by_domain if b.key]
            suggestions["model"] = [b.key for b in stats.by_model if b.key]
        windows = self.data.get("windows") or []
        suggestions["account"] = [w.account_id for w in windows if w.account_id]

        def done(result: Query | None) -> None:
            if result is not None:
                self.set_query(result)

        self.push_screen(FilterScreen(self.q, suggestions), done)

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

    def action_alerts(self) -> None:
        self.push_screen(AlertsScreen(list(self.alerts.values())))

    def action_sessions(self) -> None:
        assert self.client is not None
        if not isinstance(self.screen, SessionsScreen):
            self.push_screen(SessionsScreen(self.client, max(self.poll_interval, 0.2), self.now))

    def action_export(self) -> None:
        self.run_worker(self._export(), group="export", exit_on_error=False)

    async def _export(self) -> list[Path]:
        """SVG of the screen as it is now, plus a JSON snapshot of the API, into ``export_dir``."""
        from tui.export import snapshot_json, write_json

        stamp = self.now().astimezone().strftime("%Y%m%d-%H%M%S")
        svg = self._save_svg(stamp)
        paths = [svg]
        assert self.client is not None
        try:
            snap = await snapshot_json(self.client, self.q)
        except ApiError as exc:
            self.notify(f"saved {svg} (JSON skipped: {exc})", title="Export", severity="warning", timeout=8)
            self.last_export = paths
            return paths
        json_path = write_json(self.export_dir / f"nexus-{stamp}.json", snap)
        paths.append(json_path)
        self.last_export = paths
        self.notify("\n".join(str(p) for p in paths), title="Exported", timeout=8)
        return paths

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
        yield SystemCommand("Filter", "Filter by domain, account, model, session or tag (/)", self.action_filter)
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
        yield SystemCommand("Clear filter", "Show every domain, account, model, session and tag",
                            lambda: self.set_query(Query(time_range=self.q.time_range)))

    def _open_selected(self) -> None:
        for table in (self.w_errors, self.w_log):
            rid = table.current_id
            if rid and self.client is not None:
                self.push_screen(RequestScreen(self.client, rid))
                return
        self.notify("no request selected", severity="warning")
