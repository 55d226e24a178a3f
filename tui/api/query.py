"""What the monitor asks for: a time range and filters, and how a live event is matched against them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tui.api.models import RequestEvent

# name -> (seconds, timeseries bucket seconds); buckets keep every chart near 60-ish points.
TIME_RANGES: dict[str, tuple[int, int]] = {
    "15m": (15 * 60, 60),
    "1h": (3600, 60),
    "6h": (6 * 3600, 300),
    "24h": (24 * 3600, 900),
    "7d": (7 * 86400, 3600),
}


RANGE_ORDER = tuple(TIME_RANGES)


@dataclass(frozen=True, slots=True)
class Query:
    """What the user is looking at: the time range and the filters."""

    time_range: str = "1h"
    domain: str | None = None
    account: str | None = None
    model: str | None = None
    session: str | None = None  # a session id (exact)
    tag: str | None = None  # name:value, as the API takes it

    @property
    def seconds(self) -> int:
        return TIME_RANGES.get(self.time_range, TIME_RANGES["1h"])[0]

    @property
    def bucket(self) -> int:
        return TIME_RANGES.get(self.time_range, TIME_RANGES["1h"])[1]

    def since(self, now: datetime | None = None) -> datetime:
        return (now or datetime.now(UTC)) - timedelta(seconds=self.seconds)

    def matches(self, ev: RequestEvent) -> bool:
        """Client-side filter for the live stream (the API filters what it can)."""
        # Exact, like the API's filters, so the live log and the polled panels agree.
        if self.domain and ev.domain != self.domain:
            return False
        if self.account and (ev.account_id or "") != self.account:
            return False
        if self.model and (ev.model or "") != self.model:
            return False
        if self.session and (ev.session_id or "") != self.session:
            return False
        if self.tag:
            name, _, value = self.tag.partition(":")
            if ev.tags.get(name) != value:
                return False
        return True

    def params(self) -> dict[str, str | None]:
        """The filters as the API spells them (exact match server-side)."""
        return {"domain": self.domain, "accountId": self.account, "model": self.model, "sessionId": self.session,
                "tag": self.tag}

    def replace(self, **changes: str | None) -> Query:
        """This query with some fields changed (the others, filters included, kept)."""
        return dataclasses.replace(self, **changes)

    @property
    def filter_text(self) -> str:
        parts = [f"{k}={v}" for k, v in (("domain", self.domain), ("account", self.account),
                                         ("model", self.model), ("session", self.session and self.session[:8]),
                                         ("tag", self.tag)) if v]
        return " ".join(parts)


def next_range(name: str) -> str:
    i = RANGE_ORDER.index(name) if name in RANGE_ORDER else 0
    return RANGE_ORDER[(i + 1) % len(RANGE_ORDER)]
