"""Requests per minute over the chosen range (errors drawn on top), from ``/api/timeseries``."""

from __future__ import annotations

from typing import Any

from textual.binding import Binding
from textual_plotext import PlotextPlot

from tui.api.reports import Timeseries
from tui.panels import Panel, filter_note


def bucket_name(seconds: int) -> str:
    return f"{seconds // 3600} h" if seconds % 3600 == 0 else f"{seconds // 60} min"


def bucket_labels(ts: Timeseries) -> list[str]:
    """Short local-time labels; the date only matters for the 7-day range."""
    fmt = "%a %H:%M" if ts.bucket_seconds >= 3600 else "%H:%M"
    return [b.time.astimezone().strftime(fmt) if b.time else "" for b in ts.buckets]


class RateChart(PlotextPlot, Panel):
    """Drawn only when the series changed: a plotext build is the costliest thing on screen."""

    SOURCES = ("timeseries",)
    PANEL_TITLE = "Requests / min"
    can_focus = True
    BINDINGS = [Binding("enter", "app.zoom", "Full screen", key_display="Enter")]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._last: tuple | None = None
        self.border_title = self.PANEL_TITLE

    def show(self, data: dict[str, Any]) -> None:
        ts: Timeseries | None = data.get("timeseries")
        if ts is None:
            return
        per_min = 60.0 / max(1, ts.bucket_seconds)
        reqs = [b.requests * per_min for b in ts.buckets]
        errs = [b.errors * per_min for b in ts.buckets]
        key = (ts.bucket_seconds, tuple(reqs), tuple(errs), tuple(b.time for b in ts.buckets[:1]))
        if key == self._last:
            return
        self._last = key
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        if reqs:
            xs = list(range(len(reqs)))
            plt.plot(xs, reqs, marker="braille", label="req/min")
            if any(errs):
                plt.plot(xs, errs, marker="braille", label="errors", color="red")
            labels = bucket_labels(ts)
            step = max(1, len(xs) // 4)
            plt.xticks(xs[::step], labels[::step])
        plt.ylim(0, None)
        # No total of its own here: the header's count is the range's, from the same snapshot.
        self.border_title = (f"{self.PANEL_TITLE} · per {bucket_name(ts.bucket_seconds)}"
                             + filter_note(data.get("query")))
        self.refresh()
