"""The price table: model id → family → dated rates, and the exact cost of one exchange.
"""

from __future__ import annotations

import fnmatch
import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from nexus.core.usage import Usage
from nexus.pricing.builtin import BUILTIN_PRICES
from nexus.pricing.file_format import (
    PriceEntryError,
    aliases_from,
    litellm_period,
    looks_like_litellm,
    period_from,
    period_json,
    to_utc,
)
from nexus.pricing.models import BRACKET_SUFFIX, normalize_model_id, strip_id
from nexus.pricing.rates import MAX_CACHED_IDS, MAX_UNPRICED_TRACKED, MILLION, Family, PricePeriod, Rates, log


class PriceTable:
    """Model id -> family -> dated rates, and the cost of a ``Usage`` at a given time."""

    def __init__(self) -> None:
        self._families: dict[str, Family] = {}
        self._family_cache: dict[str, str | None] = {}
        self._unpriced: set[str] = set()

    # -- construction --------------------------------------------------------------------------

    @classmethod
    def builtin(cls) -> PriceTable:
        """The table shipped with this release (see ``nexus.pricing.builtin``)."""
        table = cls()
        try:
            table._merge_ours(BUILTIN_PRICES, builtin=True)
        except PriceEntryError as exc:  # pragma: no cover - guarded by tests
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
                raise PriceEntryError("top level must be a JSON object")
            if "models" in data:
                table._merge_ours(data, builtin=False)
            elif looks_like_litellm(data):
                table._merge_litellm(data)
            else:
                raise PriceEntryError('expected {"models": {...}} or LiteLLM\'s model_prices_and_context_window.json')
        except PriceEntryError as exc:
            raise ValueError(f"PRICING_FILE {path}: {exc}") from None
        table._family_cache.clear()
        return table

    def _family_for_key(self, key: str) -> Family:
        canon = normalize_model_id(key)
        fam = self._families.get(canon)
        if fam is None:
            fam = self._families[canon] = Family(canon)
        return fam

    def _merge_ours(self, data: dict[str, Any], *, builtin: bool) -> None:
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
            period = litellm_period(entry, where)
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
        if len(self._family_cache) >= MAX_CACHED_IDS:
            self._family_cache.clear()
        self._family_cache[model] = result
        return result

    def _lookup(self, model: str) -> str | None:
        raw = model.strip().lower()
        no_bracket = BRACKET_SUFFIX.sub("", raw).strip()
        stripped = strip_id(model)
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
            periods = [period_json(p) for p in fam.periods]
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
        period = self._families[key].period_at(to_utc(at))
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
        if model in self._unpriced or len(self._unpriced) >= MAX_UNPRICED_TRACKED:
            return
        self._unpriced.add(model)
        log.warning("no price known for model %r: its requests are recorded as unpriced (cost NULL)", model[:200])

    def unpriced_models_seen(self) -> set[str]:
        """Model ids that were asked to be priced and could not be (a copy)."""
        return set(self._unpriced)
