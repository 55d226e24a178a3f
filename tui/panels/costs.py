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


def costs_rows(costs: Costs, stats: Stats | None, range_name: str) -> list[tuple[Text, Text, Text]]:
    """(label, amount, note) rows; amounts are never cut, notes are dropped first when narrow."""
    def T(x: str | Text, style: str = "") -> Text:  # noqa: N802 - a tiny constructor
        return x if isinstance(x, Text) else Text(x, style=style)

    rows: list[tuple[Text, Text, Text]] = []
    if stats is not None:  # the header's cost, from the same snapshot
        rows.append((T(f"last {range_name}", "bold"), T(fmt.usd(stats.cost_usd), "bold"), T("")))
    rows.append((T("today UTC"), T(fmt.usd(costs.today_usd)), T("")))
    rows.append((T("month"), T(fmt.usd(costs.month_usd)),
                 T("→ " + fmt.usd(costs.projection_usd), "dim") if costs.projection_usd is not None else T("")))
    # Billing dimensions of the cost range, shown only when there is something to say.
    if costs.web_searches:
        rows.append((T("web search"), T(fmt.usd(costs.web_search_usd)), T(f"{costs.web_searches} srch", "dim")))
    if costs.fast_usd:
        rows.append((T(f"{FAST_MARK} fast mode"), T(fmt.usd(costs.fast_usd)),
                     T(f"{costs.fast_share:.0%} of all", "magenta")))
    models = sorted(costs.by_model, key=lambda b: -(b.cost_usd or 0.0))
    if models or costs.unpriced_models:
        rows.append((T("models 31d", "dim italic"), T(""), T("")))
    for b in models[:6]:
        priced = b.cost_usd is not None and b.key not in costs.unpriced_models
        cost = T(fmt.usd(b.cost_usd)) if priced else T(fmt.UNPRICED, "yellow")
        rows.append((T(fmt.short_model(b.key), "dim"), cost, T(f"{fmt.tokens(b.requests)} req", "dim")))
    shown = {b.key for b in models[:6]}
    for m in costs.unpriced_models:
        if m not in shown:
            n = costs.unpriced_tokens.get(m)
            rows.append((T(fmt.short_model(m), "dim"), T(fmt.UNPRICED, "yellow"),
                         T(f"{fmt.tokens(n)} tok", "dim") if n else T("")))
    return rows


def costs_renderable(costs: Costs, stats: Stats | None, range_name: str, width: int = 46) -> Table:
    rows = costs_rows(costs, stats, range_name)
    amount_w = max((r[1].cell_len for r in rows), default=0)
    note_w = max((r[2].cell_len for r in rows), default=0)
    label_w = max((r[0].cell_len for r in rows), default=0)
    with_notes = label_w + amount_w + note_w + 2 <= width or width - amount_w - note_w - 2 >= 9
    t = Table.grid(padding=(0, 1), expand=True)
    t.add_column(ratio=1, no_wrap=True, overflow="ellipsis")  # labels may be cut, amounts never
    t.add_column(justify="right", no_wrap=True, min_width=amount_w)
    if with_notes:
        t.add_column(justify="right", no_wrap=True, min_width=note_w)
    for label, amount, note in rows:
        t.add_row(label, amount, note) if with_notes else t.add_row(label, amount)
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
        self._data: dict[str, Any] = {}

    def on_resize(self) -> None:
        if self._data:
            self.show(self._data)

    def show(self, data: dict[str, Any]) -> None:
        costs: Costs | None = data.get("costs")
        if costs is None:
            return
        stats: Stats | None = data.get("stats")
        q = data.get("query")
        range_name = q.time_range if q else "1h"
        self._data = data
        width = max(10, self.content_size.width or 46)
        key = (repr(costs), None if stats is None else stats.cost_usd, range_name, q, width)
        if key == self._last:
            return
        self._last = key
        self.set_title(self.PANEL_TITLE, filter_note(q).removeprefix(" · "))
        table = costs_renderable(costs, stats, range_name, width)
        self.plain = to_plain(table, width)
        self.update(table)
