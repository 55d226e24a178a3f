"""Reading price entries: our ``PRICING_FILE`` format and LiteLLM's, into ``PricePeriod`` s (docs/pricing.md).

Every problem is a ``PriceEntryError`` naming the entry, turned into one ``ValueError`` line naming the file.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from nexus.pricing.rates import MILLION, MULT_1H, MULT_5M, MULT_READ, WEB_SEARCH_PER_1000, PricePeriod, Rates


class PriceEntryError(Exception):
    """Internal: a problem in a price entry; turned into a one-line ValueError naming the file."""


def _money(value: Any, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise PriceEntryError(f"{what} must be a number, got {value!r}")
    try:
        d = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise PriceEntryError(f"{what} must be a number, got {value!r}") from None
    if not d.is_finite() or d < 0:
        raise PriceEntryError(f"{what} must be a non-negative number, got {value!r}")
    return d


def _tidy(d: Decimal) -> Decimal:
    """Drop trailing zeros without switching to exponent notation (3.000000 -> 3, 1E+1 -> 10)."""
    return d.quantize(Decimal(1)) if d == d.to_integral_value() else d.normalize()


def _per_token(value: Any, what: str) -> Decimal:
    """LiteLLM's $/token -> our $/MTok, exactly (JSON floats are read as Decimal)."""
    return _tidy(_money(value, what) * MILLION)


def _rates_from(entry: dict[str, Any], where: str) -> Rates:
    for key in ("input", "output"):
        if key not in entry:
            raise PriceEntryError(f"{where}: missing {key!r}")
    inp = _money(entry["input"], f"{where}.input")

    def opt(key: str, mult: Decimal) -> Decimal:
        if entry.get(key) is None:
            return inp * mult
        return _money(entry[key], f"{where}.{key}")

    search = entry.get("web_search")
    return Rates(
        input=inp,
        output=_money(entry["output"], f"{where}.output"),
        cache_write_5m=opt("cache_write_5m", MULT_5M),
        cache_write_1h=opt("cache_write_1h", MULT_1H),
        cache_read=opt("cache_read", MULT_READ),
        web_search=WEB_SEARCH_PER_1000 if search is None else _money(search, f"{where}.web_search"),
    )


def _parse_when(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise PriceEntryError(f"{where}.effective_from must be a date string like 2026-01-01")
    try:
        if len(value.strip()) == 10:
            d = date.fromisoformat(value.strip())
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise PriceEntryError(f"{where}.effective_from is not an ISO date: {value!r}") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def period_from(entry: Any, where: str) -> PricePeriod:
    if not isinstance(entry, dict):
        raise PriceEntryError(f"{where} must be an object")
    rates = _rates_from(entry, where)
    above: int | None = None
    long_rates: Rates | None = None
    long = entry.get("long_prompt")
    if long is not None:
        if not isinstance(long, dict):
            raise PriceEntryError(f"{where}.long_prompt must be an object")
        threshold = long.get("above")
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0:
            raise PriceEntryError(f"{where}.long_prompt.above must be a non-negative integer")
        above = threshold
        long_rates = _rates_from(long, f"{where}.long_prompt")
    fast: Rates | None = None
    if entry.get("fast") is not None:
        if not isinstance(entry["fast"], dict):
            raise PriceEntryError(f"{where}.fast must be an object")
        fast = _rates_from(entry["fast"], f"{where}.fast")
    return PricePeriod(_parse_when(entry.get("effective_from"), where), rates, above, long_rates, fast)


def aliases_from(entry: dict[str, Any], where: str) -> list[str]:
    aliases = entry.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a for a in aliases):
        raise PriceEntryError(f"{where}.aliases must be a list of strings")
    return [a.strip().lower() for a in aliases]


def to_utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def period_json(period: PricePeriod) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if period.effective_from is not None:
        out["effective_from"] = period.effective_from.isoformat()
    out.update(period.rates.as_dict())
    if period.long_rates is not None and period.long_prompt_above is not None:
        out["long_prompt"] = {"above": period.long_prompt_above, **period.long_rates.as_dict()}
    if period.fast is not None:
        out["fast"] = period.fast.as_dict()
    return out


def looks_like_litellm(data: dict[str, Any]) -> bool:
    return any(
        isinstance(v, dict) and ("input_cost_per_token" in v or "litellm_provider" in v) for v in data.values()
    )


_ABOVE = re.compile(
    r"^(input_cost_per_token|output_cost_per_token|cache_creation_input_token_cost"
    r"|cache_creation_input_token_cost_above_1hr|cache_read_input_token_cost)_above_(\d+)k_tokens$"
)


def litellm_period(entry: dict[str, Any], where: str) -> PricePeriod:
    inp = _per_token(entry["input_cost_per_token"], f"{where}.input_cost_per_token")

    def opt(key: str, default: Decimal) -> Decimal:
        value = entry.get(key)
        return default if value is None else _per_token(value, f"{where}.{key}")

    rates = Rates(
        input=inp,
        output=_per_token(entry["output_cost_per_token"], f"{where}.output_cost_per_token"),
        cache_write_5m=opt("cache_creation_input_token_cost", inp * MULT_5M),
        cache_write_1h=opt("cache_creation_input_token_cost_above_1hr", inp * MULT_1H),
        cache_read=opt("cache_read_input_token_cost", inp * MULT_READ),
    )
    tiers: dict[int, dict[str, Decimal]] = {}
    for key, value in entry.items():
        m = _ABOVE.match(key)
        if m and value is not None:
            tiers.setdefault(int(m.group(2)) * 1000, {})[m.group(1)] = _per_token(value, f"{where}.{key}")
    above: int | None = None
    long_rates: Rates | None = None
    if tiers:
        above = min(tiers)
        t = tiers[above]
        t_in = t.get("input_cost_per_token", rates.input)
        t_write = t.get("cache_creation_input_token_cost", t_in * MULT_5M)
        long_rates = Rates(
            input=t_in,
            output=t.get("output_cost_per_token", rates.output),
            cache_write_5m=t_write,
            cache_write_1h=t.get("cache_creation_input_token_cost_above_1hr", t_in * MULT_1H),
            cache_read=t.get("cache_read_input_token_cost", t_in * MULT_READ),
        )
    return PricePeriod(None, rates, above, long_rates)
