"""Token windows (Claude's 5-hour usage windows): burn rate, projection, exhaustion, learned limit.

Pure functions over numbers and datetimes, shared by the dashboard API (which has the totals from
the database) and tests. Naive datetimes are taken as UTC so callers cannot trip over mixing
naive and aware values.

Why the details below:

* **Burn rate** is tokens per minute over the *elapsed* part of the window, with the elapsed time
  floored at ``MIN_ELAPSED_MINUTES``: one request a second after a window opened would otherwise
  project billions of tokens and an exhaustion time of "now".
* **Projection** is linear: used + burn x minutes left. Simple, explainable in a TUI cell, and what
  the Monitoring Guide describes.
* **Learned limit**: accounts on subscription plans have no published token limit, but their past
  windows show where they got cut off. The 90th percentile of past window totals is a robust
  "you usually stop around here" line; windows with no tokens say nothing and are ignored.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "FIVE_HOURS",
    "MIN_ELAPSED_MINUTES",
    "TokenWindow",
    "burn_rate_per_minute",
    "current_window",
    "learned_limit",
    "session_windows",
    "window_projection",
]

FIVE_HOURS = timedelta(hours=5)
MIN_ELAPSED_MINUTES = 1.0


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def burn_rate_per_minute(tokens: int, elapsed_minutes: float) -> float:
    """Tokens per minute; 0.0 when nothing elapsed or nothing was used (never divides by zero)."""
    if tokens <= 0 or not math.isfinite(elapsed_minutes) or elapsed_minutes <= 0:
        return 0.0
    return tokens / elapsed_minutes


def window_projection(
    total_tokens: int,
    window_start: datetime,
    window_end: datetime,
    now: datetime,
    limit: int | None,
) -> dict[str, Any]:
    """Where a window is heading, as the API returns it (camelCase keys).

    Keys: ``burnRatePerMinute`` (float), ``projectedTotal`` (int, linear at window end),
    ``percentOfLimit`` (float or None without a limit), ``projectedPercentOfLimit``,
    ``projectedExhaustion`` (ISO time at which used + burn reaches the limit; ``now`` if already
    reached; None without a limit, without burn, or if it would happen after the window ends),
    ``minutesRemaining`` and ``elapsedMinutes`` (floats, clamped to the window).
    """
    start, end, at = _utc(window_start), _utc(window_end), _utc(now)
    used = max(int(total_tokens), 0)
    length = max((end - start).total_seconds() / 60.0, 0.0)
    elapsed = min(max((at - start).total_seconds() / 60.0, 0.0), length)
    remaining = min(max((end - at).total_seconds() / 60.0, 0.0), length)

    burn = burn_rate_per_minute(used, max(elapsed, MIN_ELAPSED_MINUTES)) if length > 0 else 0.0
    projected = used + int(round(burn * remaining))

    lim = limit if limit is not None and limit > 0 else None
    percent = round(used * 100.0 / lim, 2) if lim else None
    projected_percent = round(projected * 100.0 / lim, 2) if lim else None

    exhaustion: str | None = None
    if lim:
        if used >= lim:
            exhaustion = at.isoformat()
        elif burn > 0:
            minutes_to_limit = (lim - used) / burn
            if minutes_to_limit <= remaining:
                exhaustion = (at + timedelta(minutes=minutes_to_limit)).isoformat()

    return {
        "burnRatePerMinute": round(burn, 3),
        "projectedTotal": projected,
        "percentOfLimit": percent,
        "projectedPercentOfLimit": projected_percent,
        "projectedExhaustion": exhaustion,
        "minutesRemaining": round(remaining, 2),
        "elapsedMinutes": round(elapsed, 2),
    }


def learned_limit(past_window_totals: list[int], percentile: float = 0.9, min_windows: int = 1) -> int | None:
    """The "learned" limit: the ``percentile`` of past windows' totals (linear interpolation,
    like PostgreSQL's ``percentile_cont``), rounded up; None with fewer than ``min_windows``
    non-empty windows.
    """
    if not 0.0 <= percentile <= 1.0 or math.isnan(percentile):
        raise ValueError(f"percentile must be within 0..1, got {percentile}")
    values = sorted(int(v) for v in past_window_totals if v and v > 0)
    if not values or len(values) < max(min_windows, 1):
        return None
    pos = percentile * (len(values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(values) - 1)
    value = values[lo] + (values[hi] - values[lo]) * (pos - lo)
    return math.ceil(value - 1e-9)


@dataclass(frozen=True)
class TokenWindow:
    """One usage window: it opens with a request and lasts ``length`` from its (hour-floored) start."""

    start: datetime
    end: datetime
    total_tokens: int
    requests: int
    last_activity: datetime

    def contains(self, at: datetime) -> bool:
        return self.start <= _utc(at) < self.end


def session_windows(
    points: Iterable[tuple[datetime, int]],
    length: timedelta = FIVE_HOURS,
    floor_to_hour: bool = True,
) -> list[TokenWindow]:
    """Group (time, tokens) points into consecutive usage windows, oldest first.

    Claude's windows start with the first request after the previous window ended and last five
    hours; like ccusage we floor the start to the hour, which is how the window reset times are
    shown to users. The totals feed :func:`learned_limit`.
    """
    if length <= timedelta(0):
        raise ValueError("window length must be positive")
    ordered = sorted((_utc(t), max(int(n), 0)) for t, n in points)
    windows: list[TokenWindow] = []
    start = end = last = None
    total = count = 0
    for at, tokens in ordered:
        if end is None or at >= end:
            if start is not None and end is not None and last is not None:
                windows.append(TokenWindow(start, end, total, count, last))
            start = at.replace(minute=0, second=0, microsecond=0) if floor_to_hour else at
            end = start + length
            total = count = 0
        total += tokens
        count += 1
        last = at
    if start is not None and end is not None and last is not None:
        windows.append(TokenWindow(start, end, total, count, last))
    return windows


def current_window(
    points: Iterable[tuple[datetime, int]],
    now: datetime,
    length: timedelta = FIVE_HOURS,
    floor_to_hour: bool = True,
) -> TokenWindow | None:
    """The window that is open at ``now`` (None if the last one has ended or there is none)."""
    at = _utc(now)
    windows = session_windows((p for p in points if _utc(p[0]) <= at), length, floor_to_hour)
    if windows and windows[-1].contains(at):
        return windows[-1]
    return None
