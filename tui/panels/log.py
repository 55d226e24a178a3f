"""The live request log: every exchange as the stream delivers it, like ``tail -f`` (lazygit/k9s-style).

Newest at the bottom, in time order, and followed (``⤓ following`` in the title) while the cursor
sits on the last row; move up and the view stays on the request you were reading while new ones
arrive below (``⏸ 37 new · G``). ``g``/``G`` jump to the first/last row. count_tokens calls are
dimmed (they are not billed), error rows are bold with a ``✖`` status, and a stream that failed
after its 200 says so (``200✖`` here, "mid-stream" in the errors table). A virtual list (see
``vlist``), so 200 events/s cost one cheap redraw per tick.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual.binding import Binding

from tui import fmt
from tui.api.models import RequestEvent
from tui.panels import Panel
from tui.widgets.vlist import VirtualTable

COLUMNS = [
    ("time", "time", 8),
    ("st", "status", 4),
    ("model", "model", 10),
    ("latency", "latency", 7),
    ("tokens", "tokens", 6),
    ("cost", "cost", 8),
    ("call", "call", 5),
    ("domain", "domain", 12),
    ("session", "session", 8),  # right-most: shown where the terminal is wide enough
]
# Most telling first; on a narrow panel the last ones are dropped whole, never cut. A count_tokens
# call is also told by its dimmed row when the "call" column does not fit.
PRIORITY = (1, 2, 5, 0, 3, 4, 7, 6, 8)


def log_cells(ev: RequestEvent) -> tuple:
    cost = fmt.usd(ev.cost_usd) if ev.cost_usd is not None else (
        Text(fmt.UNPRICED, style="yellow") if ev.model and ev.request_type == "messages" else fmt.DASH)
    return (fmt.clock(ev.time), fmt.status_cell(ev), fmt.short_model(ev.model), fmt.ms(ev.latency_ms),
            fmt.tokens(ev.tokens.total), cost, fmt.call_kind(ev.request_type), ev.domain,
            (ev.session_id or fmt.DASH)[:8])


def _time_key(ev: RequestEvent) -> float:
    return ev.time.timestamp() if ev.time else 0.0


class RequestLog(VirtualTable, Panel):
    SOURCES = ()
    PANEL_TITLE = "Live requests"
    COLUMNS = COLUMNS
    PRIORITY = PRIORITY
    FLEX = 7  # the domain takes the spare width
    MAX_ROWS = 500
    BINDINGS = [
        Binding("g", "first", "First", show=False),
        Binding("G", "follow", "Follow", show=False),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._follow = True
        self.new_while_paused = 0  # rows that arrived below while not following
        self.shown = 0
        # Every event held, filtered or not, so a new filter narrows (and clearing it restores)
        # what was already seen; the rows on screen are those the predicate keeps.
        self.events: OrderedDict[str, RequestEvent] = OrderedDict()
        self.predicate: Callable[[RequestEvent], bool] | None = None
        self._title()

    @property
    def following(self) -> bool:
        return self._follow

    def _title(self) -> None:
        mark = "⤓ following" if self._follow else f"⏸ {self.new_while_paused} new · G"
        self.set_title(self.PANEL_TITLE, mark)

    def on_resize(self) -> None:
        self._title()

    def count_matching(self, pred: Callable[[RequestEvent], bool]) -> tuple[int, int]:
        return sum(1 for e in self.events.values() if pred(e)), len(self.events)

    def _rebuild(self) -> None:
        pred = self.predicate
        self._rows = OrderedDict((k, log_cells(e)) for k, e in self.events.items() if pred is None or pred(e))
        self._ids = None

    def narrow(self, pred: Callable[[RequestEvent], bool] | None) -> None:
        """Show only the held events ``pred`` keeps (None: all), newest followed."""
        self.predicate = pred
        self._rebuild()
        self._follow = True
        self.new_while_paused = 0
        self.cursor_row = self.row_count - 1
        self._title()
        self.refresh()

    def append(self, events: list[RequestEvent]) -> None:
        """Add a batch of new events in time order; only the last ``MAX_ROWS`` are kept."""
        if not events:
            return
        pred = self.predicate
        current = self.current_id
        before = self.row_count
        last_t = _time_key(next(reversed(self.events.values()))) if self.events else float("-inf")
        fresh = sorted((e for e in events[-self.MAX_ROWS:] if e.id and e.id not in self.events), key=_time_key)
        in_order = not fresh or _time_key(fresh[0]) >= last_t
        for ev in fresh:
            self.events[ev.id] = ev
        if not in_order:  # a late event (another instance, a slow flush): put it where it belongs
            self.events = OrderedDict(sorted(self.events.items(), key=lambda kv: _time_key(kv[1])))
        while len(self.events) > self.MAX_ROWS:
            self.events.popitem(last=False)
        if in_order:
            for ev in fresh:
                if ev.id in self.events and (pred is None or pred(ev)):
                    self._rows[ev.id] = log_cells(ev)
            while self._rows and next(iter(self._rows)) not in self.events:
                self._rows.popitem(last=False)
            self._ids = None
        else:
            self._rebuild()
        self.shown += len(events)
        if self._follow:
            self.cursor_row = self.row_count - 1
        else:  # stay on the same request while rows come and go around it
            self.new_while_paused += max(0, self.row_count - before) if in_order else len(fresh)
            if current in self._rows:
                self.cursor_row = self.row_ids.index(current)
            else:
                self.cursor_row = min(self.cursor_row, self.row_count - 1)
        self._title()
        self.refresh()

    def style_row(self, row_id: str, line: Text) -> None:
        ev = self.events.get(row_id)
        if ev is None:
            return
        if ev.is_error:
            line.stylize("bold")
        elif ev.request_type != "messages":
            line.stylize("dim")

    def _cursor_moved(self) -> None:
        was = self._follow
        self._follow = self.cursor_row >= self.row_count - 1
        if self._follow:
            self.new_while_paused = 0
        if was != self._follow:
            self._title()

    def action_follow(self) -> None:
        """``G``: to the newest row, and follow again."""
        self.move_cursor(self.row_count - 1)
        self._follow = True
        self.new_while_paused = 0
        self._title()

    def reset(self) -> None:
        self.clear_rows()
        self.events.clear()
        self._follow = True
        self.new_while_paused = 0
        self._title()

    def show(self, data: dict[str, Any]) -> None:
        """The log is fed by the stream (``append``), not by polls."""
