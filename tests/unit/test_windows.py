"""5-hour token windows: burn rate, linear projection, exhaustion time, learned limit, grouping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from nexus.core.windows import (
    FIVE_HOURS,
    TokenWindow,
    burn_rate_per_minute,
    current_window,
    learned_limit,
    session_windows,
    window_projection,
)

START = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
END = START + FIVE_HOURS


@pytest.mark.parametrize(
    ("tokens", "minutes", "expected"),
    [
        (6000, 60.0, 100.0),
        (1, 0.5, 2.0),
        (0, 10.0, 0.0),
        (500, 0.0, 0.0),
        (500, -3.0, 0.0),
        (-5, 10.0, 0.0),
        (500, float("nan"), 0.0),
        (500, float("inf"), 0.0),
    ],
)
def test_burn_rate(tokens: int, minutes: float, expected: float) -> None:
    assert burn_rate_per_minute(tokens, minutes) == expected


@pytest.mark.parametrize(
    ("total", "now", "limit", "expected"),
    [
        # One hour in, 60k used: 1000/min; 240 min left -> 300k at the end; limit 200k reached
        # after 140 more minutes.
        (
            60_000,
            START + timedelta(hours=1),
            200_000,
            {
                "burnRatePerMinute": 1000.0,
                "projectedTotal": 300_000,
                "percentOfLimit": 30.0,
                "projectedPercentOfLimit": 150.0,
                "projectedExhaustion": (START + timedelta(minutes=200)).isoformat(),
                "minutesRemaining": 240.0,
                "elapsedMinutes": 60.0,
            },
        ),
        # Same pace, limit never reached inside the window.
        (
            60_000,
            START + timedelta(hours=1),
            1_000_000,
            {
                "burnRatePerMinute": 1000.0,
                "projectedTotal": 300_000,
                "percentOfLimit": 6.0,
                "projectedPercentOfLimit": 30.0,
                "projectedExhaustion": None,
                "minutesRemaining": 240.0,
                "elapsedMinutes": 60.0,
            },
        ),
        # Exactly at the end of the window: still counts.
        (
            60_000,
            START + timedelta(hours=1),
            300_000,
            {
                "burnRatePerMinute": 1000.0,
                "projectedTotal": 300_000,
                "percentOfLimit": 20.0,
                "projectedPercentOfLimit": 100.0,
                "projectedExhaustion": END.isoformat(),
                "minutesRemaining": 240.0,
                "elapsedMinutes": 60.0,
            },
        ),
        # No limit.
        (
            60_000,
            START + timedelta(hours=1),
            None,
            {
                "burnRatePerMinute": 1000.0,
                "projectedTotal": 300_000,
                "percentOfLimit": None,
                "projectedPercentOfLimit": None,
                "projectedExhaustion": None,
                "minutesRemaining": 240.0,
                "elapsedMinutes": 60.0,
            },
        ),
        # A zero limit is "no limit", not a division by zero.
        (
            10,
            START + timedelta(hours=1),
            0,
            {
                "burnRatePerMinute": 0.167,
                "projectedTotal": 50,
                "percentOfLimit": None,
                "projectedPercentOfLimit": None,
                "projectedExhaustion": None,
                "minutesRemaining": 240.0,
                "elapsedMinutes": 60.0,
            },
        ),
        # Already over the limit: exhausted now.
        (
            250_000,
            START + timedelta(hours=2),
            200_000,
            {
                "burnRatePerMinute": 2083.333,
                "projectedTotal": 625_000,
                "percentOfLimit": 125.0,
                "projectedPercentOfLimit": 312.5,
                "projectedExhaustion": (START + timedelta(hours=2)).isoformat(),
                "minutesRemaining": 180.0,
                "elapsedMinutes": 120.0,
            },
        ),
        # Nothing used.
        (
            0,
            START + timedelta(hours=1),
            200_000,
            {
                "burnRatePerMinute": 0.0,
                "projectedTotal": 0,
                "percentOfLimit": 0.0,
                "projectedPercentOfLimit": 0.0,
                "projectedExhaustion": None,
                "minutesRemaining": 240.0,
                "elapsedMinutes": 60.0,
            },
        ),
        # Two seconds in: elapsed is floored at one minute, so the projection stays sane.
        (
            5_000,
            START + timedelta(seconds=2),
            None,
            {
                "burnRatePerMinute": 5000.0,
                "projectedTotal": 5_000 + round(5000 * (300 - 2 / 60)),
                "percentOfLimit": None,
                "projectedPercentOfLimit": None,
                "projectedExhaustion": None,
                "minutesRemaining": 299.97,
                "elapsedMinutes": 0.03,
            },
        ),
        # After the window ended: nothing remains, projection is what was used.
        (
            90_000,
            END + timedelta(hours=1),
            100_000,
            {
                "burnRatePerMinute": 300.0,
                "projectedTotal": 90_000,
                "percentOfLimit": 90.0,
                "projectedPercentOfLimit": 90.0,
                "projectedExhaustion": None,
                "minutesRemaining": 0.0,
                "elapsedMinutes": 300.0,
            },
        ),
        # Before it started (clock skew): nothing elapsed, the whole window remains.
        (
            100,
            START - timedelta(minutes=5),
            None,
            {
                "burnRatePerMinute": 100.0,
                "projectedTotal": 30_100,
                "percentOfLimit": None,
                "projectedPercentOfLimit": None,
                "projectedExhaustion": None,
                "minutesRemaining": 300.0,
                "elapsedMinutes": 0.0,
            },
        ),
    ],
)
def test_window_projection(total: int, now: datetime, limit: int | None, expected: dict) -> None:
    assert window_projection(total, START, END, now, limit) == expected


def test_window_projection_mixed_naive_and_aware() -> None:
    naive_start = datetime(2026, 11, 27, 10, 0)
    other_tz = timezone(timedelta(hours=1))
    now = datetime(2026, 11, 27, 12, 0, tzinfo=other_tz)  # 11:00Z
    result = window_projection(60_000, naive_start, END, now, None)
    assert result["elapsedMinutes"] == 60.0
    assert result["projectedTotal"] == 300_000


def test_window_projection_empty_window() -> None:
    result = window_projection(100, START, START, START, 50)
    assert result["burnRatePerMinute"] == 0.0
    assert result["projectedTotal"] == 100
    assert result["projectedExhaustion"] == START.isoformat()  # already over the limit


@pytest.mark.parametrize(
    ("totals", "percentile", "expected"),
    [
        ([], 0.9, None),
        ([0, 0], 0.9, None),
        ([1000], 0.9, 1000),
        ([100, 200, 300, 400, 500, 600, 700, 800, 900, 1000], 0.9, 910),
        ([1000, 100, 900, 200, 800, 300, 700, 400, 600, 500], 0.9, 910),  # order does not matter
        ([100, 200, 300, 400, 500, 600, 700, 800, 900, 1000], 0.5, 550),
        ([100, 200, 300], 1.0, 300),
        ([100, 200, 300], 0.0, 100),
        ([0, 0, 100, 200, 300], 0.5, 200),  # empty windows are ignored
        ([10, 11], 0.9, 11),  # 10.9 rounds up
    ],
)
def test_learned_limit(totals: list[int], percentile: float, expected: int | None) -> None:
    assert learned_limit(totals, percentile) == expected


def test_learned_limit_min_windows_and_bad_percentile() -> None:
    assert learned_limit([100, 200], min_windows=3) is None
    assert learned_limit([100, 200, 300], min_windows=3) == 280
    with pytest.raises(ValueError):
        learned_limit([1], percentile=1.5)
    with pytest.raises(ValueError):
        learned_limit([1], percentile=float("nan"))


def at(h: int, m: int = 0) -> datetime:
    return datetime(2026, 11, 27, h, m, tzinfo=UTC)


def test_session_windows_groups_by_five_hours_from_hour_floored_start() -> None:
    points = [
        (at(9, 17), 100),
        (at(11, 0), 200),
        (at(13, 59), 300),  # still before 14:00 (09:00 + 5h)
        (at(14, 0), 50),  # opens the second window at 14:00
        (at(20, 30), 7),  # after a gap: third window at 20:00
    ]
    windows = session_windows(reversed(points))  # input order does not matter
    assert windows == [
        TokenWindow(at(9), at(14), 600, 3, at(13, 59)),
        TokenWindow(at(14), at(19), 50, 1, at(14)),
        TokenWindow(at(20), at(20) + FIVE_HOURS, 7, 1, at(20, 30)),
    ]
    assert learned_limit([w.total_tokens for w in windows]) == 490


def test_session_windows_without_flooring_and_custom_length() -> None:
    windows = session_windows([(at(9, 17), 1), (at(10, 16), 1), (at(10, 17), 1)], timedelta(hours=1), floor_to_hour=False)
    assert [(w.start, w.total_tokens) for w in windows] == [(at(9, 17), 2), (at(10, 17), 1)]
    assert session_windows([]) == []
    with pytest.raises(ValueError):
        session_windows([], timedelta(0))


def test_current_window() -> None:
    points = [(at(9, 17), 100), (at(11, 0), 200), (at(15, 0), 5)]
    assert current_window(points, at(12)) == TokenWindow(at(9), at(14), 300, 2, at(11))
    assert current_window(points, at(14, 30)) is None  # first window over, next not yet opened
    assert current_window(points, at(16)) == TokenWindow(at(15), at(20), 5, 1, at(15))
    assert current_window(points, at(21)) is None
    assert current_window([], at(12)) is None
