"""Time buckets: the minute, hour and N-second grid that rollups, charts and windows share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def floor_minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def ceil_minute(t: datetime) -> datetime:
    f = floor_minute(t)
    return f if f == t else f + timedelta(minutes=1)


def floor_hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def ceil_hour(t: datetime) -> datetime:
    f = floor_hour(t)
    return f if f == t else f + timedelta(hours=1)


def floor_to(t: datetime, seconds: int) -> datetime:
    """``t`` floored to a multiple of ``seconds`` since the epoch (UTC)."""
    epoch = int(t.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


def iso(t: datetime | None) -> str | None:
    """ISO-8601 in UTC with offset, the API's one time format."""
    return None if t is None else t.astimezone(UTC).isoformat()
