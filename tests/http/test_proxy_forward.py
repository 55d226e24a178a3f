"""The forwarding path end to end: real proxy, real mock upstream, real PostgreSQL."""

from __future__ import annotations

import asyncio
import gzip
import time
from decimal import Decimal

import anthropic
import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from nexus.core.redact import key_fingerprint
from nexus.pricing import PriceTable

KEY = "sk-ant-test-forward-0001"
HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
BODY = {"model": "claude-sonnet-4-6", "max_tokens": 64, "messages": [{"role": "user", "content": "Hello"}]}


def _client(stack, **kw) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=stack.proxy_url, timeout=30, **kw)


async def test_sdk_create_and_stream_are_recorded_to_the_token(stack):
    client = anthropic.AsyncAnthropic(api_key=KEY, base_url=stack.proxy_url, max_retries=0)
    msg = await client.messages.create(**BODY)
    async with client.messages.stream(**BODY) as s:
        text = "".join([t async for t in s.text_stream])
        final = await s.get_final_message()
    assert text
    rows = await stack.wait_rows(2)
    assert len(rows) == 2
    by_stream = {r["stream"]: r for r in rows}
    plain, streamed = by_stream[False], by_stream[True]
    for row, usage in ((plain, msg.usage), (streamed, final.usage)):
        assert row["input_tokens"] == usage.input_tokens
        assert row["output_tokens"] == usage.output_tokens
        assert row["cache_read_input_tokens"] == (usage.cache_read_input_tokens or 0)
        assert row["cache_creation_input_tokens"] == (usage.cache_creation_input_tokens or 0)
        assert row["status_code"] == 200 and row["error_type"] is None
        assert row["model"] == "claude-sonnet-4-6"
        assert row["account_id"] == f"acct_{key_fingerprint(KEY)}"
        assert row["request_id"] and row["request_id"].startswith("req_")
    expected = PriceTable.builtin().cost("claude-sonnet-4-6", _usage(msg.usage), plain["created_at"])
    assert plain["cost_usd"] == expected and expected > Decimal(0)
    assert streamed["ttft_ms"] is not None and streamed["ttft_ms"] <= streamed["response_time_ms"]


def _usage(u):
    from nexus.core.usage import Usage

    return Usage(input_tokens=u.input_tokens, output_tokens=u.output_tokens,
                 cache_creation_input_tokens=u.cache_creation_input_tokens or 0,
                 cache_read_input_tokens=u.cache_read_input_tokens or 0)


async def test_sdk_tool_use_round_trip(stack):
    client = anthropic.AsyncAnthropic(api_key=KEY, base_url=stack.proxy_url, max_retries=0)
    tools = [{"name": "get_weather", "description": "Weather for a city",
              "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    msg = await client.messages.create(**BODY, tools=tools, tool_choice={"type": "any"})
    assert any(block.type == "tool_use" for block in msg.content)
    async with client.messages.stream(**BODY, tools=tools, tool_choice={"type": "any"}) as s:
        final = await s.get_final_message()
    assert any(block.type == "tool_use" for block in final.content)
    rows = await stack.wait_rows(2)
    assert sorted(r["output_tokens"] for r in rows) == sorted([msg.usage.output_tokens, final.usage.output_tokens])


async def test_query_method_body_and_headers_reach_upstream_unchanged(stack):
    async with _client(stack) as c:
        r = await c.post("/v1/messages?beta=true", content=orjson.dumps(BODY),
                         headers={**HEADERS, "anthropic-beta": "prompt-caching-2024-07-31,x", "content-type":
                                  "application/json", "x-custom": "kept"})
    assert r.status_code == 200
    seen = stack.mock.requests[-1]
    assert seen["method"] == "POST"
    assert seen["path"] == "/v1/messages"
    assert "beta=true" in seen["query_string"]
    headers = {k.lower(): v for k, v in seen["headers"]}
    assert headers["anthropic-beta"] == "prompt-caching-2024-07-31,x"
    assert headers["x-custom"] == "kept"
    assert headers["x-api-key"] == KEY  # the upstream needs the key; we only never store it
    assert r.headers["x-mock-echo-beta"] == "prompt-caching-2024-07-31,x"
    # response headers come back: request-id and rate limits
    assert r.headers["request-id"].startswith("req_")
    assert "anthropic-ratelimit-requests-limit" in r.headers
    assert r.headers.get_list("date") and len(r.headers.get_list("date")) == 1


async def test_gzip_body_is_relayed_byte_for_byte_and_still_parsed(stack):
    async with _client(stack) as c:
        req = c.build_request("POST", "/v1/messages", json=BODY,
                              headers={**HEADERS, "x-mock-gzip": "1", "accept-encoding": "gzip"})
        r = await c.send(req, stream=True)
        raw = b"".join([chunk async for chunk in r.aiter_raw()])
        await r.aclose()
    assert r.headers["content-encoding"] == "gzip"
    payload = orjson.loads(gzip.decompress(raw))
    rows = await stack.wait_rows(1)
    assert rows[0]["output_tokens"] == payload["usage"]["output_tokens"] > 0


async def test_stream_events_arrive_unbuffered(stack):
    """The first event reaches the client long before the upstream sends the next one."""
    async with _client(stack) as c:
        start = time.monotonic()
        async with c.stream("POST", "/v1/messages", json={**BODY, "stream": True},
                            headers={**HEADERS, "x-mock-event-delay-ms": "400", "x-mock-events": "3"}) as r:
            arrivals = []
            async for chunk in r.aiter_bytes():
                if chunk.strip():
                    arrivals.append(time.monotonic() - start)
    assert r.status_code == 200
    # message_start is written at once; later events come 400 ms apart
    assert arrivals[0] < 0.35
    assert arrivals[-1] - arrivals[0] > 1.0


async def test_long_stream_is_not_cut_by_a_response_timeout(stack, monkeypatch):
    """Quart's default RESPONSE_TIMEOUT (60 s) cuts a streamed response; the proxy lifts it.

    Without waiting 60 s: shrink Quart's default to 1 s. A plain Quart app then cuts a 2.5 s
    stream (the control), while a proxy app built under the same default relays it whole.
    """
    from quart import Quart, Response
    from werkzeug.datastructures import ImmutableDict

    from proxy.ingress.app import create_proxy_app
    from proxy.serve import start_server

    monkeypatch.setattr(Quart, "default_config", ImmutableDict({**Quart.default_config, "RESPONSE_TIMEOUT": 1}))

    control = Quart("control")

    @control.get("/slow")
    async def slow() -> Response:
        async def gen():
            for i in range(5):
                yield f"data: {i}\n\n".encode()
                await asyncio.sleep(0.5)
            yield b"data: end\n\n"

        return Response(gen(), content_type="text/event-stream")

    control_srv = await start_server(control)
    proxy_srv = await start_server(create_proxy_app(stack.runtime))
    try:
        async with httpx.AsyncClient(timeout=30) as c:
            with pytest.raises(httpx.HTTPError):
                async with c.stream("GET", control_srv.url + "/slow") as r:
                    cut = b"".join([chunk async for chunk in r.aiter_bytes()])
                    assert b"end" in cut  # not reached: the control stream is cut
            async with c.stream("POST", proxy_srv.url + "/v1/messages", json={**BODY, "stream": True},
                                headers={**HEADERS, "x-mock-event-delay-ms": "500", "x-mock-events": "4"}) as r:
                body = b"".join([chunk async for chunk in r.aiter_bytes()])
    finally:
        await proxy_srv.stop()
        await control_srv.stop()
    assert b"message_stop" in body


@pytest.mark.parametrize("status,etype", [
    (400, "invalid_request_error"), (401, "authentication_error"), (403, "permission_error"),
    (404, "not_found_error"), (413, "request_too_large"), (429, "rate_limit_error"),
    (500, "api_error"), (529, "overloaded_error"),
])
async def test_upstream_errors_pass_through_and_are_recorded(stack, status, etype):
    async with _client(stack) as c:
        r = await c.post("/v1/messages", json=BODY, headers={**HEADERS, "x-mock-status": str(status)})
    assert r.status_code == status
    assert r.json()["error"]["type"] == etype
    assert r.headers["request-id"].startswith("req_")
    if status in (429, 529):
        assert "retry-after" in r.headers
    rows = await stack.wait_rows(1)
    assert rows[0]["status_code"] == status
    assert rows[0]["error_type"] == etype
    body = await _bodies(stack)
    assert body and etype in body[0]["response_body"]  # STORE_BODIES=errors keeps the error body


async def _bodies(stack):
    import asyncpg

    conn = await asyncpg.connect(stack.dsn)
    try:
        return await conn.fetch("SELECT * FROM api_request_bodies")
    finally:
        await conn.close()


async def test_error_event_inside_200_stream_makes_an_error_record(stack):
    async with _client(stack) as c:
        async with c.stream("POST", "/v1/messages", json={**BODY, "stream": True},
                            headers={**HEADERS, "x-mock-stream-error": "overloaded_error"}) as r:
            body = b"".join([chunk async for chunk in r.aiter_bytes()])
    assert r.status_code == 200 and b"event: error" in body
    rows = await stack.wait_rows(1)
    assert rows[0]["status_code"] == 200
    assert rows[0]["error_type"] == "overloaded_error"
    assert rows[0]["input_tokens"] > 0  # the partial usage from message_start is kept


async def test_count_tokens_is_recorded_unbilled(stack):
    async with _client(stack) as c:
        r = await c.post("/v1/messages/count_tokens", json={"model": BODY["model"], "messages": BODY["messages"]},
                         headers=HEADERS)
    assert r.status_code == 200
    counted = r.json()["input_tokens"]
    rows = await stack.wait_rows(1)
    row = rows[0]
    assert row["request_type"] == "count_tokens"
    assert row["counted_tokens"] == counted > 0
    assert row["input_tokens"] == row["output_tokens"] == 0
    assert row["cost_usd"] == 0


async def test_other_v1_paths_are_relayed_but_not_recorded(stack):
    async with _client(stack) as c:
        r = await c.get("/v1/models", headers=HEADERS)
    assert r.status_code == 200 and r.json()["data"]
    await asyncio.sleep(0.3)
    assert stack.runtime.recorder.token_stats.total_requests == 0


async def test_oversized_body_gets_413_in_anthropic_shape(stack):
    big = b"x" * (33 * 1024 * 1024)
    async with _client(stack) as c:
        r = await c.post("/v1/messages", content=big, headers={**HEADERS, "content-type": "application/json"})
    assert r.status_code == 413
    assert r.json() == {"type": "error", "error": {"type": "request_too_large", "message": r.json()["error"]["message"]}}
    assert len(stack.mock.requests) == 0  # never forwarded


async def test_chunked_oversized_body_is_cut_off_too(stack):
    async def gen():
        for _ in range(34):
            yield b"y" * (1024 * 1024)

    async with _client(stack) as c:
        r = await c.post("/v1/messages", content=gen(), headers={**HEADERS, "content-type": "application/json"})
    assert r.status_code == 413


async def test_hostile_inputs_do_not_break_the_proxy(stack):
    async with _client(stack) as c:
        r1 = await c.post("/v1/messages", content=b"{not json", headers={**HEADERS, "content-type": "application/json"})
        r2 = await c.post("/v1/messages", json={"max_tokens": 5, "messages": []}, headers=HEADERS)
        r3 = await c.get("/nope/../../etc/passwd")
        r4 = await c.post("/v1/messages", json=BODY, headers={**HEADERS, "host": "../../etc"})
    assert r1.status_code == 400 and r1.json()["error"]["type"] == "invalid_request_error"
    assert r2.status_code == 400
    assert r3.status_code == 404 and r3.json()["type"] == "error"
    assert r4.status_code == 200
    # header injection: a raw request with a CR/LF-smuggled header is refused by the HTTP parser
    host, port = stack.proxy_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nX-Bad: a\rInjected: b\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(200), 5)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 400")
    rows = await stack.wait_rows(3)
    assert {r["status_code"] for r in rows} >= {400, 200}
    # the proxy is still healthy
    async with _client(stack) as c:
        assert (await c.get("/health")).json()["status"] == "ok"


async def test_client_disconnect_mid_stream_is_recorded_as_499(stack):
    async with _client(stack) as c:
        async with c.stream("POST", "/v1/messages", json={**BODY, "stream": True},
                            headers={**HEADERS, "x-mock-event-delay-ms": "300", "x-mock-events": "20"}) as r:
            async for _chunk in r.aiter_bytes():
                break  # hang up after the first bytes
    rows = await stack.wait_rows(1)
    assert rows[0]["status_code"] == 499
    assert rows[0]["error_type"] == "client_aborted"
    assert rows[0]["input_tokens"] > 0  # partial usage kept


async def test_upstream_unreachable_gives_502_and_a_record(stack, unused_tcp_port):
    stack.runtime.settings = stack.runtime.settings.with_overrides(
        claude_api_base_url=f"http://127.0.0.1:{unused_tcp_port}")
    async with _client(stack) as c:
        r = await c.post("/v1/messages", json=BODY, headers=HEADERS)
    assert r.status_code == 502
    assert r.json()["error"]["type"] == "api_error"
    rows = await stack.wait_rows(1)
    assert rows[0]["status_code"] == 502 and rows[0]["error_type"] == "upstream_unreachable"


async def test_token_stats_metrics_and_health(stack):
    async with _client(stack) as c:
        await c.post("/v1/messages", json=BODY, headers=HEADERS)
        await c.post("/v1/messages", json=BODY, headers={**HEADERS, "host": "team-a.example.com"})
        await c.post("/v1/messages", json=BODY, headers={**HEADERS, "x-mock-status": "529"})
        stats = (await c.get("/token-stats")).json()
        metrics = (await c.get("/metrics")).text
        health = (await c.get("/health")).json()
    assert stats["total_requests"] == 3
    assert set(stats["by_domain"]) == {"127.0.0.1", "team-a.example.com"}
    assert stats["total_tokens"]["total"] == stats["total_tokens"]["input"] + stats["total_tokens"]["output"]
    families = {f.name: f for f in text_string_to_metric_families(metrics)}
    for name in ("claude_proxy_requests", "claude_proxy_tokens", "claude_proxy_response_time",
                 "claude_proxy_time_to_first_token", "claude_proxy_cost_usd", "claude_proxy_errors",
                 "claude_proxy_in_flight_requests", "claude_proxy_record_queue_depth",
                 "claude_proxy_records_dropped", "claude_proxy_db_pool_in_use", "claude_proxy_sse_subscribers"):
        assert name in families, name
    reqs = [s for s in families["claude_proxy_requests"].samples if s.name == "claude_proxy_requests_total"]
    assert sum(s.value for s in reqs) == 3
    assert any(s.labels == {"domain": "team-a.example.com", "model": "claude-sonnet-4-6", "status": "200"}
               for s in reqs)
    buckets = {s.labels["le"] for s in families["claude_proxy_response_time"].samples if "le" in s.labels}
    assert {"100.0", "500.0", "1000.0"} <= buckets
    errs = [s for s in families["claude_proxy_errors"].samples if s.name == "claude_proxy_errors_total"]
    assert any(s.labels["error_type"] == "overloaded_error" for s in errs)
    assert health["status"] == "ok" and health["database"] == "connected"


async def test_keys_are_never_stored(stack):
    bearer = "sk-ant-oat01-bearer-secret-zzz"
    async with _client(stack) as c:
        await c.post("/v1/messages", json=BODY, headers={**HEADERS, "x-mock-status": "400",
                                                          "cookie": "session=abc123secret"})
        await c.post("/v1/messages", json=BODY, headers={"authorization": f"Bearer {bearer}",
                                                          "x-mock-status": "500"})
    await stack.wait_rows(2)
    import asyncpg

    conn = await asyncpg.connect(stack.dsn)
    try:
        dump = str([dict(r) for r in await conn.fetch("SELECT * FROM api_requests")])
        dump += str([dict(r) for r in await conn.fetch("SELECT * FROM api_request_bodies")])
    finally:
        await conn.close()
    for secret in (KEY, bearer, "abc123secret"):
        assert secret not in dump
    assert f"acct_{key_fingerprint(bearer)}" in dump
    assert "[REDACTED]" in dump
