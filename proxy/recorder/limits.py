"""This process's view of every account's latest rate-limit snapshot: SSE ``limits`` events, metrics.

The recorder hands each finished record here (``observe``, off the request path). An account's
new snapshot is published on the local stream as a ``limits`` event — coalesced, at most one per
account per ``min_interval_s`` (the latest one wins) — and feeds the ``claude_proxy_ratelimit_*``
gauges, which list only accounts seen in the last 24 hours. The database copy (what
``/api/limits`` reads, shared by every instance) is written by the writer with the record.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nexus.core.ratelimits import RateLimitSnapshot, account_view, parse_headers
from nexus.core.records import Record
from proxy.api.broker import Broker

METRICS_HORIZON_S = 24 * 3600
MAX_ACCOUNTS = 500  # metrics cardinality bound; the oldest accounts leave first


@dataclass(slots=True)
class Latest:
    observed_at: datetime
    snapshot: RateLimitSnapshot
    record: Record
    seen_monotonic: float


class LimitsBoard:
    def __init__(self, broker: Broker, min_interval_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.broker = broker
        self.min_interval_s = min_interval_s
        self.clock = clock
        self.latest: dict[str, Latest] = {}
        self._last_publish: dict[str, float] = {}
        self._scheduled: dict[str, asyncio.TimerHandle] = {}
        self.published = 0

    def observe(self, record: Record) -> RateLimitSnapshot | None:
        """Parse the record's rate-limit headers (once) and take them as its account's latest."""
        if not record.ratelimit_headers:
            return None
        if record.ratelimits is None:
            record.ratelimits = parse_headers(record.ratelimit_headers, record.ratelimit_observed_at)
        snap = record.ratelimits
        account = record.account_id
        if snap is None or not account:
            return snap
        at = record.ratelimit_observed_at or record.created_at
        prev = self.latest.get(account)
        if prev is not None and prev.observed_at > at:
            return snap
        self.latest.pop(account, None)  # re-insert: dict order = least recently seen first
        self.latest[account] = Latest(at, snap, record, self.clock())
        while len(self.latest) > MAX_ACCOUNTS:
            self.latest.pop(next(iter(self.latest)))
        self._schedule(account)
        return snap

    def view(self, account: str) -> dict[str, Any] | None:
        cur = self.latest.get(account)
        if cur is None:
            return None
        r = cur.record
        return account_view(account, cur.observed_at, cur.snapshot.to_json(), r.request_id, r.status_code,
                            r.ratelimit_headers)

    def _schedule(self, account: str) -> None:
        if account in self._scheduled:
            return  # a publish is due; it will carry this newer snapshot
        now = self.clock()
        wait = self._last_publish.get(account, -1e18) + self.min_interval_s - now
        if wait <= 0:
            self._publish(account)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._publish(account)
            return
        self._scheduled[account] = loop.call_later(wait, self._publish, account)

    def _publish(self, account: str) -> None:
        self._scheduled.pop(account, None)
        data = self.view(account)
        if data is None:
            return
        self._last_publish[account] = self.clock()
        self.published += 1
        self.broker.publish("limits", data)

    def recent(self) -> list[tuple[str, Latest]]:
        """Accounts seen within the metrics horizon, for the gauges."""
        cutoff = self.clock() - METRICS_HORIZON_S
        return [(a, v) for a, v in self.latest.items() if v.seen_monotonic >= cutoff]

    def flush(self) -> None:
        """Publish every held snapshot now (the timers would have, a moment later)."""
        for account, handle in list(self._scheduled.items()):
            handle.cancel()
            self._publish(account)

    def close(self) -> None:
        for handle in self._scheduled.values():
            with contextlib.suppress(Exception):
                handle.cancel()
        self._scheduled.clear()
