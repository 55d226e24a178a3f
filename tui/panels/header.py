"""The top lines: connection state, proxy uptime, time range and filter; the range's totals;
and a banner while an alert is firing.

They are redrawn only when their text changes, so the once-a-second tick costs next to nothing.
"""

from __future__ import annotations

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
                buffered: int, url: str) -> Text:
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append(" Nexus ", style="bold reverse")
    t.append(" ")
    if auth_failed:
        t.append("✖ " + message, style="bold red")
    elif connected:
        t.append("● live", style="bold green")
    else:
        retry = f" — retrying in {max(0, round(retry_in))}s" if retry_in is not None else ""
        t.append(f"○ {message}{retry}", style="bold yellow")
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


def stats_text(s: Stats, time_range: str) -> Text:
    t = Text(no_wrap=True, overflow="ellipsis")

    def item(label: str, value: str, style: str = "bold") -> None:
        t.append(f" {label} ", style="dim")
        t.append(value, style=style)

    item("requests", f"{s.total_requests:,}")
    item("rpm", f"{s.requests_per_minute:.1f}")
    err_style = "bold red" if s.error_rate >= 0.05 else "bold"
    item("errors", f"{s.errors:,} ({fmt.pct(s.error_rate, ratio=True)})", err_style)
    item("p50", fmt.ms(s.latency_p50))
    item("p95", fmt.ms(s.latency_p95))
    item("p99", fmt.ms(s.latency_p99))
    item("tokens", fmt.tokens(s.tokens.total))
    item("cost", fmt.usd(s.cost_usd))
    t.append(f"  (last {time_range})", style="dim")
    return t


class StatusBar(ChangeStatic):
    pass


class StatsStrip(ChangeStatic, Panel):
    SOURCES = ("stats",)

    def show(self, data: dict[str, Any]) -> None:
        stats: Stats | None = data.get("stats")
        q = data.get("query")
        if stats is not None:
            self.set_text(stats_text(stats, q.time_range if q else "1h"))


class AlertBanner(ChangeStatic):
    """Visible only while something is firing; ``a`` lists them all."""

    def show_alerts(self, alerts: list[Alert]) -> None:
        firing = [a for a in alerts if a.firing]
        self.display = bool(firing)
        if firing:
            first = firing[0]
            more = f"  (+{len(firing) - 1} more)" if len(firing) > 1 else ""
            self.set_text(Text(f" ⚠ ALERT {first.rule}: {first.message}{more}  — press a ",
                               style="bold white on red", no_wrap=True, overflow="ellipsis"))
