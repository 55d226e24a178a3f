"""The demo's traffic generator, against a real mock upstream on loopback (standing in for the proxy).

What matters for the demo: the traffic is varied enough to make every panel of the monitor
interesting, it is real HTTP carrying the domain in ``Host`` and the account in the key, and the
generator is a good citizen — bounded, never raising on HTTP trouble, stopping promptly.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest

from nexus.sim.mock import MockUpstream
from nexus.sim.traffic import DOMAINS, UNKNOWN_MODEL, TrafficProfile, run_traffic

pytestmark = pytest.mark.slow  # real traffic for seconds


def _headers(rec: dict[str, Any]) -> dict[str, str]:
    return {k.lower(): v for k, v in rec["headers"]}


async def _run_for(url: str, profile: TrafficProfile, seconds: float, on_result: Any = None) -> dict[str, Any]:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(seconds, stop.set)
    return await run_traffic(url, profile, stop, on_result)


async def test_a_realistic_mix_reaches_the_upstream() -> None:
    results: list[dict[str, Any]] = []
    profile = TrafficProfile(rate_per_s=60, error_share=0.25, burst_every_s=0.5, burst_size=8, seed=42,
                             latency_scale=0.03)
    async with MockUpstream() as mock:
        counters = await _run_for(mock.url, profile, 1.3, results.append)
        seen = mock.requests

    assert counters["sent"] >= 60
    assert counters["sent"] == counters["ok"] + counters["errors"] + counters["cancelled"]
    assert counters["ok"] > counters["errors"] > 0
    assert len(results) == counters["ok"] + counters["errors"]
    # models: the common three families and, rarely, one nobody can price
    assert len(counters["by_model"]) >= 4
    assert any("sonnet" in m for m in counters["by_model"]) and any("haiku" in m for m in counters["by_model"])
    assert any("opus" in m for m in counters["by_model"])
    assert counters["by_model"].get(UNKNOWN_MODEL, 0) < counters["sent"] * 0.1
    # streaming and not, count_tokens, cache hits
    assert 0 < counters["streams"] < counters["sent"]
    assert counters["count_tokens"] > 0 and counters["cache_reads"] > 0
    # errors: status errors and an error event inside a 200 stream
    assert {429, 529} & set(counters["by_status"]) and counters["by_status"][200] > 0
    stream_errors = [r for r in results if r["status"] == 200 and r["error_type"] == "overloaded_error"]
    assert stream_errors and all(r["stream"] for r in stream_errors)
    assert {r["error_type"] for r in results if r["status"] == 429} == {"rate_limit_error"}
    # usage was read from the wire (streams: message_start + message_delta)
    good_streams = [r for r in results if r["ok"] and r["stream"]]
    assert good_streams and all(r["input_tokens"] and r["output_tokens"] for r in good_streams)

    # what the upstream saw: domains in Host, accounts in the key or bearer token
    hosts = {_headers(r)["host"] for r in seen}
    assert hosts == set(DOMAINS)
    keys = {_headers(r).get("x-api-key") for r in seen} - {None}
    bearers = {_headers(r).get("authorization") for r in seen} - {None}
    assert len(keys) >= 4 and all(k.startswith("sk-ant-demo-") for k in keys)
    assert bearers and all(b.startswith("Bearer ") for b in bearers)
    assert {r["path"] for r in seen} == {"/v1/messages", "/v1/messages/count_tokens"}
    assert any(r["query_string"] == "beta=true" for r in seen)


async def test_same_seed_same_plan() -> None:
    """A seed fixes the choices (timing still varies), so demo screenshots are reproducible."""
    profile = TrafficProfile(rate_per_s=40, seed=7, latency_scale=0.0, burst_every_s=0)
    async with MockUpstream() as mock:
        await _run_for(mock.url, profile, 0.3)
        first = [(_headers(r)["host"], r["path"]) for r in mock.requests]
        mock.state.reset()
        await _run_for(mock.url, profile, 0.3)
        second = [(_headers(r)["host"], r["path"]) for r in mock.requests]
    n = min(len(first), len(second))
    assert n > 5 and first[:n] == second[:n]


async def test_bounded_concurrency_and_prompt_stop() -> None:
    """A slow upstream makes arrivals wait, not pile up; stop cancels in-flight work quickly."""
    profile = TrafficProfile(rate_per_s=200, max_concurrency=3, seed=1, latency_scale=50.0, error_share=0.0,
                             drain_s=0.2)
    async with MockUpstream() as mock:
        stop = asyncio.Event()
        task = asyncio.create_task(run_traffic(mock.url, profile, stop))
        await asyncio.sleep(0.3)
        assert len(mock.requests) == 3  # everything else is waiting for a slot
        t0 = time.monotonic()
        stop.set()
        counters = await asyncio.wait_for(task, 2.0)
        assert time.monotonic() - t0 < 1.0
    assert counters["sent"] == 3 and counters["cancelled"] == 3


async def test_dead_proxy_is_counted_not_raised() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    calls: list[dict[str, Any]] = []

    def broken_callback(result: dict[str, Any]) -> None:
        calls.append(result)
        raise RuntimeError("a broken callback must not stop the traffic")

    counters = await _run_for(f"http://127.0.0.1:{port}", TrafficProfile(rate_per_s=30, seed=3), 0.5, broken_callback)
    assert counters["sent"] > 3 and counters["ok"] == 0
    assert counters["errors"] == counters["sent"] == counters["by_status"][0] == len(calls)


def test_claude_code_like_sessions_with_sub_agents_and_tags() -> None:
    """The Sessions screen has something to show: sessions in all three formats, sub-agents, tags.

    Plans, not timed traffic: what a seed decides, so the check holds on a loaded machine too.
    """
    import orjson

    from nexus.sim.traffic import _ACCOUNTS, _Generator

    gen = _Generator("http://x", TrafficProfile(seed=11), None)
    alice = next(a for a in _ACCOUNTS if a.name == "alice")
    plans = [gen.plan() for _ in range(150)]
    for _ in range(3):
        plans += [gen.plan(alice, in_burst=True) for _ in range(10)]
    heads = [p["headers"] for p in plans]
    assert gen.planner.started >= 5
    assert len({h["x-claude-code-session-id"] for h in heads if "x-claude-code-session-id" in h}) >= 3
    agents = {h["x-claude-code-agent-id"] for h in heads if "x-claude-code-agent-id" in h}
    parents = {h["x-claude-code-parent-agent-id"] for h in heads if "x-claude-code-parent-agent-id" in h}
    assert agents and parents and parents <= agents
    projects = {h.get("x-nexus-tag-project") for h in heads} - {None}
    assert {"apollo", "hermes", "atlas"} <= projects <= {"apollo", "zeus", "hermes", "atlas"}
    assert all(h["x-app"] == "cli" and h["user-agent"].startswith("claude-cli/")
               for h in heads if h["Host"] != "ci.example.com")
    assert not any("x-claude-code-session-id" in h for h in heads if h["Host"] == "ci.example.com")
    # older Claude Codes: the session only in metadata.user_id (JSON for research, legacy for bob)
    research = [p for p in plans if p["headers"]["Host"] == "research.example.org"]
    assert research and not any("x-claude-code-session-id" in p["headers"] for p in research)
    user_id = orjson.loads(research[0]["body"])["metadata"]["user_id"]
    assert orjson.loads(user_id)["session_id"]
    bob = [p for p in plans if p["account"].name == "bob"]
    assert bob and "_session_" in orjson.loads(bob[0]["body"])["metadata"]["user_id"]


def test_session_plans_are_seeded() -> None:
    from nexus.sim.traffic import _Generator

    a = [_Generator("http://x", TrafficProfile(seed=5), None).plan(in_burst=True)["headers"] for _ in range(1)]
    b = [_Generator("http://x", TrafficProfile(seed=5), None).plan(in_burst=True)["headers"] for _ in range(1)]
    assert a == b
