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
    BINDINGS = [Binding("escape", "app.pop_screen", "Back"), Binding("a", "app.pop_screen", "Back",
                                                                    show=False),
                Binding("t", "send_test", "Send test alert")]

    def __init__(self, alerts: list[Alert]) -> None:
        super().__init__()
        self.alerts = alerts

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="alerts-scroll"):
            yield Static(alerts_renderable(self.alerts), id="alerts")
        yield Static("t: send a test notification through every alert channel", id="alerts-test")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#alerts-scroll").border_title = "Alerts"

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
