"""The automatic time range: 15 minutes on a fresh start, the hour once the data reaches back.

Real proxy + dashboard API + PostgreSQL; older traffic is written straight into the database with
its own timestamps (the recorder stamps everything "now"), as a proxy that ran before would have.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from nexus.core.records import Record
from nexus.store.write import PartitionCache, insert_records
from tests.support.traffic import send, wait_total
from tests.tui.test_tui_live import until
from tui.api.query import fit_range
from tui.app import NexusApp
from tui.panels.header import StatsStrip, StatusBar

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("age_min,current,first,expected", [
    (None, "1h", True, "15m"),     # nothing recorded yet: a fresh start
    (2, "1h", True, "15m"),        # all of it within the last 15 minutes
    (13.9, "1h", True, "15m"),
    (14, "1h", True, "1h"),        # reaches the first minute of the 15: there may be more before
    (40, "1h", True, "1h"),
    (5, "15m", False, "15m"),      # later polls only widen ...
    (14.2, "15m", False, "1h"),
    (2, "1h", False, "1h"),        # ... and never narrow again under the user's eyes
    (None, "1h", False, "1h"),
])
def test_fit_range(age_min: float | None, current: str, first: bool, expected: str) -> None:
    earliest = None if age_min is None else NOW - timedelta(minutes=age_min)
    assert fit_range(current, earliest, NOW, first=first) == expected


def old_record(minutes_ago: float) -> Record:
    return Record(created_at=datetime.now(UTC) - timedelta(minutes=minutes_ago), domain="team-a.example",
                  model="claude-sonnet-4-5", status_code=200, input_tokens=10, output_tokens=5,
                  response_time_ms=100.0, cost_usd=Decimal("0.0001"))


async def write_old(stack: Any, *records: Record) -> None:
    conn = await asyncpg.connect(stack.dsn)
    try:
        await insert_records(conn, list(records), PartitionCache())
    finally:
        await conn.close()


def auto_app(stack: Any, tmp_path: Path) -> NexusApp:
    return NexusApp(stack.dashboard_url, stack.key, poll_interval=0.2, tick=0.1, watch_terminal=False,
                    export_dir=tmp_path)


def status(app: NexusApp) -> str:
    return app.query_one(StatusBar).plain


async def test_a_fresh_start_shows_15_minutes_and_widens_when_the_data_reaches_back(
        stack: Any, tmp_path: Path) -> None:
    await send(stack, 3)
    await wait_total(stack, 3)
    app = auto_app(stack, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: "range 15m auto" in status(app) and app.updated_at is not None,
                    what="15m range")
        strip = app.query_one(StatsStrip).plain
        assert strip.startswith(" last 15m ") and "req 3 " in strip, strip
        assert app.data["window"].until - app.data["window"].since == timedelta(minutes=15)
        # A request 14.5 minutes old lands in the 15-minute window's first bucket: older data may exist.
        await write_old(stack, old_record(14.5))
        await until(pilot, lambda: "range 1h auto" in status(app), what="widened to 1h")
        await until(pilot, lambda: app.query_one(StatsStrip).plain.startswith(" last 1h ")
                    and "req 4 " in app.query_one(StatsStrip).plain, what="1h numbers")
        # t: a range the user chose stays (no more "auto")
        await pilot.press("t")
        await until(pilot, lambda: "range 6h" in status(app), what="6h")
        assert "auto" not in status(app)


async def test_older_data_starts_at_the_hour_without_showing_15_minutes_first(
        stack: Any, tmp_path: Path) -> None:
    await write_old(stack, old_record(40))
    await send(stack, 2)
    await wait_total(stack, 3)
    app = auto_app(stack, tmp_path)
    seen: list[str] = []
    async with app.run_test(size=(120, 40)) as pilot:
        strip = app.query_one(StatsStrip)
        original = strip.set_text

        def spy(text: Any) -> None:
            seen.append(text.plain)
            original(text)

        strip.set_text = spy  # type: ignore[method-assign]
        await until(pilot, lambda: app.updated_at is not None and "req 3 " in strip.plain, what="1h numbers")
        assert "range 1h auto" in status(app)
        assert not any("last 15m" in s for s in seen), seen
