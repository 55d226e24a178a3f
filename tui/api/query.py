"""What the monitor asks for: a time range and filters, and how a live event is matched against them."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from nexus.core.models import model_matches
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
# Without a range chosen, the monitor fits one to the data: 15 minutes on a fresh start (not a
# 1-hour plot 90 % empty), widening to the hour once the data reaches back that far.
AUTO_RANGES = ("15m", "1h")


@dataclass(frozen=True, slots=True)
class Query:
    """What the user is looking at: the time range and the filters.

    ``model`` is a full name or a family (``sonnet-4-5``, what the tables show; the API matches
    both). ``status`` is a class (``error``, ``ok``, ``2xx``/``4xx``/``5xx``) or a code (``429``);
    the API's aggregates cannot filter by it, so it narrows the live log and the errors table only.
    """

    time_range: str = "1h"
    domain: str | None = None
    account: str | None = None
    model: str | None = None
    session: str | None = None  # a session id (exact)
    tag: str | None = None  # name:value, as the API takes it
    status: str | None = None

    def with_(self, **changes: object) -> Query:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def filtered(self) -> bool:
        return any((self.domain, self.account, self.model, self.status, self.session, self.tag))

    @property
    def server_filtered(self) -> bool:
        return any((self.domain, self.account, self.model, self.session, self.tag))

    def cleared(self) -> Query:
        return Query(time_range=self.time_range)

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
        if self.model and not model_matches(ev.model, self.model):
            return False
        if self.session and (ev.session_id or "") != self.session:
            return False
        if self.tag:
            name, _, value = self.tag.partition(":")
            if ev.tags.get(name) != value:
                return False
        return not self.status or status_matches(ev, self.status)

    def params(self) -> dict[str, str | None]:
        """The filters as the API spells them (exact match server-side)."""
        return {"domain": self.domain, "accountId": self.account, "model": self.model, "sessionId": self.session,
                "tag": self.tag}

    def replace(self, **changes: str | None) -> Query:
        """This query with some fields changed (the others, filters included, kept)."""
        return dataclasses.replace(self, **changes)

    @property
    def filter_text(self) -> str:
        parts = [f"{k}={v}" for k, v in (("model", self.model), ("domain", self.domain),
                                         ("account", self.account), ("status", self.status),
                                         ("session", self.session and self.session[:8]), ("tag", self.tag)) if v]
        return " ".join(parts)


STATUS_CLASS = re.compile(r"^(errors?|ok|[1-5]xx|[1-5][0-9]{2})$", re.IGNORECASE)


def status_matches(ev: RequestEvent, status: str) -> bool:
    s = status.lower()
    if s in ("error", "errors"):
        return ev.is_error
    if s == "ok":
        return not ev.is_error
    if s.endswith("xx"):
        return str(ev.status).startswith(s[0])
    return str(ev.status) == s


def fit_range(current: str, earliest: datetime | None, now: datetime, *, first: bool) -> str:
    """The automatic range, from the oldest bucket with requests in the last answer (``earliest``).

    ``first``: the answer of the widest automatic range (the first poll): the narrowest range that
    holds all of it. After that the range only widens: once the data reaches back to the start of
    the narrow range (its first bucket has requests) there is older data, so the next one up.
    The margin of one bucket keeps the two rules from ever flipping the range back and forth."""
    narrow, wide = AUTO_RANGES
    seconds, bucket = TIME_RANGES[narrow]
    old = earliest is not None and (now - earliest).total_seconds() >= seconds - bucket
    if first:
        return wide if old else narrow
    return wide if current == narrow and old else current


def next_range(name: str) -> str:
    i = RANGE_ORDER.index(name) if name in RANGE_ORDER else 0
    return RANGE_ORDER[(i + 1) % len(RANGE_ORDER)]
