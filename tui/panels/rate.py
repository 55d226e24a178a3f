"""Requests per minute over the chosen range (errors drawn on top), from ``/api/timeseries``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from textual.binding import Binding
from textual_plotext import PlotextPlot

from tui.api.reports import Bucket, Timeseries
from tui.fmt import no_color
from tui.panels import Panel, filter_note


def second_marker() -> str:
    """Series told apart by their marker, not only by colour, where colour is off (NO_COLOR)."""
    return "•" if no_color() else "braille"


def bucket_name(seconds: int) -> str:
    return f"{seconds // 3600} h" if seconds % 3600 == 0 else f"{seconds // 60} min"


def split_buckets(ts: Timeseries, until: datetime | None,
                  min_points: int = 5) -> tuple[list[Bucket], Bucket | None, float]:
    """The closed buckets to draw as lines, the open one (still filling) and how much of it has
    passed (0..1). The open bucket is drawn apart, as a dot: as a line it would show a false drop
    at "now". On a fresh start the empty lead-in is trimmed, so the data fills the plot."""
    step = timedelta(seconds=ts.bucket_seconds)
    closed = [b for b in ts.buckets if until is None or b.time is None or b.time + step <= until]
    open_b = next((b for b in ts.buckets if until is not None and b.time is not None
                   and b.time <= until < b.time + step), None)
    elapsed = 1.0
    if open_b is not None and open_b.time is not None and until is not None:
        elapsed = max(1.0, (until - open_b.time).total_seconds()) / ts.bucket_seconds
    first = next((i for i, b in enumerate(closed) if b.requests), len(closed))
    start = max(0, min(first - 1, len(closed) - min_points))
    return closed[start:], open_b, min(1.0, elapsed)


def closed_buckets(ts: Timeseries, until: datetime | None, min_points: int = 5) -> list[Bucket]:
    return split_buckets(ts, until, min_points)[0]


def x_ticks(buckets: list[Bucket], bucket_seconds: int, n: int = 4) -> tuple[list[float], list[str]]:
    """About ``n`` time labels, and "now" at the right edge (the end of the last closed bucket)."""
    fmt_s = "%a %H:%M" if bucket_seconds >= 3600 else "%H:%M"
    xs = list(range(len(buckets)))
    step = max(1, len(xs) // n)
    last = len(xs) - 1
    pos: list[float] = [float(x) for x in xs[::step] if x <= last - step / 2]  # room for "now"
    labels = [buckets[int(x)].time.astimezone().strftime(fmt_s) if buckets[int(x)].time else "" for x in pos]
    return pos + [float(len(xs) - 1)], labels + ["now"]


def y_ticks(top: float, label: Callable[[float], str], n: int = 3) -> tuple[list[float], list[str]]:
    """0 … top in ``n`` steps, each labelled with its unit (``1.2s``, ``36/m``)."""
    top = top or 1.0
    vals = [top * i / (n - 1) for i in range(n)]
    return vals, [label(v) for v in vals]


def bucket_labels(ts: Timeseries) -> list[str]:
    """Short local-time labels; the date only matters for the 7-day range."""
    fmt = "%a %H:%M" if ts.bucket_seconds >= 3600 else "%H:%M"
    return [b.time.astimezone().strftime(fmt) if b.time else "" for b in ts.buckets]


class RateChart(PlotextPlot, Panel):
    """Drawn only when the series changed: a plotext build is the costliest thing on screen."""

    SOURCES = ("timeseries",)
    PANEL_TITLE = "Requests/min"
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
        window = data.get("window")
        buckets, open_b, elapsed = split_buckets(ts, window.until if window is not None else None)
        per_min = 60.0 / max(1, ts.bucket_seconds)
        reqs = [b.requests * per_min for b in buckets]
        errs = [b.errors * per_min for b in buckets]
        # The open bucket as a rate so far (its count over the part of it that has passed).
        now_r = None if open_b is None else open_b.requests * per_min / elapsed
        now_e = None if open_b is None else open_b.errors * per_min / elapsed
        # No total of its own here: the header's count is the range's, from the same snapshot.
        self.set_title("Requests/min", f"per {bucket_name(ts.bucket_seconds)}",
                       filter_note(data.get("query")).removeprefix(" · "))
        self.border_subtitle = "━ all  [red]" + ("•" if no_color() else "━") + " errors[/]  ○ now so far"
        key = (ts.bucket_seconds, tuple(reqs), tuple(errs), now_r, now_e, tuple(b.time for b in buckets[:1]),
               self.size)
        if key == self._last:
            return
        self._last = key
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        xs = list(range(len(reqs)))
        if reqs:
            plt.plot(xs, reqs, marker="braille")
            if any(errs):
                plt.plot(xs, errs, marker=second_marker(), color="red")
        if now_r is not None:
            plt.scatter([len(xs)], [now_r], marker="○")
            if now_e:
                plt.scatter([len(xs)], [now_e], marker="○", color="red")
        if reqs or now_r is not None:
            pos, labels = x_ticks(buckets, ts.bucket_seconds)
            plt.xticks(pos[:-1] + [float(len(xs))], labels[:-1] + ["now"])
            plt.xlim(0, max(1, len(xs)))
            plt.yticks(*y_ticks(max(reqs + [now_r or 0]),
                                lambda v: f"{v:.0f}/m" if v >= 10 or v == 0 else f"{v:.1f}/m",
                                3 if self.size.height >= 10 else 2))
        plt.ylim(0, None)
        self.refresh()
