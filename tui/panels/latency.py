"""Latency p50 and p95 per bucket (milliseconds), from ``/api/timeseries``."""

from __future__ import annotations

from typing import Any

from textual.binding import Binding
from textual_plotext import PlotextPlot

from tui import fmt
from tui.api.reports import Timeseries
from tui.panels import Panel, filter_note
from tui.panels.rate import bucket_name, closed_buckets, no_color, second_marker, x_ticks, y_ticks


class LatencyChart(PlotextPlot, Panel):
    SOURCES = ("timeseries",)
    PANEL_TITLE = "Latency p50 / p95"
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
        # Per-bucket percentiles, said so: the header's p95 is the whole range's, a different number.
        self.set_title(f"Latency per {bucket_name(ts.bucket_seconds)}",
                       filter_note(data.get("query")).removeprefix(" · "))
        self.border_subtitle = "[cyan]━ p50[/]  [orange1]" + ("•" if no_color() else "━") + " p95[/]"
        window = data.get("window")
        buckets = closed_buckets(ts, window.until if window is not None else None)
        pts = [(i, b.p50, b.p95) for i, b in enumerate(buckets) if b.p50 is not None or b.p95 is not None]
        key = (tuple(pts), tuple(b.time for b in buckets[:1]), self.size)
        if key == self._last:
            return
        self._last = key
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        if pts:
            # One line per run of consecutive non-empty buckets: joining across a gap would
            # draw a latency for minutes that had no requests at all.
            for run in _runs(pts):
                xs = [p[0] for p in run]
                draw = plt.scatter if len(run) == 1 else plt.plot
                draw(xs, [p[1] or 0 for p in run], marker="braille", color="cyan")
                draw(xs, [p[2] or 0 for p in run], marker=second_marker(), color="orange")
            plt.xticks(*x_ticks(buckets, ts.bucket_seconds))
            plt.xlim(0, max(1, len(buckets) - 1))
            top = max(max(p[1] or 0, p[2] or 0) for p in pts)
            plt.yticks(*y_ticks(top, fmt.ms))
        plt.ylim(0, None)
        self.refresh()


def _runs(pts: list[tuple[int, float | None, float | None]]) -> list[list[tuple[int, float | None, float | None]]]:
    out: list[list[tuple[int, float | None, float | None]]] = []
    for p in pts:
        if out and out[-1][-1][0] == p[0] - 1:
            out[-1].append(p)
        else:
            out.append([p])
    return out
