"""Recent errors, newest first: the individual failed exchanges, so Enter can open one.

Seeded by ``/api/errors`` (its ``recent`` rows) on each poll and topped up live from the stream, so a
529 shows up the moment it happens rather than at the next poll. The title carries the counts
by status/type from ``/api/errors``.
"""

from __future__ import annotations

from typing import Any

from tui import fmt
from tui.api.models import RequestEvent
from tui.api.query import Query
from tui.api.reports import ErrorsReport
from tui.panels import Panel, filter_note
from tui.widgets.vlist import VirtualTable

COLUMNS = [
    ("time", "time", 8),
    ("st", "status", 4),
    ("type", "type", 12),
    ("model", "model", 10),
    ("domain", "domain", 16),
]
PRIORITY = (1, 2, 0, 3, 4)  # status and type first: a narrow panel drops whole columns, never cuts
MAX_ROWS = 100


def error_cells(ev: RequestEvent) -> tuple:
    return (fmt.clock(ev.time), fmt.status_cell(ev), fmt.error_kind(ev), fmt.short_model(ev.model), ev.domain)


class ErrorsPanel(VirtualTable, Panel):
    SOURCES = ("errors",)
    PANEL_TITLE = "Errors"
    COLUMNS = COLUMNS
    PRIORITY = PRIORITY
    FLEX = 4  # the domain takes the spare width (every type fits its 12 cells)
    MAX_ROWS = MAX_ROWS

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.border_title = self.PANEL_TITLE
        self._events: dict[str, RequestEvent] = {}
        self._report: ErrorsReport | None = None
        self._until: Any = None

    def merge(self, events: list[RequestEvent], query: Query | None = None) -> None:
        """Add error events (from a poll or the stream); keeps the newest ``MAX_ROWS``."""
        for ev in events:
            if ev.is_error and ev.id and (query is None or query.matches(ev)):
                self._events[ev.id] = ev
        if len(self._events) > MAX_ROWS:
            keep = sorted(self._events.values(), key=_time_key, reverse=True)[:MAX_ROWS]
            self._events = {e.id: e for e in keep}

    def reset(self) -> None:
        self._events.clear()
        self._report = None
        self.clear_rows()

    def show(self, data: dict[str, Any]) -> None:
        report: ErrorsReport | None = data.get("errors")
        q: Query | None = data.get("query")
        if report is not None:
            self.merge(report.recent, q)
        if q is not None:
            since = q.since(data.get("now"))
            self._events = {k: e for k, e in self._events.items() if e.time is None or e.time >= since}
        events = sorted(self._events.values(), key=_time_key, reverse=True)
        self.set_rows([(e.id, error_cells(e)) for e in events])
        if report is not None:
            self._report = report
            window = data.get("window")
            self._until = window.until if window is not None else None
        report = self._report
        if report is not None:
            # The poll's count, plus the errors the stream delivered since its window closed,
            # so the title never lags the rows under it.
            live = sum(1 for e in events if self._until is not None and e.time is not None
                       and e.time >= self._until)
            top = report.groups[:3]
            summary = ", ".join(f"{g.status} {g.error_type or ''}".strip() + f" ×{g.count}" for g in top)
            q_range = q.time_range if q is not None else ""
            self.set_title(f"{self.PANEL_TITLE} · {report.total + live} in {q_range}",
                           filter_note(q, ("domain", "account", "model", "status")).removeprefix(" · "), summary)


def _time_key(ev: RequestEvent) -> float:
    return ev.time.timestamp() if ev.time else 0.0
