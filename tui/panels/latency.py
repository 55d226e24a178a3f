"""Latency p50 and p95 per bucket (milliseconds), from ``/api/timeseries``."""

from __future__ import annotations

from typing import Any

from textual.binding import Binding
from textual_plotext import PlotextPlot

from tui import fmt
from tui.api.reports import Timeseries
from tui.panels import Panel, filter_note
from tui.panels.rate import bucket_name, no_color, second_marker, split_buckets, x_ticks, y_ticks


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
        self.border_subtitle = "[cyan]━ p50[/]  [orange1]" + ("•" if no_color() else "━") + " p95[/]  ○ now so far"
        window = data.get("window")
        buckets, open_b, _ = split_buckets(ts, window.until if window is not None else None)
        pts = [(i, b.p50, b.p95) for i, b in enumerate(buckets) if b.p50 is not None or b.p95 is not None]
        now_pt = None if open_b is None or open_b.p95 is None else (len(buckets), open_b.p50, open_b.p95)
        key = (tuple(pts), now_pt, tuple(b.time for b in buckets[:1]), self.size)
        if key == self._last:
            return
        self._last = key
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        # One line per run of consecutive non-empty buckets: joining across a gap would
        # draw a latency for minutes that had no requests at all.
        for run in _runs(pts):
            xs = [p[0] for p in run]
            draw = plt.scatter if len(run) == 1 else plt.plot
            draw(xs, [p[1] or 0 for p in run], marker="braille", color="cyan")
            draw(xs, [p[2] or 0 for p in run], marker=second_marker(), color="orange")
        if now_pt is not None:  # the open bucket: percentiles so far, drawn apart
            plt.scatter([now_pt[0]], [now_pt[1] or 0], marker="○", color="cyan")
            plt.scatter([now_pt[0]], [now_pt[2] or 0], marker="○", color="orange")
        if pts or now_pt is not None:
            pos, labels = x_ticks(buckets, ts.bucket_seconds)
            plt.xticks(pos[:-1] + [float(len(buckets))], labels[:-1] + ["now"])
            plt.xlim(0, max(1, len(buckets)))
            allp = pts + ([now_pt] if now_pt else [])
            top = max(max(p[1] or 0, p[2] or 0) for p in allp)
            plt.yticks(*y_ticks(top, fmt.ms, 3 if self.size.height >= 10 else 2))
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
