"""``?``: every key, in one place, so nobody has to guess over SSH."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

KEYS: list[tuple[str, str]] = [
    ("↑ ↓  j k", "move in a table; g / G first / last row (the log follows again at the last)"),
    ("Tab / Shift+Tab", "next / previous panel"),
    ("Enter", "live log, errors: open that request · limits: the account's windows, history and "
              "headers · charts: show full-screen · alerts screen: the errors of that alert's window"),
    ("1 … 6", "one panel full-screen (rate, latency, limits, costs, log, errors); again: back"),
    ("z", "maximize the focused panel (Esc or z: back)"),
    ("q / Esc", "back from any screen; on the dashboard q quits, Esc clears the filter"),
    ("/", "filter: type a name as shown — model (sonnet-4-5), domain, account, status (5xx, 429, error); "
          "session:ID, tag:name:value"),
    ("t", "cycle time range: 15m → 1h → 6h → 24h → 7d (until then: auto, 15m on a fresh start, "
          "then 1h once the data reaches back)"),
    ("p", "pause / resume (the stream keeps buffering, the view freezes)"),
    ("e", "export: SVG of the screen + JSON of the same data into the current directory (a sub-screen: its own data)"),
    ("a", "alerts: firing and recent, live"),
    ("s", "sessions: live Claude Code sessions, Enter for agents and requests; / session: tag:k=v client:"),
    ("r", "refresh now (and reconnect at once)"),
    ("Ctrl+P", "command palette: every action by name"),
    ("?", "this help"),
]


def help_renderable() -> Table:
    t = Table(title="Claude Nexus Monitor — keys", title_style="bold", show_header=False, box=None,
              padding=(0, 2))
    t.add_column(style="bold cyan", no_wrap=True)
    t.add_column()
    for k, v in KEYS:
        t.add_row(k, v)
    t.add_row("", "")
    t.add_row("", Text("Panels: request rate, latency p50/p95, limits (5 h / weekly / per-model windows as "
                       "Anthropic measures them; ~est = estimated, key = API-key headroom), costs, live log, "
                       "errors. The header shows connection state, proxy uptime, range and filter; "
                       "below 100 columns the charts collapse into a line of sparklines (1 / 2 open them).",
                       style="dim"))
    return t


class HelpScreen(Screen):
    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back", key_display="q/Esc"),
        Binding("question_mark", "app.pop_screen", "Back", show=False),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-scroll"):
            yield Static(help_renderable(), id="help")
        yield Footer(compact=True)
