"""The live request log: every exchange as the stream delivers it, like ``tail -f``.

Newest at the bottom and followed while the cursor sits on the last row; move up and the view
stays on the request you were reading while new ones arrive below. A virtual list (see
``vlist``), so 200 events/s cost one cheap redraw per tick.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from tui import fmt
from tui.api.models import RequestEvent
from tui.panels import Panel
from tui.widgets.vlist import VirtualTable

# Most telling first: on a narrow terminal the right-most columns are the ones cut off.
COLUMNS = [
    ("time", "time", 8),
    ("st", "status", 3),
    ("model", "model", 10),
    ("latency", "latency", 7),
    ("tokens", "tokens", 6),
    ("cost", "cost", 8),
    ("domain", "domain", 24),
    ("session", "session", 8),  # right-most: shown where the terminal is wide enough
]


def log_cells(ev: RequestEvent) -> tuple:
    status = Text(str(ev.status), style="bold red" if ev.is_error else "green")
    cost = fmt.usd(ev.cost_usd) if ev.cost_usd is not None else (
        Text(fmt.UNPRICED, style="yellow") if ev.model and ev.request_type == "messages" else fmt.DASH)
    return (fmt.clock(ev.time), status, fmt.short_model(ev.model), fmt.ms(ev.latency_ms),
            fmt.tokens(ev.tokens.total), cost, ev.domain, (ev.session_id or fmt.DASH)[:8])


class RequestLog(VirtualTable, Panel):
    SOURCES = ()
    PANEL_TITLE = "Live requests"
    COLUMNS = COLUMNS
    MAX_ROWS = 500

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.border_title = self.PANEL_TITLE
        self._follow = True
        self.shown = 0

    def append(self, events: list[RequestEvent]) -> None:
        """Add a batch of new events; only the last ``MAX_ROWS`` of a big batch are kept."""
        if not events:
            return
        for ev in events[-self.MAX_ROWS:]:
            if ev.id and ev.id not in self._rows:
                self._rows[ev.id] = log_cells(ev)
        dropped = 0
        while len(self._rows) > self.MAX_ROWS:
            self._rows.popitem(last=False)
            dropped += 1
        self._ids = None
        self.shown += len(events)
        if self._follow:
            self.cursor_row = self.row_count - 1
        else:  # stay on the same request while old rows fall off the top
            self.cursor_row = max(0, self.cursor_row - dropped)
            self._top = max(0, self._top - dropped)
        self.refresh()

    def _cursor_moved(self) -> None:
        self._follow = self.cursor_row >= self.row_count - 1

    def reset(self) -> None:
        self.clear_rows()
        self._follow = True

    def show(self, data: dict[str, Any]) -> None:
        """The log is fed by the stream (``append``), not by polls."""
