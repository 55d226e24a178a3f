"""The shapes of a price: ``Rates`` ($ per million tokens by token kind), dated ``PricePeriod`` s, a family's history.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

log = logging.getLogger("nexus.pricing")


MILLION = Decimal(1_000_000)


MULT_5M = Decimal("1.25")


MULT_1H = Decimal(2)


MULT_READ = Decimal("0.1")


# Hostile clients can send endless distinct model names: cap what we remember about them.
MAX_CACHED_IDS = 4096


MAX_UNPRICED_TRACKED = 1000


@dataclass(frozen=True)
class Rates:
    """Prices in US dollars per million tokens."""

    input: Decimal
    output: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    cache_read: Decimal

    def as_dict(self) -> dict[str, str]:
        """JSON-friendly form (strings keep Decimals exact)."""
        return {
            "input": str(self.input),
            "output": str(self.output),
            "cache_write_5m": str(self.cache_write_5m),
            "cache_write_1h": str(self.cache_write_1h),
            "cache_read": str(self.cache_read),
        }


@dataclass(frozen=True)
class PricePeriod:
    """The rates of a family from ``effective_from`` (None: since forever) until the next period."""

    effective_from: datetime | None
    rates: Rates
    long_prompt_above: int | None = None  # prompt tokens; strictly more than this uses long_rates
    long_rates: Rates | None = None


@dataclass
class Family:
    key: str
    periods: list[PricePeriod] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)

    def period_at(self, at: datetime) -> PricePeriod | None:
        if not self.periods:
            return None
        chosen = self.periods[0]
        for period in self.periods:
            if period.effective_from is None or period.effective_from <= at:
                chosen = period
            else:
                break
        return chosen

    def add_period(self, period: PricePeriod) -> None:
        """Insert or replace (same start) a period, keeping them sorted by start."""
        kept = [p for p in self.periods if p.effective_from != period.effective_from]
        kept.append(period)
        kept.sort(key=lambda p: (p.effective_from is not None, p.effective_from or datetime.min.replace(tzinfo=UTC)))
        self.periods = kept
