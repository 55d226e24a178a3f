"""Records carry every billing dimension: in the SSE event JSON, and through the journal and back."""

from __future__ import annotations

import json
from decimal import Decimal

import orjson

from nexus.core.records import Record


def test_new_fields_round_trip_through_the_journal_and_the_event() -> None:
    r = Record(model="claude-opus-5-5", service_tier="priority", speed="fast", inference_geo="us",
               web_search_requests=3, web_fetch_requests=2, thinking_tokens=120, cost_usd=Decimal("0.0476"),
               price_source="genai-prices 0.2.3+overlay", web_search_cost_usd=Decimal("0.03"))
    line = orjson.dumps(r, default=str)  # exactly what the journal writes
    back = Record.from_journal(orjson.loads(line))
    assert back == r
    ev = r.to_event()
    assert {k: ev[k] for k in ("serviceTier", "speed", "inferenceGeo", "webSearchRequests", "webFetchRequests",
                               "thinkingTokens", "priceSource", "webSearchCostUsd")} == {
        "serviceTier": "priority", "speed": "fast", "inferenceGeo": "us", "webSearchRequests": 3,
        "webFetchRequests": 2, "thinkingTokens": 120, "priceSource": "genai-prices 0.2.3+overlay",
        "webSearchCostUsd": 0.03}


def test_old_journal_lines_without_the_fields_still_load() -> None:
    old = {"id": "6f1e0b4a-1d2c-4e5f-8a9b-0c1d2e3f4a5b", "created_at": "2026-11-20T10:00:00+00:00",
           "domain": "a.example", "model": "claude-sonnet-4-5", "status_code": 200, "input_tokens": 10,
           "output_tokens": 20, "cost_usd": "0.00033", "request_type": "messages", "a_future_field": 1}
    r = Record.from_journal(json.loads(json.dumps(old)))
    assert r.cost_usd == Decimal("0.00033") and r.speed is None and r.web_search_requests == 0
    assert r.price_source is None and r.web_search_cost_usd is None
