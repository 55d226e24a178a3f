"""The price table: three layers, and the exact cost of one exchange.

From the top: ``PRICING_FILE`` (our format or LiteLLM's; docs/pricing.md), the overlay
(``overlay.json``: what the dataset lacks, with sources), and the genai-prices dataset (bundled, or
the data dir's copy from ``nexus prices update``). A request's rates are resolved once per (model,
price period, speed, service tier, inference geo) and cached; the cost is then a handful of exact
``Decimal`` products (bench/RESULTS.md: pricing on the hot path).
"""

from __future__ import annotations

import bisect
import fnmatch
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Context, Decimal, getcontext, localcontext
from pathlib import Path
from typing import Any

from genai_prices import types as gt

from nexus.core.usage import Usage
from nexus.pricing.dataset import Dataset, load_dataset
from nexus.pricing.file_format import (
    PriceEntryError,
    aliases_from,
    litellm_period,
    looks_like_litellm,
    period_from,
    period_json,
    to_utc,
)
from nexus.pricing.models import BRACKET_SUFFIX, family_key, normalize_model_id, strip_id
from nexus.pricing.overlay import Overlay, builtin_overlay
from nexus.pricing.rates import (
    BATCH_MULTIPLIER,
    MAX_CACHED_IDS,
    MAX_UNPRICED_TRACKED,
    MILLION,
    THOUSAND,
    Family,
    Price,
    PricePeriod,
    Quote,
    Rates,
    log,
)

# Costs are computed in our own context: a caller's (or a library's) low-precision ambient context
# must not round a month of spend.
# A cost has at most ~19 significant digits (10^12 tokens x a 6-digit rate): the default context's 28
# are exact. A caller that lowered the thread's precision gets ours for the computation instead.
_MIN_PREC = 28
_EXACT = Context(prec=34)
_NO_COST = Decimal(0)
FILE_SOURCE = "file"
OVERLAY_MARK = "+overlay"


@dataclass
class _Target:
    """What an id resolves to: a PRICING_FILE family, a dataset model (itself or via an alias), or both."""

    family: str
    file: Family | None
    model: gt.ModelInfo | None
    via_alias: bool = False
    bounds: list[datetime] = field(default_factory=list)


def _dataset_family(model: gt.ModelInfo) -> str:
    """Our family key for a dataset model (``claude-3-5-haiku-latest`` -> ``claude-3-5-haiku``)."""
    return family_key(model.id)


class PriceTable:
    """Model id -> rates in force -> the cost of a ``Usage`` at a given time."""

    def __init__(self, dataset: Dataset | None = None, overlay: Overlay | None = None) -> None:
        self.dataset = dataset if dataset is not None else Dataset.bundled()
        self.overlay = overlay if overlay is not None else builtin_overlay()
        self.file: Path | None = None
        self._families: dict[str, Family] = {}
        self._targets: dict[str, _Target | None] = {}
        self._quotes: dict[tuple, Quote | None] = {}
        self._unpriced: set[str] = set()

    # -- construction --------------------------------------------------------------------------

    @classmethod
    def builtin(cls) -> PriceTable:
        """The bundled dataset and the overlay, no PRICING_FILE."""
        return cls()

    @classmethod
    def load(cls, pricing_file: Path | None, data_dir: Path | None = None) -> PriceTable:
        """The dataset (the data dir's copy if valid, else bundled) + overlay + ``pricing_file``."""
        table = cls(load_dataset(data_dir))
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
                raise PriceEntryError("top level must be a JSON object")
            if "models" in data:
                table._merge_ours(data)
            elif looks_like_litellm(data):
                table._merge_litellm(data)
            else:
                raise PriceEntryError('expected {"models": {...}} or LiteLLM\'s model_prices_and_context_window.json')
        except PriceEntryError as exc:
            raise ValueError(f"PRICING_FILE {path}: {exc}") from None
        table.file = path
        table._targets.clear()
        table._quotes.clear()
        return table

    def _family_for_key(self, key: str) -> Family:
        canon = normalize_model_id(key)
        fam = self._families.get(canon)
        if fam is None:
            fam = self._families[canon] = Family(canon)
        return fam

    def _merge_ours(self, data: dict[str, Any]) -> None:
        models = data.get("models")
        if not isinstance(models, dict):
            raise PriceEntryError('"models" must be an object mapping model ids to prices')
        for key, entry in models.items():
            where = f"models[{key!r}]"
            if not isinstance(key, str) or not key.strip():
                raise PriceEntryError(f"{where}: empty model id")
            if not isinstance(entry, dict):
                raise PriceEntryError(f"{where} must be an object")
            if "periods" in entry:
                raw_periods = entry["periods"]
                if not isinstance(raw_periods, list) or not raw_periods:
                    raise PriceEntryError(f"{where}.periods must be a non-empty list")
                periods = [period_from(p, f"{where}.periods[{i}]") for i, p in enumerate(raw_periods)]
            else:
                periods = [period_from(entry, where)]
            aliases = aliases_from(entry, where)
            fam = self._family_for_key(key)
            if any(p.effective_from is None for p in periods):
                fam.periods = []  # undated prices replace the whole history
            for period in periods:
                fam.add_period(period)
            fam.aliases.extend(a for a in aliases if a not in fam.aliases)

    def _merge_litellm(self, data: dict[str, Any]) -> None:
        now = datetime.now(UTC)
        for key, entry in data.items():
            if not isinstance(key, str) or not isinstance(entry, dict):
                continue
            provider = entry.get("litellm_provider")
            # Bedrock/Vertex entries are left out: their prices can differ from Anthropic's own.
            if provider != "anthropic" and not key.strip().lower().startswith("claude-"):
                continue
            if entry.get("input_cost_per_token") is None or entry.get("output_cost_per_token") is None:
                continue  # e.g. a search-only or image entry: nothing we can price tokens with
            period = litellm_period(entry, f"{key!r}")
            current = self.quote(key, now)
            if current is not None and current.rates == period.rates and (
                period.long_rates is None
                or (current.tiers and current.tiers[0] == (period.long_prompt_above, period.long_rates))
            ):
                continue  # already right: keep the dataset's history, tiers and variants
            self._family_for_key(key).periods = [period]
        self._targets.clear()
        self._quotes.clear()

    # -- lookups -------------------------------------------------------------------------------

    def _target(self, model: str) -> _Target | None:
        hit = self._targets.get(model, ...)
        if hit is not ...:
            return hit  # type: ignore[return-value]
        result = self._lookup(model)
        if len(self._targets) >= MAX_CACHED_IDS:
            self._targets.clear()
            self._quotes.clear()
        self._targets[model] = result
        return result

    def _lookup(self, model: str) -> _Target | None:
        raw = model.strip().lower()
        no_bracket = BRACKET_SUFFIX.sub("", raw).strip()
        stripped = strip_id(model)
        canon = normalize_model_id(model)
        file_fam = self._file_family((raw, no_bracket, stripped, canon))
        ds_model = None
        for candidate in dict.fromkeys((no_bracket, stripped, canon)):
            if candidate and (ds_model := self.dataset.find(candidate)) is not None:
                break
        via_alias = False
        family = canon
        if ds_model is not None:
            family = _dataset_family(ds_model)
        elif canon in self.overlay.aliases:
            ds_model = self.dataset.find(self.overlay.aliases[canon][0])
            via_alias = ds_model is not None
        if file_fam is not None:
            family = file_fam.key
        elif ds_model is None:
            return None
        bounds: set[datetime] = set(self.overlay.boundaries(family))
        if file_fam is not None:
            bounds.update(p.effective_from for p in file_fam.periods if p.effective_from is not None)
        if ds_model is not None:
            bounds.update(Dataset.boundaries(ds_model))
        return _Target(family, file_fam, ds_model, via_alias, sorted(bounds))

    def _file_family(self, candidates: tuple[str, ...]) -> Family | None:
        for candidate in candidates:
            fam = self._families.get(candidate)
            if fam is not None and fam.periods:
                return fam
        for fam in self._families.values():
            for alias in fam.aliases:
                for candidate in candidates[:3]:
                    if candidate == alias or fnmatch.fnmatchcase(candidate, alias):
                        return fam if fam.periods else None
        return None

    def family(self, model: str | None) -> str | None:
        """Canonical family key of ``model``, or None when nothing prices it."""
        if not model or not isinstance(model, str):
            return None
        target = self._target(model)
        return None if target is None else target.family

    def is_priced(self, model: str | None) -> bool:
        return self.family(model) is not None

    def families(self) -> list[str]:
        """Every priced family key: the dataset's, the overlay's aliases, the file's."""
        keys = {_dataset_family(m) for m in self.dataset.models()}
        keys.update(a for a, (target, _) in self.overlay.aliases.items() if self.dataset.find(target) is not None)
        keys.update(k for k, f in self._families.items() if f.periods)
        return sorted(keys)

    def periods(self, model: str) -> list[PricePeriod]:
        """The PRICING_FILE periods of ``model``'s family (empty when the file does not price it)."""
        target = self._target(model) if model else None
        return list(target.file.periods) if target is not None and target.file is not None else []

    def export(self) -> dict[str, Any]:
        """The PRICING_FILE layer in our format (numbers as exact strings); ``load`` reads it back."""
        models: dict[str, Any] = {}
        for key in sorted(k for k, f in self._families.items() if f.periods):
            fam = self._families[key]
            periods = [period_json(p) for p in fam.periods]
            entry: dict[str, Any] = periods[0] if len(periods) == 1 else {"periods": periods}
            if fam.aliases:
                entry["aliases"] = list(fam.aliases)
            models[key] = entry
        return {"models": models}

    # -- rates ---------------------------------------------------------------------------------

    def quote(self, model: str | None, at: datetime, speed: str | None = None, service_tier: str | None = None,
              inference_geo: str | None = None) -> Quote | None:
        """The rates in force for this kind of request; None when the model is unpriced."""
        if not model or not isinstance(model, str):
            return None
        target = self._target(model)
        if target is None:
            return None
        at = to_utc(at)
        segment = bisect.bisect_right(target.bounds, at)
        key = (model, segment, speed, service_tier, inference_geo)
        hit = self._quotes.get(key, ...)
        if hit is not ...:
            return hit  # type: ignore[return-value]
        quote = self._build_quote(target, at, speed, service_tier, inference_geo)
        if len(self._quotes) >= 4 * MAX_CACHED_IDS:
            self._quotes.clear()
        self._quotes[key] = quote
        return quote

    def _build_quote(self, t: _Target, at: datetime, speed: str | None, service_tier: str | None,
                     geo: str | None) -> Quote | None:
        batch = service_tier == "batch"
        period = t.file.period_at(at) if t.file is not None else None
        if period is None and t.file is not None and t.model is None:
            period = t.file.periods[0]  # a file-only family: before its first period, its first price
        overlaid = False
        if period is not None:
            source = FILE_SOURCE
            fast = speed == "fast" and period.fast is not None
            rates = period.fast if fast and period.fast is not None else period.rates
            tiers: tuple[tuple[int, Rates], ...] = ()
            if not fast and period.long_rates is not None and period.long_prompt_above is not None:
                tiers = ((period.long_prompt_above, period.long_rates),)
            if batch:
                rates = rates.times(BATCH_MULTIPLIER)
                tiers = tuple((s, r.times(BATCH_MULTIPLIER)) for s, r in tiers)
        else:
            assert t.model is not None
            context: dict[str, str] = {}
            if speed == "fast":
                context["speed"] = "fast"
            if batch:
                context["processing"] = "batch"
            resolved = Dataset.resolve(t.model, at, context)
            if resolved is None:
                return None
            rates, tiers = resolved
            source = self.dataset.label
            overlaid = t.via_alias
            patched = self.overlay.patched(t.family, at, rates)
            if patched is not None:
                rates, overlaid = patched, True
            extra = self.overlay.long_prompt.get(t.family)
            if extra is not None and not tiers:
                above, values, _ = extra
                tier = Rates(**values, web_search=rates.web_search)
                if batch and context and Dataset.resolve(t.model, at, {}) != resolved:
                    tier = tier.times(BATCH_MULTIPLIER)  # the dataset applied its batch variant
                tiers, overlaid = ((above, tier),), True
        multipliers: tuple[tuple[str, Decimal], ...] = ()
        geo_hit = self.overlay.geo_multiplier(t.family, geo)
        if geo_hit is not None:
            factor = geo_hit[0]
            rates = rates.times(factor)
            tiers = tuple((s, r.times(factor)) for s, r in tiers)
            multipliers = ((f"inference_geo {geo}", factor),)
            overlaid = True
        return Quote(t.family, rates, source + (OVERLAY_MARK if overlaid else ""), tiers, multipliers)

    def rates(self, model: str, at: datetime, prompt_tokens: int = 0, *, speed: str | None = None,
              service_tier: str | None = None, inference_geo: str | None = None) -> Rates | None:
        """Rates for ``model`` at ``at`` for a request whose prompt has ``prompt_tokens``."""
        q = self.quote(model, at, speed, service_tier, inference_geo)
        return None if q is None else q.for_prompt(prompt_tokens)[0]

    # -- cost ----------------------------------------------------------------------------------

    def price(self, model: str | None, usage: Usage, at: datetime) -> Price | None:
        """Exact cost of one exchange with its parts; None when the model is unpriced.

        Cache writes: the 1h part at the 1h rate, everything else of the total at the 5m rate
        (a total without a split is therefore all 5m). Web searches at the per-1,000 price.
        Runs on the hot path (after the response is relayed): one cached quote, five products.
        """
        if not model:
            return None
        q = self.quote(model, at, usage.speed, usage.service_tier, usage.inference_geo)
        if q is None:
            self._note_unpriced(model)
            return None
        write_1h = max(usage.cache_creation_1h_tokens, 0)
        write_total = max(usage.cache_creation_input_tokens, usage.cache_creation_5m_tokens + write_1h, 0)
        uncached = max(usage.input_tokens, 0)
        read = max(usage.cache_read_input_tokens, 0)
        output = max(usage.output_tokens, 0)
        searches = max(usage.web_search_requests, 0)
        r, above = q.for_prompt(uncached + write_total + read)
        if getcontext().prec < _MIN_PREC:  # a caller lowered the precision: never round a cost
            with localcontext(_EXACT):
                return self._priced(q, r, above, uncached, output, write_total - write_1h, write_1h, read, searches)
        return self._priced(q, r, above, uncached, output, write_total - write_1h, write_1h, read, searches)

    @staticmethod
    def _priced(q: Quote, r: Rates, above: int | None, uncached: int, output: int, write_5m: int, write_1h: int,
                read: int, searches: int) -> Price:
        tokens = (uncached * r.input + output * r.output + write_5m * r.cache_write_5m
                  + write_1h * r.cache_write_1h + read * r.cache_read) / MILLION
        web = searches * r.web_search / THOUSAND if searches else _NO_COST
        return Price(tokens + web, q, r, above, web, (uncached, output, write_5m, write_1h, read, searches))

    def cost(self, model: str | None, usage: Usage, at: datetime) -> Decimal | None:
        """Exact cost in US dollars of one exchange; None when the model is unpriced."""
        p = self.price(model, usage, at)
        return None if p is None else p.cost

    def _note_unpriced(self, model: str) -> None:
        if model in self._unpriced or len(self._unpriced) >= MAX_UNPRICED_TRACKED:
            return
        self._unpriced.add(model)
        log.warning("no price known for model %r: its requests are recorded as unpriced (cost NULL)", model[:200])

    def unpriced_models_seen(self) -> set[str]:
        """Model ids that were asked to be priced and could not be (a copy)."""
        return set(self._unpriced)
