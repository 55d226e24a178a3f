"""genai-prices data files for tests: the bundled Anthropic provider as upstream ``data.json`` JSON.

``nexus prices update`` reads genai-prices' own file format (a JSON array of providers); tests need
valid copies (with a price changed, a model added) and broken ones, without the network.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from genai_prices import types as gt


def _clause(c: Any) -> dict[str, Any]:
    if isinstance(c, gt.ClauseOr):
        return {"or": [_clause(x) for x in c.or_]}
    if isinstance(c, gt.ClauseAnd):
        return {"and": [_clause(x) for x in c.and_]}
    return dict(c.__dict__)


def _price(v: Any) -> Any:
    if isinstance(v, gt.TieredPrices):
        return {"base": str(v.base), "tiers": [{"start": t.start, "price": str(t.price)} for t in v.tiers]}
    return str(v)


def _mp(m: gt.ModelPrice) -> dict[str, Any]:
    return {k: _price(v) for k, v in m.__dict__.items() if v is not None and not k.startswith("_")}


def _constraint(c: Any) -> dict[str, Any] | None:
    return None if c is None else {"start_date": c.start_date.isoformat()}


def _model(m: gt.ModelInfo) -> dict[str, Any]:
    d: dict[str, Any] = {"id": m.id, "match": _clause(m.match), "name": m.name, "context_window": m.context_window}
    if isinstance(m.prices, gt.ModelPrice):
        d["prices"] = _mp(m.prices)
    else:
        d["prices"] = [{"constraint": _constraint(c.constraint), "prices": _mp(c.prices)} for c in m.prices]
    if m.price_variants:
        d["price_variants"] = [{"when": v.when, "constraint": _constraint(v.constraint), "prices": _mp(v.prices)}
                               for v in m.price_variants]
    return d


def anthropic_provider() -> dict[str, Any]:
    """The bundled Anthropic provider in genai-prices' v2 ``data.json`` shape."""
    from genai_prices.data import providers

    p = next(x for x in providers if x.id == "anthropic")
    return {"id": p.id, "name": p.name, "api_pattern": p.api_pattern,
            "model_match": _clause(p.model_match) if p.model_match else None,
            "provider_match": _clause(p.provider_match) if p.provider_match else None,
            "models": [_model(m) for m in p.models]}


def newer_dataset() -> list[dict[str, Any]]:
    """A plausible newer upstream file: Fable 5.1 input 10 -> 9, a new model, another provider beside."""
    anth = copy.deepcopy(anthropic_provider())
    for m in anth["models"]:
        if m["id"] == "claude-fable-5-1":
            m["prices"]["input_mtok"] = "9"
    anth["models"].insert(0, {"id": "claude-nova-6", "match": {"equals": "claude-nova-6"}, "name": "Claude Nova 6",
                              "prices": {"input_mtok": "3", "output_mtok": "15", "cache_read_mtok": "0.3",
                                         "cache_write_mtok": "3.75", "cache_write_1h_mtok": "6"}})
    other = {"id": "example", "name": "Example", "api_pattern": "https://api\\.example\\.com", "models": []}
    return [other, anth]


def write(path: Path, data: Any) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path
