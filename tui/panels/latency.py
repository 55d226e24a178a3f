"""Latency p50 and p95 per bucket (milliseconds), from ``/api/timeseries``."""

from __future__ import annotations

from typing import Any

from textual.binding import Binding
from textual_plotext import PlotextPlot

from tui.api.reports import Timeseries
from tui.panels import Panel, filter_note
from tui.panels.rate import bucket_labels, bucket_name


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
        self.border_title = f"{self.PANEL_TITLE} · ms per {bucket_name(ts.bucket_seconds)}" + filter_note(
            data.get("query"))
        pts = [(i, b.p50, b.p95) for i, b in enumerate(ts.buckets) if b.p50 is not None or b.p95 is not None]
        key = (tuple(pts), tuple(b.time for b in ts.buckets[:1]))
        if key == self._last:
            return
        self._last = key
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        if pts:
            # One line per run of consecutive non-empty buckets: joining across a gap would
            # draw a latency for minutes that had no requests at all.
            for n, run in enumerate(_runs(pts)):
                xs = [p[0] for p in run]
                first = n == 0
                if len(run) == 1:
                    plt.scatter(xs, [run[0][1] or 0], marker="braille", color="cyan", label="p50" if first else None)
                    plt.scatter(xs, [run[0][2] or 0], marker="braille", color="orange",
                                label="p95" if first else None)
                else:
                    plt.plot(xs, [p[1] or 0 for p in run], marker="braille", color="cyan",
                             label="p50" if first else None)
                    plt.plot(xs, [p[2] or 0 for p in run], marker="braille", color="orange",
                             label="p95" if first else None)
            labels = bucket_labels(ts)
            allx = list(range(len(ts.buckets)))
            step = max(1, len(allx) // 4)
            plt.xticks(allx[::step], labels[::step])
            plt.xlim(0, max(1, len(allx) - 1))
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
