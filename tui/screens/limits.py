"""Enter on the limits panel: one account's windows, their utilization history, the raw headers.

The history is ``/api/limits/history`` (one sample a minute at most, per window), drawn as a
sparkline per window over the last 24 hours; the headers are the latest answer's rate-limit
headers as they came (they carry no secret: credentials never reach this view).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from tui import fmt
from tui.api.client import DashboardClient
from tui.api.errors import ApiError
from tui.api.reports import LimitAccount, LimitSample
from tui.panels.sparks import sparkline
from tui.panels.windows import STATUS_LABEL, bar, countdown, pct_text, status_style


def window_layout(names: list[str], resets: list[str], width: int) -> tuple[int, int, bool]:
    """(bar cells, sparkline cells, reset clock shown) for the windows table in ``width`` cells:
    the sparkline gives way first, then the bar shrinks, then the reset's clock time goes, then the
    bar — every value left is shown whole."""
    name_w = max((len(n) for n in names), default=6)
    countdown_w = max((len(r.split(" ")[0]) for r in resets), default=5)
    clock_w = max((len(r) for r in resets), default=5)

    def need(bar_w: int, clock: bool) -> int:  # without the sparkline, which takes what is left
        cols = [max(name_w, 6), 4, bar_w, clock_w if clock else max(countdown_w, 6), 6]
        return sum(c + 2 for c in cols if c)

    for bar_w, clock in ((8, True), (4, True), (4, False), (0, False)):
        spare = width - need(bar_w, clock)
        if spare >= 0:
            spark = min(24, spare - 2)
            return bar_w, spark if spark >= 8 else 0, clock
    return 0, 0, False


def account_renderable(a: LimitAccount | None, account_id: str, history: list[LimitSample] | None,
                       now: datetime, error: str | None = None, width: int = 100) -> Table:
    parts: list = []
    if a is None:
        parts.append(Text(f"{account_id}: no rate-limit headers seen yet (the panel estimates).", style="dim"))
        return _stack(parts)
    head = Text()
    head.append(a.account_id, style="bold")
    head.append(f"  {a.kind or fmt.DASH}", style="dim")
    if a.status:
        head.append("  ")
        head.append(STATUS_LABEL.get(a.status, a.status), style=status_style(a.status))
    if a.claim:
        head.append(f"  binding: {a.claim}")
    head.append(f"\nmeasured {fmt.clock(a.observed_at)} (latest answer)", style="dim")
    if a.retry_after_s is not None:
        head.append(f"  retry after {fmt.duration(a.retry_after_s)}", style="bold red")
    if a.overage_status:
        head.append(f"  overage {a.overage_status}", style="dim")
    parts.append(head)
    by_window: dict[str, list[float]] = {}
    for s in history or []:
        by_window.setdefault(s.window, []).append(s.utilization)
    if a.windows:
        resets = [f"{countdown(w.resets_at, now)}" + ("" if w.resets_at is None else f" {w.resets_at.astimezone():%H:%M}")
                  for w in a.windows]
        bar_w, spark_w, clock = window_layout([w.name for w in a.windows], resets, width)
        t = Table(expand=True, box=None, padding=(0, 1))
        cols = ["window", "used"] + ([""] if bar_w else []) + ["resets", "status"] + (["last 24 h"] if spark_w else [])
        for col in cols:
            t.add_column(col, no_wrap=True)
        for w, reset in zip(a.windows, resets, strict=True):
            style = status_style(w.status, w.utilization)
            row: list = [w.name, Text(pct_text(w.utilization), style=style)]
            if bar_w:
                row.append(Text(bar(w.utilization, bar_w), style=style))
            row += [reset if clock else reset.split(" ")[0],
                    Text(STATUS_LABEL.get(w.status or "", w.status or fmt.DASH), style=style)]
            if spark_w:
                # utilization on its own scale, 0 … 1 (1 and above = full)
                row.append(Text(sparkline(by_window.get(w.name, []), spark_w, top=1.0, lift=False),
                                style=style))
            t.add_row(*row)
        parts.append(t)
    if a.buckets:
        t = Table(expand=True, box=None, padding=(0, 1), title="API-key headroom (per minute)", title_justify="left")
        for col in ("kind", "remaining", "limit", "resets"):
            t.add_column(col, no_wrap=True)
        for b in a.buckets:
            t.add_row(b.kind, fmt.tokens(b.remaining), fmt.tokens(b.limit), countdown(b.resets_at, now))
        parts.append(t)
    if error:
        parts.append(Text(f"history: {error}", style="yellow"))
    if a.headers:
        h = Text("\nlatest rate-limit headers\n", style="bold")
        for k in sorted(a.headers):
            h.append(f"{k}: ", style="dim")
            h.append(f"{a.headers[k]}\n")
        parts.append(h)
    return _stack(parts)


def _stack(parts: list) -> Table:
    """The parts one under the other (a one-column grid: what a Static renders reliably)."""
    grid = Table.grid(expand=True)
    grid.add_column()
    for p in parts:
        grid.add_row(p)
    return grid


class LimitsScreen(Screen):
    BINDINGS = [Binding("escape,q", "app.pop_screen", "Back", key_display="q/Esc")]

    def __init__(self, client: DashboardClient, account_id: str, account: LimitAccount | None,
                 now: datetime) -> None:
        super().__init__()
        self.client = client
        self.account_id = account_id
        self.account = account
        self.now = now
        self.history: list[LimitSample] | None = None
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="limits-scroll"):
            yield Static(self._content(), id="limits-detail")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#limits-scroll").border_title = f"Limits · {self.account_id}"
        if self.account is not None and self.account.windows:
            self.run_worker(self._load(), exit_on_error=False)

    def _content(self) -> Table:
        # the scroll's border and padding take 4 cells
        width = max(20, (self.size.width or 100) - 4)
        return account_renderable(self.account, self.account_id, self.history, self.now, self.error, width)

    def export_document(self) -> tuple[str, dict[str, Any]] | None:
        """``e``: the account's latest limits and the history drawn, as the API gave them."""
        history = [{"window": s.window, "time": s.time.isoformat(), "utilization": s.utilization}
                   for s in self.history or []]
        return f"limits-{self.account_id}", {"account": self.account.raw if self.account else None,
                                             "accountId": self.account_id, "history": history}

    def on_resize(self) -> None:
        self.query_one("#limits-detail", Static).update(self._content())

    async def _load(self) -> None:
        try:
            self.history = await self.client.limits_history(self.account_id)
        except ApiError as exc:
            self.error = str(exc)
        self.query_one("#limits-detail", Static).update(self._content())
