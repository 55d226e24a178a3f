"""Exact, effective-dated prices for Claude models, and the cost of one exchange.

Why this module is careful:

* **Exact.** Costs are ``Decimal`` sums of tokens times $/MTok; no floats, so a month of records
  adds up to the cent and matches Anthropic's invoice arithmetic.
* **Dated.** A record is priced with the rate valid at its ``created_at``; price changes are new
  periods, never edits, so re-pricing history gives the same answer.
* **Honest about unknowns.** A model we cannot map to a priced family costs ``None`` ("unpriced"),
  logged once per model id, never a fake $0 that would hide spend.

Model ids map to a *family* (the key of the price table) after removing what does not change the
price: case, ``[1m]``-style suffixes, provider prefixes (``anthropic/``, ``us.anthropic.``),
Bedrock/Vertex version suffixes (``-v1:0``, ``@20250929``), ``-latest`` and the ``-YYYYMMDD``
date. Old and new naming both work: ``claude-3-5-haiku-20241022`` -> ``claude-3-5-haiku``,
``claude-opus-4-0`` -> ``claude-opus-4``, ``claude-sonnet-4-5-20250929[1m]`` ->
``claude-sonnet-4-5``, ``claude-4-sonnet`` -> ``claude-sonnet-4``.

Cache writes: 5-minute writes are priced at the 5m rate and 1-hour writes at the 1h rate; a total
without a split (``cache_creation_input_tokens`` only) is priced at the 5m rate.

Long-prompt tiers: when a request's prompt (input + cache writes + cache reads) exceeds a model's
threshold, the tier's rates apply to *every* token of that request, output included.

PRICING_FILE format
-------------------
``PRICING_FILE`` points at a JSON file that overrides and extends the built-in table. Two
formats are accepted.

Our own format (prices in US dollars per million tokens; numbers or numeric strings)::

    {
      "models": {
        "claude-foo-1": {
          "input": 1, "output": 5,
          "cache_write_5m": 1.25, "cache_write_1h": 2, "cache_read": 0.1,
          "effective_from": "2026-01-01",
          "aliases": ["claude-foo-1-*", "my-gateway/foo"],
          "long_prompt": {"above": 200000, "input": 2, "output": 10,
                          "cache_write_5m": 2.5, "cache_write_1h": 4, "cache_read": 0.2}
        },
        "claude-sonnet-4-5": {
          "periods": [
            {"input": 3, "output": 15},
            {"effective_from": "2027-01-01", "input": 2.5, "output": 12}
          ]
        }
      }
    }

* ``input`` and ``output`` are required. Omitted cache rates follow Anthropic's multipliers of
  the input price: 5m write 1.25x, 1h write 2x, read 0.1x.
* A key is a model id or family; dated ids and aliases are normalised as above, so
  ``"claude-sonnet-4-5-20250929"`` overrides the ``claude-sonnet-4-5`` family. A key that maps to
  no known family adds a new one.
* ``effective_from`` (a UTC date or ISO datetime) adds a period to the model's history: earlier
  records keep the earlier price. An entry *without* ``effective_from`` replaces the model's
  prices for all dates. ``periods`` lists several periods at once.
* ``long_prompt`` (optional): above ``above`` prompt tokens these rates apply to every token of
  the request (omitted cache rates follow the multipliers of the tier's input price).
* ``aliases`` (optional): extra ids or ``fnmatch`` globs (``*``, ``?``) mapping to this entry.
* Records older than a model's first period are priced with its first period.

LiteLLM's ``model_prices_and_context_window.json`` is also accepted as is: entries whose
``litellm_provider`` is ``anthropic`` or whose key looks like ``claude-*`` are read
(``input_cost_per_token``, ``output_cost_per_token``, ``cache_creation_input_token_cost``,
``cache_creation_input_token_cost_above_1hr``, ``cache_read_input_token_cost`` and the
``*_above_200k_tokens`` tier fields; $ per token, converted to $ per million). They carry no
dates, so they replace the prices of their family for all dates -- unless they equal the current
built-in rates, in which case the built-in history and tiers are kept.

A file that cannot be read or parsed raises ``ValueError`` with a one-line message naming it.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from nexus.pricing_data import BUILTIN_PRICES
from nexus.usage import Usage

__all__ = ["PriceTable", "PricePeriod", "Rates", "normalize_model_id"]

log = logging.getLogger(__name__)

MILLION = Decimal(1_000_000)
_MULT_5M = Decimal("1.25")
_MULT_1H = Decimal(2)
_MULT_READ = Decimal("0.1")

# Hostile clients can send endless distinct model names: cap what we remember about them.
_MAX_CACHED_IDS = 4096
_MAX_UNPRICED_TRACKED = 1000


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
class _Family:
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


# ---------------------------------------------------------------------------------------------
# Model id normalisation.

_TIERS = "opus|sonnet|haiku|fable|mythos"
_NEW_STYLE = re.compile(rf"^claude-({_TIERS})-(\d{{1,2}})(?:[-.](\d{{1,2}}))?$")
_OLD_STYLE = re.compile(rf"^claude-(\d{{1,2}})(?:[-.](\d{{1,2}}))?-({_TIERS})$")
_PREFIX = re.compile(r"^(?:[a-z0-9_-]+/)*(?:(?:us|eu|apac|global|jp|au)\.)?(?:anthropic\.)?")
_BRACKET_SUFFIX = re.compile(r"\[[^\]]*\]$")
_VERSION_SUFFIX = re.compile(r"(?:-v\d+(?::\d+)?|@[a-z0-9_-]+)$")
_DATE_SUFFIX = re.compile(r"-\d{8}$")


def _strip_id(model: str) -> str:
    """Remove everything in an id that does not change its price (see module docstring)."""
    s = model.strip().lower()
    s = _BRACKET_SUFFIX.sub("", s).strip()
    s = _PREFIX.sub("", s, count=1)
    for _ in range(2):  # Vertex can stack them: claude-3-5-sonnet-v2@20241022
        s = _VERSION_SUFFIX.sub("", s)
    if s.endswith("-latest"):
        s = s[: -len("-latest")]
    s = _DATE_SUFFIX.sub("", s)
    return s


def normalize_model_id(model: str) -> str:
    """The canonical family key for a model id (whether or not the family is priced).

    Claude 3.x families keep Anthropic's old naming (``claude-3-5-haiku``); 4.x and later use the
    new one (``claude-sonnet-4-5``). A ``-0`` minor version is dropped (``claude-opus-4-0`` is
    ``claude-opus-4``).
    """
    s = _strip_id(model)
    m = _NEW_STYLE.match(s)
    if m:
        tier, major, minor = m.group(1), m.group(2), m.group(3)
    else:
        m = _OLD_STYLE.match(s)
        if not m:
            return s
        major, minor, tier = m.group(1), m.group(2), m.group(3)
    major = str(int(major))
    minor = str(int(minor)) if minor is not None else None
    version = major if minor in (None, "0") else f"{major}-{minor}"
    if int(major) <= 3:
        return f"claude-{version}-{tier}"
    return f"claude-{tier}-{version}"


# ---------------------------------------------------------------------------------------------
# Parsing helpers (shared by the built-in table and PRICING_FILE).


class _Bad(Exception):
    """Internal: a problem in a price entry; turned into a one-line ValueError naming the file."""


def _money(value: Any, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise _Bad(f"{what} must be a number, got {value!r}")
    try:
        d = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise _Bad(f"{what} must be a number, got {value!r}") from None
    if not d.is_finite() or d < 0:
        raise _Bad(f"{what} must be a non-negative number, got {value!r}")
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
            raise _Bad(f"{where}: missing {key!r}")
    inp = _money(entry["input"], f"{where}.input")

    def opt(key: str, mult: Decimal) -> Decimal:
        if entry.get(key) is None:
            return inp * mult
        return _money(entry[key], f"{where}.{key}")

    return Rates(
        input=inp,
        output=_money(entry["output"], f"{where}.output"),
        cache_write_5m=opt("cache_write_5m", _MULT_5M),
        cache_write_1h=opt("cache_write_1h", _MULT_1H),
        cache_read=opt("cache_read", _MULT_READ),
    )


def _parse_when(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Bad(f"{where}.effective_from must be a date string like 2026-01-01")
    try:
        if len(value.strip()) == 10:
            d = date.fromisoformat(value.strip())
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise _Bad(f"{where}.effective_from is not an ISO date: {value!r}") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _period_from(entry: Any, where: str) -> PricePeriod:
    if not isinstance(entry, dict):
        raise _Bad(f"{where} must be an object")
    rates = _rates_from(entry, where)
    above: int | None = None
    long_rates: Rates | None = None
    long = entry.get("long_prompt")
    if long is not None:
        if not isinstance(long, dict):
            raise _Bad(f"{where}.long_prompt must be an object")
        threshold = long.get("above")
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0:
            raise _Bad(f"{where}.long_prompt.above must be a non-negative integer")
        above = threshold
        long_rates = _rates_from(long, f"{where}.long_prompt")
    return PricePeriod(_parse_when(entry.get("effective_from"), where), rates, above, long_rates)


def _aliases_from(entry: dict[str, Any], where: str) -> list[str]:
    aliases = entry.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a for a in aliases):
        raise _Bad(f"{where}.aliases must be a list of strings")
    return [a.strip().lower() for a in aliases]


def _to_utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


# ---------------------------------------------------------------------------------------------


class PriceTable:
    """Model id -> family -> dated rates, and the cost of a ``Usage`` at a given time."""

    def __init__(self) -> None:
        self._families: dict[str, _Family] = {}
        self._family_cache: dict[str, str | None] = {}
        self._unpriced: set[str] = set()

    # -- construction --------------------------------------------------------------------------

    @classmethod
    def builtin(cls) -> PriceTable:
        """The table shipped with this release (see ``nexus.pricing_data``)."""
        table = cls()
        try:
            table._merge_ours(BUILTIN_PRICES, builtin=True)
        except _Bad as exc:  # pragma: no cover - guarded by tests
            raise RuntimeError(f"built-in price table is broken: {exc}") from exc
        return table

    @classmethod
    def load(cls, pricing_file: Path | None) -> PriceTable:
        """The built-in table, overridden and extended by ``pricing_file`` when given."""
        table = cls.builtin()
        if pricing_file is None:
            return table
        path = Path(pricing_file)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"PRICING_FILE {path}: cannot read: {exc.__class__.__name__}: {exc}") from None
        try:
            data = json.loads(text, parse_float=Decimal)  # exact: 3.75e-06 stays 3.75e-06
        except json.JSONDecodeError as exc:
            raise ValueError(f"PRICING_FILE {path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
        try:
            if not isinstance(data, dict):
                raise _Bad("top level must be a JSON object")
            if "models" in data:
                table._merge_ours(data, builtin=False)
            elif _looks_like_litellm(data):
                table._merge_litellm(data)
            else:
                raise _Bad('expected {"models": {...}} or LiteLLM\'s model_prices_and_context_window.json')
        except _Bad as exc:
            raise ValueError(f"PRICING_FILE {path}: {exc}") from None
        table._family_cache.clear()
        return table

    def _family_for_key(self, key: str) -> _Family:
        canon = normalize_model_id(key)
        fam = self._families.get(canon)
        if fam is None:
            fam = self._families[canon] = _Family(canon)
        return fam

    def _merge_ours(self, data: dict[str, Any], *, builtin: bool) -> None:
        models = data.get("models")
        if not isinstance(models, dict):
            raise _Bad('"models" must be an object mapping model ids to prices')
        for key, entry in models.items():
            where = f"models[{key!r}]"
            if not isinstance(key, str) or not key.strip():
                raise _Bad(f"{where}: empty model id")
            if not isinstance(entry, dict):
                raise _Bad(f"{where} must be an object")
            if "periods" in entry:
                raw_periods = entry["periods"]
                if not isinstance(raw_periods, list) or not raw_periods:
                    raise _Bad(f"{where}.periods must be a non-empty list")
                periods = [_period_from(p, f"{where}.periods[{i}]") for i, p in enumerate(raw_periods)]
            else:
                periods = [_period_from(entry, where)]
            aliases = _aliases_from(entry, where)
            fam = self._family_for_key(key)
            if builtin or any(p.effective_from is None for p in periods):
                fam.periods = []  # undated prices replace the whole history
            for period in periods:
                fam.add_period(period)
            fam.aliases.extend(a for a in aliases if a not in fam.aliases)

    def _merge_litellm(self, data: dict[str, Any]) -> None:
        for key, entry in data.items():
            if not isinstance(key, str) or not isinstance(entry, dict):
                continue
            provider = entry.get("litellm_provider")
            # Bedrock/Vertex entries are left out: their prices can differ from Anthropic's own.
            if provider != "anthropic" and not key.strip().lower().startswith("claude-"):
                continue
            if entry.get("input_cost_per_token") is None or entry.get("output_cost_per_token") is None:
                continue  # e.g. a search-only or image entry: nothing we can price tokens with
            where = f"{key!r}"
            period = _litellm_period(entry, where)
            fam = self._family_for_key(key)
            current = fam.periods[-1] if fam.periods else None
            if current is not None and current.rates == period.rates and (
                period.long_rates is None or period.long_rates == current.long_rates
            ):
                continue  # already right: keep built-in history and tiers
            fam.periods = [period]

    # -- lookups -------------------------------------------------------------------------------

    def family(self, model: str | None) -> str | None:
        """Canonical family key of ``model``, or None when no priced family matches."""
        if not model or not isinstance(model, str):
            return None
        cached = self._family_cache.get(model, ...)
        if cached is not ...:
            return cached  # type: ignore[return-value]
        result = self._lookup(model)
        if len(self._family_cache) >= _MAX_CACHED_IDS:
            self._family_cache.clear()
        self._family_cache[model] = result
        return result

    def _lookup(self, model: str) -> str | None:
        raw = model.strip().lower()
        no_bracket = _BRACKET_SUFFIX.sub("", raw).strip()
        stripped = _strip_id(model)
        canon = normalize_model_id(model)
        for candidate in (raw, no_bracket, stripped, canon):
            if candidate in self._families and self._families[candidate].periods:
                return candidate
        for fam in self._families.values():
            for alias in fam.aliases:
                for candidate in (raw, no_bracket, stripped):
                    if candidate == alias or fnmatch.fnmatchcase(candidate, alias):
                        return fam.key if fam.periods else None
        return None

    def is_priced(self, model: str | None) -> bool:
        return self.family(model) is not None

    def families(self) -> list[str]:
        """Every priced family key (for listings and docs)."""
        return sorted(k for k, f in self._families.items() if f.periods)

    def periods(self, model: str) -> list[PricePeriod]:
        """The dated price history of ``model``'s family (empty when unpriced)."""
        key = self.family(model)
        return list(self._families[key].periods) if key else []

    def export(self) -> dict[str, Any]:
        """The whole table in our PRICING_FILE format (numbers as exact strings).

        Lets users start their own file from what is in effect (``load`` reads it back unchanged),
        and lets the API show the prices it uses.
        """
        models: dict[str, Any] = {}
        for key in self.families():
            fam = self._families[key]
            periods = [_period_json(p) for p in fam.periods]
            entry: dict[str, Any] = periods[0] if len(periods) == 1 else {"periods": periods}
            if fam.aliases:
                entry["aliases"] = list(fam.aliases)
            models[key] = entry
        return {"models": models}

    def rates(self, model: str, at: datetime, prompt_tokens: int = 0) -> Rates | None:
        """Rates for ``model`` valid at ``at`` for a request whose prompt has ``prompt_tokens``."""
        key = self.family(model)
        if key is None:
            return None
        period = self._families[key].period_at(_to_utc(at))
        if period is None:
            return None
        if period.long_rates is not None and period.long_prompt_above is not None and prompt_tokens > period.long_prompt_above:
            return period.long_rates
        return period.rates

    def cost(self, model: str | None, usage: Usage, at: datetime) -> Decimal | None:
        """Exact cost in US dollars of one exchange; None when the model is unpriced.

        Cache writes: the 1h part at the 1h rate, everything else of the total at the 5m rate
        (a total without a split is therefore all 5m).
        """
        if not model:
            return None
        write_1h = max(usage.cache_creation_1h_tokens, 0)
        write_total = max(usage.cache_creation_input_tokens, usage.cache_creation_5m_tokens + write_1h, 0)
        write_5m = write_total - write_1h
        prompt = max(usage.input_tokens, 0) + write_total + max(usage.cache_read_input_tokens, 0)
        r = self.rates(model, at, prompt)
        if r is None:
            self._note_unpriced(model)
            return None
        total = (
            max(usage.input_tokens, 0) * r.input
            + max(usage.output_tokens, 0) * r.output
            + write_5m * r.cache_write_5m
            + write_1h * r.cache_write_1h
            + max(usage.cache_read_input_tokens, 0) * r.cache_read
        )
        return total / MILLION

    def _note_unpriced(self, model: str) -> None:
        if model in self._unpriced or len(self._unpriced) >= _MAX_UNPRICED_TRACKED:
            return
        self._unpriced.add(model)
        log.warning("no price known for model %r: its requests are recorded as unpriced (cost NULL)", model[:200])

    def unpriced_models_seen(self) -> set[str]:
        """Model ids that were asked to be priced and could not be (a copy)."""
        return set(self._unpriced)


def _period_json(period: PricePeriod) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if period.effective_from is not None:
        out["effective_from"] = period.effective_from.isoformat()
    out.update(period.rates.as_dict())
    if period.long_rates is not None and period.long_prompt_above is not None:
        out["long_prompt"] = {"above": period.long_prompt_above, **period.long_rates.as_dict()}
    return out


def _looks_like_litellm(data: dict[str, Any]) -> bool:
    return any(
        isinstance(v, dict) and ("input_cost_per_token" in v or "litellm_provider" in v) for v in data.values()
    )


_ABOVE = re.compile(
    r"^(input_cost_per_token|output_cost_per_token|cache_creation_input_token_cost"
    r"|cache_creation_input_token_cost_above_1hr|cache_read_input_token_cost)_above_(\d+)k_tokens$"
)


def _litellm_period(entry: dict[str, Any], where: str) -> PricePeriod:
    inp = _per_token(entry["input_cost_per_token"], f"{where}.input_cost_per_token")

    def opt(key: str, default: Decimal) -> Decimal:
        value = entry.get(key)
        return default if value is None else _per_token(value, f"{where}.{key}")

    rates = Rates(
        input=inp,
        output=_per_token(entry["output_cost_per_token"], f"{where}.output_cost_per_token"),
        cache_write_5m=opt("cache_creation_input_token_cost", inp * _MULT_5M),
        cache_write_1h=opt("cache_creation_input_token_cost_above_1hr", inp * _MULT_1H),
        cache_read=opt("cache_read_input_token_cost", inp * _MULT_READ),
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
        t_write = t.get("cache_creation_input_token_cost", t_in * _MULT_5M)
        long_rates = Rates(
            input=t_in,
            output=t.get("output_cost_per_token", rates.output),
            cache_write_5m=t_write,
            cache_write_1h=t.get("cache_creation_input_token_cost_above_1hr", t_in * _MULT_1H),
            cache_read=t.get("cache_read_input_token_cost", t_in * _MULT_READ),
        )
    return PricePeriod(None, rates, above, long_rates)
