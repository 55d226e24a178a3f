"""What the monitor polls, how often, and how an answer (or its failure) is sorted.

After dolphie: a table maps each data source to the client call that fetches it and its cadence;
the App asks only for the sources of panels on screen, and re-arms its timer after each poll
finished, so polls never overlap. No Textual here: the App owns the timers and the widgets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tui.api.client import DashboardClient
from tui.api.errors import ApiAuthError, ApiError, ApiUnreachable
from tui.api.query import Query

# source -> seconds between fetches. Cheap, fast-moving numbers often; costs rarely.
SOURCE_INTERVALS: dict[str, float] = {
    "stats": 4.0,
    "errors": 6.0,
    "timeseries": 10.0,
    "windows": 10.0,
    "limits": 5.0,
    "alerts": 15.0,
    "costs": 10.0,  # the header shows cost from stats: a stale panel beside it looks wrong
    "info": 60.0,
}
ALWAYS = ("info", "alerts")  # the header and the banner are always on screen


async def _alerts(c: DashboardClient, q: Query) -> Any:
    try:
        return await c.alerts()
    except ApiError as exc:
        if exc.status == 404:  # no alerts route on this server: not an outage
            return []
        raise


async def _limits(c: DashboardClient, q: Query) -> Any:
    try:
        return await c.limits(q)
    except ApiError as exc:
        if exc.status == 404:  # an older server without /api/limits: the panel estimates
            return []
        raise


FETCHERS: dict[str, Callable[[DashboardClient, Query], Awaitable[Any]]] = {
    "stats": lambda c, q: c.stats(q),
    "timeseries": lambda c, q: c.timeseries(q),
    "windows": lambda c, q: c.token_windows(q),
    "limits": _limits,
    "errors": lambda c, q: c.errors(q),
    "costs": lambda c, q: c.costs(q),
    "info": lambda c, q: c.info(),
    "alerts": _alerts,
}


@dataclass
class PollOutcome:
    """One poll, sorted: fresh data per source, and whether the API is down or refuses our key."""

    data: dict[str, Any] = field(default_factory=dict)
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

    async def fetch(self, client: DashboardClient, q: Query, sources: list[str]) -> list[Any]:
        return await asyncio.gather(*(FETCHERS[s](client, q) for s in sources), return_exceptions=True)

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
                out.data[source] = result
                self.fetched_at[source] = now
        return out

    def next_delay(self, ok: bool, interval: float) -> float:
        """The regular interval after a good poll; exponential backoff (≤ 15 s) after failures."""
        if ok:
            self.failures = 0
            return interval
        self.failures += 1
        return min(15.0, 0.5 * 2 ** min(self.failures, 5))
