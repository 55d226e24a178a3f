"""The shapes of a price: ``Rates`` ($ per million tokens by token kind, $ per 1,000 web searches),
dated ``PricePeriod`` s, a ``PRICING_FILE`` family's history, and ``Quote`` / ``Price`` (what applies
to one request, and what it cost).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

log = logging.getLogger("nexus.pricing")


MILLION = Decimal(1_000_000)
THOUSAND = Decimal(1000)


MULT_5M = Decimal("1.25")


MULT_1H = Decimal(2)


MULT_READ = Decimal("0.1")


# Anthropic's server-side web search: $10 per 1,000 searches, on top of tokens, on every model that
# offers the tool (https://platform.claude.com/docs/en/agents-and-tools/tool-use/web-search-tool).
WEB_SEARCH_PER_1000 = Decimal(10)

# Message Batches are billed at 50 % of every token rate, cache rates included
# (https://platform.claude.com/docs/en/build-with-claude/batch-processing#pricing).
BATCH_MULTIPLIER = Decimal("0.5")


# Hostile clients can send endless distinct model names: cap what we remember about them.
MAX_CACHED_IDS = 4096


MAX_UNPRICED_TRACKED = 1000


@dataclass(frozen=True)
class Rates:
    """Prices in US dollars per million tokens; web search in US dollars per 1,000 searches."""

    input: Decimal
    output: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    cache_read: Decimal
    web_search: Decimal = WEB_SEARCH_PER_1000

    def times(self, factor: Decimal) -> Rates:
        """Every token rate multiplied by ``factor`` (web search is billed per search, unscaled)."""
        return Rates(self.input * factor, self.output * factor, self.cache_write_5m * factor,
                     self.cache_write_1h * factor, self.cache_read * factor, self.web_search)

    def as_dict(self) -> dict[str, str]:
        """JSON-friendly form (strings keep Decimals exact)."""
        return {
            "input": str(self.input),
            "output": str(self.output),
            "cache_write_5m": str(self.cache_write_5m),
            "cache_write_1h": str(self.cache_write_1h),
            "cache_read": str(self.cache_read),
            "web_search": str(self.web_search),
        }


@dataclass(frozen=True)
class PricePeriod:
    """The rates of a family from ``effective_from`` (None: since forever) until the next period."""

    effective_from: datetime | None
    rates: Rates
    long_prompt_above: int | None = None  # prompt tokens; strictly more than this uses long_rates
    long_rates: Rates | None = None
    fast: Rates | None = None  # rates with ``speed: fast``; None: the standard rates


@dataclass
class Family:
    """A ``PRICING_FILE`` family: its dated periods and the aliases that map to it."""

    key: str
    periods: list[PricePeriod] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)

    def period_at(self, at: datetime) -> PricePeriod | None:
        """The period in force at ``at``; None before the first dated one (a lower layer's price)."""
        chosen: PricePeriod | None = None
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


@dataclass(frozen=True)
class Quote:
    """What applies to one kind of request (model, time, speed, service tier, geo), before its size is known.

    ``tiers`` are long-prompt cliffs, ascending: above ``start`` prompt tokens (input + cache
    writes + cache reads), that tier's rates apply to *every* token of the request, output included.
    """

    family: str
    rates: Rates
    source: str
    tiers: tuple[tuple[int, Rates], ...] = ()
    multipliers: tuple[tuple[str, Decimal], ...] = ()  # e.g. (("inference_geo us", 1.1),) already applied

    def for_prompt(self, prompt_tokens: int) -> tuple[Rates, int | None]:
        """The rates for a request of ``prompt_tokens`` and the tier start it crossed (None: base)."""
        chosen, above = self.rates, None
        for start, rates in self.tiers:
            if prompt_tokens > start:
                chosen, above = rates, start
        return chosen, above


PART_NAMES = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read", "web_search")
_ZERO = Decimal(0)


class Price:
    """The exact cost of one exchange, the rates applied, and (on demand) each billing part in US dollars.

    A plain slotted class, not a dataclass: it is made once per exchange on the hot path, and
    the per-part amounts are only computed when someone asks (the drill-down, ``nexus prices``).
    """

    __slots__ = ("_counts", "cost", "long_prompt_above", "quote", "rates", "web_search_cost")

    def __init__(self, cost: Decimal, quote: Quote, rates: Rates, long_prompt_above: int | None,
                 web_search_cost: Decimal, counts: tuple[int, int, int, int, int, int]) -> None:
        self.cost = cost
        self.quote = quote
        self.rates = rates
        self.long_prompt_above = long_prompt_above
        self.web_search_cost = web_search_cost
        self._counts = counts  # uncached input, output, 5m writes, 1h writes, reads, searches

    @property
    def source(self) -> str:
        return self.quote.source

    @property
    def parts(self) -> tuple[Decimal, ...]:
        """Each part in PART_NAMES order; they add up to ``cost`` exactly."""
        r, (i, o, w5, w1, rd, _) = self.rates, self._counts
        return (i * r.input / MILLION, o * r.output / MILLION, w5 * r.cache_write_5m / MILLION,
                w1 * r.cache_write_1h / MILLION, rd * r.cache_read / MILLION, self.web_search_cost)

    def parts_dict(self) -> dict[str, Decimal]:
        return dict(zip(PART_NAMES, self.parts, strict=True))

    def __repr__(self) -> str:
        return f"Price(cost={self.cost!r}, source={self.source!r}, parts={self.parts!r})"
