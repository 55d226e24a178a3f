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
    ("↑ ↓  j k", "move in a table"),
    ("Tab / Shift+Tab", "next / previous panel"),
    ("Enter", "open the selected request or error (drill-down); on Limits: the account's windows"),
    ("Esc", "back / close"),
    ("/", "filter by domain, account, model, session or tag (name:value)"),
    ("t", "cycle time range: 15m → 1h → 6h → 24h → 7d"),
    ("p", "pause / resume (the stream keeps buffering, the view freezes)"),
    ("e", "export: SVG of the screen + JSON snapshot into the current directory"),
    ("a", "alerts: firing and recent"),
    ("s", "sessions: live Claude Code sessions, Enter for agents and requests; / session: tag:k=v client:"),
    ("r", "refresh now (and reconnect at once)"),
    ("Ctrl+P", "command palette: every action by name"),
    ("?", "this help"),
    ("q", "quit"),
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
                       "errors. The header shows connection state, proxy uptime, range and filter.",
                       style="dim"))
    return t


class HelpScreen(Screen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("question_mark", "app.pop_screen", "Back", show=False),
        Binding("q", "app.pop_screen", "Back", show=False),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-scroll"):
            yield Static(help_renderable(), id="help")
        yield Footer()
