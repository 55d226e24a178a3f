"""The counters of one ``api_requests_minute`` group, shared by the writer and the queries.

The writer adds records up into these per (minute, domain, account, model) before upserting;
the dashboard queries add rollup rows (and raw edge rows) up into the same counters again. One
type for both keeps the two sides from drifting apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from nexus.core.latency import empty_hist


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
