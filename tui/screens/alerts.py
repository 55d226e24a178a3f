"""``a``: firing and recent alerts, live while open (from ``/api/alerts`` polls and the stream).

Each alert with when it fired and resolved, how long it lasted, its peak value (the server's `peakValue`),
and the message it fired with (kept after the server rewrites it on resolve).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from tui import fmt
from tui.api.models import Alert

AlertSource = Callable[[], tuple[list[Alert], bool]]


# How each rule's values read (the server sends bare numbers): a share as %, latency as time,
# cost as dollars; a rule not listed here as a plain number.
_UNITS: dict[str, Callable[[float], str]] = {
    "error_rate": lambda v: f"{v * 100:.1f}%",
    "token_window": lambda v: f"{v:.0f}%", "db_pool": lambda v: f"{v:.0f}%",
    "p95_latency": lambda v: f"{v / 1000:.1f}s" if v >= 1000 else f"{v:.0f}ms",
    "daily_cost": lambda v: f"${v:,.2f}",
    "clock_skew": lambda v: f"{v:,.0f}s", "recording_stalled": lambda v: f"{v:,.0f}s",
    "journal_growing": lambda v: f"{v:,.0f}s",
}


def alert_value(rule_id: str, v: float | None) -> str:
    if v is None:
        return fmt.DASH
    plain = _UNITS.get(rule_id)
    if plain is not None:
        return plain(v)
    return f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def ordered(alerts: list[Alert]) -> list[Alert]:
    """Firing first, then newest first: the order on screen (and of the cursor)."""
    return sorted(alerts, key=lambda a: (not a.firing, -(a.fired_at.timestamp() if a.fired_at else 0)))


def alerts_renderable(alerts: list[Alert], known: bool = True, now: datetime | None = None,
                      selected: int | None = None) -> Group | Text:
    """One block per alert: a line of facts, then the message it fired with (wrapped, full width).
    The selected one (Enter opens its errors) is marked with ``▶``."""
    if not alerts:
        if not known:
            return Text("unknown: the API has not answered about alerts (unreachable?)", style="bold yellow")
        return Text("No alerts.", style="dim")
    now = now or datetime.now(UTC)
    blocks: list[Text] = []
    for i, a in enumerate(ordered(alerts)):
        head = Text(no_wrap=False)
        head.append("▶ " if i == selected else "  ", style="bold")
        head.append("✖ FIRING" if a.firing else "✓ resolved", style="bold red reverse" if a.firing else "green")
        head.append(f"  {a.severity}  ", style="bold" if a.severity == "critical" else "")
        head.append(a.rule, style="bold")
        lasted = None if a.fired_at is None else ((a.resolved_at or now) - a.fired_at).total_seconds()
        facts = [("fired", fmt.clock(a.fired_at)), ("resolved", fmt.clock(a.resolved_at)),
                 ("lasted", fmt.duration(lasted) + (" so far" if a.firing else "")),
                 ("peak", alert_value(a.rule_id, a.peak) + (f" (threshold {alert_value(a.rule_id, a.threshold)})"
                                                            if a.threshold is not None else ""))]
        for label, value in facts:
            head.append(f"  {label} ", style="dim")
            head.append(value)
        if i == selected:
            head.stylize("underline", 2)
        blocks.append(head)
        msg = Text("   " + (a.fired_message or a.message or fmt.DASH))
        if a.fired_message and a.message and a.message != a.fired_message:
            msg.append(f"\n   {'now' if a.firing else 'resolved'}: {a.message}", style="dim")
        blocks.append(msg)
        blocks.append(Text(""))
    return Group(*blocks)


def test_outcome_text(result: dict) -> Text:
    """One line per channel of ``POST /api/alerts/test``'s answer."""
    rows = result.get("results") or []
    if not rows:
        return Text("Test alert: no alert channel is configured on the server.", style="yellow")
    out = Text("Test alert: ")
    for i, r in enumerate(rows):
        if i:
            out.append("  ")
        if r.get("delivered"):
            out.append(f"{r.get('channel')} delivered ({r.get('status') or 'ok'})", style="green")
        else:
            out.append(f"{r.get('channel')} FAILED ({r.get('error') or 'failed'})", style="bold red")
    return out


class AlertsScreen(Screen):
    BINDINGS = [Binding("escape,q", "app.pop_screen", "Back", key_display="q/Esc"),
                Binding("a", "app.pop_screen", "Back", show=False),
                Binding("up,k", "move(-1)", "Up", show=False),
                Binding("down,j", "move(1)", "Down", show=False),
                Binding("enter", "open_errors", "Errors of its window", key_display="Enter"),
                Binding("t", "send_test", "Send test alert")]

    def __init__(self, source: AlertSource | list[Alert], now: Callable[[], datetime] | None = None) -> None:
        super().__init__()
        self.source: AlertSource = source if callable(source) else (lambda: (list(source), True))
        self.now = now or (lambda: datetime.now(UTC))
        self._shown: str | None = None
        self.selected = 0
        self._selected_id: str | None = None  # the cursor stays on its alert as the list changes

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="alerts-scroll"):
            yield Static(id="alerts")
        yield Static("t: send a test notification through every alert channel", id="alerts-test")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#alerts-scroll").border_title = "Alerts · live"
        self.redraw()
        # The app's alert dict is fed by the stream and every poll; redraw what changed.
        self.set_interval(1.0, self.redraw, name="alerts-redraw")

    def redraw(self) -> None:
        alerts, known = self.source()
        shown = ordered(alerts)
        ids = [a.id for a in shown]
        if self._selected_id in ids:
            self.selected = ids.index(self._selected_id)
        self.selected = max(0, min(self.selected, len(shown) - 1))
        self._selected_id = ids[self.selected] if ids else None
        key = repr([(a.id, a.state, a.resolved_at, a.message, a.peak) for a in alerts]) + str(known)
        key += f"@{self.selected}"
        lasting = any(a.firing for a in alerts)  # a firing alert's duration moves every second
        if key == self._shown and not lasting:
            return
        self._shown = key
        self.query_one("#alerts-scroll").border_title = "Alerts · live" if known else "Alerts · STALE (disconnected)"
        self.query_one("#alerts", Static).update(
            alerts_renderable(alerts, known, self.now(), self.selected if shown else None))

    def export_document(self) -> tuple[str, dict[str, Any]] | None:
        """``e``: the alerts listed, as the server sent them."""
        alerts, known = self.source()
        return None if not known and not alerts else ("alerts", {"alerts": [a.raw for a in ordered(alerts)]})

    def selected_alert(self) -> Alert | None:
        shown = ordered(self.source()[0])
        return shown[self.selected] if 0 <= self.selected < len(shown) else None

    def action_move(self, step: int) -> None:
        shown = ordered(self.source()[0])
        if shown:
            self.selected = max(0, min(len(shown) - 1, self.selected + step))
            self._selected_id = shown[self.selected].id
            self.redraw()

    def action_open_errors(self) -> None:
        """Enter: the errors of the selected alert's time window."""
        from tui.screens.alert_errors import AlertErrorsScreen

        alert = self.selected_alert()
        client = getattr(self.app, "client", None)
        if alert is None or client is None:
            self.notify("no alert selected", severity="warning")
            return
        self.app.push_screen(AlertErrorsScreen(client, alert, self.now))

    def action_send_test(self) -> None:
        """``t``: POST /api/alerts/test in the background; the outcome replaces the hint line."""
        line = self.query_one("#alerts-test", Static)
        line.update(Text("Sending a test alert through every channel...", style="dim"))
        self.run_worker(self._send_test(line), exclusive=True, group="alert-test")

    async def _send_test(self, line: Static) -> None:
        client = getattr(self.app, "client", None)
        if client is None:
            line.update(Text("Test alert: not connected", style="red"))
            return
        try:
            result = await client.test_alerts()
        except Exception as exc:  # noqa: BLE001 - any failure is shown, never raised into the UI
            line.update(Text(f"Test alert failed: {exc}", style="bold red"))
            return
        line.update(test_outcome_text(result))
