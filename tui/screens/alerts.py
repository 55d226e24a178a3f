"""``a``: firing and recent alerts, live while open (from ``/api/alerts`` polls and the stream).

Each alert with when it fired and resolved, how long it lasted, the peak value the monitor saw,
and the message it fired with (kept after the server rewrites it on resolve).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from tui import fmt
from tui.api.models import Alert

AlertSource = Callable[[], tuple[list[Alert], bool]]


def _value(v: float | None) -> str:
    if v is None:
        return fmt.DASH
    return f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def alerts_renderable(alerts: list[Alert], known: bool = True, now: datetime | None = None) -> Table | Text:
    if not alerts:
        if not known:
            return Text("unknown: the API has not answered about alerts (unreachable?)", style="bold yellow")
        return Text("No alerts.", style="dim")
    now = now or datetime.now(UTC)
    t = Table(expand=True, box=None, padding=(0, 1), header_style="bold")
    t.add_column("state", no_wrap=True)
    t.add_column("sev", no_wrap=True)
    t.add_column("rule", no_wrap=True, overflow="fold")
    t.add_column("fired", no_wrap=True)
    t.add_column("resolved", no_wrap=True)
    t.add_column("lasted", no_wrap=True, justify="right")
    t.add_column("peak", no_wrap=True, justify="right")
    t.add_column("message", ratio=1, overflow="fold")
    for a in sorted(alerts, key=lambda a: (not a.firing, -(a.fired_at.timestamp() if a.fired_at else 0))):
        state = Text("✖ FIRING", style="bold red reverse") if a.firing else Text("✓ resolved", style="green")
        lasted = None
        if a.fired_at is not None:
            lasted = ((a.resolved_at or now) - a.fired_at).total_seconds()
        msg = Text(a.fired_message or a.message)
        if not a.firing and a.fired_message and a.message and a.message != a.fired_message:
            msg.append(f"\nresolved: {a.message}", style="dim")
        peak = _value(a.peak)
        if a.threshold is not None:
            peak += f" (> {_value(a.threshold)})"
        t.add_row(state, a.severity, a.rule, fmt.clock(a.fired_at), fmt.clock(a.resolved_at),
                  fmt.duration(lasted) + ("…" if a.firing else ""), peak, msg)
    return t


class AlertsScreen(Screen):
    BINDINGS = [Binding("escape,q", "app.pop_screen", "Back", key_display="q/Esc"),
                Binding("a", "app.pop_screen", "Back", show=False)]

    def __init__(self, source: AlertSource | list[Alert]) -> None:
        super().__init__()
        self.source: AlertSource = source if callable(source) else (lambda: (list(source), True))
        self._shown: str | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="alerts-scroll"):
            yield Static(id="alerts")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#alerts-scroll").border_title = "Alerts · live"
        self.redraw()
        # The app's alert dict is fed by the stream and every poll; redraw what changed.
        self.set_interval(1.0, self.redraw, name="alerts-redraw")

    def redraw(self) -> None:
        alerts, known = self.source()
        key = repr([(a.id, a.state, a.resolved_at, a.message, a.peak) for a in alerts]) + str(known)
        lasting = any(a.firing for a in alerts)  # a firing alert's duration moves every second
        if key == self._shown and not lasting:
            return
        self._shown = key
        self.query_one("#alerts", Static).update(alerts_renderable(alerts, known))
