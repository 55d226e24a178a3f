"""Token windows per account: the 5-hour window Anthropic meters usage in.

Used, % of the limit, burn rate per minute, projected total at window end, and when the limit
runs out at the current burn rate — the number people watch to avoid a surprise 429.
A virtual list rather than a DataTable: the DataTable's per-cell render caches key on an update
counter, so a table updated every poll fills them (tens of MB over an hour) before they cycle.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.text import Text

from tui import fmt
from tui.api.reports import TokenWindow
from tui.panels import Panel, filter_note
from tui.widgets.vlist import VirtualTable

COLUMNS = [
    ("account", "account", 17),
    ("used", "used", 6),
    ("% limit", "pct", 7),
    ("burn/m", "burn", 6),
    ("proj.", "proj", 6),
    ("exhausts", "exhaust", 13),
]
PRIORITY = (0, 1, 2, 5, 3, 4)  # a narrow panel drops projection, then burn rate, never cuts them


MIN_BURN_S = 300.0  # below five minutes of a window, no burn rate or projection is shown


def window_cells(w: TokenWindow, now: datetime) -> tuple:
    pct = w.percent_of_limit
    if pct is None:
        pct_cell: Text | str = fmt.DASH
    else:
        style = fmt.ERR_STYLE if pct >= 90 else "yellow" if pct >= 80 else ""
        pct_cell = Text(fmt.pct(pct), style=style)
    exhaust: Text | str = fmt.DASH
    if w.exhaustion_time is not None:
        exhaust = Text(fmt.until(w.exhaustion_time, now), style=fmt.ERR_STYLE)
    burn: Text | str = fmt.tokens(w.burn_per_minute)
    proj: Text | str = fmt.tokens(w.projected_total)
    if w.window_start is not None and (now - w.window_start).total_seconds() < MIN_BURN_S:
        # A rate from a few seconds of traffic is the total again, and a 5-hour projection of it
        # is noise: say that it is too early instead.
        burn = proj = Text("<5 min", style="dim")
        exhaust = fmt.DASH
    return (w.account_id or "(no account)", fmt.tokens(w.total_tokens), pct_cell, burn, proj, exhaust)


class TokenWindowsPanel(VirtualTable, Panel):
    SOURCES = ("windows",)
    PANEL_TITLE = "Token windows (5 h)"
    COLUMNS = COLUMNS
    PRIORITY = PRIORITY
    MAX_ROWS = 500

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.border_title = self.PANEL_TITLE
        self.now = lambda: datetime.now(UTC)

    def show(self, data: dict[str, Any]) -> None:
        windows: list[TokenWindow] | None = data.get("windows")
        if windows is None:
            return
        windows = sorted(windows, key=lambda w: -w.total_tokens)
        now = self.now()
        self.set_rows([(w.account_id or "-", window_cells(w, now)) for w in windows])
        self.set_title(self.PANEL_TITLE, f"{len(windows)} accounts",
                       filter_note(data.get("query"), ("domain", "account")).removeprefix(" · "))
