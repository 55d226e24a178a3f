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
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Footer

from tui.actions import DashboardActions
from tui.api.client import DEFAULT_URL, DashboardClient
from tui.api.models import Alert
from tui.api.query import AUTO_RANGES, Query, fit_range
from tui.api.stream import EventStream, StreamState
from tui.panels import Panel
from tui.panels.costs import CostsPanel
from tui.panels.errors import ErrorsPanel
from tui.panels.header import AlertBanner, StatsStrip, StatusBar, status_text
from tui.panels.latency import LatencyChart
from tui.panels.log import RequestLog
from tui.panels.rate import RateChart
from tui.panels.sparks import SparkStrip
from tui.panels.windows import TokenWindowsPanel
from tui.poller import DATA_SOURCES, Poller, Window
from tui.system import release_freed_memory, watch_terminal


class NexusApp(DashboardActions, App[int]):
    """The dashboard. ``client_factory`` lets tests swap the transport; nothing else is faked."""

    CSS_PATH = "nexus.tcss"
    TITLE = "Claude Nexus Monitor"
    ENABLE_COMMAND_PALETTE = True
    # Textual sets these classes on the screen as the terminal resizes; nexus.tcss reflows on them.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-tiny"), (22, "-short"), (32, "-tall")]
    BINDINGS = [
        # Footer order: what moves you around first, quitting last.
        Binding("tab", "focus_next", "Next", key_display="Tab", priority=True),
        Binding("shift+tab", "focus_previous", "Prev panel", show=False),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("escape", "clear_filter", "Clear filter", key_display="Esc"),
        Binding("t", "cycle_range", "Range"),
        Binding("p", "toggle_pause", "Pause"),
        Binding("e", "export", "Export"),
        Binding("a", "alerts", "Alerts"),
        Binding("s", "sessions", "Sessions", show=False),
        Binding("r", "refresh", "Refresh", show=False),
        Binding("z", "zoom", "Zoom", show=False),
        *(Binding(str(n), f"panel({n})", f"Panel {n}", show=False) for n in range(1, 7)),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "back_or_quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(self, url: str = DEFAULT_URL, key: str | None = None, *, query: Query | None = None,
                 poll_interval: float = 2.0, tick: float = 0.5, stream: bool = True,
                 transport: httpx.AsyncBaseTransport | None = None,
                 now: Callable[[], datetime] | None = None, export_dir: Path | None = None,
                 watch_terminal: bool = True, exit_after: float | None = None,
                 confirm_quit: str | None = None) -> None:
        super().__init__()
        self.confirm_quit = confirm_quit  # asked once before quitting the main screen (nexus demo)
        self.exit_after = exit_after
        self.url = url
        self.key = key
        # No range asked for: fitted to the data (15 min on a fresh start, then the hour).
        self.auto_range = query is None
        self._range_fitted = not self.auto_range
        self.q = query or Query(time_range=AUTO_RANGES[-1])
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
        self.raw: dict[str, Any] = {}  # the API's JSON behind ``data``, source by source
        self.shown: dict[str, Any] = {}  # the snapshot on screen (export writes this)
        self.updated_at: float | None = None  # monotonic time of the last whole snapshot
        self.updated_wall: datetime | None = None
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
        # Names seen so far (unfiltered request counts), what the filter matches against.
        self.seen: dict[str, dict[str, int]] = {"model": {}, "domain": {}, "account": {}}

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        yield AlertBanner(id="alert-banner")
        yield StatsStrip(id="stats")
        yield SparkStrip(id="sparks")  # instead of the charts below 100 columns
        with Horizontal(id="charts"):
            yield RateChart(id="rate")
            yield LatencyChart(id="latency")
        with Horizontal(id="middle"):
            yield TokenWindowsPanel(id="windows")
            yield CostsPanel(id="costs")
        with Horizontal(id="bottom"):
            yield RequestLog(id="log")
            yield ErrorsPanel(id="errors")
        # Without the "^p palette" corner: at 80 columns every key of the dashboard fits (Ctrl+P is in help).
        yield Footer(compact=True, show_command_palette=False)

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
        # A chart opened full-screen (1 / 2) on a narrow screen, where the charts are collapsed.
        self.watch(self.main_screen, "maximized", self._on_maximized, init=False)
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

    def _on_maximized(self, widget: object) -> None:
        charts = (RateChart, LatencyChart)
        self.main_screen.set_class(isinstance(widget, charts), "-charts-zoomed")
        if widget is None and isinstance(self.focused, charts) and self.main_screen.has_class("-narrow"):
            self.w_log.focus()  # the chart collapses again: keys must not go to a hidden widget

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
        # Every data source together while the dashboard is up (one snapshot for the whole screen,
        # zoomed or not); behind a sub-screen only what stays on screen (alerts, info).
        wanted = DATA_SOURCES if self._main_active() else ()
        return self.poller.due(wanted, force, time.monotonic())

    async def _poll(self, force: bool) -> None:
        ok = True
        try:
            q = self.q
            sources = self._due_sources(force)
            window = Window.ending(self.now(), q)
            assert self.client is not None
            results = await self.poller.fetch(self.client, q, sources, window)
            if q != self.q:  # the user changed range/filter meanwhile: these answers are stale
                self._force_next = True
            else:
                self.polls += 1
                self._absorb(sources, results, window)
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

    def _absorb(self, sources: list[str], results: list[Any], window: Window) -> None:
        now = time.monotonic()
        outcome = self.poller.sort(sources, results, now)
        for warning in outcome.warnings:
            self.log.warning(warning)
        self.data.update(outcome.data)
        self.raw.update(outcome.raw)
        if all(s in outcome.data for s in DATA_SOURCES):
            if self._refit_range(outcome.data["timeseries"], window):
                return  # the range changed: this snapshot is not shown, the new range is polled
            # A whole snapshot: every panel's numbers are over this one window.
            self.data["window"] = window
            self.updated_at = now
            self.updated_wall = self.now()
        self._remember_names(outcome.data)
        if "info" in outcome.data:
            self._info_at = now
        if "alerts" in outcome.data:
            # The server's list is the truth (an alert first seen by a local id while the database was
            # away comes back with its stored id); SSE events fill in between polls. What the monitor
            # saw of each (its firing message, its peak) is kept across updates.
            self.alerts = {a.id: a.merged(self.alerts.get(a.id)) for a in outcome.data["alerts"]}
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

    def _refit_range(self, ts: Any, window: Window) -> bool:
        """Automatic range: fit it to the data of this answer; True if it changed."""
        if not self.auto_range:
            return False
        earliest = min((b.time for b in ts.buckets if b.requests and b.time is not None), default=None)
        new = fit_range(self.q.time_range, earliest, window.until, first=not self._range_fitted)
        self._range_fitted = True
        if new == self.q.time_range:
            return False
        self.set_query(self.q.with_(time_range=new))
        return True

    def _show_panels(self) -> None:
        self.data["query"] = self.q
        self.data["now"] = self.now()
        self.data["api_down"] = self.api_down
        # What the screen now shows, for ``e``: the same snapshot, not a fresh fetch.
        self.shown = {"window": self.data.get("window"), "query": self.q, "raw": dict(self.raw),
                      "updated": self.updated_wall}
        for panel in self.panels:
            if panel.display:  # zoomed-away panels too: un-zooming must not show an older snapshot
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
        self.alerts[alert.id] = alert.merged(self.alerts.get(alert.id))
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
        events = self.stream.drain()
        if not events:
            return
        log.append(events)  # all of them: the log shows those the filter keeps
        errors = [e for e in events if e.is_error and self.q.matches(e)]
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
        auth_failed = bool(self.auth_error or (st is not None and st.auth_failed))
        retry_in = None
        if auth_failed:
            connected, msg = False, self.auth_error or (st.message if st else "")
        else:
            stream_ok = st is None or st.connected
            connected = stream_ok and not self.api_down and self.polls > 0
            msg = "live"
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
        # Numbers that no longer move must not look live: dimmed, with the time they stopped.
        stale = not connected and self.updated_wall is not None
        self.main_screen.set_class(stale, "-stale")
        ago = None if self.updated_at is None else time.monotonic() - self.updated_at
        text = status_text(connected=connected, message=msg, retry_in=retry_in, auth_failed=auth_failed,
                           uptime_s=uptime,
                           time_range=self.q.time_range + (" auto" if self.auto_range else ""), filter_text=self.q.filter_text,
                           paused=self.paused, buffered=self._buffered(), url=self.url,
                           updated_ago=ago, stale_since=self.updated_wall if stale else None)
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
        filters_changed = (q.domain, q.account, q.model, q.status, q.session, q.tag) != (
            self.q.domain, self.q.account, self.q.model, self.q.status, self.q.session, self.q.tag)
        self.q = q
        self.data = {"query": q, "info": self.data.get("info"), "alerts": self.data.get("alerts")}
        self.raw = {k: v for k, v in self.raw.items() if k in ("info", "alerts")}
        self.poller.fetched_at.clear()
        errors = self.w_errors
        errors.reset()
        if filters_changed:
            self.w_log.narrow(q.matches if q.filtered else None)
        self._header_tick()
        self.refresh_bindings()
        self._start_poll(force=True)
