"""The live request log: every exchange as the stream delivers it, like ``tail -f``.

Newest at the bottom and followed while the cursor sits on the last row; move up and it stays
put. Rows are appended and the oldest dropped, never rebuilt, so 200 events/s stay cheap.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from rich.text import Text

from tui import fmt
from tui.client import RequestEvent
from tui.panels import Panel
from tui.panels.table import DiffTable

# Most telling first: on a narrow terminal the right-most columns are the ones cut off.
COLUMNS = [
    ("time", "time", 8),
    ("st", "status", 3),
    ("model", "model", 10),
    ("latency", "latency", 7),
    ("tokens", "tokens", 6),
    ("cost", "cost", 7),
    ("domain", "domain", 15),
]
MAX_ROWS = 300


def log_cells(ev: RequestEvent) -> tuple:
    status = Text(str(ev.status), style="bold red" if ev.is_error else "green")
    cost = fmt.usd(ev.cost_usd) if ev.cost_usd is not None else (
        Text(fmt.UNPRICED, style="yellow") if ev.model and ev.request_type == "messages" else fmt.DASH)
    return (fmt.clock(ev.time), status, fmt.short_model(ev.model), fmt.ms(ev.latency_ms),
            fmt.tokens(ev.tokens.total), cost, ev.domain)


class RequestLog(DiffTable, Panel):
    SOURCES = ()
    PANEL_TITLE = "Live requests"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(COLUMNS, **kwargs)
        self.border_title = self.PANEL_TITLE
        self._order: deque[str] = deque()
        self._follow = True
        self.shown = 0

    def append(self, events: list[RequestEvent]) -> None:
        """Add a batch of new events; only the last ``MAX_ROWS`` of a big batch are drawn."""
        if not events:
            return
        follow = self.row_count == 0 or self.cursor_row >= self.row_count - 1
        for ev in events[-MAX_ROWS:]:
            if not ev.id or ev.id in self._rows:
                continue
            cells = log_cells(ev)
            self.add_row(*cells, key=ev.id)
            self._rows[ev.id] = cells
            self._order.append(ev.id)
        while len(self._order) > MAX_ROWS:
            old = self._order.popleft()
            self._rows.pop(old, None)
            self.remove_row(old)
        self.shown += len(events)
        self._follow = follow
        if follow and self.row_count:
            self.move_cursor(row=self.row_count - 1, animate=False)

    def keep_following(self) -> None:
        """Called every UI tick: new rows change the virtual size only after layout, so the
        scroll done when they were added can fall one row short; catch up here."""
        if self._follow and self.scroll_y < self.max_scroll_y and self.cursor_row >= self.row_count - 1:
            self.scroll_end(animate=False, immediate=True)

    def reset(self) -> None:
        self.clear()
        self._rows.clear()
        self._order.clear()

    def show(self, data: dict[str, Any]) -> None:
        """The log is fed by the stream (``append``), not by polls."""
