"""``a``: firing and recent alerts (from ``/api/alerts`` and the stream)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from tui import fmt
from tui.api.models import Alert


def alerts_renderable(alerts: list[Alert]) -> Table | Text:
    if not alerts:
        return Text("No alerts.", style="dim")
    t = Table(expand=True)
    t.add_column("state", no_wrap=True)
    t.add_column("rule", no_wrap=True)
    t.add_column("since", no_wrap=True)
    t.add_column("message")
    for a in sorted(alerts, key=lambda a: (not a.firing, -(a.fired_at.timestamp() if a.fired_at else 0))):
        state = Text("FIRING", style="bold red") if a.firing else Text("resolved", style="green")
        t.add_row(state, a.rule, fmt.clock(a.fired_at), a.message)
    return t


class AlertsScreen(Screen):
    BINDINGS = [Binding("escape,q", "app.pop_screen", "Back", key_display="q/Esc"), Binding("a", "app.pop_screen", "Back",
                                                                    show=False)]

    def __init__(self, alerts: list[Alert]) -> None:
        super().__init__()
        self.alerts = alerts

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="alerts-scroll"):
            yield Static(alerts_renderable(self.alerts), id="alerts")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#alerts-scroll").border_title = "Alerts"
