"""The counters of one ``api_requests_minute`` group, shared by the writer and the queries.

The writer adds records up into these per (minute, domain, account, model) before upserting;
the dashboard queries add rollup rows (and raw edge rows) up into the same counters again. One
type for both keeps the two sides from drifting apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from nexus.core.latency import empty_hist
from nexus.core.records import REQUEST_TYPE_MESSAGES, Record


@dataclass
class RollupCounters:
    requests: int = 0
    errors: int = 0
    input: int = 0
    output: int = 0
    cache_creation: int = 0
    cache_read: int = 0
    cost: Decimal = Decimal(0)
    unpriced: int = 0
    latency_sum: float = 0.0
    hist: list[int] = field(default_factory=empty_hist)
    # The cost breakdown by billing dimension (docs/pricing.md): requests and their cost.
    fast: int = 0
    fast_cost: Decimal = Decimal(0)
    geo_us: int = 0
    geo_us_cost: Decimal = Decimal(0)
    web_search: int = 0  # searches, not requests
    web_search_cost: Decimal = Decimal(0)
    web_fetch: int = 0
    thinking: int = 0
    unpriced_tokens: int = 0

    def merge(self, other: RollupCounters) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.input += other.input
        self.output += other.output
        self.cache_creation += other.cache_creation
        self.cache_read += other.cache_read
        self.cost += other.cost
        self.unpriced += other.unpriced
        self.latency_sum += other.latency_sum
        self.hist = [a + b for a, b in zip(self.hist, other.hist, strict=True)]
        self.fast += other.fast
        self.fast_cost += other.fast_cost
        self.geo_us += other.geo_us
        self.geo_us_cost += other.geo_us_cost
        self.web_search += other.web_search
        self.web_search_cost += other.web_search_cost
        self.web_fetch += other.web_fetch
        self.thinking += other.thinking
        self.unpriced_tokens += other.unpriced_tokens


@dataclass
class SessionCounters:
    """The counters of one ``api_sessions`` (or ``api_session_agents``) row, for one batch."""

    first_seen: datetime
    last_seen: datetime
    account_id: str | None = None
    client: str | None = None
    parent_agent_id: str | None = None
    requests: int = 0
    errors: int = 0
    input: int = 0
    output: int = 0
    cache_creation: int = 0
    cache_read: int = 0
    cost: Decimal = Decimal(0)
    unpriced: int = 0
    models: set[str] = field(default_factory=set)

    def add(self, r: Record) -> None:
        t = r.created_at
        if t < self.first_seen:
            self.first_seen = t
        if t > self.last_seen:
            self.last_seen = t
        self.account_id = self.account_id or r.account_id
        self.client = self.client or r.client
        self.parent_agent_id = self.parent_agent_id or r.parent_agent_id
        self.requests += 1
        self.errors += 1 if r.is_error else 0
        self.input += r.input_tokens
        self.output += r.output_tokens
        self.cache_creation += r.cache_creation_input_tokens
        self.cache_read += r.cache_read_input_tokens
        if r.cost_usd is not None:
            self.cost += r.cost_usd
        elif r.request_type == REQUEST_TYPE_MESSAGES and r.model:
            self.unpriced += 1
        if r.model and len(self.models) < 20:
            self.models.add(r.model)
