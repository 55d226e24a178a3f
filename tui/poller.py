"""What the monitor polls, how often, and how an answer (or its failure) is sorted.

After dolphie: a table maps each data source to the client call that fetches it and its cadence;
the App asks only for the sources of panels on screen, and re-arms its timer after each poll
finished, so polls never overlap. No Textual here: the App owns the timers and the widgets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tui.api.client import DashboardClient
from tui.api.errors import ApiAuthError, ApiError, ApiUnreachable
from tui.api.models import Info, parse_alerts
from tui.api.query import Query
from tui.api.reports import Costs, ErrorsReport, Stats, Timeseries, parse_limits, parse_windows

# source -> seconds between fetches. The data sources are fetched together on every poll, over one
# window, so every number on screen comes from the same snapshot; only the server's info is slower.
SOURCE_INTERVALS: dict[str, float] = {
    "stats": 0.0,
    "timeseries": 0.0,
    "windows": 0.0,
    "limits": 0.0,
    "errors": 0.0,
    "costs": 0.0,
    "alerts": 0.0,
    "info": 60.0,
}
DATA_SOURCES = ("stats", "timeseries", "windows", "limits", "errors", "costs")
ALWAYS = ("info", "alerts")  # the header and the banner are always on screen


@dataclass(frozen=True, slots=True)
class Window:
    """The ``[since, until)`` every source of one poll is asked for."""

    since: datetime
    until: datetime

    @classmethod
    def ending(cls, until: datetime, q: Query) -> Window:
        # Whole seconds, rounded up: a request of this very second is inside the window.
        exact = until.astimezone(UTC)
        until = exact.replace(microsecond=0) + (timedelta(seconds=1) if exact.microsecond else timedelta(0))
        return cls(until - timedelta(seconds=q.seconds), until)

    def params(self) -> dict[str, str]:
        return {"since": DashboardClient._iso(self.since), "until": DashboardClient._iso(self.until)}


def requests_for(q: Query, w: Window) -> dict[str, tuple[str, dict[str, Any]]]:
    """source -> (path, params): what the dashboard shows, over one window. ``nexus export`` asks the same."""
    f = q.params()
    return {
        "stats": ("/api/stats", {**w.params(), **f}),
        "timeseries": ("/api/timeseries", {**w.params(), "bucket": q.bucket, **f}),
        "windows": ("/api/token-usage/current", {"window": 300, "accountId": q.account, "domain": q.domain}),
        "limits": ("/api/limits", {"accountId": q.account}),
        "errors": ("/api/errors", {**w.params(), "limit": 50, **f}),
        "costs": ("/api/costs", {"days": 31, **f}),
        "alerts": ("/api/alerts", {}),
        "info": ("/api/info", {}),
    }


def parse(source: str, raw: Any, q: Query) -> Any:
    if source == "stats":
        return Stats.parse(raw)
    if source == "timeseries":
        return Timeseries.parse(raw, q.bucket)
    if source == "windows":
        return parse_windows(raw)
    if source == "limits":
        return parse_limits(raw)
    if source == "errors":
        return ErrorsReport.parse(raw)
    if source == "costs":
        return Costs.parse(raw)
    if source == "alerts":
        return parse_alerts(raw)
    return Info.parse(raw)


async def fetch_raw(client: DashboardClient, source: str, path: str, params: dict[str, Any]) -> Any:
    try:
        return await client.get_json(path, params)
    except ApiError as exc:
        # No alerts route on this server: not an outage. No limits route (an older server): the
        # panel estimates from the token windows.
        if source in ("alerts", "limits") and exc.status == 404:
            return []
        raise


@dataclass
class PollOutcome:
    """One poll, sorted: fresh data per source, and whether the API is down or refuses our key."""

    data: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    down: str | None = None
    auth: str | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class Poller:
    intervals: dict[str, float] = field(default_factory=lambda: dict(SOURCE_INTERVALS))
    fetched_at: dict[str, float] = field(default_factory=dict)
    failures: int = 0

    def due(self, wanted: Iterable[str], force: bool, now: float) -> list[str]:
        """Sources to fetch now: wanted ones whose interval has (nearly) passed, all when forced."""
        wanted = set(wanted) | set(ALWAYS)
        return [s for s, every in self.intervals.items() if s in wanted and (
            force or now - self.fetched_at.get(s, -1e9) >= every * 0.95)]

    async def fetch(self, client: DashboardClient, q: Query, sources: list[str], w: Window) -> list[Any]:
        """(raw JSON, parsed) per source, or the exception it raised."""
        reqs = requests_for(q, w)

        async def one(source: str) -> Any:
            path, params = reqs[source]
            raw = await fetch_raw(client, source, path, params)
            return raw, parse(source, raw, q)

        return await asyncio.gather(*(one(s) for s in sources), return_exceptions=True)

    def sort(self, sources: list[str], results: list[Any], now: float) -> PollOutcome:
        out = PollOutcome()
        for source, result in zip(sources, results, strict=True):
            if isinstance(result, ApiAuthError):
                out.auth = str(result)
            elif isinstance(result, ApiUnreachable):
                out.down = str(result)
            elif isinstance(result, ApiError):
                if result.status == 503:
                    out.down = "database unavailable (503)"
                else:
                    out.warnings.append(f"{source}: {result}")
                self.fetched_at[source] = now  # don't hammer a route that answers 4xx
            elif isinstance(result, BaseException):
                out.warnings.append(f"{source}: {result!r}")
            else:
                out.raw[source], out.data[source] = result
                self.fetched_at[source] = now
        return out

    def next_delay(self, ok: bool, interval: float) -> float:
        """The regular interval after a good poll; exponential backoff (≤ 15 s) after failures."""
        if ok:
            self.failures = 0
            return interval
        self.failures += 1
        return min(15.0, 0.5 * 2 ** min(self.failures, 5))
