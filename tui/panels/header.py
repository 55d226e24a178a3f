"""The top lines: connection state, proxy uptime, time range and filter; the range's totals;
and a banner while an alert is firing.

They are redrawn only when their text changes, so the once-a-second tick costs next to nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.text import Text
from textual.widgets import Static

from tui import fmt
from tui.api.models import Alert
from tui.api.reports import Stats
from tui.panels import Panel


class ChangeStatic(Static):
    """A Static that ignores updates that would not change what is shown."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._shown: str | None = None
        self.plain = ""  # what is on screen, without styles (for tests and exports)

    def set_text(self, text: Text) -> None:
        sig = text.markup if isinstance(text, Text) else str(text)
        if sig != self._shown:
            self._shown = sig
            self.plain = text.plain if isinstance(text, Text) else str(text)
            self.update(text)


def status_text(*, connected: bool, message: str, retry_in: float | None, auth_failed: bool,
                uptime_s: float | None, time_range: str, filter_text: str, paused: bool,
                buffered: int, url: str, updated_ago: float | None = None,
                stale_since: datetime | None = None) -> Text:
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append(" Nexus ", style="bold reverse")
    t.append(" ")
    if auth_failed:
        t.append("✖ " + message, style=fmt.ERR_STYLE)
    elif connected:
        t.append("● live", style=f"bold {fmt.OK_COLOR}")
        if updated_ago is not None:
            t.append(f" · updated {fmt.duration(updated_ago)} ago", style="dim")
    else:
        retry = f" — retrying in {max(0, round(retry_in))}s" if retry_in is not None else ""
        t.append(f"○ {message}{retry}", style="bold yellow")
        if stale_since is not None:
            t.append(f"  STALE since {fmt.clock(stale_since)}", style="bold reverse yellow")
    if filter_text:  # before anything else: a filtered screen must say so even at 60 columns
        t.append("  filter ", style="dim")
        t.append(filter_text, style="bold reverse")
        t.append(" Esc clears", style="dim")
    if paused:
        t.append(f"  ⏸ PAUSED ({buffered} buffered)", style="bold reverse yellow")
    t.append("  range ", style="dim")
    t.append(time_range, style="bold")
    t.append(f"  up {fmt.duration(uptime_s)}" if uptime_s is not None else "", style="dim")
    t.append(f"  {url}", style="dim")
    return t


def stats_items(s: Stats) -> list[tuple[str, str, str]]:
    """(label, value, style), most important first: what stays at 60 columns comes first."""
    err_style = fmt.ERR_STYLE if s.error_rate >= 0.05 else "bold"
    return [
        ("req", f"{s.total_requests:,}", "bold"),
        ("err", f"{fmt.pct(s.error_rate, ratio=True)} ({s.errors:,})", err_style),
        ("p95", fmt.ms(s.latency_p95), "bold"),
        ("cost", fmt.usd(s.cost_usd), "bold"),
        ("rpm", f"{s.requests_per_minute:.1f}", "bold"),
        ("p50", fmt.ms(s.latency_p50), "bold"),
        ("p99", fmt.ms(s.latency_p99), "bold"),
        ("tokens", fmt.tokens(s.tokens.total), "bold"),
    ]


def stats_text(s: Stats | None, time_range: str, width: int = 200, unknown: str | None = None) -> Text:
    """The range's totals, labelled with their window; items that do not fit are dropped whole,
    lowest priority first, so a value is never cut."""
    t = Text(no_wrap=True, overflow="crop")
    t.append(f" last {time_range} ", style="bold reverse")
    if s is None:
        t.append(f" {unknown or 'waiting for the first poll…'}", style="dim")
        return t
    for label, value, style in stats_items(s):
        piece = len(label) + len(value) + 3
        if t.cell_len + piece > width:
            break
        t.append(f"  {label} ", style="dim")
        t.append(value, style=style)
    return t


class StatusBar(ChangeStatic):
    pass


class StatsStrip(ChangeStatic, Panel):
    SOURCES = ("stats",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._data: dict[str, Any] = {}

    def show(self, data: dict[str, Any]) -> None:
        self._data = data
        stats: Stats | None = data.get("stats")
        q = data.get("query")
        unknown = "unknown — the API is unreachable" if data.get("api_down") else None
        self.set_text(stats_text(stats, q.time_range if q else "1h", self.size.width or 200, unknown))

    def on_resize(self) -> None:
        self.show(self._data)


class AlertBanner(ChangeStatic):
    """Visible only while something is firing; ``a`` lists them all."""

    def show_alerts(self, alerts: list[Alert]) -> None:
        firing = [a for a in alerts if a.firing]
        self.display = bool(firing)
        if firing:
            first = firing[0]
            more = f"  (+{len(firing) - 1} more)" if len(firing) > 1 else ""
            # The key first: a long message is what gets cut at 60 columns, never the way in.
            # A message that starts with the alert's title says it once ("Token limit approaching: Token
            # limit approaching for acct_7e…" wastes the half of 80 columns that matters).
            what = first.message if first.message.lower().startswith(first.rule.lower()) else (
                f"{first.rule}: {first.message}")
            self.set_text(Text(f" ⚠ ALERT (a) {what}{more} ",
                               style="bold white on red", no_wrap=True, overflow="ellipsis"))
