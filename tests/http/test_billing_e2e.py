"""Every billing dimension through the real proxy: the official SDK -> proxy -> mock upstream -> database.

The mock answers with the dimensions the request asked for (fast mode, US-only inference, service
tier, web searches and fetches, thinking); the record must carry each of them as the answer said,
and its cost must be what Anthropic's published rates give, worked out here by hand.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import anthropic
import asyncpg
import httpx
import pytest

from tests.support.traffic import api_get

KEY = "sk-ant-billing-test"
M = Decimal(1_000_000)
WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}
WEB_FETCH = {"type": "web_fetch_20250910", "name": "web_fetch", "max_uses": 3}
STEER = {"x-mock-input-tokens": "1000", "x-mock-output-tokens": "500", "x-mock-cache-read": "20000"}

# Opus 5.5, $/MTok: standard 4 / 20 / read 0.2; fast 8 / 40 / read 0.4; US-only x1.1 on every token rate.
OPUS_55_FAST_US = {"input": Decimal("8.8"), "output": Decimal("44"), "read": Decimal("0.44")}
OPUS_55 = {"input": Decimal("4"), "output": Decimal("20"), "read": Decimal("0.2")}
SEARCH_PER_1000 = Decimal(10)


def by_hand(rates: dict[str, Decimal], usage: Any) -> Decimal:
    searches = usage.server_tool_use.web_search_requests if usage.server_tool_use else 0
    return ((usage.input_tokens * rates["input"] + usage.output_tokens * rates["output"]
             + (usage.cache_read_input_tokens or 0) * rates["read"]) / M
            + searches * SEARCH_PER_1000 / 1000)


async def _row(stack: Any, request_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """The record of the exchange whose upstream request-id is ``request_id`` (waits for the writer)."""
    conn = await asyncpg.connect(stack.dsn)
    try:
        deadline = time.monotonic() + timeout
        while True:
            row = await conn.fetchrow("SELECT * FROM api_requests WHERE request_id = $1", request_id)
            if row is not None:
                return dict(row)
            if time.monotonic() > deadline:
                raise AssertionError(f"no record with request-id {request_id}")
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


@pytest.mark.parametrize("streaming", [False, True], ids=["json", "sse"])
async def test_fast_us_only_web_search_and_thinking_are_recorded_and_priced(stack: Any, streaming: bool) -> None:
    client = anthropic.AsyncAnthropic(api_key=KEY, base_url=stack.proxy_url, max_retries=0)
    kwargs: dict[str, Any] = dict(
        model="claude-opus-5-5", max_tokens=4096, messages=[{"role": "user", "content": "Find the release notes."}],
        tools=[WEB_SEARCH, WEB_FETCH], thinking={"type": "enabled", "budget_tokens": 2048},
        service_tier="auto", extra_body={"speed": "fast", "inference_geo": "us"}, extra_headers=STEER,
    )
    if streaming:
        async with client.messages.stream(**kwargs) as s:
            final = await s.get_final_message()
            rid = s.request_id
    else:
        raw = await client.messages.with_raw_response.create(**kwargs)
        final, rid = await raw.parse(), raw.request_id
    u = final.usage
    assert u.server_tool_use is not None and u.server_tool_use.web_search_requests >= 1  # the mock searched
    row = await _row(stack, rid)
    assert row["stream"] is streaming
    assert row["speed"] == "fast" and row["inference_geo"] == "us" and row["service_tier"] == "priority"
    assert row["web_search_requests"] == u.server_tool_use.web_search_requests
    assert row["web_fetch_requests"] == u.server_tool_use.web_fetch_requests >= 1
    assert row["thinking_tokens"] == 250  # what the mock reports: min(budget 2048, output 500 / 2)
    details = getattr(u, "output_tokens_details", None) or (u.model_extra or {}).get("output_tokens_details")
    if details:  # the SDK keeps it on JSON answers; its stream accumulator may drop it
        assert (details["thinking_tokens"] if isinstance(details, dict) else details.thinking_tokens) == 250
    assert row["output_tokens"] == 500 and row["input_tokens"] == 1000 and row["cache_read_input_tokens"] == 20000
    expected = by_hand(OPUS_55_FAST_US, u)
    assert abs(row["cost_usd"] - expected) < Decimal("1e-6")
    assert row["cost_usd"] == expected  # 0.0088 + 0.022 + 0.0088 + searches / 100
    assert row["web_search_cost_usd"] == u.server_tool_use.web_search_requests * SEARCH_PER_1000 / 1000
    assert row["price_source"].startswith("genai-prices ") and row["price_source"].endswith("+overlay")

    # The API shows the same dimensions, and the rates applied, in the drill-down.
    detail = await api_get(stack, f"/api/requests/{row['id']}")
    req = detail["request"]
    assert (req["speed"], req["inferenceGeo"], req["serviceTier"]) == ("fast", "us", "priority")
    assert req["webSearchRequests"] == row["web_search_requests"] and req["thinkingTokens"] == 250
    p = detail["pricing"]
    assert p["ratesPerMillionTokens"] == {"input": 8.8, "output": 44.0, "cacheWrite5m": 11.0, "cacheWrite1h": 17.6,
                                          "cacheRead": 0.44}
    assert p["multipliers"] == [{"name": "inference_geo us", "factor": 1.1}]
    assert p["matchesStored"] is True and p["partsUsd"]["webSearch"] == float(row["web_search_cost_usd"])


async def test_standard_call_and_the_cost_breakdown_by_dimension(stack: Any) -> None:
    client = anthropic.AsyncAnthropic(api_key=KEY, base_url=stack.proxy_url, max_retries=0)
    plain = await client.messages.with_raw_response.create(
        model="claude-opus-5-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}], extra_headers=STEER)
    fast = await client.messages.with_raw_response.create(
        model="claude-opus-5-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}], tools=[WEB_SEARCH],
        extra_body={"speed": "fast", "inference_geo": "us"}, extra_headers=STEER)
    p_row, f_row = await _row(stack, plain.request_id), await _row(stack, fast.request_id)
    assert (p_row["speed"], p_row["inference_geo"], p_row["service_tier"]) == (None, "global", "standard")
    assert p_row["web_search_requests"] == p_row["web_fetch_requests"] == p_row["thinking_tokens"] == 0
    assert p_row["cost_usd"] == by_hand(OPUS_55, (await plain.parse()).usage) == Decimal("0.018")  # 0.004 + 0.01 + 0.004
    assert p_row["web_search_cost_usd"] == 0
    f_usage = (await fast.parse()).usage
    assert f_row["cost_usd"] == by_hand(OPUS_55_FAST_US, f_usage)

    costs = await api_get(stack, "/api/costs", days=1)
    dims = costs["byDimension"]
    total = p_row["cost_usd"] + f_row["cost_usd"]
    assert dims["fast"] == {"requests": 1, "costUsd": float(f_row["cost_usd"]),
                            "shareOfCost": round(float(f_row["cost_usd"] / total), 6)}
    assert dims["usOnly"]["requests"] == 1 and dims["usOnly"]["costUsd"] == float(f_row["cost_usd"])
    assert dims["webSearch"]["searches"] == f_usage.server_tool_use.web_search_requests
    assert dims["webSearch"]["costUsd"] == float(f_row["web_search_cost_usd"])
    stats = await api_get(stack, "/api/stats", since="1h")
    assert stats["byDimension"]["fast"]["costUsd"] == float(f_row["cost_usd"])
    assert stats["byDimension"]["webSearch"]["searches"] == dims["webSearch"]["searches"]
    opus = next(g for g in stats["byModel"] if g["model"] == "claude-opus-5-5")
    assert opus["byDimension"]["usOnly"]["requests"] == 1


async def test_a_parameter_the_model_rejects_is_an_error_record_not_a_cost(stack: Any) -> None:
    async with httpx.AsyncClient(base_url=stack.proxy_url, timeout=30) as c:
        r = await c.post("/v1/messages", headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"},
                         json={"model": "claude-sonnet-4-5", "max_tokens": 16, "inference_geo": "us",
                               "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 400 and "inference_geo" in r.json()["error"]["message"]
    row = await _row(stack, r.headers["request-id"])
    assert row["status_code"] == 400 and row["error_type"] == "invalid_request_error"
    assert row["inference_geo"] is None and row["web_search_requests"] == 0


async def test_unpriced_counter_is_exported_from_start_and_counts(stack: Any) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    def unpriced(text: str) -> float:
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        return sum(s.value for s in fams["claude_proxy_unpriced_requests"].samples
                   if s.name == "claude_proxy_unpriced_requests_total")

    async with httpx.AsyncClient(base_url=stack.proxy_url, timeout=30) as c:
        first = (await c.get("/metrics")).text
        assert "claude_proxy_unpriced_requests_total" in first and unpriced(first) == 0  # no "No data" panel
        r = await c.post("/v1/messages", headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"},
                         json={"model": "claude-nebula-preview", "max_tokens": 16,
                               "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 200
        row = await _row(stack, r.headers["request-id"])
        assert row["cost_usd"] is None and row["price_source"] is None
        assert unpriced((await c.get("/metrics")).text) == 1
    costs = await api_get(stack, "/api/costs", days=1)
    assert costs["unpriced"] == [{"model": "claude-nebula-preview", "requests": 1,
                                  "tokens": row["input_tokens"] + row["output_tokens"]}]
