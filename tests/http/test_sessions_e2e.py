"""Sessions, agents and tags through the real proxy: what the client sent is what is recorded and rolled up.

Real proxy(ies), real mock upstream, real PostgreSQL, the official ``anthropic`` SDK. Ground truth
is what the test sent and what the SDK got back; the sessions read model must equal a fresh
aggregation of the raw rows, also with two instances writing to one database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import asyncpg
import httpx
import orjson
import pytest

from nexus.core.usage import Usage
from nexus.pricing import PriceTable
from tests.support.db import Stack, stack_settings

KEY = "sk-ant-test-sessions-0001"
MODEL = "claude-sonnet-4-6"
HAIKU = "claude-haiku-4-5-20251001"
CC_UA = "claude-cli/2.1.197 (external, sdk-cli)"
S1 = "5f1e7b2a-8c3d-4e6f-9a0b-1c2d3e4f5a6b"
S2 = "0d9c8b7a-6f5e-4d3c-2b1a-0f9e8d7c6b5a"
S3 = "11111111-2222-4333-8444-555555555555"
DEVICE = "d3v1ce" * 10


def body(model: str = MODEL, text: str = "Hello", **extra: Any) -> dict[str, Any]:
    return {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": text}], **extra}


def cc_headers(session: str, agent: str | None = None, parent: str | None = None, **tags: str) -> dict[str, str]:
    h = {"x-claude-code-session-id": session, "user-agent": CC_UA, "x-app": "cli"}
    if agent:
        h["x-claude-code-agent-id"] = agent
    if parent:
        h["x-claude-code-parent-agent-id"] = parent
    h.update({f"x-nexus-tag-{k}": v for k, v in tags.items()})
    return h


@dataclass
class Sent:
    """What one request was, and what the SDK saw come back."""

    session: str | None
    agent: str | None
    parent: str | None
    model: str
    usage: Usage
    cost: Decimal
    tags: dict[str, str] = field(default_factory=dict)
    error: bool = False


async def send(client: anthropic.AsyncAnthropic, headers: dict[str, str], session: str | None, *,
               agent: str | None = None, parent: str | None = None, tags: dict[str, str] | None = None,
               model: str = MODEL, stream: bool = False, error: bool = False, **extra: Any) -> Sent:
    prices = PriceTable.builtin()
    if error:
        with pytest.raises(anthropic.APIStatusError):
            await client.messages.create(**body(model, **extra), extra_headers={**headers, "x-mock-status": "529"})
        return Sent(session, agent, parent, model, Usage(), Decimal(0), dict(tags or {}), error=True)
    if stream:
        async with client.messages.stream(**body(model, **extra), extra_headers=headers) as s:
            msg = await s.get_final_message()
    else:
        msg = await client.messages.create(**body(model, **extra), extra_headers=headers)
    u = msg.usage
    usage = Usage(input_tokens=u.input_tokens, output_tokens=u.output_tokens,
                  cache_creation_input_tokens=u.cache_creation_input_tokens or 0,
                  cache_read_input_tokens=u.cache_read_input_tokens or 0)
    from datetime import UTC, datetime
    cost = prices.cost(model, usage, datetime.now(UTC))
    assert cost is not None
    return Sent(session, agent, parent, model, usage, cost, dict(tags or {}))


async def claude_code_like_traffic(url: str) -> list[Sent]:
    """Three sessions in the three formats, sub-agents two deep, tags, an error, and one client without a session."""
    client = anthropic.AsyncAnthropic(api_key=KEY, base_url=url, max_retries=0)
    apollo = {"project": "apollo"}
    out = [
        await send(client, cc_headers(S1, project="apollo"), S1, tags=apollo),
        await send(client, cc_headers(S1, project="apollo"), S1, tags=apollo, stream=True),
        await send(client, cc_headers(S1, "agent-a", project="apollo"), S1, agent="agent-a", tags=apollo,
                   model=HAIKU),
        await send(client, cc_headers(S1, "agent-a", project="apollo"), S1, agent="agent-a", tags=apollo,
                   stream=True, text="Look around the repository"),
        await send(client, cc_headers(S1, "agent-b", "agent-a", project="apollo"), S1, agent="agent-b",
                   parent="agent-a", tags=apollo),
        await send(client, cc_headers(S1, "agent-b", "agent-a", project="apollo"), S1, agent="agent-b",
                   parent="agent-a", tags=apollo, error=True),
    ]
    # An older Claude Code: the session only in metadata.user_id, JSON-encoded; a mapped header.
    user_id = orjson.dumps({"device_id": DEVICE, "account_uuid": "acc-uuid-1", "session_id": S2}).decode()
    h2 = {"user-agent": "claude-cli/1.0.88 (external, cli)", "x-team": "infra", "x-nexus-tag-project": "zeus"}
    for _ in range(2):
        out.append(await send(client, h2, S2, tags={"project": "zeus", "team": "infra"},
                              metadata={"user_id": user_id}))
    # Older still: the legacy string.
    legacy = f"user_{'ab' * 32}_account_acc-uuid-1_session_{S3}"
    out.append(await send(client, {"user-agent": "claude-cli/1.0.20"}, S3, metadata={"user_id": legacy}))
    # No session at all.
    out.append(await send(client, {"user-agent": "curl/8.5.0"}, None))
    return out


async def start_stack(db_dsn: str, tmp_path: Path, mock: Any, **env: str) -> Stack:
    from proxy.service import ProxyService

    service = ProxyService(stack_settings(tmp_path, db_dsn, mock.url, TAG_HEADERS="x-team=team", **env))
    info = await service.start()
    return Stack(service, info, mock, db_dsn)


@pytest.fixture
async def sstack(db_dsn: str, tmp_path: Path, mock_upstream: Any) -> AsyncIterator[Stack]:
    s = await start_stack(db_dsn, tmp_path, mock_upstream)
    try:
        yield s
    finally:
        await s.service.stop()


# --- ground truth from what was sent ----------------------------------------------------------

def expected_sessions(sent: list[Sent]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for s in sent:
        if s.session is None:
            continue
        e = out.setdefault(s.session, {"requests": 0, "errors": 0, "input": 0, "output": 0, "cacheCreation": 0,
                                       "cacheRead": 0, "cost": Decimal(0), "models": set(), "agents": {}})
        e["requests"] += 1
        e["errors"] += int(s.error)
        e["input"] += s.usage.input_tokens
        e["output"] += s.usage.output_tokens
        e["cacheCreation"] += s.usage.cache_creation_input_tokens
        e["cacheRead"] += s.usage.cache_read_input_tokens
        e["cost"] += s.cost
        e["models"].add(s.model)
        a = e["agents"].setdefault(s.agent or "", {"parent": s.parent, "requests": 0, "cost": Decimal(0),
                                                     "output": 0})
        a["requests"] += 1
        a["cost"] += s.cost
        a["output"] += s.usage.output_tokens
    return out


FRESH_SESSIONS = """SELECT session_id, min(account_id) AS account_id, min(client) AS client, min(created_at) AS first_seen,
    max(created_at) AS last_seen, count(*) AS requests,
    count(*) FILTER (WHERE status_code >= 400 OR error_type IS NOT NULL) AS errors,
    sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
    sum(cache_creation_input_tokens) AS cache_creation_input_tokens,
    sum(cache_read_input_tokens) AS cache_read_input_tokens, coalesce(sum(cost_usd), 0) AS cost_usd,
    count(*) FILTER (WHERE cost_usd IS NULL AND request_type = 'messages' AND model IS NOT NULL) AS unpriced_requests,
    array_agg(DISTINCT model ORDER BY model) FILTER (WHERE model IS NOT NULL) AS models
FROM api_requests WHERE session_id IS NOT NULL GROUP BY session_id ORDER BY session_id"""

ROLLED_SESSIONS = """SELECT session_id, account_id, client, first_seen, last_seen, requests, errors, input_tokens,
    output_tokens, cache_creation_input_tokens, cache_read_input_tokens, cost_usd, unpriced_requests, models
FROM api_sessions ORDER BY session_id"""

FRESH_AGENTS = """SELECT session_id, coalesce(agent_id, '') AS agent_id, min(parent_agent_id) AS parent_agent_id,
    min(created_at) AS first_seen, max(created_at) AS last_seen, count(*) AS requests,
    count(*) FILTER (WHERE status_code >= 400 OR error_type IS NOT NULL) AS errors,
    sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
    sum(cache_creation_input_tokens) AS cache_creation_input_tokens,
    sum(cache_read_input_tokens) AS cache_read_input_tokens, coalesce(sum(cost_usd), 0) AS cost_usd,
    array_agg(DISTINCT model ORDER BY model) FILTER (WHERE model IS NOT NULL) AS models
FROM api_requests WHERE session_id IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2"""

ROLLED_AGENTS = """SELECT session_id, agent_id, parent_agent_id, first_seen, last_seen, requests, errors, input_tokens,
    output_tokens, cache_creation_input_tokens, cache_read_input_tokens, cost_usd, models
FROM api_session_agents ORDER BY 1, 2"""

FRESH_TAGS = """SELECT session_id, t.key AS name, t.value AS value, count(*) AS requests
FROM api_requests, jsonb_each_text(tags) AS t WHERE session_id IS NOT NULL GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"""

ROLLED_TAGS = "SELECT session_id, name, value, requests FROM api_session_tags ORDER BY 1, 2, 3"


async def assert_rollup_is_fresh(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for fresh_sql, rolled_sql in ((FRESH_SESSIONS, ROLLED_SESSIONS), (FRESH_AGENTS, ROLLED_AGENTS),
                                      (FRESH_TAGS, ROLLED_TAGS)):
            fresh = [dict(r) for r in await conn.fetch(fresh_sql)]
            rolled = [dict(r) for r in await conn.fetch(rolled_sql)]
            for row in fresh:
                if "models" in row:
                    row["models"] = row["models"] or []
            assert rolled == fresh
    finally:
        await conn.close()


# --- the tests --------------------------------------------------------------------------------

async def test_sessions_agents_and_tags_are_recorded_as_sent(sstack: Stack) -> None:
    sent = await claude_code_like_traffic(sstack.proxy_url)
    rows = await sstack.wait_rows(len(sent))
    assert len(rows) == len(sent)

    # Tags never reach the upstream; mapped headers (TAG_HEADERS) do, untouched.
    seen = [{k.lower(): v for k, v in r["headers"]} for r in sstack.mock.requests]
    assert len(seen) == len(sent)
    assert not any(k.startswith("x-nexus-tag-") for h in seen for k in h)
    assert sum(1 for h in seen if h.get("x-team") == "infra") == 2
    assert sum(1 for h in seen if h.get("x-claude-code-session-id") == S1) == 6  # the rest passes through

    by_order = sorted(rows, key=lambda r: r["created_at"])
    for r, s in zip(by_order, sent, strict=True):
        assert r["session_id"] == s.session
        assert r["agent_id"] == s.agent and r["parent_agent_id"] == s.parent
        assert (r["tags"] and orjson.loads(r["tags"]) if isinstance(r["tags"], str) else r["tags"] or {}) == s.tags
    clients = [r["client"] for r in by_order]
    assert clients[:6] == ["claude-cli/2.1.197 (cli)"] * 6
    assert clients[6:] == ["claude-cli/1.0.88", "claude-cli/1.0.88", "claude-cli/1.0.20", "curl/8.5.0"]

    # metadata.user_id itself (its device id) is stored nowhere.
    conn = await asyncpg.connect(sstack.dsn)
    try:
        dumped = await conn.fetchval("SELECT string_agg(t::text, '') FROM api_requests AS t")
        assert DEVICE not in dumped
    finally:
        await conn.close()

    # The read model equals what was sent, to the token and 1e-6 $ ...
    conn = await asyncpg.connect(sstack.dsn)
    try:
        got = {r["session_id"]: r for r in await conn.fetch("SELECT * FROM api_sessions")}
        agents = await conn.fetch("SELECT * FROM api_session_agents ORDER BY session_id, agent_id")
    finally:
        await conn.close()
    want = expected_sessions(sent)
    assert set(got) == set(want) == {S1, S2, S3}
    for sid, e in want.items():
        g = got[sid]
        assert (g["requests"], g["errors"], g["input_tokens"], g["output_tokens"]) == (
            e["requests"], e["errors"], e["input"], e["output"])
        assert (g["cache_creation_input_tokens"], g["cache_read_input_tokens"]) == (e["cacheCreation"], e["cacheRead"])
        assert abs(g["cost_usd"] - e["cost"]) < Decimal("1e-6")
        assert set(g["models"]) == e["models"]
    tree = {(a["session_id"], a["agent_id"]): (a["parent_agent_id"], a["requests"]) for a in agents}
    assert tree == {(S1, ""): (None, 2), (S1, "agent-a"): (None, 2), (S1, "agent-b"): ("agent-a", 2),
                    (S2, ""): (None, 2), (S3, ""): (None, 1)}
    # ... and a fresh aggregation of the raw rows.
    await assert_rollup_is_fresh(sstack.dsn)


async def test_tag_limits_are_counted_and_nothing_breaks(sstack: Stack) -> None:
    headers = {f"x-nexus-tag-t{i}": "v" for i in range(12)}
    headers["x-nexus-tag-Bad.Name"] = "v"
    async with httpx.AsyncClient(base_url=sstack.proxy_url, timeout=30) as c:
        r = await c.post("/v1/messages", json=body(), headers={"x-api-key": KEY, **headers,
                                                                "anthropic-version": "2023-06-01"})
        assert r.status_code == 200
        rows = await sstack.wait_rows(1)
        metrics = (await c.get("/metrics")).text
    tags = rows[0]["tags"]
    tags = orjson.loads(tags) if isinstance(tags, str) else tags
    assert len(tags) == 10
    assert "claude_proxy_tags_ignored_total 3.0" in metrics
    seen = {k.lower() for k, _ in sstack.mock.requests[-1]["headers"]}
    assert not any(k.startswith("x-nexus-tag-") for k in seen)


async def test_api_sessions_match_what_was_sent(sstack: Stack) -> None:
    """/api/sessions, /api/sessions/{id}, the filters and the SSE fields, through the real proxy."""
    headers = {"X-Dashboard-Key": sstack.key}
    async with httpx.AsyncClient(base_url=sstack.dashboard_url, headers=headers, timeout=30) as api:
        async with api.stream("GET", "/api/sse") as stream:
            sent = await claude_code_like_traffic(sstack.proxy_url)
            events: list[dict[str, Any]] = []
            lines = stream.aiter_lines()
            event = None
            async for line in lines:
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "request":
                    events.append(orjson.loads(line[6:]))
                    if len(events) == len(sent):
                        break
        first = events[0]
        assert (first["sessionId"], first["agentId"], first["client"], first["tags"]) == (
            S1, None, "claude-cli/2.1.197 (cli)", {"project": "apollo"})
        assert [(e["sessionId"], e["agentId"], e["parentAgentId"]) for e in events] == [
            (s.session, s.agent, s.parent) for s in sent]

        await sstack.wait_rows(len(sent))
        want = expected_sessions(sent)
        body = (await api.get("/api/sessions")).json()
        assert [s["sessionId"] for s in body["sessions"]] == [S3, S2, S1]  # most recent first
        for s in body["sessions"]:
            e = want[s["sessionId"]]
            assert s["requests"] == e["requests"] and s["errors"] == e["errors"]
            assert s["tokens"]["input"] == e["input"] and s["tokens"]["output"] == e["output"]
            assert s["costUsd"] == pytest.approx(float(e["cost"]), abs=1e-6)
            assert set(s["models"]) == e["models"] and s["active"] is True
        by_id = {s["sessionId"]: s for s in body["sessions"]}
        assert by_id[S1]["agents"] == 2 and by_id[S1]["tags"] == {"project": "apollo"}
        assert by_id[S1]["client"] == "claude-cli/2.1.197 (cli)"
        assert by_id[S2]["tags"] == {"project": "zeus", "team": "infra"} and by_id[S3]["agents"] == 0

        d = (await api.get(f"/api/sessions/{S1}")).json()
        tree = [(x["agentId"], x["parentAgentId"], x["depth"], x["requests"]) for x in d["agents"]]
        assert tree == [(None, None, 0, 2), ("agent-a", None, 1, 2), ("agent-b", "agent-a", 2, 2)]
        for x in d["agents"]:
            assert x["costUsd"] == pytest.approx(float(want[S1]["agents"][x["agentId"] or ""]["cost"]), abs=1e-6)
        assert len(d["requests"]) == 6

        stats = (await api.get("/api/stats", params={"sessionId": S1})).json()
        assert stats["totalRequests"] == 6 and stats["errorCount"] == 1
        assert stats["costUsd"] == pytest.approx(float(want[S1]["cost"]), abs=1e-6)
        zeus = (await api.get("/api/requests", params={"tag": "project:zeus"})).json()["requests"]
        assert [r["sessionId"] for r in zeus] == [S2, S2]
        r = await api.get("/api/stats", params={"tags": "project:zeus"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "tags"


async def test_demo_traffic_rollup_equals_fresh_aggregation(sstack: Stack) -> None:
    """A mixed load (the demo's: streams, errors, count_tokens, sub-agents, three session formats)."""
    from nexus.sim.traffic import TrafficProfile, run_traffic

    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(1.5, stop.set)
    counters = await run_traffic(sstack.proxy_url, TrafficProfile(rate_per_s=40, burst_every_s=0.3, burst_size=8,
                                                                  seed=3, latency_scale=0.02), stop)
    done = counters["ok"] + counters["errors"]
    assert done > 20
    await sstack.wait_rows(done)
    # Rows and rollups commit in one transaction: whatever rows are there, their rollup is too.
    conn = await asyncpg.connect(sstack.dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM api_sessions") >= 2
    finally:
        await conn.close()
    await assert_rollup_is_fresh(sstack.dsn)
    assert not any(k.lower().startswith("x-nexus-tag-") for r in sstack.mock.requests for k, _ in r["headers"])


async def test_quota_share_per_session(sstack: Stack) -> None:
    """Each rise of the subscription's measured utilization goes to the session whose request saw it."""
    client = anthropic.AsyncAnthropic(auth_token="sk-ant-oat01-sessions-quota", base_url=sstack.proxy_url,
                                      max_retries=0)
    order = [S1, S1, S2, S1]
    seen: list[dict[str, float]] = []
    for sid in order:
        raw = await client.messages.with_raw_response.create(
            **body(), extra_headers={**cc_headers(sid), "x-mock-input-tokens": "50000"})
        seen.append({w: float(raw.headers[f"anthropic-ratelimit-unified-{w}-utilization"]) for w in ("5h", "7d")})
    await sstack.wait_rows(len(order))
    want: dict[str, dict[str, float]] = {S1: {"5h": 0.0, "7d": 0.0}, S2: {"5h": 0.0, "7d": 0.0}}
    for i in range(1, len(order)):  # the first answer has no earlier one to rise from
        for w in ("5h", "7d"):
            want[order[i]][w] += max(0.0, seen[i][w] - seen[i - 1][w])
    assert want[S1]["5h"] > 0 and want[S2]["5h"] > 0
    async with httpx.AsyncClient(base_url=sstack.dashboard_url, headers={"X-Dashboard-Key": sstack.key},
                                 timeout=30) as api:
        for sid in (S1, S2):
            d = (await api.get(f"/api/sessions/{sid}")).json()
            assert set(d["quotaShare"]) == {"5h", "7d"}
            for w in ("5h", "7d"):
                assert d["quotaShare"][w] == pytest.approx(want[sid][w], abs=1e-9), (sid, w)
            assert d["quotaShareNote"].startswith("estimate: 1 other session")
        # The list carries the same share for active sessions (what the TUI's Sessions screen shows).
        listed = {s["sessionId"]: s for s in (await api.get("/api/sessions", params={"active": "true"})).json()["sessions"]}
        for sid in (S1, S2):
            for w in ("5h", "7d"):
                assert listed[sid]["quotaShare"][w] == pytest.approx(want[sid][w], abs=1e-9), (sid, w)
