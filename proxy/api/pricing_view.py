"""The ``pricing`` part of ``/api/requests/{id}``: the rates applied to a stored request and its cost by part.

Computed with the price table in force now (the one ``nexus db reprice`` would apply), from the
request's stored tokens and billing dimensions; ``matchesStored`` says whether that agrees with
the ``costUsd`` recorded at the time (docs/api.md).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from nexus.core.usage import Usage
from nexus.pricing import PriceTable

_STORED = Decimal("1e-10")


def _n(d: Decimal) -> float:
    return float(d)


def pricing_json(table: PriceTable | None, req: dict[str, Any]) -> dict[str, Any] | None:
    """None when there is no table, the exchange bills nothing, or the model is unpriced."""
    if table is None or req.get("requestType") != "messages" or not req.get("model"):
        return None
    tokens = req.get("tokens") or {}
    usage = Usage(
        input_tokens=tokens.get("input") or 0, output_tokens=tokens.get("output") or 0,
        cache_creation_input_tokens=tokens.get("cacheCreation") or 0,
        cache_creation_5m_tokens=req.get("cacheWrite5mTokens") or 0,
        cache_creation_1h_tokens=req.get("cacheWrite1hTokens") or 0,
        cache_read_input_tokens=tokens.get("cacheRead") or 0, service_tier=req.get("serviceTier"),
        speed=req.get("speed"), inference_geo=req.get("inferenceGeo"),
        web_search_requests=req.get("webSearchRequests") or 0,
    )
    price = table.price(req["model"], usage, datetime.fromisoformat(req["time"]))
    if price is None:
        return None
    r = price.rates
    parts = price.parts_dict()
    stored = req.get("costUsd")
    return {
        "family": price.quote.family,
        "source": price.source,
        "ratesPerMillionTokens": {"input": _n(r.input), "output": _n(r.output), "cacheWrite5m": _n(r.cache_write_5m),
                                  "cacheWrite1h": _n(r.cache_write_1h), "cacheRead": _n(r.cache_read)},
        "webSearchPer1000": _n(r.web_search),
        "longPromptAbove": price.long_prompt_above,
        "multipliers": [{"name": name, "factor": _n(f)} for name, f in price.quote.multipliers],
        "partsUsd": {"input": _n(parts["input"]), "output": _n(parts["output"]),
                     "cacheWrite5m": _n(parts["cache_write_5m"]), "cacheWrite1h": _n(parts["cache_write_1h"]),
                     "cacheRead": _n(parts["cache_read"]), "webSearch": _n(parts["web_search"])},
        "totalUsd": _n(price.cost),
        "matchesStored": stored is not None and round(float(price.cost.quantize(_STORED)), 10) == stored,
    }
