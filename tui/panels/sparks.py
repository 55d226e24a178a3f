"""Below ~100 columns the two charts collapse into this one line of sparklines (btop's idea).

At 80 columns two plotext charts of 40 cells each show a flat line and two ticks; the same rows
give the limits, the live log and the errors room instead. The line keeps what the charts said:
requests, errors and p95 per bucket over the range, each with its latest closed bucket's value
and unit. The open bucket (still filling) is left out, as the charts draw it apart: drawn as a
point it would show a false drop at "now". Same snapshot as every other panel (``timeseries``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text

from tui import fmt
from tui.api.reports import Bucket, Timeseries
from tui.panels import Panel
from tui.panels.header import ChangeStatic
from tui.panels.rate import bucket_name, split_buckets

TICKS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float | None], width: int, top: float | None = None, *, lift: bool = True) -> str:
    """The last ``width`` values as block heights, 0 … ``top`` (default: the largest shown; more is
    full); ``None`` (no data) a space. ``lift``: anything above zero at least the second block."""
    vals = values[-width:] if width > 0 else []
    top = top or max((v for v in vals if v is not None), default=0.0) or 1.0
    out = []
    for v in vals:
        if v is None:
            out.append(" ")
        else:
            # anything above zero is at least the second step: one error must not read as none
            step = min(len(TICKS) - 1, int(v / top * (len(TICKS) - 1) + 0.5))
            out.append(TICKS[max(1, step) if lift else step] if v > 0 else TICKS[0])
    return "".join(out)


def _rate(v: float) -> str:
    return f"{v:.0f}/m" if v >= 10 or v == 0 else f"{v:.1f}/m"


def spark_text(ts: Timeseries | None, until: Any, width: int, unknown: str | None = None) -> Text:
    """`` per 1 min  req ▁▃▅█ 287/m  err ▁▁▃ 3/m  p95 ▂▅▃ 2.3s``: three series sharing ``width``."""
    t = Text(no_wrap=True, overflow="crop")
    if ts is None:
        t.append(" charts ", style="bold reverse")
        t.append(f" {unknown or 'waiting for the first poll…'}", style="dim")
        return t
    buckets, _, _ = split_buckets(ts, until)
    t.append(f" per {bucket_name(ts.bucket_seconds)} ", style="bold reverse")
    if not any(b.requests for b in buckets):
        t.append("  no closed bucket with requests yet (the charts need a minute)", style="dim")
        return t
    per_min = 60.0 / max(1, ts.bucket_seconds)
    last = buckets[-1]
    series: list[tuple[str, list[float | None], str, str]] = [
        ("req", [b.requests * per_min for b in buckets], _rate(last.requests * per_min), "bold"),
        ("err", [b.errors * per_min for b in buckets], _rate(last.errors * per_min),
         fmt.ERR_STYLE if last.errors else "bold"),
        ("p95", [b.p95 for b in buckets], fmt.ms(_last_p95(buckets)), "bold"),
    ]
    # Errors on the requests' scale (as the chart draws them on one axis): one error in a minute of
    # a hundred requests is a low bar, not a full one.
    fixed = t.cell_len + sum(2 + len(label) + 2 + len(value) for label, _, value, _ in series)
    each = max(4, (width - fixed) // len(series))
    for label, values, value, style in series:
        piece = 2 + len(label) + 1 + each + 1 + len(value)
        if t.cell_len + piece > width:
            each = width - t.cell_len - (piece - each)
            if each < 4:
                break  # a series that does not fit is left out whole, never cut
        t.append(f"  {label} ", style="dim")
        top = None
        if label == "err":
            top = max((v or 0.0 for v in series[0][1][-each:]), default=0.0) or None
        t.append(sparkline(values, each, top), style="red" if label == "err" else "cyan")
        t.append(" ")
        t.append(value, style=style)
    return t


def _last_p95(buckets: list[Bucket]) -> float | None:
    return next((b.p95 for b in reversed(buckets) if b.p95 is not None), None)


class SparkStrip(ChangeStatic, Panel):
    """Shown instead of the charts on narrow screens (``nexus.tcss``)."""

    SOURCES = ("timeseries",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._data: dict[str, Any] = {}

    def show(self, data: dict[str, Any]) -> None:
        self._data = data
        window = data.get("window")
        unknown = "unknown — the API is unreachable" if data.get("api_down") else None
        self.set_text(spark_text(data.get("timeseries"), window.until if window is not None else None,
                                 self.size.width or 80, unknown))

    def on_resize(self) -> None:
        self.show(self._data)
