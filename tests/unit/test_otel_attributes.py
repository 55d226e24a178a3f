"""The GenAI span of a Record, worked out by hand: attributes, times, the upstream's address (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from nexus.core.records import REQUEST_TYPE_COUNT_TOKENS, Record
from proxy.recorder.otel import span_attributes, span_times, upstream_server
from proxy.recorder.otel_metrics import MetricSet

SERVER = ("api.anthropic.com", 443)


def test_a_streamed_exchange_with_every_field() -> None:
    r = Record(model="claude-opus-4-1", stream=True, status_code=200, account_id="acct_1", instance_id="i1",
               input_tokens=10, output_tokens=200, cache_read_input_tokens=3000, cache_creation_input_tokens=500,
               thinking_tokens=120, ttft_ms=812.5, cost_usd=Decimal("0.123456"), service_tier="priority",
               speed="fast", inference_geo="us", web_search_requests=2, web_fetch_requests=1,
               response_model="claude-opus-4-1-20250805", response_id="msg_01", stop_reason="tool_use",
               request_id="req_1", traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01")
    assert span_attributes(r, SERVER) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-opus-4-1",
        "gen_ai.response.model": "claude-opus-4-1-20250805",
        "gen_ai.response.id": "msg_01",
        "gen_ai.response.finish_reasons": ["tool_use"],
        "gen_ai.request.stream": True,
        "gen_ai.usage.input_tokens": 3510,  # 10 uncached + 3000 read + 500 written
        "gen_ai.usage.output_tokens": 200,
        "gen_ai.usage.cache_read.input_tokens": 3000,
        "gen_ai.usage.cache_write.input_tokens": 500,
        "gen_ai.usage.reasoning.output_tokens": 120,
        "gen_ai.response.time_to_first_chunk": 0.8125,
        "server.address": "api.anthropic.com",
        "server.port": 443,
        "nexus.account_id": "acct_1",
        "nexus.cost_usd": 0.123456,
        "nexus.service_tier": "priority",
        "nexus.speed": "fast",
        "nexus.inference_geo": "us",
        "nexus.web_search_requests": 2,
        "nexus.request_type": "messages",
        "nexus.instance_id": "i1",
    }


def test_a_failed_exchange_without_an_anthropic_error_type_gets_its_status() -> None:
    r = Record(model=None, status_code=502, cost_usd=None)
    a = span_attributes(r, SERVER)
    assert a["error.type"] == "http_502"
    assert "gen_ai.request.model" not in a and "nexus.cost_usd" not in a  # unknown, unpriced: absent, never 0
    assert "gen_ai.response.time_to_first_chunk" not in a  # not a stream


def test_a_client_that_left_is_an_error_of_its_own_type() -> None:
    a = span_attributes(Record(status_code=499, error_type="client_aborted", stream=True, ttft_ms=None), SERVER)
    assert a["error.type"] == "client_aborted" and "gen_ai.response.time_to_first_chunk" not in a


def test_count_tokens_is_its_own_operation_without_usage() -> None:
    r = Record(path="/v1/messages/count_tokens", request_type=REQUEST_TYPE_COUNT_TOKENS, model="claude-haiku-4-5",
               status_code=200, counted_tokens=1234, cost_usd=Decimal(0))
    a = span_attributes(r, SERVER)
    assert a["gen_ai.operation.name"] == "count_tokens"
    assert not [k for k in a if k.startswith("gen_ai.usage.")]
    assert a["nexus.cost_usd"] == 0.0 and a["nexus.request_type"] == "count_tokens"


def test_span_times_are_the_exchange_start_and_its_latency() -> None:
    r = Record(created_at=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), response_time_ms=1234.5678)
    start, end = span_times(r)
    assert start == 1767323045_678901_000
    assert end - start == 1_234_567_800


@pytest.mark.parametrize(("url", "expected"), [
    ("https://api.anthropic.com", ("api.anthropic.com", 443)),
    ("http://127.0.0.1:8080/prefix", ("127.0.0.1", 8080)),
    ("http://gateway.internal", ("gateway.internal", 80)),
])
def test_upstream_server(url: str, expected: tuple[str, int]) -> None:
    assert upstream_server(url) == expected


def test_histogram_buckets_hold_their_upper_bound_and_sums_add_up() -> None:
    ms = MetricSet((1.0, 2.0, 4.0), (10.0,))
    key = (("gen_ai.request.model", "m"),)
    for v in (0.5, 1.0, 1.5, 4.0, 5.0):
        ms.duration.record(key, v)
    ms.cost.record(key, 0.25)
    ms.cost.record(key, 0.5)
    snap = dict((inst.name, points) for inst, points in ms.snapshot())
    p = snap["gen_ai.client.operation.duration"][key]
    assert (p.count, p.sum, p.min, p.max, p.buckets) == (5, 12.0, 0.5, 5.0, [2, 1, 1, 1])  # (..1] (1..2] (2..4] (4..)
    assert snap["nexus.cost"][key] == 0.75
    assert snap["gen_ai.client.token.usage"] == {}
    ms.duration.record(key, 0.1)
    assert p.count == 5  # a snapshot is a copy
