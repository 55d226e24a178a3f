"""The mock upstream speaks the Messages API well enough for the official SDK, on a real port.

Every other test of the proxy leans on the mock telling the truth about the wire format, so the
official ``anthropic`` SDK is the judge here, and raw aiohttp checks what the SDK hides (event
order, headers, gzip bytes, dropped connections).
"""

from __future__ import annotations

import asyncio
import gzip
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import aiohttp
import anthropic
import orjson
import pytest

from nexus.cli import CommandError
from nexus.cli.mock import cli_main
from nexus.sim.mock import MockConfig, MockUpstream

KEY = {"x-api-key": "sk-ant-test-key", "anthropic-version": "2023-06-01"}
BODY: dict[str, Any] = {"model": "claude-sonnet-4-6", "max_tokens": 256,
                        "messages": [{"role": "user", "content": "Hello there"}]}
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"location": {"type": "string"},
                                                       "unit": {"type": "string", "enum": ["c", "f"]}},
                     "required": ["location"]},
}


@pytest.fixture
async def mock() -> AsyncIterator[MockUpstream]:
    async with MockUpstream() as m:
        yield m


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def sdk(mock: MockUpstream, **kw: Any) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=mock.url, api_key="sk-ant-test-key", max_retries=0, **kw)


def parse_sse(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in raw.decode().split("\n\n"):
        if not block.strip():
            continue
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], orjson.loads(lines["data"])))
    return events


async def test_sdk_create_text(mock: MockUpstream) -> None:
    client = sdk(mock)
    raw = await client.messages.with_raw_response.create(**BODY)
    msg = await raw.parse()
    assert msg.id.startswith("msg_") and msg.type == "message" and msg.role == "assistant"
    assert msg.model == "claude-sonnet-4-6"
    assert msg.content[0].type == "text" and msg.content[0].text
    assert msg.stop_reason == "end_turn"
    assert msg.usage.input_tokens > 0 and 0 < msg.usage.output_tokens <= 256
    assert msg.usage.cache_creation_input_tokens == 0 and msg.usage.cache_read_input_tokens == 0
    assert raw.headers["request-id"].startswith("req_")
    for bucket in ("requests", "tokens", "input-tokens", "output-tokens"):
        for part in ("limit", "remaining", "reset"):
            assert raw.headers[f"anthropic-ratelimit-{bucket}-{part}"]
    # Deterministic: the same request reports the same tokens.
    again = await client.messages.create(**BODY)
    assert (again.usage.input_tokens, again.usage.output_tokens) == (msg.usage.input_tokens, msg.usage.output_tokens)


async def test_sdk_stream_text_and_final_usage(mock: MockUpstream) -> None:
    client = sdk(mock)
    async with client.messages.stream(**BODY, extra_headers={"x-mock-output-tokens": "77",
                                                             "x-mock-input-tokens": "1234",
                                                             "x-mock-events": "7"}) as stream:
        text = "".join([chunk async for chunk in stream.text_stream])
        final = await stream.get_final_message()
    assert text and final.content[0].text == text
    assert final.usage.input_tokens == 1234 and final.usage.output_tokens == 77
    assert final.stop_reason == "end_turn"


async def test_stream_event_sequence(mock: MockUpstream, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{mock.url}/v1/messages", json={**BODY, "stream": True},
                         headers={**KEY, "x-mock-events": "4", "x-mock-output-tokens": "40"}) as r:
        assert r.status == 200 and r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["request-id"].startswith("req_")
        events = parse_sse(await r.read())
    names = [e for e, _ in events]
    assert names == ["message_start", "content_block_start", "ping", *["content_block_delta"] * 4,
                     "content_block_stop", "message_delta", "message_stop"]
    start = events[0][1]["message"]
    assert start["usage"]["output_tokens"] == 1 and start["usage"]["input_tokens"] > 0
    assert all(d["delta"]["type"] == "text_delta" for e, d in events if e == "content_block_delta")
    delta = events[-2][1]
    assert delta["usage"]["output_tokens"] == 40 and delta["usage"]["input_tokens"] == start["usage"]["input_tokens"]
    assert delta["delta"]["stop_reason"] == "end_turn"


async def test_events_are_flushed_one_by_one(mock: MockUpstream, http: aiohttp.ClientSession) -> None:
    """With a per-event delay the first event arrives long before the stream ends."""
    t0 = time.monotonic()
    async with http.post(f"{mock.url}/v1/messages", json={**BODY, "stream": True},
                         headers={**KEY, "x-mock-event-delay-ms": "40", "x-mock-events": "3"}) as r:
        first = await r.content.readuntil(b"\n\n")
        t_first = time.monotonic() - t0
        await r.read()
        t_all = time.monotonic() - t0
    assert first.startswith(b"event: message_start")
    assert t_first < 0.1 and t_all > 0.25


@pytest.mark.parametrize("streaming", [False, True])
async def test_sdk_tool_use(mock: MockUpstream, streaming: bool) -> None:
    client = sdk(mock)
    kw: dict[str, Any] = {**BODY, "tools": [WEATHER_TOOL], "tool_choice": {"type": "any"},
                          "messages": [{"role": "user", "content": "Weather in Paris?"}]}
    if streaming:
        async with client.messages.stream(**kw) as stream:
            msg = await stream.get_final_message()
    else:
        msg = await client.messages.create(**kw)
    tool = [b for b in msg.content if b.type == "tool_use"]
    assert len(tool) == 1 and tool[0].name == "get_weather" and tool[0].id.startswith("toolu_")
    assert tool[0].input == {"location": "San Francisco, CA"}
    assert msg.stop_reason == "tool_use"


async def test_tool_not_used_without_being_asked(mock: MockUpstream) -> None:
    msg = await sdk(mock).messages.create(**BODY, tools=[WEATHER_TOOL])
    assert [b.type for b in msg.content] == ["text"]
    named = await sdk(mock).messages.create(**{**BODY, "messages": [{"role": "user", "content": "call get_weather"}]},
                                            tools=[WEATHER_TOOL])
    assert named.stop_reason == "tool_use"


BASH_TOOL = {"name": "Bash", "description": "Run a shell command",
             "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}
AGENT_TOOL = {"name": "Agent", "description": "Launch a sub-agent",
              "input_schema": {"type": "object", "properties": {"prompt": {"type": "string"}}, "required": ["prompt"]}}
REMINDER = ("<system-reminder>You can use the Bash tool and the Agent tool; call Bash to run commands."
            "</system-reminder>")
TOOL_RESULT = {"type": "tool_result", "tool_use_id": "toolu_01", "content": "use the Bash tool again"}

# (what the last user message holds, the tool the mock calls or None for plain text)
AGENT_SAFE_CASES = [
    ("Say hello", None),
    ("hi", None),
    ("Tell me about bash scripting", None),  # mentions, does not ask
    ("Bash", None),
    (REMINDER + "\nSay hello", None),  # Claude Code's reminders name every tool
    ([{"type": "text", "text": REMINDER}, {"type": "text", "text": "Say hello"}], None),
    ([{"type": "text", "text": "<system-reminder>run Bash"}, {"type": "text", "text": "hi"}], None),  # unclosed
    ([TOOL_RESULT], None),  # answering a tool never calls another
    ([TOOL_RESULT, {"type": "text", "text": "now use the Bash tool"}], None),
    ("Please use the Bash tool to list files", "Bash"),
    ("run bash: ls", "Bash"),
    ("call the Agent tool to explore", "Agent"),
    ([{"type": "text", "text": REMINDER}, {"type": "text", "text": "invoke Agent"}], "Agent"),
    ("use Bashful", None),
]


async def test_trailing_system_message_is_not_the_turn(mock: MockUpstream, http: aiohttp.ClientSession) -> None:
    """Claude Code 2.1.197 ends ``messages`` with a ``system`` message listing its agent types."""
    agent_types = "Available agent types for the Agent tool: use the Agent tool for broad searches"
    for ask, expected in (("Please use the Agent tool to explore", "tool_use"), ("hi", "end_turn")):
        body = {**BODY, "tools": [BASH_TOOL, AGENT_TOOL],
                "messages": [{"role": "user", "content": [{"type": "text", "text": REMINDER},
                                                          {"type": "text", "text": ask}]},
                             {"role": "system", "content": agent_types}]}
        async with http.post(f"{mock.url}/v1/messages", json=body, headers=KEY) as r:
            assert (await r.json())["stop_reason"] == expected, ask


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize(("content", "expected"), AGENT_SAFE_CASES)
async def test_agent_gets_plain_text_unless_it_asks_for_a_tool(mock: MockUpstream, content: Any,
                                                               expected: str | None, streaming: bool) -> None:
    """A real Claude Code offers ~20 tools on every request; the mock must end its turn unless asked."""
    kw: dict[str, Any] = {**BODY, "tools": [BASH_TOOL, AGENT_TOOL],
                          "messages": [{"role": "user", "content": "start"},
                                       {"role": "assistant", "content": "ok"},
                                       {"role": "user", "content": content}]}
    client = sdk(mock)
    if streaming:
        async with client.messages.stream(**kw) as stream:
            msg = await stream.get_final_message()
    else:
        msg = await client.messages.create(**kw)
    used = [b.name for b in msg.content if b.type == "tool_use"]
    if expected is None:
        assert used == [] and [b.type for b in msg.content] == ["text"]
        assert msg.stop_reason in ("end_turn", "max_tokens")
    else:
        assert used == [expected] and msg.stop_reason == "tool_use"


ERRORS = [(400, "invalid_request_error", anthropic.BadRequestError),
          (401, "authentication_error", anthropic.AuthenticationError),
          (403, "permission_error", anthropic.PermissionDeniedError),
          (404, "not_found_error", anthropic.NotFoundError),
          (413, "request_too_large", anthropic.APIStatusError),
          (429, "rate_limit_error", anthropic.RateLimitError),
          (500, "api_error", anthropic.InternalServerError),
          (529, "overloaded_error", anthropic.APIStatusError)]


@pytest.mark.parametrize(("status", "etype", "exc"), ERRORS)
async def test_injected_status(mock: MockUpstream, status: int, etype: str, exc: type[Exception]) -> None:
    with pytest.raises(exc) as info:
        await sdk(mock).messages.create(**BODY, extra_headers={"x-mock-status": str(status)})
    err = info.value
    assert isinstance(err, anthropic.APIStatusError) and err.status_code == status
    assert isinstance(err.body, dict) and err.body["type"] == "error" and err.body["error"]["type"] == etype
    assert err.response.headers["request-id"].startswith("req_")
    if status in (429, 529):
        assert int(err.response.headers["retry-after"]) >= 1
    else:
        assert "retry-after" not in err.response.headers


async def test_validation_like_the_real_api(mock: MockUpstream, http: aiohttp.ClientSession) -> None:
    url = f"{mock.url}/v1/messages"
    async with http.post(url, data=b"{not json", headers={**KEY, "content-type": "application/json"}) as r:
        assert r.status == 400 and (await r.json())["error"]["type"] == "invalid_request_error"
    for missing in ("model", "max_tokens", "messages"):
        body = {k: v for k, v in BODY.items() if k != missing}
        async with http.post(url, json=body, headers=KEY) as r:
            data = await r.json()
            assert r.status == 400 and data["error"]["type"] == "invalid_request_error"
            assert missing in data["error"]["message"]
    async with http.post(url, json=BODY) as r:
        assert r.status == 401 and (await r.json())["error"]["type"] == "authentication_error"
    async with http.post(url, json=BODY, headers={"authorization": "Bearer oauth-token"}) as r:
        assert r.status == 200
    async with http.get(f"{mock.url}/v1/nowhere?x=1", headers=KEY) as r:
        data = await r.json()
        assert r.status == 404 and data["error"]["type"] == "not_found_error"
        assert r.headers["request-id"].startswith("req_")


async def test_auth_check_can_be_disabled(http: aiohttp.ClientSession) -> None:
    async with MockUpstream(MockConfig(require_auth=False)) as m, http.post(f"{m.url}/v1/messages", json=BODY) as r:
        assert r.status == 200


async def test_gzip_steered_and_configured(mock: MockUpstream) -> None:
    async with aiohttp.ClientSession(auto_decompress=False) as raw_http:
        async with raw_http.post(f"{mock.url}/v1/messages", json=BODY, headers={**KEY, "x-mock-gzip": "1"}) as r:
            assert r.headers["content-encoding"] == "gzip"
            assert orjson.loads(gzip.decompress(await r.read()))["type"] == "message"
        async with MockUpstream(MockConfig(gzip=True)) as m:
            async with raw_http.post(f"{m.url}/v1/messages", json=BODY,
                                     headers={**KEY, "accept-encoding": "gzip"}) as r:
                assert r.headers["content-encoding"] == "gzip"
            async with raw_http.post(f"{m.url}/v1/messages", json=BODY,
                                     headers={**KEY, "accept-encoding": "identity"}) as r:
                assert "content-encoding" not in r.headers
    msg = await sdk(mock).messages.create(**BODY, extra_headers={"x-mock-gzip": "1"})
    assert msg.type == "message"


async def test_drop_before_headers(mock: MockUpstream, http: aiohttp.ClientSession) -> None:
    with pytest.raises(aiohttp.ServerDisconnectedError):
        async with http.post(f"{mock.url}/v1/messages", json=BODY, headers={**KEY, "x-mock-drop": "before-headers"}):
            pass
    with pytest.raises(anthropic.APIConnectionError):
        await sdk(mock).messages.create(**BODY, extra_headers={"x-mock-drop": "before-headers"})


async def test_drop_mid_stream(mock: MockUpstream, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{mock.url}/v1/messages", json={**BODY, "stream": True},
                         headers={**KEY, "x-mock-drop": "mid-stream", "x-mock-events": "6"}) as r:
        assert r.status == 200
        first = await r.content.readuntil(b"\n\n")
        assert first.startswith(b"event: message_start")
        with pytest.raises(aiohttp.ClientPayloadError):
            await r.read()
    # a non-streaming answer can be cut off mid-body too
    async with http.post(f"{mock.url}/v1/messages", json=BODY, headers={**KEY, "x-mock-drop": "mid-stream"}) as r:
        assert r.status == 200 and int(r.headers["content-length"]) > 0
        with pytest.raises(aiohttp.ClientPayloadError):
            await r.read()


async def test_stream_error_event(mock: MockUpstream, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{mock.url}/v1/messages", json={**BODY, "stream": True},
                         headers={**KEY, "x-mock-stream-error": "overloaded_error", "x-mock-events": "6"}) as r:
        assert r.status == 200
        events = parse_sse(await r.read())
    names = [e for e, _ in events]
    assert names[0] == "message_start" and "content_block_delta" in names
    assert names[-1] == "error" and "message_stop" not in names
    assert events[-1][1] == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    with pytest.raises(anthropic.APIStatusError) as info:
        async with sdk(mock).messages.stream(**BODY, extra_headers={"x-mock-stream-error": "overloaded_error"}) as s:
            async for _ in s.text_stream:
                pass
    assert "overloaded_error" in str(info.value)


async def test_count_tokens_and_models(mock: MockUpstream) -> None:
    client = sdk(mock)
    counted = await client.messages.count_tokens(model="claude-sonnet-4-6", messages=BODY["messages"])
    msg = await client.messages.create(**BODY)
    assert counted.input_tokens == msg.usage.input_tokens > 0
    page = await client.models.list()
    ids = [m.id for m in page.data]
    assert "claude-sonnet-4-5-20250929" in ids and "claude-haiku-4-5-20251001" in ids
    one = await client.models.retrieve("claude-opus-4-6")
    assert one.display_name == "Claude Opus 4.6"


async def test_cache_write_then_read(mock: MockUpstream) -> None:
    client = sdk(mock)
    system = [{"type": "text", "text": "You are a careful engineer. " * 200, "cache_control": {"type": "ephemeral"}}]
    first = await client.messages.create(**BODY, system=system)
    second = await client.messages.create(**{**BODY, "messages": [{"role": "user", "content": "Another question"}]},
                                          system=system)
    written = first.usage.cache_creation_input_tokens
    assert written > 1000 and first.usage.cache_read_input_tokens == 0
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == written
    assert second.usage.cache_read_input_tokens == written and second.usage.cache_creation_input_tokens == 0
    hour = [{**system[0], "text": "Other prompt. " * 100, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    third = await client.messages.create(**BODY, system=hour)
    assert third.usage.cache_creation.ephemeral_1h_input_tokens == third.usage.cache_creation_input_tokens > 0
    steered = await client.messages.create(**BODY, extra_headers={"x-mock-cache-read": "5000",
                                                                  "x-mock-cache-write": "700"})
    assert steered.usage.cache_read_input_tokens == 5000 and steered.usage.cache_creation_input_tokens == 700


async def test_requests_are_recorded_and_reset(mock: MockUpstream, http: aiohttp.ClientSession) -> None:
    headers = {**KEY, "anthropic-beta": "prompt-caching-2024-07-31,tools-2024-05-16", "x-custom": "kept"}
    async with http.post(f"{mock.url}/v1/messages?beta=true&x=a%20b", json=BODY, headers=headers) as r:
        assert r.status == 200
        assert r.headers["x-mock-echo-beta"] == headers["anthropic-beta"]
    async with http.get(f"{mock.url}/_mock/requests") as r:
        seen = await r.json()
    assert seen == mock.requests
    last = seen[-1]
    assert last["method"] == "POST" and last["path"] == "/v1/messages" and last["query_string"] == "beta=true&x=a%20b"
    got = {k.lower(): v for k, v in last["headers"]}
    assert got["anthropic-beta"] == headers["anthropic-beta"] and got["x-custom"] == "kept"
    assert last["body_size"] > 50
    async with http.post(f"{mock.url}/_mock/reset") as r:
        assert r.status == 200
    assert mock.requests == []


async def test_latency_stall_and_error_rate(http: aiohttp.ClientSession) -> None:
    async with MockUpstream(MockConfig(error_rate=0.5, seed=7)) as m:
        statuses = []
        for _ in range(30):
            async with http.post(f"{m.url}/v1/messages", json=BODY, headers=KEY) as r:
                statuses.append(r.status)
        assert 5 < sum(s != 200 for s in statuses) < 25
        assert set(statuses) <= {200, 429, 500, 529}
    async with MockUpstream() as m:
        t0 = time.monotonic()
        async with http.post(f"{m.url}/v1/messages", json=BODY, headers={**KEY, "x-mock-latency-ms": "150"}) as r:
            await r.read()
        assert time.monotonic() - t0 >= 0.15
        async with http.post(f"{m.url}/v1/messages", json={**BODY, "stream": True},
                             headers={**KEY, "x-mock-stall-ms": "300"}) as r:
            with pytest.raises(asyncio.TimeoutError):
                async with asyncio.timeout(0.15):
                    await r.read()


async def test_cli_port_in_use_is_one_clear_error() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    args = SimpleNamespace(host="127.0.0.1", port=port, latency_ms=0.0, error_rate=0.0)
    try:
        with pytest.raises(CommandError, match="already in use"):
            await asyncio.to_thread(cli_main, args, None)
    finally:
        sock.close()


@pytest.mark.process
def test_cli_serves_until_sigterm() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "nexus.cli", "mock-upstream", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "NEXUS_DATA_DIR": "/tmp/nexus-mock-cli-test"})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("mock upstream listening on http://127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_body_over_32_mb_is_request_too_large(mock: MockUpstream, http: aiohttp.ClientSession) -> None:
    filler = b"a" * (33 * 1024 * 1024)
    big = b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"' + filler + b'"}]}'
    async with http.post(f"{mock.url}/v1/messages", data=big, headers=KEY) as r:
        assert r.status == 413 and (await r.json())["error"]["type"] == "request_too_large"
    assert mock.requests[-1]["body_size"] == len(big)


async def test_client_leaving_mid_stream_is_quiet(mock: MockUpstream, http: aiohttp.ClientSession,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """A disconnecting client is normal for an upstream: no traceback in the log, server still fine."""
    r = await http.post(f"{mock.url}/v1/messages", json={**BODY, "stream": True},
                        headers={**KEY, "x-mock-event-delay-ms": "20", "x-mock-events": "10"})
    await r.content.readuntil(b"\n\n")
    r.close()
    await asyncio.sleep(0.15)
    assert not [rec for rec in caplog.records if rec.levelname == "ERROR"]
    async with http.post(f"{mock.url}/v1/messages", json=BODY, headers=KEY) as r2:
        assert r2.status == 200


async def test_cache_entry_expires_after_its_ttl() -> None:
    system = [{"type": "text", "text": "Project conventions. " * 100, "cache_control": {"type": "ephemeral"}}]
    async with MockUpstream(MockConfig(cache_ttl_scale=0.0005)) as m:  # 5 min -> 0.15 s
        client = sdk(m)
        first = await client.messages.create(**BODY, system=system)
        hit = await client.messages.create(**BODY, system=system)
        await asyncio.sleep(0.2)
        expired = await client.messages.create(**BODY, system=system)
    assert first.usage.cache_creation_input_tokens > 0
    assert hit.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert expired.usage.cache_creation_input_tokens == first.usage.cache_creation_input_tokens
    assert expired.usage.cache_read_input_tokens == 0


async def test_incident_raises_the_error_rate_for_a_while_and_webhooks_are_captured():
    import httpx as _httpx

    from nexus.sim.mock import MockConfig as _Config
    from nexus.sim.mock import MockUpstream as _Mock

    body = {"model": "claude-haiku-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]}
    async with _Mock(_Config(seed=1)) as mock, _httpx.AsyncClient(base_url=mock.url, timeout=10) as c:
        bad = await c.post("/_mock/incident?rate=2&seconds=5")
        assert bad.status_code == 400
        ok = await c.post("/_mock/incident?rate=1&seconds=0.5")
        assert ok.json() == {"ok": True, "rate": 1.0, "seconds": 0.5}
        during = [(await c.post("/v1/messages", json=body, headers={"x-api-key": "k"})).status_code
                  for _ in range(5)]
        assert all(s in (429, 500, 529) for s in during)
        import asyncio as _asyncio

        await _asyncio.sleep(0.6)
        after = await c.post("/v1/messages", json=body, headers={"x-api-key": "k"})
        assert after.status_code == 200
        await c.post("/_mock/webhook", json={"text": "alert fired"})
        got = (await c.get("/_mock/webhook")).json()
        assert got[0]["body"] == {"text": "alert fired"}
