"""Costs: today, this month, month-end projection, web-search spend, fast-mode share, and by model.

A model the price table does not know is shown as "unpriced", never as $0 — a silent zero
would understate the bill exactly when a new model appears.
"""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from tui import fmt
from tui.api.reports import Costs, Stats
from tui.panels import Panel, filter_note

FAST_MARK = "»"  # marks fast-mode (speed: fast) spend; Latin-1, so every terminal font has it


def costs_renderable(costs: Costs, stats: Stats | None, range_name: str) -> Table:
    t = Table.grid(padding=(0, 1), expand=True)
    t.add_column(ratio=3, no_wrap=True, overflow="ellipsis")
    t.add_column(justify="right", ratio=2, no_wrap=True)
    t.add_column(justify="right", ratio=2, no_wrap=True)
    if stats is not None:  # the header's cost, from the same snapshot
        t.add_row(Text(f"last {range_name}", style="bold"), Text(fmt.usd(stats.cost_usd), style="bold"), "")
    t.add_row("today UTC", fmt.usd(costs.today_usd), "")
    t.add_row("month", fmt.usd(costs.month_usd),
              Text("→ " + fmt.usd(costs.projection_usd), style="dim") if costs.projection_usd is not None
              else "")
    # Billing dimensions of the cost range, shown only when there is something to say.
    if costs.web_searches:
        t.add_row("web search", fmt.usd(costs.web_search_usd), Text(f"{costs.web_searches} srch", style="dim"))
    if costs.fast_usd:
        t.add_row(Text(f"{FAST_MARK} fast mode"), fmt.usd(costs.fast_usd),
                  Text(f"{costs.fast_share:.0%} of $", style="magenta"))
    models = sorted(costs.by_model, key=lambda b: -(b.cost_usd or 0.0))
    if models or costs.unpriced_models:
        t.add_row(Text("by model, 31 days", style="dim italic"), "", "")
    for b in models[:6]:
        priced = b.cost_usd is not None and b.key not in costs.unpriced_models
        cost = Text(fmt.usd(b.cost_usd)) if priced else Text(fmt.UNPRICED, style="yellow")
        t.add_row(Text(fmt.short_model(b.key), style="dim"), cost, Text(f"{b.requests} req", style="dim"))
    shown = {b.key for b in models[:6]}
    for m in costs.unpriced_models:
        if m not in shown:
            n = costs.unpriced_tokens.get(m)
            t.add_row(Text(fmt.short_model(m), style="dim"), Text(fmt.UNPRICED, style="yellow"),
                      Text(f"{fmt.tokens(n)} tok", style="dim") if n else "")
    return t


def to_plain(renderable: Any, width: int = 60) -> str:
    console = Console(width=width, file=io.StringIO(), color_system=None, record=True)
    console.print(renderable)
    return console.export_text()


class CostsPanel(Static, Panel):
    SOURCES = ("costs", "stats")
    PANEL_TITLE = "Costs"
    can_focus = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("", **kwargs)
        self.border_title = self.PANEL_TITLE
        self._last: tuple | None = None
        self.plain = ""  # the text shown, without styles (tests, exports)

    def show(self, data: dict[str, Any]) -> None:
        costs: Costs | None = data.get("costs")
        if costs is None:
            return
        stats: Stats | None = data.get("stats")
        q = data.get("query")
        range_name = q.time_range if q else "1h"
        key = (repr(costs), None if stats is None else stats.cost_usd, range_name, q)
        if key == self._last:
            return
        self._last = key
        self.border_title = self.PANEL_TITLE + filter_note(q)
        table = costs_renderable(costs, stats, range_name)
        self.plain = to_plain(table)
        self.update(table)
